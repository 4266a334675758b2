//! The server side: every command verb and form, the typed argument views,
//! over-long lines, and the client's encoder. Every input is also fed
//! split at every byte offset (see `common::commands`).

mod common;

use bytes::BytesMut;
use smtp_proto::{Command, CommandParser, Limits, ParseError, Request, Verb};

const LIMIT: usize = Limits::POSTFIX_SINK_LINE;

/// Parses `line` + CRLF (at every split) and returns its one command.
fn one(line: &[u8]) -> Command {
    let mut input = line.to_vec();
    input.extend_from_slice(b"\r\n");
    let run = common::commands(LIMIT, &input);
    assert_eq!(run.rest.as_deref(), Some(&b""[..]), "{line:?}");
    assert_eq!(run.items.len(), 1, "{line:?}");
    let cmd = run.items[0].clone().expect("a command");
    // Pipelined after another command, the result is the same.
    let mut piped = b"NOOP\r\n".to_vec();
    piped.extend_from_slice(&input);
    piped.extend_from_slice(b"QUIT\r\nRS");
    let run = common::commands(LIMIT, &piped);
    assert_eq!(run.items.len(), 3, "{line:?}");
    assert_eq!(run.items[1].as_ref().ok(), Some(&cmd));
    assert_eq!(run.rest.as_deref(), Some(&b"RS"[..]));
    cmd
}

#[test]
fn every_verb_and_form() {
    use Verb::*;
    let table: &[(&str, Verb, &str, &str)] = &[
        ("HELO client.example", Helo, "HELO", "client.example"),
        ("helo client.example", Helo, "helo", "client.example"),
        ("HeLo   spaced  ", Helo, "HeLo", "  spaced  "),
        ("EHLO [127.0.0.1]", Ehlo, "EHLO", "[127.0.0.1]"),
        ("ehlo x", Ehlo, "ehlo", "x"),
        ("EHLO", Ehlo, "EHLO", ""),
        ("LHLO lmtp.example", Lhlo, "LHLO", "lmtp.example"),
        ("lhlo x", Lhlo, "lhlo", "x"),
        (
            "MAIL FROM:<a@b.example>",
            Mail,
            "MAIL",
            "FROM:<a@b.example>",
        ),
        ("mail from:<>", Mail, "mail", "from:<>"),
        (
            "MAIL FROM:<a@b> SIZE=100 BODY=8BITMIME",
            Mail,
            "MAIL",
            "FROM:<a@b> SIZE=100 BODY=8BITMIME",
        ),
        ("MAIL  FROM:<a>", Mail, "MAIL", " FROM:<a>"),
        ("RCPT TO:<x@y>", Rcpt, "RCPT", "TO:<x@y>"),
        (
            "rcpt to:<x@y> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x@y",
            Rcpt,
            "rcpt",
            "to:<x@y> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x@y",
        ),
        ("DATA", Data, "DATA", ""),
        ("data", Data, "data", ""),
        ("BDAT 1000 LAST", Bdat, "BDAT", "1000 LAST"),
        ("bdat 0", Bdat, "bdat", "0"),
        ("RSET", Rset, "RSET", ""),
        ("rset", Rset, "rset", ""),
        ("NOOP", Noop, "NOOP", ""),
        ("NOOP anything at all", Noop, "NOOP", "anything at all"),
        ("VRFY postmaster", Vrfy, "VRFY", "postmaster"),
        ("EXPN staff", Expn, "EXPN", "staff"),
        ("HELP", Help, "HELP", ""),
        ("help MAIL", Help, "help", "MAIL"),
        ("QUIT", Quit, "QUIT", ""),
        ("Quit", Quit, "Quit", ""),
        ("STARTTLS", StartTls, "STARTTLS", ""),
        ("starttls", StartTls, "starttls", ""),
        (
            "AUTH PLAIN AGZvbwBiYXI=",
            Auth,
            "AUTH",
            "PLAIN AGZvbwBiYXI=",
        ),
        ("auth login", Auth, "auth", "login"),
        (
            "XCLIENT NAME=spike.porcupine.org ADDR=168.100.189.2",
            Xclient,
            "XCLIENT",
            "NAME=spike.porcupine.org ADDR=168.100.189.2",
        ),
        (
            "xforward NAME=x PROTO=ESMTP",
            Xforward,
            "xforward",
            "NAME=x PROTO=ESMTP",
        ),
        // Unknown verbs are kept, not errors.
        ("FOOBAR baz qux", Unknown, "FOOBAR", "baz qux"),
        ("XCLIENTS a", Unknown, "XCLIENTS", "a"),
        ("STARTTLSX", Unknown, "STARTTLSX", ""),
        ("MAIL:FROM:<a>", Unknown, "MAIL:FROM:<a>", ""),
        (".", Unknown, ".", ""),
        ("h\u{e9}lo x", Unknown, "h\u{e9}lo", "x"),
        // Empty and blank lines are their own case.
        ("", Empty, "", ""),
        ("   ", Empty, "", ""),
        ("\t \t", Empty, "", ""),
        // Blanks before the verb are skipped; the argument starts after
        // the one space or tab that ends the verb.
        ("  NOOP", Noop, "NOOP", ""),
        (" \tQUIT now", Quit, "QUIT", "now"),
        ("NOOP\tx", Noop, "NOOP", "x"),
        ("NOOP\t\tx ", Noop, "NOOP", "\tx "),
        ("VRFY ", Vrfy, "VRFY", ""),
        // A bare LF or CR is part of the line, not an end.
        ("NOOP\nNOOP", Unknown, "NOOP\nNOOP", ""),
        ("NOOP x\ny", Noop, "NOOP", "x\ny"),
        ("NOOP\r", Unknown, "NOOP\r", ""),
    ];
    for &(line, verb, name, args) in table {
        let cmd = one(line.as_bytes());
        assert_eq!(cmd.verb, verb, "{line:?}");
        assert_eq!(&cmd.name[..], name.as_bytes(), "{line:?}");
        assert_eq!(&cmd.args[..], args.as_bytes(), "{line:?}");
    }
}

