//! The server address: Postfix's `[inet:]host[:port]` and `unix:/path`
//! forms (docs/smtp-source.md "Addresses"), parsed and resolved the
//! way host_port() and getaddrinfo() do it there.

use std::{
    ffi::{CStr, CString},
    net::SocketAddr,
    path::PathBuf,
};

pub use smtp_proto::postfix::Family;
use smtp_proto::postfix::{self, BareWord, HostPortError, ServiceError};

/// A resolved place to connect to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// A TCP address: the first one getaddrinfo returned.
    Tcp(SocketAddr),
    /// An AF_UNIX stream socket.
    Unix(PathBuf),
}

/// How messages name the address: `127.0.0.1:25`, `[::1]:25`,
/// `unix:/path`.
impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Tcp(a) => write!(f, "{a}"),
            Target::Unix(p) => write!(f, "unix:{}", p.display()),
        }
    }
}

/// Why an address is unusable; the texts are Postfix's, after `ADDR: `.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// A bracket not closed, or not followed by `:port`.
    #[error("{0}")]
    Syntax(#[from] HostPortError),
    /// A port that is not all digits after its first, or above 65535.
    #[error("{0}")]
    Service(#[from] ServiceError),
    /// An empty host, as in `:25`.
    #[error("missing host information")]
    MissingHost,
    /// Neither a host name nor an address.
    #[error("valid hostname or network address required")]
    BadHost,
    /// `unix:` with a path that does not fit in sun_path.
    #[error("unix-domain name too long")]
    UnixPathTooLong,
    /// getaddrinfo's own message (gai_strerror).
    #[error("{0}")]
    Lookup(String),
}

/// Host and service as written, before resolution.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HostPort {
    pub(crate) host: String,
    pub(crate) port: String,
}

impl Target {
    /// Parses and resolves `addr` (the program's last argument).
    ///
    /// # Errors
    /// The Postfix text of what is wrong with it.
    pub fn resolve(addr: &str, family: Family) -> Result<Target, TargetError> {
        if let Some(path) = addr.strip_prefix("unix:") {
            // sun_path holds 108 bytes including the terminating NUL.
            if path.len() >= 108 {
                return Err(TargetError::UnixPathTooLong);
            }
            return Ok(Target::Unix(PathBuf::from(path)));
        }
        let addr = addr.strip_prefix("inet:").unwrap_or(addr);
        let hp = host_port(addr)?;
        lookup(&hp.host, &hp.port, family).map(Target::Tcp)
    }
}

/// Splits `host`, `host:port`, `[host]:port`, `[ipv6:addr]:port` and
/// `::1:2525` (split at the last colon); the default service is `smtp`.
pub(crate) fn host_port(addr: &str) -> Result<HostPort, TargetError> {
    let (host, port) = postfix::host_port(addr, BareWord::Host)?;
    if host.is_empty() {
        return Err(TargetError::MissingHost);
    }
    if !valid_hostname(host) && host.parse::<std::net::IpAddr>().is_err() {
        return Err(TargetError::BadHost);
    }
    let port = if port.is_empty() { "smtp" } else { port };
    // The sink's grammar too: a number that getaddrinfo would wrap (99999
    // is 34463 to it) is refused, not connected to.
    postfix::service(port)?;
    Ok(HostPort {
        host: host.to_owned(),
        port: port.to_owned(),
    })
}

