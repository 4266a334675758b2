//! A sans-IO SMTP/LMTP client session: the conversation of Postfix's
//! smtp-source as a state machine, and the ESMTP client that goes beyond
//! it (EHLO, PIPELINING, CHUNKING, SIZE, 8BITMIME, SMTPUTF8).
//!
//! The session never reads or writes a socket. The runtime that drives it
//! feeds it the bytes it reads ([`ClientSession::handle_input`]) and asks
//! it what to write next ([`ClientSession::poll_transmit`]); what happened
//! comes back as [`Event`]s ([`ClientSession::poll_event`]). This is
//! quinn-proto's `Connection` shape applied to SMTP.
//!
//! # Model
//! * Commands are *staged* (encoded once into a reused buffer) when the
//!   runtime starts a transaction, each with the [`Phase`] it belongs to.
//!   [`poll_transmit`](ClientSession::poll_transmit) moves staged commands
//!   to the wire and records the reply each one expects in an ordered
//!   in-flight queue; replies are matched to that queue in order (RFC 2920
//!   §3.1: a server answers pipelined commands in the order sent).
//! * How many commands go in one write is the only thing PIPELINING
//!   changes. Without it, one command is in flight at a time, which is
//!   what Postfix's smtp-source does. With it, every staged command goes
//!   out at once unless a reply that must come first is outstanding: the
//!   greeting, EHLO/HELO/LHLO, DATA's 354 and QUIT end a group (RFC 2920
//!   §3.1). After 354 the message content goes first in the next write,
//!   followed by the next transaction's MAIL, RCPTs and DATA (or QUIT), so
//!   a steady stream of transactions costs one round trip each.
//! * With CHUNKING (RFC 3030) the content travels in `BDAT n [LAST]`
//!   chunks right behind their command, and BDAT ends no group: MAIL, the
//!   RCPTs and `BDAT n LAST` with the content are one write.
//! * What to do with a reply that is not the positive one expected is data,
//!   not code paths: [`Recovery::for_reject`] holds Postfix's `-A` rules
//!   (RSET after a rejected MAIL or DATA, RSET when every RCPT was
//!   rejected, close without QUIT on 421/521, count a rejected end of data
//!   and go on). Under pipelining, the replies to commands of an aborted
//!   transaction that were already sent are swallowed (they are expected
//!   to fail), and a 354 that arrives anyway is answered with an empty
//!   message.
//! * The message content is the runtime's: a write is described by a
//!   [`Transmit`], command bytes plus [`Piece`]s that say where the content
//!   (in DATA form, or a slice in BDAT form) goes between them, so the
//!   shared body is written without a copy.
//!
//! * **STARTTLS** (RFC 3207): staged after EHLO when asked for; on 220 the
//!   session reports [`Event::StartTls`] and waits while the runtime runs
//!   the handshake, then ([`ClientSession::tls_started`]) greets again with
//!   the capabilities forgotten (RFC 3207 §4.2).
//! * **AUTH** (RFC 4954): PLAIN (with its initial response) or LOGIN (whose
//!   334 prompts are answered in turn), after the (second) EHLO; the lines
//!   that carry secrets are [`Piece::Secret`], so a transcript can hide them.
//! * **Timing**: the session never reads a clock. A runtime that measures
//!   sets [`ClientConfig::timings`] and tells the session the time with
//!   [`ClientSession::set_clock`] before each write and after each read;
//!   each reply then yields a [`Timing`] (from the write that carried its
//!   command to the read that brought it), and each transaction one more
//!   (MAIL written to its last reply), collected with
//!   [`ClientSession::timings`].
//!
//! ```
//! use bytes::BytesMut;
//! use smtp_proto::client::{ClientConfig, ClientSession, Event, Protocol, Transmit};
//!
//! let mut s = ClientSession::new(ClientConfig::new(Protocol::Smtp, Some(b"vm"), false));
//! let mut tx = Transmit::default();
//! s.handle_input(&mut BytesMut::from(&b"220 hi\r\n"[..])).unwrap();
//! assert!(s.poll_transmit(&mut tx));
//! assert_eq!(&tx.commands[..], b"HELO vm\r\n");
//! s.handle_input(&mut BytesMut::from(&b"250 ok\r\n"[..])).unwrap();
//! assert!(matches!(s.poll_event(), Some(Event::Ready(_))));
//! ```

use std::{collections::VecDeque, ops::Range};

use bytes::{BufMut, BytesMut};

use base64::Engine as _;

use crate::{Capabilities, Extensions, Limits, ParseError, Reply, ReplyCode, ReplyParser, Request};

/// The dialect spoken.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Protocol {
    /// SMTP (RFC 5321): `HELO` or `EHLO`, one end-of-data reply.
    Smtp,
    /// LMTP (RFC 2033): `LHLO`, one end-of-data reply per accepted
    /// recipient.
    Lmtp,
}

/// The ESMTP features a client asks for. Each is used only when the
/// server's EHLO/LHLO reply offers it; see [`Negotiated`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Esmtp {
    /// Greet with `EHLO` instead of `HELO` (LMTP always sends `LHLO`, whose
    /// reply lists capabilities too). A 5xx to EHLO falls back to HELO
    /// (RFC 5321 §4.1.4).
    pub ehlo: bool,
    /// PIPELINING (RFC 2920): send commands in groups.
    pub pipelining: bool,
    /// CHUNKING (RFC 3030): send the content with BDAT, in chunks of this
    /// many bytes; 0 sends the whole message as one `BDAT n LAST`.
    pub chunking: Option<u64>,
    /// SIZE (RFC 1870): announce the message size with MAIL.
    pub size: bool,
    /// 8BITMIME (RFC 6152): `BODY=8BITMIME` with MAIL.
    pub eight_bit_mime: bool,
    /// SMTPUTF8 (RFC 6531): the `SMTPUTF8` parameter with MAIL.
    pub smtputf8: bool,
}

