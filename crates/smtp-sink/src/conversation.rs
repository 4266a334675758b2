//! One client's conversation, sans I/O: bytes in, replies and steps out.
//!
//! This is Postfix's smtp-sink protocol engine without its sockets and
//! timers. The async shell ([`crate::session`]) feeds it whatever it read,
//! writes [`Conversation::output`] out in one go, and obeys the returned
//! [`Step`] (read more, wait for a delay, close, exit). Everything that
//! depends on a clock is passed in (`now`), so tests drive it directly.
//!
//! Differences from Postfix's engine are deliberate and listed in
//! docs/smtp-sink.md: a delayed reply stops the processing of pipelined
//! input until it is sent (Postfix answers out of order and loses one), a
//! dump failure gives 451 instead of killing the process.
//!
//! The ESMTP additions are opt-in (`--chunking`, `--smtputf8`, `--size`);
//! without them not a byte of output changes. A BDAT chunk is streamed:
//! its bytes are counted off the read buffer (and dumped) as they arrive,
//! so a client announcing gigabytes costs no more memory than one read.
//!
//! TLS and real AUTH are opt-in too (`--starttls`, `--tls-on-connect`,
//! `--auth-users`). STARTTLS queues its 220 and returns [`Step::StartTls`]:
//! the shell sends the 220, throws away whatever the client pipelined
//! after the command (it must never run under TLS), runs the handshake and
//! calls [`Conversation::tls_started`], which forgets everything the
//! client said before (RFC 3207 §4.2). An AUTH exchange reads the
//! client's lines as SASL responses, never as commands.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use memchr::memchr;
use rand::rngs::SmallRng;
use rand::RngCore;
use smtp_proto::{
    postfix::printable,
    stamp::{StampVerifier, Verification},
    BdatArgs, Command, CommandParser, DataDecoder, DataEvent, DataMode, Limits, Verb,
};
use tracing::{info, warn};

use crate::auth::{self, Mechanism, Outcome, Pending};
use crate::config::{Config, RateAction};
use crate::dump::{self, ClientAddr, DumpSink};
use crate::fault::{self, FaultReply};
use crate::greylist::Verdict;
use crate::policy::{Action, SinkCmd};
use crate::replies;
use crate::stats::{MessageOutcome, SessionCounts, Stats};
use crate::throttle::Throttle;

/// The time, as the shell reads it for each call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Now {
    /// Unix seconds, for the dump's times (0 when nothing dumps).
    pub unix: i64,
    /// Monotonic time since the shared [`Throttle`] was made, for
    /// `--max-rate` and `--greylist` (zero when neither is on).
    pub elapsed: Duration,
}

impl From<i64> for Now {
    /// Unix seconds only (no monotonic time).
    fn from(unix: i64) -> Now {
        Now {
            unix,
            elapsed: Duration::ZERO,
        }
    }
}

/// What the shell must do next. Before acting on any step, it writes out
/// the pending [`Conversation::output`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// All buffered input is used up: read more (idle timer running).
    Read,
    /// Wait, reading nothing and with the idle timer suspended, then call
    /// [`Conversation::resume`].
    Delay(Duration),
    /// `-H`: read nothing for this long (idle timer suspended), then go on
    /// with [`Conversation::input`].
    Stall(Duration),
    /// `-A`: read nothing for this long, then call
    /// [`Conversation::abort_data`] and close.
    Abort(Duration),
    /// Close the connection.
    Close,
    /// `-M` reached: the process exits once the output is sent.
    Exit,
    /// STARTTLS was accepted: send the output (its 220), drop all
    /// buffered input, run the TLS handshake, then call
    /// [`Conversation::tls_started`] (or close if it failed).
    StartTls,
}

/// How the end of a message is answered (before `-f .`/`-r .` apply).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum EndOfData {
    /// 250 (per recipient under LMTP).
    #[default]
    Ok,
    /// The dump failed: 451.
    DumpFailed,
    /// `--size` was exceeded: 552.
    TooBig,
}

/// A BDAT chunk whose bytes are being read.
#[derive(Debug, Clone)]
struct Chunk {
    /// Bytes of the chunk still to come.
    remaining: u64,
    /// What its end brings.
    end: ChunkEnd,
    /// `-W bdat:...`: seconds to hold the reply back once the chunk is read.
    delay: u32,
}

/// What the end of a BDAT chunk brings. It is decided when the BDAT line
/// arrives, as the transaction cannot change while the chunk is read.
#[derive(Debug, Clone)]
enum ChunkEnd {
    /// Refused (`-f`, `-r`, 503): this reply; the content was discarded.
    Refused(Bytes),
    /// Accepted, more chunks to come: `250 2.0.0 Ok: <size> bytes`.
    More(u64),
    /// The LAST chunk: the end of the message, answered as "." is.
    Last,
}

/// A reply that a [`Step::Delay`] holds back.
#[derive(Debug)]
enum Held {
    /// A command's reply (the arguments as received).
    Reply(SinkCmd, Bytes),
    /// The reply at the end of a BDAT chunk.
    ChunkEnd(ChunkEnd),
    /// `--tarpit`: the greeting, not decided yet.
    Greeting,
    /// `--tarpit`: a line read (a command, or a line of an AUTH exchange),
    /// not handled yet.
    Line(Command),
    /// `--tarpit`: the end of data ("."), not handled yet.
    EndOfData,
}

/// A dump transaction in progress.
#[derive(Debug, Clone, Copy)]
struct Txn {
    id: u32,
    mail_time: i64,
    /// A dump operation failed: the end of data gets 451.
    failed: bool,
}

/// Called with `<command as typed> <args, at most 100 bytes>` for `-s`.
pub type SyslogHook = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// The protocol state of one connection.
pub struct Conversation<D: DumpSink> {
    cfg: Arc<Config>,
    stats: Arc<Stats>,
    parser: CommandParser,
    decoder: DataDecoder,
    in_data: bool,
    in_mail: bool,
    /// Postfix's counter: MAIL zeroes it, RCPT bumps it, the LMTP end of
    /// data counts it down (to -1), RSET leaves it alone.
    rcpts: i32,
    proto: &'static str,
    helo_args: Option<Bytes>,
    client: ClientAddr,
    dump: Option<D>,
    txn: Option<Txn>,
    /// How the last end of data is answered.
    dot_outcome: EndOfData,
    /// `--chunking`: a BDAT chunk is being read.
    chunk: Option<Chunk>,
    /// `--chunking`: this transaction has accepted a BDAT chunk, so DATA is
    /// refused and the Received header, `-A` and `-H` are behind it.
    bdat: bool,
    /// `--size`: message bytes received so far (unstuffed, CRLF included,
    /// as RFC 1870 counts them).
    content_bytes: u64,
    /// `--size`: `content_bytes` went past the limit.
    too_big: bool,
    /// `--smtputf8` and the MAIL carried SMTPUTF8: the dump keeps UTF-8
    /// in the MAIL and RCPT arguments.
    utf8: bool,
    delayed: Option<Held>,
    exit_pending: bool,
    /// `--drain`: the sink is stopping. A transaction under way goes on;
    /// anything else gets 421 and the session closes.
    draining: bool,
    /// TLS is up: `<protocol> <cipher>`, as the dump writes it.
    tls: Option<Bytes>,
    /// STARTTLS was answered and the handshake has not finished: no input
    /// is processed.
    tls_pending: bool,
    /// `--auth-users`: the user that AUTH logged in (censored as the dump
    /// writes it).
    user: Option<Bytes>,
    /// `--auth-users`: an AUTH exchange waits for the client's next line.
    auth_pending: Option<Pending>,
    out: BytesMut,
    rng: SmallRng,
    syslog: Option<SyslogHook>,
    /// This session's counts, flushed to `stats` at each end of message
    /// and when the conversation is dropped.
    counts: SessionCounts,
    /// A message ended and its "." reply is not sent yet (it may be
    /// delayed): a 2xx then counts the message as accepted.
    message_ended: bool,
    /// `--verify`: reads each message's stamp and body as they arrive.
    verifier: Option<StampVerifier>,
    /// `--verify`: the outcome of the message that ended, counted if its
    /// end of data gets a 2xx.
    verified: Option<Verification>,
    /// `--max-rate`, `--greylist`: the state shared with other sessions
    /// (None without them).
    throttle: Option<Arc<Throttle>>,
    /// The monotonic time of the current call (see [`Now::elapsed`]).
    clock: Duration,
    /// `--fault`: this session's draws, seeded with `--seed` (None
    /// without `--fault`).
    fault_rng: Option<SmallRng>,
    /// `--greylist`: the sender of the transaction, as the triple has it.
    sender: Bytes,
}

impl<D: DumpSink> Drop for Conversation<D> {
    fn drop(&mut self) {
        self.counts.flush(&self.stats);
    }
}

impl<D: DumpSink> std::fmt::Debug for Conversation<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conversation")
            .field("in_data", &self.in_data)
            .field("in_mail", &self.in_mail)
            .field("rcpts", &self.rcpts)
            .finish_non_exhaustive()
    }
}

/// [`printable`] as `Bytes`, without a copy when nothing changes.
fn shown(args: &Bytes) -> Bytes {
    match printable(args) {
        Cow::Borrowed(_) => args.clone(),
        Cow::Owned(v) => Bytes::from(v),
    }
}

/// The shared state, kept only when an option needs it.
fn shared_throttle(throttle: Arc<Throttle>) -> Option<Arc<Throttle>> {
    throttle.needs_clock().then_some(throttle)
}

/// The `--fault` draws of the `session`-th session, when there are rules.
fn fault_rng(cfg: &Config, session: u64) -> Option<SmallRng> {
    let behaviour = &cfg.behaviour;
    (!behaviour.faults.is_empty()).then(|| fault::session_rng(behaviour.seed, session))
}

/// The address of a MAIL or RCPT (between `<` and `>`), or the arguments
/// as sent when they do not parse: the sink accepts any MAIL and RCPT, so
/// greylisting must key them somehow.
fn path_of(verb: Verb, args: &Bytes) -> Bytes {
    let cmd = Command {
        verb,
        name: Bytes::new(),
        args: args.clone(),
    };
    let parsed = match verb {
        Verb::Mail => cmd.mail_from(),
        _ => cmd.rcpt_to(),
    };
    parsed.map_or_else(|_| args.clone(), |p| p.path)
}

/// Cuts at the first NUL, as Postfix's C strings end there.
fn c_str(b: &Bytes) -> Bytes {
    match memchr(0, b) {
        Some(i) => b.slice(..i),
        None => b.clone(),
    }
}

impl<D: DumpSink> Conversation<D> {
    /// A new conversation; `dump` is `Some` when `-d`/`-D` is on.
    pub fn new(
        cfg: Arc<Config>,
        stats: Arc<Stats>,
        client: ClientAddr,
        dump: Option<D>,
        rng: SmallRng,
        syslog: Option<SyslogHook>,
    ) -> Self {
        // --size and --verify read the unstuffed content, which only
        // Unstuff yields.
        let mode = if dump.is_some() || cfg.size_limit.is_some() || cfg.verify.is_some() {
            DataMode::Unstuff
        } else {
            DataMode::CountOnly
        };
        let proto = if cfg.lmtp { "LMTP" } else { "SMTP" };
        Conversation {
            parser: CommandParser::new(Limits::POSTFIX_SINK_LINE),
            decoder: DataDecoder::new(mode),
            in_data: false,
            in_mail: false,
            rcpts: 0,
            proto,
            helo_args: None,
            client,
            dump,
            txn: None,
            dot_outcome: EndOfData::Ok,
            chunk: None,
            bdat: false,
            content_bytes: 0,
            too_big: false,
            utf8: false,
            delayed: None,
            exit_pending: false,
            draining: false,
            tls: None,
            tls_pending: false,
            user: None,
            auth_pending: None,
            out: BytesMut::new(),
            rng,
            syslog,
            counts: SessionCounts::default(),
            message_ended: false,
            verifier: cfg.verify.as_ref().map(|_| StampVerifier::new()),
            verified: None,
            // Its own state until the shell gives it the shared one (a
            // session without the options makes nothing here).
            throttle: Throttle::needed(&cfg.behaviour)
                .then(|| Arc::new(Throttle::new(&cfg.behaviour))),
            clock: Duration::ZERO,
            fault_rng: fault_rng(&cfg, 0),
            sender: Bytes::new(),
            cfg,
            stats,
        }
    }

    /// Shares `throttle` (`--max-rate`, `--greylist`) with the other
    /// sessions, and draws `--fault`s as the `session`-th session accepted
    /// (from 0), which is what `--seed` makes reproducible.
    #[must_use]
    pub fn with_shared(mut self, throttle: Arc<Throttle>, session: u64) -> Self {
        self.throttle = shared_throttle(throttle);
        self.fault_rng = fault_rng(&self.cfg, session);
        self
    }

    /// Takes the time of a call: the monotonic part is kept for the
    /// shared state, the unix seconds go on to the dump.
    fn tick(&mut self, now: impl Into<Now>) -> i64 {
        let now = now.into();
        self.clock = now.elapsed;
        now.unix
    }

    /// Holds `what` back for `pause` (`--tarpit`).
    fn hold(&mut self, what: Held, pause: Duration) -> Step {
        self.delayed = Some(what);
        Step::Delay(pause)
    }

    /// Replies not yet sent. The shell writes them out and clears it.
    pub fn output(&mut self) -> &mut BytesMut {
        &mut self.out
    }

    /// Whether the conversation is inside DATA or a BDAT chunk (the shell
    /// reads bigger chunks then).
    pub fn in_data(&self) -> bool {
        self.in_data || self.chunk.is_some()
    }

    /// The connection opened: the `connect` pseudo-command (greeting).
    pub fn start(&mut self, now: impl Into<Now>) -> Step {
        let now = self.tick(now);
        if let Some(pause) = self.cfg.behaviour.tarpit {
            return self.hold(Held::Greeting, pause);
        }
        self.greet(now)
    }

    fn greet(&mut self, now: i64) -> Step {
        self.dispatch(SinkCmd::Connect, b"connect", Bytes::new(), now)
            .unwrap_or(Step::Read)
    }

    /// Processes everything in `buf` that can be processed, stopping early
    /// for a delay or a close.
    pub fn input(&mut self, buf: &mut BytesMut, now: impl Into<Now>) -> Step {
        let now = self.tick(now);
        if self.tls_pending {
            // Bytes that came before the handshake are never commands
            // (the command injection of CVE-2011-0411).
            buf.clear();
            return Step::StartTls;
        }
        loop {
            if self.in_data {
                if let Some(step) = self.data(buf, now) {
                    return step;
                }
                continue;
            }
            if self.chunk.is_some() {
                if let Some(step) = self.chunk_data(buf, now) {
                    return step;
                }
                continue;
            }
            match self.parser.parse(buf) {
                Ok(None) if self.draining && !self.in_mail => return self.shut_down(),
                Ok(None) => return Step::Read,
                Ok(Some(cmd)) => {
                    if let Some(pause) = self.cfg.behaviour.tarpit {
                        return self.hold(Held::Line(cmd), pause);
                    }
                    if let Some(step) = self.line(&cmd, now) {
                        return step;
                    }
                }
                Err(_) => {
                    warn!("command line too long");
                    return Step::Close;
                }
            }
        }
    }

    /// A line read outside data: a line of an AUTH exchange, or a command.
    fn line(&mut self, cmd: &Command, now: i64) -> Option<Step> {
        if self.auth_pending.is_some() {
            self.auth_line(cmd);
            return None;
        }
        self.command(&cmd.name, &cmd.args, now)
    }

    /// Sends the reply that a [`Step::Delay`] held back.
    pub fn resume(&mut self, now: impl Into<Now>) -> Step {
        let now = self.tick(now);
        let step = match self.delayed.take() {
            None => return Step::Read,
            Some(Held::Reply(cmd, args)) => {
                let start = self.out.len();
                let step = self.respond(cmd, &args, now);
                self.counts.replies(cmd.index(), &self.out[start..]);
                self.message_ended = false;
                step
            }
            Some(Held::ChunkEnd(end)) => self.chunk_end(end, now),
            Some(Held::Greeting) => Some(self.greet(now)),
            Some(Held::Line(cmd)) => self.line(&cmd, now),
            Some(Held::EndOfData) => self.end_of_message(true, now),
        };
        // A LAST chunk may still have a delayed "." reply to come.
        if self.exit_pending && !matches!(step, Some(Step::Delay(_))) {
            return Step::Exit;
        }
        step.unwrap_or(Step::Read)
    }

    /// The TLS handshake that STARTTLS (or `--tls-on-connect`) started has
    /// finished. Everything learned from the client before is forgotten:
    /// its HELO/EHLO, the protocol name, the AUTH state (RFC 3207 §4.2).
    /// Input processing goes on with what the client sends under TLS.
    pub fn tls_started(&mut self, protocol: &str, cipher: &str) {
        self.tls_pending = false;
        self.tls = Some(Bytes::from(format!("{protocol} {cipher}")));
        self.mail_reset();
        self.helo_args = None;
        self.proto = if self.cfg.lmtp { "LMTP" } else { "SMTP" };
        self.user = None;
        self.auth_pending = None;
        // The shell threw the old buffer away; the parser must not
        // remember how far it had scanned it.
        self.parser = CommandParser::new(Limits::POSTFIX_SINK_LINE);
    }

    /// Whether TLS is up.
    pub fn tls_active(&self) -> bool {
        self.tls.is_some()
    }

    /// `-A`: the premature reply after 354 (or at the first BDAT).
    pub fn abort_data(&mut self) {
        self.out.put_slice(replies::ABORT);
        // Counted as a reply to the command after which -A acted.
        let cmd = if self.bdat {
            SinkCmd::Bdat
        } else {
            SinkCmd::Data
        };
        self.counts.reply(cmd.index(), replies::ABORT[0]);
    }

    /// `--drain`: the sink has stopped accepting connections. A session
    /// in a transaction (MAIL given, end of data not yet answered) goes on
    /// until the transaction ends; one between transactions gets 421 now
    /// ([`Step::Close`]). The shell calls this while it waits for input.
    pub fn drain(&mut self) -> Step {
        self.draining = true;
        if self.in_mail {
            Step::Read
        } else {
            self.shut_down()
        }
    }

    /// The 421 of `--drain`, sent between transactions; the session ends.
    fn shut_down(&mut self) -> Step {
        self.out.put_slice(replies::SHUTTING_DOWN);
        Step::Close
    }

    /// The connection is closing: an open transaction is aborted (its dump
    /// file removed).
    pub fn close(&mut self) {
        self.mail_reset();
    }

