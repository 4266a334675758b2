#!/usr/bin/env python3
"""Charts of the lab's results: one SVG per results table, drawn from the same
medians as the markdown tables and written beside the CSVs, so that the shape
of a run (where ours leads, where the ceiling is far off) shows at a glance.

    python3 benches/lab/charts.py benches/lab/results/STAMP.csv
    python3 benches/lab/charts.py STAMP.csv --baseline-label 86ed66c
    python3 benches/lab/charts.py A.csv B.csv --name NAME   # several runs in one set

run.py calls draw() after writing the CSVs. The command draws from a summary
CSV (and the -runs and -scale CSVs beside it, if there) what run.py would
have drawn from memory: STAMP-throughput.svg, -source, -sink, -cpu, -scale,
-sessions and -baseline, each where its table has data.

matplotlib is Debian's python3-matplotlib. When the interpreter running the
lab cannot import it (a pyenv Python does not see Debian's packages), draw()
runs this file under the system's python3 instead; without matplotlib at all
the lab still measures and says why it drew nothing.
"""

import argparse
import csv
import os
import subprocess
import sys
from types import SimpleNamespace

# Run as a command, it imports report from beside it; neither may leave
# __pycache__ in the repository.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import report  # noqa: E402

SYSTEM_PYTHON = "/usr/bin/python3"

# 600 pt = 800 CSS px: the SVG's own width is the width it must be read at.
WIDTH_IN = 600 / 72

# One colour per party, the same in every chart.
COLOURS = {
    "ceiling": "#a0a0a0",
    "postfix": "#d9822b",
    "ours": "#2d6cb5",
    "baseline": "#a0a0a0",
}

# The charts in the order of the doc's tables: name (the file's suffix, after
# its table) and the alt text of its image in the doc.
TABLES = [
    ("throughput", "Pair: msg/s per point, the ceiling, Postfix's pair and our pair"),
    ("source", "Source alone: msg/s and the source's CPU per message, ours against Postfix's"),
    ("sink", "Sink alone: msg/s and the sink's CPU per message, ours against Postfix's"),
    ("cpu", "CPU per message, client + server, per point"),
    ("scale", "Connection scale: sink RSS and a new client's NOOP time against idle sessions held"),
    ("sessions", "Many concurrent sessions: msg/s, CPU per message and peak RSS per pair"),
    ("baseline", "Our pair against the baseline pair: msg/s and CPU per message, ratios per point"),
]
TITLES = dict(TABLES)

PLAIN_FOOTNOTE = ("† Postfix's pair cannot pipeline, chunk or do TLS: at such a point it runs "
                  "the same point in its own conversation, in the clear.")


class Unavailable(Exception):
    """matplotlib cannot be imported by this interpreter."""


# ------------------------------------------------------------------- data --

def points_of(summary):
    """The points in the order of the run (the tables' order)."""
    seen = []
    for row in summary:
        if row["point"] not in seen:
            seen.append(row["point"])
    return seen


def value(by, point, config, key):
    """A median from the summary, or None where the table shows —."""
    v = by.get((point, config), {}).get(key, "")
    return None if v == "" or v is None else v


def cpu_us(by, point, config, keys=("client_cpu_s_per_1k", "server_cpu_s_per_1k")):
    """CPU per message in µs (the CSVs keep seconds per 1,000 messages)."""
    parts = [value(by, point, config, k) for k in keys]
    return None if None in parts else 1000.0 * sum(parts)


def plain_mark(by, point):
    """The tables' †: Postfix's pair ran this point in its own conversation."""
    row = by.get((point, "postfix-pair")) or by.get((point, "our-pair")) or {}
    return " †" if row.get("esmtp") else ""


def plan(summary, scale_rows=()):
    """The names of the charts whose tables have data, in the doc's order."""
    configs = {r["config"] for r in summary}
    by = {(r["point"], r["config"]): r for r in summary}
    points = points_of(summary)
    names = []
    if configs & {"ceiling", "postfix-pair"}:
        names.append("throughput")
    for name, config in (("source", "our-source"), ("sink", "our-sink")):
        if any((p, config) in by for p in points):
            names.append(name)
    if configs & {"ceiling", "postfix-pair"}:
        names.append("cpu")
    if any(r["test"] == "idle" for r in scale_rows):
        names.append("scale")
    if any(r["test"] == "sessions" for r in scale_rows):
        names.append("sessions")
    if any((p, "our-pair") in by and (p, "baseline-pair") in by for p in points):
        names.append("baseline")
    return names


