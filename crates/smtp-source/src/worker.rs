//! One session (`-s` runs this many at once): Postfix's callback chain
//! start → connect → banner → HELO → MAIL → RCPT×r → DATA → message → MAIL
//! again (`-d`) or QUIT, written as a loop that drives the sans-IO
//! [`ClientSession`] over a [`Conn`].
//!
//! Each worker owns its connection, its reused buffers and its [`Stats`];
//! the only shared state is atomics (budget, recipient numbers, `-c`).

use std::sync::Arc;

use bytes::{Bytes, BytesMut};
use smtp_proto::{
    client::{ClientConfig, ClientSession, CloseReason, Event, Outcome, Phase, Transmit},
    message::HeaderBlock,
    Reply,
};

use crate::{
    config::Config,
    conn::{Conn, IoFail},
    connect::connect,
    error::{reject_text, reply_text, strerror, Error},
    output::Output,
    plan::{itoa, pause, Budget, RcptNumbers},
    report::{phase_index, Stats},
};

/// What every worker shares, built once per run.
#[derive(Debug)]
pub struct Shared {
    /// The configuration.
    pub config: Config,
    /// The body, rendered and stuffed once, ending in `.` CRLF.
    pub body: Bytes,
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
}

impl Shared {
    /// Renders what is shared.
    pub fn new(config: Config, now_unix: i64) -> Self {
        let body = config.body.render();
        let date = smtp_proto::time::mail_date(now_unix).into_bytes();
        let output = Output::new(&config.argv0, config.verbose > 0, config.counter);
        let mut client = ClientConfig::new(
            config.protocol,
            config.send_helo.then_some(config.myhostname.as_bytes()),
            config.tolerate_rejects,
        );
        client.report_replies = config.verbose > 0;
        Self {
            body,
            date,
            budget: Budget::new(config.messages),
            numbers: RcptNumbers::default(),
            output,
            pid: std::process::id(),
            connect_gate: tokio::sync::Mutex::new(()),
            client,
            config,
        }
    }
}

/// A live connection and the conversation on it.
struct Link {
    conn: Conn,
    session: ClientSession,
}

struct Worker<'s> {
    shared: Arc<Shared>,
    stats: &'s mut Stats,
    link: Option<Link>,
    /// Connect failures left before the fatal one (`-C`, whole life).
    connect_left: u32,
    /// Message-Id's second number: Postfix shows the socket's fd; ours is
    /// a per-session number in the same range (3, 4, ...).
    conn_number: u32,
    /// Reused buffers: commands out, header block, To: address.
    out: BytesMut,
    head: BytesMut,
    to: Vec<u8>,
    /// The number of the last recipient of the transaction, for To:.
    last_rcpt: Option<u64>,
}

/// Runs one session until the budget is used up, counting into `stats`
/// (which the caller keeps if it cancels the session).
///
/// # Errors
/// Any fatal condition, with Postfix's text.
pub async fn run_session(shared: Arc<Shared>, index: u32, stats: &mut Stats) -> Result<(), Error> {
    let mut w = Worker {
        connect_left: shared.config.connect_attempts,
        conn_number: 3 + index,
        shared,
        stats,
        link: None,
        out: BytesMut::with_capacity(512),
        head: BytesMut::with_capacity(512),
        to: Vec::with_capacity(64),
        last_rcpt: None,
    };
    loop {
        if !w.shared.budget.claim() {
            if w.link.is_some() {
                w.quit().await?;
            }
            break;
        }
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
            tokio::time::sleep(d).await;
        }
    }
    Ok(())
}

