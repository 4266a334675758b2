//! smtp-sink: a drop-in, faster replacement for Postfix's smtp-sink(1).
//!
//! The layout follows the house style: [`cli`] (clap) → [`config`]
//! (validated, Postfix's error texts) → [`listener`] (bind, drop
//! privileges, accept) → [`session`] (thin async shell per client) →
//! [`conversation`] (the sans-IO protocol engine) with [`policy`] (which
//! reply a command gets), [`dump`] (`-d`/`-D`) and [`stats`] (`-c`, `-n`,
//! `-M`, and the always-on counters that [`stats_json`] writes out with
//! `--stats-json`, [`metrics`] serves with `--metrics` and [`status`] shows
//! with `--progress`), plus [`auth`] for real AUTH (`--auth-users`). TLS itself is
//! smtp-net's ([`smtp_net::tls`]). docs/smtp-sink.md describes every
//! option and each deliberate difference from Postfix.

pub mod auth;
pub mod cli;
pub mod config;
pub mod conversation;
pub mod dump;
pub mod error;
pub mod fault;
pub mod greylist;
pub mod listener;
pub mod metrics;
pub mod policy;
pub mod rate;
pub mod replies;
pub mod session;
pub mod stats;
pub mod stats_json;
pub mod status;
pub mod syslog;
pub mod throttle;
pub mod verify;

use std::sync::{Arc, OnceLock};

use tokio::sync::{mpsc, watch, Notify, Semaphore};

pub use crate::config::Config;
use crate::config::DumpConfig;
use crate::conversation::SyslogHook;
pub use crate::error::Error;
use crate::listener::Bound;
use crate::stats::Stats;

/// State every session shares: read-only configuration plus atomics.
pub struct Shared {
    /// The configuration.
    pub cfg: Arc<Config>,
    /// `-d`/`-D`.
    pub dump: Option<Arc<DumpConfig>>,
    /// Counters.
    pub stats: Arc<Stats>,
    /// `-s`.
    pub syslog: Option<SyslogHook>,
    /// `--starttls`/`--tls-on-connect`: the handshakes' server side.
    pub tls: Option<smtp_net::tls::TlsAcceptor>,
    /// `--max-rate`, `--greylist`: the state the sessions share.
    pub throttle: Arc<throttle::Throttle>,
    /// `--drain`: true once a stop signal has closed the listener; each
    /// session watches it while it waits for input.
    pub drain: watch::Sender<bool>,
    exit: Notify,
    /// Why [`Shared::exit`] was called first.
    exit_reason: OnceLock<Stop>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Ends the process (`-n`, `-M`): [`run`] returns `why` (the first
    /// reason given, when several sessions get there at once).
    pub fn exit(&self, why: Stop) {
        let _ = self.exit_reason.set(why);
        self.exit.notify_one();
    }
}

/// Why [`run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// `-M` was reached.
    MaxMessages,
    /// `-n` was reached.
    MaxSessions,
    /// `shutdown` completed with this value (the signal, say).
    Shutdown(stats_json::Trigger),
}

/// The process's counters for `cfg` (`-c`, `-n`, `-M` and the rest).
pub fn new_stats(cfg: &Config) -> Arc<Stats> {
    Arc::new(
        Stats::new(cfg.show_count, cfg.max_messages, cfg.max_sessions)
            .with_fields(cfg.tls.is_some(), cfg.auth.is_some())
            .with_verify(cfg.verify.is_some())
            .with_behaviour(&cfg.behaviour),
    )
}

/// Serves clients on `bound`, counting in `stats` (from [`new_stats`]),
/// until `-n`/`-M` is reached or a stop request (a signal) arrives on
/// `stops`. Must run inside a tokio runtime.
///
/// Without `--drain` the first stop request ends the run at once. With
/// it, the listener is closed, the sessions are told (see
/// [`session`]), and the run ends when every session has ended, when the
/// drain time is up, at `-M`/`-n`, or at a second stop request, whichever
/// comes first. Sessions still running then are cut by the caller, as
/// without `--drain`.
///
/// # Errors
/// The listener could not be registered with the runtime.
pub async fn run(
    cfg: Arc<Config>,
    stats: Arc<Stats>,
    bound: Bound,
    mut stops: mpsc::Receiver<stats_json::Trigger>,
) -> Result<Stop, Error> {
    let syslog: Option<SyslogHook> = cfg
        .syslog_ident
        .as_ref()
        .map(|_| Arc::new(|line: &[u8]| syslog::log(line)) as SyslogHook);
    let shared = Arc::new(Shared {
        dump: cfg.dump.clone().map(Arc::new),
        stats,
        syslog,
        tls: cfg
            .tls
            .as_ref()
            .map(|t| smtp_net::tls::TlsAcceptor::from(t.server.config.clone())),
        throttle: Arc::new(throttle::Throttle::new(&cfg.behaviour)),
        drain: watch::Sender::new(false),
        exit: Notify::new(),
        exit_reason: OnceLock::new(),
        cfg,
    });
    // One permit per session that may run at once (-m); all of them free
    // again means every session has ended.
    let slots = u32::try_from(shared.cfg.max_clients).unwrap_or(u32::MAX);
    let permits = Arc::new(Semaphore::new(slots as usize));
    let mut accept = Box::pin(listener::accept_loop(
        bound,
        shared.clone(),
        permits.clone(),
    ));
    let exited = || {
        Ok(shared
            .exit_reason
            .get()
            .copied()
            .unwrap_or(Stop::MaxMessages))
    };
    let signal = tokio::select! {
        // The accept loop ends only with an error.
        r = &mut accept => return r.map(|()| Stop::Shutdown(stats_json::Trigger::Error)),
        () = shared.exit.notified() => return exited(),
        Some(signal) = stops.recv() => signal,
    };
    let Some(patience) = shared.cfg.drain else {
        return Ok(Stop::Shutdown(signal));
    };
    // Dropping the accept loop closes the listening socket: from now on
    // connections are refused. Then the sessions learn of the drain.
    drop(accept);
    shared.drain.send_replace(true);
    tokio::select! {
        _ = permits.acquire_many(slots) => {}
        () = tokio::time::sleep(patience) => {
            tracing::warn!("--drain: {} s are up, cutting the sessions still open", patience.as_secs());
        }
        () = shared.exit.notified() => return exited(),
        Some(_) = stops.recv() => {}
    }
    Ok(Stop::Shutdown(signal))
}
