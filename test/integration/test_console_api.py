"""The web console's server side (server/console*.c) over real HTTP on the
HTTP listener: the console is off without http.admin_token; /metrics and
/health stay open; no token, a wrong token and a right one; the rate limit on
wrong tokens; the JSON documents are ternctl --json's; kill by POST; CSRF;
the sign-in form and its cookie; /api/icetest's URLs and credentials, which
ternd itself accepts; the http group's configuration errors."""
import base64
import hashlib
import hmac
import http.client
import json
import os
import signal
import socket
import subprocess
import time
import unittest

from ternd import TERND, Ternd, free_port, temp_dir, tls_files
from test_operations import wait_for
from test_ternctl import TERNCTL, client_addr, control_dir
from test_turn import USERS
from turnclient import Turn

TOKEN = "console-test-token-0123456789"
REALM = "test.example"
CSP = ("default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
       "connect-src 'self'; img-src 'self' data:")


def server_conf(port, hport, http_extra="", auth_extra='secrets = [ "shared" ];', listen=None,
                extra=""):
    listen = listen or ('{ proto = "udp"; ip = "127.0.0.1"; port = %d; },'
                        '{ proto = "tcp"; ip = "127.0.0.1"; port = %d; }' % (port, port))
    lo = free_port(kinds=(socket.SOCK_DGRAM,))
    return ('realm = "%s";\nworkers = 2;\nlisten = ( %s );\n'
            'relay = { ip = [ "127.0.0.1" ]; min_port = %d; max_port = %d; };\n'
            'peers = { allow_loopback = true; };\n'
            'auth = { %s; %s };\nhttp = { ip = "127.0.0.1"; port = %d; %s };\n'
            'log = { level = "debug"; };\n%s\n'
            % (REALM, listen, lo, lo + 49, USERS, auth_extra, hport, http_extra, extra))


def call(port, method, path, headers=None, body=None, source="127.0.0.1"):
    """(status, headers as a dict of lower-case names, body bytes)."""
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=5, source_address=(source, 0))
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def bearer(token=TOKEN):
    return {"Authorization": "Bearer " + token}


def form(**fields):
    return ({"Content-Type": "application/x-www-form-urlencoded"},
            "&".join("%s=%s" % (k, v) for k, v in fields.items()))


def check_config(text):
    d = temp_dir("console-conf-")
    path = os.path.join(d, "ternd.conf")
    with open(path, "w") as f:
        f.write(text)
    p = subprocess.run([TERND, "-c", path, "--check-config"], capture_output=True, text=True,
                       timeout=10)
    return p, path


class ConsoleOff(unittest.TestCase):
    def test_no_admin_token_no_console_but_metrics_and_health(self):
        port, hport = free_port(), free_port(kinds=(socket.SOCK_STREAM,))
        # the old name of the group still makes the listener
        text = server_conf(port, hport).replace("http = {", "metrics = {")
        with Ternd(text):
            for path in ("/", "/icetest", "/login", "/api/status", "/api/sessions", "/api/icetest"):
                self.assertEqual(call(hport, "GET", path, bearer())[0], 404, path)
            self.assertEqual(call(hport, "POST", "/api/sessions/1/kill", bearer())[0], 404)
            self.assertEqual(call(hport, "GET", "/metrics")[0], 200)
            self.assertEqual(call(hport, "GET", "/health")[0], 200)


