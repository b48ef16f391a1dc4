"""Issue 14: ternd relays established UDP channels in the kernel (a tc/tcx
eBPF program on the interfaces of its listen and relay addresses) and stays the
authority and the fallback for everything else.

The bed (nsbed.py): client, server and peer namespaces joined by veth pairs;
ternd runs in the server namespace, listening on s0's addresses and relaying
from s1's.  Every test that expects offload checks that the kernel relayed
(tern_offload_packets_total equals what was sent) *and* that the traffic
arrived intact; the ones that expect it to stop check that nothing arrives and
that the kernel counters did not move.

Where the kernel refuses BPF (a ternd started with offload = "tc" in the bed
exits with the reason), the offload tests say SKIP with that reason and the
rest still runs.  Root is needed for the namespaces.
"""
import json
import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import time
import unittest

from ternd import Ternd, conf, free_port, temp_dir
from test_ternctl import ternctl
from turnclient import Turn, A_RAF, A_LIFETIME, REFRESH
from ternd import attr
from nsbed import (Bed, BedTernd, netns, SERVER4_C, SERVER4_P, PEER4,
                   SERVER6_C, SERVER6_P, PEER6)

REALM = "test.example"
PORT, MPORT = 3478, 9641           # inside the server namespace: nobody else's
PERM_LIFETIME, CHAN_LIFETIME = 300, 600   # RFC 8656, before limits.time_scale
SCALE = 200                        # expiry tests: permission 1.5 s, channel 3 s
SIZES = sorted(set(list(range(1, 9)) + list(range(9, 1200, 41)) + [1199, 1200]))
CSUM = ("UdpInCsumErrors", "Udp6InCsumErrors")
A_MOBILITY = 0x8030


def kernel_side(test):
    """A check of the kernel program's behaviour (checksums, MTU, expiry
    without ternd, how attachments outlive or chain), not of ternd's C code:
    the AddressSanitizer stage (B=build-asan) leaves it to the -O2 stage,
    which runs the same kernel program."""
    def run(self):
        if os.environ.get("B", "build").rstrip("/").endswith("-asan"):
            self.skipTest("kernel-side check: runs in the -O2 stage")
        return test(self)
    run.__name__, run.__doc__ = test.__name__, test.__doc__
    return run


def bed_conf(offload="tc", port=PORT, mport=MPORT, relay_ports=(49152, 50151), scale=1,
             extra="", interfaces=None, v6_listen=True, tcp=False):
    listen = ['{ proto = "udp"; ip = "%s"; port = %d; }' % (SERVER4_C, port)]
    if v6_listen:
        listen.append('{ proto = "udp"; ip = "%s"; port = %d; }' % (SERVER6_C, port))
    if tcp:
        listen.append('{ proto = "tcp"; ip = "%s"; port = %d; }' % (SERVER4_C, port))
    relay = 'ip = [ "%s", "%s" ]; min_port = %d; max_port = %d;' % (SERVER4_P, SERVER6_P, *relay_ports)
    if offload is not None:
        relay += ' offload = "%s";' % offload
    if interfaces is not None:
        relay += ' offload_interfaces = [ %s ];' % ", ".join('"%s"' % i for i in interfaces)
    return ('realm = "%s";\nsoftware = "ternd-test";\nworkers = 2;\n'
            'listen = ( %s );\n'
            'relay = { %s };\n'
            'auth = { users = ( { user = "alice"; password = "secret"; } ); };\n'
            'peers = { allow = [ "10.78.2.0/24", "fd78:2::/64" ]; };\n'
            'http = { ip = "127.0.0.1"; port = %d; };\n'
            'limits = { time_scale = %d; max_lifetime = 3600; };\n'
            'log = { level = "debug"; };\n%s\n'
            % (REALM, ", ".join(listen), relay, mport, scale, extra))


def offload_metrics(srv):
    """The tern_offload lines of /metrics, for failure messages."""
    try:
        return "\n".join(l for l in srv.metrics_text().splitlines() if l.startswith("tern_offload"))
    except OSError as e:
        return "(no metrics: %s)" % e


def offload_lines(srv):
    """ternd's start lines about offload (libbpf's own, at debug level, aside)."""
    return [l for l in srv.lines("offload:") if " debug " not in l]


def offload_line(srv):
    lines = offload_lines(srv)
    return lines[0] if lines else ""


