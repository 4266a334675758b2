//! The run's one error type. Every variant is fatal, as in Postfix; the
//! Display texts are Postfix's, printed as `<argv0>: fatal: <text>`.

use std::io;

pub use smtp_net::strerror;
use smtp_proto::{
    client::{Phase, Protocol},
    postfix::printable,
    ParseError, Reply,
};

/// Why a run stopped before its messages were all sent.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The last allowed connect attempt failed. The address comes first,
    /// then Postfix's own text (`connect: Connection refused`), so that a
    /// run against several servers says which one failed.
    #[error("{to}: connect: {}", strerror(.source))]
    Connect {
        /// The address tried: `127.0.0.1:25`, `[::1]:25`, `unix:/path`.
        to: String,
        /// Why it failed.
        #[source]
        source: io::Error,
    },
    /// A read or write did not finish within the timeout.
    #[error("timeout while {}", io_text(*.phase, *.protocol))]
    Timeout {
        /// Where.
        phase: Phase,
        /// Names HELO or LHLO.
        protocol: Protocol,
    },
    /// A reply did not end within `--reply-timeout` of its command (each
    /// read may have been quick: a server that trickles). The text starts
    /// as Postfix's timeout does.
    #[error("timeout while {}: no complete reply within {} s (--reply-timeout)", io_text(*.phase, *.protocol), .limit.as_secs_f64())]
    ReplyTimeout {
        /// Where.
        phase: Phase,
        /// Names HELO or LHLO.
        protocol: Protocol,
        /// `--reply-timeout`.
        limit: std::time::Duration,
    },
    /// The server closed the connection, or it broke.
    #[error("lost connection while {}", io_text(*.phase, *.protocol))]
    Lost {
        /// Where.
        phase: Phase,
        /// Names HELO or LHLO.
        protocol: Protocol,
    },
    /// A non-positive reply without `-A`.
    #[error("{}: {}", reject_text(*.phase, *.protocol), reply_text(.reply))]
    Rejected {
        /// Where.
        phase: Phase,
        /// Names HELO or LHLO.
        protocol: Protocol,
        /// The reply.
        reply: Reply,
    },
    /// A reply that is not SMTP.
    #[error("malformed reply while {}: {source}", io_text(*.phase, *.protocol))]
    Protocol {
        /// Where.
        phase: Phase,
        /// Names HELO or LHLO.
        protocol: Protocol,
        /// What is wrong with it.
        source: ParseError,
    },
    /// The TLS handshake failed (or the server broke RFC 3207's rules).
    #[error("TLS handshake failed: {}", strerror(.0))]
    Tls(#[source] io::Error),
    /// The server lacks what the run needs (STARTTLS, a usable AUTH).
    #[error("{}", not_offered_text(*.0))]
    NotOffered(Phase),
    /// The runtime could not start, or a report could not be written.
    #[error("{what}: {}", strerror(.source))]
    Io {
        /// What was being done.
        what: String,
        /// Why it failed.
        source: io::Error,
    },
}

/// The phase as Postfix names it after "timeout while" and "lost
/// connection while".
pub fn io_text(phase: Phase, protocol: Protocol) -> &'static str {
    match (phase, protocol) {
        (Phase::Greeting, _) => "reading server greeting",
        (Phase::Ehlo, _) => "sending EHLO",
        (Phase::Helo, Protocol::Smtp) => "sending HELO",
        (Phase::Helo, Protocol::Lmtp) => "sending LHLO",
        (Phase::Starttls, _) => "sending STARTTLS",
        (Phase::Auth, _) => "sending AUTH",
        (Phase::Mail, _) => "sending sender",
        (Phase::Rcpt, _) => "sending recipient",
        (Phase::Data, _) => "sending DATA command",
        (Phase::Bdat, _) => "sending BDAT chunk",
        (Phase::EndOfData, _) => "sending message",
        (Phase::Rset, _) => "sending RSET",
        (Phase::Quit, _) => "sending QUIT",
    }
}

fn not_offered_text(phase: Phase) -> &'static str {
    match phase {
        Phase::Starttls => "server does not offer STARTTLS",
        Phase::Auth => "server offers no AUTH mechanism we can use (PLAIN, LOGIN)",
        _ => "server does not offer what the options need",
    }
}

/// What Postfix says before a non-positive reply.
pub fn reject_text(phase: Phase, protocol: Protocol) -> &'static str {
    match (phase, protocol) {
        (Phase::Greeting, _) => "rejected at server banner",
        (Phase::Ehlo, _) => "EHLO rejected",
        (Phase::Helo, Protocol::Smtp) => "HELO rejected",
        (Phase::Helo, Protocol::Lmtp) => "LHLO rejected",
        (Phase::Starttls, _) => "STARTTLS rejected",
        (Phase::Auth, _) => "authentication rejected",
        (Phase::Mail, _) => "sender rejected",
        (Phase::Rcpt, _) => "recipient rejected",
        (Phase::Data, _) => "data rejected",
        (Phase::Bdat, _) => "BDAT chunk rejected",
        (Phase::EndOfData, _) => "end of data rejected",
        (Phase::Rset, _) => "rset rejected",
        (Phase::Quit, _) => "quit rejected",
    }
}

/// A reply as Postfix shows it: `code text`, further lines joined with
/// "\n", and bytes that are neither printable nor blank as "?".
pub fn reply_text(reply: &Reply) -> String {
    let mut s = format!("{} ", reply.code);
    for (i, line) in reply.lines().enumerate() {
        // Postfix joins the lines with a newline and its message output
        // shows every non-printable byte, that newline included, as "?".
        if i > 0 {
            s.push('?');
        }
        let start = line
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .unwrap_or(line.len());
        // Only printable ASCII is left, so this is lossless.
        s.push_str(&String::from_utf8_lossy(&printable(&line[start..])));
    }
    s
}

/// Postfix's printable(): keep printable ASCII and whitespace.
pub(crate) fn censor(b: u8) -> char {
    if b.is_ascii_graphic() || b.is_ascii_whitespace() {
        char::from(b)
    } else {
        '?'
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn texts() {
        let reply = Reply::new(550, &["5.1.1  no", " \tmore\x01\tx"]);
        let e = Error::Rejected {
            phase: Phase::Rcpt,
            protocol: Protocol::Smtp,
            reply,
        };
        assert_eq!(e.to_string(), "recipient rejected: 550 5.1.1  no?more??x");
        let e = Error::Lost {
            phase: Phase::Helo,
            protocol: Protocol::Lmtp,
        };
        assert_eq!(e.to_string(), "lost connection while sending LHLO");
        let e = Error::Connect {
            to: "127.0.0.1:1".to_owned(),
            source: io::Error::from_raw_os_error(libc::ECONNREFUSED),
        };
        assert_eq!(e.to_string(), "127.0.0.1:1: connect: Connection refused");
        let e = Error::Timeout {
            phase: Phase::Greeting,
            protocol: Protocol::Smtp,
        };
        assert_eq!(e.to_string(), "timeout while reading server greeting");
        let e = Error::ReplyTimeout {
            phase: Phase::Rcpt,
            protocol: Protocol::Smtp,
            limit: std::time::Duration::from_millis(2500),
        };
        assert_eq!(
            e.to_string(),
            "timeout while sending recipient: no complete reply within 2.5 s (--reply-timeout)"
        );
    }
}
