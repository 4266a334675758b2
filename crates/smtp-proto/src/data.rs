//! The DATA phase (RFC 5321 §4.5.2): dot-stuffing on the way out, and on
//! the way in finding the end of the message and unstuffing.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use memchr::{memchr, memmem};

/// The end-of-data marker, including the CRLF that ends the last line.
const END: &[u8] = b"\r\n.\r\n";

/// Streaming dot-stuffing encoder.
///
/// Feed it the message in any chunks; it doubles a "." at the start of
/// every line and, in `finish`, closes the message with `.` CRLF.
#[derive(Debug, Clone)]
pub struct DotStuffer {
    at_line_start: bool,
    last_was_cr: bool,
    bare_lf_to_crlf: bool,
}

impl DotStuffer {
    /// An encoder that leaves line ends as they are.
    pub fn new() -> Self {
        Self {
            at_line_start: true,
            last_was_cr: false,
            bare_lf_to_crlf: false,
        }
    }

    /// An encoder that also turns a bare LF into CR LF.
    pub fn with_bare_lf_to_crlf() -> Self {
        Self {
            bare_lf_to_crlf: true,
            ..Self::new()
        }
    }

    /// Appends `chunk`, stuffed, to `out`.
    ///
    /// Runs from line end to line end with `memchr`, so ordinary content is
    /// copied in large slices.
    pub fn encode(&mut self, chunk: &[u8], out: &mut BytesMut) {
        let Some(&last) = chunk.last() else {
            return;
        };
        out.reserve(chunk.len() + chunk.len() / 64 + 2);
        let mut from = 0;
        let mut i = 0;
        while i < chunk.len() {
            if self.at_line_start {
                self.at_line_start = false;
                if chunk[i] == b'.' {
                    out.put_slice(&chunk[from..i]);
                    out.put_u8(b'.');
                    from = i;
                }
            }
            let Some(k) = memchr(b'\n', &chunk[i..]) else {
                break;
            };
            let lf = i + k;
            let after_cr = if lf == 0 {
                self.last_was_cr
            } else {
                chunk[lf - 1] == b'\r'
            };
            if !after_cr && self.bare_lf_to_crlf {
                out.put_slice(&chunk[from..lf]);
                out.put_u8(b'\r');
                from = lf;
            }
            // A line starts after LF; with bare-LF conversion every LF
            // becomes a CRLF, otherwise only a real CRLF counts (RFC 5321).
            self.at_line_start = after_cr || self.bare_lf_to_crlf;
            i = lf + 1;
        }
        out.put_slice(&chunk[from..]);
        self.last_was_cr = last == b'\r';
    }

    /// Ends the message: adds CRLF if the content did not end with one,
    /// then `.` CRLF. The encoder is ready for a new message afterwards.
    pub fn finish(&mut self, out: &mut BytesMut) {
        if !self.at_line_start {
            out.put_slice(b"\r\n");
        }
        out.put_slice(b".\r\n");
        *self = Self {
            bare_lf_to_crlf: self.bare_lf_to_crlf,
            ..Self::new()
        };
    }
}

impl Default for DotStuffer {
    fn default() -> Self {
        Self::new()
    }
}

/// Dot-stuffs a whole message and appends the terminating `.` CRLF.
pub fn stuff(message: &[u8]) -> Bytes {
    let mut out = BytesMut::with_capacity(message.len() + 8);
    let mut stuffer = DotStuffer::new();
    stuffer.encode(message, &mut out);
    stuffer.finish(&mut out);
    out.freeze()
}

/// What [`DataDecoder::parse`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataEvent {
    /// Message content, unstuffed, as a slice of the input (no copy).
    Chunk(Bytes),
    /// Content that was only counted (count-only mode).
    Skipped(usize),
    /// The `.` CRLF line: the message is complete. The decoder is ready for
    /// the next message.
    End,
}

/// How the decoder treats the message content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DataMode {
    /// Yield the content with the stuffed dots removed.
    Unstuff,
    /// Only look for the end and count the bytes; copies nothing.
    CountOnly,
}

