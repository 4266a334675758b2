//! ClientSession (smtp-source's state machine) against a random server: a
//! whole session (greeting, EHLO/HELO/LHLO, STARTTLS, AUTH, transactions,
//! QUIT) with fuzzed options, fed fuzzed reply bytes cut at fuzzed points.
//!
//! Asserted: no panic; every round of the driver loop makes progress (a
//! write, an event, input taken, the end of input) or the session is
//! closed, so it can never sit waiting for nothing; the loop ends within a
//! bound set by the input's length; a parse failure is a typed
//! `ParseError`; the events make sense (`Closed` is the last one and comes
//! once, no more transactions end than were started, no more recipients
//! delivered than were staged); writes are bounded and BDAT chunks stay
//! inside the message.

#![no_main]

use arbitrary::Arbitrary;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use smtp_proto::client::{
    Auth, ClientConfig, ClientSession, Event, Mechanism, Outcome, Piece, Protocol, Transmit,
};
use smtp_proto::Limits;
use smtp_proto_fuzz::cut;

/// Whole reply lines and fragments that a server would send: random
/// bytes almost never spell "250-PIPELINING", these always do.
const REPLY_TOKENS: &[&[u8]] = &[
    b"220 hi\r\n",
    b"250 ok\r\n",
    b"250-x\r\n",
    b"250-PIPELINING\r\n",
    b"250-CHUNKING\r\n",
    b"250-SIZE 100\r\n",
    b"250-8BITMIME\r\n",
    b"250-SMTPUTF8\r\n",
    b"250-STARTTLS\r\n",
    b"250-AUTH PLAIN LOGIN\r\n",
    b"250-AUTH LOGIN\r\n",
    b"250 \r\n",
    b"354 go\r\n",
    b"334 VXNlcm5hbWU6\r\n",
    b"334 \r\n",
    b"235 ok\r\n",
    b"221 bye\r\n",
    b"421 closing\r\n",
    b"450 later\r\n",
    b"500 what\r\n",
    b"502 no\r\n",
    b"521 never\r\n",
    b"550 no\r\n",
    b"554 no\r\n",
    b"250 2.0.0 ok\r\n",
    b"\r\n",
    b"\n",
    b"2",
    b"5",
    b"0",
    b"-",
    b" ",
    b"x",
];

/// The options of the session, and the server's bytes.
#[derive(Debug, Arbitrary)]
struct Input {
    lmtp: bool,
    /// Send no greeting command at all (`-o`).
    no_helo: bool,
    ehlo: bool,
    pipelining: bool,
    /// `Some(n)`: CHUNKING with chunks of `n % 64` bytes (0: one chunk).
    chunking: Option<u8>,
    size: bool,
    eight_bit_mime: bool,
    smtputf8: bool,
    starttls: bool,
    /// 0: no AUTH, 1: any mechanism, 2: PLAIN, 3: LOGIN.
    auth: u8,
    tolerate_rejects: bool,
    report_replies: bool,
    timings: bool,
    /// Small reply limits, so that the caps are reached.
    small_limits: bool,
    /// Transactions to run (mod 4), recipients each (1 + mod 4), content
    /// length (mod 200).
    txns: u8,
    rcpts: u8,
    content_len: u8,
    /// Map each byte to a whole token of [`REPLY_TOKENS`].
    tokens: bool,
    cuts: Vec<u16>,
    data: Vec<u8>,
}

impl Input {
    fn config(&self) -> ClientConfig {
        let protocol = if self.lmtp {
            Protocol::Lmtp
        } else {
            Protocol::Smtp
        };
        let helo = (!self.no_helo).then_some(&b"fuzz.example"[..]);
        let mut c = ClientConfig::new(protocol, helo, self.tolerate_rejects);
        c.esmtp.ehlo = self.ehlo;
        c.esmtp.pipelining = self.pipelining;
        c.esmtp.chunking = self.chunking.map(|n| u64::from(n % 64));
        c.esmtp.size = self.size;
        c.esmtp.eight_bit_mime = self.eight_bit_mime;
        c.esmtp.smtputf8 = self.smtputf8;
        c.starttls = self.starttls;
        c.auth = match self.auth % 4 {
            0 => None,
            n => Some(Auth {
                mechanism: match n {
                    2 => Some(Mechanism::Plain),
                    3 => Some(Mechanism::Login),
                    _ => None,
                },
                user: b"user".to_vec(),
                password: b"secret".to_vec(),
            }),
        };
        c.report_replies = self.report_replies;
        c.timings = self.timings;
        if self.small_limits {
            c.limits = Limits {
                max_reply_line: 64,
                max_reply_lines: 4,
                ..Limits::default()
            };
        }
        c
    }

