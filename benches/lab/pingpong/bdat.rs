//! The one-round-trip conversation (`--chunking`), both sides, without I/O:
//! what our smtp-source and smtp-sink exchange with `--pipelining
//! --chunking` on the source and `--chunking` on the sink. The client
//! writes EHLO once, then per message MAIL, RCPT×r, `BDAT n LAST` and the n
//! bytes of content in one write; the server answers all of them in one
//! write. As in the DATA conversation, nothing is parsed beyond line ends,
//! a command's first byte and the BDAT size (which a server must read to
//! know where the content ends; the content itself is not scanned).

use crate::script::{DATA_OK, EHLO_CHUNKING, HELO_OK, MAIL_OK, OTHER_OK, QUIT_OK, RCPT_OK};

/// The server's side. Replies are queued in `out`; the caller writes them
/// when [`Server::flush_due`] says so: once every byte read so far is
/// answered, so a whole transaction costs one write however many reads
/// its content took (a pipelining client is still sending while a command
/// line or a chunk is incomplete, so holding the replies can never stall it).
#[derive(Default)]
pub(crate) struct Server {
    /// A command line split across reads (rare: the head of a write).
    line: Vec<u8>,
    /// Content bytes of the current BDAT chunk not read yet.
    remaining: usize,
    pub(crate) out: Vec<u8>,
}

impl Server {
    pub(crate) fn new() -> Self {
        Server {
            line: Vec::with_capacity(512),
            remaining: 0,
            out: Vec::with_capacity(512),
        }
    }

    /// Takes in what one read returned. True once QUIT is answered (the rest
    /// is ignored; the caller writes `out` and closes).
    pub(crate) fn feed(&mut self, mut input: &[u8]) -> bool {
        while !input.is_empty() {
            if self.remaining > 0 {
                let take = self.remaining.min(input.len());
                self.remaining -= take;
                input = &input[take..];
                if self.remaining == 0 {
                    self.out.extend_from_slice(DATA_OK);
                }
                continue;
            }
            let Some(end) = memchr::memchr(b'\n', input) else {
                self.line.extend_from_slice(input);
                return false;
            };
            let quit = if self.line.is_empty() {
                self.command(&input[..=end])
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(&input[..=end]);
                let quit = self.command(&line);
                line.clear();
                self.line = line;
                quit
            };
            if quit {
                return true;
            }
            input = &input[end + 1..];
        }
        false
    }

    fn command(&mut self, line: &[u8]) -> bool {
        let reply = match line.first() {
            Some(b'E') => EHLO_CHUNKING,
            Some(b'H' | b'L') => HELO_OK,
            Some(b'M') => MAIL_OK,
            Some(b'R') => RCPT_OK,
            Some(b'B') => {
                // "BDAT <size>[ LAST]": the size ends where the digits do.
                let size = line
                    .get(5..)
                    .unwrap_or_default()
                    .iter()
                    .take_while(|b| b.is_ascii_digit())
                    .fold(0usize, |n, b| n * 10 + usize::from(b - b'0'));
                if size > 0 {
                    self.remaining = size;
                    return false;
                }
                DATA_OK
            }
            Some(b'Q') => {
                self.out.extend_from_slice(QUIT_OK);
                return true;
            }
            _ => OTHER_OK,
        };
        self.out.extend_from_slice(reply);
        false
    }

    /// Replies are queued and nothing read is left half-answered.
    pub(crate) fn flush_due(&self) -> bool {
        !self.out.is_empty() && self.remaining == 0 && self.line.is_empty()
    }
}

/// The client's side: how many whole replies `buf` holds. A reply ends with
/// a line whose fourth byte is a space ("250 ...", and the EHLO list's last
/// line "250 "); continuation lines have a hyphen there.
pub(crate) fn replies_in(buf: &[u8]) -> usize {
    let mut count = 0;
    let mut start = 0;
    for end in memchr::memchr_iter(b'\n', buf) {
        if buf.get(start + 3) == Some(&b' ') {
            count += 1;
        }
        start = end + 1;
    }
    count
}
