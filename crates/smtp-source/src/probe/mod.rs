//! `smtp-probe`: checks that mail servers answer and accept a numbered
//! test message, and how fast (docs/smtp-probe.md). smtp-conversation's
//! command line with smtpping's picture, built on smtp-source: every
//! attempt is a one-message smtp-source run, so the codec, transport, TLS,
//! AUTH, timing and error texts are the same code.

pub mod cli;
pub mod config;
pub mod message;
pub mod mx;
pub mod report;
pub mod run;

/// The `--help` epilogue.
pub const EXIT_HELP: &str = "\
Exit status:
    0  every server accepted what it was sent (with -u: in the end)
    1  usage or setup error
    2  failures, all of them network faults (or no MX host found)
    3  failures, all of them SMTP replies (4xx/5xx)
    4  failures of both kinds";