    /// Data phase: returns `None` after the end of data has been handled
    /// and command reading should go on.
    fn data(&mut self, buf: &mut BytesMut, now: i64) -> Option<Step> {
        // Content bytes as sent: whatever the decoder takes off `buf`,
        // stuffed dots included, but not the final ".\r\n".
        let before = buf.len();
        loop {
            match self.decoder.parse(buf) {
                Ok(None) => {
                    self.counts.content((before - buf.len()) as u64);
                    return Some(Step::Read);
                }
                Ok(Some(DataEvent::Skipped(_))) => {}
                Ok(Some(DataEvent::Chunk(chunk))) => self.content(&chunk),
                Ok(Some(DataEvent::End)) => break,
                Err(never) => match never {},
            }
        }
        self.counts
            .content((before - buf.len()).saturating_sub(b".\r\n".len()) as u64);
        self.in_data = false;
        if let Some(pause) = self.cfg.behaviour.tarpit {
            return Some(self.hold(Held::EndOfData, pause));
        }
        self.end_of_message(true, now)
    }

    /// The end of a message, after "." (`typed_dot`, which `-v` logs as
    /// the command line it is) or a LAST chunk: returns `None` when
    /// command reading goes on.
    fn end_of_message(&mut self, typed_dot: bool, now: i64) -> Option<Step> {
        // Postfix finishes the dump, resets the transaction and counts the
        // message, then handles "." as a command. An oversized message
        // was dropped from the dump when it went past the limit; it is
        // still counted, as `-c` and `-M` count every message that arrived
        // (a `-f .` or a failed dump does not uncount one either).
        //
        // The message's place among the `-M` messages is taken first:
        // when other sessions have already filled them, this one is not
        // committed, counted or answered, just as a client finds a sink
        // that has already exited. That keeps `-M N` at exactly N with
        // sessions on several threads.
        let outcome = self.stats.message();
        if outcome == MessageOutcome::PastLimit {
            self.mail_reset();
            self.counts.flush(&self.stats);
            return Some(Step::Exit);
        }
        self.dot_outcome = EndOfData::Ok;
        if let Some(txn) = self.txn.take() {
            if txn.failed || self.dump_finish().is_err() {
                self.dot_outcome = EndOfData::DumpFailed;
            }
        }
        if self.too_big {
            self.dot_outcome = EndOfData::TooBig;
        }
        self.in_mail = false;
        self.verified = self.verifier.as_mut().map(StampVerifier::finish);
        self.new_message();
        if outcome == MessageOutcome::Exit {
            self.exit_pending = true;
        }
        if typed_dot && self.cfg.verbose > 0 {
            info!(".");
        }
        self.message_ended = true;
        let step = self.dispatch(SinkCmd::Dot, b".", Bytes::new(), now);
        let delayed = matches!(step, Some(Step::Delay(_)));
        if !delayed {
            self.message_ended = false;
        }
        self.counts.flush(&self.stats);
        if self.exit_pending && !delayed {
            return Some(Step::Exit);
        }
        step
    }

    /// Forgets the content state of the message: BDAT seen, size counted.
    fn new_message(&mut self) {
        self.bdat = false;
        self.content_bytes = 0;
        self.too_big = false;
        if let Some(v) = &mut self.verifier {
            v.reset();
        }
    }

    /// Message content (unstuffed DATA, or BDAT chunk bytes as sent):
    /// counted against `--size`, then dumped without its CRs.
    fn content(&mut self, data: &[u8]) {
        if let Some(v) = &mut self.verifier {
            v.update(data);
        }
        if let Some(limit) = self.cfg.size_limit {
            let len = u64::try_from(data.len()).unwrap_or(u64::MAX);
            self.content_bytes = self.content_bytes.saturating_add(len);
            if self.content_bytes > limit && !self.too_big {
                // This message will get 552 and no record: drop the record
                // now rather than keep writing a message of any size.
                self.too_big = true;
                self.dump_drop();
            }
        }
        if !self.too_big {
            self.dump_write_data(data);
        }
    }

    /// Bytes of the BDAT chunk being read, off the front of `buf`: never
    /// more than the chunk has left, and nothing is kept (the dump gets
    /// them at once). Returns `None` once the chunk has been answered and
    /// command reading goes on.
    fn chunk_data(&mut self, buf: &mut BytesMut, now: i64) -> Option<Step> {
        let chunk = self.chunk.as_mut()?;
        let n = usize::try_from(chunk.remaining)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let taken = u64::try_from(n).unwrap_or(u64::MAX);
        chunk.remaining = chunk.remaining.saturating_sub(taken);
        let keep = !matches!(chunk.end, ChunkEnd::Refused(_));
        let done = chunk.remaining == 0;
        if keep && n > 0 {
            self.counts.content(taken);
            self.content(&buf[..n]);
        }
        buf.advance(n);
        if !done {
            return Some(Step::Read);
        }
        let chunk = self.chunk.take()?;
        let tarpit = self.cfg.behaviour.tarpit.unwrap_or_default();
        if chunk.delay > 0 || !tarpit.is_zero() {
            self.delayed = Some(Held::ChunkEnd(chunk.end));
            let delay = Duration::from_secs(u64::from(chunk.delay));
            return Some(Step::Delay(delay + tarpit));
        }
        self.chunk_end(chunk.end, now)
    }

    /// The reply once a chunk has been read.
    fn chunk_end(&mut self, end: ChunkEnd, now: i64) -> Option<Step> {
        match end {
            ChunkEnd::Refused(reply) => {
                self.out.put_slice(&reply);
                self.counts.replies(SinkCmd::Bdat.index(), &reply);
                None
            }
            ChunkEnd::More(size) => {
                replies::chunk_ok(size, &mut self.out);
                self.counts.reply(SinkCmd::Bdat.index(), b'2');
                None
            }
            ChunkEnd::Last => self.end_of_message(false, now),
        }
    }

    /// BDAT (`--chunking`): decides now what its chunk brings; the reply
    /// follows once the chunk has been read, even when it is an error,
    /// because the chunk's bytes are on their way regardless (RFC 3030).
    /// `fault` is a `--fault` reply that refuses the chunk.
    fn bdat(&mut self, args: &Bytes, action: Action, fault: Option<Bytes>) -> Option<Step> {
        match action {
            Action::Drop => return Some(Step::Close),
            Action::Close421 => {
                self.out.put_slice(replies::CLOSING);
                return Some(Step::Close);
            }
            Action::Hard | Action::Soft | Action::Delay(_) | Action::Normal => {}
        }
        let cmd = Command {
            verb: Verb::Bdat,
            name: Bytes::from_static(b"BDAT"),
            args: args.clone(),
        };
        let Ok(BdatArgs { size, last }) = cmd.bdat() else {
            // Without a size nobody knows where the chunk ends, so the
            // input cannot be read as commands again.
            self.out.put_slice(replies::BDAT_SYNTAX);
            return Some(Step::Close);
        };
        let refused = |reply: &'static [u8]| ChunkEnd::Refused(Bytes::from_static(reply));
        let end = match (action, fault) {
            (Action::Hard, _) => ChunkEnd::Refused(self.cfg.replies.hard.clone()),
            (Action::Soft, _) => ChunkEnd::Refused(self.cfg.replies.soft.clone()),
            (_, Some(reply)) => ChunkEnd::Refused(reply),
            _ if !self.in_mail => refused(replies::NEED_MAIL),
            _ if self.rcpts <= 0 => refused(replies::NEED_RCPT),
            _ if last => ChunkEnd::Last,
            _ => ChunkEnd::More(size),
        };
        let delay = match action {
            Action::Delay(secs) => secs,
            _ => 0,
        };
        let mut step = None;
        if !matches!(end, ChunkEnd::Refused(_)) && !self.bdat {
            // The first chunk of a transaction stands where DATA's 354
            // does: the Received header goes first, and -A and -H act.
            self.bdat = true;
            self.write_received();
            if let Some(secs) = self.cfg.abort_delay {
                self.counts.abort();
                return Some(Step::Abort(Duration::from_secs(u64::from(secs))));
            }
            if self.cfg.data_read_delay > 0 {
                self.counts.stall();
                let secs = u64::from(self.cfg.data_read_delay);
                step = Some(Step::Stall(Duration::from_secs(secs)));
            }
        }
        self.chunk = Some(Chunk {
            remaining: size,
            end,
            delay,
        });
        step
    }

    fn command(&mut self, name: &Bytes, args: &Bytes, now: i64) -> Option<Step> {
        // A NUL ends the line for Postfix (a C string): in the verb, it
        // also drops the arguments.
        let (name, args) = match memchr(0, name) {
            Some(_) => (c_str(name), Bytes::new()),
            None => (name.clone(), c_str(args)),
        };
        if self.cfg.verbose > 0 {
            if args.is_empty() {
                info!("{}", String::from_utf8_lossy(&name));
            } else {
                info!(
                    "{} {}",
                    String::from_utf8_lossy(&name),
                    String::from_utf8_lossy(&self.logged_args(&name, &args))
                );
            }
        }
        if name.is_empty() {
            self.out.put_slice(replies::EMPTY);
            self.counts.unknown();
            return None;
        }
        let Some(cmd) = self.cfg.policy.enabled(&name) else {
            self.out.put_slice(replies::UNKNOWN);
            self.counts.unknown();
            return None;
        };
        if self.draining && !self.in_mail && cmd != SinkCmd::Quit {
            // --drain: no new transaction (nor anything else but QUIT)
            // after the one under way.
            self.counts.command(cmd);
            self.counts.reply(cmd.index(), replies::SHUTTING_DOWN[0]);
            return Some(self.shut_down());
        }
        // The arguments go on as received; each use censors them as it
        // needs (printable() for logs and the dump, UTF-8 kept for a
        // --smtputf8 transaction's dump).
        self.dispatch(cmd, &name, args, now)
    }

    /// Postfix's command_resp: syslog, then -q, -Q, -f, -r, delay, reply.
    /// Counts the command and the replies it got now.
    fn dispatch(&mut self, cmd: SinkCmd, typed: &[u8], args: Bytes, now: i64) -> Option<Step> {
        self.counts.command(cmd);
        let start = self.out.len();
        let step = self.decide_and_reply(cmd, typed, args, now);
        self.counts.replies(cmd.index(), &self.out[start..]);
        step
    }

    fn decide_and_reply(
        &mut self,
        cmd: SinkCmd,
        typed: &[u8],
        args: Bytes,
        now: i64,
    ) -> Option<Step> {
        let rule = *self.cfg.policy.rule(cmd);
        if rule.syslog {
            if let Some(log) = &self.syslog {
                let logged = self.logged_args(typed, &args);
                let shown = printable(&logged);
                let mut line = Vec::with_capacity(typed.len() + 1 + shown.len().min(100));
                line.extend_from_slice(typed);
                line.push(b' ');
                line.extend_from_slice(&shown[..shown.len().min(100)]);
                log(&line);
            }
        }
        let action = {
            let rng = &mut self.rng;
            let mut draw = || ((u64::from(rng.next_u32()) * 100) >> 32) as u32;
            self.cfg.policy.decide(cmd, &mut draw)
        };
        // A --fault stands where -f/-r would: after -q, -Q, -f and -r,
        // instead of a delay or the normal reply.
        let fault = match action {
            Action::Delay(_) | Action::Normal => self.fault(cmd),
            _ => None,
        };
        if let Some(reply) = fault {
            return self.fault_reply(cmd, &args, reply);
        }
        if let Action::Delay(secs @ 1..) = action {
            self.stats.delayed(cmd, secs);
        }
        if cmd == SinkCmd::Bdat {
            return self.bdat(&args, action, None);
        }
        match action {
            Action::Drop => Some(Step::Close),
            Action::Close421 => {
                self.out.put_slice(replies::CLOSING);
                Some(Step::Close)
            }
            Action::Hard => {
                let reply = self.cfg.replies.hard.clone();
                self.reject(cmd, &reply);
                None
            }
            Action::Soft => {
                let reply = self.cfg.replies.soft.clone();
                self.reject(cmd, &reply);
                None
            }
            Action::Delay(0) | Action::Normal => self.respond(cmd, &args, now),
            Action::Delay(secs) => {
                self.delayed = Some(Held::Reply(cmd, args));
                Some(Step::Delay(Duration::from_secs(u64::from(secs))))
            }
        }
    }

    /// `--fault`: the reply a fault rule gives `cmd` this time, if any
    /// (counted).
    fn fault(&mut self, cmd: SinkCmd) -> Option<FaultReply> {
        let faults = &self.cfg.behaviour.faults;
        let rng = self.fault_rng.as_mut()?;
        let rule = faults.pick(cmd, &mut || rng.next_u32())?;
        self.counts.fault(rule);
        Some(faults.rules()[rule].reply.clone())
    }

    /// Answers `cmd` with a fault's reply, without side effects: as -q
    /// for `disconnect`, as -Q for a 421, as -f/-r otherwise.
    fn fault_reply(&mut self, cmd: SinkCmd, args: &Bytes, reply: FaultReply) -> Option<Step> {
        let closes = reply.closes();
        match reply {
            FaultReply::Disconnect => {}
            FaultReply::Reply(text) if closes => self.out.put_slice(&text),
            FaultReply::Reply(text) if cmd == SinkCmd::Bdat => {
                // The chunk's bytes are on their way: the reply follows them.
                return self.bdat(args, Action::Normal, Some(text));
            }
            FaultReply::Reply(text) => self.reject(cmd, &text),
        }
        closes.then_some(Step::Close)
    }

