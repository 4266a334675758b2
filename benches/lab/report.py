"""Results: medians per point and configuration, the CSV files, and the
generated part of docs/performance.md."""

import csv
import os
import platform
import statistics
import subprocess

# (config, client, server): the configurations measured at every point. The
# ceiling is measured in both ping-pong flavours (a thread per session, and
# one tokio loop per process), because which one is faster depends on the
# point (threads with few sessions, the event loop with many); the summary's
# "ceiling" row is the faster of the two.
CEILING_FLAVOURS = ("ceiling-threads", "ceiling-tokio")
CONFIGS = [
    ("ceiling-threads", "ceiling-threads", "ceiling-threads"),
    ("ceiling-tokio", "ceiling-tokio", "ceiling-tokio"),
    ("postfix-pair", "postfix", "postfix"),
    ("our-source", "ours", "postfix"),
    ("our-sink", "postfix", "ours"),
    ("our-pair", "ours", "ours"),
    # Only with run.py --baseline-bin: our programs built from another commit.
    ("baseline-pair", "baseline", "baseline"),
]

# At a point with ESMTP options (points.Point.esmtp) only the pairs are run:
# the ceiling and our pair speak them, Postfix's pair runs the same point in
# its own conversation (it can neither pipeline nor chunk), and the mixed
# configurations would measure a third conversation. The baseline build
# predates ESMTP.
ESMTP_CONFIGS = ("ceiling-threads", "ceiling-tokio", "postfix-pair", "our-pair")


# At a TLS point (--starttls) the same, but the ceiling's TLS conversation
# exists in the tokio flavour only.
TLS_CONFIGS = ("ceiling-tokio", "postfix-pair", "our-pair")


def applies(config, point):
    """Whether `config` is measured at `point`."""
    if point.tls:
        return config in TLS_CONFIGS
    if point.esmtp:
        return config in ESMTP_CONFIGS
    return True

SUMMARY_COLUMNS = [
    "date", "point", "transport", "sessions", "keep_open", "body_len", "rcpts", "dump", "esmtp",
    "config", "client", "server", "reps", "messages", "msgs_per_s",
    "client_cpu_s_per_1k", "server_cpu_s_per_1k", "client_maxrss_kib", "server_maxrss_kib",
    "frac_of_ceiling", "ratio_vs_postfix", "cpu_ratio_vs_postfix",
]

RUN_COLUMNS = [
    "date", "point", "config", "client", "server", "rep", "messages", "elapsed_s", "msgs_per_s",
    "client_cpu_s", "server_cpu_s", "client_maxrss_kib", "server_maxrss_kib", "ok", "error",
]

SCALE_COLUMNS = [
    "date", "test", "impl", "sessions", "holders", "rss_kib", "rss_idle_kib", "rss_per_session_kib",
    "connect_greeting_us", "ehlo_us", "noop_median_us", "noop_p90_us", "messages", "elapsed_s",
    "msgs_per_s", "client_cpu_s", "server_cpu_s", "client_maxrss_kib", "server_maxrss_kib", "note",
]


def summarize(points, runs, date):
    """One row per (point, config) that has at least one good run."""
    rows = []
    for point in points:
        medians = {}
        for config, client, server in CONFIGS:
            good = [r for r in runs if r.point == point.name and r.config == config and r.ok]
            if not good:
                continue
            per_1k = lambda cpu, r: cpu / r.messages * 1000.0  # noqa: E731
            medians[config] = {
                "date": date,
                "point": point.name,
                "transport": point.transport,
                "sessions": point.sessions,
                "keep_open": int(point.keep_open),
                "body_len": point.body_len,
                "rcpts": point.rcpts,
                "dump": int(point.dump),
                "esmtp": point.esmtp,
                "config": config,
                "client": client,
                "server": server,
                "reps": len(good),
                "messages": int(statistics.median(r.messages for r in good)),
                "msgs_per_s": statistics.median(r.msgs_per_s for r in good),
                "client_cpu_s_per_1k": statistics.median(per_1k(r.client_cpu_s, r) for r in good),
                "server_cpu_s_per_1k": statistics.median(per_1k(r.server_cpu_s, r) for r in good),
                "client_maxrss_kib": int(statistics.median(r.client_maxrss_kib for r in good)),
                "server_maxrss_kib": int(statistics.median(r.server_maxrss_kib for r in good)),
            }
        flavours = [medians[c] for c in CEILING_FLAVOURS if c in medians]
        if flavours:
            best = dict(max(flavours, key=lambda r: r["msgs_per_s"]))
            best["config"] = "ceiling"
            medians = {"ceiling": best, **medians}
        ceiling = medians.get("ceiling")
        postfix = medians.get("postfix-pair")
        for config, row in medians.items():
            row["frac_of_ceiling"] = row["msgs_per_s"] / ceiling["msgs_per_s"] if ceiling else ""
            row["ratio_vs_postfix"] = row["msgs_per_s"] / postfix["msgs_per_s"] if postfix else ""
            row["cpu_ratio_vs_postfix"] = cpu_ratio(config, row, postfix) if postfix else ""
            rows.append(row)
    return rows


