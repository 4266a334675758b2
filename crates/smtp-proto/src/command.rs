//! Commands: the framed line a server receives, typed views of its
//! arguments, and the encoder a client uses to send one.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::{ParseError, Verb};

/// One command line as received, without its CRLF.
///
/// The fields are slices of the received bytes, never copies. Arguments are
/// parsed only when a typed view is asked for, so a server that just counts
/// commands pays for framing and verb lookup and nothing else.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The recognised verb.
    pub verb: Verb,
    /// The verb word exactly as sent (any case); empty for [`Verb::Empty`].
    pub name: Bytes,
    /// Everything after the one space or tab that follows the verb word,
    /// as sent: later blanks and trailing blanks are kept.
    pub args: Bytes,
}

impl Command {
    /// Splits a line the way Postfix's smtp-sink does: blanks before the
    /// verb are skipped, the verb ends at the first space or tab, and the
    /// argument string starts after that one delimiter.
    pub fn from_line(mut line: Bytes) -> Command {
        let is_blank = |b: &u8| *b == b' ' || *b == b'\t';
        let start = line.iter().position(|b| !is_blank(b)).unwrap_or(line.len());
        let end = line[start..]
            .iter()
            .position(is_blank)
            .map_or(line.len(), |i| start + i);
        let name = line.slice(start..end);
        // The line itself becomes the argument string: one reference-count
        // update fewer per command than slicing it and dropping it.
        line.advance((end + 1).min(line.len()));
        Command {
            verb: Verb::from_bytes(&name),
            name,
            args: line,
        }
    }

    /// The argument string with leading and trailing blanks removed: the
    /// domain of HELO/EHLO/LHLO, the text of VRFY/NOOP/HELP.
    pub fn trimmed_args(&self) -> Bytes {
        trim_blanks(&self.args)
    }

    /// Parses `FROM:<path> [params]` of a MAIL command.
    ///
    /// # Errors
    /// `Syntax` when the keyword or the path is missing.
    pub fn mail_from(&self) -> Result<PathArgs, ParseError> {
        PathArgs::parse(&self.args, b"from:", "MAIL FROM:<address>")
    }

    /// Parses `TO:<path> [params]` of a RCPT command.
    ///
    /// # Errors
    /// `Syntax` when the keyword or the path is missing.
    pub fn rcpt_to(&self) -> Result<PathArgs, ParseError> {
        PathArgs::parse(&self.args, b"to:", "RCPT TO:<address>")
    }

    /// Parses `mechanism [initial-response]` of an AUTH command.
    ///
    /// # Errors
    /// `Syntax` when no mechanism is given.
    pub fn auth(&self) -> Result<AuthArgs, ParseError> {
        let mut words = Words::new(trim_blanks(&self.args));
        let mechanism = words.next().ok_or(ParseError::Syntax {
            expected: "AUTH mechanism [initial-response]",
        })?;
        Ok(AuthArgs {
            mechanism,
            initial_response: words.next(),
        })
    }

    /// Parses `size [LAST]` of a BDAT command.
    ///
    /// # Errors
    /// `Syntax` when the size is missing or not a number, or a second word
    /// is not `LAST`.
    pub fn bdat(&self) -> Result<BdatArgs, ParseError> {
        const EXPECTED: ParseError = ParseError::Syntax {
            expected: "BDAT size [LAST]",
        };
        let mut words = Words::new(trim_blanks(&self.args));
        // chunk-size = 1*DIGIT (RFC 3030): `u64::from_str` alone would also
        // take a leading `+`.
        let size = words
            .next()
            .filter(|w| w.iter().all(u8::is_ascii_digit))
            .and_then(|w| std::str::from_utf8(&w).ok()?.parse::<u64>().ok())
            .ok_or(EXPECTED)?;
        let last = match words.next() {
            None => false,
            Some(w) if w.eq_ignore_ascii_case(b"last") => true,
            Some(_) => return Err(EXPECTED),
        };
        if words.next().is_some() {
            return Err(EXPECTED);
        }
        Ok(BdatArgs { size, last })
    }

    /// Splits the `NAME=VALUE` attributes of XCLIENT or XFORWARD.
    pub fn attributes(&self) -> Params {
        Params(trim_blanks(&self.args))
    }
}

