//! Every reply the sink sends, encoded once at start-up.
//!
//! The texts are Postfix's smtp-sink's, byte for byte, including its quirks
//! (the last EHLO line is `250 ` with a trailing space; enhanced codes are
//! sent even with `-E`). The replies that only `--chunking` and `--size`
//! can cause are ours (Postfix's sink has neither), worded like smtpd's.

use bytes::{BufMut, Bytes, BytesMut};
use smtp_proto::{encode_reply, Capabilities, Extensions, ReplyCode};

/// MAIL accepted.
pub const MAIL_OK: &[u8] = b"250 2.1.0 Ok\r\n";
/// RCPT accepted.
pub const RCPT_OK: &[u8] = b"250 2.1.5 Ok\r\n";
/// RSET.
pub const RSET_OK: &[u8] = b"250 2.1.0 Ok\r\n";
/// NOOP, VRFY, AUTH, XCLIENT, XFORWARD, and end of data in SMTP.
pub const OK: &[u8] = b"250 2.0.0 Ok\r\n";
/// End of data in LMTP, once per recipient.
pub const LMTP_OK: &[u8] = b"250 2.2.0 Ok\r\n";
/// DATA accepted.
pub const DATA_GO: &[u8] = b"354 End data with <CR><LF>.<CR><LF>\r\n";
/// QUIT.
pub const BYE: &[u8] = b"221 Bye\r\n";
/// `-Q`.
pub const CLOSING: &[u8] = b"421 4.0.0 Server closing connection\r\n";
/// `--drain`: the sink is stopping; sent between transactions (to a
/// command, or on its own to a client that is idle), then the session
/// closes (RFC 5321 section 3.8).
pub const SHUTTING_DOWN: &[u8] = b"421 4.3.2 Service shutting down\r\n";
/// `-A`.
pub const ABORT: &[u8] = b"550 This violates SMTP\r\n";
/// A second MAIL.
pub const NESTED_MAIL: &[u8] = b"503 5.5.1 Error: nested MAIL command\r\n";
/// RCPT without MAIL.
pub const NEED_MAIL: &[u8] = b"503 5.5.1 Error: need MAIL command\r\n";
/// DATA without RCPT.
pub const NEED_RCPT: &[u8] = b"503 5.5.1 Error: need RCPT command\r\n";
/// Unknown or disabled command.
pub const UNKNOWN: &[u8] = b"500 5.5.1 Error: unknown command\r\n";
/// Empty or blank line.
pub const EMPTY: &[u8] = b"500 5.5.2 Error: unknown command\r\n";
/// The end of data when the dump could not be written (not in Postfix,
/// which exits instead).
pub const DUMP_FAILED: &[u8] = b"451 4.3.0 Error: dump file write failed\r\n";
/// `--chunking`: DATA in a transaction that BDAT has started (RFC 3030
/// forbids mixing them).
pub const DATA_AFTER_BDAT: &[u8] = b"503 5.5.1 Error: DATA after BDAT\r\n";
/// `--chunking`: BDAT arguments that are not `size [LAST]`. The session is
/// closed after it: without a size, the chunk cannot be skipped.
pub const BDAT_SYNTAX: &[u8] = b"501 5.5.4 Syntax: BDAT size [LAST]\r\n";
/// `--size`: a MAIL SIZE= or a message over the limit.
pub const TOO_BIG: &[u8] = b"552 5.3.4 Message size exceeds fixed limit\r\n";

