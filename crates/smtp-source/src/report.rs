//! The run's statistics: each worker fills its own [`Stats`]; they are
//! merged once at the end into the [`Report`].

use std::{
    collections::BTreeMap,
    time::{Duration, SystemTime},
};

use serde::{Deserialize, Serialize};
use smtp_proto::client::Phase;

use crate::{
    config::Config,
    exit,
    latency::{Latencies, Metric, PhaseLatency, Recorded, LATE_AFTER},
    threshold::{Counter, LatencyStat, Measured, Threshold, UnknownPhase},
};

/// Counters of one worker, or of the whole run after merging.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections established.
    pub connections: u64,
    /// Connect attempts that failed (warnings under `-C`).
    pub connect_failures: u64,
    /// Transactions started (MAIL sent).
    pub transactions: u64,
    /// Messages whose content and "." were sent.
    pub messages_sent: u64,
    /// Content bytes sent: header block and body as they travel
    /// (dot-stuffed for DATA, without the final "."), what the sink counts
    /// as content bytes.
    pub bytes_sent: u64,
    /// Transactions whose end of data was accepted.
    pub accepted: u64,
    /// Transactions that failed, by the phase of their first rejection.
    pub failed_by_phase: [u64; Phase::COUNT],
    /// Non-positive replies, by phase (every RCPT counts).
    pub rejects_by_phase: [u64; Phase::COUNT],
    /// Sessions closed by a 421/521 reply under `-A`.
    pub service_closing: u64,
    /// TLS handshakes that exchanged certificates.
    pub tls_full: u64,
    /// TLS handshakes that resumed an earlier session.
    pub tls_resumed: u64,
    /// What the last handshake negotiated: protocol and cipher.
    pub tls_negotiated: Option<(&'static str, String)>,
    /// AUTH exchanges that ended in 235.
    pub auth_ok: u64,
    /// `--bind`: connections established from each source address, by
    /// its index in [`Config::bind`]. A session's vector grows only to the
    /// highest index it used; a merged one may still be shorter than the
    /// list (the run pads it at the end).
    pub connections_by_source: Vec<u64>,
}

impl Stats {
    /// Counts a connection from the `index`th `--bind` address.
    pub fn count_source(&mut self, index: usize) {
        if self.connections_by_source.len() <= index {
            self.connections_by_source.resize(index + 1, 0);
        }
        self.connections_by_source[index] += 1;
    }

    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Stats) {
        self.connections += other.connections;
        self.connect_failures += other.connect_failures;
        self.transactions += other.transactions;
        self.messages_sent += other.messages_sent;
        self.bytes_sent += other.bytes_sent;
        self.accepted += other.accepted;
        self.service_closing += other.service_closing;
        self.tls_full += other.tls_full;
        self.tls_resumed += other.tls_resumed;
        if self.tls_negotiated.is_none() {
            self.tls_negotiated.clone_from(&other.tls_negotiated);
        }
        self.auth_ok += other.auth_ok;
        for p in Phase::ALL {
            self.failed_by_phase[p.index()] += other.failed_by_phase[p.index()];
            self.rejects_by_phase[p.index()] += other.rejects_by_phase[p.index()];
        }
        let theirs = &other.connections_by_source;
        if self.connections_by_source.len() < theirs.len() {
            self.connections_by_source.resize(theirs.len(), 0);
        }
        for (ours, n) in self.connections_by_source.iter_mut().zip(theirs) {
            *ours += n;
        }
    }
}

/// A fatal error, as the report records it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fatal {
    /// The phase it happened in (a latency key), or null for a setup error.
    pub phase: Option<&'static str>,
    /// Postfix's text, as printed after `fatal: `.
    pub message: String,
    /// The exit status it causes.
    pub exit_code: u8,
    /// Whether the server answered (smtp-probe's classes).
    #[serde(skip)]
    pub class: ErrorClass,
    /// The reply that caused it, when one did.
    #[serde(skip)]
    pub reply: Option<smtp_proto::Reply>,
}

/// A fault of the network (no SMTP answer) or of SMTP (an answer that
/// refused), as smtp-conversation tells them apart.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ErrorClass {
    /// Refused, unreachable, reset, timed out, TLS failure, no SMTP.
    #[default]
    Network,
    /// A 4xx/5xx reply, or a server lacking what was asked (STARTTLS,
    /// AUTH).
    Smtp,
}

