"""Resource exhaustion and floods against a real ternd: every table has a
bound, the excess is refused at once, timeouts give everything back, and
legitimate clients are served meanwhile.

1. Descriptors: RLIMIT_NOFILE 256; Allocate beyond what fits gets 508, TCP
   and TLS connections beyond are closed at once, the listener does not spin,
   and all works again once clients leave.
2. Relay ports: 50 ports, 50 allocations, the 51st gets 508; a port comes
   back after Refresh 0, after expiry and when the TCP client leaves.
3. Connections: 5000 TCP connections that never send, 1000 TLS and 2400 DTLS
   handshakes left half way (and 1000 cookieless ClientHellos), from many
   127.0.0.0/8 sources, with max_connections = 1000 per worker: bounded, the
   excess closed at once, released by the timeouts, memory per connection.
4. Unauthenticated floods from 200 sources: answers within unauth_rate, no
   relay port opened, no answer more than 128 bytes longer than its request.
5. Memory ceiling: streams with full output buffers (256 KiB each), TLS and
   DTLS sessions at the bound.
6. Signals under relay load: SIGTERM exits at once with status 0 and frees
   every port; SIGHUP loses no relayed packet.

Each test prints its figures on stderr as "exhaustion: name=value" lines
(and, with TERN_EXHAUSTION_FIGURES=FILE, appends them to FILE as JSON).
Memory ceilings are asserted on plain builds only: under a sanitizer the
allocator's redzones and quarantine make RSS figures meaningless.
"""
import concurrent.futures
import json
import os
import random
import resource
import select
import signal
import socket
import ssl
import struct
import subprocess
import sys
import threading
import time
import unittest
import urllib.request

from ternd import (BUILD, ROOT, TERND, Ternd, _ephemeral_low, _given, free_port, parse, recv_frame,
                   request, temp_dir, tls_files, udp_exchange)
from turnclient import Turn, build, attr, ALLOCATE, A_TRANSPORT, A_USERNAME, A_REALM, A_NONCE, A_ERROR
from test_turn import turn_conf, error, udp_peer
from test_metrics import parse_metrics, total
from test_review_a import dtls_client_hello, is_hello_verify_request, udp_from, unauth_allocate, tcp_binding
from test_binding import ternc

SERVER = "127.0.0.1"
TERNBENCH = os.path.join(ROOT, BUILD, "ternbench")
SANITIZED = "san" in os.path.basename(os.path.normpath(BUILD))
CLK_TCK = os.sysconf("SC_CLK_TCK")
KIB, MIB = 1024, 1024 * 1024

FIGURES = {}


def figure(name, value):
    """Record a measured figure for the README's table of bounds."""
    FIGURES[name] = value
    print("exhaustion: %s=%s" % (name, value), file=sys.stderr, flush=True)


_saved_nofile = None


def setUpModule():
    # Thousands of client sockets: take the hard limit (20000 here).
    global _saved_nofile
    _saved_nofile = resource.getrlimit(resource.RLIMIT_NOFILE)
    soft, hard = _saved_nofile
    want = 20000 if hard == resource.RLIM_INFINITY else min(hard, 20000)
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))


def tearDownModule():
    if _saved_nofile:
        resource.setrlimit(resource.RLIMIT_NOFILE, _saved_nofile)
    path = os.environ.get("TERN_EXHAUSTION_FIGURES")
    if path and FIGURES:
        with open(path, "a") as f:
            f.write(json.dumps({"build": BUILD, "figures": FIGURES}, sort_keys=True) + "\n")


# --- the process under test ---------------------------------------------------

class Server(Ternd):
    """A Ternd, optionally started with RLIMIT_NOFILE soft = hard = nofile."""

    def __init__(self, conf_text, nofile=None):
        super().__init__(conf_text)
        self.nofile = nofile

    def __enter__(self):
        if self.nofile is None:
            return super().__enter__()
        n = self.nofile
        self.errf = open(self.log, "w")
        self.proc = subprocess.Popen([TERND, "-c", self.conf], stdout=subprocess.PIPE, stderr=self.errf,
                                     text=True,
                                     preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (n, n)))
        self.ready_line = self.proc.stdout.readline()
        if "listening on" not in self.ready_line:
            self.stop()
            raise RuntimeError("ternd did not start: " + self.stderr())
        return self

    @property
    def pid(self):
        return self.proc.pid


def start(test, text, nofile=None):
    srv = Server(text, nofile).__enter__()
    test.addCleanup(srv.stop)
    return srv


def cpu_seconds(pid):
    """utime + stime of the whole process (every thread), in seconds."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def status(pid, key):
    """A kB field of /proc/PID/status, in bytes."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(key)


def rss(pid):
    return status(pid, "VmRSS")


def kernel_tcp_memory():
    """Bytes of socket buffers of every TCP socket of the host (/proc/net/sockstat)."""
    with open("/proc/net/sockstat") as f:
        for line in f:
            if line.startswith("TCP:"):
                fields = line.split()
                return int(fields[fields.index("mem") + 1]) * os.sysconf("SC_PAGESIZE")
    return 0


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def udp_socket_count(pid):
    """ternd's own UDP sockets: its socket descriptors that /proc/net/udp{,6} list."""
    inodes = set()
    for fd in os.listdir("/proc/%d/fd" % pid):
        try:
            link = os.readlink("/proc/%d/fd/%s" % (pid, fd))
        except OSError:
            continue
        if link.startswith("socket:["):
            inodes.add(link[8:-1])
    udp = set()
    for name in ("udp", "udp6"):
        with open("/proc/%d/net/%s" % (pid, name)) as f:
            for line in f.readlines()[1:]:
                udp.add(line.split()[9])
    return len(inodes & udp)


def free_range(n, host=SERVER):
    """n consecutive ports, each free for UDP on host, below the ephemeral range
    and never handed out before in this run (free_port will not give them)."""
    top = min(40000, _ephemeral_low() - 301) - n
    for _ in range(200):
        start_port = random.randint(20000, top)
        ports = range(start_port, start_port + n)
        if any(p in _given for p in ports):
            continue
        ok = True
        for p in ports:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind((host, p))
            except OSError:
                ok = False
            finally:
                s.close()
            if not ok:
                break
        if ok:
            _given.update(ports)
            return start_port
    raise RuntimeError("no free range of %d ports" % n)


def relay_conf(n):
    lo = free_range(n)
    return 'relay = { ip = [ "127.0.0.1" ]; min_port = %d; max_port = %d; };' % (lo, lo + n - 1), lo


def info_level(text):
    return text.replace('level = "debug"', 'level = "info"')


def src(block, i):
    """The i-th client source address of a block: 127.block.x.y."""
    return "127.%d.%d.%d" % (block, i // 250, i % 250 + 1)


def scrape(mport):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport, timeout=5) as r:
        return parse_metrics(r.read().decode())[0]


def sessions(mport):
    """{(worker, transport): tern_sessions}."""
    out = {}
    for (name, labels), v in scrape(mport).items():
        if name == "tern_sessions":
            d = dict(labels)
            out[(d["worker"], d["transport"])] = v
    return out


def stream_per_worker(s):
    """TCP + TLS sessions per worker: the bound they share."""
    out = {}
    for (w, tr), v in s.items():
        if tr in ("tcp", "tls"):
            out[w] = out.get(w, 0) + v
    return out


def kind_total(s, transport):
    return sum(v for (w, tr), v in s.items() if tr == transport)


class Sampler:
    """Calls fn every period seconds on a thread; keeps (time, value)."""

    def __init__(self, fn, period):
        self.fn, self.period = fn, period
        self.values, self.errors = [], []
        self.ev = threading.Event()
        self.th = threading.Thread(target=self.run, daemon=True)
        self.th.start()

    def run(self):
        while not self.ev.is_set():
            try:
                self.values.append((time.time(), self.fn()))
            except Exception as e:  # the server may be stopping; keep the error for the report
                self.errors.append(e)
            self.ev.wait(self.period)

    def stop(self):
        self.ev.set()
        self.th.join(10)
        return self.values


