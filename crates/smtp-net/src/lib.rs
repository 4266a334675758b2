//! The async I/O shell that smtp-source and smtp-sink share.
//!
//! smtp-proto turns bytes into values and back without touching a socket;
//! this crate is the other half both programs need: the one [`Stream`]
//! type their sessions run over (TCP or a unix socket today, TLS over
//! either next), the tokio runtime both build the same way, and the
//! strerror(3) text both print as Postfix's `%m` does, and TLS ([`tls`]:
//! rustls with the ring provider, client and server configurations, a
//! self-signed certificate on demand), and the time format of their JSON
//! files ([`rfc3339`]), and the latency histograms both report
//! ([`histogram`]). Each program's session is generic
//! over [`Transport`], so a TLS stream is one more stream, not a second
//! code path.

pub mod histogram;
mod runtime;
mod stream;
pub mod tls;

use std::{io, time::SystemTime};

pub use runtime::build_runtime;
pub use stream::{Stream, Transport};

/// The strerror(3) text of an I/O error (what Postfix prints for `%m`),
/// without Rust's " (os error N)" suffix.
pub fn strerror(e: &io::Error) -> String {
    let s = e.to_string();
    match s.rfind(" (os error ") {
        Some(i) if e.raw_os_error().is_some() => s[..i].to_owned(),
        _ => s,
    }
}

/// A time as both programs' JSON files write it: RFC 3339 in UTC with
/// milliseconds, `2026-11-30T18:04:05.123Z`.
pub fn rfc3339(t: SystemTime) -> String {
    chrono::DateTime::<chrono::Utc>::from(t).to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Reads a time [`rfc3339`] wrote (or any RFC 3339 time); None for other
/// text or a time before 1970.
pub fn parse_rfc3339(text: &str) -> Option<SystemTime> {
    let t = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    let nanos = u64::try_from(t.timestamp_nanos_opt()?).ok()?;
    Some(SystemTime::UNIX_EPOCH + std::time::Duration::from_nanos(nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_in_utc_with_milliseconds() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_234);
        assert_eq!(rfc3339(t), "1970-01-01T00:00:01.234Z");
        assert_eq!(parse_rfc3339("1970-01-01T00:00:01.234Z"), Some(t));
        assert_eq!(parse_rfc3339("1970-01-01T01:00:01.234+01:00"), Some(t));
        assert_eq!(parse_rfc3339("yesterday"), None);
    }

    #[test]
    fn strerror_is_the_c_text() {
        assert_eq!(
            strerror(&io::Error::from_raw_os_error(111)),
            "Connection refused"
        );
        assert_eq!(strerror(&io::Error::other("custom")), "custom");
    }
}
