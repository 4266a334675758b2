//! Conventions of Postfix's command lines that both programs follow so
//! that existing scripts behave the same.

/// Reads a number exactly as glibc's `atoi` does, as Postfix reads option
/// values: `(int) strtol(s, NULL, 10)`. Leading blanks, an optional sign,
/// then digits up to the first other character; no digits give 0 (so
/// `-s 10x` is 10 and `-s abc` is 0). strtol saturates at the 64-bit
/// `long`'s bounds, and the cast to `int` then keeps the low 32 bits, so
/// `2147483648` is -2147483648 (Postfix: "bad message length"),
/// `4294967297` is 1, and a number too long for a `long` is -1. Scripts
/// that pass such values get what Postfix gives them, odd as it is.
pub fn atoi(s: &str) -> i64 {
    let s = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    // The magnitude, saturated just past what a long can hold either way.
    const PAST_LONG: i128 = i64::MAX as i128 + 2;
    let mut magnitude: i128 = 0;
    for b in digits.bytes().take_while(u8::is_ascii_digit) {
        magnitude = (magnitude * 10 + i128::from(b - b'0')).min(PAST_LONG);
    }
    let value = if negative { -magnitude } else { magnitude };
    // strtol's saturation...
    let long = i64::try_from(value).unwrap_or(if negative { i64::MIN } else { i64::MAX });
    // ...then C's conversion to int, which on every platform Postfix runs
    // on keeps the low 32 bits.
    i64::from(long as i32)
}

/// Postfix's printable(): every byte that is not printable ASCII (space
/// to `~`) becomes `?`. Borrowed when nothing changes.
pub fn printable(text: &[u8]) -> std::borrow::Cow<'_, [u8]> {
    let ok = |b: &u8| (0x20..0x7f).contains(b);
    if text.iter().all(ok) {
        std::borrow::Cow::Borrowed(text)
    } else {
        std::borrow::Cow::Owned(text.iter().map(|b| if ok(b) { *b } else { b'?' }).collect())
    }
}

/// Which address families a host name may resolve to (`-4`, `-6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Family {
    /// Both (Postfix's default `inet_protocols = all`).
    #[default]
    Any,
    /// `-4`.
    V4,
    /// `-6`.
    V6,
}

/// What a bare word (no colon, no brackets) means in an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BareWord {
    /// A host (smtp-source: `host` means `host:smtp`).
    Host,
    /// A port (smtp-sink: `25` means `:25`, every address).
    Port,
}

/// Why `[inet:]host[:port]` does not parse; the texts are Postfix's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HostPortError {
    /// `[` without `]`.
    MissingBracket,
    /// Something other than `:port` after `]`.
    GarbageAfterBracket,
}

impl std::fmt::Display for HostPortError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            HostPortError::MissingBracket => "missing \"]\"",
            HostPortError::GarbageAfterBracket => "garbage after \"]\"",
        })
    }
}

impl std::error::Error for HostPortError {}

/// Splits a Postfix address (`inet:` already removed) into host and port
/// as host_port() does, the one grammar of both programs: `host:port` and
/// `::1:25` split at the last colon; `[host]:port`, `[host]` and
/// `[ipv6:addr]:port` (prefix in any case) drop the brackets; a bare word
/// is a host or a port as `bare` says. Either part may come back empty:
/// defaults and checks are the caller's.
///
/// # Errors
/// A bracket that is not closed, or not followed by `:port`.
pub fn host_port(addr: &str, bare: BareWord) -> Result<(&str, &str), HostPortError> {
    if let Some(rest) = addr.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or(HostPortError::MissingBracket)?;
        let port = match after {
            "" => "",
            _ => after
                .strip_prefix(':')
                .ok_or(HostPortError::GarbageAfterBracket)?,
        };
        let host = match host.get(..5) {
            Some(p) if p.eq_ignore_ascii_case("ipv6:") => &host[5..],
            _ => host,
        };
        return Ok((host, port));
    }
    Ok(match (addr.rsplit_once(':'), bare) {
        (Some((host, port)), _) => (host, port),
        (None, BareWord::Host) => (addr, ""),
        (None, BareWord::Port) => ("", addr),
    })
}

/// The port part of an address, checked the same way by both programs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service<'a> {
    /// All digits, 0 to 65535.
    Port(u16),
    /// A name for the caller to look up (`smtp`, from /etc/services).
    Name(&'a str),
}

