//! `--max-rate N[/UNIT]`: a token bucket on accepted messages, shared by
//! every session, and the grammar of its value.
//!
//! The bucket holds at most `burst` tokens and gains `N` tokens per unit
//! of time. Each MAIL that would get 250 takes one token; a MAIL that
//! finds none gets 451 (or, with `--max-rate-action connect`, a new
//! connection that finds none gets 421). The burst is a tenth of a
//! second's worth of tokens, rounded up, and at least 1, so that a client
//! sending faster than the rate sees refusals within a tenth of a second
//! and never more than `burst + N·t` acceptances in any `t`.
//!
//! It is kept as a "theoretical arrival time" (the GCRA form of a token
//! bucket) in integer nanoseconds: no floating point, and the state is one
//! number. The clock is an argument (time since any fixed start), so tests
//! drive it with made-up times.

use std::time::Duration;

use thiserror::Error;

/// Why a `--max-rate` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum RateError {
    /// Not `N`, `N/s`, `N/m` or `N/h` with N a whole number above 0.
    #[error("bad rate: {0} (expected N, N/s, N/m or N/h, N > 0)")]
    Syntax(String),
}

/// A rate: `count` tokens every `per`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    /// Tokens gained per `per`.
    pub count: u32,
    /// The unit of time.
    pub per: Duration,
}

impl Rate {
    /// Parses `N` or `N/s` (per second), `N/m` (per minute), `N/h` (per
    /// hour). The slower units let a test use a rate that a loaded machine
    /// cannot out-wait.
    ///
    /// # Errors
    /// [`RateError::Syntax`] for anything else.
    pub fn parse(text: &str) -> Result<Rate, RateError> {
        let bad = || RateError::Syntax(text.to_owned());
        let (number, unit) = text.split_once('/').unwrap_or((text, "s"));
        let per = match unit {
            "s" => Duration::from_secs(1),
            "m" => Duration::from_secs(60),
            "h" => Duration::from_secs(3600),
            _ => return Err(bad()),
        };
        if number.is_empty() || !number.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad());
        }
        let count: u32 = number.parse().map_err(|_| bad())?;
        if count == 0 {
            return Err(bad());
        }
        Ok(Rate { count, per })
    }

    /// The bucket's size: a tenth of a second's worth of tokens, rounded
    /// up, at least 1.
    pub fn burst(self) -> u32 {
        // count/per/10, rounded up, in integers: ceil(count·1s / (10·per)).
        let tenth = u128::from(self.count) * 1_000_000_000;
        let per = self.per.as_nanos().saturating_mul(10).max(1);
        u32::try_from(tenth.div_ceil(per))
            .unwrap_or(u32::MAX)
            .max(1)
    }

    /// Nanoseconds between two tokens (at least 1).
    fn interval_nanos(self) -> u128 {
        (self.per.as_nanos() / u128::from(self.count)).max(1)
    }
}

/// The bucket. Not shared by itself: the sink keeps it behind a mutex.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    /// Nanoseconds between tokens.
    interval: u128,
    /// How far ahead of now the theoretical arrival time may run: the
    /// burst less one token.
    tolerance: u128,
    /// When the bucket will be full again, in nanoseconds since the
    /// clock's start (never behind the last `now` seen, once used).
    full_at: u128,
}

impl TokenBucket {
    /// A full bucket for `rate`.
    pub fn new(rate: Rate) -> TokenBucket {
        let interval = rate.interval_nanos();
        TokenBucket {
            interval,
            tolerance: interval * u128::from(rate.burst() - 1),
            full_at: 0,
        }
    }

    /// Takes a token at `now` if there is one.
    pub fn take(&mut self, now: Duration) -> bool {
        let now = now.as_nanos();
        let start = self.full_at.max(now);
        if start - now > self.tolerance {
            return false;
        }
        self.full_at = start + self.interval;
        true
    }

    /// Whether a token is there at `now`, without taking it.
    pub fn has_token(&self, now: Duration) -> bool {
        let now = now.as_nanos();
        self.full_at.max(now) - now <= self.tolerance
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn grammar() {
        let rate = |count, secs| {
            Ok(Rate {
                count,
                per: Duration::from_secs(secs),
            })
        };
        for (text, want) in [
            ("100", rate(100, 1)),
            ("100/s", rate(100, 1)),
            ("5/m", rate(5, 60)),
            ("1/h", rate(1, 3600)),
            ("4294967295", rate(u32::MAX, 1)),
        ] {
            assert_eq!(Rate::parse(text), want, "{text}");
        }
        for text in [
            "",
            "0",
            "0/s",
            "-1",
            "+1",
            "1.5",
            "1/d",
            "1/",
            "/s",
            "1/s/s",
            "4294967296",
            "1 /s",
        ] {
            assert_eq!(
                Rate::parse(text),
                Err(RateError::Syntax(text.to_owned())),
                "{text}"
            );
        }
    }

    #[test]
    fn burst_is_a_tenth_of_a_second_rounded_up() {
        for (text, burst) in [
            ("1", 1),
            ("9", 1),
            ("10", 1),
            ("11", 2),
            ("100", 10),
            ("101", 11),
            ("1/h", 1),
            ("6000/m", 10),
        ] {
            assert_eq!(Rate::parse(text).expect(text).burst(), burst, "{text}");
        }
    }

    #[test]
    fn a_full_bucket_gives_its_burst_then_one_token_per_interval() {
        // 100/s: burst 10, a token every 10 ms.
        let mut b = TokenBucket::new(Rate::parse("100").expect("rate"));
        let start = ms(5_000);
        for i in 0..10 {
            assert!(b.take(start), "token {i} of the burst");
        }
        assert!(!b.take(start) && !b.has_token(start));
        assert!(!b.take(start + ms(9)));
        assert!(b.has_token(start + ms(10)));
        assert!(b.take(start + ms(10)));
        assert!(!b.take(start + ms(10)));
        // After a long pause the bucket is full again, not fuller.
        let later = start + ms(60_000);
        assert_eq!((0..20).filter(|_| b.take(later)).count(), 10);
    }

    #[test]
    fn accepted_count_never_exceeds_burst_plus_rate_times_time() {
        // A client asking every millisecond for 3 s at 100/s.
        let mut b = TokenBucket::new(Rate::parse("100/s").expect("rate"));
        let taken = (0..3000u64).filter(|t| b.take(ms(*t))).count();
        // Burst 10 at t=0, then one every 10 ms up to 2999 ms: 299 more.
        assert_eq!(taken, 10 + 299);
    }

    #[test]
    fn refusals_take_nothing() {
        let mut b = TokenBucket::new(Rate::parse("1/h").expect("rate"));
        assert!(b.take(ms(0)));
        for t in 1..100 {
            assert!(!b.take(ms(t * 1000)));
        }
        // One hour after the first token, exactly one more.
        assert!(b.take(Duration::from_secs(3600)));
        assert!(!b.take(Duration::from_secs(3600)));
    }
}
