//! The performance lab in smoke mode: one point, a few seconds, and every
//! column of the results file present with a sane value, a chart per results
//! table beside the CSVs, and the doc's images pointing at them. No speed is
//! asserted (these are benchmarks); what is tested is that the harness still
//! measures and reports.
//!
//! Needs Postfix's smtp-source/smtp-sink and python3; with `CI` set a missing
//! peer fails the test, otherwise it is skipped with a notice.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

/// The smoke run builds our release binaries and the ping-pong first, which on
/// a cold CI machine takes minutes; the measuring itself takes seconds.
const HARNESS_TIMEOUT: Duration = Duration::from_secs(1800);

/// Whether our smtp-source and smtp-sink must be part of the smoke run. When
/// false, the harness measures them if they work and the test checks the
/// Postfix pair and the ceiling only.
const REQUIRE_OURS: bool = true;

const SUMMARY_COLUMNS: &[&str] = &[
    "date",
    "point",
    "transport",
    "sessions",
    "keep_open",
    "body_len",
    "rcpts",
    "dump",
    "esmtp",
    "config",
    "client",
    "server",
    "reps",
    "messages",
    "msgs_per_s",
    "client_cpu_s_per_1k",
    "server_cpu_s_per_1k",
    "client_maxrss_kib",
    "server_maxrss_kib",
    "frac_of_ceiling",
    "ratio_vs_postfix",
    "cpu_ratio_vs_postfix",
];

fn have(program: &str) -> bool {
    let found = |dir: &Path| dir.join(program).is_file();
    std::env::var_os("PATH").is_some_and(|p| std::env::split_paths(&p).any(|d| found(&d)))
        || found(Path::new("/usr/sbin"))
}

fn peers_or_skip() -> bool {
    let missing: Vec<&str> = ["smtp-source", "smtp-sink", "python3"]
        .into_iter()
        .filter(|p| !have(p))
        .collect();
    if missing.is_empty() {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("lab smoke test needs {missing:?} (apt-get install postfix python3)");
    }
    eprintln!("skipping lab smoke test: {missing:?} not installed");
    false
}

/// Runs the harness, killing it if it outlives `HARNESS_TIMEOUT`. `doc` is
/// the markdown file it regenerates (created with its markers).
fn run_harness(out: &Path, doc: &Path) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut args = vec![
        "benches/lab/run.py".to_owned(),
        "--smoke".to_owned(),
        "--out".to_owned(),
        out.display().to_string(),
        "--doc".to_owned(),
        doc.display().to_string(),
    ];
    if REQUIRE_OURS {
        args.push("--require-ours".to_owned());
    }
    let mut child = Command::new("python3")
        .args(&args)
        .current_dir(root)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start python3 benches/lab/run.py");
    let start = Instant::now();
    loop {
        if child.try_wait().expect("wait for the harness").is_some() {
            break;
        }
        if start.elapsed() > HARNESS_TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the lab harness did not finish in {HARNESS_TIMEOUT:?}");
        }
        thread::sleep(Duration::from_millis(200));
    }
    let output = child.wait_with_output().expect("harness output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "harness failed:\n{text}");
    text
}

/// The one results file of the given kind: "runs" for `<stamp>-runs.csv`,
/// "summary" for `<stamp>.csv`.
fn results_file(out: &Path, kind: &str) -> PathBuf {
    let mut found: Vec<PathBuf> = std::fs::read_dir(out)
        .expect("read results dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| {
            let name = p
                .file_name()
                .map_or(String::new(), |n| n.to_string_lossy().into_owned());
            match kind {
                "runs" => name.ends_with("-runs.csv"),
                _ => name.ends_with(".csv") && !name.contains("-runs") && !name.contains("-scale"),
            }
        })
        .collect();
    found.sort();
    assert_eq!(
        found.len(),
        1,
        "expected one {kind} file in {out:?}: {found:?}"
    );
    found.remove(0)
}

fn read_csv(path: &Path) -> (Vec<String>, Vec<HashMap<String, String>>) {
    let text = std::fs::read_to_string(path).expect("read results csv");
    let mut lines = text.lines();
    let header: Vec<String> = lines
        .next()
        .expect("csv header")
        .split(',')
        .map(str::to_owned)
        .collect();
    let rows = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            // The smoke point's fields hold no commas or quotes.
            let fields: Vec<&str> = l.split(',').collect();
            assert_eq!(fields.len(), header.len(), "ragged row: {l}");
            header
                .iter()
                .cloned()
                .zip(fields.into_iter().map(str::to_owned))
                .collect()
        })
        .collect();
    (header, rows)
}

