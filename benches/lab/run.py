#!/usr/bin/env python3
"""The performance lab: our smtp-source and smtp-sink against Postfix's, side by
side on loopback, with the SMTP-shaped ping-pong ceiling at every point.

    python3 benches/lab/run.py            # standard points + connection scale,
                                          # results CSVs + docs/performance.md
    python3 benches/lab/run.py --quick    # shorter runs, smaller scale test
    python3 benches/lab/run.py --smoke --out DIR   # CI: one point, a few seconds
    python3 benches/lab/run.py --points "-s 10 -d" "-s 1 -d" --no-scale
    python3 benches/lab/run.py --matrix full      # the issue's 144 points
    python3 benches/lab/run.py --matrix plain --no-scale --baseline-bin DIR \
        --configs our-pair baseline-pair --reps 7  # ours now vs an older build

Every point runs six configurations, interleaved (A/B) and repeated --reps
times: the ceiling in two flavours (the faster one is the point's ceiling),
Postfix's pair, our source into Postfix's sink, Postfix's source into our
sink, and our pair. Points with ESMTP options (--pipelining --chunking) run
the pairs only (see report.applies). With --baseline-bin, a seventh: our
programs built from another commit. Each process is reaped with wait4, so its
CPU time and peak RSS are its own. Every child is killed on every exit path.
"""

import argparse
import datetime
import json
import os
import resource
import shlex
import subprocess
import sys
import time

# Importing the modules below must not leave __pycache__ in the repository.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import charts  # noqa: E402
import impls  # noqa: E402
import points as pts  # noqa: E402
import procs  # noqa: E402
import report  # noqa: E402
import measure  # noqa: E402
from measure import Lab, calibrate, run_once  # noqa: E402

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def parse_args(argv):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true", help="one point, tiny fixed runs (CI)")
    ap.add_argument("--quick", action="store_true", help="1 s runs, scale test up to 5k sessions")
    ap.add_argument("--points", nargs="+", metavar="NAME", help='points by name, e.g. "-s 10 -d"')
    ap.add_argument("--matrix", choices=["standard", "plain", "full"], default="standard",
                    help="standard: one factor at a time plus the ESMTP points; plain: without "
                    "the ESMTP points; full: the issue's 144 points")
    ap.add_argument("--reps", type=int, default=3, help="repetitions per point (default 3)")
    ap.add_argument("--seconds", type=float, default=None, help="target length of one run")
    ap.add_argument("--no-scale", action="store_true", help="skip the connection-scale test")
    ap.add_argument("--scale-only", action="store_true", help="only the connection-scale test")
    ap.add_argument("--scale-counts", type=int, nargs="+", default=None,
                    help="idle session counts for our sink (default 1000 5000 10000 19000)")
    ap.add_argument("--require-ours", action="store_true",
                    help="fail if our binaries do not build or run (default: skip their configs)")
    ap.add_argument("--no-build", action="store_true", help="use the binaries already built")
    ap.add_argument("--ours-sink-args", default="", metavar="ARGS",
                    help='extra flags for our sink, e.g. "--threads 1" (to compare runtimes)')
    ap.add_argument("--ours-source-args", default="", metavar="ARGS",
                    help="extra flags for our source")
    ap.add_argument("--baseline-bin", metavar="DIR",
                    help="also run the baseline pair: smtp-source and smtp-sink in DIR (e.g. built "
                    "from an older commit), A/B-interleaved with the others")
    ap.add_argument("--baseline-label", default=None, metavar="TEXT",
                    help="what the baseline binaries are, for the doc (e.g. a commit)")
    ap.add_argument("--configs", nargs="+", metavar="CONFIG",
                    choices=[c[0] for c in report.CONFIGS],
                    help="measure only these configurations (the ceiling is derived from "
                    "ceiling-threads/ceiling-tokio); a restricted run regenerates only the "
                    "doc's baseline block")
    ap.add_argument("--pin", choices=["none", "same", "split"], default="none",
                    help="taskset: both processes on CPU 0 (same), client 0 and server 1 (split)")
    ap.add_argument("--out", default=os.path.join(ROOT, "benches", "lab", "results"),
                    help="directory for the results CSVs")
    ap.add_argument("--doc", default=None,
                    help="markdown file to regenerate (default docs/performance.md; none in --smoke)")
    ap.add_argument("--doc-block", default=None, metavar="NAME",
                    help="write this run's tables and targets into the doc's <!-- NAME:begin --> "
                    "block instead of the lab and targets blocks (e.g. tls: a run at a few points "
                    "that must not replace the standard run's tables)")
    ap.add_argument("--caveat", default="", help="a sentence printed above the tables")
    ap.add_argument("--keep", action="store_true", help="keep the scratch dir (logs) for debugging")
    ap.add_argument("--quiet-wait", type=float, default=0, metavar="MINUTES",
                    help="on a shared machine: before each run wait (up to MINUTES) until no "
                    "cargo/rustc runs, and redo a run during which one ran (default 0: off)")
    args = ap.parse_args(argv)
    if args.reps < 1:
        ap.error("--reps must be at least 1")
    if args.seconds is None:
        args.seconds = 0.0 if args.smoke else (1.0 if args.quick else 3.0)
    if args.doc is None and not args.smoke:
        args.doc = os.path.join(ROOT, "docs", "performance.md")
    if args.configs and "baseline-pair" in args.configs and not args.baseline_bin:
        ap.error("--configs baseline-pair needs --baseline-bin")
    return args


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def cargo(*argv):
    # Under `cargo test`, CARGO names the cargo that runs us; use the same one.
    return subprocess.run([os.environ.get("CARGO", "cargo"), *argv], cwd=ROOT,
                          capture_output=True, text=True)


