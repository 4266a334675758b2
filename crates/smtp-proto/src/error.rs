//! The one error type of the codec.

use std::fmt;

/// Bytes that can never become a valid item, whatever follows them.
///
/// "Need more bytes" is not an error: parsers return `Ok(None)` for it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// A line grew past the configured limit before its terminator arrived.
    /// The parser has switched to discarding input up to the next line end.
    LineTooLong {
        /// The limit that was exceeded, in bytes, terminator excluded.
        limit: usize,
    },
    /// A multi-line reply has more lines than the configured limit.
    TooManyLines {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// A reply line does not start with a three-digit code followed by
    /// a space, a hyphen or the line end.
    MalformedReply,
    /// A continuation line of a multi-line reply carries another code than
    /// the first line.
    ReplyCodeMismatch {
        /// Code of the first line.
        first: u16,
        /// Code of the offending line.
        line: u16,
    },
    /// A command argument does not match the grammar; `expected` names what
    /// was expected and is suitable as 501 reply text.
    Syntax {
        /// A short description of the expected form.
        expected: &'static str,
    },
}

impl ParseError {
    /// Whether a server can answer this error and keep reading commands.
    ///
    /// An over-long line is recoverable (the parser discards up to the next
    /// line end); a reply framing error means the peer is not speaking SMTP.
    pub fn is_recoverable(&self) -> bool {
        matches!(self, Self::LineTooLong { .. } | Self::Syntax { .. })
    }
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::LineTooLong { limit } => write!(f, "line longer than {limit} bytes"),
            Self::TooManyLines { limit } => write!(f, "reply has more than {limit} lines"),
            Self::MalformedReply => f.write_str("malformed reply line (no 3-digit code)"),
            Self::ReplyCodeMismatch { first, line } => {
                write!(f, "multi-line reply changes code from {first} to {line}")
            }
            Self::Syntax { expected } => write!(f, "syntax error: expected {expected}"),
        }
    }
}

impl std::error::Error for ParseError {}
