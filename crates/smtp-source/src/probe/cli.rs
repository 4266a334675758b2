//! smtp-probe's command line: smtp-conversation's options, unchanged,
//! plus smtp-source's ESMTP, TLS and AUTH options. Values stay raw here;
//! [`super::config::ProbeConfig`] checks them.

use clap::{ArgAction, Parser};

use crate::cli::SessionArgs;

/// Raw command line of `smtp-probe`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "smtp-probe",
    about = "Checks that mail servers answer and accept a numbered test message, and how fast",
    version = env!("SMTP_SUITE_VERSION"),
    // `--version` below, long only (-V stays free, as in smtp-source).
    disable_version_flag = true,
    after_help = super::EXIT_HELP
)]
pub struct ProbeCli {
    /// Envelope recipient and To: address (required).
    #[arg(short = 'r', long = "recipient", value_name = "ADDRESS")]
    pub recipient: String,
    /// Envelope sender and From: address (default $USER@ this host's name).
    #[arg(short = 's', long = "sender", value_name = "ADDRESS")]
    pub sender: Option<String>,
    /// Messages to send to each server (ignored with -u).
    #[arg(short = 'c', long = "count", value_name = "N", default_value = "1")]
    pub count: String,
    /// Loop over the servers that have not accepted a message yet until
    /// each has.
    #[arg(short = 'u', long = "until-success")]
    pub until_success: bool,
    /// With -u, give up after this many attempts per server (default: never).
    #[arg(long, value_name = "N")]
    pub max_attempts: Option<String>,
    /// Seconds between the end of one connection and the start of the next.
    #[arg(
        short = 'i',
        long = "interval",
        value_name = "SECONDS",
        default_value = "60"
    )]
    pub interval: String,
    /// One limit for a whole session, from the connect to the reply after
    /// the message, in seconds.
    #[arg(
        short = 't',
        long = "timeout",
        value_name = "SECONDS",
        default_value = "10"
    )]
    pub timeout: String,
    /// Pad the body with about this many KiB of random printable text.
    #[arg(
        short = 'k',
        long = "kilobytes",
        value_name = "KIB",
        default_value = "0"
    )]
    pub kilobytes: String,
    /// Tag at the start of the subject.
    #[arg(
        short = 'm',
        long = "message",
        value_name = "TAG",
        default_value = "SMTPTEST"
    )]
    pub message: String,
    /// The port of servers given without one, and of MX hosts.
    #[arg(short = 'p', long = "port", value_name = "PORT", default_value = "25")]
    pub port: String,
    /// Source address of outgoing connections.
    #[arg(short = 'b', long = "bind", value_name = "ADDRESS")]
    pub bind: Option<String>,
    /// Attempt lines without phase times (the default when stdout is not a
    /// terminal).
    #[arg(short = 'q', long = "quiet")]
    pub quiet: bool,
    /// Print each attempt with its phase times (the default on a terminal).
    #[arg(short = 'v', long = "verbose", action = ArgAction::Count)]
    pub verbose: u8,
    /// The name sent with EHLO/HELO (default: this host's name).
    #[arg(long, value_name = "NAME")]
    pub helo: Option<String>,
    /// Ask this DNS server (ADDR:PORT) for MX records instead of the
    /// system's resolvers.
    #[arg(long, value_name = "ADDR:PORT")]
    pub dns_server: Option<String>,
    /// Write the results as JSON to this file, or stdout with "-".
    #[arg(long, value_name = "PATH|-")]
    pub json: Option<String>,
    /// Show each conversation as telnet would: `-> ` commands, `<- ` replies.
    #[arg(long)]
    pub transcript: bool,
    /// Print the version (and the git commit it was built from).
    #[arg(long, action = ArgAction::Version)]
    pub version: Option<bool>,
    /// ESMTP, TLS and AUTH, as in smtp-source.
    #[command(flatten)]
    pub session: SessionArgs,
    /// `host`, `host:port`, `[v6addr]:port` or `unix:/path` (default port
    /// 25); none: the recipient domain's MX hosts.
    #[arg(value_name = "SERVER")]
    pub servers: Vec<String>,
}
