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

// ---- TLS and AUTH (--starttls, --tls-on-connect, --auth-users) ----

/// A users file for `--auth-users`, in a directory that lives as long as
/// the returned guard.
fn users() -> (tempfile::TempDir, String) {
    let dir = open_dir();
    let path = dir.path().join("users");
    std::fs::write(&path, "alice:secret\nbob:hunter2\n").expect("users");
    let path = path.to_str().expect("utf-8").to_owned();
    (dir, path)
}

fn host_port(sink: &Sink) -> (String, String) {
    let Addr::Tcp(a) = &sink.addr else {
        unreachable!()
    };
    let (h, p) = a.rsplit_once(':').expect("host:port");
    (h.to_owned(), p.to_owned())
}

/// The whole last `-c` line, once it starts with `start` (10 s at most).
fn count_line(sink: &Sink, start: &str) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = sink.stdout();
        let last = text.split('\r').rfind(|l| !l.is_empty()).unwrap_or("");
        if last.starts_with(start) || std::time::Instant::now() > deadline {
            return last.to_owned();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// swaks with TLS needs Net::SSLeay (Debian: libnet-ssleay-perl).
fn swaks_has_tls() -> bool {
    let out = Command::new("swaks")
        .arg("--support")
        .output()
        .expect("swaks --support");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    let ok = text.contains("TLS supported");
    if !ok {
        assert!(
            std::env::var_os("CI").is_none(),
            "swaks lacks TLS (Net::SSLeay, Debian's libnet-ssleay-perl): {text}"
        );
        eprintln!("SKIP: swaks has no TLS support");
    }
    ok
}

#[test]
fn swaks_over_starttls_and_tls_on_connect_with_auth() {
    if !have("swaks") || !swaks_has_tls() {
        return;
    }
    let (_dir, users) = users();
    let starttls = start(OURS, &["-c", "--starttls", "--auth-users", &users]);
    let smtps = start(OURS, &["-c", "--tls-on-connect", "--auth-users", &users]);
    let alice = ["--auth-user", "alice", "--auth-password", "secret"];
    // (sink, swaks options, exit status, what the transcript must show)
    let runs: &[(&Sink, Vec<&str>, i32, &[&str])] = &[
        (
            &starttls,
            vec!["-tls"],
            0,
            &[
                "<-  220 2.0.0 Ready to start TLS",
                "<~  250 2.0.0 Ok",
                "<~  221 Bye",
            ],
        ),
        (
            &starttls,
            [&["-tls", "--auth", "PLAIN"][..], &alice].concat(),
            0,
            &[
                "<~  235 2.7.0 Authentication successful",
                "<~  250 2.0.0 Ok",
            ],
        ),
        (
            &starttls,
            [&["-tls", "--auth", "LOGIN"][..], &alice].concat(),
            0,
            &[
                "<~  334 VXNlcm5hbWU6",
                "<~  334 UGFzc3dvcmQ6",
                "<~  235 2.7.0 Authentication successful",
            ],
        ),
        (
            &starttls,
            vec![
                "-tls",
                "--auth",
                "PLAIN",
                "--auth-user",
                "alice",
                "--auth-password",
                "wrong",
            ],
            28,
            &["535 5.7.8 Authentication credentials invalid"],
        ),
        // In the clear AUTH is not offered, so swaks does not even try.
        (
            &starttls,
            [&["--auth", "PLAIN"][..], &alice].concat(),
            28,
            &["Host did not advertise authentication"],
        ),
        (
            &smtps,
            [&["--tls-on-connect", "--auth", "PLAIN"][..], &alice].concat(),
            0,
            &[
                "<~  220 smtp-sink ESMTP",
                "<~  235 2.7.0",
                "<~  250 2.0.0 Ok",
            ],
        ),
        (
            &smtps,
            [&["--tls-on-connect", "--auth", "LOGIN"][..], &alice].concat(),
            0,
            &["<~  334 UGFzc3dvcmQ6", "<~  235 2.7.0", "<~  250 2.0.0 Ok"],
        ),
    ];
    for (sink, opts, status, want) in runs {
        let (host, port) = host_port(sink);
        let child = Command::new("swaks")
            .args(["--server", &host, "--port", &port])
            .args(["--from", "a@example.org", "--to", "b@example.org"])
            .args(opts)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("swaks");
        let out = wait_child(child, Duration::from_secs(60));
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(*status), "{opts:?}: {text}");
        for w in *want {
            assert!(text.contains(w), "{opts:?}: no {w:?} in {text}");
        }
        // swaks never shows the password in clear.
        assert!(!text.contains("secret"), "{text}");
    }
    assert_eq!(
        count_line(&starttls, "sess=5 "),
        "sess=5 quit=5 mesg=3 tlsfull=4 tlsresumed=0 tlsfail=0 authok=2 authfail=1"
    );
    assert_eq!(
        count_line(&smtps, "sess=2 "),
        "sess=2 quit=2 mesg=2 tlsfull=2 tlsresumed=0 tlsfail=0 authok=2 authfail=0"
    );
}

/// Runs `openssl s_client` with `args`, feeding it `script` (LF lines,
/// sent with CRLF), until the sink closes.
fn s_client(args: &[&str], script: &str) -> (std::process::Output, String) {
    let mut child = Command::new("openssl")
        .arg("s_client")
        .args(["-quiet", "-crlf"])
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("openssl s_client");
    {
        use std::io::Write as _;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(script.as_bytes()).expect("script");
    }
    let out = wait_child(child, Duration::from_secs(60));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out, text)
}

