"""Regression tests for defects found in a review (issue "Defects found in a
review", items 4, 6, 7, 9, 10 and 11): a refused ChannelBind leaving a
half-built channel, the reserved port reported with the internal address,
IPv6 forms of denied IPv4 peers, a TLS handshake kept alive byte by byte, a
DTLS session kept alive by spoofed datagrams, and a Redis quota that wrapped
to unlimited. Every server runs on loopback on free ports."""
import os
import select
import socket
import ssl
import struct
import subprocess
import time
import unittest
import urllib.request

from ternd import Ternd, conf, free_port, attr, parse, request, tls_files, temp_dir
from turnclient import Turn, A_EVEN, A_TOKEN, A_RAF
from test_turn import turn_conf, error, udp_peer
from test_redis import redis_conf
from test_metrics import parse_metrics, total
from redisfix import RedisServer


def start(test, text):
    """A Ternd on text, stopped when the test ends."""
    srv = Ternd(text).__enter__()
    test.addCleanup(srv.stop)
    return srv


def client(test, host, port, **kw):
    t = Turn(host, port, **kw)
    test.addCleanup(t.close)
    return t


class ChannelBindRefusedLeavesNoChannel(unittest.TestCase):
    """Review item 4: a ChannelBind refused with 508 (a 65th peer while the 64
    permissions are in use) appended a channel entry without an expiry, so
    later valid ChannelBinds to permitted peers got 400 (the refused number
    or peer still held) or 508 (the channel table full of such entries)."""

    @classmethod
    def setUpClass(cls):
        cls.port = free_port()
        cls.srv = Ternd(turn_conf(cls.port)).__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def full_allocation(self):
        """An allocation with all 64 permissions in use (127.0.1.1 .. 127.0.1.64)."""
        t = client(self, "127.0.0.1", self.port)
        self.assertEqual(t.allocate()["cls"], 2)
        peers = [("127.0.1.%d" % i, 9) for i in range(1, 65)]
        for i in range(0, 64, 16):
            r = t.permission(*peers[i:i + 16])
            self.assertEqual(r["cls"], 2, (i, error(r)))
        # A 65th peer: no room for its permission.
        self.assertEqual(error(t.channel_bind(0x4001, ("127.0.2.1", 9))), 508)
        return t

    def bind_and_relay(self, t, numbers):
        """Bind numbers to real peers on 127.0.1.1.. (permitted), relay both ways."""
        for i, number in enumerate(numbers):
            s = udp_peer("127.0.1.%d" % (i + 1))
            self.addCleanup(s.close)
            r = t.channel_bind(number, s.getsockname())
            self.assertEqual(r["cls"], 2, ("channel 0x%x" % number, error(r)))
            payload = b"chan-%x-" % number + os.urandom(16)
            t.send_channel(number, payload)
            self.assertEqual(s.recvfrom(2000), (payload, t.relayed[0]))
            s.sendto(payload[::-1], t.relayed[0])
            self.assertEqual(t.recv_data(), ("channel", number, payload[::-1]))
        self.assertTrue(self.srv.alive())

    def test_refused_number_is_free_for_a_permitted_peer(self):
        t = self.full_allocation()
        self.bind_and_relay(t, [0x4001, 0x4002, 0x4003])

    def test_refused_binds_do_not_fill_the_channel_table(self):
        t = self.full_allocation()
        for i in range(64):  # as many refused binds as there are channel slots
            self.assertEqual(error(t.channel_bind(0x4100 + i, ("127.0.2.%d" % (i + 2), 9))), 508)
        self.bind_and_relay(t, [0x4002, 0x4003, 0x4004])


class ReservedPortReportsExternalIp(unittest.TestCase):
    """Review item 6: an Allocate with a RESERVATION-TOKEN reported the
    internal relay address in XOR-RELAYED-ADDRESS, not relay.external_ip."""

    def test_reserved_allocation_reports_external_ip(self):
        port = free_port()
        relay = ('relay = { ip = [ "127.0.0.1" ]; external_ip = [ "198.51.100.7" ]; '
                 'min_port = %d; max_port = %d; };')
        start(self, turn_conf(port, relay=relay))
        t = client(self, "127.0.0.1", port)
        r = t.allocate(extra=[attr(A_EVEN, b"\x80")])
        self.assertEqual(r["cls"], 2, error(r))
        ip, even = t.relayed[0]
        self.assertEqual(ip, "198.51.100.7")
        self.assertEqual(even % 2, 0)
        token = r["attrs"][A_TOKEN][0]
        self.assertEqual(len(token), 8)
        t2 = client(self, "127.0.0.1", port)  # another 5-tuple
        r2 = t2.allocate(extra=[attr(A_TOKEN, token)])
        self.assertEqual(r2["cls"], 2, error(r2))
        self.assertEqual(t2.relayed[0], ("198.51.100.7", even + 1))


