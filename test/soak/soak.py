#!/usr/bin/env python3
"""Soak: one ternd under churn and faults for SOAK_SECONDS (default 3600), then
proof that it gave everything back.

    B=build SOAK_SECONDS=90 /usr/bin/python3 test/soak/soak.py     (make soak / make test)

ternd runs with fast TURN timers (limits.time_scale = 20: allocations live
30 s, permissions 15 s, channels 30 s), 2 workers, UDP/TCP/TLS/DTLS listeners,
static users, REST secrets, users in a real Redis (written with turnadmin),
user_quota (so every Allocate consults Redis), metrics, a log file; everything
on loopback, ports from free_port() and a probed 1000-port relay range.

The load (loads.py) and the faults (faults.py) run at once in threads; every
second /metrics is scraped and ternd's PID checked; every 10 s a sample is
taken: VmRSS, open fds, tern_allocations, tern_sessions, ternd's UDP sockets
bound in the relay range, utime+stime. At the end the load stops, ternd must
still serve, every allocation must expire, and then:

- zero live allocations and sessions; every relay port free (all bound, UDP,
  on the relay IP); open fds back to their start value; nothing left in Redis
  (quota members, allocation status keys) written after Redis was last
  disturbed; RSS within 5 % (or 2 MiB) of its level at 600 s (runs under
  30 min: the sample nearest SOAK_SECONDS/3); the same ternd process alive
  throughout, exiting 0 on SIGTERM;
- no warn/error line in ternd's log that the harness did not cause (each
  harness fault allows its patterns only while it lasts), no line that is not
  a log line, every allocation the log announced deleted;
- no broken expectation (an allocation alive past its lifetime, data relayed
  after its permission expired, a handshake deadline or idle timeout not
  enforced, a SIGHUP not acted on, a slow reader never closed, a failed
  scrape, a relay port outside the range);
- every load made progress; at most 2 % of client outcomes failed outside
  Redis faults.

Outputs in SOAK_OUT (default $B/soak): samples.csv, table.txt, plot.png,
ternd.log (all rotated pieces, in order), events.log (what the harness did,
when, and every counter). Last line: `soak: <figures> passed` or
`soak: <reasons> failed`; exit status 0 or 1.
"""
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from common import ROOT, Ctx  # noqa: E402  (puts test/integration on the path)
import faults  # noqa: E402
import loads  # noqa: E402
import logcheck  # noqa: E402
import procfs  # noqa: E402
import report  # noqa: E402
from redisctl import RedisCtl  # noqa: E402
from ternd import free_port, tls_files  # noqa: E402
from turnclient import Turn  # noqa: E402

TIME_SCALE = 20
IDLE_TIMEOUT = 10         # real seconds; uclient leaves a TCP connection idle up to ~5.5 s
HANDSHAKE_TIMEOUT = 2
MAX_LIFETIME = 600          # scaled: 30 s of real time
USER_QUOTA = 64
WORKERS = 2
RELAY_PORTS = 1000
SAMPLE_EVERY = 10.0
RSS_TOLERANCE = (0.05, 2048)  # fraction, KiB: whichever is larger
CLIENT_FAILURES_TOLERATED = 0.02  # of client outcomes outside Redis faults (at least 2 tolerated)


class SoakCtx(Ctx):
    def __init__(self, *a):
        super().__init__(*a)
        self.disturbances = []    # [kind, t0, t1]
        self.log_pieces = []
        self.log_lock = threading.Lock()

    # Redis disturbances, for telling expected client failures from others
    def disturb_start(self, kind):
        d = [kind, time.time(), None]
        with self.lock:
            self.disturbances.append(d)
        return d

    def disturb_end(self, d):
        with self.lock:
            d[2] = time.time()

    def redis_disturbed(self, a, b, grace=6.0):
        with self.lock:
            for kind, t0, t1 in self.disturbances:
                if kind.startswith("debug-sleep"):
                    continue   # 0.6 s: no request may fail for it
                end = (t1 if t1 is not None else time.time()) + grace
                if t0 <= b and a <= end:
                    return True
        return False

    def sleep_hard(self, seconds):
        time.sleep(seconds)

    def rotate_log(self):
        with self.log_lock:
            piece = "%s.%d" % (self.log_path, len(self.log_pieces) + 1)
            os.rename(self.log_path, piece)
            self.log_pieces.append(piece)

    def wait_log_line(self, patterns, timeout):
        """A line of the current log file matching one of the regexes."""
        regs = [re.compile(p) for p in patterns]
        end = time.time() + timeout
        while time.time() < end:
            try:
                with open(self.log_path) as f:
                    text = f.read()
                if any(r.search(text) for r in regs):
                    return True
            except FileNotFoundError:
                pass
            time.sleep(0.1)
        return False

    def whole_log(self):
        text = ""
        for p in self.log_pieces + [self.log_path]:
            try:
                with open(p, errors="replace") as f:
                    text += f.read()
            except FileNotFoundError:
                pass
        return text


