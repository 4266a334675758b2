//! `--metrics ADDR:PORT`: the always-on counters ([`Stats`]) served at
//! `GET /metrics` in the OpenMetrics text format, which Prometheus scrapes
//! (content type `application/openmetrics-text; version=1.0.0`, the text
//! ends with `# EOF`).
//!
//! Nothing is counted for the endpoint: each scrape takes a
//! [`Stats::snapshot`], the same one `--stats-json` writes, and encodes it
//! ([`exposition`]), so the sessions do no extra work with `--metrics` on.
//! [`Families::encode`] is the one place that turns a snapshot into
//! families; a new family (a counter, or a histogram through
//! [`histogram_family`]) is added there, from a field added to the snapshot.
//!
//! The HTTP side is hyper's HTTP/1.1 server on the sink's runtime. A
//! scraper is a trusted, occasional client, but the endpoint is network
//! input all the same: connections are few ([`MAX_CONNECTIONS`]) and
//! short-lived ([`CONNECTION_LIFETIME`]), and a malformed request gets
//! hyper's 400.

use std::convert::Infallible;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric, NoLabelSet};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::{Registry, Unit};
use thiserror::Error;
use tokio::sync::Semaphore;
use tracing::warn;

use crate::policy::Policy;
use crate::stats::{Counters, Stats};
use crate::verify::{Verify, VerifyMetrics};

/// The prefix of every family name.
pub const PREFIX: &str = "smtp_sink";

/// The content type of the exposition.
pub const CONTENT_TYPE_OPENMETRICS: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Scrapers served at once; more are turned away (their connection is
/// closed) until one is done.
pub const MAX_CONNECTIONS: usize = 16;

/// How long one connection may last, keep-alive included: a client that
/// stops reading cannot hold a slot for ever. A scraper just reconnects.
pub const CONNECTION_LIFETIME: Duration = Duration::from_secs(60);

/// How long a request's headers may take to arrive.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the endpoint could not start.
#[derive(Debug, Error)]
pub enum MetricsError {
    /// The address could not be bound (in use, not local, a privileged
    /// port, ...).
    #[error("--metrics {addr}: bind: {}", smtp_net::strerror(.source))]
    Bind {
        /// The address given.
        addr: SocketAddr,
        /// What the system said.
        #[source]
        source: std::io::Error,
    },
}

/// The endpoint's listening socket, bound at start-up (before privileges
/// are dropped, so a port below 1024 works as for the SMTP listener).
#[derive(Debug)]
pub struct Endpoint {
    listener: tokio::net::TcpListener,
}

impl Endpoint {
    /// Binds `addr`. Must be called inside the tokio runtime.
    ///
    /// # Errors
    /// [`MetricsError::Bind`]: the address cannot be listened on.
    pub fn bind(addr: SocketAddr) -> Result<Endpoint, MetricsError> {
        let bind_error = |source| MetricsError::Bind { addr, source };
        let std = std::net::TcpListener::bind(addr).map_err(bind_error)?;
        std.set_nonblocking(true).map_err(bind_error)?;
        let listener = tokio::net::TcpListener::from_std(std).map_err(bind_error)?;
        Ok(Endpoint { listener })
    }

    /// The address it listens on (the port chosen when `addr` had 0).
    ///
    /// # Errors
    /// The socket has no local address (it always has one once bound).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// Serves scrapes of `stats` for ever; `policy` says which command
    /// counts belong to which rule, as for `--stats-json`.
    pub async fn serve(self, stats: Arc<Stats>, policy: Policy) {
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        let scrape = Arc::new(Scrape { stats, policy });
        loop {
            let stream = match self.listener.accept().await {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // EMFILE and friends: wait instead of spinning.
                    warn!("--metrics: accept: {}", smtp_net::strerror(&e));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            };
            // Dropping the stream closes it: the scraper tries again later.
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                continue;
            };
            let scrape = scrape.clone();
            tokio::spawn(async move {
                let service = service_fn(move |request| {
                    let response = scrape.respond(&request);
                    async move { Ok::<_, Infallible>(response) }
                });
                let connection = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_TIMEOUT)
                    .serve_connection(TokioIo::new(stream), service);
                // A peer's error (reset, garbage) ends its connection only.
                let _ = tokio::time::timeout(CONNECTION_LIFETIME, connection).await;
                drop(slot);
            });
        }
    }
}

