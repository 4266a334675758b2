"""One measured run (a sink, then a source with -m messages into it), and the
calibration that sizes -m so a run lasts a few seconds."""

import os
import shutil
import socket
import tempfile
import time
from dataclasses import dataclass, field

from impls import Endpoint
from procs import Child


@dataclass
class Run:
    point: str
    config: str
    client: str
    server: str
    rep: int
    messages: int
    elapsed_s: float = 0.0
    msgs_per_s: float = 0.0
    client_cpu_s: float = 0.0
    server_cpu_s: float = 0.0
    client_maxrss_kib: int = 0
    server_maxrss_kib: int = 0
    ok: bool = False
    error: str = ""
    extra: dict = field(default_factory=dict)


class Lab:
    """Scratch space for one harness invocation: logs, unix sockets, dumps.
    World-writable, because the sinks run as nobody when we are root."""

    def __init__(self, keep=False):
        self.dir = tempfile.mkdtemp(prefix="smtp-lab-")
        os.chmod(self.dir, 0o777)
        self.keep = keep
        self.counter = 0

    def tag(self, what):
        self.counter += 1
        return f"{self.counter:05d}-{what}"

    def path(self, name):
        return os.path.join(self.dir, name)

    def fresh_dir(self, tag):
        d = self.path(tag)
        os.mkdir(d)
        os.chmod(d, 0o777)
        return d

    def close(self):
        if not self.keep:
            shutil.rmtree(self.dir, ignore_errors=True)


def wait_ready(endpoint, server, timeout=15.0):
    """Waits until the server accepts a connection (it has bound and listens)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.wait(0):
            raise RuntimeError(
                f"{server.argv[0]} exited with {server.exit_code} at start: {server.log_tail()}"
            )
        try:
            if endpoint.transport == "unix":
                with socket.socket(socket.AF_UNIX) as s:
                    s.settimeout(2)
                    s.connect(endpoint.path)
            else:
                with socket.create_connection(("127.0.0.1", endpoint.port), timeout=2):
                    pass
            return
        except OSError:
            time.sleep(0.02)
    raise RuntimeError(f"{server.argv[0]} did not listen within {timeout:.0f} s: {server.log_tail()}")


# CPU pinning of (client, server), set by run.py --pin: None, or a pair of
# CPU lists for taskset, e.g. ("0", "0") for both on one vCPU.
PIN = None


def pinned(argv, cpus):
    return ["taskset", "-c", cpus, *argv] if cpus else argv


def run_once(lab, point, config, client_impl, server_impl, messages, rep, timeout):
    """Starts the server, runs the client to completion, stops the server, and
    reports both processes' CPU and peak RSS (wait4 rusage)."""
    client_cpus, server_cpus = PIN or (None, None)
    tag = lab.tag(f"{config}")
    run = Run(point.name, config, client_impl.name, server_impl.name, rep, messages)
    dump_dir = lab.fresh_dir(tag + "-dump") if point.dump else None
    endpoint = server = client = None
    try:
        # A port found free can be taken before the sink binds it: retry on a
        # new one if the sink exits at start.
        for attempt in range(3):
            endpoint = Endpoint.fresh(point.transport, lab.dir, f"{tag}-{attempt}")
            server = Child(pinned(server_impl.sink_argv(point, endpoint, dump_dir), server_cpus),
                           lab.path(f"{tag}-server-{attempt}.log"))
            try:
                wait_ready(endpoint, server)
                break
            except RuntimeError:
                server.stop()
                endpoint.cleanup()
                if attempt == 2:
                    raise
        client = Child(pinned(client_impl.source_argv(point, messages, endpoint), client_cpus),
                       lab.path(tag + "-client.log"))
        if not client.wait(timeout):
            client.stop()
            raise RuntimeError(f"client did not finish {messages} messages in {timeout:.0f} s")
        if client.exit_code != 0:
            raise RuntimeError(f"client exited with {client.exit_code}: {client.log_tail()}")
        server.stop()
        run.elapsed_s = client.elapsed
        run.msgs_per_s = messages / client.elapsed
        run.client_cpu_s = client.cpu_seconds
        run.server_cpu_s = server.cpu_seconds
        run.client_maxrss_kib = client.maxrss_kib
        run.server_maxrss_kib = server.maxrss_kib
        run.ok = True
    except RuntimeError as e:
        run.error = str(e).replace("\n", " ")[:300]
    finally:
        for child in (client, server):
            if child is not None:
                child.stop()
        if endpoint is not None:
            endpoint.cleanup()
        if dump_dir:
            shutil.rmtree(dump_dir, ignore_errors=True)
    return run


def calibrate(lab, point, config, client_impl, server_impl, seconds, timeout):
    """Messages for a run of about `seconds`, from short trial runs (which also
    warm caches). Returns (messages, last trial run)."""
    floor = 5 * point.sessions
    messages = max(300, 10 * point.sessions)
    trial = None
    for _ in range(5):
        trial = run_once(lab, point, config, client_impl, server_impl, messages, -1, timeout)
        if not trial.ok:
            return None, trial
        if trial.elapsed_s >= 0.25:
            break
        messages = max(messages * 2, int(trial.msgs_per_s * 0.4))
    return max(floor, int(trial.msgs_per_s * seconds)), trial
