"""Smoke runs of every ternbench mode against a real ternd (and the echo
floor), at low rates: each must deliver everything it sent. Correctness only;
the figures themselves come from scripts/bench-vs-coturn, never from here."""
import os
import socket
import subprocess
import unittest

from ternd import BUILD, ROOT, Ternd, free_port

TERNBENCH = os.path.join(ROOT, BUILD, "ternbench")
TERNECHO = os.path.join(ROOT, BUILD, "ternecho")


def bench_conf(port):
    lo = free_port(kinds=(socket.SOCK_DGRAM,))
    lo = lo if lo + 299 < 65536 else 40000
    return ('realm = "bench.example"; workers = 2;\n'
            'listen = ( { proto = "udp"; ip = "127.0.0.1"; port = %d; },'
            ' { proto = "tcp"; ip = "127.0.0.1"; port = %d; } );\n'
            'relay = { ip = [ "127.0.0.1" ]; min_port = %d; max_port = %d; };\n'
            'auth = { users = ( { user = "bench"; password = "bench-pass"; } ); };\n'
            'peers = { allow_loopback = true; };\n'
            'limits = { unauth_rate = 0; };\nlog = { level = "warn"; };\n'
            % (port, port, lo, lo + 299))


def run(*args, timeout=60):
    """Run ternbench; return the key=value pairs of its result line."""
    p = subprocess.run([TERNBENCH, *args], capture_output=True, text=True, timeout=timeout)
    lines = [l for l in p.stdout.splitlines() if l.startswith("result ")]
    if p.returncode != 0 or not lines:
        raise AssertionError("ternbench %s failed (%d):\n%s%s" % (args, p.returncode, p.stdout, p.stderr))
    return dict(kv.split("=", 1) for kv in lines[-1].split()[1:]), p.stdout


class BenchSmoke(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.port = free_port()
        cls.srv = Ternd(bench_conf(cls.port)).__enter__()
        cls.addr = ("127.0.0.1", str(cls.port))

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def test_binding_udp(self):
        r, _ = run("binding-udp", *self.addr, "-s", "4", "-w", "4", "--count", "2000", "-d", "20")
        self.assertEqual(r["mode"], "binding-udp")
        self.assertEqual(int(r["answered"]), 2000)
        self.assertEqual(int(r["sent"]), 2000)
        self.assertGreater(float(r["p99_us"]), 0)

    def test_binding_tcp(self):
        r, _ = run("binding-tcp", *self.addr, "-s", "4", "-w", "8", "--count", "2000", "-d", "20")
        self.assertEqual(int(r["answered"]), 2000)
        self.assertEqual(int(r["sent"]), 2000)

    def test_relay_small_and_large(self):
        for size in ("100", "1200"):
            r, _ = run("relay", *self.addr, "-n", "20", "-b", size, "-r", "2000", "-d", "1")
            self.assertEqual(r["allocations"], "20")
            self.assertGreater(int(r["sent"]), 1000)
            self.assertEqual(r["delivered"], r["sent"], r)
            self.assertEqual(float(r["loss_pct"]), 0.0)

    def test_relay_closed_loop_count(self):
        r, _ = run("relay", *self.addr, "-n", "2", "-w", "4", "--count", "500", "-d", "20")
        self.assertEqual(int(r["sent"]), 1000)
        self.assertEqual(int(r["delivered"]), 1000)

    def test_allocate(self):
        r, _ = run("allocate", *self.addr, "-n", "4", "--count", "100", "-d", "20")
        self.assertGreaterEqual(int(r["handshakes"]), 100)
        self.assertEqual(int(r["failed"]), 0)

    def test_hold_refreshes_and_deletes(self):
        r, out = run("hold", *self.addr, "-n", "50", "-L", "10", "-d", "6")
        self.assertIn("holding 50\n", out)
        self.assertEqual(int(r["allocations"]), 50)
        self.assertEqual(int(r["failed"]), 0)
        self.assertGreaterEqual(int(r["refreshes"]), 50)  # each one at half its lifetime
        self.assertEqual(int(r["deleted"]), 50)

    def test_wrong_password_fails(self):
        p = subprocess.run([TERNBENCH, "hold", *self.addr, "-n", "2", "-p", "wrong", "-d", "1"],
                           capture_output=True, text=True, timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("result mode=hold allocations=0 failed=2", p.stdout)


class EchoSmoke(unittest.TestCase):
    def test_echo_answers_binding_load(self):
        port = free_port(kinds=(socket.SOCK_DGRAM,))
        echo = subprocess.Popen([TERNECHO, "127.0.0.1", str(port), "-t", "2"],
                                stdout=subprocess.PIPE, text=True)
        try:
            self.assertIn("listening on", echo.stdout.readline())
            r, _ = run("binding-udp", "127.0.0.1", str(port), "-s", "4", "-w", "4",
                       "--count", "2000", "-d", "20")
            self.assertEqual(int(r["answered"]), 2000)
        finally:
            echo.terminate()
            echo.wait(5)
            echo.stdout.close()


if __name__ == "__main__":
    unittest.main()
