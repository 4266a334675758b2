//! The validated configuration, built from [`Cli`] with Postfix's checks
//! and error texts. Nothing after this module sees clap types.

use std::ffi::OsString;
use std::net::SocketAddr;
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use smtp_net::tls::ServerTls;
use smtp_proto::postfix::{self, atoi, BareWord, Service};
use thiserror::Error;

use crate::auth::Users;
use crate::cli::Cli;
use crate::fault::{FaultRule, Faults};
use crate::policy::{Delay, Policy, SinkCmd};
use crate::rate::Rate;
use crate::replies::Replies;

/// Why a command line was refused. `Display` is Postfix's text, which the
/// binary prints as `<argv0>: fatal: <text>` (after an `error:` line for
/// [`ConfigError::Usage`] with a detail).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ConfigError {
    /// Postfix's usage message, optionally after an `error:` line.
    #[error("usage: {prog} [-468acCeEFLpPv] [-A abort_delay] [-b soft_bounce_reply] [-B hard_bounce_reply] [-d dump-template] [-D dump-template] [-f commands] [-h hostname] [-m max_concurrency] [-M message_quit_count] [-n quit_count] [-q commands] [-r commands] [-R root-dir] [-s commands] [-S start-string] [-u user_privs] [-w delay] [host]:port backlog")]
    Usage {
        /// argv[0].
        prog: String,
        /// Printed first as `<argv0>: error: <detail>`.
        detail: Option<String>,
    },
    /// Any other fatal error, with Postfix's text.
    #[error("{0}")]
    Fatal(String),
}

/// Where to listen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListenAddr {
    /// `unix:/path`.
    Unix(PathBuf),
    /// `[inet:][host]:port`; no host means the wildcard address.
    Inet {
        /// Host name or address, without brackets.
        host: Option<String>,
        /// The port, numeric or a service name from /etc/services.
        port: u16,
        /// The address as given, for messages.
        text: String,
    },
}

pub use smtp_proto::postfix::Family;

/// The dump options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DumpConfig {
    /// The strftime template.
    pub template: String,
    /// `-D`: append to a shared file instead of one file per transaction.
    pub shared: bool,
    /// `-S`, unescaped, written first in each record.
    pub start_string: Option<Bytes>,
}

/// `--starttls`, `--tls-on-connect` and the certificate.
#[derive(Debug, Clone)]
pub struct TlsSetup {
    /// The server configuration (certificate, key, tickets) and, for a
    /// certificate made at start, its fingerprint.
    pub server: ServerTls,
    /// `--starttls`.
    pub starttls: bool,
    /// `--tls-on-connect`.
    pub on_connect: bool,
}

/// `--auth-users` and the options that go with it.
#[derive(Debug, Clone)]
pub struct AuthSetup {
    /// The `user:password` table.
    pub users: Arc<Users>,
    /// `--auth-plaintext`: AUTH is offered and accepted without TLS too.
    pub plaintext: bool,
    /// `--auth-required`: MAIL before AUTH gets 530.
    pub required: bool,
}

/// What `--max-rate` refuses when the bucket is empty.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RateAction {
    /// MAIL gets 451 (the default).
    Mail,
    /// A new connection gets 421 and is closed (and so does a MAIL that
    /// still finds no token).
    Connect,
}

/// `--max-rate` and `--max-rate-action`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaxRate {
    /// Accepted MAIL commands per unit of time.
    pub rate: Rate,
    /// What is refused above it.
    pub action: RateAction,
}

/// The options that make the sink behave like a real server: rate limit,
/// greylisting, tarpit, random faults. All off by default.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Behaviour {
    /// `--max-rate`.
    pub max_rate: Option<MaxRate>,
    /// `--greylist`: how long a new triple must wait before its retry
    /// passes.
    pub greylist: Option<Duration>,
    /// `--tarpit`: the pause before every reply.
    pub tarpit: Option<Duration>,
    /// `--fault`.
    pub faults: Faults,
    /// `--seed`.
    pub seed: Option<u64>,
}

/// Everything the sink needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    /// argv[0], for messages.
    pub prog: String,
    /// The listening address.
    pub listen: ListenAddr,
    /// `-4`/`-6`.
    pub family: Family,
    /// The listen(2) backlog.
    pub backlog: i32,
    /// `-h`.
    pub hostname: Bytes,
    /// `-L`.
    pub lmtp: bool,
    /// The per-command rules.
    pub policy: Policy,
    /// Every reply, encoded once.
    pub replies: Replies,
    /// `-A`: seconds after 354 before "550 This violates SMTP".
    pub abort_delay: Option<u32>,
    /// `-H`: seconds to stop reading after 354.
    pub data_read_delay: u32,
    /// `-c`.
    pub show_count: bool,
    /// `-m`.
    pub max_clients: usize,
    /// `-M`, 0 when off.
    pub max_messages: u64,
    /// `-n`, 0 when off.
    pub max_sessions: u64,
    /// `-d`/`-D`.
    pub dump: Option<DumpConfig>,
    /// `-t`.
    pub timeout: Duration,
    /// `-T`.
    pub window_size: Option<usize>,
    /// `-u`.
    pub user: Option<String>,
    /// `-R`.
    pub root_dir: Option<PathBuf>,
    /// `-v` count.
    pub verbose: u8,
    /// `-s` was given: open syslog with this ident (basename of argv0).
    pub syslog_ident: Option<String>,
    /// `--threads`.
    pub threads: usize,
    /// `--drain`: how long open transactions may go on after a stop
    /// signal; `None`: a signal stops the sink at once (Postfix's way).
    pub drain: Option<Duration>,
    /// `--chunking`: BDAT is accepted and CHUNKING announced.
    pub chunking: bool,
    /// `--smtputf8`: SMTPUTF8 is announced and UTF-8 addresses are dumped
    /// as sent.
    pub smtputf8: bool,
    /// `--size`: the largest message accepted, in bytes.
    pub size_limit: Option<u64>,
    /// `--starttls`/`--tls-on-connect`.
    pub tls: Option<TlsSetup>,
    /// `--auth-users`: real AUTH.
    pub auth: Option<AuthSetup>,
    /// `--stats-json`: where the counters go.
    pub stats_json: Option<PathBuf>,
    /// `--max-rate`, `--greylist`, `--tarpit`, `--fault`, `--seed`.
    pub behaviour: Behaviour,
    /// `--verify`, with `--expect` and `--source-report`.
    pub verify: Option<VerifySetup>,
    /// `--metrics`: where the Prometheus endpoint listens.
    pub metrics: Option<SocketAddr>,
    /// `--progress`: when the status line is shown.
    pub progress: Progress,
}

