"""Privileges: ternd started as root with user = "nobody"; group = "nogroup"
binds its listeners (TCP on a port below 1024, 443 when free) and then is
nobody/nogroup in every one of its IDs, with no capability left and nogroup
as its only group; it still serves (a Binding on the low port, an Allocate
and relayed data both ways) and still reloads. Without `user`, as root, it
warns. Started the way scripts/ternd.service starts it (an unprivileged user
with CAP_NET_BIND_SERVICE as its only capability, no_new_privs), it binds the
low port itself, does not warn, and serves and reloads the same. Needs root
(skipped otherwise)."""
import os
import pwd
import grp
import re
import signal
import socket
import subprocess
import time
import unittest

from ternd import Ternd, TERND, conf, free_port, request, parse, recv_frame
from turnclient import Turn

NOBODY = "nobody"
NOGROUP = "nogroup"
CAP_NET_BIND_SERVICE = 10


def low_port():
    """A TCP port below 1024 free on 127.0.0.1: 443 if it is."""
    for port in [443] + list(range(900, 1000)):
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
            return port
        except OSError:
            continue
        finally:
            s.close()
    raise unittest.SkipTest("no TCP port below 1024 is free on 127.0.0.1")


def status(pid):
    """/proc/PID/status as {field: [values]}."""
    out = {}
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.split()
    return out


def readable(srv):
    """Let the dropped process read its configuration again (reloads)."""
    os.chmod(srv.dir, 0o755)
    os.chmod(srv.conf, 0o644)


def wait_for(cond, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def udp_peer():
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(2)
    return s


def config(low, udp, extra=""):
    relay_lo = free_port(kinds=(socket.SOCK_DGRAM,))
    listen = ('{ proto = "tcp"; ip = "127.0.0.1"; port = %d; },'
              '{ proto = "udp"; ip = "127.0.0.1"; port = %d; }' % (low, udp))
    return conf(udp, 'relay = { ip = [ "127.0.0.1" ]; min_port = %d; max_port = %d; };\n'
                     'peers = { allow_loopback = true; };\n'
                     'auth = { users = ( { user = "alice"; password = "secret"; } ); };\n%s'
                % (relay_lo, relay_lo + 50, extra), listen=listen)


@unittest.skipUnless(os.geteuid() == 0, "needs root: ternd must start as root to drop privileges")
class Privileges(unittest.TestCase):
    def setUp(self):
        self.uid = pwd.getpwnam(NOBODY).pw_uid
        self.gid = grp.getgrnam(NOGROUP).gr_gid

    def serves(self, low, udp):
        # a Binding over TCP on the port below 1024
        with socket.create_connection(("127.0.0.1", low), timeout=3) as s:
            msg, tid = request()
            s.sendall(msg)
            reply = parse(recv_frame(s))
            self.assertEqual((reply["tid"], reply["cls"]), (tid, 2))
        # an Allocate on UDP, and data relayed both ways
        t = Turn("127.0.0.1", udp)
        self.addCleanup(t.close)
        r = t.allocate()
        self.assertEqual(r["cls"], 2, r)
        peer = udp_peer()
        self.addCleanup(peer.close)
        self.assertEqual(t.permission(peer.getsockname())["cls"], 2)
        t.send_indication(peer.getsockname(), b"to the peer")
        data, src = peer.recvfrom(100)
        self.assertEqual((data, src), (b"to the peer", t.relayed[0]))
        peer.sendto(b"to the client", t.relayed[0])
        self.assertEqual(t.recv_data(), ("indication", peer.getsockname(), b"to the client"))

    def reloads(self, srv, udp):
        readable(srv)
        with open(srv.conf, "a") as f:
            f.write("# touched\n")
        srv.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_for(lambda: re.search(r"reload: .* applied", srv.stderr()), 10), srv.stderr())
        self.assertNotIn("reload refused", srv.stderr())

    def test_drop_to_nobody_after_binding_a_low_port(self):
        low, udp = low_port(), free_port()
        with Ternd(config(low, udp, 'user = "%s";\ngroup = "%s";\n' % (NOBODY, NOGROUP))) as srv:
            st = status(srv.proc.pid)
            self.assertEqual(st["Uid"], [str(self.uid)] * 4, "real, effective, saved, fs")
            self.assertEqual(st["Gid"], [str(self.gid)] * 4, "real, effective, saved, fs")
            self.assertEqual(st["Groups"], [str(self.gid)])
            for cap in ("CapInh", "CapPrm", "CapEff", "CapAmb"):
                self.assertEqual(int(st[cap][0], 16), 0, cap)
            # every thread, not only the main one
            for tid in os.listdir("/proc/%d/task" % srv.proc.pid):
                self.assertEqual(status(int(tid))["Uid"], [str(self.uid)] * 4, "thread " + tid)
            self.serves(low, udp)
            self.reloads(srv, udp)
            self.serves(low, udp)
            log = srv.stderr()
            self.assertIn("running as user nobody", log)
            self.assertNotIn("running as root", log)

    def test_root_without_user_warns(self):
        with Ternd(conf(free_port())) as srv:
            self.assertTrue(wait_for(lambda: "running as root" in srv.stderr(), 5), srv.stderr())
            self.assertEqual(status(srv.proc.pid)["Uid"], ["0"] * 4)

    def test_unknown_user_stops_the_start(self):
        srv = Ternd(conf(free_port(), 'user = "no-such-user-tern";\n'), expect_ready=False)
        with srv:
            srv.proc.wait(10)
        self.assertEqual(srv.proc.returncode, 1)
        self.assertIn("no-such-user-tern", srv.stderr())

    def test_as_the_systemd_unit_runs_it(self):
        """User= nobody, AmbientCapabilities= and CapabilityBoundingSet=
        CAP_NET_BIND_SERVICE, NoNewPrivileges=yes (setpriv does what
        systemd would)."""
        low, udp = low_port(), free_port()
        srv = Ternd(config(low, udp), expect_ready=False)
        readable(srv)
        srv.errf = open(srv.log, "w")
        srv.proc = subprocess.Popen(
            ["setpriv", "--reuid", NOBODY, "--regid", NOGROUP, "--clear-groups",
             "--inh-caps=-all,+net_bind_service", "--ambient-caps=-all,+net_bind_service",
             "--bounding-set=-all,+net_bind_service", "--no-new-privs", TERND, "-c", srv.conf],
            stdout=subprocess.PIPE, stderr=srv.errf, text=True)
        self.addCleanup(srv.stop)
        line = srv.proc.stdout.readline()
        self.assertIn("listening on", line, srv.stderr())
        st = status(srv.proc.pid)
        self.assertEqual(st["Uid"], [str(self.uid)] * 4)
        self.assertEqual(int(st["CapEff"][0], 16), 1 << CAP_NET_BIND_SERVICE)
        self.assertEqual(int(st["CapBnd"][0], 16), 1 << CAP_NET_BIND_SERVICE)
        self.assertEqual(st["NoNewPrivs"], ["1"])
        self.serves(low, udp)
        self.reloads(srv, udp)
        self.serves(low, udp)
        self.assertNotIn("running as root", srv.stderr())
        self.assertEqual(srv.stop(), 0)


if __name__ == "__main__":
    unittest.main()
