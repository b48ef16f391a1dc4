"""The soak's steady load: real clients that create, refresh, use, let expire
and delete allocations, permissions and channels all the time.

- coturn's turnutils_uclient (2 threads): short bursts over UDP, TCP, TLS and
  DTLS, channels and Send indications, static, Redis and REST credentials,
  against a turnutils_peer echo;
- ternc, the project's client (2 threads): Binding and Allocate over all four
  transports;
- Python TURN sessions (turnclient.Turn, 4 threads): allocations held and
  refreshed with their permissions and channels, abandoned, deleted, shortened
  until they expire, permissions left to expire; the relayed data is checked
  both ways;
- Chromium relay-only DataChannels (node + playwright-core) at intervals;
- `ternctl icetest` (1 thread): two allocations relaying to each other over UDP
  and TCP client legs, static and REST credentials, loss and RTT checked;
- the web console's JSON API (1 thread): /api/status and /api/sessions with
  the admin token, as a console page polls them.
"""
import json
import os
import re
import socket
import time
import urllib.request

from actors import run_loop, run_schedule
from redisctl import (PLAIN_PASSWORD, PLAIN_USER, REDIS_PASSWORD, REDIS_SECRET, REDIS_USERS)
from turnclient import A_ERROR, Turn, rest_credentials
from ternd import error_code

TOTALS = re.compile(r"start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\s*$", re.M)
LOST = re.compile(r"Total lost packets (\d+) \(")
STATIC = {"alice": "secret", "bob": "bobpw", "carol": "carolpw", "dave": "davepw"}
STATIC_SECRET = "shared"


def outcome(ctx, kind, ok, t_start, needs_redis, detail):
    """Count a client's outcome: ok, failed while the harness was disturbing
    Redis (expected), or failed (reported)."""
    if ok:
        ctx.count("%s.ok" % kind)
    elif ctx.redis_disturbed(t_start, time.time()):
        ctx.count("%s.failed_during_redis_fault" % kind)
    else:
        ctx.count("%s.failed" % kind, detail=detail)
        ctx.count("clients.failed_outside_faults", detail="%s: %s" % (kind, detail))


# --- turnutils_uclient -------------------------------------------------------------

def uclient_variants(ctx):
    a, b = ctx.port, ctx.tls_port
    rd = lambda i: ["-u", REDIS_USERS[i], "-w", REDIS_PASSWORD]
    return [
        # name, flags, port, needs Redis
        ("udp", ["-u", "alice", "-w", STATIC["alice"]], a, False),
        ("udp-indications", ["-s", "-u", "alice", "-w", STATIC["alice"]], a, False),
        # RFC 8016: each allocation moves to a new source port (often another worker)
        ("udp-mobility", ["-M", "-u", "alice", "-w", STATIC["alice"]], a, False),
        ("udp-mobility-indications", ["-M", "-s", "-u", "alice", "-w", STATIC["alice"]], a, False),
        ("tcp", ["-t", "-u", "alice", "-w", STATIC["alice"]], a, False),
        ("tcp-indications", ["-t", "-s", "-u", "alice", "-w", STATIC["alice"]], a, False),
        ("tls", ["-S", "-t", "-u", "alice", "-w", STATIC["alice"]], b, False),
        ("tls-indications", ["-S", "-t", "-s", "-u", "alice", "-w", STATIC["alice"]], b, False),
        ("dtls", ["-S", "-u", "alice", "-w", STATIC["alice"]], b, False),
        ("dtls-indications", ["-S", "-s", "-u", "alice", "-w", STATIC["alice"]], b, False),
        ("udp-rest-static-secret", ["-u", "alice", "-W", STATIC_SECRET], a, False),
        ("tcp-rest-redis-secret", ["-t", "-u", "erin", "-W", REDIS_SECRET], a, True),
        ("udp-redis-user", rd(0), a, True),
        ("tls-redis-user", ["-S", "-t"] + rd(1), b, True),
        ("dtls-redis-user", ["-S"] + rd(2), b, True),
    ]


