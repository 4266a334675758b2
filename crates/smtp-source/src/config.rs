//! The validated run configuration. [`Config::from_args`] is the only code
//! that sees the command line; its checks and texts are Postfix's
//! (docs/smtp-source.md "Options").

use std::{ffi::OsString, time::Duration};

use clap::Parser as _;
use smtp_proto::{
    client::{Esmtp, Protocol},
    message::Body,
    postfix::atoi,
    stamp::RunId,
};

use crate::segment::{Segment, INDEX_VARIABLE};

pub use crate::session_plan::{AuthPlan, TlsPlan, TlsStart};
use crate::{
    cli::Cli,
    session_plan::{session_plan, tls_name},
    target::{valid_address_literal, Family, Target},
    threshold::Threshold,
};

/// Pause between messages of a session (`-w`, `-R`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delay {
    /// None (the default).
    None,
    /// `-w s`: s seconds.
    Fixed(u32),
    /// `-R s`: a random 0..=s seconds.
    Random(u32),
}

/// Everything a run needs, checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// `argv[0]` as typed, for `<argv0>: fatal: ...`.
    pub argv0: String,
    /// Where to connect.
    pub target: Target,
    /// `-A`.
    pub tolerate_rejects: bool,
    /// `-c`.
    pub counter: bool,
    /// `-C`: connect attempts over a session's life.
    pub connect_attempts: u32,
    /// `-d`.
    pub keep_connection: bool,
    /// `-f` (or `foo@myhostname`).
    pub sender: Vec<u8>,
    /// What follows the headers.
    pub body: Body,
    /// Whether the generated header block is sent (not with -o or -F).
    pub headers: bool,
    /// `-L`.
    pub protocol: Protocol,
    /// `-m`.
    pub messages: i64,
    /// `-M` (or the host name).
    pub myhostname: String,
    /// `-N` or any `-r`: number the recipients.
    pub number_recipients: bool,
    /// Whether HELO/LHLO is sent (not with -o).
    pub send_helo: bool,
    /// `-r`.
    pub recipients: u32,
    /// `-w` / `-R`.
    pub delay: Delay,
    /// `-s`.
    pub sessions: u32,
    /// `-S`.
    pub subject: Option<Vec<u8>>,
    /// `-t` (or `foo@myhostname`), whole.
    pub recipient: Vec<u8>,
    /// `-t` split at the last `@`: the local part.
    pub rcpt_local: Vec<u8>,
    /// `-t` split at the last `@`: `@domain`, or empty.
    pub rcpt_domain: Vec<u8>,
    /// `-T`.
    pub window: Option<u32>,
    /// `-v` count.
    pub verbose: u8,
    /// `--timeout` (default 300 s): each read, write, connect and TLS
    /// handshake, as Postfix's.
    pub timeout: Duration,
    /// `--session-timeout`: one limit for a whole connection, from the
    /// start of its connect to its close; every step also ends when it
    /// comes, and failing it is a timeout in the phase it was in. None
    /// (the default): only `timeout`.
    pub session_timeout: Option<Duration>,
    /// `--reply-timeout`: one limit for each reply, from the write that
    /// carried its command (or the connect, for the greeting; or the end
    /// of the reply before it, when several are outstanding) to its last
    /// line, so a server that trickles a reply a byte at a time cannot
    /// hold a session for `timeout` per byte. None (the default): only
    /// `timeout`, per read, as Postfix's.
    pub reply_timeout: Option<Duration>,
    /// `--transcript`: the conversation on stderr as a person reads it in
    /// telnet or swaks (`-> ` commands, `<- ` replies, `== ` events,
    /// `[N] ` with more than one session); independent of `-v`.
    pub transcript: bool,
    /// `--bind` (smtp-probe: `-b`, one address): the source addresses of
    /// the TCP connections, each bound with port 0 before connect, taken
    /// in turn by each new connection ([`crate::bind::RoundRobin`]).
    /// Empty (the default): the kernel chooses.
    pub bind: Vec<std::net::IpAddr>,
    /// Time the sessions even when nothing else asks for figures
    /// ([`Config::measures`]); smtp-probe always does. No option.
    pub measure: bool,
    /// `--summary`.
    pub summary: bool,
    /// `--json`.
    pub json: Option<String>,
    /// `--html`.
    pub html: Option<String>,
    /// `--threads` (None: the measured default).
    pub threads: Option<usize>,
    /// The ESMTP features asked for (`--ehlo`, `--pipelining`, ...).
    pub esmtp: Esmtp,
    /// TLS, when asked for.
    pub tls: Option<TlsPlan>,
    /// AUTH, when asked for.
    pub auth: Option<AuthPlan>,
    /// The command line as given (for the report).
    pub command_line: Vec<String>,
    /// The target as typed (for the report).
    pub target_text: String,
    /// `--progress`.
    pub progress: Progress,
    /// `--duration`.
    pub duration: Option<Duration>,
    /// `--rate`: messages started per second.
    pub rate: Option<f64>,
    /// `--warmup`.
    pub warmup: Option<Duration>,
    /// `--threshold`, in the order given.
    pub thresholds: Vec<Threshold>,
    /// `--stamp`: every message carries an `X-Smtp-Stamp` header.
    pub stamp: bool,
    /// `--run-id`, or a random one: in the stamps and in the report.
    pub run_id: RunId,
    /// The time the command line took to check: reading `-F`, resolving
    /// the target, loading TLS material. Part of the report's
    /// `prepare_seconds`.
    pub setup: Duration,
    /// `--segment`: this process runs one segment of the run, and
    /// `messages`, `sessions` and `rate` above are already its share.
    pub segment: Option<Segment>,
}

