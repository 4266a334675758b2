//! A real 10-minute run of our source into our sink: the report's series
//! keeps 1-second points throughout and the report stays under the size
//! docs/smtp-source.md states. Ten minutes of wall time, so it is its own
//! test target that `cargo test --workspace` leaves out (`test = false`
//! in Cargo.toml); .ci/run builds and runs it in the background while it
//! fuzzes and runs the other tests, and waits for it at the end:
//! `cargo test --test ten_minute_report` runs it by hand.

mod support;

use support::{
    assert_matches_schema, free_port,
    series::{check_series, run},
    start_sink,
};

const SCHEMA: &str = "docs/report.schema.json";

/// Upper bound of a 10-minute run's JSON report, as docs/smtp-source.md
/// states it: about 600 points of at most ~650 bytes each, and the rest.
const TEN_MINUTE_REPORT_MAX: usize = 512 * 1024;

/// A real 10-minute run (at a light 20 messages a second): 1-second
/// points throughout, no more than 601, and a report within the bound.
#[test]
fn ten_minute_run() {
    let port = free_port();
    let _sink = start_sink(&[], port);
    let (report, text) = run(
        port,
        &[
            "-s",
            "2",
            "-m",
            "1000000",
            "--rate",
            "20",
            "--duration",
            "10m",
        ],
    );
    assert_matches_schema(SCHEMA, &text);
    let points = check_series(&report);
    assert_eq!(report["series"]["interval_seconds"], 1);
    assert!(
        (598..=601).contains(&points.len()),
        "{} points",
        points.len()
    );
    assert!(
        text.len() < TEN_MINUTE_REPORT_MAX,
        "a 10-minute report of {} bytes",
        text.len()
    );
    eprintln!(
        "ten_minute_run: {} points, report {} bytes",
        points.len(),
        text.len()
    );
}
