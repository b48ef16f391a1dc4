"""ternctl (client/ternctl.c, ternctl(8)) against a running ternd over its
control socket: status, sessions, kill, reload, loglevel, drain and undrain,
with their errors; and offline: TURN REST credentials that ternd accepts, and
users and secrets in Redis that coturn's turnadmin and ternctl both read and
write (a real redis-server on a private loopback port)."""
import base64
import glob
import hashlib
import hmac
import json
import os
import re
import shutil
import socket
import stat
import struct
import subprocess
import time
import unittest
import urllib.error
import urllib.request

from ternd import ROOT, BUILD, Ternd, free_port, request, udp_exchange, parse, addr, attr, temp_dir, wait_closed
from turnclient import Turn, build, long_term_key, ALLOCATE, A_TRANSPORT, A_PWALGS, A_PWALG
from test_turn import turn_conf, error, udp_peer
from redisfix import RedisServer

TERNCTL = os.path.join(ROOT, BUILD, "ternctl")
REALM = "test.example"
RELAY_ONE_IP = 'relay = { ip = [ "127.0.0.1" ]; min_port = %d; max_port = %d; };'


def ternctl(*args, sock=None, stdin=None, prefix=()):
    cmd = list(prefix) + [TERNCTL] + (["-s", sock] if sock else []) + list(args)
    return subprocess.run(cmd, capture_output=True, text=True, input=stdin, timeout=30)


def control_conf(port, sock, extra="", **kw):
    return turn_conf(port, relay=RELAY_ONE_IP,
                     extra='control = { path = "%s"; mode = 0600; };\n%s' % (sock, extra), **kw)


def control_dir():
    """A directory others may cross, so that only the socket's own mode keeps them out."""
    d = temp_dir("ternctl-test-")
    os.chmod(d, 0o755)
    return d


def health(mport):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d/health" % mport, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def client_addr(t):
    """The client's address as ternd sees it (a UDP socket is bound to the wildcard)."""
    host, port = t.sock.getsockname()[:2]
    return "%s:%d" % ("127.0.0.1" if host == "0.0.0.0" else host, port)


class CtlCase(unittest.TestCase):
    def ok(self, *args, sock=None, stdin=None):
        p = ternctl(*args, sock=sock or getattr(self, "sock", None), stdin=stdin)
        self.assertEqual(p.returncode, 0, "%s: %s" % (args, p.stderr))
        self.assertEqual(p.stderr, "")
        return p.stdout

    def fails(self, *args, code=1, sock=None, prefix=()):
        """The command's one error line (exit status code, nothing on stdout)."""
        p = ternctl(*args, sock=sock or getattr(self, "sock", None), prefix=prefix)
        self.assertEqual(p.returncode, code, "%s: %r %r" % (args, p.stdout, p.stderr))
        self.assertEqual(p.stdout, "")
        lines = p.stderr.splitlines()
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertTrue(lines[0].startswith("ternctl: "), lines[0])
        return lines[0]

    def client(self, **kw):
        t = Turn("127.0.0.1", self.port, **kw)
        self.addCleanup(t.close)
        return t


