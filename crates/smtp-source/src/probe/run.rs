//! The probe loop: attempts over the servers (`-c` rounds, or until each
//! has accepted a message with `-u`), each one a one-message smtp-source
//! run, classified as smtp-conversation does: a network fault or an SMTP
//! one.

use std::time::{Duration, SystemTime};

use smtp_proto::Reply;

use super::{
    config::ProbeConfig,
    message::{self, Stamp},
    mx,
    report::{self, Attempt, Class, Failure, Outcome, ProbeReport},
};
use crate::{
    latency::{Latencies, Metric},
    report::ErrorClass,
    session_plan::{session_plan, tls_name, SessionPlan},
    target::{Family, Target},
};

/// The phases an attempt line shows, with smtpping's names.
pub const LINE_PHASES: [(Metric, &str); 10] = [
    (Metric::Connect, "connect"),
    (Metric::Banner, "banner"),
    (Metric::Helo, "helo"),
    (Metric::Starttls, "starttls"),
    (Metric::Auth, "auth"),
    (Metric::Mail, "mailfrom"),
    (Metric::Rcpt, "rcptto"),
    (Metric::Data, "data"),
    (Metric::Datasent, "datasent"),
    (Metric::Quit, "quit"),
];

/// Runs the probe and returns what it found; attempt lines go to stdout
/// as they happen.
///
/// # Errors
/// The MX lookup failed (no server was given and none was found).
pub async fn run(config: &ProbeConfig) -> Result<ProbeReport, mx::MxError> {
    smtp_proto::time::init_time_zone();
    let started = SystemTime::now();
    let servers = if config.servers.is_empty() {
        let domain = config
            .recipient
            .rsplit_once('@')
            .map_or("", |(_, d)| d)
            .to_owned();
        mx::mail_hosts(&domain, config.dns_server)
            .await?
            .into_iter()
            .map(|h| super::config::with_port(&h.name, config.port))
            .collect()
    } else {
        config.servers.clone()
    };
    let mut report = ProbeReport::new(config, &servers, started);
    // Each server's ESMTP/TLS/AUTH plan is made once, so its TLS client
    // configuration (and session cache) lasts the whole run.
    let mut plans: Vec<Option<Result<SessionPlan, String>>> = vec![None; servers.len()];
    let mut serial = 0u64;
    let mut first = true;
    let mut round = 0u64;
    loop {
        let pending: Vec<usize> = (0..servers.len())
            .filter(|&i| {
                let s = &report.servers[i];
                if config.until_success {
                    s.accepted == 0 && config.max_attempts.is_none_or(|m| s.sent < m)
                } else {
                    round < config.count
                }
            })
            .collect();
        if pending.is_empty() {
            break;
        }
        for i in pending {
            if !first {
                tokio::time::sleep(config.interval).await;
            }
            first = false;
            serial += 1;
            let plan = match plans[i].as_ref() {
                Some(plan) => plan.clone(),
                None => {
                    let plan = session_plan(&config.session, &tls_name(&servers[i]))
                        .map_err(|e| e.to_string());
                    plans[i] = Some(plan.clone());
                    plan
                }
            };
            let (attempt, latency) = attempt(config, &servers[i], serial, plan).await;
            print_line(config, &attempt);
            report.add(i, attempt, &latency);
        }
        round += 1;
    }
    report.ended = SystemTime::now();
    Ok(report)
}

/// One attempt: resolve, then one message in one session. Returns the
/// attempt and its phase histograms.
async fn attempt(
    config: &ProbeConfig,
    server: &str,
    serial: u64,
    plan: Result<SessionPlan, String>,
) -> (Attempt, Latencies) {
    let started = SystemTime::now();
    let unix = started
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    let date = smtp_proto::time::mail_date(unix);
    let failed = |failure: Failure| {
        let attempt = Attempt {
            server: server.to_owned(),
            serial,
            started,
            outcome: Outcome::Failed(failure),
            times: Vec::new(),
        };
        (attempt, Latencies::default())
    };
    let target = match resolve(server, config.timeout, config.dns_server).await {
        Ok(t) => t,
        Err(text) => {
            return failed(Failure {
                class: Class::Network,
                phase: Some("resolve"),
                reply: None,
                text,
            })
        }
    };
    // smtp-source names the address in a connect error; a probe's line
    // starts with the server already.
    let connect_prefix = format!("{target}: connect: ");
    let content = message::render(
        &config.sender,
        &config.recipient,
        &Stamp {
            tag: &config.tag,
            serial,
            server,
            date: &date,
            hostname: &config.hostname,
        },
        config.kilobytes,
    );
    let source = match plan.map(|plan| config.attempt(server, target, content, plan)) {
        Ok(c) => c,
        Err(e) => {
            return failed(Failure {
                class: Class::Network,
                phase: Some("starttls"),
                reply: None,
                text: e,
            })
        }
    };
    let run = crate::run_async(source).await;
    let outcome = match (&run.fatal, run.stats.accepted) {
        // Accepted is accepted, whatever happens at QUIT after it.
        (_, 1..) => Outcome::Accepted,
        (None, _) => Outcome::Failed(Failure {
            class: Class::Smtp,
            phase: None,
            reply: None,
            text: "the message was not accepted".to_owned(),
        }),
        (Some(f), _) => Outcome::Failed(Failure {
            class: match f.class {
                ErrorClass::Network => Class::Network,
                ErrorClass::Smtp => Class::Smtp,
            },
            phase: f.phase,
            reply: f.reply.as_ref().map(report::ReplyText::of),
            text: match f.message.strip_prefix(&connect_prefix) {
                Some(why) => format!("connect: {why}"),
                None => f.message.clone(),
            },
        }),
    };
    let latency = run.latency.raw;
    let times = Metric::ALL
        .iter()
        .filter(|m| !latency.get(**m).is_empty())
        .map(|m| (*m, latency.get(*m).mean().round() as u64))
        .collect();
    let attempt = Attempt {
        server: server.to_owned(),
        serial,
        started,
        outcome,
        times,
    };
    (attempt, latency)
}