/// The path and ESMTP parameters of MAIL FROM or RCPT TO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathArgs {
    /// The address between `<` and `>`; empty for the null sender `<>`.
    /// A path sent without brackets is taken up to the first blank.
    pub path: Bytes,
    /// Whatever follows the path.
    pub params: Params,
}

impl PathArgs {
    fn parse(args: &Bytes, keyword: &[u8], expected: &'static str) -> Result<Self, ParseError> {
        let err = ParseError::Syntax { expected };
        let rest = trim_blanks(args);
        if rest.len() < keyword.len() || !rest[..keyword.len()].eq_ignore_ascii_case(keyword) {
            return Err(err);
        }
        let rest = trim_blanks(&rest.slice(keyword.len()..));
        let (path, after) = if rest.first() == Some(&b'<') {
            let close = closing_bracket(&rest).ok_or(err)?;
            (rest.slice(1..close), rest.slice(close + 1..))
        } else {
            let end = rest
                .iter()
                .position(|&b| b == b' ' || b == b'\t')
                .unwrap_or(rest.len());
            if end == 0 {
                return Err(err);
            }
            (rest.slice(..end), rest.slice(end..))
        };
        Ok(PathArgs {
            path,
            params: Params(trim_blanks(&after)),
        })
    }
}

/// The offset of the `>` that closes the path opened by `path[0] == b'<'`.
///
/// A quoted local part may hold `>` and blanks, and a backslash escapes the
/// next character inside quotes (RFC 5321 §4.1.2 `Quoted-string`), so the
/// first `>` outside quotes is the one that counts.
fn closing_bracket(path: &[u8]) -> Option<usize> {
    let mut quoted = false;
    let mut escaped = false;
    for (i, &b) in path.iter().enumerate().skip(1) {
        match b {
            _ if escaped => escaped = false,
            b'\\' if quoted => escaped = true,
            b'"' => quoted = !quoted,
            b'>' if !quoted => return Some(i),
            _ => {}
        }
    }
    None
}

/// The arguments of AUTH.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthArgs {
    /// The SASL mechanism name as sent.
    pub mechanism: Bytes,
    /// The initial response (base64, or `=` for an empty one), if sent.
    pub initial_response: Option<Bytes>,
}

/// The arguments of BDAT.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BdatArgs {
    /// Octets in this chunk.
    pub size: u64,
    /// Whether this is the last chunk.
    pub last: bool,
}

/// Space-separated `KEYWORD[=VALUE]` parameters, parsed on demand.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Params(pub Bytes);

impl Params {
    /// Iterates over `(keyword, value)` pairs in the order sent.
    pub fn iter(&self) -> impl Iterator<Item = (Bytes, Option<Bytes>)> + '_ {
        Words::new(self.0.clone()).map(|word| match word.iter().position(|&b| b == b'=') {
            Some(eq) => (word.slice(..eq), Some(word.slice(eq + 1..))),
            None => (word, None),
        })
    }

    /// The value of a keyword (case-insensitive): `Some(None)` when present
    /// without a value.
    pub fn get(&self, keyword: &str) -> Option<Option<Bytes>> {
        self.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(keyword.as_bytes()))
            .map(|(_, v)| v)
    }

    /// Whether no parameter was given.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Blank-separated words of a byte string, as `Bytes` slices.
struct Words {
    rest: Bytes,
}

impl Words {
    fn new(rest: Bytes) -> Self {
        Words { rest }
    }
}

impl Iterator for Words {
    type Item = Bytes;

    fn next(&mut self) -> Option<Bytes> {
        let is_blank = |b: &u8| *b == b' ' || *b == b'\t';
        let start = self.rest.iter().position(|b| !is_blank(b))?;
        let end = self.rest[start..]
            .iter()
            .position(is_blank)
            .map_or(self.rest.len(), |i| start + i);
        let word = self.rest.slice(start..end);
        self.rest = self.rest.slice(end..);
        Some(word)
    }
}

fn trim_blanks(b: &Bytes) -> Bytes {
    let is_blank = |c: &u8| *c == b' ' || *c == b'\t';
    let start = b.iter().position(|c| !is_blank(c)).unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !is_blank(c))
        .map_or(start, |i| i + 1);
    b.slice(start..end)
}

