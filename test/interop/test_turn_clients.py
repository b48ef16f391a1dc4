"""Real third-party TURN clients relaying through ternd: coturn's
turnutils_uclient (with turnutils_peer as the echoing peer) over UDP, TCP, TLS
and DTLS, with channels and with Send/Data indications, long-term and REST
(shared secret) credentials; and aioice's TURN client over UDP and TCP.

The server is ternd on the TURN config below (TurnServer).  TERN_DEV_COTURN=1
starts coturn's turnserver with equivalent flags instead: a developer aid for
comparing behaviour with a reference server, never what the suite runs.
"""
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))
from ternd import Ternd, conf, free_port, tls_files  # noqa: E402

DEV_COTURN = os.environ.get("TERN_DEV_COTURN") == "1"
REALM = "test.example"
USER, PASSWORD = "alice", "secret"
SECRETS = ("shared", "older")


def run(cmd, timeout=40):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)


def relay_range():
    """A 1000-port relay range, free-ish: above free_port()'s 20000-40000."""
    for _ in range(50):
        lo = 41000 + 1000 * (int.from_bytes(os.urandom(2), "big") % 18)
        probes = (lo, lo + 500, lo + 999)
        ok = True
        for p in probes:
            s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                s.bind(("127.0.0.1", p))
            except OSError:
                ok = False
            finally:
                s.close()
        if ok:
            return lo, lo + 999
    return 41000, 41999


def wait_tcp(port, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return True
        except OSError:
            time.sleep(0.05)
    return False


class TurnServer:
    """The TURN server under test, on loopback, stopped by PID.

    port: UDP+TCP, tls_port: TLS+DTLS, both with long-term users and the REST
    secrets.  With ternd, rest_port/rest_tls_port are the same ports.  coturn
    (TERN_DEV_COTURN=1 only) cannot mix static users with REST secrets (the
    secret mode overrides the users), so the dev aid runs a second turnserver
    for the REST credentials on its own ports.
    """

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="tern-turn-")
        self.cert, self.key = tls_files(self.dir)
        self.port = free_port()
        self.tls_port = free_port()
        self.relay_min, self.relay_max = relay_range()
        self.rest_port, self.rest_tls_port = self.port, self.tls_port
        self.procs = []
        self.ternd = None

    def ternd_conf(self):
        listen = ('{ proto = "udp"; ip = "127.0.0.1"; port = %d; }, '
                  '{ proto = "tcp"; ip = "127.0.0.1"; port = %d; }, '
                  '{ proto = "tls"; ip = "127.0.0.1"; port = %d; }, '
                  '{ proto = "dtls"; ip = "127.0.0.1"; port = %d; }'
                  % (self.port, self.port, self.tls_port, self.tls_port))
        extra = ('relay = { ip = [ "127.0.0.1" ]; min_port = %d; max_port = %d; };\n'
                 'tls = { cert = "%s"; key = "%s"; };\n'
                 'auth = { users = ( { user = "%s"; password = "%s"; } ); secrets = [ %s ]; };\n'
                 'peers = { allow_loopback = true; };\n'
                 % (self.relay_min, self.relay_max, self.cert, self.key, USER, PASSWORD,
                    ", ".join('"%s"' % s for s in SECRETS)))
        return conf(self.port, extra, listen=listen)

    def start(self):
        if not DEV_COTURN:
            self.ternd = Ternd(self.ternd_conf()).__enter__()
            return self
        # Developer aid: coturn's server with the equivalent of ternd_conf().
        self.rest_port, self.rest_tls_port = free_port(), free_port()
        half = (self.relay_max - self.relay_min) // 2
        common = ["turnserver", "-n", "--listening-ip=127.0.0.1", "--relay-ip=127.0.0.1",
                  "--realm=" + REALM, "--allow-loopback-peers", "--no-cli",
                  "--cert=" + self.cert, "--pkey=" + self.key, "--log-file=stdout", "--simple-log"]
        users = common + ["--listening-port=%d" % self.port, "--tls-listening-port=%d" % self.tls_port,
                          "--min-port=%d" % self.relay_min, "--max-port=%d" % (self.relay_min + half),
                          "--lt-cred-mech", "--user=%s:%s" % (USER, PASSWORD),
                          "--userdb=" + os.path.join(self.dir, "users.sqlite")]
        # several REST secrets at once only come from coturn's database
        secret_db = os.path.join(self.dir, "secrets.sqlite")
        import sqlite3
        db = sqlite3.connect(secret_db)
        db.execute("CREATE TABLE turn_secret (realm varchar(127) default '', value varchar(256), "
                   "primary key (realm,value))")
        db.executemany("INSERT INTO turn_secret VALUES (?, ?)", [(REALM, s) for s in SECRETS])
        db.commit()
        db.close()
        rest = common + ["--listening-port=%d" % self.rest_port,
                         "--tls-listening-port=%d" % self.rest_tls_port,
                         "--min-port=%d" % (self.relay_min + half + 1), "--max-port=%d" % self.relay_max,
                         "--use-auth-secret", "--userdb=" + secret_db]
        for i, cmd in enumerate((users, rest)):
            log = open(os.path.join(self.dir, "coturn%d.log" % i), "w")
            self.procs.append(subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT))
            log.close()
        for p in (self.port, self.tls_port, self.rest_port, self.rest_tls_port):
            if not wait_tcp(p):
                self.stop()
                raise RuntimeError("coturn did not start on port %d" % p)
        return self

    def stop(self):
        if self.ternd:
            self.ternd.stop()
            self.ternd = None
        for p in self.procs:
            stop_process(p)
        self.procs = []
        shutil.rmtree(self.dir, ignore_errors=True)

    def log(self):
        if self.ternd:
            return self.ternd.stderr()[-3000:]
        out = ""
        for i in range(2):
            try:
                with open(os.path.join(self.dir, "coturn%d.log" % i)) as f:
                    out += f.read()[-1500:]
            except OSError:
                pass
        return out


