//! The opt-in ESMTP options (`--chunking`, `--smtputf8`, `--size`) over
//! real sockets: exact reply bytes from raw pipelined clients, and the
//! dump records they leave.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use crate::common::*;
use crate::dump::{files, normalise};

const GREET: &str = "220 smtp-sink ESMTP\r\n";
const EHLO_ALL_NEW: &str = "250-smtp-sink\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n\
250-AUTH PLAIN LOGIN\r\n250-XCLIENT NAME HELO\r\n250-XFORWARD NAME ADDR PROTO HELO\r\n\
250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n250 \r\n";
const MAIL_OK: &str = "250 2.1.0 Ok\r\n";
const RCPT_OK: &str = "250 2.1.5 Ok\r\n";
const OK: &str = "250 2.0.0 Ok\r\n";
const TOO_BIG: &str = "552 5.3.4 Message size exceeds fixed limit\r\n";

/// A message with a leading-dot line, a lone-dot line, a bare CR and a
/// bare LF: what dot-stuffing and CR removal must agree on.
const MESSAGE: &[u8] =
    b"Subject: chunks\r\n\r\n.leading dot\r\n.\r\nbare\rCR, bare\nLF\r\n\xc3\xa9t\xc3\xa9\r\nend\r\n";

/// Reads replies until `want` bytes have arrived (or 5 s pass).
fn read_exactly(c: &mut Client, want: usize) -> Vec<u8> {
    let (got, _) = c.read_until(|b| b.len() >= want, Duration::from_secs(5));
    got
}

/// The sink's peak resident memory in KiB (VmHWM).
fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("status")
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[test]
fn pipelined_bdat_gets_its_replies_in_one_write_and_a_postfix_record() {
    let dir = open_dir();
    let template = format!("{}/m.", dir.path().display());
    let sink = start(
        OURS,
        &[
            "--chunking",
            "--smtputf8",
            "--size",
            "1000",
            "-d",
            &template,
        ],
    );
    let Addr::Tcp(addr) = &sink.addr else {
        panic!("a TCP sink")
    };
    let mut s = std::net::TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut c = Client::Tcp(s.try_clone().expect("clone"));
    assert_eq!(read_exactly(&mut c, GREET.len()), GREET.as_bytes());
    s.write_all(b"EHLO client.example\r\n").expect("send");
    assert_eq!(
        show(&read_exactly(&mut c, EHLO_ALL_NEW.len())),
        show(EHLO_ALL_NEW.as_bytes())
    );
    // One packet: MAIL, RCPT, BDAT and its 100 bytes. The three replies
    // must come back in one write, so the first read has them all.
    let body = [MESSAGE, &vec![b'x'; 100 - MESSAGE.len() - 2], b"\r\n"].concat();
    assert_eq!(body.len(), 100);
    let batch = [
        &b"MAIL FROM:<a@b.example>\r\nRCPT TO:<c@d.example>\r\nBDAT 100 LAST\r\n"[..],
        &body,
    ]
    .concat();
    s.write_all(&batch).expect("send");
    let mut buf = [0u8; 4096];
    let n = s.read(&mut buf).expect("read");
    assert_eq!(
        show(&buf[..n]),
        show(format!("{MAIL_OK}{RCPT_OK}{OK}").as_bytes())
    );
    s.write_all(b"QUIT\r\n").expect("send");
    assert_eq!(read_exactly(&mut c, 9), b"221 Bye\r\n");
    drop(sink);
    let found = files(dir.path());
    assert_eq!(found.len(), 1, "{found:?}");
    let want = [
        &b"X-Client-Addr: 127.0.0.1\nX-Client-Proto: ESMTP\nX-Helo-Args: client.example\n\
X-Mail-Args: <a@b.example>\nX-Rcpt-Args: <c@d.example>\n\
Received: from client.example ([127.0.0.1])\n\tby smtp-sink (smtp-sink) with ESMTP id <ID>;\n\t<DATE>\n\
Subject: chunks\n\n.leading dot\n.\nbareCR, bare\nLF\n\xc3\xa9t\xc3\xa9\nend\n"[..],
        &vec![b'x'; 100 - MESSAGE.len() - 2],
        b"\n\n",
    ]
    .concat();
    assert_eq!(
        normalise(&std::fs::read(&found[0]).expect("read")),
        String::from_utf8_lossy(&want)
    );
}