/// What a command line asks for: a run, or merging the reports of runs.
#[derive(Debug)]
pub enum Invocation {
    /// Run the load.
    Run(Box<Config>),
    /// `--merge-reports`.
    Merge(MergeOptions),
}

/// `--merge-reports` and the options that go with it.
#[derive(Debug, Clone)]
pub struct MergeOptions {
    /// `argv[0]` as typed.
    pub argv0: String,
    /// The reports: files, or `-` for JSON lines on stdin.
    pub inputs: Vec<String>,
    /// `--partial`.
    pub partial: bool,
    /// `--summary`.
    pub summary: bool,
    /// `--json`.
    pub json: Option<String>,
    /// `--html`.
    pub html: Option<String>,
    /// `--threshold`, checked against the merged figures.
    pub thresholds: Vec<Threshold>,
    /// The command line as given (for the merged report).
    pub command_line: Vec<String>,
}

/// When the live progress line is shown (`--progress`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// On a terminal, unless -c, -v or `--json -` write there too
    /// (`--transcript` makes it [`Progress::Never`]).
    Auto,
    /// Always, even on a pipe.
    Always,
    /// Never.
    Never,
}

impl Config {
    /// Whether the sessions time their phases: only when something reads
    /// the figures (a report, a threshold, `--rate`, or the live line), so
    /// a plain Postfix-style run costs nothing extra.
    pub fn measures(&self) -> bool {
        self.measure
            || self.reports()
            || self.rate.is_some()
            || crate::live::mode(self) != crate::live::Mode::Off
    }

    /// Whether a report is asked for; then Ctrl-C ends the run with partial
    /// figures instead of killing it as it kills Postfix's.
    pub fn reports(&self) -> bool {
        self.summary || self.json.is_some() || self.html.is_some() || !self.thresholds.is_empty()
    }
}

/// Why the command line was refused. The Display text follows
/// `<argv0>: fatal: `.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The wrong number of arguments or an unknown option.
    #[error("usage: {argv0} -cdLNov -s sess -l msglen -m msgs -C count -M myhostname -f from -t to -r rcptcount -R delay -w delay host[:port]")]
    Usage {
        /// `argv[0]`.
        argv0: String,
        /// clap's explanation, printed before the fatal line.
        detail: Option<String>,
    },
    /// `--help` or `--version`: not an error; main prints it and exits 0.
    #[error("{0}")]
    Help(String),
    /// A bad value or combination, with Postfix's text.
    #[error("{text}")]
    Invalid {
        /// The text.
        text: String,
        /// A Postfix `warning:` line printed before it (valid_hostname's
        /// gripe), if any.
        warning: Option<String>,
    },
}

