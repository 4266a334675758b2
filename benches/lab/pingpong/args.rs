//! Command-line arguments of the ping-pong tool (flags named as in Postfix's
//! smtp-source where they mean the same thing).

use crate::{client, stream::Endpoint};

/// Every flag of every mode; each mode reads the ones it needs.
#[derive(Debug, Default)]
pub(crate) struct Args {
    tcp: Option<String>,
    unix: Option<String>,
    pub(crate) threads: usize,
    sessions: usize,
    messages: u64,
    keep_open: bool,
    rcpts: usize,
    body_len: usize,
    helo: Option<String>,
    pub(crate) count: usize,
    pub(crate) bind: Option<String>,
    pub(crate) rounds: usize,
    /// `--flavor threads|tokio`: a thread per session, or one event loop.
    pub(crate) flavor: Flavor,
    /// `--chunking`: the one-round-trip conversation (EHLO, then per message
    /// MAIL+RCPT+BDAT LAST+content in one write), for client and server.
    pub(crate) chunking: bool,
    /// `--starttls`: the conversation of our pair with `--starttls` (tokio
    /// flavour, TCP); `--no-tls-resume` (client) forces full handshakes.
    pub(crate) starttls: bool,
    no_tls_resume: bool,
}

/// How a ping-pong process runs its sessions.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Flavor {
    /// Blocking std::net, one thread per session: best with one session.
    #[default]
    Threads,
    /// One tokio current_thread loop: best with many sessions.
    Tokio,
}

impl Args {
    pub(crate) fn parse(argv: &[String]) -> Result<Self, String> {
        let mut args = Args {
            threads: 16,
            sessions: 1,
            messages: 1,
            rcpts: 1,
            rounds: 50,
            ..Args::default()
        };
        let mut it = argv.iter();
        while let Some(flag) = it.next() {
            let mut value = || {
                it.next()
                    .cloned()
                    .ok_or_else(|| format!("{flag} needs a value"))
            };
            match flag.as_str() {
                "--tcp" => args.tcp = Some(value()?),
                "--unix" => args.unix = Some(value()?),
                "--threads" => args.threads = number(flag, &value()?)?,
                "-s" => args.sessions = number(flag, &value()?)?,
                "-m" => args.messages = number(flag, &value()?)?,
                "-d" => args.keep_open = true,
                "--chunking" => args.chunking = true,
                "--starttls" => args.starttls = true,
                "--no-tls-resume" => args.no_tls_resume = true,
                "-r" => args.rcpts = number(flag, &value()?)?,
                "-l" => args.body_len = number(flag, &value()?)?,
                "--helo" => args.helo = Some(value()?),
                "--count" => args.count = number(flag, &value()?)?,
                "--bind" => args.bind = Some(value()?),
                "-n" => args.rounds = number(flag, &value()?)?,
                "--flavor" => {
                    args.flavor = match value()?.as_str() {
                        "threads" => Flavor::Threads,
                        "tokio" => Flavor::Tokio,
                        other => return Err(format!("--flavor: threads or tokio, not {other:?}")),
                    }
                }
                // `cargo bench` may pass this; it means nothing here.
                "--bench" => {}
                other => return Err(format!("unknown flag {other:?}")),
            }
        }
        Ok(args)
    }

    pub(crate) fn endpoint(&self) -> Result<Endpoint, String> {
        match (&self.tcp, &self.unix) {
            (Some(addr), None) => Ok(Endpoint::Tcp(addr.clone())),
            (None, Some(path)) => Ok(Endpoint::Unix(path.clone())),
            _ => Err("give exactly one of --tcp ADDR or --unix PATH".to_owned()),
        }
    }

    pub(crate) fn client_config(&self) -> client::Config {
        client::Config {
            sessions: self.sessions.max(1),
            messages: self.messages,
            keep_open: self.keep_open,
            rcpts: self.rcpts.max(1),
            body_len: self.body_len,
            helo: self.helo.clone().unwrap_or_else(client::default_helo),
            chunking: self.chunking,
            starttls: self.starttls,
            tls_resume: !self.no_tls_resume,
        }
    }
}

fn number<T: std::str::FromStr>(flag: &str, text: &str) -> Result<T, String> {
    text.parse()
        .map_err(|_| format!("{flag}: not a number: {text:?}"))
}