/// A command a client sends; `encode` appends its wire form with CRLF.
///
/// Borrowed fields: encoding copies them once into the output buffer and
/// allocates nothing else.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request<'a> {
    /// `HELO domain`.
    Helo(&'a [u8]),
    /// `EHLO domain`.
    Ehlo(&'a [u8]),
    /// `LHLO domain`.
    Lhlo(&'a [u8]),
    /// `MAIL FROM:<path>` then ` params` when non-empty.
    MailFrom {
        /// Address, written inside `<>` verbatim.
        path: &'a [u8],
        /// ESMTP parameters, written after one space when non-empty.
        params: &'a [u8],
    },
    /// `RCPT TO:<path>` then ` params` when non-empty.
    RcptTo {
        /// Address, written inside `<>` verbatim.
        path: &'a [u8],
        /// ESMTP parameters, written after one space when non-empty.
        params: &'a [u8],
    },
    /// `DATA`.
    Data,
    /// `BDAT size` or `BDAT size LAST`.
    Bdat {
        /// Octets in the chunk.
        size: u64,
        /// Whether this is the last chunk.
        last: bool,
    },
    /// `RSET`.
    Rset,
    /// `NOOP`.
    Noop,
    /// `QUIT`.
    Quit,
    /// `STARTTLS`.
    StartTls,
    /// `AUTH mechanism` then ` initial` when given.
    Auth {
        /// Mechanism name.
        mechanism: &'a [u8],
        /// Initial response, already base64-encoded.
        initial: Option<&'a [u8]>,
    },
    /// A line sent as is (an AUTH continuation, a custom command).
    Raw(&'a [u8]),
}

impl Request<'_> {
    /// Appends the command line and its CRLF to `out`.
    pub fn encode(&self, out: &mut BytesMut) {
        match *self {
            Request::Helo(d) => line2(out, b"HELO ", d),
            Request::Ehlo(d) => line2(out, b"EHLO ", d),
            Request::Lhlo(d) => line2(out, b"LHLO ", d),
            Request::MailFrom { path, params } => path_line(out, b"MAIL FROM:<", path, params),
            Request::RcptTo { path, params } => path_line(out, b"RCPT TO:<", path, params),
            Request::Data => out.put_slice(b"DATA\r\n"),
            Request::Bdat { size, last } => {
                out.put_slice(b"BDAT ");
                out.put_slice(crate::itoa(size, &mut [0; 20]));
                out.put_slice(if last { b" LAST\r\n" } else { b"\r\n" });
            }
            Request::Rset => out.put_slice(b"RSET\r\n"),
            Request::Noop => out.put_slice(b"NOOP\r\n"),
            Request::Quit => out.put_slice(b"QUIT\r\n"),
            Request::StartTls => out.put_slice(b"STARTTLS\r\n"),
            Request::Auth { mechanism, initial } => {
                out.put_slice(b"AUTH ");
                out.put_slice(mechanism);
                if let Some(initial) = initial {
                    out.put_u8(b' ');
                    out.put_slice(initial);
                }
                out.put_slice(b"\r\n");
            }
            Request::Raw(line) => line2(out, b"", line),
        }
    }

    /// The verb this request carries.
    pub fn verb(&self) -> Verb {
        match self {
            Request::Helo(_) => Verb::Helo,
            Request::Ehlo(_) => Verb::Ehlo,
            Request::Lhlo(_) => Verb::Lhlo,
            Request::MailFrom { .. } => Verb::Mail,
            Request::RcptTo { .. } => Verb::Rcpt,
            Request::Data => Verb::Data,
            Request::Bdat { .. } => Verb::Bdat,
            Request::Rset => Verb::Rset,
            Request::Noop => Verb::Noop,
            Request::Quit => Verb::Quit,
            Request::StartTls => Verb::StartTls,
            Request::Auth { .. } => Verb::Auth,
            Request::Raw(_) => Verb::Unknown,
        }
    }
}

fn line2(out: &mut BytesMut, head: &[u8], tail: &[u8]) {
    out.reserve(head.len() + tail.len() + 2);
    out.put_slice(head);
    out.put_slice(tail);
    out.put_slice(b"\r\n");
}

fn path_line(out: &mut BytesMut, head: &[u8], path: &[u8], params: &[u8]) {
    out.reserve(head.len() + path.len() + params.len() + 4);
    out.put_slice(head);
    out.put_slice(path);
    out.put_u8(b'>');
    if !params.is_empty() {
        out.put_u8(b' ');
        out.put_slice(params);
    }
    out.put_slice(b"\r\n");
}
