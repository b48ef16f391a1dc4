"""Regression tests for the issue "Defects found in a review", items 1, 2, 3
and 5: each test fails on the code before the fixes and passes after.

1. A DTLS ClientHello made a session before any cookie check.
2. Copies of an Allocate parked on Redis each took a cross-node quota slot.
3. One reply from Redis that nobody asked for aborted ternd.
5. Unauthenticated answers: the per-source bucket reset on a table collision,
   answers were not held to the +128 byte bound, no per-node budget.
"""
import os
import select
import socket
import struct
import threading
import time
import unittest
import urllib.request

from ternd import Ternd, conf, free_port, tls_files, temp_dir, request, parse, recv_frame, udp_exchange, attr, error_code
from turnclient import Turn, build, ALLOCATE, A_TRANSPORT, A_NONCE
from test_turn import turn_conf, error
from test_redis import redis_conf, REALM
from test_binding import ternc
from test_metrics import parse_metrics, total
from redisfix import RedisServer

SERVER = "127.0.0.1"


def one_worker(text):
    return text.replace("workers = 2", "workers = 1")


def unauth_allocate():
    """An Allocate with only REQUESTED-TRANSPORT (UDP): 28 bytes, answered 401."""
    return build(ALLOCATE, [attr(A_TRANSPORT, b"\x11\0\0\0")])[0]


def drain(sock):
    """Read every datagram waiting on a non-blocking socket; how many."""
    n = 0
    for _ in range(100000):
        try:
            sock.recv(2048)
        except (BlockingIOError, InterruptedError):
            break
        n += 1
    return n


def udp_from(ip, cleanup):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    cleanup(s.close)
    s.bind((ip, 0))
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    s.setblocking(False)
    return s


# --- review item 1: DTLS ------------------------------------------------------

def dtls_client_hello():
    """A DTLS 1.2 ClientHello without a cookie, in one record, one fragment."""
    suites = struct.pack("!HHH", 0xC02F, 0xC02B, 0x009E)
    groups = struct.pack("!HHH", 4, 0x0017, 0x001D)  # secp256r1, x25519
    sigalgs = struct.pack("!HHHH", 6, 0x0403, 0x0804, 0x0401)
    ext = (struct.pack("!HH", 10, len(groups)) + groups +             # supported_groups
           struct.pack("!HHBB", 11, 2, 1, 0) +                         # ec_point_formats: uncompressed
           struct.pack("!HH", 13, len(sigalgs)) + sigalgs)             # signature_algorithms
    body = (b"\xfe\xfd" + os.urandom(32) + b"\x00" +                  # version, random, session id
            b"\x00" +                                                  # cookie: empty
            struct.pack("!H", len(suites)) + suites + b"\x01\x00" +   # suites, null compression
            struct.pack("!H", len(ext)) + ext)
    n = len(body).to_bytes(3, "big")
    hs = b"\x01" + n + struct.pack("!H", 0) + b"\0\0\0" + n + body    # ClientHello, seq 0, whole
    return struct.pack("!BHH", 22, 0xFEFD, 0) + b"\0" * 6 + struct.pack("!H", len(hs)) + hs


def is_hello_verify_request(data):
    return data is not None and len(data) > 13 and data[0] == 22 and data[13] == 3


def tcp_binding(port):
    """Class of the answer to a Binding over TCP, or None (reset, closed, silent)."""
    try:
        s = socket.create_connection((SERVER, port), timeout=2)
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


class DtlsClientHelloHoldsNothing(unittest.TestCase):
    """Review item 1: every ClientHello without a cookie made a session, up to
    limits.max_connections, so a few spoofed datagrams locked out every later
    DTLS client and, the bound being shared, every TCP/TLS client too."""

    def test_cookieless_client_hellos_each_get_hello_verify_and_take_no_slot(self):
        cert, key = tls_files(temp_dir())
        port, tcp_port = free_port(), free_port()
        listen = ('{ proto = "dtls"; ip = "127.0.0.1"; port = %d; }, '
                  '{ proto = "tcp"; ip = "127.0.0.1"; port = %d; }' % (port, tcp_port))
        extra = ('tls = { cert = "%s"; key = "%s"; };\n'
                 'limits = { max_connections = 8; handshake_timeout = 30; };' % (cert, key))
        with Ternd(one_worker(conf(port, extra, listen=listen))) as srv:
            socks = [udp_from(SERVER, self.addCleanup) for _ in range(20)]
            for s in socks:  # 20 clients (source ports), each one ClientHello
                s.sendto(dtls_client_hello(), (SERVER, port))
            answers = {}
            deadline = time.time() + 2
            while len(answers) < len(socks) and time.time() < deadline:
                ready, _, _ = select.select([s for s in socks if s not in answers], [], [], 0.1)
                for s in ready:
                    answers[s] = s.recv(4096)
            hvr = sum(1 for s in socks if is_hello_verify_request(answers.get(s)))
            tcp = tcp_binding(tcp_port)
            rc, kv = ternc("-t", "dtls", SERVER, str(port))
            self.assertTrue(srv.alive())
            log = srv.stderr()
        self.assertEqual(hvr, 20, "HelloVerifyRequests for 20 ClientHellos\n" + log[-2000:])
        self.assertEqual(tcp, 2, "TCP Binding after the ClientHellos\n" + log[-2000:])
        self.assertEqual((rc, kv.get("class")), (0, "success"), kv)


