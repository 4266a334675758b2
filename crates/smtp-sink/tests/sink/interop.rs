//! Real peers driving our sink: Postfix's smtp-source, Python's smtplib,
//! swaks.

use std::process::Command;
use std::time::Duration;

use crate::common::*;

fn source(addr: &Addr, args: &[&str]) -> std::process::Output {
    let mut argv: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
    argv.push(addr.arg());
    let child = Command::new(POSTFIX_SOURCE)
        .args(&argv)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start smtp-source");
    wait_child(child, Duration::from_secs(120))
}

/// Waits for a child with a bound, killing it if it overruns.
fn wait_child(mut child: std::process::Child, limit: Duration) -> std::process::Output {
    let deadline = std::time::Instant::now() + limit;
    while std::time::Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return child.wait_with_output().expect("output");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let out = child.wait_with_output().expect("output");
    panic!(
        "peer overran {limit:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn run_source(
    sink_args: &[&str],
    source_args: &[&str],
    unix: bool,
) -> (Sink, std::process::Output) {
    let sink = if unix {
        start_unix(OURS, sink_args)
    } else {
        start(OURS, sink_args)
    };
    let out = source(&sink.addr, source_args);
    (sink, out)
}

/// The peer exited 0; otherwise its stderr says why.
fn assert_succeeded(out: &std::process::Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn smtp_source_sessions_messages_and_counters() {
    if !have(POSTFIX_SOURCE) {
        return;
    }
    let (sink, out) = run_source(&["-c"], &["-s", "20", "-m", "2000"], false);
    assert_succeeded(&out);
    let c = sink.wait_counters(|c| c == (2000, 2000, 2000));
    assert_eq!(c, Some((2000, 2000, 2000)));
}

#[test]
fn smtp_source_into_a_multi_threaded_sink() {
    if !have(POSTFIX_SOURCE) {
        return;
    }
    let (sink, out) = run_source(
        &["-c", "--threads", "2"],
        &["-s", "20", "-m", "2000"],
        false,
    );
    assert_succeeded(&out);
    let c = sink.wait_counters(|c| c == (2000, 2000, 2000));
    assert_eq!(c, Some((2000, 2000, 2000)));
}

#[test]
fn smtp_source_many_messages_per_connection() {
    if !have(POSTFIX_SOURCE) {
        return;
    }
    let (sink, out) = run_source(&["-c"], &["-d", "-s", "5", "-m", "500"], false);
    assert_succeeded(&out);
    let c = sink.wait_counters(|(_, _, m)| m == 500);
    assert_eq!(c.map(|c| c.2), Some(500));
}

#[test]
fn smtp_source_recipients_into_dumps() {
    if !have(POSTFIX_SOURCE) {
        return;
    }
    let dir = open_dir();
    let template = format!("{}/%Y/m.", dir.path().display());
    let (sink, out) = run_source(
        &["-c", "-d", &template],
        &["-r", "5", "-s", "4", "-m", "40"],
        false,
    );
    assert_succeeded(&out);
    assert_eq!(
        sink.wait_counters(|(_, _, m)| m == 40).map(|c| c.2),
        Some(40)
    );
    let files = crate::dump::files(dir.path());
    assert_eq!(files.len(), 40);
    for f in &files {
        let text = std::fs::read_to_string(f).expect("dump");
        assert_eq!(text.matches("\nX-Rcpt-Args: <").count(), 5, "{text}");
        assert!(text.contains("La de da de da 4."), "{text}");
    }
}

#[test]
fn smtp_source_large_messages_lmtp_and_unix() {
    if !have(POSTFIX_SOURCE) {
        return;
    }
    let (sink, out) = run_source(&["-c"], &["-l", "102400", "-s", "5", "-m", "100"], false);
    assert_succeeded(&out);
    assert_eq!(
        sink.wait_counters(|(_, _, m)| m == 100).map(|c| c.2),
        Some(100)
    );

    let (sink, out) = run_source(
        &["-c", "-L"],
        &["-L", "-r", "3", "-s", "5", "-m", "100"],
        true,
    );
    assert_succeeded(&out);
    assert_eq!(
        sink.wait_counters(|(_, _, m)| m == 100).map(|c| c.2),
        Some(100)
    );

    let (sink, out) = run_source(&["-c"], &["-d", "-s", "5", "-m", "300"], true);
    assert_succeeded(&out);
    assert_eq!(
        sink.wait_counters(|(_, _, m)| m == 300).map(|c| c.2),
        Some(300)
    );
}

#[test]
fn smtp_source_against_rejections() {
    if !have(POSTFIX_SOURCE) {
        return;
    }
    // Without -A a rejected recipient is fatal for smtp-source.
    let (_sink, out) = run_source(&["-f", "rcpt"], &["-m", "1"], false);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("fatal: recipient rejected: 500 5.3.0 Error: command failed"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // With -A it carries on (RSET, QUIT) and exits 0; nothing is delivered.
    let (sink, out) = run_source(&["-c", "-r", "rcpt"], &["-A", "-s", "2", "-m", "20"], false);
    assert_succeeded(&out);
    assert_eq!(sink.wait_counters(|c| c == (20, 20, 0)), Some((20, 20, 0)));
    let (sink, out) = run_source(&["-c", "-f", "mail"], &["-A", "-s", "2", "-m", "20"], false);
    assert_succeeded(&out);
    assert_eq!(sink.wait_counters(|c| c == (20, 20, 0)), Some((20, 20, 0)));
}

const SMTPLIB: &str = r#"
import smtplib, socket, sys
host, port = sys.argv[1], int(sys.argv[2])
s = smtplib.SMTP(host, port, timeout=10)
code, caps = s.ehlo("py.example")
assert code == 250, code
assert s.has_extn("pipelining") and s.has_extn("8bitmime"), caps
refused = s.sendmail("a@example.org", ["b@example.org", "c@example.org"], "Subject: t\r\n\r\n.dot line\r\nbody\r\n")
assert refused == {}, refused
assert s.noop()[0] == 250
s.quit()
# Pipelining by hand: one write, all replies back in order.
raw = socket.create_connection((host, port), timeout=10)
f = raw.makefile("rb")
assert f.readline() == b"220 smtp-sink ESMTP\r\n"
raw.sendall(b"EHLO x\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n")
lines = []
while True:
    l = f.readline()
    if not l:
        break
    lines.append(l)
tail = b"".join(lines[-5:])
want = b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok\r\n221 Bye\r\n"
assert tail == want, tail
print("ok")
"#;

/// The sink's ESMTP options: clients that use none of them must not notice.
const ESMTP: &[&str] = &["-c", "--chunking", "--size", "1000000", "--smtputf8"];

#[test]
fn python_smtplib_and_raw_pipelining() {
    if !have("python3") {
        return;
    }
    for args in [&["-c"][..], ESMTP] {
        smtplib_session(args);
    }
}

fn smtplib_session(sink_args: &[&str]) {
    let sink = start(OURS, sink_args);
    let Addr::Tcp(a) = &sink.addr else {
        unreachable!()
    };
    let (host, port) = a.rsplit_once(':').expect("host:port");
    let child = Command::new("python3")
        .args(["-c", SMTPLIB, host, port])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let out = wait_child(child, Duration::from_secs(60));
    assert_succeeded(&out);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
    assert_eq!(sink.wait_counters(|c| c == (2, 2, 2)), Some((2, 2, 2)));
}

#[test]
fn swaks_with_and_without_pipelining() {
    if !have("swaks") {
        return;
    }
    for args in [&["-c"][..], ESMTP] {
        swaks_sessions(args);
    }
}

fn swaks_sessions(sink_args: &[&str]) {
    let sink = start(OURS, sink_args);
    let Addr::Tcp(a) = &sink.addr else {
        unreachable!()
    };
    let (host, port) = a.rsplit_once(':').expect("host:port");
    for extra in [&[][..], &["--pipeline"][..]] {
        let child = Command::new("swaks")
            .args([
                "--server",
                host,
                "--port",
                port,
                "--from",
                "a@example.org",
                "--to",
                "b@example.org",
            ])
            .args(extra)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("swaks");
        let out = wait_child(child, Duration::from_secs(60));
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{text}");
        assert!(
            text.contains("<-  250 2.0.0 Ok")
                || text.contains("<** 250 2.0.0 Ok")
                || text.contains("250 2.0.0 Ok"),
            "{text}"
        );
        assert!(text.contains("221 Bye"), "{text}");
    }
    assert_eq!(sink.wait_counters(|c| c.2 == 2).map(|c| c.2), Some(2));
}

#[test]
fn smtpping_measures_every_phase() {
    if !have("smtpping") {
        return;
    }
    let sink = start(OURS, &["-c"]);
    let Addr::Tcp(a) = &sink.addr else {
        unreachable!()
    };
    let (host, port) = a.rsplit_once(':').expect("host:port");
    let child = Command::new("smtpping")
        .args([
            "-c",
            "3",
            "-w",
            "50",
            "-s",
            "2",
            "-p",
            port,
            "x@example.org",
        ])
        .arg(format!("@{host}"))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("smtpping");
    let out = wait_child(child, Duration::from_secs(60));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    // One line per message with every phase timed, then the statistics.
    let pings = text.lines().filter(|l| l.starts_with("seq=")).count();
    assert_eq!(pings, 3, "{text}");
    assert!(
        text.lines()
            .filter(|l| l.starts_with("seq="))
            .all(|l| l.contains("datasent=") && l.contains("quit=")),
        "{text}"
    );
    assert!(text.contains("3 e-mail messages transmitted"), "{text}");
    assert_eq!(sink.wait_counters(|c| c == (3, 3, 3)), Some((3, 3, 3)));
}
