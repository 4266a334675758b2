//! Smuggling and abuse vectors against the real smtp-sink over TCP: bare
//! LF in commands and in DATA, fake ends of data (`\n.\n`, `\r\n.\n`,
//! `\n.\r\n`), NUL bytes, over-long command lines (10 KB and 10 MB without
//! a line end), 10,000 pipelined commands in one write and 1,000
//! recipients in one transaction. The codec has unit tests for each rule;
//! these check what a client of the running sink gets: the exact replies,
//! in order, the dump records, and that the sink goes on serving.
//!
//! The sink's rules (docs/smtp-sink.md): a command line ends only at CR
//! LF, a NUL ends a command line as it does for Postfix's C strings, only
//! CR LF `.` CR LF ends DATA, a command line over 2046 bytes closes the
//! session without a reply.

use std::{
    fs,
    io::{ErrorKind, Read, Write},
    net::{Shutdown, TcpStream},
    path::Path,
    time::Duration,
};

mod support;
use support::{dump_dir, files_in, free_port, start_sink};

const GREETING: &str = "220 smtp-sink ESMTP\r\n";
const MAIL_OK: &str = "250 2.1.0 Ok\r\n";
const RCPT_OK: &str = "250 2.1.5 Ok\r\n";
const DATA_GO: &str = "354 End data with <CR><LF>.<CR><LF>\r\n";
const OK: &str = "250 2.0.0 Ok\r\n";
const UNKNOWN: &str = "500 5.5.1 Error: unknown command\r\n";
const BYE: &str = "221 Bye\r\n";

/// Sends `input` in one write (from another thread, so that a large
/// input and the replies cannot block each other) and returns everything
/// the sink sent until it closed. A write the sink cuts short by closing
/// is not an error here; a reset counts as the end.
fn session(port: u16, input: Vec<u8>) -> String {
    let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(300)))
        .unwrap();
    let mut writer = stream.try_clone().unwrap();
    let sender = std::thread::spawn(move || {
        if writer.write_all(&input).is_ok() {
            let _ = writer.flush();
        }
    });
    let mut reader = stream;
    let mut out = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    loop {
        match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            // A read that times out means the sink stopped answering: the
            // cap is minutes, far past what a loaded machine needs.
            Err(e) => panic!(
                "read ({:?}): {e} after {:?}",
                e.kind(),
                String::from_utf8_lossy(&out)
            ),
        }
    }
    let _ = reader.shutdown(Shutdown::Both);
    sender.join().expect("writer thread");
    String::from_utf8(out).expect("replies are ASCII")
}

/// The one dump record in `dir`.
fn only_record(dir: &Path) -> String {
    let files = files_in(dir);
    assert_eq!(files.len(), 1, "{files:?}");
    fs::read_to_string(&files[0]).expect("record")
}

/// The record's head: the sink's lines and Received header, without the
/// date line; and the message after it.
fn split_record(record: &str) -> (Vec<&str>, &str) {
    let at = record.find("\n\t").expect("Received header");
    let date_end = record[at + 2..]
        .find("\n\t")
        .map(|i| at + 2 + i + 2)
        .and_then(|i| record[i..].find('\n').map(|j| i + j + 1))
        .expect("date line");
    let head: Vec<&str> = record[..at].lines().collect();
    (head, &record[date_end..])
}

/// A bare LF does not end a command line: what follows it is part of
/// the line, and is never run as a command.
#[test]
fn bare_lf_never_ends_a_command() {
    let port = free_port();
    let _sink = start_sink(&[], port);
    // "NOOP\nNOOP" is one line, whose verb is not a command.
    assert_eq!(
        session(port, b"NOOP\nNOOP\r\nQUIT\r\n".to_vec()),
        format!("{GREETING}{UNKNOWN}{BYE}")
    );
    // The MAIL after the LF is HELO's argument: RCPT still needs a MAIL.
    assert_eq!(
        session(
            port,
            b"HELO a\nMAIL FROM:<x@y>\r\nRCPT TO:<z@y>\r\nQUIT\r\n".to_vec()
        ),
        format!("{GREETING}250 smtp-sink\r\n503 5.5.1 Error: need MAIL command\r\n{BYE}")
    );
}

