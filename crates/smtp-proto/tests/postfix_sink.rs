//! The codec against Postfix's own smtp-sink. For every smuggling vector
//! and stuffing case, the real sink (with `-d` dumping) must end the
//! message where `DataDecoder` does, in both modes, and its dump must hold
//! what `Unstuff` yields (with CRs removed, as the dump does). And the
//! sink must close on exactly the command lines that `CommandParser` with
//! Postfix's limit reports as too long.
//!
//! Postfix missing: a failure when `CI` is set, a notice otherwise.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use smtp_proto::{DataDecoder, DataEvent, DataMode};

const SMTP_SINK: &str = "/usr/sbin/smtp-sink";

/// The sink process and its directory, both removed on every path out.
struct Sink {
    child: Child,
    dir: PathBuf,
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.trim_ascii() == b"0")
        .unwrap_or(false)
}

fn start_sink() -> Option<Sink> {
    if !Path::new(SMTP_SINK).exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{SMTP_SINK} is missing: install Postfix (the `postfix` package)"
        );
        eprintln!("skipping: {SMTP_SINK} not installed");
        return None;
    }
    // One directory per sink: the tests of this binary run in parallel.
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("smtp-proto-sink-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    // The sink drops to `nobody` when run as root and must still write.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
    let mut cmd = Command::new(SMTP_SINK);
    if is_root() {
        cmd.args(["-u", "nobody"]);
    }
    let child = cmd
        .arg("-d")
        .arg(dir.join("m."))
        .arg(format!("unix:{}", dir.join("sock").display()))
        .arg("10")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null()) // "warning: command line too long" is expected
        .spawn()
        .expect("start smtp-sink");
    let sink = Sink { child, dir };
    let deadline = Instant::now() + Duration::from_secs(20);
    while !sink.dir.join("sock").exists() {
        assert!(Instant::now() < deadline, "smtp-sink never listened");
        std::thread::sleep(Duration::from_millis(10));
    }
    Some(sink)
}

fn dumps(dir: &Path) -> BTreeSet<PathBuf> {
    std::fs::read_dir(dir)
        .expect("read dir")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.file_name().is_some_and(|n| n != "sock"))
        .collect()
}

