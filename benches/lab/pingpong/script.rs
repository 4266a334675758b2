//! The bytes of one lab point's conversation, built once: the commands
//! Postfix's smtp-source sends and the replies Postfix's smtp-sink gives, with
//! the same sizes (docs/smtp-source.md "The conversation", docs/smtp-sink.md).

/// The server's replies, byte for byte those of Postfix's smtp-sink.
pub(crate) const GREETING: &[u8] = b"220 smtp-sink ESMTP\r\n";
pub(crate) const HELO_OK: &[u8] = b"250 smtp-sink\r\n";
pub(crate) const MAIL_OK: &[u8] = b"250 2.1.0 Ok\r\n";
pub(crate) const RCPT_OK: &[u8] = b"250 2.1.5 Ok\r\n";
pub(crate) const DATA_GO: &[u8] = b"354 End data with <CR><LF>.<CR><LF>\r\n";
pub(crate) const DATA_OK: &[u8] = b"250 2.0.0 Ok\r\n";
pub(crate) const QUIT_OK: &[u8] = b"221 Bye\r\n";
pub(crate) const OTHER_OK: &[u8] = b"250 2.0.0 Ok\r\n";
/// The EHLO reply of our smtp-sink with `--chunking` (Postfix's list plus
/// CHUNKING), byte for byte: the one-round-trip conversation starts with it.
pub(crate) const EHLO_CHUNKING: &[u8] = b"250-smtp-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n\
250-AUTH PLAIN LOGIN\r\n250-XCLIENT NAME HELO\r\n250-XFORWARD NAME ADDR PROTO HELO\r\n\
250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250-CHUNKING\r\n250 \r\n";

/// The client's side of one session.
pub(crate) struct Script {
    pub(crate) helo: Vec<u8>,
    pub(crate) mail: Vec<u8>,
    pub(crate) rcpts: Vec<Vec<u8>>,
    pub(crate) data: &'static [u8],
    /// Headers, body and the final ".": sent in one write, as Postfix does.
    pub(crate) message: Vec<u8>,
    pub(crate) quit: &'static [u8],
    /// `--chunking`: the greeting command, EHLO instead of HELO.
    pub(crate) ehlo: Vec<u8>,
    /// `--chunking`: one whole transaction in one write, as our smtp-source
    /// sends it with `--pipelining --chunking`: MAIL, RCPT×r, `BDAT n LAST`
    /// and the n bytes of content (headers and body, no dot-stuffing, no
    /// final ".").
    pub(crate) bdat: Vec<u8>,
    /// The replies `bdat` is answered with: MAIL, RCPT×r, BDAT.
    pub(crate) bdat_replies: usize,
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
        // No line of the headers or of either body starts with ".", so the
        // BDAT content is the DATA content without its final ".".
        let content_len = message.len();
        message.extend_from_slice(b".\r\n");
        let mail = format!("MAIL FROM:<{sender}>\r\n").into_bytes();
        let rcpts: Vec<Vec<u8>> = rcpt_addrs
            .iter()
            .map(|a| format!("RCPT TO:<{a}>\r\n").into_bytes())
            .collect();
        let mut bdat = Vec::with_capacity(content_len + 64 * (rcpts.len() + 2));
        bdat.extend_from_slice(&mail);
        for rcpt in &rcpts {
            bdat.extend_from_slice(rcpt);
        }
        bdat.extend_from_slice(format!("BDAT {content_len} LAST\r\n").as_bytes());
        bdat.extend_from_slice(&message[..content_len]);
        Script {
            helo: format!("HELO {helo}\r\n").into_bytes(),
            ehlo: format!("EHLO {helo}\r\n").into_bytes(),
            bdat_replies: rcpts.len() + 2,
            mail,
            rcpts,
            data: b"DATA\r\n",
            message,
            quit: b"QUIT\r\n",
            bdat,
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
