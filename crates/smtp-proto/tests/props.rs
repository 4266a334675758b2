//! Property tests: encode -> parse round trips, stuff -> unstuff, the two
//! DATA modes agreeing, and results that do not depend on how the input
//! was cut into reads.

mod common;

use bytes::BytesMut;
use proptest::prelude::*;
use smtp_proto::{
    encode_reply, Capabilities, CommandParser, DataMode, DotStuffer, Extensions, Limits, ReplyCode,
    ReplyParser, Request, Verb,
};

/// Bytes drawn mostly from the characters that matter to the framers,
/// so the interesting sequences (CRLF, CRLF "." CRLF, codes) come up often.
fn smtp_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    let alphabet = prop::sample::select(vec![
        b'\r', b'\n', b'.', b' ', b'\t', b'-', b'2', b'5', b'0', b'a', b'X', 0xff,
    ]);
    prop_oneof![
        3 => prop::collection::vec(alphabet, 0..max),
        1 => prop::collection::vec(any::<u8>(), 0..max),
    ]
}

/// Cuts `input` at the given points (taken modulo its length).
fn cut<'a>(input: &'a [u8], points: &[usize]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = points.iter().map(|p| p % (input.len() + 1)).collect();
    at.sort_unstable();
    let mut parts = Vec::new();
    let mut from = 0;
    for p in at {
        parts.push(&input[from..p]);
        from = p;
    }
    parts.push(&input[from..]);
    parts
}

fn word() -> impl Strategy<Value = String> {
    "[A-Za-z0-9.-]{1,20}"
}

fn params() -> impl Strategy<Value = String> {
    prop::collection::vec("[A-Z0-9]{1,8}(=[A-Za-z0-9,;+.@-]{0,12})?", 0..4)
        .prop_map(|p| p.join(" "))
}

fn path() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        "[a-z0-9.+_-]{1,16}@[a-z0-9.-]{1,16}",
        r#""[a-z >@\\"]{0,8}"@[a-z.]{1,8}"#.prop_map(|q: String| {
            // Escape quotes inside the quoted local part.
            let (local, domain) = q.rsplit_once('@').expect("pattern has @");
            let inner = &local[1..local.len() - 1];
            let inner = inner.replace('\\', "\\\\").replace('"', "\\\"");
            format!("\"{inner}\"@{domain}")
        }),
    ]
}

#[derive(Debug, Clone)]
enum Req {
    Helo(String),
    Ehlo(String),
    Lhlo(String),
    Mail(String, String),
    Rcpt(String, String),
    Data,
    Bdat(u64, bool),
    Rset,
    Noop,
    Quit,
    StartTls,
    Auth(String, Option<String>),
    Raw(String),
}

impl Req {
    fn request(&self) -> Request<'_> {
        match self {
            Req::Helo(d) => Request::Helo(d.as_bytes()),
            Req::Ehlo(d) => Request::Ehlo(d.as_bytes()),
            Req::Lhlo(d) => Request::Lhlo(d.as_bytes()),
            Req::Mail(p, x) => Request::MailFrom {
                path: p.as_bytes(),
                params: x.as_bytes(),
            },
            Req::Rcpt(p, x) => Request::RcptTo {
                path: p.as_bytes(),
                params: x.as_bytes(),
            },
            Req::Data => Request::Data,
            Req::Bdat(size, last) => Request::Bdat {
                size: *size,
                last: *last,
            },
            Req::Rset => Request::Rset,
            Req::Noop => Request::Noop,
            Req::Quit => Request::Quit,
            Req::StartTls => Request::StartTls,
            Req::Auth(m, i) => Request::Auth {
                mechanism: m.as_bytes(),
                initial: i.as_ref().map(|i| i.as_bytes()),
            },
            Req::Raw(line) => Request::Raw(line.as_bytes()),
        }
    }
}

fn req() -> impl Strategy<Value = Req> {
    prop_oneof![
        word().prop_map(Req::Helo),
        word().prop_map(Req::Ehlo),
        word().prop_map(Req::Lhlo),
        (path(), params()).prop_map(|(p, x)| Req::Mail(p, x)),
        (path(), params()).prop_map(|(p, x)| Req::Rcpt(p, x)),
        Just(Req::Data),
        (any::<u64>(), any::<bool>()).prop_map(|(s, l)| Req::Bdat(s, l)),
        Just(Req::Rset),
        Just(Req::Noop),
        Just(Req::Quit),
        Just(Req::StartTls),
        (
            "[A-Z0-9_-]{1,20}",
            prop::option::of("[A-Za-z0-9+/]{1,40}={0,2}")
        )
            .prop_map(|(m, i)| Req::Auth(m, i)),
        "[ -~]{0,60}".prop_map(Req::Raw),
    ]
}

