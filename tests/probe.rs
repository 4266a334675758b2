//! smtp-probe end to end (docs/smtp-probe.md): against our smtp-sink,
//! Postfix's smtp-sink, closed ports, a server that never greets, names
//! that do not resolve and a fake DNS server for MX lookups. What each
//! attempt line, summary block, JSON report (docs/probe-report.schema.json)
//! and exit status says, and what the sink receives.
//!
//! Everything runs on loopback (`no-such-host.invalid` is refused by the
//! system's resolver, RFC 6761). Every process is a [`Killed`] (stopped on drop) and
//! every wait is bounded.

use std::{
    fs,
    io::{Read as _, Seek as _, SeekFrom},
    net::{Ipv4Addr, SocketAddr, TcpListener},
    path::Path,
    process::{Command, Stdio},
    thread::{self, JoinHandle},
    time::{Duration, Instant},
};

use serde_json::Value;

mod support;
use support::{
    assert_matches_schema, bin,
    dns::{DnsServer, Record},
    dump_dir, free_port, have, is_root, start_postfix_sink, start_sink, wait_dumps, Killed,
    POSTFIX_SINK,
};

const SCHEMA: &str = "docs/probe-report.schema.json";
const RCPT: &str = "postmaster@example.test";

/// The longest any smtp-probe run of these tests may take before it is
/// killed and the test fails (the longest one needs about 3 s).
const RUN_LIMIT: Duration = Duration::from_secs(60);

/// A finished smtp-probe run.
#[derive(Debug)]
struct Probe {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    /// From the spawn to the exit (seen within 10 ms).
    elapsed: Duration,
}

impl Probe {
    /// The attempt lines (`<server> #NNNNNN ...`) of `text`.
    fn lines(text: &str) -> Vec<&str> {
        text.lines().filter(|l| l.contains(" #0")).collect()
    }

    /// The report of `--json -`, checked against the schema.
    fn json(&self) -> Value {
        assert_matches_schema(SCHEMA, &self.stdout);
        self.report()
    }

    /// The report of `--json -`, parsed only (each schema check costs a
    /// Python start; the tests check each kind of report once).
    fn report(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {self:?}"))
    }
}

/// smtp-probe running in the background, its output going to files (so a
/// large output never blocks it); killed when dropped.
struct Running {
    child: Killed,
    args: Vec<String>,
    out: fs::File,
    err: fs::File,
    started: Instant,
}

impl Running {
    fn start(args: &[&str]) -> Self {
        let out = tempfile::tempfile().unwrap();
        let err = tempfile::tempfile().unwrap();
        let started = Instant::now();
        let child = Command::new(bin("smtp-probe"))
            .args(args)
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(err.try_clone().unwrap())
            .spawn()
            .expect("start smtp-probe");
        Self {
            child: Killed(child),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            out,
            err,
            started,
        }
    }

    /// Waits (at most 30 s) until the program's stderr holds `needle`.
    /// Reads with pread: the child writes through a descriptor that
    /// shares this one's file offset, which must not move.
    fn wait_stderr(&self, needle: &str) {
        use std::os::unix::fs::FileExt as _;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let mut buf = vec![0u8; 64 * 1024];
            let n = self.err.read_at(&mut buf, 0).unwrap();
            if String::from_utf8_lossy(&buf[..n]).contains(needle) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no `{needle}` from smtp-probe {:?}",
                self.args
            );
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits (at most [`RUN_LIMIT`]) for the exit and reads the output.
    fn finish(mut self) -> Probe {
        let status = loop {
            if let Some(status) = self.child.0.try_wait().unwrap() {
                break status;
            }
            assert!(
                self.started.elapsed() < RUN_LIMIT,
                "smtp-probe {:?} still runs after {RUN_LIMIT:?}",
                self.args
            );
            thread::sleep(Duration::from_millis(10));
        };
        let elapsed = self.started.elapsed();
        let read = |f: &mut fs::File| {
            let mut s = String::new();
            f.seek(SeekFrom::Start(0)).unwrap();
            f.read_to_string(&mut s).unwrap();
            s
        };
        let run = Probe {
            code: status.code(),
            stdout: read(&mut self.out),
            stderr: read(&mut self.err),
            elapsed,
        };
        eprintln!("smtp-probe {:?}:\n{run:#?}", self.args);
        run
    }
}

