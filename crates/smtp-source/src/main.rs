//! `smtp-source`: parse, run (or merge reports), report, exit (with a status naming the
//! failed phase where Postfix exits 1; see `exit.rs`), without Postfix's
//! one-second sleep.

use std::process::ExitCode;

use smtp_source::{ConfigError, Invocation};

fn main() -> ExitCode {
    let config = match Invocation::from_args(std::env::args_os()) {
        Ok(Invocation::Run(c)) => *c,
        Ok(Invocation::Merge(options)) => {
            return match smtp_source::merge::merge(&options) {
                Ok(report) => ExitCode::from(smtp_source::print_report(
                    &options.argv0,
                    options.summary,
                    options.json.as_deref(),
                    options.html.as_deref(),
                    &report,
                )),
                Err(e) => fatal(&options.argv0, &e),
            };
        }
        Err(ConfigError::Help(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let argv0 = argv0();
            match &e {
                ConfigError::Usage {
                    detail: Some(d), ..
                } => eprintln!("{argv0}: {d}"),
                ConfigError::Invalid {
                    warning: Some(w), ..
                } => eprintln!("{argv0}: warning: {w}"),
                _ => {}
            }
            return fatal(&argv0, &e);
        }
    };
    match smtp_source::run(config.clone()) {
        Ok(report) => ExitCode::from(smtp_source::finish(&config, &report)),
        Err(e) => fatal(&config.argv0, &e),
    }
}

fn argv0() -> String {
    std::env::args_os().next().map_or_else(
        || "smtp-source".to_owned(),
        |a| a.to_string_lossy().into_owned(),
    )
}

fn fatal(argv0: &str, e: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("{argv0}: fatal: {e}");
    ExitCode::from(1)
}