def probe_relay_range():
    """1000 UDP ports free on 127.0.0.1, below free_port()'s 20000-40000 and
    below the kernel's ephemeral range (no client socket lands in it)."""
    starts = list(range(10000, 19001, 1000))
    rng = __import__("random").Random()
    rng.shuffle(starts)
    for lo in starts:
        hi = lo + RELAY_PORTS - 1
        if bind_all(lo, hi)[0] == []:
            return lo, hi
    raise RuntimeError("no free range of %d UDP ports in 10000-19999" % RELAY_PORTS)


def bind_all(lo, hi, ip="127.0.0.1"):
    """Bind every UDP port of [lo, hi] on ip: (ports that did not bind, errors)."""
    bad, errs = [], {}
    for port in range(lo, hi + 1):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind((ip, port))
        except OSError as e:
            bad.append(port)
            errs[port] = e.strerror
        finally:
            s.close()
    return bad, errs


def ternd_conf(ctx):
    listen = ('{ proto = "udp"; ip = "127.0.0.1"; port = %d; }, { proto = "tcp"; ip = "127.0.0.1"; port = %d; },\n'
              '  { proto = "tls"; ip = "127.0.0.1"; port = %d; }, { proto = "dtls"; ip = "127.0.0.1"; port = %d; }'
              % (ctx.port, ctx.port, ctx.tls_port, ctx.tls_port))
    users = ", ".join('{ user = "%s"; password = "%s"; }' % kv for kv in sorted(loads.STATIC.items()))
    return """# written by test/soak/soak.py
realm = "%(realm)s";
software = "ternd-soak";
workers = %(workers)d;
listen = ( %(listen)s );
tls = { cert = "%(cert)s"; key = "%(key)s"; };
relay = { ip = [ "127.0.0.1" ]; min_port = %(lo)d; max_port = %(hi)d; };
auth = { users = ( %(users)s ); secrets = [ "%(secret)s" ]; redis = "%(redis)s"; cache_ttl = 1; };
peers = { allow_loopback = true; };
limits = { time_scale = %(scale)d; user_quota = %(quota)d; idle_timeout = %(idle)d;
           handshake_timeout = %(hs)d; max_lifetime = %(maxlife)d; };
mobility = true;
http = { ip = "127.0.0.1"; port = %(mport)d; admin_token = "%(token)s"; };
log = { level = "info"; file = "%(log)s"; };
""" % dict(realm=ctx.realm, workers=WORKERS, listen=listen, cert=ctx.cert, key=ctx.key, lo=ctx.relay_lo,
           hi=ctx.relay_hi, users=users, secret=loads.STATIC_SECRET, redis=ctx.redis.url(), scale=TIME_SCALE,
           quota=USER_QUOTA, idle=IDLE_TIMEOUT, hs=HANDSHAKE_TIMEOUT, maxlife=MAX_LIFETIME,
           mport=ctx.metrics_port, token=loads.CONSOLE_TOKEN, log=ctx.log_path)


