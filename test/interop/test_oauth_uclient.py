"""coturn's turnutils_uclient -J (RFC 7635 third-party authorization with
its three built-in AS-RS keys) relaying through ternd, with turnutils_peer as
the echoing peer, over UDP, TCP and TLS, with channels and with Send/Data
indications.

uclient -J draws one of its kids at random for every Allocate and Refresh
(north: A256GCM, realm crinna.org; union: A128GCM, realm north.gov;
oldempire: A256GCM, no realm) and signs with the first 16 bytes of the
token's 20-byte MAC key, so ternd carries all three keys, and the session
log shows which realm each kid's allocation landed in.
"""
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from ternd import Ternd, free_port, temp_dir, tls_files  # noqa: E402
from test_turn_clients import assert_relayed_all, relay_range, run, start_peer, stop_process  # noqa: E402

REALM = "north.gov"
SERVER_NAME = "blackdow.carleon.gov"
# coturn's uclient -J keys (src/apps/uclient/mainuclient.c), and the realm each kid's sessions land in
KEYS = (
    ("north", "MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIzNDU2Nzg5MDEK", "A256GCM", "crinna.org"),
    ("union", "MTIzNDU2Nzg5MDEyMzQ1Ngo=", "A128GCM", "north.gov"),
    ("oldempire", "MTIzNDU2Nzg5MDEyMzQ1Njc4OTAxMjM0NTY3ODkwMTIK", "A256GCM", ""),
)
EXPECTED_REALM = {"north": "crinna.org", "union": "north.gov", "oldempire": REALM}
CLIENTS, MESSAGES = 2, 20
SESSION = re.compile(r"session_start id=\S+ user=(\S+) realm=(\S+) client=\S+ transport=(\S+) ")


def oauth_conf(port, tls_port, relay, cert, key, server_name=SERVER_NAME):
    keys = ", ".join('{ kid = "%s"; key = "%s"; alg = "%s"; realm = "%s"; timestamp = 0; lifetime = 0; }'
                     % k for k in KEYS)
    return ('realm = "%s";\nsoftware = "ternd-test";\nworkers = 2;\n'
            'listen = ( { proto = "udp"; ip = "127.0.0.1"; port = %d; },'
            ' { proto = "tcp"; ip = "127.0.0.1"; port = %d; },'
            ' { proto = "tls"; ip = "127.0.0.1"; port = %d; } );\n'
            'log = { level = "debug"; };\n'
            'relay = { ip = [ "127.0.0.1" ]; min_port = %d; max_port = %d; };\n'
            'tls = { cert = "%s"; key = "%s"; };\n'
            'peers = { allow_loopback = true; };\n'
            'oauth = { %skeys = ( %s ); };\n'
            % (REALM, port, port, tls_port, relay[0], relay[1], cert, key,
               'server_name = "%s"; ' % server_name if server_name else "", keys))


class UclientOauthCase(unittest.TestCase):
    """A ternd with the three keys (and oauth.server_name = SERVER_NAME unless None),
    turnutils_peer, and the uclient runs; no tests of its own."""
    SERVER_NAME = SERVER_NAME

    @classmethod
    def setUpClass(cls):
        d = temp_dir("tern-oauth-uclient-")
        cert, key = tls_files(d)
        cls.port, cls.tls_port = free_port(), free_port()
        cls.srv = Ternd(oauth_conf(cls.port, cls.tls_port, relay_range(), cert, key,
                                   server_name=cls.SERVER_NAME)).__enter__()
        cls.peer, cls.peer_port = start_peer()

    @classmethod
    def tearDownClass(cls):
        stop_process(cls.peer)
        cls.srv.stop()

    def sessions(self, transport=None):
        """(user, realm) of every session_start so far, of one transport if given."""
        return [(u, r) for u, r, t in SESSION.findall(self.srv.stderr()) if transport in (None, t)]

    def relays_all(self, *flags, port=None):
        """One uclient -J run relays every message; returns the sessions it started."""
        before = len(self.sessions())
        cmd = ["timeout", "15", "turnutils_uclient", "-J", "-p", str(port or self.port),
               "-e", "127.0.0.1", "-r", str(self.peer_port),
               "-m", str(CLIENTS), "-n", str(MESSAGES), "-l", "120", "-z", "5"] + list(flags) + ["127.0.0.1"]
        p = run(cmd, timeout=40)
        out = p.stdout + p.stderr
        why = "%s\n--- client:\n%s\n--- server:\n%s" % (" ".join(cmd), out[-3000:], self.srv.stderr()[-3000:])
        self.assertEqual(p.returncode, 0, why)
        assert_relayed_all(self, out, CLIENTS * MESSAGES, why)
        started = self.sessions()[before:]
        self.assertTrue(started, why)
        for user, realm in started:  # each kid's allocations land in its realm
            self.assertIn(user, EXPECTED_REALM, why)
            self.assertEqual(realm, EXPECTED_REALM[user], why)
        return started

    def relays_with_every_kid(self, *flags, port=None, transport="udp"):
        """Runs until each of the three kids has made an allocation (uclient draws
        them at random); every run relays everything, every kid lands in its realm."""
        seen = set()
        for _run in range(12):
            seen.update(user for user, _realm in self.relays_all(*flags, port=port))
            if seen == set(EXPECTED_REALM):
                break
        self.assertEqual(seen, set(EXPECTED_REALM))
        users = {u for u, _ in self.sessions(transport)}
        self.assertEqual(users, set(EXPECTED_REALM), transport)


class UclientOauth(UclientOauthCase):
    def test_udp_channels_every_kid(self):
        self.relays_with_every_kid()

    def test_udp_send_indications(self):
        self.relays_all("-s")

    def test_tcp_channels_every_kid(self):
        self.relays_with_every_kid("-t", transport="tcp")

    def test_tcp_send_indications(self):
        self.relays_all("-t", "-s")

    def test_tls_channels_every_kid(self):  # -S with -t: TLS
        self.relays_with_every_kid("-S", "-t", port=self.tls_port, transport="tls")

    def test_tls_send_indications(self):
        self.relays_all("-S", "-t", "-s", port=self.tls_port)



class UclientOauthRealmAsServerName(UclientOauthCase):
    """Without oauth.server_name: uclient seals its tokens for the realm's name, which
    the 401's THIRD-PARTY-AUTHORIZATION gives it."""
    SERVER_NAME = None

    def test_udp_channels_every_kid(self):
        self.relays_with_every_kid()

    def test_tcp_send_indications(self):
        self.relays_all("-t", "-s")


if __name__ == "__main__":
    unittest.main()