class ControlSocket(CtlCase):
    @classmethod
    def setUpClass(cls):
        cls.port = free_port()
        cls.sock = os.path.join(control_dir(), "ternd.sock")
        cls.srv = Ternd(control_conf(cls.port, cls.sock)).__enter__()
        cls.conf_text = open(cls.srv.conf).read()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def sessions_of(self, t, *filters):
        mine = client_addr(t)
        return [s for s in json.loads(self.ok("sessions", "--json", *filters))["sessions"]
                if s["client"] == mine]

    def test_status_text_and_json(self):
        t = self.client(transport="tcp")
        self.assertEqual(t.allocate()["cls"], 2)
        st = json.loads(self.ok("status", "--json"))
        self.assertEqual(set(st), {"version", "uptime_s", "workers", "allocations", "sessions",
                                   "relay_ports", "redis", "offload", "draining"})
        self.assertEqual(st["version"], self.ok("--version").split()[1])
        self.assertEqual(st["workers"], 2)
        self.assertGreaterEqual(st["allocations"], 1)
        self.assertEqual(set(st["sessions"]), {"tcp", "tls", "dtls"})
        self.assertGreaterEqual(st["sessions"]["tcp"], 1)
        self.assertEqual(st["relay_ports"]["in_use"] + st["relay_ports"]["free"], 200)
        self.assertGreaterEqual(st["relay_ports"]["in_use"], 1)
        self.assertEqual(st["redis"], {"state": "off", "rtt_ms": None})
        self.assertIs(st["draining"], False)
        self.assertEqual(st["offload"], {"interfaces": 0, "channels": 0})  # loopback: auto stays off
        text = self.ok("status")
        self.assertRegex(text, r"(?m)^version +%s$" % re.escape(st["version"]))
        self.assertRegex(text, r"(?m)^workers +2$")
        self.assertRegex(text, r"(?m)^offload +off$")
        self.assertRegex(text, r"(?m)^draining +no$")
        # --json may come first, before the command
        self.assertEqual(json.loads(self.ok("--json", "status"))["workers"], 2)

    def test_sessions_show_allocation_and_count_bytes(self):
        t = self.client()
        self.assertEqual(t.allocate()["cls"], 2)
        peer = udp_peer()
        self.addCleanup(peer.close)
        self.assertEqual(t.channel_bind(0x4001, peer.getsockname())["cls"], 2)
        for i in range(3):
            t.send_channel(0x4001, b"p" * 100)
            data, relay = peer.recvfrom(2000)
            self.assertEqual(len(data), 100)
        for i in range(2):
            peer.sendto(b"c" * 50, relay)
            self.assertEqual(t.recv_data()[2], b"c" * 50)
        [s] = self.sessions_of(t)
        self.assertEqual(set(s), {"id", "user", "realm", "client", "transport", "relay", "age_s",
                                  "lifetime_left_s", "permissions", "channels", "bytes_to_peer",
                                  "bytes_to_client", "packets_to_peer", "packets_to_client"})
        self.assertEqual((s["user"], s["realm"], s["transport"]), ("alice", REALM, "udp"))
        self.assertEqual(s["relay"], ["%s:%d" % t.relayed[0]])
        self.assertTrue(0 < s["lifetime_left_s"] <= 600, s)
        self.assertGreaterEqual(s["age_s"], 0)
        self.assertEqual((s["permissions"], s["channels"]), (1, 1))
        self.assertEqual((s["bytes_to_peer"], s["packets_to_peer"]), (300, 3))
        self.assertEqual((s["bytes_to_client"], s["packets_to_client"]), (100, 2))
        # the filters
        self.assertEqual(len(self.sessions_of(t, "--user", "alice")), 1)
        self.assertEqual(self.sessions_of(t, "--user", "bob"), [])
        self.assertEqual(len(self.sessions_of(t, "--realm", REALM)), 1)
        self.assertEqual(self.sessions_of(t, "--realm", "other.example"), [])
        # the table for people: a header, then one line per allocation
        lines = self.ok("sessions", "--user", "alice").splitlines()
        self.assertTrue(lines[0].startswith("ID"), lines[0])
        [line] = [l for l in lines if l.startswith(s["id"])]
        self.assertEqual(line.split()[1:4], ["alice", client_addr(t), "udp"])
        self.assertEqual(t.refresh(0)["cls"], 2)
        self.assertEqual(self.sessions_of(t), [])

    def test_kill_id_ends_udp_allocation(self):
        t = self.client()
        self.assertEqual(t.allocate()["cls"], 2)
        [s] = self.sessions_of(t)
        self.assertEqual(self.ok("kill", s["id"]), "killed 1\n")
        self.assertEqual(self.sessions_of(t), [])
        self.assertEqual(error(t.refresh(600)), 437)

    def test_kill_id_closes_tcp_connection(self):
        t = self.client(transport="tcp")
        self.assertEqual(t.allocate()["cls"], 2)
        [s] = self.sessions_of(t)
        self.assertEqual(json.loads(self.ok("kill", s["id"], "--json")), {"killed": 1})
        self.assertTrue(wait_closed(t.sock, 3))

    def test_kill_user_ends_all_of_theirs(self):
        bobs = [self.client(user="bob", password="hunter2") for _ in range(2)]
        alice = self.client()
        for t in bobs + [alice]:
            self.assertEqual(t.allocate()["cls"], 2)
        self.assertEqual(self.ok("kill", "--user", "bob"), "killed 2\n")
        for t in bobs:
            self.assertEqual(error(t.refresh(600)), 437)
        self.assertEqual(alice.refresh(0)["cls"], 2)  # not hers
        self.assertEqual(self.ok("kill", "--user", "bob"), "killed 0\n")

    def test_kill_unknown_id_is_one_error_line(self):
        self.assertEqual(self.fails("kill", "123456789"), "ternctl: no session 000000000123456789")
        self.assertEqual(self.fails("kill", "123456789", "--json"),
                         "ternctl: no session 000000000123456789")

    def test_loglevel(self):
        self.addCleanup(ternctl, "loglevel", "debug", sock=self.sock)
        self.assertEqual(self.ok("loglevel", "error"), "log level error\n")
        mark = len(self.srv.stderr())
        t = self.client()
        self.assertEqual(t.allocate()["cls"], 2)
        self.assertEqual(t.refresh(0)["cls"], 2)
        quiet = self.srv.stderr()[mark:]
        self.assertNotRegex(quiet, r"(?m)^\S+ (info|debug) ", quiet)
        self.assertEqual(json.loads(self.ok("loglevel", "debug", "--json")), {"loglevel": "debug"})
        self.assertIn("log level now debug (ternctl)", self.srv.stderr())
        self.assertIn("one of error, warn, info, debug", self.fails("loglevel", "loud"))

    def test_reload_applies_and_refuses_a_broken_file(self):
        def restore():
            with open(self.srv.conf, "w") as f:
                f.write(self.conf_text)
            ternctl("reload", sock=self.sock)
        self.addCleanup(restore)
        with open(self.srv.conf, "w") as f:
            f.write(self.conf_text.replace('{ user = "bob"', '{ user = "zed"; password = "zedpw"; }, { user = "bob"'))
        self.assertIn("applied", self.ok("reload"))
        self.assertEqual(self.client(user="zed", password="zedpw").allocate()["cls"], 2)
        with open(self.srv.conf, "a") as f:
            f.write("\nthis is not libconfig\n")
        line = self.fails("reload")
        self.assertRegex(line, r"^ternctl: %s:\d+: " % re.escape(self.srv.conf))
        self.assertEqual(self.fails("reload", "--json"), line)
        # the configuration before the broken file still serves
        self.assertEqual(self.client(user="zed", password="zedpw").allocate()["cls"], 2)
        self.assertTrue(self.srv.alive())
        restore()
        self.assertEqual(error(self.client(user="zed", password="zedpw").allocate()), 401)

    def test_credentials_authenticate_against_ternd(self):
        out = json.loads(self.ok("credentials", "--secret", "older", "--name", "carl", "--ttl", "600",
                                 "--url", "turn:127.0.0.1:%d" % self.port, "--json"))
        self.assertEqual(self.client(user=out["username"], password=out["password"]).allocate()["cls"], 2)
        out = json.loads(self.ok("credentials", "--secret", "not-ours", "--json"))
        self.assertEqual(error(self.client(user=out["username"], password=out["password"]).allocate()), 401)

    def test_no_socket_and_refused_connection(self):
        missing = os.path.join(control_dir(), "none.sock")
        self.assertEqual(self.fails("status", sock=missing).split(" (")[0],
                         "ternctl: cannot reach ternd at %s: No such file or directory" % missing)
        stale = os.path.join(control_dir(), "stale.sock")
        s = socket.socket(socket.AF_UNIX)
        s.bind(stale)  # a socket file nobody listens on, as a dead ternd leaves it
        s.close()
        self.assertEqual(self.fails("sessions", sock=stale).split(" (")[0],
                         "ternctl: cannot reach ternd at %s: Connection refused" % stale)

    def test_permission_denied_for_other_users(self):
        if os.geteuid() != 0:
            self.skipTest("needs root to run ternctl as another user")
        if shutil.which("runuser"):
            prefix = ["runuser", "-u", "nobody", "--"]
        elif shutil.which("setpriv"):
            prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
        else:
            self.skipTest("neither runuser nor setpriv")
        self.assertEqual(stat.S_IMODE(os.stat(self.sock).st_mode), 0o600)
        bindir = control_dir()  # wherever the build is, nobody can run this copy
        exe = shutil.copy(TERNCTL, bindir)
        p = subprocess.run(prefix + [exe, "-s", self.sock, "status"], capture_output=True,
                           text=True, timeout=30)
        self.assertEqual((p.returncode, p.stdout), (1, ""), p.stderr)
        self.assertEqual(len(p.stderr.splitlines()), 1, p.stderr)
        self.assertTrue(p.stderr.startswith("ternctl: cannot reach ternd at %s: Permission denied"
                                            % self.sock), p.stderr)

    def test_bad_arguments(self):
        p = ternctl(sock=self.sock)  # no command
        self.assertEqual((p.returncode, p.stdout), (2, ""))
        self.assertIn("usage: ternctl", p.stderr)
        p = ternctl("frobnicate", sock=self.sock)
        self.assertEqual((p.returncode, p.stdout), (2, ""))
        self.assertTrue(p.stderr.startswith("ternctl: unknown command 'frobnicate'\nusage: "), p.stderr)
        self.fails("status", "now", code=2)
        self.fails("--frob", "status", code=2)
        self.fails("sessions", "--user", "", code=2)
        # what ternd refuses, ternd says
        self.assertIn("--deadline takes seconds", self.fails("drain", "--deadline", "soon"))
        self.assertIn("unexpected '--bogus'", self.fails("sessions", "--bogus"))
        self.assertIn("kill: which?", self.fails("kill"))
        self.assertIn("kill: which?", self.fails("kill", "12abc"))
        self.assertTrue(self.srv.alive())
        self.assertFalse(json.loads(self.ok("status", "--json"))["draining"])

    def test_version_and_help(self):
        self.assertEqual(ternctl("--version").stdout, "ternctl 0.1.0\n")
        p = ternctl("--help")
        self.assertEqual((p.returncode, p.stderr), (0, ""))
        for word in ("status", "sessions", "kill", "reload", "loglevel", "drain", "undrain",
                     "credentials", "user add", "secret add"):
            self.assertIn(word, p.stdout)


