//! Frames command lines out of the bytes a server reads.

use bytes::BytesMut;

use crate::line::LineFramer;
use crate::{Command, ParseError};

/// Incremental command parser for the server side.
///
/// A line ends only at CR LF: a bare LF is part of the line, as in Postfix's
/// smtp-sink (`NOOP\nNOOP\r\n` is one unknown command).
#[derive(Debug, Clone)]
pub struct CommandParser {
    framer: LineFramer,
}

impl CommandParser {
    /// A parser that reports lines longer than `max_line` bytes (CRLF
    /// excluded) as [`ParseError::LineTooLong`] without buffering them.
    pub fn new(max_line: usize) -> Self {
        Self {
            framer: LineFramer::new(max_line),
        }
    }

    /// Takes one command line off the front of `buf`.
    ///
    /// Returns `Ok(None)` when no complete line is buffered yet. After a
    /// `LineTooLong` error the rest of that line is skipped, so parsing can
    /// go on if the caller chooses to.
    ///
    /// `Ok(None)` leaves `buf` as it was, with one exception: while the
    /// rest of an over-long line is being skipped, its bytes are removed as
    /// they arrive, so such a line never occupies more than `max_line + 2`
    /// bytes of the buffer.
    ///
    /// The parser remembers how far it has scanned `buf`; between calls the
    /// caller may append to `buf` but must not remove bytes from it (if it
    /// throws the buffer away, it must start a new parser).
    ///
    /// # Errors
    /// [`ParseError::LineTooLong`], once per over-long line.
    pub fn parse(&mut self, buf: &mut BytesMut) -> Result<Option<Command>, ParseError> {
        Ok(self.framer.next_line(buf)?.map(Command::from_line))
    }
}

impl Default for CommandParser {
    fn default() -> Self {
        Self::new(crate::Limits::default().max_command_line)
    }
}
