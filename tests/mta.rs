//! Interop through a real MTA: our smtp-source → Postfix's smtpd on a
//! loopback port → Postfix's smtp client → our smtp-sink on another loopback
//! port. Every message the source handed to Postfix must come out at the
//! sink, once, with the source's body.
//!
//! Each test runs a private Postfix instance: its own config, queue and data
//! directories under a temporary directory, started with
//! `postfix -c DIR start` and stopped with `postfix -c DIR stop` by a Drop
//! guard, so the system instance is never touched. Starting Postfix needs
//! root and a Postfix installation (`apt-get install postfix`); without them
//! the tests fail when CI is set and skip with a notice otherwise. The tests
//! take turns (one MTA at a time) through a static lock.
//!
//! The TLS tests give smtpd Debian's snakeoil certificate (`apt-get install
//! ssl-cert`): STARTTLS on the plain port and implicit TLS (wrapper mode) on
//! a second one. They also need `openssl` to read the certificate's name;
//! without either, the same CI rule applies.

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsStr;
use std::fs::{self, File};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

mod support;
use support::smtp::{now_ns, send_message, stamped_message};
use support::{bin, dump_dir, expected_l_body, files_in, free_port, is_root, start_sink, Killed};

/// One Postfix instance at a time: a machine runs only so many.
static ONE_MTA_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Cap on one smtp-source run (it hangs only if something is broken).
const SOURCE_CAP: Duration = Duration::from_secs(120);
/// Cap on the wait for every message to reach the sink and leave the queue.
const DELIVERY_CAP: Duration = Duration::from_secs(120);
/// Cap on one Postfix administration command (start, stop, postqueue).
const ADMIN_CAP: Duration = Duration::from_secs(60);
/// Host name of the Postfix instance, seen in its Received header.
const MTA_HOSTNAME: &str = "mta.test.invalid";

/// The default body as the sink dumps it (CRs removed).
const DEFAULT_BODY: &[u8] =
    b"La de da de da 1.\nLa de da de da 2.\nLa de da de da 3.\nLa de da de da 4.\n";

// ---------------------------------------------------------------- the tests

#[test]
fn plain_smtp_through_postfix() {
    let Some(run) = through_postfix(&["-s", "5", "-m", "200", "-d"], 200) else {
        return;
    };
    // Today's mode speaks HELO and DATA.
    run.assert_used("helo");
    run.assert_used("data");
    run.assert_unused("ehlo");
    run.assert_unused("bdat");
}

#[test]
fn esmtp_pipelining_chunking_size_smtputf8_through_postfix() {
    let Some(run) = through_postfix(
        &[
            "--ehlo",
            "--pipelining",
            "--chunking",
            "--size",
            "--smtputf8",
            "-s",
            "5",
            "-m",
            "200",
            "-d",
        ],
        200,
    ) else {
        return;
    };
    run.assert_used("ehlo");
    run.assert_unused("helo");
    // Postfix advertises CHUNKING: every message goes as BDAT, none as DATA.
    run.assert_unused("data");
    assert!(
        run.smtpd_total("bdat") >= 200,
        "one BDAT or more per message\n{}",
        run.sessions()
    );
}

#[test]
fn pipelining_through_postfix() {
    let Some(run) = through_postfix(&["--pipelining", "-s", "5", "-m", "200", "-d"], 200) else {
        return;
    };
    run.assert_unused("bdat");
}

#[test]
fn multi_chunk_bdat_through_postfix() {
    let Some(run) = through_postfix(
        &["--chunking=1000", "-l", "5000", "-s", "2", "-m", "50", "-d"],
        50,
    ) else {
        return;
    };
    run.assert_unused("data");
    // A 5000-byte body in chunks of at most 1000 bytes: five BDATs or more
    // per message.
    assert!(
        run.smtpd_total("bdat") >= 5 * 50,
        "several BDAT chunks per message\n{}",
        run.sessions()
    );
}

// ---------------------------------------------------------------- TLS

#[test]
fn starttls_through_postfix() {
    let Some(mut relay) = Relay::start(true) else {
        return;
    };
    let run = relay.send(&["--starttls", "-s", "5", "-m", "100", "-d"], 100);
    // One connection per session, each upgraded once: EHLO, STARTTLS, EHLO.
    assert_eq!(run.connections, 5, "{}", run.source_stderr);
    assert_eq!(run.smtpd_total("starttls"), 5, "{}", run.sessions());
    assert_eq!(run.smtpd_total("ehlo"), 10, "{}", run.sessions());
    run.assert_unused("helo");
    run.assert_received_with(&["ESMTPS"]);
    // A handshake per connection. The sessions share one resumption
    // cache, so one that reaches its handshake after another's finished
    // may resume that session: only the sum is fixed.
    let (full, _) = run.assert_handshakes(5);
    assert!(
        full >= 1,
        "a first handshake is a full one\n{}",
        run.source_stderr
    );
}

#[test]
fn starttls_pipelining_chunking_through_postfix() {
    let Some(mut relay) = Relay::start(true) else {
        return;
    };
    let run = relay.send(
        &[
            "--starttls",
            "--pipelining",
            "--chunking",
            "-s",
            "2",
            "-m",
            "50",
            "-d",
        ],
        50,
    );
    run.assert_received_with(&["ESMTPS"]);
    assert_eq!(run.smtpd_total("starttls"), 2, "{}", run.sessions());
    // BDAT over TLS: every message as BDAT, none as DATA.
    run.assert_unused("data");
    assert!(
        run.smtpd_total("bdat") >= 50,
        "one BDAT or more per message\n{}",
        run.sessions()
    );
    run.assert_handshakes(2);
}

