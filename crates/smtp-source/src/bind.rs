//! `--bind ADDR[,ADDR…]`: the local source addresses that smtp-source
//! spreads its TCP connections over, round robin.
//!
//! A connection is identified by (source address, source port, target
//! address, target port), so one source address can have only as many
//! connections to one target as there are ephemeral ports; more source
//! addresses multiply that. Parsing and the family checks are pure; the
//! worker takes an address per connection from [`RoundRobin`].

use std::{
    collections::HashSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    sync::atomic::{AtomicUsize, Ordering},
};

use smtp_proto::postfix::Family;

use crate::target::Target;

/// The most addresses a `--bind` list may expand to: far more than any
/// test needs, and it keeps a typo like `10.0.0.1-10.255.0.1` from
/// allocating millions of entries.
pub const MAX_ADDRESSES: usize = 65_536;

/// Why a `--bind` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad --bind: {text} ({problem})")]
pub struct BindError {
    /// The part of the value at fault (an item, or the whole list).
    pub text: String,
    /// What is wrong with it.
    pub problem: Problem,
}

/// What is wrong with a `--bind` value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Problem {
    /// Nothing between two commas, or at either end.
    #[error("an empty item: write ADDR[,ADDR…] or FIRST-LAST")]
    Empty,
    /// Not an IPv4 or IPv6 address.
    #[error("not an IP address")]
    NotAnAddress,
    /// One end of a range is not an IP address.
    #[error("{0:?} is not an IP address")]
    BadRangeEnd(String),
    /// `127.0.0.1-::1`.
    #[error("a range's two ends must both be IPv4 or both IPv6")]
    MixedRange,
    /// `127.0.0.9-127.0.0.2`.
    #[error("a range's first address must not come after its last")]
    Backwards,
    /// More than [`MAX_ADDRESSES`] in all.
    #[error("{0} addresses; at most {MAX_ADDRESSES}")]
    TooMany(u128),
    /// The same address twice (each address is one key of the report's
    /// `connections_by_source`).
    #[error("given more than once")]
    Duplicate,
    /// An address of the other family than the target's: the kernel
    /// cannot connect an IPv4 socket to an IPv6 address or the reverse.
    #[error("an {ours} source address cannot reach the {theirs} target {shown}")]
    FamilyMismatch {
        /// The source address's family: `IPv4` or `IPv6`.
        ours: &'static str,
        /// The target's family.
        theirs: &'static str,
        /// The target's address.
        shown: String,
    },
    /// A unix-domain socket has no IP source address.
    #[error("a unix: target has no source address; --bind is for TCP targets")]
    UnixTarget,
}

/// Parses `text`: comma-separated items, each an address or an inclusive
/// range `FIRST-LAST` of one family (`127.0.0.2-127.0.0.20`,
/// `fd00::1-fd00::8`), expanded in order.
///
/// # Errors
/// The first item at fault, or the whole list when it is too long.
pub fn parse(text: &str) -> Result<Vec<IpAddr>, BindError> {
    let bad = |text: &str, problem| BindError {
        // An empty value would leave nothing to see after the colon.
        text: if text.is_empty() {
            "\"\"".to_owned()
        } else {
            text.to_owned()
        },
        problem,
    };
    // The ranges first, to count before expanding anything.
    let mut ranges = Vec::new();
    let mut total: u128 = 0;
    for item in text.split(',') {
        let item = item.trim();
        if item.is_empty() {
            return Err(bad(text, Problem::Empty));
        }
        let (first, last) = match item.split_once('-') {
            Some((a, b)) => (range_end(item, a)?, range_end(item, b)?),
            None => {
                let a = item.parse().map_err(|_| bad(item, Problem::NotAnAddress))?;
                (a, a)
            }
        };
        let (lo, hi) = match (first, last) {
            (IpAddr::V4(a), IpAddr::V4(b)) => (u128::from(u32::from(a)), u128::from(u32::from(b))),
            (IpAddr::V6(a), IpAddr::V6(b)) => (u128::from(a), u128::from(b)),
            _ => return Err(bad(item, Problem::MixedRange)),
        };
        if lo > hi {
            return Err(bad(item, Problem::Backwards));
        }
        // hi - lo + 1 overflows only for the whole IPv6 space.
        total = total.saturating_add((hi - lo).saturating_add(1));
        ranges.push((item, first.is_ipv4(), lo, hi));
    }
    if total > MAX_ADDRESSES as u128 {
        return Err(bad(text, Problem::TooMany(total)));
    }
    let mut seen = HashSet::new();
    let mut addrs = Vec::with_capacity(total as usize);
    for (item, v4, lo, hi) in ranges {
        for n in lo..=hi {
            let ip = if v4 {
                // In range: both ends came from a u32.
                IpAddr::V4(Ipv4Addr::from(
                    u32::try_from(n).expect("an IPv4 range stays in u32"),
                ))
            } else {
                IpAddr::V6(Ipv6Addr::from(n))
            };
            if !seen.insert(ip) {
                let shown = if lo == hi {
                    item.to_owned()
                } else {
                    format!("{ip} in {item}")
                };
                return Err(bad(&shown, Problem::Duplicate));
            }
            addrs.push(ip);
        }
    }
    Ok(addrs)
}

