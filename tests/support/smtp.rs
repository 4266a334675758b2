//! A minimal SMTP client for hand-made messages (stop and wait, one reply
//! per command), and stamped messages built with smtp-proto's stamp, so a
//! test can send a duplicate or a damaged message on purpose.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use smtp_proto::stamp::{body_digest, RunId, Stamp};

/// How long any reply may take.
const REPLY_WAIT: Duration = Duration::from_secs(60);

/// Reads one reply (all its lines); returns its code and text.
fn reply(r: &mut BufReader<TcpStream>) -> Result<(u16, String), String> {
    let mut text = String::new();
    loop {
        let mut line = String::new();
        let n = r.read_line(&mut line).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err(format!("connection closed after {text:?}"));
        }
        text.push_str(&line);
        if line.len() < 4 || line.as_bytes()[3] != b'-' {
            let code = line
                .get(..3)
                .and_then(|c| c.parse().ok())
                .ok_or_else(|| format!("not a reply: {line:?}"))?;
            return Ok((code, text));
        }
    }
}

/// Sends one message to `127.0.0.1:port` with DATA: `content` is the
/// message as it is (header block, empty line, body; CRLF line ends), and
/// is dot-stuffed here. Fails with the conversation's first unexpected
/// reply up to the end of data (no reply to QUIT is no failure).
pub fn send_message(port: u16, content: &[u8]) -> Result<(), String> {
    let stream = TcpStream::connect(("127.0.0.1", port)).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(REPLY_WAIT)).unwrap();
    let mut w = stream.try_clone().unwrap();
    let mut r = BufReader::new(stream);
    let mut step = |line: &[u8], want: u16| -> Result<(), String> {
        if !line.is_empty() {
            w.write_all(line).map_err(|e| format!("write: {e}"))?;
        }
        let (code, text) = reply(&mut r)?;
        if code / 100 != want / 100 {
            return Err(format!(
                "{:?} got {text:?}",
                String::from_utf8_lossy(line).trim_end()
            ));
        }
        Ok(())
    };
    step(b"", 220)?;
    step(b"HELO hand.example\r\n", 250)?;
    step(b"MAIL FROM:<hand@example.com>\r\n", 250)?;
    step(b"RCPT TO:<sink@example.com>\r\n", 250)?;
    step(b"DATA\r\n", 354)?;
    let mut stuffed = Vec::with_capacity(content.len() + 8);
    for line in content.split_inclusive(|&b| b == b'\n') {
        if line.starts_with(b".") {
            stuffed.push(b'.');
        }
        stuffed.extend_from_slice(line);
    }
    if !stuffed.ends_with(b"\r\n") {
        stuffed.extend_from_slice(b"\r\n");
    }
    stuffed.extend_from_slice(b".\r\n");
    step(&stuffed, 250)?;
    // The message is accepted; a sink that exits at -M may not answer.
    let _ = step(b"QUIT\r\n", 221);
    Ok(())
}

/// A message stamped as smtp-source --stamp would stamp it: run `run`,
/// number `seq`, sent `sent_ns`, with the length and digest of
/// `stamped_body`, followed by `body` (which differs from `stamped_body`
/// for a damaged message).
pub fn stamped_message(
    run: &str,
    seq: u64,
    sent_ns: u64,
    stamped_body: &[u8],
    body: &[u8],
) -> Vec<u8> {
    let (len, digest) = body_digest(stamped_body);
    let mut out = Vec::new();
    Stamp {
        run: RunId::new(run.as_bytes()).expect("a valid run id"),
        seq,
        sent_ns,
        len,
        digest,
    }
    .write(&mut out);
    out.extend_from_slice(b"Subject: made by hand\r\n\r\n");
    out.extend_from_slice(body);
    out
}

/// Now, as a stamp's `sent`.
pub fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}