class StreamWatch:
    """Stream sockets whose end we time: a thread reads them (epoll) and notes
    when data first came and when EOF or a reset came, then closes them."""

    def __init__(self):
        self.ep = select.epoll()
        self.lock = threading.Lock()
        self.open = {}
        self.closed = []
        self.halt = False
        self.th = threading.Thread(target=self.run, daemon=True)
        self.th.start()

    def add(self, sock, t_conn, tag=None):
        sock.setblocking(False)
        rec = {"sock": sock, "t_conn": t_conn, "t_data": None, "t_eof": None, "tag": tag}
        with self.lock:
            self.open[sock.fileno()] = rec
            self.ep.register(sock.fileno(), select.EPOLLIN | select.EPOLLRDHUP)
        return rec

    def run(self):
        while not self.halt:
            events = self.ep.poll(0.05)
            now = time.time()
            for fd, _ in events:
                with self.lock:
                    rec = self.open.get(fd)
                    if rec is None:
                        continue
                    try:
                        data = rec["sock"].recv(65536)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError:
                        data = b""
                    if data:
                        rec["t_data"] = rec["t_data"] or now
                        continue
                    rec["t_eof"] = now
                    del self.open[fd]
                    self.ep.unregister(fd)
                    rec["sock"].close()
                    self.closed.append(rec)

    def n_open(self):
        with self.lock:
            return len(self.open)

    def n_answered(self):
        """Open sockets that received data."""
        with self.lock:
            return sum(1 for r in self.open.values() if r["t_data"])

    def close(self):
        self.halt = True
        self.th.join(5)
        with self.lock:
            for rec in self.open.values():
                rec["sock"].close()
            self.open.clear()
        self.ep.close()


def parallel(fn, items, threads=8):
    with concurrent.futures.ThreadPoolExecutor(threads) as ex:
        return list(ex.map(fn, items))


_TLS_CLIENT = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
_TLS_CLIENT.check_hostname = False
_TLS_CLIENT.verify_mode = ssl.CERT_NONE


def tls_client_hello():
    """A fresh ClientHello from OpenSSL's client (TLS 1.3/1.2), as bytes."""
    out = ssl.MemoryBIO()
    obj = _TLS_CLIENT.wrap_bio(ssl.MemoryBIO(), out)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def tls_connect(port, source=None, timeout=2.0):
    """A full TLS handshake; the wrapped socket."""
    raw = socket.create_connection((SERVER, port), timeout=timeout, source_address=source)
    try:
        return _TLS_CLIENT.wrap_socket(raw)
    except Exception:
        raw.close()
        raise


def tls_binding(port, timeout=2.0):
    """Class of a Binding answer over a new TLS connection, or None."""
    try:
        s = tls_connect(port, timeout=timeout)
    except OSError:
        return None
    try:
        msg, tid = request()
        s.sendall(msg)
        frame = recv_frame(s)
        return parse(frame)["cls"] if frame and frame[8:20] == tid else None
    except OSError:
        return None
    finally:
        s.close()


def refused_at_once(connect, limit):
    """connect() makes a stream socket (TLS: also does the handshake); seconds
    until the server closed it (EOF, reset or handshake failure), or None if it
    was not closed within limit seconds."""
    t0 = time.time()
    dt = _closed_after(connect, limit, t0)
    return dt if dt is not None and dt <= limit else None


def _closed_after(connect, limit, t0):
    try:
        s = connect()
    except (ssl.SSLError, ConnectionError, EOFError):
        return time.time() - t0
    except OSError as e:
        if isinstance(e, socket.timeout):
            return None
        return time.time() - t0
    try:
        s.settimeout(max(0.01, limit - (time.time() - t0)))
        while True:
            if not s.recv(4096):
                return time.time() - t0
    except socket.timeout:
        return None
    except (OSError, ssl.SSLError):
        return time.time() - t0
    finally:
        s.close()


def udp_binding_ok(port, timeout=1.0):
    reply, _ = udp_exchange(SERVER, port, request()[0], timeout=timeout)
    return reply is not None and parse(reply)["cls"] == 2


def udp_allocate_ok(port):
    """A full UDP allocation (401, Allocate), deleted again; its answer class or error."""
    t = Turn(SERVER, port)
    try:
        r = t.allocate()
        ok = r["cls"] if r and r["cls"] == 2 else error(r)
        if ok == 2:
            t.refresh(0)
        return ok
    finally:
        t.close()


def hvr_cookie(data):
    """The cookie of a DTLS HelloVerifyRequest (record 13, handshake header 12,
    server_version 2, cookie length 1, cookie)."""
    if not is_hello_verify_request(data):
        return None
    n = data[27]
    return data[28:28 + n]


def hello_with_cookie(hello, cookie, message_seq=1):
    """The ClientHello of dtls_client_hello() again, carrying cookie, as the
    second ClientHello of RFC 6347 section 4.2.1 (message_seq 1, record 1)."""
    body = hello[25:]
    at = 35 + body[34]  # version 2, random 32, session id length + id
    assert body[at] == 0, "the first ClientHello has no cookie"
    body = body[:at] + bytes([len(cookie)]) + cookie + body[at + 1:]
    n = len(body).to_bytes(3, "big")
    hs = b"\x01" + n + struct.pack("!H", message_seq) + b"\0\0\0" + n + body
    return struct.pack("!BHH", 22, 0xFEFD, 0) + (1).to_bytes(6, "big") + struct.pack("!H", len(hs)) + hs


def is_server_hello(data):
    return data is not None and len(data) > 13 and data[0] == 22 and data[13] == 2


def read_all(socks, seconds, on_datagram):
    """Poll UDP sockets for seconds; on_datagram(sock, data, now) for each datagram."""
    ep = select.epoll()
    by_fd = {}
    for s in socks:
        by_fd[s.fileno()] = s
        ep.register(s.fileno(), select.EPOLLIN)
    deadline = time.time() + seconds
    try:
        while time.time() < deadline:
            for fd, _ in ep.poll(min(0.05, max(0.0, deadline - time.time()))):
                s = by_fd[fd]
                for _ in range(64):
                    try:
                        data = s.recv(4096)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError:
                        break
                    if on_datagram(s, data, time.time()):
                        return True
    finally:
        ep.close()
    return False


def wait_until(cond, timeout, period=0.05):
    deadline = time.time() + timeout
    while True:
        v = cond()
        if v or time.time() > deadline:
            return v
        time.sleep(period)


def tls_conf_extra():
    cert, key = tls_files(temp_dir())
    return 'tls = { cert = "%s"; key = "%s"; };' % (cert, key)


# --- 1. descriptors -----------------------------------------------------------

