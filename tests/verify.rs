//! End-to-end verification without a relay: smtp-source --stamp into
//! smtp-sink --verify (with and without a dump, by DATA and by BDAT), and
//! hand-made messages that are duplicated, damaged, unstamped or carry a
//! stamp that does not parse. The same through a real Postfix is in
//! tests/mta.rs.

mod support;

use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;
use support::metrics::{scrape, value};
use support::smtp::{now_ns, send_message, stamped_message};
use support::{
    assert_matches_schema, assert_violates_schema, bin, dump_dir, free_port, is_root,
    start_sink_with_stderr, Killed,
};

const SCHEMA: &str = "docs/sink-stats.schema.json";
/// Bound on any one program's run.
const CAP: Duration = Duration::from_secs(120);

/// Our sink with `args`, stderr kept for the test.
fn start_sink(args: &[&str], port: u16) -> Killed {
    start_sink_with_stderr(args, port, Stdio::piped())
}

/// Waits (bounded) for a child to exit; its status and stderr.
fn wait_exit(child: &mut Child) -> (ExitStatus, String) {
    let (status, _, stderr) = support::wait_exit(child, CAP);
    (status, stderr)
}

/// Runs our source to completion against `port`.
fn source(args: &[&str], port: u16) {
    let mut child = Command::new(bin("smtp-source"))
        .args(args)
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start smtp-source");
    let (status, stderr) = wait_exit(&mut child);
    assert!(status.success(), "smtp-source {args:?}: {status}\n{stderr}");
}

fn read_json(path: &Path) -> (String, Value) {
    let text = std::fs::read_to_string(path).expect("stats file");
    let value = serde_json::from_str(&text).expect("JSON");
    (text, value)
}

/// A scratch directory the sink (running as nobody under root) can write.
fn scratch() -> tempfile::TempDir {
    dump_dir()
}

/// smtp-source --stamp -m 300 into smtp-sink --verify -M 300: every
/// message unique and intact, with a transit time each, the source's
/// report read at the end (loss 0), --expect met; with `-d` and without
/// a dump, by DATA and by BDAT.
#[test]
fn a_stamped_run_arrives_whole() {
    for (mode, sink_extra, source_extra) in [
        ("no dump, DATA", &[][..], &[][..]),
        ("-d, DATA", &["-d", "DUMP"][..], &[][..]),
        (
            "no dump, BDAT",
            &["--chunking"][..],
            &["--ehlo", "--chunking=700"][..],
        ),
    ] {
        let dir = scratch();
        let dump = dir.path().join("dump");
        std::fs::create_dir(&dump).unwrap();
        std::fs::set_permissions(&dump, std::os::unix::fs::PermissionsExt::from_mode(0o777))
            .unwrap();
        let stats = dir.path().join("stats.json");
        let report = dir.path().join("report.json");
        let dump_template = format!("{}/", dump.display());
        let (stats_s, report_s) = (stats.display().to_string(), report.display().to_string());
        let mut sink_args = vec![
            "--verify",
            "--expect",
            "300",
            "--source-report",
            &report_s,
            "--stats-json",
            &stats_s,
            "-M",
            "300",
        ];
        sink_args.extend(sink_extra.iter().map(|a| {
            if *a == "DUMP" {
                dump_template.as_str()
            } else {
                a
            }
        }));
        let port = free_port();
        let mut sink = start_sink(&sink_args, port);
        let mut source_args = vec![
            "--stamp", "--run-id", "e2e-run", "-m", "300", "-s", "3", "-l", "3000", "--json",
            &report_s,
        ];
        source_args.extend(source_extra);
        source(&source_args, port);
        let (status, stderr) = wait_exit(&mut sink.0);
        assert!(status.success(), "{mode}: sink {status}\n{stderr}");
        assert!(
            stderr
                .contains("verify: run e2e-run: 300 unique, 0 duplicate, 0 corrupted; transit ms:"),
            "{mode}: {stderr}"
        );
        assert!(
            stderr.contains("verify: source run e2e-run: 300 accepted, 300 arrived, 0 lost"),
            "{mode}: {stderr}"
        );
        let (text, json) = read_json(&stats);
        assert_matches_schema(SCHEMA, &text);
        let run = &json["verify"]["runs"]["e2e-run"];
        assert_eq!(run["unique"], 300, "{mode}: {text}");
        assert_eq!(run["duplicate"], 0);
        assert_eq!(run["corrupted"], 0);
        assert_eq!(run["transit"]["count"], 300);
        assert!(run["transit"]["max_ms"].as_f64().unwrap() < 120_000.0);
        assert_eq!(json["verify"]["unstamped"], 0);
        assert_eq!(json["verify"]["source"]["lost"], 0);
        assert_eq!(json["verify"]["source"]["stamped"], 300);
        if sink_extra.contains(&"DUMP") {
            // The dump has the stamp as the source wrote it.
            let files = support::files_in(&dump);
            assert_eq!(files.len(), 300, "{mode}");
            let first = std::fs::read_to_string(&files[0]).unwrap();
            assert!(first.contains("X-Smtp-Stamp: run=e2e-run; seq="), "{first}");
        }
        // A schema that would accept anything proves nothing.
        let broken = text.replace("\"duplicate\": 0", "\"duplicate\": -1");
        assert_violates_schema(SCHEMA, &broken);
    }
}