class Drain(CtlCase):
    def start(self, extra=""):
        self.port = free_port()
        self.mport = free_port(kinds=(socket.SOCK_STREAM,))
        self.sock = os.path.join(control_dir(), "ternd.sock")
        extra += '\nmetrics = { ip = "127.0.0.1"; port = %d; };' % self.mport
        srv = Ternd(control_conf(self.port, self.sock, extra=extra)).__enter__()
        self.addCleanup(srv.stop)
        holder = self.client()  # a drained ternd with no allocation left exits
        self.assertEqual(holder.allocate()["cls"], 2)
        return srv, holder

    def test_drain_refuses_allocations_keeps_binding_and_health(self):
        srv, holder = self.start()
        self.assertEqual(health(self.mport), 200)
        self.assertIn("draining", self.ok("drain", "--deadline", "60"))
        self.assertIs(json.loads(self.ok("status", "--json"))["draining"], True)
        self.assertEqual(error(self.client().allocate()), 508)
        msg, _ = request()
        reply, _ = udp_exchange("127.0.0.1", self.port, msg)
        self.assertEqual(parse(reply)["cls"], 2)
        self.assertEqual(holder.refresh(600)["cls"], 2)  # existing allocations go on
        self.assertEqual(health(self.mport), 503)
        self.assertEqual(json.loads(self.ok("undrain", "--json")), {"draining": False})
        self.assertEqual(health(self.mport), 200)
        late = self.client()
        self.assertEqual(late.allocate()["cls"], 2)
        self.assertEqual(late.refresh(0)["cls"], 2)
        # drained again, ternd leaves when its last allocation ends
        self.assertEqual(json.loads(self.ok("drain", "--json")),
                         {"draining": True, "deadline_s": 3600})
        self.assertEqual(holder.refresh(0)["cls"], 2)
        srv.proc.wait(timeout=5)
        self.assertEqual(srv.proc.returncode, 0)
        self.assertIn("cannot reach ternd", self.fails("status"))

    def test_drain_with_alternate_servers_answers_300(self):
        srv, holder = self.start('alternate_servers = [ "127.0.0.2:3478" ];')
        self.ok("drain")
        r = self.client().allocate()
        self.assertEqual(error(r), 300)
        self.assertEqual(addr(r["attrs"][0x8023][0]), ("127.0.0.2", 3478))
        self.ok("undrain")
        self.assertEqual(self.client().allocate()["cls"], 2)


