"""A small TURN client for tests: long-term credentials, every method, raw bytes.

Messages are built by hand from the RFCs so the tests do not share code with
the server they check.
"""
import base64
import hashlib
import hmac
import os
import socket
import ssl
import struct
import time
import zlib

from ternd import MAGIC, attr, msg_type, parse, xaddr, error_code, recv_frame

ALLOCATE, REFRESH, SEND, DATA, CREATE_PERMISSION, CHANNEL_BIND = 3, 4, 6, 7, 8, 9
CONNECT, CONNECTION_BIND, CONNECTION_ATTEMPT = 0xA, 0xB, 0xC  # RFC 6062
A_USERNAME, A_MI, A_ERROR, A_UNKNOWN, A_CHANNEL, A_LIFETIME = 0x6, 0x8, 0x9, 0xA, 0xC, 0xD
A_PEER, A_DATA, A_REALM, A_NONCE, A_RELAYED, A_RAF = 0x12, 0x13, 0x14, 0x15, 0x16, 0x17
A_EVEN, A_TRANSPORT, A_DF, A_MI256, A_PWALG, A_USERHASH = 0x18, 0x19, 0x1A, 0x1C, 0x1D, 0x1E
A_XMAPPED, A_TOKEN, A_AAF, A_ADDR_ERR, A_PWALGS, A_SOFTWARE, A_FP = 0x20, 0x22, 0x8000, 0x8001, 0x8002, 0x8022, 0x8028
A_ORIGIN = 0x802F  # draft-ietf-tram-stun-origin, as coturn sends it
A_CONNECTION_ID = 0x002A  # RFC 6062


def xor_addr(host, port, tid):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    raw = socket.inet_pton(fam, host)
    xport = port ^ (MAGIC >> 16)
    if fam == socket.AF_INET:
        ip = struct.unpack("!I", raw)[0] ^ MAGIC
        return struct.pack("!BBHI", 0, 1, xport, ip)
    key = struct.pack("!I", MAGIC) + tid
    return struct.pack("!BBH", 0, 2, xport) + bytes(a ^ b for a, b in zip(raw, key))


def long_term_key(user, realm, password, sha256=False):
    data = ("%s:%s:%s" % (user, realm, password)).encode()
    return hashlib.sha256(data).digest() if sha256 else hashlib.md5(data).digest()


def rest_credentials(secret, name="alice", ttl=3600, now=None):
    user = "%d:%s" % (int(now if now is not None else time.time()) + ttl, name)
    pw = base64.b64encode(hmac.new(secret.encode(), user.encode(), hashlib.sha1).digest()).decode()
    return user, pw


def build(method, attrs, key=None, cls=0, tid=None, sha256=False, fingerprint=False):
    """A message with MESSAGE-INTEGRITY(-SHA256) over it when key is given."""
    tid = tid or os.urandom(12)
    body = b"".join(attrs)
    head = lambda extra: struct.pack("!HHI", msg_type(method, cls), len(body) + extra, MAGIC) + tid
    if key is not None:
        if sha256:
            mac = hmac.new(key, head(36) + body, hashlib.sha256).digest()
            body += attr(A_MI256, mac)
        else:
            mac = hmac.new(key, head(24) + body, hashlib.sha1).digest()
            body += attr(A_MI, mac)
    msg = head(0) + body
    if fingerprint:
        msg = struct.pack("!HHI", msg_type(method, cls), len(body) + 8, MAGIC) + tid + body
        crc = (zlib.crc32(msg) ^ 0x5354554E) & 0xFFFFFFFF
        msg += attr(A_FP, struct.pack("!I", crc))
    return msg, tid


def check_integrity(reply, key, sha256=False):
    """Does the response's MESSAGE-INTEGRITY verify with key?"""
    i = 20
    while i + 4 <= len(reply):
        t, l = struct.unpack("!HH", reply[i:i + 4])
        if t == (A_MI256 if sha256 else A_MI):
            head = reply[:2] + struct.pack("!H", i + 4 + l - 20) + reply[4:i]
            fn = hashlib.sha256 if sha256 else hashlib.sha1
            return hmac.compare_digest(hmac.new(key, head, fn).digest()[:l], reply[i + 4:i + 4 + l])
        i += 4 + l + (4 - l % 4) % 4
    return False