class Descriptors(unittest.TestCase):
    """ternd with RLIMIT_NOFILE soft = hard = 256."""

    NOFILE = 256

    def test_fd_limit_508_refused_streams_no_spin_and_recovery(self):
        port, tls_port = free_port(), free_port(kinds=(socket.SOCK_STREAM,))
        relay, _ = relay_conf(400)  # more ports than descriptors: the descriptors run out first
        listen = ('{ proto = "udp"; ip = "127.0.0.1"; port = %d; }, { proto = "tcp"; ip = "127.0.0.1"; port = %d; },'
                  '{ proto = "tls"; ip = "127.0.0.1"; port = %d; }' % (port, port, tls_port))
        text = info_level(turn_conf(port, listen=listen, relay=relay, limits="unauth_rate = 0;",
                                    extra=tls_conf_extra()))
        srv = start(self, text, nofile=self.NOFILE)
        with open("/proc/%d/limits" % srv.pid) as f:
            line = [l for l in f if l.startswith("Max open files")][0]
        self.assertEqual(line.split()[3:5], [str(self.NOFILE)] * 2, line)
        figure("fd_limit_fds_at_start", fd_count(srv.pid))

        # Held streams: TCP and TLS clients that each got an answer.
        held = []
        for _ in range(10):
            s = socket.create_connection((SERVER, port), timeout=2)
            held.append(s)
            self.addCleanup(s.close)
            msg, _ = request()
            s.sendall(msg)
            self.assertIsNotNone(recv_frame(s))
        for _ in range(5):
            s = tls_connect(tls_port)
            held.append(s)
            self.addCleanup(s.close)
            msg, _ = request()
            s.sendall(msg)
            self.assertIsNotNone(recv_frame(s))

        # Allocations until the descriptors run out: 508, never silence.
        clients, codes, nonce = [], [], None
        for _ in range(400):
            t = Turn(SERVER, port)
            self.addCleanup(t.close)
            t.nonce = nonce
            r = t.allocate()
            nonce = t.nonce
            code = r["cls"] if r and r["cls"] == 2 else error(r)
            codes.append(code)
            if code != 2:
                break
            clients.append(t)
        self.assertTrue(srv.alive(), srv.stderr()[-2000:])
        figure("fd_limit_allocations", len(clients))
        figure("fd_limit_fds_when_full", fd_count(srv.pid))
        self.assertEqual(codes[-1], 508, "answer after %d allocations (None: no answer)" % len(clients))
        self.assertGreater(len(clients), 150)
        t = Turn(SERVER, port)
        self.addCleanup(t.close)
        t.nonce = nonce
        self.assertEqual(error(t.allocate()), 508, "a second Allocate at the limit")

        # New streams at the limit are closed at once, TCP and TLS alike
        # (asserted after the CPU figure is taken, so that a failure reports both).
        # Back to back, so that each connection reaches a listener (either
        # worker's) the instant the previous one was reset: the slot that
        # reset frees must go back to the spare, never to that connection
        # (observed: the other worker's listener accepted it and served it,
        # the spare was lost and every later connection waited).
        first = []
        for _ in range(20):
            first.append(("tcp", refused_at_once(lambda: socket.create_connection((SERVER, port), timeout=2), 1.0)))
            first.append(("tls", refused_at_once(lambda: tls_connect(tls_port), 1.0)))

        # Held at the limit with connections knocking: the listener must not spin.
        knocks, stop = [], threading.Event()

        def knocker():
            i = 0
            while not stop.is_set() and i < 100:
                if i % 2:
                    knocks.append(refused_at_once(lambda: tls_connect(tls_port), 1.0))
                else:
                    knocks.append(refused_at_once(lambda: socket.create_connection((SERVER, port), timeout=2), 1.0))
                i += 1
                stop.wait(0.2)

        log_before = len(srv.stderr().splitlines())
        th = threading.Thread(target=knocker, daemon=True)
        c0, t0 = cpu_seconds(srv.pid), time.time()
        th.start()
        time.sleep(5.0)
        c1, t1 = cpu_seconds(srv.pid), time.time()
        stop.set()
        th.join(5)
        log_lines = len(srv.stderr().splitlines()) - log_before
        cpu = c1 - c0
        figure("fd_limit_cpu_s_over_5s", round(cpu, 3))
        figure("fd_limit_knocks", len(knocks))
        figure("fd_limit_knock_close_max_ms", round(1000 * max((k for k in knocks if k is not None), default=0), 1))
        figure("fd_limit_log_lines_over_5s", log_lines)
        self.assertTrue(udp_binding_ok(port), "UDP Binding at the descriptor limit")
        self.assertEqual([k for k, dt in first if dt is None], [],
                         "connections at the descriptor limit not closed within 1 s; ternd's log:\n"
                         + srv.stderr()[-3000:])
        self.assertLess(cpu, 0.3, "ternd used %.2f s of CPU in %.1f s at the descriptor limit" % (cpu, t1 - t0))
        self.assertGreaterEqual(len(knocks), 15)
        self.assertNotIn(None, knocks, "connections at the limit left open (None) among %s; ternd's log:\n%s"
                         % (knocks, srv.stderr()[-3000:]))
        self.assertLess(log_lines, 50, "log lines in 5 s at the limit:\n" + srv.stderr()[-3000:])

        # Clients leave: everything works again.
        for t in clients:
            r = t.refresh(0)
            self.assertTrue(r and r["cls"] == 2, error(r))
        for s in held:
            s.close()
        ok = wait_until(lambda: udp_allocate_ok(port) == 2, 3, 0.2)
        self.assertTrue(ok, "Allocate after the clients left\n" + srv.stderr()[-2000:])
        self.assertEqual(wait_until(lambda: tcp_binding(port), 3, 0.2), 2, "TCP Binding after the clients left")
        self.assertEqual(wait_until(lambda: tls_binding(tls_port), 3, 0.2), 2, "TLS Binding after the clients left")
        self.assertTrue(srv.alive())
        self.assertEqual(srv.stop(), 0)


# --- 2. relay ports -----------------------------------------------------------

class RelayPorts(unittest.TestCase):
    """relay.min_port..max_port of 50 ports; time_scale 200 (600 s = 3 s)."""

    N = 50

    def test_fifty_ports_then_508_and_each_way_a_port_comes_back(self):
        port = free_port()
        relay, lo = relay_conf(self.N)
        text = info_level(turn_conf(port, relay=relay,
                                    limits="unauth_rate = 0; time_scale = 200; max_lifetime = 86400;"))
        srv = start(self, text)
        nonce = [None]

        def client(transport="udp"):
            t = Turn(SERVER, port, transport=transport)
            self.addCleanup(t.close)
            if transport == "udp":
                t.nonce = nonce[0]
            return t

        def allocate(t, lifetime=86400):
            r = t.allocate(lifetime=lifetime)
            nonce[0] = nonce[0] or t.nonce
            return r["cls"] if r and r["cls"] == 2 else error(r)

        held = []
        for i in range(self.N):
            t = client()
            self.assertEqual(allocate(t), 2, "allocation %d of %d" % (i + 1, self.N))
            held.append(t)
        ports = sorted(t.relayed[0][1] for t in held)
        self.assertEqual(ports, list(range(lo, lo + self.N)))
        self.assertEqual(allocate(client()), 508, "allocation %d" % (self.N + 1))

        # Refresh 0: the port is free at once.
        freed = held[0].relayed[0][1]
        self.assertEqual(held.pop(0).refresh(0)["cls"], 2)
        t = client()
        self.assertEqual(allocate(t), 2, "Allocate after Refresh 0")
        self.assertEqual(t.relayed[0][1], freed)
        held.append(t)
        self.assertEqual(allocate(client()), 508)

        # Expiry: a short allocation (600 s scaled: 3 s) takes the last port.
        self.assertEqual(held.pop(0).refresh(0)["cls"], 2)
        short = client()
        self.assertEqual(allocate(short, lifetime=600), 2)
        t_short = time.time()
        self.assertEqual(allocate(client()), 508)
        winner = [None]

        def after_expiry():
            t = client()
            if allocate(t) == 2:
                winner[0] = t
                return True
            return False

        self.assertTrue(wait_until(after_expiry, 3.0 + 4.0, 0.25), "no port came back after expiry\n" + srv.stderr()[-2000:])
        expiry = time.time() - t_short
        figure("relay_port_back_after_expiry_s", round(expiry, 2))
        self.assertGreater(expiry, 2.0, "the port came back before the 3 s lifetime ended")
        self.assertEqual(error(short.refresh(600)), 437, "the short allocation is gone")
        self.assertEqual(winner[0].relayed[0][1], short.relayed[0][1])
        held.append(winner[0])

        # The client's TCP connection drops: its port comes back.
        self.assertEqual(held.pop(0).refresh(0)["cls"], 2)
        tcp = client("tcp")
        self.assertEqual(allocate(tcp), 2, "Allocate over TCP")
        self.assertEqual(allocate(client()), 508)
        tcp.close()
        t_close = time.time()
        self.assertTrue(wait_until(lambda: allocate(client()) == 2, 3.0, 0.05),
                        "no port came back after the TCP client left\n" + srv.stderr()[-2000:])
        figure("relay_port_back_after_tcp_close_s", round(time.time() - t_close, 3))
        self.assertTrue(srv.alive())


