//! Exact reply bytes from the real binary, option by option.

use std::process::Command;
use std::time::Duration;

use crate::common::*;

const GREET: &str = "220 smtp-sink ESMTP\r\n";
const EHLO_ALL: &str = "250-smtp-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n\
250-XCLIENT NAME HELO\r\n250-XFORWARD NAME ADDR PROTO HELO\r\n250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250 \r\n";
const UNKNOWN: &str = "500 5.5.1 Error: unknown command\r\n";

fn check(args: &[&str], chunks: &[&str], want: &str) {
    let mut sink = start(OURS, args);
    let chunks: Vec<&[u8]> = chunks.iter().map(|c| c.as_bytes()).collect();
    let got = converse(&sink.addr, &chunks);
    if got != want.as_bytes() {
        let port = match &sink.addr {
            Addr::Tcp(a) => a
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .unwrap_or(0),
            Addr::Unix(_) => 0,
        };
        let listening = listeners(port);
        let out = stop(&mut sink);
        panic!(
            "args {args:?} on {:?} ({listening} listeners)\ngot:  {}\nwant: {}\nstderr: {}",
            sink.addr,
            show(&got),
            show(want.as_bytes()),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn default_session_and_protocol_errors() {
    check(
        &[],
        &[
            "EHLO client.example\r\n",
            "MAIL FROM:<a>\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n",
            "Subject: x\r\n\r\nbody\r\n.\r\n",
            "RCPT TO:<b>\r\nDATA\r\nEXPN x\r\nSTARTTLS\r\nBDAT 1\r\n\r\n.\r\nNOOP\nNOOP\r\n",
            "QUIT\r\n",
        ],
        &[
            GREET,
            EHLO_ALL,
            "250 2.1.0 Ok\r\n503 5.5.1 Error: nested MAIL command\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n",
            "250 2.0.0 Ok\r\n",
            "503 5.5.1 Error: need MAIL command\r\n503 5.5.1 Error: need RCPT command\r\n",
            UNKNOWN,
            UNKNOWN,
            UNKNOWN,
            "500 5.5.2 Error: unknown command\r\n250 2.0.0 Ok\r\n",
            UNKNOWN,
            "221 Bye\r\n<EOF>",
        ]
        .concat(),
    );
}

#[test]
fn greeting_and_ehlo_options() {
    check(
        &["-e", "-h", "vm"],
        &["EHLO x\r\nHELO x\r\n"],
        &format!("220 vm\r\n{UNKNOWN}250 vm\r\n"),
    );
    check(
        &["-P"],
        &["EHLO x\r\nHELO x\r\n"],
        &format!("220 ********\r\n{UNKNOWN}250 smtp-sink\r\n"),
    );
    check(
        &["-8aCFENp"],
        &["EHLO x\r\nXCLIENT NAME=a\r\nXFORWARD NAME=a\r\nAUTH PLAIN\r\n"],
        &format!("{GREET}250-smtp-sink\r\n250 \r\n{UNKNOWN}{UNKNOWN}250 2.0.0 Ok\r\n"),
    );
    check(
        &["-a", "-E"],
        &["EHLO x\r\n"],
        &format!(
            "{GREET}250-smtp-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-XCLIENT NAME HELO\r\n\
250-XFORWARD NAME ADDR PROTO HELO\r\n250-DSN\r\n250 \r\n"
        ),
    );
}

#[test]
fn lmtp() {
    check(
        &["-L"],
        &[
            "EHLO x\r\nHELO x\r\nLHLO x\r\n",
            "MAIL FROM:<a>\r\nRCPT TO:<b>\r\nRCPT TO:<c>\r\nRCPT TO:<d>\r\nDATA\r\n",
            "x\r\n.\r\n",
        ],
        &format!(
            "{GREET}{UNKNOWN}{UNKNOWN}{EHLO_ALL}250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n\
354 End data with <CR><LF>.<CR><LF>\r\n{}",
            "250 2.2.0 Ok\r\n".repeat(3)
        ),
    );
}

#[test]
fn reject_and_close_lists() {
    check(
        &["-f", "rcpt .", "-B", "554 5.7.1 Go away"],
        &["EHLO x\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\n"],
        &format!(
            "{GREET}250-smtp-sink\r\n250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n250-XCLIENT NAME HELO\r\n\
250-XFORWARD NAME ADDR PROTO HELO\r\n250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250 \r\n250 2.1.0 Ok\r\n554 5.7.1 Go away\r\n"
        ),
    );
    check(
        &["-r", "mail,helo"],
        &["HELO x\r\nMAIL FROM:<a>\r\n"],
        &format!("{GREET}{}", "450 4.3.0 Error: command failed\r\n".repeat(2)),
    );
    check(
        &["-f", "connect"],
        &["NOOP\r\n"],
        "500 5.3.0 Error: command failed\r\n250 2.0.0 Ok\r\n",
    );
    check(
        &["-Q", "rcpt"],
        &["MAIL FROM:<a>\r\nRCPT TO:<b>\r\n"],
        &format!("{GREET}250 2.1.0 Ok\r\n421 4.0.0 Server closing connection\r\n<EOF>"),
    );
    check(
        &["-q", "data"],
        &["MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n"],
        &format!("{GREET}250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n<EOF>"),
    );
    check(&["-q", "connect"], &[], "<EOF>");
    check(
        &["-r", ".", "-b", "451 4.3.5 later", "-L"],
        &["LHLO x\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nRCPT TO:<c>\r\nDATA\r\n", "x\r\n.\r\n"],
        &format!(
            "{GREET}{}250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n\
451 4.3.5 later\r\n451 4.3.5 later\r\n",
            EHLO_ALL.replace("250-PIPELINING\r\n", "")
        ),
    );
}

#[test]
fn overlong_line_closes_without_reply() {
    let long = format!("NOOP {}\r\n", "x".repeat(3000));
    check(&[], &[&long], &format!("{GREET}<EOF>"));
    let ok = format!("NOOP {}\r\n", "x".repeat(2041));
    check(&[], &[&ok], &format!("{GREET}250 2.0.0 Ok\r\n"));
}

#[test]
fn unix_socket_and_ipv6() {
    let sink = start_unix(OURS, &[]);
    let got = converse(&sink.addr, &[b"HELO x\r\nQUIT\r\n"]);
    assert_eq!(
        show(&got),
        show(format!("{GREET}250 smtp-sink\r\n221 Bye\r\n<EOF>").as_bytes())
    );
    let meta = std::fs::metadata(match &sink.addr {
        Addr::Unix(p) => p,
        Addr::Tcp(_) => unreachable!(),
    })
    .expect("socket file");
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o777,
        0o666
    );
    if std::net::TcpListener::bind("[::1]:0").is_ok() {
        let port = free_port();
        let sink = start_at(OURS, &[], Addr::Tcp(format!("[::1]:{port}")), None);
        let got = converse(&Addr::Tcp(format!("[::1]:{port}")), &[b"QUIT\r\n"]);
        assert_eq!(
            show(&got),
            show(format!("{GREET}221 Bye\r\n<EOF>").as_bytes())
        );
        drop(sink);
    }
}

#[test]
fn pipelined_batch_gets_one_write_in_order() {
    let sink = start(OURS, &[]);
    let mut c = Client::connect(&sink.addr);
    let (greet, _) = c.read_quiet(QUIET);
    assert_eq!(greet, GREET.as_bytes());
    let batch = "EHLO x\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nRCPT TO:<c>\r\nDATA\r\nhi\r\n.\r\nNOOP\r\nQUIT\r\n";
    assert!(c.send(batch.as_bytes()));
    let (got, closed) = c.read_until(|b| b.ends_with(b"221 Bye\r\n"), Duration::from_secs(5));
    assert!(closed || got.ends_with(b"221 Bye\r\n"));
    let want = format!(
        "{EHLO_ALL}250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n\
250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n221 Bye\r\n"
    );
    assert_eq!(show(&got), show(want.as_bytes()));
}

#[test]
fn counters_and_session_limit_without_c() {
    // -n counts sessions and works without -c.
    let mut sink = start(OURS, &["-n", "2"]);
    let _ = converse(&sink.addr, &[b"QUIT\r\n"]);
    let _ = converse(&sink.addr, &[b"NOOP\r\n"]);
    let out = wait_exit(&mut sink, Duration::from_secs(10)).expect("-n 2 exits after two sessions");
    assert!(out.status.success(), "{out:?}");
    assert!(sink.stdout().is_empty());

    let mut sink = start(OURS, &["-c", "-n", "3"]);
    let _ = converse(
        &sink.addr,
        &[b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n", b".\r\n"],
    );
    let _ = converse(&sink.addr, &[b"QUIT\r\n"]);
    let _ = converse(&sink.addr, &[b"QUIT\r\n"]);
    let out = wait_exit(&mut sink, Duration::from_secs(10)).expect("-n 3 exits");
    assert!(out.status.success());
    assert_eq!(
        show(sink.stdout().as_bytes()),
        show(b"sess=0 quit=0 mesg=1\rsess=1 quit=0 mesg=1\rsess=2 quit=1 mesg=1\rsess=3 quit=2 mesg=1\r")
    );
}

#[test]
fn max_messages_sends_the_last_reply_then_exits() {
    let mut sink = start(OURS, &["-M", "1"]);
    let got = converse(
        &sink.addr,
        &[b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n", b"x\r\n.\r\n"],
    );
    assert!(show(&got).contains("250 2.0.0 Ok\\r"), "{}", show(&got));
    let out = wait_exit(&mut sink, Duration::from_secs(10)).expect("-M 1 exits");
    assert!(out.status.success());
}

#[test]
fn usage_errors_are_postfix_shaped() {
    for (args, text) in [
        (
            &["-b", "550 x", ":25", "1"][..],
            "smtp-sink: error: bad soft error reply: 550 x\n",
        ),
        (
            &["-f", "bogus", ":25", "1"],
            "smtp-sink: fatal: unknown command: bogus\n",
        ),
        (
            &["-d", "a", "-D", "b", "-u", "nobody", ":25", "1"],
            "smtp-sink: fatal: use only one of -d or -D, but not both\n",
        ),
        (&[":25"], "smtp-sink: fatal: usage: smtp-sink"),
        (&["-Z", ":25", "1"], "smtp-sink: fatal: usage: smtp-sink"),
    ] {
        let out = Command::new(OURS)
            .arg0("smtp-sink")
            .args(args)
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(text), "{args:?}: {err}");
    }
    if is_root() {
        let out = Command::new(OURS)
            .arg0("smtp-sink")
            .args([":25", "1"])
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(1));
        assert_eq!(
            String::from_utf8_lossy(&out.stderr),
            "smtp-sink: fatal: -u option is required if running as root\n"
        );
    }
}

trait Arg0 {
    fn arg0(&mut self, name: &str) -> &mut Self;
}

impl Arg0 for Command {
    fn arg0(&mut self, name: &str) -> &mut Self {
        std::os::unix::process::CommandExt::arg0(self, name)
    }
}

#[test]
fn large_pipelined_batch_is_answered_in_order() {
    let sink = start(OURS, &[]);
    let mut c = Client::connect(&sink.addr);
    let _ = c.read_until(|b| b.ends_with(b"\r\n"), Duration::from_secs(5));
    let mut batch = String::new();
    for i in 0..3000 {
        batch.push_str(if i % 2 == 0 {
            "NOOP\r\n"
        } else {
            "VRFY someone\r\n"
        });
    }
    batch.push_str("QUIT\r\n");
    assert!(c.send(batch.as_bytes()));
    let (got, _) = c.read_until(|b| b.ends_with(b"221 Bye\r\n"), Duration::from_secs(20));
    let want = format!("{}221 Bye\r\n", "250 2.0.0 Ok\r\n".repeat(3000));
    assert_eq!(got.len(), want.len());
    assert_eq!(got, want.as_bytes());
}

#[test]
fn sigterm_ends_cleanly() {
    let mut sink = start(OURS, &[]);
    let _c = Client::connect(&sink.addr);
    let pid = sink.child.as_ref().expect("child").id();
    let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).expect("pid fits"));
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("kill");
    let out = wait_exit(&mut sink, Duration::from_secs(10)).expect("exits on SIGTERM");
    assert_eq!(out.status.code(), Some(0), "{out:?}");
}