#[test]
fn verbs_are_case_insensitive() {
    for verb in Verb::KNOWN {
        let upper = verb.as_str();
        let lower = upper.to_ascii_lowercase();
        let mixed: String = upper
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i % 2 == 0 {
                    c.to_ascii_lowercase()
                } else {
                    c
                }
            })
            .collect();
        for name in [upper, &lower, &mixed] {
            assert_eq!(one(name.as_bytes()).verb, verb, "{name}");
            assert_eq!(Verb::from_bytes(name.as_bytes()), verb);
            assert_eq!(name.parse::<Verb>(), Ok(verb));
        }
    }
    assert!("".parse::<Verb>().is_err());
    assert_eq!(
        "FOO".parse::<Verb>().unwrap_err().to_string(),
        "unknown command: FOO"
    );
}

#[test]
fn lf_alone_never_ends_a_line() {
    for input in [&b"NOOP\n"[..], b"NOOP\n\n", b"QUIT\n\r", b"\n"] {
        let run = common::commands(LIMIT, input);
        assert!(run.items.is_empty(), "{input:?}");
        assert_eq!(run.rest.as_deref(), Some(input));
    }
    // Postfix's smtp-sink: `NOOP\nNOOP\r\n` is one unknown command.
    let run = common::commands(LIMIT, b"NOOP\nNOOP\r\n");
    assert_eq!(run.items.len(), 1);
    assert_eq!(run.items[0].as_ref().unwrap().verb, Verb::Unknown);
    // A CR alone at the end may be the first half of a CRLF.
    let run = common::commands(LIMIT, b"QUIT\r");
    assert!(run.items.is_empty());
    assert_eq!(run.rest.as_deref(), Some(&b"QUIT\r"[..]));
    // CR CR LF: the first CR belongs to the line.
    assert_eq!(&one(b"NOOP\r").name[..], b"NOOP\r");
}

