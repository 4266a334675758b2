//! `smtp-source`: parse, run, exit like Postfix (1 on any fatal error,
//! without Postfix's one-second sleep).

use std::process::ExitCode;

use smtp_source::{Config, ConfigError};

fn main() -> ExitCode {
    let config = match Config::from_args(std::env::args_os()) {
        Ok(c) => c,
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
    let report = match smtp_source::run(config.clone()) {
        Ok(r) => r,
        Err(e) => return fatal(&config.argv0, &e),
    };
    if let Err(e) = smtp_source::print_report(&config, &report) {
        return fatal(&config.argv0, &e);
    }
    if report.interrupted {
        // 128 + SIGINT, what a shell shows for a Postfix run killed by ^C.
        ExitCode::from(130)
    } else {
        ExitCode::SUCCESS
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