/// Why a name fails Postfix's valid_hostname(), worded as its warning
/// (after `valid_hostname: `); `None` means valid.
pub(crate) fn hostname_problem(name: &str) -> Option<String> {
    if name.is_empty() {
        return Some("empty hostname".to_owned());
    }
    if name.len() > 255 {
        return Some(format!("bad length {} for {name}", name.len()));
    }
    let bytes = name.as_bytes();
    let mut label_len = 0usize;
    let mut non_numeric = false;
    for (i, &ch) in bytes.iter().enumerate() {
        let next = bytes.get(i + 1).copied();
        if ch.is_ascii_alphanumeric() || ch == b'_' {
            label_len += 1;
            if label_len > 63 {
                return Some(format!("hostname label too long: {name}"));
            }
            if !ch.is_ascii_digit() {
                non_numeric = true;
            }
        } else if ch == b'.' {
            if label_len == 0 || next.is_none() {
                return Some(format!("misplaced delimiter: {name}"));
            }
            label_len = 0;
        } else if ch == b'-' {
            non_numeric = true;
            label_len += 1;
            if label_len == 1 || next.is_none() || next == Some(b'.') {
                return Some(format!("misplaced hyphen: {name}"));
            }
        } else {
            return Some(format!("invalid character {ch}(decimal): {name}"));
        }
    }
    if !non_numeric {
        return Some(format!("numeric hostname: {name}"));
    }
    None
}

/// Postfix's valid_hostname() without its warnings.
pub(crate) fn valid_hostname(name: &str) -> bool {
    hostname_problem(name).is_none()
}

/// Postfix's valid_mailhost_literal(): `[ipv4]` or `[IPv6:addr]`.
pub(crate) fn valid_address_literal(lit: &str) -> bool {
    let Some(inner) = lit.strip_prefix('[').and_then(|l| l.strip_suffix(']')) else {
        return false;
    };
    match inner.get(..5) {
        Some(p) if p.eq_ignore_ascii_case("ipv6:") => {
            inner[5..].parse::<std::net::Ipv6Addr>().is_ok()
        }
        _ => inner.parse::<std::net::Ipv4Addr>().is_ok(),
    }
}

/// getaddrinfo(host, service) for a stream socket; the first result.
#[allow(unsafe_code)]
fn lookup(host: &str, service: &str, family: Family) -> Result<SocketAddr, TargetError> {
    let bad = || TargetError::Lookup("Name or service not known".to_owned());
    let c_host = CString::new(host).map_err(|_| bad())?;
    let c_service = CString::new(service).map_err(|_| bad())?;
    // SAFETY: an all-zero addrinfo is the documented way to start hints.
    let mut hints: libc::addrinfo = unsafe { std::mem::zeroed() };
    hints.ai_family = match family {
        Family::Any => libc::AF_UNSPEC,
        Family::V4 => libc::AF_INET,
        Family::V6 => libc::AF_INET6,
    };
    hints.ai_socktype = libc::SOCK_STREAM;
    let mut res: *mut libc::addrinfo = std::ptr::null_mut();
    // SAFETY: the strings are NUL-terminated, hints is initialised and res
    // is a valid out-pointer; on success res is freed below.
    let rc = unsafe { libc::getaddrinfo(c_host.as_ptr(), c_service.as_ptr(), &hints, &mut res) };
    if rc != 0 {
        // SAFETY: gai_strerror returns a static NUL-terminated string.
        let text = unsafe { CStr::from_ptr(libc::gai_strerror(rc)) };
        return Err(TargetError::Lookup(text.to_string_lossy().into_owned()));
    }
    let mut found = None;
    let mut cur = res;
    while !cur.is_null() && found.is_none() {
        // SAFETY: cur is a node of the list getaddrinfo returned.
        let ai = unsafe { &*cur };
        found = sockaddr_of(ai);
        cur = ai.ai_next;
    }
    // SAFETY: res came from a successful getaddrinfo and is freed once.
    unsafe { libc::freeaddrinfo(res) };
    found.ok_or_else(bad)
}