fn invalid(text: String) -> ConfigError {
    ConfigError::Invalid {
        text,
        warning: None,
    }
}

/// A positive count, or Postfix's `bad <what>: <arg>`.
fn positive(arg: &Option<String>, what: &str) -> Result<Option<i64>, ConfigError> {
    match arg {
        None => Ok(None),
        Some(a) => match atoi(a) {
            n if n > 0 => Ok(Some(n)),
            _ => Err(invalid(format!("bad {what}: {a}"))),
        },
    }
}

fn u32_of(n: i64) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Config {
    /// Parses and checks a command line (`argv[0]` first).
    ///
    /// # Errors
    /// A [`ConfigError`] with Postfix's text.
    pub fn from_args<I, T>(args: I) -> Result<Config, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        match Invocation::from_args(args)? {
            Invocation::Run(config) => Ok(*config),
            Invocation::Merge(_) => Err(invalid(
                "--merge-reports merges reports: it does not run".to_owned(),
            )),
        }
    }
}

impl Invocation {
    /// Parses and checks a command line (`argv[0]` first).
    ///
    /// # Errors
    /// A [`ConfigError`] with Postfix's text.
    pub fn from_args<I, T>(args: I) -> Result<Invocation, ConfigError>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        let begun = std::time::Instant::now();
        let args: Vec<OsString> = args.into_iter().map(Into::into).collect();
        let argv0 = args.first().map_or_else(
            || "smtp-source".to_owned(),
            |a| a.to_string_lossy().into_owned(),
        );
        let cli = match Cli::try_parse_from(&args) {
            Ok(cli) => cli,
            // --help and --version: text for stdout, exit 0.
            Err(e) if !e.use_stderr() => return Err(ConfigError::Help(e.render().to_string())),
            Err(e) => {
                return Err(ConfigError::Usage {
                    argv0,
                    detail: Some(getopt_text(&e)),
                })
            }
        };
        let command_line = args
            .iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        if cli.merge_reports.is_some() {
            return merge_options(cli, argv0, command_line).map(Invocation::Merge);
        }
        if cli.partial {
            return Err(invalid("--partial goes with --merge-reports".to_owned()));
        }
        let mut config = Config::from_cli(cli, argv0, command_line)?;
        config.setup = begun.elapsed();
        Ok(Invocation::Run(Box::new(config)))
    }
}

fn thresholds(cli: &Cli) -> Result<Vec<Threshold>, ConfigError> {
    let thresholds = cli
        .threshold
        .iter()
        .map(|t| Threshold::parse(t).map_err(|e| invalid(e.to_string())))
        .collect::<Result<Vec<_>, _>>()?;
    // A misspelt phase is refused now, not after an hour of load.
    if let Some(t) = thresholds.iter().find(|t| {
        t.phase()
            .is_some_and(|p| crate::latency::Metric::from_name(p).is_none())
    }) {
        return Err(invalid(format!(
            "bad threshold \"{}\": unknown phase \"{}\"",
            t.text(),
            t.phase().unwrap_or_default()
        )));
    }
    Ok(thresholds)
}

/// `--merge-reports` takes the report options and nothing of a run.
fn merge_options(
    cli: Cli,
    argv0: String,
    command_line: Vec<String>,
) -> Result<MergeOptions, ConfigError> {
    if !cli.target.is_empty() {
        return Err(invalid(
            "--merge-reports takes report files, not a server to connect to".to_owned(),
        ));
    }
    if cli.segment.is_some() {
        return Err(invalid(
            "--segment is for a run; --merge-reports reads the segments' reports".to_owned(),
        ));
    }
    Ok(MergeOptions {
        thresholds: thresholds(&cli)?,
        argv0,
        inputs: cli.merge_reports.unwrap_or_default(),
        partial: cli.partial,
        // Merging only to print nothing would be pointless: without
        // --json, the summary is what the user wants to see.
        summary: cli.summary || (cli.json.is_none() && cli.html.is_none()),
        json: cli.json,
        html: cli.html,
        command_line,
    })
}

