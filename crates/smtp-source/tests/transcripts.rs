//! Exact transcripts of the `smtp-source` binary against a scripted server
//! that records every byte (docs/smtp-source.md).

mod support;

use std::time::Duration;

use support::{lmtp_sink, normalize, sink, source, Act, Cmd, End, Server};

const HEAD: &str = "From: <foo@client.example>\r\nTo: <foo@client.example>\r\nDate: DATE\r\n";
const LA_DE_DA: &str =
    "La de da de da 1.\r\nLa de da de da 2.\r\nLa de da de da 3.\r\nLa de da de da 4.\r\n.\r\n";

fn envelope() -> String {
    "HELO client.example\r\nMAIL FROM:<foo@client.example>\r\nRCPT TO:<foo@client.example>\r\nDATA\r\n"
        .to_owned()
}

#[test]
fn default_run_is_byte_exact_and_closes_with_rst() {
    let server = Server::start(sink);
    let run = source(&["-M", "client.example", &server.addr]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.stdout, "");
    assert_eq!(run.stderr, "");
    let recs = server.records(1);
    assert_eq!(recs.len(), 1);
    let expected = format!(
        "{}{HEAD}Message-Id: <PID.0003.0000@client.example>\r\n\r\n{LA_DE_DA}QUIT\r\n",
        envelope()
    );
    assert_eq!(normalize(&recs[0].text(), run.pid), expected);
    assert_eq!(recs[0].end, End::Reset, "SO_LINGER 0 close");
}

