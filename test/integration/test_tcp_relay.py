"""TURN TCP allocations (RFC 6062) end to end with the project's own client:
Allocate TCP, Connect, ConnectionBind, ConnectionAttempt, every error path,
timers, back-pressure and metrics, over TCP and TLS client connections."""
import os
import socket
import struct
import threading
import time
import unittest
import sys
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "soak"))
from procfs import rss_kib  # noqa: E402
from ternd import Ternd, conf, free_port, attr, error_code, tls_files, temp_dir, wait_closed
from turnclient import Turn, A_ERROR, A_CONNECTION_ID, A_RAF, CONNECTION_BIND, build

USERS = 'users = ( { user = "alice"; password = "secret"; }, { user = "bob"; password = "hunter2"; } )'


def tcp_conf(port, limits="time_scale = 10;", peers='peers = { allow_loopback = true; deny = [ "127.0.0.2" ]; };',
             listen=None, extra=""):
    lo = free_port(kinds=(socket.SOCK_STREAM,), hosts=("127.0.0.1", "::1"))
    hi = min(lo + 199, 65535)
    text = ('relay = { ip = [ "127.0.0.1", "::1" ]; min_port = %d; max_port = %d; };\n'
            'auth = { %s; };\n%s\nlimits = { %s };\n%s\n' % (lo, hi, USERS, peers, limits, extra))
    return conf(port, text, listen=listen)


def error(r):
    return error_code(r["attrs"][A_ERROR][0]) if r and A_ERROR in r["attrs"] else None


class Peer:
    """A TCP peer listening on loopback; accepted sockets in self.conns."""

    def __init__(self, host="127.0.0.1"):
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind((host, 0))
        self.lsock.listen(16)
        self.lsock.settimeout(3)
        self.addr = self.lsock.getsockname()

    def accept(self):
        c, _ = self.lsock.accept()
        c.settimeout(5)
        return c

    def close(self):
        self.lsock.close()


def recv_exact(sock, n, timeout=10):
    sock.settimeout(timeout)
    out = bytearray()
    while len(out) < n:
        b = sock.recv(min(65536, n - len(out)))
        if not b:
            break
        out += b
    return bytes(out)


def both_ways(test, d, ps, n):
    """n random bytes from the client's data connection to the peer and n back, checked."""
    up, down = os.urandom(n), os.urandom(n)
    got = {}
    th = threading.Thread(target=lambda: got.setdefault("peer", recv_exact(ps, len(up))))
    th.start()
    d.sock.sendall(up)
    ps.sendall(down)
    test.assertEqual(recv_exact(d.sock, len(down)), down)
    th.join(15)
    test.assertEqual(got.get("peer"), up)


class TcpRelayBase(unittest.TestCase):
    transport = "tcp"

    @classmethod
    def listen(cls, port):
        return None

    @classmethod
    def setUpClass(cls):
        cls.port = free_port()
        cls.mport = free_port(kinds=(socket.SOCK_STREAM,))
        extra = 'metrics = { ip = "127.0.0.1"; port = %d; };' % cls.mport + cls.extra_conf()
        cls.srv = Ternd(tcp_conf(cls.port, listen=cls.listen(cls.port), extra=extra)).__enter__()

    @classmethod
    def extra_conf(cls):
        return ""

    @classmethod
    def tearDownClass(cls):
        assert cls.srv.stop() == 0

    def client(self, transport=None, **kw):
        t = Turn("127.0.0.1", self.port, transport=transport or self.transport, timeout=3, **kw)
        self.addCleanup(t.close)
        return t

    def peer(self):
        p = Peer()
        self.addCleanup(p.close)
        return p

    def tcp_alloc(self):
        t = self.client()
        r = t.allocate_tcp()
        self.assertEqual(r["cls"], 2, error(r))
        return t

    def bind(self, control, cid):
        d = self.client()
        d.nonce = control.nonce
        r = d.connection_bind(cid)
        self.assertEqual(r["cls"], 2, error(r))
        return d

    def attempt(self):
        """A TCP allocation with a permission for 127.0.0.1, a peer connected to its relay
        address, and the ConnectionAttempt: (control, peer socket, (peer, connection id))."""
        t = self.tcp_alloc()
        t.permission(("127.0.0.1", 1))
        s = socket.create_connection(t.relayed[0], timeout=2)
        self.addCleanup(s.close)
        att = t.recv_attempt()
        self.assertIsNotNone(att)
        self.assertEqual(att[0], s.getsockname())
        return t, s, att

    def connected_pair(self):
        """An allocation, a peer connection made by Connect, and its bound data connection."""
        t = self.tcp_alloc()
        p = self.peer()
        self.assertEqual(t.permission(p.addr)["cls"], 2)
        r = t.connect(p.addr)
        self.assertEqual(r["cls"], 2, error(r))
        ps = p.accept()
        self.addCleanup(ps.close)
        d = self.bind(t, r["cid"])
        return t, d, ps


