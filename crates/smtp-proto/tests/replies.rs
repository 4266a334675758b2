//! The client side: every reply form, the caps, the encoder, enhanced
//! codes and EHLO capabilities. Every parser input is also fed split at
//! every byte offset, with CRLF and with bare LF line ends.

mod common;

use bytes::BytesMut;
use smtp_proto::{
    encode_reply, Capabilities, EnhancedCode, Extensions, Limits, ParseError, Reply, ReplyCode,
    ReplyParser, Severity,
};

/// The same input with every CRLF turned into a bare LF.
fn lf(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        if input[i..].starts_with(b"\r\n") {
            i += 1;
        }
        out.push(input[i]);
        i += 1;
    }
    out
}

/// Parses `input` (CRLF and LF forms, at every split) and returns its
/// replies, which must use up the input exactly.
fn replies(input: &[u8]) -> Vec<Reply> {
    let run = common::replies(input);
    assert_eq!(run.rest.as_deref(), Some(&b""[..]), "{input:?}");
    let crlf: Vec<Reply> = run.items.into_iter().map(|r| r.unwrap()).collect();
    let run = common::replies(&lf(input));
    assert_eq!(run.rest.as_deref(), Some(&b""[..]));
    let bare: Vec<Reply> = run.items.into_iter().map(|r| r.unwrap()).collect();
    assert_eq!(bare.len(), crlf.len());
    for (a, b) in crlf.iter().zip(&bare) {
        assert_eq!(a.code, b.code);
        assert_eq!(a.enhanced, b.enhanced);
        assert!(a.lines().eq(b.lines()), "LF and CRLF give other lines");
    }
    crlf
}

fn lines(r: &Reply) -> Vec<String> {
    r.lines()
        .map(|l| String::from_utf8_lossy(l).into_owned())
        .collect()
}

/// The EHLO reply of Postfix's smtp-sink, byte for byte.
const POSTFIX_EHLO: &[u8] = b"250-smtp-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n\
250-AUTH PLAIN LOGIN\r\n250-XCLIENT NAME HELO\r\n250-XFORWARD NAME ADDR PROTO HELO\r\n\
250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250 \r\n";