class Session:
    """A client with an allocation and a channel to a peer socket."""

    def __init__(self, tc, bed, srv_port=PORT, v6=False, chan=0x4000, peer_port=0, transport="udp",
                 lifetime=3600, relay_v6=None, alloc_extra=()):
        """v6: the client talks IPv6; relay_v6 (default: as v6): the relay
        address and the peer are IPv6."""
        self.tc, self.bed, self.chan = tc, bed, chan
        relay_v6 = v6 if relay_v6 is None else relay_v6
        self.server = (SERVER6_C if v6 else SERVER4_C, srv_port)
        with netns(bed.c):
            self.t = Turn(self.server[0], srv_port, timeout=2, transport=transport)
        tc.addCleanup(self.t.close)
        extra = [attr(A_RAF, bytes([2 if relay_v6 else 1, 0, 0, 0]))] + list(alloc_extra)
        r = self.t.allocate(extra=extra, lifetime=lifetime)
        self.answer = r
        tc.assertTrue(r is not None and r["cls"] == 2, "Allocate failed: %r" % (r,))
        self.relay = self.t.relayed[0]
        self.peer = bed.udp(bed.p, PEER6 if relay_v6 else PEER4, peer_port)
        tc.addCleanup(self.peer.close)
        self.peer_addr = self.peer.getsockname()[:2]
        if chan:
            self.bind()

    def bind(self):
        r = self.t.channel_bind(self.chan, self.peer_addr)
        self.tc.assertTrue(r is not None and r["cls"] == 2, "ChannelBind failed: %r" % (r,))

    def to_peer(self, payload):
        """ChannelData from the client; what the peer got (data, source) or None."""
        self.t.send_channel(self.chan, payload)
        return self.recv(self.peer)

    def to_client(self, payload, timeout=1.0):
        """A datagram from the peer to the relay address; what the client got, raw, or None."""
        self.peer.sendto(payload, self.relay)
        return self.recv(self.t.sock, timeout)

    @staticmethod
    def recv(sock, timeout=1.0):
        sock.settimeout(timeout)
        try:
            data, src = sock.recvfrom(70000)
            return data, src[:2]
        except socket.timeout:
            return None

    def exchange(self, sizes=SIZES):
        """Both directions, one datagram each way per size; checks every byte
        and both sources; returns (packets, payload bytes) per direction."""
        tc = self.tc
        for i, n in enumerate(sizes):
            up = os.urandom(n)
            got = self.to_peer(up)
            tc.assertIsNotNone(got, "datagram %d (%d B) client->peer lost" % (i, n))
            tc.assertEqual(got, (up, self.relay), "client->peer payload or source wrong at %d B" % n)
            down = os.urandom(n)
            got = self.to_client(down)
            tc.assertIsNotNone(got, "datagram %d (%d B) peer->client lost" % (i, n))
            tc.assertEqual(got[1], self.server, "peer->client not from the listener")
            tc.assertEqual(got[0], struct.pack("!HH", self.chan, n) + down,
                           "peer->client ChannelData wrong at %d B" % n)
        return len(sizes), sum(sizes)

    def assert_nothing_either_way(self, count=3, why=""):
        for _ in range(count):
            self.t.send_channel(self.chan, b"late-to-peer")
            self.peer.sendto(b"late-to-client", self.relay)
        self.tc.assertIsNone(self.recv(self.peer, 0.4), "the peer still got ChannelData " + why)
        self.tc.assertIsNone(self.recv(self.t.sock, 0.2), "the client still got the peer's datagram " + why)


def counters(srv):
    s = srv.metrics()
    out = {}
    for d in ("to_peer", "to_client"):
        out["off_" + d] = srv.total("tern_offload_packets_total", s, direction=d)
        out["pkts_" + d] = srv.total("tern_relay_packets_total", s, realm=REALM, direction=d)
        out["bytes_" + d] = srv.total("tern_relay_bytes_total", s, realm=REALM, direction=d)
    out["channels"] = srv.total("tern_offload_channels", s)
    out["interfaces"] = srv.total("tern_offload_interfaces", s)
    out["dropped"] = srv.total("tern_dropped_packets_total", s)
    return out