/// Postfix 3.7 resumes out of the box, with RFC 5077 session tickets (no
/// session cache database needed), as long as tlsmgr runs: it issues the
/// ticket keys (and without it smtpd disables TLS altogether). It issues one
/// ticket per full handshake and none on a resumed one. TLS 1.3 tickets are
/// single-use, so with TLS 1.3 every other connection of a session resumes
/// at best; a TLS 1.2 ticket serves any number of them.
#[test]
fn starttls_resumption_through_postfix() {
    let Some(mut relay) = Relay::start(true) else {
        return;
    };
    // A connection per message: after the first handshakes the source
    // offers the tickets Postfix gave it, and Postfix takes them.
    let run = relay.send(&["--starttls", "-s", "2", "-m", "40"], 40);
    assert_eq!(run.connections, 40, "{}", run.source_stderr);
    assert_eq!(run.smtpd_total("starttls"), 40, "{}", run.sessions());
    run.assert_received_with(&["ESMTPS"]);
    let (full, resumed) = run.assert_handshakes(40);
    eprintln!("resumption on: {full} full handshakes, {resumed} resumed");
    assert!(resumed > 0, "no TLS session resumed\n{}", run.source_stderr);

    // The same with TLS 1.2 only.
    let run = relay.send(
        &[
            "--starttls",
            "--tls-protocol",
            "tls1.2",
            "-s",
            "2",
            "-m",
            "40",
        ],
        40,
    );
    assert_eq!(
        run.source_tls_protocol(),
        "TLSv1.2",
        "{}",
        run.source_stderr
    );
    assert_eq!(
        run.log.matches(" TLS connection established from ").count(),
        run.log.matches(": TLSv1.2 with cipher ").count(),
        "smtpd negotiated TLS 1.2 only\n{}",
        run.log
    );
    let (full, resumed) = run.assert_handshakes(40);
    eprintln!("TLS 1.2, resumption on: {full} full handshakes, {resumed} resumed");
    assert!(resumed > 0, "no TLS session resumed\n{}", run.source_stderr);

    // Resumption off: every handshake is a full one.
    let run = relay.send(
        &["--starttls", "--no-tls-resume", "-s", "2", "-m", "40"],
        40,
    );
    assert_eq!(run.connections, 40, "{}", run.source_stderr);
    assert_eq!(
        run.assert_handshakes(40),
        (40, 0),
        "--no-tls-resume: full handshakes only\n{}",
        run.source_stderr
    );
}

#[test]
fn tls_on_connect_through_postfix() {
    let Some(mut relay) = Relay::start(true) else {
        return;
    };
    let port = relay.mta.smtps_port.expect("a wrapper-mode smtpd");
    let run = relay.send_to(port, &["--tls-on-connect", "-s", "2", "-m", "40", "-d"], 40);
    // TLS from the first byte: no STARTTLS, and still TLS in the header
    // (ESMTPS after EHLO, SMTPS after HELO).
    run.assert_unused("starttls");
    run.assert_received_with(&["ESMTPS", "SMTPS"]);
    run.assert_handshakes(2);
}

#[test]
fn tls_verify_through_postfix() {
    let Some(mut relay) = Relay::start(true) else {
        return;
    };
    let tls = relay.tls.clone().expect("TLS set up");
    // Verification against system roots that lack the self-signed snakeoil
    // certificate, with the right name: its issuer is unknown. (Debian's
    // ssl-cert links the certificate into /etc/ssl/certs, which makes it a
    // system root of that machine; rustls-native-certs reads the store
    // SSL_CERT_FILE/SSL_CERT_DIR name, so here an empty one.)
    let empty_roots = relay.mta.scratch().join("no-roots.pem");
    fs::write(&empty_roots, "").unwrap();
    let log = relay.expect_failure(
        &[
            "--starttls",
            "--tls-verify",
            "--tls-sni",
            &tls.cert_name,
            "-s",
            "1",
            "-m",
            "1",
        ],
        &[
            ("SSL_CERT_FILE", Some(empty_roots.as_os_str())),
            ("SSL_CERT_DIR", None),
        ],
        "TLS handshake failed: invalid peer certificate: UnknownIssuer",
    );
    // The source told smtpd why, in a TLS alert: unknown_ca (48).
    assert!(
        log.contains("SSL alert number 48"),
        "smtpd saw an unknown_ca alert\n{log}"
    );
    // Trusting it, but connecting to 127.0.0.1 without a name: the
    // certificate names a host (in its CN and subjectAltName), not that
    // address.
    let log = relay.expect_failure(
        &[
            "--starttls",
            "--tls-ca",
            SNAKEOIL_CERT,
            "-s",
            "1",
            "-m",
            "1",
        ],
        &[],
        "TLS handshake failed: invalid peer certificate: \
         certificate not valid for name \"127.0.0.1\"",
    );
    // bad_certificate (42).
    assert!(
        log.contains("SSL alert number 42"),
        "smtpd saw a bad_certificate alert\n{log}"
    );
    // Trusting it and naming the host it was made for: verified.
    let run = relay.send(
        &[
            "--starttls",
            "--tls-verify",
            "--tls-ca",
            SNAKEOIL_CERT,
            "--tls-sni",
            &tls.cert_name,
            "-v",
            "-s",
            "2",
            "-m",
            "10",
            "-d",
        ],
        10,
    );
    run.assert_received_with(&["ESMTPS"]);
    let (full, _) = run.assert_handshakes(2);
    // -v: `TLS <protocol> <cipher>, full handshake|resumed, peer: <subject>`
    // after each handshake.
    let peer = format!("peer: CN={}", tls.cert_name);
    let shown: Vec<&str> = run
        .source_stderr
        .lines()
        .filter(|l| l.contains(" TLS ") && l.contains(", peer: "))
        .collect();
    assert_eq!(
        shown.len(),
        2,
        "-v: a line per handshake\n{}",
        run.source_stderr
    );
    assert_eq!(
        shown
            .iter()
            .filter(|l| l.contains(", full handshake, "))
            .count() as u64,
        full,
        "-v: the full handshakes\n{}",
        shown.join("\n")
    );
    assert!(
        shown.iter().all(|l| l.contains(&peer)),
        "-v names the verified peer ({peer})\n{}",
        shown.join("\n")
    );
}

