"""Operating ternd: reload without restart (SIGHUP and the control socket),
drain until exit, and JSON log lines. Each test runs a real ternd; a
control socket is spoken to directly (NUL-separated arguments, control.h)
so that these tests do not depend on ternctl."""
import json
import os
import signal
import socket
import subprocess
import threading
import time
import unittest
import urllib.error
import urllib.request

from ternd import Ternd, conf, free_port, temp_dir, request, udp_exchange, recv_frame
from turnclient import Turn
from test_turn import turn_conf, error, udp_peer


def control(path, *args, timeout=10):
    """One request on a control socket: (ok, body)."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect(path)
    s.sendall(b"".join(a.encode() + b"\0" for a in args) + b"\0")
    data = b""
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    status, _, body = data.decode().partition("\n")
    return status == "ok", body


def read(path):
    with open(path) as f:
        return f.read()


def wait_for(pred, seconds=5.0):
    end = time.time() + seconds
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


class Reload(unittest.TestCase):
    def setUp(self):
        self.dir = temp_dir()
        self.sock = os.path.join(self.dir, "ternd.sock")
        self.port = free_port()
        self.port2 = free_port()

    def text(self, users='{ user = "alice"; password = "secret"; }, { user = "bob"; password = "hunter2"; }',
             extra_listen="", limits=""):
        listen = ('{ proto = "udp"; ip = "127.0.0.1"; port = %d; }, { proto = "tcp"; ip = "127.0.0.1"; port = %d; }%s'
                  % (self.port, self.port, extra_listen))
        text = turn_conf(self.port, listen=listen, limits=limits,
                         extra='control = { path = "%s"; };' % self.sock)
        return text.replace('users = ( { user = "alice"; password = "secret"; }, '
                            '{ user = "bob"; password = "hunter2"; } )', "users = ( %s )" % users)

    @staticmethod
    def rewrite(srv, text):
        with open(srv.conf, "w") as f:
            f.write(text)

    def test_reload_applies_users_and_listeners_while_relaying(self):
        with Ternd(self.text()) as srv:
            alice = Turn("127.0.0.1", self.port)
            self.addCleanup(alice.close)
            self.assertEqual(alice.allocate()["cls"], 2)
            peer = udp_peer()
            self.addCleanup(peer.close)
            self.assertEqual(alice.channel_bind(0x4001, peer.getsockname())["cls"], 2)
            bob = Turn("127.0.0.1", self.port, user="bob", password="hunter2")
            self.addCleanup(bob.close)
            self.assertEqual(bob.allocate()["cls"], 2)
            # a stream of datagrams through the reload: none lost
            got = []
            stop = threading.Event()

            def reader():
                peer.settimeout(0.2)
                while not stop.is_set():
                    try:
                        got.append(peer.recvfrom(2048)[0])
                    except socket.timeout:
                        pass
            th = threading.Thread(target=reader, daemon=True)
            th.start()
            # bob leaves the file, carol comes, and a TCP listener on port2
            self.rewrite(srv, self.text(
                users='{ user = "alice"; password = "secret"; }, { user = "carol"; password = "c4rol"; }',
                extra_listen=', { proto = "tcp"; ip = "127.0.0.1"; port = %d; }' % self.port2))
            sent = 0
            for i in range(400):
                alice.send_channel(0x4001, b"packet %d" % i)
                sent += 1
                if i == 100:
                    ok, body = control(self.sock, "reload")
                    self.assertTrue(ok, body)
                    self.assertIn("+tcp 127.0.0.1:%d" % self.port2, body)
                time.sleep(0.002)
            wait_for(lambda: len(got) >= sent, 3)
            stop.set()
            th.join(2)
            self.assertEqual(len(got), sent, "datagrams lost across the reload")
            # the new user and the new listener serve; the kept listener kept its sockets
            carol = Turn("127.0.0.1", self.port, user="carol", password="c4rol")
            self.addCleanup(carol.close)
            self.assertEqual(carol.allocate()["cls"], 2)
            t = Turn("127.0.0.1", self.port2, transport="tcp")
            self.addCleanup(t.close)
            self.assertEqual(t.allocate()["cls"], 2)
            # bob's allocation stays, but bob can no longer refresh it
            self.assertEqual(error(bob.refresh(600)), 401)
            # alice's allocation kept relaying and keeps its credentials
            self.assertEqual(alice.refresh(600)["cls"], 2)
            # and the listener goes away again
            self.rewrite(srv, self.text())
            self.assertTrue(control(self.sock, "reload")[0])
            with self.assertRaises(OSError):
                socket.create_connection(("127.0.0.1", self.port2), timeout=2).close()

    def test_bad_file_refused_whole_and_old_config_serves(self):
        with Ternd(self.text()) as srv:
            good = read(srv.conf)
            self.rewrite(srv, good.replace("realm =", "realm = 5;\nrelm ="))
            ok, body = control(self.sock, "reload")
            self.assertFalse(ok)
            self.assertRegex(body, r"ternd\.conf:\d+: ")
            self.assertIn("reload refused", srv.stderr())
            t = Turn("127.0.0.1", self.port)
            self.addCleanup(t.close)
            self.assertEqual(t.allocate()["cls"], 2)
            # a listen address in use refuses the reload too, and nothing changes
            blocker = socket.socket()
            self.addCleanup(blocker.close)
            blocker.bind(("127.0.0.1", self.port2))
            blocker.listen(1)
            self.rewrite(srv, self.text(
                users='{ user = "dave"; password = "d"; }',
                extra_listen=', { proto = "tcp"; ip = "127.0.0.1"; port = %d; }' % self.port2))
            ok, body = control(self.sock, "reload", "--json")
            self.assertFalse(ok)
            self.assertIn("in use", json.loads(body)["error"])
            d = Turn("127.0.0.1", self.port, user="dave", password="d")
            self.addCleanup(d.close)
            self.assertEqual(error(d.allocate()), 401)  # the old users stay

    def test_sighup_reloads_and_workers_stay(self):
        with Ternd(self.text()) as srv:
            self.rewrite(srv, self.text(users='{ user = "erin"; password = "e"; }').replace(
                "workers = 2", "workers = 1"))
            srv.proc.send_signal(signal.SIGHUP)
            self.assertTrue(wait_for(lambda: "reload: " in srv.stderr()))
            self.assertIn("workers stays 2", srv.stderr())
            t = Turn("127.0.0.1", self.port, user="erin", password="e")
            self.addCleanup(t.close)
            self.assertEqual(t.allocate()["cls"], 2)

    def test_new_limits_for_new_allocations(self):
        with Ternd(self.text(limits="user_quota = 1;")) as srv:
            a1 = Turn("127.0.0.1", self.port)
            self.addCleanup(a1.close)
            self.assertEqual(a1.allocate()["cls"], 2)
            a2 = Turn("127.0.0.1", self.port)
            self.addCleanup(a2.close)
            self.assertEqual(error(a2.allocate()), 486)
            self.rewrite(srv, self.text(limits="user_quota = 2;"))
            self.assertTrue(control(self.sock, "reload")[0])
            a3 = Turn("127.0.0.1", self.port)
            self.addCleanup(a3.close)
            self.assertEqual(a3.allocate()["cls"], 2)


class Drain(unittest.TestCase):
    def test_drain_until_the_last_allocation_ends(self):
        d = temp_dir()
        sock = os.path.join(d, "ternd.sock")
        port, mport = free_port(), free_port(kinds=(socket.SOCK_STREAM,))
        extra = ('control = { path = "%s"; };\nmetrics = { ip = "127.0.0.1"; port = %d; };'
                 % (sock, mport))
        srv = Ternd(turn_conf(port, extra=extra)).__enter__()
        self.addCleanup(srv.stop)
        health = "http://127.0.0.1:%d/health" % mport
        self.assertEqual(urllib.request.urlopen(health, timeout=5).status, 200)
        t = Turn("127.0.0.1", port)
        self.addCleanup(t.close)
        self.assertEqual(t.allocate()["cls"], 2)
        peer = udp_peer()
        self.addCleanup(peer.close)
        self.assertEqual(t.channel_bind(0x4001, peer.getsockname())["cls"], 2)
        ok, body = control(sock, "drain", "--deadline", "30", "--json")
        self.assertTrue(ok, body)
        self.assertEqual(json.loads(body), {"draining": True, "deadline_s": 30})
        with self.assertRaises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(health, timeout=5)
        self.assertEqual(e.exception.code, 503)
        metrics = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport, timeout=5).read().decode()
        self.assertIn("tern_draining 1", metrics)
        # no new allocation; Binding, Refresh and relaying go on
        other = Turn("127.0.0.1", port, user="bob", password="hunter2")
        self.addCleanup(other.close)
        self.assertEqual(error(other.allocate()), 508)
        msg, _ = request()
        self.assertIsNotNone(udp_exchange("127.0.0.1", port, msg)[0])
        self.assertEqual(t.refresh(600)["cls"], 2)
        for i in range(20):
            t.send_channel(0x4001, b"still %d" % i)
            self.assertEqual(peer.recvfrom(100)[0], b"still %d" % i)
        self.assertTrue(srv.alive())
        # the last allocation ends: ternd exits by itself, cleanly
        self.assertEqual(t.refresh(0)["cls"], 2)
        self.assertTrue(wait_for(lambda: not srv.alive(), 5), "ternd did not exit after the drain")
        self.assertEqual(srv.proc.returncode, 0)
        self.assertIn("drain: no allocation left", srv.stderr())

    def test_sigusr1_drains_with_try_alternate_and_undrain(self):
        d = temp_dir()
        sock = os.path.join(d, "ternd.sock")
        port = free_port()
        extra = 'control = { path = "%s"; };\nalternate_servers = [ "192.0.2.9:3478" ];' % sock
        with Ternd(turn_conf(port, extra=extra)) as srv:
            keep = Turn("127.0.0.1", port)
            self.addCleanup(keep.close)
            self.assertEqual(keep.allocate()["cls"], 2)
            srv.proc.send_signal(signal.SIGUSR1)
            self.assertTrue(wait_for(lambda: "drain: new allocations go to the alternate" in srv.stderr()))
            other = Turn("127.0.0.1", port, user="bob", password="hunter2")
            self.addCleanup(other.close)
            self.assertEqual(error(other.allocate()), 300)
            self.assertTrue(control(sock, "undrain")[0])
            self.assertEqual(other.allocate()["cls"], 2)

    def test_drain_deadline_ends_ternd(self):
        d = temp_dir()
        sock = os.path.join(d, "ternd.sock")
        port = free_port()
        srv = Ternd(turn_conf(port, extra='control = { path = "%s"; };' % sock)).__enter__()
        self.addCleanup(srv.stop)
        t = Turn("127.0.0.1", port)
        self.addCleanup(t.close)
        self.assertEqual(t.allocate()["cls"], 2)
        self.assertTrue(control(sock, "drain", "--deadline", "1")[0])
        self.assertTrue(wait_for(lambda: not srv.alive(), 4))
        self.assertIn("deadline reached with 1 allocations left", srv.stderr())


class JsonLog(unittest.TestCase):
    def test_every_line_is_json_with_session_start_and_end(self):
        d = temp_dir()
        log = os.path.join(d, "ternd.log")
        port = free_port()
        text = turn_conf(port).replace('log = { level = "debug"; };',
                                       'log = { level = "info"; format = "json"; file = "%s"; };' % log)
        with Ternd(text):
            t = Turn("127.0.0.1", port, transport="tcp")
            self.addCleanup(t.close)
            self.assertEqual(t.allocate()["cls"], 2)
            peer = udp_peer()
            self.addCleanup(peer.close)
            self.assertEqual(t.channel_bind(0x4001, peer.getsockname())["cls"], 2)
            t.send_channel(0x4001, b"x" * 100)
            peer.recvfrom(200)
            t.close()  # the connection ends the allocation
            self.assertTrue(wait_for(lambda: "session_end" in read(log)))
        lines = [json.loads(l) for l in read(log).splitlines()]
        for l in lines:
            self.assertTrue({"time", "level", "event"} <= set(l), l)
        start = [l for l in lines if l["event"] == "session_start"]
        end = [l for l in lines if l["event"] == "session_end"]
        self.assertEqual(len(start), 1)
        self.assertEqual(len(end), 1)
        for key in ("id", "user", "realm", "client", "transport", "relay"):
            self.assertEqual(start[0][key], end[0][key], key)
        self.assertEqual(start[0]["transport"], "tcp")
        self.assertEqual(start[0]["user"], "alice")
        self.assertEqual(end[0]["reason"], "connection closed")
        self.assertEqual(end[0]["bytes_to_peer"], 100)
        self.assertEqual(end[0]["packets_to_peer"], 1)
        for key in ("duration_s", "bytes_to_client", "packets_to_client"):
            self.assertIn(key, end[0])
        self.assertTrue(any(l["event"] == "log" and l["msg"] == "ready" for l in lines))


if __name__ == "__main__":
    unittest.main()
