//! `--merge-reports`: the JSON reports of a run's segments (`--segment
//! I/N`) made into the report of the whole run. Counters are summed;
//! latency histograms are decoded from the reports and added, so the
//! merged percentiles are exactly those of all samples, not an average of
//! percentiles; the span runs from the earliest start to the latest end,
//! and the rates are over it. Reports of different runs are refused, and
//! so is a missing or repeated segment unless `--partial` says to merge
//! what there is.

use std::{collections::BTreeMap, io::Read as _, time::Duration};

use hdrhistogram::Histogram;
use serde::Deserialize;
use smtp_proto::client::Phase;

use crate::{
    config::MergeOptions,
    latency::{decode, Metric, PhaseLatency, Recorded},
    report::{ErrorClass, Fatal, MergedInfo, Report, RunInfo, SegmentInfo, Stats},
    series::{Series, SeriesJson},
};

/// Why reports could not be merged; the text follows `fatal: `.
#[derive(Debug, thiserror::Error)]
pub enum MergeError {
    /// A file could not be read.
    #[error("read {input}: {reason}")]
    Read {
        /// The file, or `-`.
        input: String,
        /// Why.
        reason: String,
    },
    /// A report that is not one of smtp-source's, or damaged.
    #[error("{input}: report {number}: {reason}")]
    Bad {
        /// The file, or `-`.
        input: String,
        /// Which report in it, from 1.
        number: usize,
        /// What is wrong.
        reason: String,
    },
    /// Nothing to merge.
    #[error("no report to merge")]
    Empty,
    /// Reports of different runs.
    #[error("reports of different runs: {0} and {1} (segments of one run share its --run-id)")]
    DifferentRuns(String, String),
    /// A whole run's report among segments.
    #[error("the report of run {0} is not a segment (it ran without --segment)")]
    NotSegment(String),
    /// Segments of runs cut differently.
    #[error("segments of {0} and of {1} parts: one run is cut one way")]
    DifferentCounts(u32, u32),
    /// A segment given twice.
    #[error("segment {0}/{1} is given twice (--partial merges it anyway)")]
    Repeated(u32, u32),
    /// Segments with no report.
    #[error("missing segment{} {} of {count} (--partial merges the others)", if .missing.len() > 1 { "s" } else { "" }, list(.missing))]
    Missing {
        /// Their indices.
        missing: Vec<u32>,
        /// N.
        count: u32,
    },
}

