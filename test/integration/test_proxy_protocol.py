"""PROXY protocol (HAProxy's proxy-protocol.txt, v1 and v2) on TCP and TLS
listeners with `proxy_protocol = true`: the client address in
XOR-MAPPED-ADDRESS, in the unauthenticated rate limit, in the session log and
in the debug log is the header's source; a connection without a valid header is closed within
limits.handshake_timeout; a listener without the key is unchanged. Driven
first with hand-written headers, then through a real HAProxy (`mode tcp`,
`send-proxy` and `send-proxy-v2`, TLS passed through untouched) with the
client bound to 127.0.0.5 so that the answer can only be right if ternd
read the header; and coturn's turnutils_uclient relays over TCP through it.
"""
import os
import re
import shutil
import signal
import socket
import ssl
import struct
import subprocess
import time
import unittest

from ternd import (Ternd, attr, conf, error_code, free_port, parse, recv_frame, request, temp_dir,
                   tls_files, wait_closed, xaddr)
from turnclient import A_RELAYED, Turn

HOST = "127.0.0.1"
CLIENT_IP = "127.0.0.5"  # all of 127/8 is local: a source no balancer would invent
A_XOR_MAPPED = 0x0020
SIG = b"\r\n\r\n\x00\r\nQUIT\n"
_FILES = None


def files():
    global _FILES
    if _FILES is None:
        _FILES = tls_files(temp_dir())
    return _FILES


def v1(src, sport, dst="127.0.0.1", dport=3478):
    fam = "TCP6" if ":" in src else "TCP4"
    return ("PROXY %s %s %s %d %d\r\n" % (fam, src, dst, sport, dport)).encode()


def v2(src=None, sport=0, dst=None, dport=0, local=False, tlvs=b""):
    if local:
        return SIG + bytes([0x20, 0x00]) + struct.pack("!H", len(tlvs)) + tlvs
    if ":" in src:
        body = (socket.inet_pton(socket.AF_INET6, src) + socket.inet_pton(socket.AF_INET6, dst or "::1")
                + struct.pack("!HH", sport, dport))
        fam = 0x21
    else:
        body = socket.inet_aton(src) + socket.inet_aton(dst or "127.0.0.1") + struct.pack("!HH", sport, dport)
        fam = 0x11
    body += tlvs
    return SIG + bytes([0x21, fam]) + struct.pack("!H", len(body)) + body


def proxy_conf(tcp, tls, plain, extra=""):
    cert, key = files()
    listen = ('{ proto = "udp"; ip = "%s"; port = %d; }, '
              '{ proto = "tcp"; ip = "%s"; port = %d; proxy_protocol = true; }, '
              '{ proto = "tls"; ip = "%s"; port = %d; proxy_protocol = true; }, '
              '{ proto = "tcp"; ip = "%s"; port = %d; }'
              % (HOST, tcp, HOST, tcp, HOST, tls, HOST, plain))
    return conf(tcp, listen=listen, extra=(
        'tls = { cert = "%s"; key = "%s"; };\n'
        'auth = { users = ( { user = "alice"; password = "secret"; } ); };\n'
        'peers = { allow_loopback = true; };\n'
        'relay = { ip = [ "127.0.0.1" ]; };\n'
        'limits = { handshake_timeout = 1; };\n%s' % (cert, key, extra)))


def tls_wrap(sock):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx.wrap_socket(sock, server_hostname="localhost")


def binding(sock):
    """XOR-MAPPED-ADDRESS of a Binding over a connected stream."""
    msg, tid = request()
    sock.sendall(msg)
    reply = recv_frame(sock)
    if reply is None:
        return None
    return xaddr(parse(reply)["attrs"][A_XOR_MAPPED][0], tid)


def connect(port, bind=None):
    s = socket.create_connection((HOST, port), timeout=3, source_address=bind)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def stream_turn():
    """A TURN client for a stream the caller opened (and sent a header on):
    set its sock."""
    t = Turn(HOST, 9, transport="udp")
    t.sock.close()
    t.transport = "tcp"
    return t


