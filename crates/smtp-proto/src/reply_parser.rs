//! Assembles replies, single- or multi-line, out of the bytes a client
//! reads.

use bytes::BytesMut;
use memchr::memchr;

use crate::{Limits, ParseError, Reply, ReplyCode};

/// Incremental reply parser for the client side.
///
/// A line ends at LF, and a CR before it is dropped, as Postfix's
/// smtp-source reads replies. A reply is returned only when its last line
/// (`ddd ` or a bare `ddd`) has arrived; until then the buffer is left as it
/// is and only the scan position is remembered.
#[derive(Debug, Clone)]
pub struct ReplyParser {
    max_line: usize,
    max_lines: usize,
    /// Offset of the first line not yet checked.
    scanned: usize,
    /// Lines checked so far in the reply being assembled.
    lines: usize,
    /// Code of the first line of the reply being assembled.
    code: Option<u16>,
}

impl ReplyParser {
    /// A parser with the given caps.
    pub fn new(limits: Limits) -> Self {
        Self {
            max_line: limits.max_reply_line,
            max_lines: limits.max_reply_lines,
            scanned: 0,
            lines: 0,
            code: None,
        }
    }

    /// Takes one complete reply off the front of `buf`.
    ///
    /// `Ok(None)` leaves `buf` as it was. The parser remembers how far it
    /// has checked `buf`; between calls the caller may append to `buf` but
    /// must not remove bytes from it. After an error the reply being
    /// assembled is forgotten and `buf` is left as it was.
    ///
    /// # Errors
    /// `MalformedReply` for a line without a three-digit code and a valid
    /// separator, `ReplyCodeMismatch`, `LineTooLong` or `TooManyLines`.
    /// None of these can be recovered from: the peer is not speaking SMTP.
    pub fn parse(&mut self, buf: &mut BytesMut) -> Result<Option<Reply>, ParseError> {
        loop {
            let start = self.scanned.min(buf.len());
            let Some(i) = memchr(b'\n', &buf[start..]) else {
                if buf.len() - start > self.max_line.saturating_add(1) {
                    self.reset();
                    return Err(ParseError::LineTooLong {
                        limit: self.max_line,
                    });
                }
                return Ok(None);
            };
            let lf = start + i;
            let line = &buf[start..lf];
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            if line.len() > self.max_line {
                self.reset();
                return Err(ParseError::LineTooLong {
                    limit: self.max_line,
                });
            }
            let Some((code, more)) = split_code(line) else {
                self.reset();
                return Err(ParseError::MalformedReply);
            };
            match self.code {
                Some(first) if first != code => {
                    self.reset();
                    return Err(ParseError::ReplyCodeMismatch { first, line: code });
                }
                _ => self.code = Some(code),
            }
            self.lines += 1;
            if self.lines > self.max_lines {
                self.reset();
                return Err(ParseError::TooManyLines {
                    limit: self.max_lines,
                });
            }
            self.scanned = lf + 1;
            if !more {
                let raw = buf.split_to(lf + 1).freeze();
                self.reset();
                return Ok(Some(Reply::from_raw(ReplyCode(code), raw)));
            }
        }
    }

    fn reset(&mut self) {
        self.scanned = 0;
        self.lines = 0;
        self.code = None;
    }
}

impl Default for ReplyParser {
    fn default() -> Self {
        Self::new(Limits::default())
    }
}

/// The code of a reply line and whether more lines follow.
fn split_code(line: &[u8]) -> Option<(u16, bool)> {
    let digits = line.get(..3)?;
    if !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let code = digits
        .iter()
        .fold(0u16, |acc, c| acc * 10 + u16::from(c - b'0'));
    match line.get(3) {
        None | Some(b' ') => Some((code, false)),
        Some(b'-') => Some((code, true)),
        Some(_) => None,
    }
}
