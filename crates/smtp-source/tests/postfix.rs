//! Interop with the real Postfix programs: our source against Postfix's
//! `smtp-sink` (its `-c` counters checked), and a differential run of
//! Postfix's `smtp-source` and ours into `smtp-sink -D`, dump records
//! compared after normalising what legitimately differs.
//!
//! Without Postfix installed these tests skip locally and fail in CI.

mod support;

use std::{
    io::Read,
    path::Path,
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex},
    thread,
    time::{Duration, Instant},
};

use support::{require, run_program, source};

const SINK: &str = "/usr/sbin/smtp-sink";
const POSTFIX_SOURCE: &str = "/usr/sbin/smtp-source";

/// A running Postfix smtp-sink, killed on drop.
struct Sink {
    child: Child,
    addr: String,
    stdout: Arc<Mutex<Vec<u8>>>,
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn root_args() -> Vec<String> {
    // Postfix's sink refuses to run as root without -u.
    if nix_euid() == 0 {
        vec!["-u".to_owned(), "nobody".to_owned()]
    } else {
        Vec::new()
    }
}

#[allow(unsafe_code)]
fn nix_euid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Sink {
    /// Starts `smtp-sink [args] ADDR 100` on a fresh loopback port (or
    /// the given `unix:` address) and waits until it accepts.
    fn start(args: &[&str], unix: Option<&Path>) -> Sink {
        let addr = match unix {
            Some(p) => format!("unix:{}", p.display()),
            None => format!("127.0.0.1:{}", free_port()),
        };
        let mut cmd = Command::new(SINK);
        cmd.args(root_args())
            .args(args)
            .arg(&addr)
            .arg("100")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().expect("start smtp-sink");
        let stdout = Arc::new(Mutex::new(Vec::new()));
        let mut pipe = child.stdout.take().unwrap();
        let buf = Arc::clone(&stdout);
        thread::spawn(move || {
            let mut chunk = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut chunk) {
                if n == 0 {
                    break;
                }
                buf.lock().unwrap().extend_from_slice(&chunk[..n]);
            }
        });
        let sink = Sink {
            child,
            addr,
            stdout,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let up = match unix {
                Some(p) => std::os::unix::net::UnixStream::connect(p).is_ok(),
                None => std::net::TcpStream::connect(sink.addr.trim_start_matches("inet:")).is_ok(),
            };
            if up {
                break;
            }
            assert!(Instant::now() < deadline, "smtp-sink did not start");
            thread::sleep(Duration::from_millis(20));
        }
        sink
    }

    /// Waits (bounded) until the sink's `-c` line reads `want`, and
    /// returns the last line. The readiness probe above counts as one
    /// session, so `sess` is offset by one.
    fn wait_counter(&self, want: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let out = String::from_utf8_lossy(&self.stdout.lock().unwrap()).into_owned();
            let last = out
                .rsplit('\r')
                .find(|s| !s.is_empty())
                .unwrap_or("")
                .to_owned();
            if last == want || Instant::now() > deadline {
                return last;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }
}

fn check_counter(args: &[&str], sink_args: &[&str], unix: bool, want: &str) {
    let dir = tempfile::tempdir().unwrap();
    make_world_writable(dir.path());
    let path = dir.path().join("sock");
    let mut all = vec!["-c"];
    all.extend_from_slice(sink_args);
    let sink = Sink::start(&all, unix.then_some(path.as_path()));
    let mut ours: Vec<&str> = args.to_vec();
    ours.push(&sink.addr);
    let run = source(&ours);
    assert_eq!(run.code, Some(0), "{args:?}: {run:?}");
    assert_eq!(run.stderr, "", "{args:?}");
    assert_eq!(sink.wait_counter(want), want, "{args:?}");
}

fn make_world_writable(p: &Path) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777)).unwrap();
}

#[test]
fn against_postfix_sink_tcp() {
    if !require(SINK) {
        return;
    }
    // The probe connection is session 1 (no QUIT, no message).
    check_counter(&["-m", "1"], &[], false, "sess=2 quit=1 mesg=1");
    check_counter(&["-d", "-m", "100"], &[], false, "sess=2 quit=1 mesg=100");
    check_counter(
        &["-d", "-r", "10", "-m", "20"],
        &[],
        false,
        "sess=2 quit=1 mesg=20",
    );
    check_counter(
        &["-d", "-l", "102400", "-m", "20"],
        &[],
        false,
        "sess=2 quit=1 mesg=20",
    );
    check_counter(
        &["-s", "50", "-m", "5000"],
        &[],
        false,
        "sess=5001 quit=5000 mesg=5000",
    );
}