class Monitor:
    """Scrapes /metrics every second, watches ternd's PID, samples every 10 s."""

    def __init__(self, ctx, proc):
        self.ctx, self.proc = ctx, proc
        self.pid = proc.pid
        self.start_ticks = procfs.start_ticks(self.pid)
        self.samples = []
        self.series = {}
        self.scrapes = 0
        self.scrape_failures = []
        self.peak = {"allocations": 0, "sessions": 0, "relay_ports": 0}
        self.last_cpu = (time.time(), procfs.cpu_seconds(self.pid))
        self.died = None
        self.last_uptime = -1.0
        self.next_sample = 0.0

    def alive(self):
        if self.died:
            return False
        rc = self.proc.poll()
        if rc is not None:
            self.died = "ternd (PID %d) exited with %s at t=%.1f s" % (
                self.pid, ("signal %d" % -rc) if rc < 0 else "status %d" % rc, self.ctx.since())
            return False
        try:
            if procfs.start_ticks(self.pid) != self.start_ticks:
                self.died = "ternd's PID %d now belongs to another process" % self.pid
                return False
        except OSError:
            self.died = "ternd (PID %d) is gone" % self.pid
            return False
        return True

    def scrape(self):
        self.scrapes += 1
        try:
            text = procfs.scrape(self.ctx.metrics_port, timeout=5.0)
            series = procfs.parse_metrics(text)
        except (OSError, ValueError) as e:
            if self.alive():
                self.scrape_failures.append("t=%.1f %s" % (self.ctx.since(), e))
            return None
        self.series = series
        up = procfs.total(series, "tern_uptime_seconds")
        if up < self.last_uptime:
            self.ctx.violation("uptime went backwards", "tern_uptime_seconds %s -> %s" % (self.last_uptime, up))
        self.last_uptime = up
        for name in ("tern_allocations", "tern_sessions"):
            for labels, v in procfs.series_of(series, name).items():
                if v < 0 or v > 1e6:
                    self.ctx.violation("impossible gauge", "%s%s = %s" % (name, dict(labels), v))
        return series

    def metric_figures(self):
        s = self.series
        return {"allocations": int(procfs.total(s, "tern_allocations")),
                "sessions": int(procfs.total(s, "tern_sessions")),
                "created_total": int(procfs.total(s, "tern_allocations_created_total")),
                "redis_up": int(procfs.total(s, "tern_redis_up"))}

    def figures(self):
        """/proc figures now, metrics of the last scrape."""
        f = self.metric_figures()
        try:
            f["relay_ports"] = len(procfs.relay_ports(self.pid, "127.0.0.1", self.ctx.relay_lo, self.ctx.relay_hi))
            f["fds"] = procfs.fd_count(self.pid)
            f["rss_kib"] = procfs.rss_kib(self.pid)
        except OSError:
            return None
        for k in self.peak:
            self.peak[k] = max(self.peak[k], f[k])
        return f

    def tick(self, phase):
        """One second's work; True while ternd lives."""
        if not self.alive():
            return False
        f = self.figures()      # /proc first: a scrape's own connection is not counted
        self.scrape()
        if f is not None:
            f.update(self.metric_figures())
        if f is None:
            return self.alive()
        now = time.time()
        if now >= self.next_sample:
            self.next_sample = max(self.next_sample + SAMPLE_EVERY, now + SAMPLE_EVERY / 2)
            self.sample(phase, f)
        return True

    def sample(self, phase, f=None):
        f = f or self.figures()
        if f is None:
            return None
        now = time.time()
        cpu = procfs.cpu_seconds(self.pid)
        dt = now - self.last_cpu[0]
        pct = 100.0 * (cpu - self.last_cpu[1]) / dt if dt > 0.5 else 0.0
        self.last_cpu = (now, cpu)
        s = dict(f, t_s=self.ctx.since(now), phase=phase, cpu_s=cpu, cpu_pct=pct, wall=now)
        self.samples.append(s)
        print("soak: t=%5.0f %-5s rss=%6d KiB fds=%4d allocs=%4d sessions=%3d relay_ports=%4d cpu=%6.2f s "
              "created=%d redis_up=%d" % (s["t_s"], phase, s["rss_kib"], s["fds"], s["allocations"],
                                          s["sessions"], s["relay_ports"], cpu, s["created_total"],
                                          s["redis_up"]), flush=True)
        return s


def wait_for(pred, timeout, step=0.2):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(step)
    return pred()


def health_probe(ctx):
    """After the load: ternd must still answer on every transport."""
    problems = []
    for transport in ("udp", "tcp", "tls", "dtls"):
        port = ctx.tls_port if transport in ("tls", "dtls") else ctx.port
        for attempt in range(3):
            rc, kv, out = loads.ternc(ctx, "-t", transport, ctx.host, str(port))
            if kv.get("class") == "success":
                break
            time.sleep(1.0)
        else:
            problems.append("Binding over %s: rc %s %s" % (transport, rc, out[-200:]))
    for transport in ("tcp", "tls"):   # the allocation ends with the connection
        port = ctx.tls_port if transport == "tls" else ctx.port
        for attempt in range(3):
            rc, kv, out = loads.ternc(ctx, "-t", transport, "--allocate", "dave:%s" % loads.STATIC["dave"],
                                      ctx.host, str(port))
            if kv.get("class") == "success":
                break
            time.sleep(1.0)
        else:
            problems.append("Allocate over %s: rc %s %s" % (transport, rc, out[-200:]))
    for attempt in range(3):
        t = Turn(ctx.host, ctx.port, "rd-0", "rdpw", realm=ctx.realm, timeout=2.5)
        try:
            r = t.allocate()
            ok = r is not None and r["cls"] == 2
            if ok:
                r = t.refresh(0)
                ok = r is not None and r["cls"] == 2
        finally:
            t.close()
        if ok:
            break
        time.sleep(1.0)
    else:
        problems.append("Allocate + delete over UDP for a Redis user failed")
    return problems


