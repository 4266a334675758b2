//! The status line (`--progress`): once a second, the sessions open and
//! what the last second brought (messages, content, rejections, each per
//! second). On a
//! terminal it is one line that redraws itself (indicatif); with
//! `--progress always` on a pipe it is one plain line per second.
//!
//! `auto`, the default, shows it only when stderr is a terminal and
//! nothing else writes there: not with `-c` (Postfix's counter line owns
//! the terminal then) nor `-v`. So on a pipe or a file the sink's output
//! is Postfix's, byte for byte.
//!
//! The figures come from [`Stats::snapshot`], taken once a second: the
//! sessions do no extra work for the line. Counts per command are flushed
//! at the end of each message and session, so "the last second" is the
//! last second's flushes.

use std::io::{IsTerminal as _, Write as _};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::config::{Config, Progress};
use crate::policy::Policy;
use crate::stats::{Counters, Stats};

/// Whether the line is shown, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Not shown.
    Off,
    /// Redrawn in place on a terminal.
    Terminal,
    /// One plain line per second (`--progress always` on a pipe).
    Lines,
}

/// What `--progress` means for this configuration, stderr being a
/// terminal or not.
pub fn mode(cfg: &Config, stderr_is_terminal: bool) -> Mode {
    let show = match cfg.progress {
        Progress::Never => false,
        Progress::Always => true,
        Progress::Auto => stderr_is_terminal && !cfg.show_count && cfg.verbose == 0,
    };
    match (show, stderr_is_terminal) {
        (false, _) => Mode::Off,
        (true, true) => Mode::Terminal,
        (true, false) => Mode::Lines,
    }
}

/// The counters the line compares from one second to the next.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Totals {
    /// Sessions running now.
    pub open: u64,
    /// Messages whose end of data arrived.
    pub messages: u64,
    /// Content bytes received.
    pub bytes: u64,
    /// Replies of class 4xx or 5xx.
    pub rejects: u64,
}

impl Totals {
    /// The figures of a snapshot.
    pub fn of(c: &Counters) -> Totals {
        Totals {
            open: c.sessions.open,
            messages: c.messages.received,
            bytes: c.messages.content_bytes,
            rejects: c.replies.0.iter().map(|(_, r)| r.c4xx + r.c5xx).sum(),
        }
    }
}

/// The text of the line: sessions open now, then the rates since `before`,
/// taken `elapsed` ago (a second, unless the process was held up): messages,
/// megabytes (10^6 bytes) and 4xx/5xx replies per second.
pub fn line(now: Totals, before: Totals, elapsed: Duration) -> String {
    // Never divide by (almost) nothing: a tick is about a second apart.
    let secs = elapsed.as_secs_f64().max(0.001);
    let rate = |f: fn(&Totals) -> u64| f(&now).saturating_sub(f(&before)) as f64 / secs;
    format!(
        "open {} | {:.0} msg/s | {:.2} MB/s | {:.0} rejects/s",
        now.open,
        rate(|t| t.messages),
        rate(|t| t.bytes) / 1e6,
        rate(|t| t.rejects)
    )
}

/// The status line of a running sink: a task that draws every second
/// until stopped.
#[derive(Debug)]
pub struct StatusLine {
    bar: Option<ProgressBar>,
    task: tokio::task::JoinHandle<()>,
}

impl StatusLine {
    /// Starts drawing on the current runtime, or returns None when the
    /// line is not shown.
    pub fn start(cfg: &Config, stats: Arc<Stats>) -> Option<StatusLine> {
        let mode = mode(cfg, std::io::stderr().is_terminal());
        if mode == Mode::Off {
            return None;
        }
        let bar = (mode == Mode::Terminal).then(|| {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template("{elapsed:>4} {msg}").expect("a valid template"),
            );
            bar
        });
        let drawn = bar.clone();
        let policy: Policy = cfg.policy.clone();
        let prog = cfg.prog.clone();
        let task = tokio::spawn(async move {
            let started = Instant::now();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            // After a hold-up, one line and back to once a second, not a
            // burst of lines; the rates are over the time that passed.
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            // The first tick is immediate: it only sets the baseline.
            tick.tick().await;
            let mut last = (Instant::now(), Totals::of(&stats.snapshot(&policy)));
            loop {
                tick.tick().await;
                let now = (Instant::now(), Totals::of(&stats.snapshot(&policy)));
                let text = line(now.1, last.1, now.0 - last.0);
                last = now;
                match &drawn {
                    Some(bar) => bar.set_message(text),
                    None => {
                        let secs = started.elapsed().as_secs();
                        // A closed stderr must not take the sink down.
                        let _ = writeln!(std::io::stderr().lock(), "{prog}: {secs}s {text}");
                    }
                }
            }
        });
        Some(StatusLine { bar, task })
    }

    /// Stops drawing and clears the line.
    pub fn stop(self) {
        self.task.abort();
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(args: &[&str]) -> Config {
        let argv = std::iter::once("smtp-sink").chain(args.iter().copied());
        let cli = crate::cli::Cli::try_parse_ordered(argv).expect("clap accepts it");
        Config::from_cli(cli, "smtp-sink", 1000).expect("valid")
    }

    #[test]
    fn auto_needs_a_terminal_and_no_c_or_v() {
        let plain = cfg(&[":25", "1"]);
        assert_eq!(mode(&plain, true), Mode::Terminal);
        assert_eq!(mode(&plain, false), Mode::Off);
        assert_eq!(mode(&cfg(&["-c", ":25", "1"]), true), Mode::Off);
        assert_eq!(mode(&cfg(&["-v", ":25", "1"]), true), Mode::Off);
        let always = cfg(&["--progress", "always", ":25", "1"]);
        assert_eq!(mode(&always, false), Mode::Lines);
        assert_eq!(mode(&always, true), Mode::Terminal);
        let never = cfg(&["--progress", "never", ":25", "1"]);
        assert_eq!(mode(&never, true), Mode::Off);
    }

    #[test]
    fn line_shows_the_last_second() {
        let before = Totals {
            open: 9,
            messages: 100,
            bytes: 1_000_000,
            rejects: 5,
        };
        let now = Totals {
            open: 3,
            messages: 150,
            bytes: 3_500_000,
            rejects: 7,
        };
        assert_eq!(
            line(now, before, Duration::from_secs(1)),
            "open 3 | 50 msg/s | 2.50 MB/s | 2 rejects/s"
        );
        // Two seconds since the last line: per second all the same.
        assert_eq!(
            line(now, before, Duration::from_secs(2)),
            "open 3 | 25 msg/s | 1.25 MB/s | 1 rejects/s"
        );
        assert_eq!(
            line(before, now, Duration::ZERO),
            "open 9 | 0 msg/s | 0.00 MB/s | 0 rejects/s"
        );
    }

    #[test]
    fn rejects_are_4xx_and_5xx_replies() {
        let stats = Stats::with_output(false, 0, 0, Box::new(std::io::sink()));
        let mut counts = crate::stats::SessionCounts::default();
        counts.replies(
            crate::stats::UNKNOWN,
            b"250 ok\r\n354 go\r\n451 later\r\n550 no\r\n",
        );
        counts.flush(&stats);
        let totals = Totals::of(&stats.snapshot(&Policy::default()));
        assert_eq!(totals.rejects, 2);
    }
}
