//! Which hosts receive mail for a domain: its MX records (RFC 5321 §5.1),
//! looked up with hickory-resolver, either through the system's resolver
//! configuration (/etc/resolv.conf) or through one given name server.
//!
//! What [`mail_hosts`] answers for a domain:
//! - MX records: their exchanges, lowest preference first, ties in the
//!   order the server gave them;
//! - no MX record (the name exists, NOERROR with no MX answer): the domain
//!   itself, with preference 0 — RFC 5321 §5.1's implicit MX, which the
//!   RFC gives "a preference of 0"; whether it has an address is for the
//!   connecting step to find;
//! - a null MX (an exchange of ".", RFC 7505), alone or among other MX
//!   records (which RFC 7505 §3 forbids beside it): [`MxError::NullMx`],
//!   the domain takes no mail;
//! - NXDOMAIN: [`MxError::NotFound`];
//! - anything else (time-out, SERVFAIL, REFUSED, an invalid name, no
//!   usable resolver configuration): [`MxError::Lookup`].

use std::{
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use hickory_resolver::{
    config::{ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts},
    net::{runtime::TokioRuntimeProvider, NetError},
    proto::rr::{Name, RData},
    TokioResolver,
};

/// How long one query to a given name server (`dns_server` of
/// [`mail_hosts`]) may take before it is retried or fails.
pub const SERVER_TIMEOUT: Duration = Duration::from_secs(1);

/// How many times a query to a given name server is sent again after a
/// time-out or an error: with [`SERVER_TIMEOUT`], a server that never
/// answers fails the lookup in about 2 s. (With the system configuration,
/// resolv.conf's `timeout` and `attempts` apply: 5 s and 2 by default.)
pub const SERVER_RETRIES: usize = 1;

/// One host that receives mail for a domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailHost {
    /// The host's name, without the trailing dot (ASCII: an international
    /// name is in its `xn--` form).
    pub name: String,
    /// The MX record's preference, lower is better; 0 for the implicit MX
    /// of a domain without MX records (RFC 5321 §5.1).
    pub preference: u16,
}

/// Why a domain's mail hosts are not known.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MxError {
    /// The domain does not exist (NXDOMAIN).
    #[error("domain {domain} not found (NXDOMAIN)")]
    NotFound {
        /// The domain asked about.
        domain: String,
    },
    /// The domain publishes a null MX: it accepts no mail (RFC 7505).
    #[error("domain {domain} accepts no mail (null MX, RFC 7505)")]
    NullMx {
        /// The domain asked about.
        domain: String,
    },
    /// The lookup failed: no answer in time, an error from the server, an
    /// invalid name, or no usable resolver configuration.
    #[error("MX lookup for {domain} failed: {message}")]
    Lookup {
        /// The domain asked about.
        domain: String,
        /// What went wrong, one line (and which server, when one was
        /// given).
        message: String,
    },
}

/// The hosts that receive mail for `domain`, best first: its MX records by
/// preference (ties in the order the server gave), each as a host name
/// without the trailing dot; with no MX record, the domain itself with
/// preference 0 (RFC 5321 §5.1 implicit MX); a null MX (".", RFC 7505) is
/// an error.
///
/// With `dns_server`, that one name server is asked, over UDP (and TCP
/// when an answer is truncated), with no search domains and no system
/// configuration, each query waiting [`SERVER_TIMEOUT`] and sent at most
/// `1 + `[`SERVER_RETRIES`] times. Without it, the system's configuration
/// (/etc/resolv.conf) is used.
///
/// `domain` may end with a dot; it is always taken as fully qualified
/// (never completed with a search domain).
///
/// # Errors
/// [`MxError::NotFound`] for NXDOMAIN, [`MxError::NullMx`] for a null MX,
/// [`MxError::Lookup`] for everything else that fails.
pub async fn mail_hosts(
    domain: &str,
    dns_server: Option<SocketAddr>,
) -> Result<Vec<MailHost>, MxError> {
    let shown = domain.strip_suffix('.').unwrap_or(domain);
    let lookup_error = |message: String| MxError::Lookup {
        domain: shown.to_owned(),
        message,
    };
    let mut name = match Name::from_utf8(shown) {
        Ok(name) if !shown.is_empty() => name,
        Ok(_) => return Err(lookup_error("empty domain name".to_owned())),
        Err(e) => return Err(lookup_error(format!("invalid domain name: {e}"))),
    };
    name.set_fqdn(true);

    let resolver = resolver(dns_server).map_err(|e| {
        lookup_error(format!(
            "cannot read the system's DNS configuration (/etc/resolv.conf): {e}"
        ))
    })?;
    let answers = match resolver.mx_lookup(name).await {
        Ok(lookup) => lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::MX(mx) => Some((mx.preference, mx.exchange.clone())),
                _ => None,
            })
            .collect::<Vec<_>>(),
        Err(e) if e.is_nx_domain() => {
            return Err(MxError::NotFound {
                domain: shown.to_owned(),
            })
        }
        // NOERROR without an MX answer: the name exists, without MX.
        Err(e) if e.is_no_records_found() => Vec::new(),
        Err(e) => return Err(lookup_error(describe(&e, dns_server))),
    };
    hosts_from_answers(shown, answers)
}