fn probe(args: &[&str]) -> Probe {
    Running::start(args).finish()
}

/// The summary block's first line for a server.
fn summary(server: &str, sent: u64, accepted: u64, network: u64, smtp: u64) -> String {
    format!(
        "--- {server}: {sent} sent, {accepted} accepted, {} failed ({network} network, {smtp} SMTP)",
        network + smtp
    )
}

/// Asserts a server's counts in the JSON report and its summary line.
fn assert_counts(
    run: &Probe,
    human: &str,
    report: &Value,
    server: &str,
    counts: (u64, u64, u64, u64),
) {
    let (sent, accepted, network, smtp) = counts;
    let entry = report["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["server"] == server)
        .unwrap_or_else(|| panic!("{server} in {report}"));
    assert_eq!(entry["sent"], sent, "{server}: {run:?}");
    assert_eq!(entry["accepted"], accepted, "{server}: {run:?}");
    assert_eq!(entry["failed_network"], network, "{server}: {run:?}");
    assert_eq!(entry["failed_smtp"], smtp, "{server}: {run:?}");
    let line = summary(server, sent, accepted, network, smtp);
    assert!(human.lines().any(|l| l == line), "no `{line}` in:\n{human}");
}

/// Our smtp-sink on the unix socket `path`, accepting when this returns;
/// killed on drop.
fn start_unix_sink(path: &Path) -> Killed {
    let mut cmd = Command::new(bin("smtp-sink"));
    if is_root() {
        cmd.args(["-u", "nobody"]);
    }
    cmd.arg(format!("unix:{}", path.display())).arg("128");
    cmd.stdout(Stdio::null()).stderr(Stdio::inherit());
    let sink = Killed(cmd.spawn().expect("start smtp-sink"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::os::unix::net::UnixStream::connect(path).is_err() {
        assert!(
            Instant::now() < deadline,
            "smtp-sink on {} not ready",
            path.display()
        );
        thread::sleep(Duration::from_millis(20));
    }
    sink
}

/// Seconds since midnight of an RFC 3339 UTC time of the report
/// (`2026-11-30T19:11:53.080Z`).
fn day_seconds(time: &Value) -> f64 {
    let text = time.as_str().expect("a time string");
    let clock = text
        .split_once('T')
        .and_then(|(_, c)| c.strip_suffix('Z'))
        .unwrap_or_else(|| panic!("not a UTC time: {text}"));
    let parts: Vec<f64> = clock.split(':').map(|p| p.parse().unwrap()).collect();
    parts[0] * 3600.0 + parts[1] * 60.0 + parts[2]
}

/// 1. A sink that accepts: exit 0, the line (with `-v` each phase's time,
///    smtpping's names, in order), the summary block with its table, and
///    a JSON file that matches the schema.
#[test]
fn success_against_our_sink() {
    let port = free_port();
    let _sink = start_sink(&[], port);
    let dir = tempfile::tempdir().unwrap();
    let json_path = dir.path().join("report.json");
    let server = format!("127.0.0.1:{port}");
    let run = probe(&[
        "-v",
        "-r",
        RCPT,
        "-s",
        "probe@client.test",
        "--json",
        json_path.to_str().unwrap(),
        &server,
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let lines = Probe::lines(&run.stdout);
    assert_eq!(lines.len(), 1, "{run:?}");
    let prefix = format!("{server} #000001 accepted [");
    let times = lines[0]
        .strip_prefix(&prefix)
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or_else(|| panic!("not `{prefix}...]`: {}", lines[0]));
    let names: Vec<&str> = times
        .split(", ")
        .map(|t| {
            let (name, value) = t.split_once('=').expect("name=value");
            let ms = value.strip_suffix(" ms").expect("in ms");
            assert!(ms.parse::<f64>().is_ok_and(|v| v >= 0.0), "{t}");
            name
        })
        .collect();
    assert_eq!(
        names,
        ["connect", "banner", "helo", "mailfrom", "rcptto", "data", "datasent", "quit"],
        "{}",
        lines[0]
    );
    assert!(
        run.stdout
            .contains("    phase (ms)       min       avg       max\n"),
        "{run:?}"
    );
    assert!(
        run.stdout.lines().any(|l| l.starts_with("    quit ")),
        "a quit row: {run:?}"
    );

    let text = fs::read_to_string(&json_path).expect("the --json file");
    assert_matches_schema(SCHEMA, &text);
    let report: Value = serde_json::from_str(&text).unwrap();
    assert_counts(&run, &run.stdout, &report, &server, (1, 1, 0, 0));
    assert_eq!(report["exit_code"], 0);
    assert_eq!(report["recipient"], RCPT);
    assert_eq!(report["sender"], "probe@client.test");
    let attempts = report["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{report}");
    let a = &attempts[0];
    assert_eq!(a["outcome"], "accepted", "{a}");
    assert_eq!(a["serial"], 1, "{a}");
    assert_eq!(a["server"], server.as_str(), "{a}");
    assert!(a["class"].is_null() && a["phase"].is_null() && a["error"].is_null());
    for key in [
        "connect", "banner", "helo", "mail", "rcpt", "data", "datasent", "quit",
    ] {
        assert!(a["times_ms"][key].as_f64().is_some(), "times_ms.{key}: {a}");
    }
    // Nothing else goes to the JSON file's reader's stdout.
    assert!(!run.stdout.contains('{'), "{run:?}");
}

/// 2. Nobody listens: a network failure in the connect phase, exit 2.
#[test]
fn refused_port_is_a_network_failure_in_connect() {
    let server = format!("127.0.0.1:{}", free_port());
    let run = probe(&["-r", RCPT, "--json", "-", &server]);
    assert_eq!(run.code, Some(2), "{run:?}");
    // `--json -`: the lines a person reads go to stderr.
    assert_eq!(
        Probe::lines(&run.stderr),
        [format!(
            "{server} #000001 failed (network, connect): connect: Connection refused"
        )],
        "{run:?}"
    );
    assert!(
        run.stderr.contains(&summary(&server, 1, 0, 1, 0)),
        "{run:?}"
    );
    let report = run.json();
    let a = &report["attempts"][0];
    assert_eq!(a["outcome"], "failed", "{a}");
    assert_eq!(a["class"], "network", "{a}");
    assert_eq!(a["phase"], "connect", "{a}");
    assert!(a["reply"].is_null(), "{a}");
    assert_eq!(report["exit_code"], 2);
}

/// A loopback TCP server that accepts one connection and never writes:
/// returns its address and a thread that answers how long the client
/// kept the connection open (accept to EOF or reset), or None when it
/// was still open after 20 s.
fn silent_server() -> (SocketAddr, JoinHandle<Option<Duration>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    listener.set_nonblocking(true).unwrap();
    let holder = thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut stream = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(_) if Instant::now() < deadline => thread::sleep(Duration::from_millis(5)),
                Err(e) => panic!("nobody connected: {e}"),
            }
        };
        let accepted = Instant::now();
        stream.set_nonblocking(false).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let mut buf = [0u8; 512];
        loop {
            match stream.read(&mut buf) {
                Ok(0) => return Some(accepted.elapsed()),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return None
                }
                Err(_) => return Some(accepted.elapsed()),
            }
        }
    });
    (addr, holder)
}

