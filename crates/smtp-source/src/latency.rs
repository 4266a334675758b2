//! Latency measurement: what is timed and where the samples go. How a
//! histogram is summarised and encoded is `smtp_net::histogram`'s.
//!
//! Sessions share no histogram while they run. Each keeps a small batch
//! of samples ([`Samples`]) and adds it to the run's [`Recorder`] under one
//! lock every [`BATCH`] samples or quarter of a second, whichever comes
//! first. A set of histograms per session would be simpler to explain but
//! costs tens of KiB per phase at 3 significant digits, which `-s 1000`
//! multiplies into a gigabyte; a batch is 4 KiB. The lock is taken once
//! per batch, so the per-reply cost is a clock read and a push.
//!
//! Every value is in microseconds; histograms keep 3 significant digits.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicI64, Ordering},
        Mutex, MutexGuard,
    },
    time::Instant,
};

use hdrhistogram::Histogram;
use smtp_proto::client::Phase;

use crate::series::Series;

// The histogram, its summary and its encoding are shared with smtp-sink's
// transit latency: one definition, in smtp-net.
use smtp_net::histogram::record as add;
pub use smtp_net::histogram::{decode, encode, new as histogram, PhaseLatency};

/// What a latency sample measures: the report's keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Metric {
    /// Waiting for the connect gate (connects are made one at a time).
    ConnectWait,
    /// The TCP (or unix socket) connect itself.
    Connect,
    /// Connected to the greeting.
    Banner,
    /// HELO, EHLO or LHLO to its reply.
    Helo,
    /// STARTTLS to its reply plus the TLS handshake (with
    /// `--tls-on-connect`, the handshake alone).
    Starttls,
    /// AUTH to its final reply, the whole exchange.
    Auth,
    /// MAIL FROM.
    Mail,
    /// Each RCPT TO.
    Rcpt,
    /// DATA to 354, or each BDAT chunk but the last.
    Data,
    /// The end of the content (".", or BDAT LAST) to its reply.
    Datasent,
    /// RSET.
    Rset,
    /// QUIT.
    Quit,
    /// MAIL written to the transaction's last reply.
    Transaction,
    /// Connect to close.
    Session,
}

impl Metric {
    /// How many metrics there are.
    pub const COUNT: usize = 14;

    /// Every metric, in conversation order.
    pub const ALL: [Metric; Metric::COUNT] = [
        Metric::ConnectWait,
        Metric::Connect,
        Metric::Banner,
        Metric::Helo,
        Metric::Starttls,
        Metric::Auth,
        Metric::Mail,
        Metric::Rcpt,
        Metric::Data,
        Metric::Datasent,
        Metric::Rset,
        Metric::Quit,
        Metric::Transaction,
        Metric::Session,
    ];

