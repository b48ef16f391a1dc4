"""coturn's turnutils_uclient -T (RFC 6062 TCP relaying) through ternd, over
TCP and TLS client connections, with zero loss.

-T implies -y (client to client) and -c: uclient's clients allocate TCP
relays in pairs and each Connects to the other's relay address, so one run
exercises Allocate TCP, Connect, ConnectionBind and the ConnectionAttempt of
the peer side. turnutils_peer (TCP and UDP) runs beside it as coturn's usual
peer. Data connections land on either worker and are handed to the
allocation's (two workers).

The load stays small: on a stream, uclient counts what one read returns as
a message, so a heavy run (-m 4 -n 200 -l 1000) reports a few "lost"
messages through coturn's own turnserver as well.
"""
import os
import socket
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from ternd import Ternd, conf, free_port, tls_files, temp_dir  # noqa: E402
from test_turn_clients import assert_relayed_all, start_peer, stop_process  # noqa: E402

CLIENTS, MESSAGES = 2, 20


class UclientTcpRelay(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.port, cls.tls_port = free_port(), free_port(kinds=(socket.SOCK_STREAM,))
        lo = free_port(kinds=(socket.SOCK_STREAM,))
        cert, key = tls_files(temp_dir())
        listen = ('{ proto = "tcp"; ip = "127.0.0.1"; port = %d; },'
                  '{ proto = "tls"; ip = "127.0.0.1"; port = %d; }' % (cls.port, cls.tls_port))
        text = ('relay = { ip = [ "127.0.0.1" ]; min_port = %d; max_port = %d; };\n'
                'auth = { users = ( { user = "alice"; password = "secret"; } ); };\n'
                'peers = { allow_loopback = true; };\n'
                'tls = { cert = "%s"; key = "%s"; };\n' % (lo, min(lo + 199, 65535), cert, key))
        cls.srv = Ternd(conf(cls.port, text, listen=listen)).__enter__()
        # TCP and UDP: the relayed leg is TCP
        cls.peer, cls.peer_port = start_peer(kinds=(socket.SOCK_DGRAM, socket.SOCK_STREAM))

    @classmethod
    def tearDownClass(cls):
        stop_process(cls.peer)
        assert cls.srv.stop() == 0

    def relays_all(self, *flags, port):
        cmd = ["timeout", "30", "turnutils_uclient", "-T", "-p", str(port),
               "-e", "127.0.0.1", "-r", str(self.peer_port), "-m", str(CLIENTS), "-n", str(MESSAGES),
               "-l", "120", "-z", "5", "-u", "alice", "-w", "secret"] + list(flags) + ["127.0.0.1"]
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
        out = p.stdout + p.stderr
        why = "%s\n--- client:\n%s\n--- server:\n%s" % (" ".join(cmd), out[-3000:],
                                                        self.srv.stderr()[-3000:])
        self.assertEqual(p.returncode, 0, why)
        assert_relayed_all(self, out, CLIENTS * MESSAGES, why)
        return out

    def test_tcp_relay_over_tcp(self):
        self.relays_all(port=self.port)
        self.assertIn("bound", self.srv.stderr())

    def test_tcp_relay_over_tls(self):
        self.relays_all("-S", port=self.tls_port)


if __name__ == "__main__":
    unittest.main()
