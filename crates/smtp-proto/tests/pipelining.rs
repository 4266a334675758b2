//! The client session against an in-memory server (quinn's `Pair` idea):
//! PIPELINING and CHUNKING change how commands are grouped into writes,
//! never what happens. For any server behaviour and any way its replies
//! are split into reads, every mode must give the events stop-and-wait
//! DATA gives, and the server must receive every accepted message whole.

use bytes::{BufMut, BytesMut};
use proptest::prelude::*;
use smtp_proto::{
    client::{ClientConfig, ClientSession, Esmtp, Event, Piece, Protocol, Transmit},
    stuff,
};

/// The message as it is (BDAT form); a line starts with a dot so that
/// the DATA form differs.
const MESSAGE: &[u8] = b"Subject: t\r\n\r\n.dot line\r\nbody line\r\n";

/// What the server does with a command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    Accept,
    Reject,
    /// 421 and close.
    Close,
}

fn verdict() -> impl Strategy<Value = Verdict> {
    prop_oneof![
        6 => Just(Verdict::Accept),
        3 => Just(Verdict::Reject),
        1 => Just(Verdict::Close),
    ]
}

/// The server's decisions, by transaction and recipient number, so that
/// they do not depend on which commands a mode sends.
#[derive(Debug, Clone)]
struct Script {
    mail: Vec<Verdict>,
    rcpt: Vec<Vec<Verdict>>,
    dot: Vec<Vec<Verdict>>,
}

const TXNS: usize = 3;
const RCPTS: usize = 2;

fn script() -> impl Strategy<Value = Script> {
    (
        prop::collection::vec(verdict(), TXNS),
        prop::collection::vec(prop::collection::vec(verdict(), RCPTS), TXNS),
        prop::collection::vec(prop::collection::vec(verdict(), RCPTS), TXNS),
    )
        .prop_map(|(mail, rcpt, dot)| Script { mail, rcpt, dot })
}

/// A small SMTP/LMTP server with PIPELINING and CHUNKING that answers in
/// order, as RFC 2920 requires.
struct Server {
    script: Script,
    lmtp: bool,
    input: Vec<u8>,
    out: Vec<u8>,
    closed: bool,
    txn: usize,
    in_mail: bool,
    rcpt_no: usize,
    accepted: Vec<usize>,
    /// Inside DATA: collecting until CRLF.CRLF.
    in_data: bool,
    /// Inside a BDAT chunk: bytes left, and whether it is the last.
    chunk: Option<(usize, bool)>,
    /// The current transaction has failed BDAT chunks (RFC 3030 §2).
    bdat_failed: bool,
    content: Vec<u8>,
    /// Messages accepted, as received (unstuffed).
    delivered: Vec<Vec<u8>>,
}

impl Server {
    fn new(script: Script, lmtp: bool) -> Server {
        let mut s = Server {
            script,
            lmtp,
            input: Vec::new(),
            out: Vec::new(),
            closed: false,
            txn: 0,
            in_mail: false,
            rcpt_no: 0,
            accepted: Vec::new(),
            in_data: false,
            chunk: None,
            bdat_failed: false,
            content: Vec::new(),
            delivered: Vec::new(),
        };
        s.out.extend_from_slice(b"220 test ESMTP\r\n");
        s
    }

    fn reply(&mut self, text: &str) {
        self.out.extend_from_slice(text.as_bytes());
        self.out.extend_from_slice(b"\r\n");
    }

    fn close(&mut self) {
        self.reply("421 4.3.0 closing");
        self.closed = true;
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.input.extend_from_slice(bytes);
        while !self.closed && self.step() {}
    }

