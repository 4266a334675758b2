//! What a probe run found: every attempt, a summary per server (smtpping's
//! block), the JSON form (docs/probe-report.schema.json) and the exit
//! status.

use std::{collections::BTreeMap, time::SystemTime};

use serde::Serialize;

use super::{config::ProbeConfig, run::LINE_PHASES};
use crate::latency::{Latencies, Metric, PhaseLatency};

/// Network or SMTP, as smtp-conversation tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Class {
    /// No SMTP answer: name not resolved, refused, unreachable, reset,
    /// timed out, TLS failure.
    Network,
    /// The server answered 4xx/5xx (or lacks what was asked, e.g.
    /// STARTTLS).
    Smtp,
}

impl Class {
    /// `network` or `SMTP`, for the attempt lines.
    pub fn name(self) -> &'static str {
        match self {
            Class::Network => "network",
            Class::Smtp => "SMTP",
        }
    }
}

/// A server's reply, taken apart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReplyText {
    /// The three-digit code.
    pub code: u16,
    /// The enhanced status code (`5.1.1`), when the server gave one.
    pub enhanced: Option<String>,
    /// The text, lines joined by spaces.
    pub text: String,
}

/// Why an attempt failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// Network or SMTP.
    pub class: Class,
    /// The phase (a latency key, or `resolve`).
    pub phase: Option<&'static str>,
    /// The server's reply, for an SMTP failure.
    pub reply: Option<ReplyText>,
    /// The error as smtp-source words it.
    pub text: String,
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The server answered 250 to the message (what failed after that,
    /// at QUIT, does not undo it).
    Accepted,
    /// It did not.
    Failed(Failure),
}

/// One attempt.
#[derive(Debug, Clone)]
pub struct Attempt {
    /// The server as given (or found by MX).
    pub server: String,
    /// The message's serial number.
    pub serial: u64,
    /// When it began.
    pub started: SystemTime,
    /// How it ended.
    pub outcome: Outcome,
    /// Its phase times in µs, in conversation order (one per phase
    /// measured); the histograms go to the server's tally.
    pub times: Vec<(Metric, u64)>,
}

/// Per server.
#[derive(Debug, Clone, Default)]
pub struct ServerTally {
    /// The server.
    pub server: String,
    /// Attempts made.
    pub sent: u64,
    /// Attempts accepted.
    pub accepted: u64,
    /// Failed with no SMTP answer.
    pub failed_network: u64,
    /// Failed with a 4xx/5xx.
    pub failed_smtp: u64,
    /// Phase times of all its attempts.
    pub latency: Latencies,
}

/// The whole run.
#[derive(Debug, Clone)]
pub struct ProbeReport {
    /// When it began and ended.
    pub started: SystemTime,
    /// See `started`.
    pub ended: SystemTime,
    /// Every attempt, in order.
    pub attempts: Vec<Attempt>,
    /// Per server, in the order given.
    pub servers: Vec<ServerTally>,
    until_success: bool,
}

/// The exit statuses of smtp-probe.
pub mod exit {
    /// Every server accepted what it was sent (with `-u`: in the end).
    pub const OK: u8 = 0;
    /// Usage or setup error.
    pub const USAGE: u8 = 1;
    /// Failures, all of them network faults (or the MX lookup failed).
    pub const NETWORK: u8 = 2;
    /// Failures, all of them SMTP replies.
    pub const SMTP: u8 = 3;
    /// Failures of both kinds.
    pub const MIXED: u8 = 4;
}

impl ProbeReport {
    /// An empty report for `servers`.
    pub fn new(config: &ProbeConfig, servers: &[String], started: SystemTime) -> Self {
        Self {
            started,
            ended: started,
            attempts: Vec::new(),
            servers: servers
                .iter()
                .map(|s| ServerTally {
                    server: s.clone(),
                    ..ServerTally::default()
                })
                .collect(),
            until_success: config.until_success,
        }
    }

    /// Counts an attempt on server `i`, whose phase histograms are
    /// `latency`.
    pub fn add(&mut self, i: usize, attempt: Attempt, latency: &Latencies) {
        let s = &mut self.servers[i];
        s.sent += 1;
        match &attempt.outcome {
            Outcome::Accepted => s.accepted += 1,
            Outcome::Failed(f) if f.class == Class::Network => s.failed_network += 1,
            Outcome::Failed(_) => s.failed_smtp += 1,
        }
        s.latency.merge(latency);
        self.attempts.push(attempt);
    }