/// smtp-source --stamp → Postfix → smtp-sink --verify: 2000 messages, all
/// unique and intact, with their transit times; then a duplicate, a
/// damaged body and an unstamped message made by hand, sent through the
/// same Postfix, are each counted as such. The sink reads the source's
/// report at its end: nothing lost, and --expect is met.
#[test]
fn stamped_messages_verified_through_postfix() {
    let files = dump_dir();
    let stats = files.path().join("stats.json");
    let report = files.path().join("report.json");
    let (stats_s, report_s) = (stats.display().to_string(), report.display().to_string());
    let sink_args = [
        "--verify",
        "--expect",
        "2000",
        "--source-report",
        &report_s,
        "--stats-json",
        &stats_s,
    ];
    let Some(mut relay) = Relay::start_with(false, &sink_args) else {
        return;
    };
    let source_args = [
        "--stamp",
        "--run-id",
        "via-postfix",
        "-s",
        "10",
        "-m",
        "2000",
        "--json",
        &report_s,
    ];
    relay.send(&source_args, 2000);

    // By hand, through the same smtpd: seq 0 again (Postfix gives it a new
    // queue id, as a resent message would have), a body that is not the
    // stamped one, and a message without a stamp.
    let body = b"hand made\r\n";
    let sent = now_ns();
    let hand = [
        stamped_message("via-postfix", 0, sent, body, body),
        stamped_message(
            "via-postfix",
            5000,
            sent,
            body,
            b"hand made, then changed\r\n",
        ),
        b"Subject: no stamp\r\n\r\nplain\r\n".to_vec(),
    ];
    for message in &hand {
        send_message(relay.mta.smtpd_port, message).expect("smtpd accepts it");
    }
    let deadline = Instant::now() + DELIVERY_CAP;
    while files_in(relay.dump.path()).len() < 2003 || !relay.mta.queue().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the hand-made messages did not all arrive: {} at the sink",
            files_in(relay.dump.path()).len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // SIGTERM: the sink reads the source's report, writes its last file
    // and exits 0 (--expect met).
    let pid = relay.sink.0.id().to_string();
    let killed = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(killed.success());
    let deadline = Instant::now() + ADMIN_CAP;
    let status = loop {
        if let Some(status) = relay.sink.0.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "the sink did not exit on SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "sink: {status}");
    let text = fs::read_to_string(&stats).unwrap();
    support::assert_matches_schema("docs/sink-stats.schema.json", &text);
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let verify = &json["verify"];
    let run = &verify["runs"]["via-postfix"];
    eprintln!("through Postfix: {run}");
    assert_eq!(run["unique"], 2000, "{text}");
    assert_eq!(run["duplicate"], 1, "{text}");
    assert_eq!(run["corrupted"], 1, "{text}");
    assert_eq!(verify["unstamped"], 1, "{text}");
    assert_eq!(verify["invalid"], 0, "{text}");
    let transit = &run["transit"];
    assert_eq!(transit["count"], 2000);
    // Through a queue, a message takes at least a few hundred µs.
    assert!(transit["min_ms"].as_f64().unwrap() > 0.0, "{transit}");
    assert!(transit["max_ms"].as_f64().unwrap() < 240_000.0, "{transit}");
    let source = &verify["source"];
    assert_eq!(
        (&source["accepted"], &source["unique"], &source["lost"]),
        (&2000.into(), &2000.into(), &0.into()),
        "{text}"
    );
}

/// `--greylist 2` behind Postfix: each message has its own recipient
/// (`-N`), so its own triple; Postfix's first attempt at each gets 450 at
/// RCPT and is deferred, and its retry (the queue timers here are 2 s)
/// delivers it. Postfix counts its back-off in whole seconds, so a retry
/// may come a little under 2 s after the first attempt and be deferred
/// once more: "at least once" is what is certain.
#[test]
fn greylisting_sink_behind_postfix_gets_every_message_on_a_retry() {
    let Some(mut relay) = Relay::start_with(false, &["--greylist", "2"]) else {
        return;
    };
    let messages = 10;
    let run = relay.send(&["-s", "2", "-m", "10", "-N", "-d"], messages);
    // `<queue id>: to=<…>, relay=…, status=deferred (host … said: 450 4.2.0
    // … (in reply to RCPT TO command))`, then `status=sent` for the same id.
    let queue_ids = |status: &str| -> BTreeMap<String, u64> {
        let mut ids = BTreeMap::new();
        for line in run.log.lines().filter(|l| l.contains("/smtp[")) {
            if !line.contains(status) {
                continue;
            }
            let id = line
                .split("]: ")
                .nth(1)
                .and_then(|rest| rest.split(':').next())
                .unwrap_or_else(|| panic!("no queue id in {line}"));
            *ids.entry(id.to_owned()).or_insert(0) += 1;
        }
        ids
    };
    let deferred = queue_ids("status=deferred (host 127.0.0.1[127.0.0.1] said: 450 4.2.0 ");
    let sent = queue_ids("status=sent ");
    assert_eq!(
        sent.len() as u64,
        messages,
        "one delivery per message\n{}",
        run.log
    );
    assert!(
        sent.values().all(|n| *n == 1),
        "a message delivered twice\n{}",
        run.log
    );
    assert_eq!(
        deferred.keys().collect::<Vec<_>>(),
        sent.keys().collect::<Vec<_>>(),
        "every delivered message was greylisted first\n{}",
        run.log
    );
    eprintln!(
        "greylisting: deferrals per message {:?}",
        deferred.values().collect::<Vec<_>>()
    );
}

// ---------------------------------------------------------------- the helper

/// What one smtp-source run through Postfix left behind.
struct Relayed {
    /// The `disconnect from …` lines of smtpd: one per session, with the
    /// commands it received (`ehlo=1 mail=40 rcpt=40 bdat=40 quit=1 …`).
    disconnects: Vec<String>,
    /// Postfix's log lines written during the run.
    log: String,
    /// smtp-source's stderr: its `--summary` line (and `-v` output).
    source_stderr: String,
    /// Connections the source made, from its summary.
    connections: u64,
    /// How many messages Postfix's Received header says arrived with each
    /// protocol (`SMTP`, `ESMTP`, `ESMTPS`, `UTF8SMTP`…).
    received_with: BTreeMap<String, u64>,
}

impl Relayed {
    /// Sum of the accepted counts of one command over all sessions (the
    /// first number of `cmd=N` or `cmd=N/M`).
    fn smtpd_total(&self, cmd: &str) -> u64 {
        smtpd_totals(&self.disconnects)
            .get(cmd)
            .copied()
            .unwrap_or(0)
    }

    fn sessions(&self) -> String {
        self.disconnects.join("\n")
    }

    fn assert_used(&self, cmd: &str) {
        assert!(
            self.smtpd_total(cmd) > 0,
            "smtpd saw no {cmd}\n{}",
            self.sessions()
        );
    }

    fn assert_unused(&self, cmd: &str) {
        assert_eq!(
            self.smtpd_total(cmd),
            0,
            "smtpd saw {cmd}\n{}",
            self.sessions()
        );
    }

    /// Every message arrived with one of these protocols.
    fn assert_received_with(&self, protocols: &[&str]) {
        assert!(
            self.received_with
                .keys()
                .all(|p| protocols.contains(&p.as_str())),
            "Received headers say {:?}, expected only {protocols:?}",
            self.received_with
        );
    }

    /// Checks that the source's summary, and smtpd's log, count
    /// `connections` TLS handshakes, and that both count the same resumed
    /// ones. Returns the source's (full, resumed).
    fn assert_handshakes(&self, connections: u64) -> (u64, u64) {
        let (full, resumed) = self.source_handshakes();
        assert_eq!(
            full + resumed,
            connections,
            "a TLS handshake per connection\n{}",
            self.source_stderr
        );
        // At smtpd_tls_loglevel 2: `… TLS connection established from …`
        // per handshake, and `…: Reusing old session` per resumed one.
        let smtpd = |what: &str| {
            self.log
                .lines()
                .filter(|l| l.contains("/smtpd[") && l.contains(what))
                .count() as u64
        };
        assert_eq!(
            smtpd(" TLS connection established from "),
            connections,
            "smtpd logged a TLS handshake per connection\n{}",
            self.log
        );
        assert_eq!(
            smtpd(": Reusing old session"),
            resumed,
            "smtpd resumed the sessions the source resumed\n{}\n{}",
            self.source_stderr,
            self.log
        );
        (full, resumed)
    }

    /// The summary's `; TLS <protocol> <cipher>: …` part.
    fn source_tls_summary(&self) -> &str {
        self.source_stderr
            .lines()
            .find_map(|line| line.find("; TLS ").map(|at| &line[at + 2..]))
            .unwrap_or_else(|| panic!("no TLS in the summary\n{}", self.source_stderr))
    }

    /// `TLSv1.3` or `TLSv1.2`, from the summary.
    fn source_tls_protocol(&self) -> &str {
        self.source_tls_summary()
            .split_whitespace()
            .nth(1)
            .unwrap_or("")
    }

    /// (full, resumed) from the summary: `; TLS <protocol> <cipher>: N full
    /// handshakes, M resumed`.
    fn source_handshakes(&self) -> (u64, u64) {
        let tls = self.source_tls_summary();
        let parsed = tls.split_once(": ").and_then(|(_, counts)| {
            let (full, rest) = counts.split_once(" full handshakes, ")?;
            let resumed = rest.split_whitespace().next()?;
            Some((full.parse().ok()?, resumed.parse().ok()?))
        });
        parsed.unwrap_or_else(|| {
            panic!(
                "no TLS handshake counts in the summary\n{}",
                self.source_stderr
            )
        })
    }
}

/// Sends `messages` messages with smtp-source `source_args` through a fresh
/// private Postfix instance (no TLS) into our smtp-sink; see
/// [`Relay::send`]. Returns None (after a notice) when Postfix can't run
/// here and CI is unset.
fn through_postfix(source_args: &[&str], messages: u64) -> Option<Relayed> {
    Some(Relay::start(false)?.send(source_args, messages))
}

/// Our smtp-sink and a private Postfix relaying to it, for one test or a
/// few runs in turn. Fields drop in order: the MTA stops before the sink,
/// the sink before its dump directory goes, and the turn is given up last.
struct Relay {
    mta: Mta,
    sink: Killed,
    dump: tempfile::TempDir,
    /// The TLS setup, when Postfix speaks TLS.
    tls: Option<TlsSetup>,
    /// Dumps already accounted for by earlier runs.
    seen: BTreeSet<PathBuf>,
    /// Bytes of Postfix's log that earlier runs account for.
    log_seen: usize,
    _turn: MutexGuard<'static, ()>,
}

impl Relay {
    /// Starts the sink and Postfix, with TLS (snakeoil certificate,
    /// STARTTLS on the plain port and a wrapper-mode port) when `tls`.
    /// None (after a notice) when they can't run here and CI is unset.
    fn start(tls: bool) -> Option<Relay> {
        Relay::start_with(tls, &[])
    }

    /// [`Relay::start`], with more options for the sink (beside its `-d`).
    fn start_with(tls: bool, sink_args: &[&str]) -> Option<Relay> {
        let turn = ONE_MTA_AT_A_TIME
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let tools = require_postfix()?;
        let tls = if tls { Some(require_tls()?) } else { None };
        let dump = dump_dir();
        let sink_port = free_port();
        let template = dump.path().join("m.");
        let template = template.display().to_string();
        let sink = start_sink(&[&["-d", &template][..], sink_args].concat(), sink_port);
        let mta = Mta::start(tools, sink_port, tls.as_ref());
        Some(Relay {
            mta,
            sink,
            dump,
            tls,
            seen: BTreeSet::new(),
            log_seen: 0,
            _turn: turn,
        })
    }

    /// Runs smtp-source (bounded) against a port of this Postfix, with
    /// these environment variables set or, for None, removed.
    fn source(&self, port: u16, source_args: &[&str], env: &[(&str, Option<&OsStr>)]) -> Ran {
        let mut cmd = Command::new(bin("smtp-source"));
        for (name, value) in env {
            match value {
                Some(value) => cmd.env(name, value),
                None => cmd.env_remove(name),
            };
        }
        cmd.args(source_args).arg(format!("127.0.0.1:{port}"));
        run_bounded(&mut cmd, SOURCE_CAP, &self.mta.scratch())
    }

    /// Postfix's log since the last run accounted for, up to its last
    /// complete line, and the offset after it.
    fn new_log(&self) -> (String, usize) {
        let log = self.mta.log_bytes();
        let new = log.get(self.log_seen..).unwrap_or_default();
        let complete = new.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
        (
            String::from_utf8_lossy(&new[..complete]).into_owned(),
            self.log_seen + complete,
        )
    }

    /// [`Relay::send_to`] smtpd's plain port.
    fn send(&mut self, source_args: &[&str], messages: u64) -> Relayed {
        let port = self.mta.smtpd_port;
        self.send_to(port, source_args, messages)
    }

    /// Sends `messages` messages with smtp-source `source_args` to `port`
    /// (with `--summary` added), and checks that every one arrived at the
    /// sink, once, with the source's body, and that the queue is empty.
    fn send_to(&mut self, port: u16, source_args: &[&str], messages: u64) -> Relayed {
        let label = format!("smtp-source {}", source_args.join(" "));
        let ran = self.source(port, &[source_args, &["--summary"]].concat(), &[]);
        assert!(
            ran.status.is_some_and(|s| s.success()),
            "{label}: {}\nstderr:\n{}",
            ran.describe(),
            ran.stderr
        );
        let connections = summary_connections(&ran.stderr)
            .unwrap_or_else(|| panic!("{label}: no summary line\n{}", ran.stderr));

        // Every message at the sink and none left in Postfix's queue. Once
        // the queue is empty nothing more can arrive, so the count is final.
        let started = Instant::now();
        let mut queue = String::new();
        let files = loop {
            let files: Vec<PathBuf> = files_in(self.dump.path())
                .into_iter()
                .filter(|f| !self.seen.contains(f))
                .collect();
            let delivered = files.len() as u64;
            if delivered >= messages {
                queue = self.mta.queue();
                if queue.is_empty() {
                    break files;
                }
            }
            assert!(
                started.elapsed() < DELIVERY_CAP,
                "{label}: after {:?}, {delivered} of {messages} messages at the sink; \
                 Postfix queue:\n{queue}",
                DELIVERY_CAP
            );
            std::thread::sleep(Duration::from_millis(100));
        };
        eprintln!(
            "{label}: {messages} messages at the sink {:.1?} after the source exited",
            started.elapsed()
        );

        assert_eq!(
            files.len() as u64,
            messages,
            "{label}: one dump per message, no duplicates"
        );
        let body = expected_body(source_args);
        let via_postfix = format!("by {MTA_HOSTNAME} (Postfix)");
        let mut received_with = BTreeMap::new();
        for (i, f) in files.iter().enumerate() {
            let data = fs::read(f).unwrap();
            assert!(
                memchr::memmem::find(&data, &body).is_some(),
                "{label}: {} lacks the source's body:\n{}",
                f.display(),
                String::from_utf8_lossy(&data)
            );
            // How Postfix's smtpd named the protocol it received the
            // message with ("with SMTP", "with ESMTPS", "with UTF8SMTP"…).
            let text = String::from_utf8_lossy(&data).replace("\n\t", " ");
            let received = text
                .lines()
                .find(|l| l.starts_with("Received:") && l.contains(&via_postfix))
                .unwrap_or_else(|| {
                    panic!("{label}: {} has no Received header of Postfix", f.display())
                });
            let with = received
                .split_once(" with ")
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .unwrap_or("-");
            *received_with.entry(with.to_owned()).or_insert(0) += 1;
            if i == 0 {
                // For the record.
                eprintln!(
                    "{label}: {}",
                    received.split(';').next().unwrap_or(received)
                );
            }
        }
        eprintln!("{label}: received with {received_with:?}");
        self.seen.extend(files);

        // smtpd logs a session's commands when it ends, which may be a
        // moment after the source saw its last reply: wait (bounded) for
        // all of them.
        let deadline = Instant::now() + Duration::from_secs(30);
        let (mut log, mut end) = self.new_log();
        let mut disconnects = smtpd_disconnects(&log);
        while ((disconnects.len() as u64) < connections
            || smtpd_totals(&disconnects).get("mail").copied().unwrap_or(0) < messages)
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(100));
            (log, end) = self.new_log();
            disconnects = smtpd_disconnects(&log);
        }
        self.log_seen = end;
        let run = Relayed {
            disconnects,
            log,
            source_stderr: ran.stderr,
            connections,
            received_with,
        };
        eprintln!("{label}: smtpd saw {:?}", smtpd_totals(&run.disconnects));
        if let Some(summary) = run.source_stderr.lines().find(|l| l.contains("; TLS ")) {
            eprintln!("{label}: {summary}");
        }
        assert_eq!(
            run.disconnects.len() as u64,
            connections,
            "{label}: smtpd saw the source's connections\n{}",
            run.sessions()
        );
        assert_eq!(
            run.smtpd_total("mail"),
            messages,
            "{label}: smtpd accepted one MAIL per message\n{}",
            run.sessions()
        );
        // With default settings Postfix 3.7 only logs pipelining that RFC
        // 2920 forbids (newer Postfix disconnects the client): none is
        // allowed.
        let improper: Vec<&str> = run
            .log
            .lines()
            .filter(|l| l.contains("improper command pipelining"))
            .collect();
        assert!(
            improper.is_empty(),
            "{label}: Postfix saw improper pipelining:\n{}",
            improper.join("\n")
        );
        run
    }

    /// Runs smtp-source `source_args` (one session, with `env` as for
    /// [`Relay::source`]) against smtpd's plain port,
    /// which must fail after STARTTLS: exit status 24 (a STARTTLS or TLS
    /// failure, docs/smtp-source.md "Exit status") with `reason` on
    /// stderr, and nothing delivered. Returns what Postfix logged.
    fn expect_failure(
        &mut self,
        source_args: &[&str],
        env: &[(&str, Option<&OsStr>)],
        reason: &str,
    ) -> String {
        let label = format!("smtp-source {}", source_args.join(" "));
        let ran = self.source(self.mta.smtpd_port, source_args, env);
        eprintln!("{label}: {}: {}", ran.describe(), ran.stderr.trim_end());
        assert_eq!(
            ran.status.and_then(|s| s.code()),
            Some(24),
            "{label}: {}\nstderr:\n{}",
            ran.describe(),
            ran.stderr
        );
        assert!(
            ran.stderr.contains(reason),
            "{label}: stderr lacks {reason:?}:\n{}",
            ran.stderr
        );
        // Wait (bounded) for smtpd to log the end of that session, so that
        // the next run's log is its own.
        let deadline = Instant::now() + Duration::from_secs(30);
        let (mut log, mut end) = self.new_log();
        while smtpd_disconnects(&log).is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            (log, end) = self.new_log();
        }
        self.log_seen = end;
        // smtpd: STARTTLS accepted, its handshake failed (`starttls=0/1`),
        // no mail.
        let totals = smtpd_totals(&smtpd_disconnects(&log));
        assert_eq!(
            (totals.get("starttls"), totals.get("mail")),
            (Some(&0), None),
            "{label}: smtpd saw a failed STARTTLS and no mail\n{log}"
        );
        assert!(
            files_in(self.dump.path())
                .iter()
                .all(|f| self.seen.contains(f)),
            "{label}: nothing reached the sink"
        );
        log
    }
}