class TcpRelayTests(TcpRelayBase):
    @classmethod
    def listen(cls, port):
        return ('{ proto = "udp"; ip = "127.0.0.1"; port = %d; },'
                '{ proto = "tcp"; ip = "127.0.0.1"; port = %d; }' % (port, port))

    def test_allocate_tcp_over_tcp_succeeds(self):
        t = self.tcp_alloc()
        self.assertEqual(t.relayed[0][0], "127.0.0.1")
        s = socket.create_connection(t.relayed[0], timeout=2)  # the relay address listens
        s.close()

    def test_ipv6_tcp_relay(self):
        t = self.client()
        r = t.allocate_tcp(extra=[attr(A_RAF, b"\x02\0\0\0")])
        self.assertEqual(r["cls"], 2, error(r))
        self.assertEqual(t.relayed[0][0], "::1")
        p = socket.socket(socket.AF_INET6, socket.SOCK_STREAM)
        self.addCleanup(p.close)
        p.bind(("::1", 0))
        p.listen(1)
        p.settimeout(3)
        addr = p.getsockname()[:2]
        self.assertEqual(t.permission(addr)["cls"], 2)
        self.assertEqual(error(t.connect(("127.0.0.1", 9))), 443)  # not the relay's family
        r = t.connect(addr)
        self.assertEqual(r["cls"], 2, error(r))
        ps, _ = p.accept()
        self.addCleanup(ps.close)
        d = self.bind(t, r["cid"])
        both_ways(self, d, ps, 100000)

    def test_allocate_tcp_over_udp_442(self):
        t = self.client(transport="udp")
        self.assertEqual(error(t.allocate_tcp()), 442)

    def test_connect_bind_and_one_mebibyte_each_way(self):
        t, d, ps = self.connected_pair()
        both_ways(self, d, ps, 1 << 20)

    def test_connect_without_permission_403(self):
        t = self.tcp_alloc()
        p = self.peer()
        self.assertEqual(error(t.connect(p.addr)), 403)

    def test_connect_to_denied_peer_403(self):
        t = self.tcp_alloc()
        self.assertEqual(t.permission(("127.0.0.2", 9))["cls"], 3)
        # the policy refuses the peer before any permission is looked at
        self.assertEqual(error(t.connect(("127.0.0.2", 9))), 403)

    def test_connect_to_closed_port_447(self):
        t = self.tcp_alloc()
        port = free_port(kinds=(socket.SOCK_STREAM,))
        self.assertEqual(t.permission(("127.0.0.1", port))["cls"], 2)
        self.assertEqual(error(t.connect(("127.0.0.1", port))), 447)

    def test_connect_that_never_completes_447_after_30s(self):
        # A listener whose accept queue is full drops SYNs: the connect hangs
        # until ternd gives up (30 s of the TURN clock, 3 s at time_scale 10).
        lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(lsock.close)
        lsock.bind(("127.0.0.1", 0))
        lsock.listen(0)
        fillers = []
        for _ in range(3):
            f = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            f.setblocking(False)
            f.connect_ex(lsock.getsockname())
            fillers.append(f)
            self.addCleanup(f.close)
        time.sleep(0.2)
        t = self.tcp_alloc()
        t.sock.settimeout(10)
        self.assertEqual(t.permission(lsock.getsockname())["cls"], 2)
        start = time.time()
        self.assertEqual(error(t.connect(lsock.getsockname())), 447)
        self.assertGreater(time.time() - start, 2)

    def test_connect_twice_to_same_peer_446(self):
        t = self.tcp_alloc()
        p = self.peer()
        t.permission(p.addr)
        self.assertEqual(t.connect(p.addr)["cls"], 2)
        self.assertEqual(error(t.connect(p.addr)), 446)

    def test_connect_on_udp_allocation_400(self):
        t = self.client()
        self.assertEqual(t.allocate()["cls"], 2)
        p = self.peer()
        t.permission(p.addr)
        self.assertEqual(error(t.connect(p.addr)), 400)

    def test_connection_bind_unknown_id_400(self):
        t = self.tcp_alloc()
        d = self.client()
        d.nonce = t.nonce
        for cid in (0x00123456, 0x01654321, 0x7F000001):
            self.assertEqual(error(d.connection_bind(cid)), 400)

    def test_connection_bind_over_udp_or_on_the_control_connection_400(self):
        t = self.tcp_alloc()
        p = self.peer()
        t.permission(p.addr)
        cid = t.connect(p.addr)["cid"]
        self.assertEqual(error(t.connection_bind(cid)), 400)  # it has the allocation
        u = self.client(transport="udp")
        self.assertEqual(error(u.connection_bind(cid)), 400)
        self.bind(t, cid)

    def test_connection_bind_other_user_441(self):
        t = self.tcp_alloc()
        p = self.peer()
        t.permission(p.addr)
        cid = t.connect(p.addr)["cid"]
        d = self.client(user="bob", password="hunter2")
        self.assertEqual(error(d.connection_bind(cid)), 441)
        self.bind(t, cid)  # still there for its owner

    def test_connection_bind_unauthenticated_gets_challenge(self):
        t = self.tcp_alloc()
        p = self.peer()
        t.permission(p.addr)
        cid = t.connect(p.addr)["cid"]
        d = self.client()
        msg, tid = build(CONNECTION_BIND, [attr(A_CONNECTION_ID, struct.pack("!I", cid))])
        self.assertEqual(error(d.exchange(msg, tid)), 401)
        self.assertEqual(d.connection_bind(cid)["cls"], 2)

    def test_many_binds_across_workers(self):
        """Data connections land on either worker (SO_REUSEPORT): each is handed to the
        allocation's worker and relays."""
        t = self.tcp_alloc()
        peers = [self.peer() for _ in range(8)]
        for p in peers:
            t.permission(p.addr)
        for i, p in enumerate(peers):
            r = t.connect(p.addr)
            self.assertEqual(r["cls"], 2, error(r))
            ps = p.accept()
            self.addCleanup(ps.close)
            d = self.bind(t, r["cid"])
            msg = b"hello %d" % i
            d.sock.sendall(msg)
            self.assertEqual(recv_exact(ps, len(msg)), msg)
            ps.sendall(msg[::-1])
            self.assertEqual(recv_exact(d.sock, len(msg)), msg[::-1])

    def test_pipelined_binding_then_connection_bind_keeps_order(self):
        """A Binding answer still waiting to be written travels with a connection handed to
        another worker, and goes out before the ConnectionBind's answer."""
        t = self.tcp_alloc()
        for i in range(10):  # some land on the other worker (all ten on one: 1 in 1024)
            p = self.peer()
            t.permission(p.addr)
            cid = t.connect(p.addr)["cid"]
            ps = p.accept()
            self.addCleanup(ps.close)
            d = self.client()
            binding, btid = build(1, [])
            bind, ctid = build(CONNECTION_BIND, [attr(A_CONNECTION_ID, struct.pack("!I", cid))]
                               + t.auth_attrs(), t.key)
            d.sock.sendall(binding + bind)
            first, second = d.recv_raw(), d.recv_raw()
            self.assertEqual((first[8:20], first[0:2]), (btid, b"\x01\x01"))
            self.assertEqual((second[8:20], second[0:2]), (ctid, b"\x01\x0b"))
            d.sock.sendall(b"after %d" % i)
            self.assertEqual(recv_exact(ps, 7), b"after %d" % i)
        self.assertIn("to write)", self.srv.stderr())

    def test_peer_connects_with_permission_attempt_then_bind(self):
        t, s, att = self.attempt()
        s.sendall(b"early bytes")
        d = self.bind(t, att[1])
        self.assertEqual(recv_exact(d.sock, 11), b"early bytes")
        d.sock.sendall(b"back")
        self.assertEqual(recv_exact(s, 4), b"back")

    def test_peer_without_permission_refused(self):
        t = self.tcp_alloc()
        s = socket.create_connection(t.relayed[0], timeout=2)
        self.addCleanup(s.close)
        self.assertTrue(wait_closed(s, 3))
        self.assertIsNone(t.recv_attempt(timeout=0.5))

    def test_unbound_connection_closed_after_30s(self):
        # time_scale = 10: 30 s of the TURN clock are 3 s
        t, s, att = self.attempt()
        start = time.time()
        self.assertTrue(wait_closed(s, 8))
        self.assertGreater(time.time() - start, 2)
        d = self.client()
        d.nonce = t.nonce
        self.assertEqual(error(d.connection_bind(att[1])), 400)

    def test_closing_control_connection_closes_data_connections(self):
        t, d, ps = self.connected_pair()
        t.close()
        for s in (ps, d.sock):
            self.assertTrue(wait_closed(s, 3))

    def test_allocation_expiry_closes_data_connections(self):
        t, d, ps = self.connected_pair()
        self.assertEqual(t.refresh(0)["cls"], 2)
        for s in (ps, d.sock):
            self.assertTrue(wait_closed(s, 3))

    def test_peer_close_delivers_pending_bytes_then_closes(self):
        t, d, ps = self.connected_pair()
        data = os.urandom(200000)
        ps.sendall(data)
        ps.close()
        self.assertEqual(recv_exact(d.sock, len(data)), data)
        self.assertTrue(wait_closed(d.sock, 3))

    def test_slow_client_does_not_grow_memory(self):
        t, d, ps = self.connected_pair()
        d.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        ps.setblocking(False)
        chunk = b"x" * 65536
        before = rss_kib(self.srv.proc.pid)
        sent, deadline = 0, time.time() + 4
        while time.time() < deadline and sent < (64 << 20):
            try:
                sent += ps.send(chunk)
            except BlockingIOError:
                time.sleep(0.01)
        after = rss_kib(self.srv.proc.pid)
        # the peer is pushed back by TCP once ternd holds its high-water mark
        self.assertLess(sent, 32 << 20)
        self.assertLess(after - before, 8 * 1024, (before, after, sent))

