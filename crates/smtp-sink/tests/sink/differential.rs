//! The same scripted conversations against Postfix's smtp-sink and ours:
//! the replies must be identical byte for byte, and so must the dump
//! records once the random id and the dates are normalised.

use crate::common::*;
use crate::dump::{files, normalise};

/// Runs `scripts` (one connection each) against a sink; returns the
/// transcripts.
fn transcripts(sink: &Sink, scripts: &[&[&[u8]]]) -> Vec<String> {
    scripts
        .iter()
        .map(|s| show(&converse(&sink.addr, s)))
        .collect()
}

/// Starts both sinks with `args` (TCP, or unix when `unix`), runs the
/// scripts against both at once, and compares. `dump` adds `-d`/`-D`
/// pointing into a per-sink directory (`{}` in the template).
fn compare(args: &[&str], scripts: &[&[&[u8]]], dump: Option<(&str, &str)>, unix: bool) {
    let dirs = [open_dir(), open_dir()];
    let run = |program: &str, dir: &tempfile::TempDir| {
        let mut argv: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        if let Some((flag, template)) = dump {
            argv.push(flag.to_owned());
            argv.push(format!("{}/{template}", dir.path().display()));
        }
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let sink = if unix {
            start_unix(program, &argv)
        } else {
            start(program, &argv)
        };
        transcripts(&sink, scripts)
    };
    let (theirs, ours) = std::thread::scope(|s| {
        let t = s.spawn(|| run(POSTFIX_SINK, &dirs[0]));
        let o = s.spawn(|| run(OURS, &dirs[1]));
        (t.join().expect("postfix run"), o.join().expect("our run"))
    });
    assert!(
        theirs.iter().all(|t| !t.is_empty()),
        "Postfix's sink did not talk: {theirs:?}"
    );
    for (i, (t, o)) in theirs.iter().zip(&ours).enumerate() {
        assert_eq!(
            o, t,
            "args {args:?}, script {i}: ours (left) vs Postfix (right)"
        );
    }
    if dump.is_some() {
        let records = |d: &tempfile::TempDir| -> Vec<(String, String)> {
            files(d.path())
                .iter()
                .map(|f| {
                    let rel = f
                        .strip_prefix(d.path())
                        .expect("under dir")
                        .to_string_lossy()
                        .into_owned();
                    // The per-transaction suffix is random: keep only its length.
                    let rel = match rel.rsplit_once('.') {
                        Some((head, tail))
                            if tail.len() == 8 && tail.bytes().all(|b| b.is_ascii_hexdigit()) =>
                        {
                            format!("{head}.<8 hex>")
                        }
                        _ => rel,
                    };
                    (rel, normalise(&std::fs::read(f).expect("read dump")))
                })
                .collect()
        };
        let (mut t, mut o) = (records(&dirs[0]), records(&dirs[1]));
        assert!(!t.is_empty(), "Postfix wrote no dump");
        t.sort();
        o.sort();
        assert_eq!(o, t, "dump records differ, ours (left) vs Postfix (right)");
    }
}

const BASIC: &[&[u8]] = &[
    b"EHLO client.example\r\n",
    b"MAIL FROM:<a>\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n",
    b"Subject: x\r\n\r\n..dot\r\n.\r\n",
    b"RCPT TO:<b>\r\nDATA\r\nEXPN x\r\nSTARTTLS\r\nBDAT 1\r\nHELP\r\n\r\n \t \r\n.\r\nNOOP\nNOOP\r\n",
    b"VRFY x\r\nAUTH PLAIN AAAA\r\nXCLIENT NAME=x\r\nXFORWARD ADDR=1.2.3.4\r\nnoop\r\nRSET\r\nconnect\r\n",
    b"HELO x\r\nLHLO x\r\nQUIT\r\n",
];

const LMTP: &[&[u8]] = &[
    b"EHLO x\r\nHELO x\r\nLHLO x\r\n",
    b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nRCPT TO:<c>\r\nRCPT TO:<d>\r\nDATA\r\n",
    b"x\r\n.\r\n",
    b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nRCPT TO:<c>\r\nRSET\r\n.\r\nNOOP\r\n",
    b"QUIT\r\n",
];

const SHORT: &[&[u8]] = &[
    b"EHLO x\r\nHELO x\r\n",
    b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n",
    b"x\r\n.\r\n",
    b"RSET\r\nNOOP\r\nVRFY x\r\nQUIT\r\n",
];

#[test]
fn default_and_greeting_variants() {
    if !have(POSTFIX_SINK) {
        return;
    }
    compare(&[], &[BASIC, SHORT], None, false);
    compare(&["-e", "-h", "vm.example"], &[SHORT], None, false);
    compare(&["-P"], &[SHORT], None, false);
    compare(&["-8aCFENp"], &[BASIC], None, false);
    compare(&["-c"], &[SHORT], None, false);
}

