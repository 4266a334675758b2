//! The ping-pong on one tokio current_thread runtime per process
//! (`--flavor tokio`): the same bytes and round trips as `client`/`server`,
//! with every session on one thread. Which flavour is faster depends on the
//! point: with many sessions one wake-up here serves every connection that
//! became ready together (at `-s 100 -d` it beat the threads by 1.3x on this
//! 2-vCPU machine), with few sessions the blocking threads win. The lab runs
//! both and takes the faster as the ceiling.

use std::{
    cell::Cell,
    rc::Rc,
    time::{Duration, Instant},
};

use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::{TcpListener, TcpStream, UnixListener, UnixStream},
    task::LocalSet,
};

use crate::{
    client::{Config, Outcome},
    script::{Script, DATA_GO, DATA_OK, GREETING, HELO_OK, MAIL_OK, OTHER_OK, QUIT_OK, RCPT_OK},
    server::EndFinder,
    stream::{Endpoint, IO_TIMEOUT},
};

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .enable_time()
        .build()
        .map_err(|e| format!("runtime: {e}"))
}

/// Serves until killed.
pub(crate) fn serve(endpoint: &Endpoint) -> Result<(), String> {
    let rt = runtime()?;
    let local = LocalSet::new();
    local.block_on(&rt, async {
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
                    tokio::task::spawn_local(async move {
                        let _ = conversation(s).await;
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
                    tokio::task::spawn_local(async move {
                        let _ = conversation(s).await;
                    });
                }
            }
        }
    })
}

async fn read_some<S: AsyncRead + Unpin>(s: &mut S, buf: &mut [u8]) -> std::io::Result<usize> {
    match tokio::time::timeout(IO_TIMEOUT, s.read(buf)).await {
        Ok(r) => r,
        Err(_) => Err(std::io::ErrorKind::TimedOut.into()),
    }
}

/// Reads until the buffer ends with CRLF (nobody pipelines). False on EOF.
async fn read_line<S: AsyncRead + Unpin>(s: &mut S, line: &mut Vec<u8>) -> std::io::Result<bool> {
    line.clear();
    let mut chunk = [0u8; 4096];
    loop {
        let n = read_some(s, &mut chunk).await?;
        if n == 0 {
            return Ok(false);
        }
        line.extend_from_slice(&chunk[..n]);
        if line.ends_with(b"\r\n") {
            return Ok(true);
        }
    }
}

async fn conversation<S: AsyncRead + AsyncWrite + Unpin>(mut s: S) -> std::io::Result<()> {
    let mut line = Vec::with_capacity(4096);
    let mut chunk = vec![0u8; 64 * 1024];
    s.write_all(GREETING).await?;
    loop {
        if !read_line(&mut s, &mut line).await? {
            return Ok(());
        }
        let reply = match line.first() {
            Some(b'H' | b'E' | b'L') => HELO_OK,
            Some(b'M') => MAIL_OK,
            Some(b'R') => RCPT_OK,
            Some(b'D') => {
                s.write_all(DATA_GO).await?;
                if !skip_data(&mut s, &mut chunk).await? {
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

/// As in `server::skip_data`: every byte is scanned for the end mark.
async fn skip_data<S: AsyncRead + Unpin>(s: &mut S, chunk: &mut [u8]) -> std::io::Result<bool> {
    let mut finder = EndFinder::default();
    loop {
        let n = read_some(s, chunk).await?;
        if n == 0 {
            return Ok(false);
        }
        if finder.feed(&chunk[..n]) {
            return Ok(true);
        }
    }
}

/// The client: `-s` tasks on one thread sharing the `-m` budget.
pub(crate) fn client(endpoint: &Endpoint, config: &Config) -> Result<Outcome, String> {
    let rt = runtime()?;
    let local = LocalSet::new();
    let script = Rc::new(Script::new(&config.helo, config.rcpts, config.body_len));
    let budget = Rc::new(Cell::new(config.messages));
    let done = Rc::new(Cell::new(0u64));
    let start = Instant::now();
    let result: Result<(), String> = local.block_on(&rt, async {
        let tasks: Vec<_> = (0..config.sessions)
            .map(|_| {
                let (script, budget, done) = (script.clone(), budget.clone(), done.clone());
                let (endpoint, keep_open) = (endpoint.clone(), config.keep_open);
                tokio::task::spawn_local(async move {
                    session(&endpoint, &script, keep_open, &budget, &done).await
                })
            })
            .collect();
        for task in tasks {
            task.await.map_err(|e| format!("session task: {e}"))??;
        }
        Ok(())
    });
    result?;
    Ok(Outcome::new(done.get(), start.elapsed().as_secs_f64()))
}

fn claim(budget: &Cell<u64>) -> bool {
    let left = budget.get();
    budget.set(left.saturating_sub(1));
    left > 0
}

enum Conn {
    Tcp(TcpStream),
    Unix(UnixStream),
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
    keep_open: bool,
    budget: &Cell<u64>,
    done: &Cell<u64>,
) -> Result<(), String> {
    let mut reply = Vec::with_capacity(256);
    let mut conn: Option<Conn> = None;
    while claim(budget) {
        if conn.is_none() {
            let mut c = connect(endpoint).await?;
            match &mut c {
                Conn::Tcp(s) => hello(s, script, &mut reply).await?,
                Conn::Unix(s) => hello(s, script, &mut reply).await?,
            }
            conn = Some(c);
        }
        match conn.as_mut().expect("connected above") {
            Conn::Tcp(s) => transaction(s, script, &mut reply).await?,
            Conn::Unix(s) => transaction(s, script, &mut reply).await?,
        }
        done.set(done.get() + 1);
        if !keep_open {
            quit(conn.take().expect("connected above"), script, &mut reply).await?;
        }
    }
    if let Some(c) = conn {
        quit(c, script, &mut reply).await?;
    }
    Ok(())
}

async fn hello<S: AsyncRead + AsyncWrite + Unpin>(
    s: &mut S,
    script: &Script,
    reply: &mut Vec<u8>,
) -> Result<(), String> {
    expect(s, reply, "greeting").await?;
    step(s, &script.helo, reply, "HELO").await
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

async fn quit(conn: Conn, script: &Script, reply: &mut Vec<u8>) -> Result<(), String> {
    match conn {
        Conn::Tcp(mut s) => {
            step(&mut s, script.quit, reply, "QUIT").await?;
            // RST, no TIME_WAIT: as smtp-source's SO_LINGER 0.
            let _ = socket2::SockRef::from(&s).set_linger(Some(Duration::ZERO));
        }
        Conn::Unix(mut s) => step(&mut s, script.quit, reply, "QUIT").await?,
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