class TcpRelayMetrics(TcpRelayBase):
    """On a server of its own: the session gauge sees no other test's connections."""

    def metrics(self):
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.mport, timeout=3) as f:
            return f.read().decode()

    def metric_sum(self, name, label=""):
        total = 0
        for line in self.metrics().splitlines():
            if line.startswith(name + "{") and label in line:
                total += float(line.rsplit(" ", 1)[1])
        return total

    def test_metrics_count_data_connections_and_bytes(self):
        base_sessions = self.metric_sum("tern_sessions", 'transport="%s"' % self.transport)
        base_bytes = self.metric_sum("tern_relay_bytes_total")
        t, d, ps = self.connected_pair()
        d.sock.sendall(b"z" * 5000)
        self.assertEqual(len(recv_exact(ps, 5000)), 5000)
        # the control and the data connection
        self.assertEqual(self.metric_sum("tern_sessions", 'transport="%s"' % self.transport),
                         base_sessions + 2)
        self.assertGreaterEqual(self.metric_sum("tern_relay_bytes_total"), base_bytes + 5000)
        d.close()
        self.assertTrue(wait_closed(ps, 3))
        time.sleep(0.2)
        self.assertEqual(self.metric_sum("tern_sessions", 'transport="%s"' % self.transport),
                         base_sessions + 1)