    /// The arguments as `-v` and `-s` show them. With real AUTH an initial
    /// response is a secret: only the mechanism is shown, then `****`.
    fn logged_args<'a>(&self, name: &[u8], args: &'a [u8]) -> Cow<'a, [u8]> {
        if self.cfg.auth.is_none() || !name.eq_ignore_ascii_case(b"auth") {
            return Cow::Borrowed(args);
        }
        let words = args.trim_ascii_start();
        match words.iter().position(|b| *b == b' ' || *b == b'\t') {
            Some(end) => Cow::Owned([&words[..end], b" ****"].concat()),
            None => Cow::Borrowed(args),
        }
    }

    /// A line of an AUTH exchange: a SASL response (base64, or `*`), never
    /// a command, and never logged.
    fn auth_line(&mut self, cmd: &Command) {
        let Some(pending) = self.auth_pending.take() else {
            return;
        };
        let mechanism = pending.mechanism();
        // A response is one base64 word; a line with a blank in it cannot
        // be one.
        let outcome = match &self.cfg.auth {
            Some(a) if cmd.args.is_empty() => auth::step(&a.users, pending, &cmd.name),
            _ => Outcome::Malformed,
        };
        let start = self.out.len();
        self.auth_outcome(mechanism, outcome);
        self.counts
            .replies(SinkCmd::Auth.index(), &self.out[start..]);
    }

    /// The reply to a step of an AUTH exchange, and its effects.
    fn auth_outcome(&mut self, mechanism: Mechanism, outcome: Outcome) {
        let verbose = self.cfg.verbose > 0;
        let who = |user: &Option<Bytes>| {
            user.as_ref().map_or_else(String::new, |u| {
                String::from_utf8_lossy(&printable(u)).into_owned()
            })
        };
        match outcome {
            Outcome::Challenge(reply, pending) => {
                self.out.put_slice(reply);
                self.auth_pending = Some(pending);
            }
            Outcome::Success(user) => {
                self.out.put_slice(replies::AUTH_OK);
                self.stats.auth(true);
                let user = Some(shown(&user));
                if verbose {
                    info!("AUTH {}: user={}: ok", mechanism.name(), who(&user));
                }
                self.user = user;
            }
            Outcome::Failed(user) => {
                self.out.put_slice(replies::AUTH_FAILED);
                self.stats.auth(false);
                if verbose {
                    info!("AUTH {}: user={}: failed", mechanism.name(), who(&user));
                }
            }
            Outcome::Malformed => self.out.put_slice(replies::AUTH_MALFORMED),
            Outcome::Aborted => self.out.put_slice(replies::AUTH_ABORTED),
        }
    }

    /// Real AUTH (`--auth-users`): the checks in RFC 4954's order, then the
    /// first step of the exchange.
    fn auth_command(&mut self, args: &Bytes) {
        let Some(setup) = self.cfg.auth.clone() else {
            return;
        };
        if self.user.is_some() {
            self.out.put_slice(replies::AUTH_AGAIN);
            return;
        }
        if self.in_mail {
            self.out.put_slice(replies::IN_TRANSACTION);
            return;
        }
        let cmd = Command {
            verb: Verb::Auth,
            name: Bytes::from_static(b"AUTH"),
            args: args.clone(),
        };
        let Ok(parsed) = cmd.auth() else {
            self.out.put_slice(replies::AUTH_SYNTAX);
            return;
        };
        let Some(mechanism) = Mechanism::parse(&parsed.mechanism) else {
            self.out.put_slice(replies::AUTH_UNKNOWN);
            return;
        };
        if self.tls.is_none() && !setup.plaintext {
            self.out.put_slice(replies::AUTH_NEEDS_TLS);
            return;
        }
        let outcome = auth::start(&setup.users, mechanism, parsed.initial_response.as_deref());
        self.auth_outcome(mechanism, outcome);
    }

    /// A -f/-r reply: once, or once per recipient for "." under LMTP.
    fn reject(&mut self, cmd: SinkCmd, reply: &[u8]) {
        if cmd == SinkCmd::Dot && self.cfg.lmtp {
            while self.count_down_rcpt() {
                self.out.put_slice(reply);
            }
        } else {
            self.out.put_slice(reply);
        }
    }

    /// Postfix's `while (rcpts-- > 0)`, except that the count stops at 0.
    /// Postfix's leaves it at -1 after the loop, so under LMTP a "." typed
    /// outside DATA let a later DATA through with no recipient, and its
    /// end of data then got no reply at all (found by fuzzing).
    fn count_down_rcpt(&mut self) -> bool {
        let before = self.rcpts;
        self.rcpts = (before - 1).max(0);
        before > 0
    }

    /// The normal reply and its side effects.
    fn respond(&mut self, cmd: SinkCmd, args: &Bytes, now: i64) -> Option<Step> {
        match cmd {
            SinkCmd::Connect => {
                if self.rate_action() == Some(RateAction::Connect)
                    && self
                        .throttle
                        .as_ref()
                        .is_some_and(|t| !t.has_token(self.clock))
                {
                    return self.rate_limited(cmd);
                }
                self.out.put_slice(&self.cfg.replies.greeting);
            }
            SinkCmd::Helo | SinkCmd::Ehlo | SinkCmd::Lhlo => {
                self.mail_reset();
                if cmd == SinkCmd::Helo {
                    self.proto = "SMTP";
                    self.out.put_slice(&self.cfg.replies.helo);
                } else {
                    if !self.cfg.lmtp {
                        self.proto = "ESMTP";
                    }
                    let list = if self.tls.is_some() {
                        &self.cfg.replies.ehlo_tls
                    } else {
                        &self.cfg.replies.ehlo
                    };
                    self.out.put_slice(list);
                }
                if self.dump.is_some() {
                    let shown = shown(args);
                    let skip = shown.iter().take_while(|b| dump::is_c_space(**b)).count();
                    self.helo_args = Some(shown.slice(skip..));
                }
            }
            SinkCmd::Auth if self.cfg.auth.is_some() => self.auth_command(args),
            SinkCmd::Xclient
            | SinkCmd::Xforward
            | SinkCmd::Auth
            | SinkCmd::Noop
            | SinkCmd::Vrfy => {
                self.out.put_slice(replies::OK);
            }
            SinkCmd::Starttls => {
                if self.tls.is_some() {
                    self.out.put_slice(replies::TLS_ACTIVE);
                } else if !args.trim_ascii().is_empty() {
                    self.out.put_slice(replies::STARTTLS_SYNTAX);
                } else if self.in_mail {
                    self.out.put_slice(replies::IN_TRANSACTION);
                } else {
                    self.out.put_slice(replies::READY_FOR_TLS);
                    self.tls_pending = true;
                    return Some(Step::StartTls);
                }
            }
            SinkCmd::Mail => {
                if self.user.is_none() && matches!(&self.cfg.auth, Some(a) if a.required) {
                    self.out.put_slice(replies::AUTH_REQUIRED);
                    return None;
                }
                if self.in_mail {
                    self.out.put_slice(replies::NESTED_MAIL);
                    return None;
                }
                let (declared, utf8) = self.mail_params(args);
                if matches!((declared, self.cfg.size_limit), (Some(d), Some(l)) if d > l) {
                    self.out.put_slice(replies::TOO_BIG);
                    return None;
                }
                let clock = self.clock;
                if self.rate_action().is_some()
                    && self.throttle.as_ref().is_some_and(|t| !t.take_token(clock))
                {
                    return self.rate_limited(cmd);
                }
                if self.cfg.behaviour.greylist.is_some() {
                    self.sender = path_of(Verb::Mail, args);
                }
                self.in_mail = true;
                self.rcpts = 0;
                self.new_message();
                self.utf8 = utf8;
                self.out.put_slice(replies::MAIL_OK);
                self.dump_begin(args, now);
            }
            SinkCmd::Rcpt => {
                if !self.in_mail {
                    self.out.put_slice(replies::NEED_MAIL);
                    return None;
                }
                if self.cfg.behaviour.greylist.is_some() {
                    let recipient = path_of(Verb::Rcpt, args);
                    let client = self.client.addr.as_bytes();
                    let verdict = self.throttle.as_ref().map_or(Verdict::Pass, |t| {
                        t.greylist(client, &self.sender, &recipient, self.clock)
                    });
                    if verdict == Verdict::Defer {
                        self.counts.greylisted();
                        self.out.put_slice(replies::GREYLISTED);
                        return None;
                    }
                }
                self.rcpts = self.rcpts.saturating_add(1);
                self.out.put_slice(replies::RCPT_OK);
                if self.txn.is_some() {
                    let line = dump::rcpt_line(&self.dump_args(args));
                    self.dump_write(&line);
                }
            }
            SinkCmd::Data => {
                if !self.in_mail || self.rcpts <= 0 {
                    self.out.put_slice(replies::NEED_RCPT);
                    return None;
                }
                if self.bdat {
                    // RFC 3030: a message goes by DATA or by BDAT, not both.
                    self.out.put_slice(replies::DATA_AFTER_BDAT);
                    return None;
                }
                self.out.put_slice(replies::DATA_GO);
                self.write_received();
                if let Some(secs) = self.cfg.abort_delay {
                    self.counts.abort();
                    return Some(Step::Abort(Duration::from_secs(u64::from(secs))));
                }
                self.in_data = true;
                self.decoder.reset();
                if self.cfg.data_read_delay > 0 {
                    self.counts.stall();
                    let secs = u64::from(self.cfg.data_read_delay);
                    return Some(Step::Stall(Duration::from_secs(secs)));
                }
            }
            SinkCmd::Dot => {
                let outcome = std::mem::take(&mut self.dot_outcome);
                let verified = self.verified.take();
                let ok = match (outcome, self.cfg.lmtp) {
                    (EndOfData::TooBig, _) => replies::TOO_BIG,
                    (EndOfData::DumpFailed, _) => replies::DUMP_FAILED,
                    (EndOfData::Ok, true) => replies::LMTP_OK,
                    (EndOfData::Ok, false) => replies::OK,
                };
                let start = self.out.len();
                if self.cfg.lmtp {
                    while self.count_down_rcpt() {
                        self.out.put_slice(ok);
                    }
                } else {
                    self.out.put_slice(ok);
                }
                // A "." typed outside DATA is answered but is no message.
                if self.message_ended && outcome == EndOfData::Ok && self.out.len() > start {
                    self.counts.accepted();
                    if let (Some(verify), Some(verified)) = (self.stats.verify(), verified) {
                        verify.record(&verified);
                    }
                }
            }
            SinkCmd::Rset => {
                self.mail_reset();
                self.out.put_slice(replies::RSET_OK);
            }
            SinkCmd::Quit => {
                self.out.put_slice(replies::BYE);
                self.stats.quit();
                return Some(Step::Close);
            }
            // Answered when its chunk has been read (`bdat`, `chunk_end`),
            // never from here.
            SinkCmd::Bdat => {}
        }
        None
    }

    /// `--max-rate`'s action, when the option is on.
    fn rate_action(&self) -> Option<RateAction> {
        self.cfg.behaviour.max_rate.map(|m| m.action)
    }

    /// `--max-rate` refuses `cmd` (counted): 451, or 421 and close.
    fn rate_limited(&mut self, cmd: SinkCmd) -> Option<Step> {
        self.counts.rate_limited(cmd);
        if self.rate_action() == Some(RateAction::Connect) {
            self.out.put_slice(replies::RATE_LIMITED_CLOSE);
            return Some(Step::Close);
        }
        self.out.put_slice(replies::RATE_LIMITED);
        None
    }

    /// The SIZE= value and whether SMTPUTF8 is among the MAIL parameters,
    /// looked for only when `--size` or `--smtputf8` needs them. A MAIL
    /// that does not parse, or a SIZE= that is not a number, counts as
    /// having neither, since the sink accepts any MAIL; a number too large
    /// for u64 is over any limit.
    fn mail_params(&self, args: &Bytes) -> (Option<u64>, bool) {
        if self.cfg.size_limit.is_none() && !self.cfg.smtputf8 {
            return (None, false);
        }
        let cmd = Command {
            verb: Verb::Mail,
            name: Bytes::from_static(b"MAIL"),
            args: args.clone(),
        };
        let Ok(from) = cmd.mail_from() else {
            return (None, false);
        };
        let size = from
            .params
            .get("SIZE")
            .flatten()
            .filter(|v| !v.is_empty() && v.iter().all(u8::is_ascii_digit))
            .map(|v| {
                std::str::from_utf8(&v)
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .unwrap_or(u64::MAX)
            });
        let utf8 = self.cfg.smtputf8 && from.params.get("SMTPUTF8").is_some();
        (size, utf8)
    }

    /// MAIL and RCPT arguments as the dump writes them.
    fn dump_args<'a>(&self, args: &'a [u8]) -> Cow<'a, [u8]> {
        if self.utf8 {
            dump::printable_utf8(args)
        } else {
            printable(args)
        }
    }

    /// Postfix's mail_cmd_reset: leaves the transaction (not the rcpt
    /// counter) and drops an unfinished dump.
    fn mail_reset(&mut self) {
        self.in_mail = false;
        self.new_message();
        if self.txn.take().is_some() {
            if let Some(d) = &mut self.dump {
                d.abort();
            }
        }
    }

    /// The Received header, where the message content starts (at 354, or
    /// at the first BDAT chunk).
    fn write_received(&mut self) {
        if let Some(txn) = self.txn {
            let received = dump::received(
                &self.client,
                self.helo_args.as_deref(),
                &self.cfg.hostname,
                self.proto,
                txn.id,
                txn.mail_time,
            );
            self.dump_write(&received);
        }
    }

    fn dump_begin(&mut self, args: &Bytes, now: i64) {
        let Some(d) = &mut self.dump else { return };
        match d.begin(now, &mut self.rng) {
            Ok(id) => {
                self.txn = Some(Txn {
                    id,
                    mail_time: now,
                    failed: false,
                });
                let start = self
                    .cfg
                    .dump
                    .as_ref()
                    .and_then(|d| d.start_string.as_deref());
                let shown = if self.utf8 {
                    dump::printable_utf8(args)
                } else {
                    printable(args)
                };
                let security = dump::Security {
                    tls: self.tls.as_deref(),
                    user: self.user.as_deref(),
                };
                let head = dump::head(
                    start,
                    &self.client,
                    self.proto,
                    security,
                    self.helo_args.as_deref(),
                    &shown,
                );
                self.dump_write(&head);
            }
            Err(e) => {
                warn!("dump file: {e}");
                self.counts.dump_failed();
                self.txn = Some(Txn {
                    id: 0,
                    mail_time: now,
                    failed: true,
                });
            }
        }
    }

    fn dump_write(&mut self, bytes: &[u8]) {
        let (Some(txn), Some(d)) = (&mut self.txn, &mut self.dump) else {
            return;
        };
        if txn.failed {
            return;
        }
        if let Err(e) = d.write(bytes) {
            warn!("dump file write: {e}");
            txn.failed = true;
            d.abort();
            self.counts.dump_failed();
        }
    }

    fn dump_write_data(&mut self, chunk: &[u8]) {
        let (Some(txn), Some(d)) = (&mut self.txn, &mut self.dump) else {
            return;
        };
        if txn.failed {
            return;
        }
        if let Err(e) = dump::without_cr(chunk, &mut |piece| d.write(piece)) {
            warn!("dump file write: {e}");
            txn.failed = true;
            d.abort();
            self.counts.dump_failed();
        }
    }

    /// Drops the record of this transaction (`--size` exceeded); the end
    /// of data then gets 552, not 451.
    fn dump_drop(&mut self) {
        if let (Some(txn), Some(d)) = (&mut self.txn, &mut self.dump) {
            if !txn.failed {
                txn.failed = true;
                d.abort();
            }
        }
    }

    /// Writes the LF of the final ".\r\n" and finishes the record.
    fn dump_finish(&mut self) -> Result<(), ()> {
        let Some(d) = &mut self.dump else {
            return Err(());
        };
        let result = d.write(b"\n").and_then(|()| d.commit());
        match result {
            Ok(()) => {
                self.counts.dump_written();
                Ok(())
            }
            Err(e) => {
                warn!("dump file write: {e}");
                d.abort();
                self.counts.dump_failed();
                Err(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::io;
    use std::rc::Rc;

    use rand::SeedableRng;

    use super::*;
    use crate::cli::Cli;
    use crate::stats::{Classes, Counters};

    /// An in-memory dump: the committed records, and the open one.
    #[derive(Default, Clone)]
    struct MemDump {
        records: Rc<RefCell<Vec<Vec<u8>>>>,
        open: Option<Vec<u8>>,
        fail_writes: bool,
    }

    impl DumpSink for MemDump {
        fn begin(&mut self, _: i64, _: &mut dyn RngCore) -> io::Result<u32> {
            self.open = Some(Vec::new());
            Ok(0x1234abcd)
        }
        fn write(&mut self, data: &[u8]) -> io::Result<()> {
            if self.fail_writes {
                return Err(io::Error::other("disk full"));
            }
            self.open.as_mut().expect("open").extend_from_slice(data);
            Ok(())
        }
        fn commit(&mut self) -> io::Result<()> {
            let rec = self.open.take().expect("open");
            self.records.borrow_mut().push(rec);
            Ok(())
        }
        fn abort(&mut self) {
            self.open = None;
        }
    }

    fn config(args: &[&str]) -> Arc<Config> {
        let argv = ["smtp-sink"]
            .iter()
            .chain(args)
            .chain([":25", "10"].iter())
            .copied();
        let cli = Cli::try_parse_ordered(argv).expect("clap");
        Arc::new(Config::from_cli(cli, "smtp-sink", 1000).expect("valid"))
    }

    fn conv(args: &[&str]) -> Conversation<MemDump> {
        let cfg = config(args);
        let stats = Arc::new(Stats::with_output(
            false,
            cfg.max_messages,
            0,
            Box::new(io::sink()),
        ));
        let dump = cfg.dump.as_ref().map(|_| MemDump::default());
        Conversation::new(
            cfg,
            stats,
            ClientAddr::from_ip("127.0.0.1".parse().expect("ip")),
            dump,
            SmallRng::seed_from_u64(7),
            None,
        )
    }

    /// Feeds `input` (greeting first) and returns the replies and the last step.
    fn run(c: &mut Conversation<MemDump>, input: &[u8]) -> (String, Step) {
        let mut step = c.start(0);
        let mut buf = BytesMut::from(input);
        if step == Step::Read {
            step = c.input(&mut buf, 0);
        }
        let out = String::from_utf8_lossy(&c.output().split()).into_owned();
        (out, step)
    }

    fn replies(args: &[&str], input: &str) -> String {
        run(&mut conv(args), input.as_bytes()).0
    }

    const GREET: &str = "220 smtp-sink ESMTP\r\n";

    #[test]
    fn exact_replies_for_a_default_session() {
        let out = replies(
            &[],
            "HELO x\r\nMAIL FROM:<a>\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\nhi\r\n.\r\n\
             RCPT TO:<b>\r\nDATA\r\nRSET\r\nNOOP\r\nVRFY x\r\nAUTH PLAIN\r\nXCLIENT NAME=x\r\n\
             XFORWARD NAME=x\r\nEXPN x\r\nSTARTTLS\r\nBDAT 1\r\nconnect\r\n\r\n   \r\n.\r\nQUIT\r\nNOOP\r\n",
        );
        let want = [
            GREET,
            "250 smtp-sink\r\n",
            "250 2.1.0 Ok\r\n",
            "503 5.5.1 Error: nested MAIL command\r\n",
            "250 2.1.5 Ok\r\n",
            "354 End data with <CR><LF>.<CR><LF>\r\n",
            "250 2.0.0 Ok\r\n",
            "503 5.5.1 Error: need MAIL command\r\n",
            "503 5.5.1 Error: need RCPT command\r\n",
            "250 2.1.0 Ok\r\n",
            "250 2.0.0 Ok\r\n",
            "250 2.0.0 Ok\r\n",
            "250 2.0.0 Ok\r\n",
            "250 2.0.0 Ok\r\n",
            "250 2.0.0 Ok\r\n",
            "500 5.5.1 Error: unknown command\r\n",
            "500 5.5.1 Error: unknown command\r\n",
            "500 5.5.1 Error: unknown command\r\n",
            "500 5.5.1 Error: unknown command\r\n",
            "500 5.5.2 Error: unknown command\r\n",
            "500 5.5.2 Error: unknown command\r\n",
            "250 2.0.0 Ok\r\n",
            "221 Bye\r\n",
        ]
        .concat();
        assert_eq!(out, want);
    }

    #[test]
    fn only_crlf_ends_a_line_and_long_lines_close_silently() {
        assert_eq!(
            replies(&[], "NOOP\nNOOP\r\n"),
            format!("{GREET}500 5.5.1 Error: unknown command\r\n")
        );
        let ok = format!("NOOP {}\r\n", "x".repeat(2046 - 5));
        assert_eq!(replies(&[], &ok), format!("{GREET}250 2.0.0 Ok\r\n"));
        let long = format!("NOOP {}\r\nNOOP\r\n", "x".repeat(2047 - 5));
        let (out, step) = run(&mut conv(&[]), long.as_bytes());
        assert_eq!((out.as_str(), step), (GREET, Step::Close));
    }

    #[test]
    fn protocol_variants_enable_the_right_hello() {
        let ehlo_all = "250-smtp-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n\
250-XCLIENT NAME HELO\r\n250-XFORWARD NAME ADDR PROTO HELO\r\n250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250 \r\n";
        let unknown = "500 5.5.1 Error: unknown command\r\n";
        assert_eq!(replies(&[], "EHLO x\r\n"), format!("{GREET}{ehlo_all}"));
        assert_eq!(
            replies(&["-L"], "EHLO x\r\nHELO x\r\nLHLO x\r\n"),
            format!("{GREET}{unknown}{unknown}{ehlo_all}")
        );
        assert_eq!(
            replies(&["-e"], "EHLO x\r\nHELO x\r\n"),
            format!("220 smtp-sink\r\n{unknown}250 smtp-sink\r\n")
        );
        assert_eq!(
            replies(&["-P", "-h", "vm"], "EHLO x\r\nHELO x\r\n"),
            format!("220 ********\r\n{unknown}250 vm\r\n")
        );
        assert_eq!(
            replies(
                &["-8", "-a", "-C", "-F", "-E", "-N", "-p"],
                "EHLO x\r\nXCLIENT a\r\nXFORWARD a\r\nAUTH x\r\n"
            ),
            format!("{GREET}250-smtp-sink\r\n250 \r\n{unknown}{unknown}250 2.0.0 Ok\r\n")
        );
    }

    #[test]
    fn lmtp_replies_once_per_recipient() {
        let out = replies(
            &["-L"],
            "LHLO x\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nRCPT TO:<c>\r\nRCPT TO:<d>\r\nDATA\r\n.\r\n.\r\n",
        );
        assert!(out.ends_with("354 End data with <CR><LF>.<CR><LF>\r\n250 2.2.0 Ok\r\n250 2.2.0 Ok\r\n250 2.2.0 Ok\r\n"), "{out}");
        let out = replies(
            &["-L", "-r", ".", "-b", "451 4.3.5 later"],
            "LHLO x\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nRCPT TO:<c>\r\nDATA\r\nx\r\n.\r\n",
        );
        assert!(
            out.ends_with("<CR><LF>\r\n451 4.3.5 later\r\n451 4.3.5 later\r\n"),
            "{out}"
        );
        // RSET keeps the counter: "." then answers for both recipients.
        let out = replies(
            &["-L"],
            "MAIL FROM:<a>\r\nRCPT TO:<b>\r\nRCPT TO:<c>\r\nRSET\r\n.\r\n",
        );
        assert!(
            out.ends_with("250 2.1.0 Ok\r\n250 2.2.0 Ok\r\n250 2.2.0 Ok\r\n"),
            "{out}"
        );
    }

    /// Postfix's LMTP count goes to -1 on a "." outside DATA, so a later
    /// DATA without RCPT was let through and its "." got no reply; here
    /// DATA still needs a recipient.
    #[test]
    fn lmtp_dot_outside_data_does_not_open_data_without_a_recipient() {
        let out = replies(&["-L"], "LHLO x\r\nMAIL FROM:<a>\r\n.\r\nDATA\r\n");
        assert!(
            out.ends_with("250 2.1.0 Ok\r\n503 5.5.1 Error: need RCPT command\r\n"),
            "{out}"
        );
        let out = replies(
            &["-L"],
            "LHLO x\r\nMAIL FROM:<a>\r\n.\r\nRCPT TO:<b>\r\nDATA\r\nx\r\n.\r\n",
        );
        assert!(out.ends_with("<CR><LF>\r\n250 2.2.0 Ok\r\n"), "{out}");
    }

    #[test]
    fn reject_lists_and_priorities() {
        let out = replies(
            &["-f", "rcpt .", "-B", "554 5.7.1 Go away"],
            "EHLO x\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n",
        );
        assert!(!out.contains("PIPELINING"));
        assert!(
            out.ends_with(
                "250 2.1.0 Ok\r\n554 5.7.1 Go away\r\n503 5.5.1 Error: need RCPT command\r\n"
            ),
            "{out}"
        );
        let out = replies(&["-r", "mail,helo"], "HELO x\r\nMAIL FROM:<a>\r\n");
        assert_eq!(
            out,
            format!("{GREET}{}", "450 4.3.0 Error: command failed\r\n".repeat(2))
        );
        let (out, step) = run(&mut conv(&["-f", "connect"]), b"NOOP\r\n");
        assert_eq!(out, "500 5.3.0 Error: command failed\r\n250 2.0.0 Ok\r\n");
        assert_eq!(step, Step::Read);
        let (out, step) = run(
            &mut conv(&["-Q", "rcpt"]),
            b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nNOOP\r\n",
        );
        assert_eq!(
            out,
            format!("{GREET}250 2.1.0 Ok\r\n421 4.0.0 Server closing connection\r\n")
        );
        assert_eq!(step, Step::Close);
        let (out, step) = run(
            &mut conv(&["-q", "data"]),
            b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n",
        );
        assert_eq!(out, format!("{GREET}250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"));
        assert_eq!(step, Step::Close);
        let (out, step) = run(&mut conv(&["-q", "connect"]), b"NOOP\r\n");
        assert_eq!((out.as_str(), step), ("", Step::Close));
        // -q beats -Q beats -f beats -r.
        let (out, step) = run(&mut conv(&["-r", "noop", "-f", "noop"]), b"NOOP\r\n");
        assert_eq!(
            (out, step),
            (
                format!("{GREET}500 5.3.0 Error: command failed\r\n"),
                Step::Read
            )
        );
        let (_, step) = run(&mut conv(&["-Q", "noop", "-q", "noop"]), b"NOOP\r\n");
        assert_eq!(step, Step::Close);
        // -f quit keeps the connection.
        let (out, step) = run(&mut conv(&["-f", "quit"]), b"QUIT\r\n");
        assert_eq!(
            (out, step),
            (
                format!("{GREET}500 5.3.0 Error: command failed\r\n"),
                Step::Read
            )
        );
    }

    #[test]
    fn arguments_become_printable_and_nul_ends_the_line() {
        let mut c = conv(&["-d", "x"]);
        let (out, _) = run(
            &mut c,
            b"EHLO  \tcl\xc3\xa9ent \r\nMAIL FROM:<a\x01b>\r\nRCPT TO:<x\0y>\r\nDATA\r\n.\r\nNO\0OP\r\n",
        );
        assert!(
            out.ends_with("250 2.0.0 Ok\r\n500 5.5.1 Error: unknown command\r\n"),
            "{out}"
        );
        let rec = c.dump.as_ref().expect("dump").records.borrow()[0].clone();
        let rec = String::from_utf8(rec).expect("utf8");
        assert!(rec.contains("X-Helo-Args: ?cl??ent \n"), "{rec}");
        assert!(rec.contains("X-Mail-Args: <a?b>\n"), "{rec}");
        assert!(rec.contains("X-Rcpt-Args: <x\n"), "{rec}");
    }

    #[test]
    fn hello_and_rset_abort_the_transaction() {
        for abort in ["RSET", "HELO x", "EHLO x"] {
            let input =
                format!("MAIL FROM:<a>\r\nRCPT TO:<b>\r\n{abort}\r\nDATA\r\nRCPT TO:<b>\r\n");
            let out = replies(&["-d", "x"], &input);
            assert!(
                out.ends_with(
                    "503 5.5.1 Error: need RCPT command\r\n503 5.5.1 Error: need MAIL command\r\n"
                ),
                "{abort}: {out}"
            );
        }
    }

    #[test]
    fn dump_record_is_postfix_format() {
        let mut c = conv(&[
            "-d",
            "x",
            "-S",
            r"START\tX\\n\101\n",
            "-h",
            "sinkhost.example",
        ]);
        let (out, step) = run(
            &mut c,
            b"EHLO   client.example  \r\nMAIL FROM:<a@b> BODY=8BITMIME\r\nRCPT TO:<x@y>\r\n\
RCPT TO:<z@y> NOTIFY=NEVER\r\nDATA\r\nSubject: hi\r\n\r\n..dot\r\nbare\rcr\r\n.\r\n",
        );
        assert!(out.ends_with("250 2.0.0 Ok\r\n"));
        assert_eq!(step, Step::Read);
        let rec = c.dump.as_ref().expect("dump").records.borrow()[0].clone();
        let want = format!(
            "START\tX\\nA\nX-Client-Addr: 127.0.0.1\nX-Client-Proto: ESMTP\nX-Helo-Args: client.example  \n\
X-Mail-Args: <a@b> BODY=8BITMIME\nX-Rcpt-Args: <x@y>\nX-Rcpt-Args: <z@y> NOTIFY=NEVER\n\
Received: from client.example   ([127.0.0.1])\n\tby sinkhost.example (smtp-sink) with ESMTP id 1234abcd;\n\t{}\n\
Subject: hi\n\n.dot\nbarecr\n\n",
            smtp_proto::time::mail_date(0)
        );
        assert_eq!(String::from_utf8_lossy(&rec), want);
    }

    #[test]
    fn dump_write_error_gives_451_instead_of_250() {
        let mut c = conv(&["-d", "x"]);
        c.dump.as_mut().expect("dump").fail_writes = true;
        let (out, _) = run(
            &mut c,
            b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\nx\r\n.\r\nMAIL FROM:<a>\r\n",
        );
        assert!(
            out.ends_with("451 4.3.0 Error: dump file write failed\r\n250 2.1.0 Ok\r\n"),
            "{out}"
        );
        assert!(c.dump.as_ref().expect("dump").records.borrow().is_empty());
    }

    #[test]
    fn a_delay_holds_back_later_pipelined_commands() {
        let mut c = conv(&["-W", "rcpt:1"]);
        let (out, step) = run(
            &mut c,
            b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nRCPT TO:<c>\r\nNOOP\r\n",
        );
        assert_eq!(out, format!("{GREET}250 2.1.0 Ok\r\n"));
        assert_eq!(step, Step::Delay(Duration::from_secs(1)));
        // The shell waits, then resumes and goes on with the buffer.
        let mut rest = BytesMut::from(&b"RCPT TO:<c>\r\nNOOP\r\n"[..]);
        assert_eq!(c.resume(0), Step::Read);
        assert_eq!(c.input(&mut rest, 0), Step::Delay(Duration::from_secs(1)));
        assert_eq!(c.resume(0), Step::Read);
        assert_eq!(c.input(&mut rest, 0), Step::Read);
        assert_eq!(
            &c.output().split()[..],
            b"250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok\r\n"
        );
    }

    #[test]
    fn delayed_greeting_quit_and_abort_steps() {
        let mut c = conv(&["-W", "connect:2"]);
        assert_eq!(c.start(0), Step::Delay(Duration::from_secs(2)));
        assert!(c.output().is_empty());
        assert_eq!(c.resume(0), Step::Read);
        assert_eq!(&c.output().split()[..], GREET.as_bytes());
        let mut c = conv(&["-W", "quit:1"]);
        let (_, step) = run(&mut c, b"QUIT\r\n");
        assert_eq!(step, Step::Delay(Duration::from_secs(1)));
        assert_eq!(c.resume(0), Step::Close);
        let mut c = conv(&["-A", "3"]);
        let (out, step) = run(
            &mut c,
            b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\nx\r\n.\r\n",
        );
        assert!(out.ends_with("354 End data with <CR><LF>.<CR><LF>\r\n"));
        assert_eq!(step, Step::Abort(Duration::from_secs(3)));
        c.abort_data();
        assert_eq!(&c.output().split()[..], b"550 This violates SMTP\r\n");
        let mut c = conv(&["-H", "2"]);
        let (_, step) = run(
            &mut c,
            b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\nx\r\n.\r\n",
        );
        assert_eq!(step, Step::Stall(Duration::from_secs(2)));
    }

    /// `-M 1` shared by two sessions: the second message to end finds
    /// the place taken and is neither answered, dumped nor counted.
    #[test]
    fn a_message_past_max_messages_is_not_answered_dumped_or_counted() {
        let cfg = config(&["-M", "1", "-d", "/nonexistent/m."]);
        let stats = Arc::new(Stats::with_output(
            false,
            cfg.max_messages,
            0,
            Box::new(io::sink()),
        ));
        let dump = MemDump::default();
        let records = dump.records.clone();
        let mut first = conv_on(&["-M", "1", "-d", "/nonexistent/m."], &stats, dump.clone());
        let mut second = conv_on(&["-M", "1", "-d", "/nonexistent/m."], &stats, dump);
        let txn = b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\nx\r\n.\r\n";
        let (out, step) = run(&mut first, txn);
        assert!(
            out.ends_with("354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok\r\n"),
            "{out}"
        );
        assert_eq!(step, Step::Exit);
        let (out, step) = run(&mut second, txn);
        assert!(
            out.ends_with("354 End data with <CR><LF>.<CR><LF>\r\n"),
            "{out}"
        );
        assert_eq!(step, Step::Exit);
        assert_eq!(records.borrow().len(), 1);
        let snap = stats.snapshot(&crate::policy::Policy::default());
        assert_eq!((snap.messages.received, snap.messages.accepted), (1, 1));
    }

    #[test]
    fn max_messages_exits_after_the_final_reply() {
        let mut c = conv(&["-M", "1"]);
        let (out, step) = run(
            &mut c,
            b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n.\r\nNOOP\r\n",
        );
        assert!(
            out.ends_with("354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok\r\n"),
            "{out}"
        );
        assert_eq!(step, Step::Exit);
    }

    /// The syslog lines a test conversation logged.
    type SyslogLines = Arc<std::sync::Mutex<Vec<Vec<u8>>>>;

    /// A conversation with these options whose syslog lines are collected.
    fn with_syslog(args: &[&str]) -> (Conversation<MemDump>, SyslogLines) {
        let lines = Arc::new(std::sync::Mutex::new(Vec::<Vec<u8>>::new()));
        let sink = lines.clone();
        let stats = Arc::new(Stats::with_output(false, 0, 0, Box::new(io::sink())));
        let hook: SyslogHook =
            Arc::new(move |l: &[u8]| sink.lock().expect("lock").push(l.to_vec()));
        let c = Conversation::new(
            config(args),
            stats,
            ClientAddr::local(),
            None,
            SmallRng::seed_from_u64(1),
            Some(hook),
        );
        (c, lines)
    }

    #[test]
    fn syslog_hook_gets_the_command_as_typed_and_at_most_100_bytes_of_args() {
        let (mut c, lines) = with_syslog(&["-s", "connect,mail", "-s", "."]);
        let long = format!(
            "MaIl FROM:<{}>\r\nRCPT TO:<b>\r\nDATA\r\n.\r\nNOOP\r\n",
            "x".repeat(200)
        );
        let _ = run(&mut c, long.as_bytes());
        let got = lines.lock().expect("lock").clone();
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0], b"connect ");
        assert_eq!(got[1].len(), "MaIl ".len() + 100);
        assert!(got[1].starts_with(b"MaIl FROM:<xxx"));
        assert_eq!(got[2], b". ");
    }

    #[test]
    fn data_may_arrive_a_byte_at_a_time() {
        for dumping in [false, true] {
            let args: &[&str] = if dumping { &["-d", "x"] } else { &[] };
            let mut c = conv(args);
            let _ = c.start(0);
            let input = b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n.x\r\n\r\n.\r\nNOOP\r\n";
            let mut buf = BytesMut::new();
            for b in input {
                buf.extend_from_slice(&[*b]);
                assert_eq!(c.input(&mut buf, 0), Step::Read);
            }
            let out = c.output().split();
            assert!(out.ends_with(b"<CR><LF>\r\n250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n"));
            if dumping {
                let rec = c.dump.as_ref().expect("dump").records.borrow()[0].clone();
                assert!(
                    rec.ends_with(b"\nx\n\n\n"),
                    "{:?}",
                    String::from_utf8_lossy(&rec)
                );
            }
        }
    }

    /// Runs `input` split into pieces at `cuts`; returns replies, the
    /// dumped records and whether the session was closed.
    fn run_split(args: &[&str], input: &[u8], cuts: &[usize]) -> (Vec<u8>, Vec<Vec<u8>>, bool) {
        run_split_counted(args, input, cuts).0
    }

    /// [`run_split`], and the counters once the conversation is dropped.
    #[allow(clippy::type_complexity)]
    fn run_split_counted(
        args: &[&str],
        input: &[u8],
        cuts: &[usize],
    ) -> ((Vec<u8>, Vec<Vec<u8>>, bool), Counters) {
        let mut c = conv(args);
        let mut out = Vec::new();
        let mut step = c.start(0);
        out.extend_from_slice(&c.output().split());
        let mut buf = BytesMut::new();
        let mut points: Vec<usize> = cuts.iter().map(|p| p % (input.len() + 1)).collect();
        points.push(input.len());
        points.sort_unstable();
        let mut from = 0;
        for p in points {
            if step != Step::Read {
                break;
            }
            buf.extend_from_slice(&input[from..p]);
            from = p;
            step = c.input(&mut buf, 0);
            out.extend_from_slice(&c.output().split());
        }
        let records = c
            .dump
            .as_ref()
            .map(|d| d.records.borrow().clone())
            .unwrap_or_default();
        let (stats, policy) = (c.stats.clone(), c.cfg.policy.clone());
        drop(c);
        ((out, records, step != Step::Read), stats.snapshot(&policy))
    }

    const MAIL_OK: &str = "250 2.1.0 Ok\r\n";
    const RCPT_OK: &str = "250 2.1.5 Ok\r\n";
    const OK: &str = "250 2.0.0 Ok\r\n";
    const NEED_MAIL: &str = "503 5.5.1 Error: need MAIL command\r\n";
    const NEED_RCPT: &str = "503 5.5.1 Error: need RCPT command\r\n";
    const SYNTAX: &str = "501 5.5.4 Syntax: BDAT size [LAST]\r\n";
    const TOO_BIG: &str = "552 5.3.4 Message size exceeds fixed limit\r\n";
    const DATA_GO: &str = "354 End data with <CR><LF>.<CR><LF>\r\n";

    /// The records a conversation has committed so far.
    fn records(c: &Conversation<MemDump>) -> Vec<Vec<u8>> {
        c.dump
            .as_ref()
            .map(|d| d.records.borrow().clone())
            .unwrap_or_default()
    }

    #[test]
    fn bdat_sequencing_and_replies() {
        let ch: &[&str] = &["--chunking"];
        // (options, input, replies after the greeting, last step)
        let table: &[(&[&str], &str, String, Step)] = &[
            // Without MAIL or RCPT the chunk is refused but still read: the
            // "NOOP\r\n" inside it is not a command.
            (
                ch,
                "BDAT 6\r\nNOOP\r\nNOOP\r\n",
                format!("{NEED_MAIL}{OK}"),
                Step::Read,
            ),
            (
                ch,
                "MAIL FROM:<a>\r\nBDAT 6 LAST\r\nQUIT\r\nNOOP\r\n",
                format!("{MAIL_OK}{NEED_RCPT}{OK}"),
                Step::Read,
            ),
            // Chunks, an empty one, then LAST; the transaction is then over.
            (
                ch,
                "MAIL FROM:<a>\r\nRCPT TO:<b>\r\nBDAT 3\r\nabcBDAT 0\r\nBDAT 2 LAST\r\nde\
                 RCPT TO:<b>\r\nBDAT 1\r\nx",
                format!(
                    "{MAIL_OK}{RCPT_OK}250 2.0.0 Ok: 3 bytes\r\n250 2.0.0 Ok: 0 bytes\r\n{OK}\
                     {NEED_MAIL}{NEED_MAIL}"
                ),
                Step::Read,
            ),
            (
                ch,
                "MAIL FROM:<a>\r\nRCPT TO:<b>\r\nBDAT 0 LAST\r\nNOOP\r\n",
                format!("{MAIL_OK}{RCPT_OK}{OK}{OK}"),
                Step::Read,
            ),
            // LAST in any case, blanks around the arguments.
            (
                ch,
                "MAIL FROM:<a>\r\nRCPT TO:<b>\r\nbdat \t2  lAsT \r\nxy",
                format!("{MAIL_OK}{RCPT_OK}{OK}"),
                Step::Read,
            ),
            // DATA inside a BDAT transaction is refused; the transaction
            // goes on, and DATA works again in the next one.
            (
                ch,
                "MAIL FROM:<a>\r\nRCPT TO:<b>\r\nBDAT 1\r\nxDATA\r\nBDAT 1 LAST\r\ny\
                 MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n.\r\n",
                format!(
                    "{MAIL_OK}{RCPT_OK}250 2.0.0 Ok: 1 bytes\r\n503 5.5.1 Error: DATA after BDAT\r\n\
                     {OK}{MAIL_OK}{RCPT_OK}{DATA_GO}{OK}"
                ),
                Step::Read,
            ),
            // RSET ends the transaction half-way.
            (
                ch,
                "MAIL FROM:<a>\r\nRCPT TO:<b>\r\nBDAT 1\r\nxRSET\r\nBDAT 1 LAST\r\ny",
                format!("{MAIL_OK}{RCPT_OK}250 2.0.0 Ok: 1 bytes\r\n250 2.1.0 Ok\r\n{NEED_MAIL}"),
                Step::Read,
            ),
            // A chunk that is not complete yet is not answered yet.
            (
                ch,
                "MAIL FROM:<a>\r\nRCPT TO:<b>\r\nBDAT 10 LAST\r\n123456789",
                format!("{MAIL_OK}{RCPT_OK}"),
                Step::Read,
            ),
            // Malformed arguments: 501, and the session ends there.
            (ch, "BDAT\r\nNOOP\r\n", SYNTAX.to_owned(), Step::Close),
            (ch, "BDAT x\r\nNOOP\r\n", SYNTAX.to_owned(), Step::Close),
            (ch, "BDAT +1\r\n", SYNTAX.to_owned(), Step::Close),
            (ch, "BDAT -1\r\n", SYNTAX.to_owned(), Step::Close),
            (ch, "BDAT 1 FIRST\r\n", SYNTAX.to_owned(), Step::Close),
            (ch, "BDAT 1 LAST x\r\n", SYNTAX.to_owned(), Step::Close),
            (
                ch,
                "BDAT 123456789012345678901234567890\r\n",
                SYNTAX.to_owned(),
                Step::Close,
            ),
            // Without --chunking BDAT is unknown, and what follows is read
            // as commands, as today.
            (
                &[],
                "MAIL FROM:<a>\r\nRCPT TO:<b>\r\nBDAT 6 LAST\r\nNOOP\r\n",
                format!("{MAIL_OK}{RCPT_OK}500 5.5.1 Error: unknown command\r\n{OK}"),
                Step::Read,
            ),
            // -f/-r: the chunk is read and refused, with no side effect:
            // the transaction is still open for DATA.
            (
                &["--chunking", "-f", "bdat"],
                "MAIL FROM:<a>\r\nRCPT TO:<b>\r\nBDAT 6 LAST\r\nNOOP\r\nDATA\r\n.\r\n",
                format!("{MAIL_OK}{RCPT_OK}500 5.3.0 Error: command failed\r\n{DATA_GO}{OK}"),
                Step::Read,
            ),
            (
                &["--chunking", "-r", "BDAT", "-b", "451 4.3.2 later"],
                "BDAT 2\r\nxy",
                "451 4.3.2 later\r\n".to_owned(),
                Step::Read,
            ),
            // -q and -Q act at once, without waiting for the chunk.
            (
                &["--chunking", "-q", "bdat"],
                "MAIL FROM:<a>\r\nRCPT TO:<b>\r\nBDAT 100\r\n",
                format!("{MAIL_OK}{RCPT_OK}"),
                Step::Close,
            ),
            (
                &["--chunking", "-Q", "bdat"],
                "BDAT 100\r\n",
                "421 4.0.0 Server closing connection\r\n".to_owned(),
                Step::Close,
            ),
            // The LAST chunk is answered as "." is, "." rules included.
            (
                &["--chunking", "-f", "."],
                "MAIL FROM:<a>\r\nRCPT TO:<b>\r\nBDAT 1\r\nxBDAT 1 LAST\r\ny",
                format!("{MAIL_OK}{RCPT_OK}250 2.0.0 Ok: 1 bytes\r\n500 5.3.0 Error: command failed\r\n"),
                Step::Read,
            ),
            (
                &["--chunking", "-q", "."],
                "MAIL FROM:<a>\r\nRCPT TO:<b>\r\nBDAT 1 LAST\r\nyNOOP\r\n",
                format!("{MAIL_OK}{RCPT_OK}"),
                Step::Close,
            ),
        ];
        for (args, input, want, step) in table {
            let (out, got_step) = run(&mut conv(args), input.as_bytes());
            assert_eq!(
                (out.as_str(), got_step),
                (format!("{GREET}{want}").as_str(), *step),
                "{args:?} {input:?}"
            );
        }
    }

    #[test]
    fn bdat_is_in_data_until_its_chunk_is_read() {
        let mut c = conv(&["--chunking"]);
        let (_, step) = run(&mut c, b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nBDAT 5 LAST\r\nab");
        assert_eq!(step, Step::Read);
        assert!(c.in_data(), "the shell must read 64 KiB at a time");
        let mut buf = BytesMut::from(&b"cde"[..]);
        assert_eq!(c.input(&mut buf, 0), Step::Read);
        assert!(!c.in_data());
        assert_eq!(&c.output().split()[..], OK.as_bytes());
    }

    #[test]
    fn a_huge_chunk_is_streamed_not_buffered() {
        // 1 GiB announced, fed in 64 KiB reads: each read is used up at
        // once, so the buffer never grows past one read.
        let mut c = conv(&["--chunking", "--size", "2000000000"]);
        let (_, step) = run(
            &mut c,
            b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nBDAT 1073741824 LAST\r\n",
        );
        assert_eq!(step, Step::Read);
        let piece = vec![b'x'; 64 * 1024];
        let mut buf = BytesMut::with_capacity(piece.len());
        for _ in 0..(1 << 14) {
            assert!(c.in_data());
            buf.extend_from_slice(&piece);
            assert_eq!(c.input(&mut buf, 0), Step::Read);
            assert!(buf.is_empty());
            assert!(buf.capacity() <= 2 * piece.len(), "{}", buf.capacity());
        }
        assert!(!c.in_data());
        assert_eq!(&c.output().split()[..], OK.as_bytes());
    }

    #[test]
    fn bdat_delays_abort_and_stall() {
        // -W bdat: the reply waits, after the chunk has been read.
        let mut c = conv(&["--chunking", "-W", "bdat:2"]);
        let (out, step) = run(
            &mut c,
            b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nBDAT 3\r\nabcNOOP\r\n",
        );
        assert_eq!(out, format!("{GREET}{MAIL_OK}{RCPT_OK}"));
        assert_eq!(step, Step::Delay(Duration::from_secs(2)));
        assert_eq!(c.resume(0), Step::Read);
        let mut rest = BytesMut::from(&b"NOOP\r\n"[..]);
        assert_eq!(c.input(&mut rest, 0), Step::Read);
        assert_eq!(
            &c.output().split()[..],
            format!("250 2.0.0 Ok: 3 bytes\r\n{OK}").as_bytes()
        );
        // A delayed LAST chunk, then a delayed "." reply, then -M's exit.
        let mut c = conv(&["--chunking", "-W", "bdat:1", "-W", ".:3", "-M", "1"]);
        let (_, step) = run(&mut c, b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nBDAT 0 LAST\r\n");
        assert_eq!(step, Step::Delay(Duration::from_secs(1)));
        assert_eq!(c.resume(0), Step::Delay(Duration::from_secs(3)));
        assert!(c.output().is_empty());
        assert_eq!(c.resume(0), Step::Exit);
        assert_eq!(&c.output().split()[..], OK.as_bytes());
        // -A acts at the first accepted chunk, before reading it.
        let mut c = conv(&["--chunking", "-A", "3", "-d", "x"]);
        let (out, step) = run(
            &mut c,
            b"BDAT 1\r\nxMAIL FROM:<a>\r\nRCPT TO:<b>\r\nBDAT 2\r\nxy",
        );
        assert_eq!(out, format!("{GREET}{NEED_MAIL}{MAIL_OK}{RCPT_OK}"));
        assert_eq!(step, Step::Abort(Duration::from_secs(3)));
        c.abort_data();
        assert_eq!(&c.output().split()[..], b"550 This violates SMTP\r\n");
        c.close();
        assert!(records(&c).is_empty());
        // -H stalls before the first chunk's data, not before later ones.
        let mut c = conv(&["--chunking", "-H", "2"]);
        let (out, step) = run(&mut c, b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nBDAT 2\r\nxy");
        assert_eq!(out, format!("{GREET}{MAIL_OK}{RCPT_OK}"));
        assert_eq!(step, Step::Stall(Duration::from_secs(2)));
        let mut rest = BytesMut::from(&b"xyBDAT 1 LAST\r\nz"[..]);
        assert_eq!(c.input(&mut rest, 0), Step::Read);
        assert_eq!(
            &c.output().split()[..],
            format!("250 2.0.0 Ok: 2 bytes\r\n{OK}").as_bytes()
        );
    }

    #[test]
    fn bdat_last_ends_the_message_like_end_of_data() {
        let mut c = conv(&["--chunking", "-M", "1", "-d", "x"]);
        let (out, step) = run(
            &mut c,
            b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nBDAT 3 LAST\r\nabcNOOP\r\n",
        );
        assert_eq!(out, format!("{GREET}{MAIL_OK}{RCPT_OK}{OK}"));
        assert_eq!(step, Step::Exit);
        assert_eq!(records(&c).len(), 1);
        // A failed dump: 451 at the end, as for DATA.
        let mut c = conv(&["--chunking", "-d", "x"]);
        c.dump.as_mut().expect("dump").fail_writes = true;
        let (out, _) = run(
            &mut c,
            b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nBDAT 1\r\nxBDAT 1 LAST\r\ny",
        );
        assert!(
            out.ends_with("250 2.0.0 Ok: 1 bytes\r\n451 4.3.0 Error: dump file write failed\r\n"),
            "{out}"
        );
    }

    #[test]
    fn a_bdat_transaction_aborted_before_last_leaves_no_record() {
        for (input, close) in [
            ("BDAT 3\r\nabcRSET\r\n", false),
            ("BDAT 3\r\nabcEHLO x\r\n", false),
            ("BDAT 3\r\nabcBDAT 5 LAST\r\nab", true),
            ("BDAT 3\r\nab", true),
        ] {
            for dump in ["-d", "-D"] {
                let mut c = conv(&["--chunking", dump, "x"]);
                let input = format!("MAIL FROM:<a>\r\nRCPT TO:<b>\r\n{input}");
                let _ = run(&mut c, input.as_bytes());
                if close {
                    c.close();
                }
                assert!(records(&c).is_empty(), "{dump} {input:?}");
                assert!(c.dump.as_ref().is_some_and(|d| d.open.is_none()));
                if close {
                    continue;
                }
                // The next transaction is dumped whole.
                let _ = run(&mut c, b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nBDAT 2 LAST\r\nok");
                let recs = records(&c);
                assert_eq!(recs.len(), 1);
                assert!(
                    recs[0].ends_with(b")\nok\n"),
                    "{:?}",
                    String::from_utf8_lossy(&recs[0])
                );
            }
        }
    }

    #[test]
    fn lmtp_bdat_last_is_answered_once_per_recipient() {
        let lmtp_ok = "250 2.2.0 Ok\r\n";
        let input = "LHLO x\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nRCPT TO:<c>\r\nRCPT TO:<d>\r\n\
                     BDAT 2\r\nxyBDAT 1 LAST\r\nz";
        let out = replies(&["-L", "--chunking"], input);
        assert!(
            out.ends_with(&format!(
                "{RCPT_OK}250 2.0.0 Ok: 2 bytes\r\n{}",
                lmtp_ok.repeat(3)
            )),
            "{out}"
        );
        let out = replies(&["-L", "--chunking", "--size", "2"], input);
        assert!(
            out.ends_with(&format!("250 2.0.0 Ok: 2 bytes\r\n{}", TOO_BIG.repeat(3))),
            "{out}"
        );
        let out = replies(&["-L", "--chunking", "-r", "."], input);
        assert!(
            out.ends_with(&"450 4.3.0 Error: command failed\r\n".repeat(3)),
            "{out}"
        );
        // A refused LAST chunk is one reply.
        let out = replies(&["-L", "--chunking", "-f", "bdat"], input);
        assert!(
            out.ends_with(&format!(
                "{RCPT_OK}{}",
                "500 5.3.0 Error: command failed\r\n".repeat(2)
            )),
            "{out}"
        );
    }

    /// A pipelined batch with chunks that look like commands and end
    /// markers, a chunk split by a CR, a refused chunk, and two messages.
    fn bdat_batch() -> Vec<u8> {
        let mut input = b"EHLO x\r\nBDAT 4\r\nRSETMAIL FROM:<a>\r\nRCPT TO:<b>\r\n".to_vec();
        for (chunk, last) in [
            (&b"BDAT 3\r\n\r\n.\r\nQUIT\r\n\r"[..], false),
            (b"", false),
            (b"\nline\r\n..two dots\r\n", false),
            (b"end\r\n", true),
        ] {
            let tail = if last { " LAST" } else { "" };
            input.extend_from_slice(format!("BDAT {}{tail}\r\n", chunk.len()).as_bytes());
            input.extend_from_slice(chunk);
        }
        input.extend_from_slice(b"MAIL FROM:<c>\r\nRCPT TO:<d>\r\nBDAT 2 LAST\r\nokNOOP\r\nQU");
        input
    }

    #[test]
    fn bdat_framing_does_not_depend_on_where_reads_split() {
        let input = bdat_batch();
        for args in [
            &["--chunking", "-d", "x"][..],
            &["--chunking", "-L", "-D", "x", "--size", "40"],
        ] {
            let whole = run_split_counted(args, &input, &[]);
            for cut in 0..=input.len() {
                assert_eq!(
                    run_split_counted(args, &input, &[cut]),
                    whole,
                    "{args:?} cut {cut}"
                );
            }
            let every: Vec<usize> = (0..input.len()).collect();
            assert_eq!(
                run_split_counted(args, &input, &every),
                whole,
                "{args:?} byte by byte"
            );
        }
        let (out, records, closed) = run_split(&["--chunking", "-d", "x"], &input, &[]);
        let want = [
            GREET.to_owned(),
            "250-smtp-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n\
             250-XCLIENT NAME HELO\r\n250-XFORWARD NAME ADDR PROTO HELO\r\n\
             250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250-CHUNKING\r\n250 \r\n"
                .to_owned(),
            NEED_MAIL.to_owned(),
            MAIL_OK.to_owned(),
            RCPT_OK.to_owned(),
            "250 2.0.0 Ok: 20 bytes\r\n250 2.0.0 Ok: 0 bytes\r\n250 2.0.0 Ok: 19 bytes\r\n"
                .to_owned(),
            OK.to_owned(),
            MAIL_OK.to_owned(),
            RCPT_OK.to_owned(),
            OK.to_owned(),
            OK.to_owned(),
        ]
        .concat();
        assert_eq!(String::from_utf8_lossy(&out), want);
        assert!(!closed);
        assert_eq!(records.len(), 2);
        let rec = String::from_utf8_lossy(&records[0]).into_owned();
        assert!(
            rec.ends_with("\nBDAT 3\n\n.\nQUIT\n\nline\n..two dots\nend\n\n"),
            "{rec}"
        );
        assert!(records[1].ends_with(b"\nok\n"));
    }

    #[test]
    fn a_message_dumps_the_same_by_data_and_by_bdat() {
        let message: &[u8] =
            b"Subject: hi\r\n\r\n.leading dot\r\n..two\r\n.\r\nbare\rcr and bare\nlf\r\n\r\n.x\r\nlast\r\n";
        let stuffed = smtp_proto::stuff(message);
        let head = b"EHLO c\r\nMAIL FROM:<a> SMTPUTF8\r\nRCPT TO:<b>\r\n";
        let by_data = [&head[..], b"DATA\r\n", &stuffed].concat();
        let cut = 17;
        let by_bdat = [
            &head[..],
            format!("BDAT {cut}\r\n").as_bytes(),
            &message[..cut],
            format!("BDAT {} LAST\r\n", message.len() - cut).as_bytes(),
            &message[cut..],
        ]
        .concat();
        for extra in [
            &[][..],
            &["-L"],
            &["--size", "10000"],
            &["--smtputf8"],
            &["-S", "START\\n"],
        ] {
            for dump in ["-d", "-D"] {
                let args: Vec<&str> = ["--chunking", dump, "x"]
                    .iter()
                    .chain(extra)
                    .copied()
                    .collect();
                let (out_d, rec_d, _) = run_split(&args, &by_data, &[]);
                let (out_b, rec_b, _) = run_split(&args, &by_bdat, &[]);
                assert_eq!(
                    rec_d.len(),
                    1,
                    "{args:?}: {}",
                    String::from_utf8_lossy(&out_d)
                );
                assert_eq!(
                    rec_b.len(),
                    1,
                    "{args:?}: {}",
                    String::from_utf8_lossy(&out_b)
                );
                assert_eq!(
                    String::from_utf8_lossy(&rec_d[0]),
                    String::from_utf8_lossy(&rec_b[0]),
                    "{args:?}"
                );
                assert!(rec_d[0].ends_with(
                    b"\nSubject: hi\n\n.leading dot\n..two\n.\nbarecr and bare\nlf\n\n.x\nlast\n\n"
                ));
            }
        }
    }

    #[test]
    fn size_limit_on_mail_and_on_content() {
        let size: &[&str] = &["--size", "20"];
        // MAIL SIZE= over the limit: 552 and no transaction.
        for (param, want) in [
            ("SIZE=21", TOO_BIG),
            ("size=123456789012345678901234567890", TOO_BIG),
            ("SIZE=20", MAIL_OK),
            ("SIZE=", MAIL_OK),
            ("SIZE=x1", MAIL_OK),
            ("BODY=8BITMIME", MAIL_OK),
        ] {
            let input = format!("MAIL FROM:<a> {param}\r\nRCPT TO:<b>\r\n");
            let want_rcpt = if want == MAIL_OK { RCPT_OK } else { NEED_MAIL };
            assert_eq!(
                replies(size, &input),
                format!("{GREET}{want}{want_rcpt}"),
                "{param}"
            );
        }
        // Without --size, any SIZE= is fine, as today.
        assert_eq!(
            replies(&[], "MAIL FROM:<a> SIZE=999999999999\r\n"),
            format!("{GREET}{MAIL_OK}")
        );
        // Content: unstuffed, CRLFs included. 20 bytes pass even with
        // stuffed dots on the wire; 21 do not, by DATA or by BDAT.
        let twenty = "..x\r\n..x\r\n1234567890\r\n"; // 8 + 12 unstuffed, 22 sent
        let over = "1234567890123456789\r\n"; // 21
        let mt = "MAIL FROM:<a>\r\nRCPT TO:<b>\r\n";
        for (args, input, want) in [
            (
                size,
                format!("{mt}DATA\r\n{twenty}.\r\n"),
                format!("{DATA_GO}{OK}"),
            ),
            (
                size,
                format!("{mt}DATA\r\n{over}.\r\n"),
                format!("{DATA_GO}{TOO_BIG}"),
            ),
            (
                &["--size", "20", "--chunking"][..],
                format!("{mt}BDAT 10\r\n0123456789BDAT 10 LAST\r\n0123456789"),
                format!("250 2.0.0 Ok: 10 bytes\r\n{OK}"),
            ),
            (
                &["--size", "20", "--chunking"][..],
                format!("{mt}BDAT 10\r\n0123456789BDAT 11\r\n0123456789xBDAT 0 LAST\r\n"),
                format!("250 2.0.0 Ok: 10 bytes\r\n250 2.0.0 Ok: 11 bytes\r\n{TOO_BIG}"),
            ),
        ] {
            for dump in [false, true] {
                let mut args = args.to_vec();
                if dump {
                    args.extend(["-d", "x"]);
                }
                let mut c = conv(&args);
                let input = format!("{input}{mt}DATA\r\nsmall\r\n.\r\n");
                let (out, _) = run(&mut c, input.as_bytes());
                assert_eq!(
                    out,
                    format!("{GREET}{MAIL_OK}{RCPT_OK}{want}{MAIL_OK}{RCPT_OK}{DATA_GO}{OK}"),
                    "{args:?} {input:?}"
                );
                if dump {
                    // The oversized message leaves no record; the next is whole.
                    let recs = records(&c);
                    let n = if want.contains("552") { 1 } else { 2 };
                    assert_eq!(recs.len(), n, "{args:?}");
                    assert!(recs[n - 1].ends_with(b"\nsmall\n\n"));
                }
            }
        }
        // -M counts an oversized message: it arrived, whatever its reply.
        let mut c = conv(&["--size", "1", "-M", "1"]);
        let (out, step) = run(
            &mut c,
            b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\nxx\r\n.\r\n",
        );
        assert!(out.ends_with(TOO_BIG), "{out}");
        assert_eq!(step, Step::Exit);
    }

    #[test]
    fn smtputf8_keeps_utf8_addresses_in_the_dump() {
        let input = "EHLO x\r\nMAIL FROM:<us\u{e9}r@exa\u{308}mple.\u{4f8b}> SMTPUTF8\r\n\
                     RCPT TO:<\u{7528}\u{6237}@b\u{fc}cher.example>\r\nRCPT TO:<c\x01\u{85}>\r\n\
                     DATA\r\nSubject: \u{e9}t\u{e9}\r\n.\r\n";
        let rec = |args: &[&str], input: &str| {
            let mut c = conv(args);
            let (out, _) = run(&mut c, input.as_bytes());
            assert!(out.ends_with(OK), "{out}");
            String::from_utf8(records(&c)[0].clone()).expect("UTF-8 record")
        };
        let got = rec(&["--smtputf8", "-d", "x"], input);
        assert!(
            got.contains(
                "X-Mail-Args: <us\u{e9}r@exa\u{308}mple.\u{4f8b}> SMTPUTF8\n\
                 X-Rcpt-Args: <\u{7528}\u{6237}@b\u{fc}cher.example>\nX-Rcpt-Args: <c???>\n"
            ),
            "{got}"
        );
        assert!(got.ends_with("\nSubject: \u{e9}t\u{e9}\n\n"), "{got}");
        // Without the MAIL parameter, or without --smtputf8, Postfix's
        // printable() as today.
        for (args, input) in [
            (
                &["--smtputf8", "-d", "x"][..],
                input.replace(" SMTPUTF8", ""),
            ),
            (&["-d", "x"][..], input.to_owned()),
        ] {
            let got = rec(args, &input);
            assert!(got.contains("X-Mail-Args: <us??r@exa??mple.???>"), "{got}");
            assert!(
                got.contains("X-Rcpt-Args: <??????@b??cher.example>\n"),
                "{got}"
            );
        }
        let ehlo = replies(&["--smtputf8"], "EHLO x\r\n");
        assert!(
            ehlo.ends_with("250-DSN\r\n250-SMTPUTF8\r\n250 \r\n"),
            "{ehlo}"
        );
        let ehlo = replies(
            &["--smtputf8", "--chunking", "--size", "99", "-p"],
            "EHLO x\r\n",
        );
        assert!(
            ehlo.starts_with(&format!(
                "{GREET}250-smtp-sink\r\n250-SIZE 99\r\n250-8BITMIME\r\n"
            )),
            "{ehlo}"
        );
        assert!(
            ehlo.ends_with("250-DSN\r\n250-SMTPUTF8\r\n250-CHUNKING\r\n250 \r\n"),
            "{ehlo}"
        );
    }

    // ---- STARTTLS and AUTH (--starttls, --tls-on-connect, --auth-users) ----

    const READY: &str = "220 2.0.0 Ready to start TLS\r\n";
    const TLS_ACTIVE: &str = "503 5.5.1 Error: TLS already active\r\n";
    const IN_TXN: &str = "503 5.5.1 Error: MAIL transaction in progress\r\n";
    const AUTH_OK: &str = "235 2.7.0 Authentication successful\r\n";
    const AUTH_BAD: &str = "535 5.7.8 Authentication credentials invalid\r\n";
    const AUTH_B64: &str = "501 5.5.2 Cannot decode base64 response\r\n";
    const AUTH_ABORT: &str = "501 5.7.0 Authentication aborted\r\n";
    const AUTH_AGAIN: &str = "503 5.5.1 Error: already authenticated\r\n";
    const AUTH_TLS: &str =
        "538 5.7.11 Encryption required for requested authentication mechanism\r\n";
    const AUTH_REQ: &str = "530 5.7.0 Authentication required\r\n";
    const UNKNOWN: &str = "500 5.5.1 Error: unknown command\r\n";
    const ASK_USER: &str = "334 VXNlcm5hbWU6\r\n";
    const ASK_PASS: &str = "334 UGFzc3dvcmQ6\r\n";
    /// base64 of "\0alice\0secret", "\0alice\0wrong", "alice", "secret".
    const PLAIN_OK: &str = "AGFsaWNlAHNlY3JldA==";
    const PLAIN_BAD: &str = "AGFsaWNlAHdyb25n";
    const ALICE: &str = "YWxpY2U=";
    const SECRET: &str = "c2VjcmV0";

    /// A users file for `--auth-users` (read when the config is built).
    fn users_file() -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().expect("users file");
        std::fs::write(f.path(), "alice:secret\nbob:b:ob\n").expect("write users");
        f
    }

    /// A conversation with real AUTH and `args`.
    fn auth_conv(args: &[&str]) -> Conversation<MemDump> {
        let users = users_file();
        let path = users.path().to_str().expect("utf-8 path").to_owned();
        let mut all = vec!["--auth-users", path.as_str()];
        all.extend_from_slice(args);
        conv(&all)
    }

    /// The greeting, then TLS as `--tls-on-connect` has it, then `input`.
    fn run_tls(c: &mut Conversation<MemDump>, input: &str) -> (String, Step) {
        c.tls_started("TLSv1.3", "TLS13_AES_128_GCM_SHA256");
        run(c, input.as_bytes())
    }

    /// A conversation of `args` counting into `stats`, with `dump` as its
    /// dump (when `-d`/`-D` is given).
    fn conv_on(args: &[&str], stats: &Arc<Stats>, dump: MemDump) -> Conversation<MemDump> {
        let cfg = config(args);
        let dump = cfg.dump.as_ref().map(|_| dump);
        Conversation::new(
            cfg,
            stats.clone(),
            ClientAddr::local(),
            dump,
            SmallRng::seed_from_u64(3),
            None,
        )
    }

    /// Runs a session as the shell does (delays and stalls waited out, `-A`
    /// answered) until the input is used up or the session ends.
    fn drive(c: &mut Conversation<MemDump>, input: &[u8]) -> String {
        let mut buf = BytesMut::from(input);
        let mut fed = false;
        let mut step = c.start(0);
        loop {
            step = match step {
                Step::Read if fed => break,
                Step::Read | Step::Stall(_) => {
                    fed = true;
                    c.input(&mut buf, 0)
                }
                Step::Delay(_) => match c.resume(0) {
                    Step::Read => {
                        fed = true;
                        c.input(&mut buf, 0)
                    }
                    other => other,
                },
                Step::Abort(_) => {
                    c.abort_data();
                    break;
                }
                Step::Close | Step::Exit | Step::StartTls => break,
            };
        }
        String::from_utf8_lossy(&c.output().split()).into_owned()
    }

    /// Sessions of `args`, one per input, then the counters.
    fn counted(args: &[&str], sessions: &[&[u8]]) -> Counters {
        let stats = Arc::new(Stats::with_output(false, 0, 0, Box::new(io::sink())));
        for input in sessions {
            drive(&mut conv_on(args, &stats, MemDump::default()), input);
        }
        stats.snapshot(&config(args).policy)
    }

    /// Replies of one command as [2xx, 3xx, 4xx, 5xx].
    fn classes(c: &Counters, name: &str) -> [u64; 4] {
        let Classes {
            c2xx,
            c3xx,
            c4xx,
            c5xx,
        } = *c.replies.get(name).expect(name);
        [c2xx, c3xx, c4xx, c5xx]
    }

    fn command_count(c: &Counters, name: &str) -> u64 {
        *c.commands.get(name).expect(name)
    }

    #[test]
    fn counts_commands_replies_messages_and_content_bytes() {
        let c = counted(
            &["-d", "x"],
            &[
                b"EHLO x\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n..x\r\nhi\r\n.\r\n\
                EXPN y\r\n\r\nNOOP\r\n.\r\nQUIT\r\n",
            ],
        );
        for (name, n, replies) in [
            ("connect", 1, [1, 0, 0, 0]),
            // A multiline reply counts once.
            ("ehlo", 1, [1, 0, 0, 0]),
            ("mail", 1, [1, 0, 0, 0]),
            ("rcpt", 1, [1, 0, 0, 0]),
            ("data", 1, [0, 1, 0, 0]),
            // The end of data, and a "." typed outside DATA.
            (".", 2, [2, 0, 0, 0]),
            ("noop", 1, [1, 0, 0, 0]),
            ("quit", 1, [1, 0, 0, 0]),
            ("unknown", 2, [0, 0, 0, 2]),
            ("helo", 0, [0, 0, 0, 0]),
            ("bdat", 0, [0, 0, 0, 0]),
        ] {
            assert_eq!(command_count(&c, name), n, "{name}");
            assert_eq!(classes(&c, name), replies, "{name}");
        }
        assert_eq!(c.commands.0.len(), SinkCmd::ALL.len() + 1);
        assert_eq!(c.replies.0.len(), SinkCmd::ALL.len() + 1);
        // The typed "." is no message; the content is counted as sent,
        // the stuffed dot included, the final ".\r\n" not.
        assert_eq!(
            (
                c.messages.received,
                c.messages.accepted,
                c.messages.content_bytes
            ),
            (1, 1, b"..x\r\nhi\r\n".len() as u64)
        );
        assert_eq!((c.sessions.quit, c.dump.written, c.dump.failed), (1, 1, 0));
        // No rule configured: every rule table is empty.
        assert!(c.rules.hard_reject.0.is_empty() && c.rules.delay.0.is_empty());
        assert_eq!((c.rules.abort_delay, c.rules.data_read_delay), (0, 0));
    }

    #[test]
    fn counts_reach_the_shared_counters_at_each_end_of_message() {
        let stats = Arc::new(Stats::with_output(false, 0, 0, Box::new(io::sink())));
        let policy = config(&[]).policy.clone();
        let mut c = conv_on(&[], &stats, MemDump::default());
        drive(
            &mut c,
            b"HELO x\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n1234\r\n.\r\nNOOP\r\n",
        );
        // The session is still open: what came before the end of data is
        // counted, the NOOP after it not yet.
        let now = stats.snapshot(&policy);
        assert_eq!((now.messages.accepted, now.messages.content_bytes), (1, 6));
        assert_eq!(classes(&now, "."), [1, 0, 0, 0]);
        assert_eq!(command_count(&now, "noop"), 0);
        drop(c);
        let end = stats.snapshot(&policy);
        assert_eq!(command_count(&end, "noop"), 1);
        assert_eq!(classes(&end, "noop"), [1, 0, 0, 0]);
    }

    #[test]
    fn rule_counts_follow_the_policy_priority() {
        let args = [
            "-f",
            "rcpt",
            "-r",
            "rcpt,mail",
            "-q",
            "vrfy",
            "-Q",
            "noop,vrfy",
            "-W",
            "helo:2",
            "-W",
            "rset:1",
            "-W",
            "mail:5",
        ];
        let c = counted(
            &args,
            &[
                b"HELO x\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nRCPT TO:<c>\r\nRSET\r\nVRFY x\r\nNOOP\r\n",
                b"NOOP\r\n",
            ],
        );
        let r = &c.rules;
        assert_eq!(r.hard_reject.0, [("rcpt", 2)]);
        // -r rcpt loses to -f rcpt; -W mail loses to -r mail.
        assert_eq!(r.soft_reject.0, [("mail", 1), ("rcpt", 0)]);
        assert_eq!(r.drop.0, [("vrfy", 1)]);
        assert_eq!(r.close.0, [("noop", 1), ("vrfy", 0)]);
        let delays: Vec<_> = r
            .delay
            .0
            .iter()
            .map(|(n, d)| (*n, d.count, d.seconds))
            .collect();
        assert_eq!(delays, [("helo", 1, 2), ("mail", 0, 0), ("rset", 1, 1)]);
        assert_eq!(classes(&c, "helo"), [1, 0, 0, 0]);
        assert_eq!(classes(&c, "mail"), [0, 0, 1, 0]);
        assert_eq!(classes(&c, "rcpt"), [0, 0, 0, 2]);
        assert_eq!(classes(&c, "rset"), [1, 0, 0, 0]);
        // -q: no reply; -Q: the 421.
        assert_eq!(classes(&c, "vrfy"), [0, 0, 0, 0]);
        assert_eq!(classes(&c, "noop"), [0, 0, 1, 0]);
        assert_eq!(command_count(&c, "noop"), 1);
    }

    #[test]
    fn counts_under_lmtp_bdat_abort_stall_and_size() {
        // LMTP: one reply per recipient, one message.
        let c = counted(
            &["-L"],
            &[b"LHLO x\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nRCPT TO:<c>\r\nRCPT TO:<d>\r\nDATA\r\nx\r\n.\r\n"],
        );
        assert_eq!(classes(&c, "lhlo"), [1, 0, 0, 0]);
        assert_eq!(classes(&c, "."), [3, 0, 0, 0]);
        assert_eq!((c.messages.received, c.messages.accepted), (1, 1));
        // BDAT: a chunk's reply counts for bdat, the LAST one's for ".";
        // a refused chunk's bytes are no content.
        let c = counted(
            &["--chunking"],
            &[b"BDAT 4\r\nwxyzEHLO x\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nBDAT 3\r\nabcBDAT 2 LAST\r\nde"],
        );
        assert_eq!(classes(&c, "bdat"), [1, 0, 0, 1]);
        assert_eq!(command_count(&c, "bdat"), 3);
        assert_eq!(classes(&c, "."), [1, 0, 0, 0]);
        assert_eq!(command_count(&c, "."), 1);
        assert_eq!(
            (c.messages.accepted, c.messages.content_bytes),
            (1, b"abcde".len() as u64)
        );
        // -A: the 550 counts as a second reply to DATA; no message.
        let c = counted(
            &["-A", "3"],
            &[b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\nx\r\n.\r\n"],
        );
        assert_eq!(classes(&c, "data"), [0, 1, 0, 1]);
        assert_eq!((c.rules.abort_delay, c.messages.received), (1, 0));
        let c = counted(
            &["-A", "3", "--chunking"],
            &[b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nBDAT 1 LAST\r\nx"],
        );
        assert_eq!(classes(&c, "bdat"), [0, 0, 0, 1]);
        assert_eq!(c.rules.abort_delay, 1);
        // -H: counted once per message; -W .: the delayed 250 still
        // accepts the message.
        let c = counted(
            &["-H", "2", "-W", ".:1"],
            &[b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n"],
        );
        assert_eq!(c.rules.data_read_delay, 1);
        assert_eq!((c.messages.received, c.messages.accepted), (1, 1));
        assert_eq!(classes(&c, "."), [1, 0, 0, 0]);
        assert_eq!(
            c.rules.delay.get(".").map(|d| (d.count, d.seconds)),
            Some((1, 1))
        );
        // -f .: received, refused.
        let c = counted(
            &["-f", "."],
            &[b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\nx\r\n.\r\n"],
        );
        assert_eq!((c.messages.received, c.messages.accepted), (1, 0));
        assert_eq!(c.rules.hard_reject.0, [(".", 1)]);
        // --size: 552 at the end, still received.
        let c = counted(
            &["--size", "3"],
            &[b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n12345\r\n.\r\n"],
        );
        assert_eq!(classes(&c, "."), [0, 0, 0, 1]);
        assert_eq!((c.messages.received, c.messages.accepted), (1, 0));
        assert_eq!(c.messages.content_bytes, 7);
    }

    #[test]
    fn counts_dump_failures_and_auth_replies() {
        let stats = Arc::new(Stats::with_output(false, 0, 0, Box::new(io::sink())));
        let failing = MemDump {
            fail_writes: true,
            ..MemDump::default()
        };
        let out = drive(
            &mut conv_on(&["-d", "x"], &stats, failing),
            b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\nx\r\n.\r\n",
        );
        assert!(
            out.ends_with("451 4.3.0 Error: dump file write failed\r\n"),
            "{out}"
        );
        let c = stats.snapshot(&config(&[]).policy);
        assert_eq!((c.dump.written, c.dump.failed), (0, 1));
        assert_eq!(classes(&c, "."), [0, 0, 1, 0]);
        assert_eq!((c.messages.received, c.messages.accepted), (1, 0));

        // Each line of an AUTH exchange gets a reply counted for auth.
        let mut a = auth_conv(&["--auth-plaintext"]);
        let (stats, policy) = (a.stats.clone(), a.cfg.policy.clone());
        drive(
            &mut a,
            format!("AUTH LOGIN\r\n{ALICE}\r\n{SECRET}\r\nAUTH PLAIN {PLAIN_BAD}\r\n").as_bytes(),
        );
        drop(a);
        let c = stats.snapshot(&policy);
        assert_eq!(command_count(&c, "auth"), 2);
        assert_eq!(classes(&c, "auth"), [1, 2, 0, 1]);
        assert_eq!((c.auth.ok, c.auth.failed), (1, 0));
    }

    /// The rest of a session after a STARTTLS whose handshake succeeded.
    fn after_handshake(c: &mut Conversation<MemDump>, input: &str) -> (String, Step) {
        c.tls_started("TLSv1.2", "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256");
        let mut buf = BytesMut::from(input.as_bytes());
        let step = c.input(&mut buf, 0);
        (
            String::from_utf8_lossy(&c.output().split()).into_owned(),
            step,
        )
    }

    #[test]
    fn starttls_is_offered_once_and_refused_where_rfc_3207_says() {
        let st: &[&str] = &["--starttls"];
        let ehlo_plain = replies(st, "EHLO x\r\n");
        assert!(
            ehlo_plain.contains("250-PIPELINING\r\n250-STARTTLS\r\n250-8BITMIME\r\n"),
            "{ehlo_plain}"
        );
        // (options, input, replies after the greeting, last step)
        let table: &[(&[&str], &str, String, Step)] = &[
            (st, "STARTTLS\r\n", READY.to_owned(), Step::StartTls),
            (st, "starttls \r\n", READY.to_owned(), Step::StartTls),
            (
                st,
                "STARTTLS now\r\nNOOP\r\n",
                format!("501 5.5.4 Syntax: STARTTLS\r\n{OK}"),
                Step::Read,
            ),
            (
                st,
                "MAIL FROM:<a>\r\nSTARTTLS\r\nRCPT TO:<b>\r\n",
                format!("{MAIL_OK}{IN_TXN}{RCPT_OK}"),
                Step::Read,
            ),
            // After RSET the transaction is over: STARTTLS goes.
            (
                st,
                "MAIL FROM:<a>\r\nRSET\r\nSTARTTLS\r\n",
                format!("{MAIL_OK}{MAIL_OK}{READY}"),
                Step::StartTls,
            ),
            // Without the option, STARTTLS is unknown, as in Postfix.
            (&[], "STARTTLS\r\n", UNKNOWN.to_owned(), Step::Read),
            (
                &["--chunking"],
                "STARTTLS\r\n",
                UNKNOWN.to_owned(),
                Step::Read,
            ),
            // It is a command name for -f -r -q -Q: refused, no handshake.
            (
                &["--starttls", "-f", "starttls"],
                "STARTTLS\r\nNOOP\r\n",
                format!("500 5.3.0 Error: command failed\r\n{OK}"),
                Step::Read,
            ),
            (
                &[
                    "--starttls",
                    "-r",
                    "StartTLS",
                    "-b",
                    "454 4.7.0 TLS not available",
                ],
                "STARTTLS\r\n",
                "454 4.7.0 TLS not available\r\n".to_owned(),
                Step::Read,
            ),
            (
                &["--starttls", "-Q", "starttls"],
                "STARTTLS\r\n",
                "421 4.0.0 Server closing connection\r\n".to_owned(),
                Step::Close,
            ),
        ];
        for (args, input, want, step) in table {
            let (out, got) = run(&mut conv(args), input.as_bytes());
            assert_eq!(
                (out.as_str(), got),
                (format!("{GREET}{want}").as_str(), *step),
                "{args:?} {input:?}"
            );
        }
        // Once TLS is up: the list has no STARTTLS, and STARTTLS gets 503.
        let mut c = conv(st);
        let (out, step) = run(&mut c, b"EHLO x\r\nSTARTTLS\r\n");
        assert_eq!(
            out,
            format!(
                "{GREET}{ehlo_plain_tail}{READY}",
                ehlo_plain_tail = &ehlo_plain[GREET.len()..]
            )
        );
        assert_eq!(step, Step::StartTls);
        let (out, step) = after_handshake(&mut c, "EHLO x\r\nSTARTTLS\r\nNOOP\r\n");
        assert!(!out.contains("STARTTLS"), "{out}");
        assert!(
            out.starts_with("250-smtp-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n"),
            "{out}"
        );
        assert!(out.ends_with(&format!("250 \r\n{TLS_ACTIVE}{OK}")), "{out}");
        assert_eq!(step, Step::Read);
        // --tls-on-connect: the same from the start (STARTTLS is a known
        // command there, so that it gets 503 rather than 500).
        let mut c = conv(&["--tls-on-connect"]);
        let (out, _) = run_tls(&mut c, "EHLO x\r\nSTARTTLS\r\n");
        assert!(!out.contains("250-STARTTLS"), "{out}");
        assert!(out.ends_with(TLS_ACTIVE), "{out}");
        // -W starttls: the 220 waits, then the handshake step comes.
        let mut c = conv(&["--starttls", "-W", "starttls:2"]);
        let (out, step) = run(&mut c, b"STARTTLS\r\n");
        assert_eq!(
            (out.as_str(), step),
            (GREET, Step::Delay(Duration::from_secs(2)))
        );
        assert_eq!(c.resume(0), Step::StartTls);
        assert_eq!(&c.output().split()[..], READY.as_bytes());
    }

    #[test]
    fn plaintext_pipelined_after_starttls_is_never_executed() {
        let mut c = conv(&["--starttls", "-d", "x"]);
        let _ = c.start(0);
        let _ = c.output().split();
        // One packet: STARTTLS and a command behind it.
        let mut buf = BytesMut::from(&b"EHLO x\r\nSTARTTLS\r\nRSET\r\nMAIL FROM:<evil>\r\n"[..]);
        assert_eq!(c.input(&mut buf, 0), Step::StartTls);
        let out = String::from_utf8_lossy(&c.output().split()).into_owned();
        assert!(out.ends_with(&format!("250 \r\n{READY}")), "{out}");
        // Nothing after the STARTTLS line was processed, and while the
        // handshake is pending, input is thrown away, not answered.
        assert_eq!(&buf[..], b"RSET\r\nMAIL FROM:<evil>\r\n");
        assert_eq!(c.input(&mut buf, 0), Step::StartTls);
        assert!(buf.is_empty());
        assert!(c.output().is_empty());
        // After the handshake, the injected MAIL did not happen: RCPT
        // needs a MAIL, and the client's first EHLO is forgotten.
        let (out, _) = after_handshake(
            &mut c,
            "RCPT TO:<b>\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n.\r\n",
        );
        assert_eq!(out, format!("{NEED_MAIL}{MAIL_OK}{RCPT_OK}{DATA_GO}{OK}"));
        let rec = String::from_utf8(records(&c)[0].clone()).expect("utf-8");
        assert!(
            rec.starts_with(
                "X-Client-Addr: 127.0.0.1\nX-Client-Proto: SMTP\n\
                 X-Client-TLS: TLSv1.2 TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\nX-Mail-Args: <a>\n"
            ),
            "{rec}"
        );
        assert!(
            rec.contains("Received: from [127.0.0.1] ([127.0.0.1])\n"),
            "{rec}"
        );
    }

    #[test]
    fn starttls_forgets_helo_and_auth() {
        let mut c = auth_conv(&[
            "--starttls",
            "--auth-plaintext",
            "--auth-required",
            "-D",
            "x",
        ]);
        let (out, step) = run(
            &mut c,
            format!("EHLO a\r\nAUTH PLAIN {PLAIN_OK}\r\nSTARTTLS\r\n").as_bytes(),
        );
        assert!(out.ends_with(&format!("{AUTH_OK}{READY}")), "{out}");
        assert_eq!(step, Step::StartTls);
        let (out, _) = after_handshake(
            &mut c,
            &format!("MAIL FROM:<a>\r\nHELO b\r\nAUTH PLAIN {PLAIN_OK}\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n.\r\n"),
        );
        assert_eq!(
            out,
            format!("{AUTH_REQ}250 smtp-sink\r\n{AUTH_OK}{MAIL_OK}{RCPT_OK}{DATA_GO}{OK}")
        );
        let rec = String::from_utf8(records(&c)[0].clone()).expect("utf-8");
        assert!(
            rec.starts_with(
                "X-Client-Addr: 127.0.0.1\nX-Client-Proto: SMTP\n\
                 X-Client-TLS: TLSv1.2 TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\n\
                 X-Client-Auth: alice\nX-Helo-Args: b\nX-Mail-Args: <a>\n"
            ),
            "{rec}"
        );
    }

    #[test]
    fn auth_replies_over_tls() {
        let s = "--starttls";
        // (options, input, replies after the greeting)
        let table: &[(&[&str], String, String)] = &[
            // PLAIN with and without an initial response.
            (&[s], format!("AUTH PLAIN {PLAIN_OK}\r\n"), AUTH_OK.to_owned()),
            (&[s], format!("auth plain {PLAIN_OK}\r\n"), AUTH_OK.to_owned()),
            (&[s], format!("AUTH PLAIN\r\n{PLAIN_OK}\r\n"), format!("334 \r\n{AUTH_OK}")),
            (&[s], format!("AUTH PLAIN {PLAIN_BAD}\r\n"), AUTH_BAD.to_owned()),
            (&[s], format!("AUTH PLAIN\r\n{PLAIN_BAD}\r\n"), format!("334 \r\n{AUTH_BAD}")),
            // A failure may be followed by another try.
            (
                &[s],
                format!("AUTH PLAIN {PLAIN_BAD}\r\nAUTH PLAIN {PLAIN_OK}\r\n"),
                format!("{AUTH_BAD}{AUTH_OK}"),
            ),
            // LOGIN with and without the user as initial response.
            (
                &[s],
                format!("AUTH LOGIN\r\n{ALICE}\r\n{SECRET}\r\n"),
                format!("{ASK_USER}{ASK_PASS}{AUTH_OK}"),
            ),
            (
                &[s],
                format!("AUTH LOGIN {ALICE}\r\n{SECRET}\r\n"),
                format!("{ASK_PASS}{AUTH_OK}"),
            ),
            (
                &[s],
                format!("AUTH LOGIN\r\n{ALICE}\r\n{ALICE}\r\n"),
                format!("{ASK_USER}{ASK_PASS}{AUTH_BAD}"),
            ),
            // "*" cancels at any step.
            (&[s], "AUTH LOGIN\r\n*\r\n".to_owned(), format!("{ASK_USER}{AUTH_ABORT}")),
            (
                &[s],
                format!("AUTH LOGIN {ALICE}\r\n*\r\n"),
                format!("{ASK_PASS}{AUTH_ABORT}"),
            ),
            (&[s], "AUTH PLAIN\r\n*\r\n".to_owned(), format!("334 \r\n{AUTH_ABORT}")),
            (&[s], "AUTH PLAIN *\r\n".to_owned(), AUTH_ABORT.to_owned()),
            // Not base64: in the command, in a response, a response with a blank.
            (&[s], "AUTH PLAIN %%%\r\n".to_owned(), AUTH_B64.to_owned()),
            (&[s], "AUTH LOGIN\r\n%%%\r\n".to_owned(), format!("{ASK_USER}{AUTH_B64}")),
            (
                &[s],
                "AUTH PLAIN\r\nMAIL FROM:<a>\r\n".to_owned(),
                format!("334 \r\n{AUTH_B64}"),
            ),
            // Syntax, unknown mechanism, second AUTH, AUTH in a transaction.
            (&[s], "AUTH\r\n".to_owned(), "501 5.5.4 Syntax: AUTH mechanism\r\n".to_owned()),
            (&[s], "AUTH  \r\n".to_owned(), "501 5.5.4 Syntax: AUTH mechanism\r\n".to_owned()),
            (
                &[s],
                "AUTH CRAM-MD5\r\n".to_owned(),
                "504 5.5.4 Unrecognized authentication type\r\n".to_owned(),
            ),
            (
                &[s],
                format!("AUTH PLAIN {PLAIN_OK}\r\nAUTH LOGIN\r\nAUTH PLAIN {PLAIN_OK}\r\n"),
                format!("{AUTH_OK}{AUTH_AGAIN}{AUTH_AGAIN}"),
            ),
            (
                &[s],
                format!("MAIL FROM:<a>\r\nAUTH PLAIN {PLAIN_OK}\r\nRSET\r\nAUTH PLAIN {PLAIN_OK}\r\n"),
                format!("{MAIL_OK}{IN_TXN}{MAIL_OK}{AUTH_OK}"),
            ),
            // --auth-required: MAIL waits for AUTH; RSET and EHLO keep it.
            (
                &[s, "--auth-required"],
                format!(
                    "MAIL FROM:<a>\r\nRCPT TO:<b>\r\nAUTH PLAIN {PLAIN_OK}\r\nEHLO x\r\nRSET\r\nMAIL FROM:<a>\r\n"
                ),
                format!("{AUTH_REQ}{NEED_MAIL}{AUTH_OK}<EHLO>{MAIL_OK}{MAIL_OK}"),
            ),
        ];
        for (args, input, want) in table {
            let mut c = auth_conv(args);
            let (out, step) = run_tls(&mut c, input);
            let ehlo = String::from_utf8_lossy(&c.cfg.replies.ehlo_tls).into_owned();
            let want = want.replace("<EHLO>", &ehlo);
            assert_eq!(out, format!("{GREET}{want}"), "{args:?} {input:?}");
            assert_eq!(step, Step::Read, "{args:?} {input:?}");
        }
    }

    #[test]
    fn auth_lines_are_never_commands() {
        // Each line after "AUTH LOGIN" is a response, whatever it says:
        // QUIT is base64 for a user name, NOOP a password. The session
        // stays open and nothing is answered as a command.
        let mut c = auth_conv(&["--tls-on-connect"]);
        let (out, step) = run_tls(&mut c, "AUTH LOGIN\r\nQUIT\r\nNOOP\r\nRSET\r\n");
        assert_eq!(
            out,
            format!("{GREET}{ASK_USER}{ASK_PASS}{AUTH_BAD}{MAIL_OK}")
        );
        assert_eq!(step, Step::Read);
        // Split at every byte, the same.
        let input = format!("AUTH PLAIN\r\n{PLAIN_OK}\r\nAUTH LOGIN {ALICE}\r\nQUIT\r\n");
        let whole = {
            let mut c = auth_conv(&["--auth-plaintext"]);
            run(&mut c, input.as_bytes()).0
        };
        assert_eq!(
            whole,
            format!("{GREET}334 \r\n{AUTH_OK}{AUTH_AGAIN}221 Bye\r\n")
        );
        let users = users_file();
        let path = users.path().to_str().expect("path").to_owned();
        let args = ["--auth-users", path.as_str(), "--auth-plaintext"];
        for cut in 0..=input.len() {
            let (out, _, _) = run_split(&args, input.as_bytes(), &[cut]);
            assert_eq!(String::from_utf8_lossy(&out), whole, "cut {cut}");
        }
    }

    #[test]
    fn auth_over_plaintext_and_what_ehlo_offers() {
        // Over plaintext AUTH gets 538, unless --auth-plaintext.
        let mut c = auth_conv(&["--starttls"]);
        let (out, _) = run(
            &mut c,
            format!("AUTH PLAIN {PLAIN_OK}\r\nAUTH LOGIN\r\n").as_bytes(),
        );
        assert_eq!(out, format!("{GREET}{AUTH_TLS}{AUTH_TLS}"));
        let mut c = auth_conv(&[]);
        let (out, _) = run(&mut c, format!("AUTH PLAIN {PLAIN_OK}\r\n").as_bytes());
        assert_eq!(out, format!("{GREET}{AUTH_TLS}"));
        // An unknown mechanism is 504 before it is 538.
        let (out, _) = run(&mut auth_conv(&[]), b"AUTH XOAUTH2\r\n");
        assert_eq!(
            out,
            format!("{GREET}504 5.5.4 Unrecognized authentication type\r\n")
        );
        let mut c = auth_conv(&["--auth-plaintext"]);
        let (out, _) = run(
            &mut c,
            format!("AUTH LOGIN\r\n{ALICE}\r\n{SECRET}\r\n").as_bytes(),
        );
        assert_eq!(out, format!("{GREET}{ASK_USER}{ASK_PASS}{AUTH_OK}"));
        // The keyword: where AUTH can succeed, and never with -a.
        let has_auth = |args: &[&str], tls: bool| {
            let mut c = auth_conv(args);
            let out = if tls {
                run_tls(&mut c, "EHLO x\r\n").0
            } else {
                run(&mut c, b"EHLO x\r\n").0
            };
            out.contains("250-AUTH PLAIN LOGIN\r\n")
        };
        assert!(!has_auth(&["--starttls"], false));
        assert!(has_auth(&["--starttls"], true));
        assert!(has_auth(&["--starttls", "--auth-plaintext"], false));
        assert!(has_auth(&["--auth-plaintext"], false));
        assert!(!has_auth(&["--starttls", "-a"], true));
        // Without --auth-users, Postfix's fake AUTH, over TLS too.
        let (out, _) = run_tls(
            &mut conv(&["--tls-on-connect"]),
            "EHLO x\r\nAUTH PLAIN x\r\n",
        );
        assert!(out.contains("250-AUTH PLAIN LOGIN\r\n"), "{out}");
        assert!(out.ends_with(&format!("250 \r\n{OK}")), "{out}");
    }

    #[test]
    fn auth_obeys_the_command_rules() {
        // -f auth: the hard reply, and no exchange starts (the next line
        // is a command again).
        let (out, _) = run_tls(
            &mut auth_conv(&["--starttls", "-f", "auth"]),
            "AUTH PLAIN\r\nNOOP\r\n",
        );
        assert_eq!(
            out,
            format!("{GREET}500 5.3.0 Error: command failed\r\n{OK}")
        );
        let (out, step) = run_tls(
            &mut auth_conv(&["--starttls", "-q", "auth"]),
            "AUTH PLAIN\r\n",
        );
        assert_eq!((out.as_str(), step), (GREET, Step::Close));
        // -W auth: the first reply of the exchange waits.
        let mut c = auth_conv(&["--starttls", "-W", "auth:3"]);
        let (out, step) = run_tls(&mut c, &format!("AUTH LOGIN\r\n{ALICE}\r\n"));
        assert_eq!(
            (out.as_str(), step),
            (GREET, Step::Delay(Duration::from_secs(3)))
        );
        assert_eq!(c.resume(0), Step::Read);
        let mut rest = BytesMut::from(format!("{ALICE}\r\n{SECRET}\r\n").as_bytes());
        assert_eq!(c.input(&mut rest, 0), Step::Read);
        assert_eq!(
            String::from_utf8_lossy(&c.output().split()),
            format!("{ASK_USER}{ASK_PASS}{AUTH_OK}")
        );
    }

    #[test]
    fn logs_never_show_an_auth_secret() {
        let c = auth_conv(&[]);
        for (args, want) in [
            (&b"PLAIN AGFsaWNlAHNlY3JldA=="[..], &b"PLAIN ****"[..]),
            (b" LOGIN\tYWxpY2U=", b"LOGIN ****"),
            (b"LOGIN", b"LOGIN"),
        ] {
            assert_eq!(&c.logged_args(b"AuTh", args)[..], want);
            assert_eq!(&c.logged_args(b"MAIL", args)[..], args);
        }
        // Postfix's fake AUTH logs its arguments as they are.
        assert_eq!(
            &conv(&[]).logged_args(b"AUTH", b"PLAIN xyz")[..],
            b"PLAIN xyz"
        );
        // -s auth: the syslog line is masked too.
        let users = users_file();
        let path = users.path().to_str().expect("path").to_owned();
        let (mut c, lines) =
            with_syslog(&["-s", "auth", "--auth-users", &path, "--auth-plaintext"]);
        let (out, _) = run(&mut c, format!("AUTH PLAIN {PLAIN_OK}\r\n").as_bytes());
        assert!(out.ends_with(AUTH_OK), "{out}");
        assert_eq!(
            lines.lock().expect("lock").clone(),
            vec![b"AUTH PLAIN ****".to_vec()]
        );
    }

    #[test]
    fn auth_counts_successes_and_failures() {
        let out = Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
        struct W(Arc<std::sync::Mutex<Vec<u8>>>);
        impl io::Write for W {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.lock().expect("lock").extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let users = users_file();
        let path = users.path().to_str().expect("path").to_owned();
        let cfg = config(&["-c", "--auth-users", &path, "--auth-plaintext"]);
        let stats = Arc::new(
            Stats::with_output(true, 0, 0, Box::new(W(out.clone()))).with_fields(false, true),
        );
        let mut c: Conversation<MemDump> = Conversation::new(
            cfg,
            stats.clone(),
            ClientAddr::local(),
            None,
            SmallRng::seed_from_u64(1),
            None,
        );
        let _ = run(
            &mut c,
            format!(
                "AUTH PLAIN {PLAIN_BAD}\r\nAUTH LOGIN\r\n*\r\nAUTH PLAIN %\r\nAUTH LOGIN {ALICE}\r\n{ALICE}\r\nAUTH PLAIN {PLAIN_OK}\r\n"
            )
            .as_bytes(),
        );
        assert!(!stats.session_closed());
        // Two 535s and one 235; a cancel and bad base64 are neither.
        assert_eq!(
            String::from_utf8_lossy(&out.lock().expect("lock")),
            "sess=1 quit=0 mesg=0 authok=1 authfail=2\r"
        );
    }

    /// `message` as DATA sends it: dot-stuffed, then ".".
    fn dot_stuffed(message: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for line in message.split_inclusive(|&b| b == b'\n') {
            if line.starts_with(b".") {
                out.push(b'.');
            }
            out.extend_from_slice(line);
        }
        out.extend_from_slice(b".\r\n");
        out
    }

    /// A stamped message whose body is `body`.
    fn stamped(seq: u64, body: &[u8]) -> Vec<u8> {
        let (len, digest) = smtp_proto::stamp::body_digest(body);
        let mut m = Vec::new();
        smtp_proto::stamp::Stamp {
            run: smtp_proto::stamp::RunId::new(b"r").unwrap(),
            seq,
            sent_ns: 0,
            len,
            digest,
        }
        .write(&mut m);
        m.extend_from_slice(b"Subject: t\r\n\r\n");
        m.extend_from_slice(body);
        m
    }

    /// `--verify` counts what it accepted: by DATA (dot-stuffed) and by
    /// BDAT, with or without a dump; not a message refused at its end
    /// (`-f .`, `--size`) and not one abandoned by RSET; a damaged
    /// message is counted and leaves nothing behind for the next one.
    #[test]
    fn verify_counts_accepted_messages_only() {
        let body = b"..a line that starts with a dot\r\nend\r\n";
        let data = |seq| {
            let mut m = b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n".to_vec();
            // Stuffed and ended with ".".
            m.extend_from_slice(&dot_stuffed(&stamped(seq, body)));
            m
        };
        let bdat = |seq| {
            let content = stamped(seq, body);
            let mut m = format!(
                "MAIL FROM:<a>\r\nRCPT TO:<b>\r\nBDAT {} LAST\r\n",
                content.len()
            )
            .into_bytes();
            m.extend_from_slice(&content);
            m
        };
        let truncated = {
            let mut m = b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n".to_vec();
            // The body loses its last line on the way.
            let whole = stamped(9, body);
            m.extend_from_slice(&dot_stuffed(&whole[..whole.len() - 5]));
            m
        };
        for (args, input, unique, duplicate, corrupted) in [
            (
                &["--verify"][..],
                [data(0), data(1), data(0)].concat(),
                2,
                1,
                0,
            ),
            (
                &["--verify", "-d", "x"][..],
                [data(0), bdat(1)].concat(),
                2,
                0,
                0,
            ),
            (
                &["--verify", "--chunking"][..],
                [bdat(0), bdat(0)].concat(),
                1,
                1,
                0,
            ),
            (
                &["--verify", "-f", "."][..],
                [data(0), data(1)].concat(),
                0,
                0,
                0,
            ),
            (&["--verify", "--size", "60"][..], data(0), 0, 0, 0),
            (&["--verify"][..], [truncated, data(3)].concat(), 1, 0, 1),
            (
                &["--verify"][..],
                [b"MAIL FROM:<a>\r\nRSET\r\n".to_vec(), data(4)].concat(),
                1,
                0,
                0,
            ),
        ] {
            let stats =
                Arc::new(Stats::with_output(false, 0, 0, Box::new(io::sink())).with_verify(true));
            let mut args = args.to_vec();
            if input.windows(4).any(|w| w == b"BDAT") && !args.contains(&"--chunking") {
                args.push("--chunking");
            }
            drive(&mut conv_on(&args, &stats, MemDump::default()), &input);
            let v = stats.verify().expect("on").snapshot();
            let counts = v
                .runs
                .get("r")
                .map_or((0, 0, 0), |r| (r.unique, r.duplicate, r.corrupted));
            assert_eq!(counts, (unique, duplicate, corrupted), "{args:?}");
            assert_eq!(v.unstamped + v.invalid + v.untracked, 0, "{args:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn replies_do_not_depend_on_how_input_is_split(
            words in proptest::collection::vec(
                proptest::sample::select(vec![
                    &b"EHLO x\r\n"[..], b"HELO y\r\n", b"LHLO z\r\n", b"MAIL FROM:<a>\r\n",
                    b"RCPT TO:<b>\r\n", b"DATA\r\n", b".\r\n", b"..x\r\n", b"\r\n", b"RSET\r\n",
                    b"NOOP\n", b"\r", b"\n", b"x", b"\x00", b"\xff", b"QUIT\r\n", b"body line\r\n",
                ]),
                0..60,
            ),
            cuts in proptest::collection::vec(0usize..10_000, 0..20),
            lmtp in proptest::bool::ANY,
        ) {
            let input: Vec<u8> = words.concat();
            let args: &[&str] = if lmtp { &["-L", "-d", "x"] } else { &["-d", "x"] };
            let whole = run_split_counted(args, &input, &[]);
            let split = run_split_counted(args, &input, &cuts);
            proptest::prop_assert_eq!(whole, split);
        }

        #[test]
        fn bdat_replies_do_not_depend_on_how_input_is_split(
            words in proptest::collection::vec(
                proptest::sample::select(vec![
                    &b"EHLO x\r\n"[..], b"MAIL FROM:<a>\r\n", b"RCPT TO:<b>\r\n", b"DATA\r\n",
                    b".\r\n", b"BDAT 5\r\n", b"BDAT 0\r\n", b"BDAT 3 LAST\r\n", b"BDAT 0 LAST\r\n",
                    b"RSET\r\n", b"\r", b"\n", b"x", b"QUIT\r\n", b"BDAT y\r\n",
                ]),
                0..60,
            ),
            cuts in proptest::collection::vec(0usize..10_000, 0..20),
            lmtp in proptest::bool::ANY,
        ) {
            let input: Vec<u8> = words.concat();
            let args: &[&str] = if lmtp {
                &["--chunking", "-L", "-d", "x", "--size", "9"]
            } else {
                &["--chunking", "-D", "x"]
            };
            let whole = run_split_counted(args, &input, &[]);
            let split = run_split_counted(args, &input, &cuts);
            proptest::prop_assert_eq!(whole, split);
        }

        #[test]
        fn no_input_makes_it_panic(input in proptest::collection::vec(proptest::num::u8::ANY, 0..3000)) {
            let _ = run_split(&[], &input, &[7, 100, 2047]);
            let _ = run_split(&["-L", "-D", "x"], &input, &[1]);
            let _ = run_split(&["--chunking", "--size", "5", "-d", "x"], &input, &[3, 90]);
        }
    }

    // ---------------------------------------------------------------
    // --tarpit, --fault, --max-rate, --greylist, --max-message-size.

    /// A conversation sharing `throttle`, numbered `session`, counting
    /// into `stats`.
    fn shared_conv(
        args: &[&str],
        stats: &Arc<Stats>,
        throttle: &Arc<Throttle>,
        session: u64,
    ) -> Conversation<MemDump> {
        Conversation::new(
            config(args),
            stats.clone(),
            ClientAddr::from_ip("127.0.0.1".parse().expect("ip")),
            None,
            SmallRng::seed_from_u64(7),
            None,
        )
        .with_shared(throttle.clone(), session)
    }

    fn quiet_stats(args: &[&str]) -> Arc<Stats> {
        let cfg = config(args);
        Arc::new(
            Stats::with_output(false, 0, 0, Box::new(io::sink())).with_behaviour(&cfg.behaviour),
        )
    }

    /// Runs `input` as the shell would, at the monotonic time `at`, and
    /// returns each stretch of output written before a delay (or at the
    /// end), with that delay.
    fn timed(
        c: &mut Conversation<MemDump>,
        input: &[u8],
        at: Duration,
    ) -> Vec<(String, Option<Duration>)> {
        let now = Now {
            unix: 0,
            elapsed: at,
        };
        let mut buf = BytesMut::from(input);
        let mut stretches = Vec::new();
        let mut step = c.start(now);
        loop {
            let out = String::from_utf8_lossy(&c.output().split()).into_owned();
            match step {
                Step::Delay(d) => {
                    stretches.push((out, Some(d)));
                    step = match c.resume(now) {
                        Step::Read => c.input(&mut buf, now),
                        other => other,
                    };
                }
                Step::Read if !buf.is_empty() => {
                    stretches.push((out, None));
                    step = c.input(&mut buf, now);
                }
                _ => {
                    stretches.push((out, None));
                    return stretches;
                }
            }
        }
    }

    /// The replies of `timed`, joined.
    fn joined(stretches: &[(String, Option<Duration>)]) -> String {
        stretches.iter().map(|(s, _)| s.as_str()).collect()
    }

    const SESSION: &str =
        "EHLO x\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\nhi\r\n.\r\nBOGUS\r\nQUIT\r\n";

    #[test]
    fn tarpit_holds_back_every_reply_and_changes_none() {
        let at = Duration::ZERO;
        let plain = timed(&mut conv(&[]), SESSION.as_bytes(), at);
        let mut c = conv(&["--tarpit", "250"]);
        let tarpitted = timed(&mut c, SESSION.as_bytes(), at);
        assert_eq!(joined(&tarpitted), joined(&plain));
        // Greeting, EHLO, MAIL, RCPT, DATA, ".", BOGUS, QUIT: each reply
        // comes after its own pause, never two replies in one stretch.
        let pause = Some(Duration::from_millis(250));
        let delays: Vec<_> = tarpitted.iter().map(|(_, d)| *d).collect();
        assert_eq!(delays[..8], [pause; 8]);
        // Split the plain replies into whole replies (a multiline one is
        // one reply): the tarpit's stretches are exactly those, one each.
        let mut whole = Vec::new();
        let mut reply = String::new();
        for line in joined(&plain).split_inclusive("\r\n") {
            reply.push_str(line);
            if line.as_bytes().get(3) != Some(&b'-') {
                whole.push(std::mem::take(&mut reply));
            }
        }
        let stretches: Vec<_> = tarpitted.iter().map(|(out, _)| out.clone()).collect();
        assert_eq!(stretches[0], "");
        assert_eq!(stretches[1..], whole[..]);
        // A -W delay adds to the tarpit's pause.
        let mut c = conv(&["--tarpit", "100", "-W", "rcpt:1"]);
        let stretches = timed(&mut c, b"HELO x\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\n", at);
        let delays: Vec<_> = stretches.iter().filter_map(|(_, d)| *d).collect();
        let ms = Duration::from_millis;
        assert_eq!(delays, [ms(100), ms(100), ms(100), ms(100), ms(1000)]);
        // A BDAT chunk's reply too, once the chunk is read.
        let mut c = conv(&["--tarpit", "100", "--chunking"]);
        let stretches = timed(
            &mut c,
            b"EHLO x\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nBDAT 2\r\nhi",
            at,
        );
        let delays: Vec<_> = stretches.iter().filter_map(|(_, d)| *d).collect();
        assert_eq!(delays, [ms(100); 6]);
        assert!(joined(&stretches).ends_with("250 2.0.0 Ok: 2 bytes\r\n"));
    }

    #[test]
    fn faults_replace_replies_reproducibly_per_seed_and_session() {
        let args = ["--fault", "rcpt:451 4.3.0 Try again:0.5", "--seed", "9"];
        let input = format!(
            "HELO x\r\nMAIL FROM:<a>\r\n{}QUIT\r\n",
            "RCPT TO:<b>\r\n".repeat(40)
        );
        let session = |n: u64| {
            let stats = quiet_stats(&args);
            let throttle = Arc::new(Throttle::new(&config(&args).behaviour));
            let mut c = shared_conv(&args, &stats, &throttle, n);
            let out = joined(&timed(&mut c, input.as_bytes(), Duration::ZERO));
            drop(c);
            let snap = stats.snapshot(&config(&args).policy);
            (out, snap)
        };
        let (first, snap) = session(3);
        let (again, _) = session(3);
        let (other, _) = session(4);
        assert_eq!(first, again);
        assert_ne!(first, other);
        let faults = first.matches("451 4.3.0 Try again\r\n").count();
        assert!(faults > 0 && faults < 40, "{first}");
        assert_eq!(first.matches(RCPT_OK).count(), 40 - faults);
        assert_eq!(snap.rules.fault.len(), 1);
        let rule = &snap.rules.fault[0];
        assert_eq!(
            (rule.command, rule.reply.as_str(), rule.count),
            ("rcpt", "451 4.3.0 Try again", faults as u64)
        );
        assert_eq!(
            snap.replies.get("rcpt").map(|c| c.c4xx),
            Some(faults as u64)
        );

        // disconnect: no reply, the session closes; 421: a reply, then close.
        let (out, step) = run(
            &mut conv(&["--fault", "mail:disconnect:1"]),
            b"HELO x\r\nMAIL FROM:<a>\r\nNOOP\r\n",
        );
        assert_eq!(
            (out.as_str(), step),
            ("220 smtp-sink ESMTP\r\n250 smtp-sink\r\n", Step::Close)
        );
        let (out, step) = run(
            &mut conv(&["--fault", "helo:421 4.3.2 Bye:1"]),
            b"HELO x\r\nNOOP\r\n",
        );
        assert_eq!(
            (out.as_str(), step),
            ("220 smtp-sink ESMTP\r\n421 4.3.2 Bye\r\n", Step::Close)
        );
        // A 4xx/5xx fault has no side effect: the MAIL did not start a
        // transaction. -f wins over a fault of the same command.
        let out = replies(
            &["--fault", "mail:550 5.7.1 No:1"],
            "HELO x\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\n",
        );
        assert!(
            out.ends_with("550 5.7.1 No\r\n503 5.5.1 Error: need MAIL command\r\n"),
            "{out}"
        );
        let out = replies(
            &["--fault", "mail:550 5.7.1 No:1", "-f", "mail"],
            "HELO x\r\nMAIL FROM:<a>\r\n",
        );
        assert!(
            out.ends_with("500 5.3.0 Error: command failed\r\n"),
            "{out}"
        );
        // Probability 0 never fires.
        let out = replies(
            &["--fault", "mail:550 5.7.1 No:0"],
            "HELO x\r\nMAIL FROM:<a>\r\n",
        );
        assert!(out.ends_with(MAIL_OK), "{out}");
        // The end of data and a BDAT chunk can be faulted too.
        let out = replies(
            &["--fault", ".:452 4.3.1 Full:1"],
            "HELO x\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\nhi\r\n.\r\n",
        );
        assert!(
            out.ends_with("354 End data with <CR><LF>.<CR><LF>\r\n452 4.3.1 Full\r\n"),
            "{out}"
        );
        let out = replies(
            &["--chunking", "--fault", "bdat:452 4.3.1 Full:1"],
            "EHLO x\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nBDAT 2\r\nhiNOOP\r\n",
        );
        assert!(out.ends_with("452 4.3.1 Full\r\n250 2.0.0 Ok\r\n"), "{out}");
    }

    #[test]
    fn max_rate_refuses_mail_or_connections_above_the_rate() {
        let args = ["--max-rate", "1/h"];
        let stats = quiet_stats(&args);
        let throttle = Arc::new(Throttle::new(&config(&args).behaviour));
        let t = Duration::from_secs(5);
        let input = b"HELO x\r\nMAIL FROM:<a>\r\nRSET\r\nMAIL FROM:<a>\r\nQUIT\r\n";
        let mut c = shared_conv(&args, &stats, &throttle, 0);
        let out = joined(&timed(&mut c, input, t));
        assert!(out.contains("250 2.1.0 Ok\r\n250 2.1.0 Ok\r\n451 4.7.1 Error: too many messages, slow down\r\n221"), "{out}");
        drop(c);
        // The bucket is shared: another session is refused as well.
        let mut c = shared_conv(&args, &stats, &throttle, 1);
        let out = joined(&timed(&mut c, b"HELO x\r\nMAIL FROM:<a>\r\n", t));
        assert!(
            out.ends_with("451 4.7.1 Error: too many messages, slow down\r\n"),
            "{out}"
        );
        drop(c);
        let snap = stats.snapshot(&config(&args).policy);
        assert_eq!(
            snap.rules.max_rate.as_ref().map(|m| m.0.clone()),
            Some(vec![("mail", 2)])
        );
        // An hour later there is a token again.
        let mut c = shared_conv(&args, &stats, &throttle, 2);
        let out = joined(&timed(
            &mut c,
            b"HELO x\r\nMAIL FROM:<a>\r\n",
            t + Duration::from_secs(3600),
        ));
        assert!(out.ends_with(MAIL_OK), "{out}");

        let args = ["--max-rate", "1/h", "--max-rate-action", "connect"];
        let stats = quiet_stats(&args);
        let throttle = Arc::new(Throttle::new(&config(&args).behaviour));
        let mut c = shared_conv(&args, &stats, &throttle, 0);
        let out = joined(&timed(
            &mut c,
            b"HELO x\r\nMAIL FROM:<a>\r\nRSET\r\nMAIL FROM:<a>\r\nNOOP\r\n",
            t,
        ));
        assert!(
            out.ends_with(
                "250 2.1.0 Ok\r\n421 4.7.1 Error: too many messages, closing connection\r\n"
            ),
            "{out}"
        );
        drop(c);
        let mut c = shared_conv(&args, &stats, &throttle, 1);
        let stretches = timed(&mut c, b"HELO x\r\n", t);
        assert_eq!(
            joined(&stretches),
            "421 4.7.1 Error: too many messages, closing connection\r\n"
        );
        drop(c);
        let snap = stats.snapshot(&config(&args).policy);
        assert_eq!(
            snap.rules.max_rate.as_ref().map(|m| m.0.clone()),
            Some(vec![("connect", 1), ("mail", 1)])
        );
        assert_eq!(snap.replies.get("connect").map(|c| c.c4xx), Some(1));
    }

    #[test]
    fn greylist_defers_a_new_triple_until_its_retry_waited() {
        let args = ["--greylist", "2"];
        let stats = quiet_stats(&args);
        let throttle = Arc::new(Throttle::new(&config(&args).behaviour));
        let s = Duration::from_secs;
        let deferred = "450 4.2.0 Error: greylisted, try again later\r\n";
        // (time, sender, recipient, last reply)
        for (i, (at, from, to, want)) in [
            (s(10), "<a@x>", "<b@y>", deferred),
            (s(11), "<a@x> SIZE=10", "<b@y>", deferred),
            (s(12), "<a@x>", "<b@y> NOTIFY=NEVER", RCPT_OK),
            (s(12), "<a@x>", "<c@y>", deferred),
            (s(12), "<z@x>", "<b@y>", deferred),
            (s(100), "<a@x>", "<b@y>", RCPT_OK),
        ]
        .into_iter()
        .enumerate()
        {
            let mut c = shared_conv(&args, &stats, &throttle, i as u64);
            let input = format!("HELO x\r\nMAIL FROM:{from}\r\nRCPT TO:{to}\r\n");
            let out = joined(&timed(&mut c, input.as_bytes(), at));
            assert!(out.ends_with(want), "row {i}: {out}");
        }
        // A deferred RCPT has no side effect: DATA still needs a recipient.
        let mut c = shared_conv(&args, &stats, &throttle, 9);
        let out = joined(&timed(
            &mut c,
            b"HELO x\r\nMAIL FROM:<n@x>\r\nRCPT TO:<n@y>\r\nDATA\r\n",
            s(200),
        ));
        assert!(out.ends_with(&format!("{deferred}{NEED_RCPT}")), "{out}");
        drop(c);
        let snap = stats.snapshot(&config(&args).policy);
        assert_eq!(
            snap.rules.greylist.as_ref().map(|m| m.0.clone()),
            Some(vec![("rcpt", 5)])
        );
    }

    #[test]
    fn max_message_size_is_size() {
        let a = config(&["--max-message-size", "10"]);
        let b = config(&["--size", "10"]);
        assert_eq!(a.size_limit, Some(10));
        assert_eq!(a.replies.ehlo, b.replies.ehlo);
        let out = replies(
            &["--max-message-size", "10"],
            "EHLO x\r\nMAIL FROM:<a> SIZE=11\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n0123456789\r\n.\r\n",
        );
        assert!(out.contains("SIZE 10\r\n"), "{out}");
        assert!(out.contains(TOO_BIG) && out.ends_with(TOO_BIG), "{out}");
    }
}
