"""ternd under systemd: scripts/ternd.service passes `systemd-analyze verify`
(offline, in a root made of this machine's units and the built programs) and
says what the issue asks (Type=notify, user tern with CAP_NET_BIND_SERVICE
only, the hardening, /run/tern, LimitNOFILE, ExecReload, WatchdogSec); its
ExecReload runs; and the notify protocol, spoken to a fake NOTIFY_SOCKET (a
path and an abstract name): READY=1 with MAINPID, STATUS= lines,
RELOADING=1 with MONOTONIC_USEC then READY=1 around a reload (SIGHUP and
ternctl), nothing for a refused one, WATCHDOG=1 every WATCHDOG_USEC/2, and
STOPPING=1 on SIGTERM."""
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import threading
import time
import unittest

from ternd import ROOT, BUILD, TERND, Ternd, conf, free_port, request, parse, udp_exchange, temp_dir

UNIT = os.path.join(ROOT, "scripts", "ternd.service")
TERNCTL = os.path.join(ROOT, BUILD, "ternctl")
ANALYZE = shutil.which("systemd-analyze")


def unit_settings(path=UNIT):
    """The unit as {section: {key: [values...]}} (a key may repeat)."""
    out, section = {}, None
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line or line[0] in "#;":
                continue
            if line.startswith("["):
                section = out.setdefault(line.strip("[]"), {})
                continue
            key, _, value = line.partition("=")
            section.setdefault(key.strip(), []).append(value.strip())
    return out


def systemd_root(root):
    """Make root a directory systemd-analyze can take as --root: this
    machine's units in /usr/lib/systemd/system, /bin/sh and /bin/kill, the
    usual merged-/usr links. What the unit names must be put there too."""
    units = os.path.join(root, "usr", "lib", "systemd", "system")
    shutil.copytree("/lib/systemd/system", units, symlinks=True, dirs_exist_ok=True)
    for d in ("usr/bin", "usr/sbin"):
        os.makedirs(os.path.join(root, d), exist_ok=True)
    for link in ("bin", "sbin", "lib"):
        if not os.path.lexists(os.path.join(root, link)):
            os.symlink("usr/" + link, os.path.join(root, link))
    shutil.copy("/bin/sh", os.path.join(root, "usr/bin/sh"))
    shutil.copy("/bin/kill", os.path.join(root, "usr/bin/kill"))
    return root


def offline_root(unit_text):
    """A root with the unit, and the built ternd (and ternctl) and the default
    configuration where the unit names them."""
    root = systemd_root(temp_dir("tern-unit-root-"))
    os.makedirs(os.path.join(root, "etc/tern"))
    shutil.copy(TERND, os.path.join(root, "usr/sbin/ternd"))
    if os.path.exists(TERNCTL):
        shutil.copy(TERNCTL, os.path.join(root, "usr/bin/ternctl"))
    shutil.copy(os.path.join(ROOT, "conf", "ternd.conf"), os.path.join(root, "etc/tern/ternd.conf"))
    with open(os.path.join(root, "usr/lib/systemd/system/ternd.service"), "w") as f:
        f.write(unit_text)
    return root


def analyze(*args, root=None):
    """systemd-analyze ARGS [--root=ROOT] ternd.service (a unit name, or a
    path given as the last argument)."""
    unit = [] if args and args[-1].endswith("/ternd.service") else ["ternd.service"]
    where = ["--root=" + root] if root else []
    return subprocess.run([ANALYZE] + list(args) + where + unit,
                          capture_output=True, text=True, timeout=120,
                          env=dict(os.environ, SYSTEMD_LOG_LEVEL="notice", SYSTEMD_PAGER="cat",
                                   SYSTEMD_COLORS="0"))


@unittest.skipUnless(ANALYZE, "systemd-analyze is missing: the Debian package systemd "
                              "(scripts/install-deps --test) brings it")