impl Config {
    fn from_cli(cli: Cli, argv0: String, command_line: Vec<String>) -> Result<Config, ConfigError> {
        let connect_attempts = positive(&cli.connect_count, "connection count")?.unwrap_or(1);
        let mut body = Body::Default;
        if let Some(path) = &cli.file {
            if cli.length.is_some() {
                return Err(invalid("-l option cannot be used with -F".to_owned()));
            }
            let content = std::fs::read(path).map_err(|e| {
                invalid(format!(
                    "open {}: {}",
                    path.display(),
                    smtp_net::strerror(&e)
                ))
            })?;
            body = Body::File(content);
        }
        if let Some(len) = positive(&cli.length, "message length")? {
            body = Body::Generated(usize::try_from(len).unwrap_or(0));
        }
        let duration = cli
            .duration
            .as_deref()
            .map(|t| time_option(t, "--duration"))
            .transpose()?;
        let warmup = cli
            .warmup
            .as_deref()
            .map(|t| time_option(t, "--warmup"))
            .transpose()?;
        let run_id = match cli.run_id.as_deref() {
            Some(id) => RunId::new(id.as_bytes())
                .map_err(|e| invalid(format!("bad --run-id: {id:?}: {e}")))?,
            None => random_run_id(),
        };
        // With --duration alone the run ends by time, not by count.
        let messages = match positive(&cli.messages, "message count")? {
            Some(m) => m,
            None if duration.is_some() => i64::MAX,
            None => 1,
        };
        let rate = match &cli.rate {
            None => None,
            Some(r) => match r.trim().parse::<f64>() {
                Ok(r) if r.is_finite() && r > 0.0 && r <= 10_000_000.0 => Some(r),
                _ => return Err(invalid(format!("bad rate: {r} (messages per second)"))),
            },
        };
        if rate.is_some() && cli.messages.is_none() && duration.is_none() {
            // -m defaults to 1, which no rate makes sense of.
            return Err(invalid(
                "--rate needs -m or --duration to say when the run ends".to_owned(),
            ));
        }
        let progress = match cli.progress.as_deref() {
            // The live line would cut into the transcript's lines.
            None | Some("auto") if cli.transcript => Progress::Never,
            None | Some("auto") => Progress::Auto,
            Some("always") => Progress::Always,
            Some("never") => Progress::Never,
            Some(p) => {
                return Err(invalid(format!(
                    "bad --progress: {p} (auto, always or never)"
                )))
            }
        };
        let thresholds = thresholds(&cli)?;
        let myhostname = match &cli.myhostname {
            Some(name) if name.starts_with('[') => {
                if !valid_address_literal(name) {
                    return Err(invalid(format!("bad address literal: {name}")));
                }
                name.clone()
            }
            Some(name) => {
                if let Some(problem) = crate::target::hostname_problem(name) {
                    return Err(ConfigError::Invalid {
                        text: format!("bad hostname: {name}"),
                        warning: Some(format!("valid_hostname: {problem}")),
                    });
                }
                name.clone()
            }
            None => own_hostname(),
        };
        let recipients = positive(&cli.rcpts, "recipient count")?;
        if cli.fixed_delay.is_some() && cli.random_delay.is_some() {
            return Err(invalid(
                "do not use -w and -R options at the same time".to_owned(),
            ));
        }
        let delay = match (
            positive(&cli.random_delay, "random delay")?,
            positive(&cli.fixed_delay, "fixed delay")?,
        ) {
            (Some(r), _) => Delay::Random(u32_of(r)),
            (_, Some(w)) => Delay::Fixed(u32_of(w)),
            _ => Delay::None,
        };
        let mut sessions = positive(&cli.sessions, "session count")?.unwrap_or(1);
        let window = positive(&cli.window, "TCP window size")?;
        let timeout = match positive(&cli.timeout, "timeout")? {
            Some(t) => Duration::from_secs(u64::try_from(t).unwrap_or(300)),
            None => Duration::from_secs(300),
        };
        let session_timeout = cli
            .session_timeout
            .as_deref()
            .map(|t| seconds(t, "session timeout"))
            .transpose()?;
        let reply_timeout = cli
            .reply_timeout
            .as_deref()
            .map(|t| seconds(t, "reply timeout"))
            .transpose()?;
        let bind = match &cli.bind {
            Some(text) => crate::bind::parse(text).map_err(|e| invalid(e.to_string()))?,
            None => Vec::new(),
        };
        let threads = match &cli.threads {
            None => None,
            Some(t) => match t.trim().parse::<usize>() {
                Ok(n) if n <= 1024 => Some(n),
                _ => return Err(invalid(format!("bad thread count: {t}"))),
            },
        };
        let plan = session_plan(&cli.session, &tls_name(&target_text(&cli)))?;
        let (esmtp, tls, auth) = (plan.esmtp, plan.tls, plan.auth);
        if esmtp.wants_ehlo() && !esmtp.smtputf8 {
            // Postfix's mode sends any bytes, as Postfix does; an ESMTP
            // client must not send UTF-8 without SMTPUTF8 (RFC 6531 §3.4).
            for (opt, addr) in [("-f", &cli.from), ("-t", &cli.to)] {
                if addr.as_ref().is_some_and(|a| !a.is_ascii()) {
                    return Err(invalid(format!(
                        "{opt} address is not ASCII: use --smtputf8 to send UTF-8 addresses"
                    )));
                }
            }
        }
        if esmtp.wants_ehlo() && cli.old {
            return Err(invalid(
                "-o sends no greeting: it cannot be used with ESMTP options".to_owned(),
            ));
        }
        if cli.target.len() != 1 {
            return Err(ConfigError::Usage {
                argv0,
                detail: None,
            });
        }
        let addr = cli.target[0].to_string_lossy().into_owned();
        let family = match (cli.ipv4, cli.ipv6) {
            (true, false) => Family::V4,
            (false, true) => Family::V6,
            _ => Family::Any,
        };
        let mut target = Target::resolve(&addr, family).map_err(|e| {
            let shown = addr.strip_prefix("inet:").unwrap_or(&addr);
            invalid(format!("{shown}: {e}"))
        })?;
        if let Err(e) = crate::bind::check_target(&bind, &target) {
            // A name with both kinds of address may have resolved to the
            // other family first: ask again for the list's family.
            let again = match (&target, family, crate::bind::family(&bind)) {
                (Target::Tcp(_), Family::Any, theirs @ (Family::V4 | Family::V6)) => {
                    Target::resolve(&addr, theirs).ok()
                }
                _ => None,
            };
            target = again.ok_or_else(|| invalid(e.to_string()))?;
        }

        let default_addr = format!("foo@{myhostname}");
        let sender = cli.from.clone().unwrap_or_else(|| default_addr.clone());
        let recipient = cli.to.clone().unwrap_or(default_addr).into_bytes();
        let (rcpt_local, rcpt_domain) = match recipient.iter().rposition(|&b| b == b'@') {
            Some(at) => (recipient[..at].to_vec(), recipient[at..].to_vec()),
            None => (recipient.clone(), Vec::new()),
        };
        let segment = match &cli.segment {
            None => None,
            Some(text) => {
                let index = std::env::var(INDEX_VARIABLE).ok();
                Some(Segment::parse(text, index.as_deref()).map_err(|e| invalid(e.to_string()))?)
            }
        };
        let (mut messages, mut rate) = (messages, rate);
        if let Some(seg) = segment {
            let share = seg.share(u64::try_from(messages).unwrap_or(0));
            messages = i64::try_from(share).unwrap_or(i64::MAX);
            sessions = i64::from(seg.sessions(u32_of(sessions)));
            rate = rate.map(|r| seg.rate(r));
        }
        let file = cli.file.is_some();
        Ok(Config {
            argv0,
            target,
            tolerate_rejects: cli.tolerate,
            counter: cli.counter,
            connect_attempts: u32_of(connect_attempts),
            keep_connection: cli.keep,
            sender: sender.into_bytes(),
            body,
            headers: !cli.old && !file,
            protocol: if cli.lmtp {
                Protocol::Lmtp
            } else {
                Protocol::Smtp
            },
            messages,
            myhostname,
            number_recipients: cli.number || recipients.is_some(),
            send_helo: !cli.old,
            recipients: u32_of(recipients.unwrap_or(1)),
            delay,
            sessions: u32_of(sessions),
            subject: if file {
                None
            } else {
                cli.subject.map(String::into_bytes)
            },
            recipient,
            rcpt_local,
            rcpt_domain,
            window: window.map(u32_of),
            verbose: cli.verbose,
            timeout,
            session_timeout,
            reply_timeout,
            transcript: cli.transcript,
            bind,
            measure: false,
            summary: cli.summary,
            json: cli.json,
            html: cli.html,
            threads,
            esmtp,
            tls,
            auth,
            command_line,
            target_text: addr,
            progress,
            duration,
            rate,
            warmup,
            thresholds,
            stamp: cli.stamp,
            run_id,
            setup: Duration::ZERO,
            segment,
        })
    }
}

