"""A three-namespace test bed: client, server and peer, joined by veth pairs,
for tests that need traffic to cross real interfaces (the eBPF offload of
issue 14 attaches to interfaces other than loopback).

    client ns            server ns (ternd)               peer ns
    c0 10.78.1.2/24 ---- s0 10.78.1.1/24   s1 10.78.2.1/24 ---- p0 10.78.2.2/24
       fd78:1::2/64         fd78:1::1/64      fd78:2::1/64         fd78:2::2/64

The namespaces are named tern-off-{c,s,p}-PID (PID: this test process, so that
two runs on one machine never meet), created by Bed() and removed by
Bed.cleanup(), which tests register before anything else can fail.  Sockets
are made inside a namespace with `with netns(name):` (setns on this thread;
a socket stays in the namespace it was made in), processes with
`ip netns exec`.  Nothing leaves the namespaces.
"""
import ctypes
import os
import signal
import socket
import subprocess
import time
import urllib.request
from contextlib import contextmanager

from ternd import Ternd, TERND

CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)

CLIENT4, SERVER4_C, SERVER4_P, PEER4 = "10.78.1.2", "10.78.1.1", "10.78.2.1", "10.78.2.2"
CLIENT6, SERVER6_C, SERVER6_P, PEER6 = "fd78:1::2", "fd78:1::1", "fd78:2::1", "fd78:2::2"


def run(cmd, check=True, timeout=20):
    p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    if check and p.returncode != 0:
        raise RuntimeError("%s: %s" % (" ".join(cmd), (p.stderr or p.stdout).strip()))
    return p


@contextmanager
def netns(name):
    """Run the body in network namespace `name` (this thread only)."""
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    fd = os.open("/var/run/netns/" + name, os.O_RDONLY)
    try:
        if _libc.setns(fd, CLONE_NEWNET) != 0:
            raise OSError(ctypes.get_errno(), "setns " + name)
        yield
    finally:
        _libc.setns(home, CLONE_NEWNET)
        os.close(fd)
        os.close(home)


class Bed:
    """The three namespaces; construct, then call cleanup() whatever happens
    (the constructor cleans up itself if it fails half way)."""

    def __init__(self, tx_offload=False):
        pid = os.getpid()
        self.c, self.s, self.p = ("tern-off-%s-%d" % (x, pid) for x in "csp")
        self.made = []
        try:
            self._build(tx_offload)
        except Exception:
            self.cleanup()
            raise

    def _build(self, tx_offload):
        for n in (self.c, self.s, self.p):
            run(["ip", "netns", "add", n])
            self.made.append(n)
            run(["ip", "-n", n, "link", "set", "lo", "up"])
        # both ends are created inside the namespaces: deleting those removes them
        run(["ip", "link", "add", "c0", "netns", self.c, "type", "veth", "peer", "name", "s0", "netns", self.s])
        run(["ip", "link", "add", "s1", "netns", self.s, "type", "veth", "peer", "name", "p0", "netns", self.p])
        for ns, dev, a4, a6 in ((self.c, "c0", CLIENT4, CLIENT6), (self.s, "s0", SERVER4_C, SERVER6_C),
                                (self.s, "s1", SERVER4_P, SERVER6_P), (self.p, "p0", PEER4, PEER6)):
            run(["ip", "-n", ns, "addr", "add", a4 + "/24", "dev", dev])
            run(["ip", "-n", ns, "-6", "addr", "add", a6 + "/64", "dev", dev, "nodad"])
            run(["ip", "-n", ns, "link", "set", dev, "up"])
        run(["ip", "-n", self.c, "route", "add", "default", "via", SERVER4_C])
        run(["ip", "-n", self.c, "-6", "route", "add", "default", "via", SERVER6_C])
        run(["ip", "-n", self.p, "route", "add", "default", "via", SERVER4_P])
        run(["ip", "-n", self.p, "-6", "route", "add", "default", "via", SERVER6_P])
        self.set_tx(tx_offload)
        self.prime()

    def prime(self):
        """One datagram from the client and the peer to each server address,
        each family, waited for: the first IPv6 packets on fresh veths can wait
        ~1 s for neighbour discovery, which is better over before any test."""
        pairs = [(self.c, CLIENT4, SERVER4_C), (self.c, CLIENT6, SERVER6_C),
                 (self.p, PEER4, SERVER4_P), (self.p, PEER6, SERVER6_P)]
        socks = []
        try:
            for ns, src, dst in pairs:
                rx = self.udp(self.s, dst, 0, timeout=5)
                tx = self.udp(ns, src, 0)
                socks += [rx, tx]
                tx.sendto(b"prime", rx.getsockname()[:2])
            for rx in socks[::2]:
                rx.recvfrom(100)
        finally:
            for x in socks:
                x.close()

    def cleanup(self):
        for n in reversed(self.made):
            run(["ip", "netns", "del", n], check=False)
        self.made = []

    def set_tx(self, senders, server=None):
        """TX checksum offload on the client's and peer's veths (senders) and,
        if given, on the server's.  Off: packets cross with a full checksum
        (CHECKSUM_NONE) and the receiver checks it; on: CHECKSUM_PARTIAL."""
        ends = [(self.c, "c0", senders), (self.p, "p0", senders)]
        if server is not None:
            ends += [(self.s, "s0", server), (self.s, "s1", server)]
        for ns, dev, on in ends:
            run(["ip", "netns", "exec", ns, "ethtool", "-K", dev, "tx", "on" if on else "off"])

    def nstat(self, ns, *keys):
        """{key: absolute value} of nstat counters in namespace ns."""
        out = run(["ip", "netns", "exec", ns, "nstat", "-az"] + list(keys), check=False).stdout
        got = {k: 0 for k in keys}
        for line in out.splitlines():
            f = line.split()
            if len(f) >= 2 and f[0] in got:
                got[f[0]] = int(f[1])
        return got

    def udp(self, ns, host, port=0, timeout=1.0):
        """A UDP socket bound in namespace ns."""
        with netns(ns):
            s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
            s.bind((host, port))
        s.settimeout(timeout)
        return s

    def exec(self, ns, cmd, **kw):
        return subprocess.run(["ip", "netns", "exec", ns] + list(cmd), capture_output=True, text=True, **kw)


