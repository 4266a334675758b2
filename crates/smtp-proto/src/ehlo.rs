//! EHLO capabilities: parsed by a client from the EHLO reply, rendered by a
//! server into one.

use bytes::{Bytes, BytesMut};

use crate::reply::encode_reply;
use crate::{Reply, ReplyCode};

/// A set of ESMTP extensions without arguments, as bits.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Extensions(u32);

impl Extensions {
    /// PIPELINING (RFC 2920).
    pub const PIPELINING: Extensions = Extensions(1 << 0);
    /// 8BITMIME (RFC 6152).
    pub const EIGHT_BIT_MIME: Extensions = Extensions(1 << 1);
    /// ENHANCEDSTATUSCODES (RFC 2034).
    pub const ENHANCED_STATUS_CODES: Extensions = Extensions(1 << 2);
    /// DSN (RFC 3461).
    pub const DSN: Extensions = Extensions(1 << 3);
    /// STARTTLS (RFC 3207).
    pub const STARTTLS: Extensions = Extensions(1 << 4);
    /// CHUNKING (RFC 3030).
    pub const CHUNKING: Extensions = Extensions(1 << 5);
    /// SMTPUTF8 (RFC 6531).
    pub const SMTPUTF8: Extensions = Extensions(1 << 6);
    /// No extension.
    pub const EMPTY: Extensions = Extensions(0);

    /// Whether every extension of `other` is in `self`.
    pub fn contains(self, other: Extensions) -> bool {
        self.0 & other.0 == other.0
    }

    /// Adds the extensions of `other`.
    pub fn insert(&mut self, other: Extensions) {
        self.0 |= other.0;
    }

    /// Removes the extensions of `other`.
    pub fn remove(&mut self, other: Extensions) {
        self.0 &= !other.0;
    }
}

impl std::ops::BitOr for Extensions {
    type Output = Extensions;
    fn bitor(self, rhs: Self) -> Self {
        Extensions(self.0 | rhs.0)
    }
}

/// What a server announced in its EHLO (or LHLO) reply.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    /// The first line's text: the server's name and greeting.
    pub greeting: Bytes,
    /// Extensions without arguments.
    pub extensions: Extensions,
    /// SIZE, with its limit (0 when announced without a number).
    pub size: Option<u64>,
    /// AUTH, with its mechanisms as announced.
    pub auth: Option<Vec<Bytes>>,
    /// XCLIENT, with its attribute names as announced.
    pub xclient: Option<Bytes>,
    /// XFORWARD, with its attribute names as announced.
    pub xforward: Option<Bytes>,
    /// Keyword lines this crate does not know, verbatim.
    pub unknown: Vec<Bytes>,
}

impl Capabilities {
    /// Reads the capabilities out of a positive EHLO/LHLO reply; keyword
    /// matching ignores case. Unknown keywords are kept, and a malformed
    /// SIZE argument counts as SIZE without a limit.
    pub fn from_reply(reply: &Reply) -> Capabilities {
        let mut caps = Capabilities::default();
        let mut lines = reply.lines();
        if let Some(first) = lines.next() {
            caps.greeting = reply.raw().slice_ref(first);
        }
        for line in lines {
            let line_bytes = reply.raw().slice_ref(line);
            let mut words = line.split(|&b| b == b' ').filter(|w| !w.is_empty());
            let Some(keyword) = words.next() else {
                continue;
            };
            let rest_at = keyword.as_ptr() as usize - line.as_ptr() as usize + keyword.len();
            let rest = trim(&line_bytes.slice(rest_at..));
            let upper = keyword.to_ascii_uppercase();
            let flag = match upper.as_slice() {
                b"PIPELINING" => Some(Extensions::PIPELINING),
                b"8BITMIME" => Some(Extensions::EIGHT_BIT_MIME),
                b"ENHANCEDSTATUSCODES" => Some(Extensions::ENHANCED_STATUS_CODES),
                b"DSN" => Some(Extensions::DSN),
                b"STARTTLS" => Some(Extensions::STARTTLS),
                b"CHUNKING" => Some(Extensions::CHUNKING),
                b"SMTPUTF8" => Some(Extensions::SMTPUTF8),
                _ => None,
            };
            if let Some(flag) = flag {
                caps.extensions.insert(flag);
                continue;
            }
            match upper.as_slice() {
                b"SIZE" => {
                    caps.size = Some(
                        std::str::from_utf8(&rest)
                            .ok()
                            .and_then(|s| s.parse().ok())
                            .unwrap_or(0),
                    );
                }
                b"AUTH" => {
                    let mechs = rest
                        .split(|&b| b == b' ')
                        .filter(|w| !w.is_empty())
                        .map(|w| rest.slice_ref(w))
                        .collect();
                    caps.auth = Some(mechs);
                }
                b"XCLIENT" => caps.xclient = Some(rest),
                b"XFORWARD" => caps.xforward = Some(rest),
                _ => caps.unknown.push(line_bytes),
            }
        }
        caps
    }