/// The number of connections in smtp-source's `--summary` line
/// (`…: N sessions, M connections, …`).
fn summary_connections(stderr: &str) -> Option<u64> {
    stderr.lines().find_map(|line| {
        let before = &line[..line.find(" connections, ")?];
        before.rsplit(' ').next()?.parse().ok()
    })
}

/// smtpd's `disconnect from` lines, one per session that ended, but for
/// sessions without a command (`commands=0/0`: the harness's probes of
/// whether smtpd listens).
fn smtpd_disconnects(log: &str) -> Vec<String> {
    log.lines()
        .filter(|l| {
            l.contains("/smtpd[")
                && l.contains(" disconnect from ")
                && !l.ends_with(" commands=0/0")
        })
        .map(str::to_owned)
        .collect()
}

/// The body the source sends for these arguments, as the sink dumps it.
fn expected_body(source_args: &[&str]) -> Vec<u8> {
    match source_args.iter().position(|&a| a == "-l") {
        Some(i) => expected_l_body(source_args[i + 1].parse().expect("-l length")),
        None => DEFAULT_BODY.to_vec(),
    }
}

/// Sums the `cmd=N` (or `cmd=N/M`: N accepted of M) fields of smtpd's
/// `disconnect from` lines.
fn smtpd_totals(disconnects: &[String]) -> BTreeMap<String, u64> {
    let mut totals = BTreeMap::new();
    for line in disconnects {
        let Some(at) = line.find(" disconnect from ") else {
            continue;
        };
        for field in line[at..].split_whitespace() {
            let Some((cmd, count)) = field.split_once('=') else {
                continue;
            };
            let ok = count.split('/').next().unwrap_or("");
            if let Ok(n) = ok.parse::<u64>() {
                *totals.entry(cmd.to_owned()).or_insert(0) += n;
            }
        }
    }
    totals
}