    /// 0 when every server accepted what it was sent (with `-u`: in the
    /// end); otherwise which kinds of failure there were.
    pub fn exit_code(&self) -> u8 {
        let (mut network, mut smtp) = (false, false);
        for s in &self.servers {
            let counts = if self.until_success {
                s.accepted == 0
            } else {
                s.accepted < s.sent
            };
            if counts || s.sent == 0 {
                network |= s.failed_network > 0;
                smtp |= s.failed_smtp > 0;
            }
        }
        match (network, smtp) {
            (false, false) => exit::OK,
            (true, false) => exit::NETWORK,
            (false, true) => exit::SMTP,
            (true, true) => exit::MIXED,
        }
    }

    /// The summary block per server (smtpping's): counts, then each
    /// phase's min/avg/max.
    pub fn summary(&self) -> String {
        let mut out = String::new();
        for s in &self.servers {
            out += &format!(
                "--- {}: {} sent, {} accepted, {} failed ({} network, {} SMTP)\n",
                s.server,
                s.sent,
                s.accepted,
                s.failed_network + s.failed_smtp,
                s.failed_network,
                s.failed_smtp
            );
            let rows: Vec<String> = LINE_PHASES
                .iter()
                .filter(|(m, _)| !s.latency.get(*m).is_empty())
                .map(|(m, name)| {
                    let h = s.latency.get(*m);
                    format!(
                        "    {name:<10}{:>10.3}{:>10.3}{:>10.3}\n",
                        h.min() as f64 / 1000.0,
                        h.mean() / 1000.0,
                        h.max() as f64 / 1000.0
                    )
                })
                .collect();
            if !rows.is_empty() {
                out += &format!(
                    "    {:<10}{:>10}{:>10}{:>10}\n",
                    "phase (ms)", "min", "avg", "max"
                );
                out += &rows.concat();
            }
        }
        out
    }

    /// The JSON form.
    pub fn to_json(&self, config: &ProbeConfig) -> String {
        let time = smtp_net::rfc3339;
        let attempts = self
            .attempts
            .iter()
            .map(|a| {
                let (outcome, failure) = match &a.outcome {
                    Outcome::Accepted => ("accepted", None),
                    Outcome::Failed(f) => ("failed", Some(f)),
                };
                JsonAttempt {
                    server: &a.server,
                    serial: a.serial,
                    started: time(a.started),
                    outcome,
                    class: failure.map(|f| f.class),
                    phase: failure.and_then(|f| f.phase),
                    reply: failure.and_then(|f| f.reply.as_ref()),
                    error: failure.map(|f| f.text.as_str()),
                    times_ms: a
                        .times
                        .iter()
                        .map(|(m, us)| (m.name(), *us as f64 / 1000.0))
                        .collect(),
                }
            })
            .collect();
        let servers = self
            .servers
            .iter()
            .map(|s| JsonServer {
                server: &s.server,
                sent: s.sent,
                accepted: s.accepted,
                failed_network: s.failed_network,
                failed_smtp: s.failed_smtp,
                latency: s.latency.summaries(),
            })
            .collect();
        let json = JsonReport {
            schema_version: 1,
            program: "smtp-probe",
            version: env!("CARGO_PKG_VERSION"),
            command_line: &config.command_line,
            started: time(self.started),
            ended: time(self.ended),
            sender: &config.sender,
            recipient: &config.recipient,
            until_success: config.until_success,
            attempts,
            servers,
            exit_code: self.exit_code(),
        };
        serde_json::to_string(&json).expect("a report always serializes")
    }
}

#[derive(Serialize)]
struct JsonReport<'a> {
    schema_version: u32,
    program: &'static str,
    version: &'static str,
    command_line: &'a [String],
    started: String,
    ended: String,
    sender: &'a str,
    recipient: &'a str,
    until_success: bool,
    attempts: Vec<JsonAttempt<'a>>,
    servers: Vec<JsonServer<'a>>,
    exit_code: u8,
}

#[derive(Serialize)]
struct JsonAttempt<'a> {
    server: &'a str,
    serial: u64,
    started: String,
    outcome: &'static str,
    class: Option<Class>,
    phase: Option<&'static str>,
    reply: Option<&'a ReplyText>,
    error: Option<&'a str>,
    times_ms: BTreeMap<&'static str, f64>,
}

#[derive(Serialize)]
struct JsonServer<'a> {
    server: &'a str,
    sent: u64,
    accepted: u64,
    failed_network: u64,
    failed_smtp: u64,
    latency: BTreeMap<String, PhaseLatency>,
}
