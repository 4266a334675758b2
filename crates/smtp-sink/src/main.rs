//! smtp-sink: parse, set up logging, bind, drop privileges, run.

use std::process::ExitCode;
use std::sync::Arc;

use smtp_sink::cli::Cli;
use smtp_sink::config::ConfigError;
use smtp_sink::metrics::Endpoint;
use smtp_sink::stats_json::{StatsJson, Trigger};
use smtp_sink::status::StatusLine;
use smtp_sink::{listener, Config, Error, Stop};

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
        Ok(status) => ExitCode::from(status),
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

/// How long the sink waits at its end for `--source-report`'s file.
const SOURCE_REPORT_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// The exit status when `--expect N` was not met.
const EXPECT_NOT_MET: u8 = 3;

/// Runs the sink; the exit status when it ends without a fatal error: 0,
/// or [`EXPECT_NOT_MET`].
fn start(cli: Cli, prog: &str) -> Result<u8, Error> {
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
    let started = std::time::SystemTime::now();
    let stats = smtp_sink::new_stats(&cfg);
    let (run_cfg, run_stats) = (cfg.clone(), stats.clone());
    let report = cfg
        .stats_json
        .clone()
        .map(|path| Arc::new(StatsJson::new(path, stats.clone(), cfg.policy.clone())));
    // Set once the first write has worked: a fatal error before that (the
    // file cannot be written, say) leaves no file behind.
    let mut report_works = false;
    let runtime = smtp_net::build_runtime(cfg.threads).map_err(Error::Runtime)?;
    let result = runtime.block_on(async {
        // Signal handlers first: once the socket listens, Ctrl-C and
        // SIGTERM must already end the sink cleanly (and SIGUSR1 must not
        // kill a sink that writes --stats-json).
        let signals = Signals::install(report.is_some())?;
        // Before the SMTP listener: once clients can connect, the
        // endpoint can be scraped too. Before the privilege drop, as the
        // SMTP listener is.
        let metrics = cfg.metrics.map(Endpoint::bind).transpose()?;
        let bound = listener::bind(&cfg)?;
        listener::drop_privileges(cfg.user.as_deref(), cfg.root_dir.as_deref())?;
        if let Some(endpoint) = metrics {
            tokio::spawn(endpoint.serve(stats.clone(), cfg.policy.clone()));
        }
        if let Some(report) = &report {
            // As the user the sink now runs as, and inside any -R root:
            // the file must be writable there, or the sink does not start.
            report
                .write(Trigger::Start, None)
                .map_err(|e| report_error(report, &e))?;
            report_works = true;
        }
        let Signals { shutdown, usr1 } = signals;
        if let (Some(report), Some(usr1)) = (&report, usr1) {
            tokio::spawn(write_on_usr1(usr1, report.clone()));
        }
        let status = StatusLine::start(&cfg, stats.clone());
        let stop = smtp_sink::run(run_cfg, run_stats, bound, shutdown).await;
        if let Some(status) = status {
            status.stop();
        }
        stop
    });
    // Sessions still running are cut, as when Postfix's sink exits; their
    // unfinished dump files are removed as their tasks are dropped, and
    // their counts are flushed.
    drop(runtime);
    // --verify's end: the source's report is read before the last
    // --stats-json write, so the file has the loss too.
    let verified = match (&cfg.verify, stats.verify(), &result) {
        (Some(setup), Some(verify), Ok(_)) => Some(verify_end(prog, started, setup, verify)),
        _ => None,
    };
    let status = match verified {
        Some(Ok(status)) => Ok(status),
        Some(Err(e)) => Err(e),
        None => Ok(0),
    };
    let Some(report) = report.filter(|_| report_works) else {
        return result.and(status);
    };
    let (trigger, error) = match &result {
        Ok(Stop::MaxMessages) => (Trigger::MaxMessages, None),
        Ok(Stop::MaxSessions) => (Trigger::MaxSessions, None),
        Ok(Stop::Shutdown(signal)) => (*signal, None),
        Err(e) => (Trigger::Error, Some(e.to_string())),
    };
    let written = report.write(trigger, error.as_deref());
    match (result, written) {
        (Err(e), _) => Err(e),
        (Ok(_), Err(e)) => Err(report_error(&report, &e)),
        (Ok(_), Ok(())) => status,
    }
}