def build(args):
    """Builds our release binaries and the ping-pong bench; returns
    (target_dir, pingpong path, why ours is unusable or None)."""
    meta = cargo("metadata", "--format-version", "1", "--no-deps")
    if meta.returncode != 0:
        raise SystemExit(f"cargo metadata failed: {meta.stderr.strip()}")
    target_dir = json.loads(meta.stdout)["target_directory"]
    log("building the ping-pong ceiling (cargo bench --bench pingpong --no-run)")
    bench = cargo("bench", "-p", "smtp-suite", "--bench", "pingpong", "--no-run",
                  "--message-format=json")
    if bench.returncode != 0:
        raise SystemExit(f"building pingpong failed:\n{bench.stderr[-3000:]}")
    pingpong = None
    for line in bench.stdout.splitlines():
        try:
            msg = json.loads(line)
        except ValueError:
            continue
        if msg.get("reason") == "compiler-artifact" and msg.get("target", {}).get("name") == "pingpong":
            pingpong = msg.get("executable") or pingpong
    if not pingpong:
        raise SystemExit("cargo did not report the pingpong executable")
    why_not = None
    if not args.no_build:
        log("building ours (cargo build --release -p smtp-sink -p smtp-source)")
        built = cargo("build", "--release", "-p", "smtp-sink", "-p", "smtp-source")
        if built.returncode != 0:
            why_not = "cargo build --release failed: " + " | ".join(built.stderr.strip().splitlines()[-3:])
    return target_dir, pingpong, why_not


def probe_ours(lab, ours, postfix, points=()):
    """Our pair must deliver a few messages before it is measured, also in
    each ESMTP mode among `points`."""
    for binary in (ours.source, ours.sink):
        if not os.access(binary, os.X_OK):
            return f"{binary} is missing"
    checks = [(pts.Point(sessions=2), client, server)
              for client, server in ((ours, ours), (ours, postfix), (postfix, ours))]
    for esmtp in sorted({p.esmtp for p in points if p.esmtp}):
        checks.append((pts.Point(sessions=2, esmtp=esmtp), ours, ours))
    for point, client, server in checks:
        run = run_once(lab, point, "probe", client, server, 20, 0, timeout=30)
        if not run.ok:
            return f"{client.name} source into {server.name} sink ({point.name}): {run.error}"
    return None