/// Incremental DATA decoder for the server side.
///
/// Only CR LF `.` CR LF ends a message, also when it is split across reads;
/// `\n.\r\n`, `\r\n.\n` and `\n.\n` are content (SMTP smuggling). The decoder
/// starts as if a CR LF had just been read, so a first line of "." ends an
/// empty message, as in Postfix's smtp-sink. The CR LF before the final dot
/// belongs to the content.
#[derive(Debug, Clone)]
pub struct DataDecoder {
    mode: DataMode,
    /// The next byte starts a line (the stream so far ends in CRLF).
    at_line_start: bool,
    finder: memmem::Finder<'static>,
}

impl DataDecoder {
    /// A decoder in the given mode, at the start of a message.
    pub fn new(mode: DataMode) -> Self {
        let finder = match mode {
            DataMode::Unstuff => memmem::Finder::new(b"\r\n."),
            DataMode::CountOnly => memmem::Finder::new(END),
        };
        Self {
            mode,
            at_line_start: true,
            finder,
        }
    }

    /// The mode this decoder runs in.
    pub fn mode(&self) -> DataMode {
        self.mode
    }

    /// Prepares for a new message.
    pub fn reset(&mut self) {
        self.at_line_start = true;
    }

    /// Takes the next piece of the message off the front of `buf`.
    ///
    /// Returns `Ok(None)` when nothing can be decided without more bytes;
    /// the bytes it leaves are then at most the four of a possible marker.
    /// Bytes after the marker are left in `buf` (the next command, when a
    /// client pipelines). Never fails: any byte sequence is valid content.
    pub fn parse(
        &mut self,
        buf: &mut BytesMut,
    ) -> Result<Option<DataEvent>, std::convert::Infallible> {
        Ok(match self.mode {
            DataMode::CountOnly => self.count(buf),
            DataMode::Unstuff => self.unstuff(buf),
        })
    }

    fn count(&mut self, buf: &mut BytesMut) -> Option<DataEvent> {
        if self.at_line_start {
            if buf.starts_with(b".\r\n") {
                buf.advance(3);
                self.reset();
                return Some(DataEvent::End);
            }
            if b".\r".starts_with(buf) {
                return None; // empty, "." or ".\r": could still be the end
            }
        }
        let (n, at_line_start) = match self.finder.find(buf) {
            // Count up to the CRLF before the dot; the next call ends it.
            Some(i) => (i + 2, true),
            // Hold back what could be the start of the marker, so every
            // counted byte is content.
            None if buf.ends_with(b"\r\n.\r") => (buf.len() - 2, true),
            None if buf.ends_with(b"\r\n.") => (buf.len() - 1, true),
            None if buf.ends_with(b"\r\n") => (buf.len(), true),
            None if buf.ends_with(b"\r") => (buf.len() - 1, false),
            None => (buf.len(), false),
        };
        if n == 0 {
            return None;
        }
        self.at_line_start = at_line_start;
        buf.advance(n);
        Some(DataEvent::Skipped(n))
    }

    fn unstuff(&mut self, buf: &mut BytesMut) -> Option<DataEvent> {
        if self.at_line_start {
            match buf.first()? {
                b'.' => match buf.get(1..3) {
                    Some(b"\r\n") => {
                        buf.advance(3);
                        self.reset();
                        return Some(DataEvent::End);
                    }
                    None if buf.get(1).is_none_or(|&b| b == b'\r') => return None,
                    _ => {
                        // A stuffed dot: drop it, the line goes on.
                        buf.advance(1);
                        self.at_line_start = false;
                    }
                },
                _ => self.at_line_start = false,
            }
        }
        if buf.is_empty() {
            return None;
        }
        // Up to a CRLF that is followed by a dot: the dot is dealt with in
        // the next call, at the start of a line.
        if let Some(i) = self.finder.find(buf) {
            self.at_line_start = true;
            return Some(DataEvent::Chunk(buf.split_to(i + 2).freeze()));
        }
        let n = buf.len();
        let take = if buf.ends_with(b"\r\n") {
            self.at_line_start = true;
            n
        } else if buf.ends_with(b"\r") {
            // Might be the CR of a CRLF; decide when the next byte comes.
            n - 1
        } else {
            n
        };
        if take == 0 {
            return None;
        }
        Some(DataEvent::Chunk(buf.split_to(take).freeze()))
    }
}