#[test]
fn openssl_s_client_starttls_smtp_and_implicit_tls() {
    if !have("openssl") {
        return;
    }
    let dir = open_dir();
    let template = format!("{}/m.", dir.path().display());
    let sink = start(OURS, &["-c", "--starttls", "-d", &template]);
    let (host, port) = host_port(&sink);
    let connect = format!("{host}:{port}");
    // s_client says EHLO and STARTTLS itself, then hands over.
    let (out, text) = s_client(
        &["-starttls", "smtp", "-connect", &connect],
        "EHLO s-client.example\nMAIL FROM:<a@example.org>\nRCPT TO:<b@example.org>\nDATA\n\
Subject: s_client\n\nover TLS\n.\nQUIT\n",
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains(
            "250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok\r\n221 Bye\r\n"
        ),
        "{text}{stderr}"
    );
    assert!(!text.contains("250-STARTTLS"), "{text}");
    assert_eq!(
        count_line(&sink, "sess=1 "),
        "sess=1 quit=1 mesg=1 tlsfull=1 tlsresumed=0 tlsfail=0"
    );
    let records = crate::dump::files(dir.path());
    assert_eq!(records.len(), 1);
    let rec = String::from_utf8(std::fs::read(&records[0]).expect("record")).expect("utf-8");
    assert!(
        rec.contains("\nX-Client-Proto: ESMTP\nX-Client-TLS: TLSv1.3 TLS13_"),
        "{rec}"
    );
    assert!(
        rec.ends_with("\nSubject: s_client\n\nover TLS\n\n"),
        "{rec}"
    );

    let smtps = start(OURS, &["-c", "--tls-on-connect"]);
    let (host, port) = host_port(&smtps);
    let (out, text) = s_client(
        &["-connect", &format!("{host}:{port}")],
        "EHLO s-client.example\nMAIL FROM:<a@example.org>\nRCPT TO:<b@example.org>\nDATA\nhi\n.\nQUIT\n",
    );
    assert!(
        text.starts_with("220 smtp-sink ESMTP\r\n250-smtp-sink\r\n")
            && text.ends_with("250 2.0.0 Ok\r\n221 Bye\r\n"),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        count_line(&smtps, "sess=1 "),
        "sess=1 quit=1 mesg=1 tlsfull=1 tlsresumed=0 tlsfail=0"
    );
}

const SMTPLIB_TLS: &str = r#"
import base64, smtplib, sys
host, starttls_port, smtps_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
msg = "Subject: t\r\n\r\nbody\r\n"
# STARTTLS: in the clear no AUTH is offered, and AUTH sent anyway gets 538.
s = smtplib.SMTP(host, starttls_port, timeout=10)
s.ehlo("py.example")
assert s.has_extn("starttls") and not s.has_extn("auth"), s.esmtp_features
code, text = s.docmd("AUTH", "PLAIN " + base64.b64encode(b"\0alice\0secret").decode())
assert code == 538 and text == b"5.7.11 Encryption required for requested authentication mechanism", (code, text)
code, text = s.starttls()
assert code == 220 and text == b"2.0.0 Ready to start TLS", (code, text)
s.ehlo("py.example")
assert s.has_extn("auth") and not s.has_extn("starttls"), s.esmtp_features
try:
    s.login("alice", "wrong")
    raise AssertionError("a wrong password was accepted")
except smtplib.SMTPAuthenticationError as e:
    assert e.smtp_code == 535 and e.smtp_error == b"5.7.8 Authentication credentials invalid", e
code, text = s.login("alice", "secret")
assert code == 235 and text == b"2.7.0 Authentication successful", (code, text)
assert s.sendmail("a@example.org", ["b@example.org"], msg) == {}
s.quit()
# LOGIN without an initial response: both prompts.
s = smtplib.SMTP(host, starttls_port, timeout=10)
s.starttls()
s.ehlo("py.example")
s.user, s.password = "bob", "hunter2"
code, text = s.auth("LOGIN", s.auth_login, initial_response_ok=False)
assert code == 235, (code, text)
assert s.sendmail("a@example.org", ["b@example.org"], msg) == {}
s.quit()
# Implicit TLS.
s = smtplib.SMTP_SSL(host, smtps_port, timeout=10)
s.ehlo("py.example")
assert s.has_extn("auth") and not s.has_extn("starttls"), s.esmtp_features
s.login("bob", "hunter2")
assert s.sendmail("a@example.org", ["b@example.org"], msg) == {}
s.quit()
print("ok")
"#;

#[test]
fn python_smtplib_starttls_login_and_smtp_ssl() {
    if !have("python3") {
        return;
    }
    let (_dir, users) = users();
    let starttls = start(OURS, &["-c", "--starttls", "--auth-users", &users]);
    let smtps = start(OURS, &["-c", "--tls-on-connect", "--auth-users", &users]);
    let (host, p1) = host_port(&starttls);
    let (_, p2) = host_port(&smtps);
    let child = Command::new("python3")
        .args(["-c", SMTPLIB_TLS, &host, &p1, &p2])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python3");
    let out = wait_child(child, Duration::from_secs(60));
    assert_succeeded(&out);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "ok");
    // login() with a wrong password tries PLAIN, then LOGIN: two 535s.
    assert_eq!(
        count_line(&starttls, "sess=2 "),
        "sess=2 quit=2 mesg=2 tlsfull=2 tlsresumed=0 tlsfail=0 authok=2 authfail=2"
    );
    assert_eq!(
        count_line(&smtps, "sess=1 "),
        "sess=1 quit=1 mesg=1 tlsfull=1 tlsresumed=0 tlsfail=0 authok=1 authfail=0"
    );
}