impl Fatal {
    /// How `error` is reported.
    pub fn of(error: &crate::Error) -> Fatal {
        use crate::Error;
        let (class, reply) = match error {
            Error::Rejected { reply, .. } => (ErrorClass::Smtp, Some(reply.clone())),
            Error::NotOffered(_) => (ErrorClass::Smtp, None),
            _ => (ErrorClass::Network, None),
        };
        Fatal {
            phase: exit::phase_name(error),
            message: error.to_string(),
            exit_code: exit::code(error),
            class,
            reply,
        }
    }
}

/// One `--threshold` and how it fared.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ThresholdResult {
    /// As given.
    pub threshold: String,
    /// Whether it held.
    pub passed: bool,
    /// The value it was checked against, when there was one.
    pub observed: Option<f64>,
    /// A readable account: `rcpt.p99 = 1003.5 ms, wanted < 50 ms`.
    pub detail: String,
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct Report {
    /// Parallel sessions (`-s`).
    pub sessions: u32,
    /// Merged counters.
    pub stats: Stats,
    /// Wall time from the first connect (or the end of the warm-up) to the
    /// last close.
    pub elapsed: Duration,
    /// Whether Ctrl-C ended the run early (only with a report).
    pub interrupted: bool,
    /// When the run began and ended (wall clock).
    pub started: SystemTime,
    /// See `started`.
    pub ended: SystemTime,
    /// The latency histograms.
    pub latency: Recorded,
    /// The fatal error that ended the run, if one did.
    pub fatal: Option<Fatal>,
    /// The time spent before the measured span: checking the options,
    /// resolving the target, TLS material, rendering the body and the
    /// `--stamp` digest. None for merged reports.
    pub prepare: Option<Duration>,
    /// `--threshold` results, in the order given.
    pub thresholds: Vec<ThresholdResult>,
    /// `--stamp`: how many messages were stamped (sequence numbers 0 to
    /// this − 1, or the segment's run-wide numbers).
    pub stamped: Option<u64>,
    /// What the run was: its command line, target, id, and what part of a
    /// segmented run it is.
    pub info: RunInfo,
}

/// What a report says about the run besides its figures.
#[derive(Debug, Clone, Default)]
pub struct RunInfo {
    /// The command line as given.
    pub command_line: Vec<String>,
    /// The target as typed.
    pub target: String,
    /// The run's id.
    pub run_id: String,
    /// `--warmup`.
    pub warmup: Option<Duration>,
    /// The rate asked for (a segment's share under `--segment`).
    pub rate_target: Option<f64>,
    /// `--segment`: which segment this process ran.
    pub segment: Option<SegmentInfo>,
    /// `--merge-reports`: the segments merged.
    pub merged: Option<MergedInfo>,
    /// `--bind`: the source addresses, in the order of
    /// [`Stats::connections_by_source`].
    pub bind: Vec<std::net::IpAddr>,
}

impl RunInfo {
    /// What `config` says about its run.
    pub fn of(config: &Config) -> RunInfo {
        RunInfo {
            command_line: config.command_line.clone(),
            target: config.target_text.clone(),
            run_id: config.run_id.as_str().to_owned(),
            warmup: config.warmup,
            rate_target: config.rate,
            segment: config.segment.map(|s| SegmentInfo {
                index: s.index(),
                count: s.count(),
            }),
            merged: None,
            bind: config.bind.clone(),
        }
    }
}

/// `--segment I/N` as the report records it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct SegmentInfo {
    /// I.
    pub index: u32,
    /// N.
    pub count: u32,
}

/// Which segments a merged report holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct MergedInfo {
    /// N, the segments the run was cut into.
    pub count: u32,
    /// The indices of the reports merged, in order (a repeated one twice,
    /// under `--partial`).
    pub segments: Vec<u32>,
    /// The indices below N with no report.
    pub missing: Vec<u32>,
}

impl Report {
    /// Messages sent per second of wall time.
    pub fn msgs_per_sec(&self) -> f64 {
        per_sec(self.stats.messages_sent, self.elapsed)
    }

    /// Transactions accepted per second of wall time.
    pub fn accepted_per_sec(&self) -> f64 {
        per_sec(self.stats.accepted, self.elapsed)
    }

    /// The exit status: the fatal error's, else a failed threshold's, else
    /// Ctrl-C's, else success.
    pub fn exit_code(&self) -> u8 {
        if let Some(f) = &self.fatal {
            return f.exit_code;
        }
        if self.thresholds.iter().any(|t| !t.passed) {
            return exit::THRESHOLD;
        }
        if self.interrupted {
            return exit::INTERRUPTED;
        }
        exit::OK
    }