class BedTernd(Ternd):
    """A ternd started inside a namespace (ip netns exec execs ternd itself, so
    the PID is ternd's).  With expect_ready=False, start() returns at once;
    wait_exit() then gives the exit status of a start meant to fail."""

    def __init__(self, conf_text, ns, expect_ready=True, metrics_port=None, prefix=()):
        """prefix: a command that execs its arguments (e.g. setpriv ...), run
        inside the namespace before ternd."""
        super().__init__(conf_text, expect_ready)
        self.ns = ns
        self.metrics_port = metrics_port
        self.prefix = list(prefix)

    def __enter__(self):
        self.errf = open(self.log, "w")
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.ns] + self.prefix + [TERND, "-c", self.conf],
                                     stdout=subprocess.PIPE, stderr=self.errf, text=True)
        if self.expect_ready:
            self.ready_line = self.proc.stdout.readline()
            if "listening on" not in self.ready_line:
                self.stop()
                raise RuntimeError("ternd did not start: " + self.stderr())
        return self

    start = __enter__

    def wait_exit(self, timeout=10):
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def signal(self, sig):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, sig)

    def kill9(self):
        """SIGKILL, and wait until the process is gone."""
        self.signal(signal.SIGKILL)
        self.proc.wait(10)

    def lines(self, word):
        return [l for l in self.stderr().splitlines() if word in l]

    def metrics_text(self):
        with netns(self.ns):
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % self.metrics_port, timeout=5) as r:
                return r.read().decode()

    def metrics(self):
        """{(name, frozenset(labels)): value}"""
        out = {}
        for line in self.metrics_text().splitlines():
            if not line or line.startswith("#"):
                continue
            head, value = line.rsplit(" ", 1)
            labels = {}
            name = head
            if "{" in head:
                name, rest = head.split("{", 1)
                for pair in rest.rstrip("}").split(","):
                    k, v = pair.split("=", 1)
                    labels[k] = v.strip('"')
            out[(name, frozenset(labels.items()))] = float(value)
        return out

    def total(self, name, series=None, **labels):
        """Sum over every series of a family whose labels include these."""
        series = self.metrics() if series is None else series
        want = set(labels.items())
        return sum(v for (n, ls), v in series.items() if n == name and want <= ls)

    def wait_total(self, name, want, timeout=3.5, **labels):
        """Poll until the family's sum equals want (offloaded counts are read
        back from the kernel about once a second); return the last value."""
        end = time.monotonic() + timeout
        while True:
            v = self.total(name, **labels)
            if v == want or time.monotonic() > end:
                return v
            time.sleep(0.1)
