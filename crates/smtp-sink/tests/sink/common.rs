//! Helpers: start sinks (ours and Postfix's) on free ports or unix
//! sockets, wait for them to listen, talk to them, and clean up.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub(crate) const OURS: &str = env!("CARGO_BIN_EXE_smtp-sink");
pub(crate) const POSTFIX_SINK: &str = "/usr/sbin/smtp-sink";
pub(crate) const POSTFIX_SOURCE: &str = "/usr/sbin/smtp-source";

/// Whether a peer program is installed. In CI a missing peer fails the
/// test; elsewhere the test prints a notice and is skipped.
pub(crate) fn have(tool: &str) -> bool {
    let found = if tool.contains('/') {
        Path::new(tool).exists()
    } else {
        std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(tool).exists()))
            .unwrap_or(false)
            || Path::new("/usr/sbin").join(tool).exists()
    };
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "test peer {tool} is missing (CI is set, so this is a failure)"
        );
        eprintln!("SKIP: {tool} is not installed");
    }
    found
}

pub(crate) fn is_root() -> bool {
    nix::unistd::geteuid().is_root()
}

/// A port that is free now, below the kernel's ephemeral range (so that
/// no client socket of a busy test can take it before the sink binds), and
/// never handed out twice by this process.
pub(crate) fn free_port() -> u16 {
    use std::sync::atomic::{AtomicU32, Ordering};
    use std::sync::Mutex;
    static HANDED: Mutex<Vec<u16>> = Mutex::new(Vec::new());
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let ephemeral_low: u32 = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|t| t.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768);
    let (lo, hi) = (10_000u32, ephemeral_low.max(12_000));
    let seed = std::process::id().wrapping_mul(2_654_435_761)
        ^ std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
    for _ in 0..10_000 {
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let port = u16::try_from(lo + seed.wrapping_add(n.wrapping_mul(7919)) % (hi - lo))
            .expect("below 65536");
        let mut handed = HANDED.lock().expect("lock");
        if handed.contains(&port) || listeners(port) > 0 {
            continue;
        }
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            handed.push(port);
            return port;
        }
    }
    panic!("no free port found");
}

/// How many sockets listen on `port` (IPv4 and IPv6).
pub(crate) fn listeners(port: u16) -> usize {
    let want = format!(":{port:04X}");
    ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .map(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .lines()
                .filter(|l| {
                    let cols: Vec<&str> = l.split_whitespace().collect();
                    cols.len() > 3 && cols[1].ends_with(&want) && cols[3] == "0A"
                })
                .count()
        })
        .sum()
}

/// A temporary directory that the sink can write to after dropping to
/// nobody.
pub(crate) fn open_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut perm = std::fs::metadata(dir.path()).expect("meta").permissions();
    std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o777);
    std::fs::set_permissions(dir.path(), perm).expect("chmod");
    dir
}

/// Where a sink listens.
#[derive(Debug, Clone)]
pub(crate) enum Addr {
    Tcp(String),
    Unix(PathBuf),
}

impl Addr {
    /// The address argument for sinks and smtp-source.
    pub(crate) fn arg(&self) -> String {
        match self {
            Addr::Tcp(a) => a.clone(),
            Addr::Unix(p) => format!("unix:{}", p.display()),
        }
    }
}

/// A running sink; killed and reaped on drop.
pub(crate) struct Sink {
    pub(crate) child: Option<Child>,
    pub(crate) addr: Addr,
    _dir: Option<tempfile::TempDir>,
    out: tempfile::NamedTempFile,
}

impl Sink {
    /// What the sink wrote to stdout so far.
    pub(crate) fn stdout(&self) -> String {
        std::fs::read_to_string(self.out.path()).unwrap_or_default()
    }

    /// The last `-c` counters line, as (sess, quit, mesg).
    pub(crate) fn counters(&self) -> Option<(u64, u64, u64)> {
        let text = self.stdout();
        let last = text.split('\r').rfind(|l| !l.is_empty())?.to_owned();
        let mut v = last
            .split(' ')
            .map(|kv| kv.split('=').nth(1).and_then(|n| n.parse().ok()));
        Some((v.next()??, v.next()??, v.next()??))
    }

