"""ternd's web console and ICE self-test in Debian's real headless Chromium
(chromium/console.js, driven by playwright-core like test_chromium.py).

One ternd with UDP+TCP (REST secret), TLS, and the HTTP listener with an
admin token; coturn's turnutils_uclient relays through it (UDP, REST
credentials) while the browser:
- loads / and is sent to /login, signs in with the token, and sees the
  allocations and the relayed bits/s of that traffic;
- kills a session from the table (the confirm dialog accepted): its row goes,
  and GET /api/sessions no longer lists it;
- loads /icetest: every URL of /api/icetest (stun:, turn: over UDP and TCP,
  turns:) passes and a DataChannel through the relay gives an RTT and a
  throughput; with a wrong password in the form every TURN URL fails with 401.
A second ternd has no REST secret: /icetest says why it cannot run.
Screenshots of both pages go to $B/artifacts/console.png and icetest.png.
"""
import base64
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import unittest
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
from ternd import BUILD, ROOT, Ternd, conf, free_port, temp_dir, tls_files  # noqa: E402
from test_turn_clients import relay_range, stop_process  # noqa: E402

CHROMIUM_DIR = os.path.join(HERE, "chromium")
CHROMIUM = "/usr/bin/chromium"
TOKEN = "console-test-token-0123456789"
SECRET = "shared"
ARTIFACTS = os.path.join(ROOT, BUILD, "artifacts")


