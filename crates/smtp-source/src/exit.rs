//! Exit statuses. Postfix's smtp-source exits 1 on any fatal error; ours
//! names the phase that failed, so a script or a CI job can tell a server
//! that refused connections from one that rejected recipients. Every code
//! is non-zero where Postfix's is, so `if smtp-source ...; then` keeps
//! working.

use smtp_proto::client::Phase;

use crate::error::Error;

/// The run did what it was asked.
pub const OK: u8 = 0;
/// A usage or setup error (bad option, unreadable file, a report that
/// could not be written): Postfix's 1.
pub const USAGE: u8 = 1;
/// The last allowed connect failed.
pub const CONNECT: u8 = 21;
/// No greeting, or a rejecting one.
pub const BANNER: u8 = 22;
/// HELO, EHLO or LHLO failed.
pub const HELO: u8 = 23;
/// STARTTLS or the TLS handshake failed.
pub const STARTTLS: u8 = 24;
/// AUTH failed.
pub const AUTH: u8 = 25;
/// MAIL FROM failed.
pub const MAIL: u8 = 26;
/// RCPT TO failed.
pub const RCPT: u8 = 27;
/// DATA (or a BDAT chunk before the last) failed.
pub const DATA: u8 = 28;
/// The end of the message content (".", or BDAT LAST) failed.
pub const DATASENT: u8 = 29;
/// QUIT failed.
pub const QUIT: u8 = 30;
/// RSET failed (only under `-A`, where RSET is sent).
pub const RSET: u8 = 31;
/// A `--threshold` did not hold (k6 uses the same number).
pub const THRESHOLD: u8 = 99;
/// Ctrl-C ended a run that was reporting: 128 + SIGINT, what a shell
/// shows for a Postfix run killed by ^C.
pub const INTERRUPTED: u8 = 130;

/// The `--help` epilogue.
pub const HELP: &str = "\
Exit status:
    0  the run completed (under -A, rejections do not make it fail)
    1  usage or setup error
   21  connect failed             26  MAIL FROM failed
   22  no or bad greeting         27  RCPT TO failed
   23  HELO/EHLO/LHLO failed      28  DATA or BDAT failed
   24  STARTTLS/TLS failed        29  end of data failed
   25  AUTH failed                30  QUIT failed   31  RSET failed
   99  a --threshold failed      130  interrupted (Ctrl-C) with a report";

/// What exit status `code` means, in the words of [`HELP`].
pub fn meaning(code: u8) -> &'static str {
    match code {
        OK => "the run completed",
        USAGE => "usage or setup error",
        CONNECT => "connect failed",
        BANNER => "no or bad greeting",
        HELO => "HELO/EHLO/LHLO failed",
        STARTTLS => "STARTTLS/TLS failed",
        AUTH => "AUTH failed",
        MAIL => "MAIL FROM failed",
        RCPT => "RCPT TO failed",
        DATA => "DATA or BDAT failed",
        DATASENT => "end of data failed",
        QUIT => "QUIT failed",
        RSET => "RSET failed",
        THRESHOLD => "a --threshold failed",
        INTERRUPTED => "interrupted (Ctrl-C)",
        _ => "unknown",
    }
}

/// The status a fatal error exits with.
pub fn code(error: &Error) -> u8 {
    match error {
        Error::Connect { .. } => CONNECT,
        Error::Tls(_) => STARTTLS,
        Error::Io { .. } => USAGE,
        Error::Timeout { phase, .. }
        | Error::ReplyTimeout { phase, .. }
        | Error::Lost { phase, .. }
        | Error::Rejected { phase, .. }
        | Error::Protocol { phase, .. }
        | Error::NotOffered(phase) => of_phase(*phase),
    }
}

/// The phase name a fatal error is reported under (the latency keys of the
/// report: `connect`, `banner`, `helo`, …), or None for setup errors.
pub fn phase_name(error: &Error) -> Option<&'static str> {
    match error {
        Error::Connect { .. } => Some("connect"),
        Error::Tls(_) => Some("starttls"),
        Error::Io { .. } => None,
        Error::Timeout { phase, .. }
        | Error::ReplyTimeout { phase, .. }
        | Error::Lost { phase, .. }
        | Error::Rejected { phase, .. }
        | Error::Protocol { phase, .. }
        | Error::NotOffered(phase) => Some(crate::latency::Metric::of_phase(*phase).name()),
    }
}

fn of_phase(phase: Phase) -> u8 {
    match phase {
        Phase::Greeting => BANNER,
        Phase::Ehlo | Phase::Helo => HELO,
        Phase::Starttls => STARTTLS,
        Phase::Auth => AUTH,
        Phase::Mail => MAIL,
        Phase::Rcpt => RCPT,
        Phase::Data | Phase::Bdat => DATA,
        Phase::EndOfData => DATASENT,
        Phase::Rset => RSET,
        Phase::Quit => QUIT,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every phase has its own code, distinct from the others, from the
    /// usage code and from success.
    #[test]
    fn codes_are_distinct() {
        let mut seen: Vec<u8> = Phase::ALL
            .iter()
            .filter(|p| **p != Phase::Bdat && **p != Phase::Helo)
            .map(|p| of_phase(*p))
            .collect();
        seen.extend([CONNECT, THRESHOLD, USAGE, OK, INTERRUPTED]);
        let n = seen.len();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen.len(), n);
        assert_eq!(of_phase(Phase::Bdat), DATA);
        assert_eq!(of_phase(Phase::Helo), of_phase(Phase::Ehlo));
    }
}
