"""Shared state of a soak run: the run's context (ports, users, paths), a
registry of every child process the harness starts (stopped by PID, or by the
process group the harness gave that child), counters, the timeline of what the
harness did, the windows in which a harness fault may cause a log line, and
expectation violations (ternd did something it must not do)."""
import collections
import glob
import os
import random
import signal
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "test", "integration"))


class Procs:
    """Every external command of the harness. Each child gets its own session
    (process group = its PID) and a `timeout -k` wrapper where it runs for a
    bounded time, so it dies even if the harness itself is killed."""

    def __init__(self):
        self.lock = threading.Lock()
        self.live = {}
        self.closed = False

    def spawn(self, cmd, **kw):
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("stdout", subprocess.DEVNULL)
        kw.setdefault("stderr", subprocess.DEVNULL)
        with self.lock:
            if self.closed:
                raise RuntimeError("stopping")
            p = subprocess.Popen(cmd, start_new_session=True, **kw)
            self.live[p.pid] = p
        return p

    def forget(self, p):
        with self.lock:
            self.live.pop(p.pid, None)

    def kill(self, p, sig=signal.SIGKILL):
        """Signal a child we started and its process group (its own session)."""
        if p.poll() is not None:
            return
        try:
            os.killpg(p.pid, sig)
        except (ProcessLookupError, PermissionError):
            try:
                p.send_signal(sig)
            except ProcessLookupError:
                pass

    def run(self, cmd, timeout, wrap=True, cwd=None, env=None):
        """Run cmd bounded by timeout seconds: (returncode or None on timeout,
        combined output, pid of the child)."""
        full = (["timeout", "-k", "2", str(int(timeout))] if wrap else []) + list(cmd)
        try:
            p = self.spawn(full, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=cwd, env=env)
        except RuntimeError:
            return None, "", None
        try:
            out, _ = p.communicate(timeout=timeout + 5)
            rc = p.returncode
        except subprocess.TimeoutExpired:
            self.kill(p)
            out, _ = p.communicate()
            rc = None
        finally:
            self.forget(p)
        text = out.decode(errors="replace") if out else ""
        if wrap and rc == 124:
            rc = None
        return rc, text, p.pid

    def kill_all(self):
        with self.lock:
            self.closed = True
            procs = list(self.live.values())
        for p in procs:
            self.kill(p)
        for p in procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                pass


class Ctx:
    def __init__(self, seconds, build, out_dir, work_dir):
        self.seconds = seconds
        self.build = build
        self.out = out_dir
        self.work = work_dir
        self.rng = random.Random(int.from_bytes(os.urandom(4), "big"))
        self.seed = None
        self.stop = threading.Event()      # load and faults stop
        self.lock = threading.Lock()
        self.counts = collections.Counter()
        self.timeline = []                 # (time, actor, what)
        self.windows = []                  # [pattern regex, t0, t1 or None, why]
        self.violations = []               # (time, kind, detail)
        self.failures_detail = collections.defaultdict(list)  # kind -> first few details
        self.procs = Procs()
        self.t0 = None                     # wall time the load started
        self.pid = None                    # ternd
        # filled in by soak.py: ports, users, paths
        self.realm = "soak.example"
        self.host = "127.0.0.1"

    # --- bookkeeping --------------------------------------------------------
    def since(self, t=None):
        return (t if t is not None else time.time()) - (self.t0 or time.time())

    def event(self, actor, what):
        with self.lock:
            self.timeline.append((time.time(), actor, what))

    def count(self, key, n=1, detail=None):
        with self.lock:
            self.counts[key] += n
            if detail is not None and len(self.failures_detail[key]) < 5:
                self.failures_detail[key].append("t=%.1f %s" % (self.since(), detail))

    def violation(self, kind, detail):
        if self.stop.is_set():
            # the end of the load killed clients and cut exchanges short: no verdict
            self.count("violation_ignored_after_stop", detail="%s: %s" % (kind, detail))
            return
        with self.lock:
            self.violations.append((time.time(), kind, detail))
            self.timeline.append((time.time(), "VIOLATION", "%s: %s" % (kind, detail)))

    def open_window(self, patterns, why):
        """Log lines matching patterns are expected from now until close_window."""
        w = [patterns, time.time(), None, why]
        with self.lock:
            self.windows.append(w)
        return w

    def close_window(self, w, grace):
        with self.lock:
            w[2] = time.time() + grace

    def sleep(self, seconds):
        """Sleep unless the run stops; True if it stops."""
        return self.stop.wait(max(0.0, seconds))


def remove_turnadmin_log(pid):
    """coturn's turnadmin writes /var/log/turn_<pid>_<date>.log each time it
    runs and has no option against it: remove the file of the run we made."""
    if pid is None:
        return
    for pattern in ("/var/log/turn_%d_*.log" % pid, "/var/log/turnserver/turn_%d_*.log" % pid):
        for f in glob.glob(pattern):
            try:
                os.unlink(f)
            except OSError:
                pass
