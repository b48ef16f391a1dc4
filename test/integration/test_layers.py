"""Regression tests of the issue "server/ in layers": a client that leaves
while its request waits for Redis (over TCP, TLS and DTLS, for a credentials
lookup and for the cross-node quota script), REST credentials signed with a
secret kept in Redis while auth.secrets holds another, and a Redis that
accepts connections but stops answering. A real redis-server runs on a
private loopback port; DEBUG SLEEP makes it slow, SIGSTOP makes it hang."""
import os
import signal
import subprocess
import threading
import time
import unittest

from ternd import Ternd, TERNC, free_port, tls_files, temp_dir
from turnclient import Turn, rest_credentials
from test_turn import error
from test_redis import turnadmin, REALM
from redisfix import RedisServer


def ternc(*args, timeout=10):
    p = subprocess.run([TERNC] + list(args), capture_output=True, text=True, timeout=timeout)
    return p.returncode, dict(l.split("=", 1) for l in p.stdout.split("\n") if "=" in l)


def wait_log(srv, text, count=1, seconds=10.0):
    """Wait until the log holds text count times; return the elapsed time or None."""
    t0 = time.time()
    while time.time() - t0 < seconds:
        if srv.stderr().count(text) >= count:
            return time.time() - t0
        time.sleep(0.05)
    return None


def slow_redis(redis, seconds):
    """Block redis-server for `seconds` from a background thread."""
    th = threading.Thread(target=lambda: redis.cmd("DEBUG", "SLEEP", str(seconds), timeout=10))
    th.start()
    time.sleep(0.05)  # the sleep has begun: whatever ternd asks now waits
    return th


def layers_conf(ports, redis, cert, key, extra="", limits=""):
    listen = ", ".join('{ proto = "%s"; ip = "127.0.0.1"; port = %d; }' % (p, ports[p])
                       for p in ("udp", "tcp", "tls", "dtls"))
    return ('realm = "%s";\nworkers = 1;\nlisten = ( %s );\n'
            'tls = { cert = "%s"; key = "%s"; };\n'
            'relay = { ip = [ "127.0.0.1" ]; };\n'
            'auth = { users = ( { user = "alice"; password = "secret"; } ); redis = "%s"; cache_ttl = 1; %s };\n'
            'limits = { %s };\npeers = { allow_loopback = true; };\nlog = { level = "debug"; };\n'
            % (REALM, listen, cert, key, redis.url(), extra, limits))


class ClientLeavesWhileParked(unittest.TestCase):
    """Defect 1: a request parked on Redis was re-run on the freed connection
    of a client that had left (heap-use-after-free under ASan). Now the
    session cancels its parked requests when it closes."""

    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer().start()
        for t in ("tcp", "tls", "dtls"):
            turnadmin(cls.redis, "-a", "-u", "carol-" + t, "-r", REALM, "-p", "carolpw")
        d = temp_dir()
        cls.cert, cls.key = tls_files(d)

    @classmethod
    def tearDownClass(cls):
        cls.redis.cleanup()

    def start(self, limits=""):
        ports = {"udp": free_port(), "tcp": free_port(), "tls": free_port(), "dtls": free_port()}
        srv = Ternd(layers_conf(ports, self.redis, self.cert, self.key, limits=limits)).__enter__()
        self.addCleanup(srv.stop)
        self.assertIsNotNone(wait_log(srv, "redis: connected", seconds=5), srv.stderr())
        return srv, ports

    def leave_while_parked(self, srv, ports, transport, user, password):
        th = slow_redis(self.redis, 0.4)
        rc, _ = ternc("-t", transport, "--allocate", "%s:%s" % (user, password), "--leave",
                      "127.0.0.1", str(ports[transport]))
        self.assertEqual(rc, 0)
        th.join()
        time.sleep(0.3)  # Redis has answered: the parked request's turn
        self.assertTrue(srv.alive(), srv.stderr()[-3000:])
        # the server goes on serving that user and others
        rc, kv = ternc("-t", transport, "--allocate", "%s:%s" % (user, password), "127.0.0.1",
                       str(ports[transport]))
        self.assertEqual((rc, kv.get("class")), (0, "success"), kv)

    def lookup(self, transport):
        srv, ports = self.start()
        self.leave_while_parked(srv, ports, transport, "carol-" + transport, "carolpw")
        self.assertEqual(srv.stop(), 0, srv.stderr()[-3000:])

    def quota(self, transport):
        # A static user with a user quota: every Allocate asks Redis's script.
        srv, ports = self.start(limits="user_quota = 5;")
        self.leave_while_parked(srv, ports, transport, "alice", "secret")
        # the grant that no allocation consumed was given back; the second
        # allocation ended with its connection
        time.sleep(0.2)
        key = "tern/realm/%s/user/alice/allocations" % REALM
        self.assertEqual(self.redis.cmd("ZCARD", key), 0)
        self.assertEqual(srv.stop(), 0, srv.stderr()[-3000:])

    def test_credentials_lookup_over_tcp(self):
        self.lookup("tcp")

    def test_credentials_lookup_over_tls(self):
        self.lookup("tls")

    def test_credentials_lookup_over_dtls(self):
        self.lookup("dtls")

    def test_quota_script_over_tcp(self):
        self.quota("tcp")

    def test_quota_script_over_tls(self):
        self.quota("tls")

    def test_quota_script_over_dtls(self):
        self.quota("dtls")


