"""Credentials in Redis (coturn's schema, written by coturn's own turnadmin),
Redis outages, shared quotas and statistics across two ternd nodes, and
300 Try Alternate. A real redis-server runs on a private loopback port."""
import os
import re
import socket
import subprocess
import time
import unittest

from ternd import Ternd, free_port, request, udp_exchange, parse, addr, attr
from turnclient import Turn, rest_credentials, A_ERROR, A_LIFETIME, REFRESH, build
from test_turn import turn_conf, error, udp_peer
from redisfix import RedisServer, Subscriber
from test_realms import metrics_conf, redis_up_everywhere

REALM = "test.example"


def turnadmin(redis, *args):
    cmd = ["timeout", "20", "turnadmin"] + list(args) + ["-N", "ip=127.0.0.1 port=%d dbname=0" % redis.port]
    p = subprocess.run(cmd, capture_output=True, text=True)
    assert p.returncode == 0, p.stdout + p.stderr
    return p


def redis_conf(port, redis, extra="", limits="", cache_ttl=1, listen_host="127.0.0.1"):
    listen = ('{ proto = "udp"; ip = "%s"; port = %d; }, { proto = "tcp"; ip = "%s"; port = %d; }'
              % (listen_host, port, listen_host, port))
    relay = 'relay = { ip = [ "%s" ]; min_port = %%d; max_port = %%d; };' % listen_host
    return turn_conf(port, extra=extra, limits=limits, relay=relay, listen=listen,
                     auth_extra='redis = "%s"; cache_ttl = %d;' % (redis.url(), cache_ttl))