/// What a scrape reads.
#[derive(Debug)]
struct Scrape {
    stats: Arc<Stats>,
    policy: Policy,
}

impl Scrape {
    /// `GET /metrics` (and `HEAD`): the exposition; another method on it
    /// 405, any other path 404.
    fn respond(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        if request.uri().path() != "/metrics" {
            return plain(StatusCode::NOT_FOUND, "not found; try /metrics\n");
        }
        if !matches!(*request.method(), Method::GET | Method::HEAD) {
            let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "GET or HEAD\n");
            response
                .headers_mut()
                .insert(ALLOW, HeaderValue::from_static("GET, HEAD"));
            return response;
        }
        let verify = self.stats.verify().map(Verify::metrics);
        match exposition(self.stats.snapshot(&self.policy), verify) {
            Ok(text) => {
                let mut response = Response::new(Full::new(Bytes::from(text)));
                response.headers_mut().insert(
                    CONTENT_TYPE,
                    HeaderValue::from_static(CONTENT_TYPE_OPENMETRICS),
                );
                response
            }
            Err(fmt::Error) => plain(StatusCode::INTERNAL_SERVER_ERROR, "encoding failed\n"),
        }
    }
}

/// A short text/plain response.
fn plain(status: StatusCode, text: &'static str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

/// The whole exposition of one snapshot: every family, then `# EOF`.
///
/// # Errors
/// Only what prometheus-client's encoder reports (it writes to a String,
/// which does not fail).
pub fn exposition(counters: Counters, verify: Option<VerifyMetrics>) -> Result<String, fmt::Error> {
    // A registry per scrape: it holds nothing but the snapshot, and
    // building it is a box and a vector.
    let mut registry = Registry::with_prefix(PREFIX);
    registry.register_collector(Box::new(Families(counters, verify)));
    let mut text = String::with_capacity(8 * 1024);
    prometheus_client::encoding::text::encode(&mut text, &registry)?;
    Ok(text)
}

/// The families of one snapshot, and `--verify`'s when it is on.
#[derive(Debug)]
struct Families(Counters, Option<VerifyMetrics>);

impl Collector for Families {
    /// Every family, in the order of docs/smtp-sink.md's table. Names are
    /// given without the prefix and without the unit, which the encoder
    /// appends (`content` + bytes = `smtp_sink_content_bytes_total`).
    fn encode(&self, mut out: DescriptorEncoder<'_>) -> fmt::Result {
        let c = &self.0;
        let out = &mut out;
        gauge(
            out,
            "sessions_open",
            "Sessions running now.",
            c.sessions.open,
        )?;
        counter(
            out,
            "sessions",
            "Connections accepted.",
            None,
            c.sessions.accepted,
        )?;
        counter(
            out,
            "sessions_cut",
            "Sessions cut because the process stopped.",
            None,
            c.sessions.cut,
        )?;
        counter(
            out,
            "messages",
            "Messages whose end of data arrived.",
            None,
            c.messages.received,
        )?;
        counter(
            out,
            "messages_accepted",
            "Messages whose end of data was answered 2xx.",
            None,
            c.messages.accepted,
        )?;
        counter(
            out,
            "content",
            "Message content received (as sent, dot-stuffing included).",
            Some(&Unit::Bytes),
            c.messages.content_bytes,
        )?;
        counter_family(
            out,
            "commands",
            "Commands handled, by command (connect is the greeting, . the end of data).",
            None,
            c.commands
                .0
                .iter()
                .map(|(cmd, n)| ([("command", *cmd)], *n)),
        )?;
        counter_family(
            out,
            "replies",
            "Replies sent, by command and class.",
            None,
            c.replies.0.iter().flat_map(|(cmd, classes)| {
                [
                    ("2xx", classes.c2xx),
                    ("3xx", classes.c3xx),
                    ("4xx", classes.c4xx),
                    ("5xx", classes.c5xx),
                ]
                .map(|(class, n)| ([("command", *cmd), ("class", class)], n))
            }),
        )?;
        let rules = &c.rules;
        let per_rule = |rule: &'static str, rows: &crate::stats::CmdMap<u64>| {
            rows.0
                .iter()
                .map(move |(cmd, n)| ([("rule", rule), ("command", *cmd)], *n))
                .collect::<Vec<_>>()
        };
        counter_family(
            out,
            "rule_actions",
            "What the policy options did, by rule (-f hard-reject, -r soft-reject, -q drop, \
             -Q close, -W/-w delay, -A abort-delay, -H data-read-delay, --max-rate max-rate, \
             --greylist greylist) and command.",
            None,
            [
                per_rule("hard-reject", &rules.hard_reject),
                per_rule("soft-reject", &rules.soft_reject),
                per_rule("drop", &rules.drop),
                per_rule("close", &rules.close),
                rules
                    .max_rate
                    .as_ref()
                    .map_or_else(Vec::new, |rows| per_rule("max-rate", rows)),
                rules
                    .greylist
                    .as_ref()
                    .map_or_else(Vec::new, |rows| per_rule("greylist", rows)),
                rules
                    .delay
                    .0
                    .iter()
                    .map(|(cmd, d)| ([("rule", "delay"), ("command", *cmd)], d.count))
                    .collect(),
                vec![
                    (
                        [("rule", "abort-delay"), ("command", "data")],
                        rules.abort_delay,
                    ),
                    (
                        [("rule", "data-read-delay"), ("command", "data")],
                        rules.data_read_delay,
                    ),
                ],
            ]
            .into_iter()
            .flatten(),
        )?;
        counter_family(
            out,
            "rule_delay",
            "Time replies were held back by -W/-w, by command.",
            Some(&Unit::Seconds),
            rules
                .delay
                .0
                .iter()
                .map(|(cmd, d)| ([("command", *cmd)], d.seconds)),
        )?;
        counter_family(
            out,
            "faults",
            "Replies replaced by --fault rules, by rule (its place on the command line, from 0), \
             command and reply.",
            None,
            rules.fault.iter().enumerate().map(|(i, f)| {
                (
                    [
                        ("rule", i.to_string()),
                        ("command", f.command.to_owned()),
                        ("reply", f.reply.clone()),
                    ],
                    f.count,
                )
            }),
        )?;
        counter_family(
            out,
            "tls_handshakes",
            "TLS handshakes, by result (full, resumed, failed).",
            None,
            [
                ([("result", "full")], c.tls.full),
                ([("result", "resumed")], c.tls.resumed),
                ([("result", "failed")], c.tls.failed),
            ],
        )?;
        counter_family(
            out,
            "auth",
            "AUTH exchanges checked against --auth-users, by result (ok: 235, failed: 535).",
            None,
            [
                ([("result", "ok")], c.auth.ok),
                ([("result", "failed")], c.auth.failed),
            ],
        )?;
        counter_family(
            out,
            "dump_records",
            "Dump records (-d, -D), by result (written, failed).",
            None,
            [
                ([("result", "written")], c.dump.written),
                ([("result", "failed")], c.dump.failed),
            ],
        )?;
        if let Some(v) = &self.1 {
            verify_families(out, v)?;
        }
        // New families from the snapshot go here.
        Ok(())
    }
}

