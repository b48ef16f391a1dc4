"""TURN end to end with the project's own client: every method, every error,
lifetimes, quotas, bandwidth, peer policy, over UDP, TCP and TLS."""
import hashlib
import os
import socket
import struct
import tempfile
import time
import unittest

from ternd import Ternd, conf, free_port, attr, error_code, parse, tls_files, temp_dir
from turnclient import (Turn, build, check_integrity, rest_credentials, xor_addr, long_term_key,
                        ALLOCATE, REFRESH, CREATE_PERMISSION, CHANNEL_BIND,
                        A_ERROR, A_NONCE, A_REALM, A_RELAYED, A_XMAPPED, A_LIFETIME, A_TOKEN,
                        A_EVEN, A_RAF, A_AAF, A_ADDR_ERR, A_TRANSPORT, A_USERNAME, A_USERHASH,
                        A_PWALG, A_PWALGS, A_MI256, A_UNKNOWN)

USERS = 'users = ( { user = "alice"; password = "secret"; }, { user = "bob"; password = "hunter2"; } )'


def turn_conf(port, extra="", limits="", peers='peers = { allow_loopback = true; };',
              relay='relay = { ip = [ "127.0.0.1", "::1" ]; min_port = %d; max_port = %d; };',
              auth_extra='secrets = [ "shared", "older" ];', listen=None):
    lo = free_port(kinds=(socket.SOCK_DGRAM,))
    if "%d" in relay:
        relay = relay % (lo, lo + 199) if lo + 199 < 65536 else relay % (40000, 40199)
    text = "%s\nauth = { %s; %s };\n%s\nlimits = { %s };\n%s\n" % (relay, USERS, auth_extra, peers, limits, extra)
    return conf(port, text, listen=listen)


def error(r):
    return error_code(r["attrs"][A_ERROR][0]) if r and A_ERROR in r["attrs"] else None


def udp_peer(host="127.0.0.1"):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((host, 0))
    s.settimeout(2)
    return s