impl Esmtp {
    /// Whether the greeting must be EHLO (any feature needs it).
    pub fn wants_ehlo(&self) -> bool {
        self.ehlo
            || self.pipelining
            || self.chunking.is_some()
            || self.size
            || self.eight_bit_mime
            || self.smtputf8
    }
}

/// The features in use on this connection: what was asked for and the
/// server offered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Negotiated {
    /// Commands go in groups.
    pub pipelining: bool,
    /// Content goes with BDAT in chunks of this size (0: one chunk).
    pub chunking: Option<u64>,
    /// MAIL carries `SIZE=`.
    pub size: bool,
    /// MAIL carries `BODY=8BITMIME`.
    pub eight_bit_mime: bool,
    /// MAIL carries `SMTPUTF8`.
    pub smtputf8: bool,
}

impl Negotiated {
    fn new(asked: &Esmtp, caps: &Capabilities) -> Negotiated {
        Negotiated {
            pipelining: asked.pipelining && caps.has(Extensions::PIPELINING),
            chunking: asked.chunking.filter(|_| caps.has(Extensions::CHUNKING)),
            size: asked.size && caps.size.is_some(),
            eight_bit_mime: asked.eight_bit_mime && caps.has(Extensions::EIGHT_BIT_MIME),
            smtputf8: asked.smtputf8 && caps.has(Extensions::SMTPUTF8),
        }
    }
}

/// A SASL mechanism the client can use (RFC 4954).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// PLAIN (RFC 4616), sent with its initial response.
    Plain,
    /// LOGIN: user name and password, each after a 334 prompt.
    Login,
}

impl Mechanism {
    /// The name on the wire.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::Login => "LOGIN",
        }
    }
}

/// Logging in: with what, as whom.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// The mechanism; `None` takes the first of PLAIN and LOGIN the server
    /// offers.
    pub mechanism: Option<Mechanism>,
    /// User name.
    pub user: Vec<u8>,
    /// Password.
    pub password: Vec<u8>,
}

/// How a session behaves; fixed for its life.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientConfig {
    /// SMTP or LMTP.
    pub protocol: Protocol,
    /// The name sent with `HELO`/`EHLO`/`LHLO`; `None` sends no greeting
    /// command at all (Postfix's `-o`).
    pub helo: Option<Vec<u8>>,
    /// ESMTP features to use when offered.
    pub esmtp: Esmtp,
    /// Send STARTTLS after EHLO (RFC 3207); the server must offer it.
    pub starttls: bool,
    /// Log in after EHLO (after the TLS one with `starttls`).
    pub auth: Option<Auth>,
    /// Tolerate non-positive replies and recover (Postfix's `-A`). When
    /// false, the first one ends the session with
    /// [`CloseReason::Rejected`].
    pub tolerate_rejects: bool,
    /// Caps for the reply parser.
    pub limits: Limits,
    /// Report every reply as [`Event::Reply`] (for verbose transcripts).
    pub report_replies: bool,
    /// Time every reply and transaction (see [`ClientSession::set_clock`]).
    pub timings: bool,
}

impl ClientConfig {
    /// A configuration with default limits and no ESMTP features.
    pub fn new(protocol: Protocol, helo: Option<&[u8]>, tolerate_rejects: bool) -> Self {
        Self {
            protocol,
            helo: helo.map(<[u8]>::to_vec),
            esmtp: Esmtp::default(),
            starttls: false,
            auth: None,
            tolerate_rejects,
            limits: Limits::default(),
            report_replies: false,
            timings: false,
        }
    }
}

/// The step of the conversation a command, a reply or a failure belongs
/// to; the key for error texts and statistics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Phase {
    /// Waiting for the server's greeting.
    Greeting,
    /// `EHLO` (SMTP with ESMTP features).
    Ehlo,
    /// `HELO` or `LHLO`.
    Helo,
    /// `STARTTLS` and the TLS handshake (RFC 3207).
    Starttls,
    /// `AUTH` and its exchanges (RFC 4954).
    Auth,
    /// `MAIL FROM`.
    Mail,
    /// `RCPT TO`.
    Rcpt,
    /// `DATA` and its 354.
    Data,
    /// A `BDAT` chunk that is not the last one.
    Bdat,
    /// The end of the content and its reply (or replies): after `.`, or
    /// the `BDAT … LAST` chunk.
    EndOfData,
    /// `RSET`.
    Rset,
    /// `QUIT`.
    Quit,
}

impl Phase {
    /// How many phases there are: the length of per-phase arrays.
    pub const COUNT: usize = 12;

    /// Every phase, in conversation order.
    pub const ALL: [Phase; Phase::COUNT] = [
        Phase::Greeting,
        Phase::Ehlo,
        Phase::Helo,
        Phase::Starttls,
        Phase::Auth,
        Phase::Mail,
        Phase::Rcpt,
        Phase::Data,
        Phase::Bdat,
        Phase::EndOfData,
        Phase::Rset,
        Phase::Quit,
    ];

    /// This phase's place in [`Phase::ALL`], for per-phase arrays.
    pub fn index(self) -> usize {
        self as usize
    }