#[allow(unsafe_code)]
fn sockaddr_of(ai: &libc::addrinfo) -> Option<SocketAddr> {
    if ai.ai_addr.is_null() {
        return None;
    }
    match ai.ai_family {
        libc::AF_INET => {
            // SAFETY: for AF_INET, ai_addr points at a sockaddr_in.
            let sin = unsafe { &*(ai.ai_addr as *const libc::sockaddr_in) };
            let ip = std::net::Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr));
            Some(SocketAddr::new(ip.into(), u16::from_be(sin.sin_port)))
        }
        libc::AF_INET6 => {
            // SAFETY: for AF_INET6, ai_addr points at a sockaddr_in6.
            let sin6 = unsafe { &*(ai.ai_addr as *const libc::sockaddr_in6) };
            let ip = std::net::Ipv6Addr::from(sin6.sin6_addr.s6_addr);
            Some(SocketAddr::V6(std::net::SocketAddrV6::new(
                ip,
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(a: &str) -> Result<(String, String), TargetError> {
        host_port(a).map(|h| (h.host, h.port))
    }

    #[test]
    fn address_forms() {
        let ok = |h: &str, p: &str| Ok((h.to_owned(), p.to_owned()));
        assert_eq!(hp("example.org"), ok("example.org", "smtp"));
        assert_eq!(hp("example.org:2525"), ok("example.org", "2525"));
        assert_eq!(hp("[127.0.0.1]:25"), ok("127.0.0.1", "25"));
        assert_eq!(hp("[ipv6:::1]:2525"), ok("::1", "2525"));
        assert_eq!(hp("[IPv6:::1]"), ok("::1", "smtp"));
        assert_eq!(hp("::1:2525"), ok("::1", "2525"));
        assert_eq!(hp("host:smtp"), ok("host", "smtp"));
        assert_eq!(hp("host:"), ok("host", "smtp"));
        assert_eq!(
            hp("[a"),
            Err(TargetError::Syntax(HostPortError::MissingBracket))
        );
        assert_eq!(
            hp("[::1]x"),
            Err(TargetError::Syntax(HostPortError::GarbageAfterBracket))
        );
        assert_eq!(hp(":25"), Err(TargetError::MissingHost));
        assert_eq!(hp("a..b"), Err(TargetError::BadHost));
        assert_eq!(hp("a]b:25"), Err(TargetError::BadHost));
    }

    #[test]
    fn resolution() {
        assert_eq!(
            Target::resolve("127.0.0.1:2525", Family::Any),
            Ok(Target::Tcp("127.0.0.1:2525".parse().unwrap()))
        );
        assert_eq!(
            Target::resolve("inet:[::1]:25", Family::Any),
            Ok(Target::Tcp("[::1]:25".parse().unwrap()))
        );
        // glibc wraps ports above 65535 (Postfix would connect to 34463):
        // refused, as smtp-sink refuses to listen there.
        assert_eq!(
            Target::resolve("127.0.0.1:99999", Family::Any),
            Err(TargetError::Service(ServiceError::OutOfRange))
        );
        assert_eq!(
            Target::resolve("127.0.0.1:25x", Family::Any),
            Err(TargetError::Service(ServiceError::GarbageAfterNumber))
        );
        assert_eq!(
            Target::resolve("unix:/tmp/s", Family::Any),
            Ok(Target::Unix("/tmp/s".into()))
        );
        let long = format!("unix:/{}", "x".repeat(120));
        assert_eq!(
            Target::resolve(&long, Family::Any),
            Err(TargetError::UnixPathTooLong)
        );
        assert!(matches!(
            Target::resolve("127.0.0.1:nosuchsvc", Family::Any),
            Err(TargetError::Lookup(_))
        ));
        assert!(matches!(
            Target::resolve("127.0.0.1", Family::V6),
            Err(TargetError::Lookup(_))
        ));
    }

    #[test]
    fn hostnames_and_literals() {
        assert!(valid_hostname("vm"));
        assert!(valid_hostname("a-b.example_1.org"));
        assert!(!valid_hostname("a!b"));
        assert!(!valid_hostname("-a"));
        assert!(!valid_hostname("a-"));
        assert!(!valid_hostname("1.2.3.4"));
        assert!(!valid_hostname("a."));
        assert!(valid_address_literal("[127.0.0.1]"));
        assert!(valid_address_literal("[IPv6:::1]"));
        assert!(!valid_address_literal("[1.2.3]"));
        assert!(!valid_address_literal("[::1]"));
    }
}