/// The upper bounds of the transit-latency buckets, in seconds: from a
/// millisecond (our pair on loopback) to ten minutes (a queue retrying).
pub const TRANSIT_BUCKETS: [f64; 18] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
    120.0, 300.0, 600.0,
];

/// `--verify`'s families: messages by run and result, the messages that
/// belong to no run, and the transit time by run.
fn verify_families(out: &mut DescriptorEncoder<'_>, v: &VerifyMetrics) -> fmt::Result {
    counter_family(
        out,
        "verify_messages",
        "Accepted stamped messages, by run id and result (unique, duplicate, corrupted).",
        None,
        v.runs.iter().flat_map(|r| {
            [
                ("unique", r.unique),
                ("duplicate", r.duplicate),
                ("corrupted", r.corrupted),
            ]
            .map(|(result, n)| ([("run", r.run.clone()), ("result", result.to_owned())], n))
        }),
    )?;
    counter_family(
        out,
        "verify_unmatched",
        "Accepted messages in no run, by reason (unstamped, invalid, untracked).",
        None,
        [
            ([("reason", "unstamped")], v.unstamped),
            ([("reason", "invalid")], v.invalid),
            ([("reason", "untracked")], v.untracked),
        ],
    )?;
    histogram_family(
        out,
        "verify_transit",
        "Arrival minus the stamp's sent time of unique messages, by run id (from an \
         HdrHistogram of 3 significant digits; the sum is its mean times its count).",
        Some(&Unit::Seconds),
        v.runs
            .iter()
            .map(|r| ([("run", r.run.as_str())], transit_buckets(&r.transit))),
    )
}