def cpu_ratio(config, row, postfix):
    """CPU per message of the process under test against Postfix's program in
    the same role: the fair figure when the other end is the bottleneck."""
    if config == "our-source":
        key = ["client_cpu_s_per_1k"]
    elif config == "our-sink":
        key = ["server_cpu_s_per_1k"]
    else:
        key = ["client_cpu_s_per_1k", "server_cpu_s_per_1k"]
    ours = sum(row[k] for k in key)
    theirs = sum(postfix[k] for k in key)
    return ours / theirs if theirs > 0 else ""


def write_csv(path, columns, rows):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: fmt(row.get(k, "")) for k in columns})


def fmt(value):
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return f"{value:.6g}"
    return value


def run_rows(runs, date):
    rows = []
    for r in runs:
        row = dict(vars(r))
        row["date"] = date
        rows.append(row)
    return rows


# ---------------------------------------------------------------- machine --

def machine():
    info = {"kernel": platform.release(), "cores": os.cpu_count(), "cpu": "unknown"}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as f:
            kib = int(f.readline().split()[1])
            info["memory"] = f"{kib / 1024 / 1024:.0f} GiB"
    except OSError:
        pass
    info["postfix"] = postfix_version()
    return info


def postfix_version():
    try:
        out = subprocess.run(
            ["dpkg-query", "-W", "-f=${Version}", "postfix"],
            capture_output=True, text=True, timeout=10,
        )
        if out.returncode == 0 and out.stdout:
            return out.stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        pass
    return "unknown"


# --------------------------------------------------------------- markdown --

def _num(v, digits=0):
    if v == "" or v is None:
        return "—"
    return f"{v:,.{digits}f}"


def _pct(v):
    return "—" if v == "" or v is None else f"{100 * v:.0f}%"


def _x(v):
    return "—" if v == "" or v is None else f"{v:.2f}×"


def markdown(points, summary, scale_rows, meta):
    by = {(r["point"], r["config"]): r for r in summary}
    get = lambda p, c, k: by.get((p.name, c), {}).get(k, "")  # noqa: E731
    out = []
    out.append(f"Measured {meta['date']} on {meta['machine']['cpu']}, {meta['machine']['cores']} cores, "
               f"{meta['machine'].get('memory', '?')}, Linux {meta['machine']['kernel']}; "
               f"Postfix {meta['machine']['postfix']}; our binaries from {meta.get('revision', '?')}. "
               f"{meta['reps']} A/B-interleaved repetitions "
               f"per point, medians; "
               f"{'each run sized to about %g s' % meta['seconds'] if meta['seconds'] else 'smoke runs of -m 2000'}"
               f"{'; CPU pinning: ' + meta['pin'] if meta.get('pin', 'none') != 'none' else ''}. "
               f"Results: `{meta['results']}`.")
    if meta.get("caveat"):
        out.append("")
        out.append(f"**Caveat:** {meta['caveat']}")
    out.append("")
    out.append("Reproduce (as root or not, from the repository root):")
    out.append("")
    out.append("```sh")
    out.append(meta["command"])
    out.append("```")
    out.append("")
    out.append("### Pair: source into sink, ours vs Postfix's, against the ceiling")
    out.append("")
    out.append("| point | ceiling msg/s (flavour) | Postfix pair msg/s | % of ceiling | our pair msg/s | % of ceiling | ours/Postfix |")
    out.append("|---|---:|---:|---:|---:|---:|---:|")
    for p in points:
        flavour = str(get(p, "ceiling", "client")).replace("ceiling-", "")
        if p.tls and flavour:
            flavour += ", TLS"
        elif p.esmtp and flavour:
            flavour += ", one round trip"
        out.append(
            f"| `{p.name}` | {_num(get(p, 'ceiling', 'msgs_per_s'))} ({flavour or '—'}) "
            f"| {_num(get(p, 'postfix-pair', 'msgs_per_s'))}{PLAIN_MARK if p.esmtp else ''} "
            f"| {_pct(get(p, 'postfix-pair', 'frac_of_ceiling'))} "
            f"| {_num(get(p, 'our-pair', 'msgs_per_s'))} | {_pct(get(p, 'our-pair', 'frac_of_ceiling'))} "
            f"| {_x(get(p, 'our-pair', 'ratio_vs_postfix'))} |"
        )
    out += chart_lines(meta, "throughput")
    if any(p.esmtp and not p.tls for p in points):
        out.append("")
        out.append(PLAIN_NOTE)
    if any(p.tls for p in points):
        out.append("")
        out.append(TLS_NOTE)
    plain = [p for p in points if not p.esmtp]
    if plain:
        out.append("")
        out.append(alone_markdown(plain, get, meta))
    out.append("")
    out.append("### CPU seconds per 1,000 messages, client + server")
    out.append("")
    out.append("| point | ceiling | Postfix pair | our pair | our pair CPU / Postfix's |")
    out.append("|---|---:|---:|---:|---:|")
    for p in points:
        tot = lambda c: (get(p, c, "client_cpu_s_per_1k") + get(p, c, "server_cpu_s_per_1k")  # noqa: E731
                         if (p.name, c) in by else "")
        out.append(
            f"| `{p.name}` | {_num(tot('ceiling'), 3)} | {_num(tot('postfix-pair'), 3)}{PLAIN_MARK if p.esmtp else ''} "
            f"| {_num(tot('our-pair'), 3)} | {_x(get(p, 'our-pair', 'cpu_ratio_vs_postfix'))} |"
        )
    out += chart_lines(meta, "cpu")
    if scale_rows:
        out.append("")
        out.append(scale_markdown(scale_rows, meta))
        out.append("")
        out.append(meta.get("scale_note", ""))
    return "\n".join(out)


