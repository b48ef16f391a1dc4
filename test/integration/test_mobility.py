"""Mobility (RFC 8016) with the project's own client: an Allocate over UDP
that asks with an empty MOBILITY-TICKET gets a ticket; a Refresh carrying it
from a new socket (a new source port: the client moved) moves the allocation
there, with its relay address, permissions and channels, and relaying goes
on; every answer carries a new ticket and spends the old one.

ternd runs two workers, and the kernel spreads UDP 5-tuples over their
sockets, so some of the moves below cross from one worker to the other (the
allocation itself moves) and some stay; the test checks that both kinds
happened, in ternd's log."""
import base64
import os
import re
import socket
import struct
import subprocess
import tempfile
import time
import unittest

from ternd import TERND, Ternd, attr, free_port
from test_realms import metrics_conf, scrape
from test_turn import error, turn_conf, udp_peer
from turnclient import REFRESH, Turn, build, A_LIFETIME

A_MOBILITY = 0x8030
MOVES = 16


def ticket(r):
    return r["attrs"][A_MOBILITY][0] if r and A_MOBILITY in r["attrs"] else None


def mobility_conf(port, on=True, extra=""):
    listen = ('{ proto = "udp"; ip = "127.0.0.1"; port = %d; }, { proto = "tcp"; ip = "127.0.0.1"; port = %d; }'
              % (port, port))
    return turn_conf(port, extra="mobility = %s;\n%s" % ("true" if on else "false", extra), listen=listen)