class Console(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.port, cls.tls_port = free_port(), free_port(kinds=(socket.SOCK_STREAM,))
        cls.hport = free_port(kinds=(socket.SOCK_STREAM,))
        cls.sock = os.path.join(control_dir(), "ternd.sock")
        cert, key = tls_files(temp_dir("console-tls-"))
        # TCP on the wildcard: its URL takes the host the browser used
        listen = ('{ proto = "udp"; ip = "127.0.0.1"; port = %d; },'
                  '{ proto = "tcp"; ip = "0.0.0.0"; port = %d; },'
                  '{ proto = "tls"; ip = "127.0.0.1"; port = %d; }'
                  % (cls.port, cls.port, cls.tls_port))
        extra = ('tls = { cert = "%s"; key = "%s"; };\ncontrol = { path = "%s"; };'
                 % (cert, key, cls.sock))
        cls.srv = Ternd(server_conf(cls.port, cls.hport, 'admin_token = "%s";' % TOKEN,
                                    listen=listen, extra=extra)).__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def get(self, path, headers=None, **kw):
        return call(self.hport, "GET", path, headers, **kw)

    def post(self, path, headers=None, body=None, **kw):
        return call(self.hport, "POST", path, headers, body, **kw)

    def api(self, path, **kw):
        status, h, body = self.get(path, bearer(), **kw)
        self.assertEqual(status, 200, body)
        self.assertEqual(h["content-type"], "application/json")
        self.assertEqual(h["cache-control"], "no-store")
        return json.loads(body)

    def ternctl_json(self, *args):
        p = subprocess.run([TERNCTL, "-s", self.sock, "--json"] + list(args), capture_output=True,
                           text=True, timeout=10)
        self.assertEqual(p.returncode, 0, p.stderr)
        return json.loads(p.stdout)

    def allocation(self, **kw):
        t = Turn("127.0.0.1", self.port, **kw)
        self.addCleanup(t.close)
        self.assertEqual(t.allocate()["cls"], 2)
        return t

    def session_of(self, t, doc):
        return [s for s in doc["sessions"] if s["client"] == client_addr(t)]

    def login(self, source="127.0.0.1"):
        h, body = form(token=TOKEN)
        status, rh, _ = self.post("/login", h, body, source=source)
        self.assertEqual(status, 303)
        return rh["set-cookie"]

    def test_metrics_and_health_stay_open(self):
        self.assertEqual(self.get("/metrics")[0], 200)
        self.assertEqual(self.get("/health")[0], 200)

    def test_no_token_is_401_for_the_api_and_the_sign_in_form_for_pages(self):
        status, h, body = self.get("/api/status")
        self.assertEqual(status, 401)
        self.assertTrue(h["www-authenticate"].startswith("Bearer"), h)
        self.assertIn("error", json.loads(body))
        status, h, _ = self.get("/")
        self.assertEqual((status, h["location"]), (303, "/login?next=%2F"))
        status, h, _ = self.get("/icetest")
        self.assertEqual((status, h["location"]), (303, "/login?next=%2Ficetest"))
        status, h, body = self.get("/login")
        self.assertEqual(status, 200)
        self.assertIn(b'name="token"', body)
        self.assertEqual(h["content-type"], "text/html; charset=utf-8")
        self.assertEqual(h["content-security-policy"], CSP)
        self.assertEqual((h["x-frame-options"], h["cache-control"]), ("DENY", "no-store"))
        self.assertEqual(self.post("/api/sessions/1/kill")[0], 401)
        self.assertEqual(self.get("/nothing", bearer())[0], 404)
        self.assertEqual(self.get("/api/nothing", bearer())[0], 404)

    def test_wrong_tokens_are_401_then_429_for_that_address_only(self):
        src = "127.0.0.7"
        for i in range(5):
            status, h, body = self.get("/api/status", bearer("wrong-token-%d" % i), source=src)
            self.assertEqual(status, 401, i)
            self.assertTrue(h["www-authenticate"].startswith("Bearer"))
        self.assertEqual(self.get("/api/status", bearer("wrong"), source=src)[0], 429)
        # a right token from there waits too; another address does not
        self.assertEqual(self.get("/api/status", bearer(), source=src)[0], 429)
        self.assertEqual(self.get("/api/status", bearer(), source="127.0.0.1")[0], 200)
        # the sign-in form counts wrong tokens too
        h, body = form(token="not-the-token")
        for i in range(5):
            self.assertEqual(self.post("/login", h, body, source="127.0.0.8")[0], 401)
        self.assertEqual(self.post("/login", h, body, source="127.0.0.8")[0], 429)

    def test_status_and_sessions_are_ternctls_documents(self):
        t = self.allocation()
        mine = self.api("/api/status")
        theirs = self.ternctl_json("status")
        self.assertEqual(set(mine), set(theirs))
        for k in ("sessions", "relay_ports", "redis"):
            self.assertEqual(set(mine[k]), set(theirs[k]), k)
        self.assertGreaterEqual(mine["allocations"], 1)
        self.assertEqual((mine["workers"], mine["version"]), (theirs["workers"], theirs["version"]))
        [s] = self.session_of(t, self.api("/api/sessions"))
        [c] = self.session_of(t, self.ternctl_json("sessions"))
        self.assertEqual(set(s), set(c))
        for k in ("id", "user", "realm", "client", "transport", "relay"):
            self.assertEqual(s[k], c[k], k)
        self.assertEqual(len(self.session_of(t, self.api("/api/sessions?user=alice"))), 1)
        self.assertEqual(self.session_of(t, self.api("/api/sessions?user=bob")), [])
        self.assertEqual(len(self.session_of(t, self.api("/api/sessions?realm=" + REALM))), 1)
        self.assertEqual(self.session_of(t, self.api("/api/sessions?realm=other.example")), [])

    def test_kill_by_post_ends_the_session(self):
        t = self.allocation()
        [s] = self.session_of(t, self.api("/api/sessions"))
        path = "/api/sessions/%s/kill" % s["id"]
        self.assertEqual(self.post(path)[0], 401)
        self.assertEqual(self.get(path, bearer())[0], 405)
        self.assertEqual(len(self.session_of(t, self.api("/api/sessions"))), 1)
        status, h, body = self.post(path, bearer())
        self.assertEqual((status, json.loads(body)), (200, {"killed": 1}))
        self.assertEqual(h["content-type"], "application/json")
        self.assertEqual(self.session_of(t, self.api("/api/sessions")), [])
        status, h, body = self.post(path, bearer())
        self.assertEqual(status, 404)
        self.assertEqual(json.loads(body), {"error": "no session %s" % s["id"]})

    def test_post_with_the_cookie_from_another_site_is_403(self):
        cookie = self.login().split(";")[0]
        t = self.allocation()
        [s] = self.session_of(t, self.api("/api/sessions"))
        path = "/api/sessions/%s/kill" % s["id"]
        for bad in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"},
                    {"Origin": "null"}, {}):
            status, _, body = self.post(path, dict(bad, Cookie=cookie))
            self.assertEqual(status, 403, (bad, body))
        self.assertEqual(len(self.session_of(t, self.api("/api/sessions"))), 1)
        same = {"Cookie": cookie, "Origin": "http://127.0.0.1:%d" % self.hport,
                "Sec-Fetch-Site": "same-origin"}
        status, _, body = self.post(path, same)
        self.assertEqual((status, json.loads(body)), (200, {"killed": 1}))

    def test_sign_in_sets_a_cookie_that_opens_the_console(self):
        set_cookie = self.login()
        parts = [p.strip() for p in set_cookie.split(";")]
        name, value = parts[0].split("=", 1)
        self.assertEqual(name, "tern_admin")
        self.assertNotIn(TOKEN, set_cookie)
        self.assertIn("HttpOnly", parts)
        self.assertIn("SameSite=Strict", parts)
        self.assertIn("Path=/", parts)
        cookie = {"Cookie": parts[0]}
        status, _, body = self.get("/api/status", cookie)
        self.assertEqual(status, 200)
        self.assertIn("allocations", json.loads(body))
        for path in ("/", "/icetest"):
            status, h, body = self.get(path, cookie)
            self.assertEqual(status, 200, path)
            self.assertEqual(h["content-type"], "text/html; charset=utf-8")
            self.assertEqual(h["content-security-policy"], CSP)
            self.assertEqual((h["x-frame-options"], h["cache-control"]), ("DENY", "no-store"))
        # a made-up cookie is no cookie
        self.assertEqual(self.get("/api/status", {"Cookie": "tern_admin=" + "0" * 64})[0], 401)

    def test_sign_in_goes_next_only_to_a_path_of_this_server(self):
        for nxt, where in (("/icetest", "/icetest"), ("%2F%2Fevil.example", "/"),
                           ("//evil.example", "/"), ("/%5Cevil.example", "/"),
                           ("http://evil.example/", "/")):
            h, body = form(token=TOKEN, next=nxt)
            status, rh, _ = self.post("/login", h, body)
            self.assertEqual((status, rh["location"]), (303, where), nxt)
        # next= in the query, as the redirect to the form puts it
        h, body = form(token=TOKEN)
        status, rh, _ = self.post("/login?next=%2Ficetest", h, body)
        self.assertEqual((status, rh["location"]), (303, "/icetest"))
        h, body = form(token="wrong")
        status, rh, page = self.post("/login", h, body, source="127.0.0.9")
        self.assertEqual(status, 401)
        self.assertNotIn("set-cookie", rh)
        self.assertIn(b"Wrong token", page)

    def test_icetest_credentials_are_the_rest_hmac_and_allocate(self):
        status, h, body = self.get("/api/icetest", dict(bearer(), Host="localhost:%d" % self.hport))
        self.assertEqual(status, 200)
        self.assertNotIn(b"shared", body)
        doc = json.loads(body)
        self.assertEqual((doc["ttl"], doc["realm"]), (300, REALM))
        [entry] = doc["iceServers"]
        self.assertEqual(entry["urls"], [
            "stun:127.0.0.1:%d" % self.port,
            "turn:127.0.0.1:%d?transport=udp" % self.port,
            "turn:localhost:%d?transport=tcp" % self.port,
            "turns:127.0.0.1:%d?transport=tcp" % self.tls_port,
        ])
        user, cred = entry["username"], entry["credential"]
        expiry, name = user.split(":")
        self.assertEqual(name, "icetest")
        self.assertAlmostEqual(int(expiry), time.time() + 300, delta=5)
        want = base64.b64encode(hmac.new(b"shared", user.encode(), hashlib.sha1).digest()).decode()
        self.assertEqual(cred, want)
        self.allocation(user=user, password=cred)
        self.allocation(user=user, password=cred, transport="tcp")


