"""ternd's log after a soak: every warn/error line must have been caused by
the harness (a pattern allowed in the window of the fault that causes it);
every allocation the log announces must be deleted by the end."""
import calendar
import collections
import json
import re
import time

LINE = re.compile(r"^(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)\.(\d{3})Z (error|warn|info|debug) (.*)$")
# One line per allocation at each end (text format): session_start and
# session_end with key=value fields, values with spaces as JSON strings.
SESSION = re.compile(r"^session_(start|end) (.*)$")
# RFC 8016: an allocation keeps its id and takes the client address it moved to
MOVED = re.compile(r"^allocation (\d+) \(.*\): moved to (\S+) \(RFC 8016\)")
FIELD = re.compile(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)')


def session_fields(msg):
    """("start"|"end", {field: value}) of a session line, or None."""
    m = SESSION.match(msg)
    if not m:
        return None
    fields = {}
    for k, v in FIELD.findall(m.group(2)):
        fields[k] = json.loads(v) if v.startswith('"') else v
    return m.group(1), fields


def parse_line(line):
    m = LINE.match(line)
    if not m:
        return None
    y, mo, d, h, mi, s, ms = (int(x) for x in m.groups()[:7])
    t = calendar.timegm((y, mo, d, h, mi, s, 0, 0, 0)) + ms / 1000.0
    return t, m.group(8), m.group(9)


class LogReport:
    def __init__(self):
        self.lines = 0
        self.levels = collections.Counter()
        self.unexpected = []        # warn/error lines no window explains
        self.expected = collections.Counter()   # why -> count
        self.unparsed = []
        self.created = 0
        self.deleted = 0
        self.delete_reasons = collections.Counter()
        self.live = collections.Counter()       # (id, client) -> live count
        self.live_user = collections.Counter()
        self.peak_user = collections.Counter()
        self.unmatched_deletes = []
        self.moves = 0
        self.sighup_ok = 0
        self.shutdown_deletes = 0   # allocations still there when ternd was told to stop
        self.stopping = False
        self.first_t = None
        self.last_t = None

    def still_live(self):
        return [k for k, v in self.live.items() if v > 0]


def analyse(text, windows, now=None):
    """windows: [patterns, t0, t1 or None, why]."""
    now = now or time.time()
    rep = LogReport()
    compiled = [([re.compile(p) for p in pats], t0, t1 if t1 is not None else now, why)
                for pats, t0, t1, why in windows]
    for raw in text.splitlines():
        if not raw.strip():
            continue
        rep.lines += 1
        parsed = parse_line(raw)
        if parsed is None:
            rep.unparsed.append(raw)
            continue
        t, level, msg = parsed
        rep.first_t = rep.first_t or t
        rep.last_t = t
        rep.levels[level] += 1
        if level in ("warn", "error"):
            full = "%s %s" % (level, msg)
            why = None
            for pats, t0, t1, w in compiled:
                if t0 - 1.0 <= t <= t1 and any(p.search(full) for p in pats):
                    why = w
                    break
            if why:
                rep.expected[why] += 1
            else:
                rep.unexpected.append(raw)
            continue
        moved = MOVED.match(msg)
        if moved:
            old = [k for k, v in rep.live.items() if k[0] == moved.group(1) and v > 0]
            if old:
                rep.live[old[0]] -= 1
                rep.live[(moved.group(1), moved.group(2))] += 1
                rep.moves += 1
            continue
        if msg.startswith("signal ") and msg.endswith(": stopping"):
            rep.stopping = True
        sess = session_fields(msg)
        if sess and sess[0] == "start":
            if rep.stopping:
                continue
            f = sess[1]
            key = (f.get("id"), f.get("client"))
            rep.created += 1
            rep.live[key] += 1
            user = f.get("user", "")
            rep.live_user[user] += 1
            rep.peak_user[user] = max(rep.peak_user[user], rep.live_user[user])
            continue
        if sess:
            f = sess[1]
            if rep.stopping:
                rep.shutdown_deletes += 1
                continue
            key = (f.get("id"), f.get("client"))
            rep.deleted += 1
            rep.delete_reasons[f.get("reason", "?")] += 1
            if rep.live[key] > 0:
                rep.live[key] -= 1
                rep.live_user[f.get("user", "")] -= 1
            else:
                rep.unmatched_deletes.append(raw)
            continue
        if msg.startswith("SIGHUP: log reopened") or (msg.startswith("reload: ") and " applied" in msg):
            rep.sighup_ok += 1
    return rep