class TcpRelayOverTls(TcpRelayBase):
    transport = "tls"

    @classmethod
    def listen(cls, port):
        return '{ proto = "tls"; ip = "127.0.0.1"; port = %d; }' % port

    @classmethod
    def extra_conf(cls):
        cert, key = tls_files(temp_dir())
        return 'tls = { cert = "%s"; key = "%s"; };' % (cert, key)

    def test_connect_bind_and_one_mebibyte_each_way_over_tls(self):
        t, d, ps = self.connected_pair()
        both_ways(self, d, ps, 1 << 20)

    test_pipelined_binding_then_connection_bind_keeps_order = \
        TcpRelayTests.test_pipelined_binding_then_connection_bind_keeps_order
    test_peer_connects_with_permission_attempt_then_bind = \
        TcpRelayTests.test_peer_connects_with_permission_attempt_then_bind

    def test_many_tls_binds_across_workers(self):
        t = self.tcp_alloc()
        for i in range(6):
            p = self.peer()
            t.permission(p.addr)
            r = t.connect(p.addr)
            self.assertEqual(r["cls"], 2, error(r))
            ps = p.accept()
            self.addCleanup(ps.close)
            d = self.bind(t, r["cid"])
            d.sock.sendall(b"tls %d" % i)
            self.assertEqual(recv_exact(ps, 5), b"tls %d" % i)
            ps.sendall(b"ok")
            self.assertEqual(recv_exact(d.sock, 2), b"ok")