/// A duplicate, a damaged body, an unstamped message and a stamp that does
/// not parse are each counted as such; a body sent with CRLF whose stamp
/// was computed over LF line ends is intact; the metrics endpoint agrees.
/// Fewer unique messages than --expect: exit status 3.
#[test]
fn hand_made_messages_are_told_apart() {
    let dir = scratch();
    let stats = dir.path().join("stats.json");
    let stats_s = stats.display().to_string();
    let (port, metrics_port) = (free_port(), free_port());
    let metrics = format!("127.0.0.1:{metrics_port}");
    let mut sink = start_sink(
        &[
            "--verify",
            "--expect",
            "3",
            "--stats-json",
            &stats_s,
            "-M",
            "8",
            "--metrics",
            &metrics,
        ],
        port,
    );
    let body = b"line one\r\nline two\r\n";
    let sent = now_ns();
    let first = stamped_message("hand", 0, sent, body, body);
    let messages: Vec<(&str, Vec<u8>)> = vec![
        ("intact", first.clone()),
        ("duplicate", first),
        (
            "damaged",
            stamped_message("hand", 1, sent, body, b"line one\r\nline 2\r\n"),
        ),
        (
            "shortened",
            stamped_message("hand", 2, sent, body, b"line one\r\n"),
        ),
        ("unstamped", b"Subject: plain\r\n\r\nno stamp\r\n".to_vec()),
        (
            "unparsable",
            b"X-Smtp-Stamp: run=hand; seq=9; sent=1; len=1; digest=xyz\r\n\r\nx\r\n".to_vec(),
        ),
        (
            "LF-stamped, sent with CRLF",
            stamped_message("hand", 3, sent, b"line one\nline two\n", body),
        ),
    ];
    for (what, message) in &messages {
        send_message(port, message).unwrap_or_else(|e| panic!("{what}: {e}"));
    }
    // The endpoint says the same while the sink runs (each message was
    // counted before its 250 went out).
    let samples = scrape(metrics_port);
    for (series, want) in [
        (
            r#"smtp_sink_verify_messages_total{run="hand",result="unique"}"#,
            2,
        ),
        (
            r#"smtp_sink_verify_messages_total{run="hand",result="duplicate"}"#,
            1,
        ),
        (
            r#"smtp_sink_verify_messages_total{run="hand",result="corrupted"}"#,
            2,
        ),
        (r#"smtp_sink_verify_unmatched_total{reason="unstamped"}"#, 1),
        (r#"smtp_sink_verify_unmatched_total{reason="invalid"}"#, 1),
        (r#"smtp_sink_verify_transit_seconds_count{run="hand"}"#, 2),
        (
            r#"smtp_sink_verify_transit_seconds_bucket{le="+Inf",run="hand"}"#,
            2,
        ),
    ] {
        assert_eq!(value(&samples, series), want, "{series}");
    }
    // The eighth message ends the sink (-M 8).
    send_message(port, b"Subject: last\r\n\r\nunstamped\r\n").unwrap();
    let (status, stderr) = wait_exit(&mut sink.0);
    assert_eq!(status.code(), Some(3), "--expect 3 with 2 unique\n{stderr}");
    assert!(
        stderr.contains("verify: expected 3 unique messages, 2 arrived"),
        "{stderr}"
    );
    let (text, json) = read_json(&stats);
    assert_matches_schema(SCHEMA, &text);
    let v = &json["verify"];
    let run = &v["runs"]["hand"];
    assert_eq!(
        (&run["unique"], &run["duplicate"], &run["corrupted"]),
        (&Value::from(2), &Value::from(1), &Value::from(2)),
        "{text}"
    );
    assert_eq!(run["transit"]["count"], 2);
    assert_eq!(
        (&v["unstamped"], &v["invalid"]),
        (&Value::from(2), &Value::from(1))
    );
    assert_eq!(json["counters"]["messages"]["accepted"], 8, "{text}");
}

/// --source-report without --verify is refused, and a report that is not
/// there by the end is a fatal error (after the lines are printed).
#[test]
fn source_report_needs_verify_and_a_report() {
    let mut cmd = Command::new(bin("smtp-sink"));
    if is_root() {
        cmd.args(["-u", "nobody"]);
    }
    let out = cmd
        .args(["--source-report", "/nonexistent", "127.0.0.1:0", "1"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("need --verify"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let dir = scratch();
    let missing = dir.path().join("never-written.json");
    let missing_s = missing.display().to_string();
    let port = free_port();
    let mut sink = start_sink(
        &["--verify", "--source-report", &missing_s, "-M", "1"],
        port,
    );
    send_message(port, b"Subject: x\r\n\r\nx\r\n").unwrap();
    let (status, stderr) = wait_exit(&mut sink.0);
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("verify: no stamped message"), "{stderr}");
    assert!(
        stderr.contains(&format!("fatal: --source-report {missing_s}: No such file")),
        "{stderr}"
    );
}
