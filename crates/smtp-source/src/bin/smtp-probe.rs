//! `smtp-probe`: parse, probe, print the summary (and `--json`), exit with
//! the status that says which kinds of failure there were.

use std::process::ExitCode;

use smtp_source::probe::{
    config::{ProbeConfig, ProbeConfigError},
    report::exit,
    run,
};

fn main() -> ExitCode {
    let config = match ProbeConfig::from_args(std::env::args_os()) {
        Ok(c) => c,
        Err(ProbeConfigError::Help(text)) => {
            print!("{text}");
            return ExitCode::SUCCESS;
        }
        Err(ProbeConfigError::Usage(text)) => {
            eprint!("{text}");
            return ExitCode::from(exit::USAGE);
        }
        Err(ProbeConfigError::Invalid(text)) => {
            eprintln!("smtp-probe: fatal: {text}");
            return ExitCode::from(exit::USAGE);
        }
    };
    let rt = match smtp_net::build_runtime(0) {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("{}: fatal: runtime: {e}", config.argv0);
            return ExitCode::from(exit::USAGE);
        }
    };
    let report = match rt.block_on(run::run(&config)) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{}: fatal: {e}", config.argv0);
            return ExitCode::from(exit::NETWORK);
        }
    };
    config.human_output(&report.summary());
    if let Some(path) = &config.json {
        let text = report.to_json(&config) + "\n";
        let written = if path == "-" {
            use std::io::Write as _;
            std::io::stdout().lock().write_all(text.as_bytes())
        } else {
            std::fs::write(path, text)
        };
        if let Err(e) = written {
            eprintln!("{}: fatal: write {path}: {e}", config.argv0);
            return ExitCode::from(exit::USAGE);
        }
    }
    ExitCode::from(report.exit_code())
}
