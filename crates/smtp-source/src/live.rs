//! The live progress line (`--progress`): once a second, what the run has
//! done so far and in the last second. On a terminal it is one line that
//! redraws itself (indicatif), with a bar when the total is known; with
//! `--progress always` on a pipe it is one plain line per second. A CI log
//! never gets it unless asked: `auto` shows it only on a terminal, and not
//! when `-c`, `-v` or `--json -` write to the same place.

use std::{
    io::{IsTerminal as _, Write as _},
    sync::Arc,
    time::Duration,
};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::{
    config::{Config, Progress},
    latency::{LiveCounts, LiveSnapshot},
    worker::Shared,
};

/// Whether the line is shown for this run, and how.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Not shown.
    Off,
    /// Redrawn in place on a terminal.
    Terminal,
    /// One plain line per second (`--progress always` on a pipe).
    Lines,
}

/// What `--progress` means here: `auto` needs a terminal on stderr and no
/// other writer to it (`-c` on a terminal, `-v`, `--json -`).
pub fn mode(config: &Config) -> Mode {
    let tty = std::io::stderr().is_terminal();
    let show = match config.progress {
        Progress::Never => false,
        Progress::Always => true,
        Progress::Auto => {
            tty && !config.counter && config.verbose == 0 && config.json.as_deref() != Some("-")
        }
    };
    match (show, tty) {
        (false, _) => Mode::Off,
        (true, true) => Mode::Terminal,
        (true, false) => Mode::Lines,
    }
}

/// The message total when it is known: `-m`, or `--rate` × `--duration`.
fn total(config: &Config) -> Option<u64> {
    if config.messages != i64::MAX {
        return u64::try_from(config.messages).ok();
    }
    match (config.rate, config.duration) {
        (Some(r), Some(d)) => Some((r * d.as_secs_f64()).ceil() as u64),
        _ => None,
    }
}

/// The live view of a run: a task that draws every second until stopped.
#[derive(Debug)]
pub struct LiveView {
    bar: Option<ProgressBar>,
    task: tokio::task::JoinHandle<()>,
}

impl LiveView {
    /// Starts drawing, or returns None when the line is not shown.
    pub fn start(shared: &Arc<Shared>) -> Option<LiveView> {
        let mode = mode(&shared.config);
        if mode == Mode::Off {
            return None;
        }
        let total = total(&shared.config);
        let bar = (mode == Mode::Terminal).then(|| {
            let bar = ProgressBar::with_draw_target(total, ProgressDrawTarget::stderr());
            let template = if total.is_some() {
                "{elapsed:>4} [{bar:20}] {pos}/{len} {msg}"
            } else {
                "{elapsed:>4} {pos} sent {msg}"
            };
            bar.set_style(
                ProgressStyle::with_template(template)
                    .expect("a valid template")
                    .progress_chars("=> "),
            );
            bar
        });
        let shared = Arc::clone(shared);
        let drawn = bar.clone();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            let mut last = LiveCounts::default();
            loop {
                tick.tick().await;
                let snap = shared.recorder.snapshot();
                let text = line(&snap, last);
                last = snap.counts;
                match &drawn {
                    Some(bar) => {
                        // The message last: its redraw is never throttled
                        // away, so position and figures show together.
                        bar.set_position(snap.counts.sent);
                        bar.set_message(text);
                    }
                    None => {
                        let secs = shared.recorder.now() / 1_000_000;
                        let _ = writeln!(
                            std::io::stderr().lock(),
                            "{}: {secs}s {} sent {text}",
                            shared.config.argv0,
                            snap.counts.sent
                        );
                    }
                }
            }
        });
        Some(LiveView { bar, task })
    }

    /// Stops drawing and clears the line.
    pub fn stop(self) {
        self.task.abort();
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}

/// The figures after the bar: sessions open, totals, the last second's
/// rate and latency, late starts under `--rate`.
pub fn line(snap: &LiveSnapshot, before: LiveCounts) -> String {
    let c = snap.counts;
    let mut text = format!(
        "| open {} | acc {} rej {} fail {} | {} msg/s",
        snap.open_sessions,
        c.accepted,
        c.rejected,
        c.failed,
        c.sent.saturating_sub(before.sent)
    );
    if let Some(h) = &snap.window {
        let ms = |q: f64| h.value_at_quantile(q) as f64 / 1000.0;
        text += &format!(" | p50 {:.1} ms p99 {:.1} ms", ms(0.5), ms(0.99));
    }
    if snap.late_starts > 0 {
        text += &format!(" | late {}", snap.late_starts);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_shows_the_last_second() {
        let mut window = crate::latency::histogram();
        window.record(1_500).unwrap();
        let snap = LiveSnapshot {
            open_sessions: 3,
            counts: LiveCounts {
                sent: 150,
                accepted: 140,
                rejected: 2,
                failed: 1,
            },
            window: Some(window),
            late_starts: 4,
        };
        let before = LiveCounts {
            sent: 100,
            ..LiveCounts::default()
        };
        assert_eq!(
            line(&snap, before),
            "| open 3 | acc 140 rej 2 fail 1 | 50 msg/s | p50 1.5 ms p99 1.5 ms | late 4"
        );
    }
}
