//! smtp-sink: parse, set up logging, bind, drop privileges, run.

use std::process::ExitCode;
use std::sync::Arc;

use smtp_sink::cli::Cli;
use smtp_sink::config::ConfigError;
use smtp_sink::{listener, Config, Error};

mod logging;

fn main() -> ExitCode {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let prog = argv.first().map_or_else(
        || "smtp-sink".to_owned(),
        |a| a.to_string_lossy().into_owned(),
    );
    let cli = match Cli::try_parse_ordered(&argv) {
        Ok(cli) => cli,
        Err(e) if !e.use_stderr() => {
            let _ = e.print();
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            let text = e.render().to_string();
            let first = text
                .lines()
                .next()
                .unwrap_or("")
                .trim_start_matches("error: ");
            eprintln!("{prog}: error: {first}");
            return fatal(
                &prog,
                &ConfigError::Usage {
                    prog: prog.clone(),
                    detail: None,
                }
                .into(),
            );
        }
    };
    logging::init(&prog, cli.verbose);
    match start(cli, &prog) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fatal(&prog, &e),
    }
}

fn fatal(prog: &str, e: &Error) -> ExitCode {
    if let Error::Config(ConfigError::Usage {
        detail: Some(d), ..
    }) = e
    {
        eprintln!("{prog}: error: {d}");
    }
    eprintln!("{prog}: fatal: {e}");
    ExitCode::FAILURE
}

fn start(cli: Cli, prog: &str) -> Result<(), Error> {
    let cfg = Arc::new(Config::from_cli(
        cli,
        prog,
        nix::unistd::geteuid().as_raw(),
    )?);
    if let Some(tls) = &cfg.tls {
        if let Some(fingerprint) = &tls.server.generated_fingerprint {
            // Always printed (not only with -v): a client that wants to
            // pin the certificate needs it. Same shape as openssl x509
            // -fingerprint -sha256.
            eprintln!(
                "{prog}: self-signed TLS certificate for {}: sha256 Fingerprint={fingerprint}",
                String::from_utf8_lossy(&cfg.hostname)
            );
        }
    }
    if let Some(auth) = &cfg.auth {
        if cfg.tls.is_none() && !auth.plaintext {
            tracing::warn!(
                "--auth-users without --starttls, --tls-on-connect or --auth-plaintext: \
                 every AUTH gets 538"
            );
        }
    }
    // Zone files cannot be read after a chroot.
    smtp_proto::time::init_time_zone();
    if let Some(ident) = &cfg.syslog_ident {
        smtp_sink::syslog::open(ident);
    }
    let runtime = smtp_net::build_runtime(cfg.threads).map_err(Error::Runtime)?;
    runtime.block_on(async {
        // Signal handlers first: once the socket listens, Ctrl-C and
        // SIGTERM must already end the sink cleanly.
        let shutdown = shutdown_signal()?;
        let bound = listener::bind(&cfg)?;
        listener::drop_privileges(cfg.user.as_deref(), cfg.root_dir.as_deref())?;
        smtp_sink::run(cfg, bound, shutdown).await
    })?;
    // Sessions still running are cut, as when Postfix's sink exits; their
    // unfinished dump files are removed as their tasks are dropped.
    drop(runtime);
    Ok(())
}

/// Ctrl-C or SIGTERM; the handlers are installed before this returns.
fn shutdown_signal() -> Result<impl std::future::Future<Output = ()>, Error> {
    use tokio::signal::unix::{signal, SignalKind};
    let install = |kind| signal(kind).map_err(|e| Error::Fatal(format!("signal: {e}")));
    let mut int = install(SignalKind::interrupt())?;
    let mut term = install(SignalKind::terminate())?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    })
}
