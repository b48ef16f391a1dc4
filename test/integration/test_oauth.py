"""RFC 7635 third-party authorization against a running ternd: tokens made
by coturn's turnutils_oauth (the authorization server's side), presented in
ACCESS-TOKEN with USERNAME = kid and MESSAGE-INTEGRITY keyed with the token's
MAC key; THIRD-PARTY-AUTHORIZATION in the 401; tampered, foreign and
expired tokens; the token's lifetime bounding the allocation's; requests
after the Allocate signed with the allocation's MAC key; AS-RS keys kept in
Redis (coturn's turn/oauth/kid/<kid>); and the configuration's refusals.
"""
import base64
import os
import random
import re
import shutil
import socket
import string
import struct
import subprocess
import time
import unittest

from ternd import Ternd, free_port, temp_dir, TERND
from turnclient import (Turn, build, check_integrity, xor_addr, attr, ALLOCATE,
                        CREATE_PERMISSION, A_TRANSPORT, A_LIFETIME, A_REALM, A_NONCE, A_PEER)
from test_turn import error, udp_peer
from redisfix import RedisServer

A_ACCESS_TOKEN, A_THIRD_PARTY = 0x001B, 0x802E
REALM = "north.gov"
SERVER_NAME = "blackdow.carleon.gov"
# kid -> (base64 ikm, alg, realm): coturn's uclient -J keys
KEYS = {
    "north": ("MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDEK", "A256GCM", "crinna.org"),
    "union": ("MTIzNDU2Nzg5MDEyMzQ1Ngo=", "A128GCM", "north.gov"),
    "oldempire": ("MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIK", "A256GCM", ""),
}
# a 32-byte key that is valid for 100 s from 1970: long expired
OLD_KEY = ("retired", base64.b64encode(b"R" * 32).decode(), "A256GCM", "", 1, 100)
SESSION = re.compile(r"session_start id=\S+ user=(\S+) realm=(\S+) client=(\S+) ")
HAVE_OAUTH_TOOL = shutil.which("turnutils_oauth") is not None


def mac_key(n=20):
    """A random MAC key. turnutils_oauth copies it with strncpy: no NUL bytes."""
    return "".join(random.choice(string.ascii_letters + string.digits) for _ in range(n)).encode()


def make_token(kid, mac, server_name=SERVER_NAME, issued=None, lifetime=3600, ikm=None, alg=None):
    """An access token from coturn's turnutils_oauth -e, raw bytes. The AS-RS key is
    kid's (KEYS) unless ikm/alg are given; issued is unix seconds (default: now)."""
    ikm = ikm or KEYS[kid][0]
    alg = alg or KEYS[kid][1]
    issued = int(time.time()) if issued is None else issued
    # -l/-m (the key's own validity) must be non-zero for the tool; they do not enter the token
    p = subprocess.run(["turnutils_oauth", "-e", "-i", server_name, "-j", kid, "-k", ikm,
                        "-l", "1", "-m", "2000000000", "-n", alg,
                        "-p", base64.b64encode(mac).decode(), "-q", str(issued << 16),
                        "-r", str(lifetime)], capture_output=True, text=True, timeout=10)
    m = re.search(r'"access_token":"([A-Za-z0-9+/=]+)"', p.stdout)
    if p.returncode != 0 or not m:
        raise RuntimeError("turnutils_oauth failed: %s %s" % (p.stdout, p.stderr))
    return base64.b64decode(m.group(1))


class OauthTurn(Turn):
    """The test TURN client with RFC 7635 credentials: USERNAME = kid, ACCESS-TOKEN
    while self.token is set, MESSAGE-INTEGRITY keyed with self.key (the MAC key)."""

    def __init__(self, host, port, kid, token, key, realm=REALM, **kw):
        super().__init__(host, port, user=kid, password="unused", realm=realm, **kw)
        self.token = token
        self.key = key

    def auth_attrs(self):
        attrs = super().auth_attrs()
        if self.token is not None:
            attrs.insert(0, attr(A_ACCESS_TOKEN, self.token))
        return attrs