# --- 3. connections -----------------------------------------------------------

class Connections(unittest.TestCase):
    """workers = 2, max_connections = 1000, handshake_timeout = 2,
    idle_timeout = 5; clients from many 127.0.0.0/8 addresses."""

    MAX, HANDSHAKE, IDLE, WORKERS = 1000, 2, 5, 2

    def server(self):
        self.port, self.tls_port = free_port(), free_port()
        self.mport = free_port(kinds=(socket.SOCK_STREAM,))
        relay, _ = relay_conf(100)
        listen = ('{ proto = "udp"; ip = "127.0.0.1"; port = %d; }, { proto = "tcp"; ip = "127.0.0.1"; port = %d; },'
                  '{ proto = "tls"; ip = "127.0.0.1"; port = %d; }, { proto = "dtls"; ip = "127.0.0.1"; port = %d; }'
                  % (self.port, self.port, self.tls_port, self.tls_port))
        extra = tls_conf_extra() + '\nmetrics = { ip = "127.0.0.1"; port = %d; };' % self.mport
        limits = "max_connections = %d; handshake_timeout = %d; idle_timeout = %d;" % (
            self.MAX, self.HANDSHAKE, self.IDLE)
        text = info_level(turn_conf(self.port, listen=listen, relay=relay, limits=limits, extra=extra))
        self.assertIn("workers = %d;" % self.WORKERS, text)
        self.srv = start(self, text)
        # warm up every path once, so that the baseline holds what any client costs
        self.assertTrue(udp_binding_ok(self.port))
        self.assertEqual(udp_allocate_ok(self.port), 2)
        self.assertEqual(tcp_binding(self.port), 2)
        self.assertEqual(tls_binding(self.tls_port), 2)
        self.assertTrue(wait_until(lambda: sum(sessions(self.mport).values()) == 0, 3))
        time.sleep(0.2)
        return self.srv

    def sample_sessions(self):
        s = Sampler(lambda: sessions(self.mport), 0.1)
        self.addCleanup(s.stop)
        return s

    def assert_bounded(self, samples, what):
        self.assertTrue(samples, "no /metrics sample")
        for _, s in samples:
            for w, n in stream_per_worker(s).items():
                self.assertLessEqual(n, self.MAX, "%s: worker %s held %d TCP/TLS connections" % (what, w, n))
            for (w, tr), n in s.items():
                if tr == "dtls":
                    self.assertLessEqual(n, self.MAX, "%s: worker %s held %d DTLS sessions" % (what, w, n))

    def test_tcp_connections_that_never_send(self):
        N = 5000
        srv = self.server()
        rss0 = rss(srv.pid)
        sampler = self.sample_sessions()
        watch = StreamWatch()
        self.addCleanup(watch.close)
        failures = []

        def connect(i):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind((src(10, i), 0))
                s.settimeout(5)
                s.connect((SERVER, self.port))
            except OSError as e:
                s.close()
                failures.append((i, e))
                return
            watch.add(s, time.time())

        t0 = time.time()
        parallel(connect, range(N))
        t_conn = time.time() - t0
        time.sleep(1.5)
        plateau = sessions(self.mport)
        held_tcp = kind_total(plateau, "tcp")
        rss1 = rss(srv.pid)
        n_open = watch.n_open()
        figure("tcp_connect_seconds_5000", round(t_conn, 2))
        figure("tcp_held", int(held_tcp))
        per_conn = (rss1 - rss0) / max(1, held_tcp)
        figure("rss_per_idle_tcp_connection_bytes", int(per_conn))

        # Legitimate clients meanwhile: UDP is served; a TCP client is refused
        # at once (the bound is per worker for every TCP/TLS listener, so
        # another listener would not help), and so is a TLS client.
        udp_ok = udp_binding_ok(self.port)
        alloc_ok = udp_allocate_ok(self.port)
        tcp_refused = refused_at_once(lambda: socket.create_connection((SERVER, self.port), timeout=2), 1.0)
        tls_refusals = parallel(lambda i: refused_at_once(
            lambda: tls_connect(self.tls_port, source=(src(11, i), 0)), 1.0), range(100))
        during = sessions(self.mport)

        # The idle timeout releases the rest.
        deadline = t0 + t_conn + self.IDLE + 3
        wait_until(lambda: watch.n_open() == 0, max(0, deadline - time.time()), 0.1)
        released = wait_until(lambda: sum(sessions(self.mport).values()) == 0, 2, 0.1)
        samples = sampler.stop()
        tcp_after = tcp_binding(self.port)
        left_open = watch.n_open()
        closed = list(watch.closed)

        early = [r for r in closed if r["t_eof"] - r["t_conn"] < self.IDLE - 1]
        late = [r for r in closed if r["t_eof"] - r["t_conn"] >= self.IDLE - 1]
        early_max = max((r["t_eof"] - r["t_conn"] for r in early), default=0)
        late_lat = [r["t_eof"] - r["t_conn"] for r in late]
        figure("tcp_excess_closed", len(early))
        figure("tcp_excess_close_max_ms", round(1000 * early_max, 1))
        figure("tcp_idle_close_s_min_max", "%.2f/%.2f" % (min(late_lat, default=0), max(late_lat, default=0)))
        self.assertEqual(failures, [], "connects that failed")
        self.assert_bounded(samples, "5000 TCP connections")
        per_worker = stream_per_worker(plateau)
        self.assertEqual(sorted(per_worker.values()), [self.MAX] * self.WORKERS,
                         "each worker should be full with 5000 connections: %s" % plateau)
        self.assertEqual(n_open, held_tcp, "client sockets still open vs tern_sessions at the plateau")
        self.assertEqual(len(early), N - held_tcp, "excess connections closed at once")
        self.assertLess(early_max, 1.0, "slowest close of an excess connection")
        self.assertTrue(udp_ok, "UDP Binding with the TCP bound full")
        self.assertEqual(alloc_ok, 2, "UDP Allocate with the TCP bound full")
        self.assertIsNotNone(tcp_refused, "TCP client with the bound full neither served nor refused")
        self.assertNotIn(None, tls_refusals, "TLS connections with the bound full left open")
        self.assertLess(max(tls_refusals), 1.0)
        self.assertEqual(kind_total(during, "tls"), 0, during)
        self.assertEqual(left_open, 0, "connections still open %d s after connecting" % (self.IDLE + 3))
        self.assertGreaterEqual(min(late_lat), self.IDLE - 1)
        self.assertLessEqual(max(late_lat), self.IDLE + 3)
        self.assertTrue(released, "tern_sessions not back to 0: %s" % sessions(self.mport))
        self.assertEqual(tcp_after, 2, "TCP Binding once the idle timeout freed the bound")
        if not SANITIZED:
            self.assertLess(per_conn, 16 * KIB, "RSS per idle TCP connection")

    def test_tls_handshakes_left_half_way(self):
        N = 1000
        srv = self.server()
        rss0 = rss(srv.pid)
        sampler = self.sample_sessions()
        rss_sampler = Sampler(lambda: rss(srv.pid), 0.05)
        self.addCleanup(rss_sampler.stop)
        watch = StreamWatch()
        self.addCleanup(watch.close)
        failures = []

        def connect(i):
            hello = tls_client_hello()
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            try:
                s.bind((src(12, i), 0))
                s.settimeout(5)
                s.connect((SERVER, self.tls_port))
                s.sendall(hello)  # and never another byte
            except OSError as e:
                s.close()
                failures.append((i, e))
                return
            watch.add(s, time.time())

        t0 = time.time()
        parallel(connect, range(N))
        t_conn = time.time() - t0
        # the server answered every ClientHello (its flight is the data we see)
        answered = wait_until(lambda: watch.n_answered() >= watch.n_open(), self.HANDSHAKE, 0.02)
        peak_sessions = max((kind_total(s, "tls") for _, s in sampler.values), default=0)
        held_now = kind_total(sessions(self.mport), "tls")
        rss1 = max(v for _, v in rss_sampler.values)
        udp_ok = udp_binding_ok(self.port)
        alloc_ok = udp_allocate_ok(self.port)
        tcp_ok = tcp_binding(self.port)  # below the bound: TCP clients are still served

        deadline = t0 + t_conn + self.HANDSHAKE + 2
        wait_until(lambda: watch.n_open() == 0, max(0, deadline - time.time()), 0.1)
        released = wait_until(lambda: sum(sessions(self.mport).values()) == 0, 1, 0.1)
        samples = sampler.stop()
        rss_sampler.stop()
        tls_after = tls_binding(self.tls_port)
        closed = list(watch.closed)
        lat = [r["t_eof"] - r["t_conn"] for r in closed]
        held = max(peak_sessions, held_now)
        per_conn = (rss1 - rss0) / max(1, held)
        figure("tls_half_handshakes_held", int(held))
        figure("rss_per_half_tls_handshake_bytes", int(per_conn))
        figure("tls_handshake_close_s_min_max", "%.2f/%.2f" % (min(lat, default=0), max(lat, default=0)))
        self.assertEqual(failures, [])
        self.assert_bounded(samples, "1000 TLS handshakes")
        self.assertTrue(answered, "ClientHellos without an answer from ternd")
        self.assertGreaterEqual(held, N * 0.9, "TLS connections held (below the bound, all should be)")
        self.assertTrue(udp_ok)
        self.assertEqual(alloc_ok, 2)
        self.assertEqual(tcp_ok, 2, "TCP Binding while 1000 TLS handshakes hang (below the bound)")
        self.assertEqual(watch.n_open(), 0, "TLS connections open %d s after connecting" % (self.HANDSHAKE + 2))
        self.assertEqual(len(closed), N)
        self.assertGreaterEqual(min(lat), self.HANDSHAKE - 0.5, "closed before the handshake deadline")
        self.assertLessEqual(max(lat), self.HANDSHAKE + 2)
        self.assertTrue(released, "tern_sessions not back to 0: %s" % sessions(self.mport))
        self.assertEqual(tls_after, 2)
        if not SANITIZED:
            self.assertLess(per_conn, 128 * KIB, "RSS per half-done TLS handshake")

    def test_dtls_handshakes_left_half_way(self):
        N_COOKIELESS, N_COOKIE = 1000, 2400  # 2400: beyond the bound of 2 x 1000
        srv = self.server()
        sampler = self.sample_sessions()

        # ClientHellos without a cookie: a HelloVerifyRequest each, no state.
        socks = [udp_from(src(13, i), self.addCleanup) for i in range(N_COOKIELESS)]
        for s in socks:
            s.sendto(dtls_client_hello(), (SERVER, self.tls_port))
        hvr = set()

        def on_hvr(s, data, now):
            if is_hello_verify_request(data):
                hvr.add(s)
            return len(hvr) == len(socks)
        read_all(socks, 2.0, on_hvr)
        cookieless = sampler.stop()
        figure("dtls_cookieless_hello_verify_requests", len(hvr))
        self.assertEqual(len(hvr), N_COOKIELESS, "HelloVerifyRequests for %d ClientHellos" % N_COOKIELESS)
        self.assertEqual(max(kind_total(s, "dtls") for _, s in cookieless), 0,
                         "DTLS sessions for cookieless ClientHellos")
        for s in socks:
            s.close()

        # ClientHellos that echo their cookie, then stop: sessions, bounded.
        rss0 = rss(srv.pid)
        sampler = self.sample_sessions()
        rss_sampler = Sampler(lambda: rss(srv.pid), 0.05)
        self.addCleanup(rss_sampler.stop)
        socks = [udp_from(src(14, i), self.addCleanup) for i in range(N_COOKIE)]
        hellos = {s: dtls_client_hello() for s in socks}
        state = {}  # sock -> "echoed" time, "server_hello" time
        t0 = time.time()
        for s in socks:
            s.sendto(hellos[s], (SERVER, self.tls_port))

        def on_datagram(s, data, now):
            cookie = hvr_cookie(data)
            if cookie is not None and s not in state:
                s.sendto(hello_with_cookie(hellos[s], cookie), (SERVER, self.tls_port))
                state[s] = {"echoed": now, "server_hello": None, "last": None}
            elif s in state and is_server_hello(data):
                st = state[s]
                st["server_hello"] = st["server_hello"] or now
                st["last"] = now
            return False

        read_all(socks, 1.5, on_datagram)
        peak = max((kind_total(s, "dtls") for _, s in sampler.values), default=0)
        plateau = sessions(self.mport)
        rss1 = max(v for _, v in rss_sampler.values)
        udp_ok = udp_binding_ok(self.port)
        alloc_ok = udp_allocate_ok(self.port)
        # A real DTLS client meanwhile: refused while the bound is full, its
        # retransmissions get in once the half-done sessions time out.
        full_client = {}

        def dtls_client():
            t = time.time()
            full_client["result"] = ternc("-t", "dtls", SERVER, str(self.tls_port), timeout=10)
            full_client["seconds"] = time.time() - t
        th = threading.Thread(target=dtls_client, daemon=True)
        th.start()
        self.addCleanup(th.join, 15)

        echoes = [st["echoed"] for st in state.values()]
        deadline = max(echoes) + self.HANDSHAKE + 2
        t_zero = None
        while time.time() < deadline:
            if kind_total(sessions(self.mport), "dtls") == 0:
                t_zero = time.time()
                break
            read_all(socks, 0.1, on_datagram)
        released = t_zero is not None
        samples = sampler.stop()
        rss_sampler.stop()
        late = []  # a freed session sends nothing more (no retransmitted flight)
        read_all(socks, 1.2, lambda s, d, now: late.append(d) and False)
        th.join(15)
        dtls_full, ternc_s = full_client.get("result", (None, {})), full_client.get("seconds", -1)
        dtls_after = ternc("-t", "dtls", SERVER, str(self.tls_port), timeout=10)
        echoed = len(state)
        answered = sum(1 for st in state.values() if st["server_hello"])
        held = int(max(peak, kind_total(plateau, "dtls")))
        per_session = (rss1 - rss0) / max(1, held)
        figure("dtls_cookie_echoed", echoed)
        figure("dtls_sessions_held", held)
        figure("dtls_server_hellos", answered)
        figure("rss_per_half_dtls_session_bytes", int(per_session))
        figure("dtls_cookies_echoed_within_s", round(max(echoes) - min(echoes), 2))
        figure("dtls_sessions_zero_after_last_echo_s", round(t_zero - max(echoes), 2) if t_zero else None)
        figure("dtls_binding_while_full", "%s after %.2f s" % (dtls_full[1].get("class") or "rc=%s" % dtls_full[0],
                                                               ternc_s))
        self.assertEqual(echoed, N_COOKIE, "HelloVerifyRequests for %d ClientHellos" % N_COOKIE)
        self.assert_bounded(samples, "%d DTLS handshakes" % N_COOKIE)
        self.assertEqual(sorted(v for (w, tr), v in plateau.items() if tr == "dtls"), [self.MAX] * self.WORKERS,
                         "each worker should be full: %s" % plateau)
        self.assertEqual(answered, held, "ServerHellos vs sessions: the excess must get none")
        self.assertTrue(udp_ok)
        self.assertEqual(alloc_ok, 2)
        self.assertTrue(released, "DTLS sessions not back to 0 %d s after the last cookie: %s"
                        % (self.HANDSHAKE + 2, sessions(self.mport)))
        self.assertEqual(late, [], "datagrams from DTLS sessions after they were released")
        self.assertEqual(dtls_after[1].get("class"), "success", "a DTLS Binding once the sessions timed out: %s"
                         % (dtls_after,))
        if not SANITIZED:
            self.assertLess(per_session, 128 * KIB, "RSS per half-done DTLS session")


