//! The DATA phase: the decoder in both modes (end of message, unstuffing,
//! SMTP smuggling vectors) and the dot-stuffing encoder. Every decoder
//! input runs whole, split at every offset and byte by byte, in both modes.

mod common;

use bytes::BytesMut;
use common::{decode, decode_both};
use smtp_proto::{stuff, DataDecoder, DataEvent, DataMode, DotStuffer};

#[test]
fn end_of_data_and_unstuffing_table() {
    // (input, unstuffed content, end offset, rest)
    type Row<'a> = (&'a [u8], &'a [u8], Option<usize>, &'a [u8]);
    let table: &[Row<'_>] = &[
        // A "." on the first line ends an empty message (Postfix's sink
        // starts in the after-CRLF state).
        (b".\r\n", b"", Some(3), b""),
        (b".\r\nQUIT\r\n", b"", Some(3), b"QUIT\r\n"),
        (b"a\r\n.\r\n", b"a\r\n", Some(6), b""),
        (b"\r\n.\r\n", b"\r\n", Some(5), b""),
        (
            b"a\r\n..b\r\n.\r\nNOOP\r\n",
            b"a\r\n.b\r\n",
            Some(11),
            b"NOOP\r\n",
        ),
        (b"..\r\n.\r\n", b".\r\n", Some(7), b""),
        (b"...\r\n.\r\n", b"..\r\n", Some(8), b""),
        // The first "." of a line with more on it is removed.
        (b".x\r\n.\r\n", b"x\r\n", Some(7), b""),
        (b"a\r\n.x.\r\n.\r\n", b"a\r\nx.\r\n", Some(11), b""),
        // A dot that does not start a line stays.
        (b"a.\r\nb .\r\n.\r\n", b"a.\r\nb .\r\n", Some(12), b""),
        // Bare CR and bare LF are content.
        (b"x\r\r\n.\r\n", b"x\r\r\n", Some(7), b""),
        (b"\r\r\n.\r\n", b"\r\r\n", Some(6), b""),
        (b"\n\r\n.\r\n", b"\n\r\n", Some(6), b""),
        // 8-bit and NUL bytes are content.
        (b"\0\xff\x80\r\n.\r\n", b"\0\xff\x80\r\n", Some(8), b""),
        // Two messages back to back: only the first is decoded here.
        (b"a\r\n.\r\nb\r\n.\r\n", b"a\r\n", Some(6), b"b\r\n.\r\n"),
        // Unfinished: what could still be the marker is held back.
        (b"", b"", None, b""),
        (b"a", b"a", None, b""),
        (b"a\r", b"a", None, b"\r"),
        (b"a\r\n", b"a\r\n", None, b""),
        (b"a\r\n.", b"a\r\n", None, b"."),
        (b"a\r\n.\r", b"a\r\n", None, b".\r"),
        (b".", b"", None, b"."),
        (b".\r", b"", None, b".\r"),
        (b"..", b".", None, b""),
        (b"a\r\n..", b"a\r\n.", None, b""),
        (b".\r\r", b"\r", None, b"\r"),
    ];
    for &(input, content, end, rest) in table {
        let d = decode_both(input);
        assert_eq!(d.content, content, "{input:?}");
        assert_eq!(d.end, end, "{input:?}");
        assert_eq!(d.rest, rest, "{input:?}");
        // CountOnly counts every byte before the final "." line.
        let c = decode(DataMode::CountOnly, input);
        if let Some(end) = end {
            assert_eq!(c.content_len, end - 3, "{input:?}");
        }
    }
}