/// `\n.\n`, `\r\n.\n` and `\n.\r\n` do not end DATA: the commands behind
/// them are message content, not commands, and the record holds them.
#[test]
fn fake_ends_of_data_are_content() {
    let dir = dump_dir();
    let port = free_port();
    let template = dir.path().join("m.");
    let _sink = start_sink(&["-d", template.to_str().unwrap()], port);
    let input = b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n\
        a\n.\nMAIL FROM:<evil@x>\r\n\
        b\r\n.\nRCPT TO:<evil@y>\r\n\
        c\n.\r\nDATA\r\n\
        d\r\n.\r\nQUIT\r\n";
    assert_eq!(
        session(port, input.to_vec()),
        format!("{GREETING}{MAIL_OK}{RCPT_OK}{DATA_GO}{OK}{BYE}")
    );
    let record = only_record(dir.path());
    let (head, message) = split_record(&record);
    assert_eq!(
        head,
        [
            "X-Client-Addr: 127.0.0.1",
            "X-Client-Proto: SMTP",
            "X-Mail-Args: <a@x>",
            "X-Rcpt-Args: <b@y>",
            "Received: from [127.0.0.1] ([127.0.0.1])",
        ]
    );
    // CRs removed; the "." that starts a line after CR LF is taken as
    // dot-stuffing and removed, the others stay.
    assert_eq!(
        message,
        "a\n.\nMAIL FROM:<evil@x>\nb\n\nRCPT TO:<evil@y>\nc\n.\nDATA\nd\n\n"
    );
}

/// A NUL ends a command line (what follows it on the line is dropped,
/// in the verb as in the arguments); in DATA it is content.
#[test]
fn nul_bytes_in_commands_and_data() {
    let dir = dump_dir();
    let port = free_port();
    let template = dir.path().join("m.");
    let _sink = start_sink(&["-d", template.to_str().unwrap()], port);
    let input =
        b"NO\0OP\r\nMAIL FROM:<a\0b@x>\r\nRCPT TO:<c@y>\0<d@y>\r\nDATA\r\nx\0y\r\n.\r\nQUIT\r\n";
    assert_eq!(
        session(port, input.to_vec()),
        format!("{GREETING}{UNKNOWN}{MAIL_OK}{RCPT_OK}{DATA_GO}{OK}{BYE}")
    );
    let record = only_record(dir.path());
    let (head, message) = split_record(&record);
    assert_eq!(head[2..4], ["X-Mail-Args: <a", "X-Rcpt-Args: <c@y>"]);
    assert_eq!(message, "x\0y\n\n");
}

/// A command line over the limit closes the session without a reply,
/// whether it is 10 KB or 10 MB long: the sink neither hangs reading it
/// nor buffers it, and goes on serving others.
///
/// The replies before the long line are read first: a close with unread
/// input makes the kernel send a reset, which may discard replies the
/// client has not read yet.
#[test]
fn overlong_command_lines_close_without_a_reply() {
    let port = free_port();
    let _sink = start_sink(&[], port);
    for len in [10 * 1024, 10 * 1024 * 1024, 2047] {
        let mut client = Client::connect(port);
        client.send(b"NOOP\r\n");
        assert_eq!(client.read_exactly(OK.len()), OK);
        client.send(&vec![b'A'; len]);
        client.send(b"\r\nQUIT\r\n");
        assert_eq!(client.rest(), "", "{len} bytes");
    }
    // The longest line allowed (2046 bytes and CR LF) is still a command.
    let mut input = vec![b'B'; 2046];
    input.extend_from_slice(b"\r\nQUIT\r\n");
    assert_eq!(session(port, input), format!("{GREETING}{UNKNOWN}{BYE}"));
}

/// A client that writes and reads in steps.
struct Client {
    stream: TcpStream,
}