# --- 4. unauthenticated floods ------------------------------------------------

class UnauthenticatedFloods(unittest.TestCase):
    RATE = 10

    def server(self):
        self.port = free_port(hosts=("127.0.0.1", "127.0.3.1"))
        relay, _ = relay_conf(100)
        text = info_level(turn_conf(self.port, relay=relay, limits="unauth_rate = %d;" % self.RATE))
        return start(self, text)

    def flood(self, srv, socks, requests_for, rounds, pause):
        """Each socket sends requests_for(sock) in turn, one a round; answers
        are drained as they come. Returns (answers by source IP, sizes)."""
        sent = {}    # tid -> request length
        got = {}     # source ip -> answers
        oversize, codes = [], {}
        by_fd = {s.fileno(): s for s in socks}

        def drain_all():
            for s in socks:
                for _ in range(1000):
                    try:
                        data = s.recv(2048)
                    except (BlockingIOError, InterruptedError):
                        break
                    ip = s.getsockname()[0]
                    got[ip] = got.get(ip, 0) + 1
                    r = parse(data)
                    req = sent.get(r["tid"])
                    if req is None or len(data) > req + 128:
                        oversize.append((req, len(data)))
                    code = error(r) if A_ERROR in r["attrs"] else r["cls"]
                    codes[code] = codes.get(code, 0) + 1

        for n in range(rounds):
            for s in socks:
                msg = requests_for(s, n)
                sent[msg[8:20]] = len(msg)
                s.sendto(msg, (SERVER, self.port))
            if n % 5 == 4:
                drain_all()
            time.sleep(pause)
        deadline = time.time() + 0.5
        while time.time() < deadline:
            select.select(list(by_fd.values()), [], [], 0.05)
            drain_all()
        return got, oversize, codes, len(sent)

    def test_401_reflection_and_bad_credentials_from_200_sources(self):
        srv = self.server()
        udp0 = udp_socket_count(srv.pid)
        socks = [udp_from("127.0.3.%d" % i, self.addCleanup) for i in range(1, 201)]
        nonces = {}
        t0 = time.time()
        # every source learns its nonce first (one answer of its allowance)
        for s in socks:
            s.setblocking(True)
            s.settimeout(2)
            reply, _ = udp_exchange(SERVER, self.port, unauth_allocate(), sock=s)
            self.assertIsNotNone(reply)
            nonces[s] = parse(reply)["attrs"][A_NONCE][0]
            s.setblocking(False)

        def reflection(s, n):  # 20, 28 and 36 bytes, a new transaction each
            if n % 3 == 0:
                return build(ALLOCATE, [])[0]
            if n % 3 == 1:
                return unauth_allocate()
            return build(ALLOCATE, [attr(A_TRANSPORT, b"\x11\0\0\0")], fingerprint=True)[0]

        def bad_credentials(s, n):
            user = b"alice" if n % 2 else b"mallory"
            attrs = [attr(A_TRANSPORT, b"\x11\0\0\0"), attr(A_USERNAME, user),
                     attr(A_REALM, b"test.example"), attr(A_NONCE, nonces[s])]
            return build(ALLOCATE, attrs, b"wrong key 16 byt")[0]

        got1, over1, codes1, n1 = self.flood(srv, socks, reflection, 60, 0.02)
        got2, over2, codes2, n2 = self.flood(srv, socks, bad_credentials, 60, 0.02)
        elapsed = time.time() - t0
        udp1 = udp_socket_count(srv.pid)
        per_source = {ip: 1 + got1.get(ip, 0) + got2.get(ip, 0) for ip in (s.getsockname()[0] for s in socks)}
        bound = 2 * self.RATE + self.RATE * elapsed
        figure("unauth_requests", n1 + n2 + len(socks))
        figure("unauth_elapsed_s", round(elapsed, 2))
        figure("unauth_answers_per_source_max", max(per_source.values()))
        figure("unauth_answers_per_source_bound", round(bound, 1))
        figure("unauth_answer_codes", {**{"reflection_%s" % k: v for k, v in codes1.items()},
                                       **{"bad_credentials_%s" % k: v for k, v in codes2.items()}})
        figure("unauth_udp_sockets_before_after", "%d/%d" % (udp0, udp1))
        self.assertEqual(over1 + over2, [], "answers more than 128 bytes longer than their request")
        worst = max(per_source.items(), key=lambda kv: kv[1])
        self.assertLessEqual(worst[1], bound, "answers to %s in %.2f s" % (worst[0], elapsed))
        self.assertGreater(sum(got2.values()), 0, "no answer to bad credentials at all: test is void")
        self.assertEqual(set(codes2), {401}, codes2)
        self.assertEqual(udp1, udp0, "ternd's UDP sockets before and after the flood")
        self.assertEqual(udp_allocate_ok(self.port), 2, "a legitimate client after the flood")

    def test_one_source_address_from_many_ports(self):
        # The allowance is per source IP (README): a source that spreads its
        # requests over several ports, and so over both workers, gets no more.
        srv = self.server()
        ips = ["127.0.4.%d" % i for i in range(1, 11)]
        socks = [udp_from(ip, self.addCleanup) for ip in ips for _ in range(8)]
        t0 = time.time()
        got, over, codes, n = self.flood(srv, socks, lambda s, n: unauth_allocate(), 100, 0.02)
        elapsed = time.time() - t0
        bound = 2 * self.RATE + self.RATE * elapsed
        worst = max(got.items(), key=lambda kv: kv[1])
        figure("unauth_one_ip_8_ports_answers_max", worst[1])
        figure("unauth_one_ip_8_ports_bound", round(bound, 1))
        self.assertEqual(over, [])
        self.assertLessEqual(worst[1], bound, "answers to %s (8 source ports) in %.2f s" % (worst[0], elapsed))


