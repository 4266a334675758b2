//! Everything the program writes while it runs: Postfix-style diagnostics
//! on stderr (`<argv0>: warning: ...`, `-v` lines), the `--transcript`
//! lines on stderr, and the `-c` counter on stdout.

use std::{
    io::Write as _,
    sync::atomic::{AtomicU64, Ordering},
};

/// Shared by all workers; each call is one locked write.
#[derive(Debug)]
pub struct Output {
    argv0: String,
    verbose: bool,
    counter: bool,
    sent: AtomicU64,
    transcript: bool,
    /// Transcript lines start with `[N] ` (more than one session).
    numbered: bool,
}

impl Output {
    /// Diagnostics as `argv0`; `-v` and `-c` as given.
    pub fn new(argv0: &str, verbose: bool, counter: bool) -> Self {
        Self {
            argv0: argv0.to_owned(),
            verbose,
            counter,
            sent: AtomicU64::new(0),
            transcript: false,
            numbered: false,
        }
    }

    /// With `--transcript`: [`Output::transcript_line`] writes; `numbered`
    /// prefixes each line with its session's number.
    #[must_use]
    pub fn with_transcript(mut self, on: bool, numbered: bool) -> Self {
        self.transcript = on;
        self.numbered = numbered;
        self
    }

    /// Whether `-v` is on.
    pub fn verbose(&self) -> bool {
        self.verbose
    }

    /// Whether `--transcript` is on.
    pub fn transcript(&self) -> bool {
        self.transcript
    }

    /// One transcript line on stderr: `[session] ` when numbered, `mark`
    /// (`->`, `<-` or `==`), a space and `text`.
    pub fn transcript_line(&self, session: u32, mark: &str, text: &[u8]) {
        if !self.transcript {
            return;
        }
        let mut buf = Vec::with_capacity(text.len() + mark.len() + 16);
        if self.numbered {
            buf.push(b'[');
            buf.extend_from_slice(session.to_string().as_bytes());
            buf.extend_from_slice(b"] ");
        }
        buf.extend_from_slice(mark.as_bytes());
        buf.push(b' ');
        buf.extend_from_slice(text);
        buf.push(b'\n');
        // One write, so lines of concurrent sessions stay whole.
        let _ = std::io::stderr().lock().write_all(&buf);
    }

    /// `<argv0>: warning: text`.
    pub fn warning(&self, text: &str) {
        self.line("warning: ", text.as_bytes());
    }

    /// `<argv0>: text` (Postfix's msg_info, used by `-v`).
    pub fn info(&self, text: &[u8]) {
        self.line("", text);
    }

    fn line(&self, level: &str, text: &[u8]) {
        let mut buf = Vec::with_capacity(self.argv0.len() + level.len() + text.len() + 3);
        buf.extend_from_slice(self.argv0.as_bytes());
        buf.extend_from_slice(b": ");
        buf.extend_from_slice(level.as_bytes());
        buf.extend_from_slice(text);
        buf.push(b'\n');
        // stderr is unbuffered; one write keeps lines whole across workers.
        let _ = std::io::stderr().lock().write_all(&buf);
    }

    /// A message was sent (its "." is out): with `-c`, print `N\r`.
    pub fn message_sent(&self) {
        if !self.counter {
            return;
        }
        let mut out = std::io::stdout().lock();
        // Counting under the lock keeps the printed numbers in order.
        let n = self.sent.fetch_add(1, Ordering::Relaxed) + 1;
        let _ = write!(out, "{n}\r");
        let _ = out.flush();
    }

    /// The end of a normal run: with `-c`, the final newline.
    pub fn finish(&self) {
        if self.counter {
            let mut out = std::io::stdout().lock();
            let _ = out.write_all(b"\n");
            let _ = out.flush();
        }
    }
}
