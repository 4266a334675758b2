//! The crate's error type.

use thiserror::Error;

use crate::config::ConfigError;

/// Why the sink could not start or had to stop. Each variant's text is
/// what Postfix prints after `<argv0>: fatal: `.
#[derive(Debug, Error)]
pub enum Error {
    /// The command line was refused.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// A fatal condition with Postfix's text (bind, privileges, ...).
    #[error("{0}")]
    Fatal(String),
    /// The `--metrics` endpoint could not start.
    #[error(transparent)]
    Metrics(#[from] crate::metrics::MetricsError),
    /// The async runtime could not be built.
    #[error("runtime: {0}")]
    Runtime(#[source] std::io::Error),
}