#[test]
fn old_mode_sends_no_helo_and_no_headers() {
    let server = Server::start(sink);
    let run = source(&["-o", "-M", "h", "-S", "ignored", &server.addr]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let recs = server.records(1);
    assert_eq!(
        recs[0].text(),
        format!("MAIL FROM:<foo@h>\r\nRCPT TO:<foo@h>\r\nDATA\r\n{LA_DE_DA}QUIT\r\n")
    );
}

#[test]
fn generated_body_and_subject() {
    let server = Server::start(sink);
    let run = source(&[
        "-l",
        "250",
        "-S",
        "Test subject",
        "-M",
        "client.example",
        &server.addr,
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let text = normalize(&server.records(1)[0].text(), run.pid);
    let line = |d: char| format!("{d}{}\r\n", "X".repeat(77));
    let expected = format!(
        "{}{HEAD}Message-Id: <PID.0003.0000@client.example>\r\nSubject: Test subject\r\n\r\n{}{}{}XXXXXXXXXX\r\n.\r\nQUIT\r\n",
        envelope(),
        line('1'),
        line('2'),
        line('3')
    );
    assert_eq!(text, expected);
}

#[test]
fn lmtp_transcript() {
    let server = Server::start(lmtp_sink);
    let run = source(&["-L", "-r", "2", "-M", "h", "-t", "u@d", &server.addr]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let text = normalize(&server.records(1)[0].text(), run.pid);
    assert_eq!(
        text,
        format!(
            "LHLO h\r\nMAIL FROM:<foo@h>\r\nRCPT TO:<u0@d>\r\nRCPT TO:<u1@d>\r\nDATA\r\n\
             From: <foo@h>\r\nTo: <u1@d>\r\nDate: DATE\r\nMessage-Id: <PID.0003.0000@h>\r\n\r\n{LA_DE_DA}QUIT\r\n"
        )
    );
}

#[test]
fn lmtp_with_a_and_a_rejected_rcpt_does_not_hang() {
    let server = Server::start(|ctx, cmd| match cmd {
        Cmd::Line(l) if l.starts_with("RCPT TO:<u1@") => Act::reply("550 5.1.1 no"),
        _ => lmtp_sink(ctx, cmd),
    });
    let run = source(&["-A", "-L", "-r", "3", "-M", "h", "-t", "u@d", &server.addr]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(run.elapsed < Duration::from_secs(10), "{run:?}");
    assert_eq!(
        run.stderr,
        format!(
            "{}: warning: recipient rejected: 550 5.1.1 no\n",
            support::bin()
        )
    );
    let text = server.records(1)[0].text();
    assert!(text.ends_with(".\r\nQUIT\r\n"), "{text}");
}

/// One -A case: a script that rejects `verb` with `reply`, the commands
/// expected after the rejection, and the warning.
fn a_case(verb: &'static str, reply: &'static str, tail: &str, warning: &str) {
    let server = Server::start(move |ctx, cmd| match cmd {
        Cmd::Line(l) if l.starts_with(verb) => Act::reply(reply),
        Cmd::EndOfData if verb == "." => Act::reply(reply),
        _ => sink(ctx, cmd),
    });
    let run = source(&["-A", "-M", "h", &server.addr]);
    assert_eq!(run.code, Some(0), "{verb}: {run:?}");
    assert_eq!(
        run.stderr,
        format!("{}: warning: {warning}\n", support::bin()),
        "{verb}"
    );
    let recs = server.records(1);
    let cmds: Vec<&str> = recs[0]
        .lines
        .iter()
        .map(|(_, l)| l.get(..4).unwrap_or(l))
        .collect();
    let tail: Vec<&str> = tail.split(' ').collect();
    assert!(cmds.ends_with(&tail), "{verb}: {cmds:?}");
}

#[test]
fn tolerated_rejections_recover_like_postfix() {
    a_case(
        "MAIL",
        "451 4.3.0 later",
        "MAIL RSET QUIT",
        "sender rejected: 451 4.3.0 later",
    );
    a_case(
        "RCPT",
        "550 5.1.1 no",
        "RCPT RSET QUIT",
        "recipient rejected: 550 5.1.1 no",
    );
    a_case(
        "DATA",
        "554 5.5.1 no",
        "DATA RSET QUIT",
        "data rejected: 554 5.5.1 no",
    );
    a_case(
        ".",
        "550 5.7.1 bad",
        "DATA QUIT",
        "end of data rejected: 550 5.7.1 bad",
    );
}

#[test]
fn tolerated_421_on_helo_closes_without_quit() {
    let server = Server::start(|ctx, cmd| match cmd {
        Cmd::Line(l) if l.starts_with("HELO") => Act::reply("421 4.7.0 bye"),
        _ => sink(ctx, cmd),
    });
    let run = source(&["-A", "-m", "2", "-M", "h", &server.addr]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let recs = server.records(2);
    assert_eq!(recs.len(), 2, "a new connection for the next message");
    for r in &recs {
        assert_eq!(r.text(), "HELO h\r\n");
        assert_eq!(r.end, End::Reset);
    }
    assert_eq!(
        run.stderr
            .matches("warning: HELO rejected: 421 4.7.0 bye")
            .count(),
        2
    );
}

#[test]
fn data_554_under_d_resets_then_next_mail() {
    let datas = std::sync::atomic::AtomicUsize::new(0);
    let server = Server::start(move |ctx, cmd| match cmd {
        Cmd::Line(l)
            if l == "DATA" && datas.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 =>
        {
            Act::reply("554 5.5.1 no")
        }
        _ => sink(ctx, cmd),
    });
    let run = source(&["-A", "-d", "-m", "2", "-M", "h", &server.addr]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let recs = server.records(1);
    let cmds: Vec<&str> = recs[0].lines.iter().map(|(_, l)| l.as_str()).collect();
    assert_eq!(
        cmds,
        [
            "HELO h",
            "MAIL FROM:<foo@h>",
            "RCPT TO:<foo@h>",
            "DATA",
            "RSET",
            "MAIL FROM:<foo@h>",
            "RCPT TO:<foo@h>",
            "DATA",
            "QUIT"
        ]
    );
}

#[test]
fn rejections_without_a_are_fatal_at_once() {
    let mut times = Vec::new();
    for (verb, reply, text) in [
        (
            "CONNECT",
            "554 5.3.2 go away",
            "rejected at server banner: 554 5.3.2 go away",
        ),
        ("HELO", "550 no", "HELO rejected: 550 no"),
        ("MAIL", "553 bad sender", "sender rejected: 553 bad sender"),
        ("RCPT", "550 5.1.1 no", "recipient rejected: 550 5.1.1 no"),
        ("DATA", "451 later", "data rejected: 451 later"),
        (".", "552 too big", "end of data rejected: 552 too big"),
    ] {
        let server = Server::start(move |ctx, cmd| match cmd {
            Cmd::Connect if verb == "CONNECT" => Act::reply(reply),
            Cmd::Line(l) if l.starts_with(verb) => Act::reply(reply),
            Cmd::EndOfData if verb == "." => Act::reply(reply),
            _ => sink(ctx, cmd),
        });
        let run = source(&["-M", "h", &server.addr]);
        assert_eq!(run.code, Some(phase_exit_code(verb)), "{verb}: {run:?}");
        assert_eq!(run.stderr, format!("{}: fatal: {text}\n", support::bin()));
        times.push(run.elapsed);
        let recs = server.records(1);
        assert!(!recs[0].text().contains("QUIT"), "{verb}");
    }
    // Postfix sleeps a second before exiting; we do not. The fastest of
    // the six runs shows it without depending on the machine's load.
    let fastest = times.iter().min().unwrap();
    assert!(*fastest < Duration::from_millis(900), "{times:?}");
}

#[test]
fn multiline_reply_text_is_shown_as_postfix_shows_it() {
    let server = Server::start(|ctx, cmd| match cmd {
        Cmd::Line(l) if l.starts_with("MAIL") => {
            Act::Reply(vec!["550-first".to_owned(), "550 second".to_owned()])
        }
        _ => sink(ctx, cmd),
    });
    let run = source(&["-M", "h", &server.addr]);
    assert_eq!(run.code, Some(26));
    assert_eq!(
        run.stderr,
        format!(
            "{}: fatal: sender rejected: 550 first?second\n",
            support::bin()
        )
    );
}

#[test]
fn file_content_edge_cases() {
    let dir = tempfile::tempdir().unwrap();
    let cases: [(&str, &[u8], &str); 4] = [
        (
            "dots",
            b".leading dot\n..two dots\n.\nlast line no newline",
            "..leading dot\r\n...two dots\r\n..\r\nlast line no newline\r\n\r\n.\r\n",
        ),
        (
            "crlf",
            b"Subject: x\r\n\r\nbody\r\n",
            "Subject: x\r\n\r\nbody\r\n\r\n.\r\n",
        ),
        ("empty", b"", LA_DE_DA),
        ("blank", b"\n", "\r\n\r\n.\r\n"),
    ];
    for (name, content, body) in cases {
        let path = support::tmp_file(dir.path(), name, content);
        let server = Server::start(sink);
        let run = source(&[
            "-F",
            path.to_str().unwrap(),
            "-S",
            "ignored",
            "-M",
            "h",
            &server.addr,
        ]);
        assert_eq!(run.code, Some(0), "{name}: {run:?}");
        let text = server.records(1)[0].text();
        let expected =
            format!("HELO h\r\nMAIL FROM:<foo@h>\r\nRCPT TO:<foo@h>\r\nDATA\r\n{body}QUIT\r\n");
        assert_eq!(text, expected, "{name}");
    }
}

#[test]
fn d_m3_reuses_the_connection_and_counts() {
    let server = Server::start(sink);
    let run = source(&["-c", "-d", "-m", "3", "-M", "h", &server.addr]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.stdout, "1\r2\r3\r\n");
    let recs = server.records(1);
    assert_eq!(recs.len(), 1);
    let text = recs[0].text();
    assert_eq!(text.matches("HELO h\r\n").count(), 1);
    assert_eq!(text.matches("MAIL FROM:").count(), 3);
    assert!(!text.contains("RSET"));
    let ids: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("Message-Id: <"))
        .map(|l| &l[l.find('.').unwrap() + 1..])
        .collect();
    assert_eq!(ids, ["0003.0002@h>", "0003.0001@h>", "0003.0000@h>"]);
    // One Date per run.
    let dates: std::collections::HashSet<&str> =
        text.lines().filter(|l| l.starts_with("Date: ")).collect();
    assert_eq!(dates.len(), 1);
    assert!(text.ends_with(".\r\nQUIT\r\n"));
}

#[test]
fn r3_n_numbering_is_global() {
    let server = Server::start(sink);
    let run = source(&[
        "-r",
        "3",
        "-N",
        "-d",
        "-m",
        "2",
        "-t",
        "rcpt@example.org",
        "-M",
        "h",
        &server.addr,
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let text = server.records(1)[0].text();
    let rcpts: Vec<&str> = text.lines().filter(|l| l.starts_with("RCPT")).collect();
    assert_eq!(
        rcpts,
        (0..6)
            .map(|n| format!("RCPT TO:<rcpt{n}@example.org>"))
            .collect::<Vec<_>>()
    );
    let tos: Vec<&str> = text.lines().filter(|l| l.starts_with("To: ")).collect();
    assert_eq!(tos, ["To: <rcpt2@example.org>", "To: <rcpt5@example.org>"]);
    // -N alone, with a trailing delimiter and no domain.
    let server = Server::start(sink);
    let run = source(&["-N", "-m", "2", "-t", "user+", "-M", "h", &server.addr]);
    assert_eq!(run.code, Some(0));
    let all: String = server.records(2).iter().map(|r| r.text()).collect();
    assert!(all.contains("RCPT TO:<user+0>\r\n") && all.contains("RCPT TO:<user+1>\r\n"));
}

#[test]
fn s2_m1_message_id_shows_negative_budget() {
    let server = Server::start(sink);
    let run = source(&["-s", "2", "-m", "1", "-M", "h", &server.addr]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let recs = server.records(1);
    let all: String = recs.iter().map(|r| r.text()).collect();
    assert_eq!(all.matches("MAIL FROM").count(), 1);
    // The idle session took its (empty) share of the budget first, so the
    // one message shows -1, as Postfix's `<16c1.0003.ffffffff@vm>` did.
    assert!(all.contains(".ffffffff@h>\r\n"), "{all}");
}

#[test]
fn w1_paces_connections_and_messages() {
    let server = Server::start(sink);
    let run = source(&["-s", "2", "-m", "4", "-w", "1", "-M", "h", &server.addr]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let recs = server.records(4);
    assert_eq!(recs.len(), 4);
    let t0 = recs[0].accepted;
    let at: Vec<f64> = recs
        .iter()
        .map(|r| r.accepted.duration_since(t0).as_secs_f64())
        .collect();
    assert!(at[1] < 0.8, "{at:?}");
    assert!(at[2] > 0.9 && at[2] < 2.5, "{at:?}");
    assert!(at[3] > 0.9 && at[3] < 2.5, "{at:?}");
    // One more pause when each session retires: about 2 s in all.
    assert!(run.elapsed > Duration::from_millis(1900), "{run:?}");

    let server = Server::start(sink);
    let run = source(&["-d", "-m", "3", "-w", "1", "-M", "h", &server.addr]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let rec = &server.records(1)[0];
    let mails: Vec<f64> = rec
        .lines
        .iter()
        .filter(|(_, l)| l.starts_with("MAIL"))
        .map(|(t, _)| t.duration_since(rec.accepted).as_secs_f64())
        .collect();
    assert_eq!(mails.len(), 3);
    assert!(mails[0] < 0.8, "{mails:?}");
    assert!(mails[1] > 0.9 && mails[1] < 2.5, "{mails:?}");
    assert!(mails[2] > 1.9 && mails[2] < 3.5, "{mails:?}");
}

#[test]
fn random_delay_stays_within_its_interval() {
    let server = Server::start(sink);
    let run = source(&["-R", "1", "-d", "-m", "3", "-M", "h", &server.addr]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let rec = &server.records(1)[0];
    assert_eq!(rec.text().matches("MAIL FROM").count(), 3);
    // Three pauses of 0 or 1 s each (the last before QUIT).
    assert!(run.elapsed < Duration::from_secs(8), "{run:?}");
}

#[test]
fn timeout_and_lost_connection_name_the_phase() {
    let server = Server::start(|_, _| Act::Silence);
    let run = source(&["--timeout", "1", &server.addr]);
    assert_eq!(run.code, Some(22));
    assert_eq!(
        run.stderr,
        format!(
            "{}: fatal: timeout while reading server greeting\n",
            support::bin()
        )
    );
    let server = Server::start(|ctx, cmd| match cmd {
        Cmd::Line(l) if l.starts_with("RCPT") => Act::Close,
        _ => sink(ctx, cmd),
    });
    let run = source(&["-M", "h", &server.addr]);
    assert_eq!(run.code, Some(27));
    assert_eq!(
        run.stderr,
        format!(
            "{}: fatal: lost connection while sending recipient\n",
            support::bin()
        )
    );
    let server = Server::start(|ctx, cmd| match cmd {
        Cmd::Line(l) if l.starts_with("LHLO") => Act::Close,
        _ => sink(ctx, cmd),
    });
    let run = source(&["-L", "-M", "h", &server.addr]);
    assert_eq!(
        run.stderr,
        format!(
            "{}: fatal: lost connection while sending LHLO\n",
            support::bin()
        )
    );
}

#[test]
fn a_peer_that_stops_reading_times_out_the_message() {
    let server = Server::start(|ctx, cmd| match cmd {
        Cmd::Line(l) if l == "DATA" => {
            Act::ReplyStall(vec!["354 go".to_owned()], Duration::from_secs(6))
        }
        _ => sink(ctx, cmd),
    });
    // Far more than the socket buffers hold.
    let run = source(&["--timeout", "1", "-l", "40000000", "-M", "h", &server.addr]);
    assert_eq!(run.code, Some(29), "{run:?}");
    assert_eq!(
        run.stderr,
        format!("{}: fatal: timeout while sending message\n", support::bin())
    );
    assert!(run.elapsed < Duration::from_secs(5), "{run:?}");
}

#[test]
fn every_phase_is_named_on_a_lost_connection() {
    for (verb, phase) in [
        ("CONNECT", "reading server greeting"),
        ("HELO", "sending HELO"),
        ("MAIL", "sending sender"),
        ("RCPT", "sending recipient"),
        ("DATA", "sending DATA command"),
        (".", "sending message"),
    ] {
        let server = Server::start(move |ctx, cmd| match cmd {
            Cmd::Connect if verb == "CONNECT" => Act::Close,
            Cmd::Line(l) if l.starts_with(verb) => Act::Close,
            Cmd::EndOfData if verb == "." => Act::Close,
            _ => sink(ctx, cmd),
        });
        let run = source(&["-M", "h", &server.addr]);
        assert_eq!(run.code, Some(phase_exit_code(verb)), "{verb}");
        assert_eq!(
            run.stderr,
            format!("{}: fatal: lost connection while {phase}\n", support::bin()),
            "{verb}"
        );
    }
}

#[test]
fn server_closing_after_quit_is_fine() {
    let server = Server::start(|ctx, cmd| match cmd {
        Cmd::Line(l) if l == "QUIT" => Act::Close,
        _ => sink(ctx, cmd),
    });
    let run = source(&["-m", "2", "-M", "h", &server.addr]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.stderr, "");
    let server = Server::start(|ctx, cmd| match cmd {
        Cmd::Line(l) if l == "QUIT" => Act::ReplyClose(vec!["221 Bye".to_owned()]),
        _ => sink(ctx, cmd),
    });
    let run = source(&["-M", "h", &server.addr]);
    assert_eq!(run.code, Some(0), "{run:?}");
}

#[test]
fn unix_socket_target() {
    let server = Server::start_unix(sink);
    let run = source(&["-d", "-m", "2", "-M", "h", &server.addr]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let text = server.records(1)[0].text();
    assert_eq!(text.matches("MAIL FROM:<foo@h>").count(), 2);
}

#[test]
fn verbose_shows_commands_and_replies() {
    let server = Server::start(sink);
    let run = source(&["-v", "-o", "-M", "h", &server.addr]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let b = support::bin();
    let expected = [
        "<<< 220 test ESMTP",
        "MAIL FROM:<foo@h>",
        "<<< 250 2.1.0 Ok",
        "RCPT TO:<foo@h>",
        "<<< 250 2.1.5 Ok",
        "DATA",
        "<<< 354 End data with <CR><LF>.<CR><LF>",
        ".",
        "<<< 250 2.0.0 Ok",
        "QUIT",
        "<<< 221 Bye",
    ]
    .iter()
    .map(|l| format!("{b}: {l}\n"))
    .collect::<String>();
    assert_eq!(run.stderr, expected);
}

#[test]
fn summary_and_json_only_when_asked() {
    let server = Server::start(sink);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("r.json");
    let run = source(&[
        "--summary",
        "--json",
        json.to_str().unwrap(),
        "-m",
        "3",
        "-s",
        "2",
        "-M",
        "h",
        &server.addr,
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert!(
        run.stderr.contains("3 messages sent, 3 accepted"),
        "{run:?}"
    );
    let j = std::fs::read_to_string(&json).unwrap();
    assert!(j.contains("\"messages_sent\":3"), "{j}");
    assert!(j.contains("\"accepted\":3"), "{j}");
}

#[test]
fn fatal_usage_and_connect_errors() {
    let b = support::bin();
    let run = source(&["-s", "0", "127.0.0.1"]);
    assert_eq!(run.code, Some(1));
    assert_eq!(run.stderr, format!("{b}: fatal: bad session count: 0\n"));
    let run = source(&[]);
    assert_eq!(run.code, Some(1));
    assert!(run
        .stderr
        .starts_with(&format!("{b}: fatal: usage: {b} -cdLNov")));
    let run = source(&["-M", "a!b", "x"]);
    assert_eq!(
        run.stderr,
        format!("{b}: warning: valid_hostname: invalid character 33(decimal): a!b\n{b}: fatal: bad hostname: a!b\n")
    );
    // A port nobody listens on: bind one, then drop it.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let run = source(&["-C", "3", &addr]);
    assert_eq!(run.code, Some(21));
    assert_eq!(
        run.stderr,
        format!(
            "{b}: warning: {addr}: connect: Connection refused\n{b}: warning: {addr}: connect: Connection refused\n{b}: fatal: {addr}: connect: Connection refused\n"
        )
    );
}

#[test]
fn ctrl_c_with_summary_reports_partial_figures() {
    use std::process::{Command, Stdio};
    let server = Server::start(sink);
    let mut child = Command::new(support::bin())
        .args([
            "--summary",
            "-d",
            "-w",
            "1",
            "-m",
            "100",
            "-M",
            "h",
            &server.addr,
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait for the first message, then interrupt.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !server
        .records(0)
        .first()
        .is_some_and(|r| r.text().contains("\r\n.\r\n"))
    {
        assert!(std::time::Instant::now() < deadline, "no message");
        std::thread::sleep(Duration::from_millis(10));
    }
    sigint(child.id());
    let start = std::time::Instant::now();
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("still running after SIGINT");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert_eq!(code, Some(130), "{err}");
    assert!(err.contains("interrupted: 1 sessions"), "{err}");
    assert!(err.contains("1 messages sent"), "{err}");
}

/// Sends SIGINT (a fresh CI machine may have no kill(1) binary).
#[allow(unsafe_code)]
fn sigint(pid: u32) {
    let pid = libc::pid_t::try_from(pid).unwrap();
    // SAFETY: kill(2) with a child's pid and a valid signal number.
    let rc = unsafe { libc::kill(pid, libc::SIGINT) };
    assert_eq!(rc, 0);
}

#[test]
fn multi_thread_runtime_delivers_every_message() {
    for threads in ["1", "2"] {
        let server = Server::start(sink);
        let run = source(&[
            "--threads",
            threads,
            "-c",
            "-s",
            "4",
            "-d",
            "-m",
            "40",
            "-M",
            "h",
            &server.addr,
        ]);
        assert_eq!(run.code, Some(0), "{run:?}");
        assert!(run.stdout.ends_with("\r40\r\n"), "{run:?}");
        let all: String = server.records(4).iter().map(|r| r.text()).collect();
        assert_eq!(all.matches("\r\n.\r\n").count(), 40);
        // Each message's Message-Id shows a distinct remaining budget.
        let mut left: Vec<&str> = all
            .lines()
            .filter_map(|l| l.strip_prefix("Message-Id: <"))
            .map(|l| l.split('.').nth(2).unwrap_or(""))
            .collect();
        left.sort_unstable();
        left.dedup();
        assert!(left.len() > 1, "{left:?}");
    }
}

/// The exit status of a fatal error in the phase of `verb` (docs/smtp-source.md
/// "Exit status"): Postfix exits 1 for all of them.
fn phase_exit_code(verb: &str) -> i32 {
    match verb {
        "CONNECT" => 22,
        "HELO" => 23,
        "MAIL" => 26,
        "RCPT" => 27,
        "DATA" => 28,
        "." => 29,
        other => panic!("no phase for {other}"),
    }
}

/// `--transcript` against `sink` with a two-line greeting, for `-M h`:
/// the lines a person reads, with the content's length as it travelled.
fn plain_transcript(addr: &str, content_len: usize) -> Vec<String> {
    [
        format!("== connected to {addr}"),
        "<- 220-test ESMTP".to_owned(),
        "<- 220 second line".to_owned(),
        "-> HELO h".to_owned(),
        "<- 250 test".to_owned(),
        "-> MAIL FROM:<foo@h>".to_owned(),
        "<- 250 2.1.0 Ok".to_owned(),
        "-> RCPT TO:<foo@h>".to_owned(),
        "<- 250 2.1.5 Ok".to_owned(),
        "-> DATA".to_owned(),
        "<- 354 End data with <CR><LF>.<CR><LF>".to_owned(),
        format!("-> <message, {content_len} bytes>"),
        "<- 250 2.0.0 Ok".to_owned(),
        "-> QUIT".to_owned(),
        "<- 221 Bye".to_owned(),
        "== closed".to_owned(),
    ]
    .to_vec()
}

fn two_line_greeting(ctx: &support::Ctx, cmd: &Cmd) -> Act {
    match cmd {
        Cmd::Connect => Act::Reply(vec![
            "220-test ESMTP".to_owned(),
            "220 second line".to_owned(),
        ]),
        _ => sink(ctx, cmd),
    }
}

/// The content's length as the server received it: from after DATA's
/// line to the CRLF before the final ".".
fn content_len(text: &str) -> usize {
    let start = text.find("DATA\r\n").unwrap() + "DATA\r\n".len();
    let end = text.find("\r\n.\r\n").unwrap() + 2;
    end - start
}

#[test]
fn transcript_shows_the_conversation() {
    let server = Server::start(two_line_greeting);
    let run = source(&["--transcript", "-M", "h", &server.addr]);
    assert_eq!(run.code, Some(0), "{run:?}");
    assert_eq!(run.stdout, "");
    let recs = server.records(1);
    let want = plain_transcript(&server.addr, content_len(&recs[0].text()));
    let got: Vec<&str> = run.stderr.lines().collect();
    assert_eq!(got, want);
}

/// With `-s 2` every line carries its session's number, 1 and 2; each
/// session's lines, taken apart, are the plain transcript.
#[test]
fn transcript_of_two_sessions_is_numbered() {
    let server = Server::start(two_line_greeting);
    let run = source(&[
        "--transcript",
        "-s",
        "2",
        "-m",
        "2",
        "-M",
        "h",
        &server.addr,
    ]);
    assert_eq!(run.code, Some(0), "{run:?}");
    let recs = server.records(2);
    assert_eq!(recs.len(), 2);
    // The two messages can differ in length: Message-Id shows the budget
    // left when the header was rendered, "0000" or, once the other
    // session has found it empty, "ffffffff". Each session's transcript
    // must show the length of one of the two.
    let lens = [content_len(&recs[0].text()), content_len(&recs[1].text())];
    let mut total = 0;
    for n in 1..=2 {
        let prefix = format!("[{n}] ");
        let mine: Vec<&str> = run
            .stderr
            .lines()
            .filter_map(|l| l.strip_prefix(&prefix))
            .collect();
        let want = lens
            .iter()
            .map(|len| plain_transcript(&server.addr, *len))
            .find(|want| *want == mine);
        assert!(want.is_some(), "session {n}: {}", run.stderr);
        total += mine.len();
    }
    assert_eq!(run.stderr.lines().count(), total, "{}", run.stderr);
}

/// AUTH's secrets never reach the transcript (nor `-v`), though the server
/// got them: PLAIN's initial response, and both LOGIN answers.
#[test]
fn transcript_masks_auth_secrets() {
    use base64::Engine as _;
    let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
    let (user, pass, plain) = (b64(b"u"), b64(b"secretpw"), b64(b"\0u\0secretpw"));
    let (u2, p2) = (user.clone(), pass.clone());
    let server = Server::start(move |ctx, cmd| match cmd {
        Cmd::Line(l) if l.starts_with("EHLO") => Act::Reply(vec![
            "250-test".to_owned(),
            "250 AUTH PLAIN LOGIN".to_owned(),
        ]),
        Cmd::Line(l) if l.starts_with("AUTH PLAIN") => Act::reply("235 2.7.0 ok"),
        Cmd::Line(l) if l == "AUTH LOGIN" => Act::reply("334 VXNlcm5hbWU6"),
        Cmd::Line(l) if *l == u2 => Act::reply("334 UGFzc3dvcmQ6"),
        Cmd::Line(l) if *l == p2 => Act::reply("235 2.7.0 ok"),
        _ => sink(ctx, cmd),
    });
    let auth = [
        "--auth-plaintext",
        "--auth-user",
        "u",
        "--auth-password",
        "secretpw",
        "-M",
        "h",
    ];
    for (mech, shown) in [
        (
            "--auth=PLAIN",
            &["-> AUTH PLAIN ****", "<- 235 2.7.0 ok"][..],
        ),
        (
            "--auth=LOGIN",
            &[
                "-> AUTH LOGIN",
                "<- 334 VXNlcm5hbWU6",
                "-> ****",
                "<- 334 UGFzc3dvcmQ6",
                "-> ****",
                "<- 235 2.7.0 ok",
            ][..],
        ),
    ] {
        let run = source(&[&["--transcript", "-v", mech][..], &auth, &[&server.addr]].concat());
        assert_eq!(run.code, Some(0), "{mech}: {run:?}");
        let lines: Vec<&str> = run.stderr.lines().collect();
        let at = lines.iter().position(|l| l.starts_with("-> AUTH")).unwrap();
        let transcript: Vec<&str> = lines[at..]
            .iter()
            .copied()
            .filter(|l| !l.starts_with(support::bin()))
            .take(shown.len())
            .collect();
        assert_eq!(transcript, shown, "{mech}");
        for secret in ["secretpw", &plain, &pass, &user] {
            assert!(!run.stderr.contains(secret), "{mech}: {secret} shown");
        }
    }
    let recs = server.records(2);
    assert!(recs[0].text().contains(&plain), "PLAIN was not sent");
    assert!(recs[1].text().contains(&pass), "LOGIN was not sent");
}

/// `-v` stays Postfix's when `--transcript` is given too: its lines are
/// the same, in the same order, as without it.
#[test]
fn transcript_leaves_verbose_output_alone() {
    let server = Server::start(two_line_greeting);
    let alone = source(&["-v", "-M", "h", &server.addr]);
    let both = source(&["-v", "--transcript", "-M", "h", &server.addr]);
    assert_eq!((alone.code, both.code), (Some(0), Some(0)));
    let verbose: Vec<&str> = both
        .stderr
        .lines()
        .filter(|l| l.starts_with(support::bin()))
        .collect();
    assert_eq!(verbose, alone.stderr.lines().collect::<Vec<_>>());
    assert!(alone.stderr.lines().all(|l| l.starts_with(support::bin())));
    assert_eq!(
        both.stderr.lines().count(),
        alone.stderr.lines().count() + plain_transcript("", 0).len()
    );
}
