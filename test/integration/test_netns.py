"""Regression tests that need a host of their own: ternd runs in a network
namespace the test creates (joined to a client namespace by a veth pair on
11.0.0.0/24, a range in no built-in deny list) and removes again, so the
"host's addresses" are the namespace's and nothing leaves this machine."""
import json
import os
import subprocess
import sys
import unittest

from ternd import Ternd, TERND, conf

HERE = os.path.dirname(os.path.abspath(__file__))
SERVER_IP, CLIENT_IP = "11.0.0.1", "11.0.0.2"


def ip(*args, check=True):
    return subprocess.run(["ip"] + list(args), capture_output=True, text=True, timeout=20, check=check)


class NetnsTernd(Ternd):
    """A Ternd started inside a network namespace (ip netns exec execs ternd
    itself, so the PID Ternd signals is ternd's)."""

    def __init__(self, conf_text, netns):
        super().__init__(conf_text)
        self.netns = netns

    def __enter__(self):
        self.errf = open(self.log, "w")
        self.proc = subprocess.Popen(["ip", "netns", "exec", self.netns, TERND, "-c", self.conf],
                                     stdout=subprocess.PIPE, stderr=self.errf, text=True)
        self.ready_line = self.proc.stdout.readline()
        if "listening on" not in self.ready_line:
            self.stop()
            raise RuntimeError("ternd did not start: " + self.stderr())
        return self


# Run inside the client namespace: Allocate, then one CreatePermission per
# peer given; prints the answers' classes and error codes as JSON.
CLIENT = r"""
import json, sys
sys.path.insert(0, sys.argv[1])
from turnclient import Turn, A_ERROR
from ternd import error_code
def code(r):
    if r is None:
        return "timeout"
    return 200 if r["cls"] == 2 else error_code(r["attrs"][A_ERROR][0]) if A_ERROR in r["attrs"] else r["cls"]
t = Turn(sys.argv[2], int(sys.argv[3]), timeout=3)
out = {"allocate": code(t.allocate())}
out["relayed"] = getattr(t, "relayed", [])
for peer in sys.argv[4:]:
    out[peer] = code(t.permission((peer, 9)))
print(json.dumps(out))
"""


class Namespaces:
    """Two namespaces joined by a veth pair; removed by cleanup()."""

    def __init__(self, test):
        pid = os.getpid()
        self.server, self.client = "ternS-%d" % pid, "ternC-%d" % pid
        p = ip("netns", "add", self.server, check=False)
        if p.returncode != 0:
            test.skipTest("ip netns add not permitted here: " + p.stderr.strip())
        test.addCleanup(ip, "netns", "del", self.server, check=False)
        ip("netns", "add", self.client)
        test.addCleanup(ip, "netns", "del", self.client, check=False)
        # Both ends are created inside the namespaces: deleting those removes them.
        vs, vc = "tvS%d" % pid, "tvC%d" % pid
        ip("link", "add", vs, "netns", self.server, "type", "veth", "peer", "name", vc,
           "netns", self.client)
        for ns, dev, addr in ((self.server, vs, SERVER_IP), (self.client, vc, CLIENT_IP)):
            ip("-n", ns, "addr", "add", addr + "/24", "dev", dev)
            ip("-n", ns, "link", "set", dev, "up")
            ip("-n", ns, "link", "set", "lo", "up")

    def run_client(self, port, *peers):
        p = subprocess.run(["ip", "netns", "exec", self.client, sys.executable or "/usr/bin/python3",
                            "-c", CLIENT, HERE, SERVER_IP, str(port)] + list(peers),
                           capture_output=True, text=True, timeout=30)
        if p.returncode != 0:
            raise AssertionError("client failed: " + p.stdout + p.stderr)
        return json.loads(p.stdout.strip().splitlines()[-1])


class OwnAddressRefusedByDefault(unittest.TestCase):
    """Review item 8: with the default config (listening on 0.0.0.0, relay.ip
    empty) the policy never learned the host's addresses, so a client could
    relay to ternd's own listeners, other allocations' relay ports and any UDP
    service on the host."""

    def test_permission_to_servers_own_address_403_other_host_200(self):
        ns = Namespaces(self)
        users = 'auth = { users = ( { user = "alice"; password = "secret"; } ); };'
        text = conf(3478, users, listen='{ proto = "udp"; ip = "0.0.0.0"; port = 3478; }')
        srv = NetnsTernd(text, ns.server).__enter__()
        self.addCleanup(srv.stop)
        out = ns.run_client(3478, SERVER_IP, CLIENT_IP)
        self.assertEqual(out["allocate"], 200, out)
        self.assertEqual(out["relayed"][0][0], SERVER_IP, out)
        self.assertEqual(out[SERVER_IP], 403, out)  # ternd's own address
        self.assertEqual(out[CLIENT_IP], 200, out)
        self.assertTrue(srv.alive())


if __name__ == "__main__":
    unittest.main()