/// 3. A server that accepts and never greets: `-t 2` ends the session
///    after 2 s as a network failure in the banner phase, a timeout.
#[test]
fn silent_server_times_out_in_banner_after_t() {
    let (addr, holder) = silent_server();
    let server = addr.to_string();
    let run = probe(&["-t", "2", "-r", RCPT, "--json", "-", &server]);
    assert_eq!(run.code, Some(2), "{run:?}");
    let lines = Probe::lines(&run.stderr);
    assert_eq!(lines.len(), 1, "{run:?}");
    let prefix = format!("{server} #000001 failed (network, banner): ");
    assert!(lines[0].starts_with(&prefix), "{run:?}");
    assert!(lines[0].contains("timeout"), "{run:?}");
    let report = run.json();
    let a = &report["attempts"][0];
    assert_eq!(a["class"], "network", "{a}");
    assert_eq!(a["phase"], "banner", "{a}");
    assert!(a["error"].as_str().unwrap().contains("timeout"), "{a}");

    // 2 s ± 10%, as the program measures its own run (ms precision, no
    // process start in it).
    let own = day_seconds(&report["ended"]) - day_seconds(&report["started"]);
    let own = if own < 0.0 { own + 86_400.0 } else { own };
    assert!((1.8..=2.2).contains(&own), "the run took {own} s: {report}");
    // From the outside: never less than the timeout; the upper bound
    // allows 0.2 s over the 10% for starting a 100 MB debug binary and its
    // runtime on a loaded machine, and stays well below 2 × -t or any
    // per-read timer a session-wide limit might have fallen back to.
    assert!(
        run.elapsed >= Duration::from_millis(1800),
        "{:?}",
        run.elapsed
    );
    assert!(run.elapsed < Duration::from_secs(3), "{:?}", run.elapsed);
    // The probe closed the connection itself (before the holder's 20 s).
    let held = holder.join().expect("holder thread");
    assert!(held.is_some(), "the probe left the connection open");
}

