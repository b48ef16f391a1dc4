#!/usr/bin/env python3
"""The offload benchmark of issue 14: ternd with its eBPF tc offload, ternd without it, coturn and a
TURN-less user-space forwarder (the floor), in one run, in the same namespace bed (bench-bed.sh), driven by
the same generator (ternbench relay, open loop, both directions) at the same offered rates.

  sudo nice python3 test/bench/offload/bench.py [--rate PPS] [--seconds S] [--steps N] [--quick]

For every mode: at --rate offered packets/s, machine-wide CPU per relayed packet (cpu-ns delta over
the pumping ÷ packets delivered; the generators are included, the same for every mode), the server
process's own CPU per packet (/proc/PID/stat), loss and one-way latency; then the highest rate relayed
with < 0.1 % loss (a bounded step search, --seconds per step); then p99 at half of coturn's highest
rate.  Prints a markdown table with ratios to ternd without offload, the targets of issue 14, and for
the highest rates what limited them (machine busy %, where packets were dropped: UDP receive-buffer
errors per namespace, the kernel's backlog, the generator not managing to offer the rate).
Progress goes to stderr, the report to stdout (and --out FILE).  Needs root; see README.md.
"""
import argparse
import datetime
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "../../.."))
CPU_NS = "/work/shared/tools/cpu-ns"
C, S, P = "tern-bench-c", "tern-bench-s", "tern-bench-p"
SERVER_IP, RELAY_IP, PEER_IP, PORT = "10.78.1.1", "10.78.2.1", "10.78.2.2", 3478
OFFLOAD_IFS = ("s0", "s1")
LOSS_OK = 0.1            # % : a rate is "relayed" below this loss
OFFERED_OK = 0.98        # the generators must offer at least this share of the rate
NCPU = os.cpu_count()
CLK_TCK = os.sysconf("SC_CLK_TCK")
UDP_KEYS = ("UdpInDatagrams", "UdpRcvbufErrors", "UdpSndbufErrors", "UdpInErrors", "UdpInCsumErrors",
            "UdpNoPorts")
MODES = ("offload", "off", "coturn", "floor")
LABEL = {"offload": "ternd, offload tc", "off": "ternd, offload off", "coturn": "coturn",
         "floor": "floor (ternfwd, no TURN)"}
REASONS = ("other", "miss", "expired", "frag", "len", "fib", "mtu", "failed", "to_peer", "to_client")

LIVE = []


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- processes and meters

def stop(p, timeout=5, sig=signal.SIGTERM):
    """Our own child only, by PID: sig, then SIGKILL after timeout."""
    if p is None:
        return
    if p.poll() is None:
        try:
            p.send_signal(sig)
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
    if p in LIVE:
        LIVE.remove(p)


def spawn(ns, cmd, **kw):
    p = subprocess.Popen(["ip", "netns", "exec", ns, *cmd], **kw)   # ip execs: p.pid is cmd's pid
    LIVE.append(p)
    return p


def _cpu_ns_file():
    """The file /work/shared/tools/cpu-ns reads (the root cpuacct cgroup's usage): read directly, so
    that no process is started inside a measurement."""
    for f in ("/sys/fs/cgroup/cpuacct/cpuacct.usage", "/sys/fs/cgroup/cpuacct.usage",
              "/sys/fs/cgroup/cpu,cpuacct/cpuacct.usage"):
        if os.access(f, os.R_OK):
            return f
    return None


CPU_NS_FILE = _cpu_ns_file()


def cpu_ns():
    if CPU_NS_FILE:
        with open(CPU_NS_FILE) as f:
            return int(f.read())
    return int(subprocess.run([CPU_NS], capture_output=True, text=True, check=True).stdout)


# The machine is shared: whatever else runs during a measurement is in the machine-wide figure.
# So the bench and everything it starts also run in a cpuacct cgroup of their own; "bed" CPU is that
# cgroup plus ksoftirqd (softirq work is charged to the task it interrupts, on veth mostly the
# sender, or ksoftirqd).  machine - bed = other load: a run with too much of it is repeated.
CG_ROOT = "/sys/fs/cgroup/cpuacct"
CG = os.path.join(CG_ROOT, "tern-bench-offload")


