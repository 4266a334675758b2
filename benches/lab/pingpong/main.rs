//! The ceiling of the performance lab: an SMTP-shaped ping-pong.
//!
//! A minimal client and a minimal server that exchange exactly the bytes and
//! round trips of one lab point's conversation (greeting, HELO, MAIL,
//! RCPT×r, DATA, headers+body+".", QUIT, a new connection per message unless
//! `-d`) with no parsing beyond finding line and end-of-data terminators.
//! A real source and sink do strictly more work for the same exchange, so
//! every lab figure is also shown as a fraction of this one (the faster of
//! the two flavours below, at each point).
//!
//! It also hosts the lab's small tools: `hold` opens many idle sessions
//! (after EHLO) and keeps them, `rtt` times a new client's round trips while
//! they are held, and `spawn` runs a program and reports its own rusage.
//!
//! Two flavours: blocking `std::net` with one thread per session (the
//! default: with no pipelining every step is one write and one blocking
//! read, the fewest syscalls a conversation can cost), and one tokio
//! current_thread loop per process (`--flavor tokio`, see `event.rs`), which
//! wins when many sessions are ready at once. The lab runs both.
//!
//! Two conversations: Postfix's (the default: HELO, then MAIL, RCPT×r, DATA
//! and the content each one round trip), and with `--chunking` on both
//! sides the one-round-trip conversation of our pair with `--pipelining
//! --chunking` (EHLO, then per message MAIL+RCPT×r+`BDAT n LAST`+content
//! in one write, answered by one write; see `bdat.rs`).
//!
//! With `--starttls` on both sides (tokio flavour, TCP only) the
//! conversation is our pair's with `--starttls`: EHLO, STARTTLS and its 220
//! in the clear, a rustls handshake (smtp-net's configurations: ring, a
//! self-signed certificate, no verification), then EHLO again and Postfix's
//! transaction inside TLS; the client's `--no-tls-resume` makes every
//! handshake a full one (see `tls.rs`).
//!
//! Usage (the lab harness `benches/lab/run.py` drives it):
//!   pingpong server (--tcp ADDR | --unix PATH) [--flavor threads|tokio] [--threads N]
//!                   [--chunking | --starttls]
//!   pingpong client (--tcp ADDR | --unix PATH) [--flavor threads|tokio]
//!                   -s N -m M [-d] [-r R] [-l L] [--helo NAME] [--chunking]
//!                   [--starttls [--no-tls-resume]]
//!   pingpong hold   --tcp ADDR --count N [--bind IP]
//!   pingpong rtt    (--tcp ADDR | --unix PATH) [-n N]
//!   pingpong spawn  --report FILE -- PROGRAM [ARGS...]
//! Run with no mode (as `cargo bench` does) it runs a short demo of itself.

mod args;
mod bdat;
mod client;
mod event;
mod hold;
mod rtt;
mod script;
mod server;
mod spawn;
mod stream;
mod tls;

use std::{process::ExitCode, time::Duration};

use args::{Args, Flavor};
use stream::Endpoint;

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    let Some(mode) = argv.first().filter(|m| !m.starts_with('-')).cloned() else {
        // `cargo bench` runs bench targets with `--bench`: show what the
        // ceiling is on this machine instead of failing.
        return report(demo());
    };
    if mode == "spawn" {
        return match spawn::run(&argv[1..]) {
            Ok(code) => ExitCode::from(u8::try_from(code).unwrap_or(1)),
            Err(e) => report(Err(e)),
        };
    }
    let args = match Args::parse(&argv[1..]) {
        Ok(args) => args,
        Err(e) => {
            eprintln!("pingpong: {e}");
            return ExitCode::from(2);
        }
    };
    let result = match mode.as_str() {
        "server" => args.endpoint().and_then(|ep| match args.flavor {
            Flavor::Threads if args.starttls => Err(TLS_TOKIO_ONLY.to_owned()),
            Flavor::Threads => server::run(&ep, args.threads, args.chunking),
            Flavor::Tokio => event::serve(&ep, args.chunking, args.starttls),
        }),
        "client" => args.endpoint().and_then(|ep| {
            let outcome = match args.flavor {
                Flavor::Threads if args.starttls => return Err(TLS_TOKIO_ONLY.to_owned()),
                Flavor::Threads => client::run(&ep, &args.client_config())?,
                Flavor::Tokio => event::client(&ep, &args.client_config())?,
            };
            println!("{}", outcome.to_json());
            Ok(())
        }),
        "hold" => hold::run(&args),
        "rtt" => args.endpoint().and_then(|ep| {
            let outcome = rtt::run(&ep, args.rounds)?;
            println!("{}", outcome.to_json());
            Ok(())
        }),
        other => Err(format!(
            "unknown mode {other:?} (server, client, hold, rtt)"
        )),
    };
    report(result)
}

const TLS_TOKIO_ONLY: &str = "--starttls: only with --flavor tokio";

fn report(result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pingpong: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A two-second self-run at `-s 10 -d` on loopback TCP.
fn demo() -> Result<(), String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let addr = listener
        .local_addr()
        .map_err(|e| format!("local_addr: {e}"))?;
    server::spawn_pool(listener.into(), 10, false).map_err(|e| format!("server: {e}"))?;
    let config = client::Config {
        sessions: 10,
        messages: 20_000,
        keep_open: true,
        ..client::Config::default()
    };
    let endpoint = Endpoint::Tcp(addr.to_string());
    let outcome = client::run(&endpoint, &config)?;
    println!("ceiling demo, -s 10 -d over TCP: {}", outcome.to_json());
    std::thread::sleep(Duration::from_millis(10));
    Ok(())
}