def chart_lines(meta, name):
    """The chart of the table just above, if run.py drew one (charts.py): an
    image whose path is relative to the doc, as meta["charts"] has it."""
    link = (meta or {}).get("charts", {}).get(name)
    return ["", f"![{link[0]}]({link[1]})"] if link else []


PLAIN_MARK = " †"
PLAIN_NOTE = ("† Postfix's pair can neither pipeline nor chunk: at a point with ESMTP options "
              "(`--pipelining --chunking`) it runs the same point in its own conversation (at "
              "`-s 1 -d --pipelining --chunking`, a plain `-s 1 -d` run), interleaved with our "
              "pipelined pair, and our pair's ratios there are against that. The ceiling at those "
              "points is the ping-pong's one-round-trip conversation: EHLO once, then per message "
              "MAIL+RCPT+`BDAT n LAST`+content in one write, answered by one write of the three "
              "replies.")


TLS_NOTE = ("† Postfix's pair cannot do TLS: at a `--starttls` point it runs the same point in "
            "the clear, interleaved with our pair in TLS (our sink with `--starttls`, a self-signed "
            "certificate made at start); our pair's ratios against Postfix's there say what TLS "
            "costs, not who is faster. The ceiling at those points is the ping-pong's TLS "
            "conversation (tokio flavour only): EHLO, STARTTLS and its 220 in the clear, a rustls "
            "handshake with smtp-net's configurations (ring, self-signed, no verification, "
            "resumption as at the point), EHLO again and Postfix's transaction inside TLS. "
            "`--no-tls-resume`: a full handshake per message; without it, resumed from a ticket.")


