//! `--verify`: what the stamps of the messages received say, per run.
//!
//! smtp-source `--stamp` writes an `X-Smtp-Stamp` header into every
//! message (smtp_proto::stamp describes it). The conversation feeds each
//! message's content to a `StampVerifier` and, when the message is
//! accepted (its end of data answered 2xx), hands the outcome to
//! [`Verify::record`]. Here each stamped message is counted under its run
//! id: `unique` (intact, a sequence number not seen before), `duplicate`
//! (intact, seen before), `corrupted` (length or digest differ: the body
//! is not the one stamped); its transit time (arrival − `sent`) of a
//! unique message goes into the run's histogram. Messages with no stamp,
//! or one that cannot be believed, have no run: they are counted beside
//! the runs.
//!
//! A rejected message is not counted: the client (an MTA) will send it
//! again, and the copy that is accepted is the one that arrived.
//!
//! Memory is bounded whatever the stamps say. Sequence numbers are kept in
//! a sparse bit set ([`SeqSet`]): a run numbered from 0, as the source
//! numbers it, costs one bit per message; at most [`MAX_SEQ_BLOCKS`]
//! blocks are kept in all, and at most [`MAX_RUNS`] runs (each with a
//! histogram of a few tens of KiB). A message past either bound is
//! counted as `untracked` instead: it cannot be told unique or duplicate.
//!
//! One lock per accepted message; nothing per command or per read.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use smtp_net::histogram::{self, PhaseLatency};
use smtp_proto::stamp::{RunId, Verification};

/// Runs tracked at most; stamps of further runs are `untracked`.
pub const MAX_RUNS: usize = 256;
/// Blocks of [`SeqSet`] kept at most, over all runs: 64 Ki blocks of 512
/// bytes (32 MiB) hold 268 million dense sequence numbers.
pub const MAX_SEQ_BLOCKS: usize = 64 * 1024;

/// Bits per block of a [`SeqSet`].
const BLOCK_BITS: u64 = 4096;

/// A set of sequence numbers: blocks of 4096 bits, allocated as numbers in
/// their range arrive.
#[derive(Debug, Default)]
struct SeqSet {
    blocks: HashMap<u64, Box<[u64; (BLOCK_BITS / 64) as usize]>>,
}

/// What [`SeqSet::insert`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seen {
    First,
    Again,
    /// A new block was needed and none may be allocated.
    NoRoom,
}

impl SeqSet {
    /// Adds `seq`; a new block is allocated only while `room` says so.
    fn insert(&mut self, seq: u64, room: bool) -> Seen {
        let (block, bit) = (seq / BLOCK_BITS, seq % BLOCK_BITS);
        let words = match self.blocks.get_mut(&block) {
            Some(words) => words,
            None if room => self
                .blocks
                .entry(block)
                .or_insert_with(|| Box::new([0; (BLOCK_BITS / 64) as usize])),
            None => return Seen::NoRoom,
        };
        let (word, mask) = ((bit / 64) as usize, 1u64 << (bit % 64));
        if words[word] & mask != 0 {
            return Seen::Again;
        }
        words[word] |= mask;
        Seen::First
    }

    fn blocks(&self) -> usize {
        self.blocks.len()
    }
}

/// One run's counts.
#[derive(Debug)]
struct Run {
    unique: u64,
    duplicate: u64,
    corrupted: u64,
    /// Transit times of unique messages, µs.
    transit: Histogram<u64>,
    seen: SeqSet,
}

impl Run {
    fn new() -> Run {
        Run {
            unique: 0,
            duplicate: 0,
            corrupted: 0,
            transit: histogram::new(),
            seen: SeqSet::default(),
        }
    }
}

#[derive(Debug, Default)]
struct Tally {
    runs: HashMap<RunId, Run>,
    /// Blocks allocated over all runs.
    blocks: usize,
    unstamped: u64,
    invalid: u64,
    untracked: u64,
}

/// The verification counts of the process (`--verify`).
#[derive(Debug, Default)]
pub struct Verify {
    tally: Mutex<Tally>,
    /// `--source-report`, once read (at the end).
    source: Mutex<Option<SourceReport>>,
}

/// One run in `--stats-json` (and the end-of-run lines).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunCounts {
    /// Intact messages with a sequence number not seen before.
    pub unique: u64,
    /// Intact messages whose sequence number was seen before.
    pub duplicate: u64,
    /// Messages whose body is not the one stamped.
    pub corrupted: u64,
    /// Arrival minus the stamp's `sent`, of the unique messages; `None`
    /// (null) before the first.
    pub transit: Option<PhaseLatency>,
}