    /// Rejections as `rcpt 3, data 1`, or `none`.
    fn rejects(&self) -> String {
        let parts: Vec<String> = Phase::ALL
            .iter()
            .filter(|p| self.stats.rejects_by_phase[p.index()] > 0)
            .map(|p| format!("{} {}", p.name(), self.stats.rejects_by_phase[p.index()]))
            .collect();
        if parts.is_empty() {
            "none".to_owned()
        } else {
            parts.join(", ")
        }
    }

    /// The `--summary` paragraph (one line, no trailing newline).
    pub fn summary(&self) -> String {
        let s = &self.stats;
        let part = match (&self.info.segment, &self.info.merged) {
            (Some(seg), _) => format!("segment {}/{}: ", seg.index, seg.count),
            (None, Some(m)) if m.missing.is_empty() && m.segments.len() == m.count as usize => {
                format!("{} segments merged: ", m.count)
            }
            (None, Some(m)) => format!(
                "{} reports of {} segments merged (partial, missing: {}): ",
                m.segments.len(),
                m.count,
                if m.missing.is_empty() {
                    "none".to_owned()
                } else {
                    m.missing
                        .iter()
                        .map(u32::to_string)
                        .collect::<Vec<_>>()
                        .join(" ")
                }
            ),
            (None, None) => String::new(),
        };
        format!(
            "{part}{}{} sessions, {} connections, {} transactions, {} messages sent, {} accepted, \
             rejected replies: {}, in {:.3} s: {:.0} msg/s",
            if self.interrupted {
                "interrupted: "
            } else {
                ""
            },
            self.sessions,
            s.connections,
            s.transactions,
            s.messages_sent,
            s.accepted,
            self.rejects(),
            self.elapsed.as_secs_f64(),
            self.msgs_per_sec()
        ) + &self.prepare_summary()
            + &self.tls_auth_summary()
    }

    /// `; prepared in N s` when getting ready took long enough to matter
    /// (a long `-l` with `--stamp`, TLS material); the JSON report always
    /// has it.
    fn prepare_summary(&self) -> String {
        match self.prepare {
            Some(p) if p >= Duration::from_millis(100) => {
                format!("; prepared in {:.3} s", p.as_secs_f64())
            }
            _ => String::new(),
        }
    }

    /// `; TLS: …, AUTH: …` when TLS or AUTH was used, else nothing.
    fn tls_auth_summary(&self) -> String {
        let s = &self.stats;
        let mut out = String::new();
        if let Some((protocol, cipher)) = &s.tls_negotiated {
            out += &format!(
                "; TLS {protocol} {cipher}: {} full handshakes, {} resumed",
                s.tls_full, s.tls_resumed
            );
        }
        let auth_failed = s.rejects_by_phase[Phase::Auth.index()];
        if s.auth_ok + auth_failed > 0 {
            out += &format!("; AUTH: {} ok, {} failed", s.auth_ok, auth_failed);
        }
        out
    }

