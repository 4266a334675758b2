#!/usr/bin/env python3
"""Evidence for what bounds a point: runs the pairs once each under `perf stat`
(software events, which work in this VM; it has no hardware counters) and
prints per message, for the client and the server: CPU µs, syscalls,
context switches and CPU migrations. With --record, also samples our sink
(or another server) with `perf record -e cpu-clock` and prints its hottest
symbols and the kernel/user split.

    python3 benches/lab/profile.py                      # default points
    python3 benches/lab/profile.py --points "-s 10 -d -D" --record ours
    python3 benches/lab/profile.py --callgrind --messages 5000   # instructions/message
"""

import argparse
import os
import signal
import subprocess
import sys

sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import impls  # noqa: E402
import points as pts  # noqa: E402
import procs  # noqa: E402
import run as lab_run  # noqa: E402
from measure import Lab, wait_ready  # noqa: E402
from procs import Child  # noqa: E402

EVENTS = "task-clock,context-switches,cpu-migrations,page-faults,raw_syscalls:sys_enter"
DEFAULT_POINTS = ["-s 1 -d", "-s 10 -d", "-s 10", "-s 10 -d -l 102400", "-s 10 -d -D"]
PAIRS = [
    ("ceiling-threads", "ceiling-threads", "ceiling-threads"),
    ("ceiling-tokio", "ceiling-tokio", "ceiling-tokio"),
    ("postfix-pair", "postfix", "postfix"),
    ("our-sink", "postfix", "ours"),
    ("our-pair", "ours", "ours"),
]


def perf_stat(argv, out):
    return ["perf", "stat", "-x,", "-o", out, "-e", EVENTS, "--", *argv]


def read_stat(path):
    values = {}
    with open(path) as f:
        for line in f:
            parts = line.strip().split(",")
            if len(parts) > 2 and parts[0] and not line.startswith("#"):
                try:
                    values[parts[2]] = float(parts[0])
                except ValueError:
                    pass
    return values


def interrupt(child):
    """perf stat writes its counts on SIGINT (not on SIGTERM)."""
    try:
        os.killpg(child.pid, signal.SIGINT)
    except ProcessLookupError:
        pass
    if not child.wait(10):
        child.stop()


def profile_pair(lab, point, client_impl, server_impl, messages, record):
    tag = lab.tag("profile")
    endpoint = impls.Endpoint.fresh(point.transport, lab.dir, tag)
    dump_dir = lab.fresh_dir(tag + "-dump") if point.dump else None
    sstat, cstat = lab.path(tag + "-server.stat"), lab.path(tag + "-client.stat")
    server_argv = server_impl.sink_argv(point, endpoint, dump_dir)
    if record:
        server_argv = ["perf", "record", "-q", "-e", "cpu-clock", "-o", lab.path(tag + ".data"),
                       "--", *server_argv]
    else:
        server_argv = perf_stat(server_argv, sstat)
    server = Child(server_argv, lab.path(tag + "-server.log"), measured=False)
    client = None
    try:
        wait_ready(endpoint, server)
        client = Child(perf_stat(client_impl.source_argv(point, messages, endpoint), cstat),
                       lab.path(tag + "-client.log"), measured=False)
        if not client.wait(300) or client.exit_code != 0:
            raise RuntimeError(f"client failed: {client.log_tail()}")
        elapsed = client.elapsed
        interrupt(server)
    finally:
        for c in (client, server):
            if c is not None:
                c.stop()
        endpoint.cleanup()
    result = {"msgs_per_s": messages / elapsed, "client": read_stat(cstat)}
    if record:
        result["report"] = perf_report(lab.path(tag + ".data"))
    else:
        result["server"] = read_stat(sstat)
    return result


def callgrind_ir(lab, point, role, impl, peer, messages):
    """User-space instructions of `impl` (the sink if role is "server", else
    the source) for `messages` messages, counted by callgrind: repeatable on a
    noisy machine, but blind to the kernel."""
    tag = lab.tag(f"callgrind-{impl.name}")
    out = lab.path(tag + ".out")
    # The file is opened at start (as root) and written at exit (a sink has
    # become nobody by then), so it must exist and be world-writable.
    open(out, "w").close()
    os.chmod(out, 0o666)
    valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", "--"]
    endpoint = impls.Endpoint.fresh(point.transport, lab.dir, tag)
    dump_dir = lab.fresh_dir(tag + "-dump") if point.dump else None
    server_impl, client_impl = (impl, peer) if role == "server" else (peer, impl)
    server_argv = server_impl.sink_argv(point, endpoint, dump_dir)
    client_argv = client_impl.source_argv(point, messages, endpoint)
    if role == "server":
        server_argv = valgrind + server_argv
    else:
        client_argv = valgrind + client_argv
    server = Child(server_argv, lab.path(tag + "-server.log"), measured=False)
    client = None
    try:
        wait_ready(endpoint, server, timeout=60)
        client = Child(client_argv, lab.path(tag + "-client.log"), measured=False)
        if not client.wait(600) or client.exit_code != 0:
            raise RuntimeError(f"client failed: {client.log_tail()}")
        server.stop(grace=30)
    finally:
        for c in (client, server):
            if c is not None:
                c.stop(grace=30)
        endpoint.cleanup()
    with open(out) as f:
        for line in f:
            if line.startswith("totals:"):
                return int(line.split()[1])
    raise RuntimeError(f"no totals in {out}")