    /// Handles one unit of input; false when more input is needed.
    fn step(&mut self) -> bool {
        if let Some((left, last)) = self.chunk {
            let n = left.min(self.input.len());
            self.content.extend(self.input.drain(..n));
            if n < left {
                self.chunk = Some((left - n, last));
                return false;
            }
            self.chunk = None;
            self.end_chunk(last);
            return true;
        }
        let Some(eol) = self.input.windows(2).position(|w| w == b"\r\n") else {
            return false;
        };
        let line: Vec<u8> = self.input.drain(..eol + 2).take(eol).collect();
        if self.in_data {
            if line == b"." {
                self.in_data = false;
                let message = std::mem::take(&mut self.content);
                self.end_of_data(message);
            } else {
                let line = line.strip_prefix(b".").unwrap_or(&line);
                self.content.extend_from_slice(line);
                self.content.extend_from_slice(b"\r\n");
            }
            return true;
        }
        let line = String::from_utf8(line).expect("ASCII commands");
        let verb = line.split(' ').next().unwrap_or("").to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" | "LHLO" => {
                self.reply("250-test\r\n250-PIPELINING\r\n250-CHUNKING\r\n250 SIZE 1000000")
            }
            "MAIL" => {
                let v = self.script.mail[self.txn.min(TXNS - 1)];
                match v {
                    Verdict::Accept => {
                        self.in_mail = true;
                        self.rcpt_no = 0;
                        self.accepted.clear();
                        self.bdat_failed = false;
                        self.reply("250 ok");
                    }
                    Verdict::Reject => {
                        self.txn += 1;
                        self.reply("550 no sender");
                    }
                    Verdict::Close => self.close(),
                }
            }
            "RCPT" if !self.in_mail => self.reply("503 need MAIL"),
            "RCPT" => {
                let v = self.script.rcpt[self.txn.min(TXNS - 1)][self.rcpt_no.min(RCPTS - 1)];
                self.rcpt_no += 1;
                match v {
                    Verdict::Accept => {
                        self.accepted.push(self.rcpt_no - 1);
                        self.reply("250 ok");
                    }
                    Verdict::Reject => self.reply("550 no rcpt"),
                    Verdict::Close => self.close(),
                }
            }
            "DATA" if !self.in_mail || self.accepted.is_empty() => {
                self.reply("554 no valid recipients")
            }
            "DATA" => {
                self.in_data = true;
                self.reply("354 go");
            }
            "BDAT" => {
                let mut args = line.split(' ').skip(1);
                let size: usize = args.next().and_then(|n| n.parse().ok()).expect("size");
                let last = args.next().is_some_and(|a| a.eq_ignore_ascii_case("LAST"));
                if !self.in_mail || self.accepted.is_empty() {
                    self.bdat_failed = true;
                }
                self.chunk = Some((size, last));
            }
            "RSET" => {
                if self.in_mail {
                    self.txn += 1;
                }
                self.in_mail = false;
                self.content.clear();
                self.reply("250 reset");
            }
            "QUIT" => {
                self.reply("221 bye");
                self.closed = true;
            }
            other => panic!("unexpected command {other:?}"),
        }
        true
    }

    fn end_chunk(&mut self, last: bool) {
        if self.bdat_failed {
            self.content.clear();
            self.reply("503 no valid recipients");
            return;
        }
        if !last {
            self.reply("250 chunk ok");
            return;
        }
        let message = std::mem::take(&mut self.content);
        self.end_of_data(message);
    }

    fn end_of_data(&mut self, message: Vec<u8>) {
        let txn = self.txn.min(TXNS - 1);
        self.txn += 1;
        self.in_mail = false;
        let rcpts = if self.lmtp {
            self.accepted.clone()
        } else {
            vec![0]
        };
        let mut any = false;
        for r in rcpts {
            match self.script.dot[txn][r] {
                Verdict::Accept => {
                    any = true;
                    self.reply("250 queued");
                }
                Verdict::Reject => self.reply("554 rejected"),
                Verdict::Close => {
                    self.close();
                    return;
                }
            }
        }
        if any {
            self.delivered.push(message);
        }
    }
}

/// Events without the replies' texts, for comparing modes.
fn summary(e: &Event) -> Option<String> {
    match e {
        Event::Reply { .. } => None,
        Event::Ready(_) => Some("ready".to_owned()),
        Event::Rejected { phase, reply } => Some(format!("rejected {phase:?} {}", reply.code)),
        other => Some(format!("{other:?}")),
    }
}

