//! smtp-probe's MX lookup (`probe::mx::mail_hosts`) against the fake DNS
//! server of the workspace's tests (tests/support/dns.rs), and against a
//! server that never answers.

#[path = "../../../tests/support/dns.rs"]
mod dns;

use std::{
    net::{Ipv4Addr, UdpSocket},
    time::{Duration, Instant},
};

use dns::{DnsServer, Record};
use smtp_source::probe::mx::{self, mail_hosts, MailHost, MxError};

fn zone() -> DnsServer {
    DnsServer::start(&[
        // Out of order, with a tie (mx2 before mx3 as served).
        ("example.test", Record::Mx(20, "mx2.example.test")),
        ("example.test", Record::Mx(10, "mx1.example.test")),
        ("example.test", Record::Mx(20, "mx3.example.test.")),
        ("example.test", Record::A(Ipv4Addr::new(127, 0, 0, 9))),
        ("mx1.example.test", Record::A(Ipv4Addr::LOCALHOST)),
        ("nomx.test", Record::A(Ipv4Addr::LOCALHOST)),
        ("nullmx.test", Record::Mx(0, ".")),
    ])
}

fn host(name: &str, preference: u16) -> MailHost {
    MailHost {
        name: name.to_owned(),
        preference,
    }
}

#[tokio::test]
async fn mx_hosts_come_best_first_ties_in_server_order() {
    let server = zone();
    let hosts = mail_hosts("example.test", Some(server.addr))
        .await
        .expect("MX hosts");
    assert_eq!(
        hosts,
        [
            host("mx1.example.test", 10),
            host("mx2.example.test", 20),
            host("mx3.example.test", 20),
        ]
    );
    assert_eq!(server.queries(), 1, "one MX query, to the given server");
    // A trailing dot and another case name the same domain.
    let again = mail_hosts("Example.TEST.", Some(server.addr))
        .await
        .expect("MX hosts");
    assert_eq!(again, hosts);
}

#[tokio::test]
async fn a_domain_without_mx_is_its_own_mail_host() {
    let server = zone();
    for domain in ["nomx.test", "mx1.example.test"] {
        let hosts = mail_hosts(domain, Some(server.addr))
            .await
            .expect("implicit MX");
        assert_eq!(hosts, [host(domain, 0)], "{domain}");
    }
}

#[tokio::test]
async fn nxdomain_is_not_found() {
    let server = zone();
    let err = mail_hosts("missing.test", Some(server.addr))
        .await
        .expect_err("NXDOMAIN");
    assert_eq!(
        err,
        MxError::NotFound {
            domain: "missing.test".to_owned()
        }
    );
    assert_eq!(err.to_string(), "domain missing.test not found (NXDOMAIN)");
}

#[tokio::test]
async fn a_null_mx_is_refused() {
    let server = zone();
    let err = mail_hosts("nullmx.test", Some(server.addr))
        .await
        .expect_err("null MX");
    assert_eq!(
        err,
        MxError::NullMx {
            domain: "nullmx.test".to_owned()
        }
    );
    assert_eq!(
        err.to_string(),
        "domain nullmx.test accepts no mail (null MX, RFC 7505)"
    );
}

#[tokio::test]
async fn a_server_that_never_answers_fails_the_lookup_in_bounded_time() {
    // Bound, so the queries land in its buffer, and never read.
    let silent = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let addr = silent.local_addr().expect("address");
    let started = Instant::now();
    let err = mail_hosts("example.test", Some(addr))
        .await
        .expect_err("no answer");
    let took = started.elapsed();
    let MxError::Lookup { domain, message } = &err else {
        panic!("expected a lookup error, got {err:?}");
    };
    assert_eq!(domain, "example.test");
    assert!(message.contains(&addr.to_string()), "{message}");
    assert!(!err.to_string().contains('\n'), "one line: {err}");
    // 1 + SERVER_RETRIES tries of SERVER_TIMEOUT each, with some slack.
    let tries = u32::try_from(mx::SERVER_RETRIES + 1).expect("small");
    let bound = mx::SERVER_TIMEOUT * tries + Duration::from_secs(2);
    assert!(took < bound, "took {took:?}, bound {bound:?}: {err}");
    assert!(took >= mx::SERVER_TIMEOUT, "took {took:?}: {err}");
}

/// With `--dns-server`, host names are resolved there too.
#[tokio::test]
async fn host_addresses_come_from_the_given_server() {
    let server = zone();
    let addrs = mx::host_addresses("mx1.example.test", server.addr)
        .await
        .expect("addresses");
    assert_eq!(addrs, [std::net::IpAddr::V4(Ipv4Addr::LOCALHOST)]);
    assert!(matches!(
        mx::host_addresses("nowhere.test", server.addr).await,
        Err(MxError::NotFound { .. })
    ));
    // A name without an address record.
    assert!(matches!(
        mx::host_addresses("nullmx.test", server.addr).await,
        Err(MxError::NotFound { .. })
    ));
}