fn list(indices: &[u32]) -> String {
    indices
        .iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What merging reads of a report (docs/report.schema.json); other fields
/// are recomputed from these.
#[derive(Debug, Deserialize)]
struct Input {
    schema_version: u32,
    program: String,
    target: String,
    run_id: String,
    #[serde(default)]
    segment: Option<SegmentInfo>,
    stamped: Option<u64>,
    started: String,
    ended: String,
    warmup_seconds: Option<f64>,
    rate_target: Option<f64>,
    sessions: u32,
    connections: u64,
    connect_failures: u64,
    #[serde(default)]
    connections_by_source: Option<BTreeMap<String, u64>>,
    transactions: u64,
    messages_sent: u64,
    bytes_sent: u64,
    accepted: u64,
    failed_by_phase: BTreeMap<String, u64>,
    rejects_by_phase: BTreeMap<String, u64>,
    service_closing: u64,
    tls_handshakes_full: u64,
    tls_handshakes_resumed: u64,
    tls_protocol: Option<String>,
    tls_cipher: Option<String>,
    auth_successes: u64,
    interrupted: bool,
    latency: BTreeMap<String, PhaseLatency>,
    #[serde(default)]
    latency_corrected: Option<BTreeMap<String, PhaseLatency>>,
    #[serde(default)]
    schedule: Option<InputSchedule>,
    /// Absent from reports before the series was added.
    #[serde(default)]
    series: Option<SeriesJson>,
    error: Option<InputError>,
}

#[derive(Debug, Deserialize)]
struct InputSchedule {
    late_starts: u64,
    lateness: PhaseLatency,
}

#[derive(Debug, Deserialize)]
struct InputError {
    phase: Option<String>,
    message: String,
    exit_code: u8,
}

/// Reads every report `options` names and merges them.
///
/// # Errors
/// A [`MergeError`]: unreadable input, a report that is not one, or
/// reports that are not the segments of one run.
pub fn merge(options: &MergeOptions) -> Result<Report, MergeError> {
    let mut inputs = Vec::new();
    for name in &options.inputs {
        let text = read(name)?;
        let reports = serde_json::Deserializer::from_slice(&text).into_iter::<Input>();
        for (i, report) in reports.enumerate() {
            let bad = |reason: String| MergeError::Bad {
                input: name.clone(),
                number: i + 1,
                reason,
            };
            let report = report.map_err(|e| bad(format!("not an smtp-source report: {e}")))?;
            if report.program != "smtp-source" || report.schema_version < 2 {
                return Err(bad(format!(
                    "a report of {} (schema {}), not of smtp-source (schema 2 or later)",
                    report.program, report.schema_version
                )));
            }
            let times = parse_times(&report).map_err(bad)?;
            inputs.push((report, times));
        }
    }
    let merged = check_segments(&inputs, options.partial)?;
    let mut report = combine(&inputs).map_err(|(i, reason)| {
        // Point at the report whose histogram is damaged.
        MergeError::Bad {
            input: format!("report of segment {}", segment_text(&inputs[i].0)),
            number: 1,
            reason,
        }
    })?;
    report.info.command_line.clone_from(&options.command_line);
    report.info.merged = Some(merged);
    report.thresholds = options.thresholds.iter().map(|t| report.check(t)).collect();
    Ok(report)
}

fn segment_text(input: &Input) -> String {
    input
        .segment
        .map_or_else(|| "?".to_owned(), |s| format!("{}/{}", s.index, s.count))
}

fn read(name: &str) -> Result<Vec<u8>, MergeError> {
    let res = if name == "-" {
        let mut text = Vec::new();
        std::io::stdin().lock().read_to_end(&mut text).map(|_| text)
    } else {
        std::fs::read(name)
    };
    res.map_err(|e| MergeError::Read {
        input: name.to_owned(),
        reason: smtp_net::strerror(&e),
    })
}

type Times = (std::time::SystemTime, std::time::SystemTime);

fn parse_times(input: &Input) -> Result<Times, String> {
    let time = |t: &str| smtp_net::parse_rfc3339(t).ok_or_else(|| format!("bad time: {t}"));
    Ok((time(&input.started)?, time(&input.ended)?))
}

/// One run, cut one way, each segment once (or as `partial` allows).
fn check_segments(inputs: &[(Input, Times)], partial: bool) -> Result<MergedInfo, MergeError> {
    let first = &inputs.first().ok_or(MergeError::Empty)?.0;
    let count = first
        .segment
        .ok_or_else(|| MergeError::NotSegment(first.run_id.clone()))?
        .count;
    let mut seen = vec![0u32; count as usize];
    let mut segments = Vec::new();
    for (input, _) in inputs {
        if input.run_id != first.run_id {
            return Err(MergeError::DifferentRuns(
                first.run_id.clone(),
                input.run_id.clone(),
            ));
        }
        let seg = input
            .segment
            .ok_or_else(|| MergeError::NotSegment(input.run_id.clone()))?;
        if seg.count != count {
            return Err(MergeError::DifferentCounts(count, seg.count));
        }
        let Some(n) = seen.get_mut(seg.index as usize) else {
            return Err(MergeError::DifferentCounts(count, seg.count));
        };
        *n += 1;
        if *n > 1 && !partial {
            return Err(MergeError::Repeated(seg.index, count));
        }
        segments.push(seg.index);
    }
    let missing: Vec<u32> = (0..count).filter(|&i| seen[i as usize] == 0).collect();
    if !missing.is_empty() && !partial {
        return Err(MergeError::Missing { missing, count });
    }
    Ok(MergedInfo {
        count,
        segments,
        missing,
    })
}

/// The sum of the reports; on a damaged histogram, which report and why.
fn combine(inputs: &[(Input, Times)]) -> Result<Report, (usize, String)> {
    let mut stats = Stats::default();
    let mut latency = Recorded::default();
    let mut sessions = 0u32;
    let mut stamped: Option<u64> = None;
    let mut rate: Option<f64> = None;
    let (mut started, mut ended) = inputs[0].1;
    let mut interrupted = false;
    let mut fatal = None;
    let mut bind = Vec::new();
    for (i, (input, (start, end))) in inputs.iter().enumerate() {
        started = started.min(*start);
        ended = ended.max(*end);
        sessions = sessions.saturating_add(input.sessions);
        interrupted |= input.interrupted;
        if let Some(n) = input.stamped {
            stamped = Some(stamped.unwrap_or(0) + n);
        }
        if let Some(r) = input.rate_target {
            rate = Some(rate.unwrap_or(0.0) + r);
        }
        stats.merge(&stats_of(input));
        if let Some(by_source) = &input.connections_by_source {
            add_by_source(&mut bind, &mut stats.connections_by_source, by_source)
                .map_err(|e| (i, e))?;
        }
        add_latencies(&mut latency.raw, &input.latency).map_err(|e| (i, e))?;
        if let Some(corrected) = &input.latency_corrected {
            add_latencies(&mut latency.corrected, corrected).map_err(|e| (i, e))?;
        }
        if let Some(schedule) = &input.schedule {
            let h = decode(&schedule.lateness.histogram).map_err(|e| (i, e))?;
            latency
                .lateness
                .get_or_insert_with(crate::latency::histogram)
                .add(&h)
                .map_err(|e| (i, format!("{e:?}")))?;
            latency.late_starts += schedule.late_starts;
        }
        if fatal.is_none() {
            fatal = input.error.as_ref().map(|e| Fatal {
                phase: e
                    .phase
                    .as_deref()
                    .and_then(Metric::from_name)
                    .map(Metric::name),
                message: e.message.clone(),
                exit_code: e.exit_code,
                class: ErrorClass::default(),
                reply: None,
            });
        }
    }
    latency.series = merge_series(inputs, started)?;
    let first = &inputs[0].0;
    let warmup = first
        .warmup_seconds
        .and_then(|s| Duration::try_from_secs_f64(s).ok());
    let span = ended.duration_since(started).unwrap_or_default();
    Ok(Report {
        sessions,
        stats,
        elapsed: span.saturating_sub(warmup.unwrap_or_default()),
        interrupted: interrupted && fatal.is_none(),
        started,
        ended,
        latency,
        fatal,
        prepare: None,
        thresholds: Vec::new(),
        stamped,
        info: RunInfo {
            command_line: Vec::new(),
            target: first.target.clone(),
            run_id: first.run_id.clone(),
            warmup,
            // Shares of a rate add up to it, up to float rounding.
            rate_target: rate.map(|r| (r * 1e6).round() / 1e6),
            segment: None,
            merged: None,
            bind,
        },
    })
}

/// The segments' series on one clock, the merged run's (zero at the
/// earliest start): each segment's points move by how much later its clock
/// started, to the second (segments on different machines are lined up
/// only as well as their clocks agree). Points are as long as the longest
/// of any segment's.
fn merge_series(
    inputs: &[(Input, Times)],
    started: std::time::SystemTime,
) -> Result<Series, (usize, String)> {
    let interval = inputs
        .iter()
        .filter_map(|(input, _)| input.series.as_ref())
        .map(|s| s.interval_seconds)
        .max()
        .unwrap_or(1);
    let mut parts = Vec::new();
    for (i, (input, (start, _))) in inputs.iter().enumerate() {
        let Some(json) = &input.series else { continue };
        let series = Series::from_json(json).map_err(|e| (i, e))?;
        let late = start
            .duration_since(started)
            .unwrap_or_default()
            .as_secs_f64();
        let shift = (late + json.clock_offset_seconds).round() as u64;
        parts.push((shift, series));
    }
    // The merged series starts at the earliest point of any segment.
    let first = parts
        .iter()
        .filter_map(|(shift, s)| s.points().next().map(|(t, _)| t + shift))
        .min()
        .unwrap_or(0);
    let mut merged = Series::new(first, interval);
    for (shift, series) in &parts {
        for (t, point) in series.points() {
            merged.add_point(t + shift, point);
        }
    }
    Ok(merged)
}

/// Adds one report's `connections_by_source` to the merged counts, by
/// address: segments on different machines bind different addresses.
fn add_by_source(
    bind: &mut Vec<std::net::IpAddr>,
    counts: &mut Vec<u64>,
    by_source: &BTreeMap<String, u64>,
) -> Result<(), String> {
    for (text, n) in by_source {
        let ip: std::net::IpAddr = text
            .parse()
            .map_err(|_| format!("connections_by_source: {text:?} is not an address"))?;
        let index = match bind.iter().position(|b| *b == ip) {
            Some(i) => i,
            None => {
                bind.push(ip);
                bind.len() - 1
            }
        };
        if counts.len() <= index {
            counts.resize(index + 1, 0);
        }
        counts[index] += n;
    }
    Ok(())
}

fn stats_of(input: &Input) -> Stats {
    let by_phase = |map: &BTreeMap<String, u64>| {
        let mut a = [0u64; Phase::COUNT];
        for p in Phase::ALL {
            a[p.index()] = map.get(p.name()).copied().unwrap_or(0);
        }
        a
    };
    Stats {
        connections: input.connections,
        connect_failures: input.connect_failures,
        transactions: input.transactions,
        messages_sent: input.messages_sent,
        bytes_sent: input.bytes_sent,
        accepted: input.accepted,
        failed_by_phase: by_phase(&input.failed_by_phase),
        rejects_by_phase: by_phase(&input.rejects_by_phase),
        service_closing: input.service_closing,
        tls_full: input.tls_handshakes_full,
        tls_resumed: input.tls_handshakes_resumed,
        tls_negotiated: input.tls_protocol.as_deref().map(|p| {
            (
                tls_protocol_name(p),
                input.tls_cipher.clone().unwrap_or_default(),
            )
        }),
        auth_ok: input.auth_successes,
        connections_by_source: Vec::new(),
    }
}

/// The protocol names a report can hold, as the static text the counters
/// keep.
fn tls_protocol_name(text: &str) -> &'static str {
    ["TLSv1.3", "TLSv1.2"]
        .into_iter()
        .find(|p| *p == text)
        .unwrap_or("TLS")
}

