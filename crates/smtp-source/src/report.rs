//! The run's statistics: each worker fills its own [`Stats`]; they are
//! merged once at the end into the [`Report`].

use std::time::Duration;

use smtp_proto::client::Phase;

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
}

impl Stats {
    /// Adds `other` into `self`.
    pub fn merge(&mut self, other: &Stats) {
        self.connections += other.connections;
        self.connect_failures += other.connect_failures;
        self.transactions += other.transactions;
        self.messages_sent += other.messages_sent;
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
    }
}

/// What a finished run reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// Parallel sessions (`-s`).
    pub sessions: u32,
    /// Merged counters.
    pub stats: Stats,
    /// Wall time from the first connect to the last close.
    pub elapsed: Duration,
    /// Whether Ctrl-C ended the run early (only with --summary/--json).
    pub interrupted: bool,
}

impl Report {
    /// Messages sent per second of wall time.
    pub fn msgs_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.stats.messages_sent as f64 / secs
        } else {
            0.0
        }
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
        format!(
            "{}{} sessions, {} connections, {} transactions, {} messages sent, {} accepted, \
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
        ) + &self.tls_auth_summary()
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

    /// The report as a JSON object (`--json`).
    pub fn to_json(&self) -> String {
        let s = &self.stats;
        let by_phase = |a: &[u64; Phase::COUNT]| {
            let fields: Vec<String> = Phase::ALL
                .iter()
                .map(|p| format!("\"{}\":{}", p.name(), a[p.index()]))
                .collect();
            format!("{{{}}}", fields.join(","))
        };
        format!(
            "{{\"sessions\":{},\"connections\":{},\"connect_failures\":{},\"transactions\":{},\
             \"messages_sent\":{},\"accepted\":{},\"failed_by_phase\":{},\"rejects_by_phase\":{},\
             \"service_closing\":{},\"tls_handshakes_full\":{},\"tls_handshakes_resumed\":{},\
             \"tls_protocol\":{},\"tls_cipher\":{},\"auth_successes\":{},\
             \"interrupted\":{},\"elapsed_seconds\":{:.6},\"messages_per_second\":{:.1}}}",
            self.sessions,
            s.connections,
            s.connect_failures,
            s.transactions,
            s.messages_sent,
            s.accepted,
            by_phase(&s.failed_by_phase),
            by_phase(&s.rejects_by_phase),
            s.service_closing,
            s.tls_full,
            s.tls_resumed,
            json_string(s.tls_negotiated.as_ref().map(|t| t.0)),
            json_string(s.tls_negotiated.as_ref().map(|t| t.1.as_str())),
            s.auth_ok,
            self.interrupted,
            self.elapsed.as_secs_f64(),
            self.msgs_per_sec()
        )
    }
}

/// A JSON string (these are protocol and cipher names: no escaping
/// needed beyond quotes), or `null`.
fn json_string(s: Option<&str>) -> String {
    match s {
        Some(s) => format!("\"{}\"", s.replace(['"', '\\'], "")),
        None => "null".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let r = Report {
            sessions: 2,
            stats: a,
            elapsed: Duration::from_secs(2),
            interrupted: false,
        };
        assert_eq!(r.msgs_per_sec(), 2.0);
        let s = r.summary();
        assert!(s.contains("4 messages sent"), "{s}");
        assert!(s.contains("rejected replies: rcpt 3"), "{s}");
        assert!(s.ends_with("2 msg/s"), "{s}");
        let j = r.to_json();
        assert!(j.contains("\"rcpt\":3"), "{j}");
        assert!(j.starts_with('{') && j.ends_with('}'));
    }
}
