"""Connection scale: a sink holding many idle sessions (after EHLO), with its
RSS per session and how long a new client waits for replies meanwhile; and a
source driving 10,000 concurrent sessions into a sink.

The machine caps open files at 20,000 per process, so the idle sessions are
opened by several `pingpong hold` processes of at most HOLD_PER_PROCESS each,
bound to different 127.0.0.x source addresses so no one address runs out of
ephemeral ports."""

import json
import resource
import select
import statistics
import subprocess
import time

from impls import Endpoint
from measure import run_once, wait_ready
from points import Point
from procs import Child, rss_kib

HOLD_PER_PROCESS = 5000
RTT_RUNS = 3
RTT_ROUNDS = 50
# Measured on this kind of machine (Postfix's sink holds ~264 KiB per idle
# session, docs/performance.md "Connection scale"); used to keep Postfix's sink
# within the memory that is free.
POSTFIX_KIB_PER_SESSION = 264


def mem_available_kib():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1])
    return 0


def run_all(args, lab, impl_by_name, ours_ok, date, log):
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    counts = args.scale_counts or ([1000, 5000] if args.quick else [1000, 5000, 10000, 19000])
    # The sink needs one descriptor per session plus a few of its own.
    usable = [c for c in sorted(counts) if c + 64 <= hard]
    if usable != sorted(counts):
        log(f"scale: open files capped at {hard}: skipping {sorted(set(counts) - set(usable))}")
    rows = []
    sinks = []
    if ours_ok:
        sinks.append((impl_by_name["ours"], usable, ""))
    # Postfix's sink takes ~264 KiB per session: keep it under half of the
    # memory that is free now, and say so.
    budget = mem_available_kib() // 2 // POSTFIX_KIB_PER_SESSION
    postfix_counts = [c for c in usable if c <= budget]
    note = "" if postfix_counts == usable else f"counts above {budget} skipped for memory"
    sinks.append((impl_by_name["postfix"], postfix_counts, note))
    for impl, cs, note in sinks:
        if not cs:
            continue
        log(f"scale: {impl.name} sink holding up to {cs[-1]} idle sessions")
        rows += idle_scale(lab, impl, impl_by_name["ceiling-threads"], cs, date, note, log)

    sessions = 10000 if not args.quick else 2000
    pairs = [("postfix", "postfix")]
    if ours_ok:
        pairs.insert(0, ("ours", "ours"))
    for client, server in pairs:
        if client == "postfix" and sessions > budget:
            continue
        log(f"scale: {client} source -s {sessions} -d into {server} sink")
        rows.append(many_sessions(lab, impl_by_name[client], impl_by_name[server], sessions, date))
        r = rows[-1]
        log(f"  {r['msgs_per_s'] or 0:,.0f} msg/s {r['note']}")
    return rows


def idle_scale(lab, impl, pingpong, counts, date, note, log):
    tag = lab.tag(f"scale-{impl.name}")
    endpoint = Endpoint.fresh("tcp", lab.dir, tag)
    point = Point(sessions=1)
    sink = Child(
        impl.sink_argv(point, endpoint, None, max_sessions=counts[-1] + 100, idle_timeout=600),
        lab.path(tag + "-sink.log"),
    )
    holders = []
    rows = []
    try:
        wait_ready(endpoint, sink)
        # One session first, so what is measured per session excludes
        # one-time allocations.
        rtt(lab, pingpong, endpoint)
        time.sleep(0.3)
        rss_idle = rss_kib(sink.program_pid)
        base = rtt(lab, pingpong, endpoint)
        rows.append(scale_row(date, impl.name, 0, 0, rss_idle, rss_idle, base, note))
        log(f"  {0:>6} sessions: RSS {rss_idle:,} KiB, NOOP {base['noop_median_us']:.0f} µs")
        held = 0
        for count in counts:
            while held < count:
                n = min(HOLD_PER_PROCESS, count - held)
                ip = f"127.0.0.{2 + len(holders)}"
                holders.append(start_holder(lab, pingpong, endpoint, n, ip))
                held += n
            for holder in holders:
                wait_holder(holder, timeout=180)
            time.sleep(0.5)
            rss = rss_kib(sink.program_pid)
            probe = rtt(lab, pingpong, endpoint)
            rows.append(scale_row(date, impl.name, count, len(holders), rss, rss_idle, probe, note))
            log(f"  {count:>6} sessions: RSS {rss:,} KiB "
                f"({(rss - rss_idle) / count:.1f} KiB each), NOOP {probe['noop_median_us']:.0f} µs")
    except RuntimeError as e:
        rows.append(scale_row(date, impl.name, -1, len(holders), 0, 0, None, f"failed: {e}"))
        log(f"  failed: {e}")
    finally:
        for holder in holders:
            try:
                holder.proc.stdin.close()
            except OSError:
                pass
        for holder in holders:
            holder.stop(grace=10)
        sink.stop()
    return rows