def baseline_markdown(points, summary, runs, meta):
    """Our pair now against the baseline build, per point: ratios of the
    medians, and the range of the ratios within each repetition (the two
    configurations run next to each other in every repetition)."""
    by = {(r["point"], r["config"]): r for r in summary}
    out = [f"Measured {meta['date']} on {meta['machine']['cpu']}, {meta['machine']['cores']} cores; "
           f"our pair from {meta.get('revision', '?')}, the baseline pair from "
           f"{meta.get('baseline', '?')}. {meta['reps']} A/B-interleaved repetitions per point "
           f"(order alternating), medians; each run sized to about {meta['seconds']:g} s. "
           f"Results: `{meta['results']}`.", ""]
    if meta.get("caveat"):
        out += [f"**Caveat:** {meta['caveat']}", ""]
    out += ["```sh", meta["command"], "```", ""]
    out.append("| point | baseline msg/s | ours msg/s | msg/s ours/baseline | per-rep range "
               "| CPU s/1k msgs (client+server): baseline | ours | CPU/msg ours/baseline | per-rep range |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for p in points:
        base, ours = by.get((p.name, "baseline-pair")), by.get((p.name, "our-pair"))
        if not base or not ours:
            continue
        cpu = lambda r: r["client_cpu_s_per_1k"] + r["server_cpu_s_per_1k"]  # noqa: E731
        rate_ratios, cpu_ratios = rep_ratios(runs, p.name)
        span = lambda v: f"{min(v):.2f}-{max(v):.2f}" if v else "—"  # noqa: E731
        out.append(
            f"| `{p.name}` | {_num(base['msgs_per_s'])} | {_num(ours['msgs_per_s'])} "
            f"| {ours['msgs_per_s'] / base['msgs_per_s']:.3f} | {span(rate_ratios)} "
            f"| {_num(cpu(base), 3)} | {_num(cpu(ours), 3)} "
            f"| {cpu(ours) / cpu(base) if cpu(base) else float('nan'):.3f} | {span(cpu_ratios)} |"
        )
    out += chart_lines(meta, "baseline")
    return "\n".join(out)


def rep_ratios(runs, point):
    """Our pair over the baseline pair within each repetition at `point`:
    (msg/s ratios, CPU-per-message ratios). The two ran next to each other
    in every repetition, so these ranges show what one pair of runs can say."""
    rate_ratios, cpu_ratios = [], []
    for rep in sorted({r.rep for r in runs if r.point == point and r.rep >= 0}):
        pair = {r.config: r for r in runs
                if r.point == point and r.rep == rep and r.ok and r.config in ("our-pair", "baseline-pair")}
        if len(pair) == 2:
            o, b = pair["our-pair"], pair["baseline-pair"]
            rate_ratios.append(o.msgs_per_s / b.msgs_per_s)
            run_cpu = lambda r: (r.client_cpu_s + r.server_cpu_s) / r.messages  # noqa: E731
            if run_cpu(b) > 0:
                cpu_ratios.append(run_cpu(o) / run_cpu(b))
    return rate_ratios, cpu_ratios


def alone_markdown(points, get, meta=None):
    """Our source and our sink each against Postfix's other program."""
    out = []
    out.append("### Source alone: ours vs Postfix's smtp-source, both into Postfix's smtp-sink")
    out.append("")
    out.append("| point | Postfix source msg/s | our source msg/s | ours/Postfix | % of ceiling | source CPU s/1k msgs: Postfix | ours | ceiling client | peak RSS KiB: Postfix | ours |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for p in points:
        out.append(
            f"| `{p.name}` | {_num(get(p, 'postfix-pair', 'msgs_per_s'))} | {_num(get(p, 'our-source', 'msgs_per_s'))} "
            f"| {_x(get(p, 'our-source', 'ratio_vs_postfix'))} | {_pct(get(p, 'our-source', 'frac_of_ceiling'))} "
            f"| {_num(get(p, 'postfix-pair', 'client_cpu_s_per_1k'), 3)} | {_num(get(p, 'our-source', 'client_cpu_s_per_1k'), 3)} "
            f"| {_num(get(p, 'ceiling', 'client_cpu_s_per_1k'), 3)} "
            f"| {_num(get(p, 'postfix-pair', 'client_maxrss_kib'))} | {_num(get(p, 'our-source', 'client_maxrss_kib'))} |"
        )
    out += chart_lines(meta, "source")
    out.append("")
    out.append("### Sink alone: Postfix's smtp-source into our sink vs into Postfix's")
    out.append("")
    out.append("| point | into Postfix sink msg/s | into our sink msg/s | ours/Postfix | % of ceiling | sink CPU s/1k msgs: Postfix | ours | ceiling server | sink CPU ours/Postfix | peak RSS KiB: Postfix | ours |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for p in points:
        out.append(
            f"| `{p.name}` | {_num(get(p, 'postfix-pair', 'msgs_per_s'))} | {_num(get(p, 'our-sink', 'msgs_per_s'))} "
            f"| {_x(get(p, 'our-sink', 'ratio_vs_postfix'))} | {_pct(get(p, 'our-sink', 'frac_of_ceiling'))} "
            f"| {_num(get(p, 'postfix-pair', 'server_cpu_s_per_1k'), 3)} | {_num(get(p, 'our-sink', 'server_cpu_s_per_1k'), 3)} "
            f"| {_num(get(p, 'ceiling', 'server_cpu_s_per_1k'), 3)} | {_x(get(p, 'our-sink', 'cpu_ratio_vs_postfix'))} "
            f"| {_num(get(p, 'postfix-pair', 'server_maxrss_kib'))} | {_num(get(p, 'our-sink', 'server_maxrss_kib'))} |"
        )
    out += chart_lines(meta, "sink")
    return "\n".join(out)


def scale_markdown(rows, meta=None):
    out = ["### Connection scale: idle sessions held after EHLO", ""]
    out.append("| sink | sessions | RSS KiB | RSS per session KiB | new client: connect+greeting µs | NOOP median µs | NOOP p90 µs | note |")
    out.append("|---|---:|---:|---:|---:|---:|---:|---|")
    for r in rows:
        if r["test"] != "idle":
            continue
        out.append(
            f"| {r['impl']} | {r['sessions']:,} | {_num(r['rss_kib'])} | {_num(r['rss_per_session_kib'], 1)} "
            f"| {_num(r['connect_greeting_us'])} | {_num(r['noop_median_us'])} | {_num(r['noop_p90_us'])} | {r['note']} |"
        )
    out += chart_lines(meta, "scale")
    busy = [r for r in rows if r["test"] == "sessions"]
    if busy:
        out.append("")
        out.append("### Many concurrent sessions: source -s N -d into sink")
        out.append("")
        out.append("| pair | sessions | messages | msg/s | source CPU s | sink CPU s | source peak RSS KiB | sink peak RSS KiB | note |")
        out.append("|---|---:|---:|---:|---:|---:|---:|---:|---|")
        for r in busy:
            out.append(
                f"| {r['impl']} | {r['sessions']:,} | {_num(r['messages'])} | {_num(r['msgs_per_s'])} "
                f"| {_num(r['client_cpu_s'], 2)} | {_num(r['server_cpu_s'], 2)} | {_num(r['client_maxrss_kib'])} "
                f"| {_num(r['server_maxrss_kib'])} | {r['note']} |"
            )
        out += chart_lines(meta, "sessions")
    return "\n".join(out)


BEGIN = "<!-- lab:begin (generated by benches/lab/run.py; edits inside are overwritten) -->"
END = "<!-- lab:end -->"


def update_doc(path, generated):
    """Replaces the generated block of docs/performance.md, keeping the prose."""
    if not os.path.exists(path):
        with open(path, "w") as f:
            f.write(f"# Performance lab results\n\n{BEGIN}\n{END}\n")
    with open(path) as f:
        text = f.read()
    start = text.find(BEGIN)
    stop = text.find(END)
    if start < 0 or stop < start:
        raise SystemExit(f"{path}: the markers {BEGIN!r} ... {END!r} are missing")
    text = text[: start + len(BEGIN)] + "\n" + generated.rstrip() + "\n" + text[stop:]
    with open(path, "w") as f:
        f.write(text)


# ---------------------------------------------------------------- targets --

NOISE = 0.85  # a ratio between this and 1.0 is within the run-to-run noise


def _mark(value, goal, noise=True):
    if value == "" or value is None:
        return "—"
    if value >= goal:
        return "✓"
    return "~" if noise and value >= goal * NOISE else "✗"


def _mark_at_most(value, goal):
    if value == "" or value is None:
        return "—"
    if value <= goal:
        return "✓"
    return "~" if value * NOISE <= goal else "✗"


def targets_markdown(points, summary, scale_rows):
    """The issue's targets, each checked against this run's medians."""
    by = {(r["point"], r["config"]): r for r in summary}
    get = lambda p, c, k: by.get((p.name, c), {}).get(k, "")  # noqa: E731
    out = ["| target | point | measured | |", "|---|---|---:|:-:|"]
    for p in points:
        v = get(p, "our-pair", "frac_of_ceiling")
        if p.tls:  # the TLS target is 80% of the TLS ceiling (below)
            continue
        which = "the one-round-trip ceiling" if p.esmtp else "the ceiling"
        out.append(f"| our pair ≥ 90% of {which} | `{p.name}` | {_pct(v)} | {_mark(v, 0.9)} |")
    for p in points:
        if not p.esmtp or p.tls or p.body_len or p.rcpts != 1:
            continue
        if p.sessions == 1:
            v = get(p, "our-pair", "ratio_vs_postfix")
            out.append(f"| our pipelined pair ≥ 3.5× Postfix's pair (plain `-s 1 -d`) | `{p.name}` "
                       f"| {_x(v)} | {_mark(v, 3.5)} |")
        else:
            v = get(p, "our-pair", "cpu_ratio_vs_postfix")
            out.append(f"| our pipelined pair's CPU/msg ≤ 0.5× Postfix's pair's (plain) | `{p.name}` "
                       f"| {_x(v)} | {_mark_at_most(v, 0.5)} |")
    for p in points:
        if p.tls and not p.keep_open and "--no-tls-resume" in p.esmtp_flags:
            v = get(p, "our-pair", "frac_of_ceiling")
            out.append(f"| TLS, full handshakes: our pair ≥ 80% of the TLS ceiling | `{p.name}` "
                       f"| {_pct(v)} | {_mark(v, 0.8)} |")
        if p.tls and p.keep_open and p.body_len:
            clear = [q for q in points if not q.esmtp and (q.sessions, q.keep_open, q.body_len,
                     q.rcpts, q.transport, q.dump) == (p.sessions, p.keep_open, p.body_len,
                                                       p.rcpts, p.transport, p.dump)]
            a = get(p, "our-pair", "msgs_per_s")
            b = get(clear[0], "our-pair", "msgs_per_s") if clear else ""
            v = a / b if a != "" and b not in ("", 0) else ""
            out.append(f"| TLS bulk: our pair ≥ 70% of our plaintext pair | `{p.name}` "
                       f"| {_pct(v)} | {_mark(v, 0.7)} |")
    plain = [p for p in points if not p.esmtp]
    for p in plain:
        v = get(p, "our-pair", "ratio_vs_postfix")
        if p.dump:
            continue
        goal, what = {0: (1.1, "≥ 1.1× Postfix's pair (small messages)"),
                      10240: (3.0, "≥ 3× Postfix's pair (10 KiB)"),
                      102400: (10.0, "≥ 10× Postfix's pair (100 KiB)")}[p.body_len]
        out.append(f"| our pair {what} | `{p.name}` | {_x(v)} | {_mark(v, goal)} |")
    for p in plain:
        v = get(p, "our-sink", "ratio_vs_postfix")
        c = get(p, "our-sink", "cpu_ratio_vs_postfix")
        cpu = f"{_x(v)} (sink CPU/msg {_x(c)})"
        if p.dump:
            out.append(f"| our sink ≥ 5× Postfix's sink with `-D` | `{p.name}` | {cpu} | {_mark(v, 5.0)} |")
        elif p.body_len:
            out.append(f"| our sink ≥ 1.5× Postfix's sink | `{p.name}` | {cpu} | {_mark(v, 1.5)} |")
        else:
            out.append(f"| our sink never slower than Postfix's | `{p.name}` | {cpu} | {_mark(v, 1.0)} |")
    for p in plain:
        v = get(p, "our-source", "ratio_vs_postfix")
        c = get(p, "our-source", "cpu_ratio_vs_postfix")
        out.append(f"| our source never slower than Postfix's | `{p.name}` | {_x(v)} (source CPU/msg "
                   f"{_x(c)}) | {_mark(v, 1.0)} |")
    idle = [r for r in scale_rows if r["test"] == "idle" and r["impl"] == "ours" and r["sessions"] >= 0]
    if idle:
        top = max(idle, key=lambda r: r["sessions"])
        base = min(idle, key=lambda r: r["sessions"])
        per = top["rss_per_session_kib"]
        out.append(f"| idle sessions ≤ 16 KiB each | {int(top['sessions']):,} sessions | {per:.1f} KiB | "
                   f"{'✓' if per <= 16 else '✗'} |")
        if top["noop_median_us"] != "" and base["noop_median_us"]:
            growth = top["noop_median_us"] / base["noop_median_us"]
            out.append(f"| reply time within 2× of an idle sink | {int(top['sessions']):,} sessions | "
                       f"{base['noop_median_us']:.0f} → {top['noop_median_us']:.0f} µs ({growth:.2f}×) | "
                       f"{'✓' if growth <= 2 else '✗'} |")
    return "\n".join(out)


def update_block(path, name, text):
    """Replaces `<!-- name:begin -->` ... `<!-- name:end -->` if the file has it."""
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    with open(path) as f:
        doc = f.read()
    start, stop = doc.find(begin), doc.find(end)
    if start < 0 or stop < start:
        return False
    with open(path, "w") as f:
        f.write(doc[: start + len(begin)] + "\n" + text.rstrip() + "\n" + doc[stop:])
    return True