class IcetestSecrets(unittest.TestCase):
    def icetest(self, http_extra, auth_extra):
        port, hport = free_port(), free_port(kinds=(socket.SOCK_STREAM,))
        text = server_conf(port, hport, 'admin_token = "%s"; %s' % (TOKEN, http_extra),
                           auth_extra=auth_extra)
        with Ternd(text):
            status, h, body = call(hport, "GET", "/api/icetest", bearer())
            self.assertEqual(h["content-type"], "application/json")
            doc = json.loads(body)
            if status == 200:
                entry = doc["iceServers"][0]
                t = Turn("127.0.0.1", port, user=entry["username"], password=entry["credential"])
                self.addCleanup(t.close)
                self.assertEqual(t.allocate()["cls"], 2)
            return status, doc

    def test_icetest_secret_of_its_own_is_accepted_by_ternd(self):
        status, doc = self.icetest('icetest_secret = "ice-only";', 'nonce_lifetime = 600;')
        self.assertEqual(status, 200)
        entry = doc["iceServers"][0]
        want = base64.b64encode(hmac.new(b"ice-only", entry["username"].encode(),
                                         hashlib.sha1).digest()).decode()
        self.assertEqual(entry["credential"], want)

    def test_no_secret_at_all_is_503_saying_why(self):
        status, doc = self.icetest("", 'nonce_lifetime = 600;')
        self.assertEqual(status, 503)
        self.assertIn("icetest_secret", doc["error"])


