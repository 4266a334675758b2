//! Latency histograms as both programs keep and report them: smtp-source's
//! per-phase latencies and smtp-sink's transit latency (`--verify`) are
//! the same kind of histogram, summarised in the same fields and encoded
//! the same way, so a reader of one report can read the other and any
//! two can be merged exactly.
//!
//! Values are microseconds; histograms keep 3 significant digits and grow
//! to whatever is recorded.

use base64::Engine as _;
use hdrhistogram::{
    serialization::{Deserializer, Serializer as _, V2DeflateSerializer},
    Histogram,
};
use serde::{Deserialize, Serialize};

/// A fresh histogram: 1 µs resolution, 3 significant digits, growing to
/// whatever is recorded.
pub fn new() -> Histogram<u64> {
    let mut h = Histogram::new_with_bounds(1, 1_000_000, 3).expect("valid bounds");
    h.auto(true);
    h
}

/// Adds `micros` to `h`, growing it as needed. (hdrhistogram's
/// `saturating_record` clamps to the current top instead of growing, which
/// would cap every latency at the histogram's first size.)
pub fn record(h: &mut Histogram<u64>, micros: u64) {
    if h.record(micros).is_err() {
        h.saturating_record(micros);
    }
}

/// A histogram in a report: its statistics in milliseconds and the whole
/// histogram, so reports can be merged exactly later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseLatency {
    /// Samples.
    pub count: u64,
    /// Smallest.
    pub min_ms: f64,
    /// Mean.
    pub mean_ms: f64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
    /// Largest.
    pub max_ms: f64,
    /// The HdrHistogram (µs) in its V2 compressed encoding, base64.
    pub histogram: String,
}

impl PhaseLatency {
    /// The summary of `h` (µs).
    pub fn of(h: &Histogram<u64>) -> Self {
        let ms = |us: u64| us as f64 / 1000.0;
        let q = |q: f64| ms(h.value_at_quantile(q));
        Self {
            count: h.len(),
            min_ms: ms(h.min()),
            // To the microsecond, the resolution of everything else.
            mean_ms: h.mean().round() / 1000.0,
            p50_ms: q(0.5),
            p90_ms: q(0.9),
            p99_ms: q(0.99),
            p999_ms: q(0.999),
            max_ms: ms(h.max()),
            histogram: encode(h),
        }
    }
}

/// `h` in the V2 compressed encoding (what HdrHistogram's other
/// implementations read), base64.
pub fn encode(h: &Histogram<u64>) -> String {
    let mut bytes = Vec::new();
    V2DeflateSerializer::new()
        .serialize(h, &mut bytes)
        .expect("a histogram always serializes into memory");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Reads a histogram written by [`encode`] (or by another HdrHistogram in
/// the V2 encoding, compressed or not).
///
/// # Errors
/// Text that is not base64 of a V2 histogram.
pub fn decode(text: &str) -> Result<Histogram<u64>, String> {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map_err(|e| format!("histogram is not base64: {e}"))?;
    Deserializer::new()
        .deserialize(&mut &bytes[..])
        .map_err(|e| format!("histogram is not an HdrHistogram V2 encoding: {e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The encoding is HdrHistogram's V2 compressed form (its cookie), and
    /// decoding gives the same histogram back.
    #[test]
    fn encoding_is_v2_deflate() {
        let mut h = new();
        for v in [1, 5, 999, 1_000, 1_000_000] {
            h.record(v).unwrap();
        }
        let text = encode(&h);
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(&text)
            .unwrap();
        assert_eq!(&bytes[..4], &[0x1c, 0x84, 0x93, 0x14], "V2 deflate cookie");
        assert_eq!(decode(&text).unwrap(), h);
        assert!(decode("AAAA").is_err());
    }

    #[test]
    fn grows_past_its_first_size_and_round_trips() {
        let mut h = new();
        for us in [1, 999, 5_000_000, 3_600_000_000] {
            record(&mut h, us);
        }
        assert_eq!(h.len(), 4);
        assert!(h.max() >= 3_599_000_000, "{}", h.max());
        let summary = PhaseLatency::of(&h);
        assert_eq!(summary.count, 4);
        assert_eq!(summary.min_ms, 0.001);
        assert_eq!(decode(&summary.histogram).unwrap(), h);
        assert!(decode("not base64!").is_err());
        assert!(decode("aGVsbG8=").is_err());
    }
}