class RestSecretsFromBothSources(unittest.TestCase):
    """Defect 2: REST credentials signed with a secret kept in Redis were
    refused when auth.secrets also held one. Keys are tried source by
    source: the configuration first, then Redis."""

    def test_secret_from_either_source_authenticates(self):
        redis = RedisServer().start()
        self.addCleanup(redis.cleanup)
        turnadmin(redis, "-s", "redissecret", "-r", REALM)
        ports = {"udp": free_port(), "tcp": free_port(), "tls": free_port(), "dtls": free_port()}
        cert, key = tls_files(temp_dir())
        conf = layers_conf(ports, redis, cert, key, extra='secrets = [ "configsecret" ];')
        with Ternd(conf) as srv:
            self.assertIsNotNone(wait_log(srv, "redis: connected", seconds=5))
            for secret, name in (("redissecret", "r1"), ("configsecret", "c1"), ("redissecret", "r2")):
                user, pw = rest_credentials(secret, name=name)
                t = Turn("127.0.0.1", ports["udp"], user=user, password=pw, realm=REALM)
                self.addCleanup(t.close)
                r = t.allocate()
                self.assertEqual(r["cls"], 2, (secret, error(r)))
            user, pw = rest_credentials("neither", name="x")
            t = Turn("127.0.0.1", ports["udp"], user=user, password=pw, realm=REALM)
            self.addCleanup(t.close)
            self.assertEqual(error(t.allocate()), 401)
            # a user name that matches no static user is looked up in Redis
            turnadmin(redis, "-a", "-u", "dora", "-r", REALM, "-p", "dorapw")
            t = Turn("127.0.0.1", ports["udp"], user="dora", password="dorapw", realm=REALM)
            self.addCleanup(t.close)
            self.assertEqual(t.allocate()["cls"], 2)


class HungRedis(unittest.TestCase):
    """Defect 3: a Redis that accepts the connection but stops answering
    (SIGSTOP) was never torn down. Now no answer within 3 s means dead: the
    connection is dropped, reconnected with backoff, and the state logged
    once per transition."""

    def test_stopped_redis_is_left_and_rejoined(self):
        redis = RedisServer().start()
        self.addCleanup(redis.cleanup)
        turnadmin(redis, "-a", "-u", "carol", "-r", REALM, "-p", "carolpw")
        ports = {"udp": free_port(), "tcp": free_port(), "tls": free_port(), "dtls": free_port()}
        cert, key = tls_files(temp_dir())
        with Ternd(layers_conf(ports, redis, cert, key)) as srv:
            self.assertIsNotNone(wait_log(srv, "redis: connected", seconds=5))
            os.kill(redis.proc.pid, signal.SIGSTOP)
            stopped = True
            try:
                took = wait_log(srv, "redis: unreachable", seconds=8)
                self.assertIsNotNone(took, "a stopped Redis was never noticed:\n" + srv.stderr()[-2000:])
                self.assertLess(took, 6.0)
                # meanwhile lookups fail fast (500) and static users are served
                t = Turn("127.0.0.1", ports["udp"], user="carol", password="carolpw", realm=REALM, timeout=3)
                self.addCleanup(t.close)
                self.assertEqual(error(t.allocate()), 500)
                a = Turn("127.0.0.1", ports["udp"], realm=REALM)
                self.addCleanup(a.close)
                self.assertEqual(a.allocate()["cls"], 2)
                os.kill(redis.proc.pid, signal.SIGCONT)
                stopped = False
            finally:
                if stopped:
                    os.kill(redis.proc.pid, signal.SIGCONT)
            took = wait_log(srv, "redis: connected", count=2, seconds=12)
            self.assertIsNotNone(took, srv.stderr()[-2000:])
            t2 = Turn("127.0.0.1", ports["udp"], user="carol", password="carolpw", realm=REALM)
            self.addCleanup(t2.close)
            self.assertEqual(t2.allocate()["cls"], 2)
            log = srv.stderr()
            self.assertEqual(log.count("redis: unreachable"), 1, log[-2000:])
            self.assertIn("no answer in 3 s", log)


if __name__ == "__main__":
    unittest.main()
