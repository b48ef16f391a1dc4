#!/usr/bin/env python3
"""Issue 14: functional check of server/relay/offload.bpf.c in the bed (bed.sh up first).

offctl in the server namespace attaches to s0/s1 and gets one channel per family. For IPv4 and
IPv6: a client sends ChannelData to the listener and the peer must receive the bare payload from
the relay address; the peer answers and the client must receive ChannelData from the listener;
sockets standing for ternd's listener and relay socket must see nothing. Then exact counters,
and packets that must reach those sockets unchanged: padded ChannelData, a peer without a
channel, too big for the egress MTU (both directions), an expired entry. Finally no UDP checksum
errors at the receivers. Run it once in each bed mode (bed.sh up / bed.sh up partial).
"""
import ctypes
import os
import socket
import struct
import subprocess
import sys
from contextlib import contextmanager

OFFCTL = os.environ.get("OFFCTL", "/tmp/tern-offload-bpf/offctl")
NS_C, NS_S, NS_P = "tern-bpf-c", "tern-bpf-s", "tern-bpf-p"
FAMILIES = {
    4: dict(af=socket.AF_INET, client=("10.77.1.2", 40000), listen=("10.77.1.1", 3478),
            relay=("10.77.2.1", 49999), peer=("10.77.2.2", 50000), chan=0x4000,
            max_udp=1500 - 20 - 8, route="10.77.2.2/32"),
    6: dict(af=socket.AF_INET6, client=("fd77:1::2", 40000), listen=("fd77:1::1", 3478),
            relay=("fd77:2::1", 49999), peer=("fd77:2::2", 50000), chan=0x4fff,
            max_udp=1500 - 40 - 8, route="fd77:2::2/128"),
}
N = 200
libc = ctypes.CDLL(None, use_errno=True)
fails = 0


def check(what, ok):
    global fails
    print(("PASS " if ok else "FAIL ") + what, flush=True)
    fails += not ok


@contextmanager
def netns(name):
    home = os.open("/proc/self/ns/net", os.O_RDONLY)
    fd = os.open(f"/var/run/netns/{name}", os.O_RDONLY)
    try:
        if libc.setns(fd, 0x40000000) != 0:
            raise OSError(ctypes.get_errno(), "setns")
        yield
    finally:
        libc.setns(home, 0x40000000)
        os.close(fd)
        os.close(home)


def sock(ns, af, addr):
    with netns(ns):
        s = socket.socket(af, socket.SOCK_DGRAM)
        s.bind(addr)
        s.settimeout(1.0)
        return s


def recv(s):
    data, src = s.recvfrom(4096)
    return data, src[:2]


def silent(s, timeout=0.2):
    s.settimeout(timeout)
    try:
        s.recvfrom(4096)
        return False
    except socket.timeout:
        return True
    finally:
        s.settimeout(1.0)


def nstat(ns, key):
    out = subprocess.run(["ip", "netns", "exec", ns, "nstat", "-az", key], capture_output=True,
                         text=True).stdout
    for line in out.splitlines():
        if line.split() and line.split()[0] == key:
            return int(line.split()[1])
    return 0


def csum_errors():
    return {(ns, k): nstat(ns, k) for ns in (NS_C, NS_P)
            for k in ("UdpInCsumErrors", "Udp6InCsumErrors")}


def ep(a):
    return f"[{a[0]}]:{a[1]}" if ":" in a[0] else f"{a[0]}:{a[1]}"


