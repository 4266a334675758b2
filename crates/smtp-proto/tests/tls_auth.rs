//! STARTTLS and AUTH in the client session: scripted servers, exact bytes.

use bytes::BytesMut;
use smtp_proto::client::{
    Auth, ClientConfig, ClientSession, CloseReason, Event, Mechanism, Phase, Piece, Protocol,
    Transmit,
};

/// Feeds one reply and returns the next write as text (secret pieces in
/// brackets), or "" when there is nothing to write.
fn step(c: &mut ClientSession, reply: &str) -> String {
    c.handle_input(&mut BytesMut::from(reply.as_bytes()))
        .expect("valid reply");
    next(c)
}

fn next(c: &mut ClientSession) -> String {
    let mut tx = Transmit::default();
    if !c.poll_transmit(&mut tx) {
        return String::new();
    }
    tx.pieces
        .iter()
        .map(|p| match p {
            Piece::Commands(r) => String::from_utf8_lossy(&tx.commands[r.clone()]).into_owned(),
            Piece::Secret(r) => format!(
                "[{}]",
                String::from_utf8_lossy(&tx.commands[r.clone()]).trim_end()
            ),
            other => format!("{other:?}"),
        })
        .collect()
}

fn events(c: &mut ClientSession) -> Vec<Event> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

fn config(tolerate: bool) -> ClientConfig {
    let mut cfg = ClientConfig::new(Protocol::Smtp, Some(b"me"), tolerate);
    cfg.esmtp.ehlo = true;
    cfg
}

fn auth(mechanism: Option<Mechanism>) -> Option<Auth> {
    Some(Auth {
        mechanism,
        user: b"user".to_vec(),
        password: b"pass".to_vec(),
    })
}

#[test]
fn starttls_then_ehlo_again() {
    let mut cfg = config(false);
    cfg.starttls = true;
    let mut c = ClientSession::new(cfg);
    assert_eq!(step(&mut c, "220 x\r\n"), "EHLO me\r\n");
    assert_eq!(
        step(&mut c, "250-x\r\n250-PIPELINING\r\n250 STARTTLS\r\n"),
        "STARTTLS\r\n"
    );
    assert_eq!(step(&mut c, "220 2.0.0 go ahead\r\n"), "");
    assert_eq!(events(&mut c), [Event::StartTls]);
    assert_eq!(c.phase(), Phase::Starttls);
    c.tls_started();
    assert_eq!(next(&mut c), "EHLO me\r\n");
    step(&mut c, "250-x\r\n250 PIPELINING\r\n");
    assert!(
        matches!(&events(&mut c)[..], [Event::Ready(caps)] if !caps.has(smtp_proto::Extensions::STARTTLS))
    );
    assert!(c.is_idle());
}

#[test]
fn starttls_not_offered_or_refused() {
    let mut cfg = config(false);
    cfg.starttls = true;
    let mut c = ClientSession::new(cfg.clone());
    step(&mut c, "220 x\r\n");
    step(&mut c, "250-x\r\n250 PIPELINING\r\n");
    assert_eq!(
        events(&mut c),
        [Event::Closed(CloseReason::NotOffered(Phase::Starttls))]
    );

    let mut c = ClientSession::new(cfg);
    step(&mut c, "220 x\r\n");
    step(&mut c, "250-x\r\n250 STARTTLS\r\n");
    step(&mut c, "454 4.7.0 TLS not available\r\n");
    let ev = events(&mut c);
    assert!(
        matches!(&ev[0], Event::Rejected { phase: Phase::Starttls, reply } if reply.code.0 == 454)
    );
    assert_eq!(ev[1], Event::Closed(CloseReason::Rejected));
}

