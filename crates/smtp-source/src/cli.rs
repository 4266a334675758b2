//! The command line: Postfix's short options exactly, plus long options
//! of our own. Values stay raw strings here; [`crate::Config`] checks them
//! with Postfix's rules and texts.

use std::{ffi::OsString, path::PathBuf};

use clap::{ArgAction, Args, Parser};

/// Raw command line of `smtp-source`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "smtp-source",
    about = "SMTP/LMTP test generator, a drop-in and faster Postfix smtp-source",
    version = env!("SMTP_SUITE_VERSION"),
    disable_help_flag = true,
    // `--version` below, long only: Postfix's options own every letter.
    disable_version_flag = true,
    args_override_self = true,
    after_help = crate::exit::HELP
)]
pub struct Cli {
    /// Resolve host names to IPv4 addresses only.
    #[arg(short = '4')]
    pub ipv4: bool,
    /// Resolve host names to IPv6 addresses only.
    #[arg(short = '6')]
    pub ipv6: bool,
    /// Don't abort on a non-positive reply: warn and recover.
    #[arg(short = 'A')]
    pub tolerate: bool,
    /// Print a running count of messages sent on stdout.
    #[arg(short = 'c')]
    pub counter: bool,
    /// Connect attempts allowed per session (default 1).
    #[arg(short = 'C', value_name = "count", allow_hyphen_values = true)]
    pub connect_count: Option<String>,
    /// Keep the connection open and send the next message on it.
    #[arg(short = 'd')]
    pub keep: bool,
    /// Envelope sender and From: address (default foo@myhostname).
    #[arg(short = 'f', value_name = "from", allow_hyphen_values = true)]
    pub from: Option<String>,
    /// Send this preformatted message (headers and body) instead.
    #[arg(short = 'F', value_name = "file", allow_hyphen_values = true)]
    pub file: Option<PathBuf>,
    /// Body length in bytes (default: four "La de da" lines).
    #[arg(short = 'l', value_name = "length", allow_hyphen_values = true)]
    pub length: Option<String>,
    /// Speak LMTP instead of SMTP.
    #[arg(short = 'L')]
    pub lmtp: bool,
    /// Total number of messages, shared by all sessions (default 1).
    #[arg(short = 'm', value_name = "count", allow_hyphen_values = true)]
    pub messages: Option<String>,
    /// Host name for HELO/LHLO, default addresses and Message-Id.
    #[arg(short = 'M', value_name = "myhostname", allow_hyphen_values = true)]
    pub myhostname: Option<String>,
    /// Number the recipients: LOCALn@DOMAIN, n counting from 0
    #[arg(short = 'N')]
    pub number: bool,
    /// Old mode: no HELO/LHLO and no generated headers.
    #[arg(short = 'o')]
    pub old: bool,
    /// Recipients per message (default 1); any -r also numbers them.
    #[arg(short = 'r', value_name = "count", allow_hyphen_values = true)]
    pub rcpts: Option<String>,
    /// Random delay of 0..=interval seconds between messages.
    #[arg(short = 'R', value_name = "interval", allow_hyphen_values = true)]
    pub random_delay: Option<String>,
    /// Parallel sessions (default 1).
    #[arg(short = 's', value_name = "sessions", allow_hyphen_values = true)]
    pub sessions: Option<String>,
    /// Subject: header text.
    #[arg(short = 'S', value_name = "subject", allow_hyphen_values = true)]
    pub subject: Option<String>,
    /// Envelope recipient and To: address (default foo@myhostname).
    #[arg(short = 't', value_name = "to", allow_hyphen_values = true)]
    pub to: Option<String>,
    /// SO_SNDBUF and SO_RCVBUF of every client socket.
    #[arg(short = 'T', value_name = "windowsize", allow_hyphen_values = true)]
    pub window: Option<String>,
    /// Show each command and reply on stderr (repeatable).
    #[arg(short = 'v', action = ArgAction::Count)]
    pub verbose: u8,
    /// Fixed delay in seconds between messages.
    #[arg(short = 'w', value_name = "interval", allow_hyphen_values = true)]
    pub fixed_delay: Option<String>,
    /// Read/write timeout in seconds (Postfix: 300, fixed).
    #[arg(long, value_name = "seconds")]
    pub timeout: Option<String>,
    /// One limit for a whole connection, connect to close, in seconds
    /// (fractions allowed).
    #[arg(long, value_name = "SECONDS", allow_hyphen_values = true)]
    pub session_timeout: Option<String>,
    /// One limit for each reply, from sending its command (or connecting,
    /// for the greeting) to its last line, in seconds (fractions allowed);
    /// --timeout still bounds each read.
    #[arg(long, value_name = "SECONDS", allow_hyphen_values = true)]
    pub reply_timeout: Option<String>,
    /// Local source addresses for the TCP connections, taken in turn by
    /// each new connection: ADDR[,ADDR...], where an item may be a range
    /// FIRST-LAST (127.0.0.2-127.0.0.20, fd00::1-fd00::8).
    #[arg(long, value_name = "ADDR[,ADDR...]")]
    pub bind: Option<String>,
    /// Show the conversation on stderr as telnet or swaks does: "-> " for
    /// commands, "<- " for replies, "[N] " per session with -s > 1.
    #[arg(long)]
    pub transcript: bool,
    /// Print a one-paragraph summary on stderr at the end.
    #[arg(long)]
    pub summary: bool,
    /// Write the report as JSON to this file, or stdout with "-".
    #[arg(long, value_name = "path|-")]
    pub json: Option<String>,
    /// Write the report as one self-contained HTML page with latency and
    /// throughput charts to this file, or stdout with "-".
    #[arg(long, value_name = "path|-")]
    pub html: Option<String>,
    /// ESMTP, TLS and AUTH: the options smtp-probe shares.
    #[command(flatten)]
    pub session: SessionArgs,
    /// Runtime threads: 0 runs everything on the main thread.
    #[arg(long, value_name = "N")]
    pub threads: Option<String>,
    /// Live progress line on stderr: auto (a terminal, without -c, -v,
    /// --transcript or --json -), always or never.
    #[arg(long, value_name = "WHEN")]
    pub progress: Option<String>,
    /// End the run after TIME (30s, 5m, 1h30m); with -m, whichever comes
    /// first.
    #[arg(long, value_name = "TIME")]
    pub duration: Option<String>,
    /// Open model: start R messages per second on a fixed schedule, and
    /// report latency also from each message's intended start.
    #[arg(long, value_name = "R")]
    pub rate: Option<String>,
    /// Record nothing during the first TIME of the run.
    #[arg(long, value_name = "TIME")]
    pub warmup: Option<String>,
    /// A pass/fail condition checked at the end, e.g. rcpt.p99<50ms,
    /// accepted>=99.9%, rate>=5000, failed==0 (repeatable).
    #[arg(long, value_name = "EXPR")]
    pub threshold: Vec<String>,
    /// Add an X-Smtp-Stamp header to every message (run id, sequence
    /// number, send time, body length and digest) for `smtp-sink --verify`.
    #[arg(long)]
    pub stamp: bool,
    /// The run's id in stamps and in the report (1 to 32 of A-Z a-z 0-9 _ -;
    /// default: random).
    #[arg(long, value_name = "ID")]
    pub run_id: Option<String>,
    /// Run segment I of N of the run: its share of -m, -s and --rate
    /// (auto/N: I from JOB_COMPLETION_INDEX, as a Kubernetes Indexed Job
    /// sets it). Give all segments the same --run-id.
    #[arg(long, value_name = "I/N")]
    pub segment: Option<String>,
    /// Merge the JSON reports of a run's segments (files, or - for JSON
    /// lines on stdin) and print what --summary and --json ask for,
    /// instead of running.
    #[arg(long, value_name = "FILE", num_args = 1..)]
    pub merge_reports: Option<Vec<String>>,
    /// With --merge-reports: merge even when segments are missing or
    /// repeated.
    #[arg(long)]
    pub partial: bool,
    /// Print help.
    #[arg(long, action = ArgAction::Help)]
    pub help: Option<bool>,
    /// Print the version (and the git commit it was built from).
    #[arg(long, action = ArgAction::Version)]
    pub version: Option<bool>,
    /// `[inet:]host[:port]` or `unix:/path`.
    #[arg(value_name = "host[:port]", num_args = 0.., allow_hyphen_values = false)]
    pub target: Vec<OsString>,
}