fn add_latencies(
    into: &mut crate::latency::Latencies,
    from: &BTreeMap<String, PhaseLatency>,
) -> Result<(), String> {
    for (name, summary) in from {
        let metric = Metric::from_name(name).ok_or_else(|| format!("unknown phase {name:?}"))?;
        let h: Histogram<u64> =
            decode(&summary.histogram).map_err(|e| format!("latency of {name}: {e}"))?;
        if h.len() != summary.count {
            return Err(format!(
                "latency of {name}: the histogram holds {} samples, the count says {}",
                h.len(),
                summary.count
            ));
        }
        into.add(metric, &h);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(index: u32, count: u32, run: &str) -> (Input, Times) {
        let text = format!(
            r#"{{"schema_version":3,"program":"smtp-source","target":"t","run_id":"{run}",
            "segment":{{"index":{index},"count":{count}}},"stamped":null,
            "started":"2026-01-01T00:00:0{index}.000Z","ended":"2026-01-01T00:00:1{index}.000Z",
            "warmup_seconds":null,"rate_target":null,"sessions":1,"connections":1,
            "connect_failures":0,"transactions":1,"messages_sent":1,"bytes_sent":1,"accepted":1,
            "failed_by_phase":{{}},"rejects_by_phase":{{}},"service_closing":0,
            "tls_handshakes_full":0,"tls_handshakes_resumed":0,"tls_protocol":null,
            "tls_cipher":null,"auth_successes":0,"interrupted":false,"latency":{{}},"error":null}}"#
        );
        let input: Input = serde_json::from_str(&text).unwrap();
        let times = parse_times(&input).unwrap();
        (input, times)
    }

    #[test]
    fn segments_of_one_run_each_once() {
        let all: Vec<_> = (0..3).map(|i| input(i, 3, "r")).collect();
        let m = check_segments(&all, false).unwrap();
        assert_eq!((m.count, m.segments, m.missing), (3, vec![0, 1, 2], vec![]));

        let two = vec![input(0, 3, "r"), input(2, 3, "r")];
        let e = check_segments(&two, false).unwrap_err();
        assert_eq!(
            e.to_string(),
            "missing segment 1 of 3 (--partial merges the others)"
        );
        assert_eq!(check_segments(&two, true).unwrap().missing, vec![1]);

        let again = vec![input(0, 2, "r"), input(0, 2, "r"), input(1, 2, "r")];
        assert!(matches!(
            check_segments(&again, false),
            Err(MergeError::Repeated(0, 2))
        ));
        assert_eq!(
            check_segments(&again, true).unwrap().segments,
            vec![0, 0, 1]
        );

        let other = vec![input(0, 2, "r"), input(1, 2, "s")];
        assert!(matches!(
            check_segments(&other, true),
            Err(MergeError::DifferentRuns(..))
        ));
        let cut = vec![input(0, 2, "r"), input(1, 3, "r")];
        assert!(matches!(
            check_segments(&cut, true),
            Err(MergeError::DifferentCounts(2, 3))
        ));
    }

    /// The span is the earliest start to the latest end; counters add up.
    #[test]
    fn sums_and_span() {
        let all: Vec<_> = (0..3).map(|i| input(i, 3, "r")).collect();
        let r = combine(&all).unwrap();
        assert_eq!(r.sessions, 3);
        assert_eq!(r.stats.accepted, 3);
        assert_eq!(r.elapsed, Duration::from_secs(12));
        assert_eq!(r.info.run_id, "r");
    }

    /// Histograms are added, not their percentiles averaged.
    #[test]
    fn percentiles_are_those_of_all_samples() {
        let mut fast = crate::latency::histogram();
        for _ in 0..99 {
            fast.record(1_000).unwrap();
        }
        let mut slow = crate::latency::histogram();
        slow.record(1_000_000).unwrap();
        let mut all = vec![input(0, 2, "r"), input(1, 2, "r")];
        for ((i, _), h) in all.iter_mut().zip([&fast, &slow]) {
            i.latency.insert("rcpt".to_owned(), PhaseLatency::of(h));
        }
        let r = combine(&all).unwrap();
        let rcpt = r.latency.raw.get(Metric::from_name("rcpt").unwrap());
        assert_eq!(rcpt.len(), 100);
        assert_eq!(rcpt.value_at_quantile(0.99), 1_000);
        assert!(rcpt.max() >= 999_000);
    }

    #[test]
    fn a_damaged_histogram_is_an_error() {
        let mut all = vec![input(0, 1, "r")];
        let mut h = crate::latency::histogram();
        h.record(5).unwrap();
        let mut summary = PhaseLatency::of(&h);
        summary.count = 2;
        all[0].0.latency.insert("mail".to_owned(), summary);
        let (i, e) = combine(&all).unwrap_err();
        assert_eq!(i, 0);
        assert!(e.contains("holds 1 samples, the count says 2"), "{e}");
    }
}