// ---------------------------------------------------------------- Postfix

/// Where Postfix's commands are.
struct Tools {
    postfix: PathBuf,
    postqueue: PathBuf,
}

/// Finds a command on PATH or in the usual sbin directories (which a
/// non-login PATH often lacks).
fn find_tool(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from));
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// Postfix's commands, when Postfix can run here (installed, and we are
/// root). Otherwise fails under CI and returns None after a notice.
fn require_postfix() -> Option<Tools> {
    let tools = find_tool("postfix")
        .zip(find_tool("postqueue"))
        .map(|(postfix, postqueue)| Tools { postfix, postqueue });
    let problem = match tools {
        Some(tools) if is_root() => return Some(tools),
        Some(_) => "starting Postfix needs root",
        None => "Postfix (postfix, postqueue) is not installed",
    };
    if std::env::var_os("CI").is_some() {
        panic!("{problem}: the MTA interop tests require it in CI (apt-get install postfix; run as root)");
    }
    eprintln!("skipping: {problem}");
    None
}

/// Debian's self-signed certificate and its key (package ssl-cert): fixed
/// system paths.
const SNAKEOIL_CERT: &str = "/etc/ssl/certs/ssl-cert-snakeoil.pem";
const SNAKEOIL_KEY: &str = "/etc/ssl/private/ssl-cert-snakeoil.key";