class ConsoleUI(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        d = temp_dir("tern-console-")
        cert, key = tls_files(d)
        cls.port, cls.tls_port = free_port(), free_port()
        cls.http_port = free_port(kinds=(socket.SOCK_STREAM,))
        cls.peer_port = free_port(kinds=(socket.SOCK_DGRAM,))
        lo, hi = relay_range()
        listen = ('{ proto = "udp"; ip = "127.0.0.1"; port = %d; }, '
                  '{ proto = "tcp"; ip = "127.0.0.1"; port = %d; }, '
                  '{ proto = "tls"; ip = "127.0.0.1"; port = %d; }'
                  % (cls.port, cls.port, cls.tls_port))
        extra = ('relay = { ip = [ "127.0.0.1" ]; min_port = %d; max_port = %d; };\n'
                 'tls = { cert = "%s"; key = "%s"; };\n'
                 'auth = { secrets = [ "%s" ]; };\n'
                 'peers = { allow_loopback = true; };\n'
                 'http = { ip = "127.0.0.1"; port = %d; admin_token = "%s"; };\n'
                 % (lo, hi, cert, key, SECRET, cls.http_port, TOKEN))
        # Chromium verifies a turns: server's certificate: trust this one by its key
        pub = subprocess.run(["openssl", "x509", "-in", cert, "-pubkey", "-noout"], check=True,
                             capture_output=True).stdout
        der = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "der"], input=pub, check=True,
                             capture_output=True).stdout
        cls.spki = base64.b64encode(hashlib.sha256(der).digest()).decode()
        cls.srv = Ternd(conf(cls.port, extra, listen=listen)).__enter__()
        cls.base = "http://127.0.0.1:%d" % cls.http_port
        cls.procs = []
        cls.procs.append(subprocess.Popen(["turnutils_peer", "-L", "127.0.0.1", "-p", str(cls.peer_port)],
                                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))

    @classmethod
    def tearDownClass(cls):
        for p in cls.procs:
            stop_process(p)
        cls.srv.stop()

    def setUp(self):
        self.assertTrue(os.access(CHROMIUM, os.X_OK), "chromium missing: run scripts/install-deps")
        self.assertTrue(shutil.which("node"), "node missing: run scripts/install-deps")
        self.assertTrue(os.path.isdir(os.path.join(CHROMIUM_DIR, "node_modules", "playwright-core")),
                        "playwright-core missing: run scripts/install-deps (npm ci in test/interop/chromium)")

    def api(self, path):
        req = urllib.request.Request(self.base + path, headers={"Authorization": "Bearer " + TOKEN})
        with urllib.request.urlopen(req, timeout=5) as r:
            return json.loads(r.read())

    def uclient(self):
        """UDP, REST credentials, two clients relaying ~25 s of 400-byte packets."""
        p = subprocess.Popen(["timeout", "60", "turnutils_uclient", "-p", str(self.port), "-e", "127.0.0.1",
                              "-r", str(self.peer_port), "-m", "2", "-n", "1250", "-l", "400", "-z", "20",
                              "-W", SECRET, "-u", "uclient", "127.0.0.1"],
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.procs.append(p)
        end = time.monotonic() + 10
        while time.monotonic() < end:
            if self.api("/api/sessions")["sessions"]:
                return p
            time.sleep(0.2)
        self.fail("uclient made no allocation:\n" + self.srv.stderr()[-3000:])

    def browse(self, srv, *args):
        """console.js's RESULT, and a text that says what happened for failures."""
        t0 = time.monotonic()
        try:
            p = subprocess.run(["timeout", "-k", "5", "90", "node", os.path.join(CHROMIUM_DIR, "console.js")]
                               + list(args), capture_output=True, text=True, timeout=100, cwd=CHROMIUM_DIR,
                               env=dict(os.environ, TERN_TRUST_SPKI=self.spki))
        except subprocess.TimeoutExpired as e:
            self.fail("console.js timed out: %s" % e)
        lines = [l for l in p.stdout.splitlines() if l.startswith("RESULT ")]
        why = "rc=%d after %.1fs\n%s\n%s\n--- server:\n%s" % (
            p.returncode, time.monotonic() - t0, p.stdout[-6000:], p.stderr[-2000:], srv.stderr()[-3000:])
        self.assertTrue(lines, why)
        res = json.loads(lines[-1][len("RESULT "):])
        self.assertNotIn("error", res, why)
        self.assertEqual(p.returncode, 0, why)
        return res, why

    def test_console_and_icetest_in_chromium(self):
        self.uclient()
        res, why = self.browse(self.srv, self.base, TOKEN, ARTIFACTS, "not-the-password")

        # / without the cookie went to the sign-in form, and back after it
        self.assertTrue(res["loginUrl"].startswith(self.base + "/login?next="), why)
        self.assertEqual(res["afterLogin"], self.base + "/", why)

        # the numbers of the uclient's traffic, read off the page second by second
        samples = res["samples"]
        self.assertTrue(all(s["allocations"] >= 1 for s in samples), why)
        self.assertTrue(all(s["toPeer"] > 0 and s["toClient"] > 0 for s in samples), why)
        # live, not a frozen page: some session's byte counts grew from the first sample to the last
        first, last = samples[0]["bytes"], samples[-1]["bytes"]
        self.assertTrue(any(last.get(i) not in (None, b) for i, b in first.items()), why)
        self.assertTrue(all(s["rows"] >= 1 for s in samples), why)
        self.assertEqual(samples[-1]["redis"], "off", why)
        self.assertEqual(samples[-1]["draining"], "no", why)

        # the session killed from the table is gone from the server too
        killed = res["killed"]
        self.assertRegex(killed, r"^\d{18}$", why)
        self.assertIn(killed, res["dialog"], why)
        self.assertIn("killed 1", res["killMessage"], why)
        self.assertEqual(res["killedRowAfterRefresh"], 0, why)
        self.assertGreaterEqual(res["rowsAfterKill"], 1, why)  # the other sessions are still listed
        self.assertNotIn(killed, [s["id"] for s in self.api("/api/sessions")["sessions"]], why)
        self.assertEqual(res["rowsFiltered"], 0, why)

        # the ICE self-test: every URL of this server passes, and the relay carries data
        urls = [u for s in self.api("/api/icetest")["iceServers"] for u in s["urls"]]
        want = {"stun:127.0.0.1:%d" % self.port, "turn:127.0.0.1:%d?transport=udp" % self.port,
                "turn:127.0.0.1:%d?transport=tcp" % self.port, "turns:127.0.0.1:%d?transport=tcp" % self.tls_port}
        self.assertEqual(set(urls), want, why)
        ice = res["icetest"]
        self.assertEqual(set(ice["urls"]), want, why)
        for url, r in ice["urls"].items():
            self.assertTrue(r["pass"], "%s: %s\n%s" % (url, r, why))
            self.assertGreater(r["types"]["srflx" if url.startswith("stun:") else "relay"], 0, why)
        self.assertTrue(ice["relay"]["pass"], why)
        self.assertEqual(ice["relay"]["pair"]["local"], "relay", why)
        self.assertEqual(ice["relay"]["pair"]["remote"], "relay", why)
        self.assertGreater(ice["rtt_ms"]["p50"], 0, why)
        self.assertGreaterEqual(ice["rtt_ms"]["p95"], ice["rtt_ms"]["p50"], why)
        self.assertGreater(ice["throughput_bps"], 1e6, why)

        # a wrong password: every TURN URL fails and says 401; STUN needs none
        bad = res["icetestWrong"]
        for url, r in bad["urls"].items():
            if url.startswith("stun:"):
                self.assertTrue(r["pass"], why)
            else:
                self.assertFalse(r["pass"], why)
                self.assertIn("401", r["reason"], "%s: %s\n%s" % (url, r, why))
        self.assertFalse(bad["relay"]["pass"], why)

        for name in ("console.png", "icetest.png"):
            self.assertGreater(os.path.getsize(os.path.join(ARTIFACTS, name)), 10000, why)

    def test_icetest_without_a_secret_says_why(self):
        port, hport = free_port(), free_port(kinds=(socket.SOCK_STREAM,))
        extra = ('auth = { users = ( { user = "u"; password = "p"; } ); };\n'
                 'http = { ip = "127.0.0.1"; port = %d; admin_token = "%s"; };\n' % (hport, TOKEN))
        with Ternd(conf(port, extra)) as srv:
            res, why = self.browse(srv, "--icetest-only", "http://127.0.0.1:%d" % hport, TOKEN)
        self.assertIn("no secret", res["banner"] or "", why)
        self.assertIn("no secret", res["icetest"]["error"], why)
        self.assertEqual(res["rows"], 0, why)


if __name__ == "__main__":
    unittest.main()