class Unit(unittest.TestCase):
    def test_unit_passes_systemd_analyze_verify(self):
        with open(UNIT) as f:
            text = f.read()
        root = offline_root(text)
        p = analyze("verify", "--man=no", root=root)
        # verify exits 0 on unknown keys and bad values too: it must say nothing
        self.assertEqual((p.returncode, p.stdout + p.stderr), (0, ""))
        # ... and it would have said something about a mistake
        root = offline_root(text.replace("NoNewPrivileges=yes", "NoNewPrivileges=yes\nLimitNOFILE=lots"))
        p = analyze("verify", "--man=no", root=root)
        self.assertIn("lots", p.stdout + p.stderr)

    def test_unit_exposure_is_low(self):
        with open(UNIT) as f:
            root = offline_root(f.read())
        p = analyze("security", "--offline=true", "--no-pager", root=root)
        m = re.search(r"Overall exposure level for ternd.service: ([0-9.]+)", p.stdout + p.stderr)
        self.assertIsNotNone(m, p.stdout[-2000:] + p.stderr)
        self.assertLessEqual(float(m.group(1)), 2.0, p.stdout)


class UnitContract(unittest.TestCase):
    """What the issue asks of the unit, setting by setting."""

    def test_settings(self):
        u = unit_settings()
        s = {k: v[-1] for k, v in u["Service"].items()}
        self.assertEqual(s["Type"], "notify")
        self.assertEqual(s["NotifyAccess"], "main")
        self.assertEqual(shlex.split(s["ExecStart"]), ["/usr/sbin/ternd", "-c", "/etc/tern/ternd.conf"])
        self.assertEqual((s["User"], s["Group"]), ("tern", "tern"))
        self.assertEqual(s["AmbientCapabilities"], "CAP_NET_BIND_SERVICE")
        self.assertEqual(s["CapabilityBoundingSet"], "CAP_NET_BIND_SERVICE")
        for key in ("NoNewPrivileges", "ProtectHome", "PrivateTmp", "PrivateDevices", "RestrictSUIDSGID"):
            self.assertEqual(s[key], "yes", key)
        self.assertEqual(s["ProtectSystem"], "strict")
        self.assertEqual(s["RuntimeDirectory"], "tern")
        self.assertGreaterEqual(int(s["LimitNOFILE"]), 65536)
        self.assertIn("ternctl -s /run/tern/ternd.sock reload", s["ExecReload"])
        self.assertIn("kill -HUP", s["ExecReload"])
        self.assertRegex(s["WatchdogSec"], r"^\d+s$")
        self.assertEqual(u["Install"]["WantedBy"], ["multi-user.target"])

    def exec_reload(self, sock_path, mainpid):
        """The unit's ExecReload as systemd would run it ($$ is a literal $,
        $MAINPID in the environment), with the socket and ternctl here."""
        line = unit_settings()["Service"]["ExecReload"][-1].replace("$$", "$")
        line = line.replace("/run/tern/ternd.sock", sock_path).replace("/usr/bin/ternctl", TERNCTL)
        return subprocess.run(shlex.split(line), capture_output=True, text=True, timeout=30,
                              env=dict(os.environ, MAINPID=str(mainpid)))

    def test_exec_reload_sends_sighup_without_control_socket(self):
        port = free_port()
        with Ternd(conf(port)) as srv:
            p = self.exec_reload(os.path.join(srv.dir, "absent.sock"), srv.proc.pid)
            self.assertEqual(p.returncode, 0, p.stderr)
            self.assertTrue(wait_for(lambda: "applied" in srv.stderr(), 10), srv.stderr())
            self.assertTrue(srv.alive())

    @unittest.skipUnless(os.path.exists(TERNCTL), "build/ternctl is not built")
    def test_exec_reload_goes_through_ternctl_and_reports_refusal(self):
        port = free_port()
        d = temp_dir("tern-ctl-")
        sock = os.path.join(d, "ternd.sock")
        text = conf(port, 'control = { path = "%s"; };' % sock)
        # MAINPID names a bystander: were SIGHUP sent instead, it would die
        bystander = subprocess.Popen(["sleep", "60"])
        self.addCleanup(bystander.wait)
        self.addCleanup(bystander.kill)
        with Ternd(text) as srv:
            p = self.exec_reload(sock, bystander.pid)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            self.assertIn("applied", srv.stderr())
            with open(srv.conf, "a") as f:
                f.write("no_such_key = 1;\n")
            p = self.exec_reload(sock, bystander.pid)
            self.assertNotEqual(p.returncode, 0, p.stdout)
            self.assertIn("no_such_key", p.stdout + p.stderr)
            self.assertTrue(srv.alive())
        self.assertIsNone(bystander.poll())


