//! TLS and real AUTH over real sockets, with a real TLS client (rustls'
//! blocking API, accepting any certificate as a load tester does):
//! STARTTLS then a transaction, the plaintext-injection test, implicit TLS,
//! resumption, every AUTH outcome, dump records and `-c` counters, and
//! the certificate the sink makes or is given.

use std::io::{BufRead, Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use smtp_net::tls::{client_config, sha256_fingerprint, ClientOptions};
use tokio_rustls::rustls::pki_types::ServerName;
use tokio_rustls::rustls::{ClientConfig, ClientConnection, HandshakeKind, StreamOwned};

use crate::common::*;
use crate::dump::{files, normalise};

const GREET: &str = "220 smtp-sink ESMTP\r\n";
const READY: &str = "220 2.0.0 Ready to start TLS\r\n";
const TAIL: &str = "250-XCLIENT NAME HELO\r\n250-XFORWARD NAME ADDR PROTO HELO\r\n\
250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250 \r\n";
const MAIL_OK: &str = "250 2.1.0 Ok\r\n";
const RCPT_OK: &str = "250 2.1.5 Ok\r\n";
const DATA_GO: &str = "354 End data with <CR><LF>.<CR><LF>\r\n";
const OK: &str = "250 2.0.0 Ok\r\n";
const BYE: &str = "221 Bye\r\n";
const AUTH_OK: &str = "235 2.7.0 Authentication successful\r\n";
const AUTH_BAD: &str = "535 5.7.8 Authentication credentials invalid\r\n";
const AUTH_TLS: &str = "538 5.7.11 Encryption required for requested authentication mechanism\r\n";
const AUTH_REQ: &str = "530 5.7.0 Authentication required\r\n";
/// base64 of "\0alice\0secret" and "\0alice\0wrong".
const PLAIN_OK: &str = "AGFsaWNlAHNlY3JldA==";
const PLAIN_BAD: &str = "AGFsaWNlAHdyb25n";

/// The EHLO list of a default sink, with or without STARTTLS and AUTH.
fn ehlo(starttls: bool, auth: bool) -> String {
    let mut s = "250-smtp-sink\r\n250-PIPELINING\r\n".to_owned();
    if starttls {
        s.push_str("250-STARTTLS\r\n");
    }
    s.push_str("250-8BITMIME\r\n");
    if auth {
        s.push_str("250-AUTH PLAIN LOGIN\r\n");
    }
    s + TAIL
}

/// A client configuration that accepts any certificate.
fn client(resume: bool) -> Arc<ClientConfig> {
    client_config(&ClientOptions {
        resume,
        ..ClientOptions::default()
    })
    .expect("client config")
}

/// A TLS client connection over a blocking TCP socket.
struct Tls(StreamOwned<ClientConnection, TcpStream>);

impl Tls {
    /// Runs the client handshake to its end (bounded by 5 s).
    fn handshake(tcp: TcpStream, config: &Arc<ClientConfig>, name: &str) -> std::io::Result<Tls> {
        tcp.set_read_timeout(Some(Duration::from_secs(5)))?;
        let name = ServerName::try_from(name.to_owned()).expect("server name");
        let conn = ClientConnection::new(config.clone(), name).map_err(std::io::Error::other)?;
        let mut s = StreamOwned::new(conn, tcp);
        while s.conn.is_handshaking() {
            s.conn.complete_io(&mut s.sock)?;
        }
        Ok(Tls(s))
    }

    fn send(&mut self, data: &[u8]) {
        self.0.write_all(data).expect("TLS write");
        self.0.flush().expect("TLS flush");
    }

    /// Reads until `pred` holds, the server closes, or `limit` passes.
    /// Returns the bytes and whether the server closed.
    fn read_until(&mut self, pred: impl Fn(&[u8]) -> bool, limit: Duration) -> (Vec<u8>, bool) {
        let deadline = Instant::now() + limit;
        let mut out = Vec::new();
        let mut buf = [0u8; 16384];
        self.0
            .sock
            .set_read_timeout(Some(Duration::from_millis(20)))
            .expect("timeout");
        while !pred(&out) && Instant::now() < deadline {
            match self.0.read(&mut buf) {
                Ok(0) => return (out, true),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock
                            | std::io::ErrorKind::TimedOut
                            | std::io::ErrorKind::Interrupted
                    ) => {}
                Err(_) => return (out, true),
            }
        }
        (out, false)
    }

    /// Reads until the reply ends with `want` (5 s at most).
    fn expect(&mut self, want: &str) -> String {
        let (got, _) = self.read_until(|b| b.ends_with(want.as_bytes()), Duration::from_secs(5));
        String::from_utf8_lossy(&got).into_owned()
    }

    /// `<protocol> <cipher>` as the sink's dump names them.
    fn negotiated(&self) -> String {
        let protocol = match self.0.conn.protocol_version() {
            Some(tokio_rustls::rustls::ProtocolVersion::TLSv1_3) => "TLSv1.3",
            Some(tokio_rustls::rustls::ProtocolVersion::TLSv1_2) => "TLSv1.2",
            other => panic!("protocol {other:?}"),
        };
        let suite = self.0.conn.negotiated_cipher_suite().expect("suite");
        format!("{protocol} {:?}", suite.suite())
    }

    fn resumed(&self) -> bool {
        self.0.conn.handshake_kind() == Some(HandshakeKind::Resumed)
    }

    fn peer_certificate(&self) -> Vec<u8> {
        self.0.conn.peer_certificates().expect("certificates")[0].to_vec()
    }
}

