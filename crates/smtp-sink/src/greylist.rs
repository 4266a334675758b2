//! `--greylist SECONDS`: the table of (client address, sender, recipient)
//! triples, shared by every session.
//!
//! The first attempt of a triple is deferred (450 at RCPT) and remembered;
//! a retry at least SECONDS after that first attempt passes, and so does
//! every later one while the triple is remembered; a retry before that is
//! deferred again (without restarting the wait).
//!
//! Memory is bounded by design: the table holds at most [`CAPACITY`]
//! triples. A triple is forgotten [`LIFETIME`] after its first attempt (a
//! day, far longer than any retry schedule a test runs), or earlier when
//! the table is full: the oldest triple goes first. A forgotten triple is
//! new again. Each entry is a 64-bit keyed hash of the triple plus its
//! time, about 40 bytes with the table's overhead, so a full table costs
//! some 40 MB; two triples whose hashes collide (odds of about 1 in 2^64
//! per pair) would share an entry.
//!
//! The clock is an argument (time since any fixed start), so the tests
//! drive it with made-up times.

use std::collections::hash_map::{Entry, HashMap};
use std::collections::VecDeque;
use std::hash::{BuildHasher, RandomState};
use std::time::Duration;

/// The most triples remembered.
pub const CAPACITY: usize = 1 << 20;
/// How long a triple is remembered after its first attempt.
pub const LIFETIME: Duration = Duration::from_secs(24 * 3600);

/// What an attempt gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The triple waited long enough: the RCPT is answered normally.
    Pass,
    /// New, or retried too early: 450.
    Defer,
}

/// The greylisting table.
#[derive(Debug)]
pub struct Greylist {
    delay: Duration,
    capacity: usize,
    /// Keyed so that a client cannot choose colliding triples.
    hasher: RandomState,
    /// Hash of a triple -> time of its first attempt.
    first_seen: HashMap<u64, Duration>,
    /// The hashes in the order they were first seen: the oldest is at the
    /// front. Each hash is in here exactly once while it is in the map.
    order: VecDeque<u64>,
}

impl Greylist {
    /// A table whose triples pass `delay` after their first attempt.
    pub fn new(delay: Duration) -> Greylist {
        Greylist::with_capacity(delay, CAPACITY)
    }

    /// The same with a smaller cap (tests).
    pub fn with_capacity(delay: Duration, capacity: usize) -> Greylist {
        Greylist {
            delay,
            capacity: capacity.max(1),
            hasher: RandomState::new(),
            first_seen: HashMap::new(),
            order: VecDeque::new(),
        }
    }

    /// Triples remembered now.
    pub fn len(&self) -> usize {
        self.first_seen.len()
    }

    /// Whether no triple is remembered.
    pub fn is_empty(&self) -> bool {
        self.first_seen.is_empty()
    }

    /// An attempt of the triple at `now`. Times are expected to grow; a
    /// time before an entry's first attempt (threads racing for the lock)
    /// simply counts as too early.
    pub fn check(
        &mut self,
        client: &[u8],
        sender: &[u8],
        recipient: &[u8],
        now: Duration,
    ) -> Verdict {
        self.expire(now);
        // Slices hash with their lengths, so ("ab", "c") and ("a",
        // "bc") are different triples.
        let key = self.hasher.hash_one((client, sender, recipient));
        match self.first_seen.entry(key) {
            Entry::Occupied(e) => {
                if now.saturating_sub(*e.get()) >= self.delay {
                    Verdict::Pass
                } else {
                    Verdict::Defer
                }
            }
            Entry::Vacant(e) => {
                e.insert(now);
                self.order.push_back(key);
                if self.order.len() > self.capacity {
                    if let Some(oldest) = self.order.pop_front() {
                        self.first_seen.remove(&oldest);
                    }
                }
                Verdict::Defer
            }
        }
    }

    /// Forgets the triples first seen [`LIFETIME`] or more before `now`.
    fn expire(&mut self, now: Duration) {
        while let Some(oldest) = self.order.front() {
            let seen = self.first_seen.get(oldest).copied().unwrap_or_default();
            if now.saturating_sub(seen) < LIFETIME {
                break;
            }
            self.first_seen.remove(oldest);
            self.order.pop_front();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn first_attempt_defers_a_retry_after_the_delay_passes() {
        let mut g = Greylist::new(s(300));
        let t0 = s(1000);
        let ip = b"127.0.0.1";
        // (time, sender, recipient, verdict)
        let table: [(Duration, &[u8], &[u8], Verdict); 8] = [
            (t0, b"a@x", b"b@y", Verdict::Defer),
            (t0 + s(10), b"a@x", b"b@y", Verdict::Defer),
            // Another recipient is another triple, with its own wait.
            (t0 + s(10), b"a@x", b"c@y", Verdict::Defer),
            (t0 + s(299), b"a@x", b"b@y", Verdict::Defer),
            (t0 + s(300), b"a@x", b"b@y", Verdict::Pass),
            (t0 + s(301), b"a@x", b"c@y", Verdict::Defer),
            (t0 + s(310), b"a@x", b"c@y", Verdict::Pass),
            (t0 + s(5000), b"a@x", b"b@y", Verdict::Pass),
        ];
        for (i, (now, from, to, want)) in table.into_iter().enumerate() {
            assert_eq!(g.check(ip, from, to, now), want, "row {i}");
        }
        assert_eq!(g.len(), 2);
        // The client address is part of the triple.
        assert_eq!(
            g.check(b"::1", b"a@x", b"b@y", t0 + s(5000)),
            Verdict::Defer
        );
        // So is the split between the parts.
        assert_eq!(g.check(ip, b"a@xb", b"@y", t0 + s(5000)), Verdict::Defer);
    }

    #[test]
    fn a_full_table_forgets_its_oldest_triple() {
        let mut g = Greylist::with_capacity(s(1), 3);
        for (i, rcpt) in [b"1", b"2", b"3", b"4"].into_iter().enumerate() {
            assert_eq!(g.check(b"ip", b"f", rcpt, s(i as u64)), Verdict::Defer);
        }
        assert_eq!(g.len(), 3);
        // "1" was evicted: new again. "2" is still known and passes.
        assert_eq!(g.check(b"ip", b"f", b"2", s(10)), Verdict::Pass);
        assert_eq!(g.check(b"ip", b"f", b"1", s(10)), Verdict::Defer);
        assert_eq!(g.len(), 3);
    }

    #[test]
    fn triples_expire_a_lifetime_after_their_first_attempt() {
        let mut g = Greylist::new(s(1));
        assert_eq!(g.check(b"ip", b"f", b"r", s(0)), Verdict::Defer);
        assert_eq!(g.check(b"ip", b"f", b"r", LIFETIME - s(1)), Verdict::Pass);
        // Expired, then seen again as new.
        assert_eq!(g.check(b"ip", b"f", b"r", LIFETIME), Verdict::Defer);
        assert_eq!(g.len(), 1);
        assert_eq!(g.check(b"ip", b"f", b"r", LIFETIME + s(1)), Verdict::Pass);
    }

    #[test]
    fn a_time_going_backwards_is_too_early() {
        let mut g = Greylist::new(s(5));
        assert_eq!(g.check(b"ip", b"f", b"r", s(100)), Verdict::Defer);
        assert_eq!(g.check(b"ip", b"f", b"r", s(99)), Verdict::Defer);
        assert_eq!(g.check(b"ip", b"f", b"r", s(105)), Verdict::Pass);
    }
}