#[test]
fn every_reply_form() {
    type Row<'a> = (&'a [u8], u16, Option<(u8, u16, u16)>, &'a [&'a str]);
    let table: &[Row<'_>] = &[
        (b"220 smtp-sink ESMTP\r\n", 220, None, &["smtp-sink ESMTP"]),
        (b"250 2.1.0 Ok\r\n", 250, Some((2, 1, 0)), &["2.1.0 Ok"]),
        (b"250 2.1.5 Ok\r\n", 250, Some((2, 1, 5)), &["2.1.5 Ok"]),
        (
            b"354 End data with <CR><LF>.<CR><LF>\r\n",
            354,
            None,
            &["End data with <CR><LF>.<CR><LF>"],
        ),
        (b"221 Bye\r\n", 221, None, &["Bye"]),
        (
            b"421 4.0.0 Server closing connection\r\n",
            421,
            Some((4, 0, 0)),
            &["4.0.0 Server closing connection"],
        ),
        (
            b"500 5.5.1 Error: unknown command\r\n",
            500,
            Some((5, 5, 1)),
            &["5.5.1 Error: unknown command"],
        ),
        (b"550 5.1.1\r\n", 550, Some((5, 1, 1)), &["5.1.1"]),
        (
            b"451 4.3.5\tlater\r\n",
            451,
            Some((4, 3, 5)),
            &["4.3.5\tlater"],
        ),
        (
            b"554 5.123.999 x\r\n",
            554,
            Some((5, 123, 999)),
            &["5.123.999 x"],
        ),
        // Not enhanced codes: no blank after, a bad class, too many digits.
        (b"250 2.0.0Ok\r\n", 250, None, &["2.0.0Ok"]),
        (b"250 3.0.0 x\r\n", 250, None, &["3.0.0 x"]),
        (b"250 2.1000.0 x\r\n", 250, None, &["2.1000.0 x"]),
        (b"250 2.1. x\r\n", 250, None, &["2.1. x"]),
        (b"250 2..1 x\r\n", 250, None, &["2..1 x"]),
        // A bare code, and a code with an empty text.
        (b"250\r\n", 250, None, &[""]),
        (b"250 \r\n", 250, None, &[""]),
        // Multi-line, with the enhanced code of the first line.
        (
            b"250-2.0.0 first\r\n250-second\r\n250 third\r\n",
            250,
            Some((2, 0, 0)),
            &["2.0.0 first", "second", "third"],
        ),
        (b"250-\r\n250\r\n", 250, None, &["", ""]),
        (
            POSTFIX_EHLO,
            250,
            None,
            &[
                "smtp-sink",
                "PIPELINING",
                "8BITMIME",
                "AUTH PLAIN LOGIN",
                "XCLIENT NAME HELO",
                "XFORWARD NAME ADDR PROTO HELO",
                "ENHANCEDSTATUSCODES",
                "DSN",
                "",
            ],
        ),
        // Bytes that are not ASCII are kept as they are.
        (b"250 caf\xc3\xa9 \x01\r\n", 250, None, &["caf\u{e9} \u{1}"]),
        // A CR inside a line is text.
        (b"250 a\rb\r\n", 250, None, &["a\rb"]),
    ];
    for &(input, code, enhanced, text) in table {
        let got = replies(input);
        assert_eq!(got.len(), 1, "{input:?}");
        let r = &got[0];
        assert_eq!(r.code, ReplyCode(code), "{input:?}");
        let enhanced = enhanced.map(|(class, subject, detail)| EnhancedCode {
            class,
            subject,
            detail,
        });
        assert_eq!(r.enhanced, enhanced, "{input:?}");
        assert_eq!(lines(r), text, "{input:?}");
        assert_eq!(r.line_count(), text.len());
        assert_eq!(&r.raw()[..], input, "raw keeps the bytes as received");
        let mut out = BytesMut::new();
        r.encode(&mut out);
        assert_eq!(&out[..], input);
    }
}

#[test]
fn pipelined_replies_come_out_one_at_a_time() {
    let input = b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250-2.1.5 Ok\r\n250 more\r\n354 go\r\n";
    let got = replies(input);
    let codes: Vec<u16> = got.iter().map(|r| r.code.0).collect();
    assert_eq!(codes, vec![250, 250, 250, 354]);
    assert_eq!(got[2].line_count(), 2);
    // An unfinished multi-line reply waits, whatever the split.
    let run = common::replies(b"250 Ok\r\n250-a\r\n250-b\r\n250 c");
    assert_eq!(run.items.len(), 1);
    assert_eq!(run.rest.as_deref(), Some(&b"250-a\r\n250-b\r\n250 c"[..]));
}

#[test]
fn malformed_replies_are_errors() {
    let table: &[(&[u8], ParseError)] = &[
        (b"25 x\r\n", ParseError::MalformedReply),
        (b"2500 x\r\n", ParseError::MalformedReply),
        (b"250x\r\n", ParseError::MalformedReply),
        (b"abc def\r\n", ParseError::MalformedReply),
        (b"\r\n", ParseError::MalformedReply),
        (b"+OK pop3\r\n", ParseError::MalformedReply),
        (b"250-a\r\nxyz\r\n", ParseError::MalformedReply),
        (
            b"250-a\r\n251 b\r\n",
            ParseError::ReplyCodeMismatch {
                first: 250,
                line: 251,
            },
        ),
        (
            b"250-a\r\n250-b\r\n550 c\r\n",
            ParseError::ReplyCodeMismatch {
                first: 250,
                line: 550,
            },
        ),
    ];
    for (input, err) in table {
        for input in [input.to_vec(), lf(input)] {
            let run = common::replies(&input);
            assert_eq!(run.items, vec![Err(err.clone())], "{input:?}");
            assert!(!err.is_recoverable());
        }
    }
    // A good reply before the bad one is still delivered.
    let run = common::replies(b"220 hi\r\n99 x\r\n");
    assert_eq!(run.items.len(), 2);
    assert!(run.items[0].is_ok());
    assert_eq!(run.items[1], Err(ParseError::MalformedReply));
    assert_eq!(
        ParseError::ReplyCodeMismatch {
            first: 250,
            line: 251
        }
        .to_string(),
        "multi-line reply changes code from 250 to 251"
    );
}

