"""What the soak throws at ternd besides the steady load.

- vanishing clients (continuous): mid TLS handshake, mid DTLS handshake,
  after the 401, right after Allocate, before the Allocate's answer, in the
  middle of a ChannelData frame or a STUN frame over TCP/TLS;
- requests left while they wait for Redis (every few seconds): DEBUG SLEEP,
  then `ternc --allocate U:P --leave` over TCP, TLS and DTLS;
- garbage (continuous): random and STUN-like datagrams, oversized datagrams,
  ChannelData without an allocation, DTLS-port junk, unframed and oversized
  TCP streams, plaintext on the TLS port, junk inside TLS, datagrams to relay
  ports, junk on the metrics port;
- slow clients (continuous, at most 3 at once): slow writers (a request a
  byte at a time, a frame that stops half way, a ClientHello a byte at a
  time) and slow readers (pipelined requests never read, over TCP and TLS; a
  relay flooding a TCP client that never reads);
- Redis faults (scheduled): slowed (DEBUG SLEEP 2), hung (DEBUG SLEEP 4.5),
  paused (SIGSTOP/SIGCONT), killed and restarted empty (then provisioned again
  with turnadmin);
- SIGHUP (scheduled): log rotated first, certificate replaced (new EC or RSA
  key), once a broken certificate (refused, the old one stays), checked each
  time on the TLS port and in the new log file.
"""
import os
import socket
import ssl
import struct
import subprocess
import time

import net
import procfs
from actors import Pool, run_loop, run_schedule
from loads import STATIC, ternc
from redisctl import PARK_PASSWORD, PARK_USERS
from ternd import request
from turnclient import A_NONCE, Turn, build

UNREACHABLE = r"warn redis: unreachable \("
REQ_UDP = struct.pack("!HHI", 0x19, 4, 0x11000000)   # REQUESTED-TRANSPORT UDP


# --- Redis faults --------------------------------------------------------------------

def redis_times(seconds):
    period = min(150.0, max(12.0, seconds / 6.0))
    times, t = [], period * 0.7
    while t < seconds - 8:
        times.append(t)
        t += period
    return times


REDIS_FAULTS = ("slow", "pause", "kill", "hang", "slow", "pause", "kill", "hang")


