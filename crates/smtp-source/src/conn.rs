//! One connection's I/O: reads into a reused buffer and whole writes,
//! every one under the I/O timeout (Postfix: 300 s on each read or write)
//! and, with `--session-timeout`, the connection's deadline too.
//! Generic over the stream, so TCP, unix sockets and TLS share it.

use std::{future::Future, io::IoSlice, time::Duration};

use bytes::BytesMut;
use smtp_net::Transport;
use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    time::Instant,
};

/// The step did not finish in time (see [`within`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Elapsed;

/// Runs one I/O step (a read, a write, a connect, a TLS handshake) until it
/// ends, `timeout` passes, or `deadline` (the session's, if any) comes,
/// whichever is first. A deadline already past fails the step at once,
/// even one that could finish without waiting: the session is over.
///
/// # Errors
/// [`Elapsed`] when the step did not finish in time.
pub async fn within<F: Future>(
    timeout: Duration,
    deadline: Option<Instant>,
    step: F,
) -> Result<F::Output, Elapsed> {
    match deadline {
        // Postfix's per-step timeout, exactly as before.
        None => tokio::time::timeout(timeout, step)
            .await
            .map_err(|_| Elapsed),
        Some(deadline) => {
            let now = Instant::now();
            if now >= deadline {
                return Err(Elapsed);
            }
            let until = now
                .checked_add(timeout)
                .map_or(deadline, |t| t.min(deadline));
            tokio::time::timeout_at(until, step)
                .await
                .map_err(|_| Elapsed)
        }
    }
}

/// How an I/O step failed; the worker names the phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoFail {
    /// Did not finish in time.
    Timeout,
    /// EOF in the middle of a write, or any socket error.
    Lost,
}

/// The most slices handed to one `writev`: a pipelined group with its
/// content needs a handful; a message in many BDAT chunks is written in
/// several calls. Small, because the array is set up on every write.
const MAX_SLICES: usize = 8;

/// A connected stream with its read buffer.
#[derive(Debug)]
pub struct Conn<S> {
    stream: S,
    /// Bytes read and not yet parsed.
    pub rbuf: BytesMut,
    timeout: Duration,
    /// The connection's end (`--session-timeout`), if it has one.
    deadline: Option<Instant>,
}

impl<S: Transport> Conn<S> {
    /// Wraps a connected stream.
    pub fn new(stream: S, timeout: Duration) -> Self {
        Self {
            stream,
            rbuf: BytesMut::with_capacity(4096),
            timeout,
            deadline: None,
        }
    }

    /// Every read and write also ends at `deadline`: the session's limit
    /// (`--session-timeout`), counted from its connect.
    #[must_use]
    pub fn with_deadline(mut self, deadline: Option<Instant>) -> Self {
        self.deadline = deadline;
        self
    }

    /// The stream and the bytes read but not parsed, to wrap the stream
    /// (STARTTLS).
    pub fn into_parts(self) -> (S, BytesMut) {
        (self.stream, self.rbuf)
    }

    /// Reads what is available into `rbuf`; `Ok(0)` is end of file.
    pub async fn read(&mut self) -> Result<usize, IoFail> {
        self.read_by(None).await
    }

    /// [`read`](Self::read), which also ends at `until` (the reply's
    /// limit, `--reply-timeout`) when that comes before the connection's
    /// deadline.
    pub async fn read_by(&mut self, until: Option<Instant>) -> Result<usize, IoFail> {
        if self.rbuf.capacity() - self.rbuf.len() < 1024 {
            self.rbuf.reserve(4096);
        }
        let deadline = match (self.deadline, until) {
            (Some(d), Some(u)) => Some(d.min(u)),
            (d, u) => d.or(u),
        };
        let read = self.stream.read_buf(&mut self.rbuf);
        match within(self.timeout, deadline, read).await {
            Err(_) => Err(IoFail::Timeout),
            Ok(Err(_)) => Err(IoFail::Lost),
            Ok(Ok(n)) => Ok(n),
        }
    }

