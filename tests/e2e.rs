//! End to end: our smtp-source drives our smtp-sink on loopback, and the
//! two sides must agree that nothing was lost: every message the sink
//! answered 250 to is in its dump file, whole.

use std::fs;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

mod support;
use support::{
    bin, dump_dir, expected_l_body, files_in, free_port, is_root, json_number, start_sink, Killed,
};

fn run_source(args: &[&str], port: u16) -> Output {
    let out = Command::new(bin("smtp-source"))
        .args(args)
        .arg(format!("127.0.0.1:{port}"))
        .output()
        .expect("run smtp-source");
    assert!(
        out.status.success(),
        "smtp-source failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs our source into our sink with `-d` dumps and checks that every
/// message is in its own dump file, whole, with both recipients.
fn dumps_are_whole(source_args: &[&str], sink_args: &[&str]) {
    let messages = 60;
    let dir = dump_dir();
    let template = format!("{}/m.", dir.path().display());
    let port = free_port();
    let mut sink = vec!["-d", template.as_str()];
    sink.extend_from_slice(sink_args);
    let _sink = start_sink(&sink, port);
    let mut args = vec!["-s", "5", "-m", "60", "-l", "5000", "-r", "2"];
    args.extend_from_slice(source_args);
    run_source(&args, port);
    // The source exits after its last QUIT; give the sink a moment to close
    // the files of the last transactions (bounded).
    let deadline = Instant::now() + Duration::from_secs(10);
    while files_in(dir.path()).len() < messages && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let files = files_in(dir.path());
    assert_eq!(
        files.len(),
        messages,
        "one dump per message: {source_args:?}"
    );
    let body = expected_l_body(5000);
    for f in &files {
        let data = fs::read(f).unwrap();
        assert!(
            data.starts_with(b"X-Client-Addr: 127.0.0.1\n"),
            "{}",
            f.display()
        );
        let rcpts = data.windows(13).filter(|w| w == b"X-Rcpt-Args: ").count();
        assert_eq!(rcpts, 2, "two recipients recorded in {}", f.display());
        // Headers end at the first empty line after Received; the body follows.
        let split = data
            .windows(2)
            .position(|w| w == b"\n\n")
            .expect("header/body separator");
        let rest = &data[split + 2..];
        assert_eq!(
            &rest[..rest.len() - 1],
            &body[..],
            "body of {} ({source_args:?})",
            f.display()
        );
        assert_eq!(rest.last(), Some(&b'\n'), "record ends with its empty line");
    }
}

#[test]
fn every_accepted_message_is_dumped_whole() {
    dumps_are_whole(&["-d"], &[]);
}

/// ESMTP: pipelined DATA, one-write BDAT, BDAT in many chunks, SIZE, and
/// a connection per message; all land whole, as with Postfix's mode.
#[test]
fn esmtp_messages_are_dumped_whole() {
    let esmtp_sink = ["--chunking", "--size", "1000000", "--smtputf8"];
    for args in [
        &["-d", "--pipelining"][..],
        &["-d", "--pipelining", "--chunking", "--size"],
        &["-d", "--pipelining", "--chunking=777", "--8bitmime"],
        &["--pipelining", "--chunking", "--smtputf8"],
        &["-d", "--ehlo", "--chunking=1000"],
    ] {
        dumps_are_whole(args, &esmtp_sink);
    }
    // LMTP: LHLO's capabilities; one end-of-data reply per recipient.
    dumps_are_whole(
        &["-L", "-d", "--pipelining", "--chunking"],
        &["-L", "--chunking"],
    );
}

#[test]
fn counts_agree_between_source_and_sink() {
    let port = free_port();
    let mut cmd = Command::new(bin("smtp-sink"));
    if is_root() {
        cmd.args(["-u", "nobody"]);
    }
    let sink = cmd
        .args(["-c", "-n", "20"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("128")
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut sink = Killed(sink);
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(20));
    }
    // The probe connection above counts as one session.
    let out = run_source(&["-s", "4", "-m", "19", "--json", "-"], port);
    let report = String::from_utf8(out.stdout).unwrap();
    assert!(report.contains("\"messages_sent\":19,"), "{report}");
    assert!(report.contains("\"accepted\":19,"), "{report}");
    let status = loop {
        if let Some(s) = sink.0.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline + Duration::from_secs(10),
            "sink did not exit after -n 20"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success());
    let mut out = String::new();
    use std::io::Read;
    sink.0
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    let last = out.split('\r').rfind(|s| !s.is_empty()).unwrap();
    assert_eq!(last, "sess=20 quit=19 mesg=19");
}

/// `-A` under pipelining against our sink's rejection rules: every
/// rejection is counted in its phase, the replies of an aborted group are
/// not, and the run ends with nothing delivered where nothing could be.
#[test]
fn tolerated_rejections_under_pipelining() {
    let field = json_number;
    for (sink_rule, pipelined, phase) in [
        ("mail", &["--pipelining"][..], "\"mail\":"),
        ("mail", &["--pipelining", "--chunking"][..], "\"mail\":"),
        ("rcpt", &["--pipelining"][..], "\"rcpt\":"),
        ("rcpt", &["--pipelining", "--chunking"][..], "\"rcpt\":"),
    ] {
        let port = free_port();
        let _sink = start_sink(&["--chunking", "-r", sink_rule], port);
        let mut args = vec!["-A", "-d", "-s", "2", "-m", "20", "-r", "2", "--json", "-"];
        args.extend_from_slice(pipelined);
        let out = run_source(&args, port);
        let json = String::from_utf8(out.stdout).unwrap();
        let rejects = &json[json.find("\"rejects_by_phase\"").unwrap()..];
        let failed = &json[json.find("\"failed_by_phase\"").unwrap()..];
        // MAIL: one reject per transaction; RCPT: two (every recipient).
        let per_txn = if sink_rule == "mail" { 1 } else { 2 };
        assert_eq!(
            field(rejects, phase),
            20 * per_txn,
            "{sink_rule} {pipelined:?}: {json}"
        );
        assert_eq!(
            field(failed, phase),
            20,
            "{sink_rule} {pipelined:?}: {json}"
        );
        // The DATA/BDAT replies of the aborted groups are not counted.
        for other in ["\"data\":", "\"bdat\":", "\"end-of-data\":"] {
            assert_eq!(
                field(rejects, other),
                0,
                "{other} {sink_rule} {pipelined:?}: {json}"
            );
        }
        assert_eq!(field(&json, "\"accepted\":"), 0, "{json}");
    }
}
