//! One connection's I/O: reads into a reused buffer and whole writes,
//! every one under the I/O timeout (Postfix: 300 s on each read or write).

use std::{io::IoSlice, time::Duration};

use bytes::BytesMut;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use crate::connect::Stream;

/// How an I/O step failed; the worker names the phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IoFail {
    /// Did not finish in time.
    Timeout,
    /// EOF in the middle of a write, or any socket error.
    Lost,
}

/// A connected stream with its read buffer.
#[derive(Debug)]
pub struct Conn {
    stream: Stream,
    /// Bytes read and not yet parsed.
    pub rbuf: BytesMut,
    timeout: Duration,
}

impl Conn {
    /// Wraps a connected stream.
    pub fn new(stream: Stream, timeout: Duration) -> Self {
        Self {
            stream,
            rbuf: BytesMut::with_capacity(4096),
            timeout,
        }
    }

    /// Reads what is available into `rbuf`; `Ok(0)` is end of file.
    pub async fn read(&mut self) -> Result<usize, IoFail> {
        if self.rbuf.capacity() - self.rbuf.len() < 1024 {
            self.rbuf.reserve(4096);
        }
        match tokio::time::timeout(self.timeout, self.stream.read_buf(&mut self.rbuf)).await {
            Err(_) => Err(IoFail::Timeout),
            Ok(Err(_)) => Err(IoFail::Lost),
            Ok(Ok(n)) => Ok(n),
        }
    }

    /// Writes all of `buf` (one command, normally one syscall).
    pub async fn write_all(&mut self, buf: &[u8]) -> Result<(), IoFail> {
        match tokio::time::timeout(self.timeout, self.stream.write_all(buf)).await {
            Err(_) => Err(IoFail::Timeout),
            Ok(Err(_)) => Err(IoFail::Lost),
            Ok(Ok(())) => Ok(()),
        }
    }

    /// Writes `head` then `body` with vectored writes (one writev when the
    /// socket takes it all), so the shared body is never copied. The
    /// timeout applies to each write, as Postfix's does, so a large message
    /// over a slow path fails only if the peer stops reading.
    pub async fn write_message(&mut self, head: &[u8], body: &[u8]) -> Result<(), IoFail> {
        write_two(&mut self.stream, head, body, self.timeout).await
    }
}

async fn write_two(
    stream: &mut Stream,
    head: &[u8],
    body: &[u8],
    timeout: Duration,
) -> Result<(), IoFail> {
    let (mut head, mut body) = (head, body);
    while !head.is_empty() || !body.is_empty() {
        let bufs = [IoSlice::new(head), IoSlice::new(body)];
        let n = match tokio::time::timeout(timeout, stream.write_vectored(&bufs)).await {
            Err(_) => return Err(IoFail::Timeout),
            Ok(Ok(0) | Err(_)) => return Err(IoFail::Lost),
            Ok(Ok(n)) => n,
        };
        let from_head = n.min(head.len());
        head = &head[from_head..];
        body = &body[n - from_head..];
    }
    Ok(())
}