#[test]
fn reply_line_cap_is_postfix_10240() {
    let limit = Limits::POSTFIX_SOURCE_REPLY_LINE;
    assert_eq!(Limits::default().max_reply_line, limit);
    // "250 " + text = exactly the limit: fine, with CRLF or LF.
    let ok = format!("250 {}\r\n", "x".repeat(limit - 4));
    assert_eq!(replies(ok.as_bytes())[0].code.0, 250);
    let long = format!("250 {}\r\n", "x".repeat(limit - 3));
    for input in [long.as_bytes().to_vec(), lf(long.as_bytes())] {
        let run = common::replies(&input);
        assert_eq!(run.items, vec![Err(ParseError::LineTooLong { limit })]);
    }
    // Reported before the line end arrives, so nothing grows unbounded.
    let mut p = ReplyParser::default();
    let mut buf = BytesMut::new();
    let mut fed = 0;
    let err = loop {
        buf.extend_from_slice(b"250-xxxxxxx");
        fed += 11;
        assert!(fed < limit + 20, "no error after {fed} bytes");
        match p.parse(&mut buf) {
            Ok(None) => continue,
            Ok(Some(r)) => panic!("unexpected {r:?}"),
            Err(e) => break e,
        }
    };
    assert_eq!(err, ParseError::LineTooLong { limit });
    // A smaller cap is honoured for each line of a multi-line reply.
    let small = Limits {
        max_reply_line: 8,
        ..Limits::default()
    };
    let run = common::replies_with(small, b"250-abcd\r\n250-abcde\r\n250 x\r\n");
    assert_eq!(run.items, vec![Err(ParseError::LineTooLong { limit: 8 })]);
    let run = common::replies_with(small, b"250-abcd\r\n250 x\r\n");
    assert!(run.items[0].is_ok());
}

#[test]
fn reply_line_count_cap() {
    let limits = Limits {
        max_reply_lines: 3,
        ..Limits::default()
    };
    let run = common::replies_with(limits, b"250-a\r\n250-b\r\n250 c\r\n");
    assert_eq!(run.items.len(), 1);
    assert_eq!(run.items[0].as_ref().unwrap().line_count(), 3);
    let run = common::replies_with(limits, b"250-a\r\n250-b\r\n250-c\r\n250 d\r\n");
    assert_eq!(run.items, vec![Err(ParseError::TooManyLines { limit: 3 })]);
    // The default cap stops an endless continuation.
    let endless = b"250-x\r\n".repeat(Limits::default().max_reply_lines + 1);
    let run = common::replies(&endless);
    assert_eq!(
        run.items,
        vec![Err(ParseError::TooManyLines {
            limit: Limits::default().max_reply_lines
        })]
    );
}