def lifetime_of(r):
    return struct.unpack("!I", r["attrs"][A_LIFETIME][0])[0]


def keys_conf(keys):
    out = []
    for kid, (ikm, alg, realm) in keys.items():
        out.append('{ kid = "%s"; key = "%s"; alg = "%s"; realm = "%s"; timestamp = 0; lifetime = 0; }'
                   % (kid, ikm, alg, realm))
    return ", ".join(out)


def oauth_conf(port, server_name=SERVER_NAME, keys=None, auth="", extra=""):
    """UDP+TCP on loopback, realm north.gov, the uclient -J keys and OLD_KEY."""
    lo = free_port(kinds=(socket.SOCK_DGRAM,))
    lo = lo if lo + 199 < 65536 else 40000
    keys = keys_conf(KEYS if keys is None else keys)
    keys += ', { kid = "%s"; key = "%s"; alg = "%s"; realm = "%s"; timestamp = %d; lifetime = %d; }' % OLD_KEY
    sn = '' if server_name is None else 'server_name = "%s"; ' % server_name
    return ('realm = "%s";\nsoftware = "ternd-test";\nworkers = 2;\n'
            'listen = ( { proto = "udp"; ip = "127.0.0.1"; port = %d; },'
            ' { proto = "tcp"; ip = "127.0.0.1"; port = %d; } );\n'
            'log = { level = "debug"; };\n'
            'relay = { ip = [ "127.0.0.1" ]; min_port = %d; max_port = %d; };\n'
            'peers = { allow_loopback = true; };\n'
            '%s\n'
            'oauth = { %skeys = ( %s ); };\n%s\n'
            % (REALM, port, port, lo, lo + 199, auth, sn, keys, extra))


class OauthCase(unittest.TestCase):
    def client(self, kid="north", token=None, key=None, transport="udp", **kw):
        key = key if key is not None else mac_key()
        if token is None:
            token = make_token(kid, key)
        t = OauthTurn("127.0.0.1", self.port, kid, token, key, transport=transport, **kw)
        self.addCleanup(t.close)
        return t

    def challenge(self):
        """A bare Allocate's 401."""
        t = Turn("127.0.0.1", self.port)
        self.addCleanup(t.close)
        msg, tid = build(ALLOCATE, [attr(A_TRANSPORT, b"\x11\0\0\0")])
        r = t.exchange(msg, tid)
        self.assertEqual(error(r), 401)
        return r

    def refused(self, t, lifetime=None):
        r = t.allocate(lifetime=lifetime)
        self.assertEqual(error(r), 401, self.srv.stderr()[-2000:])
        self.assertFalse(check_integrity(r["raw"], t.key))  # a 401 is never signed
        return r

    def sessions_of(self, t):
        host, port = t.sock.getsockname()[:2]
        me = "%s:%d" % ("127.0.0.1" if host == "0.0.0.0" else host, port)
        return [(u, r) for u, r, c in SESSION.findall(self.srv.stderr()) if c == me]