#[test]
fn two_sinks_can_share_a_port() {
    let first = start(OURS, &[]);
    let second = start_at(OURS, &[], first.addr.clone(), None);
    std::thread::sleep(Duration::from_millis(300));
    let mut second = second;
    let child = second.child.as_mut().expect("child");
    assert!(
        child.try_wait().expect("try_wait").is_none(),
        "second sink exited"
    );
    let got = converse(&first.addr, &[b"QUIT\r\n"]);
    assert_eq!(
        show(&got),
        show(format!("{GREET}221 Bye\r\n<EOF>").as_bytes())
    );
}

#[test]
fn address_families_and_verbose_log() {
    let port = free_port();
    // A wildcard without -6 is IPv4 only, as with Postfix.
    let mut sink = start_at(OURS, &["-v"], Addr::Tcp(format!("127.0.0.1:{port}")), None);
    let got = converse(&sink.addr, &[b"HELO x\r\nQUIT\r\n"]);
    assert!(
        show(&got).ends_with("221 Bye\\r\\n\n<EOF>"),
        "{}",
        show(&got)
    );
    std::thread::sleep(Duration::from_millis(200));
    let out = stop(&mut sink);
    let err = String::from_utf8_lossy(&out.stderr);
    for line in [
        "trying... [127.0.0.1]:",
        "connect (AF_INET 127.0.0.1)",
        ": HELO x\n",
        ": QUIT\n",
        ": disconnect\n",
    ] {
        assert!(err.contains(line), "{line:?} not in {err}");
    }
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("SKIP: no IPv6 loopback");
        return;
    }
    let port = free_port();
    let sink = start_at(OURS, &["-6"], Addr::Tcp(format!(":{port}")), None);
    let v6 = Addr::Tcp(format!("[::1]:{port}"));
    let got = converse(&v6, &[b"QUIT\r\n"]);
    assert_eq!(
        show(&got),
        show(format!("{GREET}221 Bye\r\n<EOF>").as_bytes())
    );
    assert!(
        std::net::TcpStream::connect(format!("127.0.0.1:{port}")).is_err(),
        "-6 also took IPv4"
    );
    drop(sink);
    let port = free_port();
    let _sink = start_at(OURS, &["-T", "65536"], Addr::Tcp(format!(":{port}")), None);
    let got = converse(&Addr::Tcp(format!("127.0.0.1:{port}")), &[b"QUIT\r\n"]);
    assert_eq!(
        show(&got),
        show(format!("{GREET}221 Bye\r\n<EOF>").as_bytes())
    );
    assert!(
        std::net::TcpStream::connect(format!("[::1]:{port}")).is_err(),
        "a wildcard took IPv6"
    );
}