    /// The `--summary` table that follows the paragraph: one row per
    /// phase measured (ms), the rates, late starts under `--rate`, the
    /// thresholds and the fatal error. Every line ends in a newline.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let mut section = |title: &str, lat: &Latencies| {
            out += &format!(
                "{title:<13}{:>9}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}{:>10}\n",
                "count", "min", "mean", "p50", "p90", "p99", "p99.9", "max"
            );
            for m in Metric::ALL {
                let h = lat.get(m);
                if h.is_empty() {
                    continue;
                }
                let p = PhaseLatency::of(h);
                out += &format!(
                    "{:<13}{:>9}{:>10.3}{:>10.3}{:>10.3}{:>10.3}{:>10.3}{:>10.3}{:>10.3}\n",
                    m.name(),
                    p.count,
                    p.min_ms,
                    p.mean_ms,
                    p.p50_ms,
                    p.p90_ms,
                    p.p99_ms,
                    p.p999_ms,
                    p.max_ms
                );
            }
        };
        section("phase (ms)", &self.latency.raw);
        if self.latency.lateness.is_some() {
            section("corrected", &self.latency.corrected);
        }
        out += &format!(
            "rate: {:.1} msg/s sent, {:.1} msg/s accepted, {} sent ({}/s)\n",
            self.msgs_per_sec(),
            self.accepted_per_sec(),
            bytes_text(self.stats.bytes_sent as f64),
            bytes_text(self.stats.bytes_sent as f64 / self.elapsed.as_secs_f64().max(1e-9)),
        );
        out += &self.sources_line();
        if let Some(late) = &self.latency.lateness {
            out += &format!(
                "schedule: {} starts, {} late by more than {} ms (max {:.3} ms late)\n",
                late.len(),
                self.latency.late_starts,
                LATE_AFTER / 1000,
                late.max() as f64 / 1000.0
            );
        }
        for t in &self.thresholds {
            out += &format!(
                "threshold {}: {} ({})\n",
                t.threshold,
                if t.passed { "passed" } else { "FAILED" },
                t.detail
            );
        }
        if let Some(f) = &self.fatal {
            out += &format!(
                "fatal in {}: {} (exit {})\n",
                f.phase.unwrap_or("setup"),
                f.message,
                f.exit_code
            );
        }
        out
    }

    /// `--bind`: `source addresses: 8, connections 124..126 each`, the
    /// spread in one line (the JSON report has each address's count);
    /// nothing without `--bind`.
    fn sources_line(&self) -> String {
        let counts = &self.stats.connections_by_source;
        let (Some(min), Some(max)) = (counts.iter().min(), counts.iter().max()) else {
            return String::new();
        };
        let each = if min == max {
            min.to_string()
        } else {
            format!("{min}..{max}")
        };
        format!(
            "source addresses: {}, connections {each} each\n",
            counts.len()
        )
    }

    /// The report as one line of JSON (`--json`), described by
    /// docs/report.schema.json.
    pub fn to_json(&self) -> String {
        let info = &self.info;
        let s = &self.stats;
        let by_phase = |a: &[u64; Phase::COUNT]| -> BTreeMap<&'static str, u64> {
            Phase::ALL
                .iter()
                .map(|p| (p.name(), a[p.index()]))
                .collect()
        };
        let rated = self.latency.lateness.is_some();
        let json = JsonReport {
            schema_version: SCHEMA_VERSION,
            program: "smtp-source",
            version: env!("CARGO_PKG_VERSION"),
            command_line: &info.command_line,
            target: &info.target,
            run_id: &info.run_id,
            segment: info.segment,
            merged: info.merged.as_ref(),
            stamped: self.stamped,
            started: smtp_net::rfc3339(self.started),
            ended: smtp_net::rfc3339(self.ended),
            duration_seconds: self.elapsed.as_secs_f64(),
            prepare_seconds: self.prepare.map(|d| d.as_secs_f64()),
            warmup_seconds: info.warmup.map(|d| d.as_secs_f64()),
            rate_target: info.rate_target,
            sessions: self.sessions,
            connections: s.connections,
            connect_failures: s.connect_failures,
            connections_by_source: (!info.bind.is_empty()).then(|| BySource {
                addresses: &info.bind,
                connections: &s.connections_by_source,
            }),
            transactions: s.transactions,
            messages_sent: s.messages_sent,
            bytes_sent: s.bytes_sent,
            accepted: s.accepted,
            failed_by_phase: by_phase(&s.failed_by_phase),
            rejects_by_phase: by_phase(&s.rejects_by_phase),
            service_closing: s.service_closing,
            tls_handshakes_full: s.tls_full,
            tls_handshakes_resumed: s.tls_resumed,
            tls_protocol: s.tls_negotiated.as_ref().map(|t| t.0),
            tls_cipher: s.tls_negotiated.as_ref().map(|t| t.1.as_str()),
            auth_successes: s.auth_ok,
            interrupted: self.interrupted,
            elapsed_seconds: self.elapsed.as_secs_f64(),
            messages_per_second: round1(self.msgs_per_sec()),
            accepted_per_second: round1(self.accepted_per_sec()),
            bytes_per_second: round1(per_sec(s.bytes_sent, self.elapsed)),
            latency: self.latency.raw.summaries(),
            latency_corrected: rated.then(|| self.latency.corrected.summaries()),
            schedule: self.latency.lateness.as_ref().map(|late| Schedule {
                starts: late.len(),
                late_starts: self.latency.late_starts,
                late_after_ms: LATE_AFTER as f64 / 1000.0,
                lateness: PhaseLatency::of(late),
            }),
            series: self.latency.series.to_json(),
            thresholds: &self.thresholds,
            error: self.fatal.as_ref(),
            exit_code: self.exit_code(),
        };
        serde_json::to_string(&json).expect("a report always serializes")
    }
}

