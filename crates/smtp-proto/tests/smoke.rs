//! First checks of the codec's core promises; the full tables live beside.

use bytes::BytesMut;
use smtp_proto::{
    message::Body, CommandParser, DataDecoder, DataEvent, DataMode, ParseError, ReplyParser, Verb,
};

fn decode_all(mode: DataMode, input: &[u8], split: usize) -> (Vec<u8>, usize, bool, Vec<u8>) {
    let mut dec = DataDecoder::new(mode);
    let mut buf = BytesMut::new();
    let (mut out, mut skipped, mut ended) = (Vec::new(), 0, false);
    for part in [&input[..split], &input[split..]] {
        buf.extend_from_slice(part);
        while !ended {
            match dec.parse(&mut buf).unwrap() {
                Some(DataEvent::Chunk(c)) => out.extend_from_slice(&c),
                Some(DataEvent::Skipped(n)) => skipped += n,
                Some(DataEvent::End) => ended = true,
                None => break,
            }
        }
    }
    (out, skipped, ended, buf.to_vec())
}

#[test]
fn data_end_and_unstuffing_at_every_split() {
    let input = b"a\r\n..b\r\n.\r\nNOOP\r\n";
    for split in 0..=input.len() {
        let (out, _, ended, rest) = decode_all(DataMode::Unstuff, input, split);
        assert!(ended, "split {split}");
        assert_eq!(out, b"a\r\n.b\r\n", "split {split}");
        assert_eq!(rest, b"NOOP\r\n", "split {split}");
        let (_, skipped, ended, rest) = decode_all(DataMode::CountOnly, input, split);
        assert!(ended);
        assert_eq!(skipped + 3 + rest.len(), input.len(), "split {split}");
        assert_eq!(rest, b"NOOP\r\n", "split {split}");
    }
}

#[test]
fn smuggling_vectors_do_not_end_data() {
    for v in [&b"x\n.\r\ny"[..], b"x\r\n.\ny", b"x\n.\ny", b"x\r.\r\ny"] {
        for mode in [DataMode::Unstuff, DataMode::CountOnly] {
            for split in 0..=v.len() {
                let (_, _, ended, _) = decode_all(mode, v, split);
                assert!(!ended, "{v:?} {mode:?} {split}");
            }
        }
    }
}

#[test]
fn first_line_dot_ends_empty_message() {
    let (out, _, ended, _) = decode_all(DataMode::Unstuff, b".\r\n", 0);
    assert!(ended && out.is_empty());
    let (_, n, ended, _) = decode_all(DataMode::CountOnly, b".\r\n", 1);
    assert!(ended && n <= 1);
}

#[test]
fn commands_end_only_at_crlf() {
    let mut p = CommandParser::new(20);
    let mut buf = BytesMut::from(&b"NOOP\nNOOP\r\n  mail   FROM:<a>  \r\n\r\n"[..]);
    let c = p.parse(&mut buf).unwrap().unwrap();
    assert_eq!(c.verb, Verb::Unknown);
    let c = p.parse(&mut buf).unwrap().unwrap();
    assert_eq!(
        (c.verb, &c.name[..], &c.args[..]),
        (Verb::Mail, &b"mail"[..], &b"  FROM:<a>  "[..])
    );
    assert_eq!(&c.mail_from().unwrap().path[..], b"a");
    assert_eq!(p.parse(&mut buf).unwrap().unwrap().verb, Verb::Empty);
    assert_eq!(p.parse(&mut buf).unwrap(), None);
}

#[test]
fn overlong_command_is_reported_then_skipped() {
    let mut p = CommandParser::new(10);
    let mut buf = BytesMut::from(&b"0123456789A"[..]);
    assert!(p.parse(&mut buf).unwrap().is_none());
    buf.extend_from_slice(b"BC");
    assert_eq!(
        p.parse(&mut buf),
        Err(ParseError::LineTooLong { limit: 10 })
    );
    buf.extend_from_slice(b"more\r\nQUIT\r\n");
    assert_eq!(p.parse(&mut buf).unwrap().unwrap().verb, Verb::Quit);
    // Exactly at the limit is fine.
    let mut buf = BytesMut::from(&b"0123456789\r\n"[..]);
    assert!(p.parse(&mut buf).unwrap().is_some());
}

#[test]
fn multiline_reply_waits_for_last_line() {
    let mut p = ReplyParser::default();
    let mut buf = BytesMut::from(&b"250-smtp-sink\r\n250-PIPELINING\r\n250 \r"[..]);
    assert!(p.parse(&mut buf).unwrap().is_none());
    assert_eq!(buf.len(), 36);
    buf.extend_from_slice(b"\n354 go\n");
    let r = p.parse(&mut buf).unwrap().unwrap();
    assert_eq!(r.code.0, 250);
    assert_eq!(
        r.lines().collect::<Vec<_>>(),
        vec![&b"smtp-sink"[..], b"PIPELINING", b""]
    );
    let r = p.parse(&mut buf).unwrap().unwrap();
    assert_eq!(r.code.0, 354);
    let mut bad = BytesMut::from(&b"250-a\r\n251 b\r\n"[..]);
    assert!(matches!(
        p.parse(&mut bad),
        Err(ParseError::ReplyCodeMismatch { .. })
    ));
}

#[test]
fn generated_body_matches_postfix_shape() {
    let body = Body::Generated(250).render();
    let expect = format!(
        "1{x}\r\n2{x}\r\n3{x}\r\nXXXXXXXXXX\r\n.\r\n",
        x = "X".repeat(77)
    );
    assert_eq!(&body[..], expect.as_bytes());
    let body = Body::File(b".leading dot\n..two dots\n.\nlast line no newline".to_vec()).render();
    assert_eq!(
        &body[..],
        &b"..leading dot\r\n...two dots\r\n..\r\nlast line no newline\r\n\r\n.\r\n"[..]
    );
}
