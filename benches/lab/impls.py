"""The implementations the lab runs (Postfix's programs, ours, the ping-pong
ceiling, and optionally a baseline build of ours) and how each one is started
for a point."""

import os
import shutil
import socket
from dataclasses import dataclass


def running_as_root():
    return os.geteuid() == 0


@dataclass
class Endpoint:
    """Where a point's server listens: a loopback TCP port or a unix socket."""

    transport: str
    port: int = 0
    path: str = ""

    @classmethod
    def fresh(cls, transport, workdir, tag):
        if transport == "unix":
            return cls("unix", path=os.path.join(workdir, f"{tag}.sock"))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        return cls("tcp", port=port)

    @property
    def smtp_address(self):
        """The address as smtp-source and smtp-sink spell it."""
        return f"unix:{self.path}" if self.transport == "unix" else f"127.0.0.1:{self.port}"

    @property
    def pingpong_flags(self):
        if self.transport == "unix":
            return ["--unix", self.path]
        return ["--tcp", f"127.0.0.1:{self.port}"]

    def cleanup(self):
        if self.transport == "unix":
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass


@dataclass
class Impl:
    """A pair of programs: a source (client) and a sink (server)."""

    name: str
    source: str
    sink: str
    pingpong: bool = False
    # The ping-pong's --flavor for the server and the client.
    server_flavor: str = "threads"
    client_flavor: str = "threads"
    # Extra flags given to this pair's sink and source (e.g. "--threads 1").
    sink_extra: tuple = ()
    source_extra: tuple = ()
    # Speaks a point's ESMTP options (points.Point.esmtp). A pair that does
    # not runs such a point in Postfix's conversation.
    esmtp: bool = False

    def sink_argv(self, point, endpoint, dump_dir, max_sessions=None, idle_timeout=None):
        if self.pingpong:
            return [self.sink, "server", *endpoint.pingpong_flags, "--flavor", self.server_flavor,
                    "--threads", point.sessions, *self.pingpong_mode(point)]
        argv = [self.sink, *self.sink_extra]
        if self.esmtp and "--chunking" in point.esmtp_flags:
            argv.append("--chunking")
        if self.esmtp and point.tls:
            argv.append("--starttls")
        if running_as_root():
            argv += ["-u", "nobody"]
        if point.dump and dump_dir:
            argv += ["-D", os.path.join(dump_dir, "dump")]
        sessions = max_sessions or max(256, 2 * point.sessions)
        argv += ["-m", sessions]
        if idle_timeout:
            argv += ["-t", idle_timeout]
        argv += [endpoint.smtp_address, "1024"]
        return argv

    def source_argv(self, point, messages, endpoint):
        flags = point.source_flags(messages)
        if self.pingpong:
            return [self.source, "client", *endpoint.pingpong_flags, "--flavor", self.client_flavor,
                    *flags,
                    "--helo", socket.gethostname(), *self.pingpong_mode(point)]
        esmtp = point.esmtp_flags if self.esmtp else []
        return [self.source, *self.source_extra, *flags, *esmtp, endpoint.smtp_address]

    def pingpong_mode(self, point):
        """The ping-pong's conversation for the point: Postfix's, with
        --pipelining --chunking the one-round-trip one (--chunking), with
        --starttls [--no-tls-resume] our pair's TLS one (tokio flavour)."""
        if not point.esmtp:
            return []
        if point.tls:
            if not set(point.esmtp_flags) <= {"--starttls", "--no-tls-resume"}:
                raise ValueError(f"the ceiling has no conversation for {point.esmtp!r}")
            return point.esmtp_flags
        if set(point.esmtp_flags) != {"--pipelining", "--chunking"}:
            raise ValueError(f"the ceiling has no conversation for {point.esmtp!r}")
        return ["--chunking"]


def postfix():
    def find(name):
        path = shutil.which(name) or f"/usr/sbin/{name}"
        if not os.access(path, os.X_OK):
            raise FileNotFoundError(f"Postfix's {name} is not installed (apt-get install postfix)")
        return path

    return Impl("postfix", find("smtp-source"), find("smtp-sink"))


def ours(target_dir, sink_extra=(), source_extra=()):
    return Impl(
        "ours",
        os.path.join(target_dir, "release", "smtp-source"),
        os.path.join(target_dir, "release", "smtp-sink"),
        sink_extra=tuple(sink_extra),
        source_extra=tuple(source_extra),
        esmtp=True,
    )


def baseline(bin_dir):
    """Our programs built from an older commit (`run.py --baseline-bin DIR`),
    in Postfix's conversation only: for before/after comparisons."""
    return Impl("baseline", os.path.join(bin_dir, "smtp-source"), os.path.join(bin_dir, "smtp-sink"))


def ceiling(pingpong_binary, flavour):
    return Impl(f"ceiling-{flavour}", pingpong_binary, pingpong_binary, pingpong=True,
                server_flavor=flavour, client_flavor=flavour, esmtp=True)
