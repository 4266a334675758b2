//! The ping-pong on one tokio current_thread runtime per process
//! (`--flavor tokio`): the same bytes and round trips as `client`/`server`,
//! with every session on one thread. Which flavour is faster depends on the
//! point: with many sessions one wake-up here serves every connection that
//! became ready together (at `-s 100 -d` it beat the threads by 1.3x on this
//! 2-vCPU machine), with few sessions the blocking threads win. The lab runs
//! both and takes the faster as the ceiling.

use std::{
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, TcpStream, UnixListener, UnixStream},
};

use smtp_net::tls::rustls::pki_types::ServerName;

use crate::{
    client::{Config, Outcome},
    script::{Script, DATA_GO, DATA_OK, GREETING, HELO_OK, MAIL_OK, OTHER_OK, QUIT_OK, RCPT_OK},
    server::EndFinder,
    stream::Endpoint,
};

/// No timer: the harness bounds every run, and a timer per read would cost
/// a timer-wheel insertion per round trip.
fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| format!("runtime: {e}"))
}

/// Serves until killed.
pub(crate) fn serve(endpoint: &Endpoint, chunking: bool, starttls: bool) -> Result<(), String> {
    let rt = runtime()?;
    let acceptor = if starttls {
        if matches!(endpoint, Endpoint::Unix(_)) {
            return Err("--starttls: TCP only".to_owned());
        }
        Some(crate::tls::acceptor()?)
    } else {
        None
    };
    rt.block_on(async {
        match endpoint {
            Endpoint::Tcp(addr) => {
                let std_listener = crate::stream::Listener::bind(endpoint)
                    .map_err(|e| format!("bind {addr}: {e}"))?;
                let crate::stream::Listener::Tcp(l) = std_listener else {
                    unreachable!("a TCP endpoint binds a TCP listener")
                };
                l.set_nonblocking(true).map_err(|e| e.to_string())?;
                let listener = TcpListener::from_std(l).map_err(|e| e.to_string())?;
                loop {
                    let (s, _) = listener
                        .accept()
                        .await
                        .map_err(|e| format!("accept: {e}"))?;
                    let _ = s.set_nodelay(true);
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        let _ = if let Some(acceptor) = acceptor {
                            conversation_starttls(s, acceptor).await
                        } else if chunking {
                            conversation_bdat(s).await
                        } else {
                            conversation(s).await
                        };
                    });
                }
            }
            Endpoint::Unix(path) => {
                let _ = std::fs::remove_file(path);
                let listener = UnixListener::bind(path).map_err(|e| format!("bind {path}: {e}"))?;
                loop {
                    let (s, _) = listener
                        .accept()
                        .await
                        .map_err(|e| format!("accept: {e}"))?;
                    tokio::spawn(async move {
                        let _ = if chunking {
                            conversation_bdat(s).await
                        } else {
                            conversation(s).await
                        };
                    });
                }
            }
        }
    })
}

/// Reads until the buffer ends with CRLF (nobody pipelines). False on EOF.
async fn read_line<S: AsyncRead + Unpin>(s: &mut S, line: &mut Vec<u8>) -> std::io::Result<bool> {
    line.clear();
    loop {
        // Into the line's spare capacity: nothing to zero.
        let n = s.read_buf(line).await?;
        if n == 0 {
            return Ok(false);
        }
        if line.ends_with(b"\r\n") {
            return Ok(true);
        }
    }
}

async fn conversation<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) -> std::io::Result<()> {
    s.write_all(GREETING).await?;
    commands(&mut s, HELO_OK).await
}

/// `--starttls`: greeting, EHLO and STARTTLS in the clear, the handshake,
/// then the conversation inside TLS, and a close_notify after QUIT.
async fn conversation_starttls(
    mut s: TcpStream,
    acceptor: tokio_rustls::TlsAcceptor,
) -> std::io::Result<()> {
    let mut line = Vec::with_capacity(512);
    s.write_all(GREETING).await?;
    if !read_line(&mut s, &mut line).await? {
        return Ok(());
    }
    s.write_all(crate::tls::EHLO_STARTTLS).await?;
    if !read_line(&mut s, &mut line).await? {
        return Ok(());
    }
    s.write_all(crate::tls::READY).await?;
    let mut s = acceptor.accept(s).await?;
    commands(&mut s, crate::tls::EHLO_TLS).await?;
    s.shutdown().await
}

/// Answers commands until QUIT or EOF; `helo_reply` answers HELO/EHLO.
async fn commands<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    helo_reply: &[u8],
) -> std::io::Result<()> {
    let mut line = Vec::with_capacity(512);
    // Read into spare capacity (read_buf), so no connection pays for zeroing.
    let mut chunk = Vec::with_capacity(64 * 1024);
    loop {
        if !read_line(s, &mut line).await? {
            return Ok(());
        }
        let reply = match line.first() {
            Some(b'H' | b'E' | b'L') => helo_reply,
            Some(b'M') => MAIL_OK,
            Some(b'R') => RCPT_OK,
            Some(b'D') => {
                s.write_all(DATA_GO).await?;
                if !skip_data(s, &mut chunk).await? {
                    return Ok(());
                }
                DATA_OK
            }
            Some(b'Q') => {
                s.write_all(QUIT_OK).await?;
                return Ok(());
            }
            _ => OTHER_OK,
        };
        s.write_all(reply).await?;
    }
}

