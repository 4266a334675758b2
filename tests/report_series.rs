//! The report's `series` (per-second points) from real runs of our source
//! into our sink: it adds up to the report's counters, validates against
//! docs/report.schema.json, survives `--merge-reports` (segments lined up
//! on one clock, the merged page drawn by `--html`). Its bound over a real
//! 10-minute run is tests/ten_minute_report.rs.

mod support;

use std::process::Command;

use serde_json::Value;
use support::{
    assert_matches_schema, bin, free_port,
    series::{check_series, run, sum},
    start_sink,
};

const SCHEMA: &str = "docs/report.schema.json";

/// A 4-second run at 50 messages a second, a fifth of the recipients
/// refused: about 50 accepted-or-refused transactions in each full second.
#[test]
fn series_adds_up_to_the_report() {
    let port = free_port();
    let _sink = start_sink(&["--fault", "rcpt:550 5.1.1 no:0.2", "--seed", "7"], port);
    let (report, text) = run(
        port,
        &[
            "-A",
            "-s",
            "4",
            "-m",
            "100000",
            "--rate",
            "50",
            "--duration",
            "4s",
        ],
    );
    assert_matches_schema(SCHEMA, &text);
    let points = check_series(&report);
    assert!(
        (4..=6).contains(&points.len()),
        "{} points for 4 s",
        points.len()
    );
    assert_eq!(report["series"]["interval_seconds"], 1);
    assert!(sum(points, "rejected") > 0, "no refusal in {points:?}");
    // The whole seconds in the middle hold the schedule's 50 starts
    // each (a loaded machine may move a few across a second's edge).
    for p in &points[1..points.len() - 1] {
        let done = p["accepted"].as_u64().unwrap() + p["rejected"].as_u64().unwrap();
        assert!((35..=65).contains(&done), "{p}");
    }
}

/// Two segments merged: the merged series holds every transaction of
/// both on the merged clock, and --html draws the merged run.
#[test]
fn merged_segments_keep_their_series() {
    let port = free_port();
    let _sink = start_sink(&[], port);
    let dir = tempfile::tempdir().unwrap();
    let mut files = Vec::new();
    for i in 0..2 {
        let (_, text) = run(
            port,
            &[
                "-s",
                "2",
                "-m",
                "400",
                "--rate",
                "200",
                "--run-id",
                "merge-series",
                "--segment",
                &format!("{i}/2"),
            ],
        );
        let path = dir.path().join(format!("seg{i}.json"));
        std::fs::write(&path, text).unwrap();
        files.push(path);
    }
    let merged_json = dir.path().join("merged.json");
    let merged_html = dir.path().join("merged.html");
    let out = Command::new(bin("smtp-source"))
        .arg("--merge-reports")
        .args(&files)
        .arg("--json")
        .arg(&merged_json)
        .arg("--html")
        .arg(&merged_html)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let text = std::fs::read_to_string(&merged_json).unwrap();
    assert_matches_schema(SCHEMA, &text);
    let merged: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(merged["accepted"], 400);
    let points = check_series(&merged);
    assert_eq!(merged["series"]["clock_offset_seconds"], 0.0);
    // Two segments of 200 messages at 100/s each, run one after the
    // other: their points follow each other on the merged clock.
    assert!(points.len() >= 4, "{points:?}");
    let page = std::fs::read_to_string(&merged_html).unwrap();
    assert!(page.contains("2 reports of 2 segments"), "merged header");
    assert!(page.contains("id=\"over-time-transactions\""));
    assert!(page.matches("<svg").count() >= 4);
}
