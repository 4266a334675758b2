//! `--stamp`: the `X-Smtp-Stamp` header each message carries, so that
//! `smtp-sink --verify` behind any relay can tell lost, duplicated and
//! damaged messages apart and time their transit.
//!
//! The header's format and the body digest are smtp-proto's
//! (`smtp_proto::stamp`); this module decides what the body is for each
//! kind of message this program sends and renders the header per message.
//! Every message of a run has the same body, so its length and digest are
//! computed once, when the run starts; per message there is a counter
//! increment, a clock read and one formatted line.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::{BufMut, BytesMut};
use smtp_proto::{
    message::Repeated,
    stamp::{body_digest, BodyDigest, Found, RunId, Stamp, StampFinder},
};

use crate::segment::Segment;

/// What every stamp of a run shares, and the run's sequence counter.
#[derive(Debug)]
pub struct Stamper {
    run: RunId,
    /// The normalised length and digest of the body (what follows the
    /// message's empty line).
    len: u64,
    digest: u64,
    /// The stamp must be followed by an empty line of its own: the rest of
    /// the message has none to end the header block (`-o`, or a `-F` file
    /// whose first line is not a header).
    own_blank_line: bool,
    /// Stamps written so far; the next message is this segment's
    /// `next`-th, and its `seq` its run-wide number.
    next: AtomicU64,
    segment: Segment,
}

impl Stamper {
    /// The stamps of a run whose messages are: the generated header block
    /// (when `headers`), then `raw_body`, the content as BDAT sends it.
    ///
    /// With the generated headers, the body is `raw_body`. Without them
    /// (`-o`, `-F`), the stamp goes first and `raw_body` is the rest of the
    /// message: if it starts with a header block of its own (a `-F` file
    /// of a whole message), the body is what follows that block's empty
    /// line, as the sink will find it; otherwise the stamp gets an empty
    /// line of its own and the body is all of `raw_body`.
    pub fn new(run: RunId, segment: Segment, headers: bool, raw_body: &[u8]) -> Stamper {
        let whole = Repeated {
            tail: bytes::Bytes::copy_from_slice(raw_body),
            ..Repeated::default()
        };
        Stamper::for_body(run, segment, headers, &whole)
    }

    /// [`new`](Self::new) for a body as the run sends it: a long `-l` body
    /// is digested piece by piece, once, never built whole. Its header
    /// block, if any, is looked for in its first chunk.
    pub fn for_body(run: RunId, segment: Segment, headers: bool, raw_body: &Repeated) -> Stamper {
        let first = if raw_body.count == 0 {
            &raw_body.tail
        } else {
            &raw_body.chunk
        };
        let body_start = if headers {
            Some(0)
        } else {
            own_header_block_end(first)
        };
        let start = body_start.unwrap_or(0);
        let (len, digest) = if raw_body.count == 0 {
            body_digest(&raw_body.tail[start..])
        } else {
            let mut digest = BodyDigest::new();
            for piece in raw_body.slices(start..raw_body.len()) {
                digest.update(piece);
            }
            digest.finish()
        };
        Stamper {
            run,
            len,
            digest,
            own_blank_line: body_start.is_none(),
            next: AtomicU64::new(0),
            segment,
        }
    }

    /// Appends one message's stamp line (and, when the message needs it,
    /// the empty line after it) to `head`, taking the next sequence
    /// number. `sent` is now.
    pub fn write(&self, head: &mut BytesMut) {
        let sent_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        self.write_at(head, sent_ns);
    }

    fn write_at(&self, head: &mut BytesMut, sent_ns: u64) {
        Stamp {
            run: self.run,
            seq: self
                .segment
                .message_number(self.next.fetch_add(1, Ordering::Relaxed)),
            sent_ns,
            len: self.len,
            digest: self.digest,
        }
        .write(head);
        if self.own_blank_line {
            head.put_slice(b"\r\n");
        }
    }

    /// Stamps written so far.
    pub fn written(&self) -> u64 {
        self.next.load(Ordering::Relaxed)
    }
}

/// Where the body starts when `content` follows the stamp line directly:
/// after the empty line that ends a header block at its start, if its
/// first line is a header field. `None` when `content` does not start
/// with a header field (its first line would be read as a continuation of
/// the stamp, or as a header that is not one), or its header block does
/// not end where the sink looks for it.
fn own_header_block_end(content: &[u8]) -> Option<usize> {
    let first_line = content.split(|&b| b == b'\n').next().unwrap_or_default();
    let is_field = first_line
        .iter()
        .position(|&b| b == b':')
        .is_some_and(|colon| {
            colon > 0
                && first_line[..colon]
                    .iter()
                    .all(|&b| b.is_ascii_graphic() && b != b':')
        });
    if !is_field {
        return None;
    }
    match StampFinder::new().feed(content) {
        Found::Body { at } => Some(at),
        Found::NeedMore | Found::GaveUp => None,
    }
}

