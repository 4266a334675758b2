//! A sans-IO SMTP/LMTP client session: the conversation of Postfix's
//! smtp-source as a state machine (postfix-reference.md §1.2-1.3).
//!
//! The session never reads or writes a socket. The runtime that drives it
//! feeds it the bytes it reads ([`ClientSession::handle_input`]) and asks
//! it what to write next ([`ClientSession::poll_transmit`]); what happened
//! comes back as [`Event`]s ([`ClientSession::poll_event`]). This is
//! quinn-proto's `Connection` shape applied to SMTP.
//!
//! # Model
//! * Commands of a transaction are *staged* (encoded once into a reused
//!   buffer) when the runtime starts it, each with the [`Phase`] it belongs
//!   to. [`poll_transmit`](ClientSession::poll_transmit) moves staged
//!   commands to the wire and records the reply each one expects in an
//!   in-flight queue; replies are matched to that queue in order. Without
//!   PIPELINING one command is in flight at a time, which is what Postfix's
//!   smtp-source does; the queue is what lets a pipelining mode release a
//!   whole batch later without a new design.
//! * What to do with a reply that is not the positive one expected is data,
//!   not code paths: [`Recovery::for_reject`] holds Postfix's `-A` rules
//!   (RSET after a rejected MAIL or DATA, RSET when every RCPT was
//!   rejected, close without QUIT on 421/521, count a rejected end of data
//!   and go on).
//! * The message content is the runtime's: after 354 the session returns
//!   [`Transmit::Message`], and the runtime writes its header block and the
//!   shared body (which ends in `.` CRLF) in one go.
//!
//! # Where the next features go
//! * **PIPELINING** (RFC 2920): a config flag (or the EHLO capability)
//!   lets `poll_transmit` move every staged command up to and including
//!   DATA into the buffer at once, pushing each phase on the in-flight
//!   queue; replies are already matched in order. Under `-A`, replies to
//!   commands of an aborted transaction that were already sent are then
//!   swallowed instead of acted on.
//! * **EHLO**: a phase whose positive reply is read with
//!   [`Capabilities::from_reply`](crate::Capabilities::from_reply) and
//!   reported with `Ready`.
//! * **STARTTLS** (RFC 3207): a staged phase after EHLO; on 220 the session
//!   waits in a new state while the runtime wraps the stream, then restarts
//!   at EHLO with the capabilities forgotten (§4.2).
//! * **AUTH** (RFC 4954): a phase whose 334 replies are intermediate; the
//!   runtime's responses are staged as [`Request::Raw`].
//!
//! ```
//! use bytes::BytesMut;
//! use smtp_proto::client::{ClientConfig, ClientSession, Event, Protocol, Transmit};
//!
//! let mut s = ClientSession::new(ClientConfig::new(Protocol::Smtp, Some(b"vm"), false));
//! let mut out = BytesMut::new();
//! s.handle_input(&mut BytesMut::from(&b"220 hi\r\n"[..])).unwrap();
//! assert_eq!(s.poll_transmit(&mut out), Transmit::Command);
//! assert_eq!(&out[..], b"HELO vm\r\n");
//! s.handle_input(&mut BytesMut::from(&b"250 ok\r\n"[..])).unwrap();
//! assert_eq!(s.poll_event(), Some(Event::Ready));
//! ```

use std::collections::VecDeque;

use bytes::{BufMut, BytesMut};

use crate::{Limits, ParseError, Reply, ReplyCode, ReplyParser, Request};

/// The dialect spoken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// SMTP (RFC 5321): `HELO`, one end-of-data reply.
    Smtp,
    /// LMTP (RFC 2033): `LHLO`, one end-of-data reply per accepted
    /// recipient.
    Lmtp,
}

/// How a session behaves; fixed for its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// SMTP or LMTP.
    pub protocol: Protocol,
    /// The name sent with `HELO`/`LHLO`; `None` sends no greeting command
    /// at all (Postfix's `-o`).
    pub helo: Option<Vec<u8>>,
    /// Tolerate non-positive replies and recover (Postfix's `-A`). When
    /// false, the first one ends the session with
    /// [`CloseReason::Rejected`].
    pub tolerate_rejects: bool,
    /// Caps for the reply parser.
    pub limits: Limits,
    /// Report every reply as [`Event::Reply`] (for verbose transcripts).
    pub report_replies: bool,
}

