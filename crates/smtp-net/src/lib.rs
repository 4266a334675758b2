//! The async I/O shell that smtp-source and smtp-sink share.
//!
//! smtp-proto turns bytes into values and back without touching a socket;
//! this crate is the other half both programs need: the one [`Stream`]
//! type their sessions run over (TCP or a unix socket today, TLS over
//! either next), the tokio runtime both build the same way, and the
//! strerror(3) text both print as Postfix's `%m` does, and TLS ([`tls`]:
//! rustls with the ring provider, client and server configurations, a
//! self-signed certificate on demand). Each program's session is generic
//! over [`Transport`], so a TLS stream is one more stream, not a second
//! code path.

mod runtime;
mod stream;
pub mod tls;

use std::io;

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strerror_is_the_c_text() {
        assert_eq!(
            strerror(&io::Error::from_raw_os_error(111)),
            "Connection refused"
        );
        assert_eq!(strerror(&io::Error::other("custom")), "custom");
    }
}
