"""Start and stop a real ternd for tests, and speak raw STUN to it.

Every server a test starts listens on loopback only, on ports chosen free at
start, and is stopped by its own PID when the test ends.
"""
import atexit
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import tempfile
import time
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("B", "build")
TERND = os.path.join(ROOT, BUILD, "ternd")
TERNC = os.path.join(ROOT, BUILD, "ternc")
MAGIC = 0x2112A442

_dirs = []  # every temporary directory a test made; removed when the run ends
atexit.register(lambda: [shutil.rmtree(d, ignore_errors=True) for d in _dirs])


def temp_dir(prefix="tern-test-"):
    d = tempfile.mkdtemp(prefix=prefix)
    _dirs.append(d)
    return d


_given = set()  # ports handed out in this run: two picks made before either is bound must differ


def _ephemeral_low():
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            return int(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port(kinds=(socket.SOCK_DGRAM, socket.SOCK_STREAM), hosts=("127.0.0.1",)):
    """A port free for every kind and host given (UDP and TCP by default), below the
    kernel's ephemeral range (so no outgoing connection takes it before the test binds it)
    and not handed out before in this run."""
    top = max(20999, min(40000, _ephemeral_low() - 301))
    for _ in range(200):
        port = random.randint(20000, top)
        if port in _given:
            continue
        ok = True
        for host in hosts:
            fam = socket.AF_INET6 if ":" in host else socket.AF_INET
            for kind in kinds:
                s = socket.socket(fam, kind)
                try:
                    s.bind((host, port))
                except OSError:
                    ok = False
                finally:
                    s.close()
        if ok:
            _given.add(port)
            return port
    raise RuntimeError("no free port")


class Ternd:
    """A ternd process on a config text; use as a context manager."""

    def __init__(self, conf_text, expect_ready=True):
        self.dir = temp_dir("ternd-test-")
        self.conf = os.path.join(self.dir, "ternd.conf")
        with open(self.conf, "w") as f:
            f.write(conf_text)
        self.log = os.path.join(self.dir, "stderr.log")
        self.expect_ready = expect_ready
        self.proc = None
        self.ready_line = ""

    def __enter__(self):
        self.errf = open(self.log, "w")
        self.proc = subprocess.Popen([TERND, "-c", self.conf], stdout=subprocess.PIPE,
                                     stderr=self.errf, text=True)
        if self.expect_ready:
            self.ready_line = self.proc.stdout.readline()
            if "listening on" not in self.ready_line:
                self.stop()
                raise RuntimeError("ternd did not start: " + self.stderr())
        return self

    def __exit__(self, *exc):
        self.stop()

    def stop(self, sig=signal.SIGTERM, timeout=10):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc and self.proc.stdout:
            self.proc.stdout.close()
        self.errf.close()
        report = self.stderr()
        if "Sanitizer" in report or "runtime error:" in report:
            raise AssertionError("sanitizer report from ternd:\n" + report[-4000:])
        # libevent's own complaints (an fd closed while still in epoll, ...)
        # bypass ternd's log: any of them is a bug
        libevent = [l for l in report.splitlines() if l.startswith(("[warn] ", "[err] ", "[debug] "))]
        if libevent:
            raise AssertionError("libevent warnings from ternd:\n" + "\n".join(libevent[:10]))
        return self.proc.returncode

    def alive(self):
        return self.proc.poll() is None

    def stderr(self):
        with open(self.log) as f:
            return f.read()


def conf(port, extra="", listen=None, host="127.0.0.1"):
    """A small config: UDP+TCP on host:port unless listen entries are given."""
    if listen is None:
        listen = ('{ proto = "udp"; ip = "%s"; port = %d; },'
                  '{ proto = "tcp"; ip = "%s"; port = %d; }' % (host, port, host, port))
    return ('realm = "test.example";\nsoftware = "ternd-test";\nworkers = 2;\n'
            'listen = ( %s );\nlog = { level = "debug"; };\n%s\n' % (listen, extra))


def tls_files(directory):
    """A self-signed certificate and key for 127.0.0.1 (openssl CLI)."""
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
                    "-subj", "/CN=127.0.0.1", "-keyout", key, "-out", cert],
                   check=True, capture_output=True)
    return cert, key