    /// The name in the summary, the report and `--threshold`.
    pub fn name(self) -> &'static str {
        match self {
            Metric::ConnectWait => "connect_wait",
            Metric::Connect => "connect",
            Metric::Banner => "banner",
            Metric::Helo => "helo",
            Metric::Starttls => "starttls",
            Metric::Auth => "auth",
            Metric::Mail => "mail",
            Metric::Rcpt => "rcpt",
            Metric::Data => "data",
            Metric::Datasent => "datasent",
            Metric::Rset => "rset",
            Metric::Quit => "quit",
            Metric::Transaction => "transaction",
            Metric::Session => "session",
        }
    }

    /// The metric called `name`.
    pub fn from_name(name: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Where the reply of a conversation phase is counted.
    pub fn of_phase(phase: Phase) -> Metric {
        match phase {
            Phase::Greeting => Metric::Banner,
            Phase::Ehlo | Phase::Helo => Metric::Helo,
            Phase::Starttls => Metric::Starttls,
            Phase::Auth => Metric::Auth,
            Phase::Mail => Metric::Mail,
            Phase::Rcpt => Metric::Rcpt,
            Phase::Data | Phase::Bdat => Metric::Data,
            Phase::EndOfData => Metric::Datasent,
            Phase::Rset => Metric::Rset,
            Phase::Quit => Metric::Quit,
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One histogram per metric.
#[derive(Debug, Clone)]
pub struct Latencies {
    hists: Vec<Histogram<u64>>,
}

impl Default for Latencies {
    fn default() -> Self {
        Self {
            hists: (0..Metric::COUNT).map(|_| histogram()).collect(),
        }
    }
}

impl Latencies {
    /// Adds one sample, in µs.
    pub fn record(&mut self, metric: Metric, micros: u64) {
        add(&mut self.hists[metric.index()], micros);
    }

    /// The histogram of `metric`.
    pub fn get(&self, metric: Metric) -> &Histogram<u64> {
        &self.hists[metric.index()]
    }

    /// Adds the samples of `h` to `metric`'s.
    pub fn add(&mut self, metric: Metric, h: &Histogram<u64>) {
        self.hists[metric.index()]
            .add(h)
            .expect("auto-resizing histograms take any value");
    }

    /// Adds every sample of `other`.
    pub fn merge(&mut self, other: &Latencies) {
        for (h, o) in self.hists.iter_mut().zip(&other.hists) {
            h.add(o).expect("auto-resizing histograms take any value");
        }
    }

    /// The summaries of every metric that has samples, by name.
    pub fn summaries(&self) -> BTreeMap<String, PhaseLatency> {
        Metric::ALL
            .iter()
            .filter(|m| !self.get(**m).is_empty())
            .map(|m| (m.name().to_owned(), PhaseLatency::of(self.get(*m))))
            .collect()
    }
}

/// Samples per batch before a session adds them to the recorder.
pub const BATCH: usize = 256;

/// How long a batch may wait before it is added anyway (µs), so the live
/// view stays current at low rates.
const FLUSH_AFTER: u64 = 250_000;

/// What kind of sample.
#[derive(Debug, Clone, Copy)]
enum Kind {
    /// A metric; under `--rate` also counted with the start's lateness.
    Metric(Metric),
    /// How late a scheduled start was (`--rate`).
    Lateness,
    /// Transactions accepted (`micros` holds how many), for the series.
    Accepted,
    /// Transactions refused (`micros` holds how many).
    Rejected,
    /// Connects that failed (`micros` holds how many).
    ConnectFailed,
}

#[derive(Debug, Clone, Copy)]
struct Sample {
    kind: Kind,
    /// The second of the run clock it completed in (the series' point).
    second: u32,
    micros: u64,
    /// How late the message this belongs to started (under `--rate`).
    late: u64,
}

/// The live counters of a session that the progress line shows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveCounts {
    /// Messages whose content went out.
    pub sent: u64,
    /// Transactions accepted.
    pub accepted: u64,
    /// Transactions the server refused.
    pub rejected: u64,
    /// Connects that failed (`-C`).
    pub failed: u64,
}

impl LiveCounts {
    fn add(&mut self, other: LiveCounts) {
        self.sent += other.sent;
        self.accepted += other.accepted;
        self.rejected += other.rejected;
        self.failed += other.failed;
    }

    fn minus(self, other: LiveCounts) -> LiveCounts {
        LiveCounts {
            sent: self.sent.saturating_sub(other.sent),
            accepted: self.accepted.saturating_sub(other.accepted),
            rejected: self.rejected.saturating_sub(other.rejected),
            failed: self.failed.saturating_sub(other.failed),
        }
    }
}

/// Everything recorded so far.
#[derive(Debug, Default)]
struct Tally {
    raw: Latencies,
    corrected: Latencies,
    lateness: Option<Histogram<u64>>,
    late_starts: u64,
    /// Transactions completed since the live view last looked.
    window: Option<Histogram<u64>>,
    live: LiveCounts,
    series: Series,
}

/// The run's clock and the histograms every session adds to.
#[derive(Debug)]
pub struct Recorder {
    start: Instant,
    /// Samples that complete before this (µs) are dropped (`--warmup`).
    warmup_end: u64,
    /// A start this much later than intended (µs) is counted late.
    late_after: u64,
    open_sessions: AtomicI64,
    tally: Mutex<Tally>,
}

/// What the live view shows at one moment.
#[derive(Debug, Clone, Default)]
pub struct LiveSnapshot {
    /// Sessions connected now.
    pub open_sessions: i64,
    /// Totals so far (after the warm-up).
    pub counts: LiveCounts,
    /// Transaction latency since the previous snapshot (µs).
    pub window: Option<Histogram<u64>>,
    /// Scheduled starts that were late so far.
    pub late_starts: u64,
}

/// The run's latencies at the end.
#[derive(Debug, Clone, Default)]
pub struct Recorded {
    /// From the actual send.
    pub raw: Latencies,
    /// From the intended start (`--rate`).
    pub corrected: Latencies,
    /// How late scheduled starts were (`--rate`).
    pub lateness: Option<Histogram<u64>>,
    /// Starts later than the late threshold.
    pub late_starts: u64,
    /// The run over time.
    pub series: Series,
}

impl Recorder {
    /// A recorder whose clock starts now; `warmup` µs are not recorded.
    pub fn new(warmup_micros: u64) -> Self {
        Self {
            start: Instant::now(),
            warmup_end: warmup_micros,
            late_after: LATE_AFTER,
            open_sessions: AtomicI64::new(0),
            tally: Mutex::new(Tally {
                series: Series::new(warmup_micros / 1_000_000, 1),
                ..Tally::default()
            }),
        }
    }

    /// Microseconds since the run began.
    pub fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Whether the warm-up is over at `now`.
    pub fn recording(&self, now: u64) -> bool {
        now >= self.warmup_end
    }

    /// The instant the run's clock counts from.
    pub fn start(&self) -> Instant {
        self.start
    }

    /// A session connected (+1) or closed (-1).
    pub fn session_opened(&self, delta: i64) {
        self.open_sessions.fetch_add(delta, Ordering::Relaxed);
    }

    fn lock(&self) -> MutexGuard<'_, Tally> {
        // A poisoned lock only means a session panicked mid-batch; the
        // figures are still the best there are.
        self.tally
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// What the live view shows now; starts a new window.
    pub fn snapshot(&self) -> LiveSnapshot {
        let mut t = self.lock();
        LiveSnapshot {
            open_sessions: self.open_sessions.load(Ordering::Relaxed),
            counts: t.live,
            window: t.window.take(),
            late_starts: t.late_starts,
        }
    }

    /// Everything recorded, once the sessions are done.
    pub fn finish(&self) -> Recorded {
        let mut t = self.lock();
        Recorded {
            raw: std::mem::take(&mut t.raw),
            corrected: std::mem::take(&mut t.corrected),
            lateness: t.lateness.take(),
            late_starts: t.late_starts,
            series: std::mem::take(&mut t.series),
        }
    }

    fn add(&self, batch: &[Sample], corrected: bool, live: LiveCounts) {
        let mut t = self.lock();
        let t = &mut *t;
        t.live.add(live);
        for s in batch {
            let second = u64::from(s.second);
            match s.kind {
                Kind::Metric(m) => {
                    t.raw.record(m, s.micros);
                    if corrected {
                        t.corrected.record(m, s.micros.saturating_add(s.late));
                    }
                    if m == Metric::Transaction {
                        let h = t.window.get_or_insert_with(histogram);
                        add(h, s.micros.saturating_add(s.late));
                        t.series
                            .transaction(second, s.micros.saturating_add(s.late));
                    }
                }
                Kind::Lateness => {
                    if s.micros > self.late_after {
                        t.late_starts += 1;
                    }
                    add(t.lateness.get_or_insert_with(histogram), s.micros);
                }
                Kind::Accepted => t.series.accepted(second, s.micros),
                Kind::Rejected => t.series.rejected(second, s.micros),
                Kind::ConnectFailed => t.series.connect_failed(second, s.micros),
            }
        }
    }
}

/// The run-clock second of `now` (µs); a run of 136 years wraps.
fn second_of(now: u64) -> u32 {
    (now / 1_000_000) as u32
}

/// A scheduled start is late when it begins more than this after its
/// intended time (µs): tokio's timer wakes with millisecond granularity,
/// so anything under 2 ms is the timer, not the load.
pub const LATE_AFTER: u64 = 2_000;

/// A session's batch of samples.
#[derive(Debug)]
pub struct Samples {
    batch: Vec<Sample>,
    last_flush: u64,
    /// Under `--rate`: samples are also recorded corrected.
    corrected: bool,
    /// How late the current message started (under `--rate`).
    late: u64,
    /// The session's live counters as last added to the recorder.
    published: LiveCounts,
    /// The session's counters as last added to the series.
    counted: LiveCounts,
}

impl Samples {
    /// An empty batch; `corrected` under `--rate`.
    pub fn new(corrected: bool) -> Self {
        Self {
            batch: Vec::with_capacity(BATCH),
            last_flush: 0,
            corrected,
            late: 0,
            published: LiveCounts::default(),
            counted: LiveCounts::default(),
        }
    }

    /// The message being started began `late` µs after its intended time
    /// (`--rate`); what is recorded from now on is corrected by it.
    pub fn started_late(&mut self, rec: &Recorder, late: u64, now: u64) {
        self.late = late;
        if rec.recording(now) {
            self.batch.push(Sample {
                kind: Kind::Lateness,
                second: second_of(now),
                micros: late,
                late: 0,
            });
        }
    }

    /// Records `micros` for `metric`, completed at `now`.
    pub fn record(&mut self, rec: &Recorder, metric: Metric, micros: u64, now: u64) {
        if !rec.recording(now) {
            return;
        }
        self.batch.push(Sample {
            kind: Kind::Metric(metric),
            second: second_of(now),
            micros,
            late: self.late,
        });
    }

    /// Notes what the session's counters gained since the last call as
    /// happening at `now`, for the series: a comparison per reply, and a
    /// sample only when a counter moved.
    pub fn count(&mut self, rec: &Recorder, live: LiveCounts, now: u64) {
        if live == self.counted {
            return;
        }
        let gained = live.minus(self.counted);
        self.counted = live;
        if !rec.recording(now) {
            return;
        }
        let second = second_of(now);
        for (kind, n) in [
            (Kind::Accepted, gained.accepted),
            (Kind::Rejected, gained.rejected),
            (Kind::ConnectFailed, gained.failed),
        ] {
            if n > 0 {
                self.batch.push(Sample {
                    kind,
                    second,
                    micros: n,
                    late: 0,
                });
            }
        }
    }

    /// The session's counters start again from zero (after the warm-up);
    /// what the recorder has is kept.
    pub fn restart_counts(&mut self) {
        self.published = LiveCounts::default();
        self.counted = LiveCounts::default();
    }

    /// Whether the batch is full (the bench flushes on this alone, its
    /// clock being fake).
    pub fn batch_full(&self) -> bool {
        self.batch.len() >= BATCH
    }

    /// Whether the batch should go to the recorder now: it is full, or
    /// the last one went a while ago.
    pub fn due(&self, now: u64) -> bool {
        self.batch.len() >= BATCH || now.saturating_sub(self.last_flush) >= FLUSH_AFTER
    }

    /// Adds the batch to the recorder with the session's live counters
    /// (totals; only what changed since the last flush is added).
    pub fn flush(&mut self, rec: &Recorder, live: LiveCounts, now: u64) {
        self.count(rec, live, now);
        self.last_flush = now;
        // During the warm-up the live totals do not move either.
        let delta = if rec.recording(now) {
            live.minus(self.published)
        } else {
            LiveCounts::default()
        };
        self.published = live;
        if self.batch.is_empty() && delta == LiveCounts::default() {
            return;
        }
        rec.add(&self.batch, self.corrected, delta);
        self.batch.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for m in Metric::ALL {
            assert_eq!(Metric::from_name(m.name()), Some(m));
        }
        assert_eq!(Metric::from_name("nope"), None);
        assert_eq!(Metric::of_phase(Phase::EndOfData).name(), "datasent");
        assert_eq!(Metric::of_phase(Phase::Greeting).name(), "banner");
    }

    /// A value far above the first size grows the histogram, it is not
    /// clamped.
    #[test]
    fn big_values_are_kept() {
        let mut l = Latencies::default();
        l.record(Metric::Rcpt, 5_000_000);
        let h = l.get(Metric::Rcpt);
        assert!(h.equivalent(h.max(), 5_000_000), "{}", h.max());
    }

    #[test]
    fn summary_in_milliseconds() {
        let mut h = histogram();
        for v in 1..=1000u64 {
            h.record(v * 1000).unwrap();
        }
        let s = PhaseLatency::of(&h);
        assert_eq!(s.count, 1000);
        assert!((s.min_ms - 1.0).abs() < 0.01, "{s:?}");
        assert!((s.p50_ms - 500.0).abs() < 1.0, "{s:?}");
        assert!((s.p99_ms - 990.0).abs() < 1.0, "{s:?}");
        assert!((s.max_ms - 1000.0).abs() < 1.0, "{s:?}");
        assert!((s.mean_ms - 500.5).abs() < 1.0, "{s:?}");
    }

    /// The series gets each counter's gains in the second they were
    /// noted, transactions' latencies in the second they ended, and
    /// nothing from the warm-up.
    #[test]
    fn series_by_second() {
        let rec = Recorder::new(1_500_000);
        let mut s = Samples::new(false);
        let live = |accepted, rejected, failed| LiveCounts {
            accepted,
            rejected,
            failed,
            ..LiveCounts::default()
        };
        s.count(&rec, live(5, 0, 0), 1_000_000); // warm-up: not in the series
        s.count(&rec, live(7, 1, 0), 2_100_000);
        s.record(&rec, Metric::Transaction, 3_000, 2_100_000);
        s.count(&rec, live(7, 1, 0), 2_200_000); // nothing new
        s.flush(&rec, live(9, 1, 2), 4_000_000);
        let series = rec.finish().series;
        let points: Vec<(u64, u64, u64, u64, u64)> = series
            .points()
            .map(|(t, p)| {
                (
                    t,
                    p.accepted,
                    p.rejected,
                    p.connect_failures,
                    p.latency.len(),
                )
            })
            .collect();
        assert_eq!(
            points,
            [
                (1, 0, 0, 0, 0),
                (2, 2, 1, 0, 1),
                (3, 0, 0, 0, 0),
                (4, 2, 0, 2, 0)
            ]
        );
    }

    /// Batches reach the recorder when full, when old, and when flushed;
    /// nothing is recorded during the warm-up; corrected samples carry the
    /// start's lateness.
    #[test]
    fn batches_and_warmup() {
        let rec = Recorder::new(1_000);
        let mut s = Samples::new(true);
        s.record(&rec, Metric::Rcpt, 7, 500); // warm-up: dropped
        s.started_late(&rec, 3_000, 2_000);
        s.record(&rec, Metric::Rcpt, 10, 2_000);
        assert!(!s.due(2_000));
        for _ in 0..BATCH {
            s.record(&rec, Metric::Mail, 1, 2_001);
        }
        assert!(s.due(2_001), "full");
        s.flush(&rec, LiveCounts::default(), 2_001);
        assert!(!s.due(2_002));
        s.record(&rec, Metric::Transaction, 100, 2_001 + FLUSH_AFTER);
        assert!(s.due(2_001 + FLUSH_AFTER), "old");
        let live = LiveCounts {
            sent: 2,
            ..LiveCounts::default()
        };
        s.flush(&rec, live, 2_001 + FLUSH_AFTER);
        s.flush(&rec, live, 2_001 + FLUSH_AFTER);
        let snap = rec.snapshot();
        assert_eq!(snap.counts.sent, 2);
        assert_eq!(snap.late_starts, 1);
        let done = rec.finish();
        assert_eq!(done.raw.get(Metric::Rcpt).len(), 1);
        assert_eq!(done.raw.get(Metric::Mail).len(), BATCH as u64);
        assert_eq!(done.raw.get(Metric::Rcpt).max(), 10);
        let corrected = done.corrected.get(Metric::Rcpt);
        assert!(
            corrected.equivalent(corrected.max(), 3_010),
            "10 µs + 3 ms late"
        );
        assert_eq!(done.lateness.unwrap().len(), 1);
    }
}
