"""Binding service end to end: a real ternd on loopback, raw STUN over real sockets."""
import os
import socket
import struct
import subprocess
import time
import unittest

from ternd import (Ternd, conf, free_port, request, parse, xaddr, addr, attr, error_code, temp_dir,
                   udp_exchange, recv_frame, wait_closed, TERNC, tls_files)

XOR_MAPPED, MAPPED, SOFTWARE, FINGERPRINT = 0x0020, 0x0001, 0x8022, 0x8028
ERROR_CODE, UNKNOWN = 0x0009, 0x000A


def ternc(*args, timeout=10):
    # the client is a test tool: its exit-time leaks are not under test
    env = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")
    p = subprocess.run([TERNC] + list(args), capture_output=True, text=True, timeout=timeout, env=env)
    kv = {}
    for line in p.stdout.splitlines():
        k, _, v = line.partition("=")
        kv.setdefault(k, v)
    return p.returncode, kv


class BindingUdpTcp(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.port = free_port(hosts=("127.0.0.1", "::1"))
        listen = ('{ proto = "udp"; ip = "127.0.0.1"; port = %d; }, { proto = "tcp"; ip = "127.0.0.1"; port = %d; },'
                  '{ proto = "udp"; ip = "::1"; port = %d; }, { proto = "tcp"; ip = "::1"; port = %d; }'
                  % ((cls.port,) * 4))
        cls.srv = Ternd(conf(cls.port, listen=listen)).__enter__()

    @classmethod
    def tearDownClass(cls):
        rc = cls.srv.stop()
        assert rc == 0, "ternd exit status %s" % rc

    def test_udp_ipv4_reports_reflexive_address(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        msg, tid = request()
        reply, _ = udp_exchange("127.0.0.1", self.port, msg, sock=s)
        r = parse(reply)
        self.assertEqual(r["type"], 0x0101)
        self.assertEqual(r["tid"], tid)
        self.assertEqual(xaddr(r["attrs"][XOR_MAPPED][0], tid), s.getsockname())
        self.assertEqual(r["attrs"][SOFTWARE][0], b"ternd-test")
        self.assertNotIn(FINGERPRINT, r["attrs"])
        s.close()

    def test_udp_ipv6_reports_reflexive_address(self):
        s = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
        s.bind(("::1", 0))
        msg, tid = request()
        reply, _ = udp_exchange("::1", self.port, msg, sock=s)
        self.assertEqual(xaddr(parse(reply)["attrs"][XOR_MAPPED][0], tid), s.getsockname()[:2])
        s.close()

    def test_fingerprint_answered_with_fingerprint(self):
        msg, tid = request(fingerprint=True)
        reply, _ = udp_exchange("127.0.0.1", self.port, msg)
        r = parse(reply)
        self.assertEqual(r["order"][-1], FINGERPRINT)
        import zlib
        crc = (zlib.crc32(reply[:-8]) ^ 0x5354554E) & 0xFFFFFFFF
        self.assertEqual(struct.unpack("!I", r["attrs"][FINGERPRINT][0])[0], crc)

    def test_bad_fingerprint_dropped(self):
        msg, _ = request(fingerprint=True)
        msg = msg[:-1] + bytes([msg[-1] ^ 1])
        self.assertIsNone(udp_exchange("127.0.0.1", self.port, msg, timeout=0.5)[0])

    def test_classic_rfc3489_gets_mapped_address(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        msg, tid = request(classic=True)
        reply, _ = udp_exchange("127.0.0.1", self.port, msg, sock=s)
        r = parse(reply)
        self.assertEqual(reply[4:20], tid)
        self.assertEqual(addr(r["attrs"][MAPPED][0]), s.getsockname())
        self.assertNotIn(XOR_MAPPED, r["attrs"])
        s.close()

    def test_unknown_required_attribute_gets_420(self):
        msg, tid = request(attr(0x7F01, b"abcd") + attr(0xC001, b"opt!"))
        r = parse(udp_exchange("127.0.0.1", self.port, msg)[0])
        self.assertEqual(r["type"], 0x0111)
        self.assertEqual(error_code(r["attrs"][ERROR_CODE][0]), 420)
        self.assertEqual(r["attrs"][UNKNOWN][0][:2], b"\x7f\x01")

    def test_unknown_optional_attribute_ignored(self):
        msg, tid = request(attr(0xC001, b"opt!"))
        r = parse(udp_exchange("127.0.0.1", self.port, msg)[0])
        self.assertEqual(r["type"], 0x0101)

    def test_malformed_attribute_gets_400(self):
        # header is sound, but the attribute claims more bytes than there are
        body = struct.pack("!HH", 0x8022, 40) + b"abcd"
        msg = struct.pack("!HHI", 0x0001, len(body), 0x2112A442) + os.urandom(12) + body
        r = parse(udp_exchange("127.0.0.1", self.port, msg)[0])
        self.assertEqual(error_code(r["attrs"][ERROR_CODE][0]), 400)

    def test_other_method_request_gets_400(self):
        msg, _ = request(method=0x0FF)
        r = parse(udp_exchange("127.0.0.1", self.port, msg)[0])
        self.assertEqual(r["cls"], 3)
        self.assertEqual(error_code(r["attrs"][ERROR_CODE][0]), 400)

    def test_indications_and_responses_dropped(self):
        for cls in (1, 2, 3):
            msg, _ = request(cls=cls)
            self.assertIsNone(udp_exchange("127.0.0.1", self.port, msg, timeout=0.3)[0])

    def test_garbage_truncated_oversized_datagrams_survive(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        good, _ = request()
        junk = [b"", b"\x00", good[:19], good[:-1] + b"", b"\xff" * 20, os.urandom(100),
                good[:2] + b"\xff\xfc" + good[4:], b"\x00\x01\x00\x08" + good[4:20] + b"\x00\x06\x00\xff",
                b"\x40\x00\x00\x04abcd", os.urandom(65000)]
        for j in junk:
            s.sendto(j, ("127.0.0.1", self.port))
        for _ in range(200):
            s.sendto(os.urandom(64), ("127.0.0.1", self.port))
        s.close()
        # UDP may lose the probe behind the junk still queued: a few tries
        for _ in range(3):
            reply, _ = udp_exchange("127.0.0.1", self.port, good)
            if reply:
                break
        self.assertIsNotNone(reply)
        self.assertTrue(self.srv.alive())

    def _tcp(self, host="127.0.0.1"):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        s = socket.create_connection((host, self.port), timeout=3)
        return s

    def test_tcp_ipv4_and_ipv6(self):
        for host in ("127.0.0.1", "::1"):
            s = self._tcp(host)
            msg, tid = request()
            s.sendall(msg)
            r = parse(recv_frame(s))
            self.assertEqual(xaddr(r["attrs"][XOR_MAPPED][0], tid), s.getsockname()[:2])
            s.close()

    def test_tcp_split_and_coalesced_frames(self):
        s = self._tcp()
        m1, t1 = request()
        m2, t2 = request(fingerprint=True)
        data = m1 + m2
        for i in range(0, len(data), 3):  # dribble three bytes at a time
            s.sendall(data[i:i + 3])
            time.sleep(0.002)
        self.assertEqual(parse(recv_frame(s))["tid"], t1)
        self.assertEqual(parse(recv_frame(s))["tid"], t2)
        m3, t3 = request()
        s.sendall(b"\x40\x01\x00\x03abc\x00" + m3)  # padded ChannelData is skipped
        self.assertEqual(parse(recv_frame(s))["tid"], t3)
        s.close()

    def test_tcp_garbage_closes_connection_only(self):
        s = self._tcp()
        s.sendall(b"\xff" * 64)
        self.assertTrue(wait_closed(s, 3))
        s.close()
        s = self._tcp()
        msg, tid = request()
        s.sendall(msg)
        self.assertEqual(parse(recv_frame(s))["tid"], tid)
        s.close()

    def test_ternc_udp_and_tcp(self):
        for t in ("udp", "tcp"):
            rc, kv = ternc("-t", t, "127.0.0.1", str(self.port))
            self.assertEqual(rc, 0, kv)
            self.assertEqual(kv["class"], "success")
            self.assertTrue(kv["xor-mapped"].startswith("127.0.0.1:"))

    def test_amplification_bound(self):
        for extra in (b"", attr(0x8022, b"x" * 3)):
            for fp in (False, True):
                msg, _ = request(extra, fingerprint=fp)
                reply, _ = udp_exchange("127.0.0.1", self.port, msg)
                self.assertLessEqual(len(reply) - len(msg), 128)


class Rfc5780(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.p1 = free_port(kinds=(socket.SOCK_DGRAM,), hosts=("127.0.0.1", "127.0.0.2"))
        cls.p2 = free_port(kinds=(socket.SOCK_DGRAM,), hosts=("127.0.0.1", "127.0.0.2"))
        listen = '{ proto = "udp"; ip = "127.0.0.1"; port = %d; }' % cls.p1
        extra = 'alternate = { ip = "127.0.0.2"; port = %d; };' % cls.p2
        cls.srv = Ternd(conf(cls.p1, extra, listen=listen)).__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def ask(self, attrs=b"", dest=None):
        msg, tid = request(attrs)
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        reply, src = udp_exchange(*(dest or ("127.0.0.1", self.p1)), msg, sock=s)
        s.close()
        return msg, (parse(reply) if reply else None), src

    def test_other_address_and_response_origin(self):
        _, r, src = self.ask()
        self.assertEqual(addr(r["attrs"][0x802C][0]), ("127.0.0.2", self.p2))
        self.assertEqual(addr(r["attrs"][0x802B][0]), ("127.0.0.1", self.p1))
        self.assertEqual(src, ("127.0.0.1", self.p1))

    def test_change_request_each_way(self):
        cases = {0x4: ("127.0.0.2", self.p1), 0x2: ("127.0.0.1", self.p2), 0x6: ("127.0.0.2", self.p2)}
        for flags, want in cases.items():
            _, r, src = self.ask(attr(0x0003, struct.pack("!I", flags)))
            self.assertEqual(src, want)
            self.assertEqual(addr(r["attrs"][0x802B][0]), want)

    def test_alternate_socket_reports_primary_as_other(self):
        _, r, src = self.ask(dest=("127.0.0.2", self.p2))
        self.assertEqual(src, ("127.0.0.2", self.p2))
        self.assertEqual(addr(r["attrs"][0x802C][0]), ("127.0.0.1", self.p1))

    def test_response_port(self):
        rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        rx.bind(("127.0.0.1", 0))
        rx.settimeout(1)
        msg, tid = request(attr(0x0027, struct.pack("!HH", rx.getsockname()[1], 0)))
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(msg, ("127.0.0.1", self.p1))
        reply = rx.recv(2048)
        self.assertEqual(parse(reply)["tid"], tid)
        s.close()
        rx.close()

    def test_padding_echoed_without_amplification(self):
        msg, r, _ = self.ask(attr(0x0026, b"\0" * 500))
        self.assertEqual(len(r["attrs"][0x0026][0]), 500)
        self.assertLessEqual(r["length"] + 20 - len(msg), 128)

    def test_ternc_change_ip_port(self):
        rc, kv = ternc("--change-ip", "--change-port", "127.0.0.1", str(self.p1))
        self.assertEqual(rc, 0)
        self.assertEqual(kv["from"], "127.0.0.2:%d" % self.p2)
        self.assertEqual(kv["other-address"], "127.0.0.2:%d" % self.p2)


class NoAlternate(unittest.TestCase):
    def test_change_request_without_alternate_gets_420(self):
        port = free_port()
        with Ternd(conf(port)):
            msg, _ = request(attr(0x0003, struct.pack("!I", 6)))
            r = parse(udp_exchange("127.0.0.1", port, msg)[0])
            self.assertEqual(error_code(r["attrs"][ERROR_CODE][0]), 420)
            self.assertEqual(r["attrs"][UNKNOWN][0][:2], b"\x00\x03")
            msg, _ = request(attr(0x0003, struct.pack("!I", 0)))
            self.assertEqual(parse(udp_exchange("127.0.0.1", port, msg)[0])["cls"], 2)


class TlsDtls(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        import tempfile
        cls.dir = temp_dir()
        cls.cert, cls.key = tls_files(cls.dir)
        cls.port = free_port()
        listen = ('{ proto = "tls"; ip = "127.0.0.1"; port = %d; }, { proto = "dtls"; ip = "127.0.0.1"; port = %d; }'
                  % (cls.port, cls.port))
        extra = 'tls = { cert = "%s"; key = "%s"; };\nlimits = { handshake_timeout = 1; idle_timeout = 2; };' % (cls.cert, cls.key)
        cls.srv = Ternd(conf(cls.port, extra, listen=listen)).__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def test_tls_binding(self):
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=3)
        local = raw.getsockname()
        s = ctx.wrap_socket(raw)
        self.assertIn(s.version(), ("TLSv1.2", "TLSv1.3"))
        msg, tid = request()
        s.sendall(msg)
        r = parse(recv_frame(s))
        self.assertEqual(xaddr(r["attrs"][XOR_MAPPED][0], tid), local)
        s.close()

    def test_tls11_refused(self):
        import ssl
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        try:
            import warnings
            warnings.simplefilter("ignore", DeprecationWarning)
            ctx.minimum_version = ssl.TLSVersion.TLSv1
            ctx.maximum_version = ssl.TLSVersion.TLSv1_1
            ctx.set_ciphers("DEFAULT:@SECLEVEL=0")  # so only the server can refuse
        except (ValueError, ssl.SSLError):
            self.skipTest("this OpenSSL cannot offer TLS 1.1")
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=3)
        with self.assertRaises((ssl.SSLError, OSError)):
            ctx.wrap_socket(raw)
        raw.close()

    def test_ternc_tls_and_dtls(self):
        for t in ("tls", "dtls"):
            rc, kv = ternc("-t", t, "--count", "3", "127.0.0.1", str(self.port))
            self.assertEqual(rc, 0, (t, kv))
            self.assertTrue(kv["xor-mapped"].startswith("127.0.0.1:"))

    def test_unfinished_tls_handshake_times_out(self):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=3)
        t0 = time.time()
        self.assertTrue(wait_closed(s, 4))
        self.assertLess(time.time() - t0, 3.5)
        s.close()

    def test_dtls_garbage_ignored(self):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for payload in (b"\x16\xfe\xfd" + os.urandom(60), os.urandom(30), request()[0]):
            s.sendto(payload, ("127.0.0.1", self.port))
        s.close()
        rc, kv = ternc("-t", "dtls", "127.0.0.1", str(self.port))
        self.assertEqual(rc, 0)


class Bounds(unittest.TestCase):
    def test_idle_tcp_connection_closed(self):
        port = free_port()
        with Ternd(conf(port, "limits = { idle_timeout = 1; };")):
            s = socket.create_connection(("127.0.0.1", port), timeout=3)
            t0 = time.time()
            self.assertTrue(wait_closed(s, 4))
            self.assertLess(time.time() - t0, 3)
            s.close()

    def test_connection_count_bounded(self):
        port = free_port()
        c = conf(port, "limits = { max_connections = 2; };").replace("workers = 2", "workers = 1")
        with Ternd(c):
            keep = [socket.create_connection(("127.0.0.1", port), timeout=3) for _ in range(2)]
            time.sleep(0.2)
            extra = socket.create_connection(("127.0.0.1", port), timeout=3)
            self.assertTrue(wait_closed(extra, 2))
            msg, tid = request()
            keep[0].sendall(msg)
            self.assertEqual(parse(recv_frame(keep[0]))["tid"], tid)
            for k in keep + [extra]:
                k.close()


if __name__ == "__main__":
    unittest.main()