def redis_residue(ctx):
    """What ternd left in Redis once every allocation is gone: quota members
    (tern/realm/R/user/U/allocations, scored with the expiry, removed when the
    allocation ends) and status keys (turn/user/U/allocation/ID/status, TTL =
    lifetime, deleted when it ends). Both are written again at each refresh,
    so an entry written after Redis was last disturbed must be gone: a leak.
    Older ones may be a removal lost in a Redis fault (they expire)."""
    real = MAX_LIFETIME / TIME_SCALE + 1
    with ctx.lock:
        ends = [t1 for kind, t0, t1 in ctx.disturbances if not kind.startswith("debug-sleep") and t1]
    calm_since = max(ends) + 3 if ends else 0
    now = time.time()
    out = {"quota_members": 0, "quota_stale": 0, "quota_leaked": [], "status_keys": 0, "status_leaked": [],
           "listing": []}
    srv = ctx.redis.srv
    for key in srv.cmd("KEYS", "tern/realm/%s/user/*/allocations" % ctx.realm) or []:
        items = srv.cmd("ZRANGE", key, "0", "-1", "WITHSCORES") or []
        for member, score in zip(items[0::2], items[1::2]):
            out["quota_members"] += 1
            score = float(score)
            out["listing"].append("quota %s %s score t=%.1f (written at t=%.1f at the latest)" % (
                key, member, ctx.since(score), ctx.since(score - real)))
            if score <= now:
                out["quota_stale"] += 1
            elif score - real > calm_since:
                out["quota_leaked"].append("%s %s (expires in %.0f s)" % (key, member, score - now))
    for key in srv.cmd("KEYS", "turn/user/*/allocation/*/status") or []:
        out["status_keys"] += 1
        ttl = srv.cmd("TTL", key)
        out["listing"].append("status %s TTL %s" % (key, ttl))
        if isinstance(ttl, int) and ttl > 0 and now - (real - ttl) > calm_since:
            out["status_leaked"].append("%s (TTL %d s): %s" % (key, ttl, srv.cmd("GET", key)))
    return out


def mib(kib):
    return kib / 1024.0


