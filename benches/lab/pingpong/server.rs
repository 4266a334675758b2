//! The ping-pong server: a pool of threads, each accepting one connection at
//! a time and answering it with Postfix smtp-sink's reply bytes. It looks at
//! nothing but line ends, the end-of-data mark and a command's first byte.

use std::{io::Write, thread};

use crate::{
    script::{DATA_GO, DATA_OK, GREETING, HELO_OK, MAIL_OK, OTHER_OK, QUIT_OK, RCPT_OK},
    stream::{read_line, Endpoint, Listener, Stream},
};

/// Serves until killed.
pub(crate) fn run(endpoint: &Endpoint, threads: usize, chunking: bool) -> Result<(), String> {
    let listener = Listener::bind(endpoint).map_err(|e| format!("bind {endpoint:?}: {e}"))?;
    let handles = spawn_pool(listener, threads, chunking).map_err(|e| format!("threads: {e}"))?;
    for handle in handles {
        let _ = handle.join();
    }
    Ok(())
}

/// One accepting thread per expected concurrent session: blocking accept on a
/// shared listener wakes one thread per connection, with no hand-off.
pub(crate) fn spawn_pool(
    listener: Listener,
    threads: usize,
    chunking: bool,
) -> std::io::Result<Vec<thread::JoinHandle<()>>> {
    (0..threads.max(1))
        .map(|_| {
            let listener = listener.try_clone()?;
            thread::Builder::new()
                .stack_size(256 * 1024)
                .spawn(move || {
                    // One data buffer per thread, reused by every connection
                    // it serves: zeroing 64 KiB per connection would be a
                    // cost no real sink has to pay.
                    let mut chunk = vec![0u8; 64 * 1024];
                    loop {
                        match listener.accept() {
                            Ok(stream) => {
                                // A client that vanishes only ends its own session.
                                let _ = if chunking {
                                    serve_bdat(stream, &mut chunk)
                                } else {
                                    serve(stream, &mut chunk)
                                };
                            }
                            Err(e) => {
                                eprintln!("pingpong: accept: {e}");
                                thread::sleep(std::time::Duration::from_millis(10));
                            }
                        }
                    }
                })
        })
        .collect()
}

fn serve(mut stream: Stream, chunk: &mut [u8]) -> std::io::Result<()> {
    let mut line = Vec::with_capacity(512);
    stream.write_all(GREETING)?;
    loop {
        if !read_line(&mut stream, &mut line)? {
            return Ok(());
        }
        let reply = match line.first() {
            Some(b'H' | b'E' | b'L') => HELO_OK,
            Some(b'M') => MAIL_OK,
            Some(b'R') => RCPT_OK,
            Some(b'D') => {
                stream.write_all(DATA_GO)?;
                if !skip_data(&mut stream, chunk)? {
                    return Ok(());
                }
                DATA_OK
            }
            Some(b'Q') => {
                stream.write_all(QUIT_OK)?;
                return Ok(());
            }
            _ => OTHER_OK,
        };
        stream.write_all(reply)?;
    }
}

/// The one-round-trip conversation (`--chunking`): replies go out once
/// everything read is answered, so one write per transaction.
fn serve_bdat(mut stream: Stream, chunk: &mut [u8]) -> std::io::Result<()> {
    use std::io::Read;
    let mut conv = crate::bdat::Server::new();
    stream.write_all(GREETING)?;
    loop {
        let n = stream.read(chunk)?;
        if n == 0 {
            return Ok(());
        }
        let quit = conv.feed(&chunk[..n]);
        if quit || conv.flush_due() {
            stream.write_all(&conv.out)?;
            conv.out.clear();
        }
        if quit {
            return Ok(());
        }
    }
}

/// Reads message data up to CRLF "." CRLF, scanning every byte for it with
/// memchr's memmem, as any real sink must (it cannot know that the client
/// never pipelines). Four bytes are carried over so a mark split across reads
/// is still found.
fn skip_data(stream: &mut Stream, chunk: &mut [u8]) -> std::io::Result<bool> {
    use std::io::Read;
    let mut carry = EndFinder::default();
    loop {
        let n = stream.read(chunk)?;
        if n == 0 {
            return Ok(false);
        }
        if carry.feed(&chunk[..n]) {
            return Ok(true);
        }
    }
}

/// Finds CRLF "." CRLF in a stream of chunks.
#[derive(Default)]
pub(crate) struct EndFinder {
    tail: [u8; 4],
    have: usize,
}

impl EndFinder {
    const END: &'static [u8] = b"\r\n.\r\n";

    /// True once the mark has been seen (it ends this chunk: nobody pipelines).
    pub(crate) fn feed(&mut self, got: &[u8]) -> bool {
        // A mark straddling the previous chunk: look at its tail plus our head.
        let mut joint = [0u8; 8];
        let head = got.len().min(4);
        joint[..self.have].copy_from_slice(&self.tail[..self.have]);
        joint[self.have..self.have + head].copy_from_slice(&got[..head]);
        let found = memchr::memmem::find(&joint[..self.have + head], Self::END).is_some()
            || memchr::memmem::find(got, Self::END).is_some();
        let keep = got.len().min(4);
        if keep == 4 {
            self.tail.copy_from_slice(&got[got.len() - 4..]);
            self.have = 4;
        } else {
            let old = (4 - keep).min(self.have);
            self.tail.copy_within(self.have - old..self.have, 0);
            self.tail[old..old + keep].copy_from_slice(got);
            self.have = old + keep;
        }
        found
    }
}
