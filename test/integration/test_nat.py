"""`ternc nat` (RFC 5780 NAT behaviour discovery) against real Linux NATs.

The test bed lives in network namespaces this file creates and removes: a
server namespace runs ternd on 11.0.0.1 with the alternate address 11.0.0.2,
behind a bridge that also carries the NATs' outside network 12.0.0.0/24; each
test adds a NAT namespace (iptables rules, 12.0.0.N outside, 10.0.0.1 inside)
and a client namespace (10.0.0.2) behind it. Names carry the PID, everything
is removed by cleanups even when a test fails, and no packet leaves the
namespaces. For every NAT, `ternc nat --json` must give the classification the
rules were written for, and coturn's turnutils_natdiscovery, run at the same
time from the same client, must agree where it tests the same thing.

Ports: the NATs that accept unsolicited packets (endpoint-independent
filtering, hairpinning) do it for 40000-40099 only, so the clients that need
them bind a port there (ternc --bind, natdiscovery -l); the client namespace's
ephemeral range is moved above, so no other socket takes one of those ports.
"""
import json
import os
import re
import shutil
import subprocess
import time
import unittest

from ternd import Ternd, TERNC, conf, free_port
from test_netns import NetnsTernd, ip

PID = os.getpid()
SERVER, ALT, PORT, ALT_PORT = "11.0.0.1", "11.0.0.2", 3478, 3479
INSIDE, CLIENT = "10.0.0.1", "10.0.0.2"
OPEN_PORTS = "40000:40099"  # what the DNAT rules let in
NATDISCOVERY = shutil.which("turnutils_natdiscovery")
ENV = dict(os.environ, ASAN_OPTIONS="detect_leaks=0")  # ternc's exit-time leaks are not under test
# Fast enough on a loss-free bed; a negative test costs (1 + retries) x timeout.
FAST = ["--timeout", "300", "--retries", "2"]
EI, AD, APD = "endpoint-independent", "address-dependent", "address-and-port-dependent"


def sh(ns, *argv, timeout=20):
    return subprocess.run(["ip", "netns", "exec", ns] + list(argv), capture_output=True, text=True,
                          timeout=timeout, check=True)


def start(ns, *argv):
    return subprocess.Popen(["ip", "netns", "exec", ns] + list(argv), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)


def finish(p, timeout=150):
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        p.kill()
        out, err = p.communicate()
    return p.returncode, out, err


def ternc_json(p):
    rc, out, err = finish(p)
    try:
        return rc, json.loads(out), err
    except ValueError:
        raise AssertionError("ternc nat printed no JSON (rc %s): %s %s" % (rc, out, err))


def natdiscovery(ns, *flags):
    return start(ns, "timeout", "60", NATDISCOVERY, "-L", CLIENT, *flags, "-p", str(PORT), SERVER)


def natdiscovery_verdict(p, what):
    """natdiscovery's 'NAT with Endpoint Independent Mapping!' as ternc's name."""
    out = finish(p)[1]
    if "No NAT!" in out:
        return "no NAT"
    m = re.search(r"NAT with (Endpoint Independent|Address Dependent|Address and Port Dependent) %s!"
                  % what, out)
    return m.group(1).lower().replace(" ", "-") if m else "no verdict: " + out[-300:]


def natdiscovery_hairpin(p):
    return "Received a request (maybe a successful hairpinning)" in finish(p)[1]


def natdiscovery_alive(p):
    """Lifetime test (-t -T N): did the answer to RESPONSE-PORT still get in?"""
    out = finish(p)[1]
    return "-= Mapping Lifetime" in out and "STUN receive timeout" not in out


