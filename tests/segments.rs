//! Segmented runs: four smtp-source processes, each `--segment I/4` of one
//! run, into one smtp-sink, and `--merge-reports` making their reports one.
//! The merged figures are checked against the four reports (sums, and
//! percentiles of the four histograms added together), the sink's count
//! and its stamp verification (every seq unique across segments), and a
//! `--rate` split four ways against the send times in the stamps.

mod support;

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::{assert_matches_schema, bin, dump_dir, free_port, start_sink_with_stderr, Killed};

const REPORT_SCHEMA: &str = "docs/report.schema.json";
const STATS_SCHEMA: &str = "docs/sink-stats.schema.json";
/// Bound on any one program's run.
const CAP: Duration = Duration::from_secs(180);

fn wait_exit(child: &mut Child) -> (ExitStatus, String, String) {
    support::wait_exit(child, CAP)
}

/// Starts smtp-source with `args`, `JOB_COMPLETION_INDEX` set when given.
/// Its output goes to files, not pipes: four of them run at once and none
/// may block on a full pipe while the test waits for another.
fn spawn_source(args: &[&str], index_var: Option<u32>, dir: &Path, name: &str) -> Child {
    let mut cmd = Command::new(bin("smtp-source"));
    cmd.args(args)
        .env_remove("JOB_COMPLETION_INDEX")
        .stdout(std::fs::File::create(dir.join(format!("{name}.out"))).unwrap())
        .stderr(std::fs::File::create(dir.join(format!("{name}.err"))).unwrap());
    if let Some(i) = index_var {
        cmd.env("JOB_COMPLETION_INDEX", i.to_string());
    }
    cmd.spawn().expect("start smtp-source")
}

/// Runs smtp-source to its end; status, stdout, stderr.
fn run_source(args: &[&str], index_var: Option<u32>) -> (ExitStatus, String, String) {
    let mut cmd = Command::new(bin("smtp-source"));
    cmd.args(args)
        .env_remove("JOB_COMPLETION_INDEX")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some(i) = index_var {
        cmd.env("JOB_COMPLETION_INDEX", i.to_string());
    }
    let mut child = cmd.spawn().expect("start smtp-source");
    wait_exit(&mut child)
}

fn wait_ok(child: &mut Child, dir: &Path, name: &str) {
    let (status, _, _) = wait_exit(child);
    let err = std::fs::read_to_string(dir.join(format!("{name}.err"))).unwrap_or_default();
    assert!(status.success(), "{name}: {status}\n{err}");
}