impl Report {
    /// Checks one `--threshold` against the run.
    pub fn check(&self, threshold: &Threshold) -> ThresholdResult {
        let v = threshold.check(self);
        ThresholdResult {
            threshold: threshold.text().to_owned(),
            passed: v.passed,
            observed: v.observed,
            detail: v.detail,
        }
    }
}

impl Measured for Report {
    fn latency_ms(&self, phase: &str, stat: LatencyStat) -> Result<Option<f64>, UnknownPhase> {
        let metric = Metric::from_name(phase).ok_or(UnknownPhase)?;
        let h = self.latency.raw.get(metric);
        if h.is_empty() {
            return Ok(None);
        }
        let us = match stat {
            LatencyStat::Min => h.min() as f64,
            LatencyStat::Max => h.max() as f64,
            LatencyStat::Mean => h.mean(),
            LatencyStat::Percentile(q) => h.value_at_quantile(q / 100.0) as f64,
        };
        Ok(Some(us / 1000.0))
    }

    fn counter(&self, counter: Counter) -> f64 {
        let s = &self.stats;
        let n = match counter {
            Counter::Accepted => s.accepted,
            // Transactions that did not end accepted: refused, or cut short.
            Counter::Failed => s.transactions.saturating_sub(s.accepted),
            Counter::Rejected => s.failed_by_phase.iter().sum(),
            Counter::Sent => s.messages_sent,
            Counter::Transactions => s.transactions,
            Counter::Connections => s.connections,
            Counter::ConnectFailures => s.connect_failures,
            Counter::Rate => return self.accepted_per_sec(),
            Counter::LateStarts => self.latency.late_starts,
        };
        n as f64
    }
}

/// The report's `schema_version`: 2 added the run's metadata, latency,
/// thresholds and the error (1 was counters only); 3 the run id, the
/// stamp count, the segment and the merge.
pub const SCHEMA_VERSION: u32 = 3;

/// The JSON form of a [`Report`].
#[derive(Serialize)]
struct JsonReport<'a> {
    schema_version: u32,
    program: &'static str,
    version: &'static str,
    command_line: &'a [String],
    target: &'a str,
    run_id: &'a str,
    segment: Option<SegmentInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    merged: Option<&'a MergedInfo>,
    stamped: Option<u64>,
    started: String,
    ended: String,
    duration_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    prepare_seconds: Option<f64>,
    warmup_seconds: Option<f64>,
    rate_target: Option<f64>,
    sessions: u32,
    connections: u64,
    connect_failures: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    connections_by_source: Option<BySource<'a>>,
    transactions: u64,
    messages_sent: u64,
    bytes_sent: u64,
    accepted: u64,
    failed_by_phase: BTreeMap<&'static str, u64>,
    rejects_by_phase: BTreeMap<&'static str, u64>,
    service_closing: u64,
    tls_handshakes_full: u64,
    tls_handshakes_resumed: u64,
    tls_protocol: Option<&'static str>,
    tls_cipher: Option<&'a str>,
    auth_successes: u64,
    interrupted: bool,
    elapsed_seconds: f64,
    messages_per_second: f64,
    accepted_per_second: f64,
    bytes_per_second: f64,
    latency: BTreeMap<String, PhaseLatency>,
    #[serde(skip_serializing_if = "Option::is_none")]
    latency_corrected: Option<BTreeMap<String, PhaseLatency>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    schedule: Option<Schedule>,
    series: crate::series::SeriesJson,
    thresholds: &'a [ThresholdResult],
    error: Option<&'a Fatal>,
    exit_code: u8,
}

/// `--bind`: `{"127.0.0.2": 125, ...}`, in the order of the list (a
/// BTreeMap would put 127.0.0.10 before 127.0.0.2). The addresses are
/// distinct (`bind::parse` refuses repeats), so no key is written twice.
struct BySource<'a> {
    addresses: &'a [std::net::IpAddr],
    /// By index; missing at the end means 0.
    connections: &'a [u64],
}

impl Serialize for BySource<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap as _;
        let mut map = serializer.serialize_map(Some(self.addresses.len()))?;
        for (i, ip) in self.addresses.iter().enumerate() {
            let n = self.connections.get(i).copied().unwrap_or(0);
            map.serialize_entry(&ip.to_string(), &n)?;
        }
        map.end()
    }
}

/// `--rate`: how the schedule was kept.
#[derive(Serialize)]
struct Schedule {
    starts: u64,
    late_starts: u64,
    late_after_ms: f64,
    lateness: PhaseLatency,
}

