"""`ternctl icetest` against another TURN server: coturn's turnserver (Debian's
coturn package), over UDP and TCP, with a static long-term user and with TURN
REST credentials from a shared secret (--use-auth-secret), plus the 401 of a
wrong password and of a wrong secret. coturn's verbose log says each
allocation was created and deleted again by the test's Refresh(lifetime 0).

Two turnserver processes (coturn's secret mode replaces its static users), on
loopback, free ports, relay ranges of their own, no CLI, no TLS, pid files and
databases in a temporary directory; stopped by PID."""
import json
import os
import re
import subprocess
import sys
import tempfile
import time
import unittest
import shutil

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from ternd import ROOT, BUILD, free_port  # noqa: E402
from test_turn_clients import relay_range, stop_process, wait_tcp  # noqa: E402

TERNCTL = os.path.join(ROOT, BUILD, "ternctl")
REALM, USER, PASSWORD, SECRET = "test.example", "alice", "secret", "shared"


class Coturn:
    """One turnserver on 127.0.0.1:port (UDP and TCP) with the given auth flags."""

    def __init__(self, directory, name, relay, auth):
        self.port = free_port()
        self.log = os.path.join(directory, name + ".log")
        cmd = ["turnserver", "-n", "-v", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1",
               "--listening-port=%d" % self.port, "--min-port=%d" % relay[0],
               "--max-port=%d" % relay[1], "--realm=" + REALM, "--allow-loopback-peers",
               "--no-cli", "--no-tls", "--no-dtls", "--log-file=stdout", "--simple-log",
               "--pidfile=" + os.path.join(directory, name + ".pid"),
               "--userdb=" + os.path.join(directory, name + ".sqlite")] + auth
        with open(self.log, "w") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
        if not wait_tcp(self.port):
            self.stop()
            raise RuntimeError("coturn did not start: " + self.text()[-1500:])

    def text(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def stop(self):
        stop_process(self.proc)


def icetest(*args):
    return subprocess.run([TERNCTL, "icetest"] + list(args), capture_output=True, text=True,
                          timeout=30)


class IcetestCoturn(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="tern-icetest-coturn-")
        lo, hi = relay_range()
        half = (hi - lo) // 2
        cls.users = Coturn(cls.dir, "users", (lo, lo + half),
                           ["--lt-cred-mech", "--user=%s:%s" % (USER, PASSWORD)])
        try:
            cls.rest = Coturn(cls.dir, "rest", (lo + half + 1, hi),
                              ["--use-auth-secret", "--static-auth-secret=" + SECRET])
        except Exception:
            cls.users.stop()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.users.stop()
        cls.rest.stop()
        shutil.rmtree(cls.dir, ignore_errors=True)

    def deleted(self, srv):
        """Allocations coturn made and deleted by Refresh(lifetime 0), by its log."""
        time.sleep(0.2)  # coturn logs from its own threads
        text = srv.text()
        return (len(re.findall(r"session \d+: new, ", text)),
                len(re.findall(r"session \d+: refreshed, .*lifetime=0\b", text)))

    def passes(self, srv, *args):
        p = icetest(*args, "--json", "--duration", "1", "--rate", "100")
        self.assertEqual(p.returncode, 0, p.stderr + srv.text()[-1500:])
        self.assertEqual(p.stderr, "")
        r = json.loads(p.stdout)
        self.assertIs(r["pass"], True)
        self.assertEqual(r["sent"], {"a_to_b": 100, "b_to_a": 100})
        self.assertEqual(r["received"], r["sent"])
        self.assertEqual(r["loss_pct"], {"a_to_b": 0, "b_to_a": 0})
        self.assertTrue(0 < r["rtt_ms"]["p50"] <= r["rtt_ms"]["p99"] < 1000, r["rtt_ms"])
        self.assertGreater(min(r["throughput_bps"].values()), 100000)
        self.assertIs(r["cleanup"], True)
        made, gone = self.deleted(srv)
        self.assertGreater(made, 0, "no allocation in coturn's log")
        self.assertEqual(made, gone, "allocations left on coturn")
        return r

    def test_static_user_over_udp_and_tcp(self):
        for transport in ("udp", "tcp"):
            with self.subTest(transport=transport):
                r = self.passes(self.users, "turn:127.0.0.1:%d?transport=%s" % (self.users.port, transport),
                                "--user", USER, "--password", PASSWORD)
                self.assertEqual((r["transport"], r["user"]), (transport, USER))

    def test_rest_secret_over_udp_and_tcp(self):
        for transport in ("udp", "tcp"):
            with self.subTest(transport=transport):
                r = self.passes(self.rest, "turn:127.0.0.1:%d?transport=%s" % (self.rest.port, transport),
                                "--secret", SECRET)
                self.assertRegex(r["user"], r"^\d+:ternctl-icetest$")

    def test_wrong_password_and_wrong_secret_are_401(self):
        for srv, creds in ((self.users, ["--user", USER, "--password", "nope"]),
                           (self.rest, ["--secret", "not-the-secret"])):
            for transport in ("udp", "tcp"):
                with self.subTest(creds=creds[0], transport=transport):
                    p = icetest("turn:127.0.0.1:%d?transport=%s" % (srv.port, transport), *creds)
                    self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
                    self.assertEqual(p.stdout, "")
                    self.assertEqual(p.stderr.strip(),
                                     "ternctl: icetest failed: 401 Unauthorized: wrong credentials")


if __name__ == "__main__":
    unittest.main()