def chart_path(out_dir, stamp, name):
    return os.path.join(out_dir, f"{stamp}-{name}.svg")


# ---------------------------------------------------------------- drawing --

def pyplot():
    """matplotlib's pyplot on the SVG backend, or Unavailable."""
    try:
        import matplotlib
    except ImportError as e:
        raise Unavailable(str(e)) from e
    matplotlib.use("svg")
    import matplotlib.pyplot as plt

    return plt


STYLE = {
    # Text stays text (small files, searchable, and the smoke test reads it).
    "svg.fonttype": "none",
    # Fixed ids, so the same results give the same bytes.
    "svg.hashsalt": "smtp-suite-lab",
    "font.size": 9,
    "axes.titlesize": 10,
    "axes.titleweight": "bold",
    "axes.spines.top": False,
    "axes.spines.right": False,
    "legend.fontsize": 9,
    "legend.frameon": False,
}


def fmt_rate(v):
    return f"{v:,.0f}"


def fmt_us(v):
    return f"{v:,.1f}" if v < 10 else f"{v:,.0f}"


def wrap(point):
    """A long point name on two lines, before its ESMTP options, so the
    labels leave the bars most of the 800 px."""
    head, sep, tail = point.partition(" --")
    return f"{head}\n--{tail}" if sep and len(point) > 24 else point


def left_margin(labels):
    """The fraction of the width the y labels need (about 5.5 pt a character
    at 9 pt), at least the figure's 12%."""
    longest = max((len(line) for label in labels for line in label.split("\n")), default=0)
    return max(0.12, (longest * 5.6 + 18) / (WIDTH_IN * 72))


def hbars(ax, labels, series, fmt, unit, ticks=8):
    """Grouped horizontal bars, one group per label (top to bottom in the
    tables' order), one bar per series, each with its value at its end.
    series: [(legend label, colour, [value or None per label])]."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    n = len(series)
    height = 0.8 / n
    top = max((v for _, _, vals in series for v in vals if v is not None), default=1.0)
    for i, (label, colour, vals) in enumerate(series):
        ys = [g + (i - (n - 1) / 2) * height for g in range(len(labels))]
        drawn = [(y, v) for y, v in zip(ys, vals) if v is not None]
        ax.barh([y for y, _ in drawn], [v for _, v in drawn], height=height * 0.92,
                color=colour, label=label)
        for y, v in drawn:
            ax.text(v + top * 0.01, y, fmt(v), va="center", ha="left", fontsize=7, color="#333333")
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels)
    ax.set_ylim(len(labels) - 0.5, -0.5)  # first point on top, as in the table
    ax.set_xlim(0, top * 1.18)  # room for the last value's label
    ax.set_xlabel(unit)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=ticks))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.grid(axis="x", color="#e6e6e6", linewidth=0.6)
    ax.set_axisbelow(True)
    ax.tick_params(axis="y", length=0)


def bar_height(n_points, n_series):
    """Inches for the bars: a label's line per bar, a gap per group."""
    return n_points * (0.17 * n_series + 0.16)


def finish(fig, plt, path, title, legend_axes, footnote=None):
    """Title, one legend for the figure (under the title), footnote, and the
    file: fixed size, no date, so the same results give the same SVG."""
    handles, labels = [], []
    for ax in legend_axes:
        for h, lab in zip(*ax.get_legend_handles_labels()):
            if lab not in labels:
                handles.append(h)
                labels.append(lab)
    fig.suptitle(title, x=0.01, ha="left", fontsize=11, fontweight="bold")
    if handles:
        fig.legend(handles, labels, loc="upper left", bbox_to_anchor=(0.01, 1 - 0.42 / fig.get_figheight()),
                   ncol=len(handles), handlelength=1.2, columnspacing=1.5)
    if footnote:
        fig.text(0.01, 0.01, footnote, fontsize=7.5, color="#444444", ha="left", va="bottom", wrap=True)
    fig.savefig(path, format="svg", metadata={"Date": None})
    plt.close(fig)