impl Worker<'_> {
    /// Connects (with `-C` retries), reads the greeting, sends HELO.
    async fn open(&mut self) -> Result<(), Error> {
        let cfg = &self.shared.config;
        let gate = self.shared.connect_gate.lock().await;
        let stream = loop {
            match connect(&cfg.target, cfg.window, cfg.timeout).await {
                Ok(s) => break s,
                Err(e) => {
                    self.stats.connect_failures += 1;
                    self.connect_left = self.connect_left.saturating_sub(1);
                    if self.connect_left == 0 {
                        return Err(Error::Connect(e));
                    }
                    self.shared
                        .output
                        .warning(&format!("connect: {}", strerror(&e)));
                    tokio::task::yield_now().await;
                }
            }
        };
        drop(gate);
        self.stats.connections += 1;
        self.link = Some(Link {
            conn: Conn::new(stream, cfg.timeout),
            session: ClientSession::new(self.shared.client.clone()),
        });
        self.drive().await
    }

    /// One transaction; the budget is already claimed.
    async fn transaction(&mut self) -> Result<(), Error> {
        let Some(link) = self.link.as_mut() else {
            return Ok(());
        };
        let cfg = &self.shared.config;
        if link.session.mail(&cfg.sender).is_err() {
            return Ok(());
        }
        self.stats.transactions += 1;
        if cfg.number_recipients {
            let first = self.shared.numbers.take(cfg.recipients);
            let mut digits = [0u8; 20];
            for n in first..first + u64::from(cfg.recipients) {
                let num = itoa(n, &mut digits);
                link.session.rcpt(&[&cfg.rcpt_local, num, &cfg.rcpt_domain]);
            }
            self.last_rcpt = Some(first + u64::from(cfg.recipients) - 1);
        } else {
            for _ in 0..cfg.recipients {
                link.session.rcpt(&[&cfg.recipient]);
            }
            self.last_rcpt = None;
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
        self.link = None;
        Ok(())
    }

    /// Runs the conversation until the session is idle or closed.
    async fn drive(&mut self) -> Result<(), Error> {
        let protocol = self.shared.config.protocol;
        loop {
            let Some(link) = self.link.as_mut() else {
                return Ok(());
            };
            while let Some(event) = link.session.poll_event() {
                on_event(&self.shared, self.stats, event)?;
            }
            if link.session.is_closed() {
                self.link = None;
                return Ok(());
            }
            let sent = match link.session.poll_transmit(&mut self.out) {
                Transmit::Command => {
                    if self.shared.output.verbose() {
                        let line = self.out.strip_suffix(b"\r\n").unwrap_or(&self.out);
                        self.shared.output.info(line);
                    }
                    let r = link.conn.write_all(&self.out).await;
                    self.out.clear();
                    r.map_err(|f| io_error(f, link.session.phase(), protocol))?;
                    true
                }
                Transmit::Message => {
                    let head = render_head(
                        &self.shared,
                        self.conn_number,
                        self.last_rcpt,
                        &mut self.head,
                        &mut self.to,
                    );
                    let r = link.conn.write_message(head, &self.shared.body).await;
                    r.map_err(|f| io_error(f, Phase::EndOfData, protocol))?;
                    self.stats.messages_sent += 1;
                    if self.shared.output.verbose() {
                        self.shared.output.info(b".");
                    }
                    self.shared.output.message_sent();
                    true
                }
                Transmit::Nothing => false,
            };
            if !link.session.wants_read() {
                if sent {
                    continue;
                }
                // Idle (or nothing left to do): back to the caller.
                return Ok(());
            }
            link.session
                .handle_input(&mut link.conn.rbuf)
                .map_err(|source| Error::Protocol {
                    phase: link.session.phase(),
                    protocol,
                    source,
                })?;
            if !link.session.wants_read() {
                continue;
            }
            let phase = link.session.phase();
            match link.conn.read().await {
                Ok(0) => {
                    if let Some(phase) = link.session.handle_eof() {
                        return Err(Error::Lost { phase, protocol });
                    }
                }
                Ok(_) => link
                    .session
                    .handle_input(&mut link.conn.rbuf)
                    .map_err(|source| Error::Protocol {
                        phase,
                        protocol,
                        source,
                    })?,
                Err(IoFail::Lost) if phase == Phase::Quit => {
                    // A reset after QUIT is as good as a reply.
                    link.session.handle_eof();
                }
                Err(f) => return Err(io_error(f, phase, protocol)),
            }
        }
    }
}

fn io_error(f: IoFail, phase: Phase, protocol: smtp_proto::client::Protocol) -> Error {
    match f {
        IoFail::Timeout => Error::Timeout { phase, protocol },
        IoFail::Lost => Error::Lost { phase, protocol },
    }
}

/// Writes the header block of this message into `head` (empty under -o
/// and -F) and returns it.
fn render_head<'a>(
    shared: &Shared,
    conn_number: u32,
    last_rcpt: Option<u64>,
    head: &'a mut BytesMut,
    to: &mut Vec<u8>,
) -> &'a [u8] {
    head.clear();
    let cfg = &shared.config;
    if !cfg.headers {
        return &head[..];
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
    &head[..]
}

fn on_event(shared: &Shared, stats: &mut Stats, event: Event) -> Result<(), Error> {
    let protocol = shared.config.protocol;
    match event {
        Event::Ready => {}
        Event::Reply { reply, .. } => print_reply(&shared.output, &reply),
        Event::Rejected { phase, reply } => {
            stats.rejects_by_phase[phase_index(phase)] += 1;
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
            stats.failed_by_phase[phase_index(phase)] += 1;
        }
        Event::Closed(CloseReason::ServiceClosing) => stats.service_closing += 1,
        Event::Closed(_) => {}
    }
    Ok(())
}

/// `-v`: each reply line as `<<< line`, censored like Postfix.
fn print_reply(output: &Output, reply: &Reply) {
    for line in reply.raw().split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let mut text = Vec::with_capacity(line.len() + 4);
        text.extend_from_slice(b"<<< ");
        text.extend(line.iter().map(|&b| crate::error::censor(b) as u8));
        output.info(&text);
    }
}
