//! smtp-sink's `--stats-json`: our smtp-source drives our sink on
//! loopback, and the file the sink writes at start, on SIGUSR1 and at each
//! kind of exit must count exactly what was sent, and match
//! docs/sink-stats.schema.json.
//!
//! Nothing here waits for a fixed time: files and exits are polled for,
//! with generous deadlines.

use std::{
    fs,
    io::{Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

mod support;
use support::{
    assert_matches_schema, assert_violates_schema, bin, dump_dir, free_port, is_root, start_sink,
    wait_dumps, Killed,
};

const SCHEMA: &str = "docs/sink-stats.schema.json";
const DEADLINE: Duration = Duration::from_secs(30);

/// Every command row of "commands" and "replies", in the file's order.
const ROWS: [&str; 18] = [
    "connect", "helo", "ehlo", "lhlo", "xclient", "xforward", "auth", "mail", "rcpt", "data", ".",
    "rset", "noop", "vrfy", "quit", "bdat", "starttls", "unknown",
];

// ---------------------------------------------------------------------
// The file read with serde_json.

/// The parsed file or report.
fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Access by a path of object keys; each panics naming the path.
trait At {
    /// The value at `path`, which must exist.
    fn at(&self, path: &[&str]) -> &Value;
    /// The non-negative integer at `path`.
    fn n(&self, path: &[&str]) -> u64;
    /// The string at `path`.
    fn str(&self, path: &[&str]) -> &str;
}

impl At for Value {
    fn at(&self, path: &[&str]) -> &Value {
        path.iter().fold(self, |v, key| {
            v.get(key)
                .unwrap_or_else(|| panic!("{path:?}: no {key:?} in {v}"))
        })
    }

    fn n(&self, path: &[&str]) -> u64 {
        let v = self.at(path);
        v.as_u64()
            .unwrap_or_else(|| panic!("{path:?} is {v}, not a count"))
    }

    fn str(&self, path: &[&str]) -> &str {
        let v = self.at(path);
        v.as_str()
            .unwrap_or_else(|| panic!("{path:?} is {v}, not a string"))
    }
}

/// The keys of the object at `path` in `j`, in the order `text` (the file
/// `j` was parsed from) has them. serde_json's `Map` is sorted (its
/// `preserve_order` feature is off), so the order comes from the text,
/// which the sink writes with `serde_json::to_vec_pretty`: one member a
/// line, two spaces a level, an empty object as `{}`.
fn keys(j: &Value, text: &str, path: &[&str]) -> Vec<String> {
    let object = j
        .at(path)
        .as_object()
        .unwrap_or_else(|| panic!("{path:?} is not an object: {text}"));
    let indent = |line: &str| line.len() - line.trim_start_matches(' ').len();
    let mut lines = text.lines();
    let mut open = lines.next().unwrap_or_default();
    assert_eq!(open, "{", "{text}");
    for (depth, key) in path.iter().enumerate() {
        let want = format!("{:1$}\"{key}\": {{", "", 2 * (depth + 1));
        open = lines
            .by_ref()
            .find(|line| line.starts_with(&want))
            .unwrap_or_else(|| panic!("{path:?}: no line {want:?} in {text}"));
    }
    let mut found = Vec::new();
    if !open.trim_end_matches(',').ends_with("{}") {
        let members = 2 * (path.len() + 1);
        for line in lines.take_while(|line| indent(line) >= members) {
            // A member's line, not the closing line of a member's value.
            let member = line.trim_start().strip_prefix('"');
            if let (true, Some(rest)) = (indent(line) == members, member) {
                let (key, _) = rest
                    .split_once('"')
                    .unwrap_or_else(|| panic!("{path:?}: {line:?} in {text}"));
                found.push(key.to_owned());
            }
        }
    }
    let mut sorted = found.clone();
    sorted.sort();
    assert!(
        sorted.iter().eq(object.keys()),
        "{path:?}: {found:?} in the text, {:?} parsed: {text}",
        object.keys().collect::<Vec<_>>()
    );
    found
}

// ---------------------------------------------------------------------
// The sink, its file, and the source.

/// Our sink with `--stats-json` into a directory it can write as the user
/// it runs as (`-u nobody` under root).
struct Sink {
    child: Killed,
    file: PathBuf,
    dir: tempfile::TempDir,
}

impl Sink {
    fn start(args: &[&str]) -> (Sink, u16) {
        let dir = dump_dir();
        let file = dir.path().join("stats.json");
        let port = free_port();
        let mut all = vec!["--stats-json", file.to_str().unwrap()];
        all.extend_from_slice(args);
        let child = start_sink(&all, port);
        (Sink { child, file, dir }, port)
    }

    fn pid(&self) -> u32 {
        self.child.0.id()
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.pid().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -s {name}");
    }

    /// The file once it exists (it only ever appears whole), checked
    /// against the schema.
    fn wait_file(&self) -> (String, Value) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            match fs::read_to_string(&self.file) {
                Ok(text) => {
                    assert_matches_schema(SCHEMA, &text);
                    let json = parse(&text);
                    assert_eq!(json.n(&["pid"]), u64::from(self.pid()), "{text}");
                    return (text, json);
                }
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => panic!("{}: {e}", self.file.display()),
            }
            assert!(
                Instant::now() < deadline,
                "{} did not appear",
                self.file.display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A fresh file: the old one removed, SIGUSR1 sent, the new one read.
    fn usr1(&self) -> (String, Value) {
        match fs::remove_file(&self.file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => panic!("{e}"),
        }
        self.signal("USR1");
        let (text, json) = self.wait_file();
        assert_eq!(json.str(&["trigger"]), "sigusr1", "{text}");
        assert_eq!(json.at(&["final"]), &Value::Bool(false), "{text}");
        (text, json)
    }

    /// SIGUSR1 until every session so far has ended and `accepted`
    /// sessions were counted (the last ones may still be closing when the
    /// client has its last reply).
    fn settled(&self, accepted: u64) -> (String, Value) {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let (text, json) = self.usr1();
            let sessions = |f| json.n(&["counters", "sessions", f]);
            if sessions("open") == 0 && sessions("accepted") >= accepted {
                assert_eq!(sessions("accepted"), accepted, "{text}");
                return (text, json);
            }
            assert!(Instant::now() < deadline, "sessions did not settle: {text}");
        }
    }

    /// Waits (bounded) for the process to exit on its own and returns its
    /// final file.
    fn wait_exit(&mut self, trigger: &str) -> (String, Value) {
        let deadline = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(s) = self.child.0.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "the sink did not exit");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "{status}");
        let (text, json) = self.wait_file();
        assert_eq!(json.str(&["trigger"]), trigger, "{text}");
        assert_eq!(json.at(&["final"]), &Value::Bool(true), "{text}");
        assert_eq!(json.n(&["counters", "sessions", "open"]), 0, "{text}");
        (text, json)
    }

    /// Ends the sink with a signal and returns its final file.
    fn stop(&mut self, signal: &str, trigger: &str) -> (String, Value) {
        self.signal(signal);
        self.wait_exit(trigger)
    }
}