/// The one-round-trip conversation (`--chunking`), as `server::serve_bdat`.
async fn conversation_bdat<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) -> std::io::Result<()> {
    let mut conv = crate::bdat::Server::new();
    let mut chunk = Vec::with_capacity(64 * 1024);
    s.write_all(GREETING).await?;
    loop {
        chunk.clear();
        if s.read_buf(&mut chunk).await? == 0 {
            return Ok(());
        }
        let quit = conv.feed(&chunk);
        if quit || conv.flush_due() {
            s.write_all(&conv.out).await?;
            conv.out.clear();
        }
        if quit {
            return Ok(());
        }
    }
}

/// As in `server::skip_data`: every byte is scanned for the end mark.
async fn skip_data<S: AsyncRead + Unpin>(s: &mut S, chunk: &mut Vec<u8>) -> std::io::Result<bool> {
    let mut finder = EndFinder::default();
    loop {
        chunk.clear();
        let n = s.read_buf(chunk).await?;
        if n == 0 {
            return Ok(false);
        }
        if finder.feed(chunk) {
            return Ok(true);
        }
    }
}

/// The client: `-s` tasks on one thread sharing the `-m` budget.
pub(crate) fn client(endpoint: &Endpoint, config: &Config) -> Result<Outcome, String> {
    let rt = runtime()?;
    let script = Arc::new(Script::new(&config.helo, config.rcpts, config.body_len));
    let budget = Arc::new(AtomicU64::new(config.messages));
    let done = Arc::new(AtomicU64::new(0));
    let tls = if config.starttls {
        let Endpoint::Tcp(addr) = endpoint else {
            return Err("--starttls: TCP only".to_owned());
        };
        Some(Arc::new((
            crate::tls::connector(config.tls_resume)?,
            crate::tls::server_name(addr)?,
        )))
    } else {
        None
    };
    let start = Instant::now();
    let result: Result<(), String> = rt.block_on(async {
        let tasks: Vec<_> = (0..config.sessions)
            .map(|_| {
                let (script, budget, done) = (script.clone(), budget.clone(), done.clone());
                let (endpoint, keep_open, chunking) =
                    (endpoint.clone(), config.keep_open, config.chunking);
                let tls = tls.clone();
                tokio::spawn(async move {
                    let how = How {
                        keep_open,
                        chunking,
                        tls: tls.as_deref(),
                    };
                    session(&endpoint, &script, &how, &budget, &done).await
                })
            })
            .collect();
        for task in tasks {
            task.await.map_err(|e| format!("session task: {e}"))??;
        }
        Ok(())
    });
    result?;
    Ok(Outcome::new(
        done.load(Ordering::Relaxed),
        start.elapsed().as_secs_f64(),
    ))
}

/// One thread: the atomics are never contended, only `Send` for tokio::spawn.
fn claim(budget: &AtomicU64) -> bool {
    budget
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
}

enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

/// How a session talks: `-d`, `--chunking`, `--starttls` (the connector
/// and the server name).
struct How<'a> {
    keep_open: bool,
    chunking: bool,
    tls: Option<&'a (tokio_rustls::TlsConnector, ServerName<'static>)>,
}

async fn connect(endpoint: &Endpoint) -> Result<Conn, String> {
    match endpoint {
        Endpoint::Tcp(addr) => {
            let s = TcpStream::connect(addr.as_str())
                .await
                .map_err(|e| format!("connect {addr}: {e}"))?;
            let _ = s.set_nodelay(true);
            Ok(Conn::Tcp(s))
        }
        Endpoint::Unix(path) => Ok(Conn::Unix(
            UnixStream::connect(path)
                .await
                .map_err(|e| format!("connect {path}: {e}"))?,
        )),
    }
}

