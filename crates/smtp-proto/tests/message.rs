//! The messages of Postfix's smtp-source (docs/smtp-source.md "The conversation"): the
//! default body, `-l N`, `-F file`, and the generated header block.

use bytes::BytesMut;
use smtp_proto::message::{Body, HeaderBlock};
use smtp_proto::{DataDecoder, DataEvent, DataMode};

fn x(n: usize) -> String {
    "X".repeat(n)
}

/// Decodes a rendered body: it must end exactly at its `.` CRLF.
fn unstuff(body: &[u8]) -> Vec<u8> {
    let mut buf = BytesMut::from(body);
    let mut dec = DataDecoder::new(DataMode::Unstuff);
    let mut out = Vec::new();
    loop {
        match dec.parse(&mut buf).unwrap() {
            Some(DataEvent::Chunk(c)) => out.extend_from_slice(&c),
            Some(DataEvent::End) => break,
            other => panic!("unexpected {other:?}"),
        }
    }
    assert!(buf.is_empty(), "bytes after the end");
    out
}

#[test]
fn default_body_is_la_de_da() {
    let body = Body::Default.render();
    assert_eq!(
        &body[..],
        &b"La de da de da 1.\r\nLa de da de da 2.\r\nLa de da de da 3.\r\nLa de da de da 4.\r\n.\r\n"[..]
    );
    assert!(Body::Default.wants_headers());
}

#[test]
fn generated_bodies_examples() {
    // -l 160: "1" + 77 X + CRLF, then 80 X + CRLF.
    let want = format!("1{}\r\n{}\r\n.\r\n", x(77), x(80));
    assert_eq!(&Body::Generated(160).render()[..], want.as_bytes());
    // -l 250: lines 1, 2, 3, then 10 X.
    let want = format!("1{x}\r\n2{x}\r\n3{x}\r\n{}\r\n.\r\n", x(10), x = x(77));
    assert_eq!(&Body::Generated(250).render()[..], want.as_bytes());
    // A block that ends exactly at the end is remainder, all X.
    let want = format!("{}\r\n.\r\n", x(80));
    assert_eq!(&Body::Generated(80).render()[..], want.as_bytes());
    let want = format!("1{}\r\nX\r\n.\r\n", x(77));
    assert_eq!(&Body::Generated(81).render()[..], want.as_bytes());
    assert_eq!(&Body::Generated(1).render()[..], b"X\r\n.\r\n");
    assert!(Body::Generated(10).wants_headers());
}

#[test]
fn generated_bodies_have_postfix_shape_for_every_length() {
    for n in (1..=1000).chain([10240, 102_400, 1 << 20]) {
        let body = Body::Generated(n).render();
        // n bytes, the added CRLF, then ".\r\n".
        assert_eq!(body.len(), n + 5, "-l {n}");
        assert!(body.ends_with(b"\r\n.\r\n"));
        let data = &body[..n];
        let full_blocks = (n - 1) / 80; // blocks that end before the end
        for b in 0..full_blocks {
            let block = &data[b * 80..b * 80 + 80];
            assert_eq!(block[0], b"0123456789"[(b + 1) % 10], "-l {n} block {b}");
            assert!(block[1..78].iter().all(|&c| c == b'X'));
            assert_eq!(&block[78..], b"\r\n");
        }
        let rest = &data[full_blocks * 80..];
        assert!((1..=80).contains(&rest.len()));
        assert!(rest.iter().all(|&c| c == b'X'), "-l {n}");
        // Never a line starting with "." (not stuffed), so it unstuffs to
        // itself plus the added CRLF.
        assert_eq!(unstuff(&body), &body[..n + 2]);
    }
}

#[test]
fn file_bodies() {
    type Row<'a> = (&'a [u8], &'a [u8]);
    let table: &[Row<'_>] = &[
        // Observed on the wire from Postfix's smtp-source.
        (
            b".leading dot\n..two dots\n.\nlast line no newline",
            b"..leading dot\r\n...two dots\r\n..\r\nlast line no newline\r\n\r\n.\r\n",
        ),
        (
            b"Subject: x\n\nbody\n",
            b"Subject: x\r\n\r\nbody\r\n\r\n.\r\n",
        ),
        (b"a\n\n", b"a\r\n\r\n\r\n.\r\n"),
        (b"\n", b"\r\n\r\n.\r\n"),
        (b".", b"..\r\n\r\n.\r\n"),
        // Deliberate difference: a CRLF file is sent with CRLF, where
        // Postfix sends CR CR LF.
        (b"a\r\n.b\r\n", b"a\r\n..b\r\n\r\n.\r\n"),
        // A bare CR inside a line stays.
        (b"a\rb\n", b"a\rb\r\n\r\n.\r\n"),
    ];
    for &(file, wire) in table {
        let body = Body::File(file.to_vec());
        assert_eq!(&body.render()[..], wire, "{file:?}");
        assert!(!body.wants_headers());
        // It ends exactly at its own ".", whatever the file held.
        unstuff(wire);
    }
    // An empty file (-F /dev/null) sends the default body, no headers.
    let empty = Body::File(Vec::new());
    assert_eq!(empty.render(), Body::Default.render());
    assert!(!empty.wants_headers());
}

#[test]
fn file_body_with_end_marker_inside_is_stuffed() {
    let file = b"line\n.\nQUIT\n.\r\n";
    let body = Body::File(file.to_vec()).render();
    let content = unstuff(&body);
    assert_eq!(content, b"line\r\n.\r\nQUIT\r\n.\r\n\r\n");
}