/// Checks a parsed command against the request it came from.
fn check(req: &Req, cmd: &smtp_proto::Command) -> Result<(), TestCaseError> {
    match req {
        Req::Helo(d) | Req::Ehlo(d) | Req::Lhlo(d) => {
            prop_assert_eq!(&cmd.args[..], d.as_bytes());
        }
        Req::Mail(p, x) => {
            prop_assert_eq!(cmd.verb, Verb::Mail);
            let m = cmd.mail_from().expect("valid MAIL");
            prop_assert_eq!(&m.path[..], p.as_bytes());
            prop_assert_eq!(&m.params.0[..], x.as_bytes());
        }
        Req::Rcpt(p, x) => {
            prop_assert_eq!(cmd.verb, Verb::Rcpt);
            let r = cmd.rcpt_to().expect("valid RCPT");
            prop_assert_eq!(&r.path[..], p.as_bytes());
            prop_assert_eq!(&r.params.0[..], x.as_bytes());
        }
        Req::Bdat(size, last) => {
            let b = cmd.bdat().expect("valid BDAT");
            prop_assert_eq!((b.size, b.last), (*size, *last));
        }
        Req::Auth(m, i) => {
            let a = cmd.auth().expect("valid AUTH");
            prop_assert_eq!(&a.mechanism[..], m.as_bytes());
            prop_assert_eq!(
                a.initial_response.as_deref(),
                i.as_ref().map(|i| i.as_bytes())
            );
        }
        Req::Raw(line) => {
            prop_assert_eq!(cmd, &smtp_proto::Command::from_line(line.clone().into()));
        }
        Req::Data | Req::Rset | Req::Noop | Req::Quit | Req::StartTls => {
            prop_assert!(cmd.args.is_empty());
        }
    }
    if !matches!(req, Req::Raw(_)) {
        prop_assert_eq!(cmd.verb, req.request().verb());
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn request_encode_then_parse(reqs in prop::collection::vec(req(), 1..8), points in prop::collection::vec(any::<usize>(), 0..6)) {
        let mut wire = BytesMut::new();
        for r in &reqs {
            r.request().encode(&mut wire);
        }
        let run = common::drive(
            {
                let mut p = CommandParser::new(4096);
                move |buf: &mut BytesMut| p.parse(buf)
            },
            &cut(&wire, &points),
            true,
        );
        prop_assert_eq!(run.rest.as_deref(), Some(&b""[..]));
        prop_assert_eq!(run.items.len(), reqs.len());
        for (r, item) in reqs.iter().zip(&run.items) {
            check(r, item.as_ref().expect("no error"))?;
        }
    }

    #[test]
    fn reply_encode_then_parse(
        replies in prop::collection::vec((0u16..1000, prop::collection::vec("[ -~\t\u{80}-\u{ff}]{0,40}", 1..6)), 1..5),
        points in prop::collection::vec(any::<usize>(), 0..6),
    ) {
        let mut wire = BytesMut::new();
        for (code, lines) in &replies {
            let lines: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
            encode_reply(ReplyCode(*code), &lines, &mut wire);
        }
        let run = common::drive(
            {
                let mut p = ReplyParser::default();
                move |buf: &mut BytesMut| p.parse(buf)
            },
            &cut(&wire, &points),
            false,
        );
        prop_assert_eq!(run.rest.as_deref(), Some(&b""[..]));
        prop_assert_eq!(run.items.len(), replies.len());
        for ((code, lines), got) in replies.iter().zip(&run.items) {
            let got = got.as_ref().expect("no error");
            prop_assert_eq!(got.code, ReplyCode(*code));
            let got_lines: Vec<&[u8]> = got.lines().collect();
            let want: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
            prop_assert_eq!(got_lines, want);
        }
    }

    #[test]
    fn stuff_then_unstuff_gives_the_input_back(
        input in smtp_bytes(400),
        enc_points in prop::collection::vec(any::<usize>(), 0..6),
        dec_points in prop::collection::vec(any::<usize>(), 0..6),
        convert in any::<bool>(),
    ) {
        let mut enc = if convert { DotStuffer::with_bare_lf_to_crlf() } else { DotStuffer::new() };
        let mut wire = BytesMut::new();
        for part in cut(&input, &enc_points) {
            enc.encode(part, &mut wire);
        }
        enc.finish(&mut wire);
        // The expected content: bare LF made CRLF if asked, and a CRLF
        // added to a last line without one.
        let mut expect = Vec::new();
        for (i, &b) in input.iter().enumerate() {
            if convert && b == b'\n' && (i == 0 || input[i - 1] != b'\r') {
                expect.push(b'\r');
            }
            expect.push(b);
        }
        if !expect.is_empty() && !expect.ends_with(b"\r\n") {
            expect.extend_from_slice(b"\r\n");
        }
        for mode in [DataMode::Unstuff, DataMode::CountOnly] {
            let d = common::decode_parts(mode, &cut(&wire, &dec_points));
            prop_assert_eq!(d.end, Some(wire.len()));
            prop_assert!(d.rest.is_empty());
            match mode {
                DataMode::Unstuff => prop_assert_eq!(&d.content, &expect),
                DataMode::CountOnly => prop_assert_eq!(d.content_len, wire.len() - 3),
            }
        }
    }

    #[test]
    fn data_modes_agree_and_ignore_chunking(
        input in smtp_bytes(300),
        points in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let whole_u = common::decode_parts(DataMode::Unstuff, &[&input]);
        let whole_c = common::decode_parts(DataMode::CountOnly, &[&input]);
        prop_assert_eq!(whole_u.end, whole_c.end);
        prop_assert_eq!(&whole_u.rest, &whole_c.rest);
        if let Some(end) = whole_c.end {
            prop_assert_eq!(whole_c.content_len, end - 3);
            prop_assert!(input[..end].ends_with(b".\r\n"));
            prop_assert!(end == 3 || input[..end].ends_with(b"\r\n.\r\n"));
            // The end is the first CRLF "." CRLF (or a "." first line).
            let first = if input.starts_with(b".\r\n") {
                3
            } else {
                input.windows(5).position(|w| w == b"\r\n.\r\n").map(|i| i + 5).expect("found")
            };
            prop_assert_eq!(end, first);
        } else {
            prop_assert!(!input.starts_with(b".\r\n"));
            prop_assert!(!input.windows(5).any(|w| w == b"\r\n.\r\n"));
        }
        let parts = cut(&input, &points);
        prop_assert_eq!(common::decode_parts(DataMode::Unstuff, &parts), whole_u);
        prop_assert_eq!(common::decode_parts(DataMode::CountOnly, &parts), whole_c);
    }

    #[test]
    fn command_parser_ignores_chunking(
        input in smtp_bytes(300),
        points in prop::collection::vec(any::<usize>(), 0..8),
        limit in 0usize..40,
    ) {
        let run = |parts: &[&[u8]]| {
            let mut p = CommandParser::new(limit);
            common::drive(|buf: &mut BytesMut| p.parse(buf), parts, true)
        };
        let whole = run(&[&input]);
        prop_assert_eq!(run(&cut(&input, &points)), whole.clone());
        // Every line that came out is within the limit and has no CRLF.
        for cmd in whole.items.iter().flatten() {
            prop_assert!(cmd.name.len() + cmd.args.len() < limit + 1);
        }
    }

    #[test]
    fn reply_parser_ignores_chunking(
        input in smtp_bytes(300),
        points in prop::collection::vec(any::<usize>(), 0..8),
        max_line in 0usize..30,
        max_lines in 1usize..5,
    ) {
        let limits = Limits { max_reply_line: max_line, max_reply_lines: max_lines, ..Limits::default() };
        let run = |parts: &[&[u8]]| {
            let mut p = ReplyParser::new(limits);
            common::drive(|buf: &mut BytesMut| p.parse(buf), parts, false)
        };
        let whole = run(&[&input]);
        prop_assert_eq!(run(&cut(&input, &points)), whole.clone());
        for r in whole.items.iter().flatten() {
            prop_assert!(r.line_count() <= max_lines);
        }
    }

    #[test]
    fn capabilities_render_then_parse(
        greeting in "[a-z.-]{1,20}( [ -~]{0,20})?",
        bits in any::<u8>(),
        size in prop::option::of(0u64..u64::MAX),
        auth in prop::option::of(prop::collection::vec("[A-Z0-9-]{1,12}", 0..4)),
        xclient in prop::option::of("[A-Z]{1,6}( [A-Z]{1,6}){0,3}"),
        unknown in prop::collection::vec("X-[A-Z]{1,8}( [a-z]{1,5}){0,2}", 0..3),
        trailing in any::<bool>(),
    ) {
        let all = [
            Extensions::PIPELINING, Extensions::EIGHT_BIT_MIME, Extensions::ENHANCED_STATUS_CODES,
            Extensions::DSN, Extensions::STARTTLS, Extensions::CHUNKING, Extensions::SMTPUTF8,
        ];
        let mut extensions = Extensions::EMPTY;
        for (i, e) in all.iter().enumerate() {
            if bits & (1 << i) != 0 {
                extensions.insert(*e);
            }
        }
        let caps = Capabilities {
            greeting: greeting.into(),
            extensions,
            size,
            auth: auth.map(|a| a.into_iter().map(Into::into).collect()),
            xclient: xclient.map(Into::into),
            xforward: None,
            unknown: unknown.into_iter().map(Into::into).collect(),
        };
        let mut wire = BytesMut::new();
        caps.render(trailing, &mut wire);
        let reply = ReplyParser::default().parse(&mut wire).expect("valid").expect("complete");
        prop_assert!(wire.is_empty());
        prop_assert!(reply.code.is_positive());
        prop_assert_eq!(Capabilities::from_reply(&reply), caps);
    }
}
