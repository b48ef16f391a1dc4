"""Several realms (tenants) on one ternd: which realm a request lands in
(listener, TLS SNI, STUN ORIGIN, the Redis origin map, the allocation's own
realm, else the default), credentials that verify only in their own realm,
per-realm quotas and bandwidth, the realm label in metrics and ternctl,
realms in Redis written by coturn's turnadmin, a reload that adds a realm,
and the configuration errors of realms[]. Real ternd, real sockets."""
import hashlib
import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import unittest
import urllib.request

from ternd import Ternd, TERND, ROOT, BUILD, attr, conf, free_port, temp_dir
from turnclient import (Turn, rest_credentials, build, ALLOCATE, A_REALM, A_NONCE, A_TRANSPORT,
                        A_USERHASH)
from test_turn import error, udp_peer
from test_metrics import parse_metrics, total
from redisfix import RedisServer

TERNCTL = os.path.join(ROOT, BUILD, "ternctl")
DEFAULT = "test.example"  # ternd.conf()'s top-level realm: realm index 0
A, B = "a.example", "b.example"
HOST_A, HOST_B = "turn.a.example", "turn.b.example"
ORIGIN_A, ORIGIN_B = "https://a.example", "https://b.example"


# --- configuration -------------------------------------------------------------

def udp_listen(port, realm=None):
    return '{ proto = "udp"; ip = "127.0.0.1"; port = %d;%s }' % (
        port, ' realm = "%s";' % realm if realm else "")


def realm_entry(name, users=None, secrets=None, more=""):
    """One realms[] entry; users/secrets None leaves the key out (inherited)."""
    text = 'name = "%s"; ' % name
    if users is not None:
        text += "users = ( %s ); " % ", ".join(
            '{ user = "%s"; password = "%s"; }' % up for up in users)
    if secrets is not None:
        text += "secrets = [ %s ]; " % ", ".join('"%s"' % s for s in secrets)
    return "{ %s%s }" % (text, more)


# Realm A and B each have a user of their own (anna, bruno), a user named bob
# in both with different passwords, and a REST secret of their own; the top
# level (the default realm and anything a realm inherits) has alice and "s0".
REALM_A = realm_entry(A, users=[("anna", "pa"), ("bob", "pb-a")], secrets=["sa"],
                      more='hosts = [ "%s" ]; origins = [ "%s" ];' % (HOST_A, ORIGIN_A))
REALM_B = realm_entry(B, users=[("bruno", "pb"), ("bob", "pb-b")], secrets=["sb"],
                      more='hosts = [ "%s" ]; origins = [ "%s" ];' % (HOST_B, ORIGIN_B))


def realm_conf(port, realms, listen=None, extra="", auth="", limits=""):
    """ternd.conf() with top-level alice/secret and REST secret s0, relaying
    to loopback peers from 200 relay ports of 127.0.0.1, and realms[]."""
    lo = free_port(kinds=(socket.SOCK_DGRAM,))
    lo = lo if lo + 199 < 65536 else 40000
    text = ('auth = { users = ( { user = "alice"; password = "secret"; } ); secrets = [ "s0" ]; %s };\n'
            'limits = { %s };\n'
            'relay = { ip = [ "127.0.0.1" ]; min_port = %d; max_port = %d; };\n'
            'peers = { allow_loopback = true; };\n'
            'realms = ( %s );\n%s\n' % (auth, limits, lo, lo + 199, ",\n  ".join(realms), extra))
    listen = listen if listen is not None else udp_listen(port)
    return conf(port, text, listen=listen)


def self_signed(directory, cn):
    """A self-signed certificate and key whose subject is CN=cn (openssl CLI)."""
    cert, key = os.path.join(directory, cn + ".pem"), os.path.join(directory, cn + ".key")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=" + cn, "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    return cert, key


def peer_cn(t):
    """The subject CN of the certificate the server presented to t."""
    der = t.sock.getpeercert(binary_form=True)  # CERT_NONE: only the binary form is kept
    out = subprocess.run(["openssl", "x509", "-inform", "DER", "-noout", "-subject",
                          "-nameopt", "RFC2253"], input=der, capture_output=True, check=True)
    return re.search(r"CN=([^,\n]+)", out.stdout.decode()).group(1)


def wait_for(pred, seconds=5.0):
    end = time.time() + seconds
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


def scrape(mport):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport, timeout=5) as r:
        return parse_metrics(r.read().decode())[0]


def metrics_conf():
    """A metrics listener for realm_conf(extra=...), and its port."""
    mport = free_port(kinds=(socket.SOCK_STREAM,))
    return 'metrics = { ip = "127.0.0.1"; port = %d; };' % mport, mport


def redis_up_everywhere(mport):
    """Until a worker's Redis connection is up its requests stay in the
    default realm (Redis down: decided locally), and "redis: connected" is
    logged once for the process: every worker's gauge must say 1."""
    def up():
        ups = [v for (n, _), v in scrape(mport).items() if n == "tern_redis_up"]
        return bool(ups) and min(ups) == 1
    return wait_for(up, 10)


def wait_metric(test, mport, want, name, **labels):
    """Workers count on their own threads, maybe just after the reply the
    test saw: poll briefly for the figure."""
    got = None
    for _ in range(60):
        got = total(scrape(mport), name, **labels)
        if got == want:
            return
        time.sleep(0.05)
    test.assertEqual(got, want, "%s%s" % (name, labels))