/// The `"verify"` object of `--stats-json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifyCounts {
    /// Per run id.
    pub runs: BTreeMap<String, RunCounts>,
    /// Accepted messages with no `X-Smtp-Stamp` field (or no body, or a
    /// header block too long to search).
    pub unstamped: u64,
    /// Accepted messages whose stamp field does not parse, or that carry
    /// two.
    pub invalid: u64,
    /// Stamped messages past the memory bounds (too many runs, or
    /// sequence numbers spread too widely): not counted in any run.
    pub untracked: u64,
    /// `--source-report`: the source's run and what became of it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<SourceLoss>,
}

/// [`Verify::metrics`]: the counts, and each run's histogram whole.
#[derive(Debug, Clone)]
pub struct VerifyMetrics {
    /// Per run, by run id.
    pub runs: Vec<RunMetrics>,
    /// As in [`VerifyCounts`].
    pub unstamped: u64,
    /// As in [`VerifyCounts`].
    pub invalid: u64,
    /// As in [`VerifyCounts`].
    pub untracked: u64,
}

/// One run in [`VerifyMetrics`].
#[derive(Debug, Clone)]
pub struct RunMetrics {
    /// The run id.
    pub run: String,
    /// As in [`RunCounts`].
    pub unique: u64,
    /// As in [`RunCounts`].
    pub duplicate: u64,
    /// As in [`RunCounts`].
    pub corrupted: u64,
    /// Transit times of the unique messages, µs.
    pub transit: Histogram<u64>,
}

/// What `--source-report` reads of smtp-source's `--json` report
/// (docs/report.schema.json); other fields are ignored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct SourceReport {
    /// The run whose messages the report counts.
    pub run_id: String,
    /// Messages the source saw accepted (by the MTA in front of the sink).
    pub accepted: u64,
    /// Messages it stamped (null without `--stamp`).
    pub stamped: Option<u64>,
}

impl SourceReport {
    /// Reads a report file (one JSON object; smtp-source writes one line).
    ///
    /// # Errors
    /// A readable message: the file cannot be read, is not JSON, or lacks
    /// the fields.
    pub fn read(path: &Path) -> Result<SourceReport, String> {
        let text = std::fs::read(path).map_err(|e| smtp_net::strerror(&e))?;
        serde_json::from_slice(&text).map_err(|e| format!("not an smtp-source report: {e}"))
    }

    /// Reads the report of a run that ended after `not_before`, waiting up
    /// to `patience` for it: a sink that stops at `-M N` may stop before
    /// the source, which writes its report after its last QUIT. A file
    /// older than `not_before` (a previous run's) or not whole yet is read
    /// again until it is new and whole, or time is up.
    ///
    /// # Errors
    /// As [`SourceReport::read`], for the last attempt; or the file is
    /// older than `not_before`.
    pub fn wait_for(
        path: &Path,
        not_before: std::time::SystemTime,
        patience: std::time::Duration,
    ) -> Result<SourceReport, String> {
        let give_up = std::time::Instant::now() + patience;
        loop {
            let fresh = std::fs::metadata(path)
                .and_then(|m| m.modified())
                .map_err(|e| smtp_net::strerror(&e))
                .and_then(|modified| {
                    if modified >= not_before {
                        Ok(())
                    } else {
                        Err("older than this sink: a previous run's report".to_owned())
                    }
                });
            let attempt = fresh.and_then(|()| SourceReport::read(path));
            if attempt.is_ok() || std::time::Instant::now() >= give_up {
                return attempt;
            }
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
    }
}

/// The `"source"` object: the source's figures beside the sink's.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceLoss {
    /// The source's run id.
    pub run_id: String,
    /// Messages the source saw accepted.
    pub accepted: u64,
    /// Messages the source stamped.
    pub stamped: Option<u64>,
    /// Unique messages of that run that arrived here.
    pub unique: u64,
    /// `accepted − unique`: accepted on the way and never delivered here.
    /// Negative when more arrived than the source saw accepted (a reply
    /// the source timed out on, say).
    pub lost: i64,
}

impl Verify {
    /// No messages yet.
    pub fn new() -> Verify {
        Verify::default()
    }

    /// Counts an accepted message, arriving now.
    pub fn record(&self, outcome: &Verification) {
        let now_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        self.record_at(outcome, now_ns);
    }

