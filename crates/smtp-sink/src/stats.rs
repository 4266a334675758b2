//! Process-wide counters: `-c` output, `-n` and `-M` limits.
//!
//! The counters are atomics touched once per session or message, and only
//! when an option needs them, so the per-message path takes no lock. The
//! `-c` line is printed under the stdout lock, as Postfix prints it: one
//! `sess=%d quit=%d mesg=%d\r` per closed session and per message.

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
            out: Mutex::new(out),
        }
    }

    fn print(&self) {
        // Read the counters under the lock, so that lines come out in
        // order even when several threads finish sessions at once.
        let mut out = self
            .out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let line = format!(
            "sess={} quit={} mesg={}\r",
            self.sessions.load(Ordering::Relaxed),
            self.quits.load(Ordering::Relaxed),
            self.messages.load(Ordering::Relaxed)
        );
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
    fn limits_work_without_c() {
        let out = Shared::default();
        let s = Stats::with_output(false, 2, 1, Box::new(out.clone()));
        assert_eq!(s.message(), MessageOutcome::Continue);
        assert_eq!(s.message(), MessageOutcome::Exit);
        assert!(s.session_closed());
        assert!(out.0.lock().expect("lock").is_empty());
    }
}
