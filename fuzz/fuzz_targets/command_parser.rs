//! CommandParser: no panic, results independent of how the input is cut,
//! lines within the limit, typed views never panic, and the buffer never
//! holds more than one line's worth when fed in small reads.

#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use smtp_proto::{CommandParser, ParseError};
use smtp_proto_fuzz::{cut, drive, Input};

fuzz_target!(|input: Input| {
    let data = input.bytes();
    let limit = usize::from(input.knob % 4096);
    let run = |parts: &[&[u8]]| {
        let mut p = CommandParser::new(limit);
        drive(
            |buf: &mut BytesMut| p.parse(buf),
            ParseError::is_recoverable,
            parts,
            false,
        )
    };
    let whole = run(&[&data]);
    assert_eq!(
        run(&cut(&data, &input.cuts)),
        whole,
        "cutting changed the result"
    );
    for item in &whole.items {
        match item {
            Ok(cmd) => {
                assert!(cmd.name.len() + cmd.args.len() <= limit);
                assert!(!cmd.name.contains(&b' ') && !cmd.name.contains(&b'\t'));
                let _ = cmd.mail_from();
                let _ = cmd.rcpt_to();
                let _ = cmd.auth();
                let _ = cmd.bdat();
                let _ = cmd.attributes().iter().count();
                let _ = cmd.trimmed_args();
            }
            Err(e) => assert_eq!(*e, ParseError::LineTooLong { limit }),
        }
    }
    // Fed one byte at a time the buffer stays within limit + 2.
    let mut p = CommandParser::new(limit);
    let mut buf = BytesMut::new();
    for &b in &data {
        buf.extend_from_slice(&[b]);
        assert!(buf.len() <= limit + 2, "buffered {} bytes", buf.len());
        while let Ok(Some(_)) | Err(_) = p.parse(&mut buf) {}
    }
});