# --- raw STUN ----------------------------------------------------------------

def msg_type(method, cls):
    return ((method & 0xF80) << 2) | ((method & 0x70) << 1) | (method & 0xF) | \
           ((cls & 2) << 7) | ((cls & 1) << 4)


def attr(t, value):
    pad = (4 - len(value) % 4) % 4
    return struct.pack("!HH", t, len(value)) + value + b"\0" * pad


def request(attrs=b"", method=1, cls=0, tid=None, fingerprint=False, classic=False):
    tid = tid or os.urandom(16 if classic else 12)
    head = struct.pack("!HH", msg_type(method, cls), len(attrs) + (8 if fingerprint else 0))
    head += tid if classic else struct.pack("!I", MAGIC) + tid
    msg = head + attrs
    if fingerprint:
        crc = (zlib.crc32(msg) ^ 0x5354554E) & 0xFFFFFFFF
        msg += attr(0x8028, struct.pack("!I", crc))
    return msg, tid


def parse(data):
    """Decode a response: dict of type -> list of raw values, plus header fields."""
    t, length = struct.unpack("!HH", data[:4])
    out = {"type": t, "length": length, "tid": data[8:20], "cookie": data[4:8],
           "cls": ((t >> 7) & 2) | ((t >> 4) & 1), "attrs": {}, "order": []}
    i = 20
    while i + 4 <= len(data):
        at, al = struct.unpack("!HH", data[i:i + 4])
        out["attrs"].setdefault(at, []).append(data[i + 4:i + 4 + al])
        out["order"].append(at)
        i += 4 + al + (4 - al % 4) % 4
    return out


def xaddr(value, tid):
    fam, xport = struct.unpack("!xBH", value[:4])
    port = xport ^ (MAGIC >> 16)
    if fam == 1:
        ip = struct.unpack("!I", value[4:8])[0] ^ MAGIC
        return socket.inet_ntoa(struct.pack("!I", ip)), port
    key = struct.pack("!I", MAGIC) + tid
    raw = bytes(a ^ b for a, b in zip(value[4:20], key))
    return socket.inet_ntop(socket.AF_INET6, raw), port


def addr(value):
    fam, port = struct.unpack("!xBH", value[:4])
    if fam == 1:
        return socket.inet_ntoa(value[4:8]), port
    return socket.inet_ntop(socket.AF_INET6, value[4:20]), port


def error_code(value):
    return (value[2] & 7) * 100 + value[3]


def udp_exchange(host, port, data, timeout=1.0, sock=None):
    """Send one datagram; return (reply bytes, source) or (None, None)."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = sock or socket.socket(fam, socket.SOCK_DGRAM)
    s.settimeout(timeout)
    try:
        s.sendto(data, (host, port))
        reply, src = s.recvfrom(70000)
        return reply, src[:2]
    except socket.timeout:
        return None, None
    finally:
        if sock is None:
            s.close()


def recv_frame(sock):
    """Read one STUN frame from a stream socket."""
    buf = b""
    while len(buf) < 20:
        chunk = sock.recv(20 - len(buf))
        if not chunk:
            return None
        buf += chunk
    need = 20 + struct.unpack("!H", buf[2:4])[0]
    while len(buf) < need:
        chunk = sock.recv(need - len(buf))
        if not chunk:
            return None
        buf += chunk
    return buf


def wait_closed(sock, timeout):
    """True if the peer closes the stream within timeout seconds."""
    sock.settimeout(timeout)
    try:
        while True:
            data = sock.recv(4096)
            if not data:
                return True
    except socket.timeout:
        return False
    except OSError:
        return True
