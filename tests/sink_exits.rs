//! How smtp-sink ends: `-M` under `--threads`, SIGTERM and SIGINT in the
//! middle of a run of our smtp-source (with `-d` and `-D`, on one thread
//! and on two), and `--drain`.
//!
//! After every exit the dump and the sink's own counters (its final
//! `--stats-json` file) must agree: every message the source saw accepted
//! is in the dump, every record is whole, no partial file is left, and the
//! counters count exactly the records. Nothing waits for a fixed time: the
//! tests poll for files, replies and exits, with generous deadlines.

use std::{
    fs,
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;

mod support;
use support::{bin, dump_dir, files_in, free_port, start_sink, wait_exit, Killed};

/// Cap on any wait for the sink or the source.
const DEADLINE: Duration = Duration::from_secs(60);

/// The body smtp-source sends by default, as the dump has it (CRs
/// removed), with the empty line that ends a record.
const BODY_END: &str =
    "\n\nLa de da de da 1.\nLa de da de da 2.\nLa de da de da 3.\nLa de da de da 4.\n\n";

/// Our sink with a dump (`-d DIR/m.` or `-D DIR/shared`) and
/// `--stats-json`, in a directory it can write as `-u nobody`.
struct Sink {
    child: Killed,
    dir: tempfile::TempDir,
    port: u16,
    shared: bool,
}

impl Sink {
    fn start(shared: bool, extra: &[&str]) -> Sink {
        let dir = dump_dir();
        let port = free_port();
        let stats = dir.path().join("stats.json");
        let (flag, template) = if shared {
            ("-D", dir.path().join("shared"))
        } else {
            ("-d", dir.path().join("m."))
        };
        let mut args = vec![
            flag,
            template.to_str().unwrap(),
            "--stats-json",
            stats.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let child = start_sink(&args, port);
        Sink {
            child,
            dir,
            port,
            shared,
        }
    }

    fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.child.0.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success(), "kill -s {name}");
    }

    /// Waits for the sink to exit with status 0 and returns its final
    /// `--stats-json` file.
    fn wait_exit(&mut self, trigger: &str) -> Value {
        let (status, _, _) = wait_exit(&mut self.child.0, DEADLINE);
        assert!(status.success(), "sink: {status}");
        let path = self.dir.path().join("stats.json");
        let text = fs::read_to_string(&path).expect("stats file");
        let json: Value = serde_json::from_str(&text).expect("stats JSON");
        assert_eq!(json["trigger"], trigger, "{text}");
        assert_eq!(json["final"], true, "{text}");
        json
    }

    /// The dump files and the records in them, each checked whole; panics
    /// on any other file (a temporary or unfinished one).
    fn records(&self) -> usize {
        let mut records = 0;
        for path in files_in(self.dir.path()) {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name == "stats.json" {
                continue;
            }
            let text = fs::read_to_string(&path).expect("dump file");
            if self.shared {
                assert_eq!(name, "shared", "an unexpected file {}", path.display());
                records += whole_records(&text, &path);
            } else {
                assert!(
                    name.starts_with("m.") && name.len() == 10,
                    "an unexpected file {}",
                    path.display()
                );
                assert_eq!(whole_records(&text, &path), 1, "{}", path.display());
                records += 1;
            }
        }
        records
    }

    /// Records committed so far, while the sink runs: a `-D` record is
    /// appended in one write; a `-d` file exists from MAIL on and is
    /// counted once it ends as a whole record does.
    fn records_so_far(&self) -> usize {
        if self.shared {
            fs::read_to_string(self.dir.path().join("shared"))
                .map(|t| t.matches("X-Client-Addr: ").count())
                .unwrap_or(0)
        } else {
            self.dump_files()
                .iter()
                .filter(|p| fs::read_to_string(p).is_ok_and(|t| t.ends_with(BODY_END)))
                .count()
        }
    }

    /// The `-d` files.
    fn dump_files(&self) -> Vec<PathBuf> {
        files_in(self.dir.path())
            .into_iter()
            .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with("m."))
            .collect()
    }

    fn wait_records(&self, n: usize) {
        let deadline = Instant::now() + DEADLINE;
        while self.records_so_far() < n {
            assert!(Instant::now() < deadline, "fewer than {n} records");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// The number of records in `text`, each of which must be a whole record
/// of smtp-source's default message: the sink's five head lines, the
/// three lines of its Received header, the source's four header lines,
/// the body, the empty line.
fn whole_records(text: &str, path: &Path) -> usize {
    let starts: Vec<usize> = text
        .match_indices("X-Client-Addr: ")
        .map(|(i, _)| i)
        .collect();
    assert_eq!(starts.first(), Some(&0), "{}: {text:?}", path.display());
    let mut ends = starts[1..].to_vec();
    ends.push(text.len());
    for (&start, &end) in starts.iter().zip(&ends) {
        let record = &text[start..end];
        let lines: Vec<&str> = record.lines().collect();
        let whole = lines.len() == 18
            && lines[0] == "X-Client-Addr: 127.0.0.1"
            && lines[1].starts_with("X-Client-Proto: ")
            && lines[5].starts_with("Received: from ")
            && lines[6].starts_with("\tby smtp-sink (smtp-sink) with ")
            && lines[8].starts_with("From: ")
            && record.ends_with(BODY_END);
        assert!(whole, "{}: a partial record {record:?}", path.display());
    }
    starts.len()
}

/// Our smtp-source against the sink, its `--json` report on stdout.
fn start_source(port: u16, args: &[&str]) -> Child {
    Command::new(bin("smtp-source"))
        .args(args)
        .args(["--json", "-"])
        .arg(format!("127.0.0.1:{port}"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start smtp-source")
}

/// Waits for the source (it may fail: the sink went away under it) and
/// returns how many messages it saw accepted.
fn source_accepted(source: &mut Child) -> u64 {
    let (_, out, err) = wait_exit(source, DEADLINE);
    let report: Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("report ({e}): {out}\n{err}"));
    report["accepted"]
        .as_u64()
        .unwrap_or_else(|| panic!("no accepted count: {out}"))
}

fn counter(stats: &Value, path: &[&str]) -> u64 {
    let v = path.iter().fold(&stats["counters"], |v, k| &v[k]);
    v.as_u64()
        .unwrap_or_else(|| panic!("{path:?} is {v}: {stats}"))
}

/// The dump and the counters after an exit agree, and the source saw no
/// more accepted than the dump holds. Returns the number of records.
fn assert_consistent(sink: &Sink, stats: &Value, source_accepted: u64, what: &str) -> u64 {
    let records = sink.records() as u64;
    assert!(
        source_accepted <= records,
        "{what}: the source saw {source_accepted} accepted, the dump holds {records}"
    );
    assert_eq!(
        counter(stats, &["messages", "received"]),
        records,
        "{what}: {stats}"
    );
    assert_eq!(
        counter(stats, &["messages", "accepted"]),
        records,
        "{what}: {stats}"
    );
    assert_eq!(
        counter(stats, &["dump", "written"]),
        records,
        "{what}: {stats}"
    );
    assert_eq!(counter(stats, &["dump", "failed"]), 0, "{what}: {stats}");
    assert_eq!(counter(stats, &["sessions", "open"]), 0, "{what}: {stats}");
    records
}

/// `-M 1000` with sessions on four threads: exactly 1000 messages are
/// counted, dumped and answered, never the few more that sessions on other
/// threads finished before the process stopped (it used to be about 1020).
#[test]
fn max_messages_is_exact_with_threads() {
    let mut sink = Sink::start(false, &["--threads", "4", "-M", "1000"]);
    // More sessions and messages than the limit: the source is still
    // sending on 50 connections when the sink stops.
    let mut source = start_source(sink.port, &["-s", "50", "-m", "5000", "-d"]);
    let stats = sink.wait_exit("max-messages");
    let accepted = source_accepted(&mut source);
    let records = assert_consistent(&sink, &stats, accepted, "-M 1000 --threads 4");
    assert_eq!(records, 1000, "{stats}");
}

/// A stop signal in the middle of a run: the sink exits 0 and leaves
/// whole records only, as many as it counted.
fn stop_under_load(signal: &str, trigger: &str, shared: bool, extra: &[&str]) {
    let what = format!("{signal} {} {extra:?}", if shared { "-D" } else { "-d" });
    let mut sink = Sink::start(shared, extra);
    let mut source = start_source(sink.port, &["-s", "20", "-m", "100000", "-d"]);
    sink.wait_records(50);
    sink.signal(signal);
    let stats = sink.wait_exit(trigger);
    let accepted = source_accepted(&mut source);
    let records = assert_consistent(&sink, &stats, accepted, &what);
    assert!(records >= 50, "{what}: {records}");
    if extra.contains(&"--drain") {
        // Every session ended on its own: the transactions under way
        // finished, the rest got 421.
        assert_eq!(counter(&stats, &["sessions", "cut"]), 0, "{what}: {stats}");
    }
}

#[test]
fn sigterm_with_d_leaves_whole_files_only() {
    stop_under_load("TERM", "sigterm", false, &[]);
    stop_under_load("TERM", "sigterm", false, &["--threads", "2"]);
}

#[test]
fn sigterm_with_shared_dump_leaves_whole_records_only() {
    stop_under_load("TERM", "sigterm", true, &[]);
    stop_under_load("TERM", "sigterm", true, &["--threads", "2"]);
}

#[test]
fn sigint_with_d_leaves_whole_files_only() {
    stop_under_load("INT", "sigint", false, &[]);
    stop_under_load("INT", "sigint", false, &["--threads", "2"]);
}

#[test]
fn sigint_with_shared_dump_leaves_whole_records_only() {
    stop_under_load("INT", "sigint", true, &[]);
    stop_under_load("INT", "sigint", true, &["--threads", "2"]);
}

#[test]
fn drain_under_load_cuts_no_session() {
    stop_under_load("TERM", "sigterm", false, &["--drain", "60"]);
    stop_under_load(
        "TERM",
        "sigterm",
        true,
        &["--drain", "60", "--threads", "2"],
    );
}

// ---------------------------------------------------------------------
// --drain, spoken by hand.

/// A raw SMTP client: the test writes commands and reads replies line by
/// line.
struct Client {
    reader: BufReader<TcpStream>,
}

impl Client {
    /// Connects and reads the greeting.
    fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(DEADLINE)).unwrap();
        let mut c = Client {
            reader: BufReader::new(stream),
        };
        assert_eq!(c.line(), "220 smtp-sink ESMTP\r\n");
        c
    }

    fn send(&mut self, bytes: &str) {
        self.reader.get_mut().write_all(bytes.as_bytes()).unwrap();
    }

    /// The next reply line (empty at the end of the stream).
    fn line(&mut self) -> String {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("a reply line");
        line
    }

    /// Replies until one whose code is `code` followed by a space.
    fn until(&mut self, code: &str) {
        loop {
            let line = self.line();
            assert!(!line.is_empty(), "closed before {code}");
            if line.starts_with(&format!("{code} ")) {
                return;
            }
        }
    }

    /// Everything up to the end of the stream.
    fn rest(&mut self) -> String {
        let mut rest = String::new();
        self.reader
            .read_to_string(&mut rest)
            .expect("read to the end");
        rest
    }
}

const SHUTTING_DOWN: &str = "421 4.3.2 Service shutting down\r\n";

/// Starts a transaction and sends half of its content.
fn half_a_message(port: u16) -> Client {
    let mut c = Client::connect(port);
    c.send("EHLO client\r\nMAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n");
    c.until("250");
    assert_eq!(c.line(), "250 2.1.0 Ok\r\n");
    assert_eq!(c.line(), "250 2.1.5 Ok\r\n");
    assert_eq!(c.line(), "354 End data with <CR><LF>.<CR><LF>\r\n");
    c.send("Subject: drained\r\n\r\nfirst half\r\n");
    c
}

/// Waits until nothing accepts connections on the port any more.
fn wait_refused(port: u16) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        match TcpStream::connect(("127.0.0.1", port)) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => return,
            Err(e) => panic!("connect: {e}"),
            Ok(_) => {}
        }
        assert!(Instant::now() < deadline, "still accepting");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// SIGTERM with `--drain`: a client between transactions gets 421 and is
