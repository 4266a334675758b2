//! A scripted SMTP/LMTP server that records every byte it receives, and a
//! runner for the `smtp-source` binary with a bounded wait.
#![allow(dead_code, unreachable_pub)]

use std::{
    io::{ErrorKind, Read, Write},
    net::{TcpListener, TcpStream},
    os::unix::net::{UnixListener, UnixStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
    thread,
    time::{Duration, Instant},
};

/// What the server sees.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    /// A new connection (the greeting is due).
    Connect,
    /// A command line, without CRLF.
    Line(String),
    /// The end of a message (the data is in the record).
    EndOfData,
}

/// What the server does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Act {
    /// Send these lines (each gets CRLF); nothing when empty.
    Reply(Vec<String>),
    /// Send these lines, then close.
    ReplyClose(Vec<String>),
    /// Close without a reply.
    Close,
    /// Send nothing and keep reading (for timeouts).
    Silence,
    /// Send these lines, then stop reading for a while (for write
    /// timeouts).
    ReplyStall(Vec<String>, Duration),
}

impl Act {
    pub fn reply(line: &str) -> Act {
        Act::Reply(vec![line.to_owned()])
    }
}

/// Per-connection state the script can look at.
#[derive(Debug, Clone, Default)]
pub struct Ctx {
    pub conn: usize,
    /// RCPTs accepted in the current transaction.
    pub rcpts: usize,
    /// End-of-data count on this connection.
    pub messages: usize,
}

/// How the client ended the connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum End {
    /// TCP reset (Postfix's SO_LINGER 0 close).
    Reset,
    /// An orderly FIN.
    Fin,
    /// The server closed first.
    ServerClosed,
    /// Still open when the record was read.
    Open,
}

/// Everything received on one connection.
#[derive(Debug, Clone)]
pub struct Record {
    pub bytes: Vec<u8>,
    pub accepted: Instant,
    /// Each command line with the time it arrived.
    pub lines: Vec<(Instant, String)>,
    pub end: End,
}

impl Record {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.bytes).into_owned()
    }
}

pub type Script = Arc<dyn Fn(&Ctx, &Cmd) -> Act + Send + Sync>;

/// Postfix smtp-sink's replies in SMTP mode.
pub fn sink(_ctx: &Ctx, cmd: &Cmd) -> Act {
    match cmd {
        Cmd::Connect => Act::reply("220 test ESMTP"),
        Cmd::EndOfData => Act::reply("250 2.0.0 Ok"),
        Cmd::Line(l) => {
            let verb = l.get(..4).unwrap_or("").to_ascii_uppercase();
            match verb.as_str() {
                "HELO" | "EHLO" | "LHLO" => Act::reply("250 test"),
                "MAIL" => Act::reply("250 2.1.0 Ok"),
                "RCPT" => Act::reply("250 2.1.5 Ok"),
                "DATA" => Act::reply("354 End data with <CR><LF>.<CR><LF>"),
                "RSET" => Act::reply("250 2.0.0 Ok"),
                "QUIT" => Act::reply("221 Bye"),
                _ => Act::reply("500 5.5.1 Error: unknown command"),
            }
        }
    }
}

/// `sink`, but LMTP sends one end-of-data reply per accepted RCPT even
/// when that is zero (the script decides).
pub fn lmtp_sink(ctx: &Ctx, cmd: &Cmd) -> Act {
    match cmd {
        Cmd::EndOfData => Act::Reply(vec!["250 2.2.0 Ok".to_owned(); ctx.rcpts]),
        _ => sink(ctx, cmd),
    }
}

pub struct Server {
    pub addr: String,
    records: Arc<Mutex<Vec<Arc<Mutex<Record>>>>>,
    stop: Arc<AtomicBool>,
    _dir: Option<tempfile::TempDir>,
}

enum Listener {
    Tcp(TcpListener),
    Unix(UnixListener),
}

trait Io: Read + Write + Send {
    fn set_timeout(&self, d: Option<Duration>);
}
impl Io for TcpStream {
    fn set_timeout(&self, d: Option<Duration>) {
        let _ = self.set_read_timeout(d);
    }
}
impl Io for UnixStream {
    fn set_timeout(&self, d: Option<Duration>) {
        let _ = self.set_read_timeout(d);
    }
}

impl Server {
    /// A TCP server on 127.0.0.1, port chosen by the kernel.
    pub fn start(script: impl Fn(&Ctx, &Cmd) -> Act + Send + Sync + 'static) -> Server {
        let l = TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = format!("127.0.0.1:{}", l.local_addr().unwrap().port());
        Self::run(Listener::Tcp(l), addr, Arc::new(script), None)
    }

