//! One session (`-s` runs this many at once): Postfix's callback chain
//! start → connect → banner → HELO → MAIL → RCPT×r → DATA → message → MAIL
//! again (`-d`) or QUIT, written as a loop that drives the sans-IO
//! [`ClientSession`] over a [`Conn`].
//!
//! Each worker owns its connection, its reused buffers and its [`Stats`];
//! the only shared state is atomics (budget, recipient numbers, `-c`,
//! the `--rate` schedule) and, once per batch of latency samples, the
//! [`Recorder`].

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use bytes::BytesMut;
use smtp_net::{tls::TlsConnector, Stream};
use smtp_proto::{
    client::{
        Auth, ClientConfig, ClientSession, CloseReason, Event, Measured, Outcome, Phase, Piece,
        Transmit,
    },
    message::{HeaderBlock, Repeated},
    Capabilities, Extensions, Reply,
};

use tokio::time::Instant;

use crate::{
    bind::RoundRobin,
    config::{Config, TlsStart},
    conn::{within, Conn, IoFail},
    connect::{connect, ConnectOptions},
    error::{reject_text, reply_text, strerror, Error},
    latency::{LiveCounts, Metric, Recorder, Samples},
    output::Output,
    plan::{itoa, pause, Budget, RcptNumbers, Schedule},
    report::Stats,
    segment::Segment,
    stamp::Stamper,
};

/// What every worker shares, built once per run.
#[derive(Debug)]
pub struct Shared {
    /// The configuration.
    pub config: Config,
    /// The body for DATA, rendered and stuffed once, ending in `.` CRLF:
    /// one buffer, or for a long `-l` a repeated chunk and a tail.
    pub body: Repeated,
    /// The body for BDAT: as it is, rendered once, in the same form.
    pub raw_body: Repeated,
    /// The Date header value, computed once per run as Postfix does.
    pub date: Vec<u8>,
    /// `-m`.
    pub budget: Budget,
    /// `-N`/`-r`.
    pub numbers: RcptNumbers,
    /// stderr/stdout.
    pub output: Output,
    /// Message-Id's first number.
    pub pid: u32,
    /// Connects happen one at a time, as in Postfix: a burst of SYNs can
    /// overflow the server's accept queue, and a handshake that completes
    /// on our side but is dropped on the server's would wait for a
    /// greeting until the timeout. One at a time, a full queue just makes
    /// the next connect wait (its SYN is retried) instead.
    connect_gate: tokio::sync::Mutex<()>,
    client: ClientConfig,
    /// A missing ESMTP feature is reported once per run, not per session.
    warned_missing: AtomicBool,
    /// Logins so far: the next connection logs in as `users[n % len]`.
    logins: std::sync::atomic::AtomicUsize,
    /// The run's clock and latency histograms.
    pub recorder: Recorder,
    /// Whether sessions time their phases ([`Config::measures`]).
    measure: bool,
    /// `--rate`.
    schedule: Option<Schedule>,
    /// `--duration`: no transaction starts at or after this (µs).
    deadline: u64,
    /// `--stamp`.
    pub stamper: Option<Stamper>,
    /// `--bind`: the next connection's source address.
    sources: RoundRobin,
}

impl Shared {
    /// Renders what is shared.
    pub fn new(config: Config, now_unix: i64) -> Self {
        let body = config.body.stream(true);
        let raw_body = config.body.stream(false);
        let stamper = config.stamp.then(|| {
            let segment = config.segment.unwrap_or(Segment::WHOLE);
            Stamper::for_body(config.run_id, segment, config.headers, &raw_body)
        });
        let date = smtp_proto::time::mail_date(now_unix).into_bytes();
        let output = Output::new(&config.argv0, config.verbose > 0, config.counter)
            .with_transcript(config.transcript, config.sessions > 1);
        let mut client = ClientConfig::new(
            config.protocol,
            config.send_helo.then_some(config.myhostname.as_bytes()),
            config.tolerate_rejects,
        );
        client.report_replies = config.verbose > 0 || config.transcript;
        let measure = config.measures();
        client.timings = measure;
        let micros = |d: std::time::Duration| u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let warmup = config.warmup.map_or(0, micros);
        // The warm-up comes first; --duration counts from its end.
        let deadline = config
            .duration
            .map_or(u64::MAX, |d| warmup.saturating_add(micros(d)));
        let segment = config.segment.unwrap_or(Segment::WHOLE);
        let schedule = config
            .rate
            .map(|r| Schedule::new(r, segment.first_start(r), deadline));
        client.esmtp = config.esmtp;
        client.starttls = config
            .tls
            .as_ref()
            .is_some_and(|t| t.start == TlsStart::StartTls);
        Self {
            body,
            raw_body,
            date,
            budget: Budget::new(config.messages),
            numbers: RcptNumbers::new(segment),
            output,
            pid: std::process::id(),
            connect_gate: tokio::sync::Mutex::new(()),
            client,
            warned_missing: AtomicBool::new(false),
            logins: std::sync::atomic::AtomicUsize::new(0),
            recorder: Recorder::new(warmup),
            measure,
            schedule,
            deadline,
            stamper,
            sources: RoundRobin::new(config.bind.clone()),
            config,
        }
    }

