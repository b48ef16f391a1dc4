"""Packaging: the manual pages (ternd.conf(5) lists exactly the keys of
README.md's "Configuration reference"; both pages render without a warning;
the example in ternd.conf(5) checks out); `make install` places the systemd
unit, naming the installed paths, and the manual pages, and `make uninstall`
takes them; `make deb` builds a Debian package that installs (user tern,
/etc/tern/ternd.conf a conffile readable by tern only, the unit enabled and
not started), whose programs run from their installed paths, whose unit
verifies in place and whose manual pages render, and that purges clean. The
package is installed on this machine (root; purged even when the test fails),
and only in the -O2 stage: it compiles its own copy of the tree."""
import glob
import grp
import os
import pwd
import re
import shlex
import shutil
import subprocess
import time
import unittest

from ternd import ROOT, BUILD, TERND, temp_dir
from test_systemd import ANALYZE, analyze, systemd_root

README = os.path.join(ROOT, "README.md")
CONF_5 = os.path.join(ROOT, "conf", "ternd.conf.5")
TERND_8 = os.path.join(ROOT, "scripts", "ternd.8")
HAS_TERNCTL = os.path.exists(os.path.join(ROOT, "client", "ternctl.c"))
HAS_TERNCTL_8 = os.path.exists(os.path.join(ROOT, "client", "ternctl.8"))
MAN_ENV = dict(os.environ, MANPAGER="cat", PAGER="cat", MANWIDTH="80", LC_ALL="C.UTF-8", MAN_KEEP_FORMATTING="")


def make(*args, timeout=300):
    return subprocess.run(["make", "-s", "-C", ROOT, "B=" + BUILD] + list(args), capture_output=True,
                          text=True, timeout=timeout)


def readme_keys():
    """The keys named in the first column of README.md's "Configuration
    reference" table (a cell may name several: `tls.cert`, `tls.key`)."""
    with open(README) as f:
        text = f.read()
    m = re.search(r"^## Configuration reference\n(.*?)^## ", text, re.S | re.M)
    assert m, "README.md has no Configuration reference section"
    keys = set()
    for line in m.group(1).splitlines():
        if not line.startswith("|") or line.startswith("|---") or line.startswith("| key |"):
            continue
        first = line.split("|")[1]
        keys.update(re.findall(r"`([a-z_][a-z_.]*)`", first))
    return keys


def man_keys():
    """The keys ternd.conf(5) documents: its `.It Ic KEY` entries."""
    with open(CONF_5) as f:
        return set(re.findall(r"^\.It Ic ([a-z_][a-z_.]*)", f.read(), re.M))


def render(*args):
    return subprocess.run(["man", "--warnings"] + list(args), capture_output=True, text=True,
                          env=MAN_ENV, timeout=60)


