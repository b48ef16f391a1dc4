"""Small socket helpers of the soak: TLS without a handshake library's help
(a ClientHello as bytes), stream sockets from other loopback addresses, and
timing how long ternd takes to close a connection."""
import errno
import select
import socket
import ssl
import time


def src_ip(rng):
    """A random source address in 127.0.0.0/8 other than 127.0.0.1: faults come
    from their own addresses, so the per-source limit on unauthenticated
    answers of 127.0.0.1 (where the real clients are) is not theirs."""
    return "127.0.%d.%d" % (rng.randint(0, 3), rng.randint(2, 250))


def client_ctx():
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def client_hello():
    """The first flight of a TLS client, as bytes."""
    inc, out = ssl.MemoryBIO(), ssl.MemoryBIO()
    obj = client_ctx().wrap_bio(inc, out)
    try:
        obj.do_handshake()
    except ssl.SSLWantReadError:
        pass
    return out.read()


def tcp(host, port, src=None, timeout=3.0, rcvbuf=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    s.settimeout(timeout)
    if src:
        s.bind((src, 0))
    try:
        s.connect((host, port))
    except OSError:
        s.close()
        raise
    return s


def tls(host, port, src=None, timeout=3.0, rcvbuf=None):
    raw = tcp(host, port, src, timeout, rcvbuf)
    try:
        return client_ctx().wrap_socket(raw)
    except (OSError, ssl.SSLError):
        raw.close()
        raise


def udp(src=None):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind((src or "127.0.0.1", 0))
    return s


def reset_close(s):
    """Close with an RST (SO_LINGER 0): a client that vanishes hard."""
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\0\0\0\0\0\0\0")
    except OSError:
        pass
    s.close()


def closed_within(s, seconds, stop=None):
    """Seconds until the server closes the stream (EOF or reset), reading and
    discarding whatever it sends; None if still open after `seconds`; -1 if
    the run stopped first (no verdict)."""
    t0 = time.monotonic()
    s.setblocking(False)
    while True:
        left = seconds - (time.monotonic() - t0)
        if stop is not None and stop.is_set():
            return -1
        if left <= 0:
            return None
        try:
            r, _, _ = select.select([s], [], [], min(left, 0.5))
        except (OSError, ValueError):
            return time.monotonic() - t0
        if not r:
            continue
        try:
            data = s.recv(65536)
        except ssl.SSLWantReadError:
            continue
        except (ssl.SSLError, OSError) as e:
            if getattr(e, "errno", None) in (errno.EAGAIN,):
                continue
            return time.monotonic() - t0
        if not data:
            return time.monotonic() - t0


def served_cert_der(host, port, timeout=3.0):
    s = tls(host, port, timeout=timeout)
    try:
        return s.getpeercert(binary_form=True)
    finally:
        s.close()


def cert_der(path):
    with open(path) as f:
        return ssl.PEM_cert_to_DER_cert(f.read())