    /// The session configuration of a new connection: the next login in
    /// turn, when logging in.
    fn session_config(&self) -> ClientConfig {
        let mut client = self.client.clone();
        if let Some(plan) = &self.config.auth {
            let n = self.logins.fetch_add(1, Ordering::Relaxed) % plan.users.len();
            let (user, password) = plan.users[n].clone();
            client.auth = Some(Auth {
                mechanism: plan.mechanism,
                user,
                password,
            });
        }
        client
    }

    /// Runs a client handshake on `stream` (within the timeout and the
    /// session's deadline) and counts it; `-v` and the transcript show what
    /// it negotiated.
    async fn handshake(
        &self,
        stream: Stream,
        stats: &mut Stats,
        session: u32,
        deadline: Option<Instant>,
    ) -> Result<Stream, Error> {
        let Some(plan) = &self.config.tls else {
            return Ok(stream);
        };
        // The configuration (and with it the resumption cache) is shared by
        // every connection; the connector is only a handle on it.
        let connector = TlsConnector::from(plan.config.clone());
        let hs = stream.start_tls_client(&connector, plan.server_name.clone());
        let stream = match within(self.config.timeout, deadline, hs).await {
            Err(_) => {
                return Err(Error::Timeout {
                    phase: Phase::Starttls,
                    protocol: self.config.protocol,
                })
            }
            Ok(r) => r.map_err(Error::Tls)?,
        };
        if let Some(info) = stream.tls_info() {
            if info.resumed {
                stats.tls_resumed += 1;
            } else {
                stats.tls_full += 1;
            }
            let how = if info.resumed {
                "resumed"
            } else {
                "full handshake"
            };
            if self.output.verbose() {
                let peer = info.peer_subject().unwrap_or_else(|| "-".to_owned());
                self.output.info(
                    format!("TLS {} {}, {how}, peer: {peer}", info.protocol, info.cipher)
                        .as_bytes(),
                );
            }
            self.output.transcript_line(
                session,
                "==",
                format!("TLS started: {} {} ({how})", info.protocol, info.cipher).as_bytes(),
            );
            if stats.tls_negotiated.is_none() {
                stats.tls_negotiated = Some((info.protocol, info.cipher));
            }
        }
        Ok(stream)
    }

    /// Says once per run which asked-for features the server lacks.
    fn check_offered(&self, caps: &Capabilities) {
        let asked = &self.config.esmtp;
        let mut missing = Vec::new();
        if asked.pipelining && !caps.has(Extensions::PIPELINING) {
            missing.push("PIPELINING (sending one command at a time)");
        }
        if asked.chunking.is_some() && !caps.has(Extensions::CHUNKING) {
            missing.push("CHUNKING (sending DATA)");
        }
        if asked.smtputf8 && !caps.has(Extensions::SMTPUTF8) {
            missing.push("SMTPUTF8 (MAIL without it)");
        }
        if !missing.is_empty() && !self.warned_missing.swap(true, Ordering::Relaxed) {
            self.output
                .warning(&format!("server does not offer {}", missing.join(", ")));
        }
    }
}

/// A live connection and the conversation on it.
struct Link {
    conn: Conn<Stream>,
    session: ClientSession,
}

struct Worker<'s> {
    shared: Arc<Shared>,
    stats: &'s mut Stats,
    link: Option<Link>,
    /// Latency samples waiting to go to the recorder (when measuring).
    samples: Option<Samples>,
    /// When the current connection's connect began (µs).
    session_since: u64,
    /// STARTTLS's reply time, completed by the handshake's.
    starttls_reply: u64,
    /// The warm-up is over for this session (its counters restarted).
    warm: bool,
    /// The session's clock was set by the read just handled.
    clock_fresh: bool,
    /// Connect failures left before the fatal one (`-C`, whole life).
    connect_left: u32,
    /// Message-Id's second number: Postfix shows the socket's fd; ours is
    /// a per-session number in the same range (3, 4, ...).
    conn_number: u32,
    /// The session's number in the transcript: 1, 2, ... `-s`.
    session: u32,
    /// When the current connection must be over (`--session-timeout`,
    /// from the start of its connect).
    deadline: Option<Instant>,
    /// `--reply-timeout`: when the reply being waited for started (its
    /// command's write, the connect, or the end of the reply before it);
    /// None when no reply is being timed.
    reply_since: Option<Instant>,
    /// Reused buffers: what to write, header blocks, To: address.
    tx: Transmit,
    /// The header block of the message whose content goes out next.
    head: BytesMut,
    /// Under pipelining, the header block of a transaction started while
    /// `head`'s content was still due (`next_pending`); the two swap once
    /// that content is written, so neither buffer is ever reallocated.
    next_head: BytesMut,
    next_pending: bool,
    to: Vec<u8>,
}

