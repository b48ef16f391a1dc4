"""The soak's Redis: a real redis-server (redisfix.RedisServer) that the
harness kills, pauses, restarts empty and slows down, and provisions the way an
operator would, with coturn's turnadmin."""
import signal
import threading
import time

from redisfix import RedisServer
from common import remove_turnadmin_log

REDIS_USERS = ["rd-%d" % i for i in range(4)]          # loads: turnadmin -a
REDIS_PASSWORD = "rdpw"
PARK_USERS = ["park-%d" % i for i in range(12)]        # only for requests left while parked
PARK_PASSWORD = "parkpw"
PLAIN_USER, PLAIN_PASSWORD = "rd-plain", "plainpw"     # plain password key, set by hand
REDIS_SECRET = "rsecret"                                # turnadmin -s


class RedisCtl:
    def __init__(self, ctx, port):
        self.ctx = ctx
        self.srv = RedisServer(port)
        self.lock = threading.RLock()   # held for the whole of a fault
        self.state = "down"
        self.provisioned = 0.0          # time the users were last (re)written

    def url(self):
        return self.srv.url()

    def pid(self):
        return self.srv.proc.pid if self.srv.proc else None

    def start(self):
        with self.lock:
            self.srv.start()
            self.state = "up"
        self.provision()

    def turnadmin(self, *args):
        rc, out, pid = self.ctx.procs.run(
            ["turnadmin"] + list(args) + ["-N", "ip=127.0.0.1 port=%d dbname=0" % self.srv.port],
            timeout=20, wrap=False)
        remove_turnadmin_log(pid)
        return rc == 0, out

    def provision(self):
        """Users and the REST secret, as an operator adds them (turnadmin), plus
        one user with a plain password key (the other form of coturn's schema)."""
        ok = True
        for u in REDIS_USERS:
            ok &= self.turnadmin("-a", "-u", u, "-r", self.ctx.realm, "-p", REDIS_PASSWORD)[0]
        for u in PARK_USERS:
            ok &= self.turnadmin("-a", "-u", u, "-r", self.ctx.realm, "-p", PARK_PASSWORD)[0]
        ok &= self.turnadmin("-s", REDIS_SECRET, "-r", self.ctx.realm)[0]
        try:
            r = self.srv.cmd("SET", "turn/realm/%s/user/%s/password" % (self.ctx.realm, PLAIN_USER),
                             PLAIN_PASSWORD)
            ok &= r == "OK"
        except OSError:
            ok = False
        self.provisioned = time.time()
        self.ctx.event("redis", "provisioned with turnadmin: %s" % ("ok" if ok else "FAILED"))
        if not ok:
            self.ctx.count("harness.redis_provision_failed")
        return ok

    def kill(self):
        self.srv.stop()   # SIGKILL
        self.state = "down"

    def restart_empty(self):
        self.srv.start()  # --save '' --appendonly no: nothing survives a kill
        self.state = "up"
        self.provision()

    def pause(self):
        self.srv.proc.send_signal(signal.SIGSTOP)
        self.state = "paused"

    def resume(self):
        self.srv.proc.send_signal(signal.SIGCONT)
        self.state = "up"

    def debug_sleep(self, seconds):
        """DEBUG SLEEP from a background thread; returns the thread."""
        def go():
            try:
                self.srv.cmd("DEBUG", "SLEEP", "%.2f" % seconds, timeout=seconds + 10)
            except OSError:
                pass
        th = threading.Thread(target=go, daemon=True)
        th.start()
        time.sleep(0.05)   # the sleep has begun: whatever ternd asks now waits
        return th

    def ensure_up(self):
        """At the end: Redis running, answering and provisioned."""
        with self.lock:
            if self.state == "paused":
                self.resume()
            if self.state == "down" or (self.srv.proc and self.srv.proc.poll() is not None):
                self.restart_empty()
            try:
                return self.srv.cmd("PING", timeout=5) == "PONG"
            except OSError:
                return False

    def cleanup(self):
        try:
            if self.state == "paused" and self.srv.proc:
                self.srv.proc.send_signal(signal.SIGCONT)
        except OSError:
            pass
        self.srv.cleanup()