/// One RCPT rejection case: the sink, the reply it gives.
fn assert_rcpt_rejected(server: &str, code: u64, enhanced: &str, text: &str) {
    let run = probe(&["-r", RCPT, "--json", "-", server]);
    assert_eq!(run.code, Some(3), "{run:?}");
    let lines = Probe::lines(&run.stderr);
    assert_eq!(
        lines,
        [format!(
            "{server} #000001 failed (SMTP, rcpt): recipient rejected: {code} {enhanced} {text}"
        )],
        "{run:?}"
    );
    assert!(run.stderr.contains(&summary(server, 1, 0, 0, 1)), "{run:?}");
    let report = run.json();
    let a = &report["attempts"][0];
    assert_eq!(a["outcome"], "failed", "{a}");
    assert_eq!(a["class"], "smtp", "{a}");
    assert_eq!(a["phase"], "rcpt", "{a}");
    assert_eq!(a["reply"]["code"], code, "{a}");
    assert_eq!(a["reply"]["enhanced"], enhanced, "{a}");
    assert!(a["reply"]["text"].as_str().unwrap().ends_with(text), "{a}");
    assert!(a["error"].as_str().unwrap().contains(text), "{a}");
    assert_eq!(report["exit_code"], 3);
}

/// 4. RCPT refused (4xx) by our sink (`-r rcpt` with its own soft reply)
///    and by Postfix's (`-r rcpt`, and `-Q rcpt`'s 421): SMTP failures in
///    the rcpt phase, exit 3, the server's reply on the line and in the
///    JSON.
#[test]
fn rcpt_rejections_are_smtp_failures() {
    let port = free_port();
    let _ours = start_sink(&["-r", "rcpt", "-b", "450 4.7.1 our sink says later"], port);
    assert_rcpt_rejected(
        &format!("127.0.0.1:{port}"),
        450,
        "4.7.1",
        "our sink says later",
    );
    if !have(POSTFIX_SINK) {
        return;
    }
    let port = free_port();
    let _postfix = start_postfix_sink(&["-r", "rcpt", "-b", "452 4.2.2 postfix sink full"], port);
    assert_rcpt_rejected(
        &format!("127.0.0.1:{port}"),
        452,
        "4.2.2",
        "postfix sink full",
    );
    let port = free_port();
    let _closing = start_postfix_sink(&["-Q", "rcpt"], port);
    assert_rcpt_rejected(
        &format!("127.0.0.1:{port}"),
        421,
        "4.0.0",
        "Server closing connection",
    );
}