/// Runs one session until the budget is used up, counting into `stats`
/// (which the caller keeps if it cancels the session).
///
/// # Errors
/// Any fatal condition, with Postfix's text.
pub async fn run_session(shared: Arc<Shared>, index: u32, stats: &mut Stats) -> Result<(), Error> {
    let samples = shared
        .measure
        .then(|| Samples::new(shared.schedule.is_some()));
    let mut w = Worker {
        connect_left: shared.config.connect_attempts,
        conn_number: 3 + index,
        session: index + 1,
        deadline: None,
        reply_since: None,
        samples,
        session_since: 0,
        starttls_reply: 0,
        warm: shared.config.warmup.is_none(),
        clock_fresh: false,
        shared,
        stats,
        link: None,
        tx: Transmit::default(),
        head: BytesMut::with_capacity(512),
        next_head: BytesMut::with_capacity(512),
        next_pending: false,
        to: Vec::with_capacity(64),
    };
    w.run().await
}

impl Drop for Worker<'_> {
    /// However the session ends (done, failed, or stopped by Ctrl-C or
    /// another session's fatal error), its batched samples are kept and
    /// its connection is no longer counted open.
    fn drop(&mut self) {
        if self.link.take().is_some() {
            self.shared.recorder.session_opened(-1);
        }
        self.flush();
    }
}