async fn session(
    endpoint: &Endpoint,
    script: &Script,
    how: &How<'_>,
    budget: &AtomicU64,
    done: &AtomicU64,
) -> Result<(), String> {
    let chunking = how.chunking;
    let mut reply = Vec::with_capacity(512);
    let mut conn: Option<Conn> = None;
    while claim(budget) {
        if conn.is_none() {
            let mut c = connect(endpoint).await?;
            if let (Some((connector, name)), Conn::Tcp(_)) = (how.tls, &c) {
                let Conn::Tcp(s) = c else {
                    unreachable!("matched above")
                };
                c = Conn::Tls(Box::new(
                    starttls(s, script, connector, name, &mut reply).await?,
                ));
            }
            match &mut c {
                Conn::Tcp(s) => hello(s, script, chunking, &mut reply).await?,
                Conn::Unix(s) => hello(s, script, chunking, &mut reply).await?,
                Conn::Tls(_) => {}
            }
            conn = Some(c);
        }
        match (conn.as_mut().expect("connected above"), chunking) {
            (Conn::Tcp(s), false) => transaction(s, script, &mut reply).await?,
            (Conn::Unix(s), false) => transaction(s, script, &mut reply).await?,
            (Conn::Tls(s), false) => transaction(s.as_mut(), script, &mut reply).await?,
            (Conn::Tcp(s), true) => transaction_bdat(s, script, &mut reply).await?,
            (Conn::Unix(s), true) => transaction_bdat(s, script, &mut reply).await?,
            (Conn::Tls(s), true) => transaction_bdat(s.as_mut(), script, &mut reply).await?,
        }
        done.fetch_add(1, Ordering::Relaxed);
        if !how.keep_open {
            quit(conn.take().expect("connected above"), script, &mut reply).await?;
        }
    }
    if let Some(c) = conn {
        quit(c, script, &mut reply).await?;
    }
    Ok(())
}

/// `--starttls`: greeting, EHLO, STARTTLS, the handshake, EHLO again.
async fn starttls(
    mut s: TcpStream,
    script: &Script,
    connector: &tokio_rustls::TlsConnector,
    name: &ServerName<'static>,
    reply: &mut Vec<u8>,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    expect(&mut s, reply, "greeting").await?;
    exchange(&mut s, &script.ehlo, 1, reply, "EHLO").await?;
    step(&mut s, crate::tls::STARTTLS, reply, "STARTTLS").await?;
    let mut tls = connector
        .connect(name.clone(), s)
        .await
        .map_err(|e| format!("TLS handshake: {e}"))?;
    exchange(&mut tls, &script.ehlo, 1, reply, "EHLO").await?;
    Ok(tls)
}

async fn hello<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    script: &Script,
    chunking: bool,
    reply: &mut Vec<u8>,
) -> Result<(), String> {
    expect(s, reply, "greeting").await?;
    if chunking {
        exchange(s, &script.ehlo, 1, reply, "EHLO").await
    } else {
        step(s, &script.helo, reply, "HELO").await
    }
}

/// One write, then reads until `replies` whole replies are in (`--chunking`).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    bytes: &[u8],
    replies: usize,
    buf: &mut Vec<u8>,
    what: &str,
) -> Result<(), String> {
    s.write_all(bytes)
        .await
        .map_err(|e| format!("sending {what}: {e}"))?;
    buf.clear();
    while crate::bdat::replies_in(buf) < replies {
        match s.read_buf(buf).await {
            Ok(0) => return Err(format!("connection closed awaiting the {what} replies")),
            Ok(_) => {}
            Err(e) => return Err(format!("reading the {what} replies: {e}")),
        }
    }
    Ok(())
}

async fn transaction<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    script: &Script,
    reply: &mut Vec<u8>,
) -> Result<(), String> {
    step(s, &script.mail, reply, "MAIL").await?;
    for rcpt in &script.rcpts {
        step(s, rcpt, reply, "RCPT").await?;
    }
    step(s, script.data, reply, "DATA").await?;
    step(s, &script.message, reply, "end of data").await
}

/// The one-round-trip transaction (`--chunking`): one write, one read.
async fn transaction_bdat<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    script: &Script,
    reply: &mut Vec<u8>,
) -> Result<(), String> {
    let what = "MAIL+RCPT+BDAT";
    exchange(s, &script.bdat, script.bdat_replies, reply, what).await
}

async fn quit(conn: Conn, script: &Script, reply: &mut Vec<u8>) -> Result<(), String> {
    match conn {
        Conn::Tcp(mut s) => {
            step(&mut s, script.quit, reply, "QUIT").await?;
            // RST, no TIME_WAIT: as smtp-source's SO_LINGER 0.
            let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
        }
        Conn::Unix(mut s) => step(&mut s, script.quit, reply, "QUIT").await?,
        Conn::Tls(mut s) => {
            step(s.as_mut(), script.quit, reply, "QUIT").await?;
            // close_notify, then RST as above.
            let _ = s.shutdown().await;
            let _ = socket2::SockRef::from(s.get_ref().0).set_linger(Some(Duration::ZERO));
        }
    }
    Ok(())
}

async fn step<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    bytes: &[u8],
    reply: &mut Vec<u8>,
    what: &str,
) -> Result<(), String> {
    s.write_all(bytes)
        .await
        .map_err(|e| format!("sending {what}: {e}"))?;
    expect(s, reply, what).await
}

async fn expect<S: AsyncRead + Unpin>(
    s: &mut S,
    reply: &mut Vec<u8>,
    what: &str,
) -> Result<(), String> {
    match read_line(s, reply).await {
        Ok(true) => Ok(()),
        Ok(false) => Err(format!("connection closed awaiting the {what} reply")),
        Err(e) => Err(format!("reading the {what} reply: {e}")),
    }
}