    /// A short lower-case name (`greeting`, `ehlo`, … `end-of-data`,
    /// `quit`) for reports.
    pub fn name(self) -> &'static str {
        match self {
            Phase::Greeting => "greeting",
            Phase::Ehlo => "ehlo",
            Phase::Helo => "helo",
            Phase::Starttls => "starttls",
            Phase::Auth => "auth",
            Phase::Mail => "mail",
            Phase::Rcpt => "rcpt",
            Phase::Data => "data",
            Phase::Bdat => "bdat",
            Phase::EndOfData => "end-of-data",
            Phase::Rset => "rset",
            Phase::Quit => "quit",
        }
    }

    /// Whether no further command may be sent before this one's reply
    /// (RFC 2920 §3.1; the greeting, STARTTLS and AUTH likewise).
    fn ends_group(self) -> bool {
        matches!(
            self,
            Phase::Greeting
                | Phase::Ehlo
                | Phase::Helo
                | Phase::Starttls
                | Phase::Auth
                | Phase::Data
                | Phase::Quit
        )
    }
}

/// One part of a write, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// These bytes of [`Transmit::commands`].
    Commands(Range<usize>),
    /// These bytes of [`Transmit::commands`]: a line that carries a
    /// secret (AUTH), to be written as the others but shown masked.
    Secret(Range<usize>),
    /// The whole message in DATA form: the content dot-stuffed and ending
    /// in `.` CRLF.
    DataContent,
    /// These bytes of the message as it is (BDAT form: not stuffed, no
    /// terminator). Offsets count from the first byte of the header block.
    Chunk(Range<u64>),
}

/// What to write next, filled by [`ClientSession::poll_transmit`]: the
/// command bytes, and the order in which they and the message content go
/// out. The runtime keeps one and the session clears it on each poll, so
/// its buffers are reused.
#[derive(Debug, Default)]
pub struct Transmit {
    /// Encoded commands, referenced by [`Piece::Commands`].
    pub commands: BytesMut,
    /// The write, in order.
    pub pieces: Vec<Piece>,
}

impl Transmit {
    fn clear(&mut self) {
        self.commands.clear();
        self.pieces.clear();
    }

    /// Appends command bytes, merging with a preceding command piece.
    fn push_commands(&mut self, bytes: &[u8]) {
        let start = self.commands.len();
        self.commands.put_slice(bytes);
        let end = self.commands.len();
        if let Some(Piece::Commands(r)) = self.pieces.last_mut() {
            if r.end == start {
                r.end = end;
                return;
            }
        }
        self.pieces.push(Piece::Commands(start..end));
    }

    /// Whether the write carries message content.
    pub fn has_content(&self) -> bool {
        self.pieces
            .iter()
            .any(|p| matches!(p, Piece::DataContent | Piece::Chunk(_)))
    }
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
    /// The server does not offer what this phase needs (STARTTLS, or an
    /// AUTH mechanism the client can use).
    NotOffered(Phase),
}

/// What happened; drained with [`ClientSession::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The greeting and HELO/EHLO/LHLO (and STARTTLS and AUTH when asked
    /// for) are done: a transaction may start. Carries what the server
    /// announced (empty after HELO, or with no greeting command).
    Ready(Capabilities),
    /// The server said 220 to STARTTLS: the runtime runs the TLS handshake
    /// now, then calls [`ClientSession::tls_started`]. Bytes the server
    /// sent after its 220 must not be kept (RFC 3207 §4.2).
    StartTls,
    /// AUTH succeeded (235).
    Authenticated,
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
    /// A transaction ended.
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
            Phase::Ehlo | Phase::Helo | Phase::Auth => Recovery::Continue,
            // The session cannot go on in the clear once TLS was asked for.
            Phase::Starttls => Recovery::Close,
            Phase::Mail | Phase::Data | Phase::Bdat => Recovery::Reset,
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
    /// A new transaction or QUIT may start (the previous transaction may
    /// still await its end-of-data replies, under pipelining).
    Idle,
    /// A transaction is open and no new one may start yet.
    Transaction,
    /// STARTTLS was accepted: the runtime is running the handshake.
    TlsPending,
    /// QUIT staged or sent.
    Quitting,
    /// Over.
    Closed,
}

/// One command waiting in the stage buffer.
#[derive(Debug, Clone)]
struct Staged {
    phase: Phase,
    len: usize,
    /// A BDAT chunk's content follows the command.
    chunk: Option<Range<u64>>,
    /// Its reply is to be dropped (see [`Expect::swallow`]).
    swallow: bool,
    /// It carries a secret (AUTH): shown masked.
    secret: bool,
}

/// A reply the session waits for.
#[derive(Debug, Clone, Copy)]
struct Expect {
    phase: Phase,
    /// The reply answers a command of an aborted transaction: it is read
    /// and dropped.
    swallow: bool,
    /// The clock when its command was written ([`UNSTAMPED`] for the
    /// greeting until the clock is first set).
    since: u64,
}

/// The greeting is awaited from the moment the clock is first set.
const UNSTAMPED: u64 = u64::MAX;

/// What a [`Timing`] measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Measured {
    /// One reply of a phase: from the write that carried its command (for
    /// the greeting, from the first [`ClientSession::set_clock`]) to the
    /// read that completed it. An AUTH exchange is timed whole, from the
    /// AUTH command to its final reply.
    Phase(Phase),
    /// A transaction: from the write that carried MAIL to its last reply
    /// (end of data, or the RSET that ended it).
    Transaction,
}

/// A duration measured on the runtime's clock, in its units.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timing {
    /// What took this long.
    pub measured: Measured,
    /// How long, in the units of [`ClientSession::set_clock`].
    pub elapsed: u64,
}

/// Where a transaction is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum TxnState {
    /// No transaction.
    #[default]
    None,
    /// MAIL to DATA/BDAT staged or in flight.
    Envelope,
    /// 354 arrived: the content is the next thing to write.
    ContentDue,
    /// The content went out; the end-of-data replies are awaited.
    ContentSent,
    /// Aborted: what was sent is being answered, then RSET.
    Resetting,
}

