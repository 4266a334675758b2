//! The TLS ceiling (`--starttls`, tokio flavour): the same rustls as our
//! pair (smtp-net's configurations, ring provider), the same certificate
//! kind (self-signed, made at start as our sink makes it) and the same
//! bytes in the clear before the handshake: greeting, EHLO and our sink's
//! `--starttls` EHLO reply, STARTTLS and its 220. Inside TLS: EHLO again
//! (answered with the list our sink gives once TLS is up), then Postfix's
//! transaction, QUIT and a close_notify.

use smtp_net::tls::{self, rustls::pki_types::ServerName, TlsAcceptor, TlsConnector};

/// Our sink's EHLO reply with `--starttls`, before TLS.
pub(crate) const EHLO_STARTTLS: &[u8] = b"250-smtp-sink\r\n250-PIPELINING\r\n250-STARTTLS\r\n\
250-8BITMIME\r\n250-XCLIENT NAME HELO\r\n250-XFORWARD NAME ADDR PROTO HELO\r\n\
250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250 \r\n";
/// Our sink's EHLO reply once TLS is up.
pub(crate) const EHLO_TLS: &[u8] = b"250-smtp-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n\
250-AUTH PLAIN LOGIN\r\n250-XCLIENT NAME HELO\r\n250-XFORWARD NAME ADDR PROTO HELO\r\n\
250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250 \r\n";
pub(crate) const STARTTLS: &[u8] = b"STARTTLS\r\n";
pub(crate) const READY: &[u8] = b"220 2.0.0 Ready to start TLS\r\n";

/// The server side: a self-signed certificate for "smtp-sink", tickets on.
pub(crate) fn acceptor() -> Result<TlsAcceptor, String> {
    let server = tls::server_config(None, "smtp-sink").map_err(|e| format!("TLS: {e}"))?;
    Ok(TlsAcceptor::from(server.config))
}

/// The client side: no verification, resumption as asked; one
/// configuration (and so one session cache) for every connection.
pub(crate) fn connector(resume: bool) -> Result<TlsConnector, String> {
    let opts = tls::ClientOptions {
        verify: false,
        resume,
        ..tls::ClientOptions::default()
    };
    let config = tls::client_config(&opts).map_err(|e| format!("TLS: {e}"))?;
    Ok(TlsConnector::from(config))
}

/// The name our source uses for `HOST:PORT`: the host part (an IP address
/// sends no SNI).
pub(crate) fn server_name(addr: &str) -> Result<ServerName<'static>, String> {
    let host = addr.rsplit_once(':').map_or(addr, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    tls::server_name(host).map_err(|e| format!("TLS server name {host:?}: {e}"))
}