def main():
    seconds = int(os.environ.get("SOAK_SECONDS", "3600"))
    build = os.environ.get("B", "build")
    if seconds <= 0:
        print("soak: SOAK_SECONDS=%d, nothing to run passed" % seconds)
        return 0
    bdir = build if os.path.isabs(build) else os.path.join(ROOT, build)
    out_dir = os.environ.get("SOAK_OUT") or os.path.join(bdir, "soak")
    os.makedirs(out_dir, exist_ok=True)
    for f in ("samples.csv", "table.txt", "plot.png", "ternd.log", "events.log"):
        try:
            os.unlink(os.path.join(out_dir, f))
        except FileNotFoundError:
            pass
    missing = [p for p in (os.path.join(bdir, "ternd"), os.path.join(bdir, "ternc"), os.path.join(bdir, "ternctl"))
               if not os.access(p, os.X_OK)]
    missing += [t for t in ("turnutils_uclient", "turnutils_peer", "turnadmin", "redis-server", "openssl", "node")
                if not shutil.which(t)]
    if missing:
        print("soak: missing %s failed" % ", ".join(missing))
        return 1

    work = tempfile.mkdtemp(prefix="tern-soak-")
    ctx = SoakCtx(seconds, build, out_dir, work)
    ctx.root = ROOT
    ctx.ternc = os.path.join(bdir, "ternc")
    ctx.ternctl = os.path.join(bdir, "ternctl")
    ctx.time_scale, ctx.idle_timeout, ctx.handshake_timeout = TIME_SCALE, IDLE_TIMEOUT, HANDSHAKE_TIMEOUT
    ctx.log_path = os.path.join(work, "ternd.log")
    failures = []
    mon = None
    proc = None
    peer = None
    ctx.redis = None
    threads = []
    fd_start = rss_start = None
    wall0 = time.time()
    ternd_rc = None
    exit_problem = None

    def on_term(sig, frame):
        raise KeyboardInterrupt("signal %d" % sig)
    signal.signal(signal.SIGTERM, on_term)

    try:
        # --- set up ----------------------------------------------------------------
        ctx.cert, ctx.key = tls_files(work)
        ctx.port = free_port()
        ctx.tls_port = free_port()
        ctx.metrics_port = free_port(kinds=(socket.SOCK_STREAM,))
        ctx.peer_port = free_port(kinds=(socket.SOCK_DGRAM,))
        redis_port = free_port(kinds=(socket.SOCK_STREAM,))
        ctx.relay_lo, ctx.relay_hi = probe_relay_range()
        ctx.redis = RedisCtl(ctx, redis_port)
        ctx.redis.start()
        peer = ctx.procs.spawn(["turnutils_peer", "-L", ctx.host, "-p", str(ctx.peer_port)])
        conf = os.path.join(work, "ternd.conf")
        with open(conf, "w") as f:
            f.write(ternd_conf(ctx))
        out_f = open(os.path.join(work, "stdout"), "w")
        err_f = open(os.path.join(work, "stderr"), "w")
        if os.geteuid() == 0:
            # the harness runs ternd as root, which ternd warns about once at start
            ctx.close_window(ctx.open_window([r"warn running as root"], "ternd started as root"), 5)
        proc = subprocess.Popen([os.path.join(bdir, "ternd"), "-c", conf], stdout=out_f, stderr=err_f,
                                start_new_session=True)
        out_f.close()
        err_f.close()
        ctx.pid = proc.pid

        def ready():
            with open(os.path.join(work, "stdout")) as f:
                return "listening on" in f.read()
        if not wait_for(ready, 10) or proc.poll() is not None:
            raise RuntimeError("ternd did not start: " + open(os.path.join(work, "stderr")).read()[-2000:])
        mon = Monitor(ctx, proc)

        def redis_up():
            return mon.scrape() is not None and procfs.total(mon.series, "tern_redis_up") == WORKERS
        if not wait_for(redis_up, 15, 0.25):
            raise RuntimeError("ternd's workers did not connect to Redis within 15 s")
        # the start value: stable descriptors, ternd ready, before any load
        prev = None
        for _ in range(20):
            cur = procfs.fd_count(proc.pid)
            if cur == prev:
                break
            prev = cur
            time.sleep(0.3)
        fd_start = procfs.fd_count(proc.pid)
        rss_start = procfs.rss_kib(proc.pid)
        ctx.t0 = time.time()
        mon.last_cpu = (ctx.t0, procfs.cpu_seconds(proc.pid))
        mon.sample("start")
        ctx.event("soak", "load starts: %d s; ternd PID %d; relay %d-%d; ports udp/tcp %d tls/dtls %d metrics %d "
                  "redis %d peer %d" % (seconds, proc.pid, ctx.relay_lo, ctx.relay_hi, ctx.port, ctx.tls_port,
                                        ctx.metrics_port, redis_port, ctx.peer_port))

        # --- load and faults ---------------------------------------------------------
        from actors import start
        threads += [start(ctx, "uclient-%d" % i, loads.uclient_thread, ctx, i) for i in range(2)]
        threads += [start(ctx, "ternc-%d" % i, loads.ternc_thread, ctx) for i in range(2)]
        threads += [start(ctx, "session-%d" % i, loads.session_thread, ctx) for i in range(4)]
        threads.append(start(ctx, "chromium", loads.chromium_thread, ctx))
        threads.append(start(ctx, "icetest", loads.icetest_thread, ctx))
        threads.append(start(ctx, "console", loads.console_thread, ctx))
        threads.append(start(ctx, "vanish", faults.vanish_thread, ctx))
        threads.append(start(ctx, "parked", faults.parked_thread, ctx))
        threads.append(start(ctx, "garbage", faults.garbage_thread, ctx))
        threads.append(start(ctx, "slow", faults.slow_thread, ctx))
        threads.append(start(ctx, "redis-faults", faults.redis_fault_thread, ctx))
        threads.append(start(ctx, "sighup", faults.hup_thread, ctx))
        mon.next_sample = ctx.t0 + SAMPLE_EVERY
        end = ctx.t0 + seconds
        while time.time() < end:
            if not mon.tick("load"):
                break
            time.sleep(max(0.0, min(1.0, end - time.time())))

        # --- stop the load --------------------------------------------------------------
        ctx.stop.set()
        t_stop = time.time()
        ctx.event("soak", "load stops")
        with ctx.procs.lock:
            ctx.procs.closed = True
        ctx.procs.kill_all()
        for th in threads:
            th.join(max(0.5, 40 - (time.time() - t_stop)))
        stuck = [th.name for th in threads if th.is_alive()]
        if stuck:
            failures.append("harness threads did not stop: %s" % ", ".join(stuck))
        with ctx.procs.lock:
            ctx.procs.closed = False
        ctx.t_load_end = ctx.since(t_stop)

        if mon.alive():
            if not ctx.redis.ensure_up():
                failures.append("Redis did not come back for the end of the run")
            if not wait_for(lambda: (mon.scrape() is not None and
                                     procfs.total(mon.series, "tern_redis_up") == WORKERS), 20, 0.5):
                failures.append("ternd's workers did not reconnect to Redis within 20 s after the load")
            problems = health_probe(ctx)
            if problems:
                failures.append("ternd does not serve after the load: " + "; ".join(problems))
            ctx.event("soak", "health probe: %s" % ("ok" if not problems else "; ".join(problems)))

        # --- drain: every allocation expires ---------------------------------------------
        drain_limit = MAX_LIFETIME / TIME_SCALE + IDLE_TIMEOUT + HANDSHAKE_TIMEOUT + 25
        t_drain = time.time()
        drained = False
        while mon.alive() and time.time() - t_drain < drain_limit:
            mon.tick("drain")
            time.sleep(1.0)
            f = mon.figures()   # /proc a second after the scrape, the metrics of that scrape
            if f and f["allocations"] == 0 and f["sessions"] == 0 and f["relay_ports"] == 0 \
                    and f["fds"] == fd_start and f["redis_up"] == WORKERS:
                drained = True
                break
        ctx.drain_seconds = time.time() - t_drain
        ctx.event("soak", "drain %s after %.1f s" % ("complete" if drained else "INCOMPLETE", ctx.drain_seconds))
        if mon.alive():
            mon.scrape()
            time.sleep(1.0)     # the scrape's connection closed on ternd's side too
            final = mon.sample("end")
        else:
            final = None

        # --- checks -----------------------------------------------------------------------
        if mon.died:
            failures.append(mon.died)
        if final:
            if final["allocations"] != 0:
                failures.append("%d allocations still live %.0f s after the load" % (final["allocations"],
                                                                                      ctx.drain_seconds))
            if final["sessions"] != 0:
                failures.append("%d sessions still live after the drain" % final["sessions"])
            ports = procfs.relay_ports(proc.pid, "127.0.0.1", ctx.relay_lo, ctx.relay_hi)
            if ports:
                failures.append("ternd still holds %d relay ports (%s)" % (len(ports), ports[:10]))
            try:
                residue = redis_residue(ctx)
            except (OSError, ValueError) as e:
                residue = None
                failures.append("cannot read Redis at the end: %s" % e)
            if residue is not None:
                ctx.event("soak", "Redis after the drain: %d quota members (%d expired, %d leaked), "
                          "%d status keys (%d leaked)" % (residue["quota_members"], residue["quota_stale"],
                                                         len(residue["quota_leaked"]), residue["status_keys"],
                                                         len(residue["status_leaked"])))
                for line in residue["listing"][:50]:
                    ctx.event("soak", "  Redis residue: " + line)
                for what in ("quota_leaked", "status_leaked"):
                    if residue[what]:
                        failures.append("%d %s in Redis with no allocation left, written after Redis was last "
                                        "disturbed, e.g. %s" % (len(residue[what]), what.replace("_", " entries "),
                                                                residue[what][0]))
            bad, errs = bind_all(ctx.relay_lo, ctx.relay_hi)
            ctx.bind_failed = bad
            if bad:
                owners = {p: procfs.udp_port_owner(p) for p in bad[:10]}
                failures.append("%d relay ports do not bind: %s" % (
                    len(bad), ", ".join("%d (%s; held by %s)" % (p, errs[p], owners.get(p) or "?") for p in bad[:10])))
            if final["fds"] != fd_start:
                failures.append("open fds %d at the end, %d at the start" % (final["fds"], fd_start))
            if final["redis_up"] != WORKERS:
                failures.append("tern_redis_up %d at the end (of %d workers)" % (final["redis_up"], WORKERS))
        if mon.scrape_failures:
            failures.append("%d of %d metrics scrapes failed (%s)" % (len(mon.scrape_failures), mon.scrapes,
                                                                    "; ".join(mon.scrape_failures[:3])))
    except KeyboardInterrupt as e:
        failures.append("interrupted (%s)" % (e or "SIGINT"))
    except Exception as e:
        failures.append("harness error: %s" % e)
        traceback.print_exc()
    finally:
        ctx.stop.set()
        ctx.procs.kill_all()
        for th in threads:
            th.join(5)
        if proc is not None:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    ternd_rc = proc.wait(15)
                except subprocess.TimeoutExpired:
                    exit_problem = "ternd did not stop within 15 s of SIGTERM"
                    proc.kill()
                    proc.wait()
            if ternd_rc not in (None, 0):
                exit_problem = "ternd exited %s on SIGTERM" % ternd_rc
        if ctx.redis is not None:
            ctx.redis.cleanup()
        if peer is not None and peer.poll() is None:
            peer.kill()
            peer.wait()

    # --- the log, the counters, the RSS ------------------------------------------------
    if exit_problem and mon and not mon.died:
        failures.append(exit_problem)
    text = ctx.whole_log()
    with open(os.path.join(out_dir, "ternd.log"), "w") as f:
        f.write(text)
    rep = logcheck.analyse(text, ctx.windows)
    stderr_text = ""
    try:
        with open(os.path.join(work, "stderr"), errors="replace") as f:
            stderr_text = f.read()
    except OSError:
        pass
    summary_bits = []
    samples = mon.samples if mon else []
    if mon and samples:
        if rep.unexpected:
            failures.append("%d unexpected warn/error log lines, first: %s" % (len(rep.unexpected), rep.unexpected[0]))
        if rep.unparsed:
            failures.append("%d log lines not in the log format, first: %r" % (len(rep.unparsed), rep.unparsed[0][:200]))
        if stderr_text.strip():
            failures.append("ternd wrote to stderr: %r" % stderr_text.strip()[:300])
        completed = bool(samples) and samples[-1]["phase"] == "end"
        live = rep.still_live()
        if live and completed:
            failures.append("the log announces %d allocations never deleted, e.g. %s" % (len(live), live[:3]))
        if rep.shutdown_deletes and completed:
            failures.append("%d allocations were still there for SIGTERM to delete" % rep.shutdown_deletes)
        if rep.unmatched_deletes and completed:
            failures.append("%d deletions of allocations the log never announced" % len(rep.unmatched_deletes))
        created_metric = int(procfs.total(mon.series, "tern_allocations_created_total")) if mon.series else 0
        if completed and rep.created != created_metric:
            failures.append("the log announces %d allocations, tern_allocations_created_total says %d" % (
                rep.created, created_metric))
        quota_hits = int(procfs.total(mon.series, "tern_requests_total", method="allocate", code="486"))
        if quota_hits and max(rep.peak_user.values() or [0]) < USER_QUOTA:
            failures.append("%d Allocates refused 486 though no user ever held more than %d of %d "
                            "(quota not given back)" % (quota_hits, max(rep.peak_user.values() or [0]), USER_QUOTA))
        # RSS: the level at 600 s (or SOAK_SECONDS/3 for runs under 30 min) against the end
        load_samples = [s for s in samples if s["phase"] in ("load", "start")]
        target = 600.0 if seconds >= 1800 else seconds / 3.0
        base = min(load_samples, key=lambda s: abs(s["t_s"] - target)) if load_samples else None
        end_s = samples[-1] if samples[-1]["phase"] == "end" else None
        if base and end_s:
            tol = max(RSS_TOLERANCE[0] * base["rss_kib"], RSS_TOLERANCE[1])
            if abs(end_s["rss_kib"] - base["rss_kib"]) > tol:
                failures.append("RSS %d KiB at the end, %d KiB at t=%.0f s (tolerance %d KiB)" % (
                    end_s["rss_kib"], base["rss_kib"], base["t_s"], tol))
        # expectations
        with ctx.lock:
            violations = list(ctx.violations)
        if violations:
            kinds = {}
            for _, k, d in violations:
                kinds.setdefault(k, []).append(d)
            failures.append("; ".join("%s (%d times, first: %s)" % (k, len(v), v[0]) for k, v in kinds.items()))
        c = ctx.counts
        if c["harness.exception"]:
            failures.append("harness error (%d exceptions in actors): %s" % (
                c["harness.exception"], ctx.failures_detail["harness.exception"][0][:600]))
        # every load made progress
        if not mon.died and samples and samples[-1]["phase"] == "end":
            need = {"uclient": c["uclient.ok"], "ternc": sum(v for k, v in c.items() if k.startswith("ternc.") and k.endswith(".ok")),
                    "TURN sessions": c["session.allocate.ok"], "vanishing clients": c["vanish.total"],
                    "garbage": c["garbage.total"],
                    "ternctl icetest": c["icetest.udp.ok"] + c["icetest.tcp.ok"], "console API": c["console.api.ok"],
                    "uclient -M": c["uclient.udp-mobility.ok"] + c["uclient.udp-mobility-indications.ok"]}
            if loads.chromium_times(seconds)[0] < seconds - 30:
                need["Chromium"] = c["chromium.ok"]
            idle = [k for k, v in need.items() if v == 0]
            if idle:
                failures.append("no successful %s" % ", ".join(idle))
        # a client that fails while the harness is not disturbing Redis: a
        # few are tolerated (real clients on a shared machine), more are not
        outcomes = sum(v for k, v in c.items() if k.endswith((".ok", ".failed", ".failed_during_redis_fault"))
                       and not k.startswith(("uclient.ok", "clients.")))
        bad = c["clients.failed_outside_faults"]
        if bad > max(2, CLIENT_FAILURES_TOLERATED * outcomes):
            failures.append("%d of %d client outcomes failed outside Redis faults, first: %s" % (
                bad, outcomes, ctx.failures_detail["clients.failed_outside_faults"][0][:400]))
        if base and end_s:
            summary_bits = [
                "%d s" % seconds,
                "%d allocations created (peak %d live)" % (end_s["created_total"], mon.peak["allocations"]),
                "relay ports peak %d end %d" % (mon.peak["relay_ports"], end_s["relay_ports"]),
                "RSS start %.1f / baseline %.1f (t=%.0f) / end %.1f MiB" % (
                    mib(rss_start), mib(base["rss_kib"]), base["t_s"], mib(end_s["rss_kib"])),
                "fds %d -> %d" % (fd_start, end_s["fds"]),
                "CPU %.1f s" % (end_s["cpu_s"] - samples[0]["cpu_s"]),
                "%d SIGHUP, %d Redis faults" % (sum(v for k, v in c.items() if k.startswith("sighup.")),
                                               sum(v for k, v in c.items() if k.startswith("redis_fault."))),
                "drained in %.0f s" % ctx.drain_seconds,
                "%d client failures outside Redis faults" % c["clients.failed_outside_faults"],
                "wall %.0f s" % (time.time() - wall0),
            ]

    # --- outputs --------------------------------------------------------------------------
    try:
        if samples:
            report.write_csv(os.path.join(out_dir, "samples.csv"), samples)
            tab = report.table(samples)
            with open(os.path.join(out_dir, "table.txt"), "w") as f:
                f.write(tab)
            print(tab, end="")
            marks = []
            for kind, t0, t1 in ctx.disturbances:
                if not kind.startswith("debug-sleep"):
                    marks.append((ctx.since(t0), ctx.since(t1 or t0), "redis " + kind))
            for t, actor, what in ctx.timeline:
                if actor == "sighup" and "SIGHUP" in what:
                    marks.append((ctx.since(t), None, "SIGHUP"))
            if hasattr(ctx, "t_load_end"):
                marks.append((ctx.t_load_end, None, "load ends"))
            report.plot(os.path.join(out_dir, "plot.png"), samples, marks,
                        "ternd soak, %d s, time_scale %d" % (seconds, TIME_SCALE))
    except Exception as e:
        failures.append("report error: %s" % e)
        traceback.print_exc()
    write_events(ctx, out_dir, rep, mon, failures, summary_bits, fd_start, rss_start)
    shutil.rmtree(work, ignore_errors=True)
    print("soak: outputs in %s" % out_dir)
    if failures:
        print("soak: %s failed" % " | ".join(failures))
        return 1
    print("soak: %s passed" % ", ".join(summary_bits))
    return 0


