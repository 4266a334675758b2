//! The messages Postfix's smtp-source generates (docs/smtp-source.md "The conversation"),
//! built once and shared by every session.
//!
//! A message on the wire is a small per-message header block followed by a
//! body that is the same for every message. [`Body::render`] builds the body
//! once, already stuffed and terminated with `.` CRLF, for DATA, and
//! [`Body::render_raw`] once as it is, for BDAT; [`HeaderBlock`] writes the
//! headers of one message into a reused buffer.
//!
//! A long `-l` body is not built whole: [`Body::stream`] gives it as a
//! [`Repeated`] chunk of its periodic pattern plus a short tail, so memory
//! does not grow with `-l`, and the bytes on the wire are the same.

use std::{io::Write as _, ops::Range};

use bytes::{BufMut, Bytes, BytesMut};

/// The body a source sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Body {
    /// The four lines `La de da de da 1.` to `4.` (no `-l`, no `-F`).
    Default,
    /// `-l n`: n bytes of numbered 80-byte lines (a digit, 77 `X`, CRLF),
    /// the remainder in `X`, then CRLF.
    Generated(usize),
    /// `-F file`: the file's lines, each ending in CRLF, dot-stuffed, then
    /// one more CRLF (Postfix ends the content with an extra empty line).
    /// An empty file falls back to [`Body::Default`], as Postfix does.
    File(Vec<u8>),
}

const DEFAULT_BODY: &[u8] =
    b"La de da de da 1.\r\nLa de da de da 2.\r\nLa de da de da 3.\r\nLa de da de da 4.\r\n";

impl Body {
    /// The body bytes as sent after the header block with DATA: the
    /// content of [`render_raw`](Self::render_raw), dot-stuffed and
    /// ending in `.` CRLF (RFC 5321 §4.5.2).
    pub fn render(&self) -> Bytes {
        crate::data::stuff(&self.render_raw())
    }

    /// The body as it is, the form BDAT sends (RFC 3030): not stuffed, no
    /// terminator, ending in CRLF.
    ///
    /// A file's lines are split at LF and a CR before the LF is dropped, so
    /// a CRLF file is sent with CRLF (Postfix would send CR CR LF).
    pub fn render_raw(&self) -> Bytes {
        let mut out = BytesMut::new();
        match self {
            Body::Default => out.put_slice(DEFAULT_BODY),
            Body::Generated(len) => {
                out.reserve(len + 2);
                write_generated(*len, &mut out);
                out.put_slice(b"\r\n");
            }
            Body::File(content) if content.is_empty() => out.put_slice(DEFAULT_BODY),
            Body::File(content) => {
                out.reserve(content.len() + content.len() / 32 + 8);
                let content = content.strip_suffix(b"\n").unwrap_or(content);
                for line in content.split(|&b| b == b'\n') {
                    out.put_slice(line.strip_suffix(b"\r").unwrap_or(line));
                    out.put_slice(b"\r\n");
                }
                out.put_slice(b"\r\n");
            }
        }
        out.freeze()
    }

    /// The body as [`render`](Self::render) (`stuffed`, for DATA) or
    /// [`render_raw`](Self::render_raw) gives it, without building a long
    /// `-l` body whole: above [`STREAM_ABOVE`] bytes it is a shared chunk
    /// of the `-l` pattern (a multiple of its 800-byte period) sent
    /// [`Repeated::count`] times, then the rest. Every other body is one
    /// [`Bytes`] (`count` 0), exactly what `render` gives.
    pub fn stream(&self, stuffed: bool) -> Repeated {
        let whole = |tail: Bytes| Repeated {
            chunk: Bytes::new(),
            count: 0,
            tail,
        };
        let len = match self {
            Body::Generated(len) if *len > STREAM_ABOVE => *len,
            _ if stuffed => return whole(self.render()),
            _ => return whole(self.render_raw()),
        };
        // Every 80-byte line of a chunk ends before `len` (so is numbered)
        // as long as the chunks end before it; the chunks start at
        // multiples of the period, so the rest is the pattern of a body
        // of the remaining length.
        let count = (len - 1) / STREAM_CHUNK;
        let mut chunk = BytesMut::with_capacity(STREAM_CHUNK + 80);
        // A body longer than the chunk numbers every line of the chunk.
        write_generated(STREAM_CHUNK + 80, &mut chunk);
        chunk.truncate(STREAM_CHUNK);
        let rest = Body::Generated(len - count * STREAM_CHUNK);
        // The generated body has no line starting with ".": stuffing is
        // the terminator only, and the chunks are the same in both forms.
        Repeated {
            chunk: chunk.freeze(),
            count,
            tail: if stuffed {
                rest.render()
            } else {
                rest.render_raw()
            },
        }
    }

