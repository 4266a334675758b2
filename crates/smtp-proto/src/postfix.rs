//! Conventions of Postfix's command lines that both programs follow so
//! that existing scripts behave the same.

/// Reads a number the way C's `atoi` does, as Postfix reads option values:
/// leading blanks, an optional sign, then digits up to the first other
/// character; no digits give 0 (so `-s 10x` is 10 and `-s abc` is 0).
/// Values outside C's `int` are clamped to it.
pub fn atoi(s: &str) -> i64 {
    let s = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut n: i64 = 0;
    for b in digits.bytes().take_while(u8::is_ascii_digit) {
        n = n.saturating_mul(10).saturating_add(i64::from(b - b'0'));
    }
    let n = if negative { -n } else { n };
    n.clamp(i64::from(i32::MIN), i64::from(i32::MAX))
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
            ("99999999999", i64::from(i32::MAX)),
            ("-99999999999", i64::from(i32::MIN)),
        ] {
            assert_eq!(atoi(s), n, "{s:?}");
        }
    }
}
