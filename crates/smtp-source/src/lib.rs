//! `smtp-source`: a drop-in, faster replacement for Postfix's smtp-source
//! (docs/smtp-source.md).
//!
//! The flow is one way: [`Config::from_args`] checks the command line,
//! [`run`] starts `-s` workers that each drive smtp-proto's sans-IO
//! [`ClientSession`](smtp_proto::client::ClientSession) over a socket, and
//! their per-worker [`Stats`] are merged once into the [`Report`].

pub mod cli;
pub mod config;
pub mod conn;
pub mod connect;
pub mod error;
pub mod output;
pub mod plan;
pub mod report;
pub mod target;
pub mod worker;

use std::{sync::Arc, time::Instant};

pub use config::{Config, ConfigError};
pub use error::Error;
pub use report::{Report, Stats};

/// Runtime threads when `--threads` is not given: chosen by measurement
/// on a 2-vCPU machine (see docs/smtp-source.md); 0 means the whole run
/// lives on the calling thread.
pub const DEFAULT_THREADS: usize = 0;

/// Builds the runtime `--threads` asks for and runs the load on it.
///
/// # Errors
/// The first fatal error of any session; the run stops there.
pub fn run(config: Config) -> Result<Report, Error> {
    let threads = config.threads.unwrap_or(DEFAULT_THREADS);
    let rt = smtp_net::build_runtime(threads).map_err(|source| Error::Io {
        what: "runtime".to_owned(),
        source,
    })?;
    rt.block_on(run_async(config))
}

/// Runs the load on the current tokio runtime.
///
/// # Errors
/// The first fatal error of any session; the others are cancelled.
pub async fn run_async(config: Config) -> Result<Report, Error> {
    smtp_proto::time::init_time_zone();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
    let sessions = config.sessions;
    // Ctrl-C ends the run with partial figures, but only when a report
    // was asked for; otherwise SIGINT kills the process as it does Postfix.
    let interruptible = config.summary || config.json.is_some();
    let shared = Arc::new(worker::Shared::new(config, now));
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let start = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    for i in 0..sessions {
        let shared = Arc::clone(&shared);
        let mut stop = stop_rx.clone();
        set.spawn(async move {
            let mut stats = Stats::default();
            let res = if interruptible {
                tokio::select! {
                    r = worker::run_session(shared, i, &mut stats) => r,
                    _ = stop.wait_for(|s| *s) => Ok(()),
                }
            } else {
                worker::run_session(shared, i, &mut stats).await
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
        match joined {
            Ok((Ok(()), s)) => stats.merge(&s),
            Ok((Err(e), _)) => {
                set.abort_all();
                return Err(e);
            }
            Err(e) => {
                set.abort_all();
                return Err(Error::Io {
                    what: "session task".to_owned(),
                    source: std::io::Error::other(e.to_string()),
                });
            }
        }
    }
    shared.output.finish();
    let report = Report {
        sessions,
        stats,
        elapsed: start.elapsed(),
        interrupted,
    };
    Ok(report)
}

/// Prints what `--summary` and `--json` ask for.
///
/// # Errors
/// The JSON file cannot be written.
pub fn print_report(config: &Config, report: &Report) -> Result<(), Error> {
    if config.summary {
        eprintln!("{}: {}", config.argv0, report.summary());
    }
    match &config.json {
        Some(path) => write_json(report, path),
        None => Ok(()),
    }
}

fn write_json(report: &Report, path: &str) -> Result<(), Error> {
    let text = report.to_json() + "\n";
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