/// `--starttls`: the go-ahead for the TLS handshake (RFC 3207).
pub const READY_FOR_TLS: &[u8] = b"220 2.0.0 Ready to start TLS\r\n";
/// `--starttls`: STARTTLS with arguments.
pub const STARTTLS_SYNTAX: &[u8] = b"501 5.5.4 Syntax: STARTTLS\r\n";
/// `--starttls`: STARTTLS once TLS is up (also on a `--tls-on-connect`
/// connection).
pub const TLS_ACTIVE: &[u8] = b"503 5.5.1 Error: TLS already active\r\n";
/// STARTTLS or AUTH between MAIL and the end of the transaction.
pub const IN_TRANSACTION: &[u8] = b"503 5.5.1 Error: MAIL transaction in progress\r\n";
/// `--auth-users`: a successful AUTH.
pub const AUTH_OK: &[u8] = b"235 2.7.0 Authentication successful\r\n";
/// `--auth-users`: unknown user, wrong password, or a PLAIN message that
/// does not parse.
pub const AUTH_FAILED: &[u8] = b"535 5.7.8 Authentication credentials invalid\r\n";
/// `--auth-users`: a response that is not base64.
pub const AUTH_MALFORMED: &[u8] = b"501 5.5.2 Cannot decode base64 response\r\n";
/// `--auth-users`: the client cancelled the exchange with `*`.
pub const AUTH_ABORTED: &[u8] = b"501 5.7.0 Authentication aborted\r\n";
/// `--auth-users`: AUTH without a mechanism.
pub const AUTH_SYNTAX: &[u8] = b"501 5.5.4 Syntax: AUTH mechanism\r\n";
/// `--auth-users`: a mechanism other than PLAIN and LOGIN.
pub const AUTH_UNKNOWN: &[u8] = b"504 5.5.4 Unrecognized authentication type\r\n";
/// `--auth-users`: a second AUTH after a successful one.
pub const AUTH_AGAIN: &[u8] = b"503 5.5.1 Error: already authenticated\r\n";
/// `--auth-users`: AUTH over plaintext without `--auth-plaintext`.
pub const AUTH_NEEDS_TLS: &[u8] =
    b"538 5.7.11 Encryption required for requested authentication mechanism\r\n";
/// `--auth-required`: MAIL before a successful AUTH.
pub const AUTH_REQUIRED: &[u8] = b"530 5.7.0 Authentication required\r\n";
/// `--max-rate`: a MAIL above the rate (RFC 3463 4.7.1: delivery not
/// authorized, for now).
pub const RATE_LIMITED: &[u8] = b"451 4.7.1 Error: too many messages, slow down\r\n";
/// `--max-rate-action connect`: a connection (or a MAIL) above the rate;
/// the connection closes after it.
pub const RATE_LIMITED_CLOSE: &[u8] = b"421 4.7.1 Error: too many messages, closing connection\r\n";
/// `--greylist`: a new (client, sender, recipient) triple, or one retried
/// too early.
pub const GREYLISTED: &[u8] = b"450 4.2.0 Error: greylisted, try again later\r\n";

/// `--chunking`: the reply to a BDAT chunk that is not the last one.
pub fn chunk_ok(size: u64, out: &mut BytesMut) {
    use std::fmt::Write;
    // Formatted in place, no allocation. Writing to a BytesMut cannot
    // fail (it grows), so the Result carries nothing.
    let _ = write!(out, "250 2.0.0 Ok: {size} bytes\r\n");
}

/// What the configurable replies depend on.
#[derive(Debug)]
pub struct ReplyOptions<'a> {
    /// `-h`.
    pub hostname: &'a [u8],
    /// `-P`.
    pub pix: bool,
    /// Not `-e`/`-P`.
    pub esmtp: bool,
    /// Each EHLO keyword: not `-p` (nor `-f`/`-r`), `-8`, `-a`, `-C`, `-F`,
    /// `-E`, `-N`.
    pub pipelining: bool,
    /// See `pipelining`.
    pub eight_bit_mime: bool,
    /// See `pipelining`.
    pub auth: bool,
    /// See `pipelining`.
    pub xclient: bool,
    /// See `pipelining`.
    pub xforward: bool,
    /// See `pipelining`.
    pub enhanced_status_codes: bool,
    /// See `pipelining`.
    pub dsn: bool,
    /// `--size`: announce `SIZE <n>`.
    pub size: Option<u64>,
    /// `--smtputf8`: announce SMTPUTF8.
    pub smtputf8: bool,
    /// `--chunking`: announce CHUNKING.
    pub chunking: bool,
    /// `--starttls`: announce STARTTLS (before TLS is up).
    pub starttls: bool,
    /// Announce `AUTH PLAIN LOGIN` once TLS is up (`auth` says whether
    /// before).
    pub auth_tls: bool,
    /// `-b`, without CRLF.
    pub soft: &'a [u8],
    /// `-B`, without CRLF.
    pub hard: &'a [u8],
}

