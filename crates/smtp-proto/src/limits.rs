//! Size limits every parser enforces, so no input can make a buffer grow
//! without bound.

/// Caps applied while framing lines and replies.
///
/// The defaults follow RFC 5321 §4.5.3.1 where it gives a number and
/// Postfix's test programs where they are stricter or looser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Longest command line accepted, in bytes, CRLF excluded. RFC 5321 says
    /// 512 including CRLF; Postfix's smtp-sink closes the session past 2046.
    pub max_command_line: usize,
    /// Longest reply line accepted, in bytes, line end excluded. Postfix's
    /// smtp-source uses 10240.
    pub max_reply_line: usize,
    /// Most lines in one multi-line reply.
    pub max_reply_lines: usize,
}

impl Limits {
    /// The command-line limit of Postfix's smtp-sink.
    pub const POSTFIX_SINK_LINE: usize = 2046;
    /// The reply-line limit of Postfix's smtp-source.
    pub const POSTFIX_SOURCE_REPLY_LINE: usize = 10240;
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_command_line: Self::POSTFIX_SINK_LINE,
            max_reply_line: Self::POSTFIX_SOURCE_REPLY_LINE,
            max_reply_lines: 1000,
        }
    }
}