class ManPages(unittest.TestCase):
    def test_config_keys_match_readme(self):
        readme, man = readme_keys(), man_keys()
        self.assertGreater(len(readme), 30)
        self.assertEqual(sorted(readme - man), [], "in README.md's Configuration reference, not in ternd.conf(5)")
        self.assertEqual(sorted(man - readme), [], "in ternd.conf(5), not in README.md's Configuration reference")

    def test_pages_render_without_warnings(self):
        for page, words in ((TERND_8, ["SIGNALS", "SYSTEMD", "NOTIFY_SOCKET", "ternd.conf(5)"]),
                            (CONF_5, ["limits.max_bps", "control.path", "running as root"])):
            p = render("-l", page)
            self.assertEqual((p.returncode, p.stderr), (0, ""), page)
            for w in words:
                self.assertIn(w, p.stdout, page)

    def test_conf_5_example_checks(self):
        with open(CONF_5) as f:
            m = re.search(r"^\.Bd -literal.*?\n(.*?)^\.Ed", f.read(), re.S | re.M)
        path = os.path.join(temp_dir(), "example.conf")
        with open(path, "w") as f:
            f.write(m.group(1))
        p = subprocess.run([TERND, "-c", path, "--check-config"], capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

    def test_ternd_8_names_every_option(self):
        usage = subprocess.run([TERND, "--help"], capture_output=True, text=True).stdout
        with open(TERND_8) as f:
            page = f.read().replace("\\-", "-")
        for opt in re.findall(r"(--[a-z-]+|(?<![\w-])-[a-z]\b)", usage):
            self.assertIn(opt, re.sub(r"\bFl ", "-", page), opt)


class Install(unittest.TestCase):
    def installed(self, prefix):
        dest = temp_dir("tern-install-")
        p = make("install", "DESTDIR=" + dest, "PREFIX=" + prefix)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        return dest

    def test_unit_and_man_pages_installed_and_uninstalled(self):
        for prefix in ("/usr", "/usr/local"):
            dest = self.installed(prefix)
            files = {prefix + "/lib/systemd/system/ternd.service": 0o644,
                     prefix + "/share/man/man5/ternd.conf.5": 0o644,
                     prefix + "/share/man/man8/ternd.8": 0o644,
                     prefix + "/share/man/man1/ternc.1": 0o644,
                     prefix + "/sbin/ternd": 0o755, prefix + "/bin/ternc": 0o755}
            if HAS_TERNCTL:
                files[prefix + "/bin/ternctl"] = 0o755
            if HAS_TERNCTL_8:
                files[prefix + "/share/man/man8/ternctl.8"] = 0o644
            for rel, mode in files.items():
                self.assertEqual(os.stat(dest + rel).st_mode & 0o777, mode, rel)
            # the installed unit names this installation's paths
            with open(dest + prefix + "/lib/systemd/system/ternd.service") as f:
                unit = f.read()
            start = re.search(r"^ExecStart=(.*)$", unit, re.M).group(1)
            self.assertEqual(shlex.split(start), [prefix + "/sbin/ternd", "-c", prefix + "/etc/tern/ternd.conf"])
            self.assertIn(prefix + "/bin/ternctl -s /run/tern/ternd.sock reload", unit)
            if ANALYZE:  # and it verifies there (systemd reads /usr/local/lib/systemd/system too)
                p = analyze("verify", "--man=no", root=systemd_root(dest))
                self.assertEqual((p.returncode, p.stdout + p.stderr), (0, ""), prefix)
            p = make("uninstall", "DESTDIR=" + dest, "PREFIX=" + prefix)
            self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
            for rel in files:
                self.assertFalse(os.path.exists(dest + rel), rel)
            self.assertTrue(os.path.exists(dest + prefix + "/etc/tern/ternd.conf"))

    def test_installed_man_pages_render(self):
        dest = self.installed("/usr")
        for section, name in (("8", "ternd"), ("5", "ternd.conf")):
            p = render("-M", dest + "/usr/share/man", section, name)
            self.assertEqual((p.returncode, p.stderr), (0, ""), name)
            self.assertIn(name.upper() + "(" + section + ")", p.stdout)


def processes_of(exe):
    out = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink("/proc/%s/exe" % pid) == exe:
                out.append(int(pid))
        except OSError:
            pass
    return out


def dpkg_installed(name):
    p = subprocess.run(["dpkg-query", "-W", "-f=${Status}", name], capture_output=True, text=True)
    return "install ok installed" in p.stdout or "config-files" in p.stdout


@unittest.skipUnless(os.geteuid() == 0, "needs root: the package is installed with dpkg -i")
@unittest.skipIf(os.path.basename(BUILD) != "build",
                 "the package compiles its own copy of the tree: built in the -O2 stage only")
class Deb(unittest.TestCase):
    def setUp(self):
        if dpkg_installed("tern"):
            self.skipTest("a tern package is installed on this machine: not touching it")
        for path in ("/etc/tern", "/usr/sbin/ternd", "/usr/bin/ternctl", "/lib/systemd/system/ternd.service"):
            if os.path.lexists(path):
                self.skipTest("%s exists and no package owns it: not touching it" % path)
        for tool in ("dpkg-buildpackage", "dh"):
            self.assertTrue(shutil.which(tool), "%s is missing: scripts/install-deps --test installs "
                                                "debhelper and dpkg-dev" % tool)

    def purge(self):
        p = subprocess.run(["dpkg", "--purge", "tern"], capture_output=True, text=True, timeout=120,
                           env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        return p

    def test_deb_builds_installs_runs_and_purges(self):
        t0 = time.monotonic()
        p = make("deb", timeout=600)
        self.assertEqual(p.returncode, 0, (p.stdout + p.stderr)[-4000:])
        debs = glob.glob(os.path.join(ROOT, BUILD, "deb", "tern_*.deb"))
        self.assertEqual(len(debs), 1, debs)
        deb = debs[0]
        built = time.monotonic() - t0

        # what is in it
        listing = subprocess.run(["dpkg-deb", "-c", deb], capture_output=True, text=True).stdout
        paths = {line.split()[-1].lstrip(".") for line in listing.splitlines()}
        wanted = ["/usr/sbin/ternd", "/usr/bin/ternc", "/etc/tern/ternd.conf",
                  "/lib/systemd/system/ternd.service", "/usr/share/man/man8/ternd.8.gz",
                  "/usr/share/man/man5/ternd.conf.5.gz", "/usr/share/man/man1/ternc.1.gz"]
        if HAS_TERNCTL:
            wanted.append("/usr/bin/ternctl")
        if HAS_TERNCTL_8:
            wanted.append("/usr/share/man/man8/ternctl.8.gz")
        for path in wanted:
            self.assertIn(path, paths)
        conffiles = subprocess.run(["dpkg-deb", "-I", deb, "conffiles"], capture_output=True, text=True).stdout
        self.assertEqual(conffiles.split(), ["/etc/tern/ternd.conf"])
        version = subprocess.run(["dpkg-deb", "-f", deb, "Version"], capture_output=True, text=True).stdout.strip()

        # installed, then purged whatever happens
        self.addCleanup(self.purge)
        p = subprocess.run(["dpkg", "-i", deb], capture_output=True, text=True, timeout=300,
                           env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"), stdin=subprocess.DEVNULL)
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)

        user = pwd.getpwnam("tern")
        self.assertLess(user.pw_uid, 1000)
        self.assertEqual(user.pw_shell, "/usr/sbin/nologin")
        self.assertEqual(grp.getgrgid(user.pw_gid).gr_name, "tern")
        st = os.stat("/etc/tern/ternd.conf")
        self.assertEqual((st.st_uid, st.st_gid, st.st_mode & 0o777), (0, user.pw_gid, 0o640))
        # enabled, not started
        self.assertEqual(os.readlink("/etc/systemd/system/multi-user.target.wants/ternd.service"),
                         "/lib/systemd/system/ternd.service")
        self.assertEqual(processes_of("/usr/sbin/ternd"), [])

        p = subprocess.run(["/usr/sbin/ternd", "--version"], capture_output=True, text=True)
        self.assertEqual(p.stdout.strip(), "ternd " + version.split("-")[0])
        # no working credentials until the administrator adds some
        with open("/etc/tern/ternd.conf") as f:
            self.assertEqual([l for l in f if "demo" in l and not l.lstrip().startswith("#")], [])
        p = subprocess.run(["/usr/sbin/ternd", "-c", "/etc/tern/ternd.conf", "--check-config"],
                           capture_output=True, text=True)
        self.assertEqual((p.returncode, p.stdout.strip()), (0, "/etc/tern/ternd.conf: ok"), p.stderr)
        # the service's user can read its configuration
        p = subprocess.run(["setpriv", "--reuid", "tern", "--regid", "tern", "--init-groups",
                            "/usr/sbin/ternd", "-c", "/etc/tern/ternd.conf", "--check-config"],
                           capture_output=True, text=True)
        self.assertEqual(p.returncode, 0, p.stderr)
        p = subprocess.run(["/usr/bin/ternc", "--help"], capture_output=True, text=True)
        self.assertIn("ternc", p.stdout + p.stderr)
        if HAS_TERNCTL:
            p = subprocess.run(["/usr/bin/ternctl", "--help"], capture_output=True, text=True)
            self.assertEqual(p.returncode, 0, p.stderr)

        for args, words in ((["ternd"], ["TERND(8)", "SYSTEMD"]), (["5", "ternd.conf"], ["TERND.CONF(5)"]),
                            (["ternc"], ["TERNC(1)"])):
            p = render(*args)
            self.assertEqual((p.returncode, p.stderr), (0, ""), args)
            for w in words:
                self.assertIn(w, p.stdout, args)

        if ANALYZE:  # the unit, where it is installed, with the programs it names
            man = "--man=yes" if HAS_TERNCTL_8 else "--man=no"
            p = analyze("verify", man, "/lib/systemd/system/ternd.service")
            self.assertEqual((p.returncode, p.stdout + p.stderr), (0, ""))

        p = self.purge()
        self.assertEqual(p.returncode, 0, p.stdout + p.stderr)
        self.assertFalse(dpkg_installed("tern"))
        for path in ("/usr/sbin/ternd", "/usr/bin/ternc", "/usr/bin/ternctl", "/etc/tern",
                     "/lib/systemd/system/ternd.service",
                     "/etc/systemd/system/multi-user.target.wants/ternd.service"):
            self.assertFalse(os.path.lexists(path), path)
        p = subprocess.run(["dpkg-statoverride", "--list", "/etc/tern/ternd.conf"], capture_output=True)
        self.assertNotEqual(p.returncode, 0)
        print("\n    make deb: %.1f s, whole test: %.1f s" % (built, time.monotonic() - t0), end=" ")


if __name__ == "__main__":
    unittest.main()
