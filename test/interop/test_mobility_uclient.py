"""Mobility (RFC 8016) with coturn's client: `turnutils_uclient -M` asks for
a MOBILITY-TICKET in its Allocate, then opens a new socket (a new source
port), sends Refresh with the ticket from there and relays through the moved
allocation to turnutils_peer. Zero loss, and ternd's log shows the moves
(ternd runs two workers, so a move may cross from one to the other)."""
import os
import re
import sys
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_turn_clients import (PASSWORD, USER, TurnServer, assert_relayed_all, run,  # noqa: E402
                               start_peer, stop_process)

CLIENTS, MESSAGES = 4, 20
MOVED = re.compile(r"moved to 127\.0\.0\.1:\d+ \(RFC 8016\), worker (\d) -> (\d)")


class MobileServer(TurnServer):
    def ternd_conf(self):
        return super().ternd_conf() + "mobility = true;\n"


class UclientMobility(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = MobileServer().start()
        cls.peer, cls.peer_port = start_peer()

    @classmethod
    def tearDownClass(cls):
        stop_process(cls.peer)
        cls.srv.stop()

    def relays_all_moving(self, *flags):
        before = len(MOVED.findall(self.srv.ternd.stderr()))
        cmd = ["timeout", "20", "turnutils_uclient", "-M", "-p", str(self.srv.port), "-e", "127.0.0.1",
               "-r", str(self.peer_port), "-m", str(CLIENTS), "-n", str(MESSAGES), "-l", "120", "-z", "5",
               "-u", USER, "-w", PASSWORD] + list(flags) + ["127.0.0.1"]
        p = run(cmd, timeout=40)
        out = p.stdout + p.stderr
        log = self.srv.ternd.stderr()
        why = "%s\n--- client:\n%s\n--- server:\n%s" % (" ".join(flags), out[-3000:], log[-3000:])
        self.assertEqual(p.returncode, 0, why)
        assert_relayed_all(self, out, CLIENTS * MESSAGES, why)
        moves = MOVED.findall(log)[before:]
        self.assertGreaterEqual(len(moves), 1, why)
        return moves

    def test_udp_channels(self):
        self.relays_all_moving()

    def test_udp_send_indications(self):
        self.relays_all_moving("-s")


if __name__ == "__main__":
    unittest.main()