#[test]
fn mail_and_rcpt_paths_and_params() {
    let cmd = one(b"MAIL FROM:<a@b.example> SIZE=100 BODY=8BITMIME");
    let m = cmd.mail_from().unwrap();
    assert_eq!(&m.path[..], b"a@b.example");
    assert_eq!(&m.params.0[..], b"SIZE=100 BODY=8BITMIME");
    assert_eq!(m.params.get("size"), Some(Some("100".into())));
    assert_eq!(m.params.get("BODY"), Some(Some("8BITMIME".into())));
    assert_eq!(m.params.get("SMTPUTF8"), None);
    let pairs: Vec<_> = m.params.iter().collect();
    assert_eq!(pairs.len(), 2);

    let m = one(b"mail from:<>").mail_from().unwrap();
    assert!(m.path.is_empty() && m.params.is_empty());
    let m = one(b"MAIL FROM: <a@b>  SMTPUTF8 ").mail_from().unwrap();
    assert_eq!(&m.path[..], b"a@b");
    assert_eq!(m.params.get("smtputf8"), Some(None));
    // Without brackets the path runs to the first blank.
    let m = one(b"MAIL FROM:a@b SIZE=1").mail_from().unwrap();
    assert_eq!(
        (&m.path[..], &m.params.0[..]),
        (&b"a@b"[..], &b"SIZE=1"[..])
    );
    // A quoted local part may hold '>' and blanks (RFC 5321 §4.1.2).
    let m = one(br#"MAIL FROM:<"a> b\"c"@d.example> SIZE=1"#)
        .mail_from()
        .unwrap();
    assert_eq!(&m.path[..], br#""a> b\"c"@d.example"#);
    assert_eq!(&m.params.0[..], b"SIZE=1");

    let r = one(b"RCPT TO:<x@y> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x@y")
        .rcpt_to()
        .unwrap();
    assert_eq!(&r.path[..], b"x@y");
    assert_eq!(r.params.get("notify"), Some(Some("SUCCESS,FAILURE".into())));
    assert_eq!(r.params.get("ORCPT"), Some(Some("rfc822;x@y".into())));
    let r = one(b"rcpt to:<postmaster>").rcpt_to().unwrap();
    assert_eq!(&r.path[..], b"postmaster");

    for bad in [
        &b"MAIL TO:<a>"[..],
        b"MAIL FROM:",
        b"MAIL FROM:   ",
        b"MAIL FROM:<a",
        br#"MAIL FROM:<"a>"#,
        b"MAIL",
        b"MAIL FRO",
    ] {
        assert_eq!(
            one(bad).mail_from(),
            Err(ParseError::Syntax {
                expected: "MAIL FROM:<address>"
            }),
            "{bad:?}"
        );
    }
    assert!(matches!(
        one(b"RCPT FROM:<a>").rcpt_to(),
        Err(ParseError::Syntax { .. })
    ));
    let err = one(b"RCPT TO:").rcpt_to().unwrap_err();
    assert!(err.is_recoverable());
    assert_eq!(err.to_string(), "syntax error: expected RCPT TO:<address>");
}

#[test]
fn auth_bdat_and_attributes() {
    let a = one(b"AUTH PLAIN AGZvbwBiYXI=").auth().unwrap();
    assert_eq!(&a.mechanism[..], b"PLAIN");
    assert_eq!(a.initial_response.as_deref(), Some(&b"AGZvbwBiYXI="[..]));
    let a = one(b"auth  login ").auth().unwrap();
    assert_eq!(
        (&a.mechanism[..], a.initial_response),
        (&b"login"[..], None)
    );
    let a = one(b"AUTH PLAIN =").auth().unwrap();
    assert_eq!(a.initial_response.as_deref(), Some(&b"="[..]));
    assert!(one(b"AUTH").auth().is_err());
    assert!(one(b"AUTH   ").auth().is_err());

    let b = one(b"BDAT 1000 LAST").bdat().unwrap();
    assert_eq!((b.size, b.last), (1000, true));
    let b = one(b"bdat 0 last").bdat().unwrap();
    assert_eq!((b.size, b.last), (0, true));
    let b = one(b"BDAT 42").bdat().unwrap();
    assert_eq!((b.size, b.last), (42, false));
    for bad in [
        &b"BDAT"[..],
        b"BDAT x",
        b"BDAT 5 FOO",
        b"BDAT 5 LAST x",
        b"BDAT -5",
        b"BDAT +5",
        b"BDAT 99999999999999999999999",
    ] {
        assert_eq!(
            one(bad).bdat(),
            Err(ParseError::Syntax {
                expected: "BDAT size [LAST]"
            }),
            "{bad:?}"
        );
    }

    let x = one(b"XCLIENT NAME=spike.porcupine.org ADDR=168.100.189.2 LOGIN").attributes();
    let pairs: Vec<_> = x.iter().collect();
    assert_eq!(
        pairs,
        vec![
            ("NAME".into(), Some("spike.porcupine.org".into())),
            ("ADDR".into(), Some("168.100.189.2".into())),
            ("LOGIN".into(), None),
        ]
    );
    let x = one(b"XFORWARD PROTO=ESMTP HELO=a=b").attributes();
    assert_eq!(x.get("helo"), Some(Some("a=b".into())));
    assert!(one(b"XFORWARD").attributes().is_empty());
    assert_eq!(&one(b"HELO  host  ").trimmed_args()[..], b"host");
}

#[test]
fn values_are_slices_of_the_input() {
    let mut buf = BytesMut::from(&b"MAIL FROM:<a@b> SIZE=1\r\n"[..]);
    let base = buf.as_ptr() as usize;
    let range = base..base + buf.len();
    let cmd = CommandParser::default().parse(&mut buf).unwrap().unwrap();
    let m = cmd.mail_from().unwrap();
    for part in [&cmd.name, &cmd.args, &m.path, &m.params.0] {
        assert!(range.contains(&(part.as_ptr() as usize)), "copied");
    }
}

#[test]
fn line_at_the_limit_is_fine_one_byte_more_is_too_long() {
    let limit = 16;
    let ok = format!("NOOP {}\r\n", "x".repeat(limit - 5));
    let run = common::commands(limit, ok.as_bytes());
    assert_eq!(run.items.len(), 1);
    assert!(run.items[0].is_ok());

    let long = format!("NOOP {}\r\nQUIT\r\n", "x".repeat(limit - 4));
    let run = common::commands(limit, long.as_bytes());
    assert_eq!(run.items.len(), 2);
    assert_eq!(run.items[0], Err(ParseError::LineTooLong { limit }));
    assert_eq!(run.items[1].as_ref().unwrap().verb, Verb::Quit);
    assert_eq!(run.rest.as_deref(), Some(&b""[..]));
    let err = run.items[0].clone().unwrap_err();
    assert!(err.is_recoverable());
    assert_eq!(err.to_string(), "line longer than 16 bytes");

    // A CR inside the line counts towards the limit; so does a bare LF.
    for line in [
        format!("{}\r\r\n", "y".repeat(limit)),
        format!("{}\n\r\n", "y".repeat(limit)),
    ] {
        let run = common::commands(limit, line.as_bytes());
        assert_eq!(run.items, vec![Err(ParseError::LineTooLong { limit })]);
    }
}

#[test]
fn several_long_lines_each_reported_once() {
    let limit = 8;
    let input = b"0123456789abc\r\nNOOP\r\n0123456789\r\r\n\r\n0123456789";
    let run = common::commands(limit, input);
    let verbs: Vec<_> = run
        .items
        .iter()
        .map(|r| r.as_ref().map(|c| c.verb).map_err(Clone::clone))
        .collect();
    let too_long = Err(ParseError::LineTooLong { limit });
    assert_eq!(
        verbs,
        vec![
            too_long.clone(),
            Ok(Verb::Noop),
            too_long.clone(),
            Ok(Verb::Empty),
            too_long
        ]
    );
    // The unfinished over-long line has been dropped, not buffered.
    assert_eq!(run.rest.as_deref(), Some(&b""[..]));
}

#[test]
fn overlong_line_is_not_buffered() {
    // Byte by byte, the buffer never holds more than limit + 2 bytes.
    let limit = Limits::POSTFIX_SINK_LINE;
    let mut parser = CommandParser::new(limit);
    let mut buf = BytesMut::new();
    let mut errors = 0;
    let line: Vec<u8> = std::iter::repeat_n(b'A', 100_000)
        .chain(*b"\r\nQUIT\r\n")
        .collect();
    let mut cmds = Vec::new();
    for &b in &line {
        buf.extend_from_slice(&[b]);
        assert!(buf.len() <= limit + 2, "buffer grew to {}", buf.len());
        loop {
            match parser.parse(&mut buf) {
                Ok(Some(c)) => cmds.push(c.verb),
                Ok(None) => break,
                Err(e) => {
                    assert_eq!(e, ParseError::LineTooLong { limit });
                    errors += 1;
                }
            }
        }
        assert!(buf.len() <= limit + 1);
    }
    assert_eq!((errors, cmds), (1, vec![Verb::Quit]));

    // In big reads, whatever belongs to the long line is dropped at once.
    let mut parser = CommandParser::new(limit);
    let mut buf = BytesMut::new();
    let mut errors = 0;
    for chunk in line.chunks(65536) {
        buf.extend_from_slice(chunk);
        while let Some(r) = parser.parse(&mut buf).transpose() {
            match r {
                Ok(c) => assert_eq!(c.verb, Verb::Quit),
                Err(_) => errors += 1,
            }
        }
        assert!(buf.len() <= limit + 1, "{}", buf.len());
    }
    assert_eq!(errors, 1);
}

#[test]
fn request_encoding() {
    let table: &[(Request<'_>, &[u8])] = &[
        (Request::Helo(b"vm"), b"HELO vm\r\n"),
        (Request::Ehlo(b"client.example"), b"EHLO client.example\r\n"),
        (Request::Lhlo(b"vm"), b"LHLO vm\r\n"),
        (
            Request::MailFrom {
                path: b"foo@vm",
                params: b"",
            },
            b"MAIL FROM:<foo@vm>\r\n",
        ),
        (
            Request::MailFrom {
                path: b"",
                params: b"SIZE=10 BODY=8BITMIME",
            },
            b"MAIL FROM:<> SIZE=10 BODY=8BITMIME\r\n",
        ),
        (
            Request::RcptTo {
                path: b"rcpt0@example.org",
                params: b"",
            },
            b"RCPT TO:<rcpt0@example.org>\r\n",
        ),
        (
            Request::RcptTo {
                path: b"a@b",
                params: b"NOTIFY=NEVER",
            },
            b"RCPT TO:<a@b> NOTIFY=NEVER\r\n",
        ),
        (Request::Data, b"DATA\r\n"),
        (
            Request::Bdat {
                size: 1000,
                last: false,
            },
            b"BDAT 1000\r\n",
        ),
        (
            Request::Bdat {
                size: 0,
                last: true,
            },
            b"BDAT 0 LAST\r\n",
        ),
        (Request::Rset, b"RSET\r\n"),
        (Request::Noop, b"NOOP\r\n"),
        (Request::Quit, b"QUIT\r\n"),
        (Request::StartTls, b"STARTTLS\r\n"),
        (
            Request::Auth {
                mechanism: b"PLAIN",
                initial: Some(b"AGZvbwBiYXI="),
            },
            b"AUTH PLAIN AGZvbwBiYXI=\r\n",
        ),
        (
            Request::Auth {
                mechanism: b"LOGIN",
                initial: None,
            },
            b"AUTH LOGIN\r\n",
        ),
        (Request::Raw(b"Zm9v"), b"Zm9v\r\n"),
    ];
    let mut all = BytesMut::new();
    for (req, wire) in table {
        let mut out = BytesMut::new();
        req.encode(&mut out);
        assert_eq!(&out[..], *wire, "{req:?}");
        req.encode(&mut all);
        // What the client sends, the server parses back to the same verb.
        let cmd = one(&wire[..wire.len() - 2]);
        assert_eq!(cmd.verb, req.verb(), "{req:?}");
    }
    // The whole pipelined batch parses at every split.
    let run = common::commands(LIMIT, &all);
    assert_eq!(run.items.len(), table.len());
    for (item, (req, _)) in run.items.iter().zip(table) {
        assert_eq!(item.as_ref().unwrap().verb, req.verb());
    }
}

#[test]
fn unlimited_line_length_does_not_overflow() {
    // usize::MAX means "no limit"; limit + 1 used to overflow (a panic in
    // debug builds, every partial line "too long" in release builds).
    let run = common::commands(usize::MAX, b"NOOP\r\nQUI");
    assert_eq!(run.items.len(), 1);
    assert_eq!(run.rest.as_deref(), Some(&b"QUI"[..]));
    let limits = Limits {
        max_reply_line: usize::MAX,
        ..Limits::default()
    };
    let run = common::replies_with(limits, b"250 ok\r\n250-a");
    assert_eq!(run.items.len(), 1);
    assert_eq!(run.rest.as_deref(), Some(&b"250-a"[..]));
}