def layout(fig, height, footnote, labels):
    """Room above the axes for the title and the legend, below for the x
    labels and the footnote (in inches, whatever the figure's height), and
    on the left for the longest label."""
    top = 1 - 0.75 / height
    bottom = (0.62 + (0.25 if footnote else 0)) / height
    fig.subplots_adjust(left=left_margin(labels), right=0.98, top=top, bottom=bottom, wspace=0.12)


def throughput_chart(plt, summary, path):
    pair_chart(plt, summary, path, lambda by, p, config: value(by, p, config, "msgs_per_s"),
               fmt_rate, "messages per second (more is better)",
               "Pair: source into sink, msg/s per point")


def cpu_chart(plt, summary, path):
    pair_chart(plt, summary, path, cpu_us, fmt_us,
               "CPU µs per message, client + server (less is better)",
               "CPU per message, client + server")


def pair_chart(plt, summary, path, get, fmt, axis_label, title):
    """Grouped bars, one group per point: the ceiling, Postfix's pair and
    ours, each bar `get(by, point, config)`."""
    by = {(r["point"], r["config"]): r for r in summary}
    points = points_of(summary)
    series = [(label, COLOURS[party], [get(by, p, config) for p in points])
              for label, party, config in (("ceiling (ping-pong)", "ceiling", "ceiling"),
                                           ("Postfix's pair", "postfix", "postfix-pair"),
                                           ("our pair", "ours", "our-pair"))]
    series = [s for s in series if any(v is not None for v in s[2])]
    labels = [wrap(p + plain_mark(by, p)) for p in points]
    footnote = PLAIN_FOOTNOTE if any(plain_mark(by, p) for p in points) else None
    height = 1.5 + bar_height(len(points), len(series)) + (0.25 if footnote else 0)
    fig, ax = plt.subplots(figsize=(WIDTH_IN, height))
    layout(fig, height, footnote, labels)
    hbars(ax, labels, series, fmt, axis_label)
    finish(fig, plt, path, title, [ax], footnote)


def alone_chart(plt, summary, path, role):
    """Source alone or sink alone: msg/s beside the CPU per message of the
    process under test (with Postfix's source on the other end, a sink's
    msg/s mostly measures that source; its CPU per message is the fairer
    figure)."""
    by = {(r["point"], r["config"]): r for r in summary}
    config, key = ("our-source", "client_cpu_s_per_1k") if role == "source" else ("our-sink", "server_cpu_s_per_1k")
    points = [p for p in points_of(summary) if (p, config) in by]
    if role == "source":
        title = "Source alone: ours vs Postfix's smtp-source, both into Postfix's smtp-sink"
        rates = [("Postfix's source", "postfix", "postfix-pair"), ("our source", "ours", config)]
    else:
        title = "Sink alone: Postfix's smtp-source into our sink vs into Postfix's"
        rates = [("Postfix's sink", "postfix", "postfix-pair"), ("our sink", "ours", config)]
    cpus = [("ceiling's " + ("client" if role == "source" else "server"), "ceiling", "ceiling")] + rates
    rate_series = [(label, COLOURS[party], [value(by, p, c, "msgs_per_s") for p in points])
                   for label, party, c in rates]
    cpu_series = [(label, COLOURS[party], [cpu_us(by, p, c, (key,)) for p in points])
                  for label, party, c in cpus]
    height = 1.5 + bar_height(len(points), 3)
    fig, (left, right) = plt.subplots(1, 2, sharey=True, figsize=(WIDTH_IN, height))
    labels = [wrap(p) for p in points]
    layout(fig, height, None, labels)
    hbars(left, labels, rate_series, fmt_rate, "msg/s (more is better)", ticks=4)
    hbars(right, labels, cpu_series, fmt_us, f"{role} CPU µs per message (less is better)", ticks=4)
    right.tick_params(axis="y", labelleft=False)
    finish(fig, plt, path, title, [right])