def wait_for(cond, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


class NotifySocket:
    """A fake service manager: a Unix datagram socket (a path, or an abstract
    name given as "@name") and every message received, with its time."""

    def __init__(self, abstract=False):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if abstract:
            self.name = "@tern-test-%d-%d" % (os.getpid(), time.monotonic_ns())
            self.sock.bind("\0" + self.name[1:])
        else:
            self.name = os.path.join(temp_dir("tern-notify-"), "notify")
            self.sock.bind(self.name)
        self.sock.settimeout(0.2)
        self.messages = []  # (monotonic seconds, {key: value})
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.thread.start()

    def run(self):
        while self.running:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().split("\n") if "=" in line)
            with self.lock:
                self.messages.append((time.monotonic(), fields))

    def close(self):
        self.running = False
        self.thread.join()
        self.sock.close()

    def all(self):
        with self.lock:
            return list(self.messages)

    def wait(self, key, value=None, after=0, timeout=10):
        """The first message from index `after` on that has key (= value);
        returns (index, fields) or fails."""
        end = time.monotonic() + timeout
        while True:
            msgs = self.all()
            for i in range(after, len(msgs)):
                f = msgs[i][1]
                if key in f and (value is None or f[key] == value):
                    return i, f
            if time.monotonic() > end:
                raise AssertionError("no %s%s from ternd in %d s; got %r" % (
                    key, "=" + value if value else "", timeout, [m[1] for m in msgs]))
            time.sleep(0.02)


class NotifiedTernd(Ternd):
    """Ternd with NOTIFY_SOCKET (and WATCHDOG_*) in its environment."""

    def __init__(self, conf_text, env):
        super().__init__(conf_text)
        self.env = env

    def __enter__(self):
        env = {k: v for k, v in os.environ.items() if not k.startswith(("NOTIFY_", "WATCHDOG_"))}
        env.update(self.env)
        self.errf = open(self.log, "w")
        self.proc = subprocess.Popen([TERND, "-c", self.conf], stdout=subprocess.PIPE,
                                     stderr=self.errf, text=True, env=env)
        self.ready_line = self.proc.stdout.readline()
        if "listening on" not in self.ready_line:
            self.stop()
            raise RuntimeError("ternd did not start: " + self.stderr())
        return self


def binding_ok(port):
    msg, tid = request()
    reply, _ = udp_exchange("127.0.0.1", port, msg)
    return reply is not None and parse(reply)["tid"] == tid and parse(reply)["cls"] == 2


