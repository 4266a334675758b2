//! The tokio runtime, built the same way by both programs.

use std::io;

/// Builds the runtime `--threads` asks for: 0 runs everything on the
/// calling thread (the default of both programs: measured fastest on small
/// machines where the peer needs the other core), N a multi-threaded
/// runtime with N workers.
///
/// # Errors
/// The runtime could not start (out of threads or file descriptors).
pub fn build_runtime(threads: usize) -> io::Result<tokio::runtime::Runtime> {
    let mut builder = if threads == 0 {
        tokio::runtime::Builder::new_current_thread()
    } else {
        let mut b = tokio::runtime::Builder::new_multi_thread();
        b.worker_threads(threads);
        b
    };
    builder.enable_all().build()
}