fn tcp_addr(sink: &Sink) -> String {
    match &sink.addr {
        Addr::Tcp(a) => a.clone(),
        Addr::Unix(_) => panic!("a TCP sink"),
    }
}

/// Connects in the clear, sends `before` (the replies must end with
/// `before_reply_end`), then STARTTLS, and runs the handshake. Returns
/// the TLS connection and every plaintext reply byte.
fn starttls(sink: &Sink, before: &str, before_reply_end: &str) -> (Tls, String) {
    let tcp = TcpStream::connect(tcp_addr(sink)).expect("connect");
    let mut c = Client::Tcp(tcp.try_clone().expect("clone"));
    let mut plain = c
        .read_until(|b| b.ends_with(GREET.as_bytes()), Duration::from_secs(5))
        .0;
    if !before.is_empty() {
        c.send(before.as_bytes());
        let (got, _) = c.read_until(
            |b| b.ends_with(before_reply_end.as_bytes()),
            Duration::from_secs(5),
        );
        plain.extend_from_slice(&got);
    }
    c.send(b"STARTTLS\r\n");
    let (got, _) = c.read_until(|b| b.ends_with(READY.as_bytes()), Duration::from_secs(5));
    plain.extend_from_slice(&got);
    let tls = Tls::handshake(tcp, &client(false), "smtp-sink").expect("handshake");
    (tls, String::from_utf8_lossy(&plain).into_owned())
}