/// A transit histogram (µs) as [`TRANSIT_BUCKETS`] buckets (seconds): each
/// bucket holds the values above the previous bound up to its own (as far
/// as 3 significant digits tell).
fn transit_buckets(h: &hdrhistogram::Histogram<u64>) -> HistogramBuckets {
    let mut below = 0u64;
    let buckets = TRANSIT_BUCKETS
        .iter()
        .map(|&bound| {
            let upper = (bound * 1e6) as u64;
            let cumulative = if h.is_empty() {
                0
            } else {
                h.count_between(0, upper)
            };
            let here = cumulative.saturating_sub(below);
            below = below.max(cumulative);
            (bound, here)
        })
        .collect();
    HistogramBuckets {
        buckets,
        sum: h.mean() * h.len() as f64 / 1e6,
        count: h.len(),
    }
}

/// A gauge without labels.
fn gauge(out: &mut DescriptorEncoder<'_>, name: &str, help: &str, value: u64) -> fmt::Result {
    // Counts of sessions stay far below i64::MAX; saturate rather than wrap.
    let gauge = ConstGauge::new(i64::try_from(value).unwrap_or(i64::MAX));
    let metric = out.encode_descriptor(name, help, None, gauge.metric_type())?;
    gauge.encode(metric)
}

/// A counter without labels.
fn counter(
    out: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    value: u64,
) -> fmt::Result {
    let counter = ConstCounter::new(value);
    let metric = out.encode_descriptor(name, help, unit, counter.metric_type())?;
    counter.encode(metric)
}

/// A counter family: one sample per label set.
fn counter_family<L: EncodeLabelSet>(
    out: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    samples: impl IntoIterator<Item = (L, u64)>,
) -> fmt::Result {
    let mut metric = out.encode_descriptor(name, help, unit, MetricType::Counter)?;
    for (labels, value) in samples {
        ConstCounter::new(value).encode(metric.encode_family(&labels)?)?;
    }
    Ok(())
}

/// A histogram's state as a snapshot holds it: per bucket, its upper bound
/// and the values counted in it alone (not cumulative), as an
/// hdrhistogram's iterators give them with `count_since_last_iteration`.
#[derive(Debug, Clone, PartialEq)]
pub struct HistogramBuckets {
    /// `(upper bound, values in this bucket)`, bounds increasing.
    pub buckets: Vec<(f64, u64)>,
    /// The sum of all values.
    pub sum: f64,
    /// How many values there are.
    pub count: u64,
}

