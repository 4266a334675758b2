//! smtp-sink's `--metrics` endpoint and `--progress` status line, with the
//! real binaries on loopback.
//!
//! The endpoint: our smtp-source drives the sink while /metrics is
//! scraped (with a minimal HTTP/1.1 client on std's TcpStream); every
//! scrape must be valid OpenMetrics text, the counters never go down, and
//! once the run is over they equal the source's own report and the sink's
//! `--stats-json` file.
//!
//! The status line: through a pseudo-terminal (`script`), on a pipe, and
//! with `-c`. Its absence is only meaningful once a line would have been
//! drawn, so each "absent" case runs beside a sink that does draw it,
//! started later, and is only ended once that one has drawn twice (two
//! seconds of its life, so at least as many of the other's). Nothing waits
//! for a fixed time: output and exits are polled for, with generous
//! deadlines.

use std::{
    fs,
    io::Read,
    net::TcpStream,
    path::Path,
    process::{Command, Stdio},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use serde_json::Value;

mod support;
use support::metrics::{get, scrape, value};
use support::{bin, dump_dir, free_port, have, is_root, start_sink, wait_listening, Killed};

const DEADLINE: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------
// The endpoint.

/// Every counter a scrape and the stats file both have, as
/// (series, path in the file).
fn shared_counters(j: &Value) -> Vec<(String, Vec<String>)> {
    let mut pairs: Vec<(String, Vec<String>)> = [
        ("smtp_sink_sessions_open", "sessions/open"),
        ("smtp_sink_sessions_total", "sessions/accepted"),
        ("smtp_sink_sessions_cut_total", "sessions/cut"),
        ("smtp_sink_messages_total", "messages/received"),
        ("smtp_sink_messages_accepted_total", "messages/accepted"),
        ("smtp_sink_content_bytes_total", "messages/content_bytes"),
    ]
    .iter()
    .map(|(s, p)| ((*s).to_owned(), p.split('/').map(str::to_owned).collect()))
    .collect();
    let commands = j["counters"]["commands"]
        .as_object()
        .expect("counters.commands");
    assert!(commands.len() > 10, "{j}");
    for cmd in commands.keys() {
        pairs.push((
            format!("smtp_sink_commands_total{{command=\"{cmd}\"}}"),
            vec!["commands".to_owned(), cmd.clone()],
        ));
        for class in ["2xx", "3xx", "4xx", "5xx"] {
            pairs.push((
                format!("smtp_sink_replies_total{{command=\"{cmd}\",class=\"{class}\"}}"),
                vec!["replies".to_owned(), cmd.clone(), class.to_owned()],
            ));
        }
    }
    for (result, path) in [
        ("full", "tls/full"),
        ("resumed", "tls/resumed"),
        ("failed", "tls/failed"),
    ] {
        pairs.push((
            format!("smtp_sink_tls_handshakes_total{{result=\"{result}\"}}"),
            path.split('/').map(str::to_owned).collect(),
        ));
    }
    for (result, path) in [("ok", "auth/ok"), ("failed", "auth/failed")] {
        pairs.push((
            format!("smtp_sink_auth_total{{result=\"{result}\"}}"),
            path.split('/').map(str::to_owned).collect(),
        ));
    }
    pairs
}

/// The number at `path` under "counters".
fn counter_in(j: &Value, path: &[String]) -> u64 {
    path.iter()
        .fold(&j["counters"], |v, k| &v[k.as_str()])
        .as_u64()
        .unwrap_or_else(|| panic!("counters/{} in {j}", path.join("/")))
}

/// The sink's `--stats-json` file after a SIGUSR1.
fn stats_file_now(pid: u32, file: &Path) -> Value {
    let _ = fs::remove_file(file);
    let status = Command::new("kill")
        .args(["-s", "USR1", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + DEADLINE;
    loop {
        if let Ok(text) = fs::read_to_string(file) {
            let j: Value = serde_json::from_str(&text).expect("JSON");
            assert_eq!(j["trigger"], "sigusr1", "{text}");
            return j;
        }
        assert!(
            Instant::now() < deadline,
            "{} did not appear",
            file.display()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// A run of 500 messages over 5 sessions at a time: scrapes during the run
/// parse and never go down; afterwards they equal what the source counted
/// and what the stats file says.
#[test]
fn metrics_count_what_the_source_sent() {
    let dir = dump_dir();
    let file = dir.path().join("stats.json");
    let (port, metrics_port) = (free_port(), free_port());
    let metrics_addr = format!("127.0.0.1:{metrics_port}");
    let sink = start_sink(
        &[
            "--metrics",
            &metrics_addr,
            "--stats-json",
            file.to_str().unwrap(),
        ],
        port,
    );
    wait_listening(metrics_port);

    // The connection that found the sink listening is a session too:
    // counts below are differences from this first scrape, taken once it
    // has ended.
    let deadline = Instant::now() + DEADLINE;
    let before = loop {
        let s = scrape(metrics_port);
        if value(&s, "smtp_sink_sessions_total") == 1 && value(&s, "smtp_sink_sessions_open") == 0 {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "the probe session did not end: {s:?}"
        );
        thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(value(&before, "smtp_sink_messages_total"), 0);

    let mut source = Killed(
        Command::new(bin("smtp-source"))
            .args(["-m", "500", "-s", "5", "--json", "-"])
            .arg(format!("127.0.0.1:{port}"))
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start smtp-source"),
    );
    let out = source.0.stdout.take().expect("stdout");
    let report = thread::spawn(move || {
        let mut text = String::new();
        let mut out = out;
        out.read_to_string(&mut text).expect("read the report");
        text
    });

    // Scrapes while the source runs (at least one, however fast it is):
    // each must parse, and no counter may go down between two.
    let deadline = Instant::now() + DEADLINE;
    let mut last = before.clone();
    let mut scrapes = 0;
    let status = loop {
        let now = scrape(metrics_port);
        scrapes += 1;
        for (series, v) in &last {
            if series.ends_with("_total") {
                assert!(
                    now[series] >= *v,
                    "{series} went from {v} to {}",
                    now[series]
                );
            }
        }
        last = now;
        if let Some(status) = source.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "smtp-source did not finish");
        thread::sleep(Duration::from_millis(10));
    };
    let report = report.join().expect("reader");
    assert!(status.success(), "smtp-source: {status}; {report}");
    assert!(scrapes >= 1);
    let report: Value = serde_json::from_str(report.trim()).expect("the source's JSON report");
    let sent = |f: &str| {
        report[f]
            .as_u64()
            .unwrap_or_else(|| panic!("{f} in {report}"))
    };
    assert_eq!(sent("messages_sent"), 500, "{report}");

    // The last sessions may still be closing on the sink's side when the
    // source has its last reply.
    let deadline = Instant::now() + DEADLINE;
    let after = loop {
        let s = scrape(metrics_port);
        if value(&s, "smtp_sink_sessions_open") == 0
            && value(&s, "smtp_sink_sessions_total")
                >= value(&before, "smtp_sink_sessions_total") + sent("connections")
        {
            break s;
        }
        assert!(Instant::now() < deadline, "sessions did not settle: {s:?}");
        thread::sleep(Duration::from_millis(20));
    };
    for (series, field) in [
        ("smtp_sink_sessions_total", "connections"),
        ("smtp_sink_messages_total", "messages_sent"),
        ("smtp_sink_messages_accepted_total", "accepted"),
        ("smtp_sink_content_bytes_total", "bytes_sent"),
        (
            "smtp_sink_commands_total{command=\"connect\"}",
            "connections",
        ),
        ("smtp_sink_commands_total{command=\".\"}", "messages_sent"),
        (
            "smtp_sink_replies_total{command=\".\",class=\"2xx\"}",
            "accepted",
        ),
    ] {
        assert_eq!(
            value(&after, series) - value(&before, series),
            sent(field),
            "{series} vs the source's {field}"
        );
    }
    assert_eq!(value(&after, "smtp_sink_sessions_cut_total"), 0);

    let stats = stats_file_now(sink.0.id(), &file);
    for (series, path) in shared_counters(&stats) {
        assert_eq!(
            value(&after, &series),
            counter_in(&stats, &path),
            "{series} vs the stats file's {}",
            path.join("/")
        );
    }

    let missing = get(metrics_port, "/");
    assert_eq!(missing.status, 404, "{}", missing.body);
    let missing = get(metrics_port, "/metrics/x");
    assert_eq!(missing.status, 404, "{}", missing.body);
}

/// An address that cannot be bound stops the sink at start, saying why.
#[test]
fn a_taken_metrics_port_is_a_startup_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let port = free_port();
    let out = sink_command(&["--metrics", &addr.to_string()], port)
        .output()
        .expect("run smtp-sink");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "smtp-sink: fatal: --metrics {addr}: bind: Address already in use"
        )),
        "{stderr}"
    );
    // It stopped before listening for SMTP.
    assert!(TcpStream::connect(("127.0.0.1", port)).is_err());
}

// ---------------------------------------------------------------------
// The status line.

/// Our sink's command line on 127.0.0.1:port (`-u nobody` under root).
fn sink_argv(args: &[&str], port: u16) -> Vec<String> {
    let mut argv = vec![bin("smtp-sink").display().to_string()];
    if is_root() {
        argv.extend(["-u".to_owned(), "nobody".to_owned()]);
    }
    argv.extend(args.iter().map(|a| (*a).to_owned()));
    argv.extend([format!("127.0.0.1:{port}"), "128".to_owned()]);
    argv
}

fn sink_command(args: &[&str], port: u16) -> Command {
    let argv = sink_argv(args, port);
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]).stdin(Stdio::null());
    cmd
}