/// The last `-c` line whole (with the TLS and AUTH fields).
fn last_count_line(sink: &Sink, pred: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = sink.stdout();
        let last = text
            .split('\r')
            .rfind(|l| !l.is_empty())
            .unwrap_or("")
            .to_owned();
        if pred(&last) || Instant::now() > deadline {
            return last;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn users_file(dir: &Path) -> String {
    let path = dir.join("users");
    std::fs::write(&path, "# test users\nalice:secret\nbob:hunter2\n").expect("users");
    path.to_str().expect("utf-8").to_owned()
}

#[test]
fn starttls_then_a_transaction_with_its_record_and_counters() {
    let dir = open_dir();
    let template = format!("{}/m.", dir.path().display());
    let sink = start(OURS, &["-c", "--starttls", "-d", &template]);
    let (mut tls, plain) = starttls(&sink, "EHLO c.example\r\n", "250 \r\n");
    assert_eq!(
        show(plain.as_bytes()),
        show(format!("{GREET}{}{READY}", ehlo(true, true)).as_bytes())
    );
    // The conversation starts over: a new EHLO, and its list has no
    // STARTTLS. One pipelined batch, replies in order.
    tls.send(
        b"EHLO c.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nDATA\r\n\
Subject: over TLS\r\n\r\n..dot\r\nbody\r\n.\r\nQUIT\r\n",
    );
    let got = tls.expect(BYE);
    assert_eq!(
        show(got.as_bytes()),
        show(format!("{}{MAIL_OK}{RCPT_OK}{DATA_GO}{OK}{BYE}", ehlo(false, true)).as_bytes())
    );
    let (_, closed) = tls.read_until(|_| false, Duration::from_secs(5));
    assert!(closed, "the sink closes after QUIT");
    let line = last_count_line(&sink, |l| l.starts_with("sess=1 "));
    assert_eq!(
        line,
        "sess=1 quit=1 mesg=1 tlsfull=1 tlsresumed=0 tlsfail=0"
    );
    let records = files(dir.path());
    assert_eq!(records.len(), 1);
    let rec = normalise(&std::fs::read(&records[0]).expect("record"));
    assert_eq!(
        rec,
        format!(
            "X-Client-Addr: 127.0.0.1\nX-Client-Proto: ESMTP\nX-Client-TLS: {}\n\
X-Helo-Args: c.example\nX-Mail-Args: <a@b.example>\nX-Rcpt-Args: <c@d.example>\n\
Received: from c.example ([127.0.0.1])\n\tby smtp-sink (smtp-sink) with ESMTP id <ID>;\n\t<DATE>\n\
Subject: over TLS\n\n.dot\nbody\n\n",
            tls.negotiated()
        )
    );
}

#[test]
fn plaintext_pipelined_after_starttls_is_never_answered() {
    let sink = start(OURS, &["-c", "--starttls"]);
    let tcp = TcpStream::connect(tcp_addr(&sink)).expect("connect");
    let mut c = Client::Tcp(tcp.try_clone().expect("clone"));
    let _ = c.read_until(|b| b.ends_with(GREET.as_bytes()), Duration::from_secs(5));
    c.send(b"EHLO x\r\n");
    let _ = c.read_until(|b| b.ends_with(b"250 \r\n"), Duration::from_secs(5));
    // One packet: STARTTLS and commands an attacker slipped in behind it.
    c.send(b"STARTTLS\r\nRSET\r\nMAIL FROM:<evil@example>\r\n");
    let (got, _) = c.read_until(|b| b.ends_with(READY.as_bytes()), Duration::from_secs(5));
    assert_eq!(show(&got), show(READY.as_bytes()));
    // Nothing else comes in the clear: RSET was not answered before the
    // handshake.
    let (more, closed) = c.read_quiet(Duration::from_millis(400));
    assert!(more.is_empty() && !closed, "{}", show(&more));
    let mut tls = Tls::handshake(tcp, &client(false), "smtp-sink").expect("handshake");
    // Nor after it: no reply comes until the client speaks under TLS.
    let (early, closed) = tls.read_until(|b| !b.is_empty(), Duration::from_millis(400));
    assert!(early.is_empty() && !closed, "{}", show(&early));
    // And the injected MAIL was not executed: RCPT still needs one.
    tls.send(b"RCPT TO:<b@example>\r\nQUIT\r\n");
    let got = tls.expect(BYE);
    assert_eq!(
        show(got.as_bytes()),
        show(format!("503 5.5.1 Error: need MAIL command\r\n{BYE}").as_bytes())
    );
    let _ = last_count_line(&sink, |l| l.starts_with("sess=1 "));
    let mut sink = sink;
    let out = stop(&mut sink);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("improper command pipelining after STARTTLS: 32 bytes discarded"),
        "{stderr}"
    );
}

#[test]
fn tls_on_connect_handshakes_before_the_greeting() {
    let mut sink = start(OURS, &["-c", "--tls-on-connect", "-t", "2"]);
    let tcp = TcpStream::connect(tcp_addr(&sink)).expect("connect");
    let mut tls = Tls::handshake(tcp, &client(false), "smtp-sink").expect("handshake");
    assert_eq!(tls.expect(GREET), GREET);
    tls.send(b"EHLO x\r\nSTARTTLS\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n");
    let got = tls.expect(BYE);
    assert_eq!(
        show(got.as_bytes()),
        show(
            format!(
                "{}503 5.5.1 Error: TLS already active\r\n{MAIL_OK}{RCPT_OK}{DATA_GO}{OK}{BYE}",
                ehlo(false, true)
            )
            .as_bytes()
        )
    );
    assert_eq!(
        last_count_line(&sink, |l| l.starts_with("sess=1 ")),
        "sess=1 quit=1 mesg=1 tlsfull=1 tlsresumed=0 tlsfail=0"
    );
    // A plaintext client gets no greeting: its EHLO is no ClientHello, the
    // handshake fails and the session ends.
    let mut plain = Client::connect(&sink.addr);
    plain.send(b"EHLO x\r\n");
    let (got, closed) = plain.read_until(|_| false, Duration::from_secs(5));
    assert!(closed, "{}", show(&got));
    assert!(
        !String::from_utf8_lossy(&got).contains("220"),
        "{}",
        show(&got)
    );
    // A client that says nothing meets the -t bound.
    let started = Instant::now();
    let mut silent = Client::connect(&sink.addr);
    let (got, closed) = silent.read_until(|_| false, Duration::from_secs(8));
    assert!(closed && got.is_empty(), "{}", show(&got));
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(1500) && waited < Duration::from_secs(6),
        "{waited:?}"
    );
    assert_eq!(
        last_count_line(&sink, |l| l.starts_with("sess=3 ")),
        "sess=3 quit=1 mesg=1 tlsfull=1 tlsresumed=0 tlsfail=2"
    );
    let out = stop(&mut sink);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("warning: TLS handshake failed: "),
        "{stderr}"
    );
    assert!(
        stderr.contains("warning: TLS handshake failed: timeout"),
        "{stderr}"
    );
}

