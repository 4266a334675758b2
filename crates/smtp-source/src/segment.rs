//! `--segment I/N`: one process runs segment I of a run cut into N, and
//! the N segments together do what one process would. Each takes its
//! share of the message count, of the sessions and of the rate; messages
//! are numbered by interleaving (segment I's k-th message is number
//! k·N + I of the run), so recipient numbers (`-N`) and stamp sequence
//! numbers stay unique across segments and, with `-m`, are exactly the
//! numbers one process would use. The arithmetic lives here, apart from
//! sockets and clocks, so it is tested alone.

use std::fmt;

/// The environment variable a Kubernetes Indexed Job sets to each pod's
/// index, read by `--segment auto/N`.
pub const INDEX_VARIABLE: &str = "JOB_COMPLETION_INDEX";

/// Segment `index` of `count` (`index < count`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    index: u32,
    count: u32,
}

/// Why a `--segment` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SegmentError {
    /// Not `I/N` or `auto/N` with numbers.
    #[error("bad --segment: {0} (I/N or auto/N, with 0 <= I < N)")]
    Syntax(String),
    /// I is not below N.
    #[error("bad --segment: {0}: the index must be below the count")]
    OutOfRange(String),
    /// `auto/N` without the index in the environment.
    #[error(
        "--segment auto/{count}: {INDEX_VARIABLE} is not set (a Kubernetes Indexed Job sets it)"
    )]
    NoIndex {
        /// N.
        count: u32,
    },
    /// `auto/N` with an index that is not a number below N.
    #[error("--segment auto/{count}: {INDEX_VARIABLE}={value} is not a number from 0 to {}", count - 1)]
    BadIndex {
        /// N.
        count: u32,
        /// The variable's value.
        value: String,
    },
}

impl Segment {
    /// The whole run: segment 0 of 1.
    pub const WHOLE: Segment = Segment { index: 0, count: 1 };

    /// Segment `index` of `count`, when `index < count`.
    pub fn new(index: u32, count: u32) -> Option<Segment> {
        (index < count).then_some(Segment { index, count })
    }

    /// Reads `I/N` or `auto/N`; `index_var` is the value of
    /// [`INDEX_VARIABLE`], consulted only for `auto`.
    ///
    /// # Errors
    /// A [`SegmentError`] saying what is wrong.
    pub fn parse(text: &str, index_var: Option<&str>) -> Result<Segment, SegmentError> {
        let syntax = || SegmentError::Syntax(text.to_owned());
        let (index, count) = text.split_once('/').ok_or_else(syntax)?;
        let count: u32 = number(count).ok_or_else(syntax)?;
        if count == 0 {
            return Err(syntax());
        }
        let index = if index == "auto" {
            let value = index_var.ok_or(SegmentError::NoIndex { count })?;
            number(value)
                .filter(|&i| i < count)
                .ok_or_else(|| SegmentError::BadIndex {
                    count,
                    value: value.to_owned(),
                })?
        } else {
            number(index).ok_or_else(syntax)?
        };
        Segment::new(index, count).ok_or_else(|| SegmentError::OutOfRange(text.to_owned()))
    }

    /// I.
    pub fn index(self) -> u32 {
        self.index
    }

    /// N.
    pub fn count(self) -> u32 {
        self.count
    }

    /// This segment's share of `total` things: the first `total mod N`
    /// segments take one more, so the shares add up to `total`.
    pub fn share(self, total: u64) -> u64 {
        let n = u64::from(self.count);
        total / n + u64::from(u64::from(self.index) < total % n)
    }

    /// This segment's sessions out of `total`: its share, but at least
    /// one, since a segment with no session would do nothing.
    pub fn sessions(self, total: u32) -> u32 {
        u32::try_from(self.share(u64::from(total)))
            .unwrap_or(u32::MAX)
            .max(1)
    }

    /// This segment's rate out of the run's `rate` per second.
    pub fn rate(self, rate: f64) -> f64 {
        rate / f64::from(self.count)
    }

    /// When (µs into the run) this segment's schedule starts, given its
    /// own rate: segment I starts I/R seconds in (R the run's rate), so
    /// the N schedules interleave into the run's one even schedule.
    pub fn first_start(self, segment_rate: f64) -> u64 {
        (f64::from(self.index) * 1e6 / (segment_rate * f64::from(self.count))) as u64
    }