    /// Counts an accepted message that arrived at `now_ns` (Unix time,
    /// ns). A `sent` in the future (clocks of two hosts) counts as 0.
    pub fn record_at(&self, outcome: &Verification, now_ns: u64) {
        let mut t = self.tally.lock().unwrap_or_else(PoisonError::into_inner);
        let stamp = match outcome {
            Verification::Unstamped(_) => {
                t.unstamped += 1;
                return;
            }
            Verification::Invalid(_) => {
                t.invalid += 1;
                return;
            }
            Verification::Intact(stamp) | Verification::Altered { stamp, .. } => stamp,
        };
        let Tally {
            runs,
            blocks,
            untracked,
            ..
        } = &mut *t;
        let room = runs.len() < MAX_RUNS;
        let run = match runs.get_mut(&stamp.run) {
            Some(run) => run,
            None if room => runs.entry(stamp.run).or_insert_with(Run::new),
            None => {
                *untracked += 1;
                return;
            }
        };
        if matches!(outcome, Verification::Altered { .. }) {
            run.corrupted += 1;
            return;
        }
        let before = run.seen.blocks();
        match run.seen.insert(stamp.seq, *blocks < MAX_SEQ_BLOCKS) {
            Seen::First => {
                *blocks += run.seen.blocks() - before;
                run.unique += 1;
                let micros = now_ns.saturating_sub(stamp.sent_ns) / 1000;
                histogram::record(&mut run.transit, micros);
            }
            Seen::Again => run.duplicate += 1,
            Seen::NoRoom => *untracked += 1,
        }
    }

    /// Sets the source's report, which the counts are compared with from
    /// now on.
    pub fn set_source(&self, report: SourceReport) {
        *self.source.lock().unwrap_or_else(PoisonError::into_inner) = Some(report);
    }

    /// The counts so far.
    pub fn snapshot(&self) -> VerifyCounts {
        let source = self
            .source
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let t = self.tally.lock().unwrap_or_else(PoisonError::into_inner);
        let source = source.map(|r| {
            let unique = RunId::new(r.run_id.as_bytes())
                .ok()
                .and_then(|id| t.runs.get(&id))
                .map_or(0, |run| run.unique);
            SourceLoss {
                lost: i64::try_from(r.accepted).unwrap_or(i64::MAX)
                    - i64::try_from(unique).unwrap_or(i64::MAX),
                run_id: r.run_id,
                accepted: r.accepted,
                stamped: r.stamped,
                unique,
            }
        });
        VerifyCounts {
            source,
            runs: t
                .runs
                .iter()
                .map(|(id, run)| {
                    let counts = RunCounts {
                        unique: run.unique,
                        duplicate: run.duplicate,
                        corrupted: run.corrupted,
                        transit: (!run.transit.is_empty()).then(|| PhaseLatency::of(&run.transit)),
                    };
                    (id.as_str().to_owned(), counts)
                })
                .collect(),
            unstamped: t.unstamped,
            invalid: t.invalid,
            untracked: t.untracked,
        }
    }

    /// The end-of-run lines (without the program name): one per run, the
    /// messages without a run, and the source's loss.
    pub fn summary(&self) -> Vec<String> {
        let counts = self.snapshot();
        let mut lines: Vec<String> = counts
            .runs
            .iter()
            .map(|(id, r)| {
                let mut line = format!(
                    "verify: run {id}: {} unique, {} duplicate, {} corrupted",
                    r.unique, r.duplicate, r.corrupted
                );
                if let Some(t) = &r.transit {
                    line.push_str(&format!(
                        "; transit ms: min {}, p50 {}, p99 {}, max {}",
                        t.min_ms, t.p50_ms, t.p99_ms, t.max_ms
                    ));
                }
                line
            })
            .collect();
        if counts.runs.is_empty() {
            lines.push("verify: no stamped message".to_owned());
        }
        lines.push(format!(
            "verify: {} unstamped, {} invalid, {} untracked",
            counts.unstamped, counts.invalid, counts.untracked
        ));
        if let Some(s) = &counts.source {
            lines.push(format!(
                "verify: source run {}: {} accepted, {} arrived, {} lost",
                s.run_id, s.accepted, s.unique, s.lost
            ));
        }
        lines
    }

    /// The counts with each run's transit histogram itself, for the
    /// metrics endpoint (which makes buckets of it).
    pub fn metrics(&self) -> VerifyMetrics {
        let t = self.tally.lock().unwrap_or_else(PoisonError::into_inner);
        let mut runs: Vec<RunMetrics> = t
            .runs
            .iter()
            .map(|(id, run)| RunMetrics {
                run: id.as_str().to_owned(),
                unique: run.unique,
                duplicate: run.duplicate,
                corrupted: run.corrupted,
                transit: run.transit.clone(),
            })
            .collect();
        runs.sort_by(|a, b| a.run.cmp(&b.run));
        VerifyMetrics {
            runs,
            unstamped: t.unstamped,
            invalid: t.invalid,
            untracked: t.untracked,
        }
    }