/// A fresh run id: 12 lower-case letters and digits, about 62 bits, so
/// runs that share a sink (or a sink's `--stats-json`) do not collide.
pub fn random_run_id() -> RunId {
    use rand::Rng as _;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    let id: Vec<u8> = (0..12)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())])
        .collect();
    RunId::new(&id).expect("the alphabet is a run id's")
}

/// The target as typed (the first operand), for the TLS name.
fn target_text(cli: &Cli) -> String {
    cli.target
        .first()
        .map(|a| a.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// A limit in seconds, fractions allowed (`--session-timeout 2.5`): a
/// positive finite number.
fn seconds(text: &str, what: &str) -> Result<Duration, ConfigError> {
    match text.trim().parse::<f64>() {
        Ok(s) if s.is_finite() && s > 0.0 => {
            Duration::try_from_secs_f64(s).ok().filter(|d| !d.is_zero())
        }
        _ => None,
    }
    .ok_or_else(|| invalid(format!("bad {what}: {text} (seconds)")))
}

/// A `--duration`/`--warmup` value: humantime's `30s`, `5m`, `1h30m`, or
/// plain seconds.
fn time_option(text: &str, option: &str) -> Result<Duration, ConfigError> {
    let text = text.trim();
    let parsed = match text.parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs >= 0.0 => Duration::try_from_secs_f64(secs).ok(),
        Ok(_) => None,
        Err(_) => humantime::parse_duration(text).ok(),
    };
    match parsed {
        Some(d) if !d.is_zero() => Ok(d),
        _ => Err(invalid(format!(
            "bad {option}: {text} (e.g. 30s, 5m, 1h30m)"
        ))),
    }
}

/// What getopt(3) says before Postfix's usage line: `invalid option --
/// 'h'` or `option requires an argument -- 's'`; other parse errors in
/// clap's words.
fn getopt_text(e: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let arg = match e.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(s)) => s.clone(),
        _ => String::new(),
    };
    // "-s <sessions>" or "-h": the option letter.
    let letter = arg
        .strip_prefix('-')
        .filter(|rest| !rest.starts_with('-'))
        .and_then(|rest| rest.chars().next());
    match (e.kind(), letter) {
        (ErrorKind::UnknownArgument, Some(c)) => format!("invalid option -- '{c}'"),
        (ErrorKind::InvalidValue, Some(c)) => format!("option requires an argument -- '{c}'"),
        (kind, _) if arg.is_empty() => kind.to_string(),
        (kind, _) => format!("{kind}: {arg}"),
    }
}

