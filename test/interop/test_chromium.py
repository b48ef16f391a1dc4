"""Debian's real headless Chromium relaying a WebRTC DataChannel through ternd:
two RTCPeerConnections with iceTransportPolicy "relay" (chromium/relay.js,
driven by playwright-core from npm).  scripts/install-deps installs chromium,
node and the npm package: a missing one fails these tests, it never skips them.

The server is the same TurnServer as in test_turn_clients.py (ternd; coturn
only with TERN_DEV_COTURN=1, a developer aid).
"""
import base64
import hashlib
import hmac
import json
import os
import shutil
import subprocess
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_turn_clients import PASSWORD, SECRETS, USER, TurnServer  # noqa: E402

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "chromium")
CHROMIUM = "/usr/bin/chromium"
MESSAGES = 20


def rest_credentials(secret, user=USER, ttl=3600):
    """The TURN REST API pair: "<expiry>:<user>", base64(HMAC-SHA1(secret, name))."""
    name = "%d:%s" % (int(time.time()) + ttl, user)
    cred = base64.b64encode(hmac.new(secret.encode(), name.encode(), hashlib.sha1).digest()).decode()
    return name, cred


class ChromiumTurn(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = TurnServer().start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def setUp(self):
        # required, not optional: install-deps provides all three
        self.assertTrue(os.access(CHROMIUM, os.X_OK), "chromium missing: run scripts/install-deps")
        self.assertTrue(shutil.which("node"), "node missing: run scripts/install-deps")
        self.assertTrue(os.path.isdir(os.path.join(HERE, "node_modules", "playwright-core")),
                        "playwright-core missing: run scripts/install-deps (npm ci in test/interop/chromium)")

    def relay(self, transport, username, credential, expect, port=None):
        url = "turn:127.0.0.1:%d?transport=%s" % (port or self.srv.port, transport)
        t0 = time.monotonic()
        try:
            p = subprocess.run(["timeout", "-k", "5", "40", "node", os.path.join(HERE, "relay.js"),
                                url, username, credential, expect, str(MESSAGES)],
                               capture_output=True, text=True, timeout=50, cwd=HERE)
        except subprocess.TimeoutExpired as e:
            self.fail("relay.js timed out: %s" % e)
        lines = [l for l in p.stdout.splitlines() if l.startswith("RESULT ")]
        why = "%s rc=%d after %.1fs\n%s\n%s\n--- server:\n%s" % (
            url, p.returncode, time.monotonic() - t0, p.stdout[-4000:], p.stderr[-2000:], self.srv.log())
        self.assertTrue(lines, why)
        res = json.loads(lines[-1][len("RESULT "):])
        self.assertNotIn("error", res, why)
        return p.returncode, res, why

    def connects_through_relay(self, transport, username, credential, port=None):
        rc, res, why = self.relay(transport, username, credential, "ok", port)
        self.assertTrue(res["connected"], why)
        self.assertEqual(res["aToB"], MESSAGES, why)
        self.assertEqual(res["bToA"], MESSAGES, why)
        # the selected pair: relayed on both ends, at addresses from the server's relay range
        self.assertEqual(res.get("localType"), "relay", why)
        self.assertEqual(res.get("remoteType"), "relay", why)
        self.assertEqual(res.get("relayProtocol"), transport, why)
        for key in ("localAddress", "remoteAddress"):
            host, port_ = res[key].rsplit(":", 1)
            self.assertEqual(host, "127.0.0.1", why)
            self.assertTrue(self.srv.relay_min <= int(port_) <= self.srv.relay_max, why)
        self.assertTrue(res["pass"], why)
        self.assertEqual(rc, 0, why)

    def test_turn_udp_relays_datachannel(self):
        self.connects_through_relay("udp", USER, PASSWORD)

    def test_turn_tcp_relays_datachannel(self):
        self.connects_through_relay("tcp", USER, PASSWORD)

    def test_rest_credentials_relay_datachannel(self):
        name, cred = rest_credentials(SECRETS[0])
        self.connects_through_relay("udp", name, cred, port=self.srv.rest_port)

    def test_wrong_password_gives_no_relay_candidate(self):
        rc, res, why = self.relay("udp", USER, "not-" + PASSWORD, "fail")
        self.assertEqual(res["gathering"], {"a": "complete", "b": "complete"}, why)
        self.assertEqual(res["relayCandidates"], {"a": 0, "b": 0}, why)
        self.assertFalse(res["connected"], why)
        self.assertTrue(res["pass"], why)
        self.assertEqual(rc, 0, why)


if __name__ == "__main__":
    unittest.main()
