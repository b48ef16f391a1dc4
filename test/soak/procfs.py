"""What the soak samples of ternd: /proc (RSS, descriptors, CPU, relay
sockets) and /metrics (Prometheus text)."""
import os
import socket
import struct
import urllib.request

CLK_TCK = os.sysconf("SC_CLK_TCK")


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


def _stat_fields(pid):
    with open("/proc/%d/stat" % pid) as f:
        data = f.read()
    # the command name may hold spaces and parentheses: split after the last ')'
    return data[data.rindex(")") + 2:].split()


def cpu_seconds(pid):
    """utime + stime in seconds."""
    f = _stat_fields(pid)
    return (int(f[11]) + int(f[12])) / CLK_TCK


def start_ticks(pid):
    """Start time of the process (clock ticks since boot): a new process at
    the same PID would differ."""
    return int(_stat_fields(pid)[19])


def socket_inodes(pid):
    out = set()
    d = "/proc/%d/fd" % pid
    for name in os.listdir(d):
        try:
            link = os.readlink(os.path.join(d, name))
        except OSError:
            continue  # closed meanwhile
        if link.startswith("socket:["):
            out.add(int(link[8:-1]))
    return out


def _hex_ip(h):
    if len(h) == 8:
        return socket.inet_ntoa(struct.pack("<I", int(h, 16)))
    raw = b"".join(struct.pack("<I", int(h[i:i + 8], 16)) for i in range(0, 32, 8))
    return socket.inet_ntop(socket.AF_INET6, raw)


def udp_sockets(pid):
    """(ip, port, inode) of every UDP socket in ternd's network namespace."""
    out = []
    for name in ("udp", "udp6"):
        try:
            with open("/proc/%d/net/%s" % (pid, name)) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 10:
                continue
            h, p = parts[1].split(":")
            out.append((_hex_ip(h), int(p, 16), int(parts[9])))
    return out


def tcp_held(pid, local_port, remote):
    """Does ternd still hold (as a descriptor) its TCP socket of the connection
    from remote (ip, port) to its local_port? A socket it has closed may live
    on in the kernel (FIN-WAIT, draining its send queue) but has no inode."""
    mine = socket_inodes(pid)
    for name in ("tcp", "tcp6"):
        try:
            with open("/proc/%d/net/%s" % (pid, name)) as f:
                lines = f.read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            parts = line.split()
            if len(parts) < 10:
                continue
            lh, lp = parts[1].split(":")
            rh, rp = parts[2].split(":")
            if int(lp, 16) == local_port and int(rp, 16) == remote[1] and \
                    _hex_ip(rh) in (remote[0], "::ffff:" + remote[0]) and int(parts[9]) in mine:
                return True
    return False


def relay_ports(pid, ip, lo, hi):
    """Ports of ternd's own UDP sockets bound on ip inside [lo, hi]: the inodes
    of its socket descriptors matched against /proc/PID/net/udp and udp6."""
    mine = socket_inodes(pid)
    ports = []
    for sip, port, inode in udp_sockets(pid):
        if inode in mine and lo <= port <= hi and sip in (ip, "::ffff:" + ip):
            ports.append(port)
    return sorted(ports)


def udp_port_owner(port, ip="127.0.0.1"):
    """Which process holds UDP ip:port (for the report when a port is not free):
    [(pid, comm)]."""
    inodes = {inode for sip, p, inode in udp_sockets(os.getpid())
              if p == port and sip in (ip, "0.0.0.0", "::", "::ffff:" + ip)}
    owners = []
    if not inodes:
        return owners
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            if socket_inodes(int(d)) & inodes:
                with open("/proc/%s/comm" % d) as f:
                    owners.append((int(d), f.read().strip()))
        except OSError:
            continue
    return owners


# --- metrics -------------------------------------------------------------------

def scrape(port, timeout=3.0):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=timeout) as r:
        if r.status != 200:
            raise OSError("HTTP %d" % r.status)
        return r.read().decode()


def parse_metrics(text):
    """{(name, frozenset of (label, value)): float}"""
    series = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, value = line.rsplit(" ", 1)
        labels = {}
        if "{" in head:
            name, rest = head.split("{", 1)
            for pair in rest.rstrip("}").split(","):
                if pair:
                    k, v = pair.split("=", 1)
                    labels[k] = v.strip('"')
        else:
            name = head
        series[(name, frozenset(labels.items()))] = float(value)
    return series


def total(series, name, **labels):
    want = set(labels.items())
    return sum(v for (n, ls), v in series.items() if n == name and want <= ls)


def series_of(series, name):
    return {ls: v for (n, ls), v in series.items() if n == name}