/// Bookkeeping of the transaction in progress.
#[derive(Debug, Clone, Copy, Default)]
struct Txn {
    state: TxnState,
    /// The content's size in BDAT form (for SIZE= and the chunks).
    content_len: u64,
    rcpts_staged: u32,
    rcpt_replies: u32,
    rcpts_accepted: u32,
    dot_replies_left: u32,
    /// The first end-of-data reply has been seen (LMTP's BDAT LAST gets
    /// one reply per accepted recipient, known only by then).
    dot_seen: bool,
    first_reject: Option<Phase>,
    /// The clock when its MAIL was written.
    since: u64,
}

/// One client conversation over one connection.
#[derive(Debug)]
pub struct ClientSession {
    config: ClientConfig,
    parser: ReplyParser,
    state: State,
    negotiated: Negotiated,
    /// Encoded commands not yet handed out, front first.
    stage: BytesMut,
    stage_pos: usize,
    staged: VecDeque<Staged>,
    /// Replies expected, oldest first.
    in_flight: VecDeque<Expect>,
    events: VecDeque<Event>,
    /// The transaction that replies are for.
    txn: Txn,
    /// Under pipelining, the transaction staged behind `txn`'s content
    /// (it becomes `txn` when that one ends).
    next: Option<Txn>,
    /// The phase of the last command handed out, for naming failures.
    last_phase: Phase,
    /// MAIL parameters, rebuilt per transaction.
    params: Vec<u8>,
    /// TLS is up (after STARTTLS).
    tls_done: bool,
    /// The capabilities to report once AUTH is through.
    caps_pending: Option<Capabilities>,
    /// The LOGIN prompt answered next: 0 user name, 1 password.
    login_step: u8,
    /// The runtime's clock, as last set.
    now: u64,
    /// When the AUTH exchange in progress began (its 334 prompts carry it
    /// on).
    auth_since: Option<u64>,
    /// Durations measured and not yet collected.
    timings: Vec<Timing>,
}

impl ClientSession {
    /// A session that waits for the server's greeting.
    pub fn new(config: ClientConfig) -> Self {
        let parser = ReplyParser::new(config.limits);
        let mut in_flight = VecDeque::with_capacity(8);
        in_flight.push_back(Expect {
            phase: Phase::Greeting,
            swallow: false,
            since: UNSTAMPED,
        });
        Self {
            config,
            parser,
            state: State::Opening,
            negotiated: Negotiated::default(),
            stage: BytesMut::with_capacity(256),
            stage_pos: 0,
            staged: VecDeque::with_capacity(8),
            in_flight,
            events: VecDeque::with_capacity(4),
            txn: Txn::default(),
            next: None,
            last_phase: Phase::Greeting,
            params: Vec::new(),
            tls_done: false,
            caps_pending: None,
            login_step: 0,
            now: 0,
            auth_since: None,
            timings: Vec::new(),
        }
    }

    /// Tells the session the runtime's clock (any monotonic count, e.g.
    /// microseconds since the run began): commands handed out by
    /// [`poll_transmit`](Self::poll_transmit) after this are stamped with
    /// it, and replies handled after it are timed against it. A runtime
    /// that measures calls it before each write and after each read; one
    /// that does not never needs to.
    pub fn set_clock(&mut self, now: u64) {
        self.now = now;
        if let Some(e) = self.in_flight.front_mut() {
            if e.since == UNSTAMPED {
                e.since = now;
            }
        }
    }

