//! Command-line framing: find the CR LF across reads, cap the length, and skip the rest of an over-long line.

use bytes::{Buf, Bytes, BytesMut};
use memchr::memchr;

use crate::ParseError;

/// Frames CR LF-terminated lines out of a growing buffer. A bare LF is
/// ordinary data, as in Postfix's smtp-sink.
#[derive(Debug, Clone)]
pub(crate) struct LineFramer {
    limit: usize,
    /// Set after an over-long line: input is dropped up to the next line end.
    discarding: bool,
    /// How far the buffer has already been searched without finding a line
    /// end, so a line that arrives a byte at a time is not rescanned.
    scanned: usize,
}

impl LineFramer {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit,
            discarding: false,
            scanned: 0,
        }
    }

    /// Returns the next line without its terminator, `Ok(None)` when more
    /// bytes are needed, or `LineTooLong` once per over-long line.
    pub(crate) fn next_line(&mut self, buf: &mut BytesMut) -> Result<Option<Bytes>, ParseError> {
        loop {
            let Some(end) = self.find_end(buf) else {
                if self.discarding {
                    // Keep a trailing CR: it may be the start of the CR LF.
                    let keep = usize::from(buf.last() == Some(&b'\r'));
                    buf.advance(buf.len() - keep);
                    self.scanned = buf.len();
                    return Ok(None);
                }
                // A complete line is at most limit + terminator bytes long;
                // a partial one longer than that can never fit.
                if buf.len() > self.limit.saturating_add(1) {
                    self.discarding = true;
                    let keep = usize::from(buf.last() == Some(&b'\r'));
                    buf.advance(buf.len() - keep);
                    self.scanned = buf.len();
                    return Err(ParseError::LineTooLong { limit: self.limit });
                }
                return Ok(None);
            };
            self.scanned = 0;
            let (content_len, total) = end;
            if self.discarding {
                self.discarding = false;
                buf.advance(total);
                continue;
            }
            if content_len > self.limit {
                buf.advance(total);
                return Err(ParseError::LineTooLong { limit: self.limit });
            }
            let mut line = buf.split_to(total);
            line.truncate(content_len);
            return Ok(Some(line.freeze()));
        }
    }

    /// Finds the first line end: (length without terminator, length with it).
    fn find_end(&mut self, buf: &[u8]) -> Option<(usize, usize)> {
        // Restart one byte early so a CR at the old end is seen with its LF.
        let start = self.scanned.saturating_sub(1).min(buf.len());
        let mut from = start;
        let found = loop {
            let Some(i) = memchr(b'\n', &buf[from..]) else {
                break None;
            };
            let lf = from + i;
            if lf > 0 && buf[lf - 1] == b'\r' {
                break Some((lf - 1, lf + 1));
            }
            from = lf + 1;
        };
        if found.is_none() {
            self.scanned = buf.len();
        }
        found
    }
}