struct Run {
    events: Vec<String>,
    delivered: Vec<Vec<u8>>,
    /// Client writes.
    writes: usize,
}

/// Drives one session of `TXNS` transactions of `RCPTS` recipients; the
/// server's replies are handed over in reads of the sizes in `splits`
/// (cycled).
fn drive(script: &Script, esmtp: Esmtp, lmtp: bool, tolerate: bool, splits: &[usize]) -> Run {
    let protocol = if lmtp { Protocol::Lmtp } else { Protocol::Smtp };
    let mut config = ClientConfig::new(protocol, Some(b"client"), tolerate);
    config.esmtp = esmtp;
    let mut client = ClientSession::new(config);
    let mut server = Server::new(script.clone(), lmtp);
    let data_form = stuff(MESSAGE);
    let (mut tx, mut wire, mut rbuf) = (Transmit::default(), Vec::new(), BytesMut::new());
    let (mut events, mut started, mut writes, mut split) = (Vec::new(), 0, 0, 0);
    for _ in 0..10_000 {
        while let Some(e) = client.poll_event() {
            events.extend(summary(&e));
        }
        if client.is_closed() {
            break;
        }
        if client.is_idle() {
            if started < TXNS {
                started += 1;
                client.mail(b"from@x", MESSAGE.len() as u64).unwrap();
                for i in 0..RCPTS {
                    client.rcpt(&[b"to", i.to_string().as_bytes(), b"@y"]);
                }
                client.data();
            } else {
                client.quit().unwrap();
            }
        }
        if client.poll_transmit(&mut tx) {
            writes += 1;
            wire.clear();
            for piece in &tx.pieces {
                match piece {
                    Piece::Commands(r) | Piece::Secret(r) => {
                        wire.extend_from_slice(&tx.commands[r.clone()])
                    }
                    Piece::DataContent => wire.extend_from_slice(&data_form),
                    Piece::Chunk(r) => {
                        wire.extend_from_slice(&MESSAGE[r.start as usize..r.end as usize])
                    }
                }
            }
            server.feed(&wire);
            continue;
        }
        if client.wants_read() {
            if server.out.is_empty() {
                assert!(
                    server.closed,
                    "deadlock: client waits in {:?}",
                    client.phase()
                );
                let cut = client.handle_eof();
                events.push(format!("eof {cut:?}"));
                break;
            }
            let n = splits[split % splits.len()].clamp(1, server.out.len());
            split += 1;
            rbuf.put_slice(&server.out[..n]);
            server.out.drain(..n);
            client.handle_input(&mut rbuf).expect("valid replies");
        }
    }
    assert!(client.is_closed() || server.closed, "session did not end");
    Run {
        events,
        delivered: server.delivered,
        writes,
    }
}

