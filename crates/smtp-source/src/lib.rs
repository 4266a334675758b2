//! `smtp-source`: a drop-in, faster replacement for Postfix's smtp-source
//! (docs/smtp-source.md).
//!
//! The flow is one way: [`Config::from_args`] checks the command line,
//! [`run`] starts `-s` workers that each drive smtp-proto's sans-IO
//! [`ClientSession`](smtp_proto::client::ClientSession) over a socket, and
//! their per-worker [`Stats`] are merged once into the [`Report`].

pub mod bind;
pub mod chart;
pub mod cli;
pub mod config;
pub mod conn;
pub mod connect;
pub mod error;
pub mod exit;
pub mod html;
pub mod latency;
pub mod live;
pub mod merge;
pub mod output;
pub mod plan;
pub mod probe;
pub mod report;
pub mod segment;
pub mod series;
pub mod session_plan;
pub mod stamp;
pub mod target;
pub mod threshold;
pub mod worker;

use std::sync::Arc;

pub use config::{Config, ConfigError, Invocation};
pub use error::Error;
pub use report::{Report, Stats};

/// Runtime threads when `--threads` is not given: chosen by measurement
/// on a 2-vCPU machine (see docs/smtp-source.md); 0 means the whole run
/// lives on the calling thread.
pub const DEFAULT_THREADS: usize = 0;

/// Builds the runtime `--threads` asks for and runs the load on it.
///
/// # Errors
/// Only a runtime that cannot start; a fatal error of the run is in the
/// report ([`Report::fatal`]), which is always made.
pub fn run(config: Config) -> Result<Report, Error> {
    let threads = config.threads.unwrap_or(DEFAULT_THREADS);
    let rt = smtp_net::build_runtime(threads).map_err(|source| Error::Io {
        what: "runtime".to_owned(),
        source,
    })?;
    Ok(rt.block_on(run_async(config)))
}

/// Runs the load on the current tokio runtime. The first fatal error of a
/// session stops the others (as in Postfix, the run ends there) and is
/// recorded in the report with what was measured up to then.
pub async fn run_async(config: Config) -> Report {
    let begun = std::time::Instant::now();
    smtp_proto::time::init_time_zone();
    let started = std::time::SystemTime::now();
    let now = started
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    let sessions = config.sessions;
    // Ctrl-C ends the run with partial figures, but only when a report
    // was asked for; otherwise SIGINT kills the process as it does Postfix.
    let interruptible = config.reports();
    let warmup = config.warmup;
    let shared = Arc::new(worker::Shared::new(config, now));
    // Checking the options and rendering what the sessions share (a long
    // body's chunk, --stamp's digest) come before the measured span: their
    // time is reported on its own.
    let prepare = shared.config.setup + shared.recorder.start().saturating_duration_since(begun);
    let live = live::LiveView::start(&shared);
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut set = tokio::task::JoinSet::new();
    for i in 0..sessions {
        let shared = Arc::clone(&shared);
        let mut stop = stop_rx.clone();
        set.spawn(async move {
            let mut stats = Stats::default();
            let res = tokio::select! {
                r = worker::run_session(shared, i, &mut stats) => r,
                _ = stop.wait_for(|s| *s) => Ok(()),
            };
            (res, stats)
        });
    }
    let interrupt = async {
        if interruptible && tokio::signal::ctrl_c().await.is_ok() {
            return;
        }
        std::future::pending::<()>().await;
    };
    tokio::pin!(interrupt);
    let mut interrupted = false;
    let mut fatal = None;
    let mut stats = Stats::default();
    loop {
        let joined = tokio::select! {
            j = set.join_next() => j,
            () = &mut interrupt, if !interrupted => {
                interrupted = true;
                let _ = stop_tx.send(true);
                continue;
            }
        };
        let Some(joined) = joined else { break };
        let error = match joined {
            Ok((res, s)) => {
                stats.merge(&s);
                res.err()
            }
            Err(e) => Some(Error::Io {
                what: "session task".to_owned(),
                source: std::io::Error::other(e.to_string()),
            }),
        };
        if let Some(e) = error {
            if fatal.is_none() {
                fatal = Some(report::Fatal::of(&e));
                // The others stop where they are; what they counted stays.
                let _ = stop_tx.send(true);
            }
        }
    }
    // Addresses that no session used still have a count: 0.
    let sources = shared.config.bind.len();
    if stats.connections_by_source.len() < sources {
        stats.connections_by_source.resize(sources, 0);
    }
    if let Some(live) = live {
        live.stop();
    }
    if fatal.is_none() {
        shared.output.finish();
    }
    let mut elapsed = shared.recorder.start().elapsed();
    if let Some(w) = warmup {
        elapsed = elapsed.saturating_sub(w);
    }
    let mut latency = shared.recorder.finish();
    latency.series.clock_offset = shared
        .recorder
        .start()
        .saturating_duration_since(begun)
        .as_secs_f64();
    let mut report = Report {
        sessions,
        stats,
        elapsed,
        interrupted: interrupted && fatal.is_none(),
        started,
        ended: std::time::SystemTime::now(),
        latency,
        fatal,
        thresholds: Vec::new(),
        stamped: shared.stamper.as_ref().map(stamp::Stamper::written),
        prepare: Some(prepare),
        info: report::RunInfo::of(&shared.config),
    };
    report.thresholds = shared
        .config
        .thresholds
        .iter()
        .map(|t| report.check(t))
        .collect();
    report
}

/// Prints what the run ends with: the fatal error (Postfix's line), then
/// what `--summary` and `--json` ask for; returns the exit status.
pub fn finish(config: &Config, report: &Report) -> u8 {
    if let Some(f) = &report.fatal {
        eprintln!("{}: fatal: {}", config.argv0, f.message);
    }
    print_report(
        &config.argv0,
        config.summary,
        config.json.as_deref(),
        config.html.as_deref(),
        report,
    )
}

/// Writes what `--summary` (stderr), `--json` and `--html` ask for, or
/// only the failed thresholds when none is; returns the exit status. A run
/// and `--merge-reports` end the same way.
pub fn print_report(
    argv0: &str,
    summary: bool,
    json: Option<&str>,
    html: Option<&str>,
    report: &Report,
) -> u8 {
    if summary {
        eprint!("{argv0}: {}\n{}", report.summary(), report.table());
        if let Some(n) = report.stamped {
            eprintln!(
                "{argv0}: {n} messages stamped as run {}",
                report.info.run_id
            );
        }
    } else if !report.thresholds.is_empty() {
        // Without --summary a failed threshold still says which.
        for t in report.thresholds.iter().filter(|t| !t.passed) {
            eprintln!("{argv0}: threshold {} failed: {}", t.threshold, t.detail);
        }
    }
    let outputs = [
        json.map(|path| (path, report.to_json() + "\n")),
        html.map(|path| (path, html::render(report))),
    ];
    for (path, text) in outputs.into_iter().flatten() {
        if let Err(e) = write_report(&text, path) {
            eprintln!("{argv0}: fatal: {e}");
            return report.exit_code().max(exit::USAGE);
        }
    }
    report.exit_code()
}

/// Writes a report to `path`, or stdout for `-`.
fn write_report(text: &str, path: &str) -> Result<(), Error> {
    let res = if path == "-" {
        use std::io::Write as _;
        std::io::stdout().lock().write_all(text.as_bytes())
    } else {
        std::fs::write(path, text)
    };
    res.map_err(|source| Error::Io {
        what: format!("write {path}"),
        source,
    })
}
