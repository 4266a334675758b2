//! Process-wide counters: `-c` output, `-n` and `-M` limits.
//!
//! The counters are atomics touched once per session or message, and only
//! when an option needs them, so the per-message path takes no lock. The
//! `-c` line is printed under the stdout lock, as Postfix prints it: one
//! `sess=%d quit=%d mesg=%d\r` per closed session and per message. With
//! the TLS options the line goes on with ` tlsfull=%d tlsresumed=%d
//! tlsfail=%d`, with `--auth-users` with ` authok=%d authfail=%d`; without
//! them it is Postfix's, byte for byte.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

/// What a finished message means for the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageOutcome {
    /// Carry on.
    Continue,
    /// `-M` reached: exit after this message's reply is sent.
    Exit,
}

/// Counters shared by every session.
pub struct Stats {
    show_count: bool,
    max_messages: u64,
    max_sessions: u64,
    sessions: AtomicU64,
    quits: AtomicU64,
    messages: AtomicU64,
    /// Print the TLS counters (`--starttls`, `--tls-on-connect`).
    show_tls: bool,
    /// Print the AUTH counters (`--auth-users`).
    show_auth: bool,
    tls_full: AtomicU64,
    tls_resumed: AtomicU64,
    tls_failed: AtomicU64,
    auth_ok: AtomicU64,
    auth_failed: AtomicU64,
    out: Mutex<Box<dyn Write + Send>>,
}

impl std::fmt::Debug for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stats")
            .field("sessions", &self.sessions)
            .field("quits", &self.quits)
            .field("messages", &self.messages)
            .finish_non_exhaustive()
    }
}

impl Stats {
    /// Counters printing to stdout.
    pub fn new(show_count: bool, max_messages: u64, max_sessions: u64) -> Stats {
        Self::with_output(
            show_count,
            max_messages,
            max_sessions,
            Box::new(std::io::stdout()),
        )
    }

    /// Counters printing `-c` lines to `out` (tests capture them).
    pub fn with_output(
        show_count: bool,
        max_messages: u64,
        max_sessions: u64,
        out: Box<dyn Write + Send>,
    ) -> Stats {
        Stats {
            show_count,
            max_messages,
            max_sessions,
            sessions: AtomicU64::new(0),
            quits: AtomicU64::new(0),
            messages: AtomicU64::new(0),
            show_tls: false,
            show_auth: false,
            tls_full: AtomicU64::new(0),
            tls_resumed: AtomicU64::new(0),
            tls_failed: AtomicU64::new(0),
            auth_ok: AtomicU64::new(0),
            auth_failed: AtomicU64::new(0),
            out: Mutex::new(out),
        }
    }

    /// Adds the TLS and the AUTH counters to the `-c` line.
    #[must_use]
    pub fn with_fields(mut self, tls: bool, auth: bool) -> Stats {
        self.show_tls = tls;
        self.show_auth = auth;
        self
    }

    fn print(&self) {
        // Read the counters under the lock, so that lines come out in
        // order even when several threads finish sessions at once.
        let mut out = self
            .out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
        let mut line = format!(
            "sess={} quit={} mesg={}",
            load(&self.sessions),
            load(&self.quits),
            load(&self.messages)
        );
        if self.show_tls {
            line.push_str(&format!(
                " tlsfull={} tlsresumed={} tlsfail={}",
                load(&self.tls_full),
                load(&self.tls_resumed),
                load(&self.tls_failed)
            ));
        }
        if self.show_auth {
            line.push_str(&format!(
                " authok={} authfail={}",
                load(&self.auth_ok),
                load(&self.auth_failed)
            ));
        }
        line.push('\r');
        // A closed stdout must not take the sink down (Postfix ignores it too).
        let _ = out.write_all(line.as_bytes());
        let _ = out.flush();
    }

    /// A QUIT was answered (counted only with `-c`, as in Postfix).
    pub fn quit(&self) {
        if self.show_count {
            self.quits.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A TLS handshake finished: `Some(resumed)`, or `None` when it failed.
    /// Counted only with `-c`; printed with the next line.
    pub fn tls_handshake(&self, outcome: Option<bool>) {
        if !self.show_count {
            return;
        }
        let counter = match outcome {
            Some(false) => &self.tls_full,
            Some(true) => &self.tls_resumed,
            None => &self.tls_failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// An AUTH exchange ended with 235 (`true`) or 535 (`false`).
    pub fn auth(&self, ok: bool) {
        if self.show_count {
            let counter = if ok { &self.auth_ok } else { &self.auth_failed };
            counter.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A message reached its end of data.
    pub fn message(&self) -> MessageOutcome {
        if !self.show_count && self.max_messages == 0 {
            return MessageOutcome::Continue;
        }
        let n = self.messages.fetch_add(1, Ordering::Relaxed) + 1;
        if self.show_count {
            self.print();
        }
        if self.max_messages > 0 && n >= self.max_messages {
            MessageOutcome::Exit
        } else {
            MessageOutcome::Continue
        }
    }

    /// A session closed. Returns true when `-n` is reached.
    pub fn session_closed(&self) -> bool {
        if !self.show_count && self.max_sessions == 0 {
            return false;
        }
        let n = self.sessions.fetch_add(1, Ordering::Relaxed) + 1;
        if self.show_count {
            self.print();
        }
        self.max_sessions > 0 && n >= self.max_sessions
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn counter_lines_are_postfix_format() {
        let out = Shared::default();
        let s = Stats::with_output(true, 0, 2, Box::new(out.clone()));
        assert_eq!(s.message(), MessageOutcome::Continue);
        s.quit();
        assert!(!s.session_closed());
        assert!(s.session_closed());
        let text = out.0.lock().expect("lock").clone();
        assert_eq!(
            text,
            b"sess=0 quit=0 mesg=1\rsess=1 quit=1 mesg=1\rsess=2 quit=1 mesg=1\r"
        );
    }

    #[test]
    fn tls_and_auth_fields_follow_in_the_same_style() {
        let out = Shared::default();
        let s = Stats::with_output(true, 0, 0, Box::new(out.clone())).with_fields(true, true);
        s.tls_handshake(Some(false));
        s.tls_handshake(Some(false));
        s.tls_handshake(Some(true));
        s.tls_handshake(None);
        s.auth(true);
        s.auth(false);
        s.auth(false);
        assert!(!s.session_closed());
        let out2 = Shared::default();
        let s = Stats::with_output(true, 0, 0, Box::new(out2.clone())).with_fields(false, true);
        s.tls_handshake(None);
        s.auth(true);
        assert!(!s.session_closed());
        assert_eq!(
            out.0.lock().expect("lock").clone(),
            b"sess=1 quit=0 mesg=0 tlsfull=2 tlsresumed=1 tlsfail=1 authok=1 authfail=2\r"
        );
        assert_eq!(
            out2.0.lock().expect("lock").clone(),
            b"sess=1 quit=0 mesg=0 authok=1 authfail=0\r"
        );
    }

    #[test]
    fn limits_work_without_c() {
        let out = Shared::default();
        let s = Stats::with_output(false, 2, 1, Box::new(out.clone()));
        assert_eq!(s.message(), MessageOutcome::Continue);
        assert_eq!(s.message(), MessageOutcome::Exit);
        assert!(s.session_closed());
        assert!(out.0.lock().expect("lock").is_empty());
    }
}