def turnadmin(redis, *args):
    """coturn's own turnadmin writing its Redis schema (Debian package coturn)."""
    p = subprocess.run(["timeout", "20", "turnadmin"] + list(args) +
                       ["-N", "host=127.0.0.1 dbname=0 port=%d" % redis.port],
                       capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    return p


def reload(test, srv, text=None):
    """Rewrite srv's configuration (if text is given), SIGHUP, wait until applied."""
    if text is not None:
        with open(srv.conf, "w") as f:
            f.write(text)
    n = srv.stderr().count("reload: ")
    srv.proc.send_signal(signal.SIGHUP)
    test.assertTrue(wait_for(lambda: srv.stderr().count("reload: ") > n), srv.stderr())
    test.assertNotIn("reload refused", srv.stderr())


# --- clients ---------------------------------------------------------------------

class RealmCase(unittest.TestCase):
    """Clients closed by the test's cleanup, and the questions every test asks."""

    def client(self, port, **kw):
        t = Turn(kw.pop("host", "127.0.0.1"), port, **kw)
        self.addCleanup(t.close)
        return t

    def challenge(self, t):
        """The realm the first 401 to t names (an Allocate without credentials,
        with t's ORIGIN if it has one)."""
        r = t.request(ALLOCATE, [attr(A_TRANSPORT, b"\x11\0\0\0")], auth=False)
        self.assertEqual(error(r), 401)
        return r["attrs"][A_REALM][0].decode()

    def allocates(self, port, user, password, realm, **kw):
        """Allocate with credentials for realm: the response (200, 401, 486...)."""
        t = self.client(port, user=user, password=password, realm=realm, **kw)
        return t, t.allocate()

    def assert_allocates(self, port, user, password, realm, **kw):
        t, r = self.allocates(port, user, password, realm, **kw)
        self.assertEqual(r["cls"], 2, "%s in %s: %s" % (user, realm, error(r)))
        return t

    def assert_refused(self, port, user, password, realm, code=401, **kw):
        """Refused after credentials were sent (not the first challenge)."""
        t, r = self.allocates(port, user, password, realm, **kw)
        self.assertIsNotNone(t.nonce)
        self.assertEqual(error(r), code, "%s in %s" % (user, realm))
        return t, r

    def assert_relays(self, t, peer, channel=0x4001, tag=b"x", bind=True):
        """Data goes both ways through t's allocation and its channel to peer
        (bind=False: over the channel bound before)."""
        if bind:
            r = t.channel_bind(channel, peer.getsockname())
            self.assertEqual(r["cls"], 2, error(r))
        t.send_channel(channel, b"to peer " + tag)
        data, src = peer.recvfrom(2000)
        self.assertEqual(data, b"to peer " + tag)
        peer.sendto(b"to client " + tag, src)
        got = t.recv_data()
        self.assertIsNotNone(got, "nothing relayed back")
        self.assertEqual(got[2], b"to client " + tag)

    def peer(self):
        p = udp_peer()
        self.addCleanup(p.close)
        return p


# --- 1. by listener ----------------------------------------------------------------

class RealmByListener(RealmCase):
    """Listeners of realm A, B, C (inherits everything), D (`users = ();`) and
    one of no realm (the default)."""

    @classmethod
    def setUpClass(cls):
        cls.p0, cls.pa, cls.pb, cls.pc, cls.pd = (free_port() for _ in range(5))
        listen = ", ".join([udp_listen(cls.p0), udp_listen(cls.pa, A), udp_listen(cls.pb, B),
                            udp_listen(cls.pc, "c.example"), udp_listen(cls.pd, "d.example")])
        realms = [REALM_A, REALM_B, realm_entry("c.example"),
                  realm_entry("d.example", users=[], secrets=[])]
        cls.srv = Ternd(realm_conf(cls.p0, realms, listen=listen)).__enter__()

    @classmethod
    def tearDownClass(cls):
        assert cls.srv.stop() == 0

    def test_challenge_names_the_listeners_realm(self):
        for port, realm in ((self.p0, DEFAULT), (self.pa, A), (self.pb, B),
                            (self.pc, "c.example"), (self.pd, "d.example")):
            self.assertEqual(self.challenge(self.client(port)), realm)

    def test_listener_realm_wins_over_origin(self):
        # ORIGIN of B on A's listener: the listener decides (first match wins)
        self.assertEqual(self.challenge(self.client(self.pa, origin=ORIGIN_B)), A)

    def test_static_user_allocates_only_in_its_realm(self):
        self.assert_allocates(self.pa, "anna", "pa", A)
        self.assert_allocates(self.pb, "bruno", "pb", B)
        # the same credentials in the realm the other listener names
        self.assert_refused(self.pb, "anna", "pa", B)
        self.assert_refused(self.pa, "bruno", "pb", A)
        # or insisting on their own realm's name there: the key is not the listener realm's
        _, r = self.assert_refused(self.pb, "anna", "pa", A)
        self.assertEqual(r["attrs"][A_REALM][0].decode(), B)
        self.assert_refused(self.p0, "anna", "pa", DEFAULT)

    def test_same_user_name_in_two_realms_is_two_users(self):
        self.assert_allocates(self.pa, "bob", "pb-a", A)
        self.assert_allocates(self.pb, "bob", "pb-b", B)
        self.assert_refused(self.pa, "bob", "pb-b", A)
        self.assert_refused(self.pb, "bob", "pb-a", B)

    def test_rest_secret_authenticates_only_in_its_realm(self):
        for port, realm, good, bad in ((self.pa, A, "sa", "sb"), (self.pb, B, "sb", "sa")):
            user, pw = rest_credentials(good, name="rest")
            self.assert_allocates(port, user, pw, realm)
            user, pw = rest_credentials(bad, name="rest")
            self.assert_refused(port, user, pw, realm)
            user, pw = rest_credentials("s0", name="rest")  # the top level's: A and B have their own
            self.assert_refused(port, user, pw, realm)

    def test_userhash_is_per_realm(self):
        """USERHASH (RFC 8489 14.4) is SHA-256 of user:realm, so bob's hash in
        A names nobody in B even though B has a bob too."""
        def allocate_by_userhash(port, user, password, realm, hashed_realm):
            t = self.client(port, user=user, password=password, realm=realm)
            t.request(ALLOCATE, [])  # the nonce
            uh = hashlib.sha256(("%s:%s" % (user, hashed_realm)).encode()).digest()
            msg, tid = build(ALLOCATE, [attr(A_TRANSPORT, b"\x11\0\0\0"), attr(A_USERHASH, uh),
                                        attr(A_REALM, realm.encode()), attr(A_NONCE, t.nonce)], t.key)
            return t.exchange(msg, tid)
        self.assertEqual(allocate_by_userhash(self.pa, "bob", "pb-a", A, A)["cls"], 2)
        self.assertEqual(allocate_by_userhash(self.pb, "bob", "pb-b", B, B)["cls"], 2)
        self.assertEqual(error(allocate_by_userhash(self.pb, "bob", "pb-b", B, A)), 401)
        self.assertEqual(error(allocate_by_userhash(self.pb, "anna", "pa", B, A)), 401)

    def test_realm_without_users_inherits_the_top_level(self):
        self.assert_allocates(self.pc, "alice", "secret", "c.example")
        user, pw = rest_credentials("s0", name="rest")
        self.assert_allocates(self.pc, user, pw, "c.example")
        self.assert_refused(self.pa, "alice", "secret", A)  # A has users of its own

    def test_empty_users_list_means_none(self):
        self.assert_refused(self.pd, "alice", "secret", "d.example")
        user, pw = rest_credentials("s0", name="rest")
        self.assert_refused(self.pd, user, pw, "d.example")


# --- 2. by TLS SNI -------------------------------------------------------------------

def tls_key(files):
    return 'tls = { cert = "%s"; key = "%s"; };' % files


def tls_listen(port, realm=None):
    return udp_listen(port, realm).replace('"udp"', '"tls"')


class RealmBySni(RealmCase):
    """One TLS listener without a realm: the SNI name picks the realm and its
    certificate; realm C has a host but no certificate of its own. A second
    TLS listener belongs to realm A."""

    @classmethod
    def setUpClass(cls):
        d = temp_dir()
        top = self_signed(d, "default.test")
        cls.cert_a, cb = self_signed(d, HOST_A), self_signed(d, HOST_B)
        realms = [REALM_A[:-1] + tls_key(cls.cert_a) + " }", REALM_B[:-1] + tls_key(cb) + " }",
                  realm_entry("c.example", users=[("carl", "pc")], more='hosts = [ "turn.c.example" ];')]
        cls.port, cls.port_a = free_port(), free_port()
        listen = tls_listen(cls.port) + ", " + tls_listen(cls.port_a, A)
        cls.srv = Ternd(realm_conf(cls.port, realms, listen=listen, extra=tls_key(top))).__enter__()

    @classmethod
    def tearDownClass(cls):
        assert cls.srv.stop() == 0

    def tls(self, sni, **kw):
        return self.client(self.port, transport="tls", server_hostname=sni, **kw)

    def test_sni_of_a_realm_host_gets_its_certificate_and_realm(self):
        for sni, realm, user, pw in ((HOST_A, A, "anna", "pa"), (HOST_B, B, "bruno", "pb")):
            t = self.tls(sni)
            self.assertEqual(peer_cn(t), sni)
            self.assertEqual(self.challenge(t), realm)
            t = self.tls(sni, user=user, password=pw, realm=realm)
            self.assertEqual(t.allocate()["cls"], 2)
        # A's user on B's name: refused in B
        t = self.tls(HOST_B, user="anna", password="pa", realm=B)
        self.assertEqual(error(t.allocate()), 401)

    def test_sni_is_case_insensitive(self):
        t = self.tls("TURN.A.Example")
        self.assertEqual(peer_cn(t), HOST_A)
        self.assertEqual(self.challenge(t), A)

    def test_unknown_or_no_sni_gets_default_certificate_and_realm(self):
        for sni in ("other.example", None):
            t = self.tls(sni)
            self.assertEqual(peer_cn(t), "default.test")
            self.assertEqual(self.challenge(t), DEFAULT)
            t = self.tls(sni, user="alice", password="secret", realm=DEFAULT)
            self.assertEqual(t.allocate()["cls"], 2)

    def test_realm_host_without_certificate_keeps_default_certificate(self):
        t = self.tls("turn.c.example")
        self.assertEqual(peer_cn(t), "default.test")
        self.assertEqual(self.challenge(t), "c.example")
        t = self.tls("turn.c.example", user="carl", password="pc", realm="c.example")
        self.assertEqual(t.allocate()["cls"], 2)

    def test_sni_wins_over_origin(self):
        t = self.tls(HOST_A, origin=ORIGIN_B)
        self.assertEqual(self.challenge(t), A)

    def test_listener_realm_wins_over_sni(self):
        for sni in (HOST_B, None):
            t = self.client(self.port_a, transport="tls", server_hostname=sni)
            self.assertEqual(peer_cn(t), HOST_A)
            self.assertEqual(self.challenge(t), A)
        t = self.client(self.port_a, transport="tls", server_hostname=HOST_B, user="anna", password="pa",
                        realm=A)
        self.assertEqual(t.allocate()["cls"], 2)

    def test_realm_listener_with_own_certificate_needs_no_default_one(self):
        port = free_port()
        realms = [REALM_A[:-1] + tls_key(self.cert_a) + " }", REALM_B]
        with Ternd(realm_conf(port, realms, listen=tls_listen(port, A))):
            t = self.client(port, transport="tls")
            self.assertEqual(peer_cn(t), HOST_A)
            self.assertEqual(self.challenge(t), A)


# --- 3. by ORIGIN ----------------------------------------------------------------------

class RealmByOrigin(RealmCase):
    @classmethod
    def setUpClass(cls):
        cls.port = free_port()
        cls.srv = Ternd(realm_conf(cls.port, [REALM_A, REALM_B])).__enter__()

    @classmethod
    def tearDownClass(cls):
        assert cls.srv.stop() == 0

    def test_origin_picks_the_realm_and_none_the_default(self):
        self.assertEqual(self.challenge(self.client(self.port, origin=ORIGIN_A)), A)
        self.assertEqual(self.challenge(self.client(self.port, origin=ORIGIN_B)), B)
        self.assertEqual(self.challenge(self.client(self.port)), DEFAULT)
        self.assertEqual(self.challenge(self.client(self.port, origin="https://nobody.example")), DEFAULT)
        self.assert_allocates(self.port, "anna", "pa", A, origin=ORIGIN_A)
        self.assert_refused(self.port, "anna", "pa", B, origin=ORIGIN_B)
        self.assert_refused(self.port, "anna", "pa", DEFAULT)
        self.assert_allocates(self.port, "alice", "secret", DEFAULT)

    def test_allocation_keeps_its_realm_without_origin(self):
        t = self.assert_allocates(self.port, "anna", "pa", A, origin=ORIGIN_A)
        t.origin = None  # a client that sends ORIGIN with its Allocate only
        peer = self.peer()
        r = t.permission(peer.getsockname())
        self.assertEqual(r["cls"], 2, error(r))
        self.assertEqual(t.refresh(600)["cls"], 2)
        self.assert_relays(t, peer)
        # and an ORIGIN of another realm on that 5-tuple does not move it
        t.origin = ORIGIN_B
        self.assertEqual(t.refresh(600)["cls"], 2)


# --- 4. quotas, 5. bandwidth, 6. metrics and ternctl, per realm ------------------------------

class RealmLimits(RealmCase):
    """Realm A: user_quota 1, total_quota 2, max_bps 20000; realm B and the
    default realm: no limits (the top level's)."""

    def setUp(self):
        self.p0, self.pa, self.pb = free_port(), free_port(), free_port()
        self.mport = free_port(kinds=(socket.SOCK_STREAM,))
        self.sock = os.path.join(temp_dir(), "ternd.sock")
        listen = ", ".join([udp_listen(self.p0), udp_listen(self.pa, A), udp_listen(self.pb, B)])
        limits = 'limits = { user_quota = 1; total_quota = 2; max_bps = 20000; };'
        extra = ('metrics = { ip = "127.0.0.1"; port = %d; };\ncontrol = { path = "%s"; };'
                 % (self.mport, self.sock))
        self.srv = Ternd(realm_conf(self.p0, [REALM_A[:-1] + limits + " }", REALM_B],
                                    listen=listen, extra=extra)).__enter__()
        self.addCleanup(self.srv.stop)

    def test_user_and_total_quota_count_per_realm(self):
        self.assert_allocates(self.pa, "bob", "pb-a", A)
        self.assert_refused(self.pa, "bob", "pb-a", A, code=486)
        # bob of B is another user, and B has no quota
        for _ in range(3):
            self.assert_allocates(self.pb, "bob", "pb-b", B)
        self.assert_allocates(self.pa, "anna", "pa", A)  # A's second allocation: the total
        user, pw = rest_credentials("sa", name="carol")
        self.assert_refused(self.pa, user, pw, A, code=486)
        for _ in range(3):  # B's and the default realm's allocations do not fill A's total
            self.assert_allocates(self.pb, "bruno", "pb", B)
            self.assert_allocates(self.p0, "alice", "secret", DEFAULT)

    def test_freed_quota_is_reusable_in_its_realm(self):
        t = self.assert_allocates(self.pa, "bob", "pb-a", A)
        self.assert_refused(self.pa, "bob", "pb-a", A, code=486)
        self.assertEqual(t.refresh(0)["cls"], 2)
        self.assert_allocates(self.pa, "bob", "pb-a", A)

    def relay_burst(self, t, n=200, size=1000):
        """Send n channel packets of size bytes through t; how many arrive."""
        peer = self.peer()
        peer.settimeout(0.5)
        self.assertEqual(t.channel_bind(0x4001, peer.getsockname())["cls"], 2)
        got = [0]

        def read():  # a reader keeps the peer's socket buffer from dropping them
            try:
                while True:
                    peer.recvfrom(2000)
                    got[0] += 1
            except (socket.timeout, OSError):
                pass
        reader = threading.Thread(target=read)
        reader.start()
        for i in range(n):
            t.send_channel(0x4001, b"x" * size)
            if i % 20 == 19:
                time.sleep(0.002)  # no burst beyond the server's socket buffer
        reader.join(10)
        return got[0]

    def test_bandwidth_limited_in_its_realm_only(self):
        before = scrape(self.mport)
        a = self.assert_allocates(self.pa, "anna", "pa", A)
        got_a = self.relay_burst(a)
        b = self.assert_allocates(self.pb, "bruno", "pb", B)
        got_b = self.relay_burst(b)
        # 200 KB offered in well under a second: A passes about 20 KB/s (+ a 1 s burst)
        self.assertGreater(got_a, 5)
        self.assertLess(got_a, 60)
        self.assertGreater(got_b, 180)
        dropped = total(scrape(self.mport), "tern_dropped_packets_total", reason="bandwidth") - \
            total(before, "tern_dropped_packets_total", reason="bandwidth")
        self.assertEqual(dropped, 200 - got_a)

    def test_metrics_carry_the_realm_label(self):
        # every configured realm has its series from the start, under its name
        for family in ("tern_requests_total", "tern_auth_failures_total", "tern_allocations_created_total",
                       "tern_allocations", "tern_relay_bytes_total", "tern_relay_packets_total"):
            labels = {dict(ls).get("realm") for (n, ls) in scrape(self.mport) if n == family}
            self.assertEqual(labels, {DEFAULT, A, B}, family)
        t = self.assert_allocates(self.pa, "anna", "pa", A)
        self.assert_relays(t, self.peer(), tag=b"1234")
        self.assert_refused(self.pb, "bruno", "wrong", B)
        self.assert_allocates(self.p0, "alice", "secret", DEFAULT)
        m = self.mport  # a fresh server: every figure counts this test's traffic only
        for realm, n in ((A, 1), (B, 0), (DEFAULT, 1)):
            wait_metric(self, m, n, "tern_allocations_created_total", realm=realm)
            wait_metric(self, m, n, "tern_allocations", realm=realm)
            wait_metric(self, m, n, "tern_requests_total", realm=realm, method="allocate", code="200")
        wait_metric(self, m, 1, "tern_requests_total", realm=A, method="channel_bind", code="200")
        # B: the first challenge and the wrong password; only the second is an auth failure
        wait_metric(self, m, 2, "tern_requests_total", realm=B, method="allocate", code="401")
        for realm, n in ((A, 0), (B, 1), (DEFAULT, 0)):
            wait_metric(self, m, n, "tern_auth_failures_total", realm=realm)
        wait_metric(self, m, len(b"to peer 1234"), "tern_relay_bytes_total", realm=A, direction="to_peer")
        wait_metric(self, m, len(b"to client 1234"), "tern_relay_bytes_total", realm=A,
                    direction="to_client")
        wait_metric(self, m, 1, "tern_relay_packets_total", realm=A, direction="to_peer")
        wait_metric(self, m, 1, "tern_relay_packets_total", realm=A, direction="to_client")
        for realm in (B, DEFAULT):
            wait_metric(self, m, 0, "tern_relay_bytes_total", realm=realm)
            wait_metric(self, m, 0, "tern_relay_packets_total", realm=realm)

    @unittest.skipUnless(os.path.exists(TERNCTL), "ternctl is not built")
    def test_ternctl_sessions_show_and_filter_the_realm(self):
        self.assert_allocates(self.pa, "anna", "pa", A)
        self.assert_allocates(self.pb, "bruno", "pb", B)

        def sessions(*filters):
            p = subprocess.run([TERNCTL, "-s", self.sock, "sessions", "--json"] + list(filters),
                               capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stderr)
            return sorted((s["user"], s["realm"]) for s in json.loads(p.stdout)["sessions"])
        self.assertEqual(sessions(), [("anna", A), ("bruno", B)])
        self.assertEqual(sessions("--realm", A), [("anna", A)])
        self.assertEqual(sessions("--realm", B), [("bruno", B)])
        self.assertEqual(sessions("--realm", DEFAULT), [])


# --- 7. realms in Redis, written by coturn's turnadmin -------------------------------------

R1, R2 = "r1.example", "r2.example"  # R1 only Redis knows (learned); R2 is configured
O1 = "https://o1.example"  # mapped to R1 by turnadmin -O
# turnadmin -O stores an origin in coturn's canonical form, scheme://host:port,
# and coturn canonicalises the ORIGIN attribute the same way before it looks it up
O1_CANONICAL = "https://o1.example:443"


class RealmsInRedis(RealmCase):
    """turnadmin writes users of R1 and R2, a REST secret of R1 and the
    origin map entry O1 -> R1; R2 is in the configuration with an origin of
    its own and no static users or secrets."""

    O2 = "https://r2.example"

    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer().start()
        turnadmin(cls.redis, "-a", "-u", "u1", "-r", R1, "-p", "p1")
        turnadmin(cls.redis, "-a", "-u", "u2", "-r", R2, "-p", "p2")
        turnadmin(cls.redis, "-a", "-u", "both", "-r", R1, "-p", "in-r1")
        turnadmin(cls.redis, "-a", "-u", "both", "-r", R2, "-p", "in-r2")
        turnadmin(cls.redis, "-s", "secret-r1", "-r", R1)
        turnadmin(cls.redis, "-O", "-o", O1, "-r", R1)
        cls.port = free_port()
        cls.mport = free_port(kinds=(socket.SOCK_STREAM,))
        r2 = realm_entry(R2, users=[], secrets=[], more='origins = [ "%s" ];' % cls.O2)
        text = realm_conf(cls.port, [r2], auth='redis = "%s"; cache_ttl = 1;' % cls.redis.url(),
                          extra='metrics = { ip = "127.0.0.1"; port = %d; };' % cls.mport)
        cls.srv = Ternd(text).__enter__()
        if not redis_up_everywhere(cls.mport):
            cls.srv.stop()
            cls.redis.cleanup()
            raise RuntimeError("Redis never came up on every worker")

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        cls.redis.cleanup()

    def test_turnadmin_origin_key_is_canonical(self):
        # what the rest of this class relies on about turnadmin itself
        self.assertEqual(self.redis.cmd("GET", "turn/origin/" + O1_CANONICAL), R1)

    def test_redis_origin_map_picks_a_learned_realm(self):
        o1 = O1_CANONICAL
        self.assertEqual(self.challenge(self.client(self.port, origin=o1)), R1)
        self.assert_allocates(self.port, "u1", "p1", R1, origin=o1)
        self.assert_allocates(self.port, "both", "in-r1", R1, origin=o1)
        user, pw = rest_credentials("secret-r1", name="rest")
        self.assert_allocates(self.port, user, pw, R1, origin=o1)
        # R2's user and R2's password are not R1's
        self.assert_refused(self.port, "u2", "p2", R1, origin=o1)
        self.assert_refused(self.port, "both", "in-r2", R1, origin=o1)

    def test_redis_origin_map_can_name_a_configured_realm(self):
        self.redis.cmd("SET", "turn/origin/https://other.example:443", R2)
        self.assertEqual(self.challenge(self.client(self.port, origin="https://other.example:443")), R2)
        self.assert_allocates(self.port, "u2", "p2", R2, origin="https://other.example:443")

    def test_redis_origin_naming_a_realm_too_long_for_a_401_is_unmapped(self):
        self.redis.cmd("SET", "turn/origin/https://long.example:443", "r" * 53)
        # (worker 0 logs why; which worker answers is the kernel's choice, so no log check here)
        self.assertEqual(self.challenge(self.client(self.port, origin="https://long.example:443")), DEFAULT)

    def test_redis_users_of_a_configured_realm(self):
        self.assertEqual(self.challenge(self.client(self.port, origin=self.O2)), R2)
        self.assert_allocates(self.port, "u2", "p2", R2, origin=self.O2)
        self.assert_allocates(self.port, "both", "in-r2", R2, origin=self.O2)
        self.assert_refused(self.port, "u1", "p1", R2, origin=self.O2)
        self.assert_refused(self.port, "both", "in-r1", R2, origin=self.O2)
        user, pw = rest_credentials("secret-r1", name="rest")
        self.assert_refused(self.port, user, pw, R2, origin=self.O2)

    def test_without_origin_redis_users_of_other_realms_are_refused(self):
        self.assertEqual(self.challenge(self.client(self.port)), DEFAULT)
        self.assert_refused(self.port, "u1", "p1", DEFAULT)
        self.assert_refused(self.port, "u1", "p1", R1)  # naming R1 does not put the request there
        self.assert_allocates(self.port, "alice", "secret", DEFAULT)

    def test_browser_origin_matches_turnadmin_entry(self):
        # a browser sends "https://o1.example" (no default port); turnadmin -O
        # stored "https://o1.example:443"; coturn finds it, so should ternd
        self.assertEqual(self.challenge(self.client(self.port, origin=O1)), R1)

    def test_redis_realm_limits_apply_per_realm(self):
        turnadmin(self.redis, "-g", "-r", R1, "--user-quota", "1")
        self.addCleanup(self.redis.cmd, "DEL", "turn/realm/%s/user-quota" % R1)
        self.assertEqual(self.redis.cmd("GET", "turn/realm/%s/user-quota" % R1), "1")
        o1 = O1_CANONICAL
        # land in R1 on the workers (each learns the realm on its first request
        # there), then give every worker's poll (cache_ttl 1 s) time to read it
        for _ in range(4):
            self.challenge(self.client(self.port, origin=o1))
        time.sleep(1.5)
        turnadmin(self.redis, "-a", "-u", "q1", "-r", R1, "-p", "q")
        turnadmin(self.redis, "-a", "-u", "q1", "-r", R2, "-p", "q")
        self.assert_allocates(self.port, "q1", "q", R1, origin=o1)
        self.assert_refused(self.port, "q1", "q", R1, code=486, origin=o1)
        # the same name in R2 is another user, and R2 has no Redis quota
        self.assert_allocates(self.port, "q1", "q", R2, origin=self.O2)
        self.assert_allocates(self.port, "q1", "q", R2, origin=self.O2)
        # and a configured realm reads its own key: q1 has two allocations in R2 now
        self.redis.cmd("SET", "turn/realm/%s/user-quota" % R2, "2")
        self.addCleanup(self.redis.cmd, "DEL", "turn/realm/%s/user-quota" % R2)
        time.sleep(1.5)
        self.assert_refused(self.port, "q1", "q", R2, code=486, origin=self.O2)

    def test_learned_realm_counts_under_the_default_label(self):
        before = scrape(self.mport)
        self.assert_allocates(self.port, "u1", "p1", R1, origin=O1_CANONICAL)
        wait_metric(self, self.mport, total(before, "tern_allocations_created_total", realm=DEFAULT) + 1,
                    "tern_allocations_created_total", realm=DEFAULT)
        self.assertFalse([k for k in scrape(self.mport) if ("realm", R1) in k[1]])


class RedisLimitsBetweenPolls(RealmCase):
    """Redis's realm limits when the poll (every cache_ttl, here 30 s so that
    it does not come round during the test) has not just run: a limit that
    was in Redis long before must hold all the same."""

    def start(self, realms):
        self.redis = RedisServer().start()
        self.addCleanup(self.redis.cleanup)
        turnadmin(self.redis, "-O", "-o", O1, "-r", R1)
        for realm in (R1, R2):
            turnadmin(self.redis, "-a", "-u", "q", "-r", realm, "-p", "q")
            turnadmin(self.redis, "-g", "-r", realm, "--user-quota", "1")
        self.port = free_port()
        metrics, mport = metrics_conf()
        srv = Ternd(realm_conf(self.port, realms, extra=metrics,
                               auth='redis = "%s"; cache_ttl = 30;' % self.redis.url()))
        srv.__enter__()
        self.addCleanup(srv.stop)
        # the first poll runs as each worker's connection comes up
        self.assertTrue(redis_up_everywhere(mport), srv.stderr())
        time.sleep(0.5)
        return srv

    def test_learned_realm_has_its_redis_limits_from_its_first_request(self):
        self.start([])
        self.assert_allocates(self.port, "q", "q", R1, origin=O1_CANONICAL)
        self.assert_refused(self.port, "q", "q", R1, code=486, origin=O1_CANONICAL)  # observed: 200

    def test_reload_keeps_redis_limits_of_a_configured_realm(self):
        srv = self.start([realm_entry(R2, more='origins = [ "https://r2.example" ];')])
        o2 = "https://r2.example"
        self.assert_allocates(self.port, "q", "q", R2, origin=o2)
        if error(self.allocates(self.port, "q", "q", R2, origin=o2)[1]) != 486:
            self.skipTest("the first poll did not read R2's limits: nothing to keep")
        reload(self, srv)  # the same file
        self.assert_refused(self.port, "q", "q", R2, code=486, origin=o2)  # observed: 200


# --- 9. reload ----------------------------------------------------------------------------------

class RealmReload(RealmCase):
    def test_reload_adds_a_realm_and_old_allocations_keep_their_realm(self):
        port, pa, mport = free_port(), free_port(), free_port(kinds=(socket.SOCK_STREAM,))
        listen = ", ".join([udp_listen(port), udp_listen(pa, A)])
        text = realm_conf(port, [REALM_A], listen=listen,
                          extra='metrics = { ip = "127.0.0.1"; port = %d; };' % mport)
        with Ternd(text) as srv:
            old_a = self.assert_allocates(pa, "anna", "pa", A)
            old_0 = self.assert_allocates(port, "alice", "secret", DEFAULT)
            peer = self.peer()
            self.assert_relays(old_a, peer, tag=b"a before")
            self.assert_relays(old_0, peer, channel=0x4002, tag=b"0 before")
            self.assertEqual(self.challenge(self.client(port, origin=ORIGIN_B)), DEFAULT)
            # B comes first, so that A's place in the list moves; bob of A gets a new password
            reload(self, srv, text.replace(REALM_A, REALM_B + ",\n  " + REALM_A.replace('"pb-a"', '"pb-a2"')))
            self.assertEqual(self.challenge(self.client(port, origin=ORIGIN_B)), B)
            self.assert_allocates(port, "bruno", "pb", B, origin=ORIGIN_B)
            self.assert_allocates(pa, "bob", "pb-a2", A)
            self.assert_refused(pa, "bob", "pb-a", A)
            # allocations made before keep relaying, and are still authenticated in their realm
            bytes_a = total(scrape(mport), "tern_relay_bytes_total", realm=A, direction="to_peer")
            self.assert_relays(old_a, peer, tag=b"a after", bind=False)
            self.assert_relays(old_0, peer, channel=0x4002, tag=b"0 after", bind=False)
            self.assertEqual(old_a.refresh(600)["cls"], 2)
            self.assertEqual(old_a.permission(peer.getsockname())["cls"], 2)
            self.assertEqual(old_0.refresh(600)["cls"], 2)
            # and count under their realm's label
            wait_metric(self, mport, bytes_a + len(b"to peer a after"), "tern_relay_bytes_total",
                        realm=A, direction="to_peer")
            wait_metric(self, mport, 2, "tern_allocations", realm=A)
            wait_metric(self, mport, 1, "tern_allocations", realm=B)
            self.assertTrue(srv.alive())

    def test_reload_gives_new_connections_a_realms_new_certificate(self):
        d = temp_dir()
        top, one, two = (self_signed(d, cn) for cn in ("default.test", "one.a.example", "two.a.example"))
        port = free_port()
        text = realm_conf(port, [REALM_A[:-1] + tls_key(one) + " }"], listen=tls_listen(port),
                          extra=tls_key(top))
        with Ternd(text) as srv:
            before = self.client(port, transport="tls", server_hostname=HOST_A, user="anna",
                                 password="pa", realm=A)
            self.assertEqual(peer_cn(before), "one.a.example")
            self.assertEqual(before.allocate()["cls"], 2)
            reload(self, srv, text.replace(tls_key(one), tls_key(two)))
            t = self.client(port, transport="tls", server_hostname=HOST_A)
            self.assertEqual(peer_cn(t), "two.a.example")
            self.assertEqual(self.challenge(t), A)
            self.assertEqual(peer_cn(self.client(port, transport="tls")), "default.test")
            self.assertEqual(before.refresh(600)["cls"], 2)  # the connection made before goes on

    def test_reload_keeps_allocations_of_a_realm_only_redis_knows(self):
        redis = RedisServer().start()
        self.addCleanup(redis.cleanup)
        turnadmin(redis, "-a", "-u", "u1", "-r", R1, "-p", "p1")
        turnadmin(redis, "-O", "-o", O1, "-r", R1)
        port = free_port()
        metrics, mport = metrics_conf()
        with Ternd(realm_conf(port, [], extra=metrics,
                              auth='redis = "%s"; cache_ttl = 1;' % redis.url())) as srv:
            self.assertTrue(redis_up_everywhere(mport), srv.stderr())
            t = self.assert_allocates(port, "u1", "p1", R1, origin=O1_CANONICAL)
            peer = self.peer()
            self.assert_relays(t, peer)
            reload(self, srv)  # the same file
            self.assert_relays(t, peer, tag=b"after", bind=False)
            # the allocation's realm is R1 still: its Refresh authenticates there
            # (observed: 401 naming the default realm, so it can never be refreshed)
            r = t.refresh(600)
            self.assertEqual(r["cls"], 2, (error(r), r["attrs"].get(A_REALM)))


# --- 10. configuration errors --------------------------------------------------------------------

class RealmConfigErrors(unittest.TestCase):
    """`ternd --check-config` names file:line of the offending entry and exits non-zero."""

    def check_config(self, text):
        path = os.path.join(temp_dir(), "ternd.conf")
        with open(path, "w") as f:
            f.write(text)
        return subprocess.run([TERND, "-c", path, "--check-config"], capture_output=True, text=True,
                              timeout=30)

    def assert_refused_at(self, text, want_line_of, pattern):
        """One line of error, at the first line holding want_line_of, matching pattern."""
        p = self.check_config(text)
        self.assertNotEqual(p.returncode, 0)
        line = next(i for i, l in enumerate(text.splitlines(), 1) if want_line_of in l)
        self.assertRegex(p.stderr, r"ternd\.conf:%d: " % line)
        self.assertRegex(p.stderr, pattern)
        self.assertEqual(len(p.stderr.strip().splitlines()), 1, p.stderr)

    def check(self, realms, listen_realm=None, want_line_of=None, pattern=""):
        port = free_port()
        text = realm_conf(port, realms, listen=udp_listen(port, listen_realm))
        if want_line_of is None:
            p = self.check_config(text)
            self.assertEqual(p.returncode, 0, p.stderr)
        else:
            self.assert_refused_at(text, want_line_of, pattern)

    def test_valid_realms_pass(self):
        self.check([REALM_A, REALM_B], listen_realm=A)

    def test_duplicate_realm_name(self):
        self.check([REALM_A, realm_entry(A, users=[])], want_line_of=realm_entry(A, users=[]),
                   pattern="defined twice")

    def test_realm_named_like_the_default_realm(self):
        self.check([realm_entry(DEFAULT)], want_line_of='name = "%s"' % DEFAULT, pattern="defined twice")

    def test_host_in_two_realms(self):
        b = realm_entry(B, more='hosts = [ "%s" ];' % HOST_A.upper())
        self.check([REALM_A, b], want_line_of=b, pattern=HOST_A)

    def test_origin_in_two_realms(self):
        b = realm_entry(B, more='origins = [ "%s" ];' % ORIGIN_A)
        self.check([REALM_A, b], want_line_of=b, pattern=re.escape(ORIGIN_A))

    def test_listener_realm_that_does_not_exist(self):
        self.check([REALM_A], listen_realm="nowhere.example", want_line_of='realm = "nowhere.example"',
                   pattern="nowhere.example")

    def test_realm_name_longer_than_52(self):
        self.check([realm_entry("r" * 52)])  # the bound itself is fine
        long = realm_entry("r" * 53)
        self.check([long], want_line_of=long, pattern=r"realms\[0\]\.name.*\b52\b")

    def test_realm_tls_needs_cert_and_key(self):
        for half in ('tls = { cert = "/nonexistent/a.pem"; };', 'tls = { key = "/nonexistent/a.key"; };'):
            with self.subTest(half=half):
                self.check([realm_entry(A, more=half)], want_line_of=half, pattern="both 'cert' and 'key'")

    def test_tls_listener_without_any_certificate(self):
        port = free_port()
        for realm in (None, A):  # neither the default realm nor A has a certificate
            with self.subTest(realm=realm):
                text = realm_conf(port, [REALM_A], listen=tls_listen(port, realm))
                self.assert_refused_at(text, "proto = \"tls\"", "tls.cert and tls.key")

    def test_unknown_realm_key(self):
        bad = realm_entry(A, more="colour = 1;")
        self.check([bad], want_line_of=bad, pattern="colour")


if __name__ == "__main__":
    unittest.main()