def start_holder(lab, pingpong, endpoint, count, ip):
    tag = lab.tag(f"hold-{ip}")
    argv = [pingpong.source, "hold", "--tcp", f"127.0.0.1:{endpoint.port}", "--count", count, "--bind", ip]
    holder = Child(argv, lab.path(tag + ".log"), stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                   measured=False)
    holder.ready = False
    holder.count = count
    return holder


def wait_holder(holder, timeout):
    if holder.ready:
        return
    ready, _, _ = select.select([holder.proc.stdout], [], [], timeout)
    line = holder.proc.stdout.readline().decode().strip() if ready else ""
    if line != f"ready {holder.count}":
        raise RuntimeError(f"holder did not open {holder.count} sessions: {line!r} {holder.log_tail()}")
    holder.ready = True


def rtt(lab, pingpong, endpoint):
    """Median over RTT_RUNS new clients of their NOOP median (and the others)."""
    results = []
    for _ in range(RTT_RUNS):
        tag = lab.tag("rtt")
        out = lab.path(tag + ".json")
        with open(out, "wb") as f:
            child = Child([pingpong.source, "rtt", *endpoint.pingpong_flags, "-n", RTT_ROUNDS],
                          lab.path(tag + ".log"), stdout=f, measured=False)
            if not child.wait(120):
                child.stop()
                raise RuntimeError("rtt probe timed out")
        if child.exit_code != 0:
            raise RuntimeError(f"rtt probe failed: {child.log_tail()}")
        with open(out) as f:
            results.append(json.load(f))
    return {k: statistics.median(r[k] for r in results) for k in results[0]}


def scale_row(date, impl, sessions, holders, rss, rss_idle, probe, note):
    row = {
        "date": date, "test": "idle", "impl": impl, "sessions": sessions, "holders": holders,
        "rss_kib": rss, "rss_idle_kib": rss_idle,
        "rss_per_session_kib": (rss - rss_idle) / sessions if sessions > 0 else 0.0,
        "note": note,
    }
    for k in ("connect_greeting_us", "ehlo_us", "noop_median_us", "noop_p90_us"):
        row[k] = probe[k] if probe else ""
    return row


def many_sessions(lab, client, server, sessions, date):
    point = Point(sessions=sessions, keep_open=True)
    messages = 3 * sessions
    run = run_once(lab, point, "sessions", client, server, messages, 0, timeout=300)
    return {
        "date": date, "test": "sessions", "impl": f"{client.name} -> {server.name}",
        "sessions": sessions, "messages": messages,
        "elapsed_s": run.elapsed_s if run.ok else "",
        "msgs_per_s": run.msgs_per_s if run.ok else "",
        "client_cpu_s": run.client_cpu_s if run.ok else "",
        "server_cpu_s": run.server_cpu_s if run.ok else "",
        "client_maxrss_kib": run.client_maxrss_kib if run.ok else "",
        "server_maxrss_kib": run.server_maxrss_kib if run.ok else "",
        "note": "" if run.ok else f"failed: {run.error}",
    }