#[test]
fn against_postfix_sink_unix_and_lmtp() {
    if !require(SINK) {
        return;
    }
    check_counter(&["-d", "-m", "50"], &[], true, "sess=2 quit=1 mesg=50");
    check_counter(
        &["-s", "5", "-m", "50"],
        &[],
        true,
        "sess=51 quit=50 mesg=50",
    );
    check_counter(
        &["-L", "-d", "-r", "3", "-m", "10"],
        &["-L"],
        false,
        "sess=2 quit=1 mesg=10",
    );
}

/// Runs `program args ADDR` into a fresh `smtp-sink -D` and returns the
/// dump file's content.
fn dump_of(program: &str, args: &[&str], file: Option<&Path>) -> String {
    let dir = tempfile::tempdir().unwrap();
    make_world_writable(dir.path());
    let dump = dir.path().join("dump");
    let tmpl = dump.to_str().unwrap().to_owned();
    let lmtp = args.contains(&"-L");
    let sink_args: &[&str] = if lmtp {
        &["-L", "-D", &tmpl]
    } else {
        &["-D", &tmpl]
    };
    let sink = Sink::start(sink_args, None);
    let mut all: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    if let Some(f) = file {
        all.push("-F".to_owned());
        all.push(f.to_str().unwrap().to_owned());
    }
    all.push(sink.addr.clone());
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let run = run_program(program, &refs, Duration::from_secs(30));
    assert_eq!(run.code, Some(0), "{program} {args:?}: {run:?}");
    // The sink appends each record at end of data; wait until the
    // expected number of records is there.
    let want = args
        .iter()
        .position(|a| *a == "-m")
        .map_or(1, |i| args[i + 1].parse::<usize>().unwrap());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(&dump).unwrap_or_default();
        if text.matches("X-Client-Addr: ").count() >= want || Instant::now() > deadline {
            return text;
        }
        thread::sleep(Duration::from_millis(20));
    }
}

/// Blanks what differs between runs and between 3.7 and 3.12: the
/// Received id and date, the Date header (and its day padding),
/// Message-Id, and recipient numbering.
fn normalize_dump(text: &str) -> String {
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        let l = line.trim_end_matches('\n');
        let norm = if l.starts_with("\tby ") {
            let cut = l.rfind(" id ").map_or(l.len(), |i| i + 4);
            format!("{}ID;", &l[..cut])
        } else if l.starts_with('\t') {
            "\tDATE".to_owned()
        } else if l.starts_with("Date: ") {
            "Date: DATE".to_owned()
        } else if l.starts_with("Message-Id: ") {
            "Message-Id: ID".to_owned()
        } else if l.starts_with("X-Rcpt-Args: ") || l.starts_with("To: ") {
            // 3.7 numbers as <3rcpt@…>/<1rcpt@…>, 3.12 as <rcpt0@…>.
            let strip: String = l.chars().filter(|c| !c.is_ascii_digit()).collect();
            strip
        } else {
            l.to_owned()
        };
        out.push_str(&norm);
        out.push('\n');
    }
    out
}

#[test]
fn differential_against_postfix_source() {
    if !require(SINK) || !require(POSTFIX_SOURCE) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = support::tmp_file(
        dir.path(),
        "msg",
        b"Subject: file\n\n.leading dot\n..two\n.\nno final newline",
    );
    let common = [
        "-M",
        "client.example",
        "-f",
        "s@example.org",
        "-t",
        "r@example.net",
    ];
    let cases: Vec<(Vec<&str>, bool)> = vec![
        (vec!["-m", "1"], false),
        (vec!["-d", "-m", "3", "-S", "Test subject"], false),
        (vec!["-d", "-m", "2", "-l", "1000"], false),
        (vec!["-d", "-m", "2", "-r", "3"], false),
        (vec!["-d", "-m", "2", "-o"], false),
        (vec!["-m", "1"], true),
        (vec!["-L", "-m", "1"], false),
    ];
    for (args, with_file) in cases {
        let mut all: Vec<&str> = common.to_vec();
        all.extend_from_slice(&args);
        let f = with_file.then_some(file.as_path());
        let theirs = dump_of(POSTFIX_SOURCE, &all, f);
        let ours = dump_of(support::bin(), &all, f);
        assert!(!theirs.is_empty(), "{all:?}: Postfix produced no dump");
        assert_eq!(
            normalize_dump(&ours),
            normalize_dump(&theirs),
            "{all:?} (file: {with_file})"
        );
    }
}

/// A scripted server's reply rule.
type ScriptFn = fn(&support::Ctx, &support::Cmd) -> support::Act;