/// Reads `--source-report`, prints the verification lines, and checks
/// `--expect`: the exit status, or the report's error.
fn verify_end(
    prog: &str,
    started: std::time::SystemTime,
    setup: &smtp_sink::config::VerifySetup,
    verify: &smtp_sink::verify::Verify,
) -> Result<u8, Error> {
    let source = setup.source_report.as_ref().map(|path| {
        smtp_sink::verify::SourceReport::wait_for(path, started, SOURCE_REPORT_PATIENCE)
            .map(|r| verify.set_source(r))
            .map_err(|e| Error::Fatal(format!("--source-report {}: {e}", path.display())))
    });
    for line in verify.summary() {
        eprintln!("{prog}: {line}");
    }
    if let Some(Err(e)) = source {
        return Err(e);
    }
    match setup.expect {
        Some(n) if verify.unique() < n => {
            eprintln!(
                "{prog}: verify: expected {n} unique messages, {} arrived",
                verify.unique()
            );
            Ok(EXPECT_NOT_MET)
        }
        _ => Ok(0),
    }
}

fn report_error(report: &StatsJson, e: &std::io::Error) -> Error {
    Error::Fatal(format!(
        "--stats-json {}: {}",
        report.path().display(),
        smtp_sink::listener::strerror(e)
    ))
}

/// The signals the sink handles.
struct Signals {
    /// One value per SIGINT, SIGTERM (and SIGHUP with --stats-json): the
    /// first stops the sink (or starts --drain), a second ends a drain.
    shutdown: tokio::sync::mpsc::Receiver<Trigger>,
    /// SIGUSR1, with --stats-json.
    usr1: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Installs the handlers (inside the runtime). Without --stats-json,
    /// SIGHUP and SIGUSR1 keep their default action (they end the
    /// process), as before.
    fn install(stats_json: bool) -> Result<Signals, Error> {
        use tokio::signal::unix::{signal, SignalKind};
        let install = |kind| signal(kind).map_err(|e| Error::Fatal(format!("signal: {e}")));
        let mut int = install(SignalKind::interrupt())?;
        let mut term = install(SignalKind::terminate())?;
        let mut hup = stats_json
            .then(|| install(SignalKind::hangup()))
            .transpose()?;
        let usr1 = stats_json
            .then(|| install(SignalKind::user_defined1()))
            .transpose()?;
        let (tx, shutdown) = tokio::sync::mpsc::channel(4);
        tokio::spawn(async move {
            loop {
                let hangup = async {
                    match &mut hup {
                        Some(hup) => hup.recv().await,
                        None => std::future::pending().await,
                    }
                };
                let signal = tokio::select! {
                    Some(()) = int.recv() => Trigger::Sigint,
                    Some(()) = term.recv() => Trigger::Sigterm,
                    Some(()) = hangup => Trigger::Sighup,
                    // The runtime is shutting down.
                    else => break,
                };
                if tx.send(signal).await.is_err() {
                    break;
                }
            }
        });
        Ok(Signals { shutdown, usr1 })
    }
}

/// Writes the file on each SIGUSR1, off the event loop's thread; the sink
/// goes on serving meanwhile.
async fn write_on_usr1(mut usr1: tokio::signal::unix::Signal, report: Arc<StatsJson>) {
    while usr1.recv().await.is_some() {
        let writer = report.clone();
        let written =
            tokio::task::spawn_blocking(move || writer.write(Trigger::Sigusr1, None)).await;
        if let Ok(Err(e)) = written {
            tracing::warn!("{}", report_error(&report, &e));
        }
    }
}