/// What the TLS tests give Postfix and check the source against.
#[derive(Clone)]
struct TlsSetup {
    /// The host name the snakeoil certificate was made for (its CN: the
    /// machine's name when ssl-cert was installed), read with openssl.
    cert_name: String,
}

/// The snakeoil certificate and the name it was made for, when they are
/// here. Otherwise fails under CI and returns None after a notice.
fn require_tls() -> Option<TlsSetup> {
    let problem = if !Path::new(SNAKEOIL_CERT).is_file() || !Path::new(SNAKEOIL_KEY).is_file() {
        "the snakeoil certificate is not installed".to_owned()
    } else if let Some(openssl) = find_tool("openssl") {
        let out = Command::new(openssl)
            .args(["x509", "-noout", "-subject", "-nameopt", "RFC2253", "-in"])
            .arg(SNAKEOIL_CERT)
            .stdin(Stdio::null())
            .output()
            .expect("run openssl");
        let subject = String::from_utf8_lossy(&out.stdout).into_owned();
        // subject=CN=host (RFC 2253: the most specific name first).
        let cn = subject
            .trim()
            .trim_start_matches("subject=")
            .split(',')
            .find_map(|rdn| rdn.trim().strip_prefix("CN="));
        match cn {
            Some(name) if out.status.success() && !name.is_empty() => {
                return Some(TlsSetup {
                    cert_name: name.to_owned(),
                })
            }
            _ => panic!(
                "openssl x509 -subject {SNAKEOIL_CERT}: no CN in {subject:?}\n{}",
                String::from_utf8_lossy(&out.stderr)
            ),
        }
    } else {
        "openssl is not installed".to_owned()
    };
    if std::env::var_os("CI").is_some() {
        panic!("{problem}: the MTA TLS tests require it in CI (apt-get install ssl-cert openssl)");
    }
    eprintln!("skipping: {problem}");
    None
}