    /// A server on a unix socket in a temporary directory.
    pub fn start_unix(script: impl Fn(&Ctx, &Cmd) -> Act + Send + Sync + 'static) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s");
        let l = UnixListener::bind(&path).expect("bind unix");
        let addr = format!("unix:{}", path.display());
        Self::run(Listener::Unix(l), addr, Arc::new(script), Some(dir))
    }

    fn run(
        listener: Listener,
        addr: String,
        script: Script,
        dir: Option<tempfile::TempDir>,
    ) -> Server {
        let records: Arc<Mutex<Vec<Arc<Mutex<Record>>>>> = Arc::default();
        let stop = Arc::new(AtomicBool::new(false));
        let (r2, s2) = (Arc::clone(&records), Arc::clone(&stop));
        match &listener {
            Listener::Tcp(l) => l.set_nonblocking(true).unwrap(),
            Listener::Unix(l) => l.set_nonblocking(true).unwrap(),
        }
        thread::spawn(move || {
            let mut n = 0;
            while !s2.load(Ordering::Relaxed) {
                let conn: Option<Box<dyn Io>> = match &listener {
                    Listener::Tcp(l) => l.accept().ok().map(|(s, _)| {
                        s.set_nonblocking(false).unwrap();
                        Box::new(s) as Box<dyn Io>
                    }),
                    Listener::Unix(l) => l.accept().ok().map(|(s, _)| {
                        s.set_nonblocking(false).unwrap();
                        Box::new(s) as Box<dyn Io>
                    }),
                };
                let Some(conn) = conn else {
                    thread::sleep(Duration::from_millis(2));
                    continue;
                };
                let rec = Arc::new(Mutex::new(Record {
                    bytes: Vec::new(),
                    accepted: Instant::now(),
                    lines: Vec::new(),
                    end: End::Open,
                }));
                r2.lock().unwrap().push(Arc::clone(&rec));
                let script = Arc::clone(&script);
                let idx = n;
                n += 1;
                thread::spawn(move || serve(conn, idx, &script, &rec));
            }
        });
        Server {
            addr,
            records,
            stop,
            _dir: dir,
        }
    }

