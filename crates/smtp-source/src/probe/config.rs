//! smtp-probe's checked configuration, and the smtp-source [`Config`] of
//! one attempt: a probe attempt is a one-message smtp-source run, so both
//! programs share the transport, TLS, AUTH, timing and error texts.

use std::{
    ffi::OsString,
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use clap::Parser as _;
use smtp_proto::{client::Protocol, message::Body};

use super::cli::ProbeCli;
use crate::{
    cli::SessionArgs,
    config::{Config, ConfigError, Delay, Progress},
    session_plan::{session_plan, SessionPlan},
    target::Target,
};

/// The largest `-k`.
const MAX_KILOBYTES: u64 = 100 * 1024;

/// Everything a probe run needs, checked.
#[derive(Debug, Clone)]
pub struct ProbeConfig {
    /// `argv[0]` as typed.
    pub argv0: String,
    /// The command line as given.
    pub command_line: Vec<String>,
    /// `-r`.
    pub recipient: String,
    /// `-s`, or `$USER@` this host.
    pub sender: String,
    /// `-c`.
    pub count: u64,
    /// `-u`.
    pub until_success: bool,
    /// `--max-attempts` (per server, with `-u`).
    pub max_attempts: Option<u64>,
    /// `-i`.
    pub interval: Duration,
    /// `-t`: the whole session.
    pub timeout: Duration,
    /// `-k`.
    pub kilobytes: u64,
    /// `-m`.
    pub tag: String,
    /// `-b`.
    pub bind: Option<IpAddr>,
    /// Phase times on every attempt line (`-v`, or a terminal without `-q`).
    pub verbose: bool,
    /// `--helo`, or this host's name.
    pub hostname: String,
    /// `--dns-server`.
    pub dns_server: Option<SocketAddr>,
    /// `--json`.
    pub json: Option<String>,
    /// `--transcript`.
    pub transcript: bool,
    /// The ESMTP, TLS and AUTH options (checked; resolved per server, since
    /// TLS names the server).
    pub session: SessionArgs,
    /// The servers as given (with `-p`'s port where none was given);
    /// empty: the recipient domain's MX hosts.
    pub servers: Vec<String>,
    /// `-p`.
    pub port: u16,
}

/// How a probe command line was refused.
#[derive(Debug)]
pub enum ProbeConfigError {
    /// `--help` or `--version`: print this and exit 0.
    Help(String),
    /// clap's own message (unknown option, missing -r), printed as is.
    Usage(String),
    /// A bad value, printed after `fatal: `.
    Invalid(String),
}

impl ProbeConfig {
    /// Parses and checks a command line (`argv[0]` first).
    ///
    /// # Errors
    /// What is wrong with it.
    pub fn from_args<I, T>(args: I) -> Result<ProbeConfig, ProbeConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let cli = match ProbeCli::try_parse_from(&args) {
            Ok(cli) => cli,
            // --help and --version: text for stdout, exit 0.
            Err(e) if !e.use_stderr() => {
                return Err(ProbeConfigError::Help(e.render().to_string()))
            }
            Err(e) => return Err(ProbeConfigError::Usage(e.render().to_string())),
        };
        let command_line: Vec<String> = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        let argv0 = command_line
            .first()
            .cloned()
            .unwrap_or_else(|| "smtp-probe".to_owned());
        let bad = |what: &str, v: &str| ProbeConfigError::Invalid(format!("bad {what}: {v}"));
        let count = number(&cli.count).ok_or_else(|| bad("count", &cli.count))?;
        let max_attempts = match &cli.max_attempts {
            None => None,
            Some(m) => Some(
                number(m)
                    .filter(|n| *n > 0)
                    .ok_or_else(|| bad("--max-attempts", m))?,
            ),
        };
        let port: u16 = cli
            .port
            .trim()
            .parse()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| bad("port", &cli.port))?;
        let interval = seconds(&cli.interval).ok_or_else(|| bad("interval", &cli.interval))?;
        let timeout = seconds(&cli.timeout)
            .filter(|t| !t.is_zero())
            .ok_or_else(|| bad("timeout", &cli.timeout))?;
        // A probe message is built in memory: 100 MiB is plenty.
        let kilobytes = number(&cli.kilobytes)
            .filter(|k| *k <= MAX_KILOBYTES)
            .ok_or_else(|| bad("kilobytes (at most 102400)", &cli.kilobytes))?;
        let bind = match &cli.bind {
            None => None,
            Some(b) => Some(b.parse().map_err(|_| bad("bind address", b))?),
        };
        let dns_server = match &cli.dns_server {
            None => None,
            Some(d) => Some(d.parse().map_err(|_| bad("--dns-server (ADDR:PORT)", d))?),
        };
        if !cli.recipient.contains('@') && cli.servers.is_empty() {
            return Err(ProbeConfigError::Invalid(format!(
                "no server given and no domain in {} to look up",
                cli.recipient
            )));
        }
        // Checked once here, so that a bad TLS or AUTH option is a usage
        // error, not a failure of every attempt.
        session_plan(&cli.session, "localhost").map_err(|e| match e {
            ConfigError::Invalid { text, .. } => ProbeConfigError::Invalid(text),
            other => ProbeConfigError::Invalid(other.to_string()),
        })?;
        let hostname = cli.helo.clone().unwrap_or_else(crate::config::own_hostname);
        let sender = cli.sender.clone().unwrap_or_else(|| {
            let user = std::env::var("USER")
                .or_else(|_| std::env::var("LOGNAME"))
                .unwrap_or_else(|_| "smtp-probe".to_owned());
            format!("{user}@{hostname}")
        });
        let verbose = match (cli.quiet, cli.verbose) {
            (_, v) if v > 0 => true,
            (true, _) => false,
            _ => std::io::IsTerminal::is_terminal(&std::io::stdout()),
        };
        Ok(ProbeConfig {
            argv0,
            command_line,
            recipient: cli.recipient,
            sender,
            count,
            until_success: cli.until_success,
            max_attempts,
            interval,
            timeout,
            kilobytes,
            tag: cli.message,
            bind,
            verbose,
            hostname,
            dns_server,
            json: cli.json,
            transcript: cli.transcript,
            session: cli.session,
            servers: cli.servers.iter().map(|s| with_port(s, port)).collect(),
            port,
        })
    }

    /// Writes what a person reads (attempt lines, the summary): to stdout,
    /// or to stderr when the JSON goes to stdout (`--json -`).
    pub fn human_output(&self, text: &str) {
        use std::io::Write as _;
        let _ = if self.json.as_deref() == Some("-") {
            std::io::stderr().lock().write_all(text.as_bytes())
        } else {
            std::io::stdout().lock().write_all(text.as_bytes())
        };
    }

    /// The smtp-source configuration of one attempt: one message of
    /// `content` (headers and body) to `target` with the server's `plan`,
    /// the whole session bounded by `-t`.
    pub fn attempt(
        &self,
        server: &str,
        target: Target,
        content: Vec<u8>,
        plan: SessionPlan,
    ) -> Config {
        let recipient = self.recipient.clone().into_bytes();
        let (rcpt_local, rcpt_domain) = match recipient.iter().rposition(|&b| b == b'@') {
            Some(at) => (recipient[..at].to_vec(), recipient[at..].to_vec()),
            None => (recipient.clone(), Vec::new()),
        };
        Config {
            argv0: self.argv0.clone(),
            target,
            tolerate_rejects: false,
            counter: false,
            connect_attempts: 1,
            keep_connection: false,
            sender: self.sender.clone().into_bytes(),
            body: Body::File(content),
            headers: false,
            protocol: Protocol::Smtp,
            messages: 1,
            myhostname: self.hostname.clone(),
            number_recipients: false,
            send_helo: true,
            recipients: 1,
            delay: Delay::None,
            sessions: 1,
            subject: None,
            recipient,
            rcpt_local,
            rcpt_domain,
            window: None,
            verbose: 0,
            timeout: self.timeout,
            summary: false,
            json: None,
            html: None,
            threads: None,
            esmtp: plan.esmtp,
            tls: plan.tls,
            auth: plan.auth,
            command_line: self.command_line.clone(),
            target_text: server.to_owned(),
            progress: Progress::Never,
            duration: None,
            rate: None,
            warmup: None,
            thresholds: Vec::new(),
            stamp: false,
            run_id: crate::config::random_run_id(),
            segment: None,
            setup: Duration::ZERO,
            session_timeout: Some(self.timeout),
            // Redundant under the session's limit, but a reply that runs
            // out of it is then reported as such.
            reply_timeout: Some(self.timeout),
            transcript: self.transcript,
            // One -b address: a list of one.
            bind: self.bind.into_iter().collect(),
            measure: true,
        }
    }
}