def uclient_thread(ctx, index):
    variants = uclient_variants(ctx)
    order = list(range(len(variants)))
    state = {"i": index * 5}

    def step():
        name, flags, port, needs_redis = variants[order[state["i"] % len(order)]]
        state["i"] += 1
        n = ctx.rng.choice((10, 20, 40))
        z = ctx.rng.choice((5, 10, 20))
        cmd = ["turnutils_uclient", "-p", str(port), "-e", ctx.host, "-r", str(ctx.peer_port),
               "-m", "2", "-n", str(n), "-l", str(ctx.rng.choice((60, 120, 400))), "-z", str(z)] \
            + flags + [ctx.host]
        t0 = time.time()
        rc, out, _ = ctx.procs.run(cmd, timeout=20)
        if ctx.stop.is_set():
            return  # killed at the end of the load: not an outcome
        totals = TOTALS.findall(out)
        lost = LOST.findall(out)
        ok = rc == 0 and totals and int(totals[-1][0]) > 0 and totals[-1][0] == totals[-1][1] \
            and lost == ["0"]
        kind = "uclient.%s" % name
        # uclient -S without -t picks DTLS 1.0 or 1.2 at random per connection;
        # ternd refuses DTLS 1.0 by design: an expected failure.
        if not ok and "-S" in flags and "-t" not in flags and "alert protocol version" in out:
            ctx.count("%s.dtls10_refused" % kind)
            ctx.count("uclient.dtls10_refused")
            return
        outcome(ctx, kind, ok, t0, needs_redis, "rc=%s %s" % (rc, out[-300:].replace("\n", " | ")))
        ctx.count("uclient.runs")
        if ok:
            ctx.count("uclient.ok")

    run_loop(ctx, "uclient", step, lambda: ctx.rng.uniform(0.3, 1.5))


# --- ternc ---------------------------------------------------------------------

def ternc(ctx, *args, timeout=8):
    rc, out, _ = ctx.procs.run([ctx.ternc] + list(args), timeout=timeout)
    kv = dict(l.split("=", 1) for l in out.splitlines() if "=" in l)
    return rc, kv, out


def ternc_thread(ctx):
    def step():
        transport = ctx.rng.choice(("udp", "tcp", "tls", "dtls"))
        port = ctx.tls_port if transport in ("tls", "dtls") else ctx.port
        t0 = time.time()
        if ctx.rng.random() < 0.4:
            rc, kv, out = ternc(ctx, "-t", transport, "--fingerprint", ctx.host, str(port))
            if ctx.stop.is_set():
                return
            outcome(ctx, "ternc.binding.%s" % transport, rc == 0 and kv.get("class") == "success",
                    t0, False, out[-200:])
            return
        if ctx.rng.random() < 0.5:
            user, pw, needs = "dave", STATIC["dave"], False
        else:
            user, pw, needs = ctx.rng.choice(REDIS_USERS), REDIS_PASSWORD, True
        rc, kv, out = ternc(ctx, "-t", transport, "--allocate", "%s:%s" % (user, pw), ctx.host, str(port))
        if ctx.stop.is_set():
            return
        outcome(ctx, "ternc.allocate.%s" % transport, rc == 0 and kv.get("class") == "success",
                t0, needs, out[-200:].replace("\n", " "))

    run_loop(ctx, "ternc", step, lambda: ctx.rng.uniform(0.3, 1.0))


# --- ternctl icetest and the console's API -------------------------------------------

CONSOLE_TOKEN = "soak-console-token-0123456789"


def icetest_thread(ctx):
    def step():
        transport = ctx.rng.choice(("udp", "tcp"))
        cred = ["--user", "bob", "--password", STATIC["bob"]] if ctx.rng.random() < 0.5 \
            else ["--secret", STATIC_SECRET]
        url = "turn:%s:%d?transport=%s" % (ctx.host, ctx.port, transport)
        t0 = time.time()
        rc, out, _ = ctx.procs.run([ctx.ternctl, "icetest", url, "--duration", "2", "--json"] + cred,
                                   timeout=20)
        if ctx.stop.is_set():
            return
        outcome(ctx, "icetest.%s" % transport, rc == 0, t0, False, out[-300:].replace("\n", " "))

    run_loop(ctx, "icetest", step, lambda: ctx.rng.uniform(2.0, 6.0))


def console_thread(ctx):
    def get(path):
        req = urllib.request.Request("http://%s:%d%s" % (ctx.host, ctx.metrics_port, path),
                                     headers={"Authorization": "Bearer " + CONSOLE_TOKEN})
        with urllib.request.urlopen(req, timeout=5) as r:
            return r.status, json.loads(r.read().decode())

    def step():
        t0 = time.time()
        try:
            st, status = get("/api/status")
            ss, sessions = get("/api/sessions")
            ok, detail = st == ss == 200 and isinstance(status, dict) and isinstance(sessions, (dict, list)), ""
        except (OSError, ValueError) as e:
            ok, detail = False, repr(e)
        if ctx.stop.is_set():
            return
        outcome(ctx, "console.api", ok, t0, False, detail)

    run_loop(ctx, "console", step, lambda: ctx.rng.uniform(0.5, 2.0))


# --- Python TURN sessions ---------------------------------------------------------

