//! ReplyParser: no panic, results independent of how the input is cut,
//! the caps hold, and every reply re-encodes to the bytes it came from.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use smtp_proto::{Capabilities, Limits, ReplyParser};
use smtp_proto_fuzz::{cut, drive, Input};

fuzz_target!(|input: Input| {
    let data = input.bytes();
    let limits = Limits {
        max_reply_line: usize::from(input.knob % 512),
        max_reply_lines: usize::from(input.knob / 512 % 64) + 1,
        ..Limits::default()
    };
    let run = |parts: &[&[u8]]| {
        let mut p = ReplyParser::new(limits);
        drive(|buf: &mut BytesMut| p.parse(buf), |_| false, parts, true)
    };
    let whole = run(&[&data]);
    assert_eq!(
        run(&cut(&data, &input.cuts)),
        whole,
        "cutting changed the result"
    );
    let mut consumed = 0;
    for reply in whole.items.iter().flatten() {
        assert!(reply.line_count() >= 1 && reply.line_count() <= limits.max_reply_lines);
        for line in reply.lines() {
            assert!(line.is_empty() || line.len() + 4 <= limits.max_reply_line);
        }
        let mut out = BytesMut::new();
        reply.encode(&mut out);
        assert_eq!(&out[..], &data[consumed..consumed + out.len()]);
        consumed += out.len();
        let _ = reply.to_text("\n");
        let _ = Capabilities::from_reply(reply);
    }
});
