//! The listening socket: Postfix's address forms and socket options, the
//! privilege drop after binding, and the accept loop with the `-m` cap.

use std::ffi::CString;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use smtp_net::Stream;
use socket2::{Domain, SockAddr, Socket, Type};
use tokio::sync::Semaphore;
use tracing::{info, warn};

use crate::config::{Config, Family, ListenAddr};
use crate::dump::ClientAddr;
use crate::error::Error;
use crate::session;
use crate::Shared;

/// A bound and listening socket, not yet attached to a runtime.
#[derive(Debug)]
pub enum Bound {
    /// TCP.
    Tcp(std::net::TcpListener),
    /// Unix-domain.
    Unix(std::os::unix::net::UnixListener),
}

pub use smtp_net::strerror;

fn fatal(text: String) -> Error {
    Error::Fatal(text)
}

/// Binds and listens as Postfix's inet_listen/unix_listen do.
///
/// # Errors
/// Postfix's fatal texts (`bind ... port ...: ...`, `listen: ...`, ...).
pub fn bind(cfg: &Config) -> Result<Bound, Error> {
    match &cfg.listen {
        ListenAddr::Unix(path) => bind_unix(path, cfg.backlog).map(Bound::Unix),
        ListenAddr::Inet { host, port, text } => {
            let addr = resolve(host.as_deref(), *port, cfg.family, text)?;
            if cfg.verbose > 0 {
                info!("trying... [{}]:{}", addr.ip(), addr.port());
            }
            bind_inet(addr, cfg).map(Bound::Tcp)
        }
    }
}

/// The first address getaddrinfo gives that the family allows (Postfix
/// binds only that one: a wildcard means IPv4 unless `-6`).
fn resolve(host: Option<&str>, port: u16, family: Family, text: &str) -> Result<SocketAddr, Error> {
    let allowed = |a: &SocketAddr| match family {
        Family::Any => true,
        Family::V4 => a.is_ipv4(),
        Family::V6 => a.is_ipv6(),
    };
    let candidates: Vec<SocketAddr> = match host {
        None => vec![
            SocketAddr::from(([0, 0, 0, 0], port)),
            SocketAddr::from(([0u16; 8], port)),
        ],
        Some(h) => (h, port)
            .to_socket_addrs()
            .map_err(|e| fatal(format!("{text}: {e}")))?
            .collect(),
    };
    candidates
        .into_iter()
        .find(allowed)
        .ok_or_else(|| fatal(format!("{text}: host found but no usable address")))
}

fn bind_inet(addr: SocketAddr, cfg: &Config) -> Result<std::net::TcpListener, Error> {
    let sock = Socket::new(Domain::for_address(addr), Type::STREAM, None)
        .map_err(|e| fatal(format!("socket: {}", strerror(&e))))?;
    if addr.is_ipv6() {
        sock.set_only_v6(true)
            .map_err(|e| fatal(format!("setsockopt(IPV6_V6ONLY): {}", strerror(&e))))?;
    }
    sock.set_reuse_address(true)
        .map_err(|e| fatal(format!("setsockopt(SO_REUSEADDR): {}", strerror(&e))))?;
    sock.set_reuse_port(true)
        .map_err(|e| fatal(format!("setsockopt(SO_REUSEPORT): {}", strerror(&e))))?;
    sock.bind(&addr.into()).map_err(|e| {
        fatal(format!(
            "bind {} port {}: {}",
            addr.ip(),
            addr.port(),
            strerror(&e)
        ))
    })?;
    if let Some(size) = cfg.window_size {
        // Accepted sockets inherit these from the listener.
        let _ = sock.set_send_buffer_size(size);
        let _ = sock.set_recv_buffer_size(size);
    }
    sock.listen(cfg.backlog)
        .map_err(|e| fatal(format!("listen: {}", strerror(&e))))?;
    sock.set_nonblocking(true)
        .map_err(|e| fatal(format!("non_blocking: {}", strerror(&e))))?;
    Ok(sock.into())
}