/// A private Postfix instance relaying everything to one loopback port.
/// Dropping it stops it (`postfix -c DIR stop`) and removes its files; a
/// test that panics prints the tail of its log first.
struct Mta {
    tools: Tools,
    dir: tempfile::TempDir,
    conf: PathBuf,
    /// smtpd: plain SMTP, with STARTTLS when TLS is set up.
    smtpd_port: u16,
    /// smtpd in wrapper mode (TLS from the first byte), when TLS is set up.
    smtps_port: Option<u16>,
}

impl Mta {
    fn start(tools: Tools, relay_port: u16, tls: Option<&TlsSetup>) -> Mta {
        let dir = tempfile::Builder::new()
            .prefix("mta-test.")
            .tempdir()
            .expect("temporary directory");
        // Postfix's daemons run as the postfix user and must reach the queue.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let root = dir
            .path()
            .to_str()
            .expect("UTF-8 temporary path")
            .to_owned();
        assert!(
            !root.contains(|c: char| c.is_whitespace() || c == ',' || c == '$'),
            "temporary path unusable in main.cf: {root}"
        );
        let conf = dir.path().join("conf");
        let queue = dir.path().join("queue");
        for d in [&conf, &queue, &dir.path().join("scratch")] {
            fs::create_dir(d).unwrap();
            fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
        }
        // data_directory is left for `postfix start` to create: it must be
        // owned by the postfix user.
        let main_cf = format!(
            "\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
syslog_name = postfix-mta-test
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
myhostname = {MTA_HOSTNAME}
mydestination =
alias_maps =
alias_database =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:{relay_port}
smtp_tls_security_level = none
in_flow_delay = 0
default_process_limit = 200
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtp_destination_concurrency_limit = 50
smtp_connection_cache_on_demand = yes
queue_run_delay = 2s
minimal_backoff_time = 2s
maximal_backoff_time = 4s
"
        );
        // STARTTLS offered, not required. Log level 2: a summary line per
        // handshake, and the session cache and ticket events.
        let main_cf = match tls {
            None => format!("{main_cf}smtpd_tls_security_level = none\n"),
            Some(_) => format!(
                "\
{main_cf}\
smtpd_tls_security_level = may
smtpd_tls_cert_file = {SNAKEOIL_CERT}
smtpd_tls_key_file = {SNAKEOIL_KEY}
smtpd_tls_loglevel = 2
"
            ),
        };
        fs::write(conf.join("main.cf"), main_cf).unwrap();

        let mta = Mta {
            tools,
            conf,
            smtpd_port: free_port(),
            smtps_port: tls.map(|_| free_port()),
            dir,
        };
        // No chroot: a private queue directory has no copies of /etc.
        let master_cf = format!(
            "\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n - n 60    1 pickup
cleanup   unix  n - n -     0 cleanup
qmgr      unix  n - n 300   1 qmgr
rewrite   unix  - - n -     - trivial-rewrite
bounce    unix  - - n -     0 bounce
defer     unix  - - n -     0 bounce
trace     unix  - - n -     0 bounce
verify    unix  - - n -     1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -     - proxymap
smtp      unix  - - n -     - smtp
relay     unix  - - n -     - smtp
showq     unix  n - n -     - showq
error     unix  - - n -     - error
retry     unix  - - n -     - error
discard   unix  - - n -     - discard
anvil     unix  - - n -     1 anvil
scache    unix  - - n -     1 scache
postlog   unix-dgram n - n - 1 postlogd
",
            port = mta.smtpd_port
        );
        // With TLS: a wrapper-mode smtpd, and tlsmgr (smtpd's TLS session
        // cache, ticket keys and PRNG seed).
        let master_cf = match mta.smtps_port {
            None => master_cf,
            Some(port) => format!(
                "\
{master_cf}\
127.0.0.1:{port} inet n - n - - smtpd
  -o smtpd_tls_wrappermode=yes
  -o smtpd_tls_security_level=encrypt
tlsmgr    unix  - - n 1000? 1 tlsmgr
"
            ),
        };
        fs::write(mta.conf.join("master.cf"), master_cf).unwrap();

        // From here on the guard stops whatever started, even on a panic.
        let ran = run_bounded(
            Command::new(&mta.tools.postfix)
                .arg("-c")
                .arg(&mta.conf)
                .arg("start"),
            ADMIN_CAP,
            &mta.scratch(),
        );
        assert!(
            ran.status.is_some_and(|s| s.success()),
            "postfix start: {}\n{}{}",
            ran.describe(),
            ran.stdout,
            ran.stderr
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        for port in [Some(mta.smtpd_port), mta.smtps_port].into_iter().flatten() {
            while TcpStream::connect(("127.0.0.1", port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "Postfix's smtpd did not listen on {port}"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        mta
    }

    fn scratch(&self) -> PathBuf {
        self.dir.path().join("scratch")
    }

    /// `postqueue -j`: one JSON line per queued message, empty when the
    /// queue is.
    fn queue(&self) -> String {
        let ran = run_bounded(
            Command::new(&self.tools.postqueue)
                .arg("-c")
                .arg(&self.conf)
                .arg("-j"),
            ADMIN_CAP,
            &self.scratch(),
        );
        assert!(
            ran.status.is_some_and(|s| s.success()),
            "postqueue -j: {}\n{}",
            ran.describe(),
            ran.stderr
        );
        ran.stdout
    }

    fn log_bytes(&self) -> Vec<u8> {
        fs::read(self.dir.path().join("maillog")).unwrap_or_default()
    }

    fn log(&self) -> String {
        String::from_utf8_lossy(&self.log_bytes()).into_owned()
    }
}

impl Drop for Mta {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(60)..];
            eprintln!(
                "---- Postfix log (last {} lines)\n{}\n----",
                tail.len(),
                tail.join("\n")
            );
        }
        // Stops this instance only; after 5 s it kills the master's process
        // group itself. It fails harmlessly when the instance never started.
        let ran = run_bounded(
            Command::new(&self.tools.postfix)
                .arg("-c")
                .arg(&self.conf)
                .arg("stop"),
            ADMIN_CAP,
            &self.scratch(),
        );
        if !ran.status.is_some_and(|s| s.success()) && !std::thread::panicking() {
            eprintln!("postfix stop: {}\n{}", ran.describe(), ran.stderr);
        }
    }
}

// ---------------------------------------------------------------- processes

/// A finished (or, at the cap, killed) command and its output.
struct Ran {
    /// None when it was killed at the cap.
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Ran {
    fn describe(&self) -> String {
        match self.status {
            Some(s) => format!("{s} after {:.1?}", self.elapsed),
            None => format!("killed after {:.1?} (no exit)", self.elapsed),
        }
    }
}

/// Runs a command with its output in files (a daemon it starts may hold
/// pipes open forever) and kills it at the cap.
fn run_bounded(cmd: &mut Command, cap: Duration, scratch: &Path) -> Ran {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let out_path = scratch.join(format!("{n}.out"));
    let err_path = scratch.join(format!("{n}.err"));
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).unwrap())
        .stderr(File::create(&err_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if started.elapsed() >= cap {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |p: &Path| String::from_utf8_lossy(&fs::read(p).unwrap_or_default()).into_owned();
    Ran {
        status,
        stdout: read(&out_path),
        stderr: read(&err_path),
        elapsed: started.elapsed(),
    }
}
