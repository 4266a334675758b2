//! DataDecoder in both modes against a byte-at-a-time reference decoder:
//! the same end, the same unstuffed content, whatever the cuts; CountOnly
//! and Unstuff agree on where the message ends. And DotStuffer, fed the
//! same cuts, produces what the decoder turns back into the input.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use smtp_proto::{DataDecoder, DataEvent, DataMode, DotStuffer};
use smtp_proto_fuzz::{cut, Input};

/// Content (unstuffed, or only counted) and the offset after the end.
#[derive(Debug, PartialEq, Eq)]
struct Decoded {
    content: Vec<u8>,
    counted: usize,
    end: Option<usize>,
}

fn decode(mode: DataMode, parts: &[&[u8]]) -> Decoded {
    let mut dec = DataDecoder::new(mode);
    let mut buf = BytesMut::new();
    let mut d = Decoded {
        content: Vec::new(),
        counted: 0,
        end: None,
    };
    let mut fed = 0;
    for part in parts {
        buf.extend_from_slice(part);
        fed += part.len();
        loop {
            let before = buf.clone();
            match dec.parse(&mut buf).expect("infallible") {
                Some(DataEvent::Chunk(c)) => {
                    assert!(!c.is_empty());
                    d.counted += c.len();
                    d.content.extend_from_slice(&c);
                }
                Some(DataEvent::Skipped(n)) => {
                    assert!(n > 0);
                    d.counted += n;
                }
                Some(DataEvent::End) => {
                    d.end = Some(fed - buf.len());
                    return d;
                }
                None => {
                    assert_eq!(buf, before, "Ok(None) changed the buffer");
                    assert!(buf.len() <= 4, "held back {} bytes", buf.len());
                    break;
                }
            }
        }
    }
    d
}

/// Postfix's smtp-sink state machine, one byte at a time: the message
/// ends at CR LF "." CR LF (or "." CR LF first), a "." that starts a line
/// is dropped otherwise.
fn reference(input: &[u8]) -> (Vec<u8>, Option<usize>) {
    let mut content = Vec::new();
    let mut line_start = true;
    let mut i = 0;
    while i < input.len() {
        if line_start && input[i] == b'.' {
            if input[i..].starts_with(b".\r\n") {
                return (content, Some(i + 3));
            }
            i += 1;
            if i == input.len() {
                break;
            }
        }
        let b = input[i];
        content.push(b);
        line_start = b == b'\n' && i > 0 && input[i - 1] == b'\r';
        i += 1;
    }
    (content, None)
}

fuzz_target!(|input: Input| {
    let mut data = input.bytes();
    let parts = cut(&data, &input.cuts);
    let u = decode(DataMode::Unstuff, &parts);
    let c = decode(DataMode::CountOnly, &parts);
    assert_eq!(u.end, c.end, "modes disagree on the end");
    assert_eq!(
        u,
        decode(DataMode::Unstuff, &[&data]),
        "cutting changed Unstuff"
    );
    assert_eq!(
        c,
        decode(DataMode::CountOnly, &[&data]),
        "cutting changed CountOnly"
    );
    if let Some(end) = c.end {
        assert_eq!(c.counted, end - 3);
    }
    // With an end guaranteed, compare with the reference decoder.
    data.extend_from_slice(b"\r\n.\r\n");
    let (content, end) = reference(&data);
    let u = decode(DataMode::Unstuff, &cut(&data, &input.cuts));
    let c = decode(DataMode::CountOnly, &cut(&data, &input.cuts));
    assert_eq!(u.end, end);
    assert_eq!(c.end, end);
    assert_eq!(u.content, content);

    // Stuff the original data in the given cuts; decoding gives it back
    // (plus the CRLF that finish() adds to an unterminated last line).
    let original = &data[..data.len() - 5];
    let convert = input.knob % 2 == 1;
    let mut stuffer = if convert {
        DotStuffer::with_bare_lf_to_crlf()
    } else {
        DotStuffer::new()
    };
    let mut wire = BytesMut::new();
    for part in cut(original, &input.cuts) {
        stuffer.encode(part, &mut wire);
    }
    stuffer.finish(&mut wire);
    let mut expect = Vec::new();
    for (i, &b) in original.iter().enumerate() {
        if convert && b == b'\n' && (i == 0 || original[i - 1] != b'\r') {
            expect.push(b'\r');
        }
        expect.push(b);
    }
    if !expect.is_empty() && !expect.ends_with(b"\r\n") {
        expect.extend_from_slice(b"\r\n");
    }
    let back = decode(DataMode::Unstuff, &cut(&wire, &input.cuts));
    assert_eq!(
        back.end,
        Some(wire.len()),
        "stuffed message ends early or never"
    );
    assert_eq!(back.content, expect, "stuff -> unstuff changed the content");
});