fn bind_unix(path: &Path, backlog: i32) -> Result<std::os::unix::net::UnixListener, Error> {
    let shown = path.display();
    if path.as_os_str().len() >= 108 {
        return Err(fatal(format!("unix-domain name too long: {shown}")));
    }
    let sock = Socket::new(Domain::UNIX, Type::STREAM, None)
        .map_err(|e| fatal(format!("socket: {}", strerror(&e))))?;
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(fatal(format!("remove {shown}: {}", strerror(&e)))),
    }
    let addr =
        SockAddr::unix(path).map_err(|e| fatal(format!("bind: {shown}: {}", strerror(&e))))?;
    sock.bind(&addr)
        .map_err(|e| fatal(format!("bind: {shown}: {}", strerror(&e))))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))
        .map_err(|e| fatal(format!("chmod socket {shown}: {}", strerror(&e))))?;
    sock.listen(backlog)
        .map_err(|e| fatal(format!("listen: {}", strerror(&e))))?;
    sock.set_nonblocking(true)
        .map_err(|e| fatal(format!("non_blocking: {}", strerror(&e))))?;
    Ok(sock.into())
}

/// Postfix's chroot_uid: setgid, initgroups, chroot + chdir("/"), setuid.
/// `-R` without `-u` is ignored, as in Postfix (with a warning here).
///
/// # Errors
/// Postfix's texts: `unknown user: X`, `initgroups: ...`, ...
pub fn drop_privileges(user: Option<&str>, root_dir: Option<&Path>) -> Result<(), Error> {
    use nix::unistd::{chdir, chroot, initgroups, setgid, setuid, User};
    let Some(name) = user else {
        if let Some(dir) = root_dir {
            warn!("-R {} is ignored without -u", dir.display());
        }
        return Ok(());
    };
    let pw = User::from_name(name)
        .map_err(|e| fatal(format!("getpwnam {name}: {}", e.desc())))?
        .ok_or_else(|| fatal(format!("unknown user: {name}")))?;
    setgid(pw.gid).map_err(|e| fatal(format!("setgid({}): {}", pw.gid, e.desc())))?;
    let cname = CString::new(name).map_err(|_| fatal(format!("unknown user: {name}")))?;
    initgroups(&cname, pw.gid).map_err(|e| fatal(format!("initgroups: {}", e.desc())))?;
    if let Some(dir) = root_dir {
        chroot(dir).map_err(|e| fatal(format!("chroot({}): {}", dir.display(), e.desc())))?;
        chdir("/").map_err(|e| fatal(format!("chdir(/): {}", e.desc())))?;
    }
    setuid(pw.uid).map_err(|e| fatal(format!("setuid({}): {}", pw.uid, e.desc())))?;
    Ok(())
}

/// Accepts clients until the process is told to stop (or the future is
/// dropped, which closes the socket). Each session holds one of `permits`
/// (`-m` of them) while it runs; while none is free nothing is accepted,
/// so further clients wait in the kernel's backlog, as with Postfix.
pub async fn accept_loop(
    bound: Bound,
    shared: Arc<Shared>,
    permits: Arc<Semaphore>,
) -> Result<(), Error> {
    let verbose = shared.cfg.verbose > 0;
    enum L {
        Tcp(tokio::net::TcpListener),
        Unix(tokio::net::UnixListener),
    }
    let listener = match bound {
        Bound::Tcp(l) => L::Tcp(
            tokio::net::TcpListener::from_std(l)
                .map_err(|e| fatal(format!("listen: {}", strerror(&e))))?,
        ),
        Bound::Unix(l) => L::Unix(
            tokio::net::UnixListener::from_std(l)
                .map_err(|e| fatal(format!("listen: {}", strerror(&e))))?,
        ),
    };
    // Sessions accepted so far: each session's number (--seed).
    let mut accepted_count: u64 = 0;
    loop {
        let permit = permits
            .clone()
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let accepted = match &listener {
            L::Tcp(l) => l.accept().await.map(|(s, peer)| {
                let _ = s.set_nodelay(true);
                let ip = peer.ip().to_canonical();
                if verbose {
                    let fam = if ip.is_ipv6() { "AF_INET6" } else { "AF_INET" };
                    info!("connect ({fam} {ip})");
                }
                (Stream::Tcp(s), ClientAddr::from_ip(peer.ip()))
            }),
            L::Unix(l) => l.accept().await.map(|(s, _)| {
                if verbose {
                    info!("connect (AF_LOCAL local)");
                }
                (Stream::Unix(s), ClientAddr::local())
            }),
        };
        match accepted {
            Ok((conn, client)) => {
                let shared = shared.clone();
                let number = accepted_count;
                accepted_count += 1;
                tokio::spawn(async move {
                    session::serve(conn, client, number, shared).await;
                    drop(permit);
                });
            }
            Err(e) => {
                // EMFILE and friends: wait instead of spinning.
                warn!("accept: {}", strerror(&e));
                drop(permit);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}
