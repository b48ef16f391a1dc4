"""DONT-FRAGMENT per datagram (RFC 8656 sections 7.2, 11.2 and 14): a Send
indication that carries it is relayed with DF (IPv4) or unfragmented (IPv6),
one that does not is relayed with a DF of 0 whatever the Allocate said, and
ChannelData follows the Allocate.

DF is observed through its effect: ternd, its client and the peer run in a
network namespace the test makes, whose loopback has an MTU of 1280, so a
1400-byte datagram reaches the peer only if it may be fragmented."""
import json
import os
import subprocess
import sys
import unittest

from ternd import free_port
from test_netns import NetnsTernd, ip
from test_turn import turn_conf

HERE = os.path.dirname(os.path.abspath(__file__))
BIG, SMALL = 1400, 200

# Run inside the namespace: for each (allocation DF, how, size, DF) case,
# did the peer receive it? Prints JSON.
CLIENT = r"""
import json, socket, sys
sys.path.insert(0, sys.argv[1])
from turnclient import Turn, A_DF, A_RAF
from ternd import attr
host, port = sys.argv[2], int(sys.argv[3])
fam = socket.AF_INET6 if ":" in host else socket.AF_INET
out = {}
for alloc_df in (False, True):
    peer = socket.socket(fam, socket.SOCK_DGRAM)
    peer.bind((host, 0))
    peer.settimeout(0.5)
    paddr = peer.getsockname()[:2]
    t = Turn(host, port, timeout=3)
    extra = [attr(A_RAF, b"\x02\0\0\0")] if fam == socket.AF_INET6 else []
    r = t.allocate(extra=extra + ([attr(A_DF, b"")] if alloc_df else []))
    assert r and r["cls"] == 2, r
    assert t.permission(paddr)["cls"] == 2
    assert t.channel_bind(0x4000, paddr)["cls"] == 2
    cases = [("send", BIG, True), ("send", BIG, False), ("send", SMALL, True), ("channel", BIG, None),
             ("channel", SMALL, None)]
    for how, size, df in cases:
        data = bytes([len(out) % 251]) * size
        if how == "send":
            t.send_indication(paddr, data, df=df)
        else:
            t.send_channel(0x4000, data)
        try:
            got = peer.recvfrom(65536)[0]
        except socket.timeout:
            got = b""
        out["alloc_df=%s %s %d df=%s" % (alloc_df, how, size, df)] = got == data
    t.refresh(0)
    t.close()
    peer.close()
print(json.dumps(out))
""".replace("BIG", str(BIG)).replace("SMALL", str(SMALL))


class DontFragment(unittest.TestCase):
    maxDiff = None

    def setUp(self):
        self.ns = "ternDF-%d" % os.getpid()
        p = ip("netns", "add", self.ns, check=False)
        if p.returncode != 0:
            self.skipTest("ip netns add not permitted here: " + p.stderr.strip())
        self.addCleanup(ip, "netns", "del", self.ns, check=False)
        ip("-n", self.ns, "link", "set", "lo", "up")
        ip("-n", self.ns, "link", "set", "lo", "mtu", "1280")

    def run_cases(self, host):
        port = free_port()
        listen = ('{ proto = "udp"; ip = "127.0.0.1"; port = %d; }, { proto = "udp"; ip = "::1"; port = %d; }'
                  % (port, port))
        with NetnsTernd(turn_conf(port, listen=listen), self.ns) as srv:
            p = subprocess.run(["ip", "netns", "exec", self.ns, sys.executable, "-c", CLIENT, HERE, host,
                                str(port)], capture_output=True, text=True, timeout=60)
            self.assertEqual(p.returncode, 0, p.stderr + srv.stderr()[-2000:])
            return json.loads(p.stdout)

    def expected(self):
        return {
            # a Send indication decides for its own datagram
            "alloc_df=False send %d df=True" % BIG: False,
            "alloc_df=False send %d df=False" % BIG: True,
            "alloc_df=False send %d df=True" % SMALL: True,
            "alloc_df=True send %d df=True" % BIG: False,
            "alloc_df=True send %d df=False" % BIG: True,  # observed before: dropped (the allocation's DF)
            "alloc_df=True send %d df=True" % SMALL: True,
            # ChannelData follows the Allocate
            "alloc_df=False channel %d df=None" % BIG: True,
            "alloc_df=False channel %d df=None" % SMALL: True,
            "alloc_df=True channel %d df=None" % BIG: False,
            "alloc_df=True channel %d df=None" % SMALL: True,
        }

    def test_ipv4_per_datagram(self):
        self.assertEqual(self.run_cases("127.0.0.1"), self.expected())

    def test_ipv6_per_datagram(self):
        # observed before: IPv6 relays fragmented whatever the client asked
        self.assertEqual(self.run_cases("::1"), self.expected())


if __name__ == "__main__":
    unittest.main()