def redis_fault(ctx, i):
    kind = REDIS_FAULTS[i % len(REDIS_FAULTS)]
    rd = ctx.redis
    with rd.lock:
        t0 = time.time()
        d = ctx.disturb_start(kind)
        w = ctx.open_window([UNREACHABLE], {"hang": "Redis hung by DEBUG SLEEP 4.5", "pause": "Redis paused with "
                                            "SIGSTOP", "kill": "Redis killed"}[kind]) if kind != "slow" else None
        try:
            if kind == "slow":
                ctx.event("redis", "DEBUG SLEEP 2 (slower than the 1 s a parked request waits)")
                rd.debug_sleep(2.0).join(15)
            elif kind == "hang":
                ctx.event("redis", "DEBUG SLEEP 4.5 (longer than the 3 s hang detection)")
                rd.debug_sleep(4.5).join(15)
            elif kind == "pause":
                secs = 5.0 if (i // 4) % 2 == 0 else 3.5   # 3.5: about the 3 s hang detection
                ctx.event("redis", "kill -STOP for %.1f s" % secs)
                rd.pause()
                try:
                    ctx.sleep_hard(secs)
                finally:
                    rd.resume()
                ctx.event("redis", "kill -CONT")
            elif kind == "kill":
                ctx.event("redis", "SIGKILL")
                rd.kill()
                ctx.sleep_hard(3.0)
                rd.restart_empty()
                ctx.event("redis", "restarted empty and provisioned again in %.1f s" % (time.time() - t0))
        finally:
            ctx.disturb_end(d)
            if w:
                ctx.close_window(w, 8)
        ctx.count("redis_fault.%s" % kind)


def redis_fault_thread(ctx):
    run_schedule(ctx, "redis_fault", redis_times(ctx.seconds), lambda i: redis_fault(ctx, i))


# --- requests left while parked on Redis -----------------------------------------------

def parked_thread(ctx):
    state = {"i": 0}

    def step():
        rd = ctx.redis
        if not rd.lock.acquire(blocking=False):
            ctx.count("parked.skipped_redis_fault")
            return
        try:
            if rd.state != "up" or time.time() - rd.provisioned < 1.5:
                return
            i = state["i"]
            state["i"] += 1
            transport = ("tcp", "tls", "dtls")[i % 3]
            port = ctx.tls_port if transport in ("tls", "dtls") else ctx.port
            # a Redis user not asked for in the last cache_ttl seconds (a
            # lookup), or a static user (the quota script: user_quota is set)
            if i % 4 == 3:
                cred = "dave:%s" % STATIC["dave"]
            else:
                cred = "%s:%s" % (PARK_USERS[i % len(PARK_USERS)], PARK_PASSWORD)
            d = ctx.disturb_start("debug-sleep-0.6")
            th = rd.debug_sleep(0.6)
            try:
                if i % 2 == 0:
                    # the project's client: sends the authenticated Allocate and leaves
                    rc, kv, out = ternc(ctx, "-t", transport, "--allocate", cred, "--leave",
                                        "--bind", "%s:0" % net.src_ip(ctx.rng), ctx.host, str(port))
                    ctx.count("vanish.while_parked.ternc.%s.%s" % (transport, "sent" if rc == 0 else "rc%s" % rc))
                else:
                    # the Python client, which can look at the gauge before it leaves
                    parked = leave_while_parked(ctx, "tls" if transport == "tls" else "tcp", cred)
                    ctx.count("vanish.while_parked.python.%s" % ("parked_seen" if parked else "not_seen_parked"))
            finally:
                th.join(10)
                ctx.disturb_end(d)
        finally:
            rd.lock.release()

    run_loop(ctx, "parked", step, lambda: ctx.rng.uniform(3.0, 6.0))


def leave_while_parked(ctx, transport, cred):
    """Authenticated Allocate sent while Redis sleeps; the request is parked
    (tern_redis_parked_requests > 0); then the client vanishes."""
    user, pw = cred.split(":", 1)
    port = ctx.tls_port if transport == "tls" else ctx.port
    t = Turn(ctx.host, port, user, pw, realm=ctx.realm, transport=transport, timeout=2.0,
             bind=(net.src_ip(ctx.rng), 0))
    try:
        r = t.request(3, [REQ_UDP], auth=False)
        if not r or A_NONCE not in r["attrs"]:
            return False
        t.nonce = r["attrs"][A_NONCE][0]
        msg, _ = build(3, [REQ_UDP] + t.auth_attrs(), t.key)
        t.send_raw(msg)
        parked = 0
        for _ in range(6):
            time.sleep(0.03)
            try:
                series = procfs.parse_metrics(procfs.scrape(ctx.metrics_port, timeout=1.0))
                parked = procfs.total(series, "tern_redis_parked_requests")
            except (OSError, ValueError):
                parked = 0
            if parked > 0:
                break
        return parked > 0
    finally:
        (net.reset_close(t.sock) if ctx.rng.random() < 0.5 else t.close())


# --- vanishing clients --------------------------------------------------------------

def v_tls_partial_hello(ctx):
    hello = net.client_hello()
    s = net.tcp(ctx.host, ctx.tls_port, net.src_ip(ctx.rng))
    s.sendall(hello[:ctx.rng.randint(1, len(hello) - 1)])
    (net.reset_close if ctx.rng.random() < 0.5 else socket.socket.close)(s)


def v_tls_hello_then_close(ctx):
    s = net.tcp(ctx.host, ctx.tls_port, net.src_ip(ctx.rng))
    s.sendall(net.client_hello())
    s.settimeout(1.0)
    try:
        s.recv(ctx.rng.choice((1, 100, 5000)))   # part of the server's flight
    except socket.timeout:
        pass
    (net.reset_close if ctx.rng.random() < 0.5 else socket.socket.close)(s)


def v_tls_hello_silent(ctx):
    """ClientHello, then nothing: the handshake deadline must close it."""
    s = net.tcp(ctx.host, ctx.tls_port, net.src_ip(ctx.rng))
    try:
        s.sendall(net.client_hello())
        limit = ctx.handshake_timeout
        took = net.closed_within(s, limit + 6, ctx.stop)
        if took == -1:
            return
        if took is None or took > limit + 3:
            ctx.violation("TLS handshake deadline not enforced",
                          "a client silent after its ClientHello was still connected after %s s "
                          "(handshake_timeout %d)" % ("%.1f" % took if took else ">%d" % (limit + 6), limit))
        else:
            ctx.count("vanish.tls_silent_closed_by_deadline")
    finally:
        s.close()


def v_killed(ctx, cmd, lo, hi, name):
    """A real client killed (SIGKILL) at a random moment of its exchange."""
    p = ctx.procs.spawn(["timeout", "-k", "1", "10"] + cmd, stdin=subprocess.PIPE)
    try:
        time.sleep(ctx.rng.uniform(lo, hi))
        ctx.procs.kill(p)
        p.wait(5)
    finally:
        ctx.procs.forget(p)
        try:
            p.stdin.close()
        except OSError:
            pass
    ctx.count("vanish.killed.%s" % name)


def v_dtls_openssl_killed(ctx):
    v_killed(ctx, ["openssl", "s_client", "-quiet", "-dtls1_2", "-connect",
                   "%s:%d" % (ctx.host, ctx.tls_port)], 0.002, 0.08, "openssl_dtls")


def v_ternc_killed(ctx, transport):
    port = ctx.tls_port if transport in ("tls", "dtls") else ctx.port
    v_killed(ctx, [ctx.ternc, "-t", transport, "--allocate", "dave:%s" % STATIC["dave"],
                   "--bind", "%s:0" % net.src_ip(ctx.rng), ctx.host, str(port)],
             0.002, 0.06, "ternc_" + transport)


def turn_from(ctx, transport):
    port = ctx.tls_port if transport == "tls" else ctx.port
    src = net.src_ip(ctx.rng)
    return Turn(ctx.host, port, "dave", STATIC["dave"], realm=ctx.realm, transport=transport,
                timeout=2.5, bind=(src, 0))


def v_after_401(ctx):
    transport = ctx.rng.choice(("udp", "tcp", "tls"))
    t = turn_from(ctx, transport)
    try:
        r = t.request(3, [REQ_UDP], auth=False)
        ctx.count("vanish.after_401.%s.%s" % (transport, "challenged" if r else "no_answer"))
    finally:
        if transport != "udp" and ctx.rng.random() < 0.5:
            net.reset_close(t.sock)
        else:
            t.close()


def v_after_allocate(ctx):
    transport = ctx.rng.choice(("udp", "tcp", "tls"))
    t = turn_from(ctx, transport)
    try:
        r = t.allocate()
        ctx.count("vanish.after_allocate.%s.%s" % (transport, "allocated" if r and r["cls"] == 2 else "refused"))
    finally:
        if transport != "udp" and ctx.rng.random() < 0.5:
            net.reset_close(t.sock)
        else:
            t.close()


def v_dtls_after_allocate(ctx):
    rc, kv, _ = ternc(ctx, "-t", "dtls", "--allocate", "dave:%s" % STATIC["dave"],
                      "--bind", "%s:0" % net.src_ip(ctx.rng), ctx.host, str(ctx.tls_port))
    ctx.count("vanish.after_allocate.dtls.%s" % ("allocated" if kv.get("class") == "success" else "rc%s" % rc))


def v_before_answer(ctx):
    """The authenticated Allocate sent, the client gone before the answer
    (with user_quota set even a static user's Allocate waits for Redis)."""
    transport = ctx.rng.choice(("tcp", "tls", "dtls"))
    port = ctx.tls_port if transport in ("tls", "dtls") else ctx.port
    rc, kv, _ = ternc(ctx, "-t", transport, "--allocate", "dave:%s" % STATIC["dave"], "--leave",
                      "--bind", "%s:0" % net.src_ip(ctx.rng), ctx.host, str(port))
    ctx.count("vanish.before_answer.%s" % transport)


def v_mid_channeldata(ctx):
    transport = ctx.rng.choice(("tcp", "tcp", "tls"))
    t = turn_from(ctx, transport)
    try:
        r = t.allocate()
        if not (r and r["cls"] == 2):
            ctx.count("vanish.mid_channeldata.no_allocation")
            return
        peer = ("127.0.0.1", ctx.peer_port)
        if not (t.channel_bind(0x4000 + ctx.rng.randint(0, 0xFFE), peer) or {}).get("cls") == 2:
            ctx.count("vanish.mid_channeldata.no_channel")
            return
        n = ctx.rng.randint(8, 1400)
        frame = struct.pack("!HH", 0x4000, n) + os.urandom(n)
        t.send_raw(frame[:ctx.rng.randint(1, len(frame) - 1)])
        ctx.count("vanish.mid_channeldata.%s" % transport)
    finally:
        (net.reset_close(t.sock) if ctx.rng.random() < 0.5 else t.close())


def v_mid_stun_frame(ctx):
    transport = ctx.rng.choice(("tcp", "tls"))
    port = ctx.tls_port if transport == "tls" else ctx.port
    src = net.src_ip(ctx.rng)
    s = net.tls(ctx.host, port, src) if transport == "tls" else net.tcp(ctx.host, port, src)
    msg, _ = request(fingerprint=True)
    s.sendall(msg[:ctx.rng.randint(1, len(msg) - 1)])
    (net.reset_close if ctx.rng.random() < 0.5 else socket.socket.close)(s)
    ctx.count("vanish.mid_stun_frame.%s" % transport)


def vanish_thread(ctx):
    kinds = [
        ("tls_partial_hello", v_tls_partial_hello),
        ("tls_hello_then_close", v_tls_hello_then_close),
        ("tls_hello_silent", v_tls_hello_silent),
        ("dtls_openssl_killed", v_dtls_openssl_killed),
        ("dtls_ternc_killed", lambda c: v_ternc_killed(c, "dtls")),
        ("tls_ternc_killed", lambda c: v_ternc_killed(c, "tls")),
        ("tcp_ternc_killed", lambda c: v_ternc_killed(c, "tcp")),
        ("after_401", v_after_401),
        ("after_allocate", v_after_allocate),
        ("dtls_after_allocate", v_dtls_after_allocate),
        ("before_answer", v_before_answer),
        ("mid_channeldata", v_mid_channeldata),
        ("mid_stun_frame", v_mid_stun_frame),
    ]
    pool = Pool(ctx, "vanish", 2)   # the silent ones wait for the deadline
    state = {"i": 0}

    def step():
        name, fn = kinds[state["i"] % len(kinds)]
        state["i"] += 1
        if name == "tls_hello_silent":
            pool.submit(lambda: fn(ctx))
        else:
            fn(ctx)
        ctx.count("vanish.total")

    run_loop(ctx, "vanish", step, lambda: ctx.rng.uniform(0.2, 0.8))
    pool.join(15)


# --- garbage ------------------------------------------------------------------------

def g_udp(ctx, port, data):
    s = net.udp(net.src_ip(ctx.rng))
    try:
        s.sendto(data, (ctx.host, port))
    except OSError:
        pass
    finally:
        s.close()


def stunish(ctx):
    """A STUN header (magic cookie) with random method, class and attributes."""
    body = b""
    for _ in range(ctx.rng.randint(0, 6)):
        t = ctx.rng.choice((0x0001, 0x0006, 0x0008, 0x0009, 0x000C, 0x0012, 0x0013, 0x0014, 0x0015, 0x0019,
                            0x0020, 0x8028, 0x002A, 0xC057, ctx.rng.randint(0, 0xFFFF)))
        v = os.urandom(ctx.rng.randint(0, 40))
        body += struct.pack("!HH", t, len(v) + ctx.rng.choice((0, 0, 1, -1 if v else 0))) + v
    mtype = ctx.rng.randint(0, 0x3FFF)
    length = len(body) if ctx.rng.random() < 0.6 else ctx.rng.randint(0, 0xFFFF)
    return struct.pack("!HHI", mtype, length & 0xFFFF, 0x2112A442) + os.urandom(12) + body


def g_tcp(ctx, port, data, use_tls=False):
    src = net.src_ip(ctx.rng)
    s = net.tls(ctx.host, port, src) if use_tls else net.tcp(ctx.host, port, src)
    try:
        s.sendall(data)
        took = net.closed_within(s, 1.0)
        return took
    finally:
        s.close()


def garbage_thread(ctx):
    def udp_random():
        g_udp(ctx, ctx.port, os.urandom(ctx.rng.randint(1, 1400)))

    def udp_stunish():
        g_udp(ctx, ctx.port, stunish(ctx))

    def udp_oversized():
        g_udp(ctx, ctx.rng.choice((ctx.port, ctx.tls_port)), os.urandom(ctx.rng.choice((1600, 9000, 65000))))

    def udp_channeldata():
        n = ctx.rng.randint(0, 1200)
        g_udp(ctx, ctx.port, struct.pack("!HH", ctx.rng.randint(0x4000, 0x7FFF), n) + os.urandom(n))

    def dtls_junk():
        if ctx.rng.random() < 0.5:
            rec = bytes([ctx.rng.choice((20, 21, 22, 23))]) + b"\xfe\xfd" + os.urandom(8) + \
                struct.pack("!H", 40) + os.urandom(ctx.rng.randint(0, 60))
        else:
            rec = os.urandom(ctx.rng.randint(1, 300))
        g_udp(ctx, ctx.tls_port, rec)

    def tcp_junk():
        g_tcp(ctx, ctx.port, os.urandom(ctx.rng.randint(1, 4000)))

    def tcp_oversized():
        if ctx.rng.random() < 0.5:
            frame = struct.pack("!HHI", 0x0001, 0xFFFC, 0x2112A442) + os.urandom(12) + os.urandom(0xFFFC)
        else:
            frame = struct.pack("!HH", 0x4000, 0xFFFF) + os.urandom(0xFFFF)
        g_tcp(ctx, ctx.port, frame)

    def tls_plaintext():
        g_tcp(ctx, ctx.tls_port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + os.urandom(ctx.rng.randint(0, 100)))

    def tls_junk_inside():
        g_tcp(ctx, ctx.tls_port, os.urandom(ctx.rng.randint(1, 3000)), use_tls=True)

    def relay_ports():
        s = net.udp(net.src_ip(ctx.rng))
        try:
            for _ in range(5):
                s.sendto(os.urandom(ctx.rng.randint(1, 600)),
                         (ctx.host, ctx.rng.randint(ctx.relay_lo, ctx.relay_hi)))
        except OSError:
            pass
        finally:
            s.close()

    def metrics_junk():
        s = net.tcp(ctx.host, ctx.metrics_port, timeout=2.0)
        try:
            s.sendall(ctx.rng.choice((b"GET /nope HTTP/1.0\r\n\r\n", b"POST /metrics HTTP/1.1\r\n",
                                      os.urandom(200), b"GET /metrics HTTP/1.1\r\nHost:")))
            net.closed_within(s, 1.0)
        finally:
            s.close()

    kinds = [("udp_random", udp_random), ("udp_stunish", udp_stunish), ("udp_oversized", udp_oversized),
             ("udp_channeldata_no_allocation", udp_channeldata), ("dtls_junk", dtls_junk),
             ("tcp_junk", tcp_junk), ("tcp_oversized_frame", tcp_oversized), ("tls_plaintext", tls_plaintext),
             ("tls_junk_inside", tls_junk_inside), ("relay_port_junk", relay_ports),
             ("udp_stunish", udp_stunish), ("metrics_junk", metrics_junk)]
    state = {"i": 0}

    def step():
        name, fn = kinds[state["i"] % len(kinds)]
        state["i"] += 1
        fn()
        ctx.count("garbage.%s" % name)
        ctx.count("garbage.total")

    run_loop(ctx, "garbage", step, lambda: ctx.rng.uniform(0.1, 0.4))


# --- slow writers and readers --------------------------------------------------------

def s_slow_writer(ctx, use_tls):
    """A Binding request a byte every 0.3 s: slower than nothing, faster than
    the idle timeout. ternd answers it in the end."""
    port = ctx.tls_port if use_tls else ctx.port
    src = net.src_ip(ctx.rng)
    s = net.tls(ctx.host, port, src) if use_tls else net.tcp(ctx.host, port, src)
    try:
        msg, _ = request()
        for i in range(len(msg)):
            s.sendall(msg[i:i + 1])
            if ctx.sleep(0.3):
                return
        s.settimeout(3.0)
        head = s.recv(20)
        ctx.count("slow.writer.%s.%s" % ("tls" if use_tls else "tcp", "answered" if len(head) >= 1 else "closed"))
    finally:
        s.close()


def s_stalled_writer(ctx):
    """Half a frame and then nothing: the idle timeout must close it."""
    s = net.tcp(ctx.host, ctx.port, net.src_ip(ctx.rng))
    try:
        msg, _ = request()
        s.sendall(msg[:7])
        limit = ctx.idle_timeout
        took = net.closed_within(s, limit + 8, ctx.stop)
        if took == -1:
            return
        if took is None or took > limit + 4:
            ctx.violation("idle timeout not enforced",
                          "a TCP client stalled half way through a frame was still connected after %s s "
                          "(idle_timeout %d)" % ("%.1f" % took if took else ">%d" % (limit + 8), limit))
        else:
            ctx.count("slow.stalled_writer_closed_by_idle_timeout")
    finally:
        s.close()


def s_slow_hello(ctx):
    """A ClientHello a byte at a time: the handshake deadline runs from the
    first byte, however slowly the client sends."""
    s = net.tcp(ctx.host, ctx.tls_port, net.src_ip(ctx.rng))
    hello = net.client_hello()
    limit = ctx.handshake_timeout
    t0 = time.monotonic()
    try:
        for i in range(len(hello)):
            try:
                s.sendall(hello[i:i + 1])
            except OSError:
                break
            if time.monotonic() - t0 > limit + 5 or ctx.sleep(0.2):
                break
        took = net.closed_within(s, max(0.1, limit + 6 - (time.monotonic() - t0)), ctx.stop)
        if took == -1:
            return
        took = None if took is None else time.monotonic() - t0
        if took is None or took > limit + 3:
            ctx.violation("TLS handshake deadline not enforced",
                          "a ClientHello sent a byte every 0.2 s was still being read after %s s "
                          "(handshake_timeout %d)" % ("%.1f" % took if took else ">%d" % (limit + 6), limit))
        else:
            ctx.count("slow.hello_closed_by_deadline")
    finally:
        s.close()


def s_slow_reader(ctx, use_tls):
    """Pipelined Binding requests, never reading an answer: ternd must stop
    at its bound of unread output (256 KiB) and close the connection."""
    port = ctx.tls_port if use_tls else ctx.port
    src = net.src_ip(ctx.rng)
    s = (net.tls if use_tls else net.tcp)(ctx.host, port, src, timeout=1.0, rcvbuf=4096)
    me = s.getsockname()[:2]
    msg, _ = request()
    batch = msg * 200
    sent, t0 = 0, time.monotonic()
    what = "tls" if use_tls else "tcp"
    try:
        while time.monotonic() - t0 < 12 and not ctx.stop.is_set():
            try:
                s.sendall(batch)
                sent += len(batch)
            except (socket.timeout, ssl.SSLError, OSError):
                break   # our send buffer is full (ternd stopped reading), or ternd closed
            time.sleep(0.01)
        # ternd may have closed long ago while the kernel still drains its
        # send queue into our 4 KiB window: ask /proc whether ternd holds it
        limit = ctx.idle_timeout + 8
        t1 = time.monotonic()
        while procfs.tcp_held(ctx.pid, port, me) and time.monotonic() - t1 < limit:
            if ctx.sleep(0.25):
                return
        if procfs.tcp_held(ctx.pid, port, me):
            ctx.violation("slow reader never closed",
                          "a %s client that never reads (%d bytes of requests sent) was still connected "
                          "after %.0f s" % (what, sent, time.monotonic() - t0))
        else:
            ctx.count("slow.reader.%s.closed" % what)
            ctx.event("slow", "%s slow reader closed by ternd within %.1f s, %d KiB of requests sent"
                      % (what, time.monotonic() - t0, sent // 1024))
    finally:
        s.close()


def s_slow_relay_reader(ctx):
    """A TURN client over TCP that never reads while a peer floods its relay."""
    t = Turn(ctx.host, ctx.port, "dave", STATIC["dave"], realm=ctx.realm, transport="tcp", timeout=2.5,
             bind=(net.src_ip(ctx.rng), 0))
    peer = net.udp()
    try:
        t.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        r = t.allocate()
        if not (r and r["cls"] == 2):
            ctx.count("slow.relay_reader.no_allocation")
            return
        relay = t.relayed[0]
        if not (t.channel_bind(0x4000 + ctx.rng.randint(0, 0xFFE), peer.getsockname()) or {}).get("cls") == 2:
            ctx.count("slow.relay_reader.no_channel")
            return
        payload = os.urandom(1000)
        t0 = time.monotonic()
        n = 0
        while time.monotonic() - t0 < 4 and not ctx.stop.is_set():
            for _ in range(20):
                peer.sendto(payload, relay)
                n += 1
            time.sleep(0.02)
        # the client still neither reads nor sends: ternd drops what does not
        # fit and its idle timeout closes the connection. (The kernel may go
        # on draining the closed socket's send queue into our small window for
        # a long time: ask /proc whether ternd still holds the socket.)
        me = t.sock.getsockname()[:2]
        t1 = time.monotonic()
        limit = ctx.idle_timeout + 8
        while procfs.tcp_held(ctx.pid, ctx.port, me) and time.monotonic() - t1 < limit:
            if ctx.sleep(0.25):
                return
        held = procfs.tcp_held(ctx.pid, ctx.port, me)
        if held:
            ctx.violation("idle timeout not enforced",
                          "a TCP client flooded by its relay and silent for %.0f s is still connected "
                          "(idle_timeout %d)" % (time.monotonic() - t0, ctx.idle_timeout))
        else:
            ctx.count("slow.relay_reader.closed")
            ctx.event("slow", "relay flooded a silent, non-reading TCP client with %d datagrams; ternd closed it "
                      "%.1f s after the flood" % (n, time.monotonic() - t1))
    finally:
        t.close()
        peer.close()


def slow_thread(ctx):
    kinds = [("writer_tcp", lambda: s_slow_writer(ctx, False)),
             ("stalled_writer", lambda: s_stalled_writer(ctx)),
             ("reader_tcp", lambda: s_slow_reader(ctx, False)),
             ("slow_hello", lambda: s_slow_hello(ctx)),
             ("writer_tls", lambda: s_slow_writer(ctx, True)),
             ("reader_tls", lambda: s_slow_reader(ctx, True)),
             ("relay_reader", lambda: s_slow_relay_reader(ctx))]
    pool = Pool(ctx, "slow", 3)
    state = {"i": 0}

    def step():
        name, fn = kinds[state["i"] % len(kinds)]
        if pool.submit(fn):
            state["i"] += 1
            ctx.count("slow.started.%s" % name)

    run_loop(ctx, "slow", step, lambda: ctx.rng.uniform(1.5, 3.0))
    pool.join(25)


# --- SIGHUP -----------------------------------------------------------------------

# What ternd logs after SIGHUP: before 61fe94a "SIGHUP: log reopened,
# certificates reloaded" / "SIGHUP: certificate reload failed"; since then
# SIGHUP reloads the whole configuration: "reload: FILE applied; certificates
# reloaded" / "reload refused, the running configuration stays: tls: ...".
HUP_OK_LINES = [r"info SIGHUP: log reopened", r"info reload: .* applied"]
BROKEN_CERT_LINES = [r"error SIGHUP: certificate reload failed", r"error tls: cannot load certificate",
                     r"error reload refused, the running configuration stays: tls: cannot load certificate"]


def hup_times(seconds):
    interval = min(240.0, max(15.0, seconds / 5.0))
    times, t = [], interval
    while t < seconds - 5:
        times.append(t)
        t += interval
    return times


def write_cert(ctx, kind):
    """A fresh certificate and key, swapped in by rename."""
    cert, key = ctx.cert, ctx.key
    tc, tk = cert + ".new", key + ".new"
    if kind == "ec":
        newkey = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1"]
    else:
        newkey = ["-newkey", "rsa:2048"]
    rc, out, _ = ctx.procs.run(["openssl", "req", "-x509"] + newkey +
                               ["-nodes", "-days", "2", "-subj", "/CN=127.0.0.1", "-keyout", tk, "-out", tc],
                               timeout=30)
    if rc != 0:
        ctx.count("harness.openssl_failed", detail=out[-300:])
        return False
    os.rename(tk, key)
    os.rename(tc, cert)
    return True


def hup(ctx, i):
    """Rotate the log, maybe change the certificate, SIGHUP, check both took."""
    w = []
    try:
        hup_once(ctx, i, w)
    finally:
        for window in w:
            if window[2] is None:
                ctx.close_window(window, 3)


def hup_once(ctx, i, windows):
    plan = "broken" if i == 1 else ("ec", "rsa", "same")[i % 3]
    before = net.cert_der(ctx.cert)
    broken_window = None
    if plan in ("ec", "rsa"):
        write_cert(ctx, plan)
    elif plan == "broken":
        with open(ctx.cert + ".new", "w") as f:
            f.write("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydGlmaWNhdGU=\n-----END CERTIFICATE-----\n")
        os.rename(ctx.cert + ".new", ctx.cert)
        broken_window = ctx.open_window(BROKEN_CERT_LINES,
                                        "broken certificate installed before a SIGHUP")
        windows.append(broken_window)
    want = before if plan == "broken" else net.cert_der(ctx.cert)
    ctx.rotate_log()
    ctx.event("sighup", "log rotated, certificate: %s; SIGHUP" % plan)
    os.kill(ctx.pid, 1)
    expect = BROKEN_CERT_LINES if plan == "broken" else HUP_OK_LINES
    ok_log = ctx.wait_log_line(expect, 5.0)
    if not ok_log:
        ctx.violation("SIGHUP not acted on", "no line matching %s in the new log file within 5 s" % expect)
    try:
        served = net.served_cert_der(ctx.host, ctx.tls_port)
    except (OSError, ssl.SSLError) as e:
        served = None
        ctx.violation("TLS broken after SIGHUP", "handshake failed after SIGHUP (%s): %s" % (plan, e))
    if served is not None and served != want:
        ctx.violation("certificate not reloaded as expected",
                      "after SIGHUP (%s) the TLS port serves %s certificate" %
                      (plan, "the previous" if served == before else "an unknown"))
    rc, kv, _ = ternc(ctx, "-t", "dtls", ctx.host, str(ctx.tls_port))
    if kv.get("class") != "success":
        ctx.violation("DTLS broken after SIGHUP", "ternc -t dtls Binding failed (rc %s) after %s" % (rc, plan))
    ctx.count("sighup.%s" % plan)
    if plan == "broken":
        # the operator fixes the certificate and sends SIGHUP again
        ctx.sleep_hard(1.0)
        write_cert(ctx, "rsa")
        want = net.cert_der(ctx.cert)
        ctx.event("sighup", "good certificate back; SIGHUP")
        os.kill(ctx.pid, 1)
        ctx.close_window(broken_window, 3)
        time.sleep(0.5)
        try:
            served = net.served_cert_der(ctx.host, ctx.tls_port)
        except (OSError, ssl.SSLError):
            served = None
        if served != want:
            ctx.violation("certificate not reloaded after a broken one",
                          "the good certificate written after the broken one is not served")
        ctx.count("sighup.restore")


def hup_thread(ctx):
    run_schedule(ctx, "sighup", hup_times(ctx.seconds), lambda i: hup(ctx, i))
