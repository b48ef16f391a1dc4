"""The TLS front door: ALPN (RFC 7443), protocol versions, cipher lists and
session resumption with rotating ticket keys, driven with `openssl s_client`
(the real client) and Python's ssl module against a running ternd.
"""
import os
import re
import signal
import socket
import ssl
import subprocess
import time
import unittest
import urllib.request

from ternd import Ternd, TERND, conf, free_port, parse, recv_frame, request, temp_dir, tls_files
from test_metrics import parse_metrics, total

HOST = "127.0.0.1"
_FILES = None


def files():
    global _FILES
    if _FILES is None:
        _FILES = tls_files(temp_dir())
    return _FILES


def front_conf(port, tls_extra="", extra=""):
    cert, key = files()
    listen = ('{ proto = "tls"; ip = "%s"; port = %d; }, { proto = "dtls"; ip = "%s"; port = %d; }'
              % (HOST, port, HOST, port))
    return conf(port, listen=listen,
                extra='tls = { cert = "%s"; key = "%s"; %s };\n%s' % (cert, key, tls_extra, extra))


def s_client(port, *args, sess_in=None, sess_out=None, dtls=False):
    """openssl s_client's output (stdout and stderr) for one connection that
    stays up 0.4 s, long enough to read TLS 1.3's session tickets."""
    cmd = ["openssl", "s_client", "-connect", "%s:%d" % (HOST, port), "-servername", "localhost"]
    if dtls:
        cmd.append("-dtls1_2")
    if sess_in:
        cmd += ["-sess_in", sess_in]
    if sess_out:
        cmd += ["-sess_out", sess_out]
    cmd += list(args)
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True)
    time.sleep(0.4)
    try:
        out, _ = p.communicate("", timeout=10)
    except subprocess.TimeoutExpired:
        p.kill()
        out, _ = p.communicate()
    return out


def handshake(out):
    """("New"|"Reused", version, cipher) from s_client's output, or None when
    no session was established."""
    m = re.search(r"^(New|Reused), (\S+), Cipher is (\S+)", out, re.M)
    if not m or m.group(3) == "(NONE)":
        return None
    return m.group(1), m.group(2).rstrip(","), m.group(3)


def alpn(out):
    m = re.search(r"^ALPN protocol: (\S+)", out, re.M)
    return m.group(1) if m else None