/// `--verify` and what goes with it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifySetup {
    /// `--expect`: the unique messages needed for a zero exit status.
    pub expect: Option<u64>,
    /// `--source-report`: smtp-source's JSON report, read at the end.
    pub source_report: Option<PathBuf>,
}

/// When the status line is shown (`--progress`), as smtp-source's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// On a terminal, unless `-c` or `-v` write there too (the default).
    Auto,
    /// Always: redrawn on a terminal, one plain line a second elsewhere.
    Always,
    /// Never.
    Never,
}

/// `--progress`: `auto`, `always` or `never`.
fn progress(value: Option<&str>) -> Result<Progress, ConfigError> {
    match value {
        None | Some("auto") => Ok(Progress::Auto),
        Some("always") => Ok(Progress::Always),
        Some("never") => Ok(Progress::Never),
        Some(other) => Err(ConfigError::Fatal(format!(
            "bad --progress: {other} (auto, always or never)"
        ))),
    }
}

/// `--metrics`: a numeric address and a port (`127.0.0.1:9100`,
/// `[::1]:9100`). Numeric only: the endpoint is for a scraper on a known
/// interface, and a name could resolve to several.
fn metrics_addr(value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| {
        ConfigError::Fatal(format!(
            "bad --metrics address: {value} (IP:PORT or [IPv6]:PORT)"
        ))
    })
}

/// Postfix's unescape(3): `\a \b \f \n \r \t \v`, `\` and 1-3 octal digits
/// (the first 0-7), any other `\x` is x, a trailing `\` is dropped. The
/// result is cut at the first NUL, as a C string is.
pub fn unescape(input: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len());
    let mut i = 0;
    while i < input.len() {
        let mut ch = input[i];
        i += 1;
        if ch == b'\\' {
            let Some(&next) = input.get(i) else { break };
            i += 1;
            ch = match next {
                b'a' => 0x07,
                b'b' => 0x08,
                b'f' => 0x0c,
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                b'v' => 0x0b,
                b'0'..=b'7' => {
                    let mut val = u32::from(next - b'0');
                    let mut n = 0;
                    while n < 2 {
                        match input.get(i) {
                            Some(&d @ b'0'..=b'7') => {
                                val = (val << 3) | u32::from(d - b'0');
                                i += 1;
                                n += 1;
                            }
                            _ => break,
                        }
                    }
                    (val & 0xff) as u8
                }
                other => other,
            };
        }
        if ch == 0 {
            break;
        }
        out.push(ch);
    }
    out
}

/// Looks a command name of `-f -q -Q -r -s -W` up. "bdat" and "starttls"
/// are names only when their options are given (`opt_in` lists those):
/// without them the sink refuses them as Postfix's does.
fn lookup(name: &str, opt_in: &[SinkCmd]) -> Result<SinkCmd, ConfigError> {
    SinkCmd::lookup(name.as_bytes())
        .filter(|c| !matches!(c, SinkCmd::Bdat | SinkCmd::Starttls) || opt_in.contains(c))
        .ok_or_else(|| ConfigError::Fatal(format!("unknown command: {name}")))
}

/// Splits a command list on commas and white space (Postfix's
/// CHARS_COMMA_SP) and looks each name up.
fn commands(list: &str, opt_in: &[SinkCmd]) -> Result<Vec<SinkCmd>, ConfigError> {
    list.split([',', ' ', '\t', '\r', '\n'])
        .filter(|w| !w.is_empty())
        .map(|w| lookup(w, opt_in))
        .collect()
}

/// Checks the TLS options and builds the server configuration: from the
/// PEM files, or with a certificate made now for `hostname`.
fn tls_setup(cli: &Cli, hostname: &[u8]) -> Result<Option<TlsSetup>, ConfigError> {
    let fatal = |t: &str| Err(ConfigError::Fatal(t.to_owned()));
    let files = match (&cli.tls_cert, &cli.tls_key) {
        (Some(c), Some(k)) => Some((c.as_path(), k.as_path())),
        (None, None) => None,
        _ => return fatal("--tls-cert and --tls-key go together"),
    };
    if !cli.starttls && !cli.tls_on_connect {
        if files.is_some() {
            return fatal("--tls-cert needs --starttls or --tls-on-connect");
        }
        return Ok(None);
    }
    let name = String::from_utf8_lossy(hostname);
    let server = smtp_net::tls::server_config(files, &name)
        .map_err(|e| ConfigError::Fatal(e.to_string()))?;
    Ok(Some(TlsSetup {
        server,
        starttls: cli.starttls,
        on_connect: cli.tls_on_connect,
    }))
}

/// Checks the AUTH options and reads the users file.
fn auth_setup(cli: &Cli) -> Result<Option<AuthSetup>, ConfigError> {
    let Some(path) = &cli.auth_users else {
        for (on, name) in [
            (cli.auth_plaintext, "--auth-plaintext"),
            (cli.auth_required, "--auth-required"),
        ] {
            if on {
                return Err(ConfigError::Fatal(format!("{name} needs --auth-users")));
            }
        }
        return Ok(None);
    };
    let users = Users::load(path).map_err(ConfigError::Fatal)?;
    Ok(Some(AuthSetup {
        users: Arc::new(users),
        plaintext: cli.auth_plaintext,
        required: cli.auth_required,
    }))
}