#[test]
fn resumed_handshakes_are_counted_apart() {
    let sink = start(OURS, &["-c", "--tls-on-connect"]);
    let config = client(true);
    let mut resumed = Vec::new();
    for _ in 0..3 {
        let tcp = TcpStream::connect(tcp_addr(&sink)).expect("connect");
        let mut tls = Tls::handshake(tcp, &config, "smtp-sink").expect("handshake");
        assert_eq!(tls.expect(GREET), GREET);
        tls.send(b"QUIT\r\n");
        let (_, closed) = tls.read_until(|_| false, Duration::from_secs(5));
        assert!(closed);
        resumed.push(tls.resumed());
    }
    assert_eq!(resumed, [false, true, true]);
    assert_eq!(
        last_count_line(&sink, |l| l.starts_with("sess=3 ")),
        "sess=3 quit=3 mesg=0 tlsfull=1 tlsresumed=2 tlsfail=0"
    );
}

#[test]
fn auth_over_tls_only_with_every_outcome_counted_and_dumped() {
    let dir = open_dir();
    let users = users_file(dir.path());
    let template = format!("{}/m.", dir.path().display());
    let sink = start(
        OURS,
        &[
            "-c",
            "--starttls",
            "--auth-users",
            &users,
            "--auth-required",
            "-d",
            &template,
        ],
    );
    // In the clear: no AUTH keyword, AUTH gets 538, MAIL gets 530.
    let before = format!("EHLO x\r\nAUTH PLAIN {PLAIN_OK}\r\nMAIL FROM:<a>\r\n");
    let (mut tls, plain) = starttls(&sink, &before, AUTH_REQ);
    assert_eq!(
        show(plain.as_bytes()),
        show(format!("{GREET}{}{AUTH_TLS}{AUTH_REQ}{READY}", ehlo(true, false)).as_bytes())
    );
    // Under TLS: the keyword, 530 before AUTH, 535, then LOGIN step by
    // step as a client that waits for each prompt.
    tls.send(format!("EHLO x\r\nMAIL FROM:<a>\r\nAUTH PLAIN {PLAIN_BAD}\r\n").as_bytes());
    assert_eq!(
        show(tls.expect(AUTH_BAD).as_bytes()),
        show(format!("{}{AUTH_REQ}{AUTH_BAD}", ehlo(false, true)).as_bytes())
    );
    tls.send(b"AUTH LOGIN\r\n");
    assert_eq!(tls.expect("\r\n"), "334 VXNlcm5hbWU6\r\n");
    tls.send(b"Ym9i\r\n");
    assert_eq!(tls.expect("\r\n"), "334 UGFzc3dvcmQ6\r\n");
    tls.send(b"aHVudGVyMg==\r\n");
    assert_eq!(tls.expect("\r\n"), AUTH_OK);
    tls.send(b"AUTH PLAIN\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n");
    assert_eq!(
        show(tls.expect(BYE).as_bytes()),
        show(
            format!(
                "503 5.5.1 Error: already authenticated\r\n{MAIL_OK}{RCPT_OK}{DATA_GO}{OK}{BYE}"
            )
            .as_bytes()
        )
    );
    // A second session: PLAIN with an initial response.
    let (mut tls2, _) = starttls(&sink, "", "");
    tls2.send(
        format!(
            "AUTH PLAIN {PLAIN_OK}\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n"
        )
        .as_bytes(),
    );
    assert_eq!(
        show(tls2.expect(BYE).as_bytes()),
        show(format!("{AUTH_OK}{MAIL_OK}{RCPT_OK}{DATA_GO}{OK}{BYE}").as_bytes())
    );
    assert_eq!(
        last_count_line(&sink, |l| l.starts_with("sess=2 ")),
        "sess=2 quit=2 mesg=2 tlsfull=2 tlsresumed=0 tlsfail=0 authok=2 authfail=1"
    );
    let mut records: Vec<String> = files(dir.path())
        .iter()
        .filter(|p| p.file_name().is_some_and(|n| n != "users"))
        .map(|p| normalise(&std::fs::read(p).expect("record")))
        .collect();
    records.sort();
    assert_eq!(records.len(), 2);
    let tls_line = format!("X-Client-TLS: {}\n", tls.negotiated());
    assert_eq!(
        records[0],
        format!(
            "X-Client-Addr: 127.0.0.1\nX-Client-Proto: ESMTP\n{tls_line}X-Client-Auth: bob\n\
X-Helo-Args: x\nX-Mail-Args: <a>\nX-Rcpt-Args: <b>\n\
Received: from x ([127.0.0.1])\n\tby smtp-sink (smtp-sink) with ESMTP id <ID>;\n\t<DATE>\nhi\n\n"
        )
    );
    // No EHLO after STARTTLS: the protocol is SMTP again, and no HELO.
    assert_eq!(
        records[1],
        format!(
            "X-Client-Addr: 127.0.0.1\nX-Client-Proto: SMTP\n{tls_line}X-Client-Auth: alice\n\
X-Mail-Args: <a>\nX-Rcpt-Args: <b>\n\
Received: from [127.0.0.1] ([127.0.0.1])\n\tby smtp-sink (smtp-sink) with SMTP id <ID>;\n\t<DATE>\nx\n\n"
        )
    );
}