/// The sink under `script`, whose pseudo-terminal is its stdout and
/// stderr; script copies what is written there to its own stdout.
fn on_a_terminal(args: &[&str], port: u16) -> Command {
    let line = sink_argv(args, port)
        .iter()
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &line, "/dev/null"]).stdin(Stdio::null());
    cmd
}

/// A running process whose stdout and stderr are collected as they come.
struct Watched {
    child: Killed,
    stdout: Arc<Mutex<Vec<u8>>>,
    stderr: Arc<Mutex<Vec<u8>>>,
    readers: Vec<thread::JoinHandle<()>>,
}

impl Watched {
    fn start(cmd: &mut Command, port: u16) -> Watched {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = Killed(cmd.spawn().expect("spawn"));
        let collect = |pipe: Option<Box<dyn Read + Send>>, into: Arc<Mutex<Vec<u8>>>| {
            thread::spawn(move || {
                let Some(mut pipe) = pipe else { return };
                let mut buf = [0u8; 4096];
                while let Ok(n @ 1..) = pipe.read(&mut buf) {
                    into.lock().unwrap().extend_from_slice(&buf[..n]);
                }
            })
        };
        let (stdout, stderr) = (Arc::default(), Arc::default());
        let readers = vec![
            collect(
                child.0.stdout.take().map(|p| Box::new(p) as _),
                Arc::clone(&stdout),
            ),
            collect(
                child.0.stderr.take().map(|p| Box::new(p) as _),
                Arc::clone(&stderr),
            ),
        ];
        wait_listening(port);
        Watched {
            child,
            stdout,
            stderr,
            readers,
        }
    }

    fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned()
    }

    fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.stderr.lock().unwrap()).into_owned()
    }

    /// Waits (bounded) until `count(stdout, stderr)` reaches `n`.
    fn wait_for(&self, what: &str, n: usize, count: impl Fn(&str, &str) -> usize) {
        let deadline = Instant::now() + DEADLINE;
        while count(&self.stdout(), &self.stderr()) < n {
            assert!(
                Instant::now() < deadline,
                "no {what} after {DEADLINE:?}:\nstdout {:?}\nstderr {:?}",
                self.stdout(),
                self.stderr()
            );
            thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits (bounded) for the exit, which must be a success, and for the
    /// last output; returns (stdout, stderr).
    fn finish(mut self) -> (String, String) {
        let deadline = Instant::now() + DEADLINE;
        let status = loop {
            if let Some(s) = self.child.0.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "still running");
            thread::sleep(Duration::from_millis(20));
        };
        for r in self.readers.drain(..) {
            r.join().unwrap();
        }
        assert!(
            status.success(),
            "{status}: {:?} {:?}",
            self.stdout(),
            self.stderr()
        );
        (self.stdout(), self.stderr())
    }
}

/// One session with one message into the sink on `port`. The sinks of the
/// status tests run with `-n 2`: the connection that found them listening
/// is their first session, this one their last.
fn one_session(port: u16) {
    let out = Command::new(bin("smtp-source"))
        .args(["-m", "1", "-s", "1"])
        .arg(format!("127.0.0.1:{port}"))
        .output()
        .expect("run smtp-source");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The status texts in `text`, each checked to be
/// `open N | N msg/s | N.NN MB/s | N rejects/s`.
fn status_texts(text: &str) -> Vec<&str> {
    let mut found = Vec::new();
    let mut rest = text;
    while let Some(start) = rest.find("open ") {
        let end = rest[start..]
            .find(" rejects/s")
            .unwrap_or_else(|| panic!("an unfinished status text in {text:?}"))
            + start
            + " rejects/s".len();
        let status = &rest[start..end];
        let figures: Vec<&str> = status
            .split(" | ")
            .zip(["open ", "", "", ""])
            .map(|(part, prefix)| {
                let part = part
                    .strip_prefix(prefix)
                    .unwrap_or_else(|| panic!("{status:?}"));
                part.split(' ').next().unwrap_or_default()
            })
            .collect();
        assert_eq!(figures.len(), 4, "{status:?}");
        let units: Vec<&str> = status
            .split(" | ")
            .skip(1)
            .map(|p| p.split(' ').nth(1).unwrap_or_default())
            .collect();
        assert_eq!(units, ["msg/s", "MB/s", "rejects/s"], "{status:?}");
        for (i, figure) in figures.iter().enumerate() {
            let ok = if i == 2 {
                figure.split_once('.').is_some_and(|(a, b)| {
                    a.parse::<u64>().is_ok() && b.len() == 2 && b.parse::<u64>().is_ok()
                })
            } else {
                figure.parse::<u64>().is_ok()
            };
            assert!(ok, "figure {figure:?} in {status:?}");
        }
        found.push(status);
        rest = &rest[end..];
    }
    found
}

/// How many status lines a text shows (a redraw counts as one).
fn status_lines(text: &str) -> usize {
    text.matches(" msg/s | ").count()
}

/// On a terminal, by default: the line is drawn and redrawn in place.
/// With `-c` on a terminal: Postfix's counter, no status line.
#[test]
fn status_line_on_a_terminal_and_counter_with_c() {
    if !have("script") {
        return;
    }
    let (counting_port, status_port) = (free_port(), free_port());
    // -c first, so that it has run at least as long as the other.
    let counting = Watched::start(
        &mut on_a_terminal(&["-c", "-n", "2"], counting_port),
        counting_port,
    );
    let status = Watched::start(&mut on_a_terminal(&["-n", "2"], status_port), status_port);
    status.wait_for("status line redrawn", 2, |out, _| status_lines(out));
    one_session(counting_port);
    one_session(status_port);

    let (out, _) = status.finish();
    let drawn = status_texts(&out);
    assert!(drawn.len() >= 2, "{out:?}");
    // Redrawn in place: no line feed between two lines, the terminal's
    // erase-line sequence before each.
    assert!(!out.contains('\n'), "{out:?}");
    assert!(
        out.contains("\r\x1b[2K") || out.contains("\x1b[2K\r"),
        "{out:?}"
    );

    let (out, _) = counting.finish();
    assert!(out.contains("sess=2 quit=1 mesg=1\r"), "{out:?}");
    assert_eq!(status_lines(&out), 0, "{out:?}");
}

/// On a pipe: nothing under `auto`, Postfix's output unchanged; plain
/// lines once a second under `always`.
#[test]
fn status_line_on_a_pipe_only_when_asked() {
    let (auto_port, always_port) = (free_port(), free_port());
    let auto = Watched::start(&mut sink_command(&["-n", "2"], auto_port), auto_port);
    let always = Watched::start(
        &mut sink_command(&["--progress", "always", "-n", "2"], always_port),
        always_port,
    );
    always.wait_for("two plain status lines", 2, |_, err| status_lines(err));
    one_session(auto_port);
    one_session(always_port);

    let (out, err) = always.finish();
    assert_eq!(out, "");
    let lines: Vec<&str> = err.lines().collect();
    assert!(lines.len() >= 2, "{err:?}");
    let prog = bin("smtp-sink").display().to_string();
    for line in &lines {
        assert!(
            !line.contains(['\x1b', '\r']),
            "plain, no escapes: {line:?}"
        );
        // "<argv0>: <seconds since start>s open ..."
        let rest = line
            .strip_prefix(&format!("{prog}: "))
            .unwrap_or_else(|| panic!("{line:?}"));
        let (secs, rest) = rest.split_once("s ").unwrap_or_else(|| panic!("{line:?}"));
        assert!(secs.parse::<u64>().is_ok_and(|s| s >= 1), "{line:?}");
        assert_eq!(status_texts(rest), [rest], "{line:?}");
    }

    // What the sink printed before this feature: nothing at all.
    assert_eq!(auto.finish(), (String::new(), String::new()));
}