/// `--size`: decimal digits only, more than 0 (SIZE 0 would announce "no
/// limit", which is what leaving the option out means).
fn size_limit(value: &str) -> Result<u64, ConfigError> {
    value
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0 && value.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| ConfigError::Fatal(format!("bad size limit: {value}")))
}

/// A whole number of at least 1 (for `--greylist` and `--tarpit`).
fn whole(value: &str, what: &str) -> Result<u64, ConfigError> {
    value
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0 && value.bytes().all(|b| b.is_ascii_digit()))
        .ok_or_else(|| ConfigError::Fatal(format!("bad {what}: {value}")))
}

/// Checks the options of [`Behaviour`].
fn behaviour(cli: &Cli, opt_in: &[SinkCmd]) -> Result<Behaviour, ConfigError> {
    let fatal = |e: &dyn std::fmt::Display| ConfigError::Fatal(e.to_string());
    let action = match cli.max_rate_action.as_deref() {
        None | Some("mail") => RateAction::Mail,
        Some("connect") => RateAction::Connect,
        Some(other) => {
            return Err(ConfigError::Fatal(format!(
                "bad --max-rate-action: {other} (expected mail or connect)"
            )))
        }
    };
    let max_rate = match &cli.max_rate {
        Some(text) => Some(MaxRate {
            rate: Rate::parse(text).map_err(|e| fatal(&e))?,
            action,
        }),
        None if cli.max_rate_action.is_some() => {
            return Err(ConfigError::Fatal(
                "--max-rate-action needs --max-rate".to_owned(),
            ))
        }
        None => None,
    };
    let greylist = cli
        .greylist
        .as_deref()
        .map(|v| whole(v, "greylist delay").map(Duration::from_secs))
        .transpose()?;
    let tarpit = cli
        .tarpit
        .as_deref()
        .map(|v| whole(v, "tarpit delay").map(Duration::from_millis))
        .transpose()?;
    let rules = cli
        .faults
        .iter()
        .map(|spec| FaultRule::parse(spec, |name| lookup(name, opt_in).ok()).map_err(|e| fatal(&e)))
        .collect::<Result<Vec<_>, _>>()?;
    let faults = Faults::new(rules).map_err(|e| fatal(&e))?;
    let seed = match &cli.seed {
        Some(_) if faults.is_empty() => {
            return Err(ConfigError::Fatal("--seed needs --fault".to_owned()))
        }
        Some(s) => Some(
            s.parse::<u64>()
                .ok()
                .filter(|_| s.bytes().all(|b| b.is_ascii_digit()))
                .ok_or_else(|| ConfigError::Fatal(format!("bad seed: {s}")))?,
        ),
        None => None,
    };
    Ok(Behaviour {
        max_rate,
        greylist,
        tarpit,
        faults,
        seed,
    })
}

/// Checks a -b/-B reply: it starts with `first` and has exactly three
/// leading digits.
fn check_reply(reply: &[u8], first: u8) -> bool {
    reply.first() == Some(&first) && reply.iter().take_while(|b| b.is_ascii_digit()).count() == 3
}

fn positive(value: &str, what: &str) -> Result<u32, ConfigError> {
    let n = atoi(value);
    if n <= 0 {
        return Err(ConfigError::Fatal(format!("{what}: {value}")));
    }
    Ok(u32::try_from(n).expect("clamped to i32"))
}

/// Parses `[inet:][host]:port` or `unix:/path` as Postfix's host_port().
pub fn parse_listen(addr: &str) -> Result<ListenAddr, ConfigError> {
    if let Some(path) = addr.strip_prefix("unix:") {
        return Ok(ListenAddr::Unix(PathBuf::from(path)));
    }
    let text = addr.strip_prefix("inet:").unwrap_or(addr);
    let fail = |why: &str| ConfigError::Fatal(format!("{text}: {why}"));
    let (host, port) = postfix::host_port(text, BareWord::Port)
        .map_err(|e| ConfigError::Fatal(format!("{text}: {e}")))?;
    if port.is_empty() {
        return Err(fail("missing service information"));
    }
    let port = match postfix::service(port).map_err(|e| fail(&e.to_string()))? {
        Service::Port(port) => port,
        Service::Name(name) => {
            service_port(name).ok_or_else(|| fail("Servname not supported for ai_socktype"))?
        }
    };
    Ok(ListenAddr::Inet {
        host: (!host.is_empty()).then(|| host.to_owned()),
        port,
        text: text.to_owned(),
    })
}

/// Looks a TCP service name up in /etc/services.
fn service_port(name: &str) -> Option<u16> {
    let services = std::fs::read_to_string("/etc/services").ok()?;
    services.lines().find_map(|line| {
        let line = line.split('#').next()?;
        let mut words = line.split_whitespace();
        let official = words.next()?;
        let (port, proto) = words.next()?.split_once('/')?;
        let matches = official == name || words.any(|alias| alias == name);
        (matches && proto == "tcp").then(|| port.parse().ok())?
    })
}

fn bytes_of(s: &OsString) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