class ConsoleReload(unittest.TestCase):
    def test_a_new_token_on_reload_ends_the_old_cookie_and_the_listener_can_move(self):
        port, hport = free_port(), free_port(kinds=(socket.SOCK_STREAM,))
        text = server_conf(port, hport, 'admin_token = "%s";' % TOKEN)
        with Ternd(text) as srv:
            h, body = form(token=TOKEN)
            cookie = {"Cookie": call(hport, "POST", "/login", h, body)[1]["set-cookie"].split(";")[0]}
            self.assertEqual(call(hport, "GET", "/api/status", cookie)[0], 200)
            new = TOKEN + "-rotated"
            with open(srv.conf, "w") as f:
                f.write(text.replace(TOKEN, new))
            srv.proc.send_signal(signal.SIGHUP)
            self.assertTrue(wait_for(lambda: "reload: " in srv.stderr(), 10))
            self.assertIn("applied", srv.stderr())
            self.assertEqual(call(hport, "GET", "/api/status", cookie)[0], 401)
            self.assertEqual(call(hport, "GET", "/api/status", bearer())[0], 401)
            self.assertEqual(call(hport, "GET", "/api/status", bearer(new))[0], 200)
            # moved: the console comes up on the new port, with its token
            hport2 = free_port(kinds=(socket.SOCK_STREAM,))
            with open(srv.conf, "w") as f:
                f.write(text.replace(TOKEN, new).replace("port = %d; admin" % hport,
                                                         "port = %d; admin" % hport2))
            n = srv.stderr().count("reload: ")
            srv.proc.send_signal(signal.SIGHUP)
            self.assertTrue(wait_for(lambda: srv.stderr().count("reload: ") > n, 10))
            self.assertEqual(call(hport2, "GET", "/api/sessions", bearer(new))[0], 200)


class HttpConfig(unittest.TestCase):
    def test_short_admin_token_is_an_error_at_its_line(self):
        text = server_conf(free_port(), free_port(), 'admin_token = "short";')
        p, path = check_config(text)
        self.assertNotEqual(p.returncode, 0)
        line = text[:text.index("admin_token")].count("\n") + 1
        self.assertTrue(p.stderr.startswith("%s:%d:" % (path, line)), p.stderr)
        self.assertIn("admin_token", p.stderr)

    def test_both_http_and_metrics_is_an_error(self):
        text = server_conf(free_port(), free_port()) + 'metrics = { port = 9641; };\n'
        p, path = check_config(text)
        self.assertNotEqual(p.returncode, 0)
        self.assertRegex(p.stderr, r"^%s:\d+: .*metrics" % path)

    def test_http_group_with_token_is_valid(self):
        p, _ = check_config(server_conf(free_port(), free_port(), 'admin_token = "%s";' % TOKEN))
        self.assertEqual(p.returncode, 0, p.stderr)


if __name__ == "__main__":
    unittest.main()
