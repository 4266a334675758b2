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
    let argv0 = config.argv0.clone();
    match smtp_source::run(config) {
        // 130 = 128 + SIGINT, what a shell shows for a killed Postfix run.
        Ok(report) if report.interrupted => ExitCode::from(130),
        Ok(_) => ExitCode::SUCCESS,
        Err(e) => fatal(&argv0, &e),
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