    fn bytes(&self) -> Vec<u8> {
        if !self.tokens {
            return self.data.clone();
        }
        self.data
            .iter()
            .flat_map(|&b| REPLY_TOKENS[usize::from(b) % REPLY_TOKENS.len()].iter())
            .copied()
            .collect()
    }
}

/// The longest write of commands one poll may hand out: a group of
/// MAIL, RCPTs, DATA or BDATs, far below this for the inputs used here.
const MAX_WRITE: usize = 16 * 1024;

fuzz_target!(|input: Input| {
    let config = input.config();
    let txns = usize::from(input.txns % 4);
    let rcpts = 1 + usize::from(input.rcpts % 4);
    let content_len = u64::from(input.content_len % 200);
    let data = input.bytes();
    let mut parts = cut(&data, &input.cuts).into_iter();

    // Each round either writes, reports an event, takes a part of the
    // input, or ends; what the session can write without reading is
    // bounded by what was staged (a BDAT per content byte at worst).
    let staged_commands = 8 + txns * (3 + rcpts + content_len as usize);
    let bound = 16 + 4 * (data.len() + input.cuts.len() + staged_commands);

    let mut s = ClientSession::new(config);
    let mut out = Transmit::default();
    let mut buf = BytesMut::new();
    let mut started = 0;
    let mut done = 0;
    let mut closed_seen = false;
    let mut eof = false;
    for round in 0.. {
        assert!(
            round <= bound,
            "no end after {round} rounds: {:?}",
            s.phase()
        );
        let mut progress = false;
        while let Some(event) = s.poll_event() {
            progress = true;
            assert!(!closed_seen, "event after Closed: {event:?}");
            match event {
                Event::StartTls => {
                    // What came after the 220 is not kept (RFC 3207).
                    buf.clear();
                    s.tls_started();
                }
                Event::TransactionDone(outcome) => {
                    done += 1;
                    assert!(done <= started, "{done} transactions done of {started}");
                    if let Outcome::Delivered { recipients } = outcome {
                        assert!(recipients as usize <= rcpts, "{recipients} delivered");
                    }
                }
                Event::Closed(_) => closed_seen = true,
                Event::Ready(_)
                | Event::Authenticated
                | Event::Reply { .. }
                | Event::Rejected { .. } => {}
            }
        }
        let _ = s.timings().count();
        if s.is_closed() {
            assert!(!s.poll_transmit(&mut out), "a write after the close");
            break;
        }
        if s.is_idle() {
            progress = true;
            if started < txns {
                started += 1;
                s.mail(b"a@b", content_len).expect("idle");
                for i in 0..rcpts {
                    s.rcpt(&[b"r", &[b'0' + i as u8], b"@d"]);
                }
                s.data();
            } else {
                s.quit().expect("idle");
            }
        }
        if s.poll_transmit(&mut out) {
            progress = true;
            assert!(
                out.commands.len() <= MAX_WRITE,
                "{} bytes",
                out.commands.len()
            );
            for piece in &out.pieces {
                match piece {
                    Piece::Commands(r) | Piece::Secret(r) => {
                        assert!(r.start < r.end && r.end <= out.commands.len())
                    }
                    Piece::Chunk(r) => assert!(r.start <= r.end && r.end <= content_len),
                    Piece::DataContent => {}
                }
            }
        }
        if s.wants_read() {
            match parts.next() {
                Some(part) => {
                    progress = true;
                    buf.extend_from_slice(part);
                    if let Err(e) = s.handle_input(&mut buf) {
                        // A typed error ends the session, as the runtime
                        // closes the connection.
                        let _ = e.to_string();
                        break;
                    }
                }
                None if !eof => {
                    progress = true;
                    eof = true;
                    let _ = s.handle_eof();
                    if !s.is_closed() {
                        // The runtime reports the lost connection and stops.
                        break;
                    }
                }
                None => break,
            }
        }
        assert!(
            progress,
            "stuck: not idle, nothing to write, no reply awaited ({:?})",
            s.phase()
        );
    }
});
