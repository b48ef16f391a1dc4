"""How soak actors run: a loop bounded by the run's stop event, or a schedule
of times after the load started. An exception an action did not expect is a
harness error (counted, and it fails the run), never a silent end of a load."""
import socket
import ssl
import threading
import time
import traceback


def run_loop(ctx, name, step, gap):
    """step() until the run stops, gap() seconds apart."""
    while not ctx.stop.is_set():
        guarded(ctx, name, step)
        if ctx.sleep(gap()):
            break


def run_schedule(ctx, name, times, fn):
    """fn(i) at each of times (seconds after the load started)."""
    for i, at in enumerate(times):
        if ctx.sleep(ctx.t0 + at - time.time()):
            return
        guarded(ctx, name, lambda: fn(i))


def guarded(ctx, name, fn):
    try:
        fn()
    except Exception:
        if ctx.stop.is_set():   # the end of the load cut it short
            ctx.count("%s.cut_at_stop" % name)
            return
        _classify(ctx, name)


def _classify(ctx, name):
    try:
        raise
    except (OSError, ssl.SSLError, socket.timeout) as e:
        ctx.count("%s.oserror" % name)
        ctx.count("oserror.%s" % type(e).__name__)
    except Exception:  # a bug of the harness: make it visible
        ctx.count("harness.exception", detail="%s: %s" % (name, traceback.format_exc()[-1500:]))


def start(ctx, name, target, *args):
    th = threading.Thread(target=target, args=args, name=name, daemon=True)
    th.start()
    return th


class Pool:
    """At most n concurrent background tasks (slow clients hold a connection
    for seconds); a task that finds the pool full is skipped."""

    def __init__(self, ctx, name, n):
        self.ctx, self.name = ctx, name
        self.sem = threading.Semaphore(n)
        self.threads = []

    def submit(self, fn):
        if not self.sem.acquire(blocking=False):
            self.ctx.count("%s.skipped_full" % self.name)
            return False

        def go():
            try:
                guarded(self.ctx, self.name, fn)
            finally:
                self.sem.release()
        th = threading.Thread(target=go, daemon=True)
        th.start()
        self.threads = [t for t in self.threads if t.is_alive()] + [th]
        return True

    def join(self, timeout):
        end = time.time() + timeout
        for t in self.threads:
            t.join(max(0.0, end - time.time()))
        return all(not t.is_alive() for t in self.threads)
