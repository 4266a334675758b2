//! smtp-source's `--bind`: connections spread over eight loopback source
//! addresses (127.0.0.2 to 127.0.0.9 are loopback on Linux without any
//! setup) into our smtp-sink on 127.0.0.1, one address per connection in
//! turn, counted in the report; and bad lists refused with their text.
//!
//! What this does not show, and why: that one source address runs out of
//! ephemeral ports where eight do not. A (source, target) pair has the
//! kernel's ephemeral range (`net.ipv4.ip_local_port_range`, 32768-60999
//! by default: 28,232 ports), and only ports held in TIME_WAIT (60 s)
//! would pile up. But smtp-source closes as Postfix's does, with SO_LINGER
//! {on, 0}: an RST, which leaves no TIME_WAIT on either side, so ports
//! come back at once and a single address never runs out however many
//! connections are made (checked by hand: `ss -tan state time-wait` shows
//! none after 8,000 connections). The exhaustion --bind avoids belongs to
//! servers or middleboxes that hold TIME_WAIT themselves, which loopback
//! cannot reproduce in a CI-sized test. So the test asks what can be
//! asserted: many short connections (no `-d`), every message accepted,
//! and an even spread.

use std::{
    collections::BTreeMap,
    fs,
    process::{Command, Output},
};

use serde_json::Value;

mod support;
use support::{
    assert_matches_schema, assert_violates_schema, bin, dump_dir, free_port, start_sink, wait_dumps,
};

const SCHEMA: &str = "docs/report.schema.json";

/// The eight source addresses of these tests.
const EIGHT: &str = "127.0.0.2-127.0.0.9";

/// Our smtp-source with these options against 127.0.0.1:port, bounded by
/// `--duration` and `--timeout` so that a stuck run fails instead of
/// hanging the suite.
fn source(args: &[&str], port: u16) -> Output {
    Command::new(bin("smtp-source"))
        .args(["--timeout", "20", "--duration", "50s"])
        .args(args)
        .arg(format!("127.0.0.1:{port}"))
        .output()
        .expect("run smtp-source")
}

/// 8,000 connections (a new one per message, 4 sessions) over eight
/// addresses: all accepted, and `connections_by_source` lists the eight in
/// order with 1,000 each (±1 allowed, though turns are exact when every
/// connect succeeds). About 2 s on an idle 2-core machine in a debug build.
#[test]
fn connections_spread_evenly_over_eight_addresses() {
    const N: u64 = 8000;
    let port = free_port();
    let _sink = start_sink(&[], port);
    let out = source(
        &[
            "--bind",
            EIGHT,
            "-s",
            "4",
            "-m",
            &N.to_string(),
            "--summary",
            "--json",
            "-",
        ],
        port,
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "smtp-source failed:\n{stderr}");
    let json = String::from_utf8_lossy(&out.stdout);
    assert_matches_schema(SCHEMA, &json);
    let report: Value = serde_json::from_str(json.trim()).expect("a JSON report");
    assert_eq!(report["accepted"], N, "{json}");
    assert_eq!(report["connections"], N, "{json}");
    assert_eq!(report["connect_failures"], 0, "{json}");
    let by_source = report["connections_by_source"]
        .as_object()
        .unwrap_or_else(|| panic!("no connections_by_source in {json}"));
    let keys: Vec<&str> = by_source.keys().map(String::as_str).collect();
    assert_eq!(
        keys,
        [
            "127.0.0.2",
            "127.0.0.3",
            "127.0.0.4",
            "127.0.0.5",
            "127.0.0.6",
            "127.0.0.7",
            "127.0.0.8",
            "127.0.0.9"
        ],
        "{json}"
    );
    for (ip, n) in by_source {
        let n = n.as_u64().unwrap();
        assert!(
            n.abs_diff(N / 8) <= 1,
            "{ip}: {n} connections, wanted {} ± 1",
            N / 8
        );
    }
    assert!(
        stderr.contains("\nsource addresses: 8, connections 1000 each\n"),
        "{stderr}"
    );
    // The schema holds the counts to what they are.
    let bad = json.replacen("\"127.0.0.2\":", "\"127.0.0.2\":-", 1);
    assert_violates_schema(SCHEMA, &bad);
}

/// One session without `-d` still takes every address in turn, since the
/// turn is per connection, not per session: the sink's dumps show where
/// each message came from, each address twice for 16 messages.
#[test]
fn one_session_cycles_through_every_address() {
    let dir = dump_dir();
    let template = format!("{}/m.", dir.path().display());
    let port = free_port();
    let _sink = start_sink(&["-d", &template], port);
    let out = source(&["--bind", EIGHT, "-s", "1", "-m", "16"], port);
    assert!(
        out.status.success(),
        "smtp-source failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut seen: BTreeMap<String, u32> = BTreeMap::new();
    for dump in wait_dumps(dir.path(), 16) {
        let text = fs::read_to_string(&dump).unwrap();
        let client = text
            .lines()
            .find_map(|l| l.strip_prefix("X-Client-Addr: "))
            .unwrap_or_else(|| panic!("no X-Client-Addr in {}", dump.display()));
        *seen.entry(client.to_owned()).or_default() += 1;
    }
    let want: BTreeMap<String, u32> = (2..=9).map(|i| (format!("127.0.0.{i}"), 2)).collect();
    assert_eq!(seen, want);
}

/// Bad lists and impossible pairings are refused before any connect, with
/// the text at fault, as a usage error (exit 1).
#[test]
fn bad_lists_are_refused() {
    let refused = |bind: &str, target: &str| {
        let out = Command::new(bin("smtp-source"))
            .args(["--bind", bind, target])
            .output()
            .expect("run smtp-source");
        assert_eq!(out.status.code(), Some(1), "--bind {bind} {target}");
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let prefix = format!("{}: fatal: ", bin("smtp-source").display());
        stderr
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{stderr}"))
            .trim_end()
            .to_owned()
    };
    assert_eq!(
        refused("127.0.0.9-127.0.0.2", "127.0.0.1:25"),
        "bad --bind: 127.0.0.9-127.0.0.2 (a range's first address must not come after its last)"
    );
    assert_eq!(
        refused("127.0.0.2,nowhere", "127.0.0.1:25"),
        "bad --bind: nowhere (not an IP address)"
    );
    assert_eq!(
        refused("127.0.0.2", "[::1]:25"),
        "bad --bind: 127.0.0.2 (an IPv4 source address cannot reach the IPv6 target [::1]:25)"
    );
    assert_eq!(
        refused("127.0.0.2", "unix:/nonexistent/socket"),
        "bad --bind: 127.0.0.2 (a unix: target has no source address; --bind is for TCP targets)"
    );
}