#[test]
fn lmtp_variants() {
    if !have(POSTFIX_SINK) {
        return;
    }
    compare(&["-L"], &[LMTP], None, false);
    compare(
        &["-L", "-r", ".", "-b", "451 4.3.5 later"],
        &[LMTP],
        None,
        false,
    );
    compare(&["-L", "-f", "."], &[LMTP], None, true);
}

#[test]
fn command_lists() {
    if !have(POSTFIX_SINK) {
        return;
    }
    compare(
        &["-f", "rcpt .", "-B", "554 5.7.1 Go away"],
        &[SHORT],
        None,
        false,
    );
    compare(&["-r", "mail,helo"], &[SHORT], None, false);
    compare(&["-f", "connect"], &[SHORT], None, false);
    compare(&["-q", "connect"], &[SHORT], None, false);
    compare(&["-q", "data"], &[SHORT], None, false);
    compare(&["-Q", "rcpt"], &[SHORT], None, false);
    compare(&["-Q", "."], &[SHORT], None, false);
    compare(&["-f", "quit", "-r", "ehlo NOOP"], &[SHORT], None, false);
    compare(
        &["-q", "helo", "-Q", "helo", "-f", "helo"],
        &[SHORT],
        None,
        false,
    );
    compare(
        &["-r", "vrfy", "-f", "vrfy", "-Q", "rset"],
        &[SHORT],
        None,
        false,
    );
}

#[test]
fn long_lines_and_odd_bytes() {
    if !have(POSTFIX_SINK) {
        return;
    }
    let ok = format!("NOOP {}\r\n", "x".repeat(2041));
    let long = format!("NOOP {}\r\n", "x".repeat(2042));
    compare(&[], &[&[ok.as_bytes()], &[long.as_bytes()]], None, false);
    compare(
        &[],
        &[&[b"NOOP\x00junk\r\nN\x00OOP\r\n\x00\r\nnoop \xff\x01\r\nMAIL\tFROM:<a>\r\nQUIT\r\n"]],
        None,
        false,
    );
}

#[test]
fn dump_records() {
    if !have(POSTFIX_SINK) {
        return;
    }
    let session: &[&[u8]] = &[
        b"EHLO   client.example  \r\n",
        b"MAIL FROM:<a@b> BODY=8BITMIME\r\nRCPT TO:<x@y>\r\nRCPT TO: <z@y> NOTIFY=NEVER\r\nDATA\r\n",
        b"Subject: hi\r\n\r\n..leading dot\r\nbare\rCR\r\n\xe9\x00\r\n\r\n.\r\n",
        b"MAIL FROM:<aborted>\r\nRCPT TO:<x>\r\nRSET\r\n",
        b"HELO second\tone\r\nMAIL FROM:<c>\r\nRCPT TO:<d>\r\nDATA\r\n.\r\nQUIT\r\n",
    ];
    let no_helo: &[&[u8]] = &[
        b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\nx\r\n.\r\n",
        b"QUIT\r\n",
    ];
    compare(
        &["-S", r"START\tX\\n\101\n"],
        &[session, no_helo],
        Some(("-d", "%Y/m.")),
        false,
    );
    compare(
        &["-h", "dumphost"],
        &[session],
        Some(("-D", "%Y/shared")),
        false,
    );
    compare(&["-L"], &[LMTP, no_helo], Some(("-D", "shared")), true);
}

