//! The run over time: for each second (or, in a long run, each few
//! seconds) the transactions accepted and refused, the connects that
//! failed, and a histogram of transaction latency. The report's `series`
//! and the HTML report's time charts are drawn from it.
//!
//! Its size is bounded by design: at most [`MAX_POINTS`] points. When a
//! run outlasts them the interval doubles and neighbouring points are
//! added together, histograms included, so nothing is approximated: runs
//! of up to 15 minutes keep 1-second points, an hour-long one 8-second
//! points. A point's histogram keeps 2 significant digits (1 % resolution,
//! plenty for a chart), at most about 15 KiB in memory for latencies up to
//! a second, so the series holds at most about 13 MiB however long the
//! run; in the JSON report a point takes 150 to 650 bytes.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use smtp_net::histogram::{decode, encode, record};

/// The most points a series holds.
pub const MAX_POINTS: usize = 900;

/// One interval of the run.
#[derive(Debug, Clone)]
pub struct Point {
    /// Transactions the server accepted.
    pub accepted: u64,
    /// Transactions the server refused.
    pub rejected: u64,
    /// Connects that failed (`-C`).
    pub connect_failures: u64,
    /// Transaction latency (µs; from the intended start under `--rate`).
    pub latency: Histogram<u64>,
}

impl Default for Point {
    fn default() -> Self {
        let mut latency = Histogram::new(2).expect("2 significant digits are valid");
        latency.auto(true);
        Self {
            accepted: 0,
            rejected: 0,
            connect_failures: 0,
            latency,
        }
    }
}

impl Point {
    fn add(&mut self, other: &Point) {
        self.accepted += other.accepted;
        self.rejected += other.rejected;
        self.connect_failures += other.connect_failures;
        self.latency
            .add(&other.latency)
            .expect("auto-resizing histograms take any value");
    }
}

/// The run's points, on the run's clock (seconds since it started).
#[derive(Debug, Clone)]
pub struct Series {
    /// The second the first point starts at (the end of the warm-up).
    first: u64,
    /// Seconds per point: 1, 2, 4, ...
    interval: u64,
    points: Vec<Point>,
    /// Seconds from the report's `started` to the run clock's zero (the
    /// time spent preparing); lets `--merge-reports` line segments up.
    pub clock_offset: f64,
}

impl Default for Series {
    fn default() -> Self {
        Self::new(0, 1)
    }
}

impl Series {
    /// An empty series whose first point starts at `first` (s) and spans
    /// `interval` seconds.
    pub fn new(first: u64, interval: u64) -> Self {
        Self {
            first,
            interval: interval.max(1),
            points: Vec::new(),
            clock_offset: 0.0,
        }
    }

    /// Seconds per point.
    pub fn interval(&self) -> u64 {
        self.interval
    }

    /// The points with the second each starts at.
    pub fn points(&self) -> impl Iterator<Item = (u64, &Point)> + '_ {
        let (first, interval) = (self.first, self.interval);
        (0u64..)
            .zip(&self.points)
            .map(move |(i, p)| (first + i * interval, p))
    }

    /// The point that holds `second`; the interval doubles as often as it
    /// takes for it to fit.
    fn at(&mut self, second: u64) -> &mut Point {
        let offset = second.saturating_sub(self.first);
        while offset / self.interval >= MAX_POINTS as u64 {
            self.coarsen();
        }
        let i = usize::try_from(offset / self.interval).expect("under MAX_POINTS");
        if self.points.len() <= i {
            self.points.resize_with(i + 1, Point::default);
        }
        &mut self.points[i]
    }

    /// Twice the interval: each pair of points becomes one.
    fn coarsen(&mut self) {
        let old = std::mem::take(&mut self.points);
        for (i, p) in old.into_iter().enumerate() {
            if i % 2 == 0 {
                self.points.push(p);
            } else if let Some(last) = self.points.last_mut() {
                last.add(&p);
            }
        }
        self.interval *= 2;
    }

    /// `n` transactions accepted in `second`.
    pub fn accepted(&mut self, second: u64, n: u64) {
        self.at(second).accepted += n;
    }

    /// `n` transactions refused in `second`.
    pub fn rejected(&mut self, second: u64, n: u64) {
        self.at(second).rejected += n;
    }

    /// `n` connects failed in `second`.
    pub fn connect_failed(&mut self, second: u64, n: u64) {
        self.at(second).connect_failures += n;
    }

    /// A transaction that took `micros` ended in `second`.
    pub fn transaction(&mut self, second: u64, micros: u64) {
        record(&mut self.at(second).latency, micros);
    }

    /// Adds `point`, which starts at `second` of this series' clock
    /// (`--merge-reports`: a segment's point, shifted onto the merged
    /// run's clock).
    pub fn add_point(&mut self, second: u64, point: &Point) {
        self.at(second).add(point);
    }

    /// The series as the JSON report writes it.
    pub fn to_json(&self) -> SeriesJson {
        SeriesJson {
            interval_seconds: self.interval,
            clock_offset_seconds: self.clock_offset,
            points: self
                .points()
                .map(|(t, p)| {
                    let h = &p.latency;
                    let ms = |q: f64| (!h.is_empty()).then(|| h.value_at_quantile(q) as f64 / 1e3);
                    PointJson {
                        t,
                        accepted: p.accepted,
                        rejected: p.rejected,
                        connect_failures: p.connect_failures,
                        p50_ms: ms(0.5),
                        p99_ms: ms(0.99),
                        histogram: (!h.is_empty()).then(|| encode(h)),
                    }
                })
                .collect(),
        }
    }

    /// A series read back from a report.
    ///
    /// # Errors
    /// A point whose histogram does not decode.
    pub fn from_json(json: &SeriesJson) -> Result<Series, String> {
        let mut series = Series::new(0, json.interval_seconds);
        series.first = json.points.first().map_or(0, |p| p.t);
        series.clock_offset = json.clock_offset_seconds;
        for p in &json.points {
            let mut point = Point {
                accepted: p.accepted,
                rejected: p.rejected,
                connect_failures: p.connect_failures,
                ..Point::default()
            };
            if let Some(text) = &p.histogram {
                let h = decode(text).map_err(|e| format!("series at {} s: {e}", p.t))?;
                point
                    .latency
                    .add(&h)
                    .map_err(|e| format!("series at {} s: {e:?}", p.t))?;
            }
            if p.t < series.first {
                return Err(format!("series: point at {} s out of order", p.t));
            }
            series.add_point(p.t, &point);
        }
        Ok(series)
    }
}