/// A server that drops the connection after RCPT without a reply (our
/// sink's `-q rcpt`) gave no SMTP answer: a network failure, in rcpt.
#[test]
fn dropped_after_rcpt_is_a_network_failure() {
    let port = free_port();
    let _sink = start_sink(&["-q", "rcpt"], port);
    let server = format!("127.0.0.1:{port}");
    let run = probe(&["-r", RCPT, "--json", "-", &server]);
    assert_eq!(run.code, Some(2), "{run:?}");
    let a = &run.report()["attempts"][0];
    assert_eq!(a["class"], "network", "{a}");
    assert_eq!(a["phase"], "rcpt", "{a}");
    assert!(a["reply"].is_null(), "{a}");
}

/// 5. A name that does not resolve: a network failure in resolve, exit 2.
#[test]
fn unresolvable_name_fails_in_resolve() {
    let run = probe(&["-t", "5", "-r", RCPT, "--json", "-", "no-such-host.invalid"]);
    assert_eq!(run.code, Some(2), "{run:?}");
    let lines = Probe::lines(&run.stderr);
    assert_eq!(lines.len(), 1, "{run:?}");
    assert!(
        lines[0].starts_with("no-such-host.invalid:25 #000001 failed (network, resolve): "),
        "{run:?}"
    );
    let a = &run.json()["attempts"][0];
    assert_eq!(a["class"], "network", "{a}");
    assert_eq!(a["phase"], "resolve", "{a}");
    assert_eq!(a["server"], "no-such-host.invalid:25", "{a}");
}