#[test]
fn smuggling_vectors_never_end_the_message() {
    // Each vector is followed by the real end, which must be the one seen.
    let vectors: &[&[u8]] = &[
        b"\n.\r\n",
        b"\r\n.\n",
        b"\n.\n",
        b"\r.\r\n",
        b"\r\n.\r",
        b"\r\n.\rX",
        b"\r\n. \r\n",
        b"\r\n.\r\r\n",
        b"\n.\r\r\n",
        b"\r\n\n.\n\r\n",
    ];
    for v in vectors {
        for prefix in [&b""[..], b"x", b"x\r\n", b"x\r", b"x\n"] {
            let mut smuggled: Vec<u8> = prefix.to_vec();
            smuggled.extend_from_slice(v);
            smuggled.extend_from_slice(b"MAIL FROM:<evil@example>\r\n");
            if smuggled.windows(5).any(|w| w == b"\r\n.\r\n") {
                continue; // "x\r" + "\n.\r\n" is a real end, not a vector
            }
            let d = decode_both(&smuggled);
            assert_eq!(d.end, None, "{smuggled:?} ended the message");
            let mut honest = smuggled.clone();
            honest.extend_from_slice(b"\r\n.\r\nQUIT\r\n");
            let d = decode_both(&honest);
            assert_eq!(d.end, Some(honest.len() - 6), "{honest:?}");
            assert_eq!(d.rest, b"QUIT\r\n");
        }
    }
    // The content around a vector is kept, with only line-start dots
    // (after a real CRLF) removed.
    let d = decode_both(b"x\n.\r\ny\r\n.\r\n");
    assert_eq!(d.content, b"x\n.\r\ny\r\n");
    let d = decode_both(b"x\r\n.\ny\r\n.\r\n");
    assert_eq!(d.content, b"x\r\n\ny\r\n");
    let d = decode_both(b"x\n.\ny\r\n.\r\n");
    assert_eq!(d.content, b"x\n.\ny\r\n");
}

#[test]
fn one_decoder_for_many_messages() {
    for mode in [DataMode::Unstuff, DataMode::CountOnly] {
        let mut dec = DataDecoder::new(mode);
        assert_eq!(dec.mode(), mode);
        let mut buf = BytesMut::from(&b"a\r\n.\r\n.b\r\n.\r\n.\r\nrest"[..]);
        let mut ends = 0;
        let mut content = Vec::new();
        let mut counted = 0;
        while let Some(ev) = dec.parse(&mut buf).unwrap() {
            match ev {
                DataEvent::Chunk(c) => content.extend_from_slice(&c),
                DataEvent::Skipped(n) => counted += n,
                DataEvent::End => {
                    ends += 1;
                    if ends == 3 {
                        break;
                    }
                }
            }
        }
        assert_eq!(ends, 3, "{mode:?}");
        assert_eq!(&buf[..], b"rest");
        match mode {
            DataMode::Unstuff => assert_eq!(content, b"a\r\nb\r\n"),
            DataMode::CountOnly => assert_eq!(counted, 7),
        }
        // reset() forgets a half-seen line: the next message starts anew.
        let mut buf = BytesMut::from(&b"abc"[..]);
        while dec.parse(&mut buf).unwrap().is_some() {}
        dec.reset();
        let mut buf = BytesMut::from(&b".\r\n"[..]);
        assert_eq!(dec.parse(&mut buf).unwrap(), Some(DataEvent::End));
    }
}

#[test]
fn unstuffed_chunks_are_slices_of_the_input() {
    let mut buf = BytesMut::from(&b"line one\r\n..two\r\nthree\r\n.\r\n"[..]);
    let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
    let mut dec = DataDecoder::new(DataMode::Unstuff);
    let mut chunks = 0;
    while let Some(ev) = dec.parse(&mut buf).unwrap() {
        match ev {
            DataEvent::Chunk(c) => {
                assert!(range.contains(&(c.as_ptr() as usize)), "copied");
                chunks += 1;
            }
            DataEvent::End => break,
            DataEvent::Skipped(_) => unreachable!("unstuff mode"),
        }
    }
    assert!(chunks >= 2);
}

