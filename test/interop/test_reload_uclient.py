"""coturn's turnutils_uclient relays through ternd while ternd reloads its
configuration five times (SIGHUP): not one message lost."""
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_turn_clients import LOST, PASSWORD, TOTALS, USER, TurnServer  # noqa: E402
from ternd import free_port  # noqa: E402


class UclientThroughReloads(unittest.TestCase):
    def test_no_message_lost_across_reloads(self):
        srv = TurnServer().start()
        self.addCleanup(srv.stop)
        peer_port = free_port(kinds=(socket.SOCK_DGRAM,))
        peer = subprocess.Popen(["turnutils_peer", "-L", "127.0.0.1", "-p", str(peer_port)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: (peer.terminate(), peer.wait(10)))
        time.sleep(0.3)
        hups = []

        def hupper():
            time.sleep(1.0)
            for _ in range(5):
                srv.ternd.proc.send_signal(signal.SIGHUP)
                hups.append(time.monotonic())
                time.sleep(0.4)
        th = threading.Thread(target=hupper, daemon=True)
        th.start()
        # 2 clients x 200 messages every 20 ms: about 4 s of relaying
        cmd = ["timeout", "30", "turnutils_uclient", "-p", str(srv.port), "-e", "127.0.0.1",
               "-r", str(peer_port), "-u", USER, "-w", PASSWORD,
               "-m", "2", "-n", "200", "-l", "120", "-z", "20", "127.0.0.1"]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=45)
        th.join(5)
        out = p.stdout + p.stderr
        totals, lost = TOTALS.search(out), LOST.search(out)
        self.assertIsNotNone(totals, out[-2000:])
        self.assertEqual(len(hups), 5)
        self.assertEqual(srv.ternd.stderr().count(" reload: "), 5, srv.log())
        self.assertEqual(int(totals.group(1)), 400)
        self.assertEqual(int(totals.group(2)), 400, out[-2000:])
        self.assertEqual(int(lost.group(1)), 0, out[-2000:])


if __name__ == "__main__":
    unittest.main()