class NatBed(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0 or not shutil.which("iptables"):
            raise unittest.SkipTest("needs root and iptables (scripts/install-deps --test)")
        cls.server = "tnS-%d" % PID
        if ip("netns", "add", cls.server, check=False).returncode != 0:
            raise unittest.SkipTest("ip netns add not permitted here")
        cls.addClassCleanup(ip, "netns", "del", cls.server, check=False)
        ip("-n", cls.server, "link", "set", "lo", "up")
        ip("-n", cls.server, "link", "add", "br0", "type", "bridge")
        ip("-n", cls.server, "link", "set", "br0", "up")
        # The server's two addresses, and the NATs' outside network on the same
        # wire (the NATs route to 11.0.0.0/24 through 12.0.0.254).
        for a in (SERVER, ALT, "12.0.0.254"):
            ip("-n", cls.server, "addr", "add", a + "/24", "dev", "br0")
        listen = ",".join('{ proto = "%s"; ip = "%s"; port = %d; }' % l for l in (
            ("udp", SERVER, PORT), ("tcp", SERVER, PORT), ("tcp", ALT, PORT), ("tcp", ALT, ALT_PORT)))
        text = conf(PORT, 'alternate = { ip = "%s"; port = %d; };' % (ALT, ALT_PORT), listen=listen)
        cls.ternd = NetnsTernd(text, cls.server).__enter__()
        cls.addClassCleanup(cls.ternd.stop)
        cls.nats = 0

    def nat(self, *rules, udp_timeout=None):
        """A NAT namespace with a client namespace behind it; rules are
        iptables arguments, with OUT, IN and PUB standing for the outside and
        inside interfaces and the public address. Returns (client ns, PUB)."""
        NatBed.nats += 1
        k = NatBed.nats
        nat, client, pub = "tnN%d-%d" % (k, PID), "tnC%d-%d" % (k, PID), "12.0.0.%d" % k
        out, inside = "tnO%d-%d" % (k, PID), "tnI%d-%d" % (k, PID)
        for ns in (nat, client):
            ip("netns", "add", ns)
            self.addCleanup(ip, "netns", "del", ns, check=False)
            ip("-n", ns, "link", "set", "lo", "up")
        # Each pair is created with both ends already in their namespaces, so
        # removing the namespaces removes it.
        ip("link", "add", out, "netns", nat, "type", "veth", "peer", "name", "tnX%d-%d" % (k, PID),
           "netns", self.server)
        ip("-n", self.server, "link", "set", "tnX%d-%d" % (k, PID), "master", "br0", "up")
        ip("link", "add", inside, "netns", nat, "type", "veth", "peer", "name", "eth0", "netns", client)
        for ns, dev, a in ((nat, out, pub), (nat, inside, INSIDE), (client, "eth0", CLIENT)):
            ip("-n", ns, "addr", "add", a + "/24", "dev", dev)
            ip("-n", ns, "link", "set", dev, "up")
        ip("-n", nat, "route", "add", "default", "via", "12.0.0.254")
        ip("-n", client, "route", "add", "default", "via", INSIDE)
        sh(nat, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        sh(client, "sysctl", "-qw", "net.ipv4.ip_local_port_range=50000 60999")
        names = {"OUT": out, "IN": inside, "PUB": pub}
        for rule in rules:
            sh(nat, "iptables", *[names.get(w, w) for w in rule.split()])
        if udp_timeout:
            sh(nat, "sysctl", "-qw", "net.netfilter.nf_conntrack_udp_timeout=%d" % udp_timeout,
               "net.netfilter.nf_conntrack_udp_timeout_stream=%d" % udp_timeout)
        return client, pub

    def classify(self, client, *extra):
        """Starts ternc nat --json and, alongside, natdiscovery's mapping,
        filtering and hairpinning tests; returns ternc's (rc, JSON, stderr) and
        natdiscovery's three answers (None when it is not installed)."""
        p = start(client, TERNC, "nat", "--json", *FAST, "--bind", CLIENT + ":40001", *extra, SERVER)
        nd = None
        if NATDISCOVERY:
            nd = (natdiscovery(client, "-m"), natdiscovery(client, "-f", "-l", "40002"),
                  natdiscovery(client, "-H", "-l", "40003"))
        rc, out, err = ternc_json(p)
        if nd:
            nd = (natdiscovery_verdict(nd[0], "Mapping"), natdiscovery_verdict(nd[1], "Filtering"),
                  natdiscovery_hairpin(nd[2]))
        return rc, out, err, nd

    def check(self, client, pub, mapping, filtering, hairpinning):
        rc, out, err, nd = self.classify(client)
        self.assertEqual(rc, 0, err)
        want = {"mapped": pub + ":" + out["mapped"].split(":")[1], "nat": True, "mapping": mapping,
                "filtering": filtering, "hairpinning": hairpinning, "binding_lifetime_s": None,
                "server": "%s:%d" % (SERVER, PORT), "transport": "udp"}
        self.assertEqual(out, want, err)
        if nd:
            self.assertEqual(nd, (mapping, filtering, hairpinning), "natdiscovery disagrees")
        return out

    def tcp_mapping(self, client):
        p = start(client, TERNC, "nat", "--json", "-t", "tcp", *FAST, SERVER)
        rc, out, err = ternc_json(p)
        self.assertEqual(rc, 0, err)
        self.assertEqual((out["transport"], out["filtering"], out["hairpinning"]), ("tcp", None, None))
        return out["mapping"]

    def test_masquerade_maps_independently_filters_by_address_and_port(self):
        client, pub = self.nat("-t nat -A POSTROUTING -o OUT -j MASQUERADE")
        out = self.check(client, pub, EI, APD, False)
        self.assertEqual(out["mapped"], pub + ":40001")  # MASQUERADE keeps the port when it can
        self.assertEqual(self.tcp_mapping(client), EI)

    def test_random_fully_maps_by_address_and_port(self):
        client, pub = self.nat("-t nat -A POSTROUTING -o OUT -j MASQUERADE --random-fully")
        self.check(client, pub, APD, APD, False)
        self.assertEqual(self.tcp_mapping(client), APD)

    def test_dnat_of_mapped_ports_filters_independently(self):
        # A "full cone": whatever reaches the public address at an open port
        # goes to the client at the same port, whoever sent it.
        client, pub = self.nat("-t nat -A POSTROUTING -o OUT -j MASQUERADE",
                               "-t nat -A PREROUTING -i OUT -d PUB -p udp --dport %s "
                               "-j DNAT --to-destination %s" % (OPEN_PORTS, CLIENT))
        self.check(client, pub, EI, EI, False)

    def test_hairpinning_nat_turns_packets_to_its_public_address_around(self):
        client, pub = self.nat("-t nat -A POSTROUTING -o OUT -j MASQUERADE",
                               "-t nat -A PREROUTING -i IN -d PUB -p udp --dport %s "
                               "-j DNAT --to-destination %s" % (OPEN_PORTS, CLIENT),
                               # the client sees its neighbour at its public address
                               "-t nat -A POSTROUTING -o IN -s 10.0.0.0/24 -d %s -j SNAT "
                               "--to-source PUB" % CLIENT)
        self.check(client, pub, EI, APD, True)

    def test_lifetime_found_within_seconds_of_conntrack_timeout(self):
        client, pub = self.nat("-t nat -A POSTROUTING -o OUT -j MASQUERADE", udp_timeout=15)
        t0 = time.time()
        p = start(client, TERNC, "nat", "--json", "--lifetime", "--max-wait", "30", *FAST, SERVER)
        nd = None
        if NATDISCOVERY:  # one idle time below the timeout, one above, meanwhile
            nd = (natdiscovery(client, "-t", "-T", "5"), natdiscovery(client, "-t", "-T", "25"))
        rc, out, err = ternc_json(p)
        took = time.time() - t0
        self.assertEqual(rc, 0, err)
        life = out["binding_lifetime_s"]
        self.assertLessEqual(abs(life - 15), 3, out)
        # two rounds at most: the ladder up to 18 s, then ~15 s
        self.assertLess(took, 45, out)
        if nd:
            self.assertEqual((natdiscovery_alive(nd[0]), natdiscovery_alive(nd[1])), (True, False),
                             "natdiscovery disagrees")


class Loopback(unittest.TestCase):
    """Without a NAT (ternd on loopback), and the ways a run can fall short."""

    def ternc(self, *args):
        p = subprocess.run([TERNC, "nat"] + list(args), capture_output=True, text=True, timeout=60,
                           env=ENV)
        return p.returncode, p.stdout, p.stderr

    def test_no_nat_everything_open_and_lifetime_at_least_max_wait(self):
        p1 = free_port(hosts=("127.0.0.1", "127.0.0.2"))
        p2 = free_port(hosts=("127.0.0.1", "127.0.0.2"))
        extra = 'alternate = { ip = "127.0.0.2"; port = %d; };' % p2
        with Ternd(conf(p1, extra)):
            rc, out, err = self.ternc("--json", "--lifetime", "--max-wait", "2", *FAST,
                                      "127.0.0.1:%d" % p1)
            self.assertEqual(rc, 0, err)
            r = json.loads(out)
            self.assertEqual(r, {"mapped": r["mapped"], "nat": False, "mapping": EI, "filtering": EI,
                                 "hairpinning": True, "binding_lifetime_s": 2.0,
                                 "server": "127.0.0.1:%d" % p1, "transport": "udp"})
            # the human table, and TCP with no listener on the alternate IP
            rc, out, err = self.ternc(*FAST, "127.0.0.1:%d" % p1)
            self.assertEqual(rc, 0, err)
            self.assertRegex(out, r"(?m)^mapping +endpoint-independent$")
            self.assertRegex(out, r"(?m)^nat +no")
            rc, out, err = self.ternc("--json", "-t", "tcp", *FAST, "127.0.0.1:%d" % p1)
            self.assertEqual(rc, 2, err)
            self.assertIsNone(json.loads(out)["mapping"])
            self.assertIn("127.0.0.2:%d" % p1, err)

    def test_server_without_alternate_runs_what_it_can_and_exits_2(self):
        port = free_port()
        with Ternd(conf(port)):
            rc, out, err = self.ternc("--json", "--lifetime", *FAST, "127.0.0.1:%d" % port)
        self.assertEqual(rc, 2, err)
        self.assertIn("no OTHER-ADDRESS", err)
        r = json.loads(out)
        self.assertEqual((r["mapping"], r["filtering"], r["binding_lifetime_s"]), (None, None, None))
        self.assertEqual((r["nat"], r["hairpinning"], r["mapped"].startswith("127.0.0.1:")),
                         (False, True, True))

    def test_unreachable_server_and_bad_arguments_exit_1(self):
        port = free_port()
        t0 = time.time()
        rc, out, err = self.ternc("--json", "--timeout", "200", "--retries", "1", "127.0.0.1:%d" % port)
        self.assertEqual((rc, out), (1, ""))
        self.assertIn("no answer from 127.0.0.1:%d" % port, err)
        self.assertLess(time.time() - t0, 3)
        for bad in ([], ["-t", "sctp", "127.0.0.1"], ["--timeout", "0", "127.0.0.1"],
                    ["--lifetime", "-t", "tcp", "127.0.0.1"], ["--bind", "nowhere:1", "127.0.0.1"],
                    ["--retries", "x", "127.0.0.1"], ["127.0.0.1", "3478"]):
            self.assertEqual(self.ternc(*bad)[0], 1, bad)


if __name__ == "__main__":
    unittest.main()