/// The replies that depend on the options, with their CRLF.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replies {
    /// `220 <h> ESMTP`, `220 <h>` or `220 ********`.
    pub greeting: Bytes,
    /// `250 <h>`.
    pub helo: Bytes,
    /// The EHLO/LHLO list (before TLS, or without it).
    pub ehlo: Bytes,
    /// The EHLO/LHLO list once TLS is up: no STARTTLS, and AUTH as
    /// `auth_tls` says.
    pub ehlo_tls: Bytes,
    /// `-b`.
    pub soft: Bytes,
    /// `-B`.
    pub hard: Bytes,
}

fn line(text: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(text.len() + 2);
    b.put_slice(text);
    b.put_slice(b"\r\n");
    b.freeze()
}

/// The EHLO/LHLO keywords for these options. `Capabilities::render` puts
/// Postfix's smtp-sink keywords in its order, and SIZE, SMTPUTF8 and
/// CHUNKING where Postfix's smtpd announces them.
fn capabilities(o: &ReplyOptions<'_>, tls: bool) -> Capabilities {
    let mut extensions = Extensions::EMPTY;
    let auth = if tls { o.auth_tls } else { o.auth };
    for (on, ext) in [
        (o.starttls && !tls, Extensions::STARTTLS),
        (o.pipelining, Extensions::PIPELINING),
        (o.eight_bit_mime, Extensions::EIGHT_BIT_MIME),
        (o.enhanced_status_codes, Extensions::ENHANCED_STATUS_CODES),
        (o.dsn, Extensions::DSN),
        (o.smtputf8, Extensions::SMTPUTF8),
        (o.chunking, Extensions::CHUNKING),
    ] {
        if on {
            extensions.insert(ext);
        }
    }
    let attrs = |on: bool, text: &'static [u8]| on.then(|| Bytes::from_static(text));
    Capabilities {
        greeting: Bytes::copy_from_slice(o.hostname),
        extensions,
        size: o.size,
        auth: auth.then(|| vec![Bytes::from_static(b"PLAIN"), Bytes::from_static(b"LOGIN")]),
        xclient: attrs(o.xclient, b"NAME HELO"),
        xforward: attrs(o.xforward, b"NAME ADDR PROTO HELO"),
        unknown: Vec::new(),
    }
}