fn modes() -> [(&'static str, Esmtp); 4] {
    let ehlo = Esmtp {
        ehlo: true,
        ..Esmtp::default()
    };
    [
        (
            "pipelining",
            Esmtp {
                pipelining: true,
                ..ehlo
            },
        ),
        (
            "chunking",
            Esmtp {
                chunking: Some(0),
                ..ehlo
            },
        ),
        (
            "pipelining + chunks of 7",
            Esmtp {
                pipelining: true,
                chunking: Some(7),
                ..ehlo
            },
        ),
        (
            "pipelining + one chunk + size",
            Esmtp {
                pipelining: true,
                chunking: Some(0),
                size: true,
                ..ehlo
            },
        ),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// Grouping is invisible: same events, same messages delivered.
    #[test]
    fn every_mode_gives_the_stop_and_wait_outcome(
        script in script(),
        lmtp in any::<bool>(),
        tolerate in any::<bool>(),
        splits in prop::collection::vec(1usize..40, 1..8),
    ) {
        let plain = Esmtp { ehlo: true, ..Esmtp::default() };
        let reference = drive(&script, plain, lmtp, tolerate, &[usize::MAX]);
        for message in &reference.delivered {
            prop_assert_eq!(&message[..], MESSAGE);
        }
        for (name, esmtp) in modes() {
            let run = drive(&script, esmtp, lmtp, tolerate, &splits);
            prop_assert_eq!(&run.events, &reference.events, "{}", name);
            let fatal = reference.events.last().is_some_and(|e| e.contains("Rejected)"));
            if fatal && esmtp.pipelining && esmtp.chunking.is_some() {
                // Without -A the first rejection ends the run, but a BDAT
                // pipelined behind the RCPTs was already on its way: the
                // server may have taken one more message. Nothing is lost.
                prop_assert!(run.delivered.starts_with(&reference.delivered), "{}", name);
                prop_assert!(run.delivered.len() <= reference.delivered.len() + 1, "{}", name);
            } else {
                prop_assert_eq!(&run.delivered, &reference.delivered, "{}", name);
            }
        }
    }
}

fn all_accept() -> Script {
    Script {
        mail: vec![Verdict::Accept; TXNS],
        rcpt: vec![vec![Verdict::Accept; RCPTS]; TXNS],
        dot: vec![vec![Verdict::Accept; RCPTS]; TXNS],
    }
}

/// One write per transaction: with PIPELINING, the content and the next
/// transaction's envelope share a write; with CHUNKING too, MAIL, RCPTs
/// and BDAT LAST with the content are one write.
#[test]
fn one_write_per_message() {
    let all = all_accept();
    let [pipelining, _, _, chunked] = modes();
    let run = drive(&all, pipelining.1, false, false, &[usize::MAX]);
    assert_eq!(run.delivered.len(), TXNS);
    // EHLO; MAIL+RCPTs+DATA; then content + next envelope (or QUIT) each.
    assert_eq!(run.writes, 1 + TXNS + 1, "{:?}", run.events);
    let run = drive(&all, chunked.1, false, false, &[usize::MAX]);
    assert_eq!(run.delivered.len(), TXNS);
    // EHLO; one write per message; QUIT.
    assert_eq!(run.writes, 1 + TXNS + 1);
    // Stop and wait: EHLO, MAIL, 2 RCPT, DATA, content per message; QUIT.
    let plain = Esmtp {
        ehlo: true,
        ..Esmtp::default()
    };
    let run = drive(&all, plain, false, false, &[usize::MAX]);
    assert_eq!(run.writes, 1 + TXNS * (RCPTS + 3) + 1);
}

/// The exact bytes of a pipelined, chunked transaction.
#[test]
fn pipelined_group_bytes() {
    let mut config = ClientConfig::new(Protocol::Smtp, Some(b"me"), false);
    config.esmtp = Esmtp {
        pipelining: true,
        chunking: Some(16),
        size: true,
        eight_bit_mime: true,
        smtputf8: true,
        ..Esmtp::default()
    };
    let mut c = ClientSession::new(config);
    let mut tx = Transmit::default();
    c.handle_input(&mut BytesMut::from(&b"220 x\r\n"[..]))
        .unwrap();
    assert!(c.poll_transmit(&mut tx));
    assert_eq!(&tx.commands[..], b"EHLO me\r\n");
    c.handle_input(&mut BytesMut::from(
        &b"250-x\r\n250-PIPELINING\r\n250-SIZE 100\r\n250-8BITMIME\r\n250-SMTPUTF8\r\n250 CHUNKING\r\n"[..],
    ))
    .unwrap();
    assert!(matches!(c.poll_event(), Some(Event::Ready(_))));
    c.mail(b"a@x", 40).unwrap();
    c.rcpt(&[b"b@y"]);
    c.data();
    assert!(c.poll_transmit(&mut tx));
    let cmd =
        |r: &std::ops::Range<usize>| String::from_utf8(tx.commands[r.clone()].to_vec()).unwrap();
    let shown: Vec<String> = tx
        .pieces
        .iter()
        .map(|p| match p {
            Piece::Commands(r) | Piece::Secret(r) => cmd(r),
            Piece::Chunk(r) => format!("<{}..{}>", r.start, r.end),
            Piece::DataContent => "<data>".to_owned(),
        })
        .collect();
    assert_eq!(
        shown,
        [
            "MAIL FROM:<a@x> SIZE=40 BODY=8BITMIME SMTPUTF8\r\nRCPT TO:<b@y>\r\nBDAT 16\r\n",
            "<0..16>",
            "BDAT 16\r\n",
            "<16..32>",
            "BDAT 8 LAST\r\n",
            "<32..40>",
        ]
    );
    assert!(!c.poll_transmit(&mut tx), "all in one write");
}

/// A server without PIPELINING gets one command at a time, and a 5xx to
/// EHLO falls back to HELO with no ESMTP parameters.
#[test]
fn fallbacks() {
    let mut config = ClientConfig::new(Protocol::Smtp, Some(b"me"), false);
    config.esmtp = Esmtp {
        pipelining: true,
        size: true,
        ..Esmtp::default()
    };
    let mut c = ClientSession::new(config.clone());
    let mut tx = Transmit::default();
    c.handle_input(&mut BytesMut::from(&b"220 x\r\n"[..]))
        .unwrap();
    c.poll_transmit(&mut tx);
    c.handle_input(&mut BytesMut::from(&b"250 x\r\n"[..]))
        .unwrap();
    c.mail(b"a", 5).unwrap();
    c.rcpt(&[b"b"]);
    c.data();
    assert!(c.poll_transmit(&mut tx));
    assert_eq!(&tx.commands[..], b"MAIL FROM:<a>\r\n", "SIZE not offered");
    assert!(!c.negotiated().pipelining);
    assert!(!c.poll_transmit(&mut tx), "one at a time");

    let mut c = ClientSession::new(config);
    c.handle_input(&mut BytesMut::from(&b"220 x\r\n"[..]))
        .unwrap();
    c.poll_transmit(&mut tx);
    c.handle_input(&mut BytesMut::from(&b"502 5.5.1 what?\r\n"[..]))
        .unwrap();
    assert!(c.poll_transmit(&mut tx));
    assert_eq!(&tx.commands[..], b"HELO me\r\n");
    assert_eq!(c.poll_event(), None, "a fallback is not a rejection");
    c.handle_input(&mut BytesMut::from(&b"250 x\r\n"[..]))
        .unwrap();
    assert!(matches!(c.poll_event(), Some(Event::Ready(_))));
}

/// Under -A, a MAIL rejected in a pipelined group: the RCPT and DATA
/// replies are expected to fail and are not counted; a 354 that comes
/// anyway is answered with an empty message before RSET.
#[test]
fn aborted_group_is_swallowed() {
    let mut config = ClientConfig::new(Protocol::Smtp, Some(b"me"), true);
    config.esmtp = Esmtp {
        pipelining: true,
        ..Esmtp::default()
    };
    let mut c = ClientSession::new(config);
    let mut tx = Transmit::default();
    c.handle_input(&mut BytesMut::from(&b"220 x\r\n"[..]))
        .unwrap();
    c.poll_transmit(&mut tx);
    c.handle_input(&mut BytesMut::from(&b"250-x\r\n250 PIPELINING\r\n"[..]))
        .unwrap();
    let _ = c.poll_event();
    c.mail(b"a", 5).unwrap();
    c.rcpt(&[b"b"]);
    c.data();
    assert!(c.poll_transmit(&mut tx));
    // An odd server: MAIL rejected, yet RCPT and DATA accepted.
    c.handle_input(&mut BytesMut::from(&b"550 no\r\n250 ok\r\n354 go\r\n"[..]))
        .unwrap();
    assert!(c.poll_transmit(&mut tx));
    assert_eq!(&tx.commands[..], b".\r\nRSET\r\n");
    c.handle_input(&mut BytesMut::from(&b"250 ok\r\n250 reset\r\n"[..]))
        .unwrap();
    let events: Vec<_> = std::iter::from_fn(|| c.poll_event())
        .filter_map(|e| summary(&e))
        .collect();
    assert_eq!(
        events,
        [
            "rejected Mail 550",
            "TransactionDone(Rejected { phase: Mail })"
        ]
    );
    assert!(c.is_idle());
}