class Ipv6PeerForms(unittest.TestCase):
    """Review item 7: the local-use NAT64 prefix 64:ff9b:1::/48 (RFC 8215) was
    not reduced to its IPv4 address, and a peers.allow entry matching an IPv6
    form (64:ff9b::/96, 2000::/3 over 6to4 and Teredo) admitted the denied
    IPv4 address inside it."""

    def server(self, peers):
        port = free_port(hosts=("::1",))
        listen = '{ proto = "udp"; ip = "::1"; port = %d; }' % port
        relay = 'relay = { ip = [ "::1" ]; min_port = %d; max_port = %d; };'
        start(self, turn_conf(port, peers=peers, relay=relay, listen=listen))
        t = client(self, "::1", port)
        r = t.allocate(extra=[attr(A_RAF, b"\x02\0\0\0")])  # an IPv6 relay
        self.assertEqual(r["cls"], 2, error(r))
        self.assertEqual(t.relayed[0][0], "::1")
        return t

    def test_local_use_nat64_of_denied_ipv4_refused_by_default(self):
        t = self.server(peers="")
        for peer in ("64:ff9b:1::a9fe:a9fe",   # 169.254.169.254, /96 layout
                     "64:ff9b:1::a00:1"):      # 10.0.0.1
            self.assertEqual(error(t.permission((peer, 9))), 403, peer)
        self.assertEqual(t.permission(("2606:4700::1111", 9))["cls"], 2)

    def test_allow_list_over_ipv6_form_does_not_admit_denied_ipv4(self):
        t = self.server(peers='peers = { allow = [ "64:ff9b::/96", "2000::/3" ]; };')
        for peer in ("64:ff9b::a00:1",            # NAT64 of 10.0.0.1
                     "2002:a9fe:a9fe::1",         # 6to4 of 169.254.169.254
                     "2001:0:4136:e378:8000:63bf:f5ff:fffe"):  # Teredo, client 10.0.0.1
            self.assertEqual(error(t.permission((peer, 9))), 403, peer)
        r = t.permission(("2606:4700::1111", 9))
        self.assertEqual(r["cls"], 2, error(r))


