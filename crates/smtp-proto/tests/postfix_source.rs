//! The generated messages against Postfix's own smtp-source: a tiny
//! loopback server records what `/usr/sbin/smtp-source` sends after DATA,
//! and `HeaderBlock` + `Body::render` must produce the same bytes (with
//! the Date and Message-Id values taken from the recording, since they
//! depend on the clock and the process).
//!
//! Postfix missing: a failure when `CI` is set, a notice otherwise.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use bytes::BytesMut;
use smtp_proto::message::{Body, HeaderBlock};

const SMTP_SOURCE: &str = "/usr/sbin/smtp-source";

/// Kills the child on every path out of a test.
struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn have_postfix() -> bool {
    if Path::new(SMTP_SOURCE).exists() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{SMTP_SOURCE} is missing: install Postfix (the `postfix` package)"
    );
    eprintln!("skipping: {SMTP_SOURCE} not installed");
    false
}

/// Runs smtp-source with `args` against a one-connection server and
/// returns the commands it sent and the bytes it sent after DATA, up to
/// and including the final `.` CRLF.
fn record(args: &[&str]) -> (Vec<String>, Vec<u8>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind loopback");
    let addr = listener.local_addr().expect("local addr");
    let child = Command::new(SMTP_SOURCE)
        .args(args)
        .arg(addr.to_string())
        .env("TZ", "UTC")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start smtp-source");
    let mut child = KillOnDrop(child);
    listener.set_nonblocking(true).expect("nonblocking");
    let deadline = Instant::now() + Duration::from_secs(20);
    let stream = loop {
        match listener.accept() {
            Ok((s, _)) => break s,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "smtp-source never connected");
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    stream.set_nonblocking(false).expect("blocking");
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    writer.write_all(b"220 test ESMTP\r\n").expect("greet");
    let mut commands = Vec::new();
    let mut data = Vec::new();
    loop {
        let mut line = Vec::new();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) | Err(_) => break, // smtp-source closes with an RST
            Ok(_) => {}
        }
        let text = String::from_utf8_lossy(&line).trim_end().to_owned();
        let verb = text.split(' ').next().unwrap_or("").to_ascii_uppercase();
        commands.push(text);
        let reply: &[u8] = match verb.as_str() {
            "DATA" => {
                writer.write_all(b"354 go\r\n").expect("354");
                while !data.ends_with(b"\r\n.\r\n") {
                    let n = reader.read_until(b'\n', &mut data).expect("read DATA");
                    assert!(n > 0, "EOF inside DATA");
                }
                b"250 2.0.0 Ok\r\n"
            }
            "QUIT" => b"221 Bye\r\n",
            _ => b"250 Ok\r\n",
        };
        let _ = writer.write_all(reply);
    }
    let status = child.0.wait().expect("wait");
    assert!(status.success(), "smtp-source failed: {status}");
    (commands, data)
}

fn header_value<'a>(data: &'a [u8], name: &str) -> &'a [u8] {
    let prefix = format!("{name}: ");
    data.split(|&b| b == b'\n')
        .find_map(|l| l.strip_prefix(prefix.as_bytes()))
        .and_then(|v| v.strip_suffix(b"\r"))
        .unwrap_or_else(|| panic!("no {name} header"))
}

/// The three hex numbers of `<%04x.%04x.%04x@host>`.
fn message_id(data: &[u8], host: &str) -> (u32, u32, u32) {
    let v = std::str::from_utf8(header_value(data, "Message-Id")).expect("ASCII");
    let inner = v
        .strip_prefix('<')
        .and_then(|v| v.strip_suffix(&format!("@{host}>")))
        .expect("Message-Id shape");
    let n: Vec<u32> = inner
        .split('.')
        .map(|h| u32::from_str_radix(h, 16).expect("hex"))
        .collect();
    assert_eq!(n.len(), 3, "{v}");
    (n[0], n[1], n[2])
}

fn expected(data: &[u8], body: &Body, subject: Option<&str>) -> Vec<u8> {
    let mut out = BytesMut::new();
    if body.wants_headers() {
        HeaderBlock {
            from: b"foo@client.example",
            to: b"rcpt@example.org",
            date: header_value(data, "Date"),
            message_id: message_id(data, "client.example"),
            hostname: b"client.example",
            subject: subject.map(str::as_bytes),
        }
        .write(&mut out);
    }
    out.extend_from_slice(&body.render());
    out.to_vec()
}

const BASE: [&str; 6] = [
    "-M",
    "client.example",
    "-f",
    "foo@client.example",
    "-t",
    "rcpt@example.org",
];

#[test]
fn generated_messages_match_postfix_smtp_source() {
    if !have_postfix() {
        return;
    }
    let cases: &[(&[&str], Body, Option<&str>)] = &[
        (&[], Body::Default, None),
        (&["-l", "160"], Body::Generated(160), None),
        (
            &["-l", "250", "-S", "Test subject"],
            Body::Generated(250),
            Some("Test subject"),
        ),
        (&["-l", "10000"], Body::Generated(10_000), None),
        (&["-l", "1"], Body::Generated(1), None),
    ];
    for (extra, body, subject) in cases {
        let mut args: Vec<&str> = BASE.to_vec();
        args.extend_from_slice(extra);
        let (commands, data) = record(&args);
        assert_eq!(
            &commands[..4],
            &[
                "HELO client.example",
                "MAIL FROM:<foo@client.example>",
                "RCPT TO:<rcpt@example.org>",
                "DATA"
            ],
            "{extra:?}"
        );
        let want = expected(&data, body, *subject);
        assert_eq!(
            String::from_utf8_lossy(&data),
            String::from_utf8_lossy(&want),
            "{extra:?}"
        );
    }
}

#[test]
fn file_messages_match_postfix_smtp_source() {
    if !have_postfix() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("smtp-proto-F-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let files: &[&[u8]] = &[
        b".leading dot\n..two dots\n.\nlast line no newline",
        b"Subject: from a file\n\nbody line\n.\n\n",
        b"\n",
        b"",
    ];
    for (i, content) in files.iter().enumerate() {
        let path = dir.join(format!("msg{i}"));
        std::fs::write(&path, content).expect("write file");
        let path = path.to_str().expect("UTF-8 temp path").to_owned();
        let mut args: Vec<&str> = BASE.to_vec();
        args.extend_from_slice(&["-F", &path, "-S", "ignored"]);
        let (_, data) = record(&args);
        let want = expected(&data, &Body::File(content.to_vec()), None);
        assert_eq!(
            String::from_utf8_lossy(&data),
            String::from_utf8_lossy(&want),
            "file {content:?}"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}