#[test]
fn a_plaintext_session_dumps_postfix_s_record_with_the_options_on() {
    let session: &[&[u8]] = &[
        b"EHLO client.example\r\n",
        b"MAIL FROM:<a@b> BODY=8BITMIME\r\nRCPT TO:<x@y>\r\nDATA\r\n",
        b"Subject: hi\r\n\r\n..leading dot\r\nbody\r\n.\r\nQUIT\r\n",
    ];
    let mut got = Vec::new();
    let dir = open_dir();
    let users = users_file(dir.path());
    for (i, extra) in [
        &[][..],
        &["--starttls", "--auth-users", &users, "--auth-plaintext"],
    ]
    .iter()
    .enumerate()
    {
        let sub = dir.path().join(format!("s{i}"));
        let template = format!("{}/m.", sub.display());
        let mut args = vec!["-d", template.as_str()];
        args.extend_from_slice(extra);
        let sink = start(OURS, &args);
        let replies = converse(&sink.addr, session);
        assert!(
            String::from_utf8_lossy(&replies).ends_with("250 2.0.0 Ok\r\n221 Bye\r\n<EOF>"),
            "{}",
            show(&replies)
        );
        drop(sink);
        let recs = files(&sub);
        assert_eq!(recs.len(), 1);
        got.push(normalise(&std::fs::read(&recs[0]).expect("record")));
    }
    assert_eq!(got[0], got[1]);
    assert!(!got[1].contains("X-Client-TLS") && !got[1].contains("X-Client-Auth"));
}

/// PEM of one DER certificate.
fn pem(der: &[u8]) -> String {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = "-----BEGIN CERTIFICATE-----\n".to_owned();
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("ascii"));
        out.push('\n');
    }
    out + "-----END CERTIFICATE-----\n"
}