class Turn:
    """One client 5-tuple over udp, tcp or tls."""

    def __init__(self, host, port, user="alice", password="secret", realm="test.example",
                 transport="udp", bind=None, timeout=2.0, server_hostname=None, origin=None):
        """server_hostname: the TLS SNI name; origin: an ORIGIN attribute
        (0x802F) appended to every request this client sends."""
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.server = (host, port)
        self.transport = transport
        self.origin = origin
        self.user, self.password, self.realm = user, password, realm
        self.key = long_term_key(user, realm, password)
        self.nonce = None
        if transport == "udp":
            self.sock = socket.socket(fam, socket.SOCK_DGRAM)
            if bind:
                self.sock.bind(bind)
        else:
            raw = socket.create_connection(self.server, timeout=timeout, source_address=bind)
            if transport == "tls":
                ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
                ctx.check_hostname = False
                ctx.verify_mode = ssl.CERT_NONE
                raw = ctx.wrap_socket(raw, server_hostname=server_hostname)
            self.sock = raw
        self.sock.settimeout(timeout)
        self.pending = []  # data messages that arrived while waiting for a response

    def close(self):
        self.sock.close()

    def send_raw(self, data):
        if self.transport == "udp":
            self.sock.sendto(data, self.server)
        else:
            self.sock.sendall(data)

    def recv_raw(self):
        if self.transport == "udp":
            return self.sock.recvfrom(70000)[0]
        head = b""
        while len(head) < 4:
            c = self.sock.recv(4 - len(head))
            if not c:
                return None
            head += c
        if head[0] & 0xC0 == 0x40:
            n = struct.unpack("!H", head[2:4])[0]
            n = (n + 3) & ~3
        else:
            n = 16 + struct.unpack("!H", head[2:4])[0]
        body = b""
        while len(body) < n:
            c = self.sock.recv(n - len(body))
            if not c:
                return None
            body += c
        return head + body

    def exchange(self, msg, tid):
        """Send a request, return the parsed response with the same tid (or None)."""
        self.send_raw(msg)
        deadline = time.time() + self.sock.gettimeout()
        while time.time() < deadline:
            try:
                data = self.recv_raw()
            except (socket.timeout, ssl.SSLError):
                return None
            if data is None:
                return None
            if data[0] & 0xC0 == 0 and data[8:20] == tid:
                r = parse(data)
                r["raw"] = data
                return r
            self.pending.append(data)
        return None

    def auth_attrs(self):
        return [attr(A_USERNAME, self.user.encode()), attr(A_REALM, self.realm.encode()),
                attr(A_NONCE, self.nonce)]

    def request(self, method, attrs=(), auth=True, tid=None, sha256=False):
        """Authenticated request; learns the nonce from a 401/438 and retries once."""
        attrs = list(attrs)
        if self.origin is not None:
            attrs.append(attr(A_ORIGIN, self.origin.encode()))
        for _ in range(3):
            if auth and self.nonce:
                msg, tid2 = build(method, attrs + self.auth_attrs(), self.key, tid=tid, sha256=sha256)
            else:
                msg, tid2 = build(method, attrs, tid=tid)
            r = self.exchange(msg, tid2)
            if r is None or not auth:
                return r
            if r["cls"] == 3 and error_code(r["attrs"][A_ERROR][0]) in (401, 438) and A_NONCE in r["attrs"]:
                stale = self.nonce is not None and error_code(r["attrs"][A_ERROR][0]) == 401
                self.nonce = r["attrs"][A_NONCE][0]
                if stale:
                    return r
                continue
            return r
        return r

    def allocate(self, extra=(), lifetime=None, protocol=17):
        attrs = [attr(A_TRANSPORT, bytes([protocol, 0, 0, 0]))] + list(extra)
        if lifetime is not None:
            attrs.append(attr(A_LIFETIME, struct.pack("!I", lifetime)))
        r = self.request(ALLOCATE, attrs)
        if r and r["cls"] == 2:
            self.relayed = [xaddr(v, r["tid"]) for v in r["attrs"][A_RELAYED]]
        return r

    def allocate_tcp(self, extra=(), lifetime=None):
        """RFC 6062: an Allocate with REQUESTED-TRANSPORT TCP (6)."""
        return self.allocate(extra, lifetime, protocol=6)

    def connect(self, peer):
        """RFC 6062 Connect: the response; r["cid"] is its CONNECTION-ID on success."""
        tid = os.urandom(12)
        r = self.request(CONNECT, [attr(A_PEER, xor_addr(peer[0], peer[1], tid))], tid=tid)
        if r and r["cls"] == 2:
            r["cid"] = struct.unpack("!I", r["attrs"][A_CONNECTION_ID][0])[0]
        return r

    def connection_bind(self, cid):
        """RFC 6062 ConnectionBind on this (new) connection; after a success
        the socket carries raw bytes (self.sock)."""
        return self.request(CONNECTION_BIND, [attr(A_CONNECTION_ID, struct.pack("!I", cid))])

    def recv_attempt(self, timeout=2.0):
        """The next ConnectionAttempt indication: (peer, connection id), or None."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            data = self.next_frame(deadline)
            if data is None:
                return None
            r = parse(data)
            if r["type"] == 0x001C:  # ConnectionAttempt indication
                return (xaddr(r["attrs"][A_PEER][0], r["tid"]),
                        struct.unpack("!I", r["attrs"][A_CONNECTION_ID][0])[0])
        return None

    def refresh(self, lifetime):
        return self.request(REFRESH, [attr(A_LIFETIME, struct.pack("!I", lifetime))])

    def permission(self, *peers):
        tid = os.urandom(12)  # IPv6 XOR addresses depend on the transaction ID
        return self.request(CREATE_PERMISSION, [attr(A_PEER, xor_addr(h, p, tid)) for h, p in peers], tid=tid)

    def channel_bind(self, number, peer):
        tid = os.urandom(12)
        return self.request(CHANNEL_BIND, [attr(A_CHANNEL, struct.pack("!HH", number, 0)),
                                           attr(A_PEER, xor_addr(peer[0], peer[1], tid))], tid=tid)

    def send_indication(self, peer, data, df=False):
        tid = os.urandom(12)
        attrs = [attr(A_PEER, xor_addr(peer[0], peer[1], tid)), attr(A_DATA, data)]
        if df:
            attrs.append(attr(A_DF, b""))
        msg, _ = build(SEND, attrs, cls=1, tid=tid)
        self.send_raw(msg)

    def send_channel(self, number, data):
        msg = struct.pack("!HH", number, len(data)) + data
        if self.transport != "udp":
            msg += b"\0" * ((4 - len(data) % 4) % 4)
        self.send_raw(msg)

    def next_frame(self, deadline):
        """The next message or ChannelData (one that came early first), or None."""
        if self.pending:
            return self.pending.pop(0)
        self.sock.settimeout(max(0.01, deadline - time.time()))
        try:
            return self.recv_raw()
        except (socket.timeout, ssl.SSLError):
            return None

    def recv_data(self, timeout=2.0):
        """Next relayed datagram: ('channel', number, data) or ('indication', peer, data)."""
        deadline = time.time() + timeout
        while True:
            data = self.next_frame(deadline)
            if data is None:
                return None
            if data[0] & 0xC0 == 0x40:
                n, l = struct.unpack("!HH", data[:4])
                return ("channel", n, data[4:4 + l])
            r = parse(data)
            if r["type"] == 0x0017:  # Data indication
                return ("indication", xaddr(r["attrs"][A_PEER][0], r["tid"]), r["attrs"][A_DATA][0])
            if time.time() > deadline:
                return None
