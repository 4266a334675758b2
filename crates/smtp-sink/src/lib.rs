//! smtp-sink: a drop-in, faster replacement for Postfix's smtp-sink(1).
//!
//! The layout follows the house style: [`cli`] (clap) → [`config`]
//! (validated, Postfix's error texts) → [`listener`] (bind, drop
//! privileges, accept) → [`session`] (thin async shell per client) →
//! [`conversation`] (the sans-IO protocol engine) with [`policy`] (which
//! reply a command gets), [`dump`] (`-d`/`-D`) and [`stats`] (`-c`, `-n`,
//! `-M`), plus [`auth`] for real AUTH (`--auth-users`). TLS itself is
//! smtp-net's ([`smtp_net::tls`]). docs/smtp-sink.md describes every
//! option and each deliberate difference from Postfix.

pub mod auth;
pub mod cli;
pub mod config;
pub mod conversation;
pub mod dump;
pub mod error;
pub mod listener;
pub mod policy;
pub mod replies;
pub mod session;
pub mod stats;
pub mod syslog;

use std::sync::Arc;

use tokio::sync::Notify;

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
    exit: Notify,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// Ends the process (`-n`, `-M`): [`run`] returns.
    pub fn exit(&self) {
        self.exit.notify_one();
    }
}

/// Why [`run`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// `-n` or `-M` was reached.
    Limit,
    /// `shutdown` completed (Ctrl-C, SIGTERM).
    Shutdown,
}

/// Serves clients on `bound` until `-n`/`-M` is reached or `shutdown`
/// completes. Must run inside a tokio runtime.
///
/// # Errors
/// The listener could not be registered with the runtime.
pub async fn run(
    cfg: Arc<Config>,
    bound: Bound,
    shutdown: impl std::future::Future<Output = ()>,
) -> Result<Stop, Error> {
    let syslog: Option<SyslogHook> = cfg
        .syslog_ident
        .as_ref()
        .map(|_| Arc::new(|line: &[u8]| syslog::log(line)) as SyslogHook);
    let shared = Arc::new(Shared {
        dump: cfg.dump.clone().map(Arc::new),
        stats: Arc::new(
            Stats::new(cfg.show_count, cfg.max_messages, cfg.max_sessions)
                .with_fields(cfg.tls.is_some(), cfg.auth.is_some()),
        ),
        syslog,
        tls: cfg
            .tls
            .as_ref()
            .map(|t| smtp_net::tls::TlsAcceptor::from(t.server.config.clone())),
        exit: Notify::new(),
        cfg,
    });
    let accept = listener::accept_loop(bound, shared.clone());
    tokio::select! {
        r = accept => r.map(|()| Stop::Shutdown),
        () = shared.exit.notified() => Ok(Stop::Limit),
        () = shutdown => Ok(Stop::Shutdown),
    }
}