class TcpRelayIdle(TcpRelayBase):
    @classmethod
    def setUpClass(cls):
        cls.port = free_port()
        cls.srv = Ternd(tcp_conf(cls.port, limits="idle_timeout = 1;")).__enter__()

    def test_quiet_control_connection_of_tcp_allocation_stays(self):
        t, d, ps = self.connected_pair()
        time.sleep(2.5)  # beyond idle_timeout: only the data connection is busy
        both_ways(self, d, ps, 1000)
        self.assertEqual(t.refresh(600)["cls"], 2)

    def test_idle_connection_without_tcp_allocation_still_closed(self):
        t = self.client()
        self.assertEqual(t.allocate()["cls"], 2)
        self.assertTrue(wait_closed(t.sock, 4))


class TcpRelayBandwidth(TcpRelayBase):
    @classmethod
    def setUpClass(cls):
        cls.port = free_port()
        cls.mport = free_port(kinds=(socket.SOCK_STREAM,))
        cls.srv = Ternd(tcp_conf(cls.port, limits="max_bps = 100000; user_quota = 1;")).__enter__()

    def test_user_quota_counts_tcp_allocations(self):
        t = self.client(user="bob", password="hunter2")
        self.assertEqual(t.allocate_tcp()["cls"], 2)
        t2 = self.client(user="bob", password="hunter2")
        self.assertEqual(error(t2.allocate_tcp()), 486)

    def test_max_bps_limits_a_tcp_allocation(self):
        t, d, ps = self.connected_pair()
        data = os.urandom(300000)
        th = threading.Thread(target=lambda: d.sock.sendall(data))
        start = time.time()
        th.start()
        self.assertEqual(len(recv_exact(ps, len(data), timeout=20)), len(data))
        elapsed = time.time() - start
        th.join(5)
        # 300 kB at 100 kB/s with one second of burst: about two seconds
        self.assertGreater(elapsed, 1.5)


if __name__ == "__main__":
    unittest.main()