    /// Waits (bounded) until `n` connections have ended, then returns all
    /// records in accept order.
    pub fn records(&self, n: usize) -> Vec<Record> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let recs: Vec<Record> = self
                .records
                .lock()
                .unwrap()
                .iter()
                .map(|r| r.lock().unwrap().clone())
                .collect();
            let done = recs.iter().filter(|r| r.end != End::Open).count();
            if done >= n || Instant::now() > deadline {
                return recs;
            }
            thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn serve(mut conn: Box<dyn Io>, idx: usize, script: &Script, rec: &Mutex<Record>) {
    conn.set_timeout(Some(Duration::from_secs(10)));
    let mut ctx = Ctx {
        conn: idx,
        ..Ctx::default()
    };
    let mut buf: Vec<u8> = Vec::new();
    let mut in_data = false;
    let mut quitting = false;
    let act = script(&ctx, &Cmd::Connect);
    if !act_on(&mut conn, &act, rec) {
        return;
    }
    let mut chunk = [0u8; 65536];
    loop {
        // Handle everything complete in the buffer.
        loop {
            if in_data {
                // The data state starts "after CRLF": "." first ends it.
                let end = if buf.starts_with(b".\r\n") {
                    Some(0)
                } else {
                    find(&buf, b"\r\n.\r\n").map(|i| i + 2)
                };
                let Some(i) = end else { break };
                buf.drain(..i + 3);
                in_data = false;
                let act = script(&ctx, &Cmd::EndOfData);
                ctx.messages += 1;
                if !act_on(&mut conn, &act, rec) {
                    return;
                }
                continue;
            }
            let Some(i) = find(&buf, b"\r\n") else { break };
            let line = String::from_utf8_lossy(&buf[..i]).into_owned();
            buf.drain(..i + 2);
            rec.lock()
                .unwrap()
                .lines
                .push((Instant::now(), line.clone()));
            let act = script(&ctx, &Cmd::Line(line.clone()));
            let verb = line.get(..4).unwrap_or("").to_ascii_uppercase();
            let positive =
                matches!(&act, Act::Reply(l) if l.first().is_some_and(|r| r.starts_with('2')));
            match verb.as_str() {
                "MAIL" | "RSET" | "HELO" | "LHLO" => ctx.rcpts = 0,
                "RCPT" if positive => ctx.rcpts += 1,
                "DATA" => {
                    in_data = matches!(&act, Act::Reply(l) if l.first().is_some_and(|r| r.starts_with("354")))
                }
                "QUIT" => quitting = true,
                _ => {}
            }
            if !act_on(&mut conn, &act, rec) {
                return;
            }
        }
        match conn.read(&mut chunk) {
            Ok(0) => {
                rec.lock().unwrap().end = End::Fin;
                return;
            }
            Ok(n) => {
                rec.lock().unwrap().bytes.extend_from_slice(&chunk[..n]);
                buf.extend_from_slice(&chunk[..n]);
            }
            Err(e) if e.kind() == ErrorKind::ConnectionReset => {
                rec.lock().unwrap().end = End::Reset;
                return;
            }
            Err(_) => {
                // Timeout or other error: give up on this connection.
                let mut r = rec.lock().unwrap();
                r.end = if quitting {
                    End::Fin
                } else {
                    End::ServerClosed
                };
                return;
            }
        }
    }
}

/// Performs `act`; false when the connection is over.
fn act_on(conn: &mut Box<dyn Io>, act: &Act, rec: &Mutex<Record>) -> bool {
    let send = |conn: &mut Box<dyn Io>, lines: &[String]| {
        let mut out = String::new();
        for l in lines {
            out.push_str(l);
            out.push_str("\r\n");
        }
        let _ = conn.write_all(out.as_bytes());
    };
    match act {
        Act::Reply(lines) => {
            send(conn, lines);
            true
        }
        Act::Silence => true,
        Act::ReplyStall(lines, pause) => {
            send(conn, lines);
            thread::sleep(*pause);
            true
        }
        Act::ReplyClose(lines) => {
            send(conn, lines);
            rec.lock().unwrap().end = End::ServerClosed;
            false
        }
        Act::Close => {
            rec.lock().unwrap().end = End::ServerClosed;
            false
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The result of one run of the binary.
#[derive(Debug)]
pub struct Run {
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
    pub elapsed: Duration,
    pub pid: u32,
}

struct Guard(Child);
impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_smtp-source")
}

/// Runs `program args`, killing it after `limit`.
pub fn run_program(program: &str, args: &[&str], limit: Duration) -> Run {
    let start = Instant::now();
    let child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let mut guard = Guard(child);
    let mut out = guard.0.stdout.take().unwrap();
    let mut err = guard.0.stderr.take().unwrap();
    let t_out = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = out.read_to_end(&mut s);
        s
    });
    let t_err = thread::spawn(move || {
        let mut s = Vec::new();
        let _ = err.read_to_end(&mut s);
        s
    });
    let code = loop {
        if let Some(status) = guard.0.try_wait().unwrap() {
            break status.code();
        }
        if start.elapsed() > limit {
            let _ = guard.0.kill();
            panic!("{program} {args:?} still running after {limit:?}");
        }
        thread::sleep(Duration::from_millis(2));
    };
    let elapsed = start.elapsed();
    Run {
        code,
        stdout: String::from_utf8_lossy(&t_out.join().unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&t_err.join().unwrap()).into_owned(),
        elapsed,
        pid,
    }
}

/// Runs our binary with a 30 s limit.
pub fn source(args: &[&str]) -> Run {
    run_program(bin(), args, Duration::from_secs(30))
}

/// Replaces the value of the Date header with "DATE" (after checking it
/// looks like Postfix's) and the Message-Id pid with "PID".
pub fn normalize(text: &str, pid: u32) -> String {
    let pid_hex = format!("<{pid:04x}.");
    let mut out = String::new();
    for line in text.split_inclusive("\r\n") {
        if let Some(rest) = line.strip_prefix("Date: ") {
            // "Sat, 01 Nov 2026 22:15:46 +0000 (UTC)"
            let parts: Vec<&str> = rest.trim_end().split(' ').collect();
            assert!(parts.len() >= 6, "odd Date: {rest}");
            assert!(parts[0].ends_with(','), "odd Date: {rest}");
            assert_eq!(parts[1].len(), 2, "two-digit day: {rest}");
            out.push_str("Date: DATE\r\n");
        } else {
            out.push_str(&line.replace(&pid_hex, "<PID."));
        }
    }
    out
}

/// Whether a file exists and is executable (a Postfix peer).
pub fn have(path: &str) -> bool {
    Path::new(path).exists()
}

/// Skips (locally) or fails (in CI) when a peer is missing.
pub fn require(path: &str) -> bool {
    if have(path) {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{path} is required in CI (install postfix)");
    }
    eprintln!("skipping: {path} not installed");
    false
}

pub fn tmp_file(dir: &Path, name: &str, content: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, content).unwrap();
    p
}