impl Worker<'_> {
    /// The session's loop: a transaction per budget claim (or per
    /// scheduled start under `--rate`) until the budget, the schedule or
    /// `--duration` ends.
    async fn run(&mut self) -> Result<(), Error> {
        while self.next_start().await? {
            self.transaction_cycle().await?;
        }
        if self.link.is_some() {
            self.quit().await?;
        }
        Ok(())
    }

    /// Waits for the next message's turn and claims it: under `--rate` its
    /// slot in the schedule (the connection's outstanding replies are read
    /// first, so none waits for the next slot, and the budget is claimed
    /// before a slot is taken, so no slot goes unused); false when the run
    /// is over (by `-m`, by the schedule or by `--duration`).
    async fn next_start(&mut self) -> Result<bool, Error> {
        // --duration: nothing starts after it, even a start the schedule
        // owes (what is in flight finishes).
        let over = |w: &Self| {
            w.shared.deadline != u64::MAX && w.shared.recorder.now() >= w.shared.deadline
        };
        if self.shared.schedule.is_some() {
            self.settle().await?;
        }
        if over(self) || !self.shared.budget.claim() {
            return Ok(false);
        }
        if let Some(schedule) = self.shared.schedule.as_ref() {
            let Some(due) = schedule.take() else {
                return Ok(false);
            };
            let rec = &self.shared.recorder;
            let at = rec.start() + std::time::Duration::from_micros(due);
            tokio::time::sleep_until(at.into()).await;
            if over(self) {
                return Ok(false);
            }
            self.warm_up_over();
            let rec = &self.shared.recorder;
            let now = rec.now();
            if let Some(samples) = self.samples.as_mut() {
                samples.started_late(rec, now.saturating_sub(due), now);
            }
        } else {
            self.warm_up_over();
        }
        Ok(true)
    }

    /// At the first message that starts after the warm-up, the session's
    /// counters start again: what happened during the warm-up is not
    /// reported.
    fn warm_up_over(&mut self) {
        if self.warm || !self.shared.recorder.recording(self.shared.recorder.now()) {
            return;
        }
        self.warm = true;
        let negotiated = self.stats.tls_negotiated.take();
        *self.stats = Stats {
            tls_negotiated: negotiated,
            ..Stats::default()
        };
        if let Some(samples) = self.samples.as_mut() {
            samples.restart_counts();
        }
    }

    /// One claimed message: connect if needed, the transaction, QUIT
    /// unless `-d`, the `-w`/`-R` pause.
    async fn transaction_cycle(&mut self) -> Result<(), Error> {
        let w = self;
        if w.link.is_none() {
            w.open().await?;
        }
        if w.link.is_some() {
            w.transaction().await?;
        }
        if !w.shared.config.keep_connection && w.link.is_some() {
            w.quit().await?;
        }
        if let Some(d) = pause(w.shared.config.delay) {
            // Under pipelining the last message's content waits for the
            // next commands: send it and read its reply before pausing.
            w.settle().await?;
            tokio::time::sleep(d).await;
        }
        Ok(())
    }

    /// The clock, when measuring.
    fn now(&self) -> Option<u64> {
        self.samples.as_ref().map(|_| self.shared.recorder.now())
    }

    /// Records one latency sample completed at `now`.
    fn record(&mut self, metric: Metric, micros: u64, now: u64) {
        let Some(samples) = self.samples.as_mut() else {
            return;
        };
        let rec = &self.shared.recorder;
        samples.record(rec, metric, micros, now);
        samples.count(rec, live_counts(self.stats), now);
        if samples.due(now) {
            samples.flush(rec, live_counts(self.stats), now);
        }
    }

    /// Sends what is batched to the recorder (at the end of the session).
    fn flush(&mut self) {
        if let Some(samples) = self.samples.as_mut() {
            let rec = &self.shared.recorder;
            samples.flush(rec, live_counts(self.stats), rec.now());
        }
    }

    /// Takes the session's timings into the batch.
    fn collect_timings(&mut self, now: Option<u64>) {
        let (Some(now), Some(link)) = (now, self.link.as_mut()) else {
            return;
        };
        let Some(samples) = self.samples.as_mut() else {
            return;
        };
        let rec = &self.shared.recorder;
        for t in link.session.timings() {
            let metric = match t.measured {
                // Completed by the handshake (see `drive`).
                Measured::Phase(Phase::Starttls) => {
                    self.starttls_reply = t.elapsed;
                    continue;
                }
                Measured::Phase(p) => Metric::of_phase(p),
                Measured::Transaction => Metric::Transaction,
            };
            samples.record(rec, metric, t.elapsed, now);
        }
        samples.count(rec, live_counts(self.stats), now);
        if samples.due(now) {
            samples.flush(rec, live_counts(self.stats), now);
        }
    }

    /// The connection is gone: its session time is recorded.
    fn closed(&mut self) {
        self.deadline = None;
        self.reply_since = None;
        if self.link.take().is_some() {
            self.shared
                .output
                .transcript_line(self.session, "==", b"closed");
            self.shared.recorder.session_opened(-1);
            if let Some(now) = self.now() {
                self.record(Metric::Session, now.saturating_sub(self.session_since), now);
            }
        }
    }

    /// Connects (with `-C` retries), reads the greeting, sends HELO. With
    /// `--session-timeout` each attempt starts the connection's deadline.
    async fn open(&mut self) -> Result<(), Error> {
        let waiting = self.now();
        let shared = Arc::clone(&self.shared);
        let gate = shared.connect_gate.lock().await;
        let mut connecting = self.now();
        if let (Some(from), Some(to)) = (waiting, connecting) {
            self.record(Metric::ConnectWait, to - from, to);
        }
        let cfg = &self.shared.config;
        let mut opts = ConnectOptions {
            window: cfg.window,
            bind: None,
            timeout: cfg.timeout,
            deadline: None,
        };
        // Every attempt takes the next source address, so a -C retry does
        // not repeat one that just failed.
        let mut source;
        let stream = loop {
            source = self.shared.sources.next();
            opts.bind = source.map(|(_, ip)| ip);
            opts.deadline = cfg
                .session_timeout
                .and_then(|t| Instant::now().checked_add(t));
            match connect(&cfg.target, &opts).await {
                Ok(s) => break s,
                Err(e) => {
                    self.stats.connect_failures += 1;
                    self.connect_left = self.connect_left.saturating_sub(1);
                    let to = cfg.target.to_string();
                    if self.connect_left == 0 {
                        return Err(Error::Connect { to, source: e });
                    }
                    self.shared
                        .output
                        .warning(&format!("{to}: connect: {}", strerror(&e)));
                    tokio::task::yield_now().await;
                    connecting = self.now();
                }
            }
        };
        drop(gate);
        self.deadline = opts.deadline;
        let connected = self.now();
        if let (Some(from), Some(to)) = (connecting, connected) {
            self.session_since = from;
            self.record(Metric::Connect, to - from, to);
        }
        self.stats.connections += 1;
        if let Some((index, _)) = source {
            self.stats.count_source(index);
        }
        self.shared.recorder.session_opened(1);
        let cfg = &self.shared.config;
        if self.shared.output.transcript() {
            let to = &cfg.target;
            let from = source.map_or_else(String::new, |(_, ip)| format!(" from {ip}"));
            self.shared.output.transcript_line(
                self.session,
                "==",
                format!("connected to {to}{from}").as_bytes(),
            );
        }
        let on_connect = cfg
            .tls
            .as_ref()
            .is_some_and(|t| t.start == TlsStart::OnConnect);
        let stream = if on_connect {
            self.starttls_reply = 0;
            self.tls_handshake(stream).await?
        } else {
            stream
        };
        let mut session = ClientSession::new(self.shared.session_config());
        if let Some(now) = self.now() {
            session.set_clock(now);
        }
        self.link = Some(Link {
            conn: Conn::new(stream, self.shared.config.timeout).with_deadline(self.deadline),
            session,
        });
        self.drive().await
    }

    /// Runs the TLS handshake on `stream` and records its time: the
    /// `starttls` sample is STARTTLS's reply time (0 with
    /// `--tls-on-connect`) plus the handshake's.
    async fn tls_handshake(&mut self, stream: Stream) -> Result<Stream, Error> {
        let began = self.now();
        let shared = Arc::clone(&self.shared);
        let stream = shared
            .handshake(stream, self.stats, self.session, self.deadline)
            .await;
        if let (Some(began), Some(now)) = (began, self.now()) {
            self.record(Metric::Starttls, self.starttls_reply + (now - began), now);
        }
        stream
    }

    /// One transaction; the budget is already claimed.
    async fn transaction(&mut self) -> Result<(), Error> {
        let Some(link) = self.link.as_mut() else {
            return Ok(());
        };
        let cfg = &self.shared.config;
        if !link.session.is_idle() {
            return Ok(());
        }
        self.stats.transactions += 1;
        let first = cfg
            .number_recipients
            .then(|| self.shared.numbers.take(cfg.recipients));
        let last_rcpt = first.map(|f| f + u64::from(cfg.recipients) - 1);
        // The header block is rendered now: SIZE= and BDAT need its
        // length. Behind a content still due, it waits in `next_head`.
        let head = if link.session.content_due() {
            self.next_pending = true;
            &mut self.next_head
        } else {
            &mut self.head
        };
        render_head(
            &self.shared,
            self.conn_number,
            last_rcpt,
            head,
            &mut self.to,
        );
        let content_len = (head.len() + self.shared.raw_body.len()) as u64;
        link.session
            .mail(&cfg.sender, content_len)
            .expect("the session is idle");
        match first {
            Some(first) => {
                let mut digits = [0u8; 20];
                for n in first..first + u64::from(cfg.recipients) {
                    let num = itoa(n, &mut digits);
                    link.session.rcpt(&[&cfg.rcpt_local, num, &cfg.rcpt_domain]);
                }
            }
            None => {
                for _ in 0..cfg.recipients {
                    link.session.rcpt(&[&cfg.recipient]);
                }
            }
        }
        link.session.data();
        self.drive().await
    }

    /// QUIT, then close (an RST, from SO_LINGER 0).
    async fn quit(&mut self) -> Result<(), Error> {
        if let Some(link) = self.link.as_mut() {
            if link.session.quit().is_ok() {
                self.drive().await?;
            }
        }
        self.closed();
        Ok(())
    }

    /// Runs the conversation until the session is idle (a transaction or
    /// QUIT may start) or closed.
    async fn drive(&mut self) -> Result<(), Error> {
        // Whatever happened since the last read (a pause, a schedule
        // slot) is not the next command's latency.
        self.clock_fresh = false;
        loop {
            if !self.handle_events().await? {
                return Ok(());
            }
            if self.link.as_ref().is_some_and(|l| l.session.is_idle()) {
                // A content still due waits for the next transaction's
                // commands (or QUIT), to share their write.
                return Ok(());
            }
            if !self.io_step().await? {
                return Ok(());
            }
        }
    }

    /// Reads until no reply is outstanding and no content is due, so an
    /// idle connection owes nothing while it waits (for a `--rate` slot).
    async fn settle(&mut self) -> Result<(), Error> {
        self.clock_fresh = false;
        loop {
            if !self.handle_events().await? {
                return Ok(());
            }
            let owes = self
                .link
                .as_ref()
                .is_some_and(|l| l.session.content_due() || l.session.wants_read());
            if !owes || !self.io_step().await? {
                return Ok(());
            }
        }
    }

    /// Handles the session's events (a STARTTLS handshake among them).
    /// False when there is no connection any more.
    async fn handle_events(&mut self) -> Result<bool, Error> {
        loop {
            let Some(link) = self.link.as_mut() else {
                return Ok(false);
            };
            let Some(event) = link.session.poll_event() else {
                break;
            };
            match &event {
                Event::StartTls => {
                    self.start_tls().await?;
                    continue;
                }
                Event::Ready(caps) => self.shared.check_offered(caps),
                _ => {}
            }
            on_event(&self.shared, self.stats, self.session, event)?;
        }
        if self.link.as_ref().is_some_and(|l| l.session.is_closed()) {
            self.closed();
            return Ok(false);
        }
        Ok(true)
    }

    /// One write, or one read and what it completes. False when there is
    /// nothing to write and no reply to wait for.
    async fn io_step(&mut self) -> Result<bool, Error> {
        let protocol = self.shared.config.protocol;
        let measure = self.samples.is_some();
        let Some(link) = self.link.as_mut() else {
            return Ok(false);
        };
        if measure && !self.clock_fresh {
            link.session.set_clock(self.shared.recorder.now());
        }
        // A write right after a read is stamped with the read's time: the
        // microsecond between them is not worth a second clock read per
        // round trip.
        self.clock_fresh = false;
        if link.session.poll_transmit(&mut self.tx) {
            let phase = link.session.phase();
            let sent = write_transmit(
                &self.shared,
                self.session,
                &mut link.conn,
                &self.tx,
                &self.head,
            )
            .await
            .map_err(|f| io_error(f, phase, protocol))?;
            if sent.contents > 0 && self.next_pending {
                std::mem::swap(&mut self.head, &mut self.next_head);
                self.next_pending = false;
            }
            if self.reply_since.is_none() && self.shared.config.reply_timeout.is_some() {
                // A reply already awaited keeps its earlier start.
                self.reply_since = Some(Instant::now());
            }
            self.stats.messages_sent += sent.contents;
            self.stats.bytes_sent += sent.bytes;
            for _ in 0..sent.contents {
                self.shared.output.message_sent();
            }
            return Ok(true);
        }
        if !link.session.wants_read() {
            return Ok(false);
        }
        let reply_timeout = self.shared.config.reply_timeout;
        let held = link.conn.rbuf.len();
        // Replies already read (a pipelined server's) come first.
        link.session
            .handle_input(&mut link.conn.rbuf)
            .map_err(|source| Error::Protocol {
                phase: link.session.phase(),
                protocol,
                source,
            })?;
        if !link.session.wants_read() {
            self.reply_since = None;
            self.collect_timings(self.now());
            return Ok(true);
        }
        let phase = link.session.phase();
        let read = match reply_timeout {
            // Postfix's per-read timeout only: the hot path, unchanged.
            None => link.conn.read().await,
            Some(limit) => {
                // A reply that ended above: the next one's clock starts.
                if link.conn.rbuf.len() < held {
                    self.reply_since = None;
                }
                let since = *self.reply_since.get_or_insert_with(Instant::now);
                let until = since.checked_add(limit);
                let read = link.conn.read_by(until).await;
                if read == Err(IoFail::Timeout) && until.is_some_and(|u| Instant::now() >= u) {
                    return Err(Error::ReplyTimeout {
                        phase,
                        protocol,
                        limit,
                    });
                }
                read
            }
        };
        let now = measure.then(|| self.shared.recorder.now());
        if let Some(now) = now {
            link.session.set_clock(now);
            self.clock_fresh = true;
        }
        match read {
            Ok(0) => {
                if let Some(phase) = link.session.handle_eof() {
                    return Err(Error::Lost { phase, protocol });
                }
            }
            Ok(_) => {
                let before = link.conn.rbuf.len();
                link.session
                    .handle_input(&mut link.conn.rbuf)
                    .map_err(|source| Error::Protocol {
                        phase,
                        protocol,
                        source,
                    })?;
                if reply_timeout.is_some() && link.conn.rbuf.len() < before {
                    // A reply ended (the parser took its bytes): the next
                    // one, if any is awaited, is timed from now.
                    self.reply_since = None;
                }
            }
            Err(IoFail::Lost) if phase == Phase::Quit => {
                // A reset after QUIT is as good as a reply.
                link.session.handle_eof();
            }
            Err(f) => return Err(io_error(f, phase, protocol)),
        }
        self.collect_timings(now);
        Ok(true)
    }

    /// The server said 220 to STARTTLS: the handshake, then the session
    /// greets again over TLS.
    async fn start_tls(&mut self) -> Result<(), Error> {
        // RFC 3207 §4.2: nothing the server sent after its 220 may be
        // used; bytes there mean a broken or hostile server.
        let Some(old) = self.link.take() else {
            return Ok(());
        };
        let (stream, rbuf) = old.conn.into_parts();
        if !rbuf.is_empty() {
            return Err(Error::Tls(std::io::Error::other(
                "the server sent data after its 220 to STARTTLS",
            )));
        }
        let stream = self.tls_handshake(stream).await?;
        let mut session = old.session;
        session.tls_started();
        self.clock_fresh = false;
        self.link = Some(Link {
            conn: Conn::new(stream, self.shared.config.timeout).with_deadline(self.deadline),
            session,
        });
        Ok(())
    }
}