#[test]
fn the_same_message_by_data_and_by_bdat_gives_the_same_record() {
    for flag in ["-d", "-D"] {
        let dir = open_dir();
        let template = if flag == "-d" {
            format!("{}/m.", dir.path().display())
        } else {
            format!("{}/shared", dir.path().display())
        };
        let sink = start(OURS, &["--chunking", flag, &template]);
        let head = b"EHLO c\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\n";
        let by_data = [&head[..], b"DATA\r\n", &smtp_proto::stuff(MESSAGE)].concat();
        let (one, two) = MESSAGE.split_at(21);
        let by_bdat = [
            &head[..],
            format!("BDAT {}\r\n", one.len()).as_bytes(),
            one,
            b"BDAT 0\r\n",
            format!("BDAT {} LAST\r\n", two.len()).as_bytes(),
            two,
        ]
        .concat();
        let data_out = converse(&sink.addr, &[&by_data, b"QUIT\r\n"]);
        assert!(
            show(&data_out).ends_with(&show(format!("{OK}221 Bye\r\n<EOF>").as_bytes())),
            "{}",
            show(&data_out)
        );
        // The BDAT commands go in pieces that cut through lines and chunks.
        let mut pieces: Vec<&[u8]> = by_bdat.chunks(7).collect();
        pieces.push(b"QUIT\r\n");
        let mut c = Client::connect(&sink.addr);
        let _ = read_round(&mut c);
        for p in &pieces {
            assert!(c.send(p));
        }
        let (bdat_out, _) = c.read_until(|b| b.ends_with(b"221 Bye\r\n"), Duration::from_secs(5));
        assert!(
            show(&bdat_out).ends_with(&show(
                format!(
                    "{MAIL_OK}{RCPT_OK}250 2.0.0 Ok: 21 bytes\r\n250 2.0.0 Ok: 0 bytes\r\n{OK}221 Bye\r\n"
                )
                .as_bytes()
            )),
            "{}",
            show(&bdat_out)
        );
        drop(c);
        drop(sink);
        let found = files(dir.path());
        let records: Vec<String> = if flag == "-d" {
            found
                .iter()
                .map(|f| normalise(&std::fs::read(f).expect("read")))
                .collect()
        } else {
            assert_eq!(found.len(), 1, "{found:?}");
            let all = normalise(&std::fs::read(&found[0]).expect("read"));
            all.split_inclusive("end\n\n").map(str::to_owned).collect()
        };
        assert_eq!(records.len(), 2, "{flag}: {records:?}");
        assert_eq!(records[0], records[1], "{flag}");
        assert!(
            records[0].ends_with(
                "\t<DATE>\nSubject: chunks\n\n.leading dot\n.\nbareCR, bare\nLF\n\u{e9}t\u{e9}\nend\n\n"
            ),
            "{}",
            records[0]
        );
    }
}

#[test]
fn bdat_errors_and_a_syntax_error_that_closes() {
    let sink = start(OURS, &["--chunking", "-L"]);
    let got = converse(
        &sink.addr,
        &[
            b"LHLO x\r\n",
            b"BDAT 6\r\nRSET\r\nMAIL FROM:<a>\r\nBDAT 3 LAST\r\nabcRCPT TO:<b>\r\nRCPT TO:<c>\r\n\
BDAT 1\r\nxDATA\r\nBDAT 2 LAST\r\nyz",
            b"BDAT twelve\r\nNOOP\r\n",
        ],
    );
    let lhlo = "250-smtp-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n\
250-XCLIENT NAME HELO\r\n250-XFORWARD NAME ADDR PROTO HELO\r\n250-ENHANCEDSTATUSCODES\r\n\
250-DSN\r\n250-CHUNKING\r\n250 \r\n";
    let want = [
        GREET,
        lhlo,
        "503 5.5.1 Error: need MAIL command\r\n",
        MAIL_OK,
        "503 5.5.1 Error: need RCPT command\r\n",
        RCPT_OK,
        RCPT_OK,
        "250 2.0.0 Ok: 1 bytes\r\n",
        "503 5.5.1 Error: DATA after BDAT\r\n",
        "250 2.2.0 Ok\r\n250 2.2.0 Ok\r\n",
        "501 5.5.4 Syntax: BDAT size [LAST]\r\n<EOF>",
    ]
    .concat();
    assert_eq!(show(&got), show(want.as_bytes()));
    // Without --chunking, BDAT is an unknown command and its "chunk" is
    // read as commands, exactly as before.
    let sink = start(OURS, &[]);
    let got = converse(&sink.addr, &[b"BDAT 6 LAST\r\nNOOP\r\n"]);
    assert_eq!(
        show(&got),
        show(format!("{GREET}500 5.5.1 Error: unknown command\r\n{OK}").as_bytes())
    );
}