@unittest.skipUnless(HAVE_OAUTH_TOOL, "needs turnutils_oauth (Debian package coturn)")
class OauthTokens(OauthCase):
    @classmethod
    def setUpClass(cls):
        cls.port = free_port()
        cls.srv = Ternd(oauth_conf(cls.port)).__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    # --- the tool's tokens are what the codec expects -----------------------------
    def test_turnutils_oauth_token_layout(self):
        tok = make_token("north", mac_key())
        # nonce_len(2) nonce(12) | key_len(2) mac_key(20) timestamp(8) lifetime(4) | tag(16)
        self.assertEqual(len(tok), 2 + 12 + 2 + 20 + 8 + 4 + 16)
        self.assertEqual(tok[:2], b"\x00\x0c")

    # --- the challenge ------------------------------------------------------------
    def test_challenge_carries_third_party_authorization_server_name(self):
        r = self.challenge()
        self.assertEqual(r["attrs"][A_THIRD_PARTY], [SERVER_NAME.encode()])
        self.assertEqual(r["attrs"][A_REALM], [REALM.encode()])
        self.assertIn(A_NONCE, r["attrs"])

    def test_401_to_a_bad_token_carries_third_party_authorization_too(self):
        r = self.refused(self.client(token=make_token("north", mac_key()), key=mac_key()))
        self.assertEqual(r["attrs"][A_THIRD_PARTY], [SERVER_NAME.encode()])

    # --- valid tokens -------------------------------------------------------------
    def test_token_allocates_with_full_20_byte_mac_key_and_answer_is_signed_with_it(self):
        key = mac_key(20)
        t = self.client("north", make_token("north", key), key)
        r = t.allocate()
        self.assertEqual(r["cls"], 2, self.srv.stderr()[-2000:])
        self.assertTrue(check_integrity(r["raw"], key))
        self.assertFalse(check_integrity(r["raw"], key[:16]))

    def test_token_allocates_with_coturn_16_byte_mac_key_and_answer_is_signed_with_it(self):
        key = mac_key(20)
        t = self.client("north", make_token("north", key), key[:16])  # what coturn's client signs with
        r = t.allocate()
        self.assertEqual(r["cls"], 2, self.srv.stderr()[-2000:])
        self.assertTrue(check_integrity(r["raw"], key[:16]))
        self.assertFalse(check_integrity(r["raw"], key))

    def test_32_byte_mac_key_allocates(self):
        key = mac_key(32)
        t = self.client("north", make_token("north", key), key)
        r = t.allocate()
        self.assertEqual(r["cls"], 2, self.srv.stderr()[-2000:])
        self.assertTrue(check_integrity(r["raw"], key))

    def test_a128gcm_kid_allocates_over_tcp(self):
        t = self.client("union", transport="tcp")
        r = t.allocate()
        self.assertEqual(r["cls"], 2, self.srv.stderr()[-2000:])
        self.assertTrue(check_integrity(r["raw"], t.key))

    def test_kid_realm_moves_the_session_into_it(self):
        for kid, realm in (("north", "crinna.org"), ("union", "north.gov"), ("oldempire", REALM)):
            t = self.client(kid)
            self.assertEqual(t.allocate()["cls"], 2)
            for _ in range(20):
                seen = self.sessions_of(t)
                if seen:
                    break
                time.sleep(0.05)
            self.assertEqual(seen, [(kid, realm)], self.srv.stderr()[-2000:])

    def test_token_allocation_relays_to_a_permitted_peer(self):
        t = self.client("oldempire")
        self.assertEqual(t.allocate()["cls"], 2)
        t.token = None  # later requests: no token, signed with the MAC key (coturn's client)
        peer = udp_peer()
        self.addCleanup(peer.close)
        r = t.permission(peer.getsockname())
        self.assertEqual(r["cls"], 2)
        self.assertTrue(check_integrity(r["raw"], t.key))
        t.send_indication(peer.getsockname(), b"token-relayed")
        data, src = peer.recvfrom(100)
        self.assertEqual(data, b"token-relayed")
        self.assertEqual(src, t.relayed[0])
        peer.sendto(b"back", src)
        self.assertEqual(t.recv_data(), ("indication", peer.getsockname(), b"back"))

    # --- refused tokens -----------------------------------------------------------
    def test_token_with_one_byte_altered_is_refused(self):
        key = mac_key()
        good = make_token("north", key)
        n = len(good)
        where = {"nonce length": 1, "nonce first": 2, "nonce last": 13, "key length": 14,
                 "mac key": 20, "timestamp": 40, "lifetime": 47, "tag first": n - 16, "tag last": n - 1}
        for name, i in where.items():
            with self.subTest(name, index=i):
                bad = bytearray(good)
                bad[i] ^= 0x01
                self.refused(self.client("north", bytes(bad), key))
        # and the same token unaltered is good
        self.assertEqual(self.client("north", good, key).allocate()["cls"], 2)

    def test_truncated_and_extended_tokens_are_refused(self):
        key = mac_key()
        good = make_token("north", key)
        for bad in (good[:-1], good + b"\0", good[:30], b""):
            with self.subTest(length=len(bad)):
                self.refused(self.client("north", bad, key))

    def test_unknown_kid_is_refused(self):
        key = mac_key()
        self.refused(self.client("nosuchkid", make_token("north", key), key))

    def test_token_sealed_with_another_kids_key_is_refused(self):
        key = mac_key()
        # sealed with oldempire's key, presented as north's
        self.refused(self.client("north", make_token("oldempire", key), key))

    def test_token_for_another_server_name_is_refused(self):
        key = mac_key()
        self.refused(self.client("north", make_token("north", key, server_name="other.carleon.gov"), key))
        self.refused(self.client("north", make_token("north", key, server_name=REALM), key))

    def test_integrity_with_another_key_than_the_tokens_is_refused(self):
        self.refused(self.client("north", make_token("north", mac_key()), mac_key()))

    def test_expired_token_is_refused(self):
        key = mac_key()
        long_ago = int(time.time()) - 86400
        self.refused(self.client("north", make_token("north", key, issued=long_ago, lifetime=3600), key))
        # past its lifetime, even within the 5 s clock allowance
        recent = int(time.time()) - 102
        self.refused(self.client("north", make_token("north", key, issued=recent, lifetime=100), key))

    def test_token_from_the_future_is_refused(self):
        key = mac_key()
        later = int(time.time()) + 600
        self.refused(self.client("north", make_token("north", key, issued=later), key))

    def test_expired_as_rs_key_is_refused(self):
        kid, ikm, alg = OLD_KEY[:3]
        key = mac_key()
        self.refused(self.client(kid, make_token(kid, key, ikm=ikm, alg=alg), key))

    # --- lifetimes ----------------------------------------------------------------
    def test_token_lifetime_caps_allocation_lifetime(self):
        key = mac_key()
        t = self.client("north", make_token("north", key, lifetime=100), key)
        r = t.allocate(lifetime=600)
        self.assertEqual(r["cls"], 2, self.srv.stderr()[-2000:])
        self.assertLessEqual(lifetime_of(r), 100)
        self.assertGreaterEqual(lifetime_of(r), 95)
        # a Refresh with the same token is capped the same way
        r = t.refresh(600)
        self.assertEqual(r["cls"], 2)
        self.assertLessEqual(lifetime_of(r), 100)

    def test_refresh_without_token_does_not_outlive_the_token(self):
        key = mac_key()
        t = self.client("north", make_token("north", key, lifetime=100), key)
        r = t.allocate(lifetime=600)
        self.assertEqual(r["cls"], 2)
        self.assertLessEqual(lifetime_of(r), 100)
        t.token = None  # signed with the allocation's MAC key only
        r = t.refresh(600)
        self.assertEqual(r["cls"], 2, r and r["attrs"])
        self.assertTrue(check_integrity(r["raw"], key))
        self.assertLessEqual(lifetime_of(r), 100, "a Refresh without a token outlived the token")

    def test_refresh_with_a_new_token_of_another_kid_takes_its_key(self):
        key1, key2 = mac_key(), mac_key()
        t = self.client("north", make_token("north", key1), key1)
        self.assertEqual(t.allocate()["cls"], 2)
        t.user, t.token, t.key = "union", make_token("union", key2), key2
        r = t.refresh(600)
        self.assertEqual(r["cls"], 2, self.srv.stderr()[-2000:])
        self.assertTrue(check_integrity(r["raw"], key2))
        peer = udp_peer()
        self.addCleanup(peer.close)
        t.token = None
        t.key = key1  # the allocation's key is now key2
        self.assertEqual(error(t.permission(peer.getsockname())), 401)
        t.key = key2
        self.assertEqual(t.permission(peer.getsockname())["cls"], 2)

    # --- later requests on the allocation ----------------------------------------
    def test_create_permission_signed_with_allocation_mac_key(self):
        key = mac_key()
        t = self.client("north", make_token("north", key), key)
        self.assertEqual(t.allocate()["cls"], 2)
        t.token = None
        peer = udp_peer()
        self.addCleanup(peer.close)
        r = t.permission(peer.getsockname())
        self.assertEqual(r["cls"], 2, self.srv.stderr()[-2000:])
        self.assertTrue(check_integrity(r["raw"], key))
        r = t.channel_bind(0x4001, peer.getsockname())
        self.assertEqual(r["cls"], 2)
        t.send_channel(0x4001, b"over a channel")
        self.assertEqual(peer.recvfrom(100)[0], b"over a channel")

    def test_create_permission_signed_with_wrong_key_is_refused(self):
        key = mac_key()
        t = self.client("north", make_token("north", key), key)
        self.assertEqual(t.allocate()["cls"], 2)
        t.token = None
        t.key = mac_key()
        peer = udp_peer()
        self.addCleanup(peer.close)
        r = t.permission(peer.getsockname())
        self.assertEqual(error(r), 401)
        # nothing was permitted: the peer's datagram to the relay goes nowhere
        peer.sendto(b"not permitted", t.relayed[0])
        self.assertIsNone(t.recv_data(timeout=0.5))

    def test_create_permission_with_another_allocations_key_is_refused(self):
        k1, k2 = mac_key(), mac_key()
        a = self.client("north", make_token("north", k1), k1)
        b = self.client("north", make_token("north", k2), k2)
        self.assertEqual(a.allocate()["cls"], 2)
        self.assertEqual(b.allocate()["cls"], 2)
        a.token, a.key = None, k2  # b's key is no proof on a's allocation
        self.assertEqual(error(a.permission(("127.0.0.1", 9))), 401)

    def test_create_permission_without_allocation_and_token_is_refused(self):
        # with no allocation, a request without a token has no key to be verified with
        t = self.client("north")
        t.token = None
        r = t.request(CREATE_PERMISSION, [attr(A_PEER, xor_addr("127.0.0.1", 9, os.urandom(12)))])
        self.assertIn(error(r), (401, 437))