/// gethostname(2), as Postfix's get_hostname() takes it.
#[allow(unsafe_code)]
pub(crate) fn own_hostname() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: buf is writable for its whole length; gethostname writes at
    // most that many bytes.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast::<libc::c_char>(), buf.len()) };
    if rc != 0 {
        return "localhost".to_owned();
    }
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(args: &[&str]) -> String {
        let mut v = vec!["smtp-source"];
        v.extend_from_slice(args);
        match Config::from_args(v) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("accepted {args:?}"),
        }
    }

    fn ok(args: &[&str]) -> Config {
        let mut v = vec!["smtp-source"];
        v.extend_from_slice(args);
        Config::from_args(v).unwrap()
    }

    #[test]
    fn postfix_checks() {
        assert_eq!(err(&["-s", "0", "x"]), "bad session count: 0");
        assert_eq!(err(&["-s", "abc", "x"]), "bad session count: abc");
        assert_eq!(err(&["-C", "0", "x"]), "bad connection count: 0");
        assert_eq!(err(&["-l", "-1", "x"]), "bad message length: -1");
        // glibc's atoi: (int) strtol, so 2^31 is negative and 2^32 + 1 is 1.
        assert_eq!(
            err(&["-l", "2147483648", "x"]),
            "bad message length: 2147483648"
        );
        assert_eq!(
            ok(&["-l", "4294967297", "127.0.0.1"]).body,
            Body::Generated(1)
        );
        assert_eq!(err(&["-m", "0", "x"]), "bad message count: 0");
        assert_eq!(err(&["-r", "0", "x"]), "bad recipient count: 0");
        assert_eq!(err(&["-T", "0", "x"]), "bad TCP window size: 0");
        assert_eq!(err(&["-w", "0", "x"]), "bad fixed delay: 0");
        assert_eq!(err(&["-R", "0", "x"]), "bad random delay: 0");
        assert_eq!(
            err(&["-w", "1", "-R", "2", "x"]),
            "do not use -w and -R options at the same time"
        );
        assert_eq!(err(&["-M", "a!b", "x"]), "bad hostname: a!b");
        assert_eq!(err(&["-M", "[1.2.3]", "x"]), "bad address literal: [1.2.3]");
        assert_eq!(
            err(&["-F", "/dev/null", "-l", "5", "x"]),
            "-l option cannot be used with -F"
        );
        assert_eq!(
            err(&["-l", "5", "-F", "/dev/null", "x"]),
            "-l option cannot be used with -F"
        );
        assert_eq!(
            err(&["-F", "/nonexistent/f", "x"]),
            "open /nonexistent/f: No such file or directory"
        );
        assert_eq!(err(&["[a"]), "[a: missing \"]\"");
        assert_eq!(err(&["inet::25"]), ":25: missing host information");
        assert!(err(&[]).starts_with("usage: smtp-source -cdLNov"));
        assert!(err(&["a", "b"]).starts_with("usage: "));
        assert!(err(&["-Z", "a"]).starts_with("usage: "));
        let detail = |args: &[&str]| {
            let mut v = vec!["smtp-source"];
            v.extend_from_slice(args);
            match Config::from_args(v) {
                Err(ConfigError::Usage { detail, .. }) => detail,
                other => panic!("{other:?}"),
            }
        };
        assert_eq!(
            detail(&["-h", "x"]).as_deref(),
            Some("invalid option -- 'h'")
        );
        assert_eq!(
            detail(&["x", "-s"]).as_deref(),
            Some("option requires an argument -- 's'")
        );
        assert_eq!(detail(&[]), None);
    }

    #[test]
    fn defaults_and_numbering() {
        let c = ok(&["-M", "vm", "127.0.0.1:25"]);
        assert_eq!(c.sender, b"foo@vm");
        assert_eq!(c.recipient, b"foo@vm");
        assert!(!c.number_recipients);
        assert_eq!(c.messages, 1);
        assert_eq!(c.sessions, 1);
        assert_eq!(c.timeout, Duration::from_secs(300));
        let c = ok(&["-r", "1", "-t", "a@b@c", "127.0.0.1"]);
        assert!(c.number_recipients);
        assert_eq!(c.rcpt_local, b"a@b");
        assert_eq!(c.rcpt_domain, b"@c");
        let c = ok(&["-N", "-t", "plain", "-s10", "-cd", "127.0.0.1"]);
        assert!(c.number_recipients && c.counter && c.keep_connection);
        assert_eq!(c.sessions, 10);
        assert_eq!(c.rcpt_domain, b"");
        // Repeated options: the last wins, as with getopt.
        assert_eq!(ok(&["-s", "2", "-s", "3", "127.0.0.1"]).sessions, 3);
        let c = ok(&["-F", "/dev/null", "-S", "x", "127.0.0.1"]);
        assert!(!c.headers && c.subject.is_none());
        assert!(!ok(&["-o", "127.0.0.1"]).send_helo);
        assert_eq!(c.session_timeout, None);
        assert!(!c.transcript && c.bind.is_empty() && !c.measure);
        assert!(!ok(&["--progress", "never", "127.0.0.1"]).measures());
    }

    #[test]
    fn session_timeout_and_transcript() {
        let c = ok(&["--session-timeout", "2.5", "--transcript", "127.0.0.1"]);
        assert_eq!(c.session_timeout, Some(Duration::from_millis(2500)));
        assert!(c.transcript);
        // The live line would break the transcript's lines; nor does a
        // transcript time the sessions.
        assert_eq!(c.progress, Progress::Never);
        assert!(!c.measures());
        let c = ok(&["--transcript", "--progress", "always", "127.0.0.1"]);
        assert_eq!(c.progress, Progress::Always);
        assert_eq!(
            ok(&["--session-timeout", "0.001", "127.0.0.1"]).session_timeout,
            Some(Duration::from_millis(1))
        );
        for bad in ["0", "-1", "abc", "inf", "NaN", "1e400", ""] {
            assert_eq!(
                err(&["--session-timeout", bad, "127.0.0.1"]),
                format!("bad session timeout: {bad} (seconds)")
            );
        }
        assert_eq!(c.reply_timeout, None);
        assert_eq!(
            ok(&["--reply-timeout", "1.5", "127.0.0.1"]).reply_timeout,
            Some(Duration::from_millis(1500))
        );
        for bad in ["0", "-2", "x", ""] {
            assert_eq!(
                err(&["--reply-timeout", bad, "127.0.0.1"]),
                format!("bad reply timeout: {bad} (seconds)")
            );
        }
        let mut c = ok(&["--progress", "never", "127.0.0.1"]);
        c.measure = true;
        assert!(c.measures());
    }

    #[test]
    fn bind_list() {
        let c = ok(&["--bind", "127.0.0.2-127.0.0.4,127.0.0.9", "127.0.0.1:25"]);
        let want: Vec<std::net::IpAddr> = ["127.0.0.2", "127.0.0.3", "127.0.0.4", "127.0.0.9"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(c.bind, want);
        assert_eq!(
            err(&["--bind", "127.0.0.x", "127.0.0.1"]),
            "bad --bind: 127.0.0.x (not an IP address)"
        );
        assert_eq!(
            err(&["--bind", "127.0.0.2", "[::1]:25"]),
            "bad --bind: 127.0.0.2 (an IPv4 source address cannot reach the IPv6 target [::1]:25)"
        );
        assert_eq!(
            err(&["--bind", "127.0.0.2", "unix:/tmp/lmtp"]),
            "bad --bind: 127.0.0.2 (a unix: target has no source address; --bind is for TCP targets)"
        );
        let c = ok(&["--bind", "::1", "[::1]:25"]);
        assert_eq!(
            c.bind,
            vec![std::net::IpAddr::from(std::net::Ipv6Addr::LOCALHOST)]
        );
    }
}