#[test]
fn size_limit_refuses_mail_and_content_and_counts_what_arrived() {
    let dir = open_dir();
    let template = format!("{}/m.", dir.path().display());
    let sink = start(
        OURS,
        &["--size", "1000", "--chunking", "-c", "-d", &template],
    );
    let mt = "MAIL FROM:<a>\r\nRCPT TO:<b>\r\n";
    let over_data = format!("{mt}DATA\r\n{}\r\n.\r\n", "y".repeat(999));
    let exact_bdat = format!("{mt}BDAT 1000 LAST\r\n{}\r\n", "z".repeat(998));
    let got = converse(
        &sink.addr,
        &[
            b"EHLO x\r\nMAIL FROM:<a> SIZE=1001\r\nRCPT TO:<b>\r\n",
            over_data.as_bytes(),
            exact_bdat.as_bytes(),
            b"QUIT\r\n",
        ],
    );
    let want = [
        GREET,
        &EHLO_ALL_NEW.replace("250-SMTPUTF8\r\n", ""),
        TOO_BIG,
        "503 5.5.1 Error: need MAIL command\r\n",
        MAIL_OK,
        RCPT_OK,
        "354 End data with <CR><LF>.<CR><LF>\r\n",
        TOO_BIG,
        MAIL_OK,
        RCPT_OK,
        OK,
        "221 Bye\r\n<EOF>",
    ]
    .concat();
    assert_eq!(show(&got), show(want.as_bytes()));
    // Both messages arrived, so -c counts both; only the one within the
    // limit was dumped.
    assert_eq!(sink.wait_counters(|c| c.0 == 1), Some((1, 1, 2)));
    drop(sink);
    let found = files(dir.path());
    assert_eq!(found.len(), 1, "{found:?}");
    let record = std::fs::read(&found[0]).expect("read");
    assert!(record.ends_with(format!("\n{}\n\n", "z".repeat(998)).as_bytes()));
}

#[test]
fn smtputf8_addresses_reach_the_dump_intact() {
    let dir = open_dir();
    let template = format!("{}/m.", dir.path().display());
    let sink = start(OURS, &["--smtputf8", "-d", &template]);
    let got = converse(
        &sink.addr,
        &[
            "EHLO x\r\n".as_bytes(),
            "MAIL FROM:<j\u{f6}rg@b\u{fc}cher.example> SMTPUTF8\r\nRCPT TO:<\u{7528}\u{6237}@\u{4f8b}\u{5b50}.example>\r\n\
DATA\r\nSubject: \u{1f4e7}\r\n\r\n.\r\nQUIT\r\n"
                .as_bytes(),
        ],
    );
    assert!(
        show(&got).contains("250-DSN\\r\\n\n250-SMTPUTF8\\r\\n\n250 \\r\\n"),
        "{}",
        show(&got)
    );
    assert!(
        show(&got).ends_with(&show(format!("{OK}221 Bye\r\n<EOF>").as_bytes())),
        "{}",
        show(&got)
    );
    drop(sink);
    let found = files(dir.path());
    assert_eq!(found.len(), 1);
    let record = String::from_utf8(std::fs::read(&found[0]).expect("read")).expect("UTF-8");
    assert!(
        record.contains(
            "X-Mail-Args: <j\u{f6}rg@b\u{fc}cher.example> SMTPUTF8\n\
X-Rcpt-Args: <\u{7528}\u{6237}@\u{4f8b}\u{5b50}.example>\n"
        ),
        "{record}"
    );
    assert!(record.ends_with("\nSubject: \u{1f4e7}\n\n\n"), "{record}");
}

/// A client announcing a 256 MiB chunk: the sink reads it through without
/// holding it (its peak RSS stays far below the chunk size).
#[test]
fn a_huge_chunk_does_not_grow_the_sink() {
    const SIZE: usize = 256 << 20;
    let sink = start(OURS, &["--chunking"]);
    let pid = sink.child.as_ref().expect("child").id();
    let mut c = Client::connect(&sink.addr);
    let _ = read_round(&mut c);
    let head = format!("MAIL FROM:<a>\r\nRCPT TO:<b>\r\nBDAT {SIZE} LAST\r\n");
    assert!(c.send(head.as_bytes()));
    let block = vec![b'x'; 1 << 20];
    let started = Instant::now();
    for _ in 0..SIZE / block.len() {
        assert!(c.send(&block), "the sink stopped reading");
    }
    assert!(c.send(b"QUIT\r\n"));
    let (got, _) = c.read_until(|b| b.ends_with(b"221 Bye\r\n"), Duration::from_secs(30));
    assert_eq!(
        show(&got),
        show(format!("{MAIL_OK}{RCPT_OK}{OK}221 Bye\r\n").as_bytes()),
        "after {:?}",
        started.elapsed()
    );
    let peak = peak_rss_kib(pid);
    assert!(
        peak < 64 * 1024,
        "peak RSS {peak} KiB for a {SIZE}-byte chunk"
    );
}