/// One end of the range `item`.
fn range_end(item: &str, end: &str) -> Result<IpAddr, BindError> {
    let end = end.trim();
    end.parse().map_err(|_| BindError {
        text: item.to_owned(),
        problem: Problem::BadRangeEnd(end.to_owned()),
    })
}

/// The family to resolve the target in when `-4`/`-6` are not given: the
/// list's, so that a host name with both kinds of address resolves to one
/// the sources can reach; [`Family::Any`] for no list or a mixed one.
pub fn family(addrs: &[IpAddr]) -> Family {
    if addrs.is_empty() {
        Family::Any
    } else if addrs.iter().all(IpAddr::is_ipv4) {
        Family::V4
    } else if addrs.iter().all(IpAddr::is_ipv6) {
        Family::V6
    } else {
        Family::Any
    }
}

/// Checks that every address in `addrs` can connect to `target`.
///
/// # Errors
/// The first address of the wrong family, or any list with a unix
/// target.
pub fn check_target(addrs: &[IpAddr], target: &Target) -> Result<(), BindError> {
    let Some(first) = addrs.first() else {
        return Ok(());
    };
    let name = |v4: bool| if v4 { "IPv4" } else { "IPv6" };
    match target {
        Target::Unix(_) => Err(BindError {
            text: first.to_string(),
            problem: Problem::UnixTarget,
        }),
        Target::Tcp(to) => match addrs.iter().find(|a| a.is_ipv4() != to.is_ipv4()) {
            None => Ok(()),
            Some(a) => Err(BindError {
                text: a.to_string(),
                problem: Problem::FamilyMismatch {
                    ours: name(a.is_ipv4()),
                    theirs: name(to.is_ipv4()),
                    shown: to.to_string(),
                },
            }),
        },
    }
}

/// Hands out the source addresses in turn, one per connection, to all
/// sessions: a shared counter rather than a per-session one, so that even
/// `-s 1` without `-d` cycles through every address.
#[derive(Debug)]
pub struct RoundRobin {
    addrs: Vec<IpAddr>,
    turns: AtomicUsize,
}

impl RoundRobin {
    /// Over `addrs` (empty: no `--bind`).
    pub fn new(addrs: Vec<IpAddr>) -> Self {
        Self {
            addrs,
            turns: AtomicUsize::new(0),
        }
    }