impl Config {
    /// Validates `cli` the way Postfix's smtp-sink does. `euid` decides
    /// whether `-u` is required.
    ///
    /// # Errors
    /// A [`ConfigError`] with Postfix's message.
    pub fn from_cli(cli: Cli, prog: &str, euid: u32) -> Result<Config, ConfigError> {
        let usage = |detail: Option<String>| ConfigError::Usage {
            prog: prog.to_owned(),
            detail,
        };
        let abort_delay = match &cli.abort_delay {
            None => None,
            Some(a) if !a.is_empty() && a.bytes().all(|b| b.is_ascii_digit()) => {
                Some(u32::try_from(atoi(a)).map_err(|_| usage(None))?)
            }
            Some(_) => return Err(usage(None)),
        };
        let soft = match &cli.soft_reply {
            Some(r) if !check_reply(r.as_bytes(), b'4') => {
                return Err(usage(Some(format!(
                    "bad soft error reply: {}",
                    r.to_string_lossy()
                ))))
            }
            Some(r) => bytes_of(r),
            None => Bytes::from_static(b"450 4.3.0 Error: command failed"),
        };
        let hard = match &cli.hard_reply {
            Some(r) if !check_reply(r.as_bytes(), b'5') => {
                return Err(usage(Some(format!(
                    "bad hard error reply: {}",
                    r.to_string_lossy()
                ))))
            }
            Some(r) => bytes_of(r),
            None => Bytes::from_static(b"500 5.3.0 Error: command failed"),
        };
        let data_read_delay = match &cli.data_read_delay {
            Some(h) => positive(h, "bad data read delay")?,
            None => 0,
        };
        let max_clients = match &cli.max_clients {
            Some(m) => positive(m, "bad concurrency limit")? as usize,
            None => 256,
        };
        let max_messages = match &cli.max_messages {
            Some(m) => u64::from(positive(m, "bad message quit count")?),
            None => 0,
        };
        let max_sessions = match &cli.max_sessions {
            Some(n) => u64::from(positive(n, "bad quit count")?),
            None => 0,
        };
        let timeout = match &cli.timeout {
            Some(t) => positive(t, "bad timeout")?,
            None => 100,
        };
        let window_size = match &cli.window_size {
            Some(t) => Some(positive(t, "bad TCP window size")? as usize),
            None => None,
        };

        let drain = cli
            .drain
            .as_deref()
            .map(|v| whole(v, "drain time").map(Duration::from_secs))
            .transpose()?;
        let size_limit = cli.size.as_deref().map(size_limit).transpose()?;
        let chunking = cli.chunking;
        let starttls = cli.starttls || cli.tls_on_connect;
        let mut opt_in = Vec::new();
        if chunking {
            opt_in.push(SinkCmd::Bdat);
        }
        if starttls {
            opt_in.push(SinkCmd::Starttls);
        }
        let opt_in = &opt_in[..];
        let behaviour = behaviour(&cli, opt_in)?;

        let mut policy = Policy::default();
        policy.rule_mut(SinkCmd::Bdat).enabled = chunking;
        policy.rule_mut(SinkCmd::Starttls).enabled = starttls;
        if cli.no_xclient {
            policy.rule_mut(SinkCmd::Xclient).enabled = false;
        }
        if cli.no_xforward {
            policy.rule_mut(SinkCmd::Xforward).enabled = false;
        }
        for list in &cli.hard {
            for cmd in commands(list, opt_in)? {
                policy.rule_mut(cmd).hard = true;
            }
        }
        for list in &cli.soft {
            for cmd in commands(list, opt_in)? {
                policy.rule_mut(cmd).soft = true;
            }
        }
        for list in &cli.drop {
            for cmd in commands(list, opt_in)? {
                policy.rule_mut(cmd).drop = true;
            }
        }
        for list in &cli.close {
            for cmd in commands(list, opt_in)? {
                policy.rule_mut(cmd).close = true;
            }
        }
        for list in &cli.syslog {
            for cmd in commands(list, opt_in)? {
                policy.rule_mut(cmd).syslog = true;
            }
        }
        for (is_w, spec) in &cli.delay_order {
            let (cmd, delay) = if *is_w {
                let d = atoi(spec);
                if d <= 0 {
                    return Err(usage(None));
                }
                (
                    SinkCmd::Data,
                    Delay {
                        seconds: u32::try_from(d).expect("positive i32"),
                        odds: 0,
                    },
                )
            } else {
                parse_delay(spec, opt_in)?
            };
            policy.rule_mut(cmd).delay = delay;
        }

        // Positional arguments.
        if cli.args.len() != 2 {
            return Err(usage(None));
        }
        let backlog = atoi(&cli.args[1]);
        if backlog <= 0 {
            return Err(usage(None));
        }
        if cli.dump.is_some() && cli.dump_shared.is_some() {
            return Err(ConfigError::Fatal(
                "use only one of -d or -D, but not both".to_owned(),
            ));
        }
        if euid == 0 && cli.user.is_none() {
            return Err(ConfigError::Fatal(
                "-u option is required if running as root".to_owned(),
            ));
        }

        let esmtp_disabled = cli.no_esmtp || cli.pix;
        let hello: &[SinkCmd] = if cli.lmtp {
            &[SinkCmd::Lhlo]
        } else if esmtp_disabled {
            &[SinkCmd::Helo]
        } else {
            &[SinkCmd::Helo, SinkCmd::Ehlo]
        };
        for cmd in hello {
            policy.rule_mut(*cmd).enabled = true;
        }
        let hostname = cli
            .hostname
            .as_ref()
            .map_or(Bytes::from_static(b"smtp-sink"), bytes_of);
        let tls = tls_setup(&cli, &hostname)?;
        let auth = auth_setup(&cli)?;
        // With real AUTH, the keyword is offered where AUTH may succeed:
        // over TLS, and over plaintext only with --auth-plaintext.
        let auth_before_tls = !matches!(&auth, Some(a) if !a.plaintext);
        let replies = Replies::new(&crate::replies::ReplyOptions {
            hostname: &hostname,
            pix: cli.pix,
            esmtp: !esmtp_disabled,
            pipelining: !(cli.no_pipelining || !cli.hard.is_empty() || !cli.soft.is_empty()),
            eight_bit_mime: !cli.no_8bitmime,
            auth: !cli.no_auth && auth_before_tls,
            auth_tls: !cli.no_auth,
            starttls: cli.starttls,
            xclient: !cli.no_xclient,
            xforward: !cli.no_xforward,
            enhanced_status_codes: !cli.no_enhanced,
            dsn: !cli.no_dsn,
            size: size_limit,
            smtputf8: cli.smtputf8,
            chunking,
            soft: &soft,
            hard: &hard,
        });
        if cli
            .stats_json
            .as_ref()
            .is_some_and(|p| p.as_os_str().is_empty())
        {
            return Err(ConfigError::Fatal(
                "--stats-json needs a file name".to_owned(),
            ));
        }
        if !cli.verify && (cli.expect.is_some() || cli.source_report.is_some()) {
            return Err(ConfigError::Fatal(
                "--expect and --source-report need --verify".to_owned(),
            ));
        }
        let verify = cli.verify.then(|| VerifySetup {
            expect: cli.expect,
            source_report: cli.source_report.clone(),
        });
        let metrics = cli.metrics.as_deref().map(metrics_addr).transpose()?;
        let progress = progress(cli.progress.as_deref())?;
        let listen = parse_listen(&cli.args[0])?;
        let dump = match (&cli.dump, &cli.dump_shared) {
            (Some(t), None) => Some((t.clone(), false)),
            (None, Some(t)) => Some((t.clone(), true)),
            _ => None,
        }
        .map(|(template, shared)| DumpConfig {
            template,
            shared,
            start_string: cli
                .start_string
                .as_ref()
                .map(|s| Bytes::from(unescape(s.as_bytes()))),
        });
        // getopt semantics: the last of -4 and -6 wins.
        let family = match (cli.ipv4, cli.ipv6) {
            (false, false) => Family::Any,
            (true, false) => Family::V4,
            (false, true) => Family::V6,
            (true, true) if cli.v6_last => Family::V6,
            (true, true) => Family::V4,
        };
        let syslog_ident = (!cli.syslog.is_empty()).then(|| {
            std::path::Path::new(prog)
                .file_name()
                .map_or_else(|| prog.to_owned(), |n| n.to_string_lossy().into_owned())
        });
        Ok(Config {
            prog: prog.to_owned(),
            listen,
            family,
            backlog: i32::try_from(backlog).expect("clamped to i32"),
            hostname,
            lmtp: cli.lmtp,
            policy,
            replies,
            abort_delay,
            data_read_delay,
            show_count: cli.count > 0,
            max_clients,
            max_messages,
            max_sessions,
            dump,
            timeout: Duration::from_secs(u64::from(timeout)),
            window_size,
            user: cli.user,
            root_dir: cli.root_dir.map(PathBuf::from),
            verbose: cli.verbose,
            syslog_ident,
            threads: cli.threads,
            drain,
            chunking,
            smtputf8: cli.smtputf8,
            size_limit,
            tls,
            auth,
            stats_json: cli.stats_json,
            verify,
            metrics,
            progress,
            behaviour,
        })
    }
}

