//! Opening a client socket the way Postfix's smtp-source does: SO_LINGER
//! {on, 0} so that closing sends an RST and leaves no TIME_WAIT, `-T` as
//! SO_SNDBUF and SO_RCVBUF before connect(), SO_KEEPALIVE on IPv4 only (as
//! sane_connect does), and a non-blocking connect.

use std::{io, time::Duration};

pub use smtp_net::Stream;
use socket2::{Domain, SockAddr, Socket, Type};
use tokio::net::{TcpStream, UnixStream};

use crate::target::Target;

/// Connects to `target` once, within `timeout`.
///
/// # Errors
/// The socket or connect error (a timeout is `TimedOut`).
pub async fn connect(
    target: &Target,
    window: Option<u32>,
    timeout: Duration,
) -> io::Result<Stream> {
    let (domain, addr) = match target {
        Target::Tcp(a) => (Domain::for_address(*a), SockAddr::from(*a)),
        Target::Unix(p) => (Domain::UNIX, SockAddr::unix(p)?),
    };
    // Non-blocking from the start (SOCK_NONBLOCK): no fcntl calls.
    let sock = Socket::new(domain, Type::STREAM.nonblocking(), None)?;
    sock.set_linger(Some(Duration::ZERO))?;
    if let Some(w) = window {
        let w = usize::try_from(w).unwrap_or(usize::MAX);
        sock.set_send_buffer_size(w)?;
        sock.set_recv_buffer_size(w)?;
    }
    if domain == Domain::IPV4 {
        sock.set_keepalive(true)?;
    }
    if matches!(target, Target::Tcp(_)) {
        // Every write is a whole command or message, so Nagle's wait for
        // an ACK can only add latency; the bytes on the wire are the same.
        sock.set_nodelay(true)?;
    }
    let pending = match sock.connect(&addr) {
        Ok(()) => false,
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => true,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => true,
        Err(e) => return Err(e),
    };
    let stream = match target {
        Target::Tcp(_) => Stream::Tcp(TcpStream::from_std(sock.into())?),
        Target::Unix(_) => Stream::Unix(UnixStream::from_std(sock.into())?),
    };
    if pending {
        tokio::time::timeout(timeout, stream.connected())
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))??;
    }
    Ok(stream)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn socket_options_are_postfix_like() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let target = Target::Tcp(l.local_addr().unwrap());
        let s = connect(&target, Some(16384), Duration::from_secs(5))
            .await
            .unwrap();
        let Stream::Tcp(tcp) = &s else {
            panic!("not TCP")
        };
        let sock = socket2::SockRef::from(tcp);
        assert_eq!(sock.linger().unwrap(), Some(Duration::ZERO));
        assert!(sock.keepalive().unwrap());
        // Linux doubles the value it is given.
        assert_eq!(sock.send_buffer_size().unwrap(), 32768);
        assert_eq!(sock.recv_buffer_size().unwrap(), 32768);
    }

    #[tokio::test]
    async fn refused_and_unix() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        drop(l);
        let e = connect(&Target::Tcp(addr), None, Duration::from_secs(5))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let _l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        let s = connect(&Target::Unix(path), Some(8192), Duration::from_secs(5))
            .await
            .unwrap();
        assert!(matches!(s, Stream::Unix(_)));
    }
}