#[cfg(test)]
mod tests {
    use smtp_proto::stamp::{StampVerifier, Verification};

    use super::*;

    fn run() -> RunId {
        RunId::new(b"t1").unwrap()
    }

    /// The message a sink receives: `head` (stamp first) then `raw_body`.
    fn verify(head: &[u8], raw_body: &[u8]) -> Verification {
        let mut v = StampVerifier::new();
        v.update(head);
        v.update(raw_body);
        v.finish()
    }

    #[test]
    fn generated_headers_stamp_the_whole_body() {
        let body = b"La de da\r\n.dot\r\n";
        let s = Stamper::new(run(), Segment::WHOLE, true, body);
        let mut head = BytesMut::new();
        s.write_at(&mut head, 5);
        head.put_slice(b"From: <a@b>\r\n\r\n");
        match verify(&head, body) {
            Verification::Intact(stamp) => {
                assert_eq!((stamp.seq, stamp.sent_ns, stamp.len), (0, 5, 14));
            }
            other => panic!("{other:?}"),
        }
        let mut next = BytesMut::new();
        s.write_at(&mut next, 6);
        assert!(next.starts_with(b"X-Smtp-Stamp: run=t1; seq=1; sent=6;"));
        assert_eq!(s.written(), 2);
    }

    /// Segment 2 of 3 stamps its messages 2, 5, 8: apart from the others'.
    /// A long -l body, digested piece by piece from its repeated chunk,
    /// gets the digest of the body built whole.
    #[test]
    fn a_streamed_body_has_the_whole_body_digest() {
        use smtp_proto::message::{Body, STREAM_ABOVE};
        for len in [STREAM_ABOVE + 1, 3 * STREAM_ABOVE + 17] {
            let body = Body::Generated(len);
            let streamed = body.stream(false);
            assert!(streamed.count > 0);
            for headers in [true, false] {
                let whole = Stamper::new(run(), Segment::WHOLE, headers, &body.render_raw());
                let piecewise = Stamper::for_body(run(), Segment::WHOLE, headers, &streamed);
                assert_eq!(
                    (piecewise.len, piecewise.digest, piecewise.own_blank_line),
                    (whole.len, whole.digest, whole.own_blank_line),
                    "-l {len}"
                );
            }
        }
    }

    #[test]
    fn segments_stamp_run_wide_numbers() {
        let s = Stamper::new(run(), Segment::new(2, 3).unwrap(), true, b"x\r\n");
        for seq in [2, 5, 8] {
            let mut head = BytesMut::new();
            s.write_at(&mut head, 1);
            let text = format!("X-Smtp-Stamp: run=t1; seq={seq}; ");
            assert!(head.starts_with(text.as_bytes()), "{head:?}");
        }
        assert_eq!(s.written(), 3);
    }

    #[test]
    fn without_headers_the_stamp_ends_its_own_block() {
        // -o: the default body has no header block of its own.
        let body = b"La de da de da 1.\r\nLa de da de da 2.\r\n";
        let s = Stamper::new(run(), Segment::WHOLE, false, body);
        let mut head = BytesMut::new();
        s.write_at(&mut head, 1);
        assert!(head.ends_with(b"\r\n\r\n"));
        assert!(matches!(verify(&head, body), Verification::Intact(_)));
    }

    #[test]
    fn a_whole_message_file_keeps_its_header_block() {
        // -F with a file that is a message: the stamp joins its headers.
        let file = b"Subject: hi\r\nFrom: <x@y>\r\n\r\nbody line\r\n\r\n";
        let s = Stamper::new(run(), Segment::WHOLE, false, file);
        let mut head = BytesMut::new();
        s.write_at(&mut head, 1);
        assert!(!head.ends_with(b"\r\n\r\n"));
        match verify(&head, file) {
            Verification::Intact(stamp) => assert_eq!(stamp.len, "body line\n\n".len() as u64),
            other => panic!("{other:?}"),
        }
        // A file that starts with a continuation line or a non-header.
        for odd in [
            &b" folded\r\n\r\nbody\r\n"[..],
            b"no colon here\r\n\r\nx\r\n",
            b":\r\n",
        ] {
            let s = Stamper::new(run(), Segment::WHOLE, false, odd);
            let mut head = BytesMut::new();
            s.write_at(&mut head, 1);
            assert!(head.ends_with(b"\r\n\r\n"), "{odd:?}");
            assert!(
                matches!(verify(&head, odd), Verification::Intact(_)),
                "{odd:?}"
            );
        }
    }
}