class OffloadBed(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        if os.geteuid() != 0:
            raise unittest.SkipTest("needs root for network namespaces")
        missing = [t for t in ("ip", "ethtool", "nstat", "tc", "bpftool", "setpriv") if not shutil.which(t)]
        if missing:
            raise unittest.SkipTest("the bed needs " + ", ".join(missing))
        try:
            cls.bed = Bed(tx_offload=False)
        except RuntimeError as e:   # Bed removed what it had made
            raise unittest.SkipTest("cannot build the namespace bed: %s" % e)
        cls.addClassCleanup(cls.bed.cleanup)
        cls.refused = cls.probe()

    @classmethod
    def probe(cls):
        """Why offload cannot run here, or None: one ternd with offload = "tc"."""
        srv = BedTernd(bed_conf("tc"), cls.bed.s, expect_ready=False)
        srv.start()
        try:
            ready = srv.proc.stdout.readline()
            if "listening on" in ready:
                return None
            srv.wait_exit()
            err = srv.stderr().strip().splitlines()
            why = [l for l in err if "offload" in l] or err[-1:] or ["(no output)"]
            return "ternd with relay.offload = \"tc\" did not start in the bed: " + why[0]
        finally:
            srv.stop()

    def need_bpf(self):
        if self.refused:
            self.skipTest(self.refused)

    def ternd(self, text, **kw):
        srv = BedTernd(text, self.bed.s, metrics_port=kw.pop("mport", MPORT), **kw)
        srv.start()
        self.addCleanup(srv.stop)
        return srv

    def tc_ternd(self, **kw):
        """A ternd with offload = "tc" that says it attached to s0 and s1."""
        self.need_bpf()
        srv = self.ternd(bed_conf("tc", **kw), mport=kw.get("mport", MPORT))
        line = offload_line(srv)
        self.assertIn("s0", line, "offload line: %r\n%s" % (line, srv.stderr()[-2000:]))
        self.assertIn("s1", line, line)
        self.assertEqual(len(offload_lines(srv)), 1, offload_lines(srv))
        return srv

    def assert_offloaded(self, srv, before, n_up, b_up, n_down, b_down, why=""):
        """Every datagram of the exchange was relayed in the kernel, and the
        usual relay counters count it too."""
        return self.assert_counts(srv, before, (n_up, n_down), (n_up, n_down), (b_up, b_down), why)

    def assert_counts(self, srv, before, off, pkts, octets, why=""):
        """The counters rose by exactly these (to_peer, to_client) deltas:
        off(loaded) packets, all relayed packets, payload bytes.  Offloaded
        counts are read back from the kernel about once a second: poll."""
        want = {}
        for i, d in enumerate(("to_peer", "to_client")):
            want["off_" + d] = before["off_" + d] + off[i]
            want["pkts_" + d] = before["pkts_" + d] + pkts[i]
            want["bytes_" + d] = before["bytes_" + d] + octets[i]
        end = time.monotonic() + 3.5
        while True:
            got = counters(srv)
            if all(got[k] == v for k, v in want.items()) or time.monotonic() > end:
                break
            time.sleep(0.1)
        diff = {k: (got[k], v) for k, v in want.items() if got[k] != v}
        self.assertEqual(diff, {}, "counters (got, want) %s\n%s\n%s" % (why, offload_metrics(srv),
                                                                         srv.stderr()[-1500:]))
        return got

    def assert_counters_stay(self, srv, snap, keys=("off_to_peer", "off_to_client"), wait=1.3):
        time.sleep(wait)  # one read-back from the kernel at least
        got = counters(srv)
        self.assertEqual({k: got[k] for k in keys}, {k: snap[k] for k in keys},
                         "the kernel relayed what it should not have")
        return got

    def wait_channels(self, srv, want, timeout=3.5):
        v = srv.wait_total("tern_offload_channels", want, timeout)
        self.assertEqual(v, want, "tern_offload_channels")

    # 1 ---------------------------------------------------------------------------
    def test_01_channel_ipv4_both_directions_counted(self):
        sock = os.path.join(temp_dir("tern-off-ctl-"), "ternd.sock")
        srv = self.tc_ternd(extra='control = { path = "%s"; };' % sock)
        before = counters(srv)
        self.assertEqual(before["interfaces"], 2, before)
        s = Session(self, self.bed)
        self.wait_channels(srv, 1)
        n, b = s.exchange()
        self.assert_offloaded(srv, before, n, b, n, b)
        status = ternctl("status", sock=sock)
        self.assertEqual(status.returncode, 0, status.stderr)
        self.assertRegex(status.stdout, r"(?m)^offload +2 interfaces, 1 channels in the kernel$")
        status = json.loads(ternctl("--json", "status", sock=sock).stdout)
        self.assertEqual(status["offload"], {"interfaces": 2, "channels": 1})

    # 2 ---------------------------------------------------------------------------
    def test_02_channel_ipv6_both_directions_counted(self):
        srv = self.tc_ternd()
        before = counters(srv)
        s = Session(self, self.bed, v6=True)
        self.assertEqual(s.relay[0], SERVER6_P)
        n, b = s.exchange()
        self.assert_offloaded(srv, before, n, b, n, b, "IPv6")
        # and a second channel on IPv4 at the same time, each its own entry
        s4 = Session(self, self.bed, chan=0x4abc)
        self.wait_channels(srv, 2)
        mid = counters(srv)
        n, b = s4.exchange(SIZES[::4])
        self.assert_offloaded(srv, mid, n, b, n, b, "IPv4 next to IPv6")
        # across families (IPv4 client, IPv6 relay and back): relayed intact, in
        # the kernel or not (the program never translates between families)
        for v6 in (False, True):
            x = Session(self, self.bed, v6=v6, relay_v6=not v6, chan=0x4200 + v6)
            before = counters(srv)
            n, b = x.exchange(SIZES[::8])
            end = time.monotonic() + 3.5
            while True:
                got = counters(srv)
                done = all(got["pkts_" + d] - before["pkts_" + d] == n and
                           got["bytes_" + d] - before["bytes_" + d] == b for d in ("to_peer", "to_client"))
                if done or time.monotonic() > end:
                    break
                time.sleep(0.1)
            self.assertTrue(done, "relay counters across families: %r, want +%d/+%d" % (got, n, b))

    def test_01b_rfc5766_channel_numbers(self):
        """ternd binds 0x4000-0x7FFE (coturn's clients use 0x5000 and up): the
        kernel relays them both ways like RFC 8656's 0x4000-0x4FFF."""
        srv = self.tc_ternd()
        for chan in (0x4fff, 0x5000, 0x7ffe):
            before = counters(srv)
            s = Session(self, self.bed, chan=chan)
            n, b = s.exchange(SIZES[::10])
            self.assert_offloaded(srv, before, n, b, n, b, "channel %#x" % chan)

    # 3 ---------------------------------------------------------------------------
    @kernel_side
    def test_03_tx_checksum_offload_on_and_off(self):
        """Full checksums (senders' TX offload off) and CHECKSUM_PARTIAL packets
        (senders' on; the server's veths off so that the checksum is computed at
        the redirect's egress and checked by the receiver; and all on)."""
        srv = self.tc_ternd()
        self.addCleanup(self.bed.set_tx, False, True)
        for senders, server, fwd in ((False, True, False), (True, False, False), (True, True, False),
                                     (False, True, True), (True, False, True)):
            with self.subTest(senders_tx=senders, server_tx=server, forwarding=fwd):
                self.bed.set_tx(senders, server)
                self.set_forwarding(fwd)
                csum0 = [self.bed.nstat(ns, *CSUM) for ns in (self.bed.c, self.bed.p)]
                before = counters(srv)
                total = [0, 0]
                for v6, chan in ((False, 0x4100), (True, 0x4101)):
                    s = Session(self, self.bed, v6=v6, chan=chan)
                    n, b = s.exchange(SIZES[::3])
                    total = [total[0] + n, total[1] + b]
                self.assert_offloaded(srv, before, total[0], total[1], total[0], total[1],
                                      "senders tx %s, server tx %s" % (senders, server))
                csum1 = [self.bed.nstat(ns, *CSUM) for ns in (self.bed.c, self.bed.p)]
                self.assertEqual(csum1, csum0, "UDP checksum errors at the client / peer")

    # 4 ---------------------------------------------------------------------------
    def test_04a_permission_expiry_stops_the_kernel(self):
        srv = self.tc_ternd(scale=SCALE)
        s = Session(self, self.bed)
        t_bind = time.monotonic()
        before = counters(srv)
        n, b = s.exchange(SIZES[::6])
        time.sleep(max(0, t_bind + PERM_LIFETIME / SCALE + 0.3 - time.monotonic()))
        self.assertLess(time.monotonic(), t_bind + CHAN_LIFETIME / SCALE - 0.3, "test too slow: channel expired too")
        s.assert_nothing_either_way(why="after the permission expired")
        snap = self.assert_offloaded(srv, before, n, b, n, b, "(only what was sent before the expiry)")
        got = self.assert_counters_stay(srv, snap)
        self.assertGreaterEqual(got["dropped"] - before["dropped"], 3, "ternd never saw the late datagrams")
        self.wait_channels(srv, 0)

    @kernel_side
    def test_04b_expired_entry_not_relayed_while_ternd_is_stopped(self):
        """The program checks the expiry itself: ternd stopped (SIGSTOP), so it
        cannot delete the entry, and past the permission's end nothing is
        relayed; the packets wait for ternd, which drops them."""
        srv = self.tc_ternd(scale=SCALE)
        s = Session(self, self.bed)
        t_bind = time.monotonic()
        before = counters(srv)
        n, b = s.exchange(SIZES[::8])
        srv.signal(signal.SIGSTOP)
        self.addCleanup(srv.signal, signal.SIGCONT)
        # still valid: the kernel relays without ternd
        self.assertEqual(s.to_peer(b"while-stopped"), (b"while-stopped", s.relay))
        got = s.to_client(b"while-stopped-back")
        self.assertEqual(got, (struct.pack("!HH", s.chan, 18) + b"while-stopped-back", s.server))
        time.sleep(max(0, t_bind + PERM_LIFETIME / SCALE + 0.3 - time.monotonic()))
        s.assert_nothing_either_way(why="past expires_ns with ternd stopped")
        srv.signal(signal.SIGCONT)
        self.assertIsNone(s.recv(s.peer, 0.5), "ternd relayed an expired permission's datagram")
        self.assertIsNone(s.recv(s.t.sock, 0.1), "ternd relayed an expired permission's datagram")
        self.assert_offloaded(srv, before, n + 1, b + 13, n + 1, b + 18, "(only the packets before expiry)")

    def test_04c_channel_expiry_with_permission_refreshed(self):
        """CreatePermission refreshes keep the entry alive in the kernel past
        the first permission's end; when the channel expires the peer's
        datagrams arrive as Data indications (user space)."""
        srv = self.tc_ternd(scale=SCALE)
        s = Session(self, self.bed)
        t_bind = time.monotonic()
        perm, chan = PERM_LIFETIME / SCALE, CHAN_LIFETIME / SCALE
        before = counters(srv)
        refresh_at = [t_bind + perm * f for f in (0.6, 1.2, 1.8, 2.4)]
        checked = False
        n = b = 0
        while refresh_at:
            time.sleep(max(0, refresh_at.pop(0) - time.monotonic()))
            r = s.t.permission(s.peer_addr)
            self.assertEqual(r and r["cls"], 2, "CreatePermission refresh")
            if not checked and time.monotonic() > t_bind + perm + 0.1:
                self.assertLess(time.monotonic(), t_bind + chan - 0.2, "test too slow")
                n, b = s.exchange(SIZES[::10])   # past the first permission's end
                checked = True
        self.assertTrue(checked)
        snap = self.assert_offloaded(srv, before, n, b, n, b, "after a permission refresh")
        time.sleep(max(0, t_bind + chan + 0.3 - time.monotonic()))
        self.wait_channels(srv, 0)
        s.t.send_channel(s.chan, b"on-an-expired-channel")
        self.assertIsNone(s.recv(s.peer, 0.4), "ChannelData on an expired channel relayed")
        s.peer.sendto(b"as-an-indication", s.relay)
        got = s.t.recv_data(1.0)
        self.assertEqual(got, ("indication", s.peer_addr, b"as-an-indication"))
        self.assert_counters_stay(srv, snap, wait=1.1)

    def test_04d_refresh_zero_ends_the_kernel_relay(self):
        srv = self.tc_ternd()
        s = Session(self, self.bed)
        self.wait_channels(srv, 1)
        before = counters(srv)
        n, b = s.exchange(SIZES[::6])
        snap = self.assert_offloaded(srv, before, n, b, n, b)
        r = s.t.refresh(0)
        self.assertEqual(r and r["cls"], 2, "Refresh lifetime 0")
        s.assert_nothing_either_way(why="after the allocation was deleted")
        self.assert_counters_stay(srv, snap)
        self.wait_channels(srv, 0)

    # 5 ---------------------------------------------------------------------------
    def test_05_no_channel_data_indication_and_send_indication(self):
        srv = self.tc_ternd()
        s = Session(self, self.bed)
        other = self.bed.udp(self.bed.p, PEER4)   # same IP (permitted), no channel
        self.addCleanup(other.close)
        oaddr = other.getsockname()[:2]
        before = counters(srv)
        other.sendto(b"no channel here", s.relay)
        self.assertEqual(s.t.recv_data(1.0), ("indication", oaddr, b"no channel here"))
        s.t.send_indication(oaddr, b"sent by indication")
        self.assertEqual(Session.recv(other), (b"sent by indication", s.relay))
        s.t.send_indication(s.peer_addr, b"indication to a channel peer")
        self.assertEqual(Session.recv(s.peer), (b"indication to a channel peer", s.relay))
        n, b = s.exchange(SIZES[::5])
        self.assert_counts(srv, before, off=(n, n), pkts=(n + 2, n + 1), octets=(b + 18 + 28, b + 15),
                           why="user space + kernel")

    # the contract: TCP clients and bandwidth-limited allocations stay in user space
    def test_05b_tcp_client_stays_in_user_space(self):
        self.need_bpf()
        srv = self.ternd(bed_conf("tc", tcp=True))
        before = counters(srv)
        s = Session(self, self.bed, transport="tcp")
        s.peer.sendto(b"to-tcp-client", s.relay)
        self.assertEqual(s.t.recv_data(1.0), ("channel", s.chan, b"to-tcp-client"))
        s.t.send_channel(s.chan, b"from-tcp-client")
        self.assertEqual(Session.recv(s.peer), (b"from-tcp-client", s.relay))
        self.assert_counts(srv, before, off=(0, 0), pkts=(1, 1), octets=(15, 13), why="TCP client")
        self.assertEqual(counters(srv)["channels"], 0, "a TCP client's channel got a kernel entry")

    def test_05c_bandwidth_limited_allocation_stays_in_user_space(self):
        self.need_bpf()
        srv = self.ternd(bed_conf("tc", extra="").replace("max_lifetime = 3600;",
                                                         "max_lifetime = 3600; max_bps = 10000000;"))
        before = counters(srv)
        s = Session(self, self.bed)
        n, b = s.exchange(SIZES[::10])
        self.assert_counts(srv, before, off=(0, 0), pkts=(n, n), octets=(b, b), why="max_bps")
        self.assertEqual(counters(srv)["channels"], 0, "a bandwidth-limited allocation got a kernel entry")

    # 6 ---------------------------------------------------------------------------
    @kernel_side
    def test_06_uclient_channels_zero_loss_offloaded(self):
        import sys
        sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "interop"))
        from test_turn_clients import assert_relayed_all, CLIENTS, MESSAGES  # noqa: E402
        if not (shutil.which("turnutils_uclient") and shutil.which("turnutils_peer")):
            self.skipTest("coturn's turnutils_uclient / turnutils_peer are not installed")
        srv = self.tc_ternd()
        peer = subprocess.Popen(["ip", "netns", "exec", self.bed.p, "turnutils_peer", "-L", PEER4, "-p", "3480"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        self.addCleanup(lambda: (peer.poll() is None and peer.kill(), peer.wait()))
        time.sleep(0.3)
        before = counters(srv)
        p = self.bed.exec(self.bed.c, ["timeout", "20", "turnutils_uclient", "-p", str(PORT), "-e", PEER4,
                                       "-r", "3480", "-m", str(CLIENTS), "-n", str(MESSAGES), "-l", "120",
                                       "-z", "5", "-u", "alice", "-w", "secret", SERVER4_C], timeout=40)
        out = p.stdout + p.stderr
        why = "--- uclient:\n%s\n--- ternd:\n%s" % (out[-2500:], srv.stderr()[-1500:])
        self.assertEqual(p.returncode, 0, why)
        assert_relayed_all(self, out, CLIENTS * MESSAGES, why)
        time.sleep(1.2)
        got = counters(srv)
        for d in ("to_peer", "to_client"):
            self.assertGreaterEqual(got["off_" + d] - before["off_" + d], CLIENTS * MESSAGES,
                                    "%s: not offloaded %r\n%s" % (d, got, offload_metrics(srv)))
            self.assertEqual(got["off_" + d] - before["off_" + d], got["pkts_" + d] - before["pkts_" + d],
                             "%s: some of uclient's channel traffic went through user space %r" % (d, got))

    # 7 ---------------------------------------------------------------------------
    def test_07_offload_off_is_the_reference(self):
        srv = self.ternd(bed_conf("off"))
        line = offload_line(srv)
        self.assertTrue(line, "no offload: line\n" + srv.stderr()[-1500:])
        self.assertNotIn("in the kernel on", line)
        text = srv.metrics_text()
        for fam in ("tern_offload_interfaces", "tern_offload_channels", "tern_offload_packets_total"):
            self.assertIn(fam, text, "metric family missing with offload off")
        before = counters(srv)
        self.assertEqual(before["interfaces"], 0)
        for v6 in (False, True):
            s = Session(self, self.bed, v6=v6)
            n, b = s.exchange()
            want = dict(before, pkts_to_peer=before["pkts_to_peer"] + n, pkts_to_client=before["pkts_to_client"] + n,
                        bytes_to_peer=before["bytes_to_peer"] + b, bytes_to_client=before["bytes_to_client"] + b)
            srv.wait_total("tern_relay_packets_total", want["pkts_to_peer"] + want["pkts_to_client"], realm=REALM)
            got = counters(srv)
            self.assertEqual({k: got[k] for k in want if k != "dropped"},
                             {k: want[k] for k in want if k != "dropped"})
            before = got
        self.assertEqual(tc_state(self.bed, "s0") + tc_state(self.bed, "s1"), "", "a filter with offload off")

    # 8 ---------------------------------------------------------------------------
    @kernel_side
    def test_08_sigkill_then_a_new_ternd_attaches_and_nothing_stale(self):
        a = self.tc_ternd()
        s = Session(self, self.bed)
        before = counters(a)
        n, b = s.exchange(SIZES[::10])
        self.assert_offloaded(a, before, n, b, n, b)
        held_a = bpf_held(a.proc.pid)
        self.assertTrue(held_a["link"] or held_a["prog"], "ternd holds no BPF link or program")
        a.kill9()
        self.assertEqual(bpf_live(held_a), {}, "the killed ternd's links/programs still exist")
        for dev in ("s0", "s1"):
            self.assertNotIn("tern_relay", tc_state(self.bed, dev), "a tc filter outlived its ternd")
        # a stale program with the dead ternd's entries would still relay this
        self.assertIsNone(s.to_peer(b"to a dead ternd"), "a killed ternd's entry still relays")
        b_srv = self.tc_ternd()
        self.assertIsNone(s.to_peer(b"old 5-tuple"), "a killed ternd's entry still relays")
        s2 = Session(self, self.bed, chan=0x4321)
        before = counters(b_srv)
        n, b = s2.exchange(SIZES[::10])
        self.assert_offloaded(b_srv, before, n, b, n, b, "after SIGKILL of the previous ternd")
        for dev in ("s0", "s1"):
            self.assertLessEqual(tc_state(self.bed, dev).count("tern_relay"), 1, tc_state(self.bed, dev))
        held_b = bpf_held(b_srv.proc.pid)
        self.assertEqual(b_srv.stop(), 0)
        self.assertEqual(bpf_live(held_b), {}, "links/programs left after ternd exited")
        for dev in ("s0", "s1"):
            self.assertNotIn("tern_relay", tc_state(self.bed, dev), "left attached after exit")
        self.assertIsNone(s2.to_peer(b"after exit"), "relayed after ternd exited")

    def clsact_ternd(self, **kw):
        """A ternd that attaches by clsact filters, as on kernels before 6.6."""
        self.need_bpf()
        srv = self.ternd(bed_conf("tc", **kw), mport=kw.get("mport", MPORT),
                         prefix=("env", "TERN_OFFLOAD_CLSACT=1"))
        self.assertIn("(tc clsact)", offload_line(srv), srv.stderr()[-2000:])
        return srv

    @kernel_side
    def test_08b_clsact_filter_of_a_killed_ternd_is_replaced_at_the_next_start(self):
        """A clsact filter outlives a SIGKILLed ternd (unlike a tcx link); the
        next start of the same configuration takes the same handle and
        replaces it, so the dead ternd's entries relay nothing."""
        a = self.clsact_ternd()
        s = Session(self, self.bed)
        before = counters(a)
        n, b = s.exchange(SIZES[::10])
        self.assert_offloaded(a, before, n, b, n, b, "clsact")
        a.kill9()
        for dev in ("s0", "s1"):
            self.assertEqual(tc_state(self.bed, dev).count("name tern_relay"), 1,
                             "the killed ternd's filter: " + tc_state(self.bed, dev))
        b_srv = self.clsact_ternd()
        for dev in ("s0", "s1"):
            self.assertEqual(tc_state(self.bed, dev).count("name tern_relay"), 1,
                             "not replaced: " + tc_state(self.bed, dev))
        self.assertIsNone(s.to_peer(b"old 5-tuple"), "a killed ternd's entry still relays")
        s2 = Session(self, self.bed, chan=0x4321)
        before = counters(b_srv)
        n, b = s2.exchange(SIZES[::10])
        self.assert_offloaded(b_srv, before, n, b, n, b, "after the stale filter was replaced")
        self.assertEqual(b_srv.stop(), 0)
        for dev in ("s0", "s1"):
            self.assertNotIn("tern_relay", tc_state(self.bed, dev), "left attached after exit")
        self.assertIsNone(s2.to_peer(b"after exit"), "relayed after ternd exited")

    @kernel_side
    def test_09b_two_ternds_by_clsact_filters_chain(self):
        a = self.clsact_ternd()
        b_srv = self.clsact_ternd(port=PORT + 1, mport=MPORT + 1, relay_ports=(51000, 51999))
        for dev in ("s0", "s1"):
            self.assertEqual(tc_state(self.bed, dev).count("name tern_relay"), 2, tc_state(self.bed, dev))
        sa = Session(self, self.bed)
        sb = Session(self, self.bed, srv_port=PORT + 1, chan=0x4002)
        for srv, s in ((a, sa), (b_srv, sb)):
            before = counters(srv)
            n, b = s.exchange(SIZES[::8])
            self.assert_offloaded(srv, before, n, b, n, b, "clsact ternd on port %d" % s.server[1])
        self.assertEqual(b_srv.stop(), 0)
        self.assertEqual(tc_state(self.bed, "s0").count("name tern_relay"), 1, tc_state(self.bed, "s0"))
        before = counters(a)
        n, b = sa.exchange(SIZES[::8])
        self.assert_offloaded(a, before, n, b, n, b, "after the other ternd's filter went")

    # 9 ---------------------------------------------------------------------------
    @kernel_side
    def test_09_two_ternds_on_one_interface(self):
        a = self.tc_ternd()
        b_srv = self.tc_ternd(port=PORT + 1, mport=MPORT + 1, relay_ports=(51000, 51999))
        sa = Session(self, self.bed)
        sb = Session(self, self.bed, srv_port=PORT + 1, chan=0x4002)
        self.assertTrue(51000 <= sb.relay[1] <= 51999, sb.relay)
        for srv, s in ((a, sa), (b_srv, sb), (a, sa)):
            before = counters(srv)
            n, b = s.exchange(SIZES[::8])
            self.assert_offloaded(srv, before, n, b, n, b, "ternd on port %d" % s.server[1])
        # the one attached second goes; the first still relays in the kernel
        self.assertEqual(b_srv.stop(), 0)
        before = counters(a)
        n, b = sa.exchange(SIZES[::8])
        self.assert_offloaded(a, before, n, b, n, b, "after the other ternd exited")

    # 11 --------------------------------------------------------------------------
    @kernel_side
    def test_11_too_big_for_the_egress_mtu_goes_to_user_space(self):
        """A peer datagram that fills the MTU is 4 bytes too big once it is
        ChannelData: the kernel passes it up (reason mtu) and sends nothing."""
        for forwarding in (False, True):
            with self.subTest(forwarding=forwarding):
                self.set_forwarding(forwarding)
                srv = self.tc_ternd()
                try:
                    for v6, size in ((False, 1500 - 28), (True, 1500 - 48)):
                        s = Session(self, self.bed, v6=v6)
                        before = counters(srv)
                        mtu0 = srv.total("tern_offload_passed_packets_total", reason="mtu")
                        big = os.urandom(size)
                        got = s.to_client(big)
                        if got is not None:   # ternd sends it fragmented; then it is intact
                            self.assertEqual(got, (struct.pack("!HH", s.chan, size) + big, s.server))
                        self.assertEqual(srv.total("tern_offload_passed_packets_total", reason="mtu"), mtu0 + 1)
                        n, b = s.exchange([size - 4, 1])   # fits: relayed in the kernel
                        user = 0 if got is None else 1
                        self.assert_counts(srv, before, off=(n, n), pkts=(n, n + user),
                                           octets=(b, b + user * size), why="after the big one")
                finally:
                    srv.stop()

    def set_forwarding(self, on):
        """Forwarding on s0 and s1 (the program's FIB lookup answers
        FWD_DISABLED without it, and the kernel's output route is used)."""
        v = "1" if on else "0"
        self.bed.exec(self.bed.s, ["sysctl", "-qw", "net.ipv4.conf.s0.forwarding=" + v,
                                   "net.ipv4.conf.s1.forwarding=" + v, "net.ipv6.conf.s0.forwarding=" + v,
                                   "net.ipv6.conf.s1.forwarding=" + v], check=True)
        if on:
            self.addCleanup(self.set_forwarding, False)

    # 12 --------------------------------------------------------------------------
    def test_12_without_cap_bpf_auto_falls_back_and_tc_exits(self):
        """No permission (CAP_BPF, CAP_SYS_ADMIN, CAP_NET_ADMIN, CAP_PERFMON out of
        the bounding set): "auto" says why in one line and relays in user
        space; "tc" exits non-zero with the reason."""
        drop = ["setpriv", "--bounding-set=-bpf,-sys_admin,-net_admin,-perfmon", "--inh-caps=-all"]
        srv = self.ternd(bed_conf("auto"), prefix=drop)
        lines = offload_lines(srv)
        self.assertEqual(len(lines), 1, srv.stderr()[-2000:])
        self.assertNotIn("in the kernel on", lines[0])
        before = counters(srv)
        self.assertEqual(before["interfaces"], 0)
        s = Session(self, self.bed)
        n, b = s.exchange(SIZES[::6])
        self.assert_counts(srv, before, off=(0, 0), pkts=(n, n), octets=(b, b), why="user space")
        srv.stop()
        tc = BedTernd(bed_conf("tc"), self.bed.s, expect_ready=False, prefix=drop)
        tc.start()
        self.addCleanup(tc.stop)
        ready = tc.proc.stdout.readline()
        self.assertNotIn("listening on", ready, "offload = \"tc\" started without permission")
        self.assertNotIn(tc.wait_exit(), (None, 0))
        lines = offload_lines(tc)
        self.assertTrue(lines and "offload:" in lines[-1], tc.stderr()[-2000:])

    # 13 --------------------------------------------------------------------------
    def test_13_mobility_moves_the_kernel_entries(self):
        """RFC 8016: a Refresh with the ticket from a new 5-tuple moves the
        allocation (to the other worker, sometimes): the old 5-tuple's
        ChannelData no longer relays, the new one's is relayed in the kernel."""
        srv = self.tc_ternd(extra="mobility = true;")
        s = Session(self, self.bed, alloc_extra=[attr(A_MOBILITY, b"")])
        ticket = s.answer["attrs"][A_MOBILITY][0]
        before = counters(srv)
        n = b = 0
        for move in range(5):
            dn, db = s.exchange(SIZES[::12])
            n, b = n + dn, b + db
            with netns(self.bed.c):
                t = Turn(s.server[0], s.server[1], timeout=2)
            self.addCleanup(t.close)
            t.nonce = s.t.nonce
            r = t.request(REFRESH, [attr(A_LIFETIME, struct.pack("!I", 3600)), attr(A_MOBILITY, ticket)])
            self.assertEqual(r and r["cls"], 2, "Refresh with the ticket: %r" % (r,))
            ticket = r["attrs"][A_MOBILITY][0]
            old, s.t = s.t, t
            old.send_channel(s.chan, b"from the old 5-tuple")
            self.assertIsNone(Session.recv(s.peer, 0.3), "the old 5-tuple still relays after a move")
        dn, db = s.exchange(SIZES[::12])
        self.assert_offloaded(srv, before, n + dn, b + db, n + dn, b + db, "over 5 moves")
        self.assertEqual(counters(srv)["channels"], 1)

    # 14 --------------------------------------------------------------------------
    def test_14_reload_with_a_bandwidth_limit_takes_channels_back(self):
        """A reload (SIGHUP) that sets limits.max_bps, which the kernel cannot
        enforce, brings the existing channels back to user space; one that
        removes it gives them to the kernel again."""
        srv = self.tc_ternd()
        s = Session(self, self.bed)
        self.wait_channels(srv, 1)
        with open(srv.conf) as f:
            plain = f.read()
        limited = plain.replace("max_lifetime = 3600;", "max_lifetime = 3600; max_bps = 10000000;")
        for text, entries, why in ((limited, 0, "max_bps set by a reload"), (plain, 1, "max_bps removed again")):
            with open(srv.conf, "w") as f:
                f.write(text)
            reloads = len(srv.lines("reload"))
            srv.signal(signal.SIGHUP)
            end = time.monotonic() + 3
            while len(srv.lines("reload")) == reloads and time.monotonic() < end:
                time.sleep(0.05)
            self.wait_channels(srv, entries)
            before = counters(srv)
            n, b = s.exchange(SIZES[::12])
            self.assert_counts(srv, before, off=(n * entries, n * entries), pkts=(n, n), octets=(b, b), why=why)

    # stale / config -----------------------------------------------------------------
    def test_10b_bad_interface_name_with_tc(self):
        self.need_bpf()
        srv = BedTernd(bed_conf("tc", interfaces=["s0", "nosuch9"]), self.bed.s, expect_ready=False)
        srv.start()
        self.addCleanup(srv.stop)
        rc = srv.wait_exit()
        self.assertNotIn(rc, (None, 0), "started with a bad offload interface")
        self.assertIn("nosuch9", srv.stderr())

    def test_10d_layer3_interface_is_left_out_or_refused(self):
        """The program reads an Ethernet header: a tun (layer-3) interface
        holding an address of a wildcard listener is left out with a line;
        named in offload_interfaces, it stops the start."""
        self.need_bpf()
        for cmd in (["ip", "tuntap", "add", "dev", "ttun9", "mode", "tun"],
                    ["ip", "addr", "add", "10.78.9.1/24", "dev", "ttun9"],
                    ["ip", "link", "set", "ttun9", "up"]):
            r = self.bed.exec(self.bed.s, cmd)
            self.assertEqual(r.returncode, 0, r.stderr)
        self.addCleanup(self.bed.exec, self.bed.s, ["ip", "link", "del", "ttun9"])
        text = bed_conf(None).replace('ip = "%s"; port = %d; }' % (SERVER4_C, PORT),
                                      'ip = "0.0.0.0"; port = %d; }' % PORT)
        srv = self.ternd(text)
        lines = offload_lines(srv)
        self.assertIn("ttun9 is not an Ethernet interface", "\n".join(lines), lines)
        self.assertIn("in the kernel on", "\n".join(lines), lines)
        self.assertNotIn("ttun9", [l for l in lines if "in the kernel on" in l][0])
        srv.stop()
        bad = BedTernd(bed_conf("tc", interfaces=["s0", "ttun9"]), self.bed.s, expect_ready=False)
        bad.start()
        self.addCleanup(bad.stop)
        self.assertNotIn(bad.wait_exit(), (None, 0), "started with a layer-3 offload interface")
        self.assertIn('not an Ethernet interface: "ttun9"', bad.stderr())

    def test_10c_auto_in_the_bed_attaches(self):
        self.need_bpf()
        srv = self.ternd(bed_conf(None))   # the default: auto
        line = offload_line(srv)
        self.assertIn("in the kernel", line, srv.stderr()[-1500:])
        self.assertEqual(counters(srv)["interfaces"], 2)


def tc_state(bed, dev):
    """Legacy tc filters on dev's ingress in the server namespace ('' if none)."""
    return bed.exec(bed.s, ["tc", "filter", "show", "dev", dev, "ingress"]).stdout.strip()


def bpf_held(pid):
    """The BPF link and program ids process pid holds open (from its fdinfo)."""
    held = {"link": set(), "prog": set()}
    d = "/proc/%d/fdinfo" % pid
    for fd in os.listdir(d):
        try:
            with open(os.path.join(d, fd)) as f:
                text = f.read()
        except OSError:
            continue
        m = re.search(r"^link_id:\s*(\d+)", text, re.M)
        if m:
            held["link"].add(int(m.group(1)))
        m = re.search(r"^prog_id:\s*(\d+)", text, re.M)
        if m:
            held["prog"].add(int(m.group(1)))
    return held


def bpf_live(held, timeout=3.0):
    """Which of held's link and program ids still exist on the machine, after
    waiting up to timeout for them to go (freeing is deferred)."""
    end = time.monotonic() + timeout
    while True:
        left = {}
        for kind in ("link", "prog"):
            p = subprocess.run(["bpftool", "-j", kind, "show"], capture_output=True, text=True, timeout=20)
            ids = {int(x) for x in re.findall(r'"id":\s*(\d+)', p.stdout)}
            if held[kind] & ids:
                left[kind] = sorted(held[kind] & ids)
        if not left or time.monotonic() > end:
            return left
        time.sleep(0.2)


class OffloadLoopback(unittest.TestCase):
    """No bed: the normal loopback fixture."""

    def test_10_auto_on_loopback_does_not_attach_and_says_why(self):
        port, mport = free_port(), free_port()
        text = conf(port, 'http = { ip = "127.0.0.1"; port = %d; };' % mport)
        with Ternd(text) as srv:
            lines = [l for l in srv.stderr().splitlines() if "offload:" in l and " debug " not in l]
            self.assertEqual(len(lines), 1, srv.stderr()[-2000:])
            self.assertNotIn("in the kernel on", lines[0])
            import urllib.request
            body = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport, timeout=5).read().decode()
            self.assertRegex(body, r"(?m)^tern_offload_interfaces(\{[^}]*\})? 0$")

    def test_10_bad_offload_value_is_a_config_error_with_file_and_line(self):
        port = free_port()
        text = conf(port, 'relay = {\n  min_port = 50000;\n  offload = "sometimes";\n};')
        srv = Ternd(text, expect_ready=False)
        srv.__enter__()
        rc = srv.proc.wait(10)
        srv.stop()
        self.assertNotEqual(rc, 0)
        line = text.splitlines().index('  offload = "sometimes";') + 1
        self.assertRegex(srv.stderr(), r"ternd\.conf:%d: .*offload" % line)
        self.assertNotIn("unknown key", srv.stderr())


if __name__ == "__main__":
    unittest.main()