def wait_log(srv, pattern, timeout=3.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        m = re.search(pattern, srv.stderr())
        if m:
            return m
        time.sleep(0.05)
    return None


class HandWritten(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tcp, cls.tls, cls.plain = free_port(), free_port(), free_port()
        cls.srv = Ternd(proxy_conf(cls.tcp, cls.tls, cls.plain)).__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def tearDown(self):
        self.assertTrue(self.srv.alive(), self.srv.stderr()[-2000:])

    def over_tcp(self, header):
        with connect(self.tcp) as s:
            s.sendall(header)
            return binding(s)

    def over_tls(self, header):
        with connect(self.tls) as raw:
            raw.sendall(header)
            with tls_wrap(raw) as s:
                return binding(s)

    def test_v1_ipv4_and_ipv6_over_tcp(self):
        self.assertEqual(self.over_tcp(v1("192.0.2.7", 40001)), ("192.0.2.7", 40001))
        self.assertEqual(self.over_tcp(v1("2001:db8::7", 40002, "::1")), ("2001:db8::7", 40002))

    def test_v2_ipv4_and_ipv6_over_tcp(self):
        self.assertEqual(self.over_tcp(v2("198.51.100.9", 50001)), ("198.51.100.9", 50001))
        self.assertEqual(self.over_tcp(v2("2001:db8::9", 50002)), ("2001:db8::9", 50002))

    def test_v2_tlvs_are_skipped(self):
        tlvs = b"\x04" + struct.pack("!H", 300) + b"x" * 300  # PP2_TYPE_NOOP, longer than a buffer
        self.assertEqual(self.over_tcp(v2("203.0.113.3", 3333, tlvs=tlvs)), ("203.0.113.3", 3333))

    def test_header_then_tls(self):
        self.assertEqual(self.over_tls(v1("192.0.2.8", 40003)), ("192.0.2.8", 40003))
        self.assertEqual(self.over_tls(v2("2001:db8::8", 50003)), ("2001:db8::8", 50003))

    def test_v2_local_and_v1_unknown_keep_socket_address(self):
        with connect(self.tcp) as s:
            s.sendall(v2(local=True))
            self.assertEqual(binding(s), s.getsockname()[:2])
        with connect(self.tcp) as s:
            s.sendall(b"PROXY UNKNOWN\r\n")
            self.assertEqual(binding(s), s.getsockname()[:2])

    def test_header_split_over_segments(self):
        for header, want in ((v1("192.0.2.10", 1010), ("192.0.2.10", 1010)),
                             (v2("192.0.2.11", 1111), ("192.0.2.11", 1111))):
            with connect(self.tcp) as s:
                for i in range(len(header)):  # one byte per segment
                    s.sendall(header[i:i + 1])
                    time.sleep(0.005)
                self.assertEqual(binding(s), want)
        # header and first request in one segment: the request is not lost
        with connect(self.tcp) as s:
            msg, tid = request()
            s.sendall(v2("192.0.2.12", 1212) + msg)
            self.assertEqual(xaddr(parse(recv_frame(s))["attrs"][A_XOR_MAPPED][0], tid), ("192.0.2.12", 1212))

    def test_no_header_garbage_or_truncated_is_closed(self):
        cases = {"silence": b"", "stun without header": request()[0], "garbage": b"GET / HTTP/1.0\r\n\r\n",
                 "truncated v1": v1("192.0.2.1", 1)[:20], "truncated v2": v2("192.0.2.1", 1)[:20],
                 "bad v1": b"PROXY TCP4 1.2.3.4 nonsense\r\n", "v1 too long": b"PROXY " + b"A" * 120}
        for name, data in cases.items():
            for port in (self.tcp, self.tls):
                with connect(port) as s:
                    if data:
                        s.sendall(data)
                    t0 = time.monotonic()
                    self.assertTrue(wait_closed(s, 3.0), "%s on %d stays open" % (name, port))
                    self.assertLess(time.monotonic() - t0, 2.5, name)

    def test_header_on_plain_listener_is_garbage(self):
        # "PROX" reads as the head of a ChannelData frame 0x5052 of 0x4F58
        # bytes, which swallows the request behind it (as any such bytes do
        # today); the v2 signature is neither STUN nor ChannelData: closed.
        # Either way no answer comes, least of all for the header's address.
        with connect(self.plain) as s:
            s.sendall(v1("192.0.2.1", 1) + request()[0])
            s.settimeout(1.0)
            with self.assertRaises(socket.timeout):
                s.recv(100)
        with connect(self.plain) as s:
            s.sendall(v2("192.0.2.1", 1) + request()[0])
            self.assertTrue(wait_closed(s, 3.0))
        with connect(self.plain) as s:
            self.assertEqual(binding(s), s.getsockname()[:2])

    def test_log_shows_header_address(self):
        self.over_tcp(v1("192.0.2.99", 49999))
        self.assertTrue(wait_log(self.srv, r"stream 192\.0\.2\.99:49999: PROXY v1 header from 127\.0\.0\.1:"),
                        self.srv.stderr()[-2000:])
        with connect(self.tcp) as s:
            s.sendall(b"PROXY TCP4 junk\r\n")
            wait_closed(s, 3.0)
        self.assertTrue(wait_log(self.srv, r"not a PROXY header"))

    def test_allocate_through_header_logs_client(self):
        for transport, port in (("tcp", self.tcp), ("tls", self.tls)):
            raw = connect(port)
            raw.sendall(v2("192.0.2.77", 7777 if transport == "tcp" else 7778))
            t = stream_turn()
            t.sock = tls_wrap(raw) if transport == "tls" else raw
            t.sock.settimeout(3)
            r = t.allocate()
            self.assertEqual(r["cls"], 2, r)
            self.assertIn(A_RELAYED, r["attrs"])
            t.close()
            port_s = "7777" if transport == "tcp" else "7778"
            self.assertTrue(wait_log(self.srv, r"session_start .*client=192\.0\.2\.77:%s transport=%s"
                                     % (port_s, transport)), self.srv.stderr()[-3000:])
            self.assertTrue(wait_log(self.srv, r"session_end .*client=192\.0\.2\.77:%s" % port_s))


class Config(unittest.TestCase):
    def failing(self, listen):
        srv = Ternd(conf(free_port(), listen=listen), expect_ready=False)
        with srv:
            rc = srv.proc.wait(10)
        return rc, srv.stderr()

    def test_proxy_protocol_on_udp_or_dtls_is_an_error(self):
        for proto in ("udp", "dtls"):
            rc, err = self.failing('{ proto = "%s"; port = %d;\n proxy_protocol = true; }' % (proto, free_port()))
            self.assertNotEqual(rc, 0)
            self.assertRegex(err, r"ternd\.conf:5: 'listen\[0\]\.proxy_protocol' is for tcp and tls")

    def test_proxy_protocol_not_boolean(self):
        rc, err = self.failing('{ proto = "tcp"; port = %d;\n proxy_protocol = "yes"; }' % free_port())
        self.assertNotEqual(rc, 0)
        self.assertRegex(err, r"ternd\.conf:5: 'listen\[0\]\.proxy_protocol' must be true or false")

    def test_awaited_headers_count_against_max_connections(self):
        port = free_port()
        text = conf(port, listen='{ proto = "tcp"; ip = "%s"; port = %d; proxy_protocol = true; }'
                    % (HOST, port), extra="limits = { max_connections = 3; handshake_timeout = 5; };")
        with Ternd(text.replace("workers = 2;", "workers = 1;")) as srv:
            waiting = [connect(port) for _ in range(3)]
            try:
                time.sleep(0.3)
                with connect(port) as s:
                    t0 = time.monotonic()
                    self.assertTrue(wait_closed(s, 3.0))
                    self.assertLess(time.monotonic() - t0, 1.0)
                self.assertTrue(wait_log(srv, r"connection limit 3 reached"))
                waiting[0].sendall(v1("192.0.2.44", 4444))
                self.assertEqual(binding(waiting[0]), ("192.0.2.44", 4444))
            finally:
                for s in waiting:
                    s.close()

    def test_unauth_rate_is_per_header_address(self):
        # unauth_rate = 1: one 401 per source; every connection comes from
        # 127.0.0.1, so only the header can tell the sources apart
        port = free_port()
        text = conf(port, listen='{ proto = "tcp"; ip = "%s"; port = %d; proxy_protocol = true; }'
                    % (HOST, port), extra="limits = { unauth_rate = 1; };")

        def allocate_from(src):
            with connect(port) as s:
                s.sendall(v2(src, 1000) + request(attr(0x19, b"\x11\0\0\0"), method=3)[0])
                s.settimeout(0.4)
                try:
                    reply = recv_frame(s)
                except socket.timeout:
                    return "dropped"
                return reply and error_code(parse(reply)["attrs"][0x9][0])

        with Ternd(text):
            self.assertEqual(allocate_from("192.0.2.60"), 401)
            self.assertEqual(allocate_from("192.0.2.60"), "dropped")  # its allowance is spent
            self.assertEqual(allocate_from("192.0.2.61"), 401)  # another client's is not

    def test_stop_with_headers_awaited_frees_them(self):
        # under ASan, a connection still waiting for its header at exit leaks nothing
        port = free_port()
        text = conf(port, listen='{ proto = "tcp"; ip = "%s"; port = %d; proxy_protocol = true; }'
                    % (HOST, port), extra="limits = { handshake_timeout = 60; };")
        srv = Ternd(text).__enter__()
        waiting = [connect(port) for _ in range(4)]
        try:
            waiting[0].sendall(b"PROXY TCP4 ")
            waiting[1].sendall(SIG[:10])
            time.sleep(0.3)
            self.assertEqual(srv.stop(), 0, srv.stderr()[-2000:])
        finally:
            for s in waiting:
                s.close()

    def test_reload_turns_it_on_for_new_connections(self):
        port = free_port()
        listen = '{ proto = "tcp"; ip = "%s"; port = %d; %s }'
        with Ternd(conf(port, listen=listen % (HOST, port, ""))) as srv:
            with connect(port) as s:
                self.assertEqual(binding(s), s.getsockname()[:2])
            with open(srv.conf, "w") as f:
                f.write(conf(port, listen=listen % (HOST, port, "proxy_protocol = true;")))
            srv.proc.send_signal(signal.SIGHUP)
            self.assertTrue(wait_log(srv, r"reload: .* applied"), srv.stderr()[-2000:])
            with connect(port) as s:
                s.sendall(v1("192.0.2.5", 555))
                self.assertEqual(binding(s), ("192.0.2.5", 555))


# --- a real HAProxy ------------------------------------------------------------

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
TOTALS = re.compile(r"start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\s*$", re.M)


@unittest.skipUnless(os.path.exists(HAPROXY), "haproxy not installed (scripts/install-deps --test)")
class RealHaproxy(unittest.TestCase):
    """haproxy in front: v1 and v2 frontends for the TCP and the TLS listener."""

    @classmethod
    def setUpClass(cls):
        cls.tcp, cls.tls, cls.plain = free_port(), free_port(), free_port()
        cls.srv = Ternd(proxy_conf(cls.tcp, cls.tls, cls.plain)).__enter__()
        cls.front = {}
        sections = ["global\n    maxconn 100\n",
                    "defaults\n    mode tcp\n    timeout connect 5s\n    timeout client 30s\n"
                    "    timeout server 30s\n"]
        for kind, port in (("tcp", cls.tcp), ("tls", cls.tls)):
            for version, opt in (("v1", "send-proxy"), ("v2", "send-proxy-v2")):
                front = free_port(kinds=(socket.SOCK_STREAM,))
                cls.front[kind, version] = front
                # health checks carry a header too (v2: LOCAL)
                sections.append("listen %s_%s\n    bind 127.0.0.1:%d\n    server s1 127.0.0.1:%d %s"
                                " check check-send-proxy inter 300\n" % (kind, version, front, port, opt))
        d = temp_dir("haproxy-test-")
        cls.hconf = os.path.join(d, "haproxy.cfg")
        with open(cls.hconf, "w") as f:
            f.write("\n".join(sections))
        cls.hlog = open(os.path.join(d, "haproxy.log"), "w")
        cls.haproxy = subprocess.Popen([HAPROXY, "-f", cls.hconf, "-db"], stdout=cls.hlog,
                                       stderr=subprocess.STDOUT)
        end = time.monotonic() + 10
        while time.monotonic() < end:
            try:
                socket.create_connection((HOST, cls.front["tls", "v2"]), timeout=0.5).close()
                break
            except OSError:
                time.sleep(0.05)

    @classmethod
    def tearDownClass(cls):
        if cls.haproxy.poll() is None:
            cls.haproxy.terminate()
            try:
                cls.haproxy.wait(10)
            except subprocess.TimeoutExpired:
                cls.haproxy.kill()
                cls.haproxy.wait()
        cls.hlog.close()
        cls.srv.stop()

    def test_binding_sees_client_behind_haproxy(self):
        for (kind, version), front in sorted(self.front.items()):
            with connect(front, bind=(CLIENT_IP, 0)) as raw:
                mine = raw.getsockname()[:2]
                s = tls_wrap(raw) if kind == "tls" else raw
                try:
                    self.assertEqual(binding(s), mine, "%s %s: %s" % (kind, version, self.srv.stderr()[-2000:]))
                finally:
                    s.close()
            self.assertTrue(wait_log(self.srv, r"stream %s:%d: PROXY %s header from 127\.0\.0\.1:"
                                     % (re.escape(mine[0]), mine[1], version)))

    def test_health_checks_are_served(self):
        # the balancer's own connections: a v2 LOCAL header keeps its address
        self.assertTrue(wait_log(self.srv, r"stream 127\.0\.0\.1:\d+: PROXY v2 header from 127\.0\.0\.1:\d+ "
                                 r"\(its own address stands\)"), self.srv.stderr()[-2000:])
        self.assertNotIn("not a PROXY header", self.srv.stderr())
        with open(self.hlog.name) as f:
            self.assertNotRegex(f.read(), r"is DOWN")

    def test_allocate_behind_haproxy(self):
        for (kind, version), front in sorted(self.front.items()):
            raw = connect(front, bind=(CLIENT_IP, 0))
            mine = raw.getsockname()[:2]
            t = stream_turn()
            t.sock = tls_wrap(raw) if kind == "tls" else raw
            t.sock.settimeout(3)
            r = t.allocate()
            self.assertEqual(r["cls"], 2, "%s %s: %r" % (kind, version, r))
            t.close()
            self.assertTrue(wait_log(self.srv, r"session_start .*client=%s:%d transport=%s"
                                     % (re.escape(mine[0]), mine[1], kind)), self.srv.stderr()[-3000:])

    @unittest.skipUnless(shutil.which("turnutils_uclient"), "coturn's client tools not installed")
    def test_turnutils_uclient_relays_through_haproxy(self):
        peer_port = free_port(kinds=(socket.SOCK_DGRAM,))
        peer = subprocess.Popen(["turnutils_peer", "-L", "127.0.0.1", "-p", str(peer_port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            time.sleep(0.3)
            for version in ("v1", "v2"):
                cmd = ["timeout", "20", "turnutils_uclient", "-t", "-L", CLIENT_IP, "-u", "alice", "-w", "secret",
                       "-p", str(self.front["tcp", version]), "-e", "127.0.0.1", "-r", str(peer_port),
                       "-m", "2", "-n", "20", "-l", "120", "-z", "5", "127.0.0.1"]
                p = subprocess.run(cmd, capture_output=True, text=True, timeout=40)
                out = p.stdout + p.stderr
                why = "%s\n%s\n--- server:\n%s" % (version, out[-3000:], self.srv.stderr()[-2000:])
                self.assertEqual(p.returncode, 0, why)
                totals = TOTALS.findall(out)
                self.assertTrue(totals, why)
                sent, received = map(int, totals[-1])
                self.assertEqual(sent, 40, why)
                self.assertEqual(received, sent, why)
            self.assertTrue(wait_log(self.srv, r"session_end .*client=127\.0\.0\.5:\d+ transport=tcp"),
                            self.srv.stderr()[-2000:])
        finally:
            peer.terminate()
            peer.wait(10)


if __name__ == "__main__":
    unittest.main()