/// A histogram family: one histogram per label set, from
/// [`HistogramBuckets`]. The encoder makes the buckets cumulative, and a
/// `+Inf` bucket is added when the last bound is finite (Prometheus
/// requires it).
///
/// # Errors
/// The encoder's.
pub fn histogram_family<L: EncodeLabelSet>(
    out: &mut DescriptorEncoder<'_>,
    name: &str,
    help: &str,
    unit: Option<&Unit>,
    samples: impl IntoIterator<Item = (L, HistogramBuckets)>,
) -> fmt::Result {
    let mut metric = out.encode_descriptor(name, help, unit, MetricType::Histogram)?;
    for (labels, h) in samples {
        let mut buckets = h.buckets;
        if buckets.last().is_none_or(|(bound, _)| bound.is_finite()) {
            let below: u64 = buckets.iter().map(|(_, n)| n).sum();
            buckets.push((f64::INFINITY, h.count.saturating_sub(below)));
        }
        metric
            .encode_family(&labels)?
            .encode_histogram::<NoLabelSet>(h.sum, h.count, &buckets, None)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stats::{
        AuthCounters, Classes, CmdMap, DelayCounters, DumpCounters, FaultCounter, MessageCounters,
        RuleCounters, SessionCounters, TlsCounters,
    };

    /// A snapshot with a different number in every field.
    fn fixed() -> Counters {
        Counters {
            sessions: SessionCounters {
                accepted: 7,
                open: 2,
                closed: 5,
                cut: 1,
                quit: 4,
            },
            messages: MessageCounters {
                received: 11,
                accepted: 10,
                content_bytes: 12_345,
            },
            commands: CmdMap(vec![("ehlo", 6), ("quit", 4), ("unknown", 3)]),
            replies: CmdMap(vec![
                (
                    ".",
                    Classes {
                        c2xx: 10,
                        c3xx: 0,
                        c4xx: 1,
                        c5xx: 0,
                    },
                ),
                (
                    "unknown",
                    Classes {
                        c5xx: 3,
                        ..Classes::default()
                    },
                ),
            ]),
            rules: RuleCounters {
                hard_reject: CmdMap(vec![("rcpt", 8)]),
                soft_reject: CmdMap(vec![]),
                drop: CmdMap(vec![]),
                close: CmdMap(vec![("vrfy", 9)]),
                delay: CmdMap(vec![(
                    "data",
                    DelayCounters {
                        count: 3,
                        seconds: 6,
                    },
                )]),
                abort_delay: 13,
                data_read_delay: 14,
                max_rate: Some(CmdMap(vec![("mail", 22)])),
                greylist: Some(CmdMap(vec![("rcpt", 23)])),
                fault: vec![FaultCounter {
                    command: "rcpt",
                    reply: "451 4.3.0 Try again".to_owned(),
                    probability: 0.5,
                    count: 24,
                }],
            },
            tls: TlsCounters {
                full: 15,
                resumed: 16,
                failed: 17,
            },
            auth: AuthCounters { ok: 18, failed: 19 },
            dump: DumpCounters {
                written: 20,
                failed: 21,
            },
        }
    }

    #[test]
    fn a_fixed_snapshot_encodes_to_these_lines() {
        let text = exposition(fixed(), None).expect("encodes");
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            samples,
            [
                "smtp_sink_sessions_open 2",
                "smtp_sink_sessions_total 7",
                "smtp_sink_sessions_cut_total 1",
                "smtp_sink_messages_total 11",
                "smtp_sink_messages_accepted_total 10",
                "smtp_sink_content_bytes_total 12345",
                "smtp_sink_commands_total{command=\"ehlo\"} 6",
                "smtp_sink_commands_total{command=\"quit\"} 4",
                "smtp_sink_commands_total{command=\"unknown\"} 3",
                "smtp_sink_replies_total{command=\".\",class=\"2xx\"} 10",
                "smtp_sink_replies_total{command=\".\",class=\"3xx\"} 0",
                "smtp_sink_replies_total{command=\".\",class=\"4xx\"} 1",
                "smtp_sink_replies_total{command=\".\",class=\"5xx\"} 0",
                "smtp_sink_replies_total{command=\"unknown\",class=\"2xx\"} 0",
                "smtp_sink_replies_total{command=\"unknown\",class=\"3xx\"} 0",
                "smtp_sink_replies_total{command=\"unknown\",class=\"4xx\"} 0",
                "smtp_sink_replies_total{command=\"unknown\",class=\"5xx\"} 3",
                "smtp_sink_rule_actions_total{rule=\"hard-reject\",command=\"rcpt\"} 8",
                "smtp_sink_rule_actions_total{rule=\"close\",command=\"vrfy\"} 9",
                "smtp_sink_rule_actions_total{rule=\"max-rate\",command=\"mail\"} 22",
                "smtp_sink_rule_actions_total{rule=\"greylist\",command=\"rcpt\"} 23",
                "smtp_sink_rule_actions_total{rule=\"delay\",command=\"data\"} 3",
                "smtp_sink_rule_actions_total{rule=\"abort-delay\",command=\"data\"} 13",
                "smtp_sink_rule_actions_total{rule=\"data-read-delay\",command=\"data\"} 14",
                "smtp_sink_rule_delay_seconds_total{command=\"data\"} 6",
                "smtp_sink_faults_total{rule=\"0\",command=\"rcpt\",reply=\"451 4.3.0 Try again\"} 24",
                "smtp_sink_tls_handshakes_total{result=\"full\"} 15",
                "smtp_sink_tls_handshakes_total{result=\"resumed\"} 16",
                "smtp_sink_tls_handshakes_total{result=\"failed\"} 17",
                "smtp_sink_auth_total{result=\"ok\"} 18",
                "smtp_sink_auth_total{result=\"failed\"} 19",
                "smtp_sink_dump_records_total{result=\"written\"} 20",
                "smtp_sink_dump_records_total{result=\"failed\"} 21",
            ]
        );
        assert!(text.ends_with("# EOF\n"), "{text}");
    }

    /// `--verify`'s families: counts by run and result, the rest by
    /// reason, and the transit histogram in cumulative buckets.
    #[test]
    fn verification_families() {
        use smtp_proto::stamp::{RunId, Stamp, UnstampedReason, Verification};
        let v = crate::verify::Verify::new();
        let stamp = |seq, sent_ns| Stamp {
            run: RunId::new(b"r1").unwrap(),
            seq,
            sent_ns,
            len: 1,
            digest: 1,
        };
        let ms = 1_000_000;
        // Transit 2 ms, 2 ms, 300 ms; one duplicate; one unstamped.
        for (seq, now) in [(0, 2 * ms), (1, 2 * ms), (2, 300 * ms), (0, 9 * ms)] {
            v.record_at(&Verification::Intact(stamp(seq, 0)), now);
        }
        v.record_at(&Verification::Unstamped(UnstampedReason::NoStamp), 0);
        let text = exposition(fixed(), Some(v.metrics())).expect("encodes");
        for line in [
            "smtp_sink_verify_messages_total{run=\"r1\",result=\"unique\"} 3",
            "smtp_sink_verify_messages_total{run=\"r1\",result=\"duplicate\"} 1",
            "smtp_sink_verify_messages_total{run=\"r1\",result=\"corrupted\"} 0",
            "smtp_sink_verify_unmatched_total{reason=\"unstamped\"} 1",
            "smtp_sink_verify_unmatched_total{reason=\"invalid\"} 0",
            "# TYPE smtp_sink_verify_transit_seconds histogram",
            "smtp_sink_verify_transit_seconds_bucket{le=\"0.001\",run=\"r1\"} 0",
            "smtp_sink_verify_transit_seconds_bucket{le=\"0.0025\",run=\"r1\"} 2",
            "smtp_sink_verify_transit_seconds_bucket{le=\"0.25\",run=\"r1\"} 2",
            "smtp_sink_verify_transit_seconds_bucket{le=\"0.5\",run=\"r1\"} 3",
            "smtp_sink_verify_transit_seconds_bucket{le=\"+Inf\",run=\"r1\"} 3",
            "smtp_sink_verify_transit_seconds_count{run=\"r1\"} 3",
        ] {
            assert!(text.lines().any(|l| l == line), "{line} in\n{text}");
        }
        assert!(text.ends_with("# EOF\n"));
    }

    #[test]
    fn every_family_has_help_and_type_and_units_are_declared() {
        let text = exposition(fixed(), None).expect("encodes");
        let types: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .collect();
        assert_eq!(types.len(), 14, "{text}");
        assert!(types.contains(&"smtp_sink_sessions_open gauge"), "{text}");
        assert!(types.contains(&"smtp_sink_commands counter"), "{text}");
        for t in &types {
            let name = t.split(' ').next().unwrap_or_default();
            assert!(
                text.contains(&format!("# HELP {name} ")),
                "{name} has no HELP: {text}"
            );
        }
        assert!(
            text.contains("# UNIT smtp_sink_content_bytes bytes\n"),
            "{text}"
        );
        assert!(
            text.contains("# UNIT smtp_sink_rule_delay_seconds seconds\n"),
            "{text}"
        );
    }

    /// A collector with one histogram, as a later family would be encoded.
    #[derive(Debug)]
    struct OneHistogram(HistogramBuckets);

    impl Collector for OneHistogram {
        fn encode(&self, mut out: DescriptorEncoder<'_>) -> fmt::Result {
            histogram_family(
                &mut out,
                "transit",
                "Test histogram.",
                Some(&Unit::Seconds),
                [([("run", "x")], self.0.clone())],
            )
        }
    }

    #[test]
    fn histogram_buckets_become_cumulative_with_an_inf_bucket() {
        let mut registry = Registry::with_prefix(PREFIX);
        registry.register_collector(Box::new(OneHistogram(HistogramBuckets {
            buckets: vec![(0.001, 2), (0.01, 3)],
            sum: 0.05,
            count: 6,
        })));
        let mut text = String::new();
        prometheus_client::encoding::text::encode(&mut text, &registry).expect("encodes");
        let samples: Vec<&str> = text.lines().filter(|l| !l.starts_with('#')).collect();
        assert_eq!(
            samples,
            [
                "smtp_sink_transit_seconds_sum{run=\"x\"} 0.05",
                "smtp_sink_transit_seconds_count{run=\"x\"} 6",
                "smtp_sink_transit_seconds_bucket{le=\"0.001\",run=\"x\"} 2",
                "smtp_sink_transit_seconds_bucket{le=\"0.01\",run=\"x\"} 5",
                "smtp_sink_transit_seconds_bucket{le=\"+Inf\",run=\"x\"} 6",
            ],
            "{text}"
        );
        assert!(text.contains("# TYPE smtp_sink_transit_seconds histogram\n"));
    }

    /// One request on a fresh connection; the whole answer as text.
    async fn request(addr: SocketAddr, raw: &str) -> String {
        use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
        let mut conn = tokio::net::TcpStream::connect(addr).await.expect("connect");
        conn.write_all(raw.as_bytes()).await.expect("write");
        let mut answer = Vec::new();
        conn.read_to_end(&mut answer).await.expect("read");
        String::from_utf8_lossy(&answer).into_owned()
    }

    #[tokio::test]
    async fn serves_metrics_404s_other_paths_and_survives_garbage() {
        let stats = Arc::new(Stats::with_output(false, 0, 0, Box::new(std::io::sink())));
        assert_eq!(stats.message(), crate::stats::MessageOutcome::Continue);
        let endpoint = Endpoint::bind(SocketAddr::from(([127, 0, 0, 1], 0))).expect("bind");
        let addr = endpoint.local_addr().expect("addr");
        tokio::spawn(endpoint.serve(stats, Policy::default()));
        let get =
            |path: &str| format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");

        let ok = request(addr, &get("/metrics")).await;
        assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
        assert!(
            ok.contains(
                "content-type: application/openmetrics-text; version=1.0.0; charset=utf-8\r\n"
            ),
            "{ok}"
        );
        assert!(ok.contains("\nsmtp_sink_messages_total 1\n"), "{ok}");
        assert!(ok.ends_with("# EOF\n"), "{ok}");

        let missing = request(addr, &get("/")).await;
        assert!(
            missing.starts_with("HTTP/1.1 404 Not Found\r\n"),
            "{missing}"
        );
        let post = request(
            addr,
            "POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        )
        .await;
        assert!(post.starts_with("HTTP/1.1 405 "), "{post}");
        assert!(post.contains("allow: GET, HEAD\r\n"), "{post}");
        let garbage = request(addr, "\x00\x01 not http at all\r\n\r\n").await;
        assert!(garbage.starts_with("HTTP/1.1 400 "), "{garbage}");
        // Still serving after all that.
        let again = request(addr, &get("/metrics?x=1")).await;
        assert!(again.starts_with("HTTP/1.1 200 OK\r\n"), "{again}");
    }

    #[tokio::test]
    async fn binding_a_taken_port_is_a_clear_error() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = taken.local_addr().expect("addr");
        let err = Endpoint::bind(addr).expect_err("in use");
        assert_eq!(
            err.to_string(),
            format!("--metrics {addr}: bind: Address already in use")
        );
    }
}