@unittest.skipUnless(HAVE_OAUTH_TOOL, "needs turnutils_oauth (Debian package coturn)")
class OauthRealmAsServerName(OauthCase):
    """Without oauth.server_name the realm's name is the server name, in the 401 and
    in the tokens' associated data."""

    def start(self, server_name):
        self.port = free_port()
        self.srv = Ternd(oauth_conf(self.port, server_name=server_name)).__enter__()
        self.addCleanup(self.srv.stop)

    def check(self):
        r = self.challenge()
        self.assertEqual(r["attrs"][A_THIRD_PARTY], [REALM.encode()])
        key = mac_key()
        t = self.client("oldempire", make_token("oldempire", key, server_name=REALM), key)
        self.assertEqual(t.allocate()["cls"], 2, self.srv.stderr()[-2000:])
        self.refused(self.client("oldempire", make_token("oldempire", key, server_name=SERVER_NAME), key))

    def test_server_name_absent(self):
        self.start(None)
        self.check()

    def test_server_name_empty(self):
        self.start("")
        self.check()

    def test_server_name_stays_the_challenges_after_a_kid_moved_the_allocation(self):
        # A client learns the server name from its first 401 (coturn's does) and has its
        # next tokens sealed for it; north's realm (crinna.org) must not change the name.
        self.start(None)
        k1, k2 = mac_key(), mac_key()
        t = self.client("north", make_token("north", k1, server_name=REALM), k1)
        self.assertEqual(t.allocate()["cls"], 2)
        t.user, t.token, t.key = "union", make_token("union", k2, server_name=REALM), k2
        r = t.refresh(600)
        self.assertEqual(r["cls"], 2, "Refresh with a token sealed for %s: %s %s"
                         % (REALM, error(r), r["attrs"].get(A_THIRD_PARTY)))