def callgrind_table(lab, point, by_name, messages, emit):
    """Instructions per message, from the difference of two run lengths so
    that start-up and exit do not count."""
    small = max(200, messages // 5)
    rows = [
        ("server", "ours", "postfix"),
        ("server", "postfix", "postfix"),
        ("server", "ceiling-threads", "ceiling-threads"),
        ("server", "ceiling-tokio", "ceiling-tokio"),
        ("client", "ours", "ceiling-threads"),
        ("client", "postfix", "ceiling-threads"),
        ("client", "ceiling-threads", "ceiling-threads"),
        ("client", "ceiling-tokio", "ceiling-tokio"),
    ]
    for role, name, peer in rows:
        impl, other = by_name[name], by_name[peer]
        big = callgrind_ir(lab, point, role, impl, other, messages)
        little = callgrind_ir(lab, point, role, impl, other, small)
        per = (big - little) / (messages - small)
        what = "sink" if role == "server" else "source"
        emit(f"{name + ' ' + what:24} {per:10,.0f} instructions per message (user space)")


def perf_report(data):
    out = subprocess.run(
        ["perf", "report", "-i", data, "--stdio", "--no-children", "--sort", "dso,sym",
         "--percent-limit", "1.5"],
        capture_output=True, text=True, timeout=120,
    ).stdout
    rows = [line for line in out.splitlines() if line.strip() and not line.startswith("#")]
    kernel = sum(float(r.split("%")[0]) for r in rows if "[kernel" in r)
    return f"kernel share of listed samples: {kernel:.0f}%\n" + "\n".join(rows[:15])


def per_msg(stat, messages):
    return (
        f"{stat.get('task-clock', 0) * 1000 / messages:6.1f} µs "
        f"{stat.get('raw_syscalls:sys_enter', 0) / messages:5.1f} sysc "
        f"{stat.get('context-switches', 0) / messages:5.2f} cs "
        f"{stat.get('cpu-migrations', 0) / messages:5.3f} mig "
        f"{stat.get('page-faults', 0) / messages:5.2f} pf"
    )


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--points", nargs="+", default=DEFAULT_POINTS)
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--record", choices=["ours", "postfix", "ceiling-threads", "ceiling-tokio"],
                    help="sample this sink with perf record instead of counting")
    ap.add_argument("--callgrind", action="store_true",
                    help="count user-space instructions per message with valgrind instead")
    ap.add_argument("--no-build", action="store_true")
    ap.add_argument("--doc", help="also write the output into this markdown file's "
                    "<!-- profile:begin --> ... <!-- profile:end --> block")
    args = ap.parse_args()
    procs.install_cleanup()
    target_dir, pingpong, why_not = lab_run.build(args)
    if why_not:
        raise SystemExit(why_not)
    by_name = {
        "postfix": impls.postfix(),
        "ours": impls.ours(target_dir),
        "ceiling-threads": impls.ceiling(pingpong, "threads"),
        "ceiling-tokio": impls.ceiling(pingpong, "tokio"),
    }
    pool = pts.full_matrix() + pts.STANDARD
    lab = Lab()
    lines = []

    def emit(text):
        print(text, flush=True)
        lines.append(text)

    try:
        for point in pts.select(args.points, pool):
            # Slow pairs get fewer messages so every run stays a few seconds.
            messages = args.messages // (10 if point.body_len >= 102400 or point.dump else 1)
            if args.callgrind:
                emit(f"== {point.name} (m={messages} and {max(200, messages // 5)})")
            else:
                emit(f"== {point.name} (m={messages}); per message: CPU, syscalls, context switches, "
                     "migrations, page faults")
            if args.callgrind:
                callgrind_table(lab, point, by_name, messages, emit)
                continue
            if args.record:
                # A sink is fed by Postfix's source; a ping-pong server by its own client.
                client = by_name["postfix"] if args.record in ("ours", "postfix") else by_name[args.record]
                r = profile_pair(lab, point, client, by_name[args.record], messages, True)
                emit(f"{args.record} sink fed by {client.name}: {r['msgs_per_s']:,.0f} msg/s")
                emit(r["report"])
                continue
            for config, client, server in PAIRS:
                r = profile_pair(lab, point, by_name[client], by_name[server], messages, False)
                emit(f"{config:16} {r['msgs_per_s']:8,.0f} msg/s | client {per_msg(r['client'], messages)}"
                     f" | server {per_msg(r['server'], messages)}")
    finally:
        procs.kill_all()
        lab.close()
    if args.doc:
        block = "callgrind" if args.callgrind else "profile"
        write_block(args.doc, block, "\n".join(["```text", *lines, "```"]))


def write_block(path, name, text):
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    with open(path) as f:
        doc = f.read()
    start, stop = doc.find(begin), doc.find(end)
    if start < 0 or stop < start:
        raise SystemExit(f"{path}: no {begin} ... {end} block")
    with open(path, "w") as f:
        f.write(doc[: start + len(begin)] + "\n" + text + "\n" + doc[stop:])


if __name__ == "__main__":
    main()