class Ctl:
    def __init__(self, *args):
        self.p = subprocess.Popen(["ip", "netns", "exec", NS_S, OFFCTL, *args], text=True,
                                  stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        print(self.read_until("ok loaded"))

    def read_until(self, prefix):
        lines = []
        while True:
            line = self.p.stdout.readline()
            if not line:
                raise RuntimeError("offctl exited: " + "".join(lines))
            lines.append(line)
            if line.startswith(prefix) or line.startswith("err"):
                return "".join(lines).rstrip()

    def cmd(self, line, until="ok"):
        self.p.stdin.write(line + "\n")
        self.p.stdin.flush()
        out = self.read_until(until)
        if out.startswith("err"):
            raise RuntimeError(f"offctl: {line}: {out}")
        return out

    def stats(self):
        out = self.cmd("stats", "ok stats")
        entries, reasons = {}, {}
        for line in out.splitlines():
            w = line.split()
            if w[0] == "entry":
                entries[int(w[1])] = (int(w[4].split("=")[1]), int(w[5].split("=")[1]),
                                      int(w[7].split("=")[1]), int(w[8].split("=")[1]))
            elif w[0] == "reasons":
                reasons = {k: int(v) for k, v in (x.split("=") for x in w[1:])}
        return entries, reasons

    def close(self):
        self.p.stdin.close()
        self.p.wait(5)


def family(ctl, fam, entry):
    f = FAMILIES[fam]
    af, chan = f["af"], f["chan"]
    tuple_ = f"{ep(f['client'])} {ep(f['listen'])} {ep(f['relay'])} {ep(f['peer'])} {chan:#x}"
    ctl.cmd(f"chan {tuple_} 60000 df")
    cli, peer = sock(NS_C, af, f["client"]), sock(NS_P, af, f["peer"])
    listener, relay = sock(NS_S, af, f["listen"]), sock(NS_S, af, f["relay"])
    _, r0 = ctl.stats()

    sent = [0, 0]
    ok_c2p = ok_p2c = 0
    for i in range(N):
        # 0 B, then sizes spread up to the largest that fits, that one last
        size = f["max_udp"] - 4 if i == N - 1 else (i * 37) % (f["max_udp"] - 4)
        payload = os.urandom(size)
        cli.sendto(struct.pack("!HH", chan, len(payload)) + payload, f["listen"])
        sent[0] += len(payload)
        data, src = recv(peer)
        ok_c2p += data == payload and src == f["relay"]
        back = os.urandom(1 + (i * 53) % (f["max_udp"] - 4))
        peer.sendto(back, f["relay"])
        sent[1] += len(back)
        data, src = recv(cli)
        ok_p2c += data == struct.pack("!HH", chan, len(back)) + back and src == f["listen"]
    check(f"v{fam} client->peer: {ok_c2p}/{N} payload intact (0..{f['max_udp'] - 4} B), "
          f"from relay {ep(f['relay'])}", ok_c2p == N)
    check(f"v{fam} peer->client: {ok_p2c}/{N} ChannelData {chan:#x} intact, "
          f"from listener {ep(f['listen'])}", ok_p2c == N)
    check(f"v{fam} ternd's sockets saw nothing while offloaded", silent(listener) and silent(relay))
    entries, r1 = ctl.stats()
    want = (N, sent[0], N, sent[1])
    check(f"v{fam} counters exact: {entries.get(entry)} == {want}", entries.get(entry) == want)
    check(f"v{fam} reasons: to_peer +{r1['to_peer'] - r0['to_peer']}, to_client "
          f"+{r1['to_client'] - r0['to_client']}, failed {r1['failed']}",
          r1["to_peer"] - r0["to_peer"] == N and r1["to_client"] - r0["to_client"] == N
          and r1["failed"] == 0)

    # padded ChannelData (RFC 8656 12.5): ternd's
    pkt = struct.pack("!HH", chan, 5) + b"hello\0\0\0"
    cli.sendto(pkt, f["listen"])
    check(f"v{fam} padded ChannelData reaches the listener unchanged",
          recv(listener) == (pkt, f["client"]) and silent(peer))

    # a peer without a channel: Data indication, ternd's
    other = sock(NS_P, af, (f["peer"][0], f["peer"][1] + 1))
    other.sendto(b"\x40\x00\x00\x04abcd", f["relay"])
    check(f"v{fam} peer without an entry reaches the relay socket unchanged",
          recv(relay) == (b"\x40\x00\x00\x04abcd", (f["peer"][0], f["peer"][1] + 1))
          and silent(cli))
    other.close()

    # peer -> client over the MTU once the 4-byte header is added
    big = os.urandom(f["max_udp"])
    _, ra = ctl.stats()
    peer.sendto(big, f["relay"])
    got = recv(relay)
    _, rb = ctl.stats()
    check(f"v{fam} peer datagram of {len(big)} B (+4 > MTU 1500) reaches the relay socket "
          f"unchanged (mtu +{rb['mtu'] - ra['mtu']})",
          got == (big, f["peer"]) and rb["mtu"] - ra["mtu"] == 1 and silent(cli))

    # client -> peer over a 1280-byte route MTU to the peer ("lock": the IPv4 FIB
    # result ignores a route MTU without it unless ip_forward_use_pmtu)
    subprocess.run(["ip", "-n", NS_S, "route", "add", f["route"], "dev", "s1", "mtu", "lock", "1280"],
                   check=True)
    try:
        payload = os.urandom(1300)
        pkt = struct.pack("!HH", chan, len(payload)) + payload
        cli.sendto(pkt, f["listen"])
        got = recv(listener)
        _, rc = ctl.stats()
        check(f"v{fam} ChannelData of 1300 B over a route MTU 1280 reaches the listener "
              f"unchanged (mtu +{rc['mtu'] - rb['mtu']})",
              got == (pkt, f["client"]) and rc["mtu"] - rb["mtu"] == 1 and silent(peer))
    finally:
        subprocess.run(["ip", "-n", NS_S, "route", "del", f["route"], "dev", "s1"], check=True)

    # expired (a refresh to the past): everything goes up unchanged, counters stay
    ctl.cmd(f"chan {tuple_} -1")
    pkt = struct.pack("!HH", chan, 4) + b"late"
    cli.sendto(pkt, f["listen"])
    check(f"v{fam} expired: ChannelData reaches the listener unchanged",
          recv(listener) == (pkt, f["client"]))
    peer.sendto(b"from-peer-late", f["relay"])
    check(f"v{fam} expired: peer datagram reaches the relay socket unchanged",
          recv(relay) == (b"from-peer-late", f["peer"]))
    check(f"v{fam} expired: nothing relayed", silent(peer) and silent(cli))
    entries, re_ = ctl.stats()
    check(f"v{fam} expired: reasons expired +{re_['expired'] - rc['expired']}, "
          f"counters unchanged after the refresh",
          re_["expired"] - rc["expired"] == 2 and entries.get(entry) == want)
    for s in (cli, peer, listener, relay):
        s.close()


def main():
    e0 = csum_errors()
    ctl = Ctl(*sys.argv[1:])
    ctl.cmd("attach s0")
    ctl.cmd("attach s1")
    try:
        family(ctl, 4, 0)
        family(ctl, 6, 1)
        entries, reasons = ctl.stats()
        print("reasons:", reasons)
    finally:
        ctl.close()
    e1 = csum_errors()
    delta = {f"{ns[len('tern-bpf-'):]}:{k}": e1[(ns, k)] - e0[(ns, k)] for ns, k in e1}
    check(f"no UDP checksum errors at the receivers: {delta}", not any(delta.values()))
    out = subprocess.run(["tc", "-n", NS_S, "filter", "show", "dev", "s0", "ingress"],
                         capture_output=True, text=True).stdout
    check("detached on exit (no filter left on s0)", "bpf" not in out)
    print("FAILED" if fails else "ALL PASS", fails)
    return 1 if fails else 0


if __name__ == "__main__":
    sys.exit(main())