    /// Writes `parts` in order with vectored writes (one `writev` when the
    /// socket takes it all), so the shared body is never copied. The
    /// timeout applies to each write, as Postfix's does, so a large message
    /// over a slow path fails only if the peer stops reading.
    pub async fn write_parts(&mut self, parts: &mut [&[u8]]) -> Result<(), IoFail> {
        if let [one] = parts {
            // One command (Postfix's conversation): a plain write.
            return self.write_one(one).await;
        }
        let mut at = 0;
        loop {
            while at < parts.len() && parts[at].is_empty() {
                at += 1;
            }
            if at == parts.len() {
                return Ok(());
            }
            let mut slices = [IoSlice::new(&[]); MAX_SLICES];
            let n = (parts.len() - at).min(MAX_SLICES);
            for (slice, part) in slices.iter_mut().zip(&parts[at..at + n]) {
                *slice = IoSlice::new(part);
            }
            let write = self.stream.write_vectored(&slices[..n]);
            let mut written = match within(self.timeout, self.deadline, write).await {
                Err(_) => return Err(IoFail::Timeout),
                Ok(Ok(0) | Err(_)) => return Err(IoFail::Lost),
                Ok(Ok(n)) => n,
            };
            while written > 0 {
                let part = &mut parts[at];
                if written < part.len() {
                    *part = &part[written..];
                    break;
                }
                written -= part.len();
                at += 1;
            }
        }
    }
}

impl<S: Transport> Conn<S> {
    async fn write_one(&mut self, mut buf: &[u8]) -> Result<(), IoFail> {
        while !buf.is_empty() {
            match within(self.timeout, self.deadline, self.stream.write(buf)).await {
                Err(_) => return Err(IoFail::Timeout),
                Ok(Ok(0) | Err(_)) => return Err(IoFail::Lost),
                Ok(Ok(n)) => buf = &buf[n..],
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Many parts, more than one writev takes, and a reader slower than
    /// the writer: every byte arrives, in order.
    #[tokio::test]
    async fn parts_arrive_whole_and_in_order() {
        let (a, mut b) = tokio::net::UnixStream::pair().unwrap();
        let mut conn = Conn::new(smtp_net::Stream::Unix(a), Duration::from_secs(30));
        let big = vec![b'x'; 300_000];
        let pieces: Vec<Vec<u8>> = (0..100u8).map(|i| vec![i; usize::from(i) % 7]).collect();
        let mut parts: Vec<&[u8]> = pieces.iter().map(Vec::as_slice).collect();
        parts.insert(50, &big);
        let want: Vec<u8> = parts.concat();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            b.read_to_end(&mut got).await.unwrap();
            got
        });
        conn.write_parts(&mut parts).await.unwrap();
        drop(conn);
        assert_eq!(reader.await.unwrap(), want);
    }

    /// The deadline ends a read that the per-read timeout would let wait,
    /// and a read after it fails at once even when a reply is waiting.
    #[tokio::test]
    async fn deadline_bounds_every_step() {
        let (a, mut b) = tokio::net::UnixStream::pair().unwrap();
        let start = Instant::now();
        let mut conn = Conn::new(smtp_net::Stream::Unix(a), Duration::from_secs(30))
            .with_deadline(Some(start + Duration::from_millis(200)));
        assert_eq!(conn.read().await, Err(IoFail::Timeout));
        let waited = start.elapsed();
        assert!(waited >= Duration::from_millis(200), "{waited:?}");
        assert!(waited < Duration::from_secs(10), "{waited:?}");
        b.write_all(b"220 x\r\n").await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(conn.read().await, Err(IoFail::Timeout));
        assert_eq!(
            conn.write_parts(&mut [&b"QUIT\r\n"[..]]).await,
            Err(IoFail::Timeout)
        );
        // Without a deadline the same read succeeds.
        let mut conn = conn.into_parts().0;
        let mut buf = [0u8; 16];
        let n = tokio::io::AsyncReadExt::read(&mut conn, &mut buf)
            .await
            .unwrap();
        assert_eq!(&buf[..n], b"220 x\r\n");
    }
}
