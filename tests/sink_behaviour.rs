//! smtp-sink's options that make it behave like real servers, end to end
//! on loopback: `--tarpit`, `--fault` with `--seed`, `--max-message-size`,
//! `--max-rate` (under our smtp-source) and `--max-rate-action connect`.
//!
//! Nothing here depends on how fast the machine is: times are lower
//! bounds (the tarpit), or bounds computed from the run's own measured
//! time window (the rate); other outcomes are exact.

use std::{
    fs,
    io::{BufRead, BufReader, Write},
    net::TcpStream,
    path::PathBuf,
    process::Command,
    time::{Duration, Instant},
};

use serde_json::Value;

mod support;
use support::{assert_matches_schema, bin, dump_dir, free_port, start_sink, Killed};

const SCHEMA: &str = "docs/sink-stats.schema.json";
const DEADLINE: Duration = Duration::from_secs(30);

/// A raw SMTP client, one reply at a time.
struct Client {
    reader: BufReader<TcpStream>,
    writer: TcpStream,
}

impl Client {
    fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(DEADLINE)).expect("timeout");
        Client {
            reader: BufReader::new(stream.try_clone().expect("clone")),
            writer: stream,
        }
    }

    fn send(&mut self, text: &str) {
        self.writer.write_all(text.as_bytes()).expect("send");
    }

    /// One whole reply (every line of a multiline one), or "" when the
    /// server closed the connection first.
    fn reply(&mut self) -> String {
        let mut reply = String::new();
        loop {
            let mut line = String::new();
            let n = self.reader.read_line(&mut line).expect("read");
            reply.push_str(&line);
            if n == 0 || line.as_bytes().get(3) != Some(&b'-') {
                return reply;
            }
        }
    }

    /// Sends a command line and returns its reply.
    fn cmd(&mut self, line: &str) -> String {
        self.send(&format!("{line}\r\n"));
        self.reply()
    }
}

/// Our sink writing `--stats-json` into a directory it may write.
struct Sink {
    child: Killed,
    file: PathBuf,
    _dir: tempfile::TempDir,
    port: u16,
}

impl Sink {
    fn start(args: &[&str]) -> Sink {
        let dir = dump_dir();
        let file = dir.path().join("stats.json");
        let port = free_port();
        let mut all = vec!["--stats-json", file.to_str().expect("utf-8 path")];
        all.extend_from_slice(args);
        let child = start_sink(&all, port);
        Sink {
            child,
            file,
            _dir: dir,
            port,
        }
    }