/// Resolves a server: with `--dns-server`, a host name is asked of that
/// server; otherwise as smtp-source does (getaddrinfo), off the runtime
/// thread. Either way within the session timeout.
async fn resolve(
    server: &str,
    timeout: Duration,
    dns_server: Option<std::net::SocketAddr>,
) -> Result<Target, String> {
    if let Some(dns) = dns_server {
        let bare = server.strip_prefix("inet:").unwrap_or(server);
        let parsed = smtp_proto::postfix::host_port(bare, smtp_proto::postfix::BareWord::Host);
        if let Ok((host, port)) = parsed {
            let port = port.parse::<u16>();
            if let (Ok(port), false, false) = (
                port,
                host.parse::<std::net::IpAddr>().is_ok(),
                server.starts_with("unix:"),
            ) {
                let lookup = mx::host_addresses(host, dns);
                return match tokio::time::timeout(timeout, lookup).await {
                    Err(_) => Err(format!("{server}: name lookup timed out")),
                    Ok(Err(e)) => Err(format!("{server}: {e}")),
                    // IPv4 first: the resolver puts IPv6 first (and answers
                    // `localhost` with ::1 itself), where a server listening
                    // on 127.0.0.1 is the common case.
                    Ok(Ok(addrs)) => {
                        let ip = addrs.iter().find(|a| a.is_ipv4()).unwrap_or(&addrs[0]);
                        Ok(Target::Tcp(std::net::SocketAddr::new(*ip, port)))
                    }
                };
            }
        }
    }
    let addr = server.to_owned();
    let lookup = tokio::task::spawn_blocking(move || Target::resolve(&addr, Family::Any));
    match tokio::time::timeout(timeout, lookup).await {
        Err(_) => Err(format!("{server}: name lookup timed out")),
        Ok(Err(e)) => Err(format!("{server}: {e}")),
        Ok(Ok(Err(e))) => Err(format!("{server}: {e}")),
        Ok(Ok(Ok(t))) => Ok(t),
    }
}

/// One line per attempt: server, serial, outcome and class; with `-v` the
/// phase times, smtpping's way.
fn print_line(config: &ProbeConfig, a: &Attempt) {
    let mut line = format!("{} #{:06} ", a.server, a.serial);
    match &a.outcome {
        Outcome::Accepted => line += "accepted",
        Outcome::Failed(f) => {
            line += &format!(
                "failed ({}, {}): {}",
                f.class.name(),
                f.phase.unwrap_or("-"),
                f.text
            );
        }
    }
    if config.verbose {
        let times: Vec<String> = LINE_PHASES
            .iter()
            .filter_map(|(m, name)| {
                let (_, us) = a.times.iter().find(|(t, _)| t == m)?;
                Some(format!("{name}={:.1} ms", *us as f64 / 1000.0))
            })
            .collect();
        if !times.is_empty() {
            line += &format!(" [{}]", times.join(", "));
        }
    }
    line.push('\n');
    config.human_output(&line);
}

impl report::ReplyText {
    /// The code, enhanced code and text of a reply.
    pub fn of(reply: &Reply) -> Self {
        let text: Vec<String> = reply
            .lines()
            .map(|l| String::from_utf8_lossy(l).trim_end().to_owned())
            .collect();
        let enhanced = reply.enhanced.map(|e| e.to_string());
        // The enhanced code has its own field; the text is what follows it.
        let mut text = text.join(" ");
        if let Some(e) = &enhanced {
            if let Some(rest) = text.strip_prefix(e.as_str()) {
                text = rest.trim_start().to_owned();
            }
        }
        Self {
            code: reply.code.0,
            enhanced,
            text,
        }
    }
}
