//! The command verb: the key for replies, policies and statistics.

use std::fmt;
use std::str::FromStr;

/// An SMTP or LMTP command verb, matched case-insensitively.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Verb {
    /// `HELO domain` (RFC 5321 §4.1.1.1).
    Helo,
    /// `EHLO domain`.
    Ehlo,
    /// `LHLO domain` (RFC 2033).
    Lhlo,
    /// `MAIL FROM:<path> [params]`.
    Mail,
    /// `RCPT TO:<path> [params]`.
    Rcpt,
    /// `DATA`.
    Data,
    /// `BDAT size [LAST]` (RFC 3030).
    Bdat,
    /// `RSET`.
    Rset,
    /// `NOOP [string]`.
    Noop,
    /// `VRFY string`.
    Vrfy,
    /// `EXPN string`.
    Expn,
    /// `HELP [string]`.
    Help,
    /// `QUIT`.
    Quit,
    /// `STARTTLS` (RFC 3207).
    StartTls,
    /// `AUTH mechanism [initial-response]` (RFC 4954).
    Auth,
    /// `XCLIENT attr=value ...` (Postfix).
    Xclient,
    /// `XFORWARD attr=value ...` (Postfix).
    Xforward,
    /// A line with no verb at all (empty, or only blanks).
    Empty,
    /// Any other verb; its text is kept in [`Command::name`](crate::Command).
    Unknown,
}

impl Verb {
    /// Every named verb, for tables and tests.
    pub const KNOWN: [Verb; 17] = [
        Verb::Helo,
        Verb::Ehlo,
        Verb::Lhlo,
        Verb::Mail,
        Verb::Rcpt,
        Verb::Data,
        Verb::Bdat,
        Verb::Rset,
        Verb::Noop,
        Verb::Vrfy,
        Verb::Expn,
        Verb::Help,
        Verb::Quit,
        Verb::StartTls,
        Verb::Auth,
        Verb::Xclient,
        Verb::Xforward,
    ];

    /// Recognises a verb from its bytes, ignoring ASCII case.
    pub fn from_bytes(word: &[u8]) -> Verb {
        if word.is_empty() {
            return Verb::Empty;
        }
        // Verbs are at most 8 bytes: fold into one lowercase integer and
        // compare once, instead of a string compare per candidate.
        if word.len() > 8 {
            return Verb::Unknown;
        }
        let mut key = [0u8; 8];
        for (k, b) in key.iter_mut().zip(word) {
            *k = b.to_ascii_lowercase();
        }
        match &key[..word.len()] {
            b"helo" => Verb::Helo,
            b"ehlo" => Verb::Ehlo,
            b"lhlo" => Verb::Lhlo,
            b"mail" => Verb::Mail,
            b"rcpt" => Verb::Rcpt,
            b"data" => Verb::Data,
            b"bdat" => Verb::Bdat,
            b"rset" => Verb::Rset,
            b"noop" => Verb::Noop,
            b"vrfy" => Verb::Vrfy,
            b"expn" => Verb::Expn,
            b"help" => Verb::Help,
            b"quit" => Verb::Quit,
            b"starttls" => Verb::StartTls,
            b"auth" => Verb::Auth,
            b"xclient" => Verb::Xclient,
            b"xforward" => Verb::Xforward,
            _ => Verb::Unknown,
        }
    }

    /// The verb as sent on the wire (upper case); empty for `Empty` and
    /// `Unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verb::Helo => "HELO",
            Verb::Ehlo => "EHLO",
            Verb::Lhlo => "LHLO",
            Verb::Mail => "MAIL",
            Verb::Rcpt => "RCPT",
            Verb::Data => "DATA",
            Verb::Bdat => "BDAT",
            Verb::Rset => "RSET",
            Verb::Noop => "NOOP",
            Verb::Vrfy => "VRFY",
            Verb::Expn => "EXPN",
            Verb::Help => "HELP",
            Verb::Quit => "QUIT",
            Verb::StartTls => "STARTTLS",
            Verb::Auth => "AUTH",
            Verb::Xclient => "XCLIENT",
            Verb::Xforward => "XFORWARD",
            Verb::Empty | Verb::Unknown => "",
        }
    }
}

impl fmt::Display for Verb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The error of [`Verb::from_str`]: the text is not a known verb.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownVerb(pub String);

impl fmt::Display for UnknownVerb {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown command: {}", self.0)
    }
}

impl std::error::Error for UnknownVerb {}

impl FromStr for Verb {
    type Err = UnknownVerb;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match Verb::from_bytes(s.as_bytes()) {
            Verb::Unknown | Verb::Empty => Err(UnknownVerb(s.to_owned())),
            verb => Ok(verb),
        }
    }
}
