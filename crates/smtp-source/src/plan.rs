//! The run's shared arithmetic: the global message budget (`-m`), the
//! global recipient counter (`-N`/`-r`), the pause between messages
//! (`-w`/`-R`) and the `--rate` schedule. Pure apart from atomics, so it is
//! tested without sockets or clocks.

use std::{
    sync::atomic::{AtomicI64, AtomicU64, Ordering},
    time::Duration,
};

pub use smtp_proto::itoa;

use crate::{config::Delay, segment::Segment};

/// `-m`: one budget for all sessions, claimed when a transaction starts,
/// so failed and rejected transactions use it up too.
#[derive(Debug)]
pub struct Budget(AtomicI64);

impl Budget {
    /// `messages` to send.
    pub fn new(messages: i64) -> Self {
        Self(AtomicI64::new(messages))
    }

    /// Postfix's `message_count-- > 0`: true when a message may start. A
    /// session that finds the budget empty still decrements it, which is
    /// why Message-Id can show `ffffffff` (docs/smtp-source.md, "The conversation").
    pub fn claim(&self) -> bool {
        self.0.fetch_sub(1, Ordering::Relaxed) > 0
    }

    /// What is left now, as Message-Id's third number shows it.
    pub fn remaining(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// `-N`/`-r`: recipient numbers, from 0. Every message has the same
/// number of recipients, so message k's are k·n to k·n + n − 1; under
/// `--segment`, k is the message's run-wide number, which keeps the
/// numbers of all segments apart.
#[derive(Debug)]
pub struct RcptNumbers {
    messages: AtomicU64,
    segment: Segment,
}

impl RcptNumbers {
    /// The numbers of `segment`'s messages.
    pub fn new(segment: Segment) -> Self {
        Self {
            messages: AtomicU64::new(0),
            segment,
        }
    }

    /// The next message's `n` consecutive numbers; returns the first.
    pub fn take(&self, n: u32) -> u64 {
        let k = self.messages.fetch_add(1, Ordering::Relaxed);
        self.segment.message_number(k).saturating_mul(u64::from(n))
    }
}

/// `--rate`: the intended start times of messages, shared by all
/// sessions. Message k is due k/R seconds into the run; a session that is
/// free takes the next one, so the schedule does not slow down when the
/// server does (an open model), and how late each start was is measured.
#[derive(Debug)]
pub struct Schedule {
    /// Microseconds between starts.
    interval: f64,
    /// The first start (µs; a segment's place in the run's schedule).
    offset: u64,
    /// Starts due at or after this (µs) are not made (`--duration`).
    end: u64,
    next: AtomicU64,
}

impl Schedule {
    /// `rate` messages per second from `offset` µs until `end_micros`
    /// (u64::MAX: no end).
    pub fn new(rate: f64, offset: u64, end_micros: u64) -> Self {
        Self {
            interval: 1e6 / rate,
            offset,
            end: end_micros,
            next: AtomicU64::new(0),
        }
    }

    /// The intended start (µs into the run) of the next message, or None
    /// when the schedule has ended.
    pub fn take(&self) -> Option<u64> {
        let k = self.next.fetch_add(1, Ordering::Relaxed);
        let due = self.offset + (k as f64 * self.interval) as u64;
        (due < self.end).then_some(due)
    }
}

/// The pause before the next message of a session (and once more when it
/// retires, as Postfix does).
pub fn pause(delay: Delay) -> Option<Duration> {
    match delay {
        Delay::None => None,
        Delay::Fixed(s) => Some(Duration::from_secs(u64::from(s))),
        Delay::Random(s) => Some(Duration::from_secs(rand::random_range(0..=u64::from(s)))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_goes_negative_like_postfix() {
        let b = Budget::new(2);
        assert!(b.claim());
        assert_eq!(b.remaining(), 1);
        assert!(b.claim());
        assert!(!b.claim());
        assert!(!b.claim());
        assert_eq!(b.remaining(), -2);
        assert_eq!(b.remaining() as u32, 0xffff_fffe);
    }

    #[test]
    fn numbers_are_global_and_consecutive() {
        let n = RcptNumbers::new(Segment::WHOLE);
        assert_eq!(n.take(3), 0);
        assert_eq!(n.take(3), 3);
        assert_eq!(n.take(3), 6);
    }

    /// Segment 1 of 4 numbers messages 1, 5, 9, ...
    #[test]
    fn segments_number_apart() {
        let n = RcptNumbers::new(Segment::new(1, 4).unwrap());
        assert_eq!(n.take(2), 2);
        assert_eq!(n.take(2), 10);
        assert_eq!(n.take(2), 18);
    }

    /// 200/s for 5 s is exactly 1000 starts, evenly spaced.
    #[test]
    fn schedule_is_even_and_bounded() {
        let s = Schedule::new(200.0, 0, 5_000_000);
        let mut starts = Vec::new();
        while let Some(t) = s.take() {
            starts.push(t);
        }
        assert_eq!(starts.len(), 1000);
        assert_eq!(starts[1] - starts[0], 5_000);
        assert_eq!(*starts.last().unwrap(), 4_995_000);
        assert_eq!(s.take(), None);
    }

    #[test]
    fn pauses() {
        assert_eq!(pause(Delay::None), None);
        assert_eq!(pause(Delay::Fixed(2)), Some(Duration::from_secs(2)));
        for _ in 0..50 {
            let d = pause(Delay::Random(2)).unwrap();
            assert!(d <= Duration::from_secs(2));
        }
    }

    #[test]
    fn decimal() {
        let mut b = [0u8; 20];
        assert_eq!(itoa(0, &mut b), b"0");
        assert_eq!(itoa(1234567890, &mut b), b"1234567890");
        assert_eq!(itoa(u64::MAX, &mut b), b"18446744073709551615");
    }
}