/// Sends one transaction whose DATA section is `data` followed by
/// `QUIT`; returns the replies after 354 and the dump of the message.
fn transaction(sink: &Sink, data: &[u8]) -> (Vec<String>, Vec<u8>) {
    let before = dumps(&sink.dir);
    let deadline = Instant::now() + Duration::from_secs(20);
    let stream = loop {
        match UnixStream::connect(sink.dir.join("sock")) {
            Ok(s) => break s,
            Err(e) => {
                assert!(Instant::now() < deadline, "connect: {e}");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    let mut read_reply = || {
        let mut line = String::new();
        reader.read_line(&mut line).expect("read reply");
        line.trim_end().to_owned()
    };
    assert!(read_reply().starts_with("220 "));
    writer
        .write_all(b"HELO c\r\nMAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n")
        .expect("write");
    for want in ["250", "250", "250", "354"] {
        assert!(read_reply().starts_with(want));
    }
    writer.write_all(data).expect("write data");
    writer.write_all(b"QUIT\r\n").expect("write QUIT");
    let mut after = Vec::new();
    loop {
        let r = read_reply();
        if r.is_empty() {
            break;
        }
        let done = r.starts_with("221");
        after.push(r);
        if done {
            break;
        }
    }
    let new: Vec<PathBuf> = dumps(&sink.dir).difference(&before).cloned().collect();
    assert_eq!(new.len(), 1, "one dump per transaction");
    let dump = std::fs::read(&new[0]).expect("read dump");
    // The record head ends with the 3-line Received header.
    let at = dump
        .windows(8)
        .position(|w| w == b"(smtp-si")
        .expect("Received header");
    let nl = |from: usize| from + dump[from..].iter().position(|&b| b == b'\n').expect("LF") + 1;
    let body_start = nl(nl(at));
    (after, dump[body_start..].to_vec())
}

/// Our decoder on the same bytes: (offset after the end, unstuffed content).
fn ours(data: &[u8]) -> (Option<usize>, Vec<u8>) {
    let mut ends = Vec::new();
    let mut content = Vec::new();
    for mode in [DataMode::Unstuff, DataMode::CountOnly] {
        let mut dec = DataDecoder::new(mode);
        let mut buf = BytesMut::from(data);
        let mut end = None;
        while let Some(ev) = dec.parse(&mut buf).expect("infallible") {
            match ev {
                DataEvent::Chunk(c) => content.extend_from_slice(&c),
                DataEvent::Skipped(_) => {}
                DataEvent::End => {
                    end = Some(data.len() - buf.len());
                    break;
                }
            }
        }
        ends.push(end);
    }
    assert_eq!(ends[0], ends[1], "modes disagree");
    (ends[0], content)
}

#[test]
fn data_decoder_agrees_with_postfix_smtp_sink() {
    let Some(sink) = start_sink() else {
        return;
    };
    // Each body is followed by the real end (CRLF "." CRLF).
    let bodies: &[&[u8]] = &[
        b"plain\r\n",
        b"x\n.\r\ny",
        b"x\r\n.\ny",
        b"x\n.\ny",
        b"x\r.\r\ny",
        b"x\r\n.\rX",
        b"x\r\n. \r\ny",
        b"x\r\n.\r\r\ny",
        b"\n.\r\nfirst line smuggle",
        b".\nfirst",
        b"..stuffed\r\n...two\r\n.x\r\nmid.dot\r\n",
        b"bare\rcr\r\r\n",
        b"8bit \xe9\xff and NUL \0 kept",
    ];
    for body in bodies {
        let mut data = body.to_vec();
        data.extend_from_slice(b"\r\n.\r\n");
        let (end, content) = ours(&data);
        assert_eq!(end, Some(data.len()), "{body:?}: ours ended elsewhere");
        let (replies, dump) = transaction(&sink, &data);
        assert_eq!(
            replies,
            vec!["250 2.0.0 Ok".to_owned(), "221 Bye".to_owned()],
            "{body:?}: Postfix ended the message elsewhere"
        );
        // The dump: every CR removed, then the LF of the final "." line.
        let mut want: Vec<u8> = content.into_iter().filter(|&b| b != b'\r').collect();
        want.push(b'\n');
        assert_eq!(
            String::from_utf8_lossy(&dump),
            String::from_utf8_lossy(&want),
            "{body:?}"
        );
    }
    // A message whose first line is "." is empty for both.
    let (end, content) = ours(b".\r\n");
    assert_eq!((end, content.len()), (Some(3), 0));
    let (replies, dump) = transaction(&sink, b".\r\n");
    assert_eq!(replies, vec!["250 2.0.0 Ok", "221 Bye"]);
    assert_eq!(dump, b"\n");
}

/// Sends `line` then `NOOP`; true if the sink answered the NOOP, false if
/// it closed the connection instead.
fn sink_keeps_going_after(sink: &Sink, line: &[u8]) -> bool {
    let stream = UnixStream::connect(sink.dir.join("sock")).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    let mut greeting = String::new();
    reader.read_line(&mut greeting).expect("greeting");
    writer.write_all(line).expect("write");
    let _ = writer.write_all(b"NOOP\r\n");
    loop {
        let mut reply = String::new();
        match reader.read_line(&mut reply) {
            Ok(0) | Err(_) => return false,
            Ok(_) if reply.starts_with("250") => return true,
            Ok(_) => {}
        }
    }
}

#[test]
fn command_line_limit_matches_postfix_smtp_sink() {
    let Some(sink) = start_sink() else {
        return;
    };
    let limit = smtp_proto::Limits::POSTFIX_SINK_LINE;
    let lines: Vec<Vec<u8>> = vec![
        [vec![b'X'; limit - 1], b"\r\n".to_vec()].concat(),
        [vec![b'X'; limit], b"\r\n".to_vec()].concat(),
        [vec![b'X'; limit + 1], b"\r\n".to_vec()].concat(),
        [vec![b'X'; limit + 2], b"\r\n".to_vec()].concat(),
        // The CR of CR CR LF is part of the line.
        [vec![b'X'; limit], b"\r\r\n".to_vec()].concat(),
        [vec![b'X'; limit - 1], b"\r\r\n".to_vec()].concat(),
        // A bare LF does not end it either.
        [
            vec![b'X'; 1500],
            b"\n".to_vec(),
            vec![b'Y'; 1500],
            b"\r\n".to_vec(),
        ]
        .concat(),
    ];
    for line in &lines {
        let mut parser = smtp_proto::CommandParser::new(limit);
        let ours_ok = parser.parse(&mut BytesMut::from(&line[..])).is_ok();
        assert_eq!(
            sink_keeps_going_after(&sink, line),
            ours_ok,
            "line of {} bytes",
            line.len()
        );
    }
}

#[test]
fn ehlo_reply_of_postfix_smtp_sink_parses_and_renders_back() {
    let Some(sink) = start_sink() else {
        return;
    };
    let stream = UnixStream::connect(sink.dir.join("sock")).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    let mut parser = smtp_proto::ReplyParser::default();
    let mut buf = BytesMut::new();
    let mut next_reply = || loop {
        if let Some(r) = parser.parse(&mut buf).expect("valid reply") {
            return r;
        }
        let mut line = Vec::new();
        let n = reader.read_until(b'\n', &mut line).expect("read");
        assert!(n > 0, "EOF");
        buf.extend_from_slice(&line);
    };
    let greeting = next_reply();
    assert_eq!(&greeting.raw()[..], b"220 smtp-sink ESMTP\r\n");
    writer.write_all(b"EHLO client.example\r\n").expect("write");
    let ehlo = next_reply();
    let caps = smtp_proto::Capabilities::from_reply(&ehlo);
    assert_eq!(&caps.greeting[..], b"smtp-sink");
    assert!(caps.has(smtp_proto::Extensions::PIPELINING));
    assert!(caps.has_auth("LOGIN"));
    let mut rendered = BytesMut::new();
    caps.render(true, &mut rendered);
    assert_eq!(
        String::from_utf8_lossy(&rendered),
        String::from_utf8_lossy(ehlo.raw())
    );
    writer.write_all(b"MAIL FROM:<a@b>\r\n").expect("write");
    let mail = next_reply();
    assert_eq!(
        mail.enhanced,
        Some(smtp_proto::EnhancedCode {
            class: 2,
            subject: 1,
            detail: 0
        })
    );
}

#[test]
fn verb_and_empty_line_recognition_matches_postfix_smtp_sink() {
    use smtp_proto::Verb;
    let Some(sink) = start_sink() else {
        return;
    };
    // The commands Postfix's smtp-sink has in its table (it answers the
    // others, EXPN, STARTTLS, BDAT and HELP included, as unknown).
    let sink_knows = [
        Verb::Helo,
        Verb::Ehlo,
        Verb::Lhlo,
        Verb::Xclient,
        Verb::Xforward,
        Verb::Auth,
        Verb::Mail,
        Verb::Rcpt,
        Verb::Data,
        Verb::Rset,
        Verb::Noop,
        Verb::Vrfy,
    ];
    let lines: &[&[u8]] = &[
        b"  NOOP",
        b"\tNOOP x",
        b"NOOP\tx",
        b"noop",
        b"NoOp  x",
        b"NOOPX",
        b"NOOP\x0bx",
        b"\x0bNOOP",
        b" ",
        b"\t \t",
        b"",
        b"mail\tFROM:<a>",
        b"rset",
        b"VRFY x",
        b"EXPN x",
        b"STARTTLS",
        b"HELP",
        b"FOO bar",
        b"NOOP\nNOOP",
    ];
    for line in lines {
        let mut input = line.to_vec();
        input.extend_from_slice(b"\r\n");
        let cmd = smtp_proto::CommandParser::default()
            .parse(&mut BytesMut::from(&input[..]))
            .expect("short line")
            .expect("complete line");
        let want = match cmd.verb {
            Verb::Empty => "500 5.5.2",
            v if sink_knows.contains(&v) => "not unknown",
            _ => "500 5.5.1",
        };
        let stream = UnixStream::connect(sink.dir.join("sock")).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        let mut writer = stream.try_clone().expect("clone");
        let mut reader = BufReader::new(stream);
        let mut reply = String::new();
        reader.read_line(&mut reply).expect("greeting");
        writer.write_all(&input).expect("write");
        reply.clear();
        reader.read_line(&mut reply).expect("reply");
        let got = if reply.starts_with("500 5.5.2") {
            "500 5.5.2"
        } else if reply.starts_with("500 5.5.1") {
            "500 5.5.1"
        } else {
            "not unknown"
        };
        assert_eq!(got, want, "{line:?}: Postfix said {reply:?}");
    }
}
