//! The thin async shell around a [`Conversation`]: one task per client.
//!
//! It owns the stream (any [`Transport`]: TCP, a unix socket, TLS), the
//! read buffer and the idle timer, and does what the conversation's
//! [`Step`] says. Three things keep it fast and small:
//! * replies are written only when the conversation needs more input, so
//!   a pipelined batch gets one write;
//! * no read buffer is held while a client is idle: the task waits for
//!   readability with no buffer, allocates one to read, and frees it when
//!   everything in it has been used (an idle session after EHLO measured
//!   about 6.4 KiB of RSS, the task and its timer included);
//! * the idle timer is one `Sleep` per session that is re-armed only when
//!   it fires early, not on every read.
//!
//! TLS (`--starttls`, `--tls-on-connect`) swaps the stream: the session
//! runs over [`Stream`], and at [`Step::StartTls`] the plaintext [`Io`] is
//! taken apart, its buffered input thrown away, and the handshake's TLS
//! stream goes into a new one. A plaintext session never takes that path.

use std::future::{poll_fn, Future};
use std::pin::pin;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bytes::{Buf, BytesMut};
use rand::rngs::SmallRng;
use rand::SeedableRng;
use smtp_net::{strerror, Stream, Transport};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::conversation::{Conversation, Now, Step};
use crate::dump::{ClientAddr, FileDump};
use crate::{Shared, Stop};

/// Read size while reading commands: a whole pipelined batch, usually.
const COMMAND_READ: usize = 16 * 1024;
/// Read size inside DATA.
const DATA_READ: usize = 64 * 1024;
/// Output capacity kept between batches; bigger buffers are freed.
const KEEP_OUTPUT: usize = 1024;

/// How a session ended.
#[derive(Debug, PartialEq, Eq)]
enum End {
    /// The client closed, or the conversation did.
    Closed,
    /// No input for the idle timeout.
    ReadTimeout,
    /// A reply could not be written in time.
    WriteTimeout,
    /// A socket error.
    Lost,
    /// `-M` reached.
    Exit,
    /// STARTTLS was answered: the handshake comes next.
    StartTls,
    /// A TLS handshake failed (already logged).
    TlsFailed,
}

/// What ended a wait for input.
#[derive(Debug, PartialEq, Eq)]
enum Woke {
    /// Input was read into the buffer.
    Input,
    /// `--drain` started.
    Drain,
}

/// `--drain`'s signal, while this session has not yet seen it start.
type DrainWatch = Option<watch::Receiver<bool>>;

struct Io<S> {
    conn: S,
    buf: BytesMut,
    timeout: Duration,
    last_activity: Instant,
    /// The last read filled the buffer: more input is probably queued, so
    /// replies wait until it has been read (one write per batch).
    more_queued: bool,
}

impl<S: Transport> Io<S> {
    fn new(conn: S, timeout: Duration) -> Io<S> {
        Io {
            conn,
            buf: BytesMut::new(),
            timeout,
            last_activity: Instant::now(),
            more_queued: false,
        }
    }

    /// Writes all of `out`, waiting at most the timeout for each write.
    async fn flush(&mut self, out: &mut BytesMut) -> Result<(), End> {
        let wrote = !out.is_empty();
        while !out.is_empty() {
            match tokio::time::timeout(self.timeout, self.conn.write(out)).await {
                Ok(Ok(0) | Err(_)) => return Err(End::Lost),
                Ok(Ok(n)) => out.advance(n),
                Err(_) => return Err(End::WriteTimeout),
            }
        }
        if wrote {
            // TLS may hold encrypted records back when the socket was
            // full. A plain socket's flush is ready at once, without a
            // system call, so it is polled once before any timer is set.
            let conn = &mut self.conn;
            let once = poll_fn(|cx| match std::pin::Pin::new(&mut *conn).poll_flush(cx) {
                Poll::Ready(r) => Poll::Ready(Some(r)),
                Poll::Pending => Poll::Ready(None),
            })
            .await;
            let flushed = match once {
                Some(r) => Ok(r),
                None => tokio::time::timeout(self.timeout, self.conn.flush()).await,
            };
            match flushed {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(End::Lost),
                Err(_) => return Err(End::WriteTimeout),
            }
        }
        if out.capacity() > KEEP_OUTPUT {
            *out = BytesMut::new();
        }
        Ok(())
    }

    /// Lets go of a big read buffer once its contents are used up (or down
    /// to a few bytes of a partial line or end marker), so a quiet client
    /// costs little memory.
    fn shrink(&mut self) {
        if self.buf.is_empty() {
            if self.buf.capacity() > 0 {
                self.buf = BytesMut::new();
            }
        } else if !self.more_queued && self.buf.len() <= 1024 && self.buf.capacity() > 4096 {
            self.buf = BytesMut::from(&self.buf[..]);
        }
    }

