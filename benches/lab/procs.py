"""Child processes of the lab: spawn, wait with a deadline, collect rusage, and
kill every one of them on every path (normal end, error, Ctrl-C, SIGTERM)."""

import atexit
import json
import os
import select
import signal
import subprocess
import time

_LIVE = {}  # pid -> Child, every child not yet reaped

# The ping-pong binary, whose `spawn` mode runs a program and reports its
# rusage. Set by run.py once built; see pingpong/spawn.rs for why.
LAUNCHER = None


class Child:
    """One spawned program. `wait()` reaps it with os.wait4, so its CPU time
    and peak RSS are its own, whatever else runs."""

    def __init__(self, argv, log_path, stdin=subprocess.DEVNULL, stdout=None, measured=True):
        self.argv = [str(a) for a in argv]
        self.log_path = log_path
        self.report_path = None
        command = self.argv
        if LAUNCHER and measured:
            self.report_path = log_path + ".rusage.json"
            command = [LAUNCHER, "spawn", "--report", self.report_path, "--", *self.argv]
        self._log = open(log_path, "wb")
        self.start = time.monotonic()
        self.proc = subprocess.Popen(
            command,
            stdin=stdin,
            stdout=stdout if stdout is not None else self._log,
            stderr=self._log,
            start_new_session=True,  # its own process group, killed as one
        )
        self.pid = self.proc.pid
        self.end = None
        self.status = None
        self.rusage = None
        _LIVE[self.pid] = self

    def wait(self, timeout):
        """Reaps the child; returns False if it is still running at `timeout`."""
        if self.status is not None:
            return True
        fd = os.pidfd_open(self.pid)
        try:
            ready, _, _ = select.select([fd], [], [], max(timeout, 0))
        finally:
            os.close(fd)
        if not ready:
            return False
        self._reap()
        return True

    def _reap(self):
        _, status, rusage = os.wait4(self.pid, 0)
        self.end = time.monotonic()
        self.status = status
        self.rusage = rusage
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        _LIVE.pop(self.pid, None)
        self._log.close()
        self.report = None
        if self.report_path:
            try:
                with open(self.report_path) as f:
                    self.report = json.load(f)
            except (OSError, ValueError):
                self.report = None  # the launcher itself was killed

    def stop(self, grace=3.0):
        """SIGTERM (to the program, so its launcher can still report), then
        SIGKILL to the whole group after `grace` seconds; always reaps."""
        if self.status is not None:
            return
        program = self._program_pid() if self.report_path else None
        if program:
            try:
                os.kill(program, signal.SIGTERM)
            except ProcessLookupError:
                pass
        else:
            self._signal(signal.SIGTERM)
        if not self.wait(grace):
            self._signal(signal.SIGKILL)
            self.wait(30)

    def _program_pid(self):
        """The measured program: the launcher's only child."""
        if not self.report_path:
            return self.pid
        try:
            with open(f"/proc/{self.pid}/task/{self.pid}/children") as f:
                kids = f.read().split()
        except OSError:
            return None
        return int(kids[0]) if kids else None

    def _signal(self, sig):
        try:
            os.killpg(self.pid, sig)
        except ProcessLookupError:
            pass
        except PermissionError:
            # A child that changed its uid (a sink under -u nobody) is still
            # ours to signal as root; fall back to the pid alone.
            try:
                os.kill(self.pid, sig)
            except ProcessLookupError:
                pass

    @property
    def exit_code(self):
        if self.report:
            return self.report["exit_code"]
        return None if self.status is None else os.waitstatus_to_exitcode(self.status)

    @property
    def cpu_seconds(self):
        if self.report:
            return self.report["utime_s"] + self.report["stime_s"]
        return self.rusage.ru_utime + self.rusage.ru_stime

    @property
    def maxrss_kib(self):
        if self.report:
            return self.report["maxrss_kib"]
        return self.rusage.ru_maxrss

    @property
    def elapsed(self):
        if self.report:
            return self.report["elapsed_s"]
        return self.end - self.start

    @property
    def program_pid(self):
        """The pid of the program itself (not of its launcher)."""
        return self._program_pid()

    def log_tail(self, lines=5):
        try:
            with open(self.log_path, "rb") as f:
                text = f.read().decode("utf-8", "replace")
        except OSError:
            return ""
        return " | ".join(text.strip().splitlines()[-lines:])


def kill_all():
    for child in list(_LIVE.values()):
        child._signal(signal.SIGKILL)
    for child in list(_LIVE.values()):
        try:
            child.wait(5)
        except ChildProcessError:
            _LIVE.pop(child.pid, None)


def _on_signal(signum, _frame):
    kill_all()
    raise SystemExit(128 + signum)


def install_cleanup():
    atexit.register(kill_all)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGHUP, _on_signal)


# Programs whose presence means someone is compiling on this machine.
BUILDERS = ("cargo", "rustc", "clippy-driver", "rustdoc")


def _ancestors():
    pids, pid = set(), os.getpid()
    while pid > 1:
        pids.add(pid)
        try:
            with open(f"/proc/{pid}/stat") as f:
                pid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            break
    return pids


def builders_running():
    """Compiler processes running now, of any user, other than our own
    ancestors (the smoke test runs us under cargo): on a shared machine a
    build takes a vCPU from the pair being measured."""
    mine = _ancestors()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) in mine:
            continue
        try:
            with open(f"/proc/{entry.name}/comm") as f:
                name = f.read().strip()
        except OSError:
            continue
        if name in BUILDERS:
            found.append(name)
    return found


class BuildWatch:
    """Polls builders_running() once a second in a thread; `seen` is set when
    one ran since the last reset()."""

    def __init__(self, interval=1.0):
        import threading

        self.interval = interval
        self.seen = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self):
        while not self._stop.wait(self.interval):
            if builders_running():
                self.seen = True

    def reset(self):
        self.seen = bool(builders_running())

    def close(self):
        self._stop.set()


def rss_kib(pid):
    """Current resident set of a running process, from /proc."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")