# --- review item 2: user quota ------------------------------------------------

class DuplicateAllocateTakesOneQuotaSlot(unittest.TestCase):
    """Review item 2: each retransmission of an Allocate that arrived while the
    first copy waited for the quota script in Redis ran the script again,
    adding a member to the user's sorted set; only one was ever removed, so
    the user hit 486 with fewer allocations than limits.user_quota."""

    def test_retransmitted_allocate_parked_on_redis_does_count_once(self):
        redis = RedisServer().start()
        self.addCleanup(redis.cleanup)
        port = free_port()
        zset = "tern/realm/%s/user/alice/allocations" % REALM
        with Ternd(redis_conf(port, redis, limits="user_quota = 3;")) as srv:
            for _ in range(50):
                if "redis: connected" in srv.stderr():
                    break
                time.sleep(0.1)
            t = Turn(SERVER, port)  # alice, a static user: only the quota asks Redis
            self.addCleanup(t.close)
            msg0, tid0 = build(ALLOCATE, [attr(A_TRANSPORT, b"\x11\0\0\0")])
            first = t.exchange(msg0, tid0)
            self.assertEqual(error(first), 401)
            t.nonce = first["attrs"][A_NONCE][0]
            msg, tid = build(ALLOCATE, [attr(A_TRANSPORT, b"\x11\0\0\0")] + t.auth_attrs(), t.key)

            sleeper = threading.Thread(target=lambda: redis.cmd("DEBUG", "SLEEP", "0.8", timeout=10))
            sleeper.start()
            self.addCleanup(sleeper.join, 10)
            time.sleep(0.15)  # Redis is asleep now
            sent_at = time.time()
            for _ in range(3):  # the same request, three times, from the same 5-tuple
                t.send_raw(msg)
                time.sleep(0.1)
            answers, first_at = [], None
            t.sock.settimeout(0.1)
            deadline = time.time() + 2.5
            while time.time() < deadline:
                try:
                    data = t.recv_raw()
                except socket.timeout:
                    continue
                if data[8:20] == tid:
                    first_at = first_at or time.time()
                    answers.append(data)
            sleeper.join(10)
            card = redis.cmd("ZCARD", zset)
            more = []
            for _ in range(2):  # two more 5-tuples of alice: within user_quota = 3
                u = Turn(SERVER, port)
                self.addCleanup(u.close)
                r = u.allocate()
                more.append(r["cls"] if r and r["cls"] == 2 else error(r))
            log = srv.stderr()
        self.assertTrue(answers, "no answer to the Allocate\n" + log[-2000:])
        self.assertGreater(first_at - sent_at, 0.2, "the Allocate did not wait for Redis: test is void")
        self.assertEqual({parse(a)["cls"] for a in answers}, {2}, [error(parse(a)) for a in answers])
        self.assertEqual(len(set(answers)), 1, "retransmissions got different answers")
        self.assertEqual(card, 1, "members of %s after one allocation" % zset)
        self.assertEqual(more, [2, 2], "two more allocations of alice (user_quota = 3)\n" + log[-2000:])


# --- review item 3: unsolicited Redis reply -----------------------------------

def parse_command(buf):
    """One RESP array of bulk strings from the front of buf: (args, rest) or (None, buf)."""
    if not buf.startswith(b"*"):
        return None, buf
    i = buf.find(b"\r\n")
    if i < 0:
        return None, buf
    pos, args = i + 2, []
    for _ in range(int(buf[1:i])):
        j = buf.find(b"\r\n", pos)
        if j < 0:
            return None, buf
        n = int(buf[pos + 1:j])
        pos = j + 2
        if len(buf) < pos + n + 2:
            return None, buf
        args.append(buf[pos:pos + n])
        pos += n + 2
    return args, buf[pos:]