/// The ESMTP, TLS and AUTH options, the same in smtp-source and smtp-probe
/// ([`crate::session_plan`] checks them).
#[derive(Debug, Clone, Default, Args)]
pub struct SessionArgs {
    /// Greet with EHLO and read the server's capabilities (LMTP: LHLO).
    #[arg(long)]
    pub ehlo: bool,
    /// Send commands in groups when the server offers PIPELINING.
    #[arg(long)]
    pub pipelining: bool,
    /// Send the message with BDAT when CHUNKING is offered, in chunks of
    /// BYTES (default: the whole message in one BDAT LAST).
    #[arg(long, value_name = "BYTES", num_args = 0..=1, require_equals = true, default_missing_value = "0")]
    pub chunking: Option<String>,
    /// Announce the message size (SIZE=n) when SIZE is offered.
    #[arg(long)]
    pub size: bool,
    /// Send BODY=8BITMIME when 8BITMIME is offered.
    #[arg(long = "8bitmime")]
    pub eight_bit_mime: bool,
    /// Send the SMTPUTF8 parameter when offered; allows UTF-8 in -f and -t.
    #[arg(long)]
    pub smtputf8: bool,
    /// After EHLO, STARTTLS and a TLS handshake, then EHLO again.
    #[arg(long)]
    pub starttls: bool,
    /// TLS from the first byte (SMTPS, port 465).
    #[arg(long)]
    pub tls_on_connect: bool,
    /// Verify the server's certificate chain and name.
    #[arg(long)]
    pub tls_verify: bool,
    /// Trust the PEM certificates in FILE instead of the system's.
    #[arg(long, value_name = "FILE")]
    pub tls_ca: Option<PathBuf>,
    /// The server name to send (SNI) and verify (default: the host).
    #[arg(long, value_name = "NAME")]
    pub tls_sni: Option<String>,
    /// Allow only this TLS version: tls1.2 or tls1.3.
    #[arg(long, value_name = "VERSION")]
    pub tls_protocol: Option<String>,
    /// Full handshakes only: do not resume TLS sessions.
    #[arg(long)]
    pub no_tls_resume: bool,
    /// Log in with AUTH PLAIN or LOGIN (default: the first one offered).
    #[arg(long, value_name = "MECH", num_args = 0..=1, require_equals = true, default_missing_value = "")]
    pub auth: Option<String>,
    /// The user name to log in with.
    #[arg(long, value_name = "USER")]
    pub auth_user: Option<String>,
    /// The password to log in with.
    #[arg(long, value_name = "PASSWORD")]
    pub auth_password: Option<String>,
    /// `user:password` lines, used in turn by successive connections.
    #[arg(long, value_name = "FILE")]
    pub auth_users: Option<PathBuf>,
    /// Allow AUTH without TLS.
    #[arg(long)]
    pub auth_plaintext: bool,
}