/// Why the port part of an address is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceError {
    /// A digit first but not all digits (`25x`); Postfix's host_port()
    /// text.
    GarbageAfterNumber,
    /// All digits, but more than a port holds. Postfix's resolver wraps
    /// such a number (99999 becomes 34463) and connects or listens
    /// somewhere else than asked; both programs refuse it instead.
    OutOfRange,
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ServiceError::GarbageAfterNumber => "garbage after numerical service",
            ServiceError::OutOfRange => "port number out of range (0-65535)",
        })
    }
}

impl std::error::Error for ServiceError {}

/// Checks the port part that [`host_port`] split off (not empty): a
/// number must be all digits and fit in 16 bits; anything else is a
/// service name.
///
/// # Errors
/// A number followed by other characters, or one above 65535.
pub fn service(port: &str) -> Result<Service<'_>, ServiceError> {
    if !port.as_bytes().first().is_some_and(u8::is_ascii_digit) {
        return Ok(Service::Name(port));
    }
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ServiceError::GarbageAfterNumber);
    }
    // All digits: the only parse failure left is a value too large.
    port.parse::<u16>()
        .map(Service::Port)
        .map_err(|_| ServiceError::OutOfRange)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_port_grammar() {
        use BareWord::{Host, Port};
        for (addr, bare, want) in [
            ("host:25", Host, Ok(("host", "25"))),
            ("host", Host, Ok(("host", ""))),
            ("25", Port, Ok(("", "25"))),
            (":25", Port, Ok(("", "25"))),
            ("::1:2525", Host, Ok(("::1", "2525"))),
            ("[::1]:2525", Port, Ok(("::1", "2525"))),
            ("[IPv6:::1]:25", Host, Ok(("::1", "25"))),
            ("[ipv6:::1]", Host, Ok(("::1", ""))),
            ("[1.2.3.4]", Port, Ok(("1.2.3.4", ""))),
            ("[1.2.3.4", Host, Err(HostPortError::MissingBracket)),
            ("[1.2.3.4]x", Port, Err(HostPortError::GarbageAfterBracket)),
        ] {
            assert_eq!(host_port(addr, bare), want, "{addr}");
        }
        assert_eq!(HostPortError::MissingBracket.to_string(), "missing \"]\"");
    }

    #[test]
    fn service_numbers_and_names() {
        for (port, want) in [
            ("25", Ok(Service::Port(25))),
            ("0", Ok(Service::Port(0))),
            ("65535", Ok(Service::Port(65535))),
            ("0025", Ok(Service::Port(25))),
            ("smtp", Ok(Service::Name("smtp"))),
            ("x25", Ok(Service::Name("x25"))),
            ("25x", Err(ServiceError::GarbageAfterNumber)),
            ("2 5", Err(ServiceError::GarbageAfterNumber)),
            ("65536", Err(ServiceError::OutOfRange)),
            ("99999", Err(ServiceError::OutOfRange)),
            ("99999999999999999999999", Err(ServiceError::OutOfRange)),
        ] {
            assert_eq!(service(port), want, "{port}");
        }
        assert_eq!(
            ServiceError::OutOfRange.to_string(),
            "port number out of range (0-65535)"
        );
    }

    #[test]
    fn printable_replaces_what_is_not_printable_ascii() {
        assert!(matches!(
            printable(b"plain text~"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert_eq!(&printable(b"a\tb\x01\xffc")[..], b"a?b??c");
    }

    #[test]
    fn reads_like_c_atoi() {
        for (s, n) in [
            ("10", 10),
            ("  7x", 7),
            (" 12abc", 12),
            ("x", 0),
            ("abc", 0),
            ("-3", -3),
            ("+4", 4),
            ("", 0),
            ("-", 0),
            // Past int: strtol's long, truncated to 32 bits.
            ("2147483647", 2_147_483_647),
            ("2147483648", -2_147_483_648),
            ("4294967296", 0),
            ("4294967297", 1),
            ("99999999999", 1_215_752_191),
            ("-99999999999", -1_215_752_191),
            ("-2147483649", 2_147_483_647),
            // Past long: LONG_MAX (low 32 bits all ones) or LONG_MIN (zero).
            ("9223372036854775807", -1),
            ("9223372036854775808", -1),
            ("123456789012345678901234567890", -1),
            ("-9223372036854775808", 0),
            ("-123456789012345678901234567890", 0),
        ] {
            assert_eq!(atoi(s), n, "{s:?}");
        }
    }
}