impl ClientConfig {
    /// A configuration with default limits.
    pub fn new(protocol: Protocol, helo: Option<&[u8]>, tolerate_rejects: bool) -> Self {
        Self {
            protocol,
            helo: helo.map(<[u8]>::to_vec),
            tolerate_rejects,
            limits: Limits::default(),
            report_replies: false,
        }
    }
}

/// The step of the conversation a command, a reply or a failure belongs
/// to; the key for error texts and statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// Waiting for the server's greeting.
    Greeting,
    /// `HELO` or `LHLO`.
    Helo,
    /// `MAIL FROM`.
    Mail,
    /// `RCPT TO`.
    Rcpt,
    /// `DATA` and its 354.
    Data,
    /// The message content and its end-of-data reply (or replies).
    EndOfData,
    /// `RSET`.
    Rset,
    /// `QUIT`.
    Quit,
}

impl Phase {
    /// Every phase, in conversation order.
    pub const ALL: [Phase; 8] = [
        Phase::Greeting,
        Phase::Helo,
        Phase::Mail,
        Phase::Rcpt,
        Phase::Data,
        Phase::EndOfData,
        Phase::Rset,
        Phase::Quit,
    ];
}

/// What the runtime must write next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transmit {
    /// Nothing to write now: read, or start a transaction, or stop.
    Nothing,
    /// Command bytes were appended to the caller's buffer.
    Command,
    /// Write the message content now (header block and body, ending in
    /// `.` CRLF). The session already counts it as sent.
    Message,
}

/// How a transaction ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Every end-of-data reply was positive.
    Delivered {
        /// Recipients the server accepted.
        recipients: u32,
    },
    /// The transaction failed; `phase` is where the first rejection came.
    Rejected {
        /// Where it failed.
        phase: Phase,
    },
}

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    /// After `QUIT` (a reply or the server closing; both are fine).
    Quit,
    /// A 421 or 521 reply under `-A`: close at once, no `QUIT`.
    ServiceClosing,
    /// A rejection without `-A`: the run is over (Postfix's fatal error).
    Rejected,
}

/// What happened; drained with [`ClientSession::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The greeting and HELO/LHLO are done: a transaction may start.
    Ready,
    /// A reply arrived (only with [`ClientConfig::report_replies`]);
    /// reported before what it causes.
    Reply {
        /// The phase of the command it answers.
        phase: Phase,
        /// The reply.
        reply: Reply,
    },
    /// A reply was not the positive one the phase needs (2xx, or exactly
    /// 354 for DATA).
    Rejected {
        /// The phase of the command it answered.
        phase: Phase,
        /// The reply.
        reply: Reply,
    },
    /// A transaction ended; the session is idle again.
    TransactionDone(Outcome),
    /// The session is over; the runtime closes the connection.
    Closed(CloseReason),
}

/// What the session does after a rejection under `-A`: Postfix's recovery
/// rules as data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// Go on as if the reply had been positive (greeting, HELO).
    Continue,
    /// Note the rejection and go on (RCPT: RSET only if none is accepted).
    CountAndContinue,
    /// Drop the rest of the transaction and send `RSET`.
    Reset,
    /// The transaction is over; no RSET (a rejected end of data).
    EndTransaction,
    /// Close at once without `QUIT`.
    Close,
}

impl Recovery {
    /// Postfix's `-A` rule for a rejected reply in `phase`.
    pub fn for_reject(phase: Phase, code: ReplyCode) -> Recovery {
        let closing = matches!(code.0, 421 | 521);
        match phase {
            // The banner is only a warning, whatever its code.
            Phase::Greeting => Recovery::Continue,
            Phase::Quit => Recovery::EndTransaction,
            _ if closing => Recovery::Close,
            Phase::Helo => Recovery::Continue,
            Phase::Mail | Phase::Data => Recovery::Reset,
            Phase::Rcpt => Recovery::CountAndContinue,
            Phase::EndOfData | Phase::Rset => Recovery::EndTransaction,
        }
    }
}

/// A misuse of the session by its runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SequenceError {
    /// A transaction or QUIT was started while the session was not idle.
    NotIdle,
}

impl std::fmt::Display for SequenceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("session is not idle")
    }
}

impl std::error::Error for SequenceError {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Before the greeting and HELO are through.
    Opening,
    /// Between transactions.
    Idle,
    /// A transaction (or its RSET) is in progress.
    Transaction,
    /// 354 arrived; the content is the next thing to write.
    SendMessage,
    /// QUIT staged or sent.
    Quitting,
    /// Over.
    Closed,
}

