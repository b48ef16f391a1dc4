"""The Prometheus endpoint end to end: scrape /metrics before and after real
traffic (Binding, an allocation with a permission, a channel and relayed data
both ways, a wrong password, malformed datagrams, a TCP session) and check
each delta on its own series; promtool accepts the text; other paths are 404;
a metrics port in use stops the start with one clear line."""
import os
import shutil
import socket
import struct
import subprocess
import time
import unittest
import urllib.error
import urllib.request

from ternd import Ternd, attr, free_port, parse, recv_frame, request, udp_exchange
from test_turn import error, turn_conf, udp_peer
from turnclient import Turn

FAMILIES = {
    "tern_build_info": "gauge",
    "tern_uptime_seconds": "gauge",
    "tern_workers": "gauge",
    "tern_allocations": "gauge",
    "tern_sessions": "gauge",
    "tern_requests_total": "counter",
    "tern_auth_failures_total": "counter",
    "tern_allocations_created_total": "counter",
    "tern_permissions_created_total": "counter",
    "tern_channels_bound_total": "counter",
    "tern_relay_bytes_total": "counter",
    "tern_relay_packets_total": "counter",
    "tern_dropped_packets_total": "counter",
}


def parse_metrics(text):
    """{(name, frozenset of (label, value)): float} and {family: type}."""
    series, types = {}, {}
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
            continue
        if not line or line.startswith("#"):
            continue
        head, value = line.rsplit(" ", 1)
        labels = {}
        if "{" in head:
            name, rest = head.split("{", 1)
            for pair in rest.rstrip("}").split(","):
                k, v = pair.split("=", 1)
                labels[k] = v.strip('"')
        else:
            name = head
        series[(name, frozenset(labels.items()))] = float(value)
    return series, types


def total(series, name, **labels):
    """Sum of every series of a family whose labels include these (so the
    per-worker series add up to the server's figure)."""
    want = set(labels.items())
    return sum(v for (n, ls), v in series.items() if n == name and want <= ls)