fn per_sec(n: u64, elapsed: Duration) -> f64 {
    let secs = elapsed.as_secs_f64();
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// `12.3 MB`: decimal units, as network rates are given.
fn bytes_text(n: f64) -> String {
    const UNITS: [&str; 5] = ["B", "kB", "MB", "GB", "TB"];
    let mut n = n;
    let mut unit = 0;
    while n >= 1000.0 && unit + 1 < UNITS.len() {
        n /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n:.0} B")
    } else {
        format!("{n:.1} {}", UNITS[unit])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(stats: Stats) -> Report {
        Report {
            sessions: 2,
            stats,
            elapsed: Duration::from_secs(2),
            interrupted: false,
            started: SystemTime::UNIX_EPOCH,
            ended: SystemTime::UNIX_EPOCH + Duration::from_secs(2),
            latency: Recorded::default(),
            fatal: None,
            prepare: None,
            thresholds: Vec::new(),
            stamped: None,
            info: RunInfo::default(),
        }
    }

    #[test]
    fn merge_and_summary() {
        let mut a = Stats {
            connections: 1,
            messages_sent: 2,
            accepted: 2,
            ..Stats::default()
        };
        let mut b = a.clone();
        b.rejects_by_phase[Phase::Rcpt.index()] = 3;
        a.merge(&b);
        assert_eq!(a.connections, 2);
        assert_eq!(a.messages_sent, 4);
        let r = report(a);
        assert_eq!(r.msgs_per_sec(), 2.0);
        let s = r.summary();
        assert!(s.contains("4 messages sent"), "{s}");
        assert!(s.contains("rejected replies: rcpt 3"), "{s}");
        assert!(s.ends_with("2 msg/s"), "{s}");
        assert_eq!(r.exit_code(), exit::OK);
    }

    /// A fatal error outranks a failed threshold, which outranks Ctrl-C.
    #[test]
    fn exit_code_precedence() {
        let mut r = report(Stats::default());
        r.interrupted = true;
        assert_eq!(r.exit_code(), exit::INTERRUPTED);
        r.thresholds.push(ThresholdResult {
            threshold: "failed==0".to_owned(),
            passed: false,
            observed: Some(1.0),
            detail: String::new(),
        });
        assert_eq!(r.exit_code(), exit::THRESHOLD);
        r.fatal = Some(Fatal {
            phase: Some("rcpt"),
            message: "x".to_owned(),
            exit_code: exit::RCPT,
            class: ErrorClass::Smtp,
            reply: None,
        });
        assert_eq!(r.exit_code(), exit::RCPT);
    }

    /// Per-session counts of unequal lengths add up by index; the
    /// summary shows their spread, and nothing without --bind.
    #[test]
    fn sources_merge_and_line() {
        let mut a = Stats::default();
        a.count_source(0);
        a.count_source(1);
        let mut b = Stats::default();
        b.count_source(2);
        b.count_source(0);
        a.merge(&b);
        assert_eq!(a.connections_by_source, [2, 1, 1]);
        let mut empty = Stats::default();
        empty.merge(&a);
        assert_eq!(empty.connections_by_source, [2, 1, 1]);
        let r = report(a);
        assert!(r
            .table()
            .contains("\nsource addresses: 3, connections 1..2 each\n"));
        let even = Stats {
            connections_by_source: vec![5, 5],
            ..Stats::default()
        };
        assert!(report(even)
            .table()
            .contains("source addresses: 2, connections 5 each\n"));
        assert!(!report(Stats::default())
            .table()
            .contains("source addresses"));
    }

    #[test]
    fn sources_in_json_keep_the_list_order() {
        let mut config = crate::Config::from_args([
            "smtp-source",
            "--bind",
            "127.0.0.9,127.0.0.10,127.0.0.2",
            "127.0.0.1:25",
        ])
        .unwrap();
        let mut stats = Stats::default();
        stats.count_source(0);
        stats.count_source(1);
        stats.count_source(1);
        let with_info = |stats: Stats, config: &crate::Config| {
            let mut r = report(stats);
            r.info = RunInfo::of(config);
            r.to_json()
        };
        let json = with_info(stats.clone(), &config);
        assert!(
            json.contains(
                r#""connections_by_source":{"127.0.0.9":1,"127.0.0.10":2,"127.0.0.2":0}"#
            ),
            "{json}"
        );
        config.bind.clear();
        assert!(!with_info(stats, &config).contains("connections_by_source"));
    }

    #[test]
    fn units() {
        assert_eq!(bytes_text(999.0), "999 B");
        assert_eq!(bytes_text(12_345_678.0), "12.3 MB");
    }
}