class TurnBasics(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.port = free_port(hosts=("127.0.0.1", "::1"))
        listen = ('{ proto = "udp"; ip = "127.0.0.1"; port = %d; }, { proto = "tcp"; ip = "127.0.0.1"; port = %d; },'
                  '{ proto = "udp"; ip = "::1"; port = %d; }' % ((cls.port,) * 3))
        cls.srv = Ternd(turn_conf(cls.port, listen=listen)).__enter__()

    @classmethod
    def tearDownClass(cls):
        assert cls.srv.stop() == 0

    def client(self, **kw):
        t = Turn(kw.pop("host", "127.0.0.1"), self.port, **kw)
        self.addCleanup(t.close)
        return t

    def test_allocate_challenge_then_success(self):
        t = self.client()
        msg, tid = build(ALLOCATE, [attr(A_TRANSPORT, b"\x11\0\0\0")])
        r = t.exchange(msg, tid)
        self.assertEqual(error(r), 401)
        self.assertEqual(r["attrs"][A_REALM][0], b"test.example")
        self.assertTrue(r["attrs"][A_NONCE][0].startswith(b"obMatJos2"))
        r = t.allocate()
        self.assertEqual(r["cls"], 2, error(r))
        self.assertTrue(check_integrity(r["raw"], t.key))
        self.assertEqual(struct.unpack("!I", r["attrs"][A_LIFETIME][0])[0], 600)
        from ternd import xaddr
        self.assertEqual(xaddr(r["attrs"][A_XMAPPED][0], r["tid"]), ("127.0.0.1", t.sock.getsockname()[1]))
        self.assertEqual(t.relayed[0][0], "127.0.0.1")

    def test_missing_transport_400_and_tcp_transport_442(self):
        t = self.client()
        t.allocate()  # learn a nonce; a second Allocate on the tuple would be 437
        t2 = self.client()
        t2.nonce = t.nonce
        self.assertEqual(error(t2.request(ALLOCATE, [])), 400)
        self.assertEqual(error(t2.request(ALLOCATE, [attr(A_TRANSPORT, b"\x06\0\0\0")])), 442)

    def test_second_allocate_437_but_retransmission_same_answer(self):
        t = self.client()
        t.allocate()
        msg, tid = build(ALLOCATE, [attr(A_TRANSPORT, b"\x11\0\0\0")] + t.auth_attrs(), t.key)
        r = t.exchange(msg, tid)
        self.assertEqual(error(r), 437)
        t3 = self.client()
        t3.request(ALLOCATE, [])  # nonce
        msg, tid = build(ALLOCATE, [attr(A_TRANSPORT, b"\x11\0\0\0")] + t3.auth_attrs(), t3.key)
        first = t3.exchange(msg, tid)
        again = t3.exchange(msg, tid)
        self.assertEqual(first["cls"], 2)
        self.assertEqual(first["raw"], again["raw"])

    def test_refresh_zero_deletes_allocation_and_retransmit_is_not_437(self):
        t = self.client()
        t.allocate()
        msg, tid = build(REFRESH, [attr(A_LIFETIME, b"\0\0\0\0")] + t.auth_attrs(), t.key)
        r1 = t.exchange(msg, tid)
        r2 = t.exchange(msg, tid)
        self.assertEqual(r1["cls"], 2)
        self.assertEqual(r1["raw"], r2["raw"])
        self.assertEqual(error(t.refresh(600)), 437)
        self.assertEqual(error(t.permission(("127.0.0.1", 9))), 437)

    def test_refresh_without_allocation_437(self):
        self.assertEqual(error(self.client().refresh(600)), 437)

    def test_permission_gates_data_both_ways(self):
        t = self.client()
        t.allocate()
        peer = udp_peer()
        peer.sendto(b"early", t.relayed[0])
        self.assertIsNone(t.recv_data(0.3))  # no permission yet: dropped
        t.send_indication(peer.getsockname(), b"nope")
        self.assertEqual(t.permission(peer.getsockname(), ("127.0.0.1", 9))["cls"], 2)
        t.send_indication(peer.getsockname(), b"hello peer")
        data, src = peer.recvfrom(100)
        self.assertEqual((data, src), (b"hello peer", t.relayed[0]))
        peer.sendto(b"hello client", t.relayed[0])
        kind, who, data = t.recv_data()
        self.assertEqual((kind, who, data), ("indication", peer.getsockname(), b"hello client"))
        peer.close()

    def test_channels(self):
        t = self.client()
        t.allocate()
        p1, p2 = udp_peer(), udp_peer()
        self.assertEqual(error(t.channel_bind(0x3FFF, p1.getsockname())), 400)
        self.assertEqual(error(t.channel_bind(0x7FFF, p1.getsockname())), 400)
        self.assertEqual(t.channel_bind(0x4001, p1.getsockname())["cls"], 2)
        self.assertEqual(t.channel_bind(0x4001, p1.getsockname())["cls"], 2)  # refresh
        self.assertEqual(error(t.channel_bind(0x4001, p2.getsockname())), 400)
        self.assertEqual(error(t.channel_bind(0x4002, p1.getsockname())), 400)
        for size in (1, 5, 100, 1200):
            payload = os.urandom(size)
            t.send_channel(0x4001, payload)
            self.assertEqual(p1.recvfrom(2000), (payload, t.relayed[0]))
            p1.sendto(payload[::-1], t.relayed[0])
            self.assertEqual(t.recv_data(), ("channel", 0x4001, payload[::-1]))
        p1.close()
        p2.close()

    def test_tcp_transport_channels_padded(self):
        t = self.client(transport="tcp")
        self.assertEqual(t.allocate()["cls"], 2)
        p = udp_peer()
        self.assertEqual(t.channel_bind(0x4abc, p.getsockname())["cls"], 2)
        for size in (1, 2, 3, 4, 5, 999):
            payload = os.urandom(size)
            t.send_channel(0x4abc, payload)
            self.assertEqual(p.recvfrom(2000)[0], payload)
            p.sendto(payload, t.relayed[0])
            self.assertEqual(t.recv_data(), ("channel", 0x4abc, payload))
        p.close()

    def test_tcp_client_gets_packets_without_nagle_delay(self):
        """Relayed packets go out to a TCP client at once. With Nagle's
        algorithm on ternd's socket, a packet written while the previous one
        was not yet acknowledged waited for the client's delayed ACK (up to
        40 ms): media in bursts (a video frame is several packets) to a
        client that also sends (its stack then delays ACKs)."""
        t = self.client(transport="tcp")
        self.assertEqual(t.allocate()["cls"], 2)
        p = udp_peer()
        self.addCleanup(p.close)
        self.assertEqual(t.channel_bind(0x4abd, p.getsockname())["cls"], 2)
        delays = []
        for i in range(12):
            t.send_channel(0x4abd, b"e%d" % i)  # the client talks: its ACKs are delayed
            self.assertEqual(p.recvfrom(100)[0], b"e%d" % i)
            sent = time.monotonic()
            for k in range(3):  # a burst, each packet its own write in ternd
                p.sendto(b"%d-%d" % (i, k) + bytes(200), t.relayed[0])
                time.sleep(0.002)
            for k in range(3):
                self.assertEqual(t.recv_data(), ("channel", 0x4abd, b"%d-%d" % (i, k) + bytes(200)))
            delays.append(time.monotonic() - sent)
        delays.sort()
        self.assertLess(delays[len(delays) // 2], 0.01, "median %.1f ms" % (delays[len(delays) // 2] * 1000))

    def test_ipv6_client_and_dual_stack(self):
        t = self.client(host="::1")
        r = t.allocate(extra=[attr(A_AAF, b"\x02\0\0\0")])
        self.assertEqual(r["cls"], 2, error(r))
        fams = sorted(":" in a[0] for a in t.relayed)
        self.assertEqual(fams, [False, True])
        p6 = udp_peer("::1")
        self.assertEqual(t.permission(p6.getsockname()[:2])["cls"], 2)
        t.send_indication(p6.getsockname()[:2], b"v6")
        self.assertEqual(p6.recvfrom(100)[0], b"v6")
        p6.close()

    def test_requested_family_ipv6_and_conflicts(self):
        t = self.client()
        r = t.allocate(extra=[attr(A_RAF, b"\x02\0\0\0")])
        self.assertEqual(r["cls"], 2)
        self.assertEqual(t.relayed[0][0], "::1")
        self.assertEqual(error(t.permission(("8.8.8.8", 53))), 443)  # v4 peer, v6 relay
        t2 = self.client()
        r = t2.allocate(extra=[attr(A_RAF, b"\x02\0\0\0"), attr(A_AAF, b"\x02\0\0\0")])
        self.assertEqual(error(r), 400)
        self.assertEqual(error(t2.allocate(extra=[attr(A_RAF, b"\x07\0\0\0")])), 440)

    def test_dont_fragment_accepted(self):
        t = self.client()
        r = t.allocate(extra=[attr(0x001A, b"")])
        self.assertEqual(r["cls"], 2, error(r))

    def test_even_port_and_reservation(self):
        t = self.client()
        r = t.allocate(extra=[attr(A_EVEN, b"\x80")])
        self.assertEqual(r["cls"], 2, error(r))
        port = t.relayed[0][1]
        self.assertEqual(port % 2, 0)
        token = r["attrs"][A_TOKEN][0]
        t2 = self.client()
        r2 = t2.allocate(extra=[attr(A_TOKEN, token)])
        self.assertEqual(r2["cls"], 2, error(r2))
        self.assertEqual(t2.relayed[0][1], port + 1)
        t3 = self.client()
        self.assertEqual(error(t3.allocate(extra=[attr(A_TOKEN, token)])), 508)  # used up
        self.assertEqual(error(t3.allocate(extra=[attr(A_TOKEN, token), attr(A_EVEN, b"\0")])), 400)

    def test_wrong_password_and_unknown_user_401(self):
        t = self.client(password="wrong")
        self.assertEqual(error(t.allocate()), 401)
        t = self.client(user="mallory")
        self.assertEqual(error(t.allocate()), 401)

    def test_other_user_on_allocation_441(self):
        t = self.client()
        t.allocate()
        t.user, t.key = "bob", long_term_key("bob", "test.example", "hunter2")
        self.assertEqual(error(t.refresh(600)), 441)

    def test_rest_credentials_with_rotation_and_expiry(self):
        for secret in ("shared", "older"):
            user, pw = rest_credentials(secret)
            t = self.client(user=user, password=pw)
            self.assertEqual(t.allocate()["cls"], 2, secret)
        user, pw = rest_credentials("shared", ttl=-10)
        self.assertEqual(error(self.client(user=user, password=pw).allocate()), 401)
        user, pw = rest_credentials("not-configured")
        self.assertEqual(error(self.client(user=user, password=pw).allocate()), 401)

    def test_sha256_integrity_and_password_algorithm(self):
        t = self.client()
        t.request(ALLOCATE, [])
        algs = struct.pack("!HHHH", 2, 0, 1, 0)
        key = long_term_key("alice", "test.example", "secret", sha256=True)
        attrs = [attr(A_TRANSPORT, b"\x11\0\0\0"), attr(A_PWALGS, algs), attr(A_PWALG, b"\0\x02\0\0")]
        msg, tid = build(ALLOCATE, attrs + t.auth_attrs(), key, sha256=True)
        r = t.exchange(msg, tid)
        self.assertEqual(r["cls"], 2, error(r))
        self.assertIn(A_MI256, r["attrs"])
        self.assertTrue(check_integrity(r["raw"], key, sha256=True))
        # a tampered algorithm list is a downgrade attempt: 400
        t2 = self.client()
        t2.request(ALLOCATE, [])
        bad = [attr(A_TRANSPORT, b"\x11\0\0\0"), attr(A_PWALGS, struct.pack("!HH", 1, 0)), attr(A_PWALG, b"\0\x01\0\0")]
        msg, tid = build(ALLOCATE, bad + t2.auth_attrs(), t2.key)
        self.assertEqual(error(t2.exchange(msg, tid)), 400)

    def test_userhash(self):
        t = self.client()
        t.request(ALLOCATE, [])
        uh = hashlib.sha256(b"alice:test.example").digest()
        attrs = [attr(A_TRANSPORT, b"\x11\0\0\0"), attr(A_USERHASH, uh), attr(A_REALM, b"test.example"),
                 attr(A_NONCE, t.nonce)]
        msg, tid = build(ALLOCATE, attrs, t.key)
        r = t.exchange(msg, tid)
        self.assertEqual(r["cls"], 2, error(r))

    def test_unknown_required_attribute_420(self):
        t = self.client()
        r = t.request(ALLOCATE, [attr(A_TRANSPORT, b"\x11\0\0\0"), attr(0x7ABC, b"x")])
        self.assertEqual(error(r), 420)
        self.assertEqual(r["attrs"][A_UNKNOWN][0][:2], b"\x7a\xbc")

    def test_malformed_auth_400(self):
        t = self.client()
        t.request(ALLOCATE, [])
        msg, tid = build(ALLOCATE, [attr(A_TRANSPORT, b"\x11\0\0\0"), attr(A_USERNAME, b"alice")], t.key)
        self.assertEqual(error(t.exchange(msg, tid)), 400)  # no REALM, no NONCE


class PeerPolicy(unittest.TestCase):
    """Safe by default: loopback, private, link-local and friends are refused."""

    def test_denied_peers_403(self):
        port = free_port()
        text = turn_conf(port, peers="")
        with Ternd(text):
            t = Turn("127.0.0.1", port)
            self.addCleanup(t.close)
            self.assertEqual(t.allocate(extra=[attr(A_AAF, b"\x02\0\0\0")])["cls"], 2)
            for peer in ("127.0.0.1", "0.0.0.0", "::ffff:127.0.0.1", "::ffff:0:7f00:1", "::127.0.0.1",
                         "::ffff:0.0.0.0", "10.0.0.1", "192.168.1.1", "169.254.169.254", "fe80::1",
                         "::1", "::", "224.0.0.1", "64:ff9b::7f00:1"):
                self.assertEqual(error(t.permission((peer, 5000))), 403, peer)
                self.assertEqual(error(t.channel_bind(0x4100, (peer, 5000))), 403, peer)
            self.assertEqual(t.permission(("8.8.8.8", 53))["cls"], 2)

    def test_deny_list_wins_over_allow(self):
        port = free_port()
        text = turn_conf(port, peers='peers = { allow_loopback = true; allow = [ "10.0.0.0/8" ]; deny = [ "10.0.0.5", "127.0.0.2/32" ]; };')
        with Ternd(text):
            t = Turn("127.0.0.1", port)
            self.addCleanup(t.close)
            t.allocate()
            self.assertEqual(t.permission(("10.1.2.3", 1))["cls"], 2)
            self.assertEqual(error(t.permission(("10.0.0.5", 1))), 403)
            self.assertEqual(error(t.permission(("127.0.0.2", 1))), 403)
            self.assertEqual(t.permission(("127.0.0.1", 1))["cls"], 2)


class Limits(unittest.TestCase):
    def test_user_and_total_quota_486(self):
        port = free_port()
        with Ternd(turn_conf(port, limits="user_quota = 1; total_quota = 2;")):
            a1, a2 = Turn("127.0.0.1", port), Turn("127.0.0.1", port)
            b1, b2 = (Turn("127.0.0.1", port, user="bob", password="hunter2") for _ in range(2))
            for t in (a1, a2, b1, b2):
                self.addCleanup(t.close)
            self.assertEqual(a1.allocate()["cls"], 2)
            self.assertEqual(error(a2.allocate()), 486)
            self.assertEqual(b1.allocate()["cls"], 2)
            self.assertEqual(error(b2.allocate()), 486)  # total
            self.assertEqual(a1.refresh(0)["cls"], 2)
            self.assertEqual(a2.allocate()["cls"], 2)

    def test_permissions_and_channels_bounded_508(self):
        port = free_port()
        with Ternd(turn_conf(port)):
            t = Turn("127.0.0.1", port)
            self.addCleanup(t.close)
            t.allocate()
            peers = [("8.8.%d.%d" % (i // 200, i % 200 + 1), 9) for i in range(65)]
            self.assertEqual(t.permission(*peers[:32])["cls"], 2)
            self.assertEqual(t.permission(*peers[32:64])["cls"], 2)
            self.assertEqual(error(t.permission(peers[64])), 508)
            self.assertEqual(t.permission(peers[0])["cls"], 2)  # a refresh is not a new one
            for i in range(64):
                self.assertEqual(t.channel_bind(0x4000 + i, peers[i])["cls"], 2)
            self.assertEqual(error(t.channel_bind(0x4100, ("8.8.8.8", 10))), 508)

    def test_several_relay_ips_then_508_when_full(self):
        port = free_port(hosts=("127.0.0.1", "127.0.0.2"))
        lo = free_port(kinds=(socket.SOCK_DGRAM,), hosts=("127.0.0.1", "127.0.0.2"))
        relay = 'relay = { ip = [ "127.0.0.1", "127.0.0.2" ]; min_port = %d; max_port = %d; };' % (lo, lo + 1)
        with Ternd(turn_conf(port, relay=relay)):
            clients, seen = [], set()
            for _ in range(4):  # two ports on each of two addresses
                t = Turn("127.0.0.1", port)
                self.addCleanup(t.close)
                clients.append(t)
                self.assertEqual(t.allocate()["cls"], 2)
                seen.add(t.relayed[0])
            self.assertEqual({h for h, _ in seen}, {"127.0.0.1", "127.0.0.2"})
            self.assertEqual(len(seen), 4)
            t = Turn("127.0.0.1", port)
            self.addCleanup(t.close)
            self.assertEqual(error(t.allocate()), 508)
            self.assertEqual(clients[0].refresh(0)["cls"], 2)
            self.assertEqual(t.allocate()["cls"], 2)  # a freed port is found again

    def test_bandwidth_limit(self):
        port = free_port()
        with Ternd(turn_conf(port, limits="max_bps = 20000;")):
            t = Turn("127.0.0.1", port)
            self.addCleanup(t.close)
            t.allocate()
            p = udp_peer()
            p.settimeout(0.5)
            t.channel_bind(0x4001, p.getsockname())
            for _ in range(200):
                t.send_channel(0x4001, b"x" * 1000)
            got = 0
            try:
                while True:
                    p.recvfrom(2000)
                    got += 1
            except socket.timeout:
                pass
            self.assertGreater(got, 5)
            self.assertLess(got, 60)  # 200 KB offered, about 20 KB/s (+1 s burst) allowed
            p.close()

    def test_lifetimes_expire_with_scaled_clock(self):
        port = free_port()
        # time_scale 200: 300 s permission = 1.5 s, max_lifetime 400 s = 2 s
        with Ternd(turn_conf(port, limits="time_scale = 200; max_lifetime = 400;")):
            t = Turn("127.0.0.1", port)
            self.addCleanup(t.close)
            r = t.allocate(lifetime=3600)
            self.assertEqual(struct.unpack("!I", r["attrs"][A_LIFETIME][0])[0], 400)
            p = udp_peer()
            t.permission(p.getsockname())
            p.sendto(b"in time", t.relayed[0])
            self.assertEqual(t.recv_data()[2], b"in time")
            time.sleep(1.7)
            p.sendto(b"too late", t.relayed[0])
            self.assertIsNone(t.recv_data(0.3))  # permission expired
            time.sleep(0.6)
            self.assertEqual(error(t.refresh(400)), 437)  # allocation expired
            p.close()

    def test_stale_nonce_438(self):
        port = free_port()
        with Ternd(turn_conf(port, auth_extra='nonce_lifetime = 1;')):
            t = Turn("127.0.0.1", port)
            self.addCleanup(t.close)
            t.allocate()
            old = t.nonce
            time.sleep(2.2)
            msg, tid = build(REFRESH, [attr(A_LIFETIME, struct.pack("!I", 600))] + t.auth_attrs(), t.key)
            r = t.exchange(msg, tid)
            self.assertEqual(error(r), 438)
            self.assertNotEqual(r["attrs"][A_NONCE][0], old)
            self.assertEqual(t.refresh(600)["cls"], 2)  # retried with the new nonce

    def test_unauthenticated_flood_is_rate_limited(self):
        port = free_port(hosts=("127.0.0.1", "127.0.0.3"))
        with Ternd(turn_conf(port, limits="unauth_rate = 5;")) as srv:
            flood = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            flood.bind(("127.0.0.3", 0))
            flood.settimeout(0.3)
            for i in range(300):
                msg, _ = build(ALLOCATE, [attr(A_TRANSPORT, b"\x11\0\0\0"), attr(A_USERNAME, b"alice"),
                                          attr(A_REALM, b"test.example"), attr(A_NONCE, b"x" * 36)], b"k" * 16)
                flood.sendto(msg, ("127.0.0.1", port))
            answers = 0
            try:
                while True:
                    flood.recvfrom(2000)
                    answers += 1
            except socket.timeout:
                pass
            self.assertLessEqual(answers, 15)
            flood.close()
            t = Turn("127.0.0.1", port)
            self.addCleanup(t.close)
            self.assertEqual(t.allocate()["cls"], 2)  # others are still served
            self.assertTrue(srv.alive())


class ExternalAndTls(unittest.TestCase):
    def test_external_ip_reported(self):
        port = free_port()
        relay = 'relay = { ip = [ "127.0.0.1" ]; external_ip = [ "203.0.113.7" ]; min_port = 42000; max_port = 42199; };'
        with Ternd(turn_conf(port, relay=relay)):
            t = Turn("127.0.0.1", port)
            self.addCleanup(t.close)
            self.assertEqual(t.allocate()["cls"], 2)
            self.assertEqual(t.relayed[0][0], "203.0.113.7")
            self.assertTrue(42000 <= t.relayed[0][1] <= 42199)

    def test_tls_transport(self):
        d = temp_dir()
        cert, key = tls_files(d)
        port = free_port()
        listen = '{ proto = "tls"; ip = "127.0.0.1"; port = %d; }' % port
        with Ternd(turn_conf(port, extra='tls = { cert = "%s"; key = "%s"; };' % (cert, key), listen=listen)):
            t = Turn("127.0.0.1", port, transport="tls")
            self.addCleanup(t.close)
            self.assertEqual(t.allocate()["cls"], 2)
            p = udp_peer()
            t.channel_bind(0x4010, p.getsockname())
            t.send_channel(0x4010, b"over tls")
            self.assertEqual(p.recvfrom(100)[0], b"over tls")
            p.sendto(b"back", t.relayed[0])
            self.assertEqual(t.recv_data(), ("channel", 0x4010, b"back"))
            p.close()

    def test_closing_tcp_connection_deletes_allocation(self):
        port = free_port()
        with Ternd(turn_conf(port, limits="user_quota = 1;")):
            t = Turn("127.0.0.1", port, transport="tcp")
            self.assertEqual(t.allocate()["cls"], 2)
            t.close()
            time.sleep(0.3)
            t2 = Turn("127.0.0.1", port, transport="tcp")
            self.addCleanup(t2.close)
            self.assertEqual(t2.allocate()["cls"], 2)  # quota freed by the close


if __name__ == "__main__":
    unittest.main()
