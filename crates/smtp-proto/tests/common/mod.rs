//! Helpers shared by the test binaries: feed a parser its input in every
//! possible way and check that the way does not matter.

#![allow(dead_code, unreachable_pub)]

use bytes::BytesMut;
use smtp_proto::{CommandParser, DataDecoder, DataEvent, DataMode, ParseError, ReplyParser};

/// Safety net against a parser that returns items without consuming input.
const MAX_STEPS: usize = 1_000_000;

/// What a parser made of some input: every item or error in order, and the
/// bytes it left in the buffer (`None` when it stopped at an error that is
/// not recoverable, where the leftover depends on when the error was seen).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run<T> {
    pub items: Vec<Result<T, ParseError>>,
    pub rest: Option<Vec<u8>>,
}

/// Feeds `parts` one after the other to `parse`, draining after each.
///
/// `Ok(None)` must leave the buffer as it was unless `may_consume_on_none`
/// (the command parser drops the body of an over-long line as it arrives;
/// that is also the one parser whose errors are recoverable: it records
/// them and goes on). For the other parsers any error ends the run.
pub fn drive<T>(
    mut parse: impl FnMut(&mut BytesMut) -> Result<Option<T>, ParseError>,
    parts: &[&[u8]],
    may_consume_on_none: bool,
) -> Run<T> {
    let recoverable = |e: &ParseError| may_consume_on_none && e.is_recoverable();
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    let mut steps = 0;
    for part in parts {
        buf.extend_from_slice(part);
        loop {
            steps += 1;
            assert!(steps < MAX_STEPS, "parser does not make progress");
            let before = buf.clone();
            match parse(&mut buf) {
                Ok(Some(item)) => items.push(Ok(item)),
                Ok(None) => {
                    if !may_consume_on_none {
                        assert_eq!(buf, before, "Ok(None) must leave the buffer as it was");
                    }
                    break;
                }
                Err(e) if recoverable(&e) => items.push(Err(e)),
                Err(e) => {
                    items.push(Err(e));
                    return Run { items, rest: None };
                }
            }
        }
    }
    Run {
        items,
        rest: Some(buf.to_vec()),
    }
}

/// Runs `input` whole, split in two at every offset, and one byte at a
/// time, through a fresh parser each time; asserts every run gives the
/// same result and returns it.
pub fn split_invariant<T, P>(
    make: impl Fn() -> P,
    parse: impl Fn(&mut P, &mut BytesMut) -> Result<Option<T>, ParseError>,
    input: &[u8],
    may_consume_on_none: bool,
) -> Run<T>
where
    T: PartialEq + std::fmt::Debug,
{
    let run = |parts: &[&[u8]]| {
        let mut p = make();
        drive(|buf| parse(&mut p, buf), parts, may_consume_on_none)
    };
    let whole = run(&[input]);
    for split in 0..=input.len() {
        let (a, b) = input.split_at(split);
        assert_eq!(
            run(&[a, b]),
            whole,
            "split at {split} of {:?}",
            String::from_utf8_lossy(input)
        );
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(
        run(&bytes),
        whole,
        "byte by byte: {:?}",
        String::from_utf8_lossy(input)
    );
    whole
}

/// [`split_invariant`] for the command parser with a line limit.
pub fn commands(limit: usize, input: &[u8]) -> Run<smtp_proto::Command> {
    split_invariant(
        || CommandParser::new(limit),
        CommandParser::parse,
        input,
        true,
    )
}

/// [`split_invariant`] for the reply parser with default limits.
pub fn replies(input: &[u8]) -> Run<smtp_proto::Reply> {
    replies_with(smtp_proto::Limits::default(), input)
}

/// [`split_invariant`] for the reply parser with the given limits.
pub fn replies_with(limits: smtp_proto::Limits, input: &[u8]) -> Run<smtp_proto::Reply> {
    split_invariant(
        || ReplyParser::new(limits),
        ReplyParser::parse,
        input,
        false,
    )
}

/// One message decoded out of a DATA stream, independent of how the
/// decoder chose to cut its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// Unstuffed content (Unstuff mode), empty in CountOnly mode.
    pub content: Vec<u8>,
    /// Bytes reported as content: chunk lengths or skipped counts.
    pub content_len: usize,
    /// Input offset just after the `.` CRLF, if the end was seen.
    pub end: Option<usize>,
    /// What was left in the buffer.
    pub rest: Vec<u8>,
}

/// Decodes one message from `parts`, stopping at its end.
pub fn decode_parts(mode: DataMode, parts: &[&[u8]]) -> Decoded {
    let mut dec = DataDecoder::new(mode);
    let mut buf = BytesMut::new();
    let mut d = Decoded {
        content: Vec::new(),
        content_len: 0,
        end: None,
        rest: Vec::new(),
    };
    let mut fed = 0;
    let mut steps = 0;
    'parts: for part in parts {
        buf.extend_from_slice(part);
        fed += part.len();
        loop {
            steps += 1;
            assert!(steps < MAX_STEPS, "decoder does not make progress");
            let before = buf.clone();
            match dec.parse(&mut buf).expect("DATA decoding never fails") {
                Some(DataEvent::Chunk(c)) => {
                    assert_eq!(mode, DataMode::Unstuff);
                    assert!(!c.is_empty(), "empty chunk");
                    d.content_len += c.len();
                    d.content.extend_from_slice(&c);
                }
                Some(DataEvent::Skipped(n)) => {
                    assert_eq!(mode, DataMode::CountOnly);
                    assert!(n > 0, "empty skip");
                    d.content_len += n;
                }
                Some(DataEvent::End) => {
                    d.end = Some(fed - buf.len());
                    break 'parts;
                }
                None => {
                    assert_eq!(buf, before, "Ok(None) must leave the buffer as it was");
                    assert!(buf.len() <= 4, "held back more than a marker: {buf:?}");
                    break;
                }
            }
        }
    }
    let consumed_parts: usize = fed;
    let total: usize = parts.iter().map(|p| p.len()).sum();
    let mut rest = buf.to_vec();
    // Bytes never fed (after the end) are part of the rest too.
    let mut off = 0;
    for part in parts {
        let next = off + part.len();
        if next > consumed_parts {
            rest.extend_from_slice(&part[consumed_parts.max(off) - off..]);
        }
        off = next;
    }
    assert_eq!(off, total);
    d.rest = rest;
    d
}

/// Decodes `input` whole, at every split and byte by byte; asserts all
/// agree and returns the result.
pub fn decode(mode: DataMode, input: &[u8]) -> Decoded {
    let whole = decode_parts(mode, &[input]);
    for split in 0..=input.len() {
        let (a, b) = input.split_at(split);
        assert_eq!(
            decode_parts(mode, &[a, b]),
            whole,
            "{mode:?} split at {split} of {:?}",
            String::from_utf8_lossy(input)
        );
    }
    let bytes: Vec<&[u8]> = input.chunks(1).collect();
    assert_eq!(decode_parts(mode, &bytes), whole, "{mode:?} byte by byte");
    whole
}

/// Decodes in both modes, checks they agree on the end and the amount of
/// content, and returns the Unstuff result.
pub fn decode_both(input: &[u8]) -> Decoded {
    let unstuffed = decode(DataMode::Unstuff, input);
    let counted = decode(DataMode::CountOnly, input);
    assert_eq!(counted.end, unstuffed.end, "modes disagree on the end");
    assert_eq!(counted.rest, unstuffed.rest, "modes disagree on the rest");
    unstuffed
}
