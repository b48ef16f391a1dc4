"""make install and make uninstall into a DESTDIR: ternd, ternc, ternc(1)
and the default configuration where GNU's directory variables say; an
existing configuration is never overwritten; the installed binaries run."""
import os
import subprocess
import tempfile
import unittest

from ternd import ROOT, BUILD, Ternd, conf, free_port


def make(*args):
    p = subprocess.run(["make", "-s", "-C", ROOT, "B=" + BUILD] + list(args), capture_output=True,
                       text=True, timeout=300)
    return p


class Install(unittest.TestCase):
    def setUp(self):
        self.dest = tempfile.mkdtemp(prefix="tern-install-")
        self.addCleanup(subprocess.run, ["rm", "-rf", self.dest])

    def path(self, rel):
        return os.path.join(self.dest, rel.lstrip("/"))

    def test_install_places_files_and_keeps_config(self):
        p = make("install", "DESTDIR=" + self.dest, "PREFIX=/usr")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        files = {"/usr/sbin/ternd": 0o755, "/usr/bin/ternc": 0o755,
                 "/usr/share/man/man1/ternc.1": 0o644, "/usr/etc/tern/ternd.conf": 0o644}
        for rel, mode in files.items():
            st = os.stat(self.path(rel))
            self.assertEqual(st.st_mode & 0o777, mode, rel)
        # the installed ternd checks the installed configuration
        p = subprocess.run([self.path("/usr/sbin/ternd"), "-c", self.path("/usr/etc/tern/ternd.conf"),
                            "--check-config"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        # the installed ternc talks to a ternd
        port = free_port()
        with Ternd(conf(port)):
            p = subprocess.run([self.path("/usr/bin/ternc"), "127.0.0.1", str(port)],
                               capture_output=True, text=True, timeout=10)
            self.assertIn("class=success", p.stdout)
        # the man page renders
        p = subprocess.run(["man", "-l", self.path("/usr/share/man/man1/ternc.1")], capture_output=True,
                           text=True, env=dict(os.environ, MANPAGER="cat", MANWIDTH="80"))
        self.assertEqual(p.returncode, 0, p.stderr)
        self.assertIn("nat", p.stdout)
        # an operator's configuration survives a second install ...
        with open(self.path("/usr/etc/tern/ternd.conf"), "a") as f:
            f.write("# edited by the operator\n")
        p = make("install", "DESTDIR=" + self.dest, "PREFIX=/usr")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        with open(self.path("/usr/etc/tern/ternd.conf")) as f:
            self.assertIn("# edited by the operator", f.read())
        # ... and uninstall, which takes the programs and leaves it
        p = make("uninstall", "DESTDIR=" + self.dest, "PREFIX=/usr")
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        for rel in ("/usr/sbin/ternd", "/usr/bin/ternc", "/usr/share/man/man1/ternc.1"):
            self.assertFalse(os.path.exists(self.path(rel)), rel)
        self.assertTrue(os.path.exists(self.path("/usr/etc/tern/ternd.conf")))


if __name__ == "__main__":
    unittest.main()