#[test]
fn count_output() {
    if !have(POSTFIX_SINK) {
        return;
    }
    let run = |program: &str| {
        let sink = start(program, &["-c"]);
        let msg: &[&[u8]] = &[b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n", b"x\r\n.\r\n"];
        let _ = converse(&sink.addr, &[msg[0], msg[1], b"QUIT\r\n"]);
        let _ = converse(&sink.addr, msg);
        std::thread::sleep(std::time::Duration::from_millis(300));
        let _ = converse(&sink.addr, &[b"QUIT\r\n"]);
        let _ = sink.wait_counters(|c| c.0 == 3);
        sink.stdout()
    };
    let (theirs, ours) = std::thread::scope(|s| {
        let t = s.spawn(|| run(POSTFIX_SINK));
        let o = s.spawn(|| run(OURS));
        (t.join().expect("postfix"), o.join().expect("ours"))
    });
    assert_eq!(
        theirs,
        "sess=0 quit=0 mesg=1\rsess=1 quit=1 mesg=1\rsess=1 quit=1 mesg=2\rsess=2 quit=1 mesg=2\rsess=3 quit=2 mesg=2\r"
    );
    assert_eq!(ours, theirs);
}

/// Like `converse`, but waits for each reply (the sinks delay them).
fn converse_slow(addr: &Addr, chunks: &[&[u8]]) -> String {
    let wait = std::time::Duration::from_millis(1400);
    let mut c = Client::connect(addr);
    let (mut out, mut closed) = c.read_quiet(wait);
    for chunk in chunks {
        if closed || !c.send(chunk) {
            break;
        }
        let (more, cl) = c.read_quiet(wait);
        out.extend_from_slice(&more);
        closed = cl;
    }
    if closed {
        out.extend_from_slice(b"<EOF>");
    }
    show(&out)
}

#[test]
fn delays_without_pipelining() {
    if !have(POSTFIX_SINK) {
        return;
    }
    let script: &[&[u8]] = &[
        b"HELO x\r\n",
        b"MAIL FROM:<a>\r\n",
        b"RCPT TO:<b>\r\n",
        b"DATA\r\n",
        b"x\r\n.\r\n",
        b"QUIT\r\n",
    ];
    let sets: [&[&str]; 3] = [
        &["-W", "connect:1", "-W", "helo:1", "-w", "1", "-W", ".:1"],
        &["-A", "1"],
        &["-H", "1", "-W", "quit:1"],
    ];
    let run = |program: &str, args: &[&str]| {
        let sink = start(program, args);
        converse_slow(&sink.addr, script)
    };
    // All six runs at once: each takes about ten seconds of waiting.
    let results: Vec<(String, String)> = std::thread::scope(|s| {
        let handles: Vec<_> = sets
            .iter()
            .map(|args| {
                (
                    s.spawn(move || run(POSTFIX_SINK, args)),
                    s.spawn(move || run(OURS, args)),
                )
            })
            .collect();
        handles
            .into_iter()
            .map(|(t, o)| (t.join().expect("postfix"), o.join().expect("ours")))
            .collect()
    });
    for (args, (theirs, ours)) in sets.iter().zip(results) {
        assert!(theirs.contains("220 "), "{theirs}");
        assert_eq!(ours, theirs, "args {args:?}");
    }
}

#[test]
fn command_line_errors() {
    if !have(POSTFIX_SINK) {
        return;
    }
    let port = free_port().to_string();
    let addr = format!("127.0.0.1:{port}");
    let cases: Vec<Vec<&str>> = vec![
        vec!["-b", "550 5.0.0 no", &addr, "1"],
        vec!["-b", "4000 no", &addr, "1"],
        vec!["-B", "450 no", &addr, "1"],
        vec!["-f", "mail,bogus", &addr, "1"],
        vec!["-s", "rcpt expn", &addr, "1"],
        vec!["-W", "helo", &addr, "1"],
        vec!["-W", "helo:0", &addr, "1"],
        vec!["-W", "helo:1:100", &addr, "1"],
        vec!["-W", "xyz:1", &addr, "1"],
        vec!["-m", "0", &addr, "1"],
        vec!["-t", "x", &addr, "1"],
        vec!["-n", "-1", &addr, "1"],
        vec!["-M", "0", &addr, "1"],
        vec!["-H", "0", &addr, "1"],
        vec!["-T", "0", &addr, "1"],
        vec!["-A", "1x", &addr, "1"],
        vec!["-w", "0", &addr, "1"],
        vec![&addr],
        vec![&addr, "0"],
        vec!["-d", "a", "-D", "b", "-u", "nobody", &addr, "1"],
        vec!["-u", "no-such-user-here", &addr, "1"],
    ];
    let run = |program: &str, args: &[&str]| {
        let out = std::process::Command::new(program)
            .args(args)
            .output()
            .expect("run");
        let err = String::from_utf8_lossy(&out.stderr).replace(program, "smtp-sink");
        // Clap's own complaint may come first: compare the fatal line.
        let fatal = err
            .lines()
            .filter(|l| !l.contains(": error: ") || l.contains("bad "))
            .collect::<Vec<_>>()
            .join("\n");
        (out.status.code(), fatal)
    };
    // Postfix sleeps a second before a fatal exit: run the cases at once.
    std::thread::scope(|s| {
        let handles: Vec<_> = cases
            .iter()
            .map(|args| {
                (
                    args,
                    s.spawn(|| run(POSTFIX_SINK, args)),
                    s.spawn(|| run(OURS, args)),
                )
            })
            .collect();
        for (args, theirs, ours) in handles {
            let theirs = theirs.join().expect("postfix");
            assert_eq!(ours.join().expect("ours"), theirs, "args {args:?}");
        }
    });
}
