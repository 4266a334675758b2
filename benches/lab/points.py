"""The lab's points (one source/sink workload each) and the command lines that
run a point with each implementation."""

import itertools
from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Point:
    sessions: int = 10      # -s
    keep_open: bool = True  # -d
    body_len: int = 0       # -l (0: smtp-source's default "La de da" body)
    rcpts: int = 1          # -r
    transport: str = "tcp"  # tcp | unix
    dump: bool = False      # the sink appends every message to a file (-D)
    # Our source's ESMTP long options, e.g. "--pipelining --chunking" or
    # "--starttls" ("" is Postfix's conversation). Only our pair and the ceiling speak them: our
    # sink gets --chunking, the ping-pong its one-round-trip conversation;
    # Postfix's pair, which can do neither, runs the same point without them.
    esmtp: str = ""

    @property
    def name(self):
        parts = [f"-s {self.sessions}"]
        if self.keep_open:
            parts.append("-d")
        if self.body_len:
            parts.append(f"-l {self.body_len}")
        if self.rcpts != 1:
            parts.append(f"-r {self.rcpts}")
        if self.transport != "tcp":
            parts.append(self.transport)
        if self.dump:
            parts.append("-D")
        if self.esmtp:
            parts.append(self.esmtp)
        return " ".join(parts)

    @property
    def esmtp_flags(self):
        return self.esmtp.split()

    @property
    def tls(self):
        return "--starttls" in self.esmtp_flags

    def source_flags(self, messages):
        flags = ["-s", self.sessions, "-m", messages]
        if self.keep_open:
            flags.append("-d")
        if self.body_len:
            flags += ["-l", self.body_len]
        if self.rcpts != 1:
            flags += ["-r", self.rcpts]
        return flags


BASE = Point()

# The base point, then one factor changed at a time, so every factor of the
# issue's matrix is covered; these also include every point first measured
# on this kind of machine before the suite existed (-s 1 -d, -s 10, -s 10 -d,
# -d -r 10, -d -l 10240, -d -l 102400, -D, unix).
PLAIN = [
    BASE,
    replace(BASE, sessions=1),
    replace(BASE, sessions=100),
    replace(BASE, keep_open=False),
    replace(BASE, body_len=10240),
    replace(BASE, body_len=102400),
    replace(BASE, rcpts=10),
    replace(BASE, transport="unix"),
    replace(BASE, dump=True),
]

# What ESMTP buys: with --pipelining --chunking our pair exchanges one write
# each way per message (MAIL+RCPT+BDAT LAST+content, three replies), where
# Postfix's conversation takes four round trips. The ceiling at these points
# is the ping-pong's one-round-trip conversation.
PIPELINING_CHUNKING = "--pipelining --chunking"
ESMTP_MODES = (PIPELINING_CHUNKING,)
ESMTP = [
    replace(BASE, sessions=1, esmtp=PIPELINING_CHUNKING),
    replace(BASE, esmtp=PIPELINING_CHUNKING),
    replace(BASE, body_len=102400, esmtp=PIPELINING_CHUNKING),
]

STANDARD = PLAIN + ESMTP

# TLS (our source's --starttls; our sink gets --starttls): a new connection
# per message, so one handshake per message, full (--no-tls-resume) or
# resumed from a ticket (the default); and bulk over one TLS session per
# connection. The ceiling there is the ping-pong's --starttls conversation
# (tokio flavour only); Postfix's pair runs the same point in the clear (†).
# Not in the standard set: `run.py --points` picks them, next to the plain
# `-s 10 -d -l 102400` for the bulk comparison.
STARTTLS_FULL = "--starttls --no-tls-resume"
STARTTLS = "--starttls"
TLS = [
    replace(BASE, keep_open=False, esmtp=STARTTLS_FULL),
    replace(BASE, keep_open=False, esmtp=STARTTLS),
    replace(BASE, body_len=102400, esmtp=STARTTLS),
]

SMOKE = [BASE]


def full_matrix():
    """The issue's whole cartesian product: 144 points."""
    return [
        Point(s, d, l, r, t, dump)
        for s, d, l, r, t, dump in itertools.product(
            (1, 10, 100), (False, True), (0, 10240, 102400), (1, 10), ("tcp", "unix"), (False, True)
        )
    ]


def select(names, pool):
    """Points of `pool` whose name is in `names` (names as printed, e.g. "-s 10 -d")."""
    wanted = [n.strip() for n in names]
    by_name = {p.name: p for p in pool}
    missing = [n for n in wanted if n not in by_name]
    if missing:
        known = "; ".join(by_name)
        raise SystemExit(f"unknown point(s): {missing}; known: {known}")
    return [by_name[n] for n in wanted]