/// closed, new connections are refused, a transaction in the middle of
/// DATA finishes (250, then 421) and its record is whole, and the sink
/// exits as soon as the last session has ended.
#[test]
fn drain_finishes_the_transaction_under_way() {
    for threads in ["0", "2"] {
        let mut sink = Sink::start(false, &["--drain", "600", "--threads", threads]);
        let mut idle = Client::connect(sink.port);
        idle.send("EHLO idle\r\n");
        idle.until("250");
        let mut busy = half_a_message(sink.port);
        sink.signal("TERM");
        // The idle client hears of the stop at once.
        assert_eq!(idle.rest(), SHUTTING_DOWN);
        // The listener was closed before the sessions were told.
        match TcpStream::connect(("127.0.0.1", sink.port)) {
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionRefused),
            Ok(_) => panic!("a new connection was accepted during the drain"),
        }
        busy.send("second half\r\n.\r\n");
        assert_eq!(busy.line(), "250 2.0.0 Ok\r\n");
        assert_eq!(busy.rest(), SHUTTING_DOWN);
        // Far sooner than the 600 s of --drain.
        let stats = sink.wait_exit("sigterm");
        let files = sink.dump_files();
        assert_eq!(files.len(), 1, "threads {threads}");
        let record = fs::read_to_string(&files[0]).unwrap();
        assert!(
            record.ends_with("\nSubject: drained\n\nfirst half\nsecond half\n\n"),
            "{record:?}"
        );
        assert_eq!(counter(&stats, &["messages", "received"]), 1, "{stats}");
        assert_eq!(counter(&stats, &["dump", "written"]), 1, "{stats}");
        assert_eq!(counter(&stats, &["sessions", "cut"]), 0, "{stats}");
        assert_eq!(counter(&stats, &["replies", "ehlo", "2xx"]), 2, "{stats}");
    }
}