#[test]
fn severity_helpers() {
    let table = [
        (220, Severity::Positive, true, false, false, false),
        (250, Severity::Positive, true, false, false, false),
        (334, Severity::Intermediate, false, true, false, false),
        (354, Severity::Intermediate, false, true, false, false),
        (421, Severity::Transient, false, false, true, false),
        (451, Severity::Transient, false, false, true, false),
        (500, Severity::Permanent, false, false, false, true),
        (554, Severity::Permanent, false, false, false, true),
        (0, Severity::Other, false, false, false, false),
        (199, Severity::Other, false, false, false, false),
        (699, Severity::Other, false, false, false, false),
    ];
    for (code, sev, pos, inter, trans, perm) in table {
        let c = ReplyCode(code);
        assert_eq!(c.severity(), sev, "{code}");
        assert_eq!(
            (
                c.is_positive(),
                c.is_intermediate(),
                c.is_transient(),
                c.is_permanent()
            ),
            (pos, inter, trans, perm),
            "{code}"
        );
    }
    assert_eq!(ReplyCode(0).to_string(), "000");
    assert_eq!(ReplyCode::OK.to_string(), "250");
    assert_eq!(
        EnhancedCode {
            class: 5,
            subject: 7,
            detail: 1
        }
        .to_string(),
        "5.7.1"
    );
}

#[test]
fn encoder_single_multi_and_empty_lines() {
    let table: &[(u16, &[&str], &[u8])] = &[
        (250, &["2.0.0 Ok"], b"250 2.0.0 Ok\r\n"),
        (221, &["Bye"], b"221 Bye\r\n"),
        (250, &["a", "b", "c"], b"250-a\r\n250-b\r\n250 c\r\n"),
        (250, &["smtp-sink", ""], b"250-smtp-sink\r\n250 \r\n"),
        (250, &[""], b"250 \r\n"),
        (250, &[], b"250 \r\n"),
        (7, &["x"], b"007 x\r\n"),
    ];
    for &(code, text, wire) in table {
        let mut out = BytesMut::new();
        let text_bytes: Vec<&[u8]> = text.iter().map(|t| t.as_bytes()).collect();
        encode_reply(ReplyCode(code), &text_bytes, &mut out);
        assert_eq!(&out[..], wire, "{code} {text:?}");
        let r = Reply::new(code, text);
        assert_eq!(&r.raw()[..], wire);
        assert_eq!(r.code, ReplyCode(code));
        // The encoder's output parses back to the same lines.
        let back = replies(wire);
        assert_eq!(back, vec![r]);
    }
    let r = Reply::new(550, &["5.1.1 no", "really"]);
    assert_eq!(r.to_text("\n"), "550 5.1.1 no\n550 really");
    assert_eq!(Reply::new(250, &[""]).to_text(" / "), "250");
    assert_eq!(
        r.enhanced,
        Some(EnhancedCode {
            class: 5,
            subject: 1,
            detail: 1
        })
    );
}

#[test]
fn ehlo_capabilities_of_postfix_sink() {
    let reply = &replies(POSTFIX_EHLO)[0];
    let caps = Capabilities::from_reply(reply);
    assert_eq!(&caps.greeting[..], b"smtp-sink");
    for ext in [
        Extensions::PIPELINING,
        Extensions::EIGHT_BIT_MIME,
        Extensions::ENHANCED_STATUS_CODES,
        Extensions::DSN,
    ] {
        assert!(caps.has(ext), "{ext:?}");
    }
    for ext in [
        Extensions::STARTTLS,
        Extensions::CHUNKING,
        Extensions::SMTPUTF8,
    ] {
        assert!(!caps.has(ext), "{ext:?}");
    }
    assert!(caps.has_auth("plain") && caps.has_auth("LOGIN") && !caps.has_auth("CRAM-MD5"));
    assert_eq!(caps.xclient.as_deref(), Some(&b"NAME HELO"[..]));
    assert_eq!(caps.xforward.as_deref(), Some(&b"NAME ADDR PROTO HELO"[..]));
    assert_eq!(caps.size, None);
    assert!(caps.unknown.is_empty());
    // Rendering gives Postfix's bytes back, trailing "250 " included.
    let mut out = BytesMut::new();
    caps.render(true, &mut out);
    assert_eq!(&out[..], POSTFIX_EHLO);
    // With -8 -a -C -F -E -N -p only the name and "250 " are left.
    let bare = Capabilities {
        greeting: "smtp-sink".into(),
        ..Capabilities::default()
    };
    let mut out = BytesMut::new();
    bare.render(true, &mut out);
    assert_eq!(&out[..], b"250-smtp-sink\r\n250 \r\n");
    let mut out = BytesMut::new();
    bare.render(false, &mut out);
    assert_eq!(&out[..], b"250 smtp-sink\r\n");
}