/// What a write carried.
struct Sent {
    /// Messages whose content went out whole (DATA content, or a last
    /// BDAT chunk).
    contents: u64,
    /// Content bytes written: the header block and body as they travel
    /// (dot-stuffed for DATA, without the final "."; BDAT chunks as they
    /// are).
    bytes: u64,
}

/// Writes one [`Transmit`] in order: commands, and the message content
/// (header block + shared body) without copying it. With `-v`, each
/// command line is shown as it is sent and a message as ".", in the order
/// they go out; a write that starts with a message's content is shown once
/// written, as Postfix shows its end of data. The transcript shows every
/// write before it is made.
async fn write_transmit(
    shared: &Shared,
    session: u32,
    conn: &mut Conn<Stream>,
    tx: &Transmit,
    head: &[u8],
) -> Result<Sent, IoFail> {
    let verbose = shared.output.verbose();
    let content_first = !matches!(tx.pieces.first(), Some(Piece::Commands(_)));
    // The content as it travels, without the final ".": what the sink
    // counts as content bytes.
    let content_len = (head.len() + shared.body.len()).saturating_sub(b".\r\n".len()) as u64;
    if shared.output.transcript() {
        shown(tx, content_len, |line| {
            let text: std::borrow::Cow<'_, [u8]> = match line {
                Shown::Command(l) => l.into(),
                Shown::Content(n) => format!("<message, {n} bytes>").into_bytes().into(),
                Shown::Chunk(n) => format!("<chunk, {n} bytes>").into_bytes().into(),
            };
            shared.output.transcript_line(session, "->", &text);
        });
    }
    if verbose && !content_first {
        show(shared, tx);
    }
    // Set up on every write, so kept small: many BDAT chunks are written
    // in several calls.
    let mut parts: [&[u8]; 16] = [&[]; 16];
    let mut n = 0;
    let mut contents = 0;
    let mut bytes = 0;
    for piece in &tx.pieces {
        if n + 2 > parts.len() {
            // Many small BDAT chunks: write what is gathered so far.
            conn.write_parts(&mut parts[..n]).await?;
            n = 0;
        }
        match piece {
            Piece::Commands(r) | Piece::Secret(r) => {
                parts[n] = &tx.commands[r.clone()];
                n += 1;
            }
            Piece::DataContent if shared.body.count == 0 => {
                parts[n] = head;
                parts[n + 1] = &shared.body.tail;
                n += 2;
                contents += 1;
                bytes += content_len;
            }
            Piece::DataContent => {
                // A long -l body: what is gathered, then the copies of
                // the chunk, then the tail with what follows it.
                parts[n] = head;
                conn.write_parts(&mut parts[..=n]).await?;
                write_copies(conn, &shared.body).await?;
                parts[0] = &shared.body.tail;
                n = 1;
                contents += 1;
                bytes += content_len;
            }
            Piece::Chunk(r) => {
                let (start, end) = (r.start as usize, r.end as usize);
                let h = head.len();
                if start < h {
                    parts[n] = &head[start..end.min(h)];
                    n += 1;
                }
                if end > h {
                    let raw = &shared.raw_body;
                    let range = start.max(h) - h..end - h;
                    if raw.count == 0 {
                        parts[n] = &raw.tail[range];
                        n += 1;
                    } else {
                        // A long -l body: the chunk copies the range
                        // crosses, written as the slots fill.
                        for slice in raw.slices(range) {
                            if n == parts.len() {
                                conn.write_parts(&mut parts[..n]).await?;
                                n = 0;
                            }
                            parts[n] = slice;
                            n += 1;
                        }
                    }
                }
                bytes += (end - start) as u64;
                if end as u64 == (h + shared.raw_body.len()) as u64 {
                    contents += 1;
                }
            }
        }
    }
    conn.write_parts(&mut parts[..n]).await?;
    if verbose && content_first {
        show(shared, tx);
    }
    Ok(Sent { contents, bytes })
}