class RedisCredentials(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer().start()
        turnadmin(cls.redis, "-a", "-u", "carol", "-r", REALM, "-p", "carolpw")
        turnadmin(cls.redis, "-s", "redissecret", "-r", REALM)
        cls.redis.cmd("SET", "turn/realm/%s/user/dave/password" % REALM, "davepw")
        cls.port = free_port()
        mconf, mport = metrics_conf()
        cls.srv = Ternd(redis_conf(cls.port, cls.redis, extra=mconf)).__enter__()
        # each worker has its own connection; until it is up, Redis users get 500
        assert redis_up_everywhere(mport)

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        cls.redis.cleanup()

    def alloc(self, user, pw):
        t = Turn("127.0.0.1", self.port, user=user, password=pw)
        self.addCleanup(t.close)
        return t, t.allocate()

    def test_turnadmin_user_allocates(self):
        t, r = self.alloc("carol", "carolpw")
        self.assertEqual(r["cls"], 2, error(r))
        self.assertEqual(error(self.alloc("carol", "wrong")[1]), 401)

    def test_plain_password_user_allocates(self):
        self.assertEqual(self.alloc("dave", "davepw")[1]["cls"], 2)

    def test_turnadmin_secret_gives_rest_credentials(self):
        user, pw = rest_credentials("redissecret", name="erin")
        self.assertEqual(self.alloc(user, pw)[1]["cls"], 2)
        user, pw = rest_credentials("redissecret", ttl=-5)
        self.assertEqual(error(self.alloc(user, pw)[1]), 401)

    def test_static_users_still_work(self):
        self.assertEqual(self.alloc("alice", "secret")[1]["cls"], 2)

    def test_deleted_user_stops_within_cache_ttl(self):
        turnadmin(self.redis, "-a", "-u", "frank", "-r", REALM, "-p", "frankpw")
        self.assertEqual(self.alloc("frank", "frankpw")[1]["cls"], 2)
        self.redis.cmd("DEL", "turn/realm/%s/user/frank/key" % REALM)
        time.sleep(1.5)  # cache_ttl = 1
        self.assertEqual(error(self.alloc("frank", "frankpw")[1]), 401)

    def test_new_user_works_after_negative_cache(self):
        self.assertEqual(error(self.alloc("gina", "ginapw")[1]), 401)
        turnadmin(self.redis, "-a", "-u", "gina", "-r", REALM, "-p", "ginapw")
        time.sleep(1.5)
        self.assertEqual(self.alloc("gina", "ginapw")[1]["cls"], 2)

    def test_username_is_never_a_command(self):
        # a user name full of RESP and spaces is only ever one argument
        evil = "x\r\n*1\r\n$8\r\nFLUSHALL\r\n y"
        self.assertEqual(error(self.alloc(evil, "pw")[1]), 401)
        self.assertIsNotNone(self.redis.cmd("GET", "turn/realm/%s/user/carol/key" % REALM))


class RedisOutage(unittest.TestCase):
    def test_redis_killed_and_restarted(self):
        redis = RedisServer().start()
        self.addCleanup(redis.cleanup)
        turnadmin(redis, "-a", "-u", "carol", "-r", REALM, "-p", "carolpw")
        port = free_port()
        mconf, mport = metrics_conf()
        with Ternd(redis_conf(port, redis, extra=mconf)) as srv:
            # every worker's connection up ("redis: connected" is logged once)
            self.assertTrue(redis_up_everywhere(mport))
            t = Turn("127.0.0.1", port, user="carol", password="carolpw")
            self.addCleanup(t.close)
            self.assertEqual(t.allocate()["cls"], 2)
            peer = udp_peer()
            self.assertEqual(t.channel_bind(0x4001, peer.getsockname())["cls"], 2)
            redis.stop()
            time.sleep(1.5)  # the cached carol expires too
            for i in range(5):  # the allocation keeps relaying
                t.send_channel(0x4001, b"during outage %d" % i)
                self.assertEqual(peer.recvfrom(100)[0], b"during outage %d" % i)
            alice = Turn("127.0.0.1", port)
            self.addCleanup(alice.close)
            self.assertEqual(alice.allocate()["cls"], 2)  # static users still served
            msg, _ = request()
            self.assertIsNotNone(udp_exchange("127.0.0.1", port, msg)[0])  # and Binding
            t2 = Turn("127.0.0.1", port, user="carol", password="carolpw")
            self.addCleanup(t2.close)
            self.assertEqual(error(t2.allocate()), 500)  # unknown without Redis: try again
            redis.start()
            self.assertTrue(redis_up_everywhere(mport))
            t3 = Turn("127.0.0.1", port, user="carol", password="carolpw")
            self.addCleanup(t3.close)
            self.assertEqual(t3.allocate()["cls"], 2)
            self.assertTrue(srv.alive())
            log = srv.stderr()
            self.assertEqual(log.count("redis: unreachable"), 1, log)
            self.assertEqual(log.count("redis: connected"), 2, log)
            peer.close()

    def test_slow_redis_blocks_nobody(self):
        redis = RedisServer().start()
        self.addCleanup(redis.cleanup)
        port = free_port()
        with Ternd(redis_conf(port, redis)) as srv:
            time.sleep(0.3)
            import threading
            th = threading.Thread(target=lambda: redis.cmd("DEBUG", "SLEEP", "2", timeout=10))
            th.start()
            time.sleep(0.2)
            slow = Turn("127.0.0.1", port, user="hank", password="x", timeout=3)
            self.addCleanup(slow.close)
            t0 = time.time()
            slow.request(0x003, [attr(0x0019, b"\x11\0\0\0")])  # parked behind Redis
            waited = time.time() - t0
            t1 = time.time()
            alice = Turn("127.0.0.1", port)
            self.addCleanup(alice.close)
            self.assertEqual(alice.allocate()["cls"], 2)
            msg, _ = request()
            self.assertIsNotNone(udp_exchange("127.0.0.1", port, msg)[0])
            self.assertLess(time.time() - t1, 0.5)
            self.assertLess(waited, 2.5)  # answered (500) within the lookup timeout
            th.join()
            self.assertTrue(srv.alive())


class RedisMetrics(unittest.TestCase):
    def test_redis_state_and_lookups_in_metrics(self):
        import shutil
        import urllib.request
        from test_metrics import parse_metrics, total
        redis = RedisServer().start()
        self.addCleanup(redis.cleanup)
        turnadmin(redis, "-a", "-u", "carol", "-r", REALM, "-p", "carolpw")
        port, mport = free_port(), free_port(kinds=(socket.SOCK_STREAM,))
        extra = 'metrics = { ip = "127.0.0.1"; port = %d; };' % mport
        url = "http://127.0.0.1:%d/metrics" % mport

        def scrape():
            with urllib.request.urlopen(url, timeout=5) as r:
                return r.read().decode()

        def wait_for(name, value):
            for _ in range(50):
                series = parse_metrics(scrape())[0]
                if total(series, name) == value:
                    return series
                time.sleep(0.1)
            self.fail("%s never reached %s" % (name, value))

        with Ternd(redis_conf(port, redis, extra=extra).replace("workers = 2", "workers = 1")):
            wait_for("tern_redis_up", 1)
            t = Turn("127.0.0.1", port, user="carol", password="carolpw")
            self.addCleanup(t.close)
            self.assertEqual(t.allocate()["cls"], 2)
            series = parse_metrics(scrape())[0]
            self.assertGreaterEqual(total(series, "tern_redis_lookups_total"), 1)
            self.assertGreater(wait_for_rtt(scrape, parse_metrics, total), 0)
            text = scrape()
            p = subprocess.run([shutil.which("promtool") or "promtool", "check", "metrics"], input=text,
                               capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            redis.stop()
            wait_for("tern_redis_up", 0)


def wait_for_rtt(scrape, parse_metrics, total):
    for _ in range(40):  # a PING every 2 s
        rtt = total(parse_metrics(scrape())[0], "tern_redis_rtt_seconds")
        if rtt > 0:
            return rtt
        time.sleep(0.1)
    return 0


class TwoNodes(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.redis = RedisServer().start()
        turnadmin(cls.redis, "-a", "-u", "carol", "-r", REALM, "-p", "carolpw")
        turnadmin(cls.redis, "-s", "twonodes", "-r", REALM)
        cls.pa = free_port(hosts=("127.0.0.1", "127.0.0.2"))
        cls.pb = free_port(hosts=("127.0.0.1", "127.0.0.2"))
        extra_a = 'alternate_servers = [ "127.0.0.2:%d" ]; alternate_threshold = 3;' % cls.pb
        cls.a = Ternd(redis_conf(cls.pa, cls.redis, extra=extra_a, limits="user_quota = 1;")).__enter__()
        cls.b = Ternd(redis_conf(cls.pb, cls.redis, limits="user_quota = 1;", listen_host="127.0.0.2")).__enter__()
        time.sleep(0.3)

    @classmethod
    def tearDownClass(cls):
        cls.a.stop()
        cls.b.stop()
        cls.redis.cleanup()

    def test_user_quota_holds_across_nodes(self):
        ta = Turn("127.0.0.1", self.pa, user="carol", password="carolpw")
        tb = Turn("127.0.0.2", self.pb, user="carol", password="carolpw")
        self.addCleanup(ta.close)
        self.addCleanup(tb.close)
        self.assertEqual(ta.allocate()["cls"], 2)
        self.assertEqual(error(tb.allocate()), 486)
        self.assertEqual(ta.refresh(0)["cls"], 2)
        time.sleep(0.2)
        self.assertEqual(tb.allocate()["cls"], 2)
        self.assertEqual(tb.refresh(0)["cls"], 2)

    def test_statistics_published_in_coturn_layout(self):
        sub = Subscriber(self.redis.port, "turn/user/*")
        self.addCleanup(sub.close)
        t = Turn("127.0.0.1", self.pa)
        self.addCleanup(t.close)
        self.assertEqual(t.allocate()["cls"], 2)
        for _ in range(50):  # written asynchronously, after the answer
            keys = self.redis.cmd("KEYS", "turn/user/alice/allocation/*/status")
            if keys:
                break
            time.sleep(0.02)
        self.assertEqual(len(keys), 1)
        self.assertRegex(keys[0], r"^turn/user/alice/allocation/\d{18}/status$")
        self.assertEqual(self.redis.cmd("GET", keys[0]), "new lifetime=600")
        self.assertGreater(self.redis.cmd("TTL", keys[0]), 0)
        self.assertEqual(t.refresh(700)["cls"], 2)
        time.sleep(0.1)
        self.assertEqual(self.redis.cmd("GET", keys[0]), "refreshed lifetime=700")
        self.assertEqual(t.refresh(0)["cls"], 2)
        time.sleep(0.2)
        self.assertIsNone(self.redis.cmd("GET", keys[0]))
        msgs = sub.collect(0.5)
        chans = [c for c, _ in msgs]
        payloads = [m for _, m in msgs]
        self.assertIn("new lifetime=600", payloads)
        self.assertIn("deleted", payloads)
        self.assertTrue(any(c.endswith("/traffic") for c in chans))
        self.assertTrue(any(c.endswith("/total_traffic") and re.match(r"rcvp=\d+, rcvb=\d+, sentp=\d+, sentb=\d+", m)
                            for c, m in msgs))

    def test_try_alternate_moves_the_client(self):
        # user_quota is 1 on these nodes: four different users
        users = [("alice", "secret"), ("bob", "hunter2")] + [rest_credentials("twonodes", name="n%d" % i) for i in range(2)]
        clients = []
        for user, pw in users[:3]:
            t = Turn("127.0.0.1", self.pa, user=user, password=pw)
            self.addCleanup(t.close)
            clients.append(t)
            r = t.allocate()
            self.assertEqual(r["cls"], 2, (user, error(r)))
        t = Turn("127.0.0.1", self.pa, user=users[3][0], password=users[3][1])
        self.addCleanup(t.close)
        r = t.allocate()
        self.assertEqual(error(r), 300)
        alt = addr(r["attrs"][0x8023][0])
        self.assertEqual(alt, ("127.0.0.2", self.pb))
        moved = Turn(alt[0], alt[1], user=users[3][0], password=users[3][1])
        self.addCleanup(moved.close)
        self.assertEqual(moved.allocate()["cls"], 2)
        for c in clients + [moved]:
            c.refresh(0)

    def test_realm_limits_from_redis(self):
        self.redis.cmd("SET", "turn/realm/%s/max-bps" % REALM, "5000")
        time.sleep(1.5)  # polled every cache_ttl
        t = Turn("127.0.0.1", self.pa)
        self.addCleanup(t.close)
        t.allocate()
        p = udp_peer()
        p.settimeout(0.5)
        t.channel_bind(0x4001, p.getsockname())
        for _ in range(100):
            t.send_channel(0x4001, b"y" * 500)
        got = 0
        try:
            while True:
                p.recvfrom(1000)
                got += 1
        except socket.timeout:
            pass
        self.redis.cmd("DEL", "turn/realm/%s/max-bps" % REALM)
        self.assertLess(got, 40)  # 50 KB offered, ~5 KB/s (+1 s burst) allowed
        t.refresh(0)
        p.close()


if __name__ == "__main__":
    unittest.main()