    /// Unique messages over all runs (what `--expect` is checked against).
    pub fn unique(&self) -> u64 {
        let t = self.tally.lock().unwrap_or_else(PoisonError::into_inner);
        t.runs.values().map(|r| r.unique).sum()
    }
}

#[cfg(test)]
mod tests {
    use smtp_proto::stamp::{Stamp, StampError, UnstampedReason};

    use super::*;

    fn stamp(run: &str, seq: u64, sent_ns: u64) -> Stamp {
        Stamp {
            run: RunId::new(run.as_bytes()).unwrap(),
            seq,
            sent_ns,
            len: 10,
            digest: 1,
        }
    }

    fn intact(run: &str, seq: u64, sent_ns: u64) -> Verification {
        Verification::Intact(stamp(run, seq, sent_ns))
    }

    #[test]
    fn counts_unique_duplicate_corrupted_per_run() {
        let v = Verify::new();
        let ms = 1_000_000;
        for (outcome, now) in [
            (intact("a", 0, 0), 5 * ms),
            (intact("a", 1, 0), 7 * ms),
            (intact("a", 0, 0), 9 * ms),
            (intact("b", 0, 100 * ms), 101 * ms),
            (
                Verification::Altered {
                    stamp: stamp("a", 2, 0),
                    len: 9,
                    digest: 2,
                },
                1,
            ),
            (Verification::Unstamped(UnstampedReason::NoStamp), 1),
            (Verification::Invalid(StampError::TwoStamps), 1),
            // A sent in the future: transit 0, not a wrap-around.
            (intact("b", 1, 500 * ms), 200 * ms),
        ] {
            v.record_at(&outcome, now);
        }
        let s = v.snapshot();
        let a = &s.runs["a"];
        assert_eq!((a.unique, a.duplicate, a.corrupted), (2, 1, 1));
        let transit = a.transit.as_ref().expect("samples");
        assert_eq!(transit.count, 2);
        // 3 significant digits: the largest reads as its bucket's top.
        assert_eq!(transit.min_ms, 5.0);
        assert!((transit.max_ms - 7.0).abs() < 0.01, "{}", transit.max_ms);
        let b = &s.runs["b"];
        assert_eq!((b.unique, b.duplicate, b.corrupted), (2, 0, 0));
        assert_eq!(b.transit.as_ref().map(|t| t.min_ms), Some(0.0));
        assert_eq!((s.unstamped, s.invalid, s.untracked), (1, 1, 0));
        assert_eq!(v.unique(), 4);
    }

    #[test]
    fn sequence_numbers_far_apart_and_across_blocks() {
        let mut set = SeqSet::default();
        for seq in [0, 4095, 4096, u64::MAX, u64::MAX - 1, 1 << 40] {
            assert_eq!(set.insert(seq, true), Seen::First, "{seq}");
        }
        for seq in [0, 4095, 4096, u64::MAX, u64::MAX - 1, 1 << 40] {
            assert_eq!(set.insert(seq, false), Seen::Again, "{seq}");
        }
        assert_eq!(set.blocks(), 4);
        assert_eq!(set.insert(8192, false), Seen::NoRoom);
        assert_eq!(set.insert(4097, false), Seen::First);
    }

    #[test]
    fn memory_bounds_turn_into_untracked() {
        let v = Verify::new();
        // Sequence numbers one block apart: one block each.
        for i in 0..MAX_SEQ_BLOCKS as u64 + 10 {
            v.record_at(&intact("spread", i * BLOCK_BITS, 0), 0);
        }
        let s = v.snapshot();
        assert_eq!(s.runs["spread"].unique, MAX_SEQ_BLOCKS as u64);
        assert_eq!(s.untracked, 10);
        // A number in a block already there is still told apart.
        v.record_at(&intact("spread", 1, 0), 0);
        v.record_at(&intact("spread", 1, 0), 0);
        let s = v.snapshot();
        assert_eq!(s.runs["spread"].duplicate, 1);

        let v = Verify::new();
        for i in 0..MAX_RUNS + 3 {
            v.record_at(&intact(&format!("r{i}"), 0, 0), 0);
        }
        let s = v.snapshot();
        assert_eq!(s.runs.len(), MAX_RUNS);
        assert_eq!(s.untracked, 3);
    }
}
