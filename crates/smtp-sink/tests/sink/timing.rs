//! Delays, timeouts and the concurrency cap, measured with generous
//! tolerances (the machine is small and shared).

use std::time::{Duration, Instant};

use crate::common::*;

const GREET: &[u8] = b"220 smtp-sink ESMTP\r\n";
const LONG: Duration = Duration::from_secs(10);

fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

#[test]
fn command_delays_greeting_helo_and_data() {
    let sink = start(OURS, &["-W", "connect:1", "-W", "helo:1", "-w", "2"]);
    let t = Instant::now();
    let mut c = Client::connect(&sink.addr);
    let (g, _) = c.read_until(|b| b.ends_with(b"\r\n"), LONG);
    assert_eq!(g, GREET);
    assert!((0.9..4.0).contains(&secs(t)), "greeting after {}", secs(t));
    let t = Instant::now();
    c.send(b"HELO x\r\n");
    let (r, _) = c.read_until(|b| b.ends_with(b"\r\n"), LONG);
    assert_eq!(r, b"250 smtp-sink\r\n");
    assert!(
        (0.9..4.0).contains(&secs(t)),
        "HELO reply after {}",
        secs(t)
    );
    c.send(b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\n");
    let _ = c.read_until(|b| b.ends_with(b"2.1.5 Ok\r\n"), LONG);
    let t = Instant::now();
    c.send(b"DATA\r\n");
    let (r, _) = c.read_until(|b| b.ends_with(b"\r\n"), LONG);
    assert_eq!(r, b"354 End data with <CR><LF>.<CR><LF>\r\n");
    assert!((1.9..5.0).contains(&secs(t)), "354 after {}", secs(t));
}

#[test]
fn pipelined_commands_behind_a_delay_are_answered_in_order() {
    let sink = start(OURS, &["-W", "rcpt:1"]);
    let mut c = Client::connect(&sink.addr);
    let _ = c.read_until(|b| b.ends_with(b"\r\n"), LONG);
    let t = Instant::now();
    c.send(b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nRCPT TO:<c>\r\nNOOP\r\n");
    let (r, _) = c.read_until(|b| b.ends_with(b"250 2.0.0 Ok\r\n"), LONG);
    assert_eq!(
        show(&r),
        show(b"250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok\r\n")
    );
    assert!((1.9..5.0).contains(&secs(t)), "took {}", secs(t));
}

#[test]
fn a_delay_longer_than_the_idle_timeout_does_not_end_the_session() {
    // Postfix's sink crashes here (exit 139).
    let mut sink = start(OURS, &["-W", "helo:2", "-t", "1"]);
    let mut c = Client::connect(&sink.addr);
    let _ = c.read_until(|b| b.ends_with(b"\r\n"), LONG);
    c.send(b"HELO x\r\n");
    let (r, closed) = c.read_until(|b| b.ends_with(b"\r\n"), LONG);
    assert_eq!(r, b"250 smtp-sink\r\n");
    assert!(!closed);
    c.send(b"NOOP\r\n");
    let (r, _) = c.read_until(|b| b.ends_with(b"\r\n"), LONG);
    assert_eq!(r, b"250 2.0.0 Ok\r\n");
    // Then the idle timeout closes the session silently.
    let t = Instant::now();
    let (r, closed) = c.read_until(|_| false, LONG);
    assert!(closed && r.is_empty(), "{}", show(&r));
    assert!((0.8..4.0).contains(&secs(t)), "closed after {}", secs(t));
    let out = stop(&mut sink);
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning: read timeout"));
    assert_eq!(out.status.signal_or_code(), "killed");
}

#[test]
fn abort_after_354() {
    let sink = start(OURS, &["-A", "1"]);
    let mut c = Client::connect(&sink.addr);
    let _ = c.read_until(|b| b.ends_with(b"\r\n"), LONG);
    c.send(b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n");
    let (r, _) = c.read_until(|b| b.ends_with(b"<CR><LF>\r\n"), LONG);
    assert!(r.ends_with(b"354 End data with <CR><LF>.<CR><LF>\r\n"));
    let t = Instant::now();
    let (r, closed) = c.read_until(|_| false, LONG);
    assert_eq!(r, b"550 This violates SMTP\r\n");
    assert!(closed);
    assert!((0.9..4.0).contains(&secs(t)), "550 after {}", secs(t));
}

#[test]
fn data_read_stall_after_354() {
    let sink = start(OURS, &["-H", "1"]);
    let mut c = Client::connect(&sink.addr);
    let _ = c.read_until(|b| b.ends_with(b"\r\n"), LONG);
    c.send(b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n");
    let _ = c.read_until(|b| b.ends_with(b"<CR><LF>\r\n"), LONG);
    let t = Instant::now();
    c.send(b"x\r\n.\r\n");
    let (r, _) = c.read_until(|b| b.ends_with(b"\r\n"), LONG);
    assert_eq!(r, b"250 2.0.0 Ok\r\n");
    assert!((0.8..4.0).contains(&secs(t)), "250 after {}", secs(t));
}

#[test]
fn concurrency_cap_leaves_clients_in_the_backlog() {
    let sink = start(OURS, &["-m", "1"]);
    let mut first = Client::connect(&sink.addr);
    let (g, _) = first.read_until(|b| b.ends_with(b"\r\n"), LONG);
    assert_eq!(g, GREET);
    let mut second = Client::connect(&sink.addr);
    let (g2, closed) = second.read_quiet(Duration::from_millis(500));
    assert!(
        g2.is_empty() && !closed,
        "second client was served: {}",
        show(&g2)
    );
    first.send(b"QUIT\r\n");
    let _ = first.read_until(|_| false, LONG);
    let (g2, _) = second.read_until(|b| b.ends_with(b"\r\n"), LONG);
    assert_eq!(g2, GREET);
}

trait StatusText {
    fn signal_or_code(&self) -> String;
}

impl StatusText for std::process::ExitStatus {
    fn signal_or_code(&self) -> String {
        use std::os::unix::process::ExitStatusExt;
        match (self.code(), self.signal()) {
            (_, Some(9)) => "killed".to_owned(),
            (Some(c), _) => format!("exit {c}"),
            (None, Some(s)) => format!("signal {s}"),
            (None, None) => "unknown".to_owned(),
        }
    }
}