def turnadmin(redis, *args):
    """coturn's turnadmin on the test Redis; its log file (turnadmin writes one
    per run, named after its PID) is removed."""
    p = subprocess.Popen(["turnadmin"] + list(args) + ["-N", "ip=127.0.0.1 port=%d dbname=0" % redis.port],
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        out, _ = p.communicate(timeout=20)
    finally:
        p.kill()
        for d in ("/var/log", "/var/tmp", "/tmp", os.getcwd()):
            for f in glob.glob(os.path.join(d, "turn_%d_*.log" % p.pid)):
                os.unlink(f)
    assert p.returncode == 0, out
    return out


def bracketed(out, realm=REALM):
    """turnadmin's list lines, "name[realm]", of one realm."""
    return sorted(m.group(1) for m in re.finditer(r"(?m)^(.+)\[%s\]$" % re.escape(realm), out))


class RedisAdmin(CtlCase):
    """ternctl and turnadmin on one Redis, and a ternd that reads it."""

    @classmethod
    def setUpClass(cls):
        if not shutil.which("turnadmin"):
            raise unittest.SkipTest("no turnadmin (coturn)")
        cls.redis = RedisServer().start()
        cls.url = cls.redis.url()
        cls.port = free_port()
        cls.srv = Ternd(turn_conf(cls.port, relay=RELAY_ONE_IP,
                                  auth_extra='redis = "%s"; cache_ttl = 1;' % cls.url)).__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()
        cls.redis.cleanup()

    def at(self, *args):
        return list(args) + ["--redis", self.url, "--realm", REALM]

    def test_turnadmin_writes_ternctl_lists(self):
        turnadmin(self.redis, "-a", "-u", "ta-user", "-r", REALM, "-p", "pw")
        turnadmin(self.redis, "-a", "-u", "elsewhere", "-r", "other.example", "-p", "pw")
        turnadmin(self.redis, "-s", "ta-secret", "-r", REALM)
        self.assertIn("ta-user\n", self.ok(*self.at("user", "list")))
        users = json.loads(self.ok(*self.at("user", "list", "--json")))
        self.assertEqual(users["realm"], REALM)
        self.assertIn("ta-user", users["users"])
        self.assertNotIn("elsewhere", users["users"])
        self.assertIn("ta-secret", json.loads(self.ok(*self.at("secret", "list", "--json")))["secrets"])
        self.assertIn("ta-secret\n", self.ok(*self.at("secret", "list")))
        # deleted by turnadmin, gone for ternctl
        turnadmin(self.redis, "-d", "-u", "ta-user", "-r", REALM)
        turnadmin(self.redis, "-X", "ta-secret", "-r", REALM)
        self.assertNotIn("ta-user", self.ok(*self.at("user", "list")).split("\n"))
        self.assertNotIn("ta-secret", self.ok(*self.at("secret", "list")).split("\n"))
        # ternctl deletes what turnadmin added
        turnadmin(self.redis, "-a", "-u", "ta-user2", "-r", REALM, "-p", "pw")
        self.ok(*self.at("user", "delete", "--user", "ta-user2"))
        self.assertNotIn("ta-user2", bracketed(turnadmin(self.redis, "-l", "-r", REALM)))

    def test_ternctl_writes_turnadmin_lists(self):
        self.assertEqual(self.ok(*self.at("user", "add", "--user", "tc-user", "--password", "tcpw")),
                         "user tc-user added to realm %s (MD5 key)\n" % REALM)
        key = self.redis.cmd("GET", "turn/realm/%s/user/tc-user/key" % REALM)
        self.assertEqual(key, hashlib.md5(b"tc-user:%s:tcpw" % REALM.encode()).hexdigest())
        self.assertEqual(turnadmin(self.redis, "-k", "-u", "tc-user", "-r", REALM, "-p", "tcpw")
                         .split()[0], "0x" + key)
        self.ok(*self.at("secret", "add", "--secret", "-"), stdin="tc-secret\n")
        self.assertIn("tc-user", bracketed(turnadmin(self.redis, "-l", "-r", REALM)))
        self.assertIn("tc-secret", bracketed(turnadmin(self.redis, "-S", "-r", REALM)))
        self.assertEqual(json.loads(self.ok(*self.at("secret", "add", "--secret", "tc-secret", "--json"))),
                         {"realm": REALM, "added": False})
        self.ok(*self.at("user", "delete", "--user", "tc-user"))
        self.ok(*self.at("secret", "delete", "--secret", "tc-secret"))
        self.assertNotIn("tc-user", bracketed(turnadmin(self.redis, "-l", "-r", REALM)))
        self.assertNotIn("tc-secret", bracketed(turnadmin(self.redis, "-S", "-r", REALM)))
        self.assertIn("no user tc-user", self.fails(*self.at("user", "delete", "--user", "tc-user")))
        self.assertIn("no such secret", self.fails(*self.at("secret", "delete", "--secret", "tc-secret")))

    def test_ternd_authenticates_what_ternctl_wrote(self):
        self.ok(*self.at("user", "add", "--user", "rita", "--password", "ritapw"))
        t = self.client(user="rita", password="ritapw")
        self.assertEqual(t.allocate()["cls"], 2)
        self.assertEqual(error(self.client(user="rita", password="wrong").allocate()), 401)
        # a SHA-256 key serves RFC 8489's PASSWORD-ALGORITHM SHA-256
        out = json.loads(self.ok(*self.at("user", "add", "--user", "sam", "--password", "sampw",
                                          "--sha256", "--json")))
        self.assertEqual(out, {"realm": REALM, "user": "sam", "key": "sha256"})
        self.assertEqual(len(self.redis.cmd("GET", "turn/realm/%s/user/sam/key" % REALM)), 64)
        s = self.client(user="sam", password="sampw")
        s.request(ALLOCATE, [])  # the 401 with its nonce
        key = long_term_key("sam", REALM, "sampw", sha256=True)
        attrs = [attr(A_TRANSPORT, b"\x11\0\0\0"), attr(A_PWALGS, struct.pack("!HHHH", 2, 0, 1, 0)),
                 attr(A_PWALG, b"\0\x02\0\0")]
        msg, tid = build(ALLOCATE, attrs + s.auth_attrs(), key, sha256=True)
        self.assertEqual(s.exchange(msg, tid)["cls"], 2)
        # a secret added by ternctl, credentials made by ternctl
        self.ok(*self.at("secret", "add", "--secret", "rest-secret"))
        cred = json.loads(self.ok("credentials", "--secret", "rest-secret", "--name", "x", "--json"))
        self.assertEqual(self.client(user=cred["username"], password=cred["password"]).allocate()["cls"], 2)
        # deleted, refused once ternd's cache (cache_ttl = 1) lets go
        self.ok(*self.at("user", "delete", "--user", "rita"))
        time.sleep(1.5)
        self.assertEqual(error(self.client(user="rita", password="ritapw").allocate()), 401)
        # and a deleted user can no longer refresh (README, "Reload without restart")
        self.assertEqual(error(t.refresh(600)), 401)

    def test_redis_errors(self):
        self.fails("user", "list", "--redis", "http://127.0.0.1/", "--realm", REALM, code=2)
        self.fails("user", "add", "--redis", self.url, "--realm", "a/b", "--user", "u", "--password", "p",
                   code=2)
        self.fails("user", "add", "--redis", self.url, "--realm", REALM, "--user", "u", code=2)
        self.fails("user", "rename", code=2)
        closed = free_port(kinds=(socket.SOCK_STREAM,))
        line = self.fails("user", "list", "--redis", "redis://127.0.0.1:%d/0" % closed, "--realm", REALM)
        self.assertEqual(line, "ternctl: cannot reach Redis at 127.0.0.1:%d: Connection refused" % closed)
        # the other forms of the URL ternd takes
        self.ok("user", "list", "--redis", "redis://127.0.0.1:%d" % self.redis.port, "--realm", REALM)
        self.ok("user", "list", "--redis", "redis://:@localhost:%d/0" % self.redis.port, "--realm", REALM)


class Credentials(CtlCase):
    def test_text_and_json(self):
        now = time.time()
        out = self.ok("credentials", "--secret", "s3cret", "--name", "alice")
        fields = dict(line.split(None, 1) for line in out.splitlines())
        user, pw = fields["username"], fields["password"]
        expiry, name = user.split(":")
        self.assertEqual(name, "alice")
        self.assertAlmostEqual(int(expiry), now + 86400, delta=5)
        self.assertEqual(pw, base64.b64encode(hmac.new(b"s3cret", user.encode(), hashlib.sha1).digest()).decode())
        self.assertIn("(ttl 86400 s)", fields["expires"])
        self.assertEqual(json.loads(fields["iceServers"]),
                         {"urls": ["turn:127.0.0.1:3478"], "username": user, "credential": pw})
        d = json.loads(self.ok("credentials", "--secret", "s3cret", "--ttl", "60", "--url",
                               "turns:turn.example.org:5349?transport=tcp", "--url", "turn:192.0.2.1:3478",
                               "--json"))
        self.assertEqual(set(d), {"username", "password", "ttl", "iceServers"})
        self.assertEqual(d["ttl"], 60)
        self.assertRegex(d["username"], r"^\d+$")  # no --name, no ":"
        self.assertAlmostEqual(int(d["username"]), now + 60, delta=5)
        self.assertEqual(d["password"], base64.b64encode(
            hmac.new(b"s3cret", d["username"].encode(), hashlib.sha1).digest()).decode())
        self.assertEqual(d["iceServers"], [{"urls": ["turns:turn.example.org:5349?transport=tcp",
                                                     "turn:192.0.2.1:3478"],
                                            "username": d["username"], "credential": d["password"]}])
        # the secret from standard input, out of the process list
        d2 = json.loads(self.ok("credentials", "--secret", "-", "--json", stdin="s3cret\n"))
        self.assertEqual(d2["password"], base64.b64encode(
            hmac.new(b"s3cret", d2["username"].encode(), hashlib.sha1).digest()).decode())

    def test_bad_usage(self):
        self.assertIn("--secret is required", self.fails("credentials", code=2))
        self.fails("credentials", "--secret", "s", "--ttl", "0", code=2)
        self.fails("credentials", "--secret", "s", "--ttl", "-5", code=2)
        self.fails("credentials", "--secret", "s", "--url", "http://x", code=2)
        self.fails("credentials", "--secret", "s", "--name", "", code=2)
        self.fails("credentials", "--secret", "s", "--secret", "t", code=2)
        self.fails("credentials", "--secret", code=2)


if __name__ == "__main__":
    unittest.main()