# --- turnutils_uclient ----------------------------------------------------------

CLIENTS, MESSAGES = 2, 20   # uclient pairs its clients (RTP + RTCP): 2 clients send 2*20
TOTALS = re.compile(r"start_mclient: tot_send_msgs=(\d+), tot_recv_msgs=(\d+)\s*$", re.M)
LOST = re.compile(r"Total lost packets (\d+) \(")


def start_peer(kinds=(socket.SOCK_DGRAM,)):
    """turnutils_peer echoing on a free loopback port: (process, port)."""
    port = free_port(kinds=kinds)
    proc = subprocess.Popen(["turnutils_peer", "-L", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.3)
    return proc, port


def stop_process(proc):
    """Stop a process this test started, by its handle."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def assert_relayed_all(tc, out, expected, why):
    """uclient's own totals: expected messages sent, all received, none lost."""
    totals = TOTALS.findall(out)
    tc.assertTrue(totals, why)
    sent, received = map(int, totals[-1])
    tc.assertEqual(sent, expected, why)
    tc.assertEqual(received, sent, why)
    tc.assertEqual(LOST.findall(out), ["0"], why)


class TurnutilsUclient(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.srv = TurnServer().start()
        cls.peer, cls.peer_port = start_peer()

    @classmethod
    def tearDownClass(cls):
        stop_process(cls.peer)
        cls.srv.stop()

    def uclient(self, *flags, port=None):
        cmd = ["timeout", "15", "turnutils_uclient", "-p", str(port or self.srv.port),
               "-e", "127.0.0.1", "-r", str(self.peer_port),
               "-m", str(CLIENTS), "-n", str(MESSAGES), "-l", "120", "-z", "5"] + list(flags) + ["127.0.0.1"]
        t0 = time.monotonic()
        p = run(cmd, timeout=40)
        out = p.stdout + p.stderr
        return p.returncode, out, time.monotonic() - t0

    def relays_all(self, *flags, port=None):
        rc, out, _ = self.uclient(*flags, port=port)
        # uclient -S without -t picks DTLS 1.0 or DTLS 1.2 at random for each
        # connection (a context of each kind); ternd accepts DTLS 1.2 only, on
        # purpose, so a run that drew 1.0 ends in a protocol_version alert (and
        # uclient may then hang until `timeout`). Such runs are drawn again; a
        # run that fails for any other reason fails the test.
        for _ in range(5):
            if rc == 0 or "-t" in flags or "-S" not in flags or "alert protocol version" not in out:
                break
            rc, out, _ = self.uclient(*flags, port=port)
        why = "%s\n--- client:\n%s\n--- server:\n%s" % (" ".join(flags), out[-3000:], self.srv.log())
        self.assertEqual(rc, 0, why)
        assert_relayed_all(self, out, CLIENTS * MESSAGES, why)

    def relays_nothing(self, *flags, port=None):
        rc, out, _ = self.uclient(*flags, port=port)
        why = "%s\n--- client:\n%s" % (" ".join(flags), out[-3000:])
        self.assertNotEqual(rc, 0, why)
        self.assertIn("Cannot complete Allocation", out, why)
        for _, received in TOTALS.findall(out):
            self.assertEqual(received, "0", why)

    # long-term credentials, every transport, channels (the default) and Send/Data indications
    def test_udp_channels(self):
        self.relays_all("-u", USER, "-w", PASSWORD)

    def test_udp_send_indications(self):
        self.relays_all("-s", "-u", USER, "-w", PASSWORD)

    def test_tcp_channels(self):
        self.relays_all("-t", "-u", USER, "-w", PASSWORD)

    def test_tcp_send_indications(self):
        self.relays_all("-t", "-s", "-u", USER, "-w", PASSWORD)

    def test_tls_channels(self):  # -S with -t: TLS
        self.relays_all("-S", "-t", "-u", USER, "-w", PASSWORD, port=self.srv.tls_port)

    def test_tls_send_indications(self):
        self.relays_all("-S", "-t", "-s", "-u", USER, "-w", PASSWORD, port=self.srv.tls_port)

    def test_dtls_channels(self):  # -S without -t: DTLS
        self.relays_all("-S", "-u", USER, "-w", PASSWORD, port=self.srv.tls_port)

    def test_dtls_send_indications(self):
        self.relays_all("-S", "-s", "-u", USER, "-w", PASSWORD, port=self.srv.tls_port)

    # REST: -W makes uclient build "<now+86400>:alice" and HMAC-SHA1(secret) itself;
    # -u gives the name part (without it the name would be "<ts>:").
    def test_rest_secret_udp(self):
        self.relays_all("-u", USER, "-W", SECRETS[0], port=self.srv.rest_port)

    def test_rest_secret_tcp_send_indications(self):
        self.relays_all("-t", "-s", "-u", USER, "-W", SECRETS[0], port=self.srv.rest_port)

    def test_rest_older_secret_still_accepted(self):
        self.relays_all("-u", USER, "-W", SECRETS[1], port=self.srv.rest_port)

    def test_rest_secret_dtls(self):
        self.relays_all("-S", "-u", USER, "-W", SECRETS[0], port=self.srv.rest_tls_port)

    # refusals
    def test_wrong_password_relays_nothing(self):
        self.relays_nothing("-u", USER, "-w", "not-" + PASSWORD)

    def test_wrong_password_tcp_relays_nothing(self):
        self.relays_nothing("-t", "-u", USER, "-w", "not-" + PASSWORD)

    def test_unknown_rest_secret_relays_nothing(self):
        self.relays_nothing("-u", USER, "-W", "not-a-secret", port=self.srv.rest_port)


# --- aioice --------------------------------------------------------------------

AIOICE_TURN_SNIPPET = r'''
import asyncio, sys
import aioice.turn

class Peer(asyncio.DatagramProtocol):
    """A plain UDP socket on loopback that echoes to whoever sent (the relayed address)."""
    def __init__(self):
        self.sources = set()
    def connection_made(self, transport):
        self.transport = transport
    def datagram_received(self, data, addr):
        self.sources.add(addr[:2])
        self.transport.sendto(b"echo:" + data, addr)

class Client(asyncio.DatagramProtocol):
    def __init__(self):
        self.received = asyncio.Queue()
    def datagram_received(self, data, addr):
        self.received.put_nowait((data, addr))

async def main(port, transport, user, password, count):
    loop = asyncio.get_running_loop()
    peer_tr, peer = await loop.create_datagram_endpoint(Peer, local_addr=("127.0.0.1", 0))
    peer_addr = peer_tr.get_extra_info("sockname")[:2]
    turn, client = await asyncio.wait_for(aioice.turn.create_turn_endpoint(
        Client, server_addr=("127.0.0.1", port), username=user, password=password,
        transport=transport), 10)
    relayed = turn.get_extra_info("sockname")
    print("relayed", relayed[0], relayed[1], flush=True)
    ok = 0
    for i in range(count):
        msg = b"msg-%d-" % i + bytes(range(i * 13 % 256)) * 3
        turn.sendto(msg, peer_addr)
        data, src = await asyncio.wait_for(client.received.get(), 5)
        if data == b"echo:" + msg and tuple(src[:2]) == tuple(peer_addr):
            ok += 1
        else:
            print("mismatch", data[:40], src)
    print("peer_saw", " ".join("%s:%d" % a for a in sorted(peer.sources)))
    print("roundtrips", ok)
    turn.close()
    await asyncio.sleep(0.2)
    peer_tr.close()

asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])))
'''


class AioiceTurn(unittest.TestCase):
    COUNT = 10

    @classmethod
    def setUpClass(cls):
        cls.srv = TurnServer().start()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    def aioice(self, transport, password=PASSWORD):
        return run(["timeout", "30", "/usr/bin/python3", "-c", AIOICE_TURN_SNIPPET,
                    str(self.srv.port), transport, USER, password, str(self.COUNT)], timeout=40)

    def round_trips(self, transport):
        p = self.aioice(transport)
        why = p.stdout + p.stderr[-3000:] + "\n--- server:\n" + self.srv.log()
        self.assertEqual(p.returncode, 0, why)
        relayed = re.search(r"^relayed (\S+) (\d+)$", p.stdout, re.M)
        self.assertTrue(relayed, why)
        self.assertEqual(relayed.group(1), "127.0.0.1", why)
        rport = int(relayed.group(2))
        self.assertTrue(self.srv.relay_min <= rport <= self.srv.relay_max, why)
        # the peer saw exactly one source: the relayed transport address
        self.assertIn("peer_saw 127.0.0.1:%d\n" % rport, p.stdout, why)
        self.assertIn("roundtrips %d\n" % self.COUNT, p.stdout, why)

    def test_udp_round_trips(self):
        self.round_trips("udp")

    def test_tcp_round_trips(self):
        self.round_trips("tcp")

    def test_wrong_password_is_refused(self):
        p = self.aioice("udp", password="not-" + PASSWORD)
        self.assertNotEqual(p.returncode, 0, p.stdout)
        self.assertNotIn("relayed", p.stdout)
        self.assertIn("401", p.stderr)


if __name__ == "__main__":
    unittest.main()
