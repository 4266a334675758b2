//! EHLO capabilities: parsing any reply never panics, and render -> parse
//! is a fixed point: parse(render(parse(x))) == parse(x).

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use smtp_proto::{Capabilities, Limits, ReplyParser};
use smtp_proto_fuzz::Input;

fuzz_target!(|input: Input| {
    let mut buf = BytesMut::from(&input.bytes()[..]);
    let mut parser = ReplyParser::default();
    while let Ok(Some(reply)) = parser.parse(&mut buf) {
        let caps = Capabilities::from_reply(&reply);
        let _ = caps.has_auth("PLAIN");
        for trailing in [false, true] {
            let mut out = BytesMut::new();
            caps.render(trailing, &mut out);
            // The rendered reply can have one line more (the trailing one)
            // than the default cap allowed the input.
            let uncapped = Limits {
                max_reply_lines: usize::MAX,
                ..Limits::default()
            };
            let again = ReplyParser::new(uncapped)
                .parse(&mut out)
                .expect("rendered reply parses")
                .expect("rendered reply is complete");
            assert!(out.is_empty(), "rendered more than one reply");
            assert_eq!(
                Capabilities::from_reply(&again),
                caps,
                "render/parse changed it"
            );
        }
    }
});