@unittest.skipUnless(HAVE_OAUTH_TOOL, "needs turnutils_oauth (Debian package coturn)")
class OauthRedisKeys(OauthCase):
    """AS-RS keys in Redis, coturn's layout: hash turn/oauth/kid/<kid>."""

    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer().start()
        cls.port = free_port()
        auth = 'auth = { redis = "%s"; cache_ttl = 1; };' % cls.redis.url()
        cls.srv = Ternd(oauth_conf(cls.port, auth=auth)).__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        cls.redis.cleanup()

    def put_kid(self, kid, ikm, alg="A256GCM", realm="", timestamp=0, lifetime=0):
        key = "turn/oauth/kid/" + kid
        self.addCleanup(self.redis.cmd, "DEL", key)
        self.redis.cmd("HSET", key, "ikm_key", ikm, "as_rs_alg", alg, "timestamp", timestamp,
                       "lifetime", lifetime, "realm", realm)

    def allocate(self, kid, ikm, alg="A256GCM"):
        key = mac_key()
        t = self.client(kid, make_token(kid, key, ikm=ikm, alg=alg), key)
        return t, t.allocate()

    def test_kid_only_in_redis_allocates_in_its_realm(self):
        ikm = base64.b64encode(os.urandom(32)).decode()
        self.put_kid("redkid", ikm, realm="crinna.org")
        t, r = self.allocate("redkid", ikm)
        self.assertEqual(r["cls"], 2, self.srv.stderr()[-2000:])
        self.assertTrue(check_integrity(r["raw"], t.key))
        time.sleep(0.1)
        self.assertEqual(self.sessions_of(t), [("redkid", "crinna.org")])

    def test_a128gcm_kid_in_redis(self):
        ikm = base64.b64encode(os.urandom(16)).decode()
        self.put_kid("redkid128", ikm, alg="A128GCM")
        self.assertEqual(self.allocate("redkid128", ikm, alg="A128GCM")[1]["cls"], 2)

    def test_configured_kid_still_served_with_redis(self):
        self.assertEqual(self.client("north").allocate()["cls"], 2)

    def test_deleted_kid_stops_within_cache_ttl(self):
        ikm = base64.b64encode(os.urandom(32)).decode()
        self.put_kid("gonekid", ikm)
        self.assertEqual(self.allocate("gonekid", ikm)[1]["cls"], 2)
        self.redis.cmd("DEL", "turn/oauth/kid/gonekid")
        time.sleep(1.5)  # cache_ttl = 1
        self.assertEqual(error(self.allocate("gonekid", ikm)[1]), 401)

    def test_kid_without_ikm_key_field_stops_within_cache_ttl(self):
        ikm = base64.b64encode(os.urandom(32)).decode()
        self.put_kid("hdelkid", ikm)
        self.assertEqual(self.allocate("hdelkid", ikm)[1]["cls"], 2)
        self.redis.cmd("HDEL", "turn/oauth/kid/hdelkid", "ikm_key")
        time.sleep(1.5)
        self.assertEqual(error(self.allocate("hdelkid", ikm)[1]), 401)

    def test_kid_added_to_redis_after_a_miss_works_after_cache_ttl(self):
        ikm = base64.b64encode(os.urandom(32)).decode()
        self.assertEqual(error(self.allocate("latekid", ikm)[1]), 401)
        self.put_kid("latekid", ikm)
        time.sleep(1.5)
        self.assertEqual(self.allocate("latekid", ikm)[1]["cls"], 2)

    def test_kid_in_neither_config_nor_redis_is_refused(self):
        ikm = base64.b64encode(os.urandom(32)).decode()
        self.assertEqual(error(self.allocate("nowherekid", ikm)[1]), 401)

    def test_expired_redis_key_is_refused(self):
        ikm = base64.b64encode(os.urandom(32)).decode()
        self.put_kid("oldredkid", ikm, timestamp=1000, lifetime=60)
        self.assertEqual(error(self.allocate("oldredkid", ikm)[1]), 401)

    def test_unusable_redis_key_is_refused_and_logged(self):
        self.put_kid("badkid", "not base64!")
        ikm = base64.b64encode(os.urandom(32)).decode()
        # worker 0 logs it; clients from other source ports reach it sooner or later
        for _ in range(24):
            self.assertEqual(error(self.allocate("badkid", ikm)[1]), 401)
            if "turn/oauth/kid/badkid does not make a key" in self.srv.stderr():
                break
        self.assertIn("turn/oauth/kid/badkid does not make a key", self.srv.stderr())