/// Every byte Postfix's smtp-source sends, compared with ours, through
/// the recording server (the sink's dump strips CRs; this does not).
fn raw_transcripts(
    program: &str,
    args: &[&str],
    script: impl Fn(&support::Ctx, &support::Cmd) -> support::Act + Send + Sync + 'static,
) -> (Vec<String>, String) {
    let server = support::Server::start(script);
    let mut all: Vec<&str> = args.to_vec();
    all.push(&server.addr);
    let run = run_program(program, &all, Duration::from_secs(30));
    let conns = args
        .iter()
        .position(|a| *a == "-m")
        .filter(|_| !args.contains(&"-d"))
        .map_or(1, |i| args[i + 1].parse::<usize>().unwrap());
    let recs = server.records(conns);
    let texts = recs
        .iter()
        .map(|r| normalize_raw(&r.text(), run.pid))
        .collect();
    (
        texts,
        format!(
            "{:?} {}",
            as_postfix(run.code),
            run.stderr.replace(program, "PROG")
        ),
    )
}

/// Our exit status as Postfix's: a fatal error exits with a code naming
/// its phase (21-31, docs/smtp-source.md "Exit status") where Postfix
/// exits 1; everything else is the same. The phase codes themselves are
/// checked in tests/measure.rs.
fn as_postfix(code: Option<i32>) -> Option<i32> {
    match code {
        Some(21..=31) => Some(1),
        other => other,
    }
}

fn normalize_raw(text: &str, pid: u32) -> String {
    let pid_hex = format!("<{pid:04x}.");
    text.split_inclusive("\r\n")
        .map(|l| {
            if l.starts_with("Date: ") {
                "Date: DATE\r\n".to_owned()
            } else if l.starts_with("RCPT TO:") || l.starts_with("To: ") {
                l.chars().filter(|c| !c.is_ascii_digit()).collect()
            } else {
                l.replace(&pid_hex, "<PID.")
            }
        })
        .collect()
}

fn reject_second_rcpt(ctx: &support::Ctx, cmd: &support::Cmd) -> support::Act {
    match cmd {
        support::Cmd::Line(l) if l.starts_with("RCPT") && ctx.rcpts == 1 => {
            support::Act::reply("550 5.1.1 no")
        }
        _ => support::sink(ctx, cmd),
    }
}

fn reject_mail(ctx: &support::Ctx, cmd: &support::Cmd) -> support::Act {
    match cmd {
        support::Cmd::Line(l) if l.starts_with("MAIL") => support::Act::reply("451 4.3.0 later"),
        _ => support::sink(ctx, cmd),
    }
}

#[test]
fn raw_bytes_match_postfix_source() {
    if !require(POSTFIX_SOURCE) {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let file = support::tmp_file(dir.path(), "msg", b"Subject: f\n\n.dot\nlast");
    let file = file.to_str().unwrap().to_owned();
    let cases: Vec<(Vec<&str>, ScriptFn)> = vec![
        (vec![], support::sink),
        (vec!["-o"], support::sink),
        (vec!["-l", "250", "-S", "Test subject"], support::sink),
        (vec!["-d", "-m", "3"], support::sink),
        (vec!["-m", "2", "-l", "1000"], support::sink),
        (vec!["-r", "3", "-d", "-m", "2"], support::sink),
        (vec!["-F", &file], support::sink),
        (vec!["-L", "-r", "2"], support::lmtp_sink),
        (vec!["-A", "-r", "2"], reject_second_rcpt),
        (vec!["-A", "-d", "-m", "2"], reject_mail),
        // Fatal: same text and status (Postfix also sleeps 1 s first).
        (vec!["-r", "2"], reject_second_rcpt),
    ];
    for (extra, script) in cases {
        let mut args = vec!["-M", "client.example", "-t", "rcpt@example.org"];
        args.extend_from_slice(&extra);
        let theirs = raw_transcripts(POSTFIX_SOURCE, &args, script);
        let ours = raw_transcripts(support::bin(), &args, script);
        assert!(!theirs.0.is_empty(), "{args:?}");
        assert_eq!(ours, theirs, "{args:?}");
        eprintln!(
            "{args:?}: {} connection(s), {} bytes, {}",
            ours.0.len(),
            ours.0.iter().map(String::len).sum::<usize>(),
            ours.1
        );
    }
}

fn close_on(verb: &'static str) -> ScriptFn {
    match verb {
        "CONNECT" => |_, cmd| match cmd {
            support::Cmd::Connect => support::Act::Close,
            _ => support::Act::Silence,
        },
        "HELO" => |ctx, cmd| match cmd {
            support::Cmd::Line(l) if l.starts_with("HELO") || l.starts_with("LHLO") => {
                support::Act::Close
            }
            _ => support::sink(ctx, cmd),
        },
        "MAIL" => |ctx, cmd| match cmd {
            support::Cmd::Line(l) if l.starts_with("MAIL") => support::Act::Close,
            _ => support::sink(ctx, cmd),
        },
        "RCPT" => |ctx, cmd| match cmd {
            support::Cmd::Line(l) if l.starts_with("RCPT") => support::Act::Close,
            _ => support::sink(ctx, cmd),
        },
        "DATA" => |ctx, cmd| match cmd {
            support::Cmd::Line(l) if l.starts_with("DATA") => support::Act::Close,
            _ => support::sink(ctx, cmd),
        },
        _ => |ctx, cmd| match cmd {
            support::Cmd::EndOfData => support::Act::Close,
            _ => support::sink(ctx, cmd),
        },
    }
}

/// The "lost connection while <phase>" text of every phase, and the
/// exit status, are Postfix's.
#[test]
fn lost_connection_texts_match_postfix_source() {
    if !require(POSTFIX_SOURCE) {
        return;
    }
    for verb in ["CONNECT", "HELO", "MAIL", "RCPT", "DATA", "."] {
        for extra in [&[][..], &["-L"][..]] {
            let mut args = vec!["-M", "client.example"];
            args.extend_from_slice(extra);
            let theirs = raw_transcripts(POSTFIX_SOURCE, &args, close_on(verb));
            let ours = raw_transcripts(support::bin(), &args, close_on(verb));
            assert!(
                theirs.1.contains("fatal: lost connection"),
                "{verb}: {theirs:?}"
            );
            assert_eq!(ours.1, theirs.1, "{verb} {extra:?}");
        }
    }
}

/// A server that answers `verb` (or the greeting, or ".") with `reply`.
fn reject_on(
    verb: &'static str,
    reply: &'static str,
) -> impl Fn(&support::Ctx, &support::Cmd) -> support::Act + Send + Sync + Clone + 'static {
    move |ctx, cmd| {
        let hit = match cmd {
            support::Cmd::Connect => verb == "CONNECT",
            support::Cmd::EndOfData => verb == ".",
            support::Cmd::Line(l) => {
                l.starts_with(verb) || (verb == "HELO" && l.starts_with("LHLO"))
            }
        };
        if hit {
            support::Act::reply(reply)
        } else {
            support::lmtp_sink(ctx, cmd)
        }
    }
}

