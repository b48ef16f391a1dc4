"""Real third-party STUN clients from Debian packages against a running ternd:
coturn's turnutils_stunclient and turnutils_natdiscovery, the classic `stun`
client (RFC 3489), and aioice's ICE agent gathering a server-reflexive candidate.
"""
import os
import re
import socket
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from ternd import Ternd, conf, free_port  # noqa: E402

AIOICE_SNIPPET = r'''
import asyncio, sys
import aioice.ice
# gather on loopback only: tests never send traffic off this machine
aioice.ice.get_host_addresses = lambda use_ipv4, use_ipv6: ["127.0.0.1"]
async def main(port):
    conn = aioice.Connection(ice_controlling=True, stun_server=("127.0.0.1", port), use_ipv6=False)
    await conn.gather_candidates()
    for c in conn.local_candidates:
        print(c.type, c.host, c.port, c.related_address, c.related_port)
    await conn.close()
asyncio.run(main(int(sys.argv[1])))
'''


def run(cmd, timeout=30):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


class Interop(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        hosts = ("127.0.0.1", "127.0.0.2")
        cls.p1 = free_port(hosts=hosts)
        cls.p2 = free_port(hosts=hosts)
        listen = ('{ proto = "udp"; ip = "127.0.0.1"; port = %d; }, { proto = "tcp"; ip = "127.0.0.1"; port = %d; }'
                  % (cls.p1, cls.p1))
        extra = 'alternate = { ip = "127.0.0.2"; port = %d; };' % cls.p2
        cls.srv = Ternd(conf(cls.p1, extra, listen=listen)).__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def test_turnutils_stunclient_reflexive_address(self):
        p = run(["timeout", "10", "turnutils_stunclient", "-p", str(self.p1), "127.0.0.1"])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertRegex(p.stdout, r"UDP reflexive addr: 127\.0\.0\.1:\d+")

    def test_turnutils_stunclient_rfc5780(self):
        p = run(["timeout", "10", "turnutils_stunclient", "-f", "-p", str(self.p1), "127.0.0.1"])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("Other addr: : 127.0.0.2:%d" % self.p2, p.stdout)
        # response 2 asked for change IP and port: it must come from the alternate
        self.assertIn("Response origin: : 127.0.0.2:%d" % self.p2, p.stdout)

    def test_turnutils_natdiscovery_mapping_and_filtering(self):
        p = run(["timeout", "30", "turnutils_natdiscovery", "-m", "-f", "-p", str(self.p1), "127.0.0.1"])
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertIn("NAT with Endpoint Independent Mapping!", p.stdout)
        self.assertIn("NAT with Endpoint Independent Filtering!", p.stdout)

    def test_classic_stun_client_sees_open_internet(self):
        p = run(["timeout", "20", "stun", "127.0.0.1:%d" % self.p1, "-v"])
        out = p.stdout + p.stderr
        self.assertIn("test I = 1", out)
        self.assertIn("test II = 1", out)  # change IP and port: answered from 127.0.0.2
        self.assertIn("Primary: Open", out)

    def test_aioice_gathers_server_reflexive_candidate(self):
        p = run(["timeout", "20", "/usr/bin/python3", "-c", AIOICE_SNIPPET, str(self.p1)])
        self.assertEqual(p.returncode, 0, p.stderr)
        srflx = [l.split() for l in p.stdout.splitlines() if l.startswith("srflx ")]
        self.assertEqual(len(srflx), 1, p.stdout)
        self.assertEqual(srflx[0][1], "127.0.0.1")
        self.assertEqual(srflx[0][2], srflx[0][4])  # reflexive port == local port: no NAT

    def test_aioice_gets_nothing_from_a_silent_port(self):
        dead = free_port()
        p = run(["timeout", "20", "/usr/bin/python3", "-c", AIOICE_SNIPPET, str(dead)])
        self.assertNotIn("srflx", p.stdout)


if __name__ == "__main__":
    unittest.main()