/// During a drain, a command after the transaction gets 421 (QUIT still
/// gets 221).
#[test]
fn drain_answers_commands_after_the_transaction_with_421() {
    let mut sink = Sink::start(false, &["--drain", "600"]);
    let mut quitter = half_a_message(sink.port);
    let mut mailer = half_a_message(sink.port);
    sink.signal("TERM");
    wait_refused(sink.port);
    quitter.send(".\r\nQUIT\r\n");
    assert_eq!(quitter.line(), "250 2.0.0 Ok\r\n");
    assert_eq!(quitter.rest(), "221 Bye\r\n");
    mailer.send(".\r\nMAIL FROM:<c@x>\r\nRCPT TO:<d@y>\r\n");
    assert_eq!(mailer.line(), "250 2.0.0 Ok\r\n");
    assert_eq!(mailer.rest(), SHUTTING_DOWN);
    let stats = sink.wait_exit("sigterm");
    let files = sink.dump_files();
    assert_eq!(files.len(), 2);
    for file in files {
        let record = fs::read_to_string(file).unwrap();
        assert!(record.ends_with("\nfirst half\n\n"), "{record:?}");
    }
    assert_eq!(counter(&stats, &["messages", "received"]), 2, "{stats}");
    assert_eq!(counter(&stats, &["replies", "mail", "4xx"]), 1, "{stats}");
    assert_eq!(counter(&stats, &["replies", "quit", "2xx"]), 1, "{stats}");
}

/// A transaction that does not finish within `--drain` is cut: the sink
/// exits, and the unfinished record is not left behind.
#[test]
fn drain_time_up_cuts_the_transaction() {
    let mut sink = Sink::start(false, &["--drain", "1"]);
    let mut stuck = half_a_message(sink.port);
    sink.signal("TERM");
    let stats = sink.wait_exit("sigterm");
    assert_eq!(stuck.rest(), "");
    assert_eq!(sink.records(), 0);
    assert_eq!(counter(&stats, &["messages", "received"]), 0, "{stats}");
    assert_eq!(counter(&stats, &["sessions", "cut"]), 1, "{stats}");
}

/// A second signal ends a drain at once.
#[test]
fn a_second_signal_ends_the_drain() {
    let mut sink = Sink::start(true, &["--drain", "600"]);
    let mut stuck = half_a_message(sink.port);
    sink.signal("TERM");
    wait_refused(sink.port);
    sink.signal("INT");
    // The first signal's trigger stays the reason.
    let stats = sink.wait_exit("sigterm");
    assert_eq!(stuck.rest(), "");
    assert_eq!(sink.records(), 0);
    assert_eq!(counter(&stats, &["sessions", "cut"]), 1, "{stats}");
}