class Notify(unittest.TestCase):
    def start(self, abstract=False, **env):
        ns = NotifySocket(abstract)
        self.addCleanup(ns.close)
        port = free_port()
        srv = NotifiedTernd(conf(port), dict(env, NOTIFY_SOCKET=ns.name))
        srv.__enter__()
        self.addCleanup(srv.stop)
        return ns, srv, port

    def test_ready_status_reload_stopping(self):
        ns, srv, port = self.start()
        i, ready = ns.wait("READY", "1")
        self.assertEqual(ready.get("MAINPID"), str(srv.proc.pid))
        self.assertIn("STATUS", ready)
        self.assertTrue(binding_ok(port))
        # the node's numbers, once the first second has passed
        _, status = ns.wait("STATUS", after=i + 1, timeout=5)
        self.assertRegex(status["STATUS"], r"^\d+ allocations, \d+ sessions")
        # a reload: RELOADING=1 with the monotonic clock, then READY=1
        n = len(ns.all())
        before = time.clock_gettime(time.CLOCK_MONOTONIC)
        srv.proc.send_signal(signal.SIGHUP)
        r, reloading = ns.wait("RELOADING", "1", after=n)
        after = time.clock_gettime(time.CLOCK_MONOTONIC)
        usec = int(reloading["MONOTONIC_USEC"])
        self.assertGreaterEqual(usec, int(before * 1e6) - 1000)
        self.assertLessEqual(usec, int(after * 1e6) + 1000)
        ns.wait("READY", "1", after=r + 1)
        self.assertTrue(wait_for(lambda: re.search(r"reload: .* applied", srv.stderr()), 5), srv.stderr())
        self.assertTrue(binding_ok(port))
        # SIGTERM: STOPPING=1 and a clean exit
        n = len(ns.all())
        self.assertEqual(srv.stop(), 0)
        ns.wait("STOPPING", "1", after=n, timeout=2)

    def test_refused_reload_says_nothing(self):
        ns, srv, port = self.start()
        ns.wait("READY", "1")
        with open(srv.conf, "a") as f:
            f.write("workers = \"many\";\n")
        n = len(ns.all())
        srv.proc.send_signal(signal.SIGHUP)
        self.assertTrue(wait_for(lambda: "reload refused" in srv.stderr(), 5), srv.stderr())
        time.sleep(0.3)
        self.assertEqual([m for _, m in ns.all()[n:] if "RELOADING" in m or "READY" in m], [])
        self.assertTrue(binding_ok(port))

    @unittest.skipUnless(os.path.exists(TERNCTL), "build/ternctl is not built")
    def test_ternctl_reload_notifies_like_sighup(self):
        ns = NotifySocket()
        self.addCleanup(ns.close)
        sock = os.path.join(temp_dir("tern-ctl-"), "ternd.sock")
        srv = NotifiedTernd(conf(free_port(), 'control = { path = "%s"; };' % sock),
                            {"NOTIFY_SOCKET": ns.name})
        with srv:
            ns.wait("READY", "1")
            n = len(ns.all())
            p = subprocess.run([TERNCTL, "-s", sock, "reload"], capture_output=True, text=True, timeout=30)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            # ternctl returns once the reload is done: READY=1 was sent before
            r, _ = ns.wait("RELOADING", "1", after=n, timeout=1)
            ns.wait("READY", "1", after=r + 1, timeout=1)

    def test_abstract_socket(self):
        ns, srv, port = self.start(abstract=True)
        _, ready = ns.wait("READY", "1")
        self.assertEqual(ready.get("MAINPID"), str(srv.proc.pid))
        n = len(ns.all())
        srv.stop()
        ns.wait("STOPPING", "1", after=n, timeout=2)

    def watchdog_gaps(self, ns, seconds):
        start = time.monotonic()
        time.sleep(seconds)
        times = [t for t, m in ns.all() if m.get("WATCHDOG") == "1" and t >= start]
        return times, [b - a for a, b in zip([start] + times, times)]

    def test_watchdog_every_half_period(self):
        # WatchdogSec=1s: systemd kills a service silent for 1 s; sd_notify(3)
        # says to ping every half of it
        ns, srv, port = self.start(WATCHDOG_USEC="1000000")
        ns.wait("READY", "1")
        times, gaps = self.watchdog_gaps(ns, 3.2)
        self.assertTrue(times, "no WATCHDOG=1 in 3.2 s")
        self.assertLessEqual(max(gaps), 0.75, "WATCHDOG_USEC=1000000, and seconds between WATCHDOG=1: "
                             + ", ".join("%.2f" % g for g in gaps))

    def test_watchdog_longer_period(self):
        ns, srv, port = self.start(WATCHDOG_USEC="4000000")
        ns.wait("READY", "1")
        times, gaps = self.watchdog_gaps(ns, 4.5)
        self.assertGreaterEqual(len(times), 1, "WATCHDOG=1 at %r" % times)
        self.assertLessEqual(max(gaps), 2.5, "gaps between WATCHDOG=1: %r" % gaps)

    def test_watchdog_meant_for_another_process(self):
        ns, srv, port = self.start(WATCHDOG_USEC="1000000", WATCHDOG_PID="1")
        ns.wait("READY", "1")
        time.sleep(2.2)
        self.assertEqual([m for _, m in ns.all() if "WATCHDOG" in m], [])


if __name__ == "__main__":
    unittest.main()