    /// Whether the generated header block goes before this body; Postfix
    /// sends none with `-F`, even when the file is empty.
    pub fn wants_headers(&self) -> bool {
        !matches!(self, Body::File(_))
    }
}

/// `-l` bodies longer than this are sent from a repeated chunk
/// ([`Body::stream`]); shorter ones, the usual benchmark sizes, are one
/// buffer, as they always were.
pub const STREAM_ABOVE: usize = 1 << 20;

/// The repeated chunk of a long `-l` body: 320 periods of the pattern
/// (ten numbered 80-byte lines), 256,000 bytes, shared by every session.
pub const STREAM_CHUNK: usize = 320 * 800;

/// A body as sent: `count` copies of `chunk`, then `tail`. Cheap to clone
/// (shared buffers).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Repeated {
    /// The repeated part (empty when `count` is 0).
    pub chunk: Bytes,
    /// How many times `chunk` is sent.
    pub count: usize,
    /// What follows the copies: the whole body when `count` is 0.
    pub tail: Bytes,
}

impl Repeated {
    /// The length on the wire.
    pub fn len(&self) -> usize {
        self.chunk.len() * self.count + self.tail.len()
    }

    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The bytes of `range` (within [`len`](Self::len)) as consecutive
    /// slices of the shared buffers, nothing copied: at most one slice per
    /// copy of the chunk it crosses, then one of the tail.
    pub fn slices(&self, range: Range<usize>) -> Slices<'_> {
        Slices {
            body: self,
            at: range.start,
            end: range.end.min(self.len()),
        }
    }

    /// Every piece in order, for a digest or a test; `len()` bytes.
    pub fn pieces(&self) -> Slices<'_> {
        self.slices(0..self.len())
    }
}

/// The slices of a [`Repeated`] range, in order.
#[derive(Debug, Clone)]
pub struct Slices<'a> {
    body: &'a Repeated,
    at: usize,
    end: usize,
}

impl<'a> Iterator for Slices<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.at >= self.end {
            return None;
        }
        let body = self.body;
        let repeated = body.chunk.len() * body.count;
        let piece = if self.at < repeated {
            let offset = self.at % body.chunk.len();
            let n = (body.chunk.len() - offset).min(self.end - self.at);
            &body.chunk[offset..offset + n]
        } else {
            &body.tail[self.at - repeated..self.end - repeated]
        };
        self.at += piece.len();
        Some(piece)
    }
}

/// Writes Postfix's `-l` payload: `len` bytes in which every 80-byte block
/// that ends before the end is a digit, 77 `X` and CRLF.
fn write_generated(len: usize, out: &mut BytesMut) {
    let start = out.len();
    out.put_bytes(b'X', len);
    let data = &mut out[start..];
    let mut end = 80;
    while end < len {
        data[end - 80] = b"0123456789"[(end / 80) % 10];
        data[end - 2] = b'\r';
        data[end - 1] = b'\n';
        end += 80;
    }
}

/// The generated header block of one message.
#[derive(Debug, Clone, Copy)]
pub struct HeaderBlock<'a> {
    /// The `From:` address, written inside `<>`.
    pub from: &'a [u8],
    /// The `To:` address, written inside `<>`.
    pub to: &'a [u8],
    /// The `Date:` value, formatted once per run (see `time::mail_date`).
    pub date: &'a [u8],
    /// The three numbers of `Message-Id: <%04x.%04x.%04x@host>`: process
    /// id, connection number, remaining message budget.
    pub message_id: (u32, u32, u32),
    /// The host name after `@` in Message-Id.
    pub hostname: &'a [u8],
    /// `Subject:` text, if any.
    pub subject: Option<&'a [u8]>,
}

impl HeaderBlock<'_> {
    /// Appends the headers and the empty line that ends them.
    pub fn write(&self, out: &mut BytesMut) {
        out.reserve(96 + self.from.len() + self.to.len() + self.date.len());
        put_header(out, b"From: <", self.from, b">");
        put_header(out, b"To: <", self.to, b">");
        put_header(out, b"Date: ", self.date, b"");
        let (pid, conn, left) = self.message_id;
        let mut w = out.writer();
        // Writing to a BytesMut cannot fail.
        let _ = write!(w, "Message-Id: <{pid:04x}.{conn:04x}.{left:04x}@");
        let out = w.into_inner();
        out.put_slice(self.hostname);
        out.put_slice(b">\r\n");
        if let Some(subject) = self.subject {
            put_header(out, b"Subject: ", subject, b"");
        }
        out.put_slice(b"\r\n");
    }
}

fn put_header(out: &mut BytesMut, head: &[u8], value: &[u8], tail: &[u8]) {
    out.put_slice(head);
    out.put_slice(value);
    out.put_slice(tail);
    out.put_slice(b"\r\n");
}