def probe_baseline(lab, baseline):
    for binary in (baseline.source, baseline.sink):
        if not os.access(binary, os.X_OK):
            raise SystemExit(f"--baseline-bin: {binary} is missing or not executable")
    run = run_once(lab, pts.Point(sessions=2), "probe", baseline, baseline, 20, 0, timeout=30)
    if not run.ok:
        raise SystemExit(f"--baseline-bin: the baseline pair does not work: {run.error}")


def point_configs(args, point, impl_by_name, ours_ok):
    """The configurations measured at `point`: those whose programs are
    usable, that apply to the point, and that --configs asks for."""
    wanted = set(args.configs or [c[0] for c in report.CONFIGS])
    return [c for c in report.CONFIGS
            if c[0] in wanted
            and all(name in impl_by_name for name in c[1:])
            and (ours_ok or "ours" not in (c[1], c[2]))
            and report.applies(c[0], point)]


class Quiet:
    """--quiet-wait: measure only while nobody else compiles. Before each run
    it waits until no cargo/rustc runs; a run during which one ran is
    measured again (up to REDO times, then kept and counted)."""

    REDO = 5

    def __init__(self, minutes):
        self.minutes = minutes
        self.watch = procs.BuildWatch() if minutes > 0 else None
        self.waited_s = 0.0
        self.redone = 0
        self.kept_busy = 0

    def wait(self):
        if not self.watch:
            return
        start = time.monotonic()
        announced = False
        while procs.builders_running():
            if time.monotonic() - start > 60 * self.minutes:
                log(f"  still compiling after {self.minutes:g} min: measuring anyway")
                break
            if not announced:
                log(f"  waiting: {', '.join(sorted(set(procs.builders_running())))} running")
                announced = True
            time.sleep(5)
        self.waited_s += time.monotonic() - start
        self.watch.reset()

    def measure(self, once):
        """Runs `once()` until it ran with nobody compiling (or REDO times)."""
        for attempt in range(self.REDO + 1):
            self.wait()
            run = once()
            if not self.watch or not self.watch.seen:
                return run
            if attempt < self.REDO:
                self.redone += 1
                log("  a build ran during that run: measuring it again")
        self.kept_busy += 1
        return run

    def summary(self):
        if not self.watch:
            return ""
        return (f"--quiet-wait: waited {self.waited_s / 60:.1f} min in all for other builds to "
                f"finish; {self.redone} run(s) measured again because a build ran during them"
                + (f"; {self.kept_busy} kept although one did" if self.kept_busy else ""))

    def close(self):
        if self.watch:
            self.watch.close()


def measure_points(args, lab, points, impl_by_name, ours_ok, quiet):
    runs = []
    for point in points:
        configs = point_configs(args, point, impl_by_name, ours_ok)
        if len(configs) < 2:
            log(f"point {point.name}: skipped, only {[c[0] for c in configs]} would run there")
            continue
        log(f"point {point.name}")
        sizes = {}
        timeout = 60.0 if args.smoke else max(60.0, 20 * args.seconds)
        for config, client, server in configs:
            c, s = impl_by_name[client], impl_by_name[server]
            if args.smoke:
                sizes[config] = 2000
                continue
            quiet.wait()
            messages, trial = calibrate(lab, point, config, c, s, args.seconds, timeout)
            if messages is None:
                log(f"  {config}: calibration failed: {trial.error}")
                runs.append(trial)
                continue
            sizes[config] = messages
        for rep in range(args.reps):
            # Rotate the order each repetition: A/B interleaving without a
            # fixed position for anyone.
            order = configs[rep % len(configs):] + configs[: rep % len(configs)]
            for config, client, server in order:
                if config not in sizes:
                    continue
                run = quiet.measure(lambda: run_once(
                    lab, point, config, impl_by_name[client], impl_by_name[server],
                    sizes[config], rep, timeout))
                runs.append(run)
                status = f"{run.msgs_per_s:10,.0f} msg/s" if run.ok else f"FAILED: {run.error}"
                log(f"  rep {rep} {config:15} m={sizes[config]:<8} {status}")
    return runs