def client_hello():
    """The bytes of a real TLS ClientHello (nothing is sent anywhere)."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = ctx.wrap_bio(incoming, outgoing)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return outgoing.read()


class TlsHandshakeDeadline(unittest.TestCase):
    """Review item 9: limits.handshake_timeout was an inactivity timeout, so a
    ClientHello trickled one byte every 1.5 s outlived a 2 s limit."""

    def test_trickled_client_hello_closed_at_the_deadline(self):
        d = temp_dir()
        cert, key = tls_files(d)
        port = free_port(kinds=(socket.SOCK_STREAM,))
        listen = '{ proto = "tls"; ip = "127.0.0.1"; port = %d; }' % port
        extra = ('tls = { cert = "%s"; key = "%s"; };\nlimits = { handshake_timeout = 2; };'
                 % (cert, key))
        start(self, conf(port, extra, listen=listen))
        hello = client_hello()
        self.assertGreater(len(hello), 10)
        s = socket.create_connection(("127.0.0.1", port), timeout=3)
        self.addCleanup(s.close)
        t0 = time.time()
        closed_at = None
        for i in range(4):  # bytes at 0, 1.5, 3, 4.5 s: about 6 s at most
            try:
                s.sendall(hello[i:i + 1])
            except OSError:
                closed_at = time.time() - t0
                break
            s.settimeout(1.5)
            try:
                while True:
                    data = s.recv(4096)  # an alert, maybe, then the close
                    if not data:
                        closed_at = time.time() - t0
                        break
            except socket.timeout:
                pass
            except OSError:
                closed_at = time.time() - t0
            if closed_at is not None:
                break
        self.assertIsNotNone(closed_at, "still open %.1f s after connect" % (time.time() - t0))
        self.assertLess(closed_at, 3.5)


class DtlsIdleNotKeptBySpoofedDatagrams(unittest.TestCase):
    """Review item 10: the DTLS idle deadline was pushed forward before a
    datagram was authenticated, so datagrams spoofed from the client's address
    kept a dead session alive."""

    def test_spoofed_records_do_not_keep_session(self):
        d = temp_dir()
        cert, key = tls_files(d)
        port = free_port(kinds=(socket.SOCK_DGRAM,))
        mport = free_port(kinds=(socket.SOCK_STREAM,))
        sport = free_port(kinds=(socket.SOCK_DGRAM,))
        listen = '{ proto = "dtls"; ip = "127.0.0.1"; port = %d; }' % port
        extra = ('tls = { cert = "%s"; key = "%s"; };\nlimits = { idle_timeout = 2; };\n'
                 'metrics = { ip = "127.0.0.1"; port = %d; };' % (cert, key, mport))
        start(self, conf(port, extra, listen=listen))
        url = "http://127.0.0.1:%d/metrics" % mport

        def sessions():
            with urllib.request.urlopen(url, timeout=5) as r:
                return total(parse_metrics(r.read().decode())[0], "tern_sessions", transport="dtls")

        # One Binding over a real DTLS session from 127.0.0.1:sport, then the
        # client dies without a close_notify, leaving the session on the
        # server. (ternc cannot do this: it always ends with SSL_shutdown, a
        # close_notify that ends the session at once.)
        cli = subprocess.Popen(["openssl", "s_client", "-dtls1_2", "-quiet",
                                "-connect", "127.0.0.1:%d" % port, "-bind", "127.0.0.1:%d" % sport],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: (cli.poll() is None and cli.kill(), cli.wait(),
                                 cli.stdin.close(), cli.stdout.close()))
        msg, tid = request()
        cli.stdin.write(msg)
        cli.stdin.flush()
        ready, _, _ = select.select([cli.stdout], [], [], 5)
        answer = os.read(cli.stdout.fileno(), 4096) if ready else b""
        self.assertGreaterEqual(len(answer), 20, "no Binding answer over DTLS")
        self.assertEqual((parse(answer)["cls"], parse(answer)["tid"]), (2, tid))
        cli.kill()  # SIGKILL: no close_notify
        cli.wait()
        t_last = time.time()  # no real record after this
        self.assertEqual(sessions(), 1)

        spoof = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(spoof.close)
        spoof.bind(("127.0.0.1", sport))
        gone_at = None
        seen = []
        for _ in range(8):  # every 0.5 s for 4 s
            body = os.urandom(40)
            record = struct.pack("!BHH", 23, 0xFEFD, 1) + os.urandom(6) + struct.pack("!H", len(body)) + body
            spoof.sendto(record, ("127.0.0.1", port))
            n = sessions()
            seen.append((round(time.time() - t_last, 1), n))
            if n == 0 and gone_at is None:
                gone_at = time.time() - t_last
            time.sleep(0.5)
        self.assertIsNotNone(gone_at, "DTLS session still counted while spoofed records flow: %s" % seen)
        self.assertLess(gone_at, 3.2, seen)


class RedisQuotaDoesNotWrap(unittest.TestCase):
    """Review item 11: a per-realm user-quota of 4294967296 from Redis wrapped
    to 0, i.e. unlimited, instead of being ignored."""

    def test_quota_beyond_32_bits_ignored_config_applies(self):
        redis = RedisServer().start()
        self.addCleanup(redis.cleanup)
        port = free_port()
        srv = start(self, redis_conf(port, redis, limits="user_quota = 1;", cache_ttl=1))
        redis.cmd("SET", "turn/realm/test.example/user-quota", "4294967296")
        deadline = time.time() + 3
        while time.time() < deadline and "4294967296" not in srv.stderr():
            time.sleep(0.1)
        time.sleep(0.3)  # the other worker polls too
        first = client(self, "127.0.0.1", port)
        r = first.allocate()
        self.assertEqual(r["cls"], 2, error(r))
        second = client(self, "127.0.0.1", port)
        self.assertEqual(error(second.allocate()), 486)
        lines = [l for l in srv.stderr().splitlines() if "user-quota" in l and "4294967296" in l]
        self.assertEqual(len(lines), 1, lines)


if __name__ == "__main__":
    unittest.main()
