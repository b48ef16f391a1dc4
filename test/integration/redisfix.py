"""A real redis-server for tests (Debian package redis-server), on a private
loopback port with a temporary directory, plus a tiny RESP client."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time

from ternd import free_port


class RedisServer:
    def __init__(self, port=None):
        self.port = port or free_port(kinds=(socket.SOCK_STREAM,))
        self.dir = tempfile.mkdtemp(prefix="tern-redis-")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir, "--enable-debug-command", "yes"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        for _ in range(100):
            try:
                if self.cmd("PING") == "PONG":
                    return self
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def cleanup(self):
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self):
        return "redis://127.0.0.1:%d/0" % self.port

    def cmd(self, *args, timeout=5):
        s = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        try:
            s.sendall(encode(args))
            return read_reply(s.makefile("rb"))
        finally:
            s.close()


def encode(args):
    out = b"*%d\r\n" % len(args)
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out += b"$%d\r\n%s\r\n" % (len(a), a)
    return out


def read_reply(f):
    line = f.readline()
    if not line:
        raise OSError("connection closed")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        return RuntimeError(rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        if n < 0:
            return None
        data = f.read(n + 2)[:-2]
        return data.decode(errors="replace")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [read_reply(f) for _ in range(n)]
    raise OSError("bad reply %r" % line)


class Subscriber:
    """PSUBSCRIBE in the background; messages collect in .messages."""

    def __init__(self, port, pattern):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=5)
        self.sock.sendall(encode(("PSUBSCRIBE", pattern)))
        self.f = self.sock.makefile("rb")
        read_reply(self.f)  # subscription confirmation

    def collect(self, seconds):
        msgs = []
        self.sock.settimeout(seconds)
        end = time.time() + seconds
        try:
            while time.time() < end:
                r = read_reply(self.f)
                if isinstance(r, list) and r[0] == "pmessage":
                    msgs.append((r[2], r[3]))
        except (socket.timeout, OSError):
            pass
        return msgs

    def close(self):
        self.sock.close()