def main(argv=None):
    args = parse_args(argv if argv is not None else sys.argv[1:])
    procs.install_cleanup()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < 20000:
        log(f"note: open files capped at {hard}; scale counts above it are skipped")

    started = datetime.datetime.now(datetime.timezone.utc)
    date = started.strftime("%Y-%m-%dT%H:%MZ")
    stamp = started.strftime("%Y-%m-%d-%H%M")

    if args.smoke:
        points = pts.SMOKE
    elif args.points:
        pool = pts.full_matrix() + pts.STANDARD + pts.TLS
        points = pts.select(args.points, pool)
    elif args.matrix == "full":
        points = pts.full_matrix()
    elif args.matrix == "plain":
        points = pts.PLAIN
    else:
        points = pts.STANDARD

    target_dir, pingpong, why_not = build(args)
    procs.LAUNCHER = pingpong
    measure.PIN = {"none": None, "same": ("0", "0"), "split": ("0", "1")}[args.pin]
    postfix = impls.postfix()
    ours = impls.ours(target_dir, shlex.split(args.ours_sink_args), shlex.split(args.ours_source_args))
    impl_by_name = {
        "postfix": postfix,
        "ours": ours,
        "ceiling-threads": impls.ceiling(pingpong, "threads"),
        "ceiling-tokio": impls.ceiling(pingpong, "tokio"),
    }
    if args.baseline_bin:
        impl_by_name["baseline"] = impls.baseline(os.path.abspath(args.baseline_bin))

    lab = Lab(keep=args.keep)
    quiet = Quiet(0 if args.smoke else args.quiet_wait)
    try:
        if args.baseline_bin:
            probe_baseline(lab, impl_by_name["baseline"])
        if why_not is None:
            why_not = probe_ours(lab, ours, postfix, points)
        ours_ok = why_not is None
        if not ours_ok:
            if args.require_ours:
                raise SystemExit(f"our binaries are not usable: {why_not}")
            log(f"our binaries are not usable, measuring Postfix and the ceiling only: {why_not}")

        runs = [] if args.scale_only else measure_points(args, lab, points, impl_by_name, ours_ok, quiet)
        summary = report.summarize(points, runs, date)

        scale_rows = []
        if not (args.no_scale or args.smoke):
            import scale

            quiet.wait()
            scale_rows = scale.run_all(args, lab, impl_by_name, ours_ok, date, log)
    finally:
        procs.kill_all()
        lab.close()
        quiet.close()
    if quiet.summary():
        log(quiet.summary())

    os.makedirs(args.out, exist_ok=True)
    paths = {}
    if not args.scale_only:
        paths["summary"] = os.path.join(args.out, f"{stamp}.csv")
        paths["runs"] = os.path.join(args.out, f"{stamp}-runs.csv")
        report.write_csv(paths["summary"], report.SUMMARY_COLUMNS, summary)
        report.write_csv(paths["runs"], report.RUN_COLUMNS, report.run_rows(runs, date))
    if scale_rows:
        paths["scale"] = os.path.join(args.out, f"{stamp}-scale.csv")
        report.write_csv(paths["scale"], report.SCALE_COLUMNS, scale_rows)
    for kind, path in paths.items():
        log(f"wrote {kind}: {path}")
    drawn, why_no_charts = charts.draw(args.out, stamp, summary, scale_rows, runs, list(paths.values()),
                                       args.baseline_label)
    for name, path in drawn.items():
        log(f"wrote chart {name}: {path}")
    if why_no_charts:
        log(f"no charts drawn: {why_no_charts}")

    restricted = bool(args.configs) and set(args.configs) != {c[0] for c in report.CONFIGS}
    if args.doc:
        caveat = args.caveat
        if quiet.summary():
            caveat = (caveat + " " if caveat else "") + quiet.summary() + "."
        if not ours_ok:
            caveat = (caveat + " " if caveat else "") + f"Our binaries were not measured: {why_not}."
        meta = {
            "date": date,
            "machine": report.machine(),
            "reps": args.reps,
            "seconds": args.seconds,
            "results": ", ".join(f"benches/lab/results/{os.path.basename(p)}" for p in paths.values()),
            "command": reproduce_command(argv if argv is not None else sys.argv[1:]),
            "caveat": caveat,
            "pin": args.pin,
            "revision": revision(),
            "scale_note": scale_note(hard),
            "baseline": args.baseline_label or "the binaries given to --baseline-bin",
            "charts": chart_links(args.doc, drawn),
        }
        if args.doc_block and not restricted:
            text = report.markdown(points, summary, scale_rows, meta)
            if ours_ok and summary:
                text += ("\n\n#### Against the targets\n\n"
                         + report.targets_markdown(points, summary, scale_rows))
            if not report.update_block(args.doc, args.doc_block, text):
                raise SystemExit(f"{args.doc} has no <!-- {args.doc_block}:begin --> block")
            log(f"updated the {args.doc_block} block of {args.doc}")
        elif not restricted:
            report.update_doc(args.doc, report.markdown(points, summary, scale_rows, meta))
            if ours_ok and summary:
                report.update_block(args.doc, "targets",
                                    f"Checked against the run of {date}.\n\n"
                                    + report.targets_markdown(points, summary, scale_rows))
            log(f"updated {args.doc}")
        if any(r["config"] == "baseline-pair" for r in summary) and ours_ok:
            if report.update_block(args.doc, "baseline",
                                   report.baseline_markdown(points, summary, runs, meta)):
                log(f"updated the baseline block of {args.doc}")
            else:
                log(f"{args.doc} has no <!-- baseline:begin --> block; the comparison is in the CSVs")

    failed = [r for r in runs if not r.ok]
    if failed:
        log(f"{len(failed)} run(s) failed; first: {failed[0].config} at {failed[0].point}: {failed[0].error}")
    if args.smoke and (failed or not summary):
        return 1
    return 0