    /// The durations measured since the last call, oldest first (only with
    /// [`ClientConfig::timings`]).
    pub fn timings(&mut self) -> std::vec::Drain<'_, Timing> {
        self.timings.drain(..)
    }

    fn time(&mut self, measured: Measured, since: u64) {
        if self.config.timings && since != UNSTAMPED {
            self.timings.push(Timing {
                measured,
                elapsed: self.now.saturating_sub(since),
            });
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The ESMTP features in use (all off before [`Event::Ready`]).
    pub fn negotiated(&self) -> Negotiated {
        self.negotiated
    }

    /// The phase the session is in: the reply it waits for, else the
    /// content or command it sends next, else the last one sent. Runtimes
    /// name timeouts and lost connections with it.
    pub fn phase(&self) -> Phase {
        if let Some(e) = self.in_flight.front() {
            return e.phase;
        }
        if self.txn.state == TxnState::ContentDue {
            return Phase::EndOfData;
        }
        self.staged.front().map_or(self.last_phase, |s| s.phase)
    }

    /// Whether the last DATA was answered with 354 and its content is not
    /// written yet: under pipelining a transaction started now goes out
    /// behind that content.
    pub fn content_due(&self) -> bool {
        self.txn.state == TxnState::ContentDue
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

    /// Starts a transaction: stages `MAIL FROM:<from>` with the parameters
    /// negotiated. `content_len` is the message's size as it is (header
    /// block and body, not stuffed), for `SIZE=` and BDAT. Follow with
    /// [`rcpt`](Self::rcpt) for each recipient and [`data`](Self::data).
    ///
    /// # Errors
    /// [`SequenceError::NotIdle`] unless the session is idle.
    pub fn mail(&mut self, from: &[u8], content_len: u64) -> Result<(), SequenceError> {
        if self.state != State::Idle {
            return Err(SequenceError::NotIdle);
        }
        self.state = State::Transaction;
        let txn = Txn {
            state: TxnState::Envelope,
            content_len,
            since: UNSTAMPED,
            ..Txn::default()
        };
        if self.txn.state == TxnState::None {
            self.txn = txn;
        } else {
            self.next = Some(txn);
        }
        self.params.clear();
        let n = self.negotiated;
        if n.size {
            self.params.extend_from_slice(b"SIZE=");
            self.params
                .extend_from_slice(crate::itoa(content_len, &mut [0; 20]));
        }
        for (on, param) in [
            (n.eight_bit_mime, &b"BODY=8BITMIME"[..]),
            (n.smtputf8, b"SMTPUTF8"),
        ] {
            if on {
                if !self.params.is_empty() {
                    self.params.push(b' ');
                }
                self.params.extend_from_slice(param);
            }
        }
        let params = std::mem::take(&mut self.params);
        self.stage_request(
            Phase::Mail,
            Request::MailFrom {
                path: from,
                params: &params,
            },
        );
        self.params = params;
        Ok(())
    }

    /// Stages `RCPT TO:<path>`, the path being the concatenation of
    /// `parts` (so a numbered address needs no formatted copy).
    pub fn rcpt(&mut self, parts: &[&[u8]]) {
        let txn = self.staging_txn();
        if txn.state != TxnState::Envelope {
            return;
        }
        txn.rcpts_staged += 1;
        let start = self.stage.len();
        self.stage.put_slice(b"RCPT TO:<");
        for part in parts {
            self.stage.put_slice(part);
        }
        self.stage.put_slice(b">\r\n");
        self.staged.push_back(Staged {
            phase: Phase::Rcpt,
            len: self.stage.len() - start,
            chunk: None,
            swallow: false,
            secret: false,
        });
    }

    /// Completes the envelope: stages `DATA`, or with CHUNKING the `BDAT`
    /// chunks that carry the content.
    pub fn data(&mut self) {
        let txn = self.staging_txn();
        if txn.state != TxnState::Envelope {
            return;
        }
        let total = txn.content_len;
        let Some(chunk_size) = self.negotiated.chunking else {
            self.stage_request(Phase::Data, Request::Data);
            return;
        };
        let step = if chunk_size == 0 { total } else { chunk_size };
        let mut at = 0;
        loop {
            let end = total.min(at + step);
            let last = end == total;
            let start = self.stage.len();
            Request::Bdat {
                size: end - at,
                last,
            }
            .encode(&mut self.stage);
            self.staged.push_back(Staged {
                phase: if last { Phase::EndOfData } else { Phase::Bdat },
                len: self.stage.len() - start,
                chunk: Some(at..end),
                swallow: false,
                secret: false,
            });
            if last {
                break;
            }
            at = end;
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

    /// Fills `out` with what must be written next; false when there is
    /// nothing to write now (read, or start a transaction, or stop).
    pub fn poll_transmit(&mut self, out: &mut Transmit) -> bool {
        out.clear();
        if self.state == State::Closed {
            return false;
        }
        let pipelining = self.negotiated.pipelining;
        if self.txn.state == TxnState::ContentDue && self.in_flight.is_empty() {
            self.send_content(out);
            if !pipelining {
                return true;
            }
        }
        loop {
            let blocked = if pipelining {
                self.in_flight.iter().any(|e| e.phase.ends_group())
            } else {
                !self.in_flight.is_empty()
            };
            if blocked {
                break;
            }
            let Some(cmd) = self.staged.pop_front() else {
                break;
            };
            let end = self.stage_pos + cmd.len;
            if cmd.secret {
                let start = out.commands.len();
                out.commands.put_slice(&self.stage[self.stage_pos..end]);
                out.pieces.push(Piece::Secret(start..out.commands.len()));
            } else {
                out.push_commands(&self.stage[self.stage_pos..end]);
            }
            self.stage_pos = end;
            if let Some(chunk) = cmd.chunk {
                out.pieces.push(Piece::Chunk(chunk));
                if cmd.phase == Phase::EndOfData {
                    self.staging_txn().state = TxnState::ContentSent;
                }
            }
            let since = match (cmd.phase, self.auth_since) {
                (Phase::Auth, Some(start)) => start,
                _ => self.now,
            };
            if cmd.phase == Phase::Mail && !cmd.swallow {
                self.mail_written();
            }
            self.in_flight.push_back(Expect {
                phase: cmd.phase,
                swallow: cmd.swallow,
                since,
            });
            self.last_phase = cmd.phase;
        }
        if self.staged.is_empty() {
            self.stage.clear();
            self.stage_pos = 0;
        }
        !out.pieces.is_empty()
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
        let Some(expect) = self.in_flight.pop_front() else {
            return;
        };
        let phase = expect.phase;
        if phase == Phase::Auth && reply.code.0 == 334 && !expect.swallow {
            // The exchange goes on: it is timed whole.
            self.auth_since = Some(expect.since);
        } else {
            if phase == Phase::Auth {
                self.auth_since = None;
            }
            self.time(Measured::Phase(phase), expect.since);
        }
        if self.config.report_replies {
            self.events.push_back(Event::Reply {
                phase,
                reply: reply.clone(),
            });
        }
        if phase == Phase::EndOfData {
            self.expand_lmtp_bdat_replies(expect);
        }
        if expect.swallow {
            self.swallowed(phase, &reply);
            return;
        }
        if phase == Phase::Auth && reply.code.0 == 334 {
            self.login_prompt();
            return;
        }
        let positive = match phase {
            Phase::Data => reply.code == ReplyCode::START_DATA,
            Phase::Quit => true,
            _ => reply.code.is_positive(),
        };
        if positive {
            self.accepted(phase, &reply);
            return;
        }
        if phase == Phase::Ehlo && reply.code.is_permanent() && reply.code.0 != 521 {
            // RFC 5321 §4.1.4: a server that does not know EHLO gets HELO.
            self.stage_greeting(Phase::Helo);
            return;
        }
        let code = reply.code;
        self.events.push_back(Event::Rejected {
            phase,
            reply: reply.clone(),
        });
        if !self.config.tolerate_rejects {
            self.close(CloseReason::Rejected);
            return;
        }
        if matches!(
            phase,
            Phase::Mail | Phase::Rcpt | Phase::Data | Phase::Bdat | Phase::EndOfData
        ) && self.txn.first_reject.is_none()
        {
            self.txn.first_reject = Some(phase);
        }
        match Recovery::for_reject(phase, code) {
            Recovery::Continue => self.accepted(phase, &reply),
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
        let quit_only = self.in_flight.iter().all(|e| e.phase == Phase::Quit);
        match self.state {
            State::Closed => None,
            State::Quitting if quit_only && self.staged.is_empty() => {
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

    /// The message content (DATA form) goes out now.
    fn send_content(&mut self, out: &mut Transmit) {
        out.pieces.push(Piece::DataContent);
        self.txn.state = TxnState::ContentSent;
        self.txn.dot_replies_left = match self.config.protocol {
            Protocol::Smtp => 1,
            Protocol::Lmtp => self.txn.rcpts_accepted,
        };
        for _ in 0..self.txn.dot_replies_left {
            self.in_flight.push_back(Expect {
                phase: Phase::EndOfData,
                swallow: false,
                since: self.now,
            });
        }
        self.last_phase = Phase::EndOfData;
    }

    /// LMTP answers the last BDAT once per accepted recipient (RFC 2033
    /// §4.2 applied to RFC 3030); how many is known only once the RCPT
    /// replies are in, i.e. when the first of them arrives.
    fn expand_lmtp_bdat_replies(&mut self, expect: Expect) {
        if self.config.protocol != Protocol::Lmtp
            || self.negotiated.chunking.is_none()
            || self.txn.dot_seen
        {
            return;
        }
        self.txn.dot_seen = true;
        let more = self.txn.rcpts_accepted.saturating_sub(1);
        self.txn.dot_replies_left = self.txn.rcpts_accepted.max(1);
        for _ in 0..more {
            self.in_flight.push_front(expect);
        }
    }

    /// A reply to a command of an aborted transaction.
    fn swallowed(&mut self, phase: Phase, reply: &Reply) {
        if matches!(reply.code.0, 421 | 521) && phase != Phase::Quit {
            self.close(CloseReason::ServiceClosing);
            return;
        }
        if phase == Phase::Data && reply.code == ReplyCode::START_DATA {
            // The server took DATA although the envelope failed: end an
            // empty message before the RSET that is staged.
            let mut dot = BytesMut::from(&b".\r\n"[..]);
            dot.extend_from_slice(&self.stage[self.stage_pos..]);
            self.stage = dot;
            self.stage_pos = 0;
            self.staged.push_front(Staged {
                phase: Phase::EndOfData,
                len: 3,
                chunk: None,
                swallow: true,
                secret: false,
            });
        }
    }

    fn accepted(&mut self, phase: Phase, reply: &Reply) {
        match phase {
            Phase::Greeting => match self.config.helo {
                Some(_) => {
                    let first = match self.config.protocol {
                        Protocol::Lmtp => Phase::Helo,
                        Protocol::Smtp if self.config.esmtp.wants_ehlo() => Phase::Ehlo,
                        Protocol::Smtp => Phase::Helo,
                    };
                    self.stage_greeting(first);
                }
                None => self.ready(Capabilities::default()),
            },
            Phase::Ehlo | Phase::Helo => {
                let greeted_esmtp = phase == Phase::Ehlo || self.config.protocol == Protocol::Lmtp;
                let caps = if greeted_esmtp && reply.code.is_positive() {
                    Capabilities::from_reply(reply)
                } else {
                    Capabilities::default()
                };
                self.greeted(caps);
            }
            Phase::Starttls => {
                self.state = State::TlsPending;
                self.events.push_back(Event::StartTls);
            }
            Phase::Auth => {
                if reply.code.is_positive() {
                    self.events.push_back(Event::Authenticated);
                }
                let caps = self.caps_pending.take().unwrap_or_default();
                self.ready(caps);
            }
            Phase::Mail => {}
            Phase::Rcpt => {
                self.txn.rcpts_accepted += 1;
                self.rcpt_replied();
            }
            Phase::Data => {
                self.txn.state = TxnState::ContentDue;
                if self.negotiated.pipelining {
                    // The next transaction may be staged now, to go out
                    // behind the content.
                    self.state = State::Idle;
                }
            }
            Phase::Bdat => {}
            Phase::EndOfData => self.dot_replied(),
            Phase::Rset => self.finish_transaction(),
            Phase::Quit => self.close(CloseReason::Quit),
        }
    }

    /// The transaction whose commands are being staged: the newest.
    fn staging_txn(&mut self) -> &mut Txn {
        self.next.as_mut().unwrap_or(&mut self.txn)
    }

    /// After EHLO: STARTTLS or AUTH if asked for and not done yet, else
    /// ready.
    fn greeted(&mut self, caps: Capabilities) {
        if self.config.starttls && !self.tls_done {
            if !caps.has(Extensions::STARTTLS) {
                self.close(CloseReason::NotOffered(Phase::Starttls));
                return;
            }
            self.stage_request(Phase::Starttls, Request::StartTls);
            return;
        }
        let Some(auth) = self.config.auth.as_ref() else {
            self.ready(caps);
            return;
        };
        let offered = |m: Mechanism| caps.has_auth(m.name());
        let mechanism = match auth.mechanism {
            Some(m) => Some(m).filter(|m| offered(*m)),
            None => [Mechanism::Plain, Mechanism::Login]
                .into_iter()
                .find(|m| offered(*m)),
        };
        let Some(mechanism) = mechanism else {
            self.close(CloseReason::NotOffered(Phase::Auth));
            return;
        };
        let line = match mechanism {
            Mechanism::Plain => {
                let mut secret = Vec::with_capacity(auth.user.len() + auth.password.len() + 2);
                secret.push(0);
                secret.extend_from_slice(&auth.user);
                secret.push(0);
                secret.extend_from_slice(&auth.password);
                let mut line = b"AUTH PLAIN ".to_vec();
                line.extend_from_slice(
                    base64::engine::general_purpose::STANDARD
                        .encode(secret)
                        .as_bytes(),
                );
                line
            }
            Mechanism::Login => b"AUTH LOGIN".to_vec(),
        };
        self.login_step = 0;
        self.caps_pending = Some(caps);
        self.stage_secret(&line);
    }

    /// A 334 to AUTH LOGIN: the user name, then the password.
    fn login_prompt(&mut self) {
        let Some(auth) = self.config.auth.as_ref() else {
            return;
        };
        let value = if self.login_step == 0 {
            &auth.user
        } else {
            &auth.password
        };
        let line = base64::engine::general_purpose::STANDARD.encode(value);
        self.login_step = self.login_step.saturating_add(1);
        self.stage_secret(line.as_bytes());
    }

    /// Stages a line that carries a secret (AUTH) in phase `Auth`.
    fn stage_secret(&mut self, line: &[u8]) {
        let start = self.stage.len();
        Request::Raw(line).encode(&mut self.stage);
        self.staged.push_back(Staged {
            phase: Phase::Auth,
            len: self.stage.len() - start,
            chunk: None,
            swallow: false,
            secret: true,
        });
    }

    /// The runtime finished the TLS handshake after [`Event::StartTls`]:
    /// the session starts over with EHLO (LHLO), capabilities forgotten.
    pub fn tls_started(&mut self) {
        if self.state != State::TlsPending {
            return;
        }
        self.tls_done = true;
        self.state = State::Opening;
        let phase = match self.config.protocol {
            Protocol::Lmtp => Phase::Helo,
            Protocol::Smtp => Phase::Ehlo,
        };
        self.stage_greeting(phase);
    }

    fn stage_greeting(&mut self, phase: Phase) {
        let Some(name) = self.config.helo.take() else {
            return;
        };
        let req = match (self.config.protocol, phase) {
            (Protocol::Lmtp, _) => Request::Lhlo(&name),
            (Protocol::Smtp, Phase::Ehlo) => Request::Ehlo(&name),
            _ => Request::Helo(&name),
        };
        self.stage_request(phase, req);
        self.config.helo = Some(name);
    }

    fn ready(&mut self, caps: Capabilities) {
        self.negotiated = Negotiated::new(&self.config.esmtp, &caps);
        self.state = State::Idle;
        self.events.push_back(Event::Ready(caps));
    }

    /// After each RCPT reply: when the last one is in and none was
    /// accepted, the transaction is reset (Postfix sends no DATA then;
    /// under pipelining the DATA already sent is expected to fail).
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

    /// A MAIL went out: it starts the oldest transaction not yet started.
    fn mail_written(&mut self) {
        let now = self.now;
        if self.txn.state != TxnState::None && self.txn.since == UNSTAMPED {
            self.txn.since = now;
        } else if let Some(next) = self.next.as_mut() {
            next.since = now;
        }
    }

    fn finish_transaction(&mut self) {
        let since = self.txn.since;
        self.time(Measured::Transaction, since);
        let outcome = match self.txn.first_reject {
            Some(phase) => Outcome::Rejected { phase },
            None => Outcome::Delivered {
                recipients: self.txn.rcpts_accepted,
            },
        };
        self.txn = self.next.take().unwrap_or_default();
        if self.state == State::Transaction && self.txn.state == TxnState::None {
            self.state = State::Idle;
        }
        self.events.push_back(Event::TransactionDone(outcome));
    }

    /// Drops what is left of the transaction and stages RSET; replies to
    /// its commands already sent are swallowed.
    fn reset(&mut self) {
        self.clear_stage();
        for e in &mut self.in_flight {
            if e.phase != Phase::Quit {
                e.swallow = true;
            }
        }
        self.txn.state = TxnState::Resetting;
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
            chunk: None,
            swallow: false,
            secret: false,
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
        let mut out = Transmit::default();
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
                    s.mail(b"a@b", 10).unwrap();
                    for i in 0..rcpts {
                        let n = i.to_string();
                        s.rcpt(&[b"r", n.as_bytes(), b"@d"]);
                    }
                    s.data();
                } else {
                    s.quit().unwrap();
                }
            }
            if s.poll_transmit(&mut out) {
                assert_eq!(out.pieces.len(), 1, "one at a time: {out:?}");
                match &out.pieces[0] {
                    Piece::Commands(_) | Piece::Secret(_) => sent.push(
                        String::from_utf8(out.commands.to_vec())
                            .unwrap()
                            .trim_end()
                            .to_owned(),
                    ),
                    Piece::DataContent => sent.push("MSG".to_owned()),
                    Piece::Chunk(r) => panic!("chunk {r:?}"),
                }
                assert!(!s.poll_transmit(&mut out), "one at a time");
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
                Event::Ready(Capabilities::default()),
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
        let mut out = Transmit::default();
        assert!(!s.poll_transmit(&mut out));
        buf.extend_from_slice(b"0 b\r\n");
        s.handle_input(&mut buf).unwrap();
        assert!(s.poll_transmit(&mut out));
        assert_eq!(&out.commands[..], b"HELO vm\r\n");
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
        let mut out = Transmit::default();
        let feed = |s: &mut ClientSession, r: &str| {
            s.handle_input(&mut BytesMut::from(r.as_bytes())).unwrap();
        };
        feed(&mut s, "220 x\r\n");
        s.poll_transmit(&mut out);
        feed(&mut s, "250 x\r\n");
        s.mail(b"a", 1).unwrap();
        s.rcpt(&[b"x"]);
        s.rcpt(&[b"y"]);
        s.data();
        for r in ["250 a\r\n", "250 b\r\n", "250 c\r\n", "354 d\r\n"] {
            assert!(s.poll_transmit(&mut out));
            assert_eq!(out.pieces.len(), 1);
            feed(&mut s, r);
        }
        assert!(s.poll_transmit(&mut out));
        assert_eq!(out.pieces, [Piece::DataContent]);
        assert_eq!(s.phase(), Phase::EndOfData);
        // Both replies in one read.
        feed(&mut s, "250 1\r\n250 2\r\n");
        assert!(s.is_idle());
        assert!(matches!(s.poll_event(), Some(Event::Ready(c)) if &c.greeting[..] == b"x"));
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
        s.poll_transmit(&mut Transmit::default());
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
        assert_eq!(events[2], Event::Ready(Capabilities::default()));
    }

    /// The whole reply stream of a `-d` conversation, fed one byte at a
    /// time and all at once, gives the same commands and events.
    #[test]
    fn split_invariant() {
        let replies: &[u8] = b"220-a\r\n220 b\r\n250 h\r\n250 m\r\n250 r\r\n354 d\r\n250 .\r\n\
            250 m\r\n550 r\r\n250 rset\r\n221 bye\r\n";
        let drive = |chunk: usize| {
            let mut s = ClientSession::new(ClientConfig::new(Protocol::Smtp, Some(b"h"), true));
            let (mut input, mut buf, mut out) = (replies, BytesMut::new(), Transmit::default());
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
                        s.mail(b"f", 1).unwrap();
                        s.rcpt(&[b"t"]);
                        s.data();
                    } else {
                        s.quit().unwrap();
                    }
                }
                if s.poll_transmit(&mut out) {
                    for piece in &out.pieces {
                        match piece {
                            Piece::Commands(r) => sent.extend_from_slice(&out.commands[r.clone()]),
                            _ => sent.extend_from_slice(b"MSG\r\n"),
                        }
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
        assert_eq!(s.mail(b"x", 1), Err(SequenceError::NotIdle));
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

    /// With a clock: each reply is timed from the write of its command
    /// (the greeting from the first clock), an AUTH LOGIN exchange whole,
    /// the transaction from MAIL to its end; pipelined commands written
    /// together are each timed from that one write.
    #[test]
    fn timings_follow_the_clock() {
        use Measured::{Phase as P, Transaction};
        let mut config = ClientConfig::new(Protocol::Smtp, Some(b"h"), false);
        config.timings = true;
        config.esmtp.ehlo = true;
        config.esmtp.pipelining = true;
        config.auth = Some(Auth {
            mechanism: Some(Mechanism::Login),
            user: b"u".to_vec(),
            password: b"p".to_vec(),
        });
        let mut s = ClientSession::new(config);
        let mut tx = Transmit::default();
        let at = |s: &mut ClientSession, t: u64, reply: &str| {
            s.set_clock(t);
            s.handle_input(&mut BytesMut::from(reply.as_bytes()))
                .unwrap();
        };
        s.set_clock(100);
        at(&mut s, 103, "220 hi\r\n");
        s.set_clock(110);
        assert!(s.poll_transmit(&mut tx));
        at(&mut s, 115, "250-x\r\n250-PIPELINING\r\n250 AUTH LOGIN\r\n");
        for (t, reply) in [(120, "334 VXNlcm5hbWU6\r\n"), (130, "334 UGFzc3dvcmQ6\r\n")] {
            s.set_clock(t - 4);
            assert!(s.poll_transmit(&mut tx));
            at(&mut s, t, reply);
        }
        s.set_clock(140);
        assert!(s.poll_transmit(&mut tx));
        at(&mut s, 150, "235 ok\r\n");
        while s.poll_event().is_some() {}
        s.mail(b"f", 10).unwrap();
        s.rcpt(&[b"a"]);
        s.rcpt(&[b"b"]);
        s.data();
        s.set_clock(200);
        assert!(s.poll_transmit(&mut tx));
        at(&mut s, 201, "250 ok\r\n250 ok\r\n");
        at(&mut s, 207, "250 ok\r\n354 go\r\n");
        s.set_clock(210);
        assert!(s.poll_transmit(&mut tx));
        at(&mut s, 230, "250 queued\r\n");
        let got: Vec<(Measured, u64)> = s.timings().map(|t| (t.measured, t.elapsed)).collect();
        assert_eq!(
            got,
            [
                (P(Phase::Greeting), 3),
                (P(Phase::Ehlo), 5),
                (P(Phase::Auth), 150 - 116),
                (P(Phase::Mail), 1),
                (P(Phase::Rcpt), 1),
                (P(Phase::Rcpt), 7),
                (P(Phase::Data), 7),
                (P(Phase::EndOfData), 20),
                (Transaction, 30),
            ]
        );
        assert_eq!(s.timings().count(), 0, "collected once");
    }

    /// Without `timings` nothing is collected, however the clock is set.
    #[test]
    fn no_timings_unless_asked() {
        let mut s = ClientSession::new(smtp(false));
        s.set_clock(5);
        s.handle_input(&mut BytesMut::from(&b"220 x\r\n"[..]))
            .unwrap();
        assert_eq!(s.timings().count(), 0);
    }
}
