//! One byte stream over TCP or a unix socket, so the conversation code is
//! written once.

use std::{
    io::{self, Read, Write},
    net::{TcpListener, TcpStream},
    os::unix::net::{UnixListener, UnixStream},
    time::Duration,
};

/// Where the server listens and the client connects.
#[derive(Debug, Clone)]
pub(crate) enum Endpoint {
    Tcp(String),
    Unix(String),
}

/// No lab run waits longer than this for one read.
pub(crate) const IO_TIMEOUT: Duration = Duration::from_secs(60);

pub(crate) enum Stream {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Stream {
    pub(crate) fn connect(endpoint: &Endpoint) -> io::Result<Self> {
        let stream = match endpoint {
            Endpoint::Tcp(addr) => Stream::Tcp(TcpStream::connect(addr)?),
            Endpoint::Unix(path) => Stream::Unix(UnixStream::connect(path)?),
        };
        stream.tune()?;
        Ok(stream)
    }

    /// Read timeout against hangs; TCP_NODELAY so no write ever waits on an
    /// ACK (there is no pipelining, so it never costs an extra segment).
    pub(crate) fn tune(&self) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => {
                s.set_nodelay(true)?;
                s.set_read_timeout(Some(IO_TIMEOUT))
            }
            Stream::Unix(s) => s.set_read_timeout(Some(IO_TIMEOUT)),
        }
    }

    /// Closes the way Postfix's smtp-source does: SO_LINGER 0, so TCP sends
    /// an RST and leaves no TIME_WAIT behind.
    pub(crate) fn abort(self) {
        if let Stream::Tcp(s) = self {
            let sock = socket2::SockRef::from(&s);
            let _ = sock.set_linger(Some(Duration::ZERO));
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Unix(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Unix(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

pub(crate) enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

impl From<TcpListener> for Listener {
    fn from(l: TcpListener) -> Self {
        Listener::Tcp(l)
    }
}

impl Listener {
    pub(crate) fn bind(endpoint: &Endpoint) -> io::Result<Self> {
        match endpoint {
            Endpoint::Tcp(addr) => {
                let addr: std::net::SocketAddr = addr
                    .parse()
                    .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
                let sock = socket2::Socket::new(
                    socket2::Domain::for_address(addr),
                    socket2::Type::STREAM,
                    None,
                )?;
                sock.set_reuse_address(true)?;
                sock.bind(&addr.into())?;
                sock.listen(4096)?;
                Ok(Listener::Tcp(sock.into()))
            }
            Endpoint::Unix(path) => {
                let _ = std::fs::remove_file(path);
                Ok(Listener::Unix(UnixListener::bind(path)?))
            }
        }
    }

    pub(crate) fn accept(&self) -> io::Result<Stream> {
        let stream = match self {
            Listener::Tcp(l) => Stream::Tcp(l.accept()?.0),
            Listener::Unix(l) => Stream::Unix(l.accept()?.0),
        };
        stream.tune()?;
        Ok(stream)
    }

    pub(crate) fn try_clone(&self) -> io::Result<Self> {
        Ok(match self {
            Listener::Tcp(l) => Listener::Tcp(l.try_clone()?),
            Listener::Unix(l) => Listener::Unix(l.try_clone()?),
        })
    }
}

/// Reads until the buffer ends with CRLF: one whole reply or command line,
/// since neither side ever pipelines. Returns false on a clean EOF.
pub(crate) fn read_line(stream: &mut Stream, buf: &mut Vec<u8>) -> io::Result<bool> {
    buf.clear();
    // Small on purpose: zeroing it is part of every round trip's cost, and
    // no command or reply of the script is longer.
    let mut chunk = [0u8; 512];
    loop {
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(false);
        }
        buf.extend_from_slice(&chunk[..n]);
        if buf.ends_with(b"\r\n") {
            return Ok(true);
        }
    }
}
