"""`ternctl icetest` (client/ternctl_icetest.c, client/turnc.c) against a real
ternd: two allocations relay numbered packets to each other through channels
over UDP and TCP, with a static user and with REST credentials; the verdict,
the JSON report and the one-line reasons of the failures (wrong password,
nothing listening, loopback peers refused), the exit statuses, and that a run
leaves no allocation behind."""
import json
import os
import re
import socket
import subprocess
import time
import unittest

from ternd import ROOT, BUILD, Ternd, free_port
from test_ternctl import control_conf, control_dir

TERNCTL = os.path.join(ROOT, BUILD, "ternctl")
USER, PASSWORD, SECRET = "alice", "secret", "shared"


def icetest(*args, timeout=30):
    t0 = time.monotonic()
    p = subprocess.run([TERNCTL, "icetest"] + list(args), capture_output=True, text=True,
                       timeout=timeout)
    return p, time.monotonic() - t0


def listen_both(port):
    """UDP and TCP on 127.0.0.1 and on ::1."""
    return ", ".join('{ proto = "%s"; ip = "%s"; port = %d; }' % (proto, ip, port)
                     for ip in ("127.0.0.1", "::1") for proto in ("udp", "tcp"))


class IcetestTernd(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.port = free_port(hosts=("127.0.0.1", "::1"))
        cls.sock = os.path.join(control_dir(), "ternd.sock")
        # nonce_lifetime 1: the Refresh that ends a 2-s run meets 438 Stale Nonce
        cls.srv = Ternd(control_conf(cls.port, cls.sock, listen=listen_both(cls.port),
                                     auth_extra='secrets = [ "%s" ]; nonce_lifetime = 1;' % SECRET)
                        ).__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def url(self, transport="udp", host="127.0.0.1"):
        return "turn:%s:%d?transport=%s" % (host, self.port, transport)

    def allocations(self):
        p = subprocess.run([TERNCTL, "-s", self.sock, "status", "--json"], capture_output=True,
                           text=True, timeout=10)
        self.assertEqual(p.returncode, 0, p.stderr)
        return json.loads(p.stdout)["allocations"]

    def passes(self, *args):
        p, _ = icetest(*args, "--json")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stderr, "")
        r = json.loads(p.stdout)
        self.assertIs(r["pass"], True)
        self.assertIsNone(r["reason"])
        self.assertIs(r["cleanup"], True)
        self.assertEqual(self.allocations(), 0, "the run left allocations behind")
        return r

    def test_relays_both_ways_over_udp_and_tcp_with_user_and_secret(self):
        for transport in ("udp", "tcp"):
            for creds in (["--user", USER, "--password", PASSWORD], ["--secret", SECRET]):
                with self.subTest(transport=transport, creds=creds[0]):
                    r = self.passes(self.url(transport), *creds, "--duration", "1",
                                    "--rate", "100", "--size", "300")
                    self.assertEqual(r["transport"], transport)
                    self.assertEqual(r["rest"], creds[0] == "--secret")
                    if creds[0] == "--secret":
                        self.assertRegex(r["user"], r"^\d+:ternctl-icetest$")
                        self.assertGreater(int(r["user"].split(":")[0]), time.time())
                    else:
                        self.assertEqual(r["user"], USER)
                    self.assertEqual((r["rate"], r["size"], r["duration_s"]), (100, 300, 1))
                    self.assertEqual(r["sent"], {"a_to_b": 100, "b_to_a": 100})
                    self.assertEqual(r["received"], r["sent"])
                    self.assertEqual(r["loss_pct"], {"a_to_b": 0, "b_to_a": 0})
                    self.assertEqual(r["duplicates"], {"a_to_b": 0, "b_to_a": 0})
                    rtt = r["rtt_ms"]
                    self.assertTrue(0 < rtt["min"] <= rtt["p50"] <= rtt["p95"] <= rtt["p99"]
                                    <= rtt["max"] < 1000, rtt)
                    # 100 packets of 300 bytes in 1 s: 240 kbit/s each way
                    for v in r["throughput_bps"].values():
                        self.assertAlmostEqual(v, 240000, delta=24000)
                    a, b = r["relayed"]["a"], r["relayed"]["b"]
                    self.assertNotEqual(a, b)
                    self.assertTrue(a.startswith("127.0.0.1:") and b.startswith("127.0.0.1:"))
                    self.assertEqual(r["channel"], 0x4000)
                    self.assertGreater(r["setup_ms"], 0)

    def test_stale_nonce_on_the_closing_refresh_is_retried(self):
        # the nonce of the setup is 2 s old when the allocations are deleted
        r = self.passes(self.url(), "--user", USER, "--password", PASSWORD, "--duration", "2",
                        "--rate", "20")
        self.assertEqual(r["received"], {"a_to_b": 40, "b_to_a": 40})

    def test_ipv6_literal_and_default_transport(self):
        r = self.passes("turn:[::1]:%d" % self.port, "--secret", SECRET, "--duration", "0.5")
        self.assertEqual((r["server"], r["transport"]), ("[::1]:%d" % self.port, "udp"))

    def test_host_name_is_resolved(self):
        r = self.passes(self.url("tcp", host="localhost"), "--secret", SECRET, "--duration", "0.5")
        self.assertIn(r["server"], ("127.0.0.1:%d" % self.port, "[::1]:%d" % self.port))

    def test_text_report(self):
        p, _ = icetest(self.url("tcp"), "--user", USER, "--password", PASSWORD, "--duration", "1")
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertEqual(p.stderr, "")
        out = p.stdout
        self.assertRegex(out, r"(?m)^server +127\.0\.0\.1:%d over tcp, user alice$" % self.port)
        self.assertRegex(out, r"(?m)^loss +A->B 0\.00% \(50/50\), B->A 0\.00% \(50/50\)$")
        self.assertRegex(out, r"(?m)^rtt +p50 [\d.]+ ms, p95 [\d.]+ ms, p99 [\d.]+ ms")
        self.assertRegex(out, r"(?m)^throughput +A->B 80\.0 kbit/s, B->A 80\.0 kbit/s$")
        self.assertRegex(out, r"(?m)^cleanup +both allocations deleted$")
        self.assertRegex(out, r"(?m)^result +pass$")

    def fails(self, *args, json_out=False):
        """The one-line reason of a failed run (exit status 1)."""
        p, took = icetest(*args, *(["--json"] if json_out else []))
        self.assertEqual(p.returncode, 1, p.stdout + p.stderr)
        lines = p.stderr.splitlines()
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertTrue(lines[0].startswith("ternctl: icetest failed: "), lines[0])
        if json_out:
            r = json.loads(p.stdout)
            self.assertIs(r["pass"], False)
            self.assertEqual("ternctl: icetest failed: " + r["reason"], lines[0])
            return lines[0], took, r
        self.assertEqual(p.stdout, "")
        return lines[0], took

    def test_wrong_password_is_401(self):
        for transport in ("udp", "tcp"):
            with self.subTest(transport=transport):
                line, _, r = self.fails(self.url(transport), "--user", USER, "--password", "nope",
                                        json_out=True)
                self.assertIn("401 Unauthorized: wrong credentials", line)
                self.assertEqual(r["stage"], "allocate")
                self.assertIsNone(r["relayed"]["a"])
        line, _ = self.fails(self.url(), "--secret", "not-the-secret")
        self.assertIn("401", line)
        line, _ = self.fails(self.url())
        self.assertIn("401 Unauthorized: the server wants credentials", line)
        self.assertEqual(self.allocations(), 0)

    def test_nothing_listening(self):
        port = free_port()
        line, took = self.fails("turn:127.0.0.1:%d?transport=udp" % port, "--secret", SECRET)
        self.assertIn("timeout: no answer from 127.0.0.1:%d over udp" % port, line)
        self.assertLess(took, 6)
        line, took = self.fails("turn:127.0.0.1:%d?transport=tcp" % port, "--secret", SECRET)
        self.assertIn("connection refused: nothing listens at 127.0.0.1:%d over tcp" % port, line)
        self.assertLess(took, 6)

    def test_silent_server_is_a_timeout(self):
        # a UDP socket that takes datagrams and never answers
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        self.addCleanup(s.close)
        line, took = self.fails("turn:127.0.0.1:%d" % s.getsockname()[1], "--secret", SECRET)
        self.assertRegex(line, r"timeout: no answer from 127\.0\.0\.1:\d+ over udp within 3\.0 s$")
        self.assertLess(took, 6)

    def test_bad_usage_exits_2(self):
        for args in ([], ["stun:127.0.0.1"], ["turns:127.0.0.1:5349"], ["turn:"],
                     ["turn:127.0.0.1?transport=sctp"], ["turn:::1:3478"], ["turn:h:99999"],
                     ["turn:h", "--user", "u"], ["turn:h", "--secret", "s", "--user", "u",
                                                  "--password", "p"],
                     ["turn:h", "--rate", "0"], ["turn:h", "--size", "8"],
                     ["turn:h", "--duration", "-1"], ["turn:h", "--bogus", "1"],
                     ["turn:h", "turn:i"], ["turn:h", "--rate"]):
            with self.subTest(args=args):
                p, _ = icetest(*args)
                self.assertEqual(p.returncode, 2, p.stderr)
                self.assertEqual(p.stdout, "")
                self.assertEqual(len(p.stderr.splitlines()), 1, p.stderr)
        p = subprocess.run([TERNCTL, "--help"], capture_output=True, text=True, timeout=10)
        self.assertIn("icetest turn:HOST", p.stdout)


class IcetestLoopbackRefused(unittest.TestCase):
    def test_safe_default_refuses_loopback_peers_with_a_reason(self):
        port = free_port()
        with Ternd(control_conf(port, os.path.join(control_dir(), "ternd.sock"),
                                peers="")):
            p, _ = icetest("turn:127.0.0.1:%d" % port, "--secret", SECRET, "--json")
        self.assertEqual(p.returncode, 1, p.stderr)
        r = json.loads(p.stdout)
        self.assertEqual(r["stage"], "permission")
        self.assertTrue(r["reason"].startswith("permission refused: 403 "), r["reason"])
        self.assertIn("allow_loopback", r["reason"])
        self.assertIs(r["cleanup"], True)


if __name__ == "__main__":
    unittest.main()
