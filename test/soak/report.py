"""Samples of a soak as CSV, a text table and a PNG plot."""
import csv
import os

COLUMNS = [("t_s", "t (s)", "%.0f"), ("phase", "phase", "%s"), ("rss_kib", "RSS KiB", "%d"),
           ("fds", "fds", "%d"), ("allocations", "allocs", "%d"), ("sessions", "sessions", "%d"),
           ("relay_ports", "relay ports", "%d"), ("cpu_s", "CPU s", "%.2f"), ("cpu_pct", "CPU %", "%.1f"),
           ("created_total", "created", "%d"), ("redis_up", "redis up", "%d")]


def write_csv(path, samples):
    with open(path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow([c[0] for c in COLUMNS])
        for s in samples:
            w.writerow([s.get(c[0], "") for c in COLUMNS])


def table(samples):
    heads = [c[1] for c in COLUMNS]
    rows = []
    for s in samples:
        row = []
        for key, _, fmt in COLUMNS:
            v = s.get(key)
            row.append("-" if v is None else fmt % v)
        rows.append(row)
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(heads)]
    line = lambda cells: "  ".join(c.rjust(w) for c, w in zip(cells, widths))
    out = [line(heads), line(["-" * w for w in widths])]
    out += [line(r) for r in rows]
    return "\n".join(out) + "\n"


def plot(path, samples, marks, title):
    """RSS, descriptors, allocations / sessions / relay ports against time;
    marks: [(t0, t1, label)] shaded (Redis faults), [(t, None, label)] lines
    (SIGHUP, end of the load)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t = [s["t_s"] for s in samples]
    fig, axes = plt.subplots(3, 1, figsize=(11, 9), sharex=True)
    axes[0].plot(t, [s["rss_kib"] / 1024.0 for s in samples], "-o", ms=3, color="tab:blue")
    axes[0].set_ylabel("RSS (MiB)")
    axes[1].plot(t, [s["fds"] for s in samples], "-o", ms=3, color="tab:orange")
    axes[1].set_ylabel("open fds")
    axes[2].plot(t, [s["allocations"] for s in samples], "-o", ms=3, label="allocations", color="tab:green")
    axes[2].plot(t, [s["relay_ports"] for s in samples], "--", label="relay ports in use", color="tab:red")
    axes[2].plot(t, [s["sessions"] for s in samples], ":", label="sessions", color="tab:purple")
    axes[2].set_ylabel("count")
    axes[2].set_xlabel("seconds since the load started")
    axes[2].legend(loc="upper right", fontsize=8)
    labelled = set()
    for t0, t1, label in marks:
        for ax in axes:
            if t1 is None:
                ax.axvline(t0, color="grey" if label != "load ends" else "black", lw=0.8,
                           ls="--" if label != "load ends" else "-")
            else:
                ax.axvspan(t0, t1, color="tab:red", alpha=0.12, lw=0)
        if label not in labelled:
            labelled.add(label)
    for i, ax in enumerate(axes):
        ax.grid(alpha=0.3)
        if i:   # RSS keeps its own scale: a slow climb must show
            ax.set_ylim(bottom=0)
    fig.suptitle(title + "\nshaded: Redis faults; dashed: SIGHUP; solid: end of the load", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return os.path.exists(path)