class Metrics(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.port = free_port()
        cls.mport = free_port(kinds=(socket.SOCK_STREAM,))
        text = turn_conf(cls.port, extra='metrics = { ip = "127.0.0.1"; port = %d; };' % cls.mport)
        cls.srv = Ternd(text).__enter__()
        cls.url = "http://127.0.0.1:%d/metrics" % cls.mport

    @classmethod
    def tearDownClass(cls):
        assert cls.srv.stop() == 0

    def scrape_text(self):
        with urllib.request.urlopen(self.url, timeout=5) as r:
            self.assertEqual(r.status, 200)
            self.assertTrue(r.headers["Content-Type"].startswith("text/plain; version=0.0.4"),
                            r.headers["Content-Type"])
            return r.read().decode()

    def scrape(self):
        return parse_metrics(self.scrape_text())[0]

    def assert_delta(self, before, name, delta, **labels):
        """Workers count on their own threads, maybe just after the packet
        that shows the effect: poll briefly for the expected figure."""
        want = total(before, name, **labels) + delta
        deadline = time.time() + 3
        while True:
            got = total(self.scrape(), name, **labels)
            if got == want or time.time() > deadline:
                break
            time.sleep(0.05)
        self.assertEqual(got, want, "%s%s" % (name, labels))

    def test_families_have_help_and_type_and_pass_promtool(self):
        text = self.scrape_text()
        series, types = parse_metrics(text)
        for name, kind in FAMILIES.items():
            self.assertEqual(types.get(name), kind, name)
            self.assertIn("# HELP %s " % name, text)
        self.assertEqual(total(series, "tern_workers"), 2)
        self.assertEqual(total(series, "tern_build_info", version="0.1.0"), 1)
        self.assertGreaterEqual(total(series, "tern_uptime_seconds"), 0)
        self.assertEqual({dict(ls)["worker"] for (n, ls) in series if n == "tern_allocations"},
                         {"0", "1"})
        for t in ("tcp", "tls", "dtls"):
            self.assertIn(("tern_sessions", frozenset({("worker", "0"), ("transport", t)})), series)
        promtool = shutil.which("promtool")
        self.assertTrue(promtool, "promtool missing: run scripts/install-deps (package prometheus)")
        p = subprocess.run([promtool, "check", "metrics"], input=text, capture_output=True,
                           text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertEqual((p.stdout + p.stderr).strip(), "")

    def test_other_path_404(self):
        for path in ("/", "/metricsx", "/metrics/x"):
            with self.assertRaises(urllib.error.HTTPError) as cm:
                urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.mport, path), timeout=5)
            self.assertEqual(cm.exception.code, 404, path)

    def test_binding_requests_and_errors(self):
        before = self.scrape()
        for _ in range(3):
            msg, _ = request()
            reply, _ = udp_exchange("127.0.0.1", self.port, msg)
            self.assertEqual(parse(reply)["cls"], 2)  # success
        # An unknown comprehension-required attribute: 420.
        msg, _ = request(attr(0x7F01, b"abcd"))
        reply, _ = udp_exchange("127.0.0.1", self.port, msg)
        self.assertEqual(parse(reply)["cls"], 3)
        self.assert_delta(before, "tern_requests_total", 3, method="binding", code="200")
        self.assert_delta(before, "tern_requests_total", 1, method="binding", code="420")
        self.assert_delta(before, "tern_requests_total", 0, method="binding", code="400")

    def test_malformed_datagrams_dropped(self):
        before = self.scrape()
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.addCleanup(s.close)
        s.sendto(b"\xff" * 24, ("127.0.0.1", self.port))  # not STUN
        msg, _ = request(fingerprint=True)
        s.sendto(msg[:-1] + bytes([msg[-1] ^ 1]), ("127.0.0.1", self.port))  # bad FINGERPRINT
        self.assert_delta(before, "tern_dropped_packets_total", 2, reason="malformed")
        self.assert_delta(before, "tern_requests_total", 0, method="binding")

    def test_turn_allocation_channel_relay_and_wrong_password(self):
        before = self.scrape()
        bad = Turn("127.0.0.1", self.port, password="wrong")
        self.addCleanup(bad.close)
        self.assertEqual(error(bad.allocate()), 401)  # the challenge, then the wrong key

        t = Turn("127.0.0.1", self.port)
        self.addCleanup(t.close)
        self.assertEqual(t.allocate()["cls"], 2)  # after its own 401 challenge
        peer = udp_peer()
        self.addCleanup(peer.close)
        self.assertEqual(t.permission(peer.getsockname())["cls"], 2)
        self.assertEqual(t.channel_bind(0x4001, peer.getsockname())["cls"], 2)
        t.send_channel(0x4001, b"x" * 100)
        self.assertEqual(peer.recvfrom(2000)[0], b"x" * 100)
        peer.sendto(b"y" * 50, t.relayed[0])
        self.assertEqual(t.recv_data(), ("channel", 0x4001, b"y" * 50))
        t.send_channel(0x4002, b"z" * 10)  # no such channel: dropped

        self.assert_delta(before, "tern_requests_total", 3, method="allocate", code="401")
        self.assert_delta(before, "tern_requests_total", 1, method="allocate", code="200")
        self.assert_delta(before, "tern_requests_total", 1, method="create_permission", code="200")
        self.assert_delta(before, "tern_requests_total", 1, method="channel_bind", code="200")
        self.assert_delta(before, "tern_auth_failures_total", 1)
        self.assert_delta(before, "tern_allocations_created_total", 1)
        self.assert_delta(before, "tern_permissions_created_total", 1)
        self.assert_delta(before, "tern_channels_bound_total", 1)
        self.assert_delta(before, "tern_allocations", 1)
        self.assert_delta(before, "tern_relay_bytes_total", 100, direction="to_peer")
        self.assert_delta(before, "tern_relay_packets_total", 1, direction="to_peer")
        self.assert_delta(before, "tern_relay_bytes_total", 50, direction="to_client")
        self.assert_delta(before, "tern_relay_packets_total", 1, direction="to_client")
        self.assert_delta(before, "tern_dropped_packets_total", 1, reason="no_channel")

        self.assertEqual(t.refresh(0)["cls"], 2)
        self.assert_delta(before, "tern_allocations", 0)
        self.assert_delta(before, "tern_allocations_created_total", 1)  # counters never go down

    def test_tcp_session_gauge(self):
        before = self.scrape()
        c = socket.create_connection(("127.0.0.1", self.port), timeout=2)
        msg, _ = request()
        c.sendall(msg)
        self.assertIsNotNone(recv_frame(c))
        self.assert_delta(before, "tern_sessions", 1, transport="tcp")
        self.assert_delta(before, "tern_requests_total", 1, method="binding", code="200")
        c.sendall(b"\xff" * 24)  # unframed bytes: the stream is lost
        self.assert_delta(before, "tern_dropped_packets_total", 1, reason="malformed")
        self.assert_delta(before, "tern_sessions", 0, transport="tcp")
        c.close()


class MetricsPortInUse(unittest.TestCase):
    def test_clear_error_and_nonzero_exit(self):
        port, mport = free_port(), free_port(kinds=(socket.SOCK_STREAM,))
        hold = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.addCleanup(hold.close)
        hold.bind(("127.0.0.1", mport))
        hold.listen(1)
        text = turn_conf(port, extra='metrics = { ip = "127.0.0.1"; port = %d; };' % mport)
        srv = Ternd(text, expect_ready=False)
        with srv:
            rc = srv.proc.wait(10)
            out = srv.proc.stdout.read()
        self.assertNotEqual(rc, 0)
        self.assertNotIn("listening on", out)
        errors = [l for l in srv.stderr().splitlines() if " error " in l]
        self.assertEqual(len(errors), 1, srv.stderr())
        self.assertTrue(errors[0].endswith("cannot listen on metrics 127.0.0.1:%d: Address already in use" % mport),
                        errors[0])


if __name__ == "__main__":
    unittest.main()