    /// Reads input that is already queued, without waiting. Returns false
    /// when there is none.
    async fn read_queued(&mut self, size: usize) -> Result<bool, End> {
        self.buf.reserve(size);
        let spare = self.buf.capacity() - self.buf.len();
        let (conn, buf) = (&mut self.conn, &mut self.buf);
        // One poll of a read: data that is there is taken, and "not
        // ready" is an answer rather than a wait.
        let r = poll_fn(|cx| match pin!(conn.read_buf(buf)).poll(cx) {
            Poll::Ready(r) => Poll::Ready(Some(r)),
            Poll::Pending => Poll::Ready(None),
        })
        .await;
        match r {
            Some(Ok(0) | Err(_)) => Err(End::Closed),
            Some(Ok(n)) => {
                self.more_queued = n == spare;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// Waits for input (idle timer running) and reads one chunk, or for
    /// `drain` to start.
    async fn read(
        &mut self,
        size: usize,
        idle: &mut std::pin::Pin<&mut tokio::time::Sleep>,
        drain: &mut DrainWatch,
    ) -> Result<Woke, End> {
        if self.buf.is_empty() {
            // Hold no memory while the client is quiet.
            self.buf = BytesMut::new();
        }
        loop {
            let deadline = self.last_activity + self.timeout;
            let (conn, buf) = (&mut self.conn, &mut self.buf);
            let mut spare = 0;
            let draining = async {
                match drain.as_mut() {
                    // An error means the sender is gone: the process is
                    // ending anyway.
                    Some(rx) => rx.wait_for(|on| *on).await.is_ok(),
                    None => std::future::pending().await,
                }
            };
            let read = tokio::select! {
                biased;
                r = async {
                    poll_fn(|cx| conn.poll_read_ready(cx)).await?;
                    buf.reserve(size);
                    spare = buf.capacity() - buf.len();
                    conn.read_buf(buf).await
                } => Some(r),
                true = draining => {
                    *drain = None;
                    return Ok(Woke::Drain);
                }
                () = idle.as_mut() => None,
            };
            match read {
                Some(Ok(0) | Err(_)) => return Err(End::Closed),
                Some(Ok(n)) => {
                    self.last_activity = Instant::now();
                    self.more_queued = n == spare;
                    return Ok(Woke::Input);
                }
                None if Instant::now() >= deadline => return Err(End::ReadTimeout),
                None => idle.as_mut().reset(deadline.into()),
            }
        }
    }
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Serves one client, the `number`-th accepted (from 0), until it goes
/// away. `-n` and `-M` are reported to `shared`, which ends the process.
pub async fn serve(conn: Stream, client: ClientAddr, number: u64, shared: Arc<Shared>) {
    // Declared first, so dropped last: the conversation's counts are
    // flushed (when it is dropped) before the session stops counting as
    // open, also when the runtime drops this task at exit.
    let mut open = shared.stats.session_opened();
    let cfg = shared.cfg.clone();
    let dump = shared.dump.as_ref().map(|d| FileDump::new(d.clone()));
    let dumping = dump.is_some();
    // Clocks are read only for the options that need them.
    let throttle = shared.throttle.clone();
    let clocked = throttle.needs_clock();
    let now = move || Now {
        unix: if dumping { unix_now() } else { 0 },
        elapsed: if clocked {
            throttle.elapsed()
        } else {
            Duration::ZERO
        },
    };
    let rng = SmallRng::from_rng(&mut rand::rng());
    let mut conv = Conversation::new(
        cfg.clone(),
        shared.stats.clone(),
        client,
        dump,
        rng,
        shared.syslog.clone(),
    )
    .with_shared(shared.throttle.clone(), number);
    let idle = tokio::time::sleep(cfg.timeout);
    tokio::pin!(idle);
    let mut drain = cfg.drain.map(|_| shared.drain.subscribe());
    let end = converse(&mut conv, conn, &shared, &mut idle, &mut drain, now).await;
    drop(conv);
    open.finish();
    if end == End::Exit {
        shared.exit(Stop::MaxMessages);
        return;
    }
    if cfg.verbose > 0 {
        info!("disconnect");
    }
    if shared.stats.session_closed() {
        shared.exit(Stop::MaxSessions);
    }
}

/// The whole conversation over `conn`, TLS handshakes included. The end
/// is logged and the conversation closed (an unfinished dump removed)
/// before the socket closes, so a client that sees the close can rely on
/// both.
async fn converse(
    conv: &mut Conversation<FileDump>,
    mut conn: Stream,
    shared: &Shared,
    idle: &mut std::pin::Pin<&mut tokio::time::Sleep>,
    drain: &mut DrainWatch,
    now: impl Fn() -> Now,
) -> End {
    let timeout = shared.cfg.timeout;
    if shared.cfg.tls.as_ref().is_some_and(|t| t.on_connect) {
        match handshake(conn, shared, conv).await {
            Some(tls) => conn = tls,
            None => return end_session(conv, None, End::TlsFailed).await,
        }
    }
    let mut step = conv.start(now());
    loop {
        let mut io = Io::new(conn, timeout);
        let end = drive(conv, &mut io, idle, drain, step, &now).await;
        if end != End::StartTls {
            return end_session(conv, Some(io), end).await;
        }
        if !io.buf.is_empty() {
            // Plaintext the client sent after STARTTLS, before the 220:
            // it must never run as commands under TLS (CVE-2011-0411).
            warn!(
                "improper command pipelining after STARTTLS: {} bytes discarded",
                io.buf.len()
            );
        }
        let Io { conn: plain, .. } = io;
        match handshake(plain, shared, conv).await {
            Some(tls) => conn = tls,
            None => return end_session(conv, None, End::TlsFailed).await,
        }
        // Input under TLS, if the client sent any already, is read next.
        step = Step::Read;
    }
}

/// Logs how the session ended, closes the conversation, then the socket
/// (a TLS one with a close_notify alert).
async fn end_session(conv: &mut Conversation<FileDump>, io: Option<Io<Stream>>, end: End) -> End {
    match end {
        End::ReadTimeout => warn!("read timeout"),
        End::WriteTimeout => warn!("write timeout"),
        End::Lost => warn!("lost connection"),
        End::Closed | End::Exit | End::StartTls | End::TlsFailed => {}
    }
    conv.close();
    if let Some(mut io) = io {
        if matches!(io.conn, Stream::Tls(_)) && matches!(end, End::Closed | End::Exit) {
            // Best effort: a client that reads no more must not hold the
            // session for long.
            let bound = io.timeout.min(Duration::from_secs(1));
            let _ = tokio::time::timeout(bound, io.conn.shutdown()).await;
        }
    }
    end
}

/// The server side of a TLS handshake, bounded by `-t`. On success the
/// conversation learns it (and resets); a failure is logged and counted.
async fn handshake(
    conn: Stream,
    shared: &Shared,
    conv: &mut Conversation<FileDump>,
) -> Option<Stream> {
    let acceptor = shared.tls.as_ref()?;
    let result = tokio::time::timeout(shared.cfg.timeout, conn.start_tls_server(acceptor)).await;
    let tls = match result {
        Ok(Ok(tls)) => tls,
        Ok(Err(e)) => {
            warn!("TLS handshake failed: {}", strerror(&e));
            shared.stats.tls_handshake(None);
            return None;
        }
        Err(_) => {
            warn!("TLS handshake failed: timeout");
            shared.stats.tls_handshake(None);
            return None;
        }
    };
    let info = tls.tls_info()?;
    shared.stats.tls_handshake(Some(info.resumed));
    if shared.cfg.verbose > 0 {
        let resumed = if info.resumed { " (resumed)" } else { "" };
        info!(
            "TLS connection established: {} with cipher {}{resumed}",
            info.protocol, info.cipher
        );
    }
    conv.tls_started(info.protocol, &info.cipher);
    Some(tls)
}

async fn drive<S: Transport>(
    conv: &mut Conversation<FileDump>,
    io: &mut Io<S>,
    idle: &mut std::pin::Pin<&mut tokio::time::Sleep>,
    drain: &mut DrainWatch,
    mut step: Step,
    now: &impl Fn() -> Now,
) -> End {
    loop {
        let size = if conv.in_data() {
            DATA_READ
        } else {
            COMMAND_READ
        };
        if step == Step::Read && io.more_queued {
            // Keep the replies until the queued input is used up.
            match io.read_queued(size).await {
                Ok(true) => {
                    step = conv.input(&mut io.buf, now());
                    continue;
                }
                Ok(false) => io.more_queued = false,
                Err(end) => {
                    // Like Postfix's close, send what is pending first.
                    let _ = io.flush(conv.output()).await;
                    return end;
                }
            }
        }
        if let Err(end) = io.flush(conv.output()).await {
            return end;
        }
        step = match step {
            Step::Read => match io.read(size, idle, drain).await {
                Err(end) => return end,
                Ok(Woke::Input) => conv.input(&mut io.buf, now()),
                // Between transactions this queues the 421 and closes.
                Ok(Woke::Drain) => conv.drain(),
            },
            Step::Delay(d) => {
                // Reading stops and the idle timer is suspended meanwhile.
                tokio::time::sleep(d).await;
                io.last_activity = Instant::now();
                match conv.resume(now()) {
                    Step::Read => conv.input(&mut io.buf, now()),
                    other => other,
                }
            }
            Step::Stall(d) => {
                tokio::time::sleep(d).await;
                io.last_activity = Instant::now();
                conv.input(&mut io.buf, now())
            }
            Step::Abort(d) => {
                tokio::time::sleep(d).await;
                conv.abort_data();
                return match io.flush(conv.output()).await {
                    Ok(()) => End::Closed,
                    Err(end) => end,
                };
            }
            Step::Close => return End::Closed,
            Step::Exit => return End::Exit,
            Step::StartTls => return End::StartTls,
        };
        io.shrink();
    }
}