    /// The next connection's source address and its index in the list;
    /// None without `--bind`.
    pub fn next(&self) -> Option<(usize, IpAddr)> {
        if self.addrs.is_empty() {
            return None;
        }
        let i = self.turns.fetch_add(1, Ordering::Relaxed) % self.addrs.len();
        Some((i, self.addrs[i]))
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use super::*;

    fn ips(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    fn err(text: &str) -> String {
        parse(text).unwrap_err().to_string()
    }

    #[test]
    fn addresses_and_ranges() {
        assert_eq!(parse("127.0.0.2").unwrap(), ips(&["127.0.0.2"]));
        assert_eq!(
            parse("127.0.0.2-127.0.0.4, 10.0.0.1").unwrap(),
            ips(&["127.0.0.2", "127.0.0.3", "127.0.0.4", "10.0.0.1"])
        );
        // Ranges run over the address as a number, across octets.
        assert_eq!(
            parse("10.0.0.255-10.0.1.1").unwrap(),
            ips(&["10.0.0.255", "10.0.1.0", "10.0.1.1"])
        );
        assert_eq!(parse("::1-::1").unwrap(), ips(&["::1"]));
        assert_eq!(
            parse("fd00::1-fd00::3,::1").unwrap(),
            ips(&["fd00::1", "fd00::2", "fd00::3", "::1"])
        );
        assert_eq!(parse("127.0.0.1-127.0.0.1").unwrap().len(), 1);
        // The cap is inclusive.
        assert_eq!(parse("10.0.0.0-10.0.255.255").unwrap().len(), MAX_ADDRESSES);
    }

    #[test]
    fn bad_values_are_named() {
        assert_eq!(
            err("127.0.0.300"),
            "bad --bind: 127.0.0.300 (not an IP address)"
        );
        assert_eq!(
            err("localhost"),
            "bad --bind: localhost (not an IP address)"
        );
        assert_eq!(
            err("127.0.0.2-x"),
            "bad --bind: 127.0.0.2-x (\"x\" is not an IP address)"
        );
        assert_eq!(
            err("127.0.0.2-"),
            "bad --bind: 127.0.0.2- (\"\" is not an IP address)"
        );
        assert_eq!(
            err(""),
            "bad --bind: \"\" (an empty item: write ADDR[,ADDR…] or FIRST-LAST)"
        );
        assert_eq!(
            err("127.0.0.2,,127.0.0.3"),
            "bad --bind: 127.0.0.2,,127.0.0.3 (an empty item: write ADDR[,ADDR…] or FIRST-LAST)"
        );
        assert!(matches!(
            parse("127.0.0.2,").unwrap_err().problem,
            Problem::Empty
        ));
        assert_eq!(
            err("127.0.0.1-::1"),
            "bad --bind: 127.0.0.1-::1 (a range's two ends must both be IPv4 or both IPv6)"
        );
        assert_eq!(
            err("127.0.0.9-127.0.0.2"),
            "bad --bind: 127.0.0.9-127.0.0.2 (a range's first address must not come after its last)"
        );
        assert_eq!(
            err("10.0.0.0-10.1.0.0"),
            "bad --bind: 10.0.0.0-10.1.0.0 (65537 addresses; at most 65536)"
        );
        // Counted before anything is expanded: the whole IPv6 space is
        // refused at once.
        assert_eq!(
            parse("::-ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
                .unwrap_err()
                .problem,
            Problem::TooMany(u128::MAX)
        );
        assert_eq!(
            err("10.0.0.0-10.0.255.255,127.0.0.2"),
            "bad --bind: 10.0.0.0-10.0.255.255,127.0.0.2 (65537 addresses; at most 65536)"
        );
        assert_eq!(
            err("127.0.0.2,127.0.0.2"),
            "bad --bind: 127.0.0.2 (given more than once)"
        );
        assert_eq!(
            err("127.0.0.3,127.0.0.2-127.0.0.5"),
            "bad --bind: 127.0.0.3 in 127.0.0.2-127.0.0.5 (given more than once)"
        );
        assert_eq!(
            err("fe80::1%lo"),
            "bad --bind: fe80::1%lo (not an IP address)"
        );
    }

    #[test]
    fn family_for_resolution() {
        assert_eq!(family(&[]), Family::Any);
        assert_eq!(family(&ips(&["127.0.0.2", "127.0.0.3"])), Family::V4);
        assert_eq!(family(&ips(&["::1"])), Family::V6);
        assert_eq!(family(&ips(&["127.0.0.2", "::1"])), Family::Any);
    }

    #[test]
    fn target_checks() {
        let v4 = Target::Tcp(SocketAddr::from(([127, 0, 0, 1], 25)));
        let v6: Target = Target::Tcp("[::1]:25".parse().unwrap());
        assert_eq!(check_target(&[], &v6), Ok(()));
        assert_eq!(check_target(&ips(&["127.0.0.2"]), &v4), Ok(()));
        assert_eq!(check_target(&ips(&["::1"]), &v6), Ok(()));
        assert_eq!(
            check_target(&ips(&["127.0.0.2"]), &v6)
                .unwrap_err()
                .to_string(),
            "bad --bind: 127.0.0.2 (an IPv4 source address cannot reach the IPv6 target [::1]:25)"
        );
        assert_eq!(
            check_target(&ips(&["127.0.0.2", "::1"]), &v4)
                .unwrap_err()
                .to_string(),
            "bad --bind: ::1 (an IPv6 source address cannot reach the IPv4 target 127.0.0.1:25)"
        );
        assert_eq!(
            check_target(&ips(&["127.0.0.2"]), &Target::Unix("/tmp/s".into()))
                .unwrap_err()
                .to_string(),
            "bad --bind: 127.0.0.2 (a unix: target has no source address; --bind is for TCP targets)"
        );
        assert_eq!(check_target(&[], &Target::Unix("/tmp/s".into())), Ok(()));
    }

    #[test]
    fn round_robin_is_per_connection_and_shared() {
        let rr = RoundRobin::new(ips(&["127.0.0.2", "127.0.0.3", "127.0.0.4"]));
        let taken: Vec<usize> = (0..7).map(|_| rr.next().unwrap().0).collect();
        assert_eq!(taken, [0, 1, 2, 0, 1, 2, 0]);
        assert_eq!(rr.next(), Some((1, "127.0.0.3".parse().unwrap())));
        assert_eq!(RoundRobin::new(Vec::new()).next(), None);
    }
}
