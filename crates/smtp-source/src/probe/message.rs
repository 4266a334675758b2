//! The probe's test message: numbered, dated and addressed so that a copy
//! found in a mailbox tells which attempt sent it.

use rand::Rng as _;

/// What a message carries besides its addresses.
#[derive(Debug, Clone)]
pub struct Stamp<'a> {
    /// The subject's tag (`-m`, "SMTPTEST").
    pub tag: &'a str,
    /// The attempt's serial number, unique within the run.
    pub serial: u64,
    /// The server as given on the command line.
    pub server: &'a str,
    /// RFC 5322 date of the attempt.
    pub date: &'a str,
    /// This host's name, for Message-Id.
    pub hostname: &'a str,
}

/// Characters of the padding: printable ASCII without the space and the
/// period, so no padding line can end the message or start with a dot.
const PAD: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!#$%&*+-/=?^_~";

/// Padding line length, without its line end (RFC 5322 recommends 78).
const PAD_LINE: usize = 76;

/// The whole message (headers and body, LF line ends) from `sender` to
/// `recipient`, its body padded with about `kilobytes` KiB of random
/// printable ASCII.
pub fn render(sender: &str, recipient: &str, stamp: &Stamp<'_>, kilobytes: u64) -> Vec<u8> {
    let Stamp {
        tag,
        serial,
        server,
        date,
        hostname,
    } = stamp;
    let mut m = format!(
        "From: <{sender}>\n\
         To: <{recipient}>\n\
         Subject: {tag} {serial:06} {date} {server}\n\
         Date: {date}\n\
         Message-Id: <smtp-probe.{pid}.{serial:06}@{hostname}>\n\
         \n\
         {tag} {serial:06}: a test message sent by smtp-probe to {server} on {date}.\n",
        pid = std::process::id(),
    )
    .into_bytes();
    let target = usize::try_from(kilobytes.saturating_mul(1024)).unwrap_or(usize::MAX);
    let mut rng = rand::rng();
    let mut padded = 0;
    while padded < target {
        // Each line counts with its CRLF, as it travels.
        let len = PAD_LINE.min((target - padded).saturating_sub(2)).max(1);
        m.extend((0..len).map(|_| PAD[rng.random_range(0..PAD.len())]));
        m.push(b'\n');
        padded += len + 2;
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stamp(serial: u64) -> Stamp<'static> {
        Stamp {
            tag: "SMTPTEST",
            serial,
            server: "mx1:25",
            date: "Mon, 30 Nov 2026 19:00:00 +0000",
            hostname: "probe.example",
        }
    }

    #[test]
    fn serial_in_subject_and_body() {
        let m = String::from_utf8(render("a@x", "b@y", &stamp(42), 0)).unwrap();
        assert!(
            m.contains("Subject: SMTPTEST 000042 Mon, 30 Nov 2026 19:00:00 +0000 mx1:25\n"),
            "{m}"
        );
        assert!(m.contains("\n\nSMTPTEST 000042: a test message"), "{m}");
        assert!(m.contains("Message-Id: <smtp-probe."), "{m}");
    }

    /// `-k 20` pads within 5% of 20 KiB, with lines a relay accepts.
    #[test]
    fn padding_size_and_lines() {
        let plain = render("a@x", "b@y", &stamp(1), 0).len();
        let m = render("a@x", "b@y", &stamp(1), 20);
        let lines = m.iter().filter(|&&b| b == b'\n').count();
        // As sent: every LF becomes CRLF.
        let sent = m.len() + lines - plain;
        let want = 20 * 1024;
        assert!(sent.abs_diff(want) * 20 <= want, "{sent}");
        let body = m.split(|&b| b == b'\n').skip_while(|l| !l.is_empty());
        // The blank line, the serial line, then the padding.
        for line in body.skip(2) {
            assert!(line.len() <= PAD_LINE, "{}", line.len());
            assert!(!line.starts_with(b"."));
        }
    }
}