#[test]
fn ehlo_capabilities_every_keyword_and_unknowns() {
    let input = b"250-mx.example Hello client [127.0.0.1]\r\n250-pipelining\r\n\
250-SIZE 10240000\r\n250-STARTTLS\r\n250-8BITMIME\r\n250-Auth  PLAIN   LOGIN CRAM-MD5 \r\n\
250-XCLIENT NAME ADDR\r\n250-XFORWARD NAME\r\n250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n\
250-SMTPUTF8\r\n250-CHUNKING\r\n250-ETRN\r\n250-X-FOO bar  baz\r\n250-AUTH=LOGIN\r\n250 VRFY\r\n";
    let caps = Capabilities::from_reply(&replies(input)[0]);
    assert_eq!(&caps.greeting[..], b"mx.example Hello client [127.0.0.1]");
    let all = Extensions::PIPELINING
        | Extensions::EIGHT_BIT_MIME
        | Extensions::ENHANCED_STATUS_CODES
        | Extensions::DSN
        | Extensions::STARTTLS
        | Extensions::CHUNKING
        | Extensions::SMTPUTF8;
    assert_eq!(caps.extensions, all);
    assert_eq!(caps.size, Some(10_240_000));
    let mechs: Vec<&[u8]> = caps.auth.as_ref().unwrap().iter().map(|m| &m[..]).collect();
    assert_eq!(mechs, vec![&b"PLAIN"[..], b"LOGIN", b"CRAM-MD5"]);
    assert_eq!(caps.xclient.as_deref(), Some(&b"NAME ADDR"[..]));
    assert_eq!(caps.xforward.as_deref(), Some(&b"NAME"[..]));
    let unknown: Vec<&[u8]> = caps.unknown.iter().map(|u| &u[..]).collect();
    assert_eq!(
        unknown,
        vec![&b"ETRN"[..], b"X-FOO bar  baz", b"AUTH=LOGIN", b"VRFY"]
    );
    // Render and parse again: the same capabilities.
    let mut out = BytesMut::new();
    caps.render(false, &mut out);
    let again = Capabilities::from_reply(&replies(&out)[0]);
    assert_eq!(again, caps);
    // SIZE without a number, or with garbage, is SIZE without a limit.
    for line in [&b"250-x\r\n250 SIZE\r\n"[..], b"250-x\r\n250 SIZE lots\r\n"] {
        assert_eq!(Capabilities::from_reply(&replies(line)[0]).size, Some(0));
    }
    // A HELO-style one-line reply has a greeting and nothing else.
    let caps = Capabilities::from_reply(&replies(b"250 smtp-sink\r\n")[0]);
    assert_eq!(
        caps,
        Capabilities {
            greeting: "smtp-sink".into(),
            ..Capabilities::default()
        }
    );
}

#[test]
fn extension_set_operations() {
    let mut e = Extensions::EMPTY;
    assert!(!e.contains(Extensions::DSN));
    assert!(e.contains(Extensions::EMPTY));
    e.insert(Extensions::DSN | Extensions::PIPELINING);
    assert!(e.contains(Extensions::DSN) && e.contains(Extensions::PIPELINING));
    e.remove(Extensions::DSN);
    assert!(!e.contains(Extensions::DSN) && e.contains(Extensions::PIPELINING));
    assert_eq!(Extensions::default(), Extensions::EMPTY);
}