    /// The run-wide number of this segment's `k`-th message.
    pub fn message_number(self, k: u64) -> u64 {
        k.saturating_mul(u64::from(self.count))
            .saturating_add(u64::from(self.index))
    }
}

impl fmt::Display for Segment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// A plain decimal number (no sign, no spaces).
fn number(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_fixed_and_auto() {
        assert_eq!(Segment::parse("2/4", None), Ok(Segment::new(2, 4).unwrap()));
        assert_eq!(
            Segment::parse("auto/4", Some("3")),
            Ok(Segment::new(3, 4).unwrap())
        );
        // The variable is read only for auto.
        assert_eq!(Segment::parse("0/1", Some("junk")), Ok(Segment::WHOLE));
    }

    #[test]
    fn refuses_what_is_wrong_with_a_reason() {
        for bad in [
            "", "4", "1/", "/4", "-1/4", "1/0", "a/4", "1/4/2", " 1/4", "1/+4",
        ] {
            assert_eq!(
                Segment::parse(bad, None),
                Err(SegmentError::Syntax(bad.to_owned())),
                "{bad:?}"
            );
        }
        assert_eq!(
            Segment::parse("4/4", None),
            Err(SegmentError::OutOfRange("4/4".to_owned()))
        );
        assert_eq!(
            Segment::parse("auto/4", None),
            Err(SegmentError::NoIndex { count: 4 })
        );
        let e = Segment::parse("auto/4", Some("4")).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--segment auto/4: JOB_COMPLETION_INDEX=4 is not a number from 0 to 3"
        );
        assert!(Segment::parse("auto/4", Some("x")).is_err());
    }

    /// The shares of any total add up to it, and differ by at most one.
    #[test]
    fn shares_add_up() {
        for count in 1..=9u32 {
            for total in [0u64, 1, 2, 7, 8, 9, 4000, 4001, 12_345] {
                let shares: Vec<u64> = (0..count)
                    .map(|i| Segment::new(i, count).unwrap().share(total))
                    .collect();
                assert_eq!(shares.iter().sum::<u64>(), total, "{total}/{count}");
                let (min, max) = (shares.iter().min(), shares.iter().max());
                assert!(max.unwrap() - min.unwrap() <= 1, "{shares:?}");
            }
        }
        assert_eq!(Segment::new(0, 4).unwrap().share(4001), 1001);
        assert_eq!(Segment::new(1, 4).unwrap().share(4001), 1000);
    }

    #[test]
    fn every_segment_has_a_session() {
        assert_eq!(Segment::new(1, 4).unwrap().sessions(8), 2);
        assert_eq!(Segment::new(3, 4).unwrap().sessions(2), 1);
        assert_eq!(Segment::WHOLE.sessions(5), 5);
    }

    /// Interleaved numbering covers 0..m exactly once when each segment
    /// numbers its own share of m.
    #[test]
    fn numbers_partition_the_run() {
        for count in 1..=5u32 {
            for m in [1u64, 4, 13, 100] {
                let mut seen: Vec<u64> = (0..count)
                    .flat_map(|i| {
                        let s = Segment::new(i, count).unwrap();
                        (0..s.share(m)).map(move |k| s.message_number(k))
                    })
                    .collect();
                seen.sort_unstable();
                assert_eq!(seen, (0..m).collect::<Vec<_>>(), "{m}/{count}");
            }
        }
    }

    /// Four schedules at a quarter of the rate, each offset by its index,
    /// make the one even schedule of the whole rate.
    #[test]
    fn schedules_interleave() {
        let rate = 400.0;
        let mut starts: Vec<u64> = (0..4)
            .flat_map(|i| {
                let seg = Segment::new(i, 4).unwrap();
                let r = seg.rate(rate);
                let offset = seg.first_start(r);
                (0..10u64).map(move |k| offset + (k as f64 * 1e6 / r) as u64)
            })
            .collect();
        starts.sort_unstable();
        let gaps: Vec<u64> = starts.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.iter().all(|&g| g == 2_500), "{gaps:?}");
    }
}
