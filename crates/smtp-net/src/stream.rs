//! The one stream type both programs' sessions run over.

use std::{
    io,
    pin::Pin,
    task::{Context, Poll},
};

use tokio::{
    io::{AsyncRead, AsyncWrite, ReadBuf},
    net::{TcpStream, UnixStream},
};
use tokio_rustls::rustls::pki_types::ServerName;

use crate::tls::{info_of, TlsAcceptor, TlsConnector, TlsInfo};

/// What a session needs of its connection: bytes both ways, plus a way to
/// wait for input without reading it.
///
/// The sink holds thousands of idle sessions; waiting for readiness
/// without a read buffer is what keeps each at a few KiB. A stream that
/// buffers input itself (TLS must, to decrypt whole records) has nothing
/// to gain from that and keeps the default, which reports it ready at once
/// so that the caller simply reads.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send {
    /// Polls until a read would find input or end of file.
    fn poll_read_ready(&self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}

/// A connected socket of either family, in the clear or under TLS.
#[derive(Debug)]
pub enum Stream {
    /// TCP.
    Tcp(TcpStream),
    /// AF_UNIX.
    Unix(UnixStream),
    /// TLS over either (after STARTTLS, or from the first byte).
    Tls(Box<tokio_rustls::TlsStream<Stream>>),
}

impl Stream {
    /// Waits until the socket is writable (a non-blocking connect has
    /// completed), and returns its pending error if the connect failed.
    ///
    /// # Errors
    /// The connect's error (`SO_ERROR`), or the wait's.
    pub async fn connected(&self) -> io::Result<()> {
        let err = match self {
            Stream::Tcp(s) => {
                s.writable().await?;
                s.take_error()?
            }
            Stream::Unix(s) => {
                s.writable().await?;
                s.take_error()?
            }
            Stream::Tls(_) => None,
        };
        err.map_or(Ok(()), Err)
    }

    /// Runs a client handshake over this stream and returns the TLS stream.
    ///
    /// # Errors
    /// The handshake failed (the peer's alert, a certificate that does not
    /// verify, a closed connection).
    pub async fn start_tls_client(
        self,
        connector: &TlsConnector,
        name: ServerName<'static>,
    ) -> io::Result<Stream> {
        let tls = connector.connect(name, self).await?;
        Ok(Stream::Tls(Box::new(tokio_rustls::TlsStream::Client(tls))))
    }

    /// Runs a server handshake over this stream and returns the TLS stream.
    ///
    /// # Errors
    /// The handshake failed.
    pub async fn start_tls_server(self, acceptor: &TlsAcceptor) -> io::Result<Stream> {
        let tls = acceptor.accept(self).await?;
        Ok(Stream::Tls(Box::new(tokio_rustls::TlsStream::Server(tls))))
    }

    /// What the handshake negotiated, when this is a TLS stream.
    pub fn tls_info(&self) -> Option<TlsInfo> {
        match self {
            Stream::Tls(tls) => Some(info_of(tls.get_ref().1)),
            _ => None,
        }
    }
}

impl Transport for Stream {
    fn poll_read_ready(&self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Stream::Tcp(s) => s.poll_read_ready(cx),
            Stream::Unix(s) => s.poll_read_ready(cx),
            // Decrypted bytes may already wait in rustls' buffer: read.
            Stream::Tls(_) => Poll::Ready(Ok(())),
        }
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Unix(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        // rustls gathers the slices into records itself.
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}