# --- 5. memory ceiling --------------------------------------------------------

class MemoryCeiling(unittest.TestCase):
    STREAM_MAX_OUTPUT = 256 * KIB

    def test_streams_with_full_output_buffers(self):
        # N clients send Binding requests round robin, 100 at a time (2 kB of
        # requests, about 5 kB of answers), and never read: every output
        # buffer grows at once, the worst case for the process's memory.
        N = 200
        port, mport = free_port(), free_port(kinds=(socket.SOCK_STREAM,))
        relay, _ = relay_conf(20)
        extra = 'metrics = { ip = "127.0.0.1"; port = %d; };' % mport
        srv = start(self, info_level(turn_conf(port, relay=relay, limits="unauth_rate = 0;", extra=extra)))
        self.assertTrue(udp_binding_ok(port))
        self.assertEqual(tcp_binding(port), 2)
        time.sleep(0.2)
        rss0 = rss(srv.pid)
        socks = []
        for i in range(N):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.addCleanup(s.close)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)   # read nothing, hold little
            s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 65536)
            s.bind((src(20, i), 0))
            s.settimeout(5)
            s.connect((SERVER, port))
            msg, _ = request()
            s.sendall(msg)
            self.assertIsNotNone(recv_frame(s))
            socks.append(s)
        time.sleep(0.3)
        rss_idle = rss(srv.pid)
        overhead = (rss_idle - rss0) / N
        figure("rss_per_tcp_connection_after_one_binding_bytes", int(overhead))
        malformed0 = total(scrape(mport), "tern_dropped_packets_total", reason="malformed")

        rss_sampler = Sampler(lambda: rss(srv.pid), 0.01)
        self.addCleanup(rss_sampler.stop)
        kmem0 = kernel_tcp_memory()
        kmem_sampler = Sampler(kernel_tcp_memory, 0.02)
        self.addCleanup(kmem_sampler.stop)
        rtts = []
        stop = threading.Event()

        def prober():  # a UDP client asks every 100 ms meanwhile
            for _ in range(1000):
                if stop.is_set():
                    break
                t = time.time()
                ok = udp_binding_ok(port, timeout=2)
                rtts.append(time.time() - t if ok else None)
                stop.wait(0.1)

        th = threading.Thread(target=prober, daemon=True)
        th.start()
        self.addCleanup(stop.set)
        chunk = b"".join(request()[0] for _ in range(100))
        for s in socks:
            s.setblocking(False)
        sent = {s: 0 for s in socks}
        pending = {s: b"" for s in socks}  # the rest of a chunk: frames stay whole
        state = {s: "open" for s in socks}
        last = {s: time.time() for s in socks}
        t0 = time.time()
        while time.time() - t0 < 20:
            live = [s for s in socks if state[s] == "open"]
            if not live:
                break
            now = time.time()
            progress = False
            for s in live:
                if not pending[s]:
                    pending[s] = chunk
                try:
                    n = s.send(pending[s])
                except (BlockingIOError, InterruptedError):
                    n = 0
                except OSError:
                    state[s] = "closed"
                    continue
                if n:
                    sent[s] += n
                    pending[s] = pending[s][n:]
                    last[s] = now
                    progress = True
                elif now - last[s] > 2.0:
                    state[s] = "stalled"  # ternd stopped reading it
            if not progress:
                time.sleep(0.01)
        flood_s = time.time() - t0
        time.sleep(0.2)
        stop.set()
        th.join(5)
        peak = max(v for _, v in rss_sampler.stop())
        kmem = max(v for _, v in kmem_sampler.stop()) - kmem0
        hwm = status(srv.pid, "VmHWM")
        growth = max(peak, hwm) - rss_idle
        malformed = total(scrape(mport), "tern_dropped_packets_total", reason="malformed") - malformed0
        counts = {k: list(state.values()).count(k) for k in ("closed", "stalled", "open")}
        bound = N * (self.STREAM_MAX_OUTPUT + max(overhead, 0)) + 16 * MIB
        figure("full_output_clients", N)
        figure("full_output_outcome", counts)
        figure("full_output_flood_s", round(flood_s, 2))
        figure("full_output_kb_sent_per_client_min_max", "%d/%d" % (min(sent.values()) // 1000,
                                                                     max(sent.values()) // 1000))
        figure("full_output_rss_growth_mib", round(growth / MIB, 1))
        figure("full_output_rss_growth_per_client_kib", round(growth / N / KIB, 1))
        figure("full_output_rss_bound_mib", round(bound / MIB, 1))
        figure("full_output_kernel_tcp_memory_growth_mib", round(kmem / MIB, 1))
        ok_rtts = [r for r in rtts if r is not None]
        figure("full_output_udp_binding_rtt_max_ms", round(1000 * max(ok_rtts, default=0), 1))
        self.assertEqual(counts["open"], 0, "clients still read by ternd after 20 s")
        self.assertEqual(malformed, 0, "streams lost their framing: the test is void")
        self.assertTrue(srv.alive())
        self.assertGreater(min(sent.values()), self.STREAM_MAX_OUTPUT // 3,
                           "a client was cut off before its answers could fill 256 KiB")
        self.assertNotIn(None, rtts, "UDP Bindings unanswered during the flood")
        self.assertLess(max(ok_rtts), 1.0)
        self.assertEqual(tcp_binding(port), 2, "TCP Binding after the flood")
        if not SANITIZED:
            self.assertLessEqual(growth, bound, "RSS growth with %d full output buffers" % N)

    MAX, EXTRA = 500, 50

    def bound_server(self, tls_extra):
        """One worker, max_connections = MAX: a fresh process for each kind, so
        that no memory freed by an earlier kind is reused and hides the cost."""
        port, tls_port = free_port(), free_port()
        mport = free_port(kinds=(socket.SOCK_STREAM,))
        relay, _ = relay_conf(20)
        listen = ('{ proto = "udp"; ip = "127.0.0.1"; port = %d; }, { proto = "tcp"; ip = "127.0.0.1"; port = %d; },'
                  '{ proto = "tls"; ip = "127.0.0.1"; port = %d; }, { proto = "dtls"; ip = "127.0.0.1"; port = %d; }'
                  % (port, port, tls_port, tls_port))
        extra = tls_extra + '\nmetrics = { ip = "127.0.0.1"; port = %d; };' % mport
        limits = "max_connections = %d; handshake_timeout = 10; idle_timeout = 60; unauth_rate = 0;" % self.MAX
        text = info_level(turn_conf(port, listen=listen, relay=relay, limits=limits, extra=extra))
        srv = start(self, text.replace("workers = 2;", "workers = 1;"))
        # warm up: one TLS and one DTLS Binding, so the baseline holds the contexts
        self.assertEqual(tls_binding(tls_port), 2)
        self.assertEqual(ternc("-t", "dtls", SERVER, str(tls_port))[1].get("class"), "success")
        self.assertTrue(wait_until(lambda: sum(sessions(mport).values()) == 0, 3))
        time.sleep(0.2)
        return srv, tls_port, mport

    def measure(self, what, kind, fill):
        srv, tls_port, mport = self.bound_server(self.tls_extra)
        r0 = rss(srv.pid)
        sampler = Sampler(lambda: rss(srv.pid), 0.05)
        self.addCleanup(sampler.stop)
        fill(tls_port)
        time.sleep(0.2)
        held = kind_total(sessions(mport), kind)
        peak = max(v for _, v in sampler.stop())
        per = (peak - r0) / max(1, held)
        figure("at_bound_%s_held" % what, int(held))
        figure("rss_per_%s_at_bound_bytes" % what, int(per))
        figure("worst_case_mib_%s_per_worker_at_default_10000" % what, round(per * 10000 / MIB, 1))
        self.assertEqual(held, self.MAX, "%s at the bound" % what)
        self.assertEqual(srv.stop(), 0)
        return per

    def test_tls_and_dtls_sessions_at_the_bound(self):
        self.tls_extra = tls_conf_extra()
        watch = StreamWatch()
        self.addCleanup(watch.close)

        def half_tls(tls_port):  # TLS handshakes left after the ClientHello
            def one(i):
                s = socket.create_connection((SERVER, tls_port), timeout=5, source_address=(src(30, i), 0))
                s.sendall(tls_client_hello())
                watch.add(s, time.time())
            parallel(one, range(self.MAX + self.EXTRA))
            wait_until(lambda: watch.n_answered() >= self.MAX, 3, 0.05)

        tls_socks = []

        def full_tls(tls_port):  # TLS sessions established, then idle
            def one(i):
                try:
                    tls_socks.append(tls_connect(tls_port, source=(src(31, i), 0), timeout=5))
                except (OSError, ssl.SSLError):
                    pass
            parallel(one, range(self.MAX + self.EXTRA))
        self.addCleanup(lambda: [s.close() for s in tls_socks])

        def half_dtls(tls_port):  # DTLS handshakes left after the cookie was echoed
            socks = [udp_from(src(32, i), self.addCleanup) for i in range(self.MAX + self.EXTRA)]
            hellos = {s: dtls_client_hello() for s in socks}
            for s in socks:
                s.sendto(hellos[s], (SERVER, tls_port))
            echoed = set()

            def on(s, data, now):
                cookie = hvr_cookie(data)
                if cookie is not None and s not in echoed:
                    echoed.add(s)
                    s.sendto(hello_with_cookie(hellos[s], cookie), (SERVER, tls_port))
                return False
            read_all(socks, 1.0, on)

        per_half_tls = self.measure("half_tls_handshake", "tls", half_tls)
        per_tls = self.measure("established_tls_session", "tls", full_tls)
        for s in tls_socks:
            s.close()
        self.assertEqual(len(tls_socks), self.MAX, "established TLS sessions (the excess must fail)")
        per_half_dtls = self.measure("half_dtls_session", "dtls", half_dtls)
        if not SANITIZED:
            self.assertLess(per_half_tls, 128 * KIB)
            self.assertLess(per_tls, 128 * KIB)
            self.assertLess(per_half_dtls, 128 * KIB)


# --- 6. signals under load ----------------------------------------------------

BENCH_USERS = 'users = ( { user = "alice"; password = "secret"; }, { user = "bench"; password = "bench-pass"; } )'


def bench_conf(port, relay, extra="", listen=None):
    return info_level(turn_conf(port, relay=relay, limits="unauth_rate = 0;", extra=extra, listen=listen)
                      .replace('users = ( { user = "alice"; password = "secret"; }, '
                               '{ user = "bob"; password = "hunter2"; } )', BENCH_USERS))


def ternbench(test, *args):
    p = subprocess.Popen([TERNBENCH, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def stop():
        if p.poll() is None:
            p.kill()
        p.communicate(timeout=10)
    test.addCleanup(stop)
    return p


def bench_result(p, timeout):
    out, err = p.communicate(timeout=timeout)
    lines = [l for l in out.splitlines() if l.startswith("result ")]
    return (dict(kv.split("=", 1) for kv in lines[-1].split()[1:]) if lines else {}), out + err


class Signals(unittest.TestCase):
    def test_sigterm_under_relay_load(self):
        port = free_port()
        relay, lo = relay_conf(300)
        text = bench_conf(port, relay)
        srv = start(self, text)
        bench = ternbench(self, "relay", SERVER, str(port), "-n", "50", "-b", "200", "-d", "4")
        # and stream clients with allocations and channels
        tcp_clients, peer = [], udp_peer()
        self.addCleanup(peer.close)
        for i in range(4):
            t = Turn(SERVER, port, transport="tcp")
            self.addCleanup(t.close)
            self.assertEqual(t.allocate()["cls"], 2)
            self.assertEqual(t.channel_bind(0x4000 + i, peer.getsockname())["cls"], 2)
            tcp_clients.append(t)
        stop = threading.Event()

        def pump(t, ch):
            for _ in range(200000):
                if stop.is_set():
                    return
                try:
                    t.send_channel(ch, b"x" * 200)
                except OSError:
                    return
        pumps = [threading.Thread(target=pump, args=(t, 0x4000 + i), daemon=True) for i, t in enumerate(tcp_clients)]
        for th in pumps:
            th.start()
        self.addCleanup(stop.set)
        time.sleep(1.5)
        self.assertIsNone(bench.poll(), "ternbench ended early")
        t0 = time.time()
        srv.proc.send_signal(signal.SIGTERM)
        try:
            rc = srv.proc.wait(5)
        except subprocess.TimeoutExpired:
            rc = None
        exit_s = time.time() - t0
        stop.set()
        figure("sigterm_exit_s", round(exit_s, 3))
        result, out = bench_result(bench, 15)
        figure("sigterm_bench_delivered_before", result.get("delivered"))
        self.assertIsNotNone(rc, "ternd still running 5 s after SIGTERM under load")
        self.assertEqual(rc, 0, srv.stderr()[-2000:])
        self.assertLessEqual(exit_s, 2.0)
        self.assertGreater(int(result.get("delivered", 0)), 1000, "relay load before SIGTERM: " + out[-1000:])
        # Nothing of it remains: every relay port binds, and a new ternd takes the same listen ports.
        busy = []
        for p in range(lo, lo + 300):
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind((SERVER, p))
            except OSError:
                busy.append(p)
            finally:
                s.close()
        self.assertEqual(busy, [], "relay ports still bound after ternd exited")
        again = start(self, text)
        self.assertTrue(udp_binding_ok(port))
        self.assertEqual(tcp_binding(port), 2)
        self.assertEqual(again.stop(), 0)

    def test_sighup_during_relay_load_loses_no_packet(self):
        port = free_port()
        relay, _ = relay_conf(100)
        srv = start(self, bench_conf(port, relay, extra=tls_conf_extra()))
        bench = ternbench(self, "relay", SERVER, str(port), "-n", "20", "-r", "20000", "-d", "4")
        time.sleep(0.5)  # ternbench has its allocations
        t = Turn(SERVER, port)
        self.addCleanup(t.close)
        self.assertEqual(t.allocate()["cls"], 2)
        peer = udp_peer()
        self.addCleanup(peer.close)
        peer.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * MIB)
        t.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 * MIB)
        self.assertEqual(t.channel_bind(0x4321, peer.getsockname())["cls"], 2)
        N, RATE = 2000, 1000
        at_peer, at_client = set(), set()

        def peer_reader():
            peer.settimeout(0.5)
            misses = 0
            while len(at_peer) < N and misses < 6:
                try:
                    data, _ = peer.recvfrom(2048)
                except socket.timeout:
                    misses += 1
                    continue
                misses = 0
                at_peer.add(struct.unpack("!I", data[:4])[0])

        def client_reader():
            t.sock.settimeout(0.5)
            misses = 0
            while len(at_client) < N and misses < 6:
                try:
                    data = t.sock.recv(2048)
                except socket.timeout:
                    misses += 1
                    continue
                misses = 0
                if data[0] & 0xC0 == 0x40 and struct.unpack("!H", data[:2])[0] == 0x4321:
                    at_client.add(struct.unpack("!I", data[4:8])[0])

        relay_addr = t.relayed[0]
        readers = [threading.Thread(target=peer_reader, daemon=True),
                   threading.Thread(target=client_reader, daemon=True)]
        for th in readers:
            th.start()
        hups = []

        def hupper():
            time.sleep(0.4)
            for _ in range(5):
                srv.proc.send_signal(signal.SIGHUP)
                hups.append(time.time())
                time.sleep(0.25)
        h = threading.Thread(target=hupper, daemon=True)
        h.start()
        t0 = time.time()
        for i in range(N):  # paced: packet i leaves at t0 + i / RATE, both ways
            delay = t0 + i / RATE - time.time()
            if delay > 0:
                time.sleep(delay)
            payload = struct.pack("!I", i) + b"p" * 96
            t.send_channel(0x4321, payload)
            peer.sendto(payload, relay_addr)
        send_s = time.time() - t0
        h.join(5)
        for th in readers:
            th.join(6)
        result, out = bench_result(bench, 15)
        log = srv.stderr()
        reloads = sum(1 for l in log.splitlines() if " reload: " in l and " applied" in l)
        figure("sighup_count", len(hups))
        figure("sighup_stream_send_s", round(send_s, 2))
        figure("sighup_delivered_to_peer", len(at_peer))
        figure("sighup_delivered_to_client", len(at_client))
        figure("sighup_bench_sent_delivered", "%s/%s" % (result.get("sent"), result.get("delivered")))
        self.assertEqual(len(hups), 5)
        self.assertTrue(all(t0 < x < t0 + send_s for x in hups), "SIGHUPs not within the stream")
        self.assertEqual(reloads, 5, log[-2000:])
        self.assertEqual(sorted(set(range(N)) - at_peer), [], "packets lost towards the peer")
        self.assertEqual(sorted(set(range(N)) - at_client), [], "packets lost towards the client")
        self.assertTrue(srv.alive())
        self.assertEqual(srv.stop(), 0)


if __name__ == "__main__":
    unittest.main()