class OauthConfigErrors(unittest.TestCase):
    """ternd --check-config refuses a bad oauth group with file:line."""

    def check(self, oauth_text, line, pattern):
        d = temp_dir()
        path = os.path.join(d, "oauth.conf")
        text = ('realm = "north.gov";\n'
                'listen = ( { proto = "udp"; ip = "127.0.0.1"; port = 3478; } );\n' + oauth_text)
        with open(path, "w") as f:
            f.write(text)
        p = subprocess.run([TERND, "-c", path, "--check-config"], capture_output=True, text=True, timeout=10)
        self.assertNotEqual(p.returncode, 0, p.stdout + p.stderr)
        err = p.stderr.strip()
        self.assertEqual(len(err.splitlines()), 1, err)
        self.assertRegex(err, "^" + re.escape(path) + ":%d: " % line)
        self.assertRegex(err, pattern)

    def key(self, **fields):
        f = {"kid": '"north"', "key": '"%s"' % KEYS["north"][0]}
        f.update(fields)
        return "{ %s }" % " ".join("%s = %s;" % kv for kv in f.items() if kv[1] is not None)

    def test_good_oauth_group_checks(self):
        d = temp_dir()
        path = os.path.join(d, "good.conf")
        with open(path, "w") as f:
            f.write(oauth_conf(3478))
        p = subprocess.run([TERND, "-c", path, "--check-config"], capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_bad_alg(self):
        self.check('oauth = {\n keys = (\n %s\n );\n};\n' % self.key(alg='"A192GCM"'), 5, r"alg")

    def test_key_not_base64(self):
        self.check('oauth = {\n keys = (\n %s\n );\n};\n' % self.key(key='"not*base64!"'), 5, r"not base64")

    def test_key_too_short_for_a256gcm(self):
        # union's 17-byte ikm is enough for A128GCM, not for A256GCM
        self.check('oauth = {\n keys = (\n %s\n );\n};\n' % self.key(key='"%s"' % KEYS["union"][0]),
                   5, r"too short")

    def test_duplicate_kid(self):
        self.check('oauth = {\n keys = (\n %s,\n %s\n );\n};\n' % (self.key(), self.key()),
                   6, r"north.*twice")

    def test_missing_kid(self):
        self.check('oauth = {\n keys = (\n %s\n );\n};\n' % self.key(kid=None), 5, r"kid")

    def test_unknown_key_in_a_key_entry(self):
        self.check('oauth = {\n keys = (\n { kid = "north";\n key = "%s";\n colour = "red"; }\n );\n};\n'
                   % KEYS["north"][0], 7, r"colour")

    def test_server_name_and_realm_too_long_together(self):
        self.check('oauth = {\n server_name = "%s";\n keys = (\n %s\n );\n};\n' % ("s" * 48, self.key()),
                   3, r"too long together")


if __name__ == "__main__":
    unittest.main()