/// One command waiting in the stage buffer.
#[derive(Debug, Clone, Copy)]
struct Staged {
    phase: Phase,
    len: usize,
}

/// Bookkeeping of the transaction in progress.
#[derive(Debug, Clone, Copy, Default)]
struct Txn {
    rcpts_staged: u32,
    rcpt_replies: u32,
    rcpts_accepted: u32,
    dot_replies_left: u32,
    first_reject: Option<Phase>,
}

/// One client conversation over one connection.
#[derive(Debug)]
pub struct ClientSession {
    config: ClientConfig,
    parser: ReplyParser,
    state: State,
    /// Encoded commands not yet handed out, front first.
    stage: BytesMut,
    stage_pos: usize,
    staged: VecDeque<Staged>,
    /// Replies expected, oldest first.
    in_flight: VecDeque<Phase>,
    events: VecDeque<Event>,
    txn: Txn,
    /// The phase of the last command handed out, for naming failures.
    last_phase: Phase,
}

impl ClientSession {
    /// A session that waits for the server's greeting.
    pub fn new(config: ClientConfig) -> Self {
        let parser = ReplyParser::new(config.limits);
        let mut in_flight = VecDeque::with_capacity(8);
        in_flight.push_back(Phase::Greeting);
        Self {
            config,
            parser,
            state: State::Opening,
            stage: BytesMut::with_capacity(256),
            stage_pos: 0,
            staged: VecDeque::with_capacity(8),
            in_flight,
            events: VecDeque::with_capacity(4),
            txn: Txn::default(),
            last_phase: Phase::Greeting,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The phase the session is in: the reply it waits for, else the
    /// command it sends next, else the last one sent. Runtimes name
    /// timeouts and lost connections with it.
    pub fn phase(&self) -> Phase {
        if let Some(p) = self.in_flight.front() {
            return *p;
        }
        if self.state == State::SendMessage {
            return Phase::EndOfData;
        }
        self.staged.front().map_or(self.last_phase, |s| s.phase)
    }

    /// Whether a transaction or QUIT may start now.
    pub fn is_idle(&self) -> bool {
        self.state == State::Idle
    }

    /// Whether the session has ended.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Whether replies are outstanding, i.e. the runtime should read.
    pub fn wants_read(&self) -> bool {
        self.state != State::Closed && !self.in_flight.is_empty()
    }

    /// Starts a transaction: stages `MAIL FROM:<from>`. Follow with
    /// [`rcpt`](Self::rcpt) for each recipient and [`data`](Self::data).
    ///
    /// # Errors
    /// [`SequenceError::NotIdle`] unless the session is idle.
    pub fn mail(&mut self, from: &[u8]) -> Result<(), SequenceError> {
        if self.state != State::Idle {
            return Err(SequenceError::NotIdle);
        }
        self.state = State::Transaction;
        self.txn = Txn::default();
        self.stage_request(
            Phase::Mail,
            Request::MailFrom {
                path: from,
                params: b"",
            },
        );
        Ok(())
    }

    /// Stages `RCPT TO:<path>`, the path being the concatenation of
    /// `parts` (so a numbered address needs no formatted copy).
    pub fn rcpt(&mut self, parts: &[&[u8]]) {
        if self.state != State::Transaction {
            return;
        }
        self.txn.rcpts_staged += 1;
        let start = self.stage.len();
        self.stage.put_slice(b"RCPT TO:<");
        for part in parts {
            self.stage.put_slice(part);
        }
        self.stage.put_slice(b">\r\n");
        self.staged.push_back(Staged {
            phase: Phase::Rcpt,
            len: self.stage.len() - start,
        });
    }

    /// Stages `DATA`, completing the envelope.
    pub fn data(&mut self) {
        if self.state == State::Transaction {
            self.stage_request(Phase::Data, Request::Data);
        }
    }

    /// Stages `QUIT`.
    ///
    /// # Errors
    /// [`SequenceError::NotIdle`] unless the session is idle.
    pub fn quit(&mut self) -> Result<(), SequenceError> {
        if self.state != State::Idle {
            return Err(SequenceError::NotIdle);
        }
        self.state = State::Quitting;
        self.stage_request(Phase::Quit, Request::Quit);
        Ok(())
    }

    /// Appends what must be written next to `out` (for commands) or says
    /// that the message content is due.
    pub fn poll_transmit(&mut self, out: &mut BytesMut) -> Transmit {
        if self.state == State::Closed || !self.in_flight.is_empty() {
            return Transmit::Nothing;
        }
        if self.state == State::SendMessage {
            self.state = State::Transaction;
            self.txn.dot_replies_left = match self.config.protocol {
                Protocol::Smtp => 1,
                Protocol::Lmtp => self.txn.rcpts_accepted,
            };
            for _ in 0..self.txn.dot_replies_left {
                self.in_flight.push_back(Phase::EndOfData);
            }
            self.last_phase = Phase::EndOfData;
            return Transmit::Message;
        }
        let Some(cmd) = self.staged.pop_front() else {
            return Transmit::Nothing;
        };
        let end = self.stage_pos + cmd.len;
        out.put_slice(&self.stage[self.stage_pos..end]);
        self.stage_pos = end;
        if self.staged.is_empty() {
            self.stage.clear();
            self.stage_pos = 0;
        }
        self.in_flight.push_back(cmd.phase);
        self.last_phase = cmd.phase;
        Transmit::Command
    }

    /// Takes every complete reply off the front of `buf` that answers a
    /// command in flight, and updates the state. Bytes nobody asked for
    /// stay in `buf`.
    ///
    /// # Errors
    /// A reply that can never be valid; the runtime ends the session.
    pub fn handle_input(&mut self, buf: &mut BytesMut) -> Result<(), ParseError> {
        while self.wants_read() {
            match self.parser.parse(buf)? {
                Some(reply) => self.handle_reply(reply),
                None => break,
            }
        }
        Ok(())
    }

    /// Handles one reply to the oldest command in flight; replies that
    /// nobody waits for are ignored.
    pub fn handle_reply(&mut self, reply: Reply) {
        let Some(phase) = self.in_flight.pop_front() else {
            return;
        };
        if self.config.report_replies {
            self.events.push_back(Event::Reply {
                phase,
                reply: reply.clone(),
            });
        }
        let positive = match phase {
            Phase::Data => reply.code == ReplyCode::START_DATA,
            Phase::Quit => true,
            _ => reply.code.is_positive(),
        };
        if positive {
            self.accepted(phase);
            return;
        }
        let code = reply.code;
        self.events.push_back(Event::Rejected { phase, reply });
        if !self.config.tolerate_rejects {
            self.close(CloseReason::Rejected);
            return;
        }
        if matches!(
            phase,
            Phase::Mail | Phase::Rcpt | Phase::Data | Phase::EndOfData
        ) && self.txn.first_reject.is_none()
        {
            self.txn.first_reject = Some(phase);
        }
        match Recovery::for_reject(phase, code) {
            Recovery::Continue => self.accepted(phase),
            Recovery::CountAndContinue => self.rcpt_replied(),
            Recovery::Reset => self.reset(),
            Recovery::EndTransaction => match phase {
                Phase::EndOfData => self.dot_replied(),
                Phase::Quit => self.close(CloseReason::Quit),
                _ => self.finish_transaction(),
            },
            Recovery::Close => self.close(CloseReason::ServiceClosing),
        }
    }

    /// The connection reached end of file. Returns `None` when that was
    /// expected (after QUIT, or after the session closed), otherwise the
    /// phase that was cut short, for "lost connection while ...".
    pub fn handle_eof(&mut self) -> Option<Phase> {
        match self.state {
            State::Closed => None,
            State::Quitting => {
                self.close(CloseReason::Quit);
                None
            }
            _ => Some(self.phase()),
        }
    }

    /// The next event, oldest first.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    fn accepted(&mut self, phase: Phase) {
        match phase {
            Phase::Greeting => match &self.config.helo {
                Some(name) => {
                    let req = match self.config.protocol {
                        Protocol::Smtp => Request::Helo(name),
                        Protocol::Lmtp => Request::Lhlo(name),
                    };
                    let start = self.stage.len();
                    req.encode(&mut self.stage);
                    self.staged.push_back(Staged {
                        phase: Phase::Helo,
                        len: self.stage.len() - start,
                    });
                }
                None => self.ready(),
            },
            Phase::Helo => self.ready(),
            Phase::Mail => {}
            Phase::Rcpt => {
                self.txn.rcpts_accepted += 1;
                self.rcpt_replied();
            }
            Phase::Data => self.state = State::SendMessage,
            Phase::EndOfData => self.dot_replied(),
            Phase::Rset => self.finish_transaction(),
            Phase::Quit => self.close(CloseReason::Quit),
        }
    }

    fn ready(&mut self) {
        self.state = State::Idle;
        self.events.push_back(Event::Ready);
    }

    /// After each RCPT reply: when the last one is in and none was
    /// accepted, DATA is replaced by RSET (Postfix sends no DATA then).
    fn rcpt_replied(&mut self) {
        self.txn.rcpt_replies += 1;
        if self.txn.rcpt_replies == self.txn.rcpts_staged && self.txn.rcpts_accepted == 0 {
            self.reset();
        }
    }

    fn dot_replied(&mut self) {
        self.txn.dot_replies_left = self.txn.dot_replies_left.saturating_sub(1);
        if self.txn.dot_replies_left == 0 {
            self.finish_transaction();
        }
    }

    fn finish_transaction(&mut self) {
        self.clear_stage();
        self.in_flight.clear();
        let outcome = match self.txn.first_reject {
            Some(phase) => Outcome::Rejected { phase },
            None => Outcome::Delivered {
                recipients: self.txn.rcpts_accepted,
            },
        };
        self.state = State::Idle;
        self.events.push_back(Event::TransactionDone(outcome));
    }

    /// Drops what is left of the transaction and stages RSET.
    fn reset(&mut self) {
        self.clear_stage();
        self.state = State::Transaction;
        self.stage_request(Phase::Rset, Request::Rset);
    }

    fn close(&mut self, reason: CloseReason) {
        self.clear_stage();
        self.in_flight.clear();
        self.state = State::Closed;
        self.events.push_back(Event::Closed(reason));
    }

    fn clear_stage(&mut self) {
        self.stage.clear();
        self.stage_pos = 0;
        self.staged.clear();
    }

    fn stage_request(&mut self, phase: Phase, req: Request<'_>) {
        let start = self.stage.len();
        req.encode(&mut self.stage);
        self.staged.push_back(Staged {
            phase,
            len: self.stage.len() - start,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Drives a session against scripted replies: each time the session
    /// waits for a reply, the next script entry is fed. Returns the client
    /// side of the transcript ("MSG" for the content) and the events.
    fn run(
        config: ClientConfig,
        script: &[&str],
        txns: usize,
        rcpts: usize,
    ) -> (Vec<String>, Vec<Event>) {
        let mut s = ClientSession::new(config);
        let mut sent = Vec::new();
        let mut events = Vec::new();
        let mut script = script.iter();
        let mut out = BytesMut::new();
        let mut started = 0;
        for _ in 0..1000 {
            while let Some(ev) = s.poll_event() {
                events.push(ev);
            }
            if s.is_closed() {
                break;
            }
            if s.is_idle() {
                if started < txns {
                    started += 1;
                    s.mail(b"a@b").unwrap();
                    for i in 0..rcpts {
                        let n = i.to_string();
                        s.rcpt(&[b"r", n.as_bytes(), b"@d"]);
                    }
                    s.data();
                } else {
                    s.quit().unwrap();
                }
            }
            match s.poll_transmit(&mut out) {
                Transmit::Command => {
                    sent.push(
                        String::from_utf8(out.to_vec())
                            .unwrap()
                            .trim_end()
                            .to_owned(),
                    );
                    out.clear();
                    assert_eq!(
                        s.poll_transmit(&mut out),
                        Transmit::Nothing,
                        "one at a time"
                    );
                }
                Transmit::Message => sent.push("MSG".to_owned()),
                Transmit::Nothing => {}
            }
            if s.wants_read() {
                match script.next() {
                    Some(line) => {
                        let mut buf = BytesMut::from(format!("{line}\r\n").as_bytes());
                        s.handle_input(&mut buf).unwrap();
                        assert!(buf.is_empty());
                    }
                    None => {
                        assert_eq!(s.handle_eof(), None, "unexpected EOF in {:?}", s.phase());
                    }
                }
            }
        }
        (sent, events)
    }

    fn smtp(tolerate: bool) -> ClientConfig {
        ClientConfig::new(Protocol::Smtp, Some(b"vm"), tolerate)
    }

    fn rejected(events: &[Event]) -> Vec<(Phase, u16)> {
        events
            .iter()
            .filter_map(|e| match e {
                Event::Rejected { phase, reply } => Some((*phase, reply.code.0)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn default_conversation() {
        let (sent, events) = run(
            smtp(false),
            &[
                "220 hi", "250 ok", "250 ok", "250 ok", "354 go", "250 ok", "221 bye",
            ],
            1,
            1,
        );
        assert_eq!(
            sent,
            [
                "HELO vm",
                "MAIL FROM:<a@b>",
                "RCPT TO:<r0@d>",
                "DATA",
                "MSG",
                "QUIT"
            ]
        );
        assert_eq!(
            events,
            [
                Event::Ready,
                Event::TransactionDone(Outcome::Delivered { recipients: 1 }),
                Event::Closed(CloseReason::Quit)
            ]
        );
    }

    #[test]
    fn old_mode_sends_no_helo_and_quit_eof_is_fine() {
        let cfg = ClientConfig::new(Protocol::Smtp, None, false);
        let (sent, events) = run(cfg, &["220 hi", "250", "250", "354", "250"], 1, 1);
        assert_eq!(
            sent,
            ["MAIL FROM:<a@b>", "RCPT TO:<r0@d>", "DATA", "MSG", "QUIT"]
        );
        assert_eq!(events.last(), Some(&Event::Closed(CloseReason::Quit)));
    }

    #[test]
    fn multiline_greeting_and_split_input() {
        let mut s = ClientSession::new(smtp(false));
        let mut buf = BytesMut::from(&b"220-a\r\n22"[..]);
        s.handle_input(&mut buf).unwrap();
        assert_eq!(s.poll_transmit(&mut BytesMut::new()), Transmit::Nothing);
        buf.extend_from_slice(b"0 b\r\n");
        s.handle_input(&mut buf).unwrap();
        let mut out = BytesMut::new();
        assert_eq!(s.poll_transmit(&mut out), Transmit::Command);
        assert_eq!(&out[..], b"HELO vm\r\n");
    }

    #[test]
    fn reject_without_tolerance_closes() {
        let (sent, events) = run(
            smtp(false),
            &["220 hi", "250 ok", "250 ok", "550 5.1.1 no"],
            1,
            1,
        );
        assert_eq!(sent, ["HELO vm", "MAIL FROM:<a@b>", "RCPT TO:<r0@d>"]);
        assert_eq!(rejected(&events), [(Phase::Rcpt, 550)]);
        assert_eq!(events.last(), Some(&Event::Closed(CloseReason::Rejected)));
    }

    #[test]
    fn banner_reject_is_fatal_without_a() {
        let (sent, events) = run(smtp(false), &["554 5.3.2 go away"], 1, 1);
        assert!(sent.is_empty());
        assert_eq!(rejected(&events), [(Phase::Greeting, 554)]);
    }

    #[test]
    fn tolerated_banner_and_helo_rejects_go_on() {
        let (sent, events) = run(
            smtp(true),
            &["554 no", "501 bad", "250", "250", "354", "250", "221"],
            1,
            1,
        );
        assert_eq!(
            sent,
            [
                "HELO vm",
                "MAIL FROM:<a@b>",
                "RCPT TO:<r0@d>",
                "DATA",
                "MSG",
                "QUIT"
            ]
        );
        assert_eq!(
            rejected(&events),
            [(Phase::Greeting, 554), (Phase::Helo, 501)]
        );
    }

    #[test]
    fn tolerated_mail_reject_resets() {
        let (sent, events) = run(smtp(true), &["220", "250", "451 later", "250", "221"], 1, 2);
        assert_eq!(sent, ["HELO vm", "MAIL FROM:<a@b>", "RSET", "QUIT"]);
        assert!(events.contains(&Event::TransactionDone(Outcome::Rejected {
            phase: Phase::Mail
        })));
    }

    #[test]
    fn tolerated_rcpt_rejects() {
        // One of two rejected: DATA goes on.
        let (sent, events) = run(
            smtp(true),
            &["220", "250", "250", "550 no", "250", "354", "250", "221"],
            1,
            2,
        );
        assert_eq!(
            sent,
            [
                "HELO vm",
                "MAIL FROM:<a@b>",
                "RCPT TO:<r0@d>",
                "RCPT TO:<r1@d>",
                "DATA",
                "MSG",
                "QUIT"
            ]
        );
        assert!(events.contains(&Event::TransactionDone(Outcome::Rejected {
            phase: Phase::Rcpt
        })));
        // All rejected: RSET instead of DATA.
        let (sent, _) = run(
            smtp(true),
            &["220", "250", "250", "550 no", "550 no", "250", "221"],
            1,
            2,
        );
        assert_eq!(
            sent,
            [
                "HELO vm",
                "MAIL FROM:<a@b>",
                "RCPT TO:<r0@d>",
                "RCPT TO:<r1@d>",
                "RSET",
                "QUIT"
            ]
        );
    }

    #[test]
    fn tolerated_data_and_dot_rejects() {
        let (sent, _) = run(
            smtp(true),
            &[
                "220", "250", "250", "250", "554 no", "250", "250", "250", "354", "550 bad", "221",
            ],
            2,
            1,
        );
        assert_eq!(
            sent,
            [
                "HELO vm",
                "MAIL FROM:<a@b>",
                "RCPT TO:<r0@d>",
                "DATA",
                "RSET",
                "MAIL FROM:<a@b>",
                "RCPT TO:<r0@d>",
                "DATA",
                "MSG",
                "QUIT"
            ]
        );
    }

    #[test]
    fn data_needs_exactly_354() {
        let (sent, events) = run(smtp(false), &["220", "250", "250", "250", "250 odd"], 1, 1);
        assert_eq!(sent.last().map(String::as_str), Some("DATA"));
        assert_eq!(rejected(&events), [(Phase::Data, 250)]);
    }

    #[test]
    fn service_closing_closes_without_quit() {
        for (script, n) in [
            (&["220", "421 4.7.0 bye"][..], 1),
            (&["220", "250", "421 bye"][..], 2),
            (&["220", "250", "250", "521 bye"][..], 3),
            (&["220", "250", "250", "250", "354", "421 bye"][..], 5),
        ] {
            let (sent, events) = run(smtp(true), script, 1, 1);
            assert_eq!(sent.len(), n, "{sent:?}");
            assert!(!sent.contains(&"QUIT".to_owned()));
            assert_eq!(
                events.last(),
                Some(&Event::Closed(CloseReason::ServiceClosing))
            );
        }
    }

    #[test]
    fn lmtp_waits_for_one_reply_per_accepted_rcpt() {
        let cfg = ClientConfig::new(Protocol::Lmtp, Some(b"vm"), true);
        let (sent, events) = run(
            cfg,
            &[
                "220", "250", "250", "250", "550 no", "250", "354", "250 a", "452 b", "221",
            ],
            1,
            3,
        );
        assert_eq!(sent[0], "LHLO vm");
        assert_eq!(sent.last().map(String::as_str), Some("QUIT"));
        assert_eq!(
            rejected(&events),
            [(Phase::Rcpt, 550), (Phase::EndOfData, 452)]
        );
        assert_eq!(events.last(), Some(&Event::Closed(CloseReason::Quit)));
    }

    #[test]
    fn lmtp_all_accepted_needs_all_replies() {
        let cfg = ClientConfig::new(Protocol::Lmtp, Some(b"vm"), false);
        let mut s = ClientSession::new(cfg);
        let mut out = BytesMut::new();
        let feed = |s: &mut ClientSession, r: &str| {
            s.handle_input(&mut BytesMut::from(r.as_bytes())).unwrap();
        };
        feed(&mut s, "220 x\r\n");
        s.poll_transmit(&mut out);
        feed(&mut s, "250 x\r\n");
        s.mail(b"a").unwrap();
        s.rcpt(&[b"x"]);
        s.rcpt(&[b"y"]);
        s.data();
        for r in ["250 a\r\n", "250 b\r\n", "250 c\r\n", "354 d\r\n"] {
            assert_eq!(s.poll_transmit(&mut out), Transmit::Command);
            feed(&mut s, r);
        }
        assert_eq!(s.poll_transmit(&mut out), Transmit::Message);
        assert_eq!(s.phase(), Phase::EndOfData);
        // Both replies in one read.
        feed(&mut s, "250 1\r\n250 2\r\n");
        assert!(s.is_idle());
        assert_eq!(s.poll_event(), Some(Event::Ready));
        assert_eq!(
            s.poll_event(),
            Some(Event::TransactionDone(Outcome::Delivered { recipients: 2 }))
        );
    }

    #[test]
    fn eof_names_the_phase() {
        let mut s = ClientSession::new(smtp(false));
        assert_eq!(s.handle_eof(), Some(Phase::Greeting));
        s.handle_input(&mut BytesMut::from(&b"220 x\r\n"[..]))
            .unwrap();
        s.poll_transmit(&mut BytesMut::new());
        assert_eq!(s.handle_eof(), Some(Phase::Helo));
    }

    #[test]
    fn malformed_reply_is_an_error() {
        let mut s = ClientSession::new(smtp(false));
        assert!(s
            .handle_input(&mut BytesMut::from(&b"hello\r\n"[..]))
            .is_err());
    }

    #[test]
    fn replies_are_reported_when_asked() {
        let mut cfg = smtp(false);
        cfg.report_replies = true;
        let (_, events) = run(cfg, &["220 hi", "250 ok"], 0, 0);
        assert!(
            matches!(&events[0], Event::Reply { phase: Phase::Greeting, reply } if reply.code.0 == 220)
        );
        assert!(matches!(
            &events[1],
            Event::Reply {
                phase: Phase::Helo,
                ..
            }
        ));
        assert_eq!(events[2], Event::Ready);
    }

    /// The whole reply stream of a `-d` conversation, fed one byte at a
    /// time and all at once, gives the same commands and events.
    #[test]
    fn split_invariant() {
        let replies: &[u8] = b"220-a\r\n220 b\r\n250 h\r\n250 m\r\n250 r\r\n354 d\r\n250 .\r\n\
            250 m\r\n550 r\r\n250 rset\r\n221 bye\r\n";
        let drive = |chunk: usize| {
            let mut s = ClientSession::new(ClientConfig::new(Protocol::Smtp, Some(b"h"), true));
            let (mut input, mut buf, mut out) = (replies, BytesMut::new(), BytesMut::new());
            let (mut sent, mut events, mut txns) = (Vec::new(), Vec::new(), 0);
            for _ in 0..10_000 {
                while let Some(e) = s.poll_event() {
                    events.push(e);
                }
                if s.is_closed() {
                    break;
                }
                if s.is_idle() {
                    if txns < 2 {
                        txns += 1;
                        s.mail(b"f").unwrap();
                        s.rcpt(&[b"t"]);
                        s.data();
                    } else {
                        s.quit().unwrap();
                    }
                }
                match s.poll_transmit(&mut out) {
                    Transmit::Message => sent.extend_from_slice(b"MSG\r\n"),
                    _ => {
                        sent.extend_from_slice(&out);
                        out.clear();
                    }
                }
                let n = chunk.min(input.len());
                buf.extend_from_slice(&input[..n]);
                input = &input[n..];
                s.handle_input(&mut buf).unwrap();
            }
            (sent, events)
        };
        let whole = drive(replies.len());
        assert!(whole.1.contains(&Event::Closed(CloseReason::Quit)));
        assert_eq!(
            String::from_utf8_lossy(&whole.0),
            "HELO h\r\nMAIL FROM:<f>\r\nRCPT TO:<t>\r\nDATA\r\nMSG\r\n\
             MAIL FROM:<f>\r\nRCPT TO:<t>\r\nRSET\r\nQUIT\r\n"
        );
        for chunk in 1..8 {
            assert_eq!(drive(chunk), whole, "chunk {chunk}");
        }
    }

    #[test]
    fn start_needs_idle() {
        let mut s = ClientSession::new(smtp(false));
        assert_eq!(s.mail(b"x"), Err(SequenceError::NotIdle));
        assert_eq!(s.quit(), Err(SequenceError::NotIdle));
    }

    #[test]
    fn recovery_table() {
        use Recovery as R;
        let c = |p, code| Recovery::for_reject(p, ReplyCode(code));
        assert_eq!(c(Phase::Greeting, 421), R::Continue);
        assert_eq!(c(Phase::Helo, 550), R::Continue);
        assert_eq!(c(Phase::Helo, 421), R::Close);
        assert_eq!(c(Phase::Mail, 451), R::Reset);
        assert_eq!(c(Phase::Rcpt, 550), R::CountAndContinue);
        assert_eq!(c(Phase::Rcpt, 521), R::Close);
        assert_eq!(c(Phase::Data, 554), R::Reset);
        assert_eq!(c(Phase::EndOfData, 550), R::EndTransaction);
        assert_eq!(c(Phase::Rset, 421), R::Close);
    }
}