class Mobility(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.port = free_port()
        cls.srv = Ternd(mobility_conf(cls.port)).__enter__()

    @classmethod
    def tearDownClass(cls):
        assert cls.srv.stop() == 0

    def client(self, **kw):
        t = Turn("127.0.0.1", self.port, **kw)
        self.addCleanup(t.close)
        return t

    def mobile_allocation(self, **kw):
        t = self.client(**kw)
        r = t.allocate(extra=[attr(A_MOBILITY, b"")])
        self.assertEqual(r["cls"], 2, r)
        self.assertIsNotNone(ticket(r))
        return t, r

    def moved(self, old, tk, user="alice", password="secret", lifetime=600):
        """A new socket that sends Refresh with the ticket: (client, answer)."""
        t = self.client(user=user, password=password)
        t.nonce = old.nonce  # a client that moves keeps its nonce; 438 teaches it a new one
        r = t.request(REFRESH, [attr(A_LIFETIME, struct.pack("!I", lifetime)), attr(A_MOBILITY, tk)])
        return t, r

    def test_ticket_is_text_and_new_every_time(self):
        t, r = self.mobile_allocation()
        tk = ticket(r)
        # coturn's client keeps it as a C string of at most 32 bytes
        self.assertLessEqual(len(tk), 32)
        self.assertNotIn(b"\0", tk)
        self.assertEqual(len(base64.b64decode(tk)), 16)
        r2 = t.refresh(600)
        self.assertEqual(r2["cls"], 2)
        self.assertNotEqual(ticket(r2), tk)

    def test_no_ticket_unless_asked(self):
        t = self.client()
        r = t.allocate()
        self.assertEqual(r["cls"], 2)
        self.assertIsNone(ticket(r))
        self.assertIsNone(ticket(t.refresh(600)))

    def test_moves_keep_relaying(self):
        """MOVES moves of one allocation, each to a new source port; after
        each, ChannelData and Send go out through the same relay address,
        and what the peer sends comes back to the new socket only."""
        peer = udp_peer()
        self.addCleanup(peer.close)
        t, r = self.mobile_allocation()
        relay = t.relayed[0]
        paddr = peer.getsockname()
        self.assertEqual(t.permission(paddr)["cls"], 2)
        self.assertEqual(t.channel_bind(0x4001, paddr)["cls"], 2)
        tk = ticket(r)
        for i in range(MOVES):
            old = t
            t, r = self.moved(old, tk)
            self.assertEqual(r["cls"], 2, "move %d: %s" % (i, r))
            self.assertEqual(struct.unpack("!I", r["attrs"][A_LIFETIME][0])[0], 600)
            self.assertNotEqual(ticket(r), tk)
            tk = ticket(r)
            t.relayed = old.relayed
            # client -> peer over the channel, then a Send indication
            t.send_channel(0x4001, b"c%d" % i)
            data, src = peer.recvfrom(100)
            self.assertEqual((data, src[:2]), (b"c%d" % i, relay))
            t.send_indication(paddr, b"s%d" % i)
            self.assertEqual(peer.recvfrom(100)[0], b"s%d" % i)
            # peer -> client: on the channel, to the new socket
            peer.sendto(b"p%d" % i, relay)
            got = t.recv_data(timeout=2)
            self.assertEqual(got, ("channel", 0x4001, b"p%d" % i), "move %d" % i)
            old.sock.settimeout(0.05)
            with self.assertRaises(socket.timeout):
                old.sock.recvfrom(100)
            # the old 5-tuple has no allocation any more
            self.assertEqual(error(old.refresh(600)), 437)
            old.close()
        log = self.srv.stderr()
        moves = re.findall(r"moved to 127\.0\.0\.1:\d+ \(RFC 8016\), worker (\d) -> (\d)", log)
        self.assertGreaterEqual(len(moves), MOVES)
        self.assertTrue(any(a != b for a, b in moves), "no move crossed workers")
        self.assertTrue(any(a == b for a, b in moves), "no move stayed on its worker")
        self.assertEqual(t.refresh(0)["cls"], 2)

    def test_spent_ticket_gets_405(self):
        t, r = self.mobile_allocation()
        first = ticket(r)
        t2, r2 = self.moved(t, first)
        self.assertEqual(r2["cls"], 2)
        _, r3 = self.moved(t2, first)
        self.assertEqual(error(r3), 405)
        # a ticket given by a Refresh, then superseded by the next one
        t2.refresh(600)
        _, r4 = self.moved(t2, ticket(r2))
        self.assertEqual(error(r4), 405)

    def test_forged_tickets_get_405(self):
        t, r = self.mobile_allocation()
        tk = bytearray(base64.b64decode(ticket(r)))
        tk[3] ^= 1
        for forged in (base64.b64encode(bytes(tk)), base64.b64encode(os.urandom(16)), b"x" * 24,
                       ticket(r)[:20], ticket(r) + b"AAAA"):
            _, r2 = self.moved(t, forged)
            self.assertEqual(error(r2), 405, forged)
        # the real one still works afterwards
        _, r3 = self.moved(t, ticket(r))
        self.assertEqual(r3["cls"], 2)

    def test_other_user_gets_441(self):
        t, r = self.mobile_allocation()
        t2, r2 = self.moved(t, ticket(r), user="bob", password="hunter2")
        self.assertEqual(error(r2), 441)
        _, r3 = self.moved(t, ticket(r))
        self.assertEqual(r3["cls"], 2)

    def test_retransmitted_move_answered_alike(self):
        """coturn's client sends its moving Refresh twice, 10 ms apart."""
        t, r = self.mobile_allocation()
        t2 = self.client()
        t2.nonce = t.nonce
        msg, tid = build(REFRESH, [attr(A_LIFETIME, struct.pack("!I", 600)), attr(A_MOBILITY, ticket(r))]
                         + t2.auth_attrs(), t2.key)
        t2.send_raw(msg)
        time.sleep(0.01)
        r1 = t2.exchange(msg, tid)  # the second copy; the answer of either
        self.assertEqual(r1["cls"], 2, r1)
        r2 = t2.exchange(msg, tid)
        self.assertEqual(r2["cls"], 2)
        self.assertEqual(ticket(r1), ticket(r2))

    def test_nonempty_ticket_on_allocate_gets_400(self):
        t = self.client()
        self.assertEqual(error(t.allocate(extra=[attr(A_MOBILITY, b"abcd")])), 400)

    def test_tcp_gets_405(self):
        t = self.client(transport="tcp")
        self.assertEqual(error(t.allocate(extra=[attr(A_MOBILITY, b"")])), 405)

    def test_ticket_without_allocation_anywhere(self):
        t, r = self.mobile_allocation()
        tk = ticket(r)
        self.assertEqual(t.refresh(0)["cls"], 2)
        _, r2 = self.moved(t, tk)
        self.assertEqual(error(r2), 405)


class MobilityGauges(unittest.TestCase):
    """An allocation that moves between workers leaves one worker's gauge for
    the other's: the process always counts it once."""

    def test_gauge_follows_the_allocation(self):
        port = free_port()
        mconf, mport = metrics_conf()
        with Ternd(mobility_conf(port, extra=mconf)) as srv:
            t = Turn("127.0.0.1", port)
            r = t.allocate(extra=[attr(A_MOBILITY, b"")])
            self.assertEqual(r["cls"], 2)
            tk, workers = ticket(r), set()
            for _ in range(12):
                t2 = Turn("127.0.0.1", port)
                t2.nonce = t.nonce
                r = t2.request(REFRESH, [attr(A_LIFETIME, struct.pack("!I", 600)), attr(A_MOBILITY, tk)])
                self.assertEqual(r["cls"], 2)
                t.close()
                t, tk = t2, ticket(r)
                live = {dict(labels)["worker"]: v for (name, labels), v in scrape(mport).items()
                        if name == "tern_allocations" and v}
                self.assertEqual(sum(live.values()), 1, live)
                workers.update(live)
            self.assertEqual(workers, {"0", "1"}, "the allocation never changed worker")
            self.assertEqual(t.refresh(0)["cls"], 2)
            t.close()
            self.assertEqual(sum(v for (name, _), v in scrape(mport).items() if name == "tern_allocations"), 0)
            self.assertEqual(srv.stop(), 0)


class MobilityOff(unittest.TestCase):
    def test_off_by_default_gets_405(self):
        port = free_port()
        with Ternd(turn_conf(port)) as srv:
            t = Turn("127.0.0.1", port)
            try:
                self.assertEqual(error(t.allocate(extra=[attr(A_MOBILITY, b"")])), 405)
                self.assertEqual(t.allocate()["cls"], 2)
            finally:
                t.close()
            self.assertEqual(srv.stop(), 0)

    def test_bad_value_is_file_line(self):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "t.conf")
            with open(path, "w") as f:
                f.write('realm = "x";\nmobility = "yes";\n')
            p = subprocess.run([TERND, "-c", path, "--check-config"], capture_output=True, text=True)
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("%s:2: 'mobility' must be true or false" % path, p.stderr)


if __name__ == "__main__":
    unittest.main()
