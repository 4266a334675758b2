//! `--session-timeout`: one limit for a whole connection, against servers
//! that trickle their replies a byte at a time so that no single read ever
//! waits long; and the source address (`Config::bind`) that smtp-probe
//! sets (docs/smtp-source.md).

mod support;

use std::{
    io::{BufRead as _, BufReader, Write as _},
    net::{IpAddr, SocketAddr, TcpListener, TcpStream},
    thread,
    time::Duration,
};

use support::{source, Act, Cmd, Server};

/// A server that answers every command with a 250 (354 to DATA) at once,
/// except that the reply `trickle_at` names (the greeting when None) is
/// sent one byte every 0.5 s, for longer than any test waits.
fn trickling_server(trickle_at: Option<&'static str>) -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = format!("127.0.0.1:{}", l.local_addr().unwrap().port());
    thread::spawn(move || {
        let Ok((conn, _)) = l.accept() else { return };
        serve_trickling(conn, trickle_at);
    });
    addr
}

fn serve_trickling(mut conn: TcpStream, trickle_at: Option<&str>) {
    let trickle = |conn: &mut TcpStream, code: &str| {
        // 60 s of bytes, never a line end: every read gets a byte well
        // within the per-read timeout, and the reply never completes.
        let text = format!("{code} {}", "x".repeat(120));
        for b in text.bytes() {
            if conn.write_all(&[b]).is_err() {
                return;
            }
            thread::sleep(Duration::from_millis(500));
        }
    };
    if trickle_at.is_none() {
        trickle(&mut conn, "220");
        return;
    }
    let _ = conn.write_all(b"220 ready\r\n");
    let mut reader = BufReader::new(conn.try_clone().unwrap());
    let mut line = String::new();
    let mut in_data = false;
    while matches!(reader.read_line(&mut line), Ok(n) if n > 0) {
        let reply: &[u8] = if in_data {
            in_data = line != ".\r\n";
            if in_data {
                line.clear();
                continue;
            }
            b"250 ok\r\n"
        } else if trickle_at.is_some_and(|t| line.starts_with(t)) {
            trickle(&mut conn, "250");
            return;
        } else if line.starts_with("DATA") {
            in_data = true;
            b"354 go ahead\r\n"
        } else if line.starts_with("QUIT") {
            let _ = conn.write_all(b"221 bye\r\n");
            return;
        } else {
            b"250 ok\r\n"
        };
        if conn.write_all(reply).is_err() {
            return;
        }
        line.clear();
    }
}

/// A greeting that trickles in a byte every 0.5 s never trips the 5 s
/// per-read timeout, and without a session limit would keep the client
/// forever: the session limit ends it at 2 s, as a greeting timeout.
#[test]
fn session_timeout_ends_a_trickled_greeting() {
    let addr = trickling_server(None);
    let run = source(&["--timeout", "5", "--session-timeout", "2", &addr]);
    assert_eq!(run.code, Some(22), "{run:?}");
    assert_eq!(
        run.stderr,
        format!(
            "{}: fatal: timeout while reading server greeting\n",
            support::bin()
        )
    );
    assert!(run.elapsed >= Duration::from_millis(1900), "{run:?}");
    // Well under the 5 s a single silent read would be allowed (and the
    // trickle never leaves a read silent that long).
    assert!(run.elapsed < Duration::from_millis(4000), "{run:?}");
}

/// The limit counts from the connect, not from the phase: greeting, HELO
/// and MAIL go quickly, the RCPT reply trickles, and the run ends 2 s
/// after the connect as a recipient timeout (status and report phase
/// from RCPT).
#[test]
fn session_timeout_in_a_later_phase_names_that_phase() {
    let addr = trickling_server(Some("RCPT"));
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let run = source(&[
        "--timeout",
        "5",
        "--session-timeout",
        "2",
        "--json",
        json.to_str().unwrap(),
        "-M",
        "h",
        &addr,
    ]);
    assert_eq!(run.code, Some(27), "{run:?}");
    assert_eq!(
        run.stderr,
        format!(
            "{}: fatal: timeout while sending recipient\n",
            support::bin()
        )
    );
    assert!(run.elapsed >= Duration::from_millis(1900), "{run:?}");
    assert!(run.elapsed < Duration::from_millis(4000), "{run:?}");
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    assert_eq!(report["error"]["phase"], "rcpt", "{report}");
    assert_eq!(report["error"]["exit_code"], 27, "{report}");
}

/// The per-read timeout keeps its meaning under a longer session limit: a
/// silent greeting still fails after `--timeout`.
#[test]
fn per_read_timeout_still_applies_within_the_session_limit() {
    let server = Server::start(|_, cmd| match cmd {
        Cmd::Connect => Act::Silence,
        _ => Act::Close,
    });
    let run = source(&["--timeout", "1", "--session-timeout", "30", &server.addr]);
    assert_eq!(run.code, Some(22), "{run:?}");
    assert!(run
        .stderr
        .ends_with("timeout while reading server greeting\n"));
    assert!(run.elapsed >= Duration::from_millis(900), "{run:?}");
    assert!(run.elapsed < Duration::from_secs(10), "{run:?}");
}

/// A session limit that is not reached changes nothing: several messages
/// on one connection (`-d`), byte for byte what a run without it sends.
#[test]
fn an_unreached_session_limit_changes_nothing() {
    let plain = Server::start(support::sink);
    let limited = Server::start(support::sink);
    let args = ["-d", "-m", "3", "-M", "h"];
    let a = source(&[&args[..], &[plain.addr.as_str()]].concat());
    let b = source(&[&args[..], &["--session-timeout", "60", &limited.addr]].concat());
    assert_eq!((a.code, b.code), (Some(0), Some(0)), "{a:?} {b:?}");
    assert_eq!(a.stderr, b.stderr);
    let (ra, rb) = (plain.records(1), limited.records(1));
    assert_eq!(
        support::normalize(&ra[0].text(), a.pid),
        support::normalize(&rb[0].text(), b.pid)
    );
}

#[test]
fn bad_session_timeouts_are_refused() {
    for bad in ["0", "-2", "soon"] {
        let run = source(&["--session-timeout", bad, "127.0.0.1:9"]);
        assert_eq!(run.code, Some(1), "{run:?}");
        assert_eq!(
            run.stderr,
            format!(
                "{}: fatal: bad session timeout: {bad} (seconds)\n",
                support::bin()
            )
        );
    }
}

/// `Config::bind` (smtp-probe's `--bind`): the server sees the connection
/// come from 127.0.0.2, which is loopback on Linux.
#[test]
fn bind_sets_the_source_address() {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let peer = thread::spawn(move || {
        let (conn, peer): (TcpStream, SocketAddr) = l.accept().unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        serve_trickling(conn, Some("never"));
        peer
    });
    let mut config =
        smtp_source::Config::from_args(["smtp-source", "-M", "h", &addr.to_string()]).unwrap();
    config.bind = vec![IpAddr::from([127, 0, 0, 2])];
    config.measure = true;
    let report = smtp_source::run(config).unwrap();
    assert!(report.fatal.is_none(), "{:?}", report.fatal);
    assert_eq!(report.stats.accepted, 1);
    // `measure` alone times the phases.
    let rcpt = report.latency.raw.get(smtp_source::latency::Metric::Rcpt);
    assert_eq!(rcpt.len(), 1, "RCPT not timed");
    assert_eq!(peer.join().unwrap().ip(), IpAddr::from([127, 0, 0, 2]));
}