/// smtp-source's `--json -` report.
struct Report {
    text: String,
    json: Value,
}

impl Report {
    fn field(&self, name: &str) -> u64 {
        self.json.n(&[name])
    }

    fn rejects(&self, phase: &str) -> u64 {
        self.json.n(&["rejects_by_phase", phase])
    }
}

/// Our smtp-source against the port; it must succeed.
fn source(args: &[&str], port: u16) -> Report {
    let out = Command::new(bin("smtp-source"))
        .args(args)
        .args(["--json", "-"])
        .arg(format!("127.0.0.1:{port}"))
        .output()
        .expect("run smtp-source");
    assert!(
        out.status.success(),
        "smtp-source: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let json = parse(&text);
    Report { text, json }
}

/// The replies of one command as [2xx, 3xx, 4xx, 5xx].
fn replies(j: &Value, cmd: &str) -> [u64; 4] {
    ["2xx", "3xx", "4xx", "5xx"].map(|c| j.n(&["counters", "replies", cmd, c]))
}

fn commands(j: &Value, cmd: &str) -> u64 {
    j.n(&["counters", "commands", cmd])
}

/// Rows not named in `expected` are all zero; the named ones are exact
/// (commands handled, then replies by class).
fn assert_rows(j: &Value, text: &str, expected: &[(&str, u64, [u64; 4])]) {
    assert_eq!(keys(j, text, &["counters", "commands"]), ROWS, "{text}");
    assert_eq!(keys(j, text, &["counters", "replies"]), ROWS, "{text}");
    for row in ROWS {
        let (n, r) = expected
            .iter()
            .find(|(name, _, _)| *name == row)
            .map_or((0, [0; 4]), |(_, n, r)| (*n, *r));
        assert_eq!(commands(j, row), n, "commands {row}: {text}");
        assert_eq!(replies(j, row), r, "replies {row}: {text}");
    }
}

/// A rule table as (command, count) pairs, in the file's order.
fn rule(j: &Value, text: &str, name: &str) -> Vec<(String, u64)> {
    keys(j, text, &["counters", "rules", name])
        .into_iter()
        .map(|k| {
            let n = j.n(&["counters", "rules", name, &k]);
            (k, n)
        })
        .collect()
}

fn pairs(list: &[(&str, u64)]) -> Vec<(String, u64)> {
    list.iter().map(|(k, n)| ((*k).to_owned(), *n)).collect()
}

/// Copies of a valid final file that the schema must refuse.
fn assert_schema_refuses_broken_copies(text: &str) {
    for (from, to) in [
        // A required field renamed.
        ("\"written\"", "\"writen\""),
        // A field the schema does not know.
        ("\"open\": 0", "\"open\": 0, \"extra\": 1"),
        // A count that is not one.
        ("\"2xx\": 0", "\"2xx\": -1"),
        // A final write that says it is not.
        ("\"final\": true", "\"final\": false"),
        // An error without the "error" trigger.
        ("\"counters\"", "\"error\": \"x\", \"counters\""),
    ] {
        assert!(text.contains(from), "{from} in {text}");
        assert_violates_schema(SCHEMA, &text.replacen(from, to, 1));
    }
}

/// A message file for `-F`: one line that gets dot-stuffed.
fn message_file(dir: &Path) -> (String, u64) {
    let path = dir.join("message.txt");
    fs::write(&path, ".hidden line\nsecond\n").unwrap();
    // As sent after 354: "..hidden line\r\nsecond\r\n" plus the source's
    // extra empty line; the final ".\r\n" is no content.
    let on_the_wire = "..hidden line\r\nsecond\r\n\r\n".len() as u64;
    (path.display().to_string(), on_the_wire)
}

// ---------------------------------------------------------------------

/// Plain DATA with dumps: the start file, a SIGUSR1 snapshot once the
/// source is done, and the final file after SIGTERM all count exactly
/// what was sent.
#[test]
fn counts_what_the_source_sent_on_sigusr1_and_sigterm() {
    let template_dir = dump_dir();
    let template = format!("{}/m.", template_dir.path().display());
    let (mut sink, port) = Sink::start(&["-d", &template]);
    let (text, start) = sink.wait_file();
    assert_eq!(start.str(&["trigger"]), "start", "{text}");
    assert_eq!(start.n(&["schema_version"]), 1);
    assert_eq!(start.str(&["program"]), "smtp-sink");
    assert_eq!(start.n(&["counters", "sessions", "accepted"]), 0, "{text}");
    assert_eq!(start.n(&["counters", "messages", "received"]), 0, "{text}");

    let (message, size) = message_file(sink.dir.path());
    let report = source(&["-s", "2", "-m", "20", "-F", &message], port);
    assert_eq!(report.field("accepted"), 20, "{}", report.text);
    let connections = report.field("connections");
    // start_sink's readiness probe was a session too.
    let sessions = connections + 1;
    let (text, snap) = sink.settled(sessions);
    let count = |path: &[&str]| snap.n(&[&["counters"][..], path].concat());
    assert_eq!(count(&["messages", "received"]), 20, "{text}");
    assert_eq!(count(&["messages", "accepted"]), 20, "{text}");
    assert_eq!(count(&["messages", "content_bytes"]), 20 * size, "{text}");
    // Both programs count a message's size the same way.
    assert_eq!(
        count(&["messages", "content_bytes"]),
        report.field("bytes_sent"),
        "{text}\n{}",
        report.text
    );
    assert_eq!(count(&["sessions", "closed"]), sessions, "{text}");
    assert_eq!(count(&["sessions", "cut"]), 0, "{text}");
    assert_eq!(count(&["sessions", "quit"]), connections, "{text}");
    assert_eq!(count(&["dump", "written"]), 20, "{text}");
    assert_eq!(count(&["dump", "failed"]), 0, "{text}");
    assert_eq!(wait_dumps(template_dir.path(), 20).len(), 20);
    assert_rows(
        &snap,
        &text,
        &[
            ("connect", sessions, [sessions, 0, 0, 0]),
            ("helo", connections, [connections, 0, 0, 0]),
            ("mail", 20, [20, 0, 0, 0]),
            ("rcpt", 20, [20, 0, 0, 0]),
            ("data", 20, [0, 20, 0, 0]),
            (".", 20, [20, 0, 0, 0]),
            ("quit", connections, [connections, 0, 0, 0]),
        ],
    );
    for name in ["hard-reject", "soft-reject", "drop", "close", "delay"] {
        assert!(rule(&snap, &text, name).is_empty(), "{name}: {text}");
    }
    assert_eq!(count(&["rules", "abort-delay"]), 0);
    for path in [["tls", "full"], ["tls", "failed"], ["auth", "ok"]] {
        assert_eq!(count(&path), 0, "{path:?}: {text}");
    }

    let (text, last) = sink.stop("TERM", "sigterm");
    assert_schema_refuses_broken_copies(&text);
    // Nothing happened since the snapshot.
    assert_eq!(last.at(&["counters"]), snap.at(&["counters"]), "{text}");
    assert_eq!(last.str(&["started"]), snap.str(&["started"]));
    assert!(last.str(&["written"]) >= snap.str(&["written"]), "{text}");
    // Only the file is left: no FILE.tmp.
    let names: Vec<_> = fs::read_dir(sink.dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(!names.iter().any(|n| n.ends_with(".tmp")), "{names:?}");
}

/// A raw client's session: `line` sent after the greeting; returns what
/// came back until the sink closed the connection.
fn raw_session(port: u16, line: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(DEADLINE)).unwrap();
    let mut greeting = [0u8; 512];
    let n = s.read(&mut greeting).unwrap();
    assert!(greeting[..n].starts_with(b"220 "), "greeting");
    s.write_all(line.as_bytes()).unwrap();
    let mut rest = String::new();
    s.read_to_string(&mut rest).unwrap();
    rest
}

/// Rejections tolerated by the source (-A), a delayed HELO, a command
/// dropped (-q) and one closed with 421 (-Q): counted by rule, command
/// and class; SIGHUP then ends the sink with a final file.
#[test]
fn rules_are_counted_by_option_and_command() {
    let (mut sink, port) = Sink::start(&[
        "-r",
        "rcpt",
        "-f",
        "rcpt",
        "-r",
        "mail",
        "-W",
        "helo:1",
        "-q",
        "vrfy",
        "-Q",
        "noop,vrfy",
    ]);
    assert_eq!(raw_session(port, "VRFY x\r\n"), "", "-q: no reply");
    assert_eq!(
        raw_session(port, "NOOP\r\n"),
        "421 4.0.0 Server closing connection\r\n"
    );
    // -f/-r refuse MAIL and RCPT; -d keeps each connection for every
    // transaction of its session.
    let report = source(&["-A", "-d", "-s", "2", "-m", "10"], port);
    assert_eq!(report.field("accepted"), 0, "{}", report.text);
    assert_eq!(report.rejects("mail"), 10, "{}", report.text);
    let connections = report.field("connections");
    let sessions = connections + 3;
    let (text, snap) = sink.settled(sessions);
    assert_eq!(
        rule(&snap, &text, "soft-reject"),
        pairs(&[("mail", 10), ("rcpt", 0)])
    );
    assert_eq!(rule(&snap, &text, "hard-reject"), pairs(&[("rcpt", 0)]));
    assert_eq!(rule(&snap, &text, "drop"), pairs(&[("vrfy", 1)]));
    // -q vrfy outranks -Q vrfy.
    assert_eq!(
        rule(&snap, &text, "close"),
        pairs(&[("noop", 1), ("vrfy", 0)])
    );
    assert_eq!(
        keys(&snap, &text, &["counters", "rules", "delay"]),
        ["helo"]
    );
    let delay = |f| snap.n(&["counters", "rules", "delay", "helo", f]);
    assert_eq!(
        (delay("count"), delay("seconds")),
        (connections, connections)
    );
    assert_eq!(replies(&snap, "connect"), [sessions, 0, 0, 0], "{text}");
    assert_eq!(replies(&snap, "helo"), [connections, 0, 0, 0], "{text}");
    assert_eq!(replies(&snap, "mail"), [0, 0, 10, 0], "{text}");
    assert_eq!(commands(&snap, "rcpt"), 0, "{text}");
    assert_eq!(replies(&snap, "vrfy"), [0; 4], "{text}");
    assert_eq!(commands(&snap, "vrfy"), 1, "{text}");
    assert_eq!(replies(&snap, "noop"), [0, 0, 1, 0], "{text}");
    assert_eq!(snap.n(&["counters", "messages", "received"]), 0, "{text}");
    assert_eq!(snap.n(&["counters", "messages", "content_bytes"]), 0);

    let (text, last) = sink.stop("HUP", "sighup");
    assert_eq!(last.at(&["counters"]), snap.at(&["counters"]), "{text}");
}

/// `-M`: the sink exits after the last message's reply, and the final
/// file says so; SIGINT and `-n` end it with theirs.
#[test]
fn limits_and_sigint_write_a_final_file() {
    let (mut sink, port) = Sink::start(&["-M", "10"]);
    let report = source(&["-s", "1", "-m", "10"], port);
    assert_eq!(report.field("accepted"), 10, "{}", report.text);
    let (text, last) = sink.wait_exit("max-messages");
    let count = |path: &[&str]| last.n(&[&["counters"][..], path].concat());
    assert_eq!(count(&["messages", "received"]), 10, "{text}");
    assert_eq!(count(&["messages", "accepted"]), 10, "{text}");
    assert_eq!(replies(&last, "."), [10, 0, 0, 0], "{text}");
    assert_eq!(replies(&last, "data"), [0, 10, 0, 0], "{text}");
    assert_eq!(
        count(&["sessions", "accepted"]),
        count(&["sessions", "closed"])
    );

    // -n 3: the readiness probe and two more sessions.
    let (mut sink, port) = Sink::start(&["-n", "3"]);
    for _ in 0..2 {
        assert_eq!(raw_session(port, "QUIT\r\n"), "221 Bye\r\n");
    }
    let (text, last) = sink.wait_exit("max-sessions");
    assert_eq!(last.n(&["counters", "sessions", "closed"]), 3, "{text}");
    assert_eq!(last.n(&["counters", "sessions", "quit"]), 2, "{text}");
    assert_eq!(replies(&last, "quit"), [2, 0, 0, 0], "{text}");

    let (mut sink, port) = Sink::start(&[]);
    assert_eq!(raw_session(port, "QUIT\r\n"), "221 Bye\r\n");
    let (_, snap) = sink.settled(2);
    let (text, last) = sink.stop("INT", "sigint");
    assert_eq!(last.at(&["counters"]), snap.at(&["counters"]), "{text}");
}

/// STARTTLS and AUTH: handshakes and logins counted as the source saw
/// them.
#[test]
fn tls_handshakes_and_auth_are_counted() {
    let dir = dump_dir();
    let users = dir.path().join("users");
    fs::write(&users, "alice:secret\n").unwrap();
    fs::set_permissions(&users, std::os::unix::fs::PermissionsExt::from_mode(0o644)).unwrap();
    let users = users.display().to_string();
    let (mut sink, port) = Sink::start(&["--starttls", "--auth-users", &users]);
    let report = source(
        &[
            "--starttls",
            "--auth=PLAIN",
            "--auth-user",
            "alice",
            "--auth-password",
            "secret",
            "-s",
            "2",
            "-m",
            "6",
        ],
        port,
    );
    assert_eq!(report.field("accepted"), 6, "{}", report.text);
    let full = report.field("tls_handshakes_full");
    let resumed = report.field("tls_handshakes_resumed");
    assert_eq!(full + resumed, 6, "{}", report.text);
    let connections = report.field("connections");
    let (text, snap) = sink.settled(connections + 1);
    let count = |path: &[&str]| snap.n(&[&["counters"][..], path].concat());
    assert_eq!(
        (
            count(&["tls", "full"]),
            count(&["tls", "resumed"]),
            count(&["tls", "failed"])
        ),
        (full, resumed, 0),
        "{text}"
    );
    assert_eq!(count(&["auth", "failed"]), 0, "{text}");
    let c = connections;
    assert_eq!(replies(&snap, "starttls"), [c, 0, 0, 0], "{text}");
    // EHLO before and after the handshake.
    assert_eq!(replies(&snap, "ehlo"), [2 * c, 0, 0, 0], "{text}");
    // One login per connection.
    assert_eq!(replies(&snap, "auth")[0], c, "{text}");
    assert_eq!(count(&["auth", "ok"]), c, "{text}");
    assert_eq!(count(&["messages", "accepted"]), 6, "{text}");
    let _ = sink.stop("TERM", "sigterm");
}

/// A file the sink cannot write stops it at start, with a fatal error and
/// exit status 1, before any client is served.
#[test]
fn an_unwritable_file_is_fatal_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut cases = vec![(
        dir.path().join("no/such/dir/stats.json"),
        "No such file or directory",
    )];
    if is_root() {
        // The directory is root's (mode 0700); the sink runs as nobody.
        cases.push((dir.path().join("stats.json"), "Permission denied"));
    }
    for (file, why) in cases {
        let mut cmd = Command::new(bin("smtp-sink"));
        if is_root() {
            cmd.args(["-u", "nobody"]);
        }
        let out = cmd
            .arg("--stats-json")
            .arg(&file)
            .arg(format!("127.0.0.1:{}", free_port()))
            .arg("10")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!("fatal: --stats-json {}: {why}", file.display())),
            "{stderr}"
        );
        assert!(!file.exists());
    }
}