def scale_chart(plt, scale_rows, path):
    """Idle sessions held after EHLO: the sink's RSS and a new client's NOOP
    round trip, on log scales (Postfix's sink grows 100× faster)."""
    idle = [r for r in scale_rows if r["test"] == "idle"]
    impls = []
    for r in idle:
        if r["impl"] not in impls:
            impls.append(r["impl"])
    height = 3.9
    fig, (rss, noop) = plt.subplots(1, 2, figsize=(WIDTH_IN, height))
    fig.subplots_adjust(left=0.09, right=0.98, top=1 - 1.0 / height, bottom=0.55 / height, wspace=0.28)
    for impl in impls:
        rows = sorted((r for r in idle if r["impl"] == impl), key=lambda r: r["sessions"])
        label, colour = ("our sink", COLOURS["ours"]) if impl == "ours" else ("Postfix's sink", COLOURS["postfix"])
        held = [r for r in rows if r["rss_kib"] != ""]
        mib = [(r["sessions"], r["rss_kib"] / 1024) for r in held]
        rss.plot([x for x, _ in mib], [v for _, v in mib], marker="o", color=colour, label=label)
        if mib:
            per = held[-1]["rss_per_session_kib"]
            rss.annotate(f"{mib[-1][1]:,.0f} MiB ({per:.1f} KiB/session)", mib[-1],
                         textcoords="offset points", xytext=(-4, 6), ha="right", fontsize=7)
        us = [(r["sessions"], r["noop_median_us"]) for r in rows if r["noop_median_us"] != ""]
        noop.plot([x for x, _ in us], [v for _, v in us], marker="o", color=colour, label=label)
        if us:
            noop.annotate(f"{us[-1][1]:,.0f} µs", us[-1], textcoords="offset points", xytext=(-4, 6),
                          ha="right", fontsize=7)
    for ax, ylabel, title in ((rss, "sink RSS, MiB (log scale)", "Memory"),
                              (noop, "new client's NOOP round trip, µs (log)", "Reply time")):
        ax.set_yscale("log")
        ax.yaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.set_xlabel("idle sessions held")
        ax.set_ylabel(ylabel)
        ax.set_title(title, loc="left")
        ax.grid(color="#e6e6e6", linewidth=0.6)
        ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:,.0f}"))
    finish(fig, plt, path, "Connection scale: idle sessions held after EHLO", [rss])


def sessions_chart(plt, scale_rows, path):
    """source -s N -d into sink with thousands of sessions: one bar per pair
    in each of msg/s, CPU per message and peak RSS."""
    busy = [r for r in scale_rows if r["test"] == "sessions"]
    labels = [f"{r['impl'].replace(' -> ', ' → ')}, {r['sessions']:,} sessions" for r in busy]
    colours = [COLOURS["ours"] if r["impl"].startswith("ours") else COLOURS["postfix"] for r in busy]
    height = 1.6 + 0.45 * len(busy)
    fig, axes = plt.subplots(1, 3, sharey=True, figsize=(WIDTH_IN, height))
    fig.subplots_adjust(left=left_margin(labels), right=0.97, top=1 - 0.6 / height, bottom=0.6 / height,
                        wspace=0.15)

    def per_msg(r):
        return 1e6 * (r["client_cpu_s"] + r["server_cpu_s"]) / r["messages"]

    panels = [
        ("msg/s", [r["msgs_per_s"] for r in busy], fmt_rate),
        ("CPU µs/message, both", [per_msg(r) for r in busy], fmt_us),
        ("peak RSS MiB, source + sink", [(r["client_maxrss_kib"] + r["server_maxrss_kib"]) / 1024 for r in busy],
         lambda v: f"{v:,.0f}"),
    ]
    for ax, (xlabel, vals, fmt) in zip(axes, panels):
        ax.barh(range(len(busy)), vals, color=colours, height=0.6)
        top = max(vals) if vals else 1
        for y, v in enumerate(vals):
            ax.text(v + top * 0.02, y, fmt(v), va="center", fontsize=7)
        ax.set_xlim(0, top * 1.3)
        ax.set_xlabel(xlabel)
        ax.xaxis.set_major_formatter(plt.FuncFormatter(lambda v, _: f"{v:,.0f}"))
        ax.grid(axis="x", color="#e6e6e6", linewidth=0.6)
        ax.set_axisbelow(True)
        ax.tick_params(axis="y", length=0)
    axes[0].set_yticks(range(len(busy)))
    axes[0].set_yticklabels(labels)
    axes[0].set_ylim(len(busy) - 0.5, -0.5)
    finish(fig, plt, path, "Many concurrent sessions: source -s N -d into sink", [])