def session_credentials(ctx):
    pick = ctx.rng.random()
    if pick < 0.35:
        return "bob", STATIC["bob"], False
    if pick < 0.55:
        return ctx.rng.choice(REDIS_USERS) + "", REDIS_PASSWORD, True
    if pick < 0.7:
        u, p = rest_credentials(STATIC_SECRET, name="sess", ttl=3600)
        return u, p, False
    if pick < 0.85:
        u, p = rest_credentials(REDIS_SECRET, name="sess", ttl=3600)
        return u, p, True
    return PLAIN_USER, PLAIN_PASSWORD, True


class Session:
    """One TURN client 5-tuple and one peer socket of ours."""

    def __init__(self, ctx):
        self.ctx = ctx
        self.transport = ctx.rng.choice(("udp", "udp", "tcp", "tls"))
        self.user, self.pw, self.needs_redis = session_credentials(ctx)
        port = ctx.tls_port if self.transport == "tls" else ctx.port
        self.t = Turn(ctx.host, port, self.user, self.pw, realm=ctx.realm, transport=self.transport,
                      timeout=2.5)
        self.peer = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.peer.bind((ctx.host, 0))
        self.peer.settimeout(1.5)
        self.peer_addr = self.peer.getsockname()
        self.channel = 0x4000 + ctx.rng.randint(0, 0xFFE)
        self.relay = None
        self.seq = 0

    def close(self):
        for s in (self.t, self.peer):
            try:
                s.close()
            except OSError:
                pass

    def ok(self, r):
        return r is not None and r["cls"] == 2

    def code(self, r):
        if r is None:
            return "timeout"
        if r["cls"] == 3 and A_ERROR in r["attrs"]:
            return error_code(r["attrs"][A_ERROR][0])
        return r["cls"]

    def to_peer(self, via_channel):
        """Client -> relay -> our peer socket: True if it arrived intact."""
        self.seq += 1
        data = b"soak-%d-" % self.seq + os.urandom(self.ctx.rng.randint(0, 200))
        if via_channel:
            self.t.send_channel(self.channel, data)
        else:
            self.t.send_indication(self.peer_addr, data)
        end = time.time() + 1.5
        while time.time() < end:
            try:
                got, src = self.peer.recvfrom(70000)
            except socket.timeout:
                return False
            if got == data and src[:2] == self.relay:
                return True
        return False

    def from_peer(self):
        """Our peer -> relay -> client: True if it arrived intact."""
        self.seq += 1
        data = b"back-%d-" % self.seq + os.urandom(self.ctx.rng.randint(0, 200))
        self.peer.sendto(data, self.relay)
        end = time.time() + 1.5
        while time.time() < end:
            got = self.t.recv_data(timeout=max(0.05, end - time.time()))
            if got is None:
                return False
            if got[2] == data:
                return True
        return False

    def nothing_at_peer(self, seconds):
        try:
            self.peer.settimeout(seconds)
            got, src = self.peer.recvfrom(70000)
            return src[:2] != self.relay
        except socket.timeout:
            return True
        finally:
            self.peer.settimeout(1.5)