/// Writes the `count` copies of a long body's chunk, a few per `writev`.
async fn write_copies(conn: &mut Conn<Stream>, body: &Repeated) -> Result<(), IoFail> {
    const PER_WRITE: usize = 8;
    let mut left = body.count;
    while left > 0 {
        let k = left.min(PER_WRITE);
        let mut parts: [&[u8]; PER_WRITE] = [&body.chunk; PER_WRITE];
        conn.write_parts(&mut parts[..k]).await?;
        left -= k;
    }
    Ok(())
}

/// A line of a write as a person is shown it.
enum Shown<'a> {
    /// A command line without its CRLF, AUTH's secrets masked.
    Command(&'a [u8]),
    /// A message's DATA content: its length as it travels, without the
    /// final ".".
    Content(u64),
    /// A BDAT chunk's bytes: how many.
    Chunk(u64),
}

/// The lines of a write in the order they go out, for `-v` and the
/// transcript alike.
fn shown(tx: &Transmit, content_len: u64, mut line: impl FnMut(Shown<'_>)) {
    for piece in &tx.pieces {
        match piece {
            Piece::Commands(r) => {
                for l in tx.commands[r.clone()].split_inclusive(|&b| b == b'\n') {
                    line(Shown::Command(l.strip_suffix(b"\r\n").unwrap_or(l)));
                }
            }
            Piece::Secret(r) => {
                // AUTH PLAIN <secret> keeps its mechanism; a LOGIN
                // response is all secret.
                let l = &tx.commands[r.clone()];
                line(Shown::Command(if l.starts_with(b"AUTH LOGIN") {
                    b"AUTH LOGIN"
                } else if l.starts_with(b"AUTH PLAIN") {
                    b"AUTH PLAIN ****"
                } else {
                    b"****"
                }));
            }
            Piece::DataContent => line(Shown::Content(content_len)),
            Piece::Chunk(r) => line(Shown::Chunk(r.end - r.start)),
        }
    }
}

/// `-v`: the lines of a write, the content as "." (Postfix's), a BDAT
/// chunk's bytes not at all.
fn show(shared: &Shared, tx: &Transmit) {
    shown(tx, 0, |line| match line {
        Shown::Command(l) => shared.output.info(l),
        Shown::Content(_) => shared.output.info(b"."),
        Shown::Chunk(_) => {}
    });
}

fn io_error(f: IoFail, phase: Phase, protocol: smtp_proto::client::Protocol) -> Error {
    match f {
        IoFail::Timeout => Error::Timeout { phase, protocol },
        IoFail::Lost => Error::Lost { phase, protocol },
    }
}

/// Writes the header block of a message into `head` (empty under -o and
/// -F).
fn render_head(
    shared: &Shared,
    conn_number: u32,
    last_rcpt: Option<u64>,
    head: &mut BytesMut,
    to: &mut Vec<u8>,
) {
    head.clear();
    if let Some(stamper) = &shared.stamper {
        stamper.write(head);
    }
    let cfg = &shared.config;
    if !cfg.headers {
        return;
    }
    let to_addr: &[u8] = match last_rcpt {
        Some(n) => {
            to.clear();
            to.extend_from_slice(&cfg.rcpt_local);
            let mut digits = [0u8; 20];
            to.extend_from_slice(itoa(n, &mut digits));
            to.extend_from_slice(&cfg.rcpt_domain);
            to
        }
        None => &cfg.recipient,
    };
    HeaderBlock {
        from: &cfg.sender,
        to: to_addr,
        date: &shared.date,
        // Postfix prints the int budget with %04x: a negative one shows
        // as its two's complement.
        message_id: (
            shared.pid,
            conn_number,
            shared.budget.remaining() as i32 as u32,
        ),
        hostname: cfg.myhostname.as_bytes(),
        subject: cfg.subject.as_deref(),
    }
    .write(head);
}

/// What the progress line shows of a session's counters.
fn live_counts(stats: &Stats) -> LiveCounts {
    LiveCounts {
        sent: stats.messages_sent,
        accepted: stats.accepted,
        rejected: stats.failed_by_phase.iter().sum(),
        failed: stats.connect_failures,
    }
}

fn on_event(shared: &Shared, stats: &mut Stats, session: u32, event: Event) -> Result<(), Error> {
    let protocol = shared.config.protocol;
    match event {
        Event::Ready(_) | Event::StartTls => {}
        Event::Authenticated => stats.auth_ok += 1,
        Event::Closed(CloseReason::NotOffered(phase)) => return Err(Error::NotOffered(phase)),
        Event::Reply { reply, .. } => {
            let output = &shared.output;
            for line in reply_lines(&reply) {
                if output.verbose() {
                    let mut text = Vec::with_capacity(line.len() + 4);
                    text.extend_from_slice(b"<<< ");
                    text.extend_from_slice(&line);
                    output.info(&text);
                }
                output.transcript_line(session, "<-", &line);
            }
        }
        Event::Rejected { phase, reply } => {
            stats.rejects_by_phase[phase.index()] += 1;
            if !shared.config.tolerate_rejects {
                return Err(Error::Rejected {
                    phase,
                    protocol,
                    reply,
                });
            }
            shared.output.warning(&format!(
                "{}: {}",
                reject_text(phase, protocol),
                reply_text(&reply)
            ));
        }
        Event::TransactionDone(Outcome::Delivered { .. }) => stats.accepted += 1,
        Event::TransactionDone(Outcome::Rejected { phase }) => {
            stats.failed_by_phase[phase.index()] += 1;
        }
        Event::Closed(CloseReason::ServiceClosing) => stats.service_closing += 1,
        Event::Closed(_) => {}
    }
    Ok(())
}

/// Each line of a reply as received (code and separator included), its
/// bytes censored like Postfix's: `-v` shows them as `<<< line`, the
/// transcript as `<- line`.
fn reply_lines(reply: &Reply) -> impl Iterator<Item = Vec<u8>> + '_ {
    reply
        .raw()
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            line.iter()
                .map(|&b| crate::error::censor(b) as u8)
                .collect()
        })
}