def baseline_chart(plt, summary, runs, path, label=None):
    """Our pair over the baseline pair per point: the ratio of the medians
    (a dot) and the range of the per-repetition ratios (a line), for msg/s
    and for CPU per message; 1.0 is no change. Bars of the two absolute
    figures would hide the few percent this comparison is about."""
    by = {(r["point"], r["config"]): r for r in summary}
    points = [p for p in points_of(summary) if (p, "our-pair") in by and (p, "baseline-pair") in by]
    height = 1.6 + 0.38 * len(points)
    fig, axes = plt.subplots(1, 2, sharey=True, figsize=(WIDTH_IN, height))
    labels = [wrap(p) for p in points]
    layout(fig, height, None, labels)
    ratios = {p: report.rep_ratios(runs, p) for p in points}
    panels = [
        (axes[0], "msg/s, ours / baseline (> 1: faster)",
         [value(by, p, "our-pair", "msgs_per_s") / value(by, p, "baseline-pair", "msgs_per_s") for p in points],
         [ratios[p][0] for p in points]),
        (axes[1], "CPU/msg, ours / baseline (< 1: cheaper)",
         [cpu_ratio(by, p) for p in points], [ratios[p][1] for p in points]),
    ]
    for ax, xlabel, medians, spans in panels:
        ax.axvline(1.0, color="#444444", linewidth=0.8)
        for y, vals in enumerate(spans):
            if vals:
                ax.plot([min(vals), max(vals)], [y, y], color=COLOURS["baseline"], linewidth=3,
                        solid_capstyle="butt", label="per-repetition range")
        ys = [y for y, m in enumerate(medians) if m is not None]
        ax.plot([medians[y] for y in ys], ys, "o", color=COLOURS["ours"], label="ratio of the medians")
        for y in ys:
            ax.annotate(f"{medians[y]:.3f}", (medians[y], y), textcoords="offset points", xytext=(0, 5),
                        ha="center", fontsize=7,
                        bbox={"boxstyle": "square,pad=0.05", "facecolor": "white", "edgecolor": "none"})
        lows = [v for vals in spans for v in vals] + [m for m in medians if m is not None] + [1.0]
        reach = max(abs(v - 1.0) for v in lows) * 1.15 + 0.02
        ax.set_xlim(1.0 - reach, 1.0 + reach)
        ax.set_xlabel(xlabel)
        ax.grid(axis="x", color="#e6e6e6", linewidth=0.6)
        ax.tick_params(axis="y", length=0)
    axes[0].set_yticks(range(len(points)))
    axes[0].set_yticklabels(labels)
    axes[0].set_ylim(len(points) - 0.5, -0.6)
    axes[1].tick_params(axis="y", labelleft=False)
    title = "Our pair against the baseline pair" + (f" ({label})" if label else "")
    finish(fig, plt, path, title, [axes[0]])


def cpu_ratio(by, point):
    ours, base = cpu_us(by, point, "our-pair"), cpu_us(by, point, "baseline-pair")
    return ours / base if ours is not None and base else None


def write(out_dir, stamp, summary, scale_rows=(), runs=(), baseline_label=None):
    """Draws every chart whose table has data; returns {name: path}.
    Raises Unavailable when matplotlib cannot be imported."""
    names = plan(summary, scale_rows)
    if not names:
        return {}
    plt = pyplot()
    import matplotlib

    paths = {}
    with matplotlib.rc_context(STYLE):
        for name in names:
            path = chart_path(out_dir, stamp, name)
            if name == "throughput":
                throughput_chart(plt, summary, path)
            elif name == "cpu":
                cpu_chart(plt, summary, path)
            elif name in ("source", "sink"):
                alone_chart(plt, summary, path, name)
            elif name == "scale":
                scale_chart(plt, scale_rows, path)
            elif name == "sessions":
                sessions_chart(plt, scale_rows, path)
            elif name == "baseline":
                baseline_chart(plt, summary, runs, path, baseline_label)
            paths[name] = path
    return paths


# ------------------------------------------------------- from run.py, CLI --