def session_once(ctx):
    s = Session(ctx)
    kind = "session"
    t0 = time.time()
    behaviour = ctx.rng.choice(("hold", "hold", "hold", "abandon", "delete", "expire", "permission_expiry"))
    try:
        r = s.t.allocate()
        if not s.ok(r):
            outcome(ctx, kind + ".allocate", False, t0, s.needs_redis,
                    "%s %s over %s: %s" % (behaviour, s.user, s.transport, s.code(r)))
            return
        ctx.count(kind + ".allocate.ok")
        s.relay = s.t.relayed[0]
        if not (ctx.relay_lo <= s.relay[1] <= ctx.relay_hi):
            ctx.violation("relay port outside the range", "%s:%d" % s.relay)
        r = s.t.permission(s.peer_addr)
        if not s.ok(r):
            outcome(ctx, kind + ".permission", False, t0, s.needs_redis, str(s.code(r)))
            return
        use_channel = behaviour != "permission_expiry"
        if use_channel:
            r = s.t.channel_bind(s.channel, s.peer_addr)
            if not s.ok(r):
                outcome(ctx, kind + ".channel_bind", False, t0, s.needs_redis, str(s.code(r)))
                return
        ok = s.to_peer(use_channel) and s.from_peer()
        outcome(ctx, kind + ".data", ok, t0, False, "%s over %s" % (behaviour, s.transport))
        if ctx.stop.is_set():
            return
        if behaviour == "abandon":
            ctx.count(kind + ".abandoned")
            return   # close without deleting: expiry (UDP) or the connection's end
        if behaviour == "delete":
            r = s.t.refresh(0)
            if s.ok(r):
                ctx.count(kind + ".deleted")
            else:
                outcome(ctx, kind + ".delete", False, t0, False, "%s over %s: %s" % (s.user, s.transport, s.code(r)))
            return
        if behaviour == "expire":
            # lifetime 40 s scaled: gone after 2 s, whatever the client does
            r = s.t.refresh(40)
            if not s.ok(r):
                return
            if ctx.sleep(5.0):
                return
            r = s.t.refresh(600)
            if r is None:
                return
            if s.ok(r):
                ctx.violation("allocation outlived its lifetime",
                              "Refresh succeeded 5 s after a 40 s (scaled) lifetime, %s over %s"
                              % (s.user, s.transport))
            else:
                ctx.count(kind + ".expired_as_expected" if s.code(r) == 437 else kind + ".expiry_other")
            return
        if behaviour == "permission_expiry":
            # keep the allocation, not the permission (300 s scaled): then the
            # relay must drop data both ways
            perm_at = time.time()
            wait = 300.0 / ctx.time_scale + 2.5
            while time.time() - perm_at < wait:
                if ctx.sleep(min(5.0, wait - (time.time() - perm_at))):
                    return
                r = s.t.refresh(600)
                if not s.ok(r):
                    return
            s.seq += 1
            s.t.send_indication(s.peer_addr, b"late-%d" % s.seq)
            if not s.nothing_at_peer(1.0):
                ctx.violation("data relayed after its permission expired",
                              "%s over %s, permission %.1f s old" % (s.user, s.transport,
                                                                    time.time() - perm_at))
            else:
                ctx.count(kind + ".permission_expired_as_expected")
            r = s.t.refresh(0)
            return
        # hold: refresh the allocation, permission and channel, relay both ways
        hold = ctx.rng.uniform(8, 40)
        last_refresh = time.time()
        while time.time() - t0 < hold:
            if ctx.sleep(1.0):
                return
            if time.time() - last_refresh > 7:
                last_refresh = time.time()
                for what, r in (("refresh", s.t.refresh(600)), ("permission", s.t.permission(s.peer_addr)),
                                ("channel", s.t.channel_bind(s.channel, s.peer_addr))):
                    if not s.ok(r):
                        outcome(ctx, kind + ".refresh_" + what, False, t0, False,
                                "%s over %s: %s" % (s.user, s.transport, s.code(r)))
                        return
                ctx.count(kind + ".refreshed")
            ok = s.to_peer(ctx.rng.random() < 0.7) and s.from_peer()
            outcome(ctx, kind + ".data", ok, t0, False, "hold over %s" % s.transport)
        r = s.t.refresh(0)
        if s.ok(r):
            ctx.count(kind + ".deleted")
        else:
            outcome(ctx, kind + ".delete", False, t0, False, "%s over %s: %s" % (s.user, s.transport, s.code(r)))
    finally:
        s.close()


def session_thread(ctx):
    run_loop(ctx, "session", lambda: session_once(ctx), lambda: ctx.rng.uniform(0.1, 1.0))


# --- Chromium --------------------------------------------------------------------

def chromium_times(seconds):
    """Once near the start of a short run; a few times an hour in a long one."""
    if seconds < 600:
        return [1.0]
    return [60.0 + 900.0 * i for i in range(int((seconds - 120) // 900) + 1)]


def chromium_thread(ctx):
    here = os.path.join(ctx.root, "test", "interop", "chromium")
    variants = [("udp", "carol", STATIC["carol"]), ("tcp", "carol", STATIC["carol"]), ("udp-rest", None, None)]

    def run(i):
        transport, user, cred = variants[i % len(variants)]
        if user is None:
            user, cred = rest_credentials(STATIC_SECRET, name="chromium", ttl=3600)
        url = "turn:%s:%d?transport=%s" % (ctx.host, ctx.port, transport.split("-")[0])
        for attempt in range(2):
            t0 = time.time()
            rc, out, _ = ctx.procs.run(["node", os.path.join(here, "relay.js"), url, user, cred, "ok", "20"],
                                       timeout=45, cwd=here)
            if ctx.stop.is_set():
                return
            lines = [l for l in out.splitlines() if l.startswith("RESULT ")]
            res = {}
            if lines:
                try:
                    res = json.loads(lines[-1][len("RESULT "):])
                except ValueError:
                    pass
            ok = rc == 0 and res.get("pass") is True and res.get("localType") == "relay"
            ctx.event("chromium", "%s attempt %d: %s in %.1f s" % (transport, attempt + 1,
                                                                    "ok" if ok else "FAILED", time.time() - t0))
            if ok:
                ctx.count("chromium.ok")
                return
            ctx.count("chromium.attempt_failed", detail="%s rc=%s %s" % (transport, rc, out[-400:]))
        ctx.count("chromium.failed", detail=transport)

    run_schedule(ctx, "chromium", chromium_times(ctx.seconds), run)