def write_events(ctx, out_dir, rep, mon, failures, summary_bits, fd_start, rss_start):
    with open(os.path.join(out_dir, "events.log"), "w") as f:
        f.write("# soak of %d s; seed-free (os.urandom); times are seconds since the load started\n" % ctx.seconds)
        with ctx.lock:
            timeline = sorted(ctx.timeline)
            counts = dict(ctx.counts)
            details = dict(ctx.failures_detail)
            windows = list(ctx.windows)
        for t, actor, what in timeline:
            f.write("%8.1f  %-9s %s\n" % (ctx.since(t), actor, what))
        f.write("\n# counters\n")
        for k in sorted(counts):
            f.write("%-60s %d\n" % (k, counts[k]))
        f.write("\n# first details of failures by kind\n")
        for k in sorted(details):
            for d in details[k]:
                f.write("%s: %s\n" % (k, d))
        f.write("\n# log windows the harness opened\n")
        for pats, t0, t1, why in windows:
            f.write("%8.1f .. %8.1f  %s  %s\n" % (ctx.since(t0), ctx.since(t1) if t1 else -1, why, pats))
        f.write("\n# ternd's log\n")
        f.write("lines %d, levels %s\n" % (rep.lines, dict(rep.levels)))
        f.write("allocations announced %d, deleted %d, reasons %s\n" % (rep.created, rep.deleted,
                                                                     dict(rep.delete_reasons)))
        f.write("peak live allocations per user (top 10) %s\n" % dict(rep.peak_user.most_common(10)))
        f.write("expected warn/error lines by cause %s\n" % dict(rep.expected))
        f.write("successful SIGHUP reloads logged %d\n" % rep.sighup_ok)
        for line in rep.unexpected[:50]:
            f.write("UNEXPECTED %s\n" % line)
        for line in rep.unparsed[:20]:
            f.write("UNPARSED %r\n" % line)
        if mon:
            f.write("\n# monitor\nscrapes %d, failed %d %s\npeaks %s\nfd start %s, RSS start %s KiB\n" % (
                mon.scrapes, len(mon.scrape_failures), mon.scrape_failures[:5], mon.peak, fd_start, rss_start))
            if mon.series:
                f.write("\n# last scrape (non-zero series)\n")
                for (name, labels), v in sorted(mon.series.items(), key=lambda kv: (kv[0][0], sorted(kv[0][1]))):
                    if v:
                        f.write("%s%s %s\n" % (name, json.dumps(dict(sorted(labels))) if labels else "", v))
        st = open("/proc/self/stat").read()
        fl = st[st.rindex(")") + 2:].split()
        tck = float(os.sysconf("SC_CLK_TCK"))
        f.write("\n# harness CPU: itself user %.1f s sys %.1f s; its children user %.1f s sys %.1f s\n" % (
            int(fl[11]) / tck, int(fl[12]) / tck, int(fl[13]) / tck, int(fl[14]) / tck))
        f.write("\n# verdict\n%s\n" % ("; ".join(failures) if failures else ", ".join(summary_bits)))


if __name__ == "__main__":
    sys.exit(main())