/// Parses `cmd:delay[:odds]` with Postfix's checks and texts.
fn parse_delay(spec: &str, opt_in: &[SinkCmd]) -> Result<(SinkCmd, Delay), ConfigError> {
    // mystrtok with ":" skips empty fields.
    let mut fields = spec.split(':').filter(|f| !f.is_empty());
    let (Some(cmd), Some(delay)) = (fields.next(), fields.next()) else {
        return Err(ConfigError::Fatal(format!(
            "invalid command delay argument: {spec}"
        )));
    };
    // The odds are the rest of the string after the one ":" that ended
    // the delay (mystrtok with no separators), so "1::50" has odds ":50",
    // which atoi reads as 0.
    let odds_text = {
        let after_cmd = spec.trim_start_matches(':')[cmd.len()..].trim_start_matches(':');
        let after_delay = &after_cmd[delay.len()..];
        after_delay.strip_prefix(':').unwrap_or(after_delay)
    };
    let cmd = lookup(cmd, opt_in)?;
    let delay = atoi(delay);
    let odds = if odds_text.is_empty() {
        0
    } else {
        atoi(odds_text)
    };
    if delay <= 0 {
        return Err(ConfigError::Fatal(format!("non-positive '{}' delay", cmd)));
    }
    if !(0..=99).contains(&odds) {
        return Err(ConfigError::Fatal(format!(
            "delay odds for '{}' out of range",
            cmd
        )));
    }
    Ok((
        cmd,
        Delay {
            seconds: u32::try_from(delay).expect("positive i32"),
            odds: u8::try_from(odds).expect("0..=99"),
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(args: &[&str]) -> Result<Config, ConfigError> {
        let argv = std::iter::once("smtp-sink").chain(args.iter().copied());
        let cli = Cli::try_parse_ordered(argv).expect("clap accepts it");
        Config::from_cli(cli, "smtp-sink", 1000)
    }

    fn fatal(args: &[&str]) -> String {
        match cfg(args) {
            Err(ConfigError::Fatal(m)) => m,
            Err(ConfigError::Usage { detail, .. }) => format!("usage {detail:?}"),
            Ok(_) => panic!("{args:?} was accepted"),
        }
    }

    #[test]
    fn unescape_follows_postfix() {
        for (input, out) in [
            (&br"START\tX\\n\101\n"[..], &b"START\tX\\nA\n"[..]),
            (br"\a\b\f\r\v", b"\x07\x08\x0c\r\x0b"),
            (br"\0101", b"\x081"),
            (br"\18", b"\x018"),
            (br"\q\", b"q"),
            (br"a\0b", b"a"),
            (br"\777", b"\xff"),
        ] {
            assert_eq!(unescape(input), out, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn postfix_error_texts() {
        for (args, text) in [
            (
                &["-b", "550 no", ":25", "1"][..],
                "usage Some(\"bad soft error reply: 550 no\")",
            ),
            (
                &["-b", "4000 no", ":25", "1"],
                "usage Some(\"bad soft error reply: 4000 no\")",
            ),
            (
                &["-B", "450 x", ":25", "1"],
                "usage Some(\"bad hard error reply: 450 x\")",
            ),
            (&["-f", "mail,expn", ":25", "1"], "unknown command: expn"),
            (&["-q", "bogus", ":25", "1"], "unknown command: bogus"),
            (
                &["-d", "a", "-D", "b", ":25", "1"],
                "use only one of -d or -D, but not both",
            ),
            (
                &["-W", "helo", ":25", "1"],
                "invalid command delay argument: helo",
            ),
            (&["-W", "helo:0", ":25", "1"], "non-positive 'helo' delay"),
            (
                &["-W", "helo:1:100", ":25", "1"],
                "delay odds for 'helo' out of range",
            ),
            (&["-W", "xyz:1", ":25", "1"], "unknown command: xyz"),
            (&["-m", "0", ":25", "1"], "bad concurrency limit: 0"),
            (&["-t", "x", ":25", "1"], "bad timeout: x"),
            (&["-n", "-1", ":25", "1"], "bad quit count: -1"),
            (&["-M", "0", ":25", "1"], "bad message quit count: 0"),
            (&["-H", "0", ":25", "1"], "bad data read delay: 0"),
            (&["-T", "0", ":25", "1"], "bad TCP window size: 0"),
            (&["-A", "1x", ":25", "1"], "usage None"),
            (&["-w", "0", ":25", "1"], "usage None"),
            (&[":25"], "usage None"),
            (&[":25", "0"], "usage None"),
            (&["[::1:25", "1"], "[::1:25: missing \"]\""),
            (&["1x", "1"], "1x: garbage after numerical service"),
        ] {
            assert_eq!(fatal(args), text, "{args:?}");
        }
    }

    #[test]
    fn esmtp_options_and_their_errors() {
        for (args, text) in [
            (&["--size", "0", ":25", "1"][..], "bad size limit: 0"),
            (&["--size", "-5", ":25", "1"], "bad size limit: -5"),
            (&["--size", "+5", ":25", "1"], "bad size limit: +5"),
            (&["--size", "1k", ":25", "1"], "bad size limit: 1k"),
            (
                &["--size", "99999999999999999999", ":25", "1"],
                "bad size limit: 99999999999999999999",
            ),
            // Without --chunking "bdat" is no command name, as in Postfix.
            (&["-f", "bdat", ":25", "1"], "unknown command: bdat"),
            (&["-s", "mail,BDAT", ":25", "1"], "unknown command: BDAT"),
            (&["-W", "bdat:1", ":25", "1"], "unknown command: bdat"),
        ] {
            assert_eq!(fatal(args), text, "{args:?}");
        }
        let c = cfg(&[":25", "1"]).expect("valid");
        assert!(!c.chunking && !c.smtputf8 && c.size_limit.is_none());
        assert!(c.policy.enabled(b"bdat").is_none());
        let c = cfg(&[
            "-f",
            "bdat",
            "-W",
            "bdat:2",
            "--chunking",
            "--smtputf8",
            "--size",
            "1048576",
            ":25",
            "1",
        ])
        .expect("valid");
        assert!(c.chunking && c.smtputf8);
        assert_eq!(c.size_limit, Some(1_048_576));
        assert_eq!(c.policy.enabled(b"BDAT"), Some(SinkCmd::Bdat));
        assert!(c.policy.rule(SinkCmd::Bdat).hard);
        assert_eq!(c.policy.rule(SinkCmd::Bdat).delay.seconds, 2);
    }

    #[test]
    fn tls_and_auth_options_and_their_errors() {
        let dir = tempfile::tempdir().expect("tempdir");
        let users = dir.path().join("users");
        std::fs::write(&users, "alice:secret\n").expect("write");
        let users = users.to_str().expect("utf-8").to_owned();
        let missing = dir.path().join("missing");
        let missing = missing.to_str().expect("utf-8").to_owned();
        for (args, text) in [
            (
                vec!["--tls-cert", "c.pem", "--starttls"],
                "--tls-cert and --tls-key go together".to_owned(),
            ),
            (
                vec!["--tls-key", "k.pem", "--starttls"],
                "--tls-cert and --tls-key go together".to_owned(),
            ),
            (
                vec!["--tls-cert", "c.pem", "--tls-key", "k.pem"],
                "--tls-cert needs --starttls or --tls-on-connect".to_owned(),
            ),
            (
                vec!["--auth-required"],
                "--auth-required needs --auth-users".to_owned(),
            ),
            (
                vec!["--auth-plaintext"],
                "--auth-plaintext needs --auth-users".to_owned(),
            ),
            (
                vec!["--auth-users", &missing],
                format!("{missing}: No such file or directory"),
            ),
            (
                vec!["--starttls", "--tls-cert", &missing, "--tls-key", &missing],
                format!("{missing}: "),
            ),
            // Without --starttls or --tls-on-connect, "starttls" is no
            // command name, as in Postfix.
            (
                vec!["-f", "starttls"],
                "unknown command: starttls".to_owned(),
            ),
            (
                vec!["--chunking", "-W", "starttls:1"],
                "unknown command: starttls".to_owned(),
            ),
        ] {
            let mut args = args.clone();
            args.extend([":25", "1"]);
            let got = fatal(&args);
            assert!(got.starts_with(&text), "{args:?}: {got}");
        }
        let c = cfg(&[":25", "1"]).expect("valid");
        assert!(c.tls.is_none() && c.auth.is_none());
        assert!(c.policy.enabled(b"starttls").is_none());
        assert_eq!(c.replies.ehlo, c.replies.ehlo_tls);
        let c = cfg(&[
            "--starttls",
            "-f",
            "starttls",
            "-h",
            "mx.example",
            ":25",
            "1",
        ])
        .expect("valid");
        let tls = c.tls.as_ref().expect("tls");
        assert!(tls.starttls && !tls.on_connect);
        // A self-signed certificate was made: its fingerprint is 32 bytes.
        let fp = tls.server.generated_fingerprint.as_ref().expect("made");
        assert_eq!(fp.len(), 32 * 3 - 1, "{fp}");
        assert_eq!(c.policy.enabled(b"STARTTLS"), Some(SinkCmd::Starttls));
        assert!(c.policy.rule(SinkCmd::Starttls).hard);
        let c = cfg(&["--tls-on-connect", ":25", "1"]).expect("valid");
        assert!(c.tls.as_ref().is_some_and(|t| t.on_connect && !t.starttls));
        assert_eq!(c.policy.enabled(b"starttls"), Some(SinkCmd::Starttls));
        let c = cfg(&["--auth-users", &users, "--auth-required", ":25", "1"]).expect("valid");
        let auth = c.auth.as_ref().expect("auth");
        assert!(auth.required && !auth.plaintext);
        assert!(auth.users.check(b"alice", b"secret"));
        // Real AUTH without TLS: not offered before TLS.
        assert!(!c.replies.ehlo.windows(4).any(|w| w == b"AUTH"));
    }

    #[test]
    fn stats_json_takes_a_file_name() {
        assert_eq!(cfg(&[":25", "1"]).expect("valid").stats_json, None);
        let c = cfg(&["--stats-json", "/tmp/s.json", ":25", "1"]).expect("valid");
        assert_eq!(c.stats_json, Some(PathBuf::from("/tmp/s.json")));
        let c = cfg(&["--stats-json=-x.json", ":25", "1"]).expect("valid");
        assert_eq!(c.stats_json, Some(PathBuf::from("-x.json")));
    }

    #[test]
    fn metrics_takes_a_numeric_address_and_port() {
        assert_eq!(cfg(&[":25", "1"]).expect("valid").metrics, None);
        let c = cfg(&["--metrics", "127.0.0.1:9100", ":25", "1"]).expect("valid");
        assert_eq!(c.metrics, Some(SocketAddr::from(([127, 0, 0, 1], 9100))));
        let c = cfg(&["--metrics=[::1]:0", ":25", "1"]).expect("valid");
        assert_eq!(
            c.metrics,
            Some(SocketAddr::from(([0u16, 0, 0, 0, 0, 0, 0, 1], 0)))
        );
        for bad in ["9100", "localhost:9100", "127.0.0.1", "127.0.0.1:65536", ""] {
            assert_eq!(
                fatal(&["--metrics", bad, ":25", "1"]),
                format!("bad --metrics address: {bad} (IP:PORT or [IPv6]:PORT)")
            );
        }
    }

    #[test]
    fn progress_is_auto_always_or_never() {
        assert_eq!(cfg(&[":25", "1"]).expect("valid").progress, Progress::Auto);
        for (word, want) in [
            ("auto", Progress::Auto),
            ("always", Progress::Always),
            ("never", Progress::Never),
        ] {
            let c = cfg(&["--progress", word, ":25", "1"]).expect("valid");
            assert_eq!(c.progress, want);
        }
        assert_eq!(
            fatal(&["--progress", "sometimes", ":25", "1"]),
            "bad --progress: sometimes (auto, always or never)"
        );
    }

    #[test]
    fn root_needs_u() {
        let cli = Cli::try_parse_ordered(["smtp-sink", ":25", "1"]).expect("parses");
        let err = Config::from_cli(cli, "smtp-sink", 0).expect_err("refused");
        assert_eq!(err.to_string(), "-u option is required if running as root");
    }

    #[test]
    fn getopt_style_bundles_and_attached_values() {
        let c = cfg(&["-cLe8", "-t5", "-h", "-dash-", "-b", "-x"])
            .err()
            .map(|e| e.to_string());
        // "-b -x" takes "-x" as the value, which is a bad soft reply.
        assert!(c.is_some());
        let c = cfg(&[
            "-cL8",
            "-t5",
            "-h",
            "-dash-",
            "-W",
            "helo:1",
            "-w",
            "2",
            "127.0.0.1:2525",
            "10",
        ])
        .expect("valid");
        assert!(c.show_count && c.lmtp);
        assert_eq!(c.timeout, Duration::from_secs(5));
        assert_eq!(&c.hostname[..], b"-dash-");
        assert_eq!(c.policy.rule(SinkCmd::Helo).delay.seconds, 1);
        assert_eq!(c.policy.rule(SinkCmd::Data).delay.seconds, 2);
        // -W after -w wins for data, and the reverse.
        let c = cfg(&["-w", "2", "-W", "data:7:10", ":25", "1"]).expect("valid");
        assert_eq!(
            c.policy.rule(SinkCmd::Data).delay,
            Delay {
                seconds: 7,
                odds: 10
            }
        );
        let c = cfg(&["-W", "data:7:10", "-w", "2", ":25", "1"]).expect("valid");
        assert_eq!(
            c.policy.rule(SinkCmd::Data).delay,
            Delay {
                seconds: 2,
                odds: 0
            }
        );
        let c = cfg(&["-4", "-6", ":25", "1"]).expect("valid");
        assert_eq!(c.family, Family::V6);
        let c = cfg(&["-64", ":25", "1"]).expect("valid");
        assert_eq!(c.family, Family::V4);
        let c = cfg(&["-W", "::rcpt::3::50", ":25", "1"]).expect("valid");
        assert_eq!(
            c.policy.rule(SinkCmd::Rcpt).delay,
            Delay {
                seconds: 3,
                odds: 0
            }
        );
        let c = cfg(&["-W", "rcpt:3:50", ":25", "1"]).expect("valid");
        assert_eq!(
            c.policy.rule(SinkCmd::Rcpt).delay,
            Delay {
                seconds: 3,
                odds: 50
            }
        );
        let c = cfg(&["-h", "a", "-h", "b", ":25", "1"]).expect("last -h wins");
        assert_eq!(&c.hostname[..], b"b");
    }

    #[test]
    fn getopt_forms_scripts_use() {
        let c = cfg(&["-cd/tmp/m.", ":25", "1"]).expect("attached value in a bundle");
        assert!(c.show_count);
        assert_eq!(
            c.dump.as_ref().map(|d| d.template.as_str()),
            Some("/tmp/m.")
        );
        let c = cfg(&["-cdL", ":25", "1"]).expect("the rest of the bundle is the value");
        assert!(!c.lmtp);
        assert_eq!(c.dump.as_ref().map(|d| d.template.as_str()), Some("L"));
        let c = cfg(&["-Lqdata", "-v", "-v", "--", "unix:/tmp/s", "5"]).expect("valid");
        assert!(c.lmtp && c.policy.rule(SinkCmd::Data).drop && c.verbose == 2);
        assert_eq!(c.listen, ListenAddr::Unix(PathBuf::from("/tmp/s")));
        assert_eq!(c.backlog, 5);
        // "-f -c": getopt takes "-c" as the list, an unknown command.
        assert_eq!(fatal(&["-f", "-c", ":25", "1"]), "unknown command: -c");
        let c = cfg(&["-f", "rcpt", "-f", "mail", ":25", "1"]).expect("lists accumulate");
        assert!(c.policy.rule(SinkCmd::Rcpt).hard && c.policy.rule(SinkCmd::Mail).hard);
    }

    #[test]
    fn listen_addresses() {
        let inet = |host: Option<&str>, port: u16, text: &str| ListenAddr::Inet {
            host: host.map(str::to_owned),
            port,
            text: text.to_owned(),
        };
        for (arg, want) in [
            ("2525", inet(None, 2525, "2525")),
            (":2525", inet(None, 2525, ":2525")),
            (
                "inet:127.0.0.1:2525",
                inet(Some("127.0.0.1"), 2525, "127.0.0.1:2525"),
            ),
            ("[::1]:2525", inet(Some("::1"), 2525, "[::1]:2525")),
            ("unix:/tmp/s", ListenAddr::Unix(PathBuf::from("/tmp/s"))),
        ] {
            assert_eq!(parse_listen(arg).expect(arg), want, "{arg}");
        }
        // One port grammar with smtp-source (smtp_proto::postfix::service).
        for (arg, why) in [
            ("1.2.3.4:99999", "port number out of range (0-65535)"),
            ("1.2.3.4:25x", "garbage after numerical service"),
        ] {
            match parse_listen(arg) {
                Err(ConfigError::Fatal(text)) => assert_eq!(text, format!("{arg}: {why}")),
                other => panic!("{arg}: {other:?}"),
            }
        }
    }

    #[test]
    fn f_and_r_imply_no_pipelining_and_protocol_enables_hello() {
        let c = cfg(&["-f", "rcpt .", ":25", "1"]).expect("valid");
        assert!(!c.replies.ehlo.windows(10).any(|w| w == b"PIPELINING"));
        assert!(c.policy.rule(SinkCmd::Dot).hard && c.policy.rule(SinkCmd::Rcpt).hard);
        let c = cfg(&["-L", ":25", "1"]).expect("valid");
        assert!(c.policy.enabled(b"lhlo").is_some());
        assert!(c.policy.enabled(b"ehlo").is_none() && c.policy.enabled(b"helo").is_none());
        let c = cfg(&["-e", ":25", "1"]).expect("valid");
        assert!(c.policy.enabled(b"helo").is_some() && c.policy.enabled(b"ehlo").is_none());
    }

    #[test]
    fn behaviour_options_and_their_errors() {
        let c = cfg(&[
            "--max-rate",
            "50/m",
            "--greylist",
            "300",
            "--tarpit",
            "20",
            ":25",
            "1",
        ])
        .expect("valid");
        let b = &c.behaviour;
        assert_eq!(
            b.max_rate.map(|m| (m.rate.count, m.action)),
            Some((50, RateAction::Mail))
        );
        assert_eq!(b.greylist, Some(Duration::from_secs(300)));
        assert_eq!(b.tarpit, Some(Duration::from_millis(20)));
        assert!(b.faults.is_empty() && b.seed.is_none());
        let c = cfg(&[
            "--max-rate",
            "5",
            "--max-rate-action",
            "connect",
            ":25",
            "1",
        ])
        .expect("valid");
        assert_eq!(
            c.behaviour.max_rate.map(|m| m.action),
            Some(RateAction::Connect)
        );
        let c = cfg(&[
            "--fault",
            "rcpt:450 x:0.1",
            "--fault",
            "connect:disconnect:1",
            "--seed",
            "7",
            ":25",
            "1",
        ])
        .expect("valid");
        assert_eq!(c.behaviour.faults.rules().len(), 2);
        assert_eq!(c.behaviour.seed, Some(7));
        assert_eq!(c.drain, None);
        let c = cfg(&["--drain", "30", ":25", "1"]).expect("valid");
        assert_eq!(c.drain, Some(Duration::from_secs(30)));
        assert!(cfg(&["--chunking", "--fault", "bdat:450 x:0.1", ":25", "1"]).is_ok());
        for (args, text) in [
            (
                &["--max-rate", "0"][..],
                "bad rate: 0 (expected N, N/s, N/m or N/h, N > 0)",
            ),
            (
                &["--max-rate", "5/d"],
                "bad rate: 5/d (expected N, N/s, N/m or N/h, N > 0)",
            ),
            (
                &["--max-rate-action", "connect"],
                "--max-rate-action needs --max-rate",
            ),
            (
                &["--max-rate", "5", "--max-rate-action", "quit"],
                "bad --max-rate-action: quit (expected mail or connect)",
            ),
            (&["--greylist", "0"], "bad greylist delay: 0"),
            (&["--drain", "0"], "bad drain time: 0"),
            (&["--drain", "5s"], "bad drain time: 5s"),
            (&["--greylist", "1s"], "bad greylist delay: 1s"),
            (&["--tarpit", "-5"], "bad tarpit delay: -5"),
            (&["--fault", "bdat:450 x:0.1"], "unknown command: bdat"),
            (
                &["--fault", "rcpt:250 x:0.1"],
                "bad fault reply: 250 x (expected disconnect, or a 4xx or 5xx code and text)",
            ),
            (
                &["--fault", "rcpt:450 x:5%"],
                "bad fault probability: 5% (expected a number from 0 to 1)",
            ),
            (
                &[
                    "--fault",
                    "rcpt:450 x:0.6",
                    "--fault",
                    "rcpt:disconnect:0.6",
                ],
                "--fault probabilities for rcpt add up to more than 1",
            ),
            (&["--seed", "1"], "--seed needs --fault"),
            (
                &["--fault", "rcpt:450 x:0.1", "--seed", "-1"],
                "bad seed: -1",
            ),
        ] {
            let mut argv = args.to_vec();
            argv.extend([":25", "1"]);
            assert_eq!(fatal(&argv), text, "{args:?}");
        }
        // Without any of them, nothing is on.
        let c = cfg(&[":25", "1"]).expect("valid");
        assert_eq!(c.behaviour, Behaviour::default());
    }
}
