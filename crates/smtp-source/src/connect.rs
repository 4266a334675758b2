//! Opening a client socket the way Postfix's smtp-source does: SO_LINGER
//! {on, 0} so that closing sends an RST and leaves no TIME_WAIT, `-T` as
//! SO_SNDBUF and SO_RCVBUF before connect(), SO_KEEPALIVE on IPv4 only (as
//! sane_connect does), and a non-blocking connect. Optionally bound to a
//! source address first (smtp-source's `--bind`, smtp-probe's `-b`).

use std::{
    io,
    net::{IpAddr, SocketAddr},
    time::Duration,
};

use smtp_net::strerror;
pub use smtp_net::Stream;
use socket2::{Domain, SockAddr, Socket, Type};
use tokio::{
    net::{TcpStream, UnixStream},
    time::Instant,
};

use crate::{conn::within, target::Target};

/// How to open a socket, besides where to.
#[derive(Debug, Clone, Copy)]
pub struct ConnectOptions {
    /// `-T`: SO_SNDBUF and SO_RCVBUF.
    pub window: Option<u32>,
    /// The source address (port 0: any); TCP only, ignored for unix
    /// sockets.
    pub bind: Option<IpAddr>,
    /// The connect's own limit (`--timeout`).
    pub timeout: Duration,
    /// The session's deadline (`--session-timeout`), if sooner.
    pub deadline: Option<Instant>,
}

impl ConnectOptions {
    /// No window, no source address, no deadline.
    pub fn new(timeout: Duration) -> Self {
        Self {
            window: None,
            bind: None,
            timeout,
            deadline: None,
        }
    }
}

/// Connects to `target` once, within `opts.timeout` and before
/// `opts.deadline`.
///
/// # Errors
/// The socket, bind or connect error (a timeout is `TimedOut`; with a
/// source address, a bind or connect error names it).
pub async fn connect(target: &Target, opts: &ConnectOptions) -> io::Result<Stream> {
    let (domain, addr) = match target {
        Target::Tcp(a) => (Domain::for_address(*a), SockAddr::from(*a)),
        Target::Unix(p) => (Domain::UNIX, SockAddr::unix(p)?),
    };
    // Non-blocking from the start (SOCK_NONBLOCK): no fcntl calls.
    let sock = Socket::new(domain, Type::STREAM.nonblocking(), None)?;
    sock.set_linger(Some(Duration::ZERO))?;
    if let Some(w) = opts.window {
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
    if let (Some(ip), Target::Tcp(_)) = (opts.bind, target) {
        sock.bind(&SockAddr::from(SocketAddr::new(ip, 0)))
            .map_err(|e| io::Error::new(e.kind(), format!("bind {ip}: {}", strerror(&e))))?;
    }
    // With several source addresses, a failure must say which one failed.
    let named = |e: io::Error| match (opts.bind, target) {
        (Some(ip), Target::Tcp(_)) => {
            io::Error::new(e.kind(), format!("{} (source address {ip})", strerror(&e)))
        }
        _ => e,
    };
    let pending = match sock.connect(&addr) {
        Ok(()) => false,
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => true,
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => true,
        Err(e) => return Err(named(e)),
    };
    let stream = match target {
        Target::Tcp(_) => Stream::Tcp(TcpStream::from_std(sock.into())?),
        Target::Unix(_) => Stream::Unix(UnixStream::from_std(sock.into())?),
    };
    if pending {
        within(opts.timeout, opts.deadline, stream.connected())
            .await
            .map_err(|_| io::Error::from(io::ErrorKind::TimedOut))
            .and_then(|r| r)
            .map_err(named)?;
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
        let opts = ConnectOptions {
            window: Some(16384),
            ..ConnectOptions::new(Duration::from_secs(5))
        };
        let s = connect(&target, &opts).await.unwrap();
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
        let opts = ConnectOptions::new(Duration::from_secs(5));
        let e = connect(&Target::Tcp(addr), &opts).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let _l = std::os::unix::net::UnixListener::bind(&path).unwrap();
        // A source address is for TCP only: a unix socket ignores it.
        let opts = ConnectOptions {
            window: Some(8192),
            bind: Some(IpAddr::from([127, 0, 0, 2])),
            ..opts
        };
        let s = connect(&Target::Unix(path), &opts).await.unwrap();
        assert!(matches!(s, Stream::Unix(_)));
    }

    /// The socket leaves from the address asked for (127.0.0.2 is
    /// loopback on Linux), and an address this host lacks is named.
    #[tokio::test]
    async fn binds_the_source_address() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let target = Target::Tcp(l.local_addr().unwrap());
        let opts = ConnectOptions {
            bind: Some(IpAddr::from([127, 0, 0, 2])),
            ..ConnectOptions::new(Duration::from_secs(5))
        };
        let _s = connect(&target, &opts).await.unwrap();
        let (_, peer) = l.accept().unwrap();
        assert_eq!(peer.ip(), IpAddr::from([127, 0, 0, 2]));
        let opts = ConnectOptions {
            bind: Some(IpAddr::from([192, 0, 2, 1])),
            ..opts
        };
        let e = connect(&target, &opts).await.unwrap_err();
        assert_eq!(
            e.to_string(),
            "bind 192.0.2.1: Cannot assign requested address"
        );
        // A connect that fails from a source address names it.
        drop(l);
        let opts = ConnectOptions {
            bind: Some(IpAddr::from([127, 0, 0, 3])),
            ..opts
        };
        let e = connect(&target, &opts).await.unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::ConnectionRefused);
        assert_eq!(
            e.to_string(),
            "Connection refused (source address 127.0.0.3)"
        );
    }
}