class TlsFront(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.port = free_port()
        cls.srv = Ternd(front_conf(cls.port)).__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.srv.stop()

    # --- ALPN (RFC 7443) -------------------------------------------------------

    def test_alpn_stun_turn_and_nat_discovery_are_taken_over_tls_and_dtls(self):
        for dtls in (False, True):
            for proto in ("stun.turn", "stun.nat-discovery"):
                out = s_client(self.port, "-alpn", proto, dtls=dtls)
                self.assertIsNotNone(handshake(out), out)
                self.assertEqual(alpn(out), proto, out)

    def test_alpn_first_of_ours_among_others(self):
        out = s_client(self.port, "-alpn", "h2,stun.turn,http/1.1")
        self.assertEqual(alpn(out), "stun.turn", out)

    def test_alpn_only_something_else_is_refused_with_the_alert(self):
        for dtls in (False, True):
            out = s_client(self.port, "-alpn", "h2", dtls=dtls)
            self.assertIsNone(handshake(out), out)
            self.assertIn("no application protocol", out)

    def test_no_alpn_goes_on(self):
        out = s_client(self.port)
        self.assertIsNotNone(handshake(out), out)
        self.assertIn("No ALPN negotiated", out)

    def test_binding_over_a_connection_that_negotiated_stun_turn(self):
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        ctx.set_alpn_protocols(["stun.turn"])
        with ctx.wrap_socket(socket.create_connection((HOST, self.port), timeout=3)) as s:
            self.assertEqual(s.selected_alpn_protocol(), "stun.turn")
            msg, tid = request()
            s.sendall(msg)
            r = parse(recv_frame(s))
            self.assertEqual((r["cls"], r["tid"]), (2, tid))

    # --- versions ----------------------------------------------------------

    def test_tls13_preferred_tls12_taken_older_refused(self):
        self.assertEqual(handshake(s_client(self.port))[1], "TLSv1.3")
        self.assertEqual(handshake(s_client(self.port, "-tls1_2"))[1], "TLSv1.2")
        out = s_client(self.port, "-tls1_1")
        self.assertIsNone(handshake(out), out)

    # --- resumption --------------------------------------------------------

    def assert_resumes(self, *args, dtls=False):
        sess = os.path.join(temp_dir(), "sess.pem")
        first = s_client(self.port, *args, sess_out=sess, dtls=dtls)
        self.assertEqual(handshake(first)[0], "New", first)
        out = s_client(self.port, "-msg", *args, sess_in=sess, dtls=dtls)
        self.assertEqual(handshake(out)[0], "Reused", out)
        # the resumed handshake skips the certificate (and so its signature)
        self.assertNotRegex(out, r"<<< .*Handshake.*Certificate", out)
        self.assertRegex(first, r"Server certificate|BEGIN CERTIFICATE")
        return sess

    def test_tls13_session_resumes_without_the_certificate(self):
        self.assert_resumes()

    def test_tls12_session_resumes_by_ticket(self):
        self.assert_resumes("-tls1_2")

    def test_dtls_session_resumes(self):
        self.assert_resumes(dtls=True)


class TlsSettings(unittest.TestCase):

    def test_min_version_13_refuses_tls12(self):
        port = free_port()
        with Ternd(front_conf(port, 'min_version = "1.3";')):
            out = s_client(port, "-tls1_2")
            self.assertIsNone(handshake(out), out)
            self.assertEqual(handshake(s_client(port))[1], "TLSv1.3")
            # DTLS stays 1.2: there is no DTLS 1.3 in OpenSSL 3.0
            self.assertIsNotNone(handshake(s_client(port, dtls=True)))

    def test_cipher_lists_are_the_only_ones_taken(self):
        port = free_port()
        with Ternd(front_conf(port, 'ciphers = "ECDHE-RSA-AES128-GCM-SHA256"; '
                                    'ciphersuites = "TLS_CHACHA20_POLY1305_SHA256";')):
            out = s_client(port, "-tls1_2", "-cipher", "ECDHE-RSA-AES256-GCM-SHA384")
            self.assertIsNone(handshake(out), out)
            self.assertEqual(handshake(s_client(port, "-tls1_2"))[2], "ECDHE-RSA-AES128-GCM-SHA256")
            out = s_client(port, "-ciphersuites", "TLS_AES_128_GCM_SHA256")
            self.assertIsNone(handshake(out), out)
            self.assertEqual(handshake(s_client(port))[2], "TLS_CHACHA20_POLY1305_SHA256")

    def test_handshakes_counted_full_and_resumed(self):
        port, mport = free_port(), free_port(kinds=(socket.SOCK_STREAM,))
        with Ternd(front_conf(port, extra='metrics = { ip = "127.0.0.1"; port = %d; };' % mport)):
            for dtls in (False, True):
                sess = os.path.join(temp_dir(), "sess.pem")
                self.assertEqual(handshake(s_client(port, sess_out=sess, dtls=dtls))[0], "New")
                for _ in range(2):
                    self.assertEqual(handshake(s_client(port, sess_in=sess, dtls=dtls))[0], "Reused")
            with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport, timeout=5) as r:
                series, _ = parse_metrics(r.read().decode())
            for transport in ("tls", "dtls"):
                self.assertEqual(total(series, "tern_tls_handshakes_total", transport=transport,
                                       resumed="false"), 1, transport)
                self.assertEqual(total(series, "tern_tls_handshakes_total", transport=transport,
                                       resumed="true"), 2, transport)

    def test_tickets_survive_a_reload(self):
        # observed before the ticket keys were the process's: every SIGHUP
        # made each reconnecting client pay a full handshake
        port = free_port()
        with Ternd(front_conf(port)) as srv:
            sess = os.path.join(temp_dir(), "sess.pem")
            self.assertEqual(handshake(s_client(port, sess_out=sess))[0], "New")
            n = srv.stderr().count("reload: ")
            srv.proc.send_signal(signal.SIGHUP)
            deadline = time.time() + 5
            while srv.stderr().count("reload: ") == n and time.time() < deadline:
                time.sleep(0.05)
            self.assertNotIn("reload refused", srv.stderr())
            self.assertEqual(handshake(s_client(port, sess_in=sess))[0], "Reused")

    def test_ticket_key_rotation(self):
        port = free_port()
        with Ternd(front_conf(port, "ticket_key_rotation = 3;")):
            # The first key was made at start, well under 3 s ago: 3 s later
            # it is the previous key (age 3 to 6 s), whose tickets still open.
            sess = os.path.join(temp_dir(), "sess.pem")
            self.assertEqual(handshake(s_client(port, "-tls1_2", sess_out=sess))[0], "New")
            time.sleep(3.0)
            self.assertEqual(handshake(s_client(port, "-tls1_2", sess_in=sess))[0], "Reused")
            # That handshake rotated the keys: a ticket sealed now is refused
            # two rotations later.
            old = os.path.join(temp_dir(), "old.pem")
            self.assertEqual(handshake(s_client(port, "-tls1_2", sess_out=old))[0], "New")
            time.sleep(6.5)
            self.assertEqual(handshake(s_client(port, "-tls1_2", sess_in=old))[0], "New")


class TlsConfigErrors(unittest.TestCase):

    def check(self, tls_extra, pattern):
        cert, key = files()
        text = ('realm = "test.example";\nlisten = ( { proto = "tls"; ip = "127.0.0.1"; port = 5349; } );\n'
                'tls = {\n  cert = "%s";\n  key = "%s";\n  %s\n};\n' % (cert, key, tls_extra))
        path = os.path.join(temp_dir(), "ternd.conf")
        with open(path, "w") as f:
            f.write(text)
        p = subprocess.run([TERND, "-c", path, "--check-config"], capture_output=True, text=True, timeout=30)
        self.assertNotEqual(p.returncode, 0)
        self.assertRegex(p.stderr, r"ternd\.conf:6: ")
        self.assertRegex(p.stderr, pattern)

    def test_bad_min_version(self):
        self.check('min_version = "1.1";', r"tls\.min_version.*1\.2.*1\.3")

    def test_bad_cipher_list(self):
        self.check('ciphers = "NO-SUCH-CIPHER";', r"tls\.ciphers")

    def test_bad_ciphersuites(self):
        self.check('ciphersuites = "TLS_NO_SUCH_SUITE";', r"tls\.ciphersuites")

    def test_rotation_out_of_range(self):
        self.check("ticket_key_rotation = 0;", r"ticket_key_rotation")


if __name__ == "__main__":
    unittest.main()