impl Client {
    /// Connects and reads the greeting.
    fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(300)))
            .unwrap();
        let mut c = Client { stream };
        assert_eq!(c.read_exactly(GREETING.len()), GREETING);
        c
    }

    /// Writes all of `bytes`; the sink may close before it has read them
    /// all, which ends the write early.
    fn send(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
    }

    fn read_exactly(&mut self, n: usize) -> String {
        let mut buf = vec![0; n];
        self.stream.read_exact(&mut buf).expect("reply");
        String::from_utf8(buf).expect("ASCII")
    }

    /// Everything up to the close (a reset counts as the close).
    fn rest(&mut self) -> String {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
                Err(e) => panic!("read: {e}"),
            }
        }
        String::from_utf8_lossy(&out).into_owned()
    }
}

/// In DATA there is no line limit: 10 MB without a line end is content.
#[test]
fn a_10_mb_line_in_data_is_content() {
    let port = free_port();
    let _sink = start_sink(&[], port);
    let mut input = b"MAIL FROM:<a@x>\r\nRCPT TO:<b@y>\r\nDATA\r\n".to_vec();
    input.resize(input.len() + 10 * 1024 * 1024, b'C');
    input.extend_from_slice(b"\r\n.\r\nQUIT\r\n");
    assert_eq!(
        session(port, input),
        format!("{GREETING}{MAIL_OK}{RCPT_OK}{DATA_GO}{OK}{BYE}")
    );
}

/// 10,000 commands in one write: every one answered, in order.
#[test]
fn ten_thousand_pipelined_commands_are_answered_in_order() {
    let port = free_port();
    let _sink = start_sink(&[], port);
    let kinds: [(&str, &str); 5] = [
        ("NOOP\r\n", OK),
        ("RSET\r\n", "250 2.1.0 Ok\r\n"),
        ("VRFY someone\r\n", OK),
        ("XYZZY\r\n", UNKNOWN),
        ("HELO h\r\n", "250 smtp-sink\r\n"),
    ];
    let mut input = String::new();
    let mut expected = String::from(GREETING);
    for i in 0..10_000 {
        let (command, reply) = kinds[i % kinds.len()];
        input.push_str(command);
        expected.push_str(reply);
    }
    input.push_str("QUIT\r\n");
    expected.push_str(BYE);
    let out = session(port, input.into_bytes());
    assert_eq!(out.matches("\r\n").count(), 10_002);
    assert!(
        out == expected,
        "the replies differ from the commands' order"
    );
}

/// 1,000 recipients in one transaction, pipelined: each gets 250 (the
/// sink has no recipient limit, as Postfix's has none), and the record
/// lists them all, in order.
#[test]
fn a_thousand_recipients_in_one_transaction() {
    let dir = dump_dir();
    let port = free_port();
    let template = dir.path().join("m.");
    let _sink = start_sink(&["-d", template.to_str().unwrap()], port);
    let mut input = String::from("EHLO client\r\nMAIL FROM:<a@x>\r\n");
    for i in 0..1000 {
        input.push_str(&format!("RCPT TO:<r{i}@y>\r\n"));
    }
    input.push_str("DATA\r\nSubject: many\r\n\r\nhello\r\n.\r\nQUIT\r\n");
    let out = session(port, input.into_bytes());
    let after_ehlo = out.find("250 \r\n").expect("EHLO reply") + "250 \r\n".len();
    assert_eq!(
        &out[after_ehlo..],
        format!("{MAIL_OK}{}{DATA_GO}{OK}{BYE}", RCPT_OK.repeat(1000))
    );
    let record = only_record(dir.path());
    let (head, message) = split_record(&record);
    let rcpts: Vec<&str> = head
        .iter()
        .filter_map(|l| l.strip_prefix("X-Rcpt-Args: "))
        .collect();
    let expected: Vec<String> = (0..1000).map(|i| format!("<r{i}@y>")).collect();
    assert_eq!(rcpts, expected);
    assert_eq!(message, "Subject: many\n\nhello\n\n");
}