fn json(text: &str) -> Value {
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The histogram of `phase` in a report, decoded; empty when the report
/// has none. A report lists only the phases it has samples of, and the
/// sink's -M ends it right after the last message, so whether a segment's
/// QUITs were answered depends on timing.
fn histogram(report: &Value, phase: &str) -> hdrhistogram::Histogram<u64> {
    match report["latency"][phase]["histogram"].as_str() {
        Some(text) => smtp_net::histogram::decode(text).unwrap(),
        None => smtp_net::histogram::new(),
    }
}

/// Four segments of `-m 4000 -s 8`, started as a Kubernetes Indexed Job
/// starts its pods (`--segment auto/4`, the index in the environment),
/// into one sink that verifies the stamps; then the four reports merged.
#[test]
fn four_segments_merge_into_one_run() {
    let dir = dump_dir();
    let stats = dir.path().join("sink.json");
    let stats_s = stats.display().to_string();
    let port = free_port();
    let target = format!("127.0.0.1:{port}");
    let mut sink = start_sink_with_stderr(
        &["--verify", "--stats-json", &stats_s, "-M", "4000"],
        port,
        Stdio::piped(),
    );
    let reports: Vec<String> = (0..4)
        .map(|i| dir.path().join(format!("r{i}.json")).display().to_string())
        .collect();
    let mut sources: Vec<Child> = (0..4u32)
        .map(|i| {
            let args = [
                "--segment",
                "auto/4",
                "--run-id",
                "seg-run",
                "--stamp",
                "-m",
                "4000",
                "-s",
                "8",
                "-d",
                "--json",
                &reports[i as usize],
                &target,
            ];
            spawn_source(&args, Some(i), dir.path(), &format!("s{i}"))
        })
        .collect();
    for (i, child) in sources.iter_mut().enumerate() {
        wait_ok(child, dir.path(), &format!("s{i}"));
    }
    let (status, _, sink_err) = wait_exit(&mut sink.0);
    assert!(status.success(), "sink: {status}\n{sink_err}");

    // Each segment did its share: 1000 messages on 2 sessions.
    let segments: Vec<Value> = reports
        .iter()
        .map(|path| {
            let text = std::fs::read_to_string(path).unwrap();
            assert_matches_schema(REPORT_SCHEMA, &text);
            json(&text)
        })
        .collect();
    for (i, r) in segments.iter().enumerate() {
        assert_eq!(r["segment"]["index"], i as u64);
        assert_eq!(r["segment"]["count"], 4);
        assert_eq!(r["run_id"], "seg-run");
        assert_eq!(r["sessions"], 2, "segment {i}");
        assert_eq!(r["accepted"], 1000, "segment {i}");
        assert_eq!(r["stamped"], 1000, "segment {i}");
    }

    let mut args = vec!["--merge-reports"];
    args.extend(reports.iter().map(String::as_str));
    args.extend(["--json", "-", "--summary"]);
    let (status, out, err) = run_source(&args, None);
    assert!(status.success(), "merge: {status}\n{err}");
    assert_matches_schema(REPORT_SCHEMA, &out);
    assert!(
        err.contains("4 segments merged: 8 sessions, 8 connections, 4000 transactions, 4000 messages sent, 4000 accepted"),
        "{err}"
    );
    let merged = json(&out);
    assert_eq!(merged["merged"]["count"], 4);
    assert_eq!(merged["merged"]["missing"], serde_json::json!([]));
    assert!(merged["segment"].is_null());
    for key in [
        "messages_sent",
        "accepted",
        "transactions",
        "connections",
        "stamped",
    ] {
        let sum: u64 = segments.iter().map(|r| r[key].as_u64().unwrap()).sum();
        assert_eq!(merged[key], sum, "{key}");
    }
    assert_eq!(merged["messages_sent"], 4000);
    assert_eq!(merged["sessions"], 8);
    // Every phase: the count is the sum of the four, and the percentiles
    // are those of the four histograms added together.
    let phases = merged["latency"].as_object().unwrap();
    assert!(phases.contains_key("rcpt") && phases.contains_key("datasent"));
    for (phase, summary) in phases {
        let mut all = smtp_net::histogram::new();
        for r in &segments {
            all.add(histogram(r, phase)).unwrap();
        }
        assert_eq!(summary["count"], all.len(), "{phase}");
        for (key, q) in [("p50_ms", 0.5), ("p99_ms", 0.99), ("max_ms", 1.0)] {
            let want = all.value_at_quantile(q) as f64 / 1000.0;
            assert_eq!(summary[key].as_f64().unwrap(), want, "{phase} {key}");
        }
    }
    // The span: from the earliest start to the latest end.
    let earliest = segments
        .iter()
        .map(|r| r["started"].as_str().unwrap())
        .min();
    let latest = segments.iter().map(|r| r["ended"].as_str().unwrap()).max();
    assert_eq!(merged["started"].as_str(), earliest);
    assert_eq!(merged["ended"].as_str(), latest);

    // The sink took 4000, each stamp's seq once.
    let text = std::fs::read_to_string(&stats).unwrap();
    assert_matches_schema(STATS_SCHEMA, &text);
    let sink_stats = json(&text);
    assert_eq!(sink_stats["counters"]["messages"]["accepted"], 4000);
    let run = &sink_stats["verify"]["runs"]["seg-run"];
    assert_eq!(run["unique"], 4000, "{text}");
    assert_eq!(run["duplicate"], 0);
    assert_eq!(run["corrupted"], 0);
}

/// `--rate 400` split four ways for 5 s: 2000 messages in all (± 2%), and
/// the four schedules interleave: no second carries more than 1.5 × the
/// mean. The send times are the stamps' `sent=`, read from the sink's
/// shared dump.
#[test]
fn a_rate_split_four_ways_stays_even() {
    let dir = dump_dir();
    let dump = dir.path().join("all.dump");
    let dump_s = dump.display().to_string();
    let port = free_port();
    let target = format!("127.0.0.1:{port}");
    let mut sink = start_sink_with_stderr(&["-D", &dump_s], port, Stdio::null());
    let mut sources: Vec<Child> = (0..4u32)
        .map(|i| {
            let segment = format!("{i}/4");
            let args = [
                "--segment",
                &segment,
                "--run-id",
                "rate-run",
                "--stamp",
                "--rate",
                "400",
                "--duration",
                "5s",
                "-s",
                "8",
                "-d",
                &target,
            ];
            spawn_source(&args, None, dir.path(), &format!("s{i}"))
        })
        .collect();
    for (i, child) in sources.iter_mut().enumerate() {
        wait_ok(child, dir.path(), &format!("s{i}"));
    }
    // Every message was answered before its source ended, so its record
    // is in the dump; stop the sink.
    let _ = sink.0.kill();
    let _ = sink.0.wait();
    drop(sink);

    let text = std::fs::read(&dump).unwrap();
    let text = String::from_utf8_lossy(&text);
    let mut sent: Vec<u64> = text
        .match_indices("X-Smtp-Stamp: run=rate-run; seq=")
        .map(|(at, _)| {
            let line = &text[at..text[at..].find('\n').map_or(text.len(), |e| at + e)];
            let ns = line.split("sent=").nth(1).unwrap();
            ns[..ns.find(';').unwrap()].parse::<u64>().unwrap()
        })
        .collect();
    let total = sent.len();
    assert!(
        (1960..=2040).contains(&total),
        "{total} messages, wanted 2000 ± 2%"
    );
    sent.sort_unstable();
    let first = sent[0];
    let mut per_second = [0usize; 6];
    for t in &sent {
        let s = ((t - first) / 1_000_000_000) as usize;
        per_second[s.min(5)] += 1;
    }
    let mean = 400.0;
    assert!(
        per_second.iter().all(|&n| n as f64 <= 1.5 * mean),
        "messages per second: {per_second:?}"
    );
}

/// What is wrong is said: no index in the environment, a missing segment,
/// reports of different runs.
#[test]
fn segment_errors_are_clear() {
    let (status, _, err) = run_source(&["--segment", "auto/4", "127.0.0.1:9"], None);
    assert_eq!(status.code(), Some(1));
    assert!(
        err.contains("fatal: --segment auto/4: JOB_COMPLETION_INDEX is not set"),
        "{err}"
    );
    let (status, _, err) = run_source(&["--segment", "auto/4", "127.0.0.1:9"], Some(4));
    assert_eq!(status.code(), Some(1));
    assert!(
        err.contains("JOB_COMPLETION_INDEX=4 is not a number from 0 to 3"),
        "{err}"
    );

    // Two segments of a run of three, each a real (tiny) run.
    let dir = dump_dir();
    let port = free_port();
    let _sink: Killed = start_sink_with_stderr(&[], port, Stdio::null());
    let target = format!("127.0.0.1:{port}");
    let mut paths = Vec::new();
    for (i, run) in [(0, "r1"), (2, "r1"), (1, "r2")] {
        let path = dir.path().join(format!("{run}-{i}.json"));
        let p = path.display().to_string();
        let segment = format!("{i}/3");
        let (status, _, err) = run_source(
            &[
                "--segment",
                &segment,
                "--run-id",
                run,
                "-m",
                "3",
                "--json",
                &p,
                &target,
            ],
            None,
        );
        assert!(status.success(), "{err}");
        paths.push(p);
    }
    let (status, _, err) = run_source(&["--merge-reports", &paths[0], &paths[1]], None);
    assert_eq!(status.code(), Some(1));
    assert!(
        err.contains("fatal: missing segment 1 of 3 (--partial merges the others)"),
        "{err}"
    );
    let (status, _, err) = run_source(
        &[
            "--merge-reports",
            &paths[0],
            &paths[1],
            "--partial",
            "--summary",
        ],
        None,
    );
    assert!(status.success(), "{err}");
    assert!(
        err.contains("2 reports of 3 segments merged (partial, missing: 1): 2 sessions"),
        "{err}"
    );
    let (status, _, err) = run_source(
        &["--merge-reports", &paths[0], &paths[2], "--partial"],
        None,
    );
    assert_eq!(status.code(), Some(1));
    assert!(
        err.contains("reports of different runs: r1 and r2"),
        "{err}"
    );
}
