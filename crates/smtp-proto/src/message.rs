//! The messages Postfix's smtp-source generates (docs/smtp-source.md "The conversation"),
//! built once and shared by every session.
//!
//! A message on the wire is a small per-message header block followed by a
//! body that is the same for every message. [`Body::render`] builds the body
//! once, already stuffed and terminated with `.` CRLF, for DATA, and
//! [`Body::render_raw`] once as it is, for BDAT; [`HeaderBlock`] writes the
//! headers of one message into a reused buffer.

use std::io::Write as _;

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

    /// Whether the generated header block goes before this body; Postfix
    /// sends none with `-F`, even when the file is empty.
    pub fn wants_headers(&self) -> bool {
        !matches!(self, Body::File(_))
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