def chart_links(doc, drawn):
    """{table: (alt text, the SVG's path relative to the doc)} for the doc's
    images, so they resolve wherever the doc and --out are."""
    here = os.path.dirname(os.path.abspath(doc))
    return {name: (charts.TITLES[name], os.path.relpath(os.path.abspath(path), here))
            for name, path in drawn.items()}


def revision():
    """The commit our binaries were built from, and whether the tree had edits."""
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT,
                          capture_output=True, text=True)
    if head.returncode != 0:
        return "unknown"
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "crates"],
                           cwd=ROOT, capture_output=True, text=True).stdout.strip()
    return head.stdout.strip() + (" with uncommitted changes under crates/" if dirty else "")


def scale_note(nofile):
    import scale

    return (f"RLIMIT_NOFILE raised to its hard limit, {nofile} (the cap on this machine); idle "
            f"sessions opened by `pingpong hold` processes of at most {scale.HOLD_PER_PROCESS} "
            f"each, bound to 127.0.0.2, 127.0.0.3, ... so no source address runs short of "
            f"ephemeral ports; sinks run with `-m` above the session count and `-t 600`; reply "
            f"times are the median of {scale.RTT_RUNS} new clients' NOOP medians over "
            f"{scale.RTT_ROUNDS} round trips each.")


def reproduce_command(argv):
    """The command line as given, minus --caveat (prose, not a setting) and
    with --baseline-bin's directory (a path of this machine) as DIR."""
    kept, skip = [], None
    for arg in argv:
        if skip == "--caveat":
            skip = None
            continue
        if skip == "--baseline-bin":
            skip = None
            kept.append("DIR")
            continue
        if arg in ("--caveat", "--baseline-bin"):
            skip = arg
            if arg == "--baseline-bin":
                kept.append(arg)
            continue
        if arg.startswith("--caveat="):
            continue
        if arg.startswith("--baseline-bin="):
            kept.append("--baseline-bin=DIR")
            continue
        kept.append(shlex.quote(arg))
    return " ".join(["python3 benches/lab/run.py", *kept])


if __name__ == "__main__":
    sys.exit(main())