def draw(out_dir, stamp, summary, scale_rows, runs, csv_files, baseline_label=None):
    """run.py's entry: (charts {name: path}, why none were drawn or None).
    Draws here if this interpreter has matplotlib, else runs this file on
    the CSVs just written under the system's python3, if that one has it."""
    names = plan(summary, scale_rows)
    if not names:
        return {}, None
    try:
        return write(out_dir, stamp, summary, scale_rows, runs, baseline_label), None
    except Unavailable as e:
        why = f"matplotlib is not importable here ({e})"
    except Exception as e:  # noqa: BLE001
        # A chart must not cost the doc an hour's measurements: the CSVs are
        # written, and `charts.py STAMP.csv` can draw again once fixed.
        return {}, f"drawing failed: {e!r}"
    other = other_python()
    if other is None or not csv_files:
        return {}, why + "; install python3-matplotlib"
    argv = [other, os.path.abspath(__file__), csv_files[0]]
    if baseline_label:
        argv += ["--baseline-label", baseline_label]
    done = subprocess.run(argv, capture_output=True, text=True)
    if done.returncode != 0:
        return {}, f"{' '.join(argv[:2])} failed: {done.stderr.strip()[-500:]}"
    paths = {n: chart_path(out_dir, stamp, n) for n in names}
    return {n: p for n, p in paths.items() if os.path.exists(p)}, None


def other_python():
    """The system's python3, if it is not this one and imports matplotlib."""
    if not os.access(SYSTEM_PYTHON, os.X_OK) or os.path.realpath(SYSTEM_PYTHON) == os.path.realpath(sys.executable):
        return None
    probe = subprocess.run([SYSTEM_PYTHON, "-c", "import matplotlib"], capture_output=True)
    return SYSTEM_PYTHON if probe.returncode == 0 else None


def typed(text):
    """A CSV field as the summary held it: int, float, or text ("" stays "")."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def read_rows(path):
    if not os.path.exists(path):
        return []
    with open(path, newline="") as f:
        return [{k: (v if k in ("point", "esmtp", "date", "note", "impl", "error") else typed(v))
                 for k, v in row.items()} for row in csv.DictReader(f)]


def stamp_of(path):
    """STAMP of STAMP.csv, STAMP-runs.csv or STAMP-scale.csv."""
    base = os.path.basename(path)
    base = base[:-4] if base.endswith(".csv") else base
    for suffix in ("-runs", "-scale"):
        if base.endswith(suffix):
            return base[: -len(suffix)]
    return base


def read_run(path):
    """(summary, scale rows, runs) of the run whose CSV `path` is."""
    folder, stamp = os.path.dirname(path), stamp_of(path)
    summary = read_rows(os.path.join(folder, f"{stamp}.csv"))
    scale_rows = read_rows(os.path.join(folder, f"{stamp}-scale.csv"))
    runs = [SimpleNamespace(**r) for r in read_rows(os.path.join(folder, f"{stamp}-runs.csv"))]
    return summary, scale_rows, runs


def merged(paths):
    """Several runs as one: each point named with its run's time, e.g.
    "-s 1 -d · 05:25", for a table that gathers rows of several runs."""
    summary, scale_rows, runs = [], [], []
    for path in paths:
        s, sc, rs = read_run(path)
        when = stamp_of(path)[-4:]
        tag = f" · {when[:2]}:{when[2:]}"
        summary += [dict(r, point=r["point"] + tag) for r in s]
        runs += [SimpleNamespace(**dict(vars(r), point=r.point + tag)) for r in rs]
        scale_rows += sc
    return summary, scale_rows, runs


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("csv", nargs="+", help="a run's summary CSV (STAMP.csv); its -runs and -scale "
                    "CSVs are read from beside it")
    ap.add_argument("--name", help="with several CSVs: the charts' file prefix (beside the first)")
    ap.add_argument("--baseline-label", help="what the baseline pair is, for its chart's title")
    args = ap.parse_args(argv)
    if len(args.csv) > 1 and not args.name:
        ap.error("several CSVs need --name")
    if len(args.csv) > 1:
        summary, scale_rows, runs = merged(args.csv)
        stamp = args.name
    else:
        summary, scale_rows, runs = read_run(args.csv[0])
        stamp = stamp_of(args.csv[0])
    if not summary and not scale_rows:
        raise SystemExit(f"{args.csv[0]}: no results found")
    try:
        paths = write(os.path.dirname(args.csv[0]), stamp, summary, scale_rows, runs, args.baseline_label)
    except Unavailable as e:
        raise SystemExit(f"matplotlib is not importable ({e}): apt-get install python3-matplotlib")
    for name, path in paths.items():
        print(f"wrote {name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