    /// Waits (bounded) until the counters satisfy `pred`.
    pub(crate) fn wait_counters(
        &self,
        pred: impl Fn((u64, u64, u64)) -> bool,
    ) -> Option<(u64, u64, u64)> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let c = self.counters();
            if c.is_some_and(&pred) || Instant::now() > deadline {
                return c;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Sink {
    fn drop(&mut self) {
        if let Some(child) = &mut self.child {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn with_user(args: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    if is_root() && !args.contains(&"-u") {
        v.extend(["-u".to_owned(), "nobody".to_owned()]);
    }
    v.extend(args.iter().map(|s| (*s).to_owned()));
    v
}

/// Starts `program` with `args` on a fresh loopback port. Sinks set
/// SO_REUSEPORT, so a port that another process took at the same moment
/// would be shared silently: such a start is retried on another port.
pub(crate) fn start(program: &str, args: &[&str]) -> Sink {
    for _ in 0..5 {
        let port = free_port();
        let addr = Addr::Tcp(format!("127.0.0.1:{port}"));
        if let Some(sink) = try_start_at(program, args, addr, None) {
            if listeners(port) == 1 {
                return sink;
            }
        }
    }
    panic!("could not get a port of our own");
}

/// Starts `program` on a unix socket in a new temporary directory.
pub(crate) fn start_unix(program: &str, args: &[&str]) -> Sink {
    let dir = open_dir();
    let path = dir.path().join("sink.sock");
    start_at(program, args, Addr::Unix(path), Some(dir))
}

pub(crate) fn start_at(
    program: &str,
    args: &[&str],
    addr: Addr,
    dir: Option<tempfile::TempDir>,
) -> Sink {
    let shown = format!("{addr:?}");
    try_start_at(program, args, addr, dir).unwrap_or_else(|| panic!("nothing listens on {shown}"))
}

/// Starts a sink and waits (bounded) until it listens; `None` if it
/// exited first or never listened.
pub(crate) fn try_start_at(
    program: &str,
    args: &[&str],
    addr: Addr,
    dir: Option<tempfile::TempDir>,
) -> Option<Sink> {
    let mut argv = with_user(args);
    argv.push(addr.arg());
    argv.push("100".to_owned());
    let out = tempfile::NamedTempFile::new().expect("stdout file");
    let child = Command::new(program)
        .args(&argv)
        .stdin(Stdio::null())
        .stdout(out.reopen().expect("reopen stdout file"))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {program}: {e}"));
    let mut sink = Sink {
        child: Some(child),
        addr,
        _dir: dir,
        out,
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if is_listening(&sink.addr) {
            return Some(sink);
        }
        let exited = sink
            .child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(Some(_))));
        if exited {
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// Whether the address is in the LISTEN state (checked without
/// connecting: a probe connection would count as a session).
fn is_listening(addr: &Addr) -> bool {
    match addr {
        Addr::Tcp(a) => {
            let port: u16 = a
                .rsplit(':')
                .next()
                .and_then(|p| p.parse().ok())
                .expect("port");
            listeners(port) > 0
        }
        Addr::Unix(p) => {
            let path = p.to_string_lossy().into_owned();
            std::fs::read_to_string("/proc/net/unix")
                .unwrap_or_default()
                .lines()
                .any(|l| l.ends_with(&path) && l.split_whitespace().nth(3) == Some("00010000"))
        }
    }
}

/// A client connection.
pub(crate) enum Client {
    Tcp(TcpStream),
    Unix(UnixStream),
}

impl Client {
    pub(crate) fn connect(addr: &Addr) -> Client {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let r = match addr {
                Addr::Tcp(a) => TcpStream::connect(a).map(Client::Tcp),
                Addr::Unix(p) => UnixStream::connect(p).map(Client::Unix),
            };
            match r {
                Ok(c) => return c,
                Err(e) if Instant::now() < deadline => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(e) => panic!("connect {addr:?}: {e}"),
            }
        }
    }

    fn set_timeout(&self, t: Duration) {
        let _ = match self {
            Client::Tcp(s) => s.set_read_timeout(Some(t)),
            Client::Unix(s) => s.set_read_timeout(Some(t)),
        };
    }

    pub(crate) fn send(&mut self, data: &[u8]) -> bool {
        match self {
            Client::Tcp(s) => s.write_all(data).is_ok(),
            Client::Unix(s) => s.write_all(data).is_ok(),
        }
    }

    /// Reads until `quiet` passes with no data. Returns the bytes and
    /// whether the server closed.
    pub(crate) fn read_quiet(&mut self, quiet: Duration) -> (Vec<u8>, bool) {
        self.set_timeout(quiet);
        let mut out = Vec::new();
        let mut buf = [0u8; 65536];
        loop {
            let r = match self {
                Client::Tcp(s) => s.read(&mut buf),
                Client::Unix(s) => s.read(&mut buf),
            };
            match r {
                Ok(0) => return (out, true),
                Ok(n) => out.extend_from_slice(&buf[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return (out, false)
                }
                // A signal (a child exiting, say) is not the server closing.
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return (out, true),
            }
        }
    }

    /// Reads until `want` bytes have arrived, the server closes, or
    /// `limit` passes.
    pub(crate) fn read_until(
        &mut self,
        pred: impl Fn(&[u8]) -> bool,
        limit: Duration,
    ) -> (Vec<u8>, bool) {
        let deadline = Instant::now() + limit;
        let mut out = Vec::new();
        while Instant::now() < deadline {
            let (more, closed) = self.read_quiet(Duration::from_millis(20));
            out.extend_from_slice(&more);
            if closed {
                return (out, true);
            }
            if pred(&out) {
                return (out, false);
            }
        }
        (out, false)
    }
}

/// How long to wait for replies that are not coming.
pub(crate) const QUIET: Duration = Duration::from_millis(150);

/// Reads one round of replies: waits (bounded) for the first byte, then
/// until the server has been quiet for [`QUIET`] or has closed. The bound
/// on the first byte keeps a loaded machine from splitting the rounds.
pub(crate) fn read_round(c: &mut Client) -> (Vec<u8>, bool) {
    let (mut out, closed) = c.read_until(|b| !b.is_empty(), Duration::from_secs(3));
    if closed {
        return (out, true);
    }
    let (more, closed) = c.read_quiet(QUIET);
    out.extend_from_slice(&more);
    (out, closed)
}

/// Runs a scripted conversation: after connecting and after each chunk,
/// collects the replies (see [`read_round`]). Returns all the reply bytes,
/// with `<EOF>` appended when the server closed.
pub(crate) fn converse(addr: &Addr, chunks: &[&[u8]]) -> Vec<u8> {
    let mut c = Client::connect(addr);
    let (mut out, mut closed) = read_round(&mut c);
    for chunk in chunks {
        if closed || !c.send(chunk) {
            break;
        }
        let (more, cl) = read_round(&mut c);
        out.extend_from_slice(&more);
        closed = cl;
    }
    if !closed {
        // A close may lag on a loaded machine: give it a little longer.
        let (more, cl) = c.read_until(|_| false, Duration::from_millis(600));
        out.extend_from_slice(&more);
        closed = cl;
    }
    if closed {
        out.extend_from_slice(b"<EOF>");
    }
    out
}

/// Waits (bounded) for a sink to exit and returns its output.
pub(crate) fn wait_exit(sink: &mut Sink, limit: Duration) -> Option<Output> {
    let deadline = Instant::now() + limit;
    let child = sink.child.as_mut().expect("child");
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            let child = sink.child.take().expect("child");
            return child.wait_with_output().ok();
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Stops a sink and returns what it printed.
pub(crate) fn stop(sink: &mut Sink) -> Output {
    let mut child = sink.child.take().expect("child");
    let _ = child.kill();
    child.wait_with_output().expect("wait")
}

/// Shows bytes readably in assertion messages.
pub(crate) fn show(b: &[u8]) -> String {
    String::from_utf8_lossy(b)
        .replace('\r', "\\r")
        .replace('\n', "\\n\n")
}
