//! The state that `--max-rate` and `--greylist` share between sessions:
//! the token bucket and the greylisting table, each behind its own mutex,
//! and the start of the monotonic clock that the shell reads for them.
//!
//! A lock is held for one bucket or table operation, nothing more, and
//! only when the option is on: without them no session ever locks here.
//! Time is an argument (the shell passes [`Throttle::elapsed`]); the
//! conversation never reads a clock.

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::config::Behaviour;
use crate::greylist::{Greylist, Verdict};
use crate::rate::TokenBucket;

/// Shared by the sessions of one process (or of one test).
#[derive(Debug)]
pub struct Throttle {
    epoch: Instant,
    bucket: Option<Mutex<TokenBucket>>,
    greylist: Option<Mutex<Greylist>>,
}

/// A poisoned lock only means another session panicked mid-update; the
/// bucket and the table stay consistent between operations, so go on.
fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Throttle {
    /// The state the options in `behaviour` need (none without them).
    pub fn new(behaviour: &Behaviour) -> Throttle {
        Throttle {
            epoch: Instant::now(),
            bucket: behaviour
                .max_rate
                .map(|m| Mutex::new(TokenBucket::new(m.rate))),
            greylist: behaviour.greylist.map(|d| Mutex::new(Greylist::new(d))),
        }
    }

    /// Whether the options in `behaviour` need any shared state.
    pub fn needed(behaviour: &Behaviour) -> bool {
        behaviour.max_rate.is_some() || behaviour.greylist.is_some()
    }

    /// Whether anything here needs the time (so the shell reads the clock
    /// only then).
    pub fn needs_clock(&self) -> bool {
        self.bucket.is_some() || self.greylist.is_some()
    }

    /// The time since this state was made: the clock the shell passes in.
    pub fn elapsed(&self) -> Duration {
        self.epoch.elapsed()
    }

    /// `--max-rate`: takes a token at `now`. True without the option.
    pub fn take_token(&self, now: Duration) -> bool {
        self.bucket.as_ref().is_none_or(|b| lock(b).take(now))
    }

    /// `--max-rate`: whether a token is there at `now`, without taking
    /// it. True without the option.
    pub fn has_token(&self, now: Duration) -> bool {
        self.bucket.as_ref().is_none_or(|b| lock(b).has_token(now))
    }

    /// `--greylist`: the verdict on an attempt of this triple at `now`.
    /// [`Verdict::Pass`] without the option.
    pub fn greylist(
        &self,
        client: &[u8],
        sender: &[u8],
        recipient: &[u8],
        now: Duration,
    ) -> Verdict {
        match &self.greylist {
            Some(g) => lock(g).check(client, sender, recipient, now),
            None => Verdict::Pass,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{MaxRate, RateAction};
    use crate::rate::Rate;

    #[test]
    fn without_the_options_everything_passes_and_no_clock_is_needed() {
        let t = Throttle::new(&Behaviour::default());
        assert!(!t.needs_clock());
        let now = Duration::ZERO;
        assert!((0..1000).all(|_| t.take_token(now)));
        assert!(t.has_token(now));
        assert_eq!(t.greylist(b"ip", b"f", b"r", now), Verdict::Pass);
    }

    #[test]
    fn the_options_share_one_bucket_and_one_table() {
        let t = Throttle::new(&Behaviour {
            max_rate: Some(MaxRate {
                rate: Rate::parse("1/h").expect("rate"),
                action: RateAction::Mail,
            }),
            greylist: Some(Duration::from_secs(2)),
            ..Behaviour::default()
        });
        assert!(t.needs_clock());
        let now = Duration::from_secs(1);
        assert!(t.has_token(now));
        assert!(t.take_token(now));
        assert!(!t.has_token(now) && !t.take_token(now));
        assert_eq!(t.greylist(b"ip", b"f", b"r", now), Verdict::Defer);
        assert_eq!(
            t.greylist(b"ip", b"f", b"r", now + Duration::from_secs(2)),
            Verdict::Pass
        );
    }
}