/// The addresses of `host`, asked of `dns_server` (so that with
/// `--dns-server` every name of a probe, not only the MX lookup, is
/// resolved there).
///
/// # Errors
/// [`MxError::NotFound`] for NXDOMAIN or no address, [`MxError::Lookup`]
/// for everything else that fails.
pub async fn host_addresses(host: &str, dns_server: SocketAddr) -> Result<Vec<IpAddr>, MxError> {
    let shown = host.strip_suffix('.').unwrap_or(host);
    let lookup_error = |message: String| MxError::Lookup {
        domain: shown.to_owned(),
        message,
    };
    let mut name =
        Name::from_utf8(shown).map_err(|e| lookup_error(format!("invalid host name: {e}")))?;
    name.set_fqdn(true);
    let resolver = resolver(Some(dns_server)).map_err(|e| lookup_error(e.to_string()))?;
    match resolver.lookup_ip(name).await {
        Ok(lookup) => {
            let addresses: Vec<IpAddr> = lookup.iter().collect();
            if addresses.is_empty() {
                return Err(MxError::NotFound {
                    domain: shown.to_owned(),
                });
            }
            Ok(addresses)
        }
        Err(e) if e.is_nx_domain() || e.is_no_records_found() => Err(MxError::NotFound {
            domain: shown.to_owned(),
        }),
        Err(e) => Err(lookup_error(describe(&e, Some(dns_server)))),
    }
}

/// Orders the MX answers (preference, exchange) for `domain`, or makes
/// its implicit MX; refuses a null MX.
fn hosts_from_answers(
    domain: &str,
    mut answers: Vec<(u16, Name)>,
) -> Result<Vec<MailHost>, MxError> {
    if answers.is_empty() {
        return Ok(vec![MailHost {
            name: domain.to_owned(),
            preference: 0,
        }]);
    }
    if answers.iter().any(|(_, exchange)| exchange.is_root()) {
        return Err(MxError::NullMx {
            domain: domain.to_owned(),
        });
    }
    // Stable: equal preferences keep the server's order.
    answers.sort_by_key(|(preference, _)| *preference);
    Ok(answers
        .into_iter()
        .map(|(preference, exchange)| {
            let ascii = exchange.to_ascii();
            MailHost {
                name: ascii.strip_suffix('.').unwrap_or(&ascii).to_owned(),
                preference,
            }
        })
        .collect())
}

/// A resolver for one lookup: the given server alone, or the system's.
fn resolver(dns_server: Option<SocketAddr>) -> Result<TokioResolver, NetError> {
    let Some(server) = dns_server else {
        return TokioResolver::builder_tokio()?.build();
    };
    let connections = [ConnectionConfig::udp(), ConnectionConfig::tcp()]
        .into_iter()
        .map(|mut connection| {
            connection.port = server.port();
            connection
        })
        .collect();
    let name_server = NameServerConfig::new(server.ip(), true, connections);
    let config = ResolverConfig::from_parts(None, Vec::new(), vec![name_server]);
    let mut options = ResolverOpts::default();
    options.timeout = SERVER_TIMEOUT;
    options.attempts = SERVER_RETRIES;
    options.use_hosts_file = ResolveHosts::Never;
    TokioResolver::builder_with_config(config, TokioRuntimeProvider::default())
        .with_options(options)
        .build()
}

/// One line for a failed lookup, naming the server when one was given.
fn describe(error: &NetError, dns_server: Option<SocketAddr>) -> String {
    match dns_server {
        Some(server) => format!("{error} (DNS server {server})"),
        None => error.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(s: &str) -> Name {
        Name::from_ascii(s).expect("valid name")
    }

    fn host(name: &str, preference: u16) -> MailHost {
        MailHost {
            name: name.to_owned(),
            preference,
        }
    }

    #[test]
    fn orders_by_preference_keeping_ties_in_server_order() {
        let answers = vec![
            (20, name("c.example.")),
            (10, name("b.example.")),
            (20, name("a.example.")),
            (5, name("d.example.")),
        ];
        assert_eq!(
            hosts_from_answers("example", answers).expect("hosts"),
            [
                host("d.example", 5),
                host("b.example", 10),
                host("c.example", 20),
                host("a.example", 20),
            ]
        );
    }

    #[test]
    fn no_mx_is_the_domain_itself_at_preference_0() {
        assert_eq!(
            hosts_from_answers("example.org", Vec::new()).expect("hosts"),
            [host("example.org", 0)]
        );
    }

    #[test]
    fn a_null_mx_even_among_others_is_refused() {
        for answers in [
            vec![(0, Name::root())],
            vec![(10, name("mx.example.")), (0, Name::root())],
        ] {
            assert_eq!(
                hosts_from_answers("example", answers),
                Err(MxError::NullMx {
                    domain: "example".to_owned()
                })
            );
        }
    }

    #[test]
    fn errors_are_one_line() {
        let errors = [
            MxError::NotFound {
                domain: "a.test".to_owned(),
            },
            MxError::NullMx {
                domain: "a.test".to_owned(),
            },
            MxError::Lookup {
                domain: "a.test".to_owned(),
                message: "request timed out".to_owned(),
            },
        ];
        let texts: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(
            texts,
            [
                "domain a.test not found (NXDOMAIN)",
                "domain a.test accepts no mail (null MX, RFC 7505)",
                "MX lookup for a.test failed: request timed out",
            ]
        );
    }

    #[tokio::test]
    async fn an_invalid_or_empty_name_fails_without_asking() {
        // A server address nobody answers on: the names must fail first.
        let nowhere = Some(SocketAddr::from(([127, 0, 0, 1], 9)));
        for domain in ["", ".", "a..b"] {
            let err = mail_hosts(domain, nowhere).await.expect_err(domain);
            assert!(matches!(err, MxError::Lookup { .. }), "{domain}: {err}");
        }
    }
}