/// 6. Three servers, two rounds: one accepts, one refuses connections,
///    one rejects RCPT. Exit 4; serials run over the servers in order;
///    each server's counts in its summary line and in the JSON.
#[test]
fn mixed_outcomes_over_several_servers() {
    let (ok_port, rej_port) = (free_port(), free_port());
    let _ok = start_sink(&[], ok_port);
    let _rej = start_sink(&["-r", "rcpt"], rej_port);
    let ok = format!("127.0.0.1:{ok_port}");
    let refused = format!("127.0.0.1:{}", free_port());
    let rejecting = format!("127.0.0.1:{rej_port}");
    let run = probe(&[
        "-c", "2", "-i", "0.1", "-r", RCPT, "--json", "-", &ok, &refused, &rejecting,
    ]);
    assert_eq!(run.code, Some(4), "{run:?}");
    let lines = Probe::lines(&run.stderr);
    let want = [
        (&ok, "accepted"),
        (&refused, "failed (network, connect)"),
        (&rejecting, "failed (SMTP, rcpt)"),
    ];
    assert_eq!(lines.len(), 6, "{run:?}");
    for (i, line) in lines.iter().enumerate() {
        let (server, outcome) = want[i % 3];
        let prefix = format!("{server} #{:06} {outcome}", i + 1);
        assert!(
            line.starts_with(&prefix),
            "line {i}: `{line}`, not `{prefix}`"
        );
    }
    let report = run.json();
    assert_eq!(report["exit_code"], 4);
    assert_eq!(report["attempts"].as_array().unwrap().len(), 6);
    let servers: Vec<&str> = report["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["server"].as_str().unwrap())
        .collect();
    assert_eq!(servers, [&ok, &refused, &rejecting]);
    assert_counts(&run, &run.stderr, &report, &ok, (2, 2, 0, 0));
    assert_counts(&run, &run.stderr, &report, &refused, (2, 0, 2, 0));
    assert_counts(&run, &run.stderr, &report, &rejecting, (2, 0, 0, 2));
}

/// 7a. `-u`: a server that starts listening about 2 s after the probe is
///     retried every 0.5 s until it accepts, exactly once; exit 0.
#[test]
fn until_success_waits_for_a_late_server() {
    let port = free_port();
    let server = format!("127.0.0.1:{port}");
    let running = Running::start(&[
        "-u",
        "-i",
        "0.5",
        "-t",
        "2",
        "--max-attempts",
        "40",
        "-r",
        RCPT,
        "--json",
        "-",
        &server,
    ]);
    // The sink comes up about 2 s after the start, and in any case after
    // a first attempt has failed (however slowly the probe started).
    running.wait_stderr(&format!("{server} #000001 failed (network, connect)"));
    thread::sleep(Duration::from_secs(2).saturating_sub(running.started.elapsed()));
    let _sink = start_sink(&[], port);
    let run = running.finish();
    assert_eq!(run.code, Some(0), "{run:?}");
    let report = run.json();
    assert_eq!(report["until_success"], true);
    let attempts = report["attempts"].as_array().unwrap();
    let (last, earlier) = attempts.split_last().unwrap();
    assert!(!earlier.is_empty(), "{report}");
    assert_eq!(last["outcome"], "accepted", "{last}");
    for a in earlier {
        assert_eq!(a["outcome"], "failed", "{a}");
        assert_eq!(a["class"], "network", "{a}");
        assert_eq!(a["phase"], "connect", "{a}");
    }
    let n = attempts.len() as u64;
    assert_counts(&run, &run.stderr, &report, &server, (n, 1, n - 1, 0));
    assert_eq!(report["exit_code"], 0);
}

/// 7b. `-u --max-attempts 3` against a refused port: exactly 3 attempts,
///     exit 2.
#[test]
fn until_success_gives_up_after_max_attempts() {
    let server = format!("127.0.0.1:{}", free_port());
    let run = probe(&[
        "-u",
        "--max-attempts",
        "3",
        "-i",
        "0.1",
        "-r",
        RCPT,
        "--json",
        "-",
        &server,
    ]);
    assert_eq!(run.code, Some(2), "{run:?}");
    let lines = Probe::lines(&run.stderr);
    assert_eq!(lines.len(), 3, "{run:?}");
    for (i, line) in lines.iter().enumerate() {
        let prefix = format!("{server} #{:06} failed (network, connect)", i + 1);
        assert!(line.starts_with(&prefix), "{line}");
    }
    let report = run.report();
    assert_counts(&run, &run.stderr, &report, &server, (3, 0, 3, 0));
}

/// 8. What the sink dumps: the serial zero-padded in the subject (with
///    the server) and on the body's first line; `-k 20` pads the body to
///    within 5% of 20 KiB.
#[test]
fn dumps_carry_the_serial_and_the_padding() {
    let dir = dump_dir();
    let template = format!("{}/m.", dir.path().display());
    let port = free_port();
    let _sink = start_sink(&["-d", &template], port);
    let server = format!("127.0.0.1:{port}");
    let run = probe(&["-c", "2", "-i", "0.1", "-k", "20", "-r", RCPT, &server]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let dumps = wait_dumps(dir.path(), 2);
    assert_eq!(dumps.len(), 2, "{dumps:?}");
    let mut serials = Vec::new();
    for path in &dumps {
        let data = fs::read_to_string(path).unwrap();
        // The sink's record header and the message's headers end at the
        // first empty line; the body follows, and the record ends with an
        // empty line of its own.
        let (head, rest) = data.split_once("\n\n").expect("a header block");
        let body = rest.strip_suffix('\n').expect("the record's end");
        let subject = head
            .lines()
            .find_map(|l| l.strip_prefix("Subject: "))
            .unwrap_or_else(|| panic!("no Subject in {head}"));
        let serial = subject
            .strip_prefix("SMTPTEST ")
            .and_then(|s| s.get(..6))
            .unwrap_or_else(|| panic!("Subject: {subject}"));
        assert!(
            serial.bytes().all(|b| b.is_ascii_digit()),
            "Subject: {subject}"
        );
        assert!(
            subject.ends_with(&format!(" {server}")),
            "Subject: {subject}"
        );
        assert!(
            body.starts_with(&format!("SMTPTEST {serial}: ")),
            "body of {}: {}",
            path.display(),
            &body[..body.len().min(200)]
        );
        // As it travelled: the dump has LF where the wire had CRLF.
        let sent = body.len() + body.matches('\n').count();
        let want = 20 * 1024;
        assert!(
            sent.abs_diff(want) * 20 <= want,
            "{}: a body of {sent} bytes for -k 20",
            path.display()
        );
        serials.push(serial.to_owned());
    }
    serials.sort();
    assert_eq!(serials, ["000001", "000002"]);
}

/// Runs smtp-probe with no server: the MX hosts of `RCPT`'s domain, as
/// `dns` serves them, on `port`.
fn probe_mx(dns: &DnsServer, port: u16) -> Probe {
    let dns_addr = dns.addr.to_string();
    let port_text = port.to_string();
    probe(&[
        "-i",
        "0.1",
        "-p",
        &port_text,
        "--dns-server",
        &dns_addr,
        "-r",
        RCPT,
        "--json",
        "-",
    ])
}

/// 9a. No server given: the recipient domain's MX host, `localhost`, on
///     `-p`'s port. Our sink listens on 127.0.0.1, localhost's address in
///     /etc/hosts (and the first, or only, one getaddrinfo gives).
#[test]
fn mx_host_localhost_is_probed() {
    let port = free_port();
    let _sink = start_sink(&[], port);
    let dns = DnsServer::start(&[("example.test", Record::Mx(10, "localhost"))]);
    let run = probe_mx(&dns, port);
    let server = format!("localhost:{port}");
    assert_eq!(
        Probe::lines(&run.stderr),
        [format!("{server} #000001 accepted")],
        "{run:?}"
    );
    assert_eq!(run.code, Some(0), "{run:?}");
    let report = run.report();
    assert_counts(&run, &run.stderr, &report, &server, (1, 1, 0, 0));
    assert_eq!(report["servers"].as_array().unwrap().len(), 1);
    assert!(dns.queries() >= 1, "the fake DNS server was not asked");
}

/// 9b. Two MX hosts, the worse one listed first, their addresses from the
///     same DNS server (`--dns-server` resolves every host name): both
///     are probed, the best preference first. The second (127.0.0.2,
///     loopback on Linux, where nothing listens) refuses: exit 2.
#[test]
fn mx_hosts_are_probed_best_preference_first() {
    let port = free_port();
    let _sink = start_sink(&[], port);
    let dns = DnsServer::start(&[
        ("example.test", Record::Mx(20, "mx2.example.test")),
        ("example.test", Record::Mx(10, "mx1.example.test")),
        ("mx1.example.test", Record::A(Ipv4Addr::new(127, 0, 0, 1))),
        ("mx2.example.test", Record::A(Ipv4Addr::new(127, 0, 0, 2))),
    ]);
    let run = probe_mx(&dns, port);
    assert_eq!(run.code, Some(2), "{run:?}");
    let best = format!("mx1.example.test:{port}");
    let worst = format!("mx2.example.test:{port}");
    let lines = Probe::lines(&run.stderr);
    assert_eq!(lines.len(), 2, "{run:?}");
    assert_eq!(lines[0], format!("{best} #000001 accepted"), "{run:?}");
    assert!(
        lines[1].starts_with(&format!("{worst} #000002 failed (network, connect)")),
        "{run:?}"
    );
    let report = run.json();
    let servers: Vec<&str> = report["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["server"].as_str().unwrap())
        .collect();
    assert_eq!(servers, [&best, &worst]);
    assert_counts(&run, &run.stderr, &report, &best, (1, 1, 0, 0));
    assert_counts(&run, &run.stderr, &report, &worst, (1, 0, 1, 0));
}

/// 9c. A domain the DNS server does not know (NXDOMAIN), and one with a
///     null MX: exit 2 with a fatal line naming the domain, no attempt.
#[test]
fn mx_lookup_failures_are_fatal() {
    let dns = DnsServer::start(&[
        ("example.test", Record::Mx(10, "localhost")),
        ("nomail.test", Record::Mx(0, ".")),
    ]);
    let dns_addr = dns.addr.to_string();
    for (domain, says) in [
        ("nowhere.test", "not found"),
        ("nomail.test", "accepts no mail"),
    ] {
        let rcpt = format!("postmaster@{domain}");
        let run = probe(&["--dns-server", &dns_addr, "-r", &rcpt]);
        assert_eq!(run.code, Some(2), "{run:?}");
        let fatal = run
            .stderr
            .lines()
            .find(|l| l.contains(": fatal: "))
            .unwrap_or_else(|| panic!("no fatal line: {run:?}"));
        assert!(
            fatal.contains(domain) && fatal.contains(says),
            "{domain}: {fatal}"
        );
        assert!(Probe::lines(&run.stdout).is_empty(), "{run:?}");
    }
    assert!(dns.queries() >= 2, "the fake DNS server was not asked");
}

/// 10. `--transcript`: the conversation as telnet shows it, on stderr.
#[test]
fn transcript_shows_commands_and_replies() {
    let port = free_port();
    let _sink = start_sink(&[], port);
    let server = format!("127.0.0.1:{port}");
    let run = probe(&[
        "--transcript",
        "-s",
        "probe@client.test",
        "-r",
        RCPT,
        &server,
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        Probe::lines(&run.stdout),
        [format!("{server} #000001 accepted")],
        "{run:?}"
    );
    let transcript: Vec<&str> = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("-> ") || l.starts_with("<- ") || l.starts_with("== "))
        .collect();
    for want in [
        "-> MAIL FROM:<probe@client.test>",
        "<- 250 2.1.0 Ok",
        &format!("-> RCPT TO:<{RCPT}>"),
        "<- 250 2.1.5 Ok",
        "-> DATA",
        "-> QUIT",
        &format!("== connected to {server}"),
    ] {
        assert!(transcript.contains(&want), "no `{want}` in {transcript:#?}");
    }
    let mail = transcript
        .iter()
        .position(|l| l.starts_with("-> MAIL FROM:"))
        .unwrap();
    assert!(
        transcript[mail + 1].starts_with("<- 250"),
        "{transcript:#?}"
    );
    assert!(
        transcript.iter().any(|l| l.starts_with("-> <message, ")),
        "{transcript:#?}"
    );
    // The transcript stays off stdout.
    assert!(!run.stdout.contains("-> "), "{run:?}");
}

/// `-t` bounds the whole session, not each read: replies to HELO, MAIL
/// and RCPT each held back 1 s (no single wait near 2.5 s) fail as a
/// timeout at 2.5 s, in the phase the session was in (RCPT's reply is due
/// at 3 s).
#[test]
fn timeout_bounds_the_whole_session() {
    let port = free_port();
    let _sink = start_sink(&["-W", "helo:1", "-W", "mail:1", "-W", "rcpt:1"], port);
    let server = format!("127.0.0.1:{port}");
    let run = probe(&["-t", "2.5", "-r", RCPT, "--json", "-", &server]);
    assert_eq!(run.code, Some(2), "{run:?}");
    let a = &run.report()["attempts"][0];
    assert_eq!(a["class"], "network", "{a}");
    assert_eq!(a["phase"], "rcpt", "{a}");
    assert!(a["error"].as_str().unwrap().contains("timeout"), "{a}");
    assert!(
        run.elapsed >= Duration::from_millis(2500),
        "{:?}",
        run.elapsed
    );
    assert!(run.elapsed < Duration::from_secs(4), "{:?}", run.elapsed);
}

/// A `unix:/path` server.
#[test]
fn unix_socket_server() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sink.sock");
    let server = format!("unix:{}", path.display());
    let _sink = start_unix_sink(&path);
    let run = probe(&["-r", RCPT, &server]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(
        Probe::lines(&run.stdout),
        [format!("{server} #000001 accepted")],
        "{run:?}"
    );
    assert!(
        run.stdout.contains(&summary(&server, 1, 1, 0, 0)),
        "{run:?}"
    );
}

/// A message the server took is accepted, even when QUIT then times out:
/// `-u` does not send it again.
#[test]
fn accepted_before_a_slow_quit_is_accepted() {
    let port = free_port();
    let _sink = start_sink(&["-W", "quit:3"], port);
    let server = format!("127.0.0.1:{port}");
    let run = probe(&[
        "-q",
        "-u",
        "--max-attempts",
        "3",
        "-i",
        "0.1",
        "-t",
        "1",
        "-r",
        RCPT,
        &server,
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(Probe::lines(&run.stdout).len(), 1, "{run:?}");
    assert!(run.stdout.contains("#000001 accepted"), "{run:?}");
}
