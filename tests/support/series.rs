//! Running our source for a JSON report and checking its `series`
//! (tests/report_series.rs and tests/ten_minute_report.rs).

use std::process::{Command, Stdio};

use serde_json::Value;

use super::bin;

/// Runs our source with `args` against the port; its JSON report.
pub fn run(port: u16, args: &[&str]) -> (Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let out = Command::new(bin("smtp-source"))
        .args(args)
        .arg("--json")
        .arg(&json)
        .arg(format!("127.0.0.1:{port}"))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&json).unwrap();
    (serde_json::from_str(&text).unwrap(), text)
}

pub fn sum(points: &[Value], key: &str) -> u64 {
    points.iter().map(|p| p[key].as_u64().unwrap()).sum()
}

/// The points cover the run second by second and add up to its counters;
/// a point with transactions has their percentiles and histogram.
pub fn check_series(report: &Value) -> &[Value] {
    let series = &report["series"];
    let interval = series["interval_seconds"].as_u64().unwrap();
    let points = series["points"].as_array().unwrap();
    for pair in points.windows(2) {
        assert_eq!(
            pair[1]["t"].as_u64().unwrap() - pair[0]["t"].as_u64().unwrap(),
            interval,
            "{pair:?}"
        );
    }
    assert_eq!(
        sum(points, "accepted"),
        report["accepted"].as_u64().unwrap()
    );
    let failed: u64 = report["failed_by_phase"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(sum(points, "rejected"), failed);
    assert_eq!(
        sum(points, "connect_failures"),
        report["connect_failures"].as_u64().unwrap()
    );
    for p in points {
        let done = p["accepted"].as_u64().unwrap() + p["rejected"].as_u64().unwrap();
        if done > 0 {
            assert!(p["p50_ms"].as_f64().unwrap() <= p["p99_ms"].as_f64().unwrap());
            assert!(p["histogram"].is_string(), "{p}");
        }
    }
    points
}
