//! The bytes of one lab point's conversation, built once: the commands
//! Postfix's smtp-source sends and the replies Postfix's smtp-sink gives, with
//! the same sizes (postfix-reference.md 1.2 and 2.2).

/// The server's replies, byte for byte those of Postfix's smtp-sink.
pub(crate) const GREETING: &[u8] = b"220 smtp-sink ESMTP\r\n";
pub(crate) const HELO_OK: &[u8] = b"250 smtp-sink\r\n";
pub(crate) const MAIL_OK: &[u8] = b"250 2.1.0 Ok\r\n";
pub(crate) const RCPT_OK: &[u8] = b"250 2.1.5 Ok\r\n";
pub(crate) const DATA_GO: &[u8] = b"354 End data with <CR><LF>.<CR><LF>\r\n";
pub(crate) const DATA_OK: &[u8] = b"250 2.0.0 Ok\r\n";
pub(crate) const QUIT_OK: &[u8] = b"221 Bye\r\n";
pub(crate) const OTHER_OK: &[u8] = b"250 2.0.0 Ok\r\n";

/// The client's side of one session.
pub(crate) struct Script {
    pub(crate) helo: Vec<u8>,
    pub(crate) mail: Vec<u8>,
    pub(crate) rcpts: Vec<Vec<u8>>,
    pub(crate) data: &'static [u8],
    /// Headers, body and the final ".": sent in one write, as Postfix does.
    pub(crate) message: Vec<u8>,
    pub(crate) quit: &'static [u8],
}

impl Script {
    pub(crate) fn new(helo: &str, rcpts: usize, body_len: usize) -> Self {
        let sender = format!("foo@{helo}");
        // Postfix 3.9+ numbers recipients when -r is given (foo0@, foo1@, ...).
        let rcpt_addrs: Vec<String> = if rcpts <= 1 {
            vec![sender.clone()]
        } else {
            (0..rcpts).map(|i| format!("foo{i}@{helo}")).collect()
        };
        let mut message = Vec::with_capacity(body_len + 256);
        message.extend_from_slice(format!("From: <{sender}>\r\n").as_bytes());
        let last = rcpt_addrs.last().expect("at least one recipient");
        message.extend_from_slice(format!("To: <{last}>\r\n").as_bytes());
        // One Date per process, as Postfix; only its length matters here.
        message.extend_from_slice(b"Date: Sun, 22 Nov 2026 00:00:00 +0000 (UTC)\r\n");
        message.extend_from_slice(format!("Message-Id: <1a2b.0003.0000@{helo}>\r\n").as_bytes());
        message.extend_from_slice(b"\r\n");
        message.extend_from_slice(&body(body_len));
        message.extend_from_slice(b".\r\n");
        Script {
            helo: format!("HELO {helo}\r\n").into_bytes(),
            mail: format!("MAIL FROM:<{sender}>\r\n").into_bytes(),
            rcpts: rcpt_addrs
                .iter()
                .map(|a| format!("RCPT TO:<{a}>\r\n").into_bytes())
                .collect(),
            data: b"DATA\r\n",
            message,
            quit: b"QUIT\r\n",
        }
    }
}

/// smtp-source's body: "La de da" by default, or `-l n` bytes in 80-byte
/// lines (a digit, 77 "X", CRLF) with an all-"X" remainder and a final CRLF.
fn body(len: usize) -> Vec<u8> {
    if len == 0 {
        return (1..=4)
            .flat_map(|i| format!("La de da de da {i}.\r\n").into_bytes())
            .collect();
    }
    let mut out = Vec::with_capacity(len + 2);
    let mut block = 0usize;
    while out.len() + 80 < len {
        block += 1;
        out.push(b'0' + (block % 10) as u8);
        out.extend(std::iter::repeat_n(b'X', 77));
        out.extend_from_slice(b"\r\n");
    }
    out.extend(std::iter::repeat_n(b'X', len - out.len()));
    out.extend_from_slice(b"\r\n");
    out
}