/// The report's `series` (docs/report.schema.json).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeriesJson {
    /// Seconds per point.
    pub interval_seconds: u64,
    /// Seconds from `started` to the run clock's zero.
    pub clock_offset_seconds: f64,
    /// The points in time order, at most [`MAX_POINTS`].
    pub points: Vec<PointJson>,
}

/// One point of the report's `series`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PointJson {
    /// Where the point starts, in seconds of the run clock.
    pub t: u64,
    /// Transactions accepted.
    pub accepted: u64,
    /// Transactions refused.
    pub rejected: u64,
    /// Connects that failed.
    pub connect_failures: u64,
    /// Median transaction latency; null with no transaction.
    pub p50_ms: Option<f64>,
    /// 99th percentile.
    pub p99_ms: Option<f64>,
    /// The point's latency histogram (µs, V2 compressed, base64), so
    /// merged reports add points exactly; null with no transaction.
    pub histogram: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Points are per second until MAX_POINTS; then the interval doubles
    /// and pairs are added, counts and histograms alike.
    #[test]
    fn coarsens_without_losing_anything() {
        let mut s = Series::new(0, 1);
        for sec in 0..MAX_POINTS as u64 {
            s.accepted(sec, 1);
            s.transaction(sec, 1_000 + sec);
        }
        assert_eq!(s.interval(), 1);
        assert_eq!(s.points().count(), MAX_POINTS);
        s.accepted(MAX_POINTS as u64, 5);
        assert_eq!(s.interval(), 2);
        assert_eq!(s.points().count(), MAX_POINTS / 2 + 1);
        let total: u64 = s.points().map(|(_, p)| p.accepted).sum();
        assert_eq!(total, MAX_POINTS as u64 + 5);
        let (t, p) = s.points().nth(3).unwrap();
        assert_eq!((t, p.accepted, p.latency.len()), (6, 2, 2));
        // Ten hours of seconds fit in MAX_POINTS points.
        s.rejected(36_000, 1);
        assert!(s.points().count() <= MAX_POINTS);
        assert_eq!(s.interval(), 64);
        let rejected: u64 = s.points().map(|(_, p)| p.rejected).sum();
        assert_eq!(rejected, 1);
    }

    /// The warm-up's seconds are not points: the first starts after it.
    #[test]
    fn starts_after_the_warmup() {
        let mut s = Series::new(5, 1);
        s.accepted(7, 1);
        let t: Vec<u64> = s.points().map(|(t, _)| t).collect();
        assert_eq!(t, [5, 6, 7]);
    }

    /// What the JSON holds reads back the same.
    #[test]
    fn json_round_trip() {
        let mut s = Series::new(2, 1);
        s.accepted(2, 3);
        s.transaction(2, 1_500);
        s.connect_failed(4, 1);
        s.clock_offset = 0.25;
        let json = s.to_json();
        assert_eq!(json.points.len(), 3);
        // 2 significant digits: 1.5 ms within 1 %.
        let p50 = json.points[0].p50_ms.unwrap();
        assert!((p50 - 1.5).abs() < 0.015, "{p50}");
        assert_eq!(json.points[1].histogram, None);
        let back = Series::from_json(&json).unwrap();
        let again = back.to_json();
        // The encodings may differ in their header (the histogram's
        // bounds); the samples are the same.
        let samples = |j: &SeriesJson| -> Vec<(u64, u64, u64, Option<f64>, u64)> {
            j.points
                .iter()
                .map(|p| {
                    let n = p
                        .histogram
                        .as_deref()
                        .map_or(0, |h| decode(h).unwrap().len());
                    (p.t, p.accepted, p.connect_failures, p.p99_ms, n)
                })
                .collect()
        };
        assert_eq!(samples(&again), samples(&json));
        assert_eq!(again.interval_seconds, 1);
        assert_eq!(again.clock_offset_seconds, 0.25);
    }
}