class FakeRedis:
    """A Redis that answers PING +PONG, GET $-1, SMEMBERS *0, EVAL :1, the rest
    +OK; on its first connection, right after the first PONG, one more +OK
    that nobody asked for."""

    ANSWERS = {b"PING": b"+PONG\r\n", b"GET": b"$-1\r\n", b"SMEMBERS": b"*0\r\n", b"EVAL": b":1\r\n"}

    def __init__(self):
        self.listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.listener.bind((SERVER, 0))
        self.listener.listen(16)
        self.listener.settimeout(0.1)
        self.port = self.listener.getsockname()[1]
        self.connections = []  # (time accepted, socket)
        self.commands = []     # (connection number, args)
        self.stopping = False
        self.threads = [threading.Thread(target=self.accept_loop, daemon=True)]
        self.threads[0].start()

    def accept_loop(self):
        while not self.stopping:
            try:
                c, _ = self.listener.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            if len(self.connections) >= 50:  # bound: a reconnect loop gets no more
                c.close()
                continue
            self.connections.append((time.time(), c))
            th = threading.Thread(target=self.serve, args=(c, len(self.connections)), daemon=True)
            self.threads.append(th)
            th.start()

    def serve(self, c, number):
        c.settimeout(0.1)
        buf, extra_sent = b"", False
        while not self.stopping:
            try:
                data = c.recv(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            if not data:
                return
            buf += data
            out = b""
            while True:
                args, buf = parse_command(buf)
                if args is None:
                    break
                self.commands.append((number, args))
                name = args[0].upper()
                out += self.ANSWERS.get(name, b"+OK\r\n")
                if name == b"PING" and number == 1 and not extra_sent:
                    out += b"+OK\r\n"  # the reply nobody asked for
                    extra_sent = True
            try:
                c.sendall(out)
            except OSError:
                return

    def close(self):
        self.stopping = True
        self.listener.close()
        for th in self.threads:
            th.join(2)
        for _, c in self.connections:
            c.close()


class UnsolicitedRedisReply(unittest.TestCase):
    """Review item 3: hiredis's async layer asserts on a reply that matches no
    command, so one stray reply (a buggy proxy, a desynchronised stream)
    killed ternd with SIGABRT."""

    def test_reply_nobody_asked_for_does_drop_connection_and_reconnect(self):
        fake = FakeRedis()
        self.addCleanup(fake.close)
        port = free_port()
        extra = ('auth = { users = ( { user = "alice"; password = "secret"; } ); '
                 'redis = "redis://127.0.0.1:%d/0"; };' % fake.port)
        with Ternd(one_worker(conf(port, extra))) as srv:
            deadline = time.time() + 8
            while time.time() < deadline and srv.alive():
                log = srv.stderr()
                tail = log.split("a reply nobody asked for", 1)
                if len(fake.connections) >= 2 and len(tail) == 2 and "redis: connected" in tail[1]:
                    break
                time.sleep(0.1)
            alive, rc, log = srv.alive(), srv.proc.poll(), srv.stderr()
            binding = udp_exchange(SERVER, port, request()[0])[0] if alive else None
        self.assertTrue(alive, "ternd died (exit %s) after an unsolicited Redis reply:\n%s" % (rc, log[-2000:]))
        lines = log.splitlines()
        drop = [i for i, l in enumerate(lines) if "redis: unreachable" in l and "a reply nobody asked for" in l]
        self.assertTrue(drop, log)
        self.assertTrue(any("redis: connected" in l for l in lines[drop[0] + 1:]), log)
        times = [t for t, _ in fake.connections]
        self.assertGreaterEqual(len(times), 2, "no reconnection")
        self.assertLess(times[1] - times[0], 3.0)
        self.assertIsNotNone(binding)


# --- review item 5: unauthenticated answers -----------------------------------

def fnv_slot(ip):
    """The rate-limit slot of an IPv4 source in the code before the fix:
    FNV-1a over the 4 address bytes, | 1, modulo 4096 slots."""
    h = 2166136261
    for b in socket.inet_aton(ip):
        h = ((h ^ b) * 16777619) & 0xFFFFFFFF
    return (h | 1) % 4096


class UnauthenticatedAnswerBounds(unittest.TestCase):
    """Review item 5: answers to unauthenticated TURN requests."""

    def test_colliding_source_does_not_refill_victims_bucket(self):
        # A source whose hash differed from the slot's got a full bucket, so
        # two sources in one slot (interleaved) each got unlimited answers.
        victim = "127.0.0.1"
        other = next(ip for ip in ("127.0.%d.%d" % (b, c) for b in range(256) for c in range(1, 255))
                     if ip != victim and fnv_slot(ip) == fnv_slot(victim))
        port = free_port()
        with Ternd(one_worker(turn_conf(port, limits="unauth_rate = 50;"))):
            v, a = udp_from(victim, self.addCleanup), udp_from(other, self.addCleanup)
            got_v = got_a = 0
            start = time.time()
            for i in range(1000):
                v.sendto(unauth_allocate(), (SERVER, port))
                a.sendto(unauth_allocate(), (SERVER, port))
                if i % 20 == 19:
                    got_v, got_a = got_v + drain(v), got_a + drain(a)
            deadline = time.time() + 0.5
            while time.time() < deadline:
                select.select([v, a], [], [], 0.05)
                got_v, got_a = got_v + drain(v), got_a + drain(a)
            elapsed = time.time() - start
        bound = 50 * 2 + 50 * elapsed  # burst + rate * elapsed
        self.assertGreater(got_v, 0)
        self.assertLess(got_v, 250, "answers to %s interleaved with %s" % (victim, other))
        self.assertLessEqual(got_v, bound, "elapsed %.2f s" % elapsed)
        self.assertLessEqual(got_a, bound)

    def test_unauthenticated_answers_does_stay_within_128_bytes_of_request(self):
        # SOFTWARE was always added, so a long one made 401s (and other
        # unauthenticated errors) more than 128 bytes longer than the request.
        port = free_port()
        text = turn_conf(port).replace('software = "ternd-test"', 'software = "%s"' % ("S" * 100))
        requests = {
            "Allocate, no credentials": unauth_allocate(),
            "Allocate, no credentials, FINGERPRINT": build(ALLOCATE, [attr(A_TRANSPORT, b"\x11\0\0\0")],
                                                           fingerprint=True)[0],
            "Refresh, empty": build(4, [])[0],
            "Allocate, unknown required attribute": build(ALLOCATE, [attr(0x0033, b"abcd")])[0],
            "unknown method 0x00F": request(method=0x00F)[0],
        }
        with Ternd(text):
            sizes = {}
            for name, msg in requests.items():
                reply = udp_exchange(SERVER, port, msg)[0]
                sizes[name] = (len(msg), len(reply) if reply is not None else None)
        for name, (req, ans) in sizes.items():
            with self.subTest(name):
                self.assertIsNotNone(ans, "no answer")
                self.assertLessEqual(ans, req + 128, "%d-byte answer to a %d-byte request" % (ans, req))

    def test_longest_realm_still_challenges_within_the_bound(self):
        # The bound leaves room for a realm of 52 characters (conf refuses
        # longer ones): the smallest request gets its 401, and a client
        # allocates.
        realm = "r" * 40 + ".example.org"
        self.assertEqual(len(realm), 52)
        port = free_port()
        with Ternd(turn_conf(port).replace('realm = "test.example"', 'realm = "%s"' % realm)):
            bare = build(ALLOCATE, [])[0]  # 20 bytes, the smallest request
            reply = udp_exchange(SERVER, port, bare)[0]
            self.assertIsNotNone(reply)
            self.assertEqual(error_code(parse(reply)["attrs"][0x0009][0]), 401)
            self.assertLessEqual(len(reply), len(bare) + 128)
            t = Turn(SERVER, port, realm=realm)
            self.addCleanup(t.close)
            self.assertEqual(t.allocate()["cls"], 2)

    def test_global_budget_does_cap_answers_from_many_sources(self):
        # With no per-node budget, spoofed requests spread over many source
        # addresses got an answer each, whatever unauth_rate said.
        port, mport = free_port(), free_port(kinds=(socket.SOCK_STREAM,))
        limits = "unauth_rate = 100000; unauth_global_rate = 200; unauth_global_bps = 1000000;"
        extra = 'metrics = { ip = "127.0.0.1"; port = %d; };' % mport
        try:
            srv = Ternd(one_worker(turn_conf(port, limits=limits, extra=extra))).__enter__()
        except RuntimeError as e:
            self.fail("ternd refused limits.unauth_global_rate/_bps: %s" % e)
        self.addCleanup(srv.stop)
        socks = [udp_from("127.0.1.%d" % i, self.addCleanup) for i in range(1, 101)]
        got = 0
        start = time.time()
        for i in range(2000):  # 20 rounds of one request from each of 100 sources, ~1 s
            socks[i % 100].sendto(unauth_allocate(), (SERVER, port))
            if i % 100 == 99:
                got += sum(drain(s) for s in socks)
                time.sleep(0.04)
        deadline = time.time() + 0.3
        while time.time() < deadline:
            select.select(socks, [], [], 0.05)
            got += sum(drain(s) for s in socks)
        elapsed = time.time() - start
        with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport, timeout=5) as r:
            series = parse_metrics(r.read().decode())[0]
        self.assertGreater(got, 0)
        self.assertLessEqual(got, 200 * (elapsed + 1) + 20, "answers in %.2f s" % elapsed)
        self.assertGreater(total(series, "tern_dropped_packets_total", reason="unauth_budget"), 0)


if __name__ == "__main__":
    unittest.main()
