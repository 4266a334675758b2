//! The ping-pong client: `-s` threads share a budget of `-m` messages and
//! play smtp-source's conversation, one blocking round trip per step.

use std::{
    io::Write,
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    thread,
    time::Instant,
};

use crate::{
    script::Script,
    stream::{read_line, Endpoint, Stream},
};

/// One run of the client.
#[derive(Debug, Clone)]
pub(crate) struct Config {
    pub(crate) sessions: usize,
    pub(crate) messages: u64,
    /// `-d`: keep the connection for the next message.
    pub(crate) keep_open: bool,
    pub(crate) rcpts: usize,
    /// `-l`: 0 is smtp-source's "La de da" body.
    pub(crate) body_len: usize,
    pub(crate) helo: String,
    /// `--chunking`: EHLO, then one write and one read per message.
    pub(crate) chunking: bool,
    /// `--starttls`: EHLO, STARTTLS, a rustls handshake, EHLO again (tokio
    /// flavour only, TCP only; see `tls.rs`).
    pub(crate) starttls: bool,
    /// `--no-tls-resume`: a full handshake on every connection.
    pub(crate) tls_resume: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            sessions: 1,
            messages: 1,
            keep_open: false,
            rcpts: 1,
            body_len: 0,
            helo: default_helo(),
            chunking: false,
            starttls: false,
            tls_resume: true,
        }
    }
}

/// smtp-source's default HELO name: this host's name.
pub(crate) fn default_helo() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

pub(crate) struct Outcome {
    messages: u64,
    seconds: f64,
}

impl Outcome {
    pub(crate) fn new(messages: u64, seconds: f64) -> Self {
        Outcome { messages, seconds }
    }

    pub(crate) fn to_json(&self) -> String {
        let rate = self.messages as f64 / self.seconds.max(1e-9);
        format!(
            "{{\"messages\":{},\"elapsed_s\":{:.6},\"msgs_per_s\":{:.1}}}",
            self.messages, self.seconds, rate
        )
    }
}

pub(crate) fn run(endpoint: &Endpoint, config: &Config) -> Result<Outcome, String> {
    let script = Arc::new(Script::new(&config.helo, config.rcpts, config.body_len));
    let budget = Arc::new(AtomicU64::new(config.messages));
    let done = Arc::new(AtomicU64::new(0));
    let start = Instant::now();
    let workers: Vec<_> = (0..config.sessions)
        .map(|_| {
            let (script, budget, done) = (script.clone(), budget.clone(), done.clone());
            let (endpoint, keep_open, chunking) =
                (endpoint.clone(), config.keep_open, config.chunking);
            thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || session(&endpoint, &script, keep_open, chunking, &budget, &done))
                .map_err(|e| format!("spawn: {e}"))
        })
        .collect::<Result<_, _>>()?;
    let mut first_error = None;
    for worker in workers {
        match worker.join() {
            Ok(Ok(())) => {}
            Ok(Err(e)) => first_error = first_error.or(Some(e)),
            Err(_) => first_error = first_error.or(Some("a session panicked".to_owned())),
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    match first_error {
        Some(e) => Err(e),
        None => Ok(Outcome {
            messages: done.load(Ordering::Relaxed),
            seconds,
        }),
    }
}

/// Takes one message from the shared budget, as smtp-source does when a
/// transaction starts.
fn claim(budget: &AtomicU64) -> bool {
    budget
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
}

fn session(
    endpoint: &Endpoint,
    script: &Script,
    keep_open: bool,
    chunking: bool,
    budget: &AtomicU64,
    done: &AtomicU64,
) -> Result<(), String> {
    let mut reply = Vec::with_capacity(512);
    let mut conn: Option<Stream> = None;
    while claim(budget) {
        let stream = match conn.as_mut() {
            Some(stream) => stream,
            None => {
                let mut stream =
                    Stream::connect(endpoint).map_err(|e| format!("connect {endpoint:?}: {e}"))?;
                expect_reply(&mut stream, &mut reply, "greeting")?;
                if chunking {
                    exchange(&mut stream, &script.ehlo, 1, &mut reply, "EHLO")?;
                } else {
                    step(&mut stream, &script.helo, &mut reply, "HELO")?;
                }
                conn.insert(stream)
            }
        };
        if chunking {
            let n = script.bdat_replies;
            exchange(stream, &script.bdat, n, &mut reply, "MAIL+RCPT+BDAT")?;
        } else {
            step(stream, &script.mail, &mut reply, "MAIL")?;
            for rcpt in &script.rcpts {
                step(stream, rcpt, &mut reply, "RCPT")?;
            }
            step(stream, script.data, &mut reply, "DATA")?;
            step(stream, &script.message, &mut reply, "end of data")?;
        }
        done.fetch_add(1, Ordering::Relaxed);
        if !keep_open {
            quit(conn.take().expect("connected above"), script, &mut reply)?;
        }
    }
    if let Some(stream) = conn {
        quit(stream, script, &mut reply)?;
    }
    Ok(())
}

fn quit(mut stream: Stream, script: &Script, reply: &mut Vec<u8>) -> Result<(), String> {
    step(&mut stream, script.quit, reply, "QUIT")?;
    stream.abort();
    Ok(())
}

fn step(stream: &mut Stream, bytes: &[u8], reply: &mut Vec<u8>, what: &str) -> Result<(), String> {
    stream
        .write_all(bytes)
        .map_err(|e| format!("sending {what}: {e}"))?;
    expect_reply(stream, reply, what)
}

/// One write, then reads until `replies` whole replies are in (`--chunking`).
fn exchange(
    stream: &mut Stream,
    bytes: &[u8],
    replies: usize,
    buf: &mut Vec<u8>,
    what: &str,
) -> Result<(), String> {
    use std::io::Read;
    stream
        .write_all(bytes)
        .map_err(|e| format!("sending {what}: {e}"))?;
    buf.clear();
    let mut chunk = [0u8; 512];
    while crate::bdat::replies_in(buf) < replies {
        match stream.read(&mut chunk) {
            Ok(0) => return Err(format!("connection closed awaiting the {what} replies")),
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e) => return Err(format!("reading the {what} replies: {e}")),
        }
    }
    Ok(())
}

fn expect_reply(stream: &mut Stream, reply: &mut Vec<u8>, what: &str) -> Result<(), String> {
    match read_line(stream, reply) {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!("connection closed awaiting the {what} reply")),
        Err(e) => Err(format!("reading the {what} reply: {e}")),
    }
}
