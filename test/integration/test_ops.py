"""Operating ternd: config errors, certificates, ports in use, signals."""
import os
import re
import signal
import socket
import subprocess
import tempfile
import time
import unittest

from ternd import Ternd, conf, free_port, request, parse, udp_exchange, TERND, ROOT, tls_files, temp_dir


def read(path):
    with open(path) as f:
        return f.read()


def run_ternd(text, *args):
    d = temp_dir()
    path = os.path.join(d, "bad.conf")
    with open(path, "w") as f:
        f.write(text)
    p = subprocess.run([TERND, "-c", path] + list(args), capture_output=True, text=True, timeout=10)
    return p, path


class ConfigErrors(unittest.TestCase):
    def test_default_config_checks(self):
        p = subprocess.run([TERND, "-c", os.path.join(ROOT, "conf/ternd.conf"), "--check-config"],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(p.returncode, 0, p.stderr)

    def test_unknown_key_names_file_and_line(self):
        p, path = run_ternd('realm = "x";\n\nbogus = 1;\n', "--check-config")
        self.assertNotEqual(p.returncode, 0)
        self.assertRegex(p.stderr.strip(), "^" + re.escape(path) + r":3: .*bogus")
        self.assertEqual(len(p.stderr.strip().splitlines()), 1)

    def test_syntax_error_names_line(self):
        p, path = run_ternd('realm = "x";\nlisten = ( { proto = ; } );\n')
        self.assertNotEqual(p.returncode, 0)
        self.assertRegex(p.stderr.strip(), "^" + re.escape(path) + r":2: ")

    def test_bad_port_names_line(self):
        p, path = run_ternd('realm = "x";\nlisten = (\n { proto = "udp"; ip = "127.0.0.1"; port = 70000; } );\n')
        self.assertNotEqual(p.returncode, 0)
        self.assertRegex(p.stderr.strip(), "^" + re.escape(path) + r":3: ")

    def test_missing_file(self):
        p = subprocess.run([TERND, "-c", "/nonexistent/ternd.conf"], capture_output=True, text=True)
        self.assertNotEqual(p.returncode, 0)
        self.assertIn("/nonexistent/ternd.conf", p.stderr)


class StartupErrors(unittest.TestCase):
    def test_missing_certificate_is_one_clear_line(self):
        port = free_port()
        text = conf(port, 'tls = { cert = "/nonexistent/cert.pem"; key = "/nonexistent/key.pem"; };',
                    listen='{ proto = "tls"; ip = "127.0.0.1"; port = %d; }' % port)
        p, _ = run_ternd(text)
        self.assertNotEqual(p.returncode, 0)
        lines = [l for l in p.stderr.splitlines() if "error" in l]
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertIn("/nonexistent/cert.pem", lines[0])

    def test_port_in_use_is_one_clear_line(self):
        port = free_port()
        holder = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        holder.bind(("127.0.0.1", port))
        p, _ = run_ternd(conf(port))
        holder.close()
        self.assertNotEqual(p.returncode, 0)
        lines = [l for l in p.stderr.splitlines() if "error" in l]
        self.assertEqual(len(lines), 1, p.stderr)
        self.assertIn("127.0.0.1:%d" % port, lines[0])
        self.assertIn("in use", lines[0])

    def test_second_ternd_on_same_port_refused(self):
        port = free_port()
        with Ternd(conf(port)) as first:
            p, _ = run_ternd(conf(port))
            self.assertNotEqual(p.returncode, 0)
            self.assertIn("in use", p.stderr)
            self.assertTrue(first.alive())


class ReadyLine(unittest.TestCase):
    def test_ready_line_has_ice_servers_json(self):
        import json
        port = free_port()
        text = conf(port, 'auth = { users = ( { user = "demo"; password = "pw"; } ); };')
        with Ternd(text) as srv:
            ice = json.loads(srv.ready_line.split("iceServers: ", 1)[1])
            self.assertEqual(ice[0]["urls"], ["stun:127.0.0.1:%d" % port])
            self.assertEqual(ice[1]["urls"], ["turn:127.0.0.1:%d?transport=udp" % port,
                                              "turn:127.0.0.1:%d?transport=tcp" % port])
            self.assertEqual((ice[1]["username"], ice[1]["credential"]), ("demo", "pw"))


class Signals(unittest.TestCase):
    def test_sigterm_exits_cleanly(self):
        port = free_port()
        srv = Ternd(conf(port)).__enter__()
        self.assertEqual(srv.stop(signal.SIGTERM), 0)

    def test_sigint_exits_cleanly(self):
        port = free_port()
        srv = Ternd(conf(port)).__enter__()
        self.assertEqual(srv.stop(signal.SIGINT), 0)

    def test_sighup_reopens_log_and_reloads_certificates(self):
        d = temp_dir()
        cert, key = tls_files(d)
        log = os.path.join(d, "ternd.log")
        port = free_port()
        text = conf(port, 'tls = { cert = "%s"; key = "%s"; };' % (cert, key),
                    listen='{ proto = "udp"; ip = "127.0.0.1"; port = %d; }, { proto = "tls"; ip = "127.0.0.1"; port = %d; }'
                    % (port, port)).replace('log = { level = "debug"; };', 'log = { level = "info"; file = "%s"; };' % log)
        with Ternd(text) as srv:
            os.rename(log, log + ".1")  # what logrotate does
            cert2, key2 = tls_files(temp_dir())
            os.replace(cert2, cert)
            os.replace(key2, key)
            srv.proc.send_signal(signal.SIGHUP)
            for _ in range(50):
                if os.path.exists(log) and "reloaded" in read(log):
                    break
                time.sleep(0.1)
            self.assertIn("certificates reloaded", read(log))
            import ssl
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
            ctx.load_verify_locations(cert)
            ctx.check_hostname = False
            s = ctx.wrap_socket(socket.create_connection(("127.0.0.1", port), timeout=3))
            s.close()  # verified against the new certificate only
            # a broken certificate keeps the old one running
            with open(cert, "w") as f:
                f.write("garbage")
            srv.proc.send_signal(signal.SIGHUP)
            time.sleep(0.5)
            self.assertTrue(srv.alive())
            self.assertIn("keeping the old certificates", read(log))
            msg, tid = request()
            self.assertIsNotNone(udp_exchange("127.0.0.1", port, msg)[0])


if __name__ == "__main__":
    unittest.main()