/// The text of an SVG with the entities matplotlib may write for quotes and
/// markup undone, so labels can be looked for as they are written.
fn svg_text(path: &Path) -> String {
    let raw = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {path:?}: {e}"));
    let start = raw.trim_start();
    assert!(
        start.starts_with("<?xml") || start.starts_with("<svg"),
        "{path:?} does not start as XML: {:?}",
        &start[..start.len().min(80)]
    );
    assert!(
        raw.contains("<svg") && raw.trim_end().ends_with("</svg>"),
        "{path:?} is not a whole SVG document"
    );
    raw.replace("&#39;", "'")
        .replace("&apos;", "'")
        .replace("&quot;", "\"")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// Each chart run.py draws in smoke mode: its table's name and the legend
/// labels it must show (the point's name must be there too).
fn expected_charts(ours: bool) -> Vec<(&'static str, Vec<&'static str>)> {
    let mut charts = vec![
        ("throughput", vec!["ceiling", "Postfix's pair"]),
        ("cpu", vec!["ceiling", "Postfix's pair"]),
    ];
    if ours {
        for (_, labels) in charts.iter_mut() {
            labels.push("our pair");
        }
        charts.push(("source", vec!["Postfix's source", "our source"]));
        charts.push(("sink", vec!["Postfix's sink", "our sink"]));
    }
    charts
}

fn check_charts(out: &Path, doc: &Path, stamp: &str, ours: bool, log: &str) {
    // Like a missing Postfix: CI must have matplotlib (.ci/run installs
    // python3-matplotlib), a developer's machine may lack it.
    if log.contains("no charts drawn:") && std::env::var_os("CI").is_none() {
        eprintln!(
            "skipping the chart checks: the harness drew none (apt-get install python3-matplotlib)"
        );
        return;
    }
    let doc_text = std::fs::read_to_string(doc).expect("read the regenerated doc");
    for (name, labels) in expected_charts(ours) {
        let file = format!("{stamp}-{name}.svg");
        let path = out.join(&file);
        assert!(
            path.is_file(),
            "no chart {file} in {out:?}; harness log:\n{log}"
        );
        let text = svg_text(&path);
        assert!(text.contains("-s 10 -d"), "{file} does not name the point");
        for label in labels {
            assert!(text.contains(label), "{file} has no legend label {label:?}");
        }
        // The doc is in out/doc/, so its images point one directory up.
        let link = format!("](../{file})");
        assert!(
            doc_text.contains(&link),
            "the doc has no image {link}:\n{doc_text}"
        );
    }
}

fn number(row: &HashMap<String, String>, column: &str) -> f64 {
    let text = &row[column];
    let value: f64 = text
        .parse()
        .unwrap_or_else(|_| panic!("{column} = {text:?} is not a number in {row:?}"));
    assert!(value.is_finite(), "{column} = {value} in {row:?}");
    value
}

fn in_range(row: &HashMap<String, String>, column: &str, low: f64, high: f64) {
    let value = number(row, column);
    assert!(
        (low..=high).contains(&value),
        "{column} = {value} outside {low}..={high} for {}",
        row["config"]
    );
}

#[test]
fn smoke_run_produces_every_column() {
    if !peers_or_skip() {
        return;
    }
    let out = tempfile::tempdir().expect("temp dir");
    let doc = out.path().join("doc").join("performance.md");
    std::fs::create_dir(doc.parent().expect("doc dir")).expect("create doc dir");
    let log = run_harness(out.path(), &doc);

    let summary = results_file(out.path(), "summary");
    let (header, rows) = read_csv(&summary);
    assert_eq!(header, SUMMARY_COLUMNS, "summary columns changed");
    let configs: Vec<&str> = rows.iter().map(|r| r["config"].as_str()).collect();
    // "ceiling" is the faster of the two measured flavours.
    let mut expected = vec![
        "ceiling",
        "ceiling-threads",
        "ceiling-tokio",
        "postfix-pair",
    ];
    let ours_measured = configs.contains(&"our-pair");
    if REQUIRE_OURS || ours_measured {
        expected.extend(["our-source", "our-sink", "our-pair"]);
    }
    for config in &expected {
        assert!(
            configs.contains(config),
            "no {config} row in {configs:?}; harness log:\n{log}"
        );
    }
    assert_eq!(rows.len(), expected.len(), "rows: {configs:?}");

    for row in &rows {
        assert_eq!(row["point"], "-s 10 -d");
        assert_eq!(row["transport"], "tcp");
        assert_eq!(
            row["esmtp"], "",
            "the smoke point is Postfix's conversation"
        );
        in_range(row, "sessions", 10.0, 10.0);
        in_range(row, "reps", 3.0, 3.0);
        in_range(row, "messages", 100.0, 1e7);
        // Loopback on the smallest CI machine still moves hundreds per second.
        in_range(row, "msgs_per_s", 100.0, 1e7);
        in_range(row, "client_cpu_s_per_1k", 1e-4, 60.0);
        in_range(row, "server_cpu_s_per_1k", 1e-4, 60.0);
        // A real process, and less than 4 GiB.
        in_range(row, "client_maxrss_kib", 256.0, 4.0 * 1024.0 * 1024.0);
        in_range(row, "server_maxrss_kib", 256.0, 4.0 * 1024.0 * 1024.0);
        in_range(row, "frac_of_ceiling", 1e-3, 10.0);
        in_range(row, "ratio_vs_postfix", 1e-3, 1e3);
        in_range(row, "cpu_ratio_vs_postfix", 1e-3, 1e3);
        assert!(!row["date"].is_empty());
    }
    let ceiling = rows
        .iter()
        .find(|r| r["config"] == "ceiling")
        .expect("ceiling row");
    in_range(ceiling, "frac_of_ceiling", 1.0, 1.0);
    for flavour in ["ceiling-threads", "ceiling-tokio"] {
        let row = rows
            .iter()
            .find(|r| r["config"] == flavour)
            .expect("ceiling flavour row");
        in_range(row, "frac_of_ceiling", 1e-3, 1.0);
    }
    let postfix = rows
        .iter()
        .find(|r| r["config"] == "postfix-pair")
        .expect("postfix row");
    in_range(postfix, "ratio_vs_postfix", 1.0, 1.0);

    let (_, runs) = read_csv(&results_file(out.path(), "runs"));
    assert_eq!(
        runs.len(),
        3 * (expected.len() - 1),
        "one run per measured config and repetition (the derived ceiling is not run)"
    );
    for run in &runs {
        assert_eq!(run["ok"], "1", "a run failed: {run:?}");
        assert!(run["error"].is_empty());
    }

    let stamp = summary
        .file_stem()
        .expect("summary file name")
        .to_string_lossy()
        .into_owned();
    check_charts(
        out.path(),
        &doc,
        &stamp,
        REQUIRE_OURS || ours_measured,
        &log,
    );
}