#[test]
fn auth_plain_in_one_line() {
    let mut cfg = config(false);
    cfg.auth = auth(None);
    let mut c = ClientSession::new(cfg);
    step(&mut c, "220 x\r\n");
    // "\0user\0pass" in base64.
    assert_eq!(
        step(&mut c, "250-x\r\n250 AUTH LOGIN PLAIN\r\n"),
        "[AUTH PLAIN AHVzZXIAcGFzcw==]"
    );
    step(&mut c, "235 2.7.0 ok\r\n");
    let ev = events(&mut c);
    assert_eq!(ev[0], Event::Authenticated);
    assert!(matches!(ev[1], Event::Ready(_)));
}

#[test]
fn auth_login_answers_both_prompts() {
    let mut cfg = config(false);
    cfg.auth = auth(Some(Mechanism::Login));
    let mut c = ClientSession::new(cfg);
    step(&mut c, "220 x\r\n");
    assert_eq!(
        step(&mut c, "250-x\r\n250 AUTH PLAIN LOGIN\r\n"),
        "[AUTH LOGIN]"
    );
    assert_eq!(step(&mut c, "334 VXNlcm5hbWU6\r\n"), "[dXNlcg==]");
    assert_eq!(step(&mut c, "334 UGFzc3dvcmQ6\r\n"), "[cGFzcw==]");
    step(&mut c, "235 2.7.0 ok\r\n");
    assert_eq!(events(&mut c)[0], Event::Authenticated);
    assert!(c.is_idle());
}

#[test]
fn auth_rejected_is_fatal_or_recovered() {
    for tolerate in [false, true] {
        let mut cfg = config(tolerate);
        cfg.auth = auth(None);
        let mut c = ClientSession::new(cfg);
        step(&mut c, "220 x\r\n");
        step(&mut c, "250-x\r\n250 AUTH PLAIN\r\n");
        step(&mut c, "535 5.7.8 bad credentials\r\n");
        let ev = events(&mut c);
        assert!(
            matches!(&ev[0], Event::Rejected { phase: Phase::Auth, reply } if reply.code.0 == 535)
        );
        if tolerate {
            // Counted, and the session goes on: the server decides.
            assert!(matches!(ev[1], Event::Ready(_)));
            assert!(c.is_idle());
        } else {
            assert_eq!(ev[1], Event::Closed(CloseReason::Rejected));
        }
    }
}

#[test]
fn auth_needs_a_mechanism_the_server_offers() {
    for (offer, mechanism) in [
        ("250 PIPELINING\r\n", None),
        ("250 AUTH CRAM-MD5\r\n", None),
        ("250 AUTH PLAIN\r\n", Some(Mechanism::Login)),
    ] {
        let mut cfg = config(false);
        cfg.auth = auth(mechanism);
        let mut c = ClientSession::new(cfg);
        step(&mut c, "220 x\r\n");
        step(&mut c, &format!("250-x\r\n{offer}"));
        assert_eq!(
            events(&mut c),
            [Event::Closed(CloseReason::NotOffered(Phase::Auth))],
            "{offer}"
        );
    }
}

/// STARTTLS, then AUTH on the second EHLO, then a transaction.
#[test]
fn starttls_then_auth_then_mail() {
    let mut cfg = config(false);
    cfg.starttls = true;
    cfg.auth = auth(None);
    let mut c = ClientSession::new(cfg);
    step(&mut c, "220 x\r\n");
    // Before TLS, AUTH is not attempted even if offered.
    assert_eq!(
        step(&mut c, "250-x\r\n250-AUTH PLAIN\r\n250 STARTTLS\r\n"),
        "STARTTLS\r\n"
    );
    step(&mut c, "220 go\r\n");
    assert_eq!(events(&mut c), [Event::StartTls]);
    c.tls_started();
    assert_eq!(next(&mut c), "EHLO me\r\n");
    assert_eq!(
        step(&mut c, "250-x\r\n250 AUTH PLAIN\r\n"),
        "[AUTH PLAIN AHVzZXIAcGFzcw==]"
    );
    step(&mut c, "235 ok\r\n");
    c.mail(b"a", 1).unwrap();
    c.rcpt(&[b"b"]);
    c.data();
    assert_eq!(next(&mut c), "MAIL FROM:<a>\r\n");
}