    /// Whether the server offers `ext`.
    pub fn has(&self, ext: Extensions) -> bool {
        self.extensions.contains(ext)
    }

    /// Whether AUTH was announced with `mechanism` (case-insensitive).
    pub fn has_auth(&self, mechanism: &str) -> bool {
        self.auth.as_ref().is_some_and(|m| {
            m.iter()
                .any(|x| x.eq_ignore_ascii_case(mechanism.as_bytes()))
        })
    }

    /// Appends the `250` reply announcing these capabilities.
    ///
    /// Keywords come in the order of Postfix's smtp-sink (PIPELINING,
    /// 8BITMIME, AUTH, XCLIENT, XFORWARD, ENHANCEDSTATUSCODES, DSN) with the
    /// others placed where Postfix's smtpd puts them. With
    /// `trailing_empty_line` the reply ends with a line of empty text
    /// (`250 `), as smtp-sink's does.
    pub fn render(&self, trailing_empty_line: bool, out: &mut BytesMut) {
        let mut owned: Vec<Vec<u8>> = Vec::new();
        let mut push = |parts: &[&[u8]]| owned.push(parts.concat());
        push(&[&self.greeting]);
        if self.has(Extensions::PIPELINING) {
            push(&[b"PIPELINING"]);
        }
        if let Some(size) = self.size {
            if size == 0 {
                push(&[b"SIZE"]);
            } else {
                push(&[b"SIZE ", size.to_string().as_bytes()]);
            }
        }
        if self.has(Extensions::STARTTLS) {
            push(&[b"STARTTLS"]);
        }
        if self.has(Extensions::EIGHT_BIT_MIME) {
            push(&[b"8BITMIME"]);
        }
        if let Some(mechs) = &self.auth {
            let joined = mechs.join(&b' ');
            push(&[b"AUTH ", &joined]);
        }
        if let Some(attrs) = &self.xclient {
            push(&[b"XCLIENT ", attrs]);
        }
        if let Some(attrs) = &self.xforward {
            push(&[b"XFORWARD ", attrs]);
        }
        if self.has(Extensions::ENHANCED_STATUS_CODES) {
            push(&[b"ENHANCEDSTATUSCODES"]);
        }
        if self.has(Extensions::DSN) {
            push(&[b"DSN"]);
        }
        if self.has(Extensions::SMTPUTF8) {
            push(&[b"SMTPUTF8"]);
        }
        if self.has(Extensions::CHUNKING) {
            push(&[b"CHUNKING"]);
        }
        for line in &self.unknown {
            push(&[line]);
        }
        if trailing_empty_line {
            push(&[]);
        }
        let lines: Vec<&[u8]> = owned.iter().map(Vec::as_slice).collect();
        encode_reply(ReplyCode::OK, &lines, out);
    }
}

fn trim(b: &Bytes) -> Bytes {
    let start = b.iter().position(|&c| c != b' ').unwrap_or(b.len());
    let end = b.iter().rposition(|&c| c != b' ').map_or(start, |i| i + 1);
    b.slice(start..end)
}