#[test]
fn header_block_bytes() {
    let date = b"Sat, 21 Nov 2026 22:15:46 +0000 (UTC)";
    let mut out = BytesMut::new();
    HeaderBlock {
        from: b"foo@vm",
        to: b"foo@vm",
        date,
        message_id: (0x16c1, 3, 0),
        hostname: b"vm",
        subject: None,
    }
    .write(&mut out);
    assert_eq!(
        &out[..],
        &b"From: <foo@vm>\r\nTo: <foo@vm>\r\nDate: Sat, 21 Nov 2026 22:15:46 +0000 (UTC)\r\n\
Message-Id: <16c1.0003.0000@vm>\r\n\r\n"[..]
    );
    // Wider numbers are not cut, the budget can print ffffffff, and the
    // Subject goes after Message-Id. The buffer is appended to.
    HeaderBlock {
        from: b"a@client.example",
        to: b"rcpt2@example.org",
        date,
        message_id: (0x1_2345, 0x1f, u32::MAX),
        hostname: b"client.example",
        subject: Some(b"Test subject"),
    }
    .write(&mut out);
    let second = &out[out.len() - 160..];
    assert!(out.starts_with(b"From: <foo@vm>\r\n"));
    assert!(second.ends_with(
        b"\r\nMessage-Id: <12345.001f.ffffffff@client.example>\r\nSubject: Test subject\r\n\r\n"
    ));
}

#[test]
fn postfix_l250_data_section_is_422_bytes() {
    // Observed from Postfix's smtp-source: `-l 250 -S 'Test subject' -M
    // client.example` sends a 422-byte data section up to the final ".".
    // (A 4-digit pid, the 2026 date, connection 3, budget 0.)
    let mut out = BytesMut::new();
    HeaderBlock {
        from: b"foo@client.example",
        to: b"foo@client.example",
        date: b"Sat, 21 Nov 2026 22:15:46 +0000 (UTC)",
        message_id: (0x16c1, 3, 0),
        hostname: b"client.example",
        subject: Some(b"Test subject"),
    }
    .write(&mut out);
    out.extend_from_slice(&Body::Generated(250).render());
    assert_eq!(out.len() - 2, 422);
}

/// The BDAT form is the DATA form without stuffing and terminator.
#[test]
fn raw_form_is_the_unstuffed_data_form() {
    for body in [
        Body::Default,
        Body::Generated(250),
        Body::File(b".leading dot\n..two dots\r\n.\nlast".to_vec()),
        Body::File(Vec::new()),
    ] {
        let raw = body.render_raw();
        assert!(raw.ends_with(b"\r\n"));
        assert_eq!(body.render(), smtp_proto::stuff(&raw), "{body:?}");
    }
    assert_eq!(
        &Body::File(b".a\n..b\n".to_vec()).render_raw()[..],
        b".a\r\n..b\r\n\r\n"
    );
}

/// A long `-l` body sent as a repeated chunk and a tail is byte for byte
/// the body rendered whole, in both forms, at every boundary: the
/// threshold, and lengths just before, at and after a whole number of
/// chunks and of lines.
#[test]
fn streamed_generated_bodies_are_the_rendered_ones() {
    use smtp_proto::message::{STREAM_ABOVE, STREAM_CHUNK};
    let mut lengths = vec![
        1,
        80,
        4000,
        STREAM_ABOVE - 1,
        STREAM_ABOVE,
        STREAM_ABOVE + 1,
    ];
    for chunks in [4, 5, 7] {
        for delta in [-81, -80, -79, -2, -1, 0, 1, 2, 79, 80, 81, 799, 800, 801] {
            lengths.push((chunks * STREAM_CHUNK).checked_add_signed(delta).unwrap());
        }
    }
    lengths.push(3_000_017);
    for len in lengths {
        let body = Body::Generated(len);
        for stuffed in [true, false] {
            let whole = if stuffed {
                body.render()
            } else {
                body.render_raw()
            };
            let stream = body.stream(stuffed);
            assert_eq!(stream.count == 0, len <= STREAM_ABOVE, "-l {len}");
            if stream.count > 0 {
                assert!(stream.tail.len() <= STREAM_CHUNK + 5, "-l {len}");
            }
            assert_eq!(stream.len(), whole.len(), "-l {len}");
            let joined: Vec<u8> = stream.pieces().flatten().copied().collect();
            assert!(joined == whole[..], "-l {len} stuffed={stuffed}");
            // Any range: what a BDAT chunk or a partial write takes.
            let n = whole.len();
            for (a, b) in [
                (0, n),
                (1, n - 1),
                (STREAM_CHUNK - 3, (STREAM_CHUNK + 5).min(n)),
                (n / 3, n / 2),
                (n - 1, n),
                (n, n),
            ] {
                if a > b {
                    continue;
                }
                let got: Vec<u8> = stream.slices(a..b).flatten().copied().collect();
                assert_eq!(got, whole[a..b], "-l {len} {a}..{b}");
            }
        }
    }
    // Small bodies and the other kinds are one buffer, as rendered.
    for body in [
        Body::Default,
        Body::Generated(10_240),
        Body::File(b"a\n".to_vec()),
    ] {
        let s = body.stream(true);
        assert_eq!((s.count, &s.tail), (0, &body.render()));
    }
}