/// `server` with `port` when it names none (`host` → `host:port`, `::1` →
/// `[::1]:port`); unix sockets and servers with a port are kept.
pub fn with_port(server: &str, port: u16) -> String {
    if server.starts_with("unix:") {
        return server.to_owned();
    }
    if server.parse::<std::net::Ipv6Addr>().is_ok() {
        return format!("[{server}]:{port}");
    }
    let bare = server.strip_prefix("inet:").unwrap_or(server);
    match smtp_proto::postfix::host_port(bare, smtp_proto::postfix::BareWord::Host) {
        Ok((_, "")) => format!("{server}:{port}"),
        _ => server.to_owned(),
    }
}

/// A count: decimal digits.
fn number(text: &str) -> Option<u64> {
    text.trim().parse().ok()
}

/// Seconds, fractions allowed.
fn seconds(text: &str) -> Option<Duration> {
    let s: f64 = text.trim().parse().ok()?;
    (s.is_finite() && s >= 0.0)
        .then(|| Duration::try_from_secs_f64(s).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<ProbeConfig, ProbeConfigError> {
        let mut v = vec!["smtp-probe"];
        v.extend_from_slice(args);
        ProbeConfig::from_args(v)
    }

    #[test]
    fn defaults_are_smtp_conversations() {
        let c = parse(&["-r", "postmaster@example.org", "mx1"]).unwrap();
        assert_eq!(c.count, 1);
        assert_eq!(c.interval, Duration::from_secs(60));
        assert_eq!(c.timeout, Duration::from_secs(10));
        assert_eq!(c.kilobytes, 0);
        assert_eq!(c.tag, "SMTPTEST");
        assert!(!c.until_success);
        assert_eq!(c.servers, ["mx1:25"]);
        assert!(c.sender.contains('@'));
    }

    #[test]
    fn ports() {
        assert_eq!(with_port("mx1", 25), "mx1:25");
        assert_eq!(with_port("mx1:2525", 25), "mx1:2525");
        assert_eq!(with_port("[::1]:2525", 25), "[::1]:2525");
        assert_eq!(with_port("::1", 2525), "[::1]:2525");
        assert_eq!(with_port("unix:/tmp/s", 25), "unix:/tmp/s");
        assert_eq!(with_port("127.0.0.1", 2525), "127.0.0.1:2525");
    }

    #[test]
    fn bad_values_are_refused() {
        for args in [
            &["-r", "a@b", "-i", "x", "h"][..],
            &["-r", "a@b", "-t", "0", "h"],
            &["-r", "a@b", "-b", "not-an-ip", "h"],
            &["-r", "a@b", "--max-attempts", "0", "h"],
            &["-r", "nodomain"],
            &["-r", "a@b", "--auth", "h"],
        ] {
            assert!(
                matches!(parse(args), Err(ProbeConfigError::Invalid(_))),
                "{args:?}"
            );
        }
        assert!(matches!(parse(&["h"]), Err(ProbeConfigError::Usage(_))));
        assert!(matches!(parse(&["-h"]), Err(ProbeConfigError::Help(_))));
        let c = parse(&["-r", "a@b", "-i", "0.5", "-t", "2.5", "h"]).unwrap();
        assert_eq!(c.interval, Duration::from_millis(500));
        assert_eq!(c.timeout, Duration::from_millis(2500));
    }
}