def join_cgroup():
    try:
        os.makedirs(CG, exist_ok=True)
        with open(os.path.join(CG, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
        return True
    except OSError as e:
        log(f"no cpuacct cgroup ({e}): bed CPU = machine-wide CPU")
        return False


def leave_cgroup():
    try:
        with open(os.path.join(CG_ROOT, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
        os.rmdir(CG)
    except OSError:
        pass


def ksoftirqd_pids():
    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                if open(f"/proc/{d}/comm").read().startswith("ksoftirqd"):
                    out.append(int(d))
            except OSError:
                pass
    return out


def bed_cpu_ns(ks):
    try:
        cg = int(open(os.path.join(CG, "cpuacct.usage")).read())
    except OSError:
        return None
    return cg + sum(proc_cpu_ns(p) for p in ks)


def proc_cpu_ns(pid):
    try:
        f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(f[11]) + int(f[12])) * 1e9 / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def proc_tree_cpu_ns(pid):
    """utime+stime of pid and its live descendants (ternd's workers are threads; counted in pid)."""
    kids, total = {pid}, 0.0
    try:
        procs = [d for d in os.listdir("/proc") if d.isdigit()]
    except OSError:
        procs = []
    stats = {}
    for d in procs:
        try:
            f = open(f"/proc/{d}/stat").read().rsplit(")", 1)[1].split()
            stats[int(d)] = (int(f[1]), int(f[11]) + int(f[12]))
        except (OSError, IndexError, ValueError):
            pass
    changed = True
    while changed:
        changed = False
        for q, (ppid, _) in stats.items():
            if ppid in kids and q not in kids:
                kids.add(q)
                changed = True
    for q in kids:
        if q in stats:
            total += stats[q][1]
    return total * 1e9 / CLK_TCK


def nstat(ns):
    out = subprocess.run(["ip", "netns", "exec", ns, "nstat", "-asz"], capture_output=True,
                         text=True).stdout
    r = {}
    for line in out.splitlines():
        f = line.split()
        if len(f) >= 2 and f[0] in UDP_KEYS:
            r[f[0]] = int(f[1])
    return r


def link_drops(ns):
    """rx+tx dropped of every interface in ns."""
    try:
        j = json.loads(subprocess.run(["ip", "-n", ns, "-s", "-j", "link", "show"],
                                      capture_output=True, text=True).stdout)
    except ValueError:
        return {}
    return {l["ifname"]: l["stats64"]["rx"]["dropped"] + l["stats64"]["tx"]["dropped"]
            for l in j if "stats64" in l}


def softnet_drops():
    """Packets dropped because a CPU's input backlog was full (netdev_max_backlog), all CPUs."""
    n = 0
    with open("/proc/net/softnet_stat") as f:
        for line in f:
            n += int(line.split()[1], 16)
    return n


KSOFTIRQD = []


def snapshot(server_pid, before):
    """Counters around a measurement; the CPU meters are read innermost (last before, first after)
    so that the nstat/ip processes started here stay outside the CPU window."""
    def meters():
        return {"t": time.monotonic(), "cpu": cpu_ns(), "bed": bed_cpu_ns(KSOFTIRQD),
                "srv": proc_tree_cpu_ns(server_pid) if server_pid else 0.0}
    r = {} if before else meters()
    r.update({"nstat": {ns: nstat(ns) for ns in (C, S, P)},
              "links": {ns: link_drops(ns) for ns in (C, S, P)}, "softnet": softnet_drops()})
    if before:
        r.update(meters())
    return r


def wait_bound(port, timeout=15, proc=None):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc is not None and proc.poll() is not None:
            return False
        out = subprocess.run(["ip", "netns", "exec", S, "ss", "-Hulnp", f"sport = :{port}"],
                             capture_output=True, text=True).stdout
        if out.strip():
            return True
        time.sleep(0.05)
    return False


# ---------------------------------------------------------------- the offload program's counters

def bpftool_json(*args):
    try:
        r = subprocess.run(["bpftool", "-j", *args], capture_output=True, text=True, timeout=20)
        return json.loads(r.stdout) if r.stdout.strip() else None
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


def held_bpf_ids(pid):
    """The BPF program and map ids ternd `pid` holds (its fds' fdinfo): which of the machine's
    tern_relay programs is ours (others may be running tests)."""
    progs, maps = set(), set()
    d = f"/proc/{pid}/fdinfo"
    try:
        names = os.listdir(d)
    except OSError:
        return progs, maps
    for n in names:
        try:
            for line in open(os.path.join(d, n)):
                if line.startswith("prog_id:"):
                    progs.add(int(line.split()[1]))
                elif line.startswith("map_id:"):
                    maps.add(int(line.split()[1]))
        except (OSError, ValueError):
            pass
    return progs, maps


def offload_counters(pid):
    """From ternd's own maps: the per-CPU reasons array (offload_maps.h, enum offload_reason) summed
    over CPUs, and the per-entry counts summed over slots; None if ternd holds no such maps."""
    _, maps = held_bpf_ids(pid)
    out = {}
    for mid in sorted(maps):
        info = bpftool_json("map", "show", "id", str(mid)) or {}
        name = info.get("name", "")
        if name not in ("reasons", "counts"):
            continue
        dump = bpftool_json("map", "dump", "id", str(mid)) or []
        if name == "reasons":
            vals = [0] * len(REASONS)
            for e in dump:
                f = e.get("formatted", {})
                k = f.get("key")
                if isinstance(k, int) and k < len(vals):
                    vals[k] = sum(int(v.get("value", 0)) for v in f.get("values", []))
            out["reasons"] = vals
        else:
            out["counts"] = sum(int(e.get("formatted", {}).get("value", {}).get("packets", 0))
                                for e in dump)
    return out if "reasons" in out else None


def ternd_metrics():
    """ternd's relay and offload counters from GET /metrics (the http listener on 127.0.0.1 in the
    server namespace), summed over realms; {} if unavailable."""
    r = subprocess.run(["ip", "netns", "exec", S, "curl", "-s", "--max-time", "3",
                        f"http://127.0.0.1:{METRICS_PORT}/metrics"], capture_output=True, text=True)
    out = {}
    for line in r.stdout.splitlines():
        m = re.match(r'(tern_relay_packets_total|tern_offload_packets_total|'
                     r'tern_offload_passed_packets_total)\{([^}]*)\} (\d+)', line)
        if m:
            lab = dict(kv.split("=", 1) for kv in m.group(2).split(","))
            key = m.group(1) + ":" + lab.get("direction", lab.get("reason", "")).strip('"')
            out[key] = out.get(key, 0) + int(m.group(3))
    return out


# ---------------------------------------------------------------- servers

TERND_CONF = """realm = "bench.example"; software = "ternd"; workers = {workers};
listen = ( {{ proto = "udp"; ip = "{server}"; port = {port}; }} );
relay = {{ ip = [ "{relay}" ]; min_port = 49152; max_port = 65535;{offload} }};
auth = {{ users = ( {{ user = "bench"; password = "bench-pass"; }} ); }};
peers = {{ allow = [ "{peer}/32" ]; }};
limits = {{ unauth_rate = 0; total_quota = 0; user_quota = 0; max_lifetime = 3600; }};
log = {{ level = "warn"; }};
http = {{ ip = "127.0.0.1"; port = {metrics}; }};
"""
METRICS_PORT = 9641


class Bench:
    def __init__(self, args):
        self.a = args
        self.build = os.path.abspath(os.path.join(ROOT, args.build))
        self.dir = tempfile.mkdtemp(prefix="tern-bench-offload-")
        self.has_offload_key = self.ternd_knows_offload()
        self.skip = {}          # mode -> why it is not measured
        self.notes = []

    def ternd_conf(self, offload):
        if offload is None or not self.has_offload_key:
            extra = ""
        else:
            ifs = ", ".join(f'"{i}"' for i in OFFLOAD_IFS)
            extra = f' offload = "{offload}"; offload_interfaces = [ {ifs} ];'
        path = os.path.join(self.dir, f"ternd-{offload or 'none'}.conf")
        with open(path, "w") as f:
            f.write(TERND_CONF.format(workers=self.a.workers, server=SERVER_IP, port=PORT,
                                      relay=RELAY_IP, peer=PEER_IP, offload=extra,
                                      metrics=METRICS_PORT))
        return path

    def ternd_knows_offload(self):
        self.has_offload_key = True
        conf = self.ternd_conf("off")
        r = subprocess.run([os.path.join(self.build, "ternd"), "-c", conf, "--check-config"],
                           capture_output=True, text=True)
        if r.returncode != 0 and "offload" in (r.stdout + r.stderr):
            return False
        if r.returncode != 0:
            raise RuntimeError(f"ternd --check-config: {(r.stdout + r.stderr).strip()}")
        return True

    def start_server(self, mode):
        """Returns (process, its stderr file) or raises RuntimeError(why)."""
        errf = os.path.join(self.dir, f"{mode}.log")
        err = open(errf, "w")
        if mode == "coturn":
            cmd = ["turnserver", "-n", "--listening-ip", SERVER_IP, "--listening-port", str(PORT),
                   "--relay-ip", RELAY_IP, "--min-port", "49152", "--max-port", "65535",
                   "--realm", "bench.example", "--user", "bench:bench-pass", "--lt-cred-mech",
                   f"--allowed-peer-ip={PEER_IP}", "--no-cli", "--no-tls", "--no-dtls",
                   "--no-rfc5780", "--no-tcp-relay", "--relay-threads", str(self.a.workers),
                   "--max-allocate-lifetime", "3600", "--no-stdout-log", "--simple-log",
                   "--log-file", "/dev/null", "--pidfile", os.path.join(self.dir, "coturn.pid"),
                   "--no-software-attribute"]
        else:
            conf = self.ternd_conf({"offload": "tc", "off": "off", "floor": "off"}[mode])
            cmd = [os.path.join(self.build, "ternd"), "-c", conf]
        p = spawn(S, cmd, stdout=err, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if not wait_bound(PORT, proc=p):
            stop(p)
            err.close()
            text = open(errf).read().strip()
            raise RuntimeError(f"{mode}: server did not come up: {text[-400:] or 'no output'}")
        return p, err

    # ------------------------------------------------------------ one measurement

    def wait_quiet(self, timeout=60):
        """Between runs nothing of ours runs: wait (up to timeout) for the machine to be quiet."""
        end = time.monotonic() + timeout
        while True:
            t0, c0 = time.monotonic(), cpu_ns()
            time.sleep(0.5)
            busy = (cpu_ns() - c0) / 1e9 / (time.monotonic() - t0) / NCPU * 100
            if busy <= self.a.max_other or time.monotonic() > end:
                return busy
            log(f"  (machine {busy:.0f} % busy with other work: waiting)")
            time.sleep(2)

    def run(self, mode, rate, seconds=None):
        """run_once, repeated (up to twice) while other load on the machine disturbed it."""
        tries = []
        for attempt in range(3):
            if self.a.max_other < 100:
                self.wait_quiet()
            tries.append(self.run_once(mode, rate, seconds))
            if tries[-1]["other_pct"] <= self.a.max_other:
                break
            log(f"  (other load {tries[-1]['other_pct']:.1f} % of the machine during that run: "
                f"repeating)")
        r = min(tries, key=lambda t: t["other_pct"])   # the least disturbed attempt
        r["repeats"] = attempt
        return r

    def run_once(self, mode, rate, seconds=None):
        """One run at `rate` offered packets/s (both directions together); returns a dict."""
        a = self.a
        seconds = seconds or a.seconds
        srv, srv_err, fwd = None, None, None
        gens = []
        try:
            srv, srv_err = self.start_server(mode)
            per_gen = max(1, a.allocations // a.gens)
            for g in range(a.gens):
                cmd = [os.path.join(self.build, "ternbench"), "relay", SERVER_IP, str(PORT),
                       "-n", str(per_gen), "-b", str(a.bytes), "-r", str(rate / a.gens),
                       "-d", str(seconds), "-P", PEER_IP, "--peer-netns", P,
                       "--batch", str(a.batch), "--sync", "1"]
                if a.rx_stamp:
                    cmd += ["--rx-stamp", "1"]
                gens.append(spawn(C, cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=open(os.path.join(self.dir, f"gen{g}.log"), "w"),
                                  text=True, bufsize=1))
            tuples = []
            for g in gens:
                for line in g.stdout:
                    if line.startswith("tuple "):
                        tuples.append(line.split()[1:])
                    elif line.startswith("ready"):
                        break
                else:
                    raise RuntimeError(f"{mode}: ternbench set-up failed: " + open(
                        os.path.join(self.dir, f"gen{gens.index(g)}.log")).read()[-400:])
            if len(tuples) != per_gen * a.gens:
                raise RuntimeError(f"{mode}: {len(tuples)} of {per_gen * a.gens} allocations")
            server = srv
            if mode == "floor":
                # the allocations exist; the TURN server goes and the forwarder takes its addresses
                stop(srv)
                srv = None
                tf = os.path.join(self.dir, "tuples")
                with open(tf, "w") as f:
                    f.write("".join(" ".join(t) + "\n" for t in tuples))
                fwd = spawn(S, [os.path.join(self.build, "ternfwd"), tf], stdout=subprocess.PIPE,
                            text=True)
                if not fwd.stdout.readline().startswith("fwd:"):
                    raise RuntimeError("ternfwd did not start")
                server = fwd
            ternd = mode in ("offload", "off")
            reasons0 = offload_counters(srv.pid) if mode == "offload" else None
            metrics0 = ternd_metrics() if ternd else None
            time.sleep(0.1)
            s0 = snapshot(server.pid, True)
            for g in gens:
                g.stdin.write("go\n")
                g.stdin.close()
            results = []
            for g in gens:
                for line in g.stdout:
                    if line.startswith("result "):
                        results.append(dict(kv.split("=", 1) for kv in line.split()[1:]))
                        break
            s1 = snapshot(server.pid, False)
            reasons1 = offload_counters(srv.pid) if mode == "offload" else None
            metrics1 = None
            if ternd:
                time.sleep(1.5)        # ternd counts the kernel's packets back about once a second
                metrics1 = ternd_metrics()
            if len(results) != len(gens):
                raise RuntimeError(f"{mode}: a generator gave no result")
        finally:
            for g in gens:
                # the floor's ternbench would retransmit its Refresh(0)s to nobody for seconds
                stop(g, timeout=5, sig=signal.SIGKILL if mode == "floor" else signal.SIGTERM)
            stop(fwd)
            stop(srv)
            if srv_err:
                srv_err.close()
        r = self.row(mode, rate, seconds, results, s0, s1, reasons0, reasons1)
        if metrics0 is not None and metrics1:
            r["metrics"] = {k: v - metrics0.get(k, 0) for k, v in metrics1.items()}
        return r

    def row(self, mode, rate, seconds, results, s0, s1, reasons0, reasons1):
        tot = lambda k: sum(int(r[k]) for r in results)
        sent, delivered = tot("sent"), tot("delivered")
        wall = s1["t"] - s0["t"]
        pump = max(float(r["seconds"]) for r in results)
        # busy over the pumping (the 300 ms drain after it costs next to nothing)
        busy = (s1["cpu"] - s0["cpu"]) / 1e9 / pump / NCPU * 100
        bed = (s1["bed"] - s0["bed"]) if s0["bed"] is not None else (s1["cpu"] - s0["cpu"])
        other = max(0.0, (s1["cpu"] - s0["cpu"] - bed) / 1e9 / wall / NCPU * 100)
        d = {ns: {k: s1["nstat"][ns].get(k, 0) - s0["nstat"][ns].get(k, 0) for k in UDP_KEYS}
             for ns in (C, S, P)}
        drops = {f"{ns[-1]}:{i}": s1["links"][ns].get(i, 0) - v
                 for ns in (C, S, P) for i, v in s0["links"][ns].items()
                 if s1["links"][ns].get(i, 0) - v}
        r = {"mode": mode, "offered": rate, "seconds": pump, "sent": sent, "delivered": delivered,
             "offered_real": sent / pump if pump else 0,
             "loss_pct": 100.0 * (sent - delivered) / sent if sent else 100.0,
             "loss_c2p": tot("sent_c2p") - tot("delivered_c2p"),
             "loss_p2c": tot("sent_p2c") - tot("delivered_p2c"),
             "p50_us": max(float(x["p50_us"]) for x in results),
             "p99_us": max(float(x["p99_us"]) for x in results),
             "cpu_ns_pkt": (s1["cpu"] - s0["cpu"]) / max(delivered, 1),
             "bed_ns_pkt": bed / max(delivered, 1),
             "srv_ns_pkt": (s1["srv"] - s0["srv"]) / max(delivered, 1),
             "busy_pct": busy, "other_pct": other,
             "rcvbuf": {ns[-1]: d[ns]["UdpRcvbufErrors"] for ns in (C, S, P)},
             "csum_err": sum(d[ns]["UdpInCsumErrors"] for ns in (C, S, P)),
             "srv_udp_in": d[S]["UdpInDatagrams"],
             "softnet_drops": s1["softnet"] - s0["softnet"], "link_drops": drops}
        if reasons0 is not None and reasons1 is not None:
            r["reasons"] = {n: b - a for n, a, b in zip(REASONS, reasons0["reasons"],
                                                           reasons1["reasons"])}
            r["entry_counts"] = reasons1.get("counts", 0) - reasons0.get("counts", 0)
        r["ok"] = (r["loss_pct"] < LOSS_OK and r["offered_real"] >= OFFERED_OK * rate)
        r["limit"] = self.limit_of(r)
        log(f"  {mode:8} {rate:>9,.0f}/s offered {r['offered_real']:>9,.0f}/s  loss {r['loss_pct']:7.3f} %"
            f"  cpu {r['cpu_ns_pkt']:7,.0f} (bed {r['bed_ns_pkt']:7,.0f}) ns/pkt  other {other:4.1f} %  server {r['srv_ns_pkt']:6,.0f}  busy {busy:5.1f} %"
            f"  p50/p99 {r['p50_us']:.0f}/{r['p99_us']:.0f} us  {r['limit']}"
            + (f"  reasons {r['reasons']}" if "reasons" in r else ""))
        return r

    @staticmethod
    def limit_of(r):
        """Where the loss was, or what stopped the generators from offering the rate."""
        why = []
        if r["offered_real"] < OFFERED_OK * r["offered"]:
            why.append(f"generators offered only {r['offered_real']:,.0f}/s")
        rb = r["rcvbuf"]
        if rb["s"]:
            why.append(f"server rcvbuf drops {rb['s']:,}")
        if rb["c"] or rb["p"]:
            why.append(f"generator rcvbuf drops c {rb['c']:,} / p {rb['p']:,}")
        if r["softnet_drops"]:
            why.append(f"backlog drops {r['softnet_drops']:,}")
        if r["link_drops"]:
            why.append("veth drops " + " ".join(f"{k} {v:,}" for k, v in r["link_drops"].items()))
        if r["csum_err"]:
            why.append(f"UdpInCsumErrors {r['csum_err']:,}")
        if r["loss_pct"] >= LOSS_OK:
            why.append(f"lost c2p {r['loss_c2p']:,} / p2c {r['loss_p2c']:,}")
        if r["busy_pct"] >= 95:
            why.append(f"machine {r['busy_pct']:.0f} % busy")
        return "; ".join(why)

    # ------------------------------------------------------------ the search

    def search(self, mode, known_ok, first, steps):
        """Highest rate with loss < 0.1 %: up by x1.5 while it holds, then bisect; `steps` runs.
        known_ok: a rate already measured loss-free (or 0).  Returns (best ok run, first failed run
        above it, all runs)."""
        ok, bad, runs = known_ok, None, []
        ok_run, bad_run = None, None
        rate = first
        for _ in range(steps):
            if rate > self.a.max_rate:
                rate = self.a.max_rate
                if ok_run and ok_run["offered"] >= rate:
                    break
            r = self.run(mode, rate)
            runs.append(r)
            if r["ok"]:
                ok, ok_run = rate, r
            else:
                bad, bad_run = rate, r
            if bad is None:
                rate = ok * 1.5
            else:
                if ok and bad / ok < 1.06:
                    break
                rate = (ok + bad) / 2 if ok else bad / 2
            rate = round(rate / 1000) * 1000
        return ok_run, bad_run, runs

    # ------------------------------------------------------------ the whole run

    def check_offload(self):
        if not self.has_offload_key:
            self.skip["offload"] = ("this ternd has no relay.offload setting (the integration is not "
                                    "in this build)")
            return
        try:
            p, err = self.start_server("offload")
        except RuntimeError as e:
            self.skip["offload"] = f"ternd refused to attach with relay.offload = \"tc\": {e}"
            return
        stop(p)
        err.close()

    def main(self):
        a = self.a
        modes = [m for m in a.modes.split(",")]
        if "offload" in modes:
            self.check_offload()
        if "coturn" in modes and not shutil.which("turnserver"):
            self.skip["coturn"] = "turnserver (Debian coturn) is not installed"
        modes = [m for m in modes if m not in self.skip]
        for m, why in self.skip.items():
            log(f"SKIP {m}: {why}")
        t0 = time.monotonic()
        c0 = cpu_ns()
        time.sleep(1)
        self.background = (cpu_ns() - c0) / 1e9 / (time.monotonic() - t0) / NCPU * 100
        log(f"background: machine {self.background:.1f} % busy before the run")
        # 1. everyone at the same offered rate
        fixed = {}
        log(f"== at {a.rate:,.0f} packets/s offered")
        for m in modes:
            fixed[m] = self.run(m, a.rate)
        # 2. the highest loss-free rate; offload starts at twice ternd's (the target)
        best, first_bad, all_runs = {}, {}, {}
        order = [m for m in ("off", "coturn", "floor", "offload") if m in modes]
        for m in order:
            log(f"== {m}: highest rate with < {LOSS_OK} % loss ({a.steps} steps)")
            known = a.rate if fixed[m]["ok"] else 0
            first = a.rate * 1.5 if known else a.rate / 2
            if m == "offload" and best.get("off"):
                first = 2 * best["off"]["offered"]
            ok_run, bad_run, runs = self.search(m, known, round(first / 1000) * 1000, a.steps)
            best[m] = ok_run or (fixed[m] if fixed[m]["ok"] else None)
            first_bad[m] = bad_run
            all_runs[m] = runs
        # 3. latency at half of coturn's highest rate (or of ternd's if there is no coturn)
        ref = best.get("coturn") or best.get("off")
        half = {}
        if ref and not a.no_latency:
            hr = round(ref["offered"] / 2 / 1000) * 1000
            log(f"== p99 at half of {('coturn' if best.get('coturn') else 'ternd')}'s highest "
                f"rate: {hr:,.0f}/s")
            for m in modes:
                half[m] = self.run(m, hr)
        self.first_bad = first_bad
        return self.report(modes, fixed, best, first_bad, half, all_runs)

    # ------------------------------------------------------------ the table

    def report(self, modes, fixed, best, first_bad, half, all_runs):
        a = self.a
        base_f, base_b, base_h = fixed.get("off"), best.get("off"), half.get("off")
        ratio = lambda x, y: f"{x / y:.2f}x" if (x is not None and y) else ""
        kver = platform.release()
        cot = subprocess.run(["turnserver", "--version"], capture_output=True,
                             text=True).stdout.strip() if shutil.which("turnserver") else "-"
        out = [f"# Offload benchmark (issue 14), {datetime.date.today().isoformat()}",
               "",
               f"Linux {kver}, {NCPU} CPUs, coturn {cot}; ternd `workers = {a.workers}`, coturn "
               f"`--relay-threads {a.workers}`. Bed: `bench-bed.sh` (client, server and peer namespaces, "
               f"veth, TX checksum offload off on c0/p0). Generator: {a.gens} x `ternbench relay` "
               f"in the client namespace (peer sockets in the peer namespace), {a.allocations} "
               f"allocations, {a.bytes}-byte payloads, both directions, open loop, "
               f"`--batch {a.batch}`{', `--rx-stamp 1`' if a.rx_stamp else ''}; {a.seconds:g} s per "
               f"measurement. Machine busy before the run: {self.background:.1f} %.",
               f"Command: `{' '.join(sys.argv)}`", ""]
        for m, why in self.skip.items():
            out.append(f"**{LABEL[m]}: SKIPPED: {why}**")
            out.append("")
        out += [f"## At {a.rate:,.0f} packets/s offered", "",
                "CPU/pkt = machine-wide CPU (cpu-ns) over the pumping ÷ delivered packets, generators "
                "included; bed = the same for the bench's own cgroup + ksoftirqd only (a check that no "
                "other load is in the figure); server = the server process's own utime+stime ÷ "
                "delivered packets.", "",
                "| mode | delivered/s | loss % | CPU/pkt ns | vs off | bed CPU/pkt ns | server CPU/pkt ns "
                "| vs off | machine busy % | p50 / p99 µs |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|"]
        for m in modes:
            r = fixed[m]
            out.append(f"| {LABEL[m]} | {r['delivered'] / r['seconds']:,.0f} | {r['loss_pct']:.3f} | "
                       f"{r['cpu_ns_pkt']:,.0f} | {ratio(r['cpu_ns_pkt'], base_f and base_f['cpu_ns_pkt'])} | "
                       f"{r['bed_ns_pkt']:,.0f} | {r['srv_ns_pkt']:,.0f} | {ratio(r['srv_ns_pkt'], base_f and base_f['srv_ns_pkt'])} | "
                       f"{r['busy_pct']:.0f} | {r['p50_us']:,.0f} / {r['p99_us']:,.0f} |")
        out += ["", f"## Highest rate relayed with < {LOSS_OK} % loss", "",
                f"Step search, {a.steps} steps of {a.seconds:g} s per mode (x1.5 while it holds, then "
                f"bisection; capped at {a.max_rate:,.0f}/s); a step also fails if the generators could "
                f"not offer {OFFERED_OK:.0%} of the rate.", "",
                "| mode | loss-free rate | vs off | machine busy % there | CPU/pkt ns there | "
                "first failed step | what limited it |",
                "|---|---:|---:|---:|---:|---|---|"]
        for m in modes:
            b, f = best.get(m), first_bad.get(m)
            fb = (f"{f['offered']:,.0f}: {f['loss_pct']:.2f} % loss" if f else "none (cap or steps)")
            out.append(f"| {LABEL[m]} | {b['offered']:,.0f} | "
                       f"{ratio(b['offered'], base_b and base_b['offered'])} | {b['busy_pct']:.0f} | "
                       f"{b['cpu_ns_pkt']:,.0f} | {fb} | {f['limit'] if f else ''} |"
                       if b else f"| {LABEL[m]} | none | | | | {fb} | {f['limit'] if f else ''} |")
        if half:
            hr = next(iter(half.values()))["offered"]
            out += ["", f"## Latency at {hr:,.0f} packets/s (half of "
                    f"{'coturn' if best.get('coturn') else 'ternd'}'s highest rate)", "",
                    "One-way, from the send time in the payload to "
                    + ("the kernel's receive time stamp of the receiving socket (`--rx-stamp`)"
                       if a.rx_stamp else "when the generator read it") + "; the worst generator's p50/p99.",
                    "", "| mode | loss % | p50 µs | p99 µs | p99 vs off | CPU/pkt ns |",
                    "|---|---:|---:|---:|---:|---:|"]
            for m in modes:
                r = half[m]
                out.append(f"| {LABEL[m]} | {r['loss_pct']:.3f} | {r['p50_us']:,.0f} | "
                           f"{r['p99_us']:,.0f} | {ratio(r['p99_us'], base_h and base_h['p99_us'])} | "
                           f"{r['cpu_ns_pkt']:,.0f} |")
        out += ["", "## Targets (issue 14)", ""] + self.targets(fixed, best, half)
        off_notes = self.offload_notes(fixed, all_runs, half)
        if off_notes:
            out += ["", "## The offload's own counters", ""] + off_notes
        out += ["", "## Every run", "", "| mode | offered | offered by generators | loss % | lost c2p / p2c "
                "| CPU/pkt | bed/pkt | server/pkt | busy % | other % | p50 / p99 µs | drops and limits |",
                "|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---|---|"]
        every = [fixed[m] for m in modes] + [r for m in modes for r in all_runs.get(m, [])] + \
                [half[m] for m in modes if m in half]
        for r in every:
            out.append(f"| {r['mode']} | {r['offered']:,.0f} | {r['offered_real']:,.0f} | "
                       f"{r['loss_pct']:.3f} | {r['loss_c2p']:,} / {r['loss_p2c']:,} | "
                       f"{r['cpu_ns_pkt']:,.0f} | {r['bed_ns_pkt']:,.0f} | {r['srv_ns_pkt']:,.0f} | "
                       f"{r['busy_pct']:.0f} | {r['other_pct']:.1f} | {r['p50_us']:,.0f} / {r['p99_us']:,.0f} | {r['limit']} |")
        return "\n".join(out) + "\n"

    def targets(self, fixed, best, half):
        t = ["| target | measured | met |", "|---|---|---|"]
        o, f = fixed.get("offload"), fixed.get("off")
        if not (o and f):
            return t + ["| (offload not measured) | | |"]
        x = o["cpu_ns_pkt"] / f["cpu_ns_pkt"]
        t.append(f"| CPU per relayed packet ≤ 0.5x ternd without offload | {x:.2f}x "
                 f"({o['cpu_ns_pkt']:,.0f} vs {f['cpu_ns_pkt']:,.0f} ns) | {'yes' if x <= 0.5 else 'no'} |")
        bo, bf = best.get("offload"), best.get("off")
        if bo and bf:
            x = bo["offered"] / bf["offered"]
            met = "yes" if x >= 2 else "no"
            fb = self.first_bad.get("offload")
            why = f"; the next step ({fb['offered']:,.0f}/s) limited by: {fb['limit']}" if fb and x < 2 else ""
            t.append(f"| loss-free rate ≥ 2x | {x:.2f}x ({bo['offered']:,.0f} vs {bf['offered']:,.0f}/s)"
                     f"{why} | {met} |")
        t.append(f"| ternd's own CPU for offloaded traffic near zero | {o['srv_ns_pkt']:,.0f} ns/pkt "
                 f"({o['srv_ns_pkt'] / f['srv_ns_pkt'] * 100 if f['srv_ns_pkt'] else 0:.1f} % of without) | "
                 f"{'yes' if o['srv_ns_pkt'] < 0.05 * f['srv_ns_pkt'] else 'no'} |")
        if half.get("offload") and half.get("off"):
            a, b = half["offload"]["p99_us"], half["off"]["p99_us"]
            t.append(f"| p99 at half of coturn's max no worse than without | {a:,.0f} vs {b:,.0f} µs "
                     f"| {'yes' if a <= b * 1.1 else 'no'} |")
        return t

    def offload_notes(self, fixed, all_runs, half):
        runs = [r for r in [fixed.get("offload")] + all_runs.get("offload", []) + [half.get("offload")]
                if r and "reasons" in r]
        if not runs and "offload" in fixed:
            return ["The tc program's counters could not be read (ternd holds no `reasons` map, or "
                    "bpftool failed)."]
        out = ["Per offload run: what the generators sent and got; what the program relayed (its "
               "reasons array: to_peer + to_client) and what it passed up to ternd (the other "
               "reasons); the per-entry counters ternd reads back (counts map); ternd's /metrics "
               "deltas (tern_relay_packets_total, of which tern_offload_packets_total; read 1.5 s "
               "after the run, ternd counts back about once a second); UDP datagrams that reached "
               "sockets in the server namespace (UdpInDatagrams: ternd's user-space share).", "",
               "| offered | sent | delivered | relayed in kernel | passed up | entry counters | "
               "metrics relay / offload | server UDP in |",
               "|---:|---:|---:|---:|---|---:|---|---:|"]
        for r in runs:
            rs, m = r["reasons"], r.get("metrics", {})
            up = {k: v for k, v in rs.items() if k not in ("to_peer", "to_client") and v}
            rel = sum(v for k, v in m.items() if k.startswith("tern_relay_packets_total:"))
            off = sum(v for k, v in m.items() if k.startswith("tern_offload_packets_total:"))
            out.append(f"| {r['offered']:,.0f} | {r['sent']:,} | {r['delivered']:,} | "
                       f"{rs['to_peer'] + rs['to_client']:,} | "
                       f"{', '.join(f'{k} {v:,}' for k, v in up.items()) or '0'} | "
                       f"{r.get('entry_counts', 0):,} | {rel:,} / {off:,} | {r['srv_udp_in']:,} |")
        offs = [r for r in [fixed.get("off")] + all_runs.get("off", []) if r and r.get("metrics")]
        if offs:
            out += ["", "Without offload, for comparison: ternd's tern_relay_packets_total delta vs "
                    "delivered: " + ", ".join(
                        f"{sum(v for k, v in r['metrics'].items() if k.startswith('tern_relay_packets_total:')):,}"
                        f" / {r['delivered']:,}" for r in offs[:4])]
        return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rate", type=float, default=100000, help="fixed offered packets/s (100000)")
    ap.add_argument("--seconds", type=float, default=5, help="seconds per measurement (5)")
    ap.add_argument("--steps", type=int, default=6, help="steps of the search per mode (6)")
    ap.add_argument("--max-rate", type=float, default=1000000, help="search cap (1000000)")
    ap.add_argument("--gens", type=int, default=2, help="generator processes (2)")
    ap.add_argument("--allocations", type=int, default=16, help="allocations in all (16)")
    ap.add_argument("--bytes", type=int, default=100, help="payload bytes (100)")
    ap.add_argument("--batch", type=int, default=8, help="ternbench --batch (8; 1 = as before)")
    ap.add_argument("--rx-stamp", type=int, default=1, help="ternbench --rx-stamp (1)")
    ap.add_argument("--workers", type=int, default=2, help="ternd workers / coturn relay threads (2)")
    ap.add_argument("--modes", default=",".join(MODES), help="subset of " + ",".join(MODES))
    ap.add_argument("--max-other", type=float, default=3.0,
                    help="repeat a run (twice at most) if other processes used more than this %% of "
                         "the machine during it (3)")
    ap.add_argument("--no-latency", action="store_true", help="leave out the half-rate latency runs")
    ap.add_argument("--build", default=os.environ.get("B", "build"))
    ap.add_argument("--keep-bed", action="store_true", help="leave the namespaces up")
    ap.add_argument("--out", help="also write the report to this file")
    ap.add_argument("--quick", action="store_true", help="smoke run: 1 s, 1 search step, < 60 s")
    a = ap.parse_args()
    if a.quick:
        a.seconds, a.steps, a.rate, a.max_other = 1, 1, min(a.rate, 50000), 100
    if os.geteuid() != 0:
        sys.exit("bench.py: needs root (network namespaces, tc, BPF)")
    for m in a.modes.split(","):
        if m not in MODES:
            sys.exit(f"bench.py: unknown mode {m}")
    build = os.path.join(ROOT, a.build)
    fwd = os.path.join(build, "ternfwd")
    src = os.path.join(HERE, "fwd.c")
    if not os.path.exists(fwd) or os.path.getmtime(fwd) < os.path.getmtime(src):
        subprocess.run(["cc", "-O2", "-g", "-Wall", "-Wextra", "-Werror", src, "-o", fwd, "-lpthread"],
                       check=True)
    for b in ("ternd", "ternbench"):
        if not os.path.exists(os.path.join(build, b)):
            sys.exit(f"bench.py: {build}/{b} missing: make all first")
    bed = os.path.join(HERE, "bench-bed.sh")
    subprocess.run([bed, "up"], check=True)
    KSOFTIRQD.extend(ksoftirqd_pids())
    in_cg = join_cgroup()
    bench = None
    try:
        bench = Bench(a)
        text = bench.main()
        print(text, end="")
        if a.out:
            with open(a.out, "w") as f:
                f.write(text)
    finally:
        for p in list(LIVE):
            stop(p)
        if bench:
            shutil.rmtree(bench.dir, ignore_errors=True)
        if in_cg:
            leave_cgroup()
        if not a.keep_bed:
            subprocess.run([bed, "down"])


if __name__ == "__main__":
    main()