/// Rejections in every phase, with and without -A (and 421 under -A),
/// in SMTP and LMTP: the same bytes, texts and exit status as Postfix.
#[test]
fn rejections_match_postfix_source() {
    if !require(POSTFIX_SOURCE) {
        return;
    }
    let phases = ["CONNECT", "HELO", "MAIL", "RCPT", "DATA", "."];
    for verb in phases {
        for (extra, reply) in [
            (&[][..], "550 5.7.1 no"),
            (&["-L"][..], "550 5.7.1 no"),
            (&["-A", "-m", "2"][..], "554 5.7.1 no"),
            (&["-A", "-d", "-m", "2"][..], "451 4.3.0 later"),
            (&["-A", "-m", "2"][..], "421 4.3.2 closing"),
            (&["-A", "-d", "-m", "2", "-L"][..], "550 5.1.1 no"),
            (
                &[][..],
                "550-5.1.1  first\r\n550- \tsecond\r\n550  third\x01",
            ),
            (&["-A", "-m", "2"][..], "451-4.3.0 a\r\n451 \t b"),
        ] {
            let mut args = vec!["-M", "client.example"];
            args.extend_from_slice(extra);
            let theirs = raw_transcripts(POSTFIX_SOURCE, &args, reject_on(verb, reply));
            let ours = raw_transcripts(support::bin(), &args, reject_on(verb, reply));
            assert_eq!(ours, theirs, "{verb} {args:?} {reply}");
        }
    }
}

/// Address errors (parsing, families, services, unix paths) and option
/// errors print what Postfix prints, with the same status.
#[test]
fn address_and_option_errors_match_postfix_source() {
    if !require(POSTFIX_SOURCE) {
        return;
    }
    let cases: [&[&str]; 14] = [
        &["-6", "127.0.0.1:25"],
        &["-4", "[::1]:25"],
        &["[a"],
        &[":25"],
        &["127.0.0.1:nosuchsvc"],
        &["a..b"],
        &["[::1]x"],
        &["127.0.0.1:25x"],
        &["-s", "0", "x"],
        &["-l", "abc", "x"],
        &["-w", "1", "-R", "1", "x"],
        &["-M", "a!b", "x"],
        &["-h", "x"],
        &[],
    ];
    let run = |program: &str, args: &[&str]| {
        let r = run_program(program, args, Duration::from_secs(30));
        (as_postfix(r.code), r.stderr.replace(program, "PROG"))
    };
    for args in cases {
        assert_eq!(
            run(support::bin(), args),
            run(POSTFIX_SOURCE, args),
            "{args:?}"
        );
    }
    // A failed connect names the address, then says what Postfix says.
    let unix = ["unix:/nonexistent/sock"];
    let (code, theirs) = run(POSTFIX_SOURCE, &unix);
    assert_eq!(
        run(support::bin(), &unix),
        (
            code,
            theirs.replace("fatal: connect:", "fatal: unix:/nonexistent/sock: connect:")
        )
    );
}