    /// SIGTERM, then the final file, checked against the schema.
    fn stop(mut self) -> (String, Value) {
        let pid = self.child.0.id().to_string();
        let status = Command::new("kill")
            .args(["-s", "TERM", &pid])
            .status()
            .expect("kill");
        assert!(status.success());
        let deadline = Instant::now() + DEADLINE;
        while self.child.0.try_wait().expect("wait").is_none() {
            assert!(Instant::now() < deadline, "the sink did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
        let text = fs::read_to_string(&self.file).expect("the final file");
        assert_matches_schema(SCHEMA, &text);
        let json: Value = serde_json::from_str(&text).expect("JSON");
        assert_eq!(json["trigger"], "sigterm", "{text}");
        (text, json)
    }
}

/// The count at a path of the stats file.
fn n(j: &Value, path: &[&str]) -> u64 {
    path.iter()
        .fold(j, |v, k| &v[k])
        .as_u64()
        .unwrap_or_else(|| panic!("{path:?} in {j}"))
}

#[test]
fn tarpit_delays_every_reply_by_at_least_its_time() {
    let port = free_port();
    let _sink = start_sink(&["--tarpit", "300"], port);
    let pause = Duration::from_millis(300);
    let started = Instant::now();
    let mut c = Client::connect(port);
    assert!(c.reply().starts_with("220 "));
    assert!(
        started.elapsed() >= pause,
        "greeting after {:?}",
        started.elapsed()
    );
    for (line, code) in [
        ("EHLO x", "250"),
        ("MAIL FROM:<a@x>", "250"),
        ("RCPT TO:<b@y>", "250"),
        ("DATA", "354"),
        ("hi\r\n.", "250"),
        ("BOGUS", "500"),
    ] {
        let sent = Instant::now();
        let reply = c.cmd(line);
        let took = sent.elapsed();
        assert!(reply.starts_with(code), "{line}: {reply}");
        assert!(took >= pause, "{line}: replied after {took:?}");
    }
    // Pipelined commands: each reply waits its own pause.
    let sent = Instant::now();
    c.send("NOOP\r\nNOOP\r\nNOOP\r\n");
    for i in 1..=3u32 {
        assert!(c.reply().starts_with("250"));
        assert!(
            sent.elapsed() >= pause * i,
            "reply {i} after {:?}",
            sent.elapsed()
        );
    }
    assert!(c.cmd("QUIT").starts_with("221"));
}

/// Three sessions, one after another, of 20 RCPTs each, against a sink
/// with `args`; every reply in order, and the final stats file.
fn seeded_run(args: &[&str]) -> (Vec<String>, Value) {
    let sink = Sink::start(args);
    let mut replies = Vec::new();
    for _ in 0..3 {
        let mut c = Client::connect(sink.port);
        replies.push(c.reply());
        for line in ["HELO x", "MAIL FROM:<a@x>"] {
            replies.push(c.cmd(line));
        }
        for i in 0..20 {
            replies.push(c.cmd(&format!("RCPT TO:<r{i}@y>")));
        }
        replies.push(c.cmd("QUIT"));
    }
    let (_, json) = sink.stop();
    (replies, json)
}

#[test]
fn faults_with_a_seed_repeat_and_disconnect_closes_silently() {
    let fault = ["--fault", "rcpt:451 4.3.0 Try again:0.4"];
    let args = |seed| [fault[0], fault[1], "--seed", seed];
    let (first, json) = seeded_run(&args("42"));
    let (second, _) = seeded_run(&args("42"));
    let (other, _) = seeded_run(&args("43"));
    assert_eq!(first, second, "the same seed gave other replies");
    assert_ne!(first, other, "another seed gave the same replies");
    let faulted = first
        .iter()
        .filter(|r| *r == "451 4.3.0 Try again\r\n")
        .count() as u64;
    let accepted = first.iter().filter(|r| r.starts_with("250 2.1.5")).count() as u64;
    assert!(faulted > 0 && accepted > 0, "{first:?}");
    assert_eq!(faulted + accepted, 60, "{first:?}");
    let rule = &json["counters"]["rules"]["fault"][0];
    assert_eq!(rule["command"], "rcpt", "{json}");
    assert_eq!(rule["reply"], "451 4.3.0 Try again", "{json}");
    assert_eq!(rule["probability"], 0.4, "{json}");
    assert_eq!(n(rule, &["count"]), faulted, "{json}");
    assert_eq!(n(&json, &["counters", "replies", "rcpt", "4xx"]), faulted);

    // disconnect: the connection closes where the reply would have come.
    let sink = Sink::start(&["--fault", "mail:disconnect:1"]);
    let mut c = Client::connect(sink.port);
    assert!(c.reply().starts_with("220 "));
    assert!(c.cmd("HELO x").starts_with("250 "));
    assert_eq!(c.cmd("MAIL FROM:<a@x>"), "", "a reply instead of a close");
    let (_, json) = sink.stop();
    assert_eq!(n(&json["counters"]["rules"]["fault"][0], &["count"]), 1);
    assert_eq!(n(&json, &["counters", "commands", "mail"]), 1);
    assert_eq!(n(&json, &["counters", "replies", "mail", "2xx"]), 0);
    assert_eq!(n(&json, &["counters", "sessions", "quit"]), 0);
}

#[test]
fn max_message_size_gives_552_at_mail_and_at_the_end_of_data() {
    let port = free_port();
    let _sink = start_sink(&["--max-message-size", "100"], port);
    let mut c = Client::connect(port);
    c.reply();
    let ehlo = c.cmd("EHLO x");
    assert!(ehlo.contains("250-SIZE 100\r\n"), "{ehlo}");
    let too_big = "552 5.3.4 Message size exceeds fixed limit\r\n";
    assert_eq!(c.cmd("MAIL FROM:<a@x> SIZE=101"), too_big);
    for (body, want) in [
        ("x".repeat(150), too_big),
        ("x".repeat(50), "250 2.0.0 Ok\r\n"),
    ] {
        assert!(c.cmd("MAIL FROM:<a@x>").starts_with("250"));
        assert!(c.cmd("RCPT TO:<b@y>").starts_with("250"));
        assert!(c.cmd("DATA").starts_with("354"));
        assert_eq!(c.cmd(&format!("{body}\r\n.")), want);
    }
}

#[test]
fn max_rate_100_holds_our_source_at_400_to_about_100_per_second() {
    let sink = Sink::start(&["--max-rate", "100"]);
    let started = Instant::now();
    let out = Command::new(bin("smtp-source"))
        .args(["-A", "-d", "-s", "8", "--rate", "400", "--duration", "5s"])
        .args(["--json", "-"])
        .arg(format!("127.0.0.1:{}", sink.port))
        .output()
        .expect("run smtp-source");
    let window = started.elapsed().as_secs_f64();
    assert!(
        out.status.success(),
        "smtp-source: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).expect("the source's report");
    let (text, json) = sink.stop();
    let mail = |class| n(&json, &["counters", "replies", "mail", class]);
    let (accepted, refused) = (mail("2xx"), mail("4xx"));
    assert_eq!(
        n(&json, &["counters", "rules", "max-rate", "mail"]),
        refused,
        "{text}"
    );
    assert_eq!(
        accepted + refused,
        n(&json, &["counters", "commands", "mail"])
    );
    assert!(refused > 0, "the source never went over the rate: {text}");
    // The bucket's bound is exact: its burst (10) plus 100 a second over
    // the whole time the source ran.
    let most = 10.0 + 100.0 * window;
    assert!(
        accepted as f64 <= most,
        "{accepted} accepted in {window:.2} s: {text}"
    );
    // The source's own span from its first connect to its last close
    // holds every MAIL; it asked four times the rate, so the bucket was
    // empty throughout and about 100 a second got through.
    let span = report["duration_seconds"].as_f64().expect("duration");
    let rate = accepted as f64 / span;
    eprintln!("{accepted} accepted, {refused} refused in {span:.2} s: {rate:.1}/s");
    assert!(
        (90.0..=110.0).contains(&rate),
        "{accepted} accepted in {span:.2} s = {rate:.1}/s; report {report}"
    );
    assert_eq!(
        report["accepted"].as_u64(),
        Some(n(&json, &["counters", "messages", "accepted"]))
    );
}

#[test]
fn max_rate_action_connect_refuses_connections_with_421() {
    let sink = Sink::start(&["--max-rate", "1/h", "--max-rate-action", "connect"]);
    let mut c = Client::connect(sink.port);
    assert!(c.reply().starts_with("220 "));
    assert!(c.cmd("HELO x").starts_with("250 "));
    // The one token of the hour.
    assert_eq!(c.cmd("MAIL FROM:<a@x>"), "250 2.1.0 Ok\r\n");
    let refused = "421 4.7.1 Error: too many messages, closing connection\r\n";
    for _ in 0..2 {
        let mut late = Client::connect(sink.port);
        assert_eq!(late.reply(), refused);
        assert_eq!(late.reply(), "", "the connection stays open after 421");
    }
    assert!(c.cmd("RSET").starts_with("250 "));
    assert_eq!(c.cmd("MAIL FROM:<a@x>"), refused);
    assert_eq!(c.reply(), "");
    let (text, json) = sink.stop();
    let rule = |cmd| n(&json, &["counters", "rules", "max-rate", cmd]);
    assert_eq!((rule("connect"), rule("mail")), (2, 1), "{text}");
    assert_eq!(n(&json, &["counters", "replies", "connect", "4xx"]), 2);
}