#[test]
fn count_only_takes_big_steps() {
    // Count-only mode reports a large buffer in one event, not per line.
    let body: Vec<u8> = b"1XXXXXXXXX\r\n..stuffed\r\n".repeat(10_000);
    let mut buf = BytesMut::from(&body[..]);
    buf.extend_from_slice(b".\r\n");
    let mut dec = DataDecoder::new(DataMode::CountOnly);
    assert_eq!(
        dec.parse(&mut buf).unwrap(),
        Some(DataEvent::Skipped(body.len()))
    );
    assert_eq!(dec.parse(&mut buf).unwrap(), Some(DataEvent::End));
}

#[test]
fn dot_stuffer_table() {
    type Row<'a> = (&'a [u8], &'a [u8], &'a [u8]);
    // (input, stuffed with CRLF kept, stuffed with bare LF -> CRLF)
    let table: &[Row<'_>] = &[
        (b"", b".\r\n", b".\r\n"),
        (b"a\r\n", b"a\r\n.\r\n", b"a\r\n.\r\n"),
        (b"a", b"a\r\n.\r\n", b"a\r\n.\r\n"),
        (b".", b"..\r\n.\r\n", b"..\r\n.\r\n"),
        (b".\r\n", b"..\r\n.\r\n", b"..\r\n.\r\n"),
        (b"a\r\n.b\r\n", b"a\r\n..b\r\n.\r\n", b"a\r\n..b\r\n.\r\n"),
        (b"a\r\n..\r\n", b"a\r\n...\r\n.\r\n", b"a\r\n...\r\n.\r\n"),
        (b"a.b\r\n", b"a.b\r\n.\r\n", b"a.b\r\n.\r\n"),
        (b"a\n.b\n", b"a\n.b\n\r\n.\r\n", b"a\r\n..b\r\n.\r\n"),
        (
            b"a\r\r\n.\r\n",
            b"a\r\r\n..\r\n.\r\n",
            b"a\r\r\n..\r\n.\r\n",
        ),
        (b"a\r", b"a\r\r\n.\r\n", b"a\r\r\n.\r\n"),
        (b"\r\n.\r\n", b"\r\n..\r\n.\r\n", b"\r\n..\r\n.\r\n"),
        (b"\n", b"\n\r\n.\r\n", b"\r\n.\r\n"),
    ];
    for &(input, plain, converted) in table {
        assert_eq!(&stuff(input)[..], plain, "{input:?}");
        for (mut enc, want) in [
            (DotStuffer::new(), plain),
            (DotStuffer::with_bare_lf_to_crlf(), converted),
        ] {
            // Any split of the input gives the same bytes.
            for split in 0..=input.len() {
                let mut out = BytesMut::new();
                let (a, b) = input.split_at(split);
                enc.encode(a, &mut out);
                enc.encode(b, &mut out);
                enc.finish(&mut out);
                assert_eq!(&out[..], want, "{input:?} split {split}");
            }
            let mut out = BytesMut::new();
            for byte in input.chunks(1) {
                enc.encode(byte, &mut out);
            }
            enc.finish(&mut out);
            assert_eq!(&out[..], want, "{input:?} byte by byte");
        }
        // What was stuffed decodes back to the input (plus the CRLF that
        // finish adds to a last line without one).
        let d = decode_both(plain);
        assert_eq!(d.end, Some(plain.len()));
        let mut expect = input.to_vec();
        if !input.is_empty() && !input.ends_with(b"\r\n") {
            expect.extend_from_slice(b"\r\n");
        }
        assert_eq!(d.content, expect, "{input:?}");
    }
    // The encoder is ready for the next message after finish().
    let mut enc = DotStuffer::default();
    let mut out = BytesMut::new();
    enc.encode(b"x", &mut out);
    enc.finish(&mut out);
    enc.encode(b".y", &mut out);
    enc.finish(&mut out);
    assert_eq!(&out[..], b"x\r\n.\r\n..y\r\n.\r\n");
}