impl Replies {
    /// Encodes every reply for these options.
    pub fn new(o: &ReplyOptions<'_>) -> Replies {
        let greeting = if o.pix {
            line(b"220 ********")
        } else {
            let mut g = Vec::from(&b"220 "[..]);
            g.extend_from_slice(o.hostname);
            if o.esmtp {
                g.extend_from_slice(b" ESMTP");
            }
            line(&g)
        };
        let mut helo = BytesMut::new();
        encode_reply(ReplyCode::OK, &[o.hostname], &mut helo);
        // Postfix ends the list with "250 " and nothing after it.
        let ehlo = |tls: bool| {
            let mut out = BytesMut::new();
            capabilities(o, tls).render(true, &mut out);
            out.freeze()
        };
        Replies {
            greeting,
            helo: helo.freeze(),
            ehlo: ehlo(false),
            ehlo_tls: ehlo(true),
            soft: line(o.soft),
            hard: line(o.hard),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(all: bool) -> ReplyOptions<'static> {
        ReplyOptions {
            hostname: b"smtp-sink",
            pix: false,
            esmtp: true,
            pipelining: all,
            eight_bit_mime: all,
            auth: all,
            xclient: all,
            xforward: all,
            enhanced_status_codes: all,
            dsn: all,
            size: None,
            smtputf8: false,
            chunking: false,
            starttls: false,
            auth_tls: all,
            soft: b"450 4.3.0 Error: command failed",
            hard: b"500 5.3.0 Error: command failed",
        }
    }

    #[test]
    fn ehlo_list_is_postfix_order_with_trailing_space() {
        let r = Replies::new(&opts(true));
        assert_eq!(
            &r.ehlo[..],
            &b"250-smtp-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n\
250-XCLIENT NAME HELO\r\n250-XFORWARD NAME ADDR PROTO HELO\r\n250-ENHANCEDSTATUSCODES\r\n\
250-DSN\r\n250 \r\n"[..]
        );
        let r = Replies::new(&opts(false));
        assert_eq!(&r.ehlo[..], b"250-smtp-sink\r\n250 \r\n");
        assert_eq!(&r.greeting[..], b"220 smtp-sink ESMTP\r\n");
        assert_eq!(&r.helo[..], b"250 smtp-sink\r\n");
    }

    /// The hand-built list this module had before it used
    /// `Capabilities::render`: Postfix's smtp-sink's order, as its source
    /// writes it.
    fn postfix_ehlo(o: &ReplyOptions<'_>) -> Vec<u8> {
        let mut lines: Vec<&[u8]> = vec![o.hostname];
        for (on, kw) in [
            (o.pipelining, &b"PIPELINING"[..]),
            (o.eight_bit_mime, b"8BITMIME"),
            (o.auth, b"AUTH PLAIN LOGIN"),
            (o.xclient, b"XCLIENT NAME HELO"),
            (o.xforward, b"XFORWARD NAME ADDR PROTO HELO"),
            (o.enhanced_status_codes, b"ENHANCEDSTATUSCODES"),
            (o.dsn, b"DSN"),
        ] {
            if on {
                lines.push(kw);
            }
        }
        lines.push(b"");
        let mut out = BytesMut::new();
        encode_reply(ReplyCode::OK, &lines, &mut out);
        out.to_vec()
    }

    #[test]
    fn rendered_list_is_postfix_s_for_every_flag_combination() {
        for bits in 0u32..128 {
            let on = |i: u32| bits & (1 << i) != 0;
            for hostname in [&b"smtp-sink"[..], b"", b"host name.example"] {
                let o = ReplyOptions {
                    hostname,
                    pipelining: on(0),
                    eight_bit_mime: on(1),
                    auth: on(2),
                    xclient: on(3),
                    xforward: on(4),
                    enhanced_status_codes: on(5),
                    dsn: on(6),
                    ..opts(false)
                };
                assert_eq!(
                    &Replies::new(&o).ehlo[..],
                    &postfix_ehlo(&o)[..],
                    "flags {bits:07b}"
                );
            }
        }
    }

    #[test]
    fn new_keywords_go_where_smtpd_puts_them() {
        let o = ReplyOptions {
            size: Some(10_240_000),
            smtputf8: true,
            chunking: true,
            ..opts(true)
        };
        assert_eq!(
            &Replies::new(&o).ehlo[..],
            &b"250-smtp-sink\r\n250-PIPELINING\r\n250-SIZE 10240000\r\n250-8BITMIME\r\n\
250-AUTH PLAIN LOGIN\r\n250-XCLIENT NAME HELO\r\n250-XFORWARD NAME ADDR PROTO HELO\r\n\
250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n250 \r\n"[..]
        );
        let o = ReplyOptions {
            size: Some(1),
            chunking: true,
            ..opts(false)
        };
        assert_eq!(
            &Replies::new(&o).ehlo[..],
            b"250-smtp-sink\r\n250-SIZE 1\r\n250-CHUNKING\r\n250 \r\n"
        );
        let mut out = BytesMut::new();
        chunk_ok(4096, &mut out);
        assert_eq!(&out[..], b"250 2.0.0 Ok: 4096 bytes\r\n");
    }

    #[test]
    fn starttls_goes_before_8bitmime_and_only_before_tls() {
        let o = ReplyOptions {
            starttls: true,
            auth: false,
            auth_tls: true,
            ..opts(true)
        };
        let r = Replies::new(&o);
        assert_eq!(
            &r.ehlo[..],
            &b"250-smtp-sink\r\n250-PIPELINING\r\n250-STARTTLS\r\n250-8BITMIME\r\n\
250-XCLIENT NAME HELO\r\n250-XFORWARD NAME ADDR PROTO HELO\r\n250-ENHANCEDSTATUSCODES\r\n\
250-DSN\r\n250 \r\n"[..]
        );
        assert_eq!(
            &r.ehlo_tls[..],
            &b"250-smtp-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n\
250-XCLIENT NAME HELO\r\n250-XFORWARD NAME ADDR PROTO HELO\r\n250-ENHANCEDSTATUSCODES\r\n\
250-DSN\r\n250 \r\n"[..]
        );
        // Without the TLS options both lists are Postfix's.
        let r = Replies::new(&opts(true));
        assert_eq!(r.ehlo, r.ehlo_tls);
    }

    #[test]
    fn greetings() {
        let mut o = opts(true);
        o.esmtp = false;
        assert_eq!(&Replies::new(&o).greeting[..], b"220 smtp-sink\r\n");
        o.pix = true;
        assert_eq!(&Replies::new(&o).greeting[..], b"220 ********\r\n");
    }
}