#[test]
fn the_self_signed_certificate_is_for_h_and_its_fingerprint_is_printed() {
    let mut sink = start(OURS, &["--starttls", "-h", "sink.example"]);
    let stderr = sink
        .child
        .as_mut()
        .expect("child")
        .stderr
        .take()
        .expect("stderr pipe");
    let mut line = String::new();
    std::io::BufReader::new(stderr)
        .read_line(&mut line)
        .expect("stderr line");
    let prefix =
        format!("{OURS}: self-signed TLS certificate for sink.example: sha256 Fingerprint=");
    let printed = line
        .strip_prefix(&prefix)
        .and_then(|l| l.strip_suffix('\n'))
        .unwrap_or_else(|| panic!("{line:?}"))
        .to_owned();
    // The greeting uses -h too, so STARTTLS by hand here.
    let tcp = TcpStream::connect(tcp_addr(&sink)).expect("connect");
    let mut c = Client::Tcp(tcp.try_clone().expect("clone"));
    let _ = c.read_until(|b| b.ends_with(b"ESMTP\r\n"), Duration::from_secs(5));
    c.send(b"STARTTLS\r\n");
    let _ = c.read_until(|b| b.ends_with(READY.as_bytes()), Duration::from_secs(5));
    let tls = Tls::handshake(tcp, &client(false), "sink.example").expect("handshake");
    let cert = tls.peer_certificate();
    assert_eq!(sha256_fingerprint(&cert), printed);
    // The certificate names the -h host: a verifying client that trusts it
    // accepts it for sink.example and for nothing else.
    let dir = tempfile::tempdir().expect("tempdir");
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, pem(&cert)).expect("write");
    let verifying = client_config(&ClientOptions {
        verify: true,
        ca_file: Some(ca),
        ..ClientOptions::default()
    })
    .expect("config");
    for (name, ok) in [("sink.example", true), ("other.example", false)] {
        let tcp = TcpStream::connect(tcp_addr(&sink)).expect("connect");
        let mut c = Client::Tcp(tcp.try_clone().expect("clone"));
        let _ = c.read_until(|b| b.ends_with(b"ESMTP\r\n"), Duration::from_secs(5));
        c.send(b"STARTTLS\r\n");
        let _ = c.read_until(|b| b.ends_with(READY.as_bytes()), Duration::from_secs(5));
        assert_eq!(Tls::handshake(tcp, &verifying, name).is_ok(), ok, "{name}");
    }
}

#[test]
fn given_certificate_files_are_served() {
    if !have("openssl") {
        return;
    }
    let dir = open_dir();
    let (cert, key) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
        ])
        .args(["-nodes", "-days", "2", "-subj", "/CN=files.example"])
        .args(["-addext", "subjectAltName=DNS:files.example"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl req");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let fp = std::process::Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(&cert)
        .output()
        .expect("openssl x509");
    let fp = String::from_utf8_lossy(&fp.stdout);
    let fp = fp
        .trim()
        .split_once('=')
        .expect("Fingerprint=")
        .1
        .to_owned();
    let (c, k) = (cert.to_str().expect("utf-8"), key.to_str().expect("utf-8"));
    let mut sink = start(OURS, &["--tls-on-connect", "--tls-cert", c, "--tls-key", k]);
    let tcp = TcpStream::connect(tcp_addr(&sink)).expect("connect");
    let mut tls = Tls::handshake(tcp, &client(false), "files.example").expect("handshake");
    assert_eq!(tls.expect(GREET), GREET);
    // Our fingerprint format is openssl's.
    assert_eq!(sha256_fingerprint(&tls.peer_certificate()), fp);
    let out = stop(&mut sink);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("self-signed"), "{stderr}");
    // A key that does not exist is a fatal error at start, naming it.
    let out = std::process::Command::new(OURS)
        .args([
            "--starttls",
            "--tls-cert",
            c,
            "--tls-key",
            "/nonexistent/k.pem",
        ])
        .args(["-u", "nobody", "127.0.0.1:0", "1"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains(": fatal: /nonexistent/k.pem: "), "{stderr}");
}
