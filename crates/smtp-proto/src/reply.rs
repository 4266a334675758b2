//! Replies (RFC 5321 §4.2): the code, its severity, the optional enhanced
//! status code (RFC 3463), and the encoder for single- and multi-line forms.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

/// A three-digit reply code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplyCode(pub u16);

/// What the first digit of a reply code says about the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Severity {
    /// 2xx: the command succeeded.
    Positive,
    /// 3xx: send more (the 354 after DATA, 334 during AUTH).
    Intermediate,
    /// 4xx: failed, may succeed later.
    Transient,
    /// 5xx: failed for good.
    Permanent,
    /// Any other first digit; not valid SMTP.
    Other,
}

impl ReplyCode {
    /// 220: service ready.
    pub const READY: ReplyCode = ReplyCode(220);
    /// 221: closing.
    pub const CLOSING: ReplyCode = ReplyCode(221);
    /// 250: requested action completed.
    pub const OK: ReplyCode = ReplyCode(250);
    /// 354: start mail input.
    pub const START_DATA: ReplyCode = ReplyCode(354);
    /// 421: service not available, closing.
    pub const SHUTTING_DOWN: ReplyCode = ReplyCode(421);

    /// The severity class, from the first digit.
    pub fn severity(self) -> Severity {
        match self.0 / 100 {
            2 => Severity::Positive,
            3 => Severity::Intermediate,
            4 => Severity::Transient,
            5 => Severity::Permanent,
            _ => Severity::Other,
        }
    }

    /// 2xx.
    pub fn is_positive(self) -> bool {
        self.severity() == Severity::Positive
    }

    /// 3xx.
    pub fn is_intermediate(self) -> bool {
        self.severity() == Severity::Intermediate
    }

    /// 4xx.
    pub fn is_transient(self) -> bool {
        self.severity() == Severity::Transient
    }

    /// 5xx.
    pub fn is_permanent(self) -> bool {
        self.severity() == Severity::Permanent
    }
}

impl fmt::Display for ReplyCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:03}", self.0)
    }
}

/// An enhanced status code `class.subject.detail` (RFC 3463).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnhancedCode {
    /// 2, 4 or 5.
    pub class: u8,
    /// Subject, up to three digits.
    pub subject: u16,
    /// Detail, up to three digits.
    pub detail: u16,
}

impl EnhancedCode {
    /// Reads an enhanced code at the start of reply text; it must be
    /// followed by a blank or the end of the text.
    pub fn parse_prefix(text: &[u8]) -> Option<EnhancedCode> {
        let class = match text.first()? {
            c @ (b'2' | b'4' | b'5') => c - b'0',
            _ => return None,
        };
        if text.get(1) != Some(&b'.') {
            return None;
        }
        let (subject, used1) = digits(&text[2..])?;
        let rest = &text[2 + used1..];
        if rest.first() != Some(&b'.') {
            return None;
        }
        let (detail, used2) = digits(&rest[1..])?;
        match rest.get(1 + used2) {
            None | Some(b' ' | b'\t') => Some(EnhancedCode {
                class,
                subject,
                detail,
            }),
            Some(_) => None,
        }
    }
}

fn digits(b: &[u8]) -> Option<(u16, usize)> {
    let n = b.iter().take(4).take_while(|c| c.is_ascii_digit()).count();
    if n == 0 || n > 3 {
        return None;
    }
    let value = b[..n]
        .iter()
        .fold(0u16, |acc, c| acc * 10 + u16::from(c - b'0'));
    Some((value, n))
}

impl fmt::Display for EnhancedCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.class, self.subject, self.detail)
    }
}

/// A complete reply as received: one or more lines with the same code.
///
/// `raw` holds the received bytes, line ends included, so keeping a reply
/// costs no copy and no allocation per line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// The code shared by every line.
    pub code: ReplyCode,
    /// The enhanced status code at the start of the first line's text.
    pub enhanced: Option<EnhancedCode>,
    raw: Bytes,
}

impl Reply {
    /// Builds a reply from received bytes already checked by the parser.
    pub(crate) fn from_raw(code: ReplyCode, raw: Bytes) -> Reply {
        let mut reply = Reply {
            code,
            enhanced: None,
            raw,
        };
        let enhanced = reply.lines().next().and_then(EnhancedCode::parse_prefix);
        reply.enhanced = enhanced;
        reply
    }

    /// A reply built in memory, e.g. for tests or a scripted server.
    pub fn new(code: u16, lines: &[&str]) -> Reply {
        let mut out = BytesMut::new();
        let lines: Vec<&[u8]> = lines.iter().map(|l| l.as_bytes()).collect();
        encode_reply(ReplyCode(code), &lines, &mut out);
        Reply::from_raw(ReplyCode(code), out.freeze())
    }

    /// The bytes as received (every line with its terminator).
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// The text of each line: what follows the code and its separator,
    /// without the line end.
    pub fn lines(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.raw
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                let l = l.strip_suffix(b"\r").unwrap_or(l);
                l.get(4..).unwrap_or(&[])
            })
    }

    /// Number of lines.
    pub fn line_count(&self) -> usize {
        memchr::memchr_iter(b'\n', &self.raw).count()
    }

    /// `code text` of every line, joined with `sep`, for logs and
    /// reports. (smtp-source's fatal messages use Postfix's own rendering
    /// instead: code once, lines joined by `?`.)
    pub fn to_text(&self, sep: &str) -> String {
        let mut s = String::new();
        for (i, line) in self.lines().enumerate() {
            if i > 0 {
                s.push_str(sep);
            }
            s.push_str(&self.code.to_string());
            if !line.is_empty() {
                s.push(' ');
                s.push_str(&String::from_utf8_lossy(line));
            }
        }
        s
    }

    /// Appends this reply, as received, to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        out.put_slice(&self.raw);
    }
}

/// Appends a reply in wire form: `code-text` CRLF for every line but the
/// last, `code text` CRLF for the last. A line of empty text is written
/// as `code ` or `code-` with nothing after the separator, as Postfix's
/// smtp-sink ends its EHLO reply with `250 `.
pub fn encode_reply(code: ReplyCode, lines: &[&[u8]], out: &mut BytesMut) {
    let digits = [
        b'0' + (code.0 / 100 % 10) as u8,
        b'0' + (code.0 / 10 % 10) as u8,
        b'0' + (code.0 % 10) as u8,
    ];
    let last = lines.len().saturating_sub(1);
    if lines.is_empty() {
        out.put_slice(&digits);
        out.put_slice(b" \r\n");
        return;
    }
    for (i, text) in lines.iter().enumerate() {
        out.reserve(text.len() + 6);
        out.put_slice(&digits);
        out.put_u8(if i == last { b' ' } else { b'-' });
        out.put_slice(text);
        out.put_slice(b"\r\n");
    }
}
