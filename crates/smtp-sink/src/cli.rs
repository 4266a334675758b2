//! The command line exactly as Postfix's smtp-sink takes it, plus long
//! aliases. Clap types stop here: [`crate::config::Config`] validates them.
//!
//! Value options accept values that start with "-" (`-b -x` takes "-x"),
//! short flags bundle (`-cLe`), and a value may be attached (`-t5`,
//! `-cd/tmp/m.`), as getopt(3) allows. Options that Postfix lets repeat
//! with "last one wins" do so here too; the command lists accumulate.

use std::ffi::OsString;

use clap::{ArgAction, Parser};

/// `smtp-sink [options] [inet:][host]:port backlog` or
/// `smtp-sink [options] unix:/path backlog`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "smtp-sink",
    version = env!("SMTP_SUITE_VERSION"),
    about = "SMTP/LMTP test server, a drop-in replacement for Postfix's smtp-sink",
    disable_help_flag = true,
    // `--version` below, long only: Postfix's options own every letter.
    disable_version_flag = true,
    args_override_self = true
)]
pub struct Cli {
    /// Listen on IPv4 only.
    #[arg(short = '4', long = "ipv4-only")]
    pub ipv4: bool,
    /// Listen on IPv6 only.
    #[arg(short = '6', long = "ipv6-only")]
    pub ipv6: bool,
    /// Do not announce 8BITMIME.
    #[arg(short = '8', long = "no-8bitmime")]
    pub no_8bitmime: bool,
    /// Do not announce AUTH (it is still accepted).
    #[arg(short = 'a', long = "no-auth")]
    pub no_auth: bool,
    /// After 354, stop reading and after this many seconds send
    /// "550 This violates SMTP" and disconnect.
    #[arg(
        short = 'A',
        long = "abort-delay",
        value_name = "SECONDS",
        allow_hyphen_values = true
    )]
    pub abort_delay: Option<String>,
    /// Soft error reply for -r (must start with a 4 and three digits).
    #[arg(
        short = 'b',
        long = "soft-reply",
        value_name = "REPLY",
        allow_hyphen_values = true
    )]
    pub soft_reply: Option<OsString>,
    /// Hard error reply for -f (must start with a 5 and three digits).
    #[arg(
        short = 'B',
        long = "hard-reply",
        value_name = "REPLY",
        allow_hyphen_values = true
    )]
    pub hard_reply: Option<OsString>,
    /// Print "sess=N quit=N mesg=N" counters (CR-terminated) to stdout.
    #[arg(short = 'c', long = "count", action = ArgAction::Count)]
    pub count: u8,
    /// Do not announce XCLIENT and disable the command.
    #[arg(short = 'C', long = "no-xclient")]
    pub no_xclient: bool,
    /// Dump each transaction into its own file: strftime template plus 8 hex digits.
    #[arg(
        short = 'd',
        long = "dump",
        value_name = "TEMPLATE",
        allow_hyphen_values = true
    )]
    pub dump: Option<String>,
    /// Append each transaction to a shared file named by this strftime template.
    #[arg(
        short = 'D',
        long = "dump-shared",
        value_name = "TEMPLATE",
        allow_hyphen_values = true
    )]
    pub dump_shared: Option<String>,
    /// Do not announce ESMTP; EHLO is disabled.
    #[arg(short = 'e', long = "no-esmtp")]
    pub no_esmtp: bool,
    /// Do not announce ENHANCEDSTATUSCODES.
    #[arg(short = 'E', long = "no-enhanced-status-codes")]
    pub no_enhanced: bool,
    /// Reply to these commands with the hard error reply (implies -p).
    #[arg(short = 'f', long = "hard-reject", value_name = "COMMANDS", action = ArgAction::Append, allow_hyphen_values = true)]
    pub hard: Vec<String>,
    /// Do not announce XFORWARD and disable the command.
    #[arg(short = 'F', long = "no-xforward")]
    pub no_xforward: bool,
    /// Host name in the greeting, the HELO/EHLO replies and Received headers.
    #[arg(
        short = 'h',
        long = "hostname",
        value_name = "NAME",
        allow_hyphen_values = true
    )]
    pub hostname: Option<OsString>,
    /// After 354, stop reading for this many seconds.
    #[arg(
        short = 'H',
        long = "data-read-delay",
        value_name = "SECONDS",
        allow_hyphen_values = true
    )]
    pub data_read_delay: Option<String>,
    /// Speak LMTP (only LHLO is enabled).
    #[arg(short = 'L', long = "lmtp")]
    pub lmtp: bool,
    /// Most client connections at once (default 256); others wait in the backlog.
    #[arg(
        short = 'm',
        long = "max-clients",
        value_name = "COUNT",
        allow_hyphen_values = true
    )]
    pub max_clients: Option<String>,
    /// Exit after this many messages (after sending the last reply).
    #[arg(
        short = 'M',
        long = "max-messages",
        value_name = "COUNT",
        allow_hyphen_values = true
    )]
    pub max_messages: Option<String>,
    /// Exit after this many sessions.
    #[arg(
        short = 'n',
        long = "max-sessions",
        value_name = "COUNT",
        allow_hyphen_values = true
    )]
    pub max_sessions: Option<String>,
    /// Do not announce DSN.
    #[arg(short = 'N', long = "no-dsn")]
    pub no_dsn: bool,
    /// Do not announce PIPELINING.
    #[arg(short = 'p', long = "no-pipelining")]
    pub no_pipelining: bool,
    /// Greet as "220 ********" like a CISCO PIX (implies -e).
    #[arg(short = 'P', long = "pix")]
    pub pix: bool,
    /// Disconnect without a reply after these commands.
    #[arg(short = 'q', long = "drop", value_name = "COMMANDS", action = ArgAction::Append, allow_hyphen_values = true)]
    pub drop: Vec<String>,
    /// Reply "421 4.0.0 Server closing connection" and disconnect after these commands.
    #[arg(short = 'Q', long = "close", value_name = "COMMANDS", action = ArgAction::Append, allow_hyphen_values = true)]
    pub close: Vec<String>,
    /// Reply to these commands with the soft error reply (implies -p).
    #[arg(short = 'r', long = "soft-reject", value_name = "COMMANDS", action = ArgAction::Append, allow_hyphen_values = true)]
    pub soft: Vec<String>,
    /// chroot into this directory (with -u) after binding.
    #[arg(
        short = 'R',
        long = "root-dir",
        value_name = "DIR",
        allow_hyphen_values = true
    )]
    pub root_dir: Option<String>,
    /// Log these commands to syslog (facility mail).
    #[arg(short = 's', long = "syslog", value_name = "COMMANDS", action = ArgAction::Append, allow_hyphen_values = true)]
    pub syslog: Vec<String>,
    /// Text written (C escapes expanded) at the start of each dump record.
    #[arg(
        short = 'S',
        long = "start-string",
        value_name = "STRING",
        allow_hyphen_values = true
    )]
    pub start_string: Option<OsString>,
    /// Idle (and write) timeout in seconds (default 100).
    #[arg(
        short = 't',
        long = "timeout",
        value_name = "SECONDS",
        allow_hyphen_values = true
    )]
    pub timeout: Option<String>,
    /// SO_SNDBUF and SO_RCVBUF of the listening TCP socket.
    #[arg(
        short = 'T',
        long = "window-size",
        value_name = "BYTES",
        allow_hyphen_values = true
    )]
    pub window_size: Option<String>,
    /// Drop privileges to this user after binding (required as root).
    #[arg(
        short = 'u',
        long = "user",
        value_name = "USER",
        allow_hyphen_values = true
    )]
    pub user: Option<String>,
    /// Log connections and command lines (repeat for more).
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count)]
    pub verbose: u8,
    /// Delay the reply to DATA by this many seconds (same as -W data:SECONDS).
    #[arg(short = 'w', long = "data-delay", value_name = "SECONDS", action = ArgAction::Append, allow_hyphen_values = true)]
    pub data_delay: Vec<String>,
    /// Delay the reply to a command: command:delay[:odds].
    #[arg(short = 'W', long = "delay", value_name = "CMD:DELAY[:ODDS]", action = ArgAction::Append, allow_hyphen_values = true)]
    pub delays: Vec<String>,
    /// Announce CHUNKING and accept BDAT (RFC 3030); "bdat" may then be
    /// named in -f -q -Q -r -s -W.
    #[arg(long = "chunking")]
    pub chunking: bool,
    /// Announce SMTPUTF8 (RFC 6531); the dump keeps UTF-8 addresses of a
    /// MAIL that carries SMTPUTF8.
    #[arg(long = "smtputf8")]
    pub smtputf8: bool,
    /// Announce "SIZE BYTES" and answer 552 to a MAIL SIZE= or a message
    /// larger than that (--max-message-size is the same option).
    #[arg(
        long = "size",
        visible_alias = "max-message-size",
        value_name = "BYTES",
        allow_hyphen_values = true
    )]
    pub size: Option<String>,
    /// Accept at most N messages (MAIL commands) per second (N/s), minute
    /// (N/m) or hour (N/h), with a burst of a tenth of a second's worth
    /// (at least 1); above it MAIL gets "451 4.7.1".
    #[arg(
        long = "max-rate",
        value_name = "N[/s|/m|/h]",
        allow_hyphen_values = true
    )]
    pub max_rate: Option<String>,
    /// What --max-rate refuses: "mail" (451 at MAIL, the default) or
    /// "connect" (421 to new connections, and to MAIL, then close).
    #[arg(
        long = "max-rate-action",
        value_name = "mail|connect",
        allow_hyphen_values = true
    )]
    pub max_rate_action: Option<String>,
    /// Greylist: the first RCPT of a (client address, sender, recipient)
    /// gets "450 4.2.0"; a retry at least SECONDS later passes.
    #[arg(long = "greylist", value_name = "SECONDS", allow_hyphen_values = true)]
    pub greylist: Option<String>,
    /// Wait this many milliseconds before every reply (reading nothing
    /// meanwhile, like -w).
    #[arg(long = "tarpit", value_name = "MS", allow_hyphen_values = true)]
    pub tarpit: Option<String>,
    /// With probability P (0 to 1), answer CMD with REPLY instead ("4xx/5xx
    /// text", or "disconnect" to close without a reply). Repeatable.
    #[arg(long = "fault", value_name = "CMD:REPLY:P", action = ArgAction::Append, allow_hyphen_values = true)]
    pub faults: Vec<String>,
    /// Seed the --fault draws: session k (in accept order, from 0) draws
    /// from a stream made from the seed and k.
    #[arg(long = "seed", value_name = "N", allow_hyphen_values = true)]
    pub seed: Option<String>,
    /// Announce STARTTLS and accept it (RFC 3207).
    #[arg(long = "starttls")]
    pub starttls: bool,
    /// Speak TLS from the first byte (implicit TLS, RFC 8314).
    #[arg(long = "tls-on-connect")]
    pub tls_on_connect: bool,
    /// PEM certificate chain (with --tls-key); without both, a self-signed
    /// certificate for the -h name is made at start.
    #[arg(long = "tls-cert", value_name = "FILE", allow_hyphen_values = true)]
    pub tls_cert: Option<std::path::PathBuf>,
    /// PEM private key of --tls-cert.
    #[arg(long = "tls-key", value_name = "FILE", allow_hyphen_values = true)]
    pub tls_key: Option<std::path::PathBuf>,
    /// Check AUTH PLAIN and LOGIN against these "user:password" lines
    /// instead of answering any AUTH with 250.
    #[arg(long = "auth-users", value_name = "FILE", allow_hyphen_values = true)]
    pub auth_users: Option<std::path::PathBuf>,
    /// With --auth-users: offer and accept AUTH without TLS too.
    #[arg(long = "auth-plaintext")]
    pub auth_plaintext: bool,
    /// With --auth-users: answer MAIL before a successful AUTH with 530.
    #[arg(long = "auth-required")]
    pub auth_required: bool,
    /// Check the X-Smtp-Stamp header of every message accepted (smtp-source
    /// --stamp): count unique, duplicate, corrupted and unstamped messages
    /// per run, and their transit time.
    #[arg(long)]
    pub verify: bool,
    /// With --verify: exit with status 3 if fewer than N unique stamped
    /// messages arrived by the time the sink ends.
    #[arg(long, value_name = "N")]
    pub expect: Option<u64>,
    /// With --verify: smtp-source's --json report of the run; at the end,
    /// print how many messages it saw accepted were lost on the way.
    #[arg(long = "source-report", value_name = "FILE")]
    pub source_report: Option<std::path::PathBuf>,
    /// Write the counters as JSON to this file (via FILE.tmp and a rename)
    /// at start, on SIGUSR1 and at exit.
    #[arg(long = "stats-json", value_name = "FILE", allow_hyphen_values = true)]
    pub stats_json: Option<std::path::PathBuf>,
    /// Serve the counters in Prometheus' text format at
    /// http://ADDR:PORT/metrics (e.g. 127.0.0.1:9100, [::1]:9100).
    #[arg(long = "metrics", value_name = "ADDR:PORT", allow_hyphen_values = true)]
    pub metrics: Option<String>,
    /// Status line on stderr once a second: auto (a terminal, without -c
    /// and -v), always (plain lines on a pipe), never.
    #[arg(long = "progress", value_name = "WHEN", allow_hyphen_values = true)]
    pub progress: Option<String>,
    /// On SIGTERM (or SIGINT), stop accepting connections, let the
    /// transactions under way finish for up to SECONDS (421 to everything
    /// else), then exit. A second signal ends the wait.
    #[arg(long = "drain", value_name = "SECONDS", allow_hyphen_values = true)]
    pub drain: Option<String>,
    /// Tokio worker threads: 0 = one thread that also accepts (the default),
    /// N > 0 = a multi-threaded runtime with N workers.
    #[arg(long = "threads", value_name = "N", default_value_t = 0)]
    pub threads: usize,
    /// Print help.
    #[arg(long = "help", action = ArgAction::Help)]
    pub help: Option<bool>,
    /// Print the version (and the git commit it was built from).
    #[arg(long = "version", action = ArgAction::Version)]
    pub version: Option<bool>,
    /// `[inet:][host]:port` or `unix:/path`, then the listen backlog.
    #[arg(value_name = "ADDRESS BACKLOG", num_args = 0..)]
    pub args: Vec<String>,
    /// `-w` and `-W` in command-line order (the last one for a command
    /// wins): `(true, "N")` for `-w N`, `(false, "cmd:d[:o]")` for `-W`.
    #[arg(skip)]
    pub delay_order: Vec<(bool, String)>,
    /// With both `-4` and `-6`, whether `-6` came last (getopt: last wins).
    #[arg(skip)]
    pub v6_last: bool,
}

impl Cli {
    /// Parses `argv`, keeping the relative order of `-w` and `-W`.
    ///
    /// # Errors
    /// Clap's error for a malformed command line (or `--help`/`--version`).
    pub fn try_parse_ordered<I, T>(argv: I) -> Result<Cli, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<OsString> + Clone,
    {
        use clap::{CommandFactory, FromArgMatches};
        let matches = Cli::command().try_get_matches_from(argv)?;
        let mut cli = Cli::from_arg_matches(&matches)?;
        let mut order: Vec<(usize, bool, String)> = Vec::new();
        for (id, is_w) in [("data_delay", true), ("delays", false)] {
            if let (Some(idx), Some(vals)) =
                (matches.indices_of(id), matches.get_many::<String>(id))
            {
                order.extend(idx.zip(vals).map(|(i, v)| (i, is_w, v.clone())));
            }
        }
        order.sort_by_key(|(i, _, _)| *i);
        let last = |id: &str| matches.indices_of(id).and_then(Iterator::max);
        cli.v6_last = last("ipv6") > last("ipv4");
        cli.delay_order = order.into_iter().map(|(_, w, v)| (w, v)).collect();
        Ok(cli)
    }
}
