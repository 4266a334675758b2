//! smtp-sink's memory bounds (docs/smtp-sink.md, "Memory"), measured on
//! the real binary: raw TCP clients on loopback drive it, and the sink's
//! peak resident set (VmHWM in /proc/PID/status) must stay under the
//! documented bound. Also: several sink processes sharing one `-D` file
//! never interleave their records.
//!
//! The bounds are generous for a loaded machine, yet far below what the
//! sink used before they existed (a 200 MB message with `-D`: 206 MB;
//! 256 sessions in the middle of 7 MB messages with `-D`: about 2 GB).
//! Nothing here depends on speed: waits are bounded but long, and the
//! assertions are on bytes and counts.
//!
//! The tests run one at a time (each starts its own sinks and sends up to
//! 1.8 GB), so that their peaks do not add up on a small machine.

mod support;

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::Path;
use std::sync::{Arc, Barrier, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use support::{dump_dir, files_in, start_sink, Killed};

const MIB: u64 = 1 << 20;

/// The documented bounds this file checks, in bytes of peak RSS.
/// One message of any size, with or without a dump.
const ONE_MESSAGE_BOUND: u64 = 64 * MIB;
/// 256 sessions in the middle of 7 MB messages with `-D`: the 64 MiB
/// budget plus what each open session may hold.
const OPEN_RECORDS_BOUND: u64 = 160 * MIB;
/// 2,000 sessions that trickle bytes or say nothing.
const SLOWLORIS_BOUND: u64 = 96 * MIB;

/// How long any reply or wait may take on a loaded machine.
const PATIENCE: Duration = Duration::from_secs(120);

static SERIAL: Mutex<()> = Mutex::new(());

fn one_at_a_time() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A field of /proc/PID/status, in bytes (the kernel writes kB).
fn status_bytes(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("{field} in {status}"));
    let kb: u64 = line[field.len()..]
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .expect("kB");
    kb * 1024
}

/// The sink's peak resident set since it started.
fn peak_rss(sink: &Killed) -> u64 {
    status_bytes(sink.0.id(), "VmHWM:")
}

fn assert_peak_under(sink: &Killed, bound: u64, what: &str) {
    let peak = peak_rss(sink);
    eprintln!("{what}: peak RSS {:.1} MiB", peak as f64 / MIB as f64);
    assert!(
        peak < bound,
        "{what}: peak RSS {peak} bytes, over the bound of {bound}"
    );
}

/// The TCP sockets of this network namespace from /proc/net/tcp and tcp6:
/// (local port, remote port, state, tx_queue, rx_queue).
fn tcp_sockets() -> Vec<(u16, u16, u8, u64, u64)> {
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            let port = |addr: &str| u16::from_str_radix(addr.rsplit(':').next().unwrap(), 16);
            let (Ok(local), Ok(remote)) = (port(f[1]), port(f[2])) else {
                continue;
            };
            let state = u8::from_str_radix(f[3], 16).unwrap();
            let (tx, rx) = f[4].split_once(':').unwrap();
            out.push((
                local,
                remote,
                state,
                u64::from_str_radix(tx, 16).unwrap(),
                u64::from_str_radix(rx, 16).unwrap(),
            ));
        }
    }
    out
}

const ESTABLISHED: u8 = 0x01;
const LISTEN: u8 = 0x0a;

/// Waits until `sessions` connections to `port` are established and the
/// sink has read everything they sent: nothing waits in a client's send
/// queue or in the sink's receive queue. (Socket buffers can hold several
/// megabytes, so "written" is not "read by the sink".)
fn wait_all_read(port: u16, sessions: usize) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let sockets = tcp_sockets();
        let sink_side: Vec<_> = sockets
            .iter()
            .filter(|s| s.0 == port && s.2 == ESTABLISHED)
            .collect();
        let unread: u64 = sink_side.iter().map(|s| s.4).sum();
        let unsent: u64 = sockets
            .iter()
            .filter(|s| s.1 == port && s.2 == ESTABLISHED)
            .map(|s| s.3)
            .sum();
        if sink_side.len() >= sessions && unread == 0 && unsent == 0 {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{} sessions, {unread} bytes unread, {unsent} unsent",
            sink_side.len()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A raw client: commands and replies, and content written as it is.
struct Client {
    r: BufReader<TcpStream>,
    w: TcpStream,
}

impl Client {
    /// Connects and reads the greeting.
    fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        stream.set_read_timeout(Some(PATIENCE)).unwrap();
        stream.set_write_timeout(Some(PATIENCE)).unwrap();
        let w = stream.try_clone().unwrap();
        let mut c = Client {
            r: BufReader::with_capacity(512, stream),
            w,
        };
        let greeting = c.reply();
        assert!(greeting.starts_with("220"), "{greeting}");
        c
    }

    /// One reply, all its lines.
    fn reply(&mut self) -> String {
        let mut text = String::new();
        loop {
            let mut line = String::new();
            let n = self.r.read_line(&mut line).expect("read reply");
            assert!(n > 0, "connection closed after {text:?}");
            text.push_str(&line);
            if line.len() < 4 || line.as_bytes()[3] != b'-' {
                return text;
            }
        }
    }

    fn command(&mut self, line: &str, want: &str) {
        self.w.write_all(line.as_bytes()).expect("write command");
        let reply = self.reply();
        assert!(reply.starts_with(want), "{line:?} got {reply:?}");
    }

    /// EHLO, MAIL, RCPT, DATA: ready for the content of message `id`.
    fn start_data(&mut self, id: u64) {
        self.command("EHLO t\r\n", "250");
        self.command(&format!("MAIL FROM:<m{id}@t>\r\n"), "250");
        self.command("RCPT TO:<r@t>\r\n", "250");
        self.command("DATA\r\n", "354");
    }

    fn send(&mut self, bytes: &[u8]) {
        self.w.write_all(bytes).expect("write content");
    }

    /// Ends the content; returns the reply to it.
    fn end_data(&mut self) -> String {
        self.send(b".\r\n");
        self.reply()
    }

    fn quit(mut self) {
        let _ = self.w.write_all(b"QUIT\r\n");
        let _ = self.w.shutdown(Shutdown::Write);
        let mut rest = Vec::new();
        let _ = self.r.read_to_end(&mut rest);
    }
}

/// The messages of this file: message `id` is `lines` lines of
/// `LINE_LEN` bytes (its id in 8 digits, then x, then CR LF), in the dump
/// one byte shorter each (no CR).
const LINE_LEN: usize = 80;
/// Lines written (and compared) at a time.
const BLOCK_LINES: usize = 819;

fn block(id: u64, lines: usize, crlf: bool) -> Vec<u8> {
    let mut line = format!("{id:08}").into_bytes();
    line.resize(LINE_LEN - 2, b'x');
    if crlf {
        line.push(b'\r');
    }
    line.push(b'\n');
    line.repeat(lines)
}

/// Lines of a message of about `bytes` bytes.
fn lines_for(bytes: u64) -> usize {
    usize::try_from(bytes).unwrap().div_ceil(LINE_LEN)
}

/// Sends the content of message `id` (not the end of data).
fn send_lines(c: &mut Client, id: u64, lines: usize) {
    let full = block(id, BLOCK_LINES, true);
    let mut left = lines;
    while left >= BLOCK_LINES {
        c.send(&full);
        left -= BLOCK_LINES;
    }
    c.send(&block(id, left, true));
}

/// One whole message on a new connection; returns the reply to its end.
fn send_message(port: u16, id: u64, lines: usize) -> String {
    let mut c = Client::connect(port);
    c.start_data(id);
    send_lines(&mut c, id, lines);
    let reply = c.end_data();
    c.quit();
    reply
}

/// What a dump file holds: the records' message ids in order, and how
/// many records each `-h` name wrote.
#[derive(Debug, Default)]
struct Records {
    ids: Vec<u64>,
    by_host: HashMap<String, usize>,
}

fn line_of(r: &mut impl BufRead, what: &str) -> Vec<u8> {
    let mut line = Vec::new();
    r.read_until(b'\n', &mut line).expect("read dump");
    assert!(line.ends_with(b"\n"), "{what}: cut short: {line:?}");
    line
}

fn expect_prefix<'a>(line: &'a [u8], prefix: &str) -> &'a [u8] {
    assert!(
        line.starts_with(prefix.as_bytes()),
        "expected {prefix:?}, found {:?}",
        String::from_utf8_lossy(&line[..line.len().min(200)])
    );
    &line[prefix.len()..line.len() - 1]
}

/// Reads the dump at `path` record by record, without holding it in
/// memory, and checks every record is whole: the head lines this file's
/// clients produce, the Received header, exactly `lines[id]` lines of
/// message `id`, the empty line. Any interleaving breaks one of these.
fn read_records(path: &Path, lines: &HashMap<u64, usize>) -> Records {
    let mut r = BufReader::with_capacity(1 << 20, File::open(path).expect("open dump"));
    let mut out = Records::default();
    let mut got = vec![0; BLOCK_LINES * (LINE_LEN - 1)];
    while !r.fill_buf().expect("read dump").is_empty() {
        let at = out.ids.len();
        let what = format!("record {at}");
        expect_prefix(&line_of(&mut r, &what), "X-Client-Addr: 127.0.0.1");
        expect_prefix(&line_of(&mut r, &what), "X-Client-Proto: ESMTP");
        expect_prefix(&line_of(&mut r, &what), "X-Helo-Args: t");
        let mail = line_of(&mut r, &what);
        let id: u64 = std::str::from_utf8(expect_prefix(&mail, "X-Mail-Args: <m"))
            .unwrap()
            .trim_end_matches("@t>")
            .parse()
            .expect("message id");
        expect_prefix(&line_of(&mut r, &what), "X-Rcpt-Args: <r@t>");
        expect_prefix(&line_of(&mut r, &what), "Received: from t ([127.0.0.1])");
        let by = line_of(&mut r, &what);
        let host = String::from_utf8(expect_prefix(&by, "\tby ").to_vec()).unwrap();
        let host = host.split(' ').next().unwrap().to_owned();
        expect_prefix(&line_of(&mut r, &what), "\t");
        let want_lines = *lines
            .get(&id)
            .unwrap_or_else(|| panic!("{what}: message {id} was never sent"));
        let full = block(id, BLOCK_LINES, false);
        let mut left = want_lines;
        while left > 0 {
            let n = left.min(BLOCK_LINES);
            let got = &mut got[..n * (LINE_LEN - 1)];
            r.read_exact(got).expect("record cut short");
            if let Some(at) = got.iter().zip(&full).position(|(a, b)| a != b) {
                let from = at.saturating_sub(100);
                panic!(
                    "{what} (message {id}) is not whole, from byte {at} of a block: {:?}",
                    String::from_utf8_lossy(&got[from..got.len().min(at + 100)])
                );
            }
            left -= n;
        }
        assert_eq!(line_of(&mut r, &what), b"\n", "{what}: no empty line");
        out.ids.push(id);
        *out.by_host.entry(host).or_default() += 1;
    }
    out
}

/// One 200 MB message; `dump` is none, `-d` or `-D`.
fn one_big_message(dump: Option<&str>) {
    let _serial = one_at_a_time();
    let dir = dump_dir();
    let port = support::free_port();
    let mut args = vec![];
    let template = match dump {
        Some("-d") => format!("{}/m.", dir.path().display()),
        _ => format!("{}/shared", dir.path().display()),
    };
    if let Some(flag) = dump {
        args.extend([flag, template.as_str()]);
    }
    let sink = start_sink(&args, port);
    let lines = lines_for(200_000_000);
    assert_eq!(send_message(port, 1, lines).get(..3), Some("250"));
    assert_peak_under(&sink, ONE_MESSAGE_BOUND, &format!("200 MB, {dump:?}"));
    drop(sink);
    if dump.is_some() {
        let files = files_in(dir.path());
        assert_eq!(files.len(), 1, "{files:?}");
        let records = read_records(&files[0], &HashMap::from([(1, lines)]));
        assert_eq!(records.ids, [1]);
    }
}

#[test]
fn a_200_mb_message_without_dump() {
    one_big_message(None);
}

#[test]
fn a_200_mb_message_with_per_message_dump_files() {
    one_big_message(Some("-d"));
}

#[test]
fn a_200_mb_message_with_a_shared_dump_file() {
    one_big_message(Some("-D"));
}

/// 256 sessions hold 7 MB messages open at once with `-D`: every one is
/// past the point where the sink has read it all, then they end. Without
/// the process-wide budget each would hold its record in memory.
#[test]
fn open_shared_dump_records_share_one_budget() {
    let _serial = one_at_a_time();
    const SESSIONS: u64 = 256;
    let dir = dump_dir();
    let port = support::free_port();
    let template = format!("{}/shared", dir.path().display());
    let sink = start_sink(&["-m", "512", "-D", &template], port);
    let lines = lines_for(7_000_000);
    let all_sent = Arc::new(Barrier::new(usize::try_from(SESSIONS).unwrap() + 1));
    let all_read = Arc::new(Barrier::new(usize::try_from(SESSIONS).unwrap() + 1));
    let clients: Vec<_> = (0..SESSIONS)
        .map(|id| {
            let (all_sent, all_read) = (all_sent.clone(), all_read.clone());
            std::thread::spawn(move || {
                let mut c = Client::connect(port);
                c.start_data(id);
                send_lines(&mut c, id, lines);
                all_sent.wait();
                all_read.wait();
                let reply = c.end_data();
                c.quit();
                reply
            })
        })
        .collect();
    all_sent.wait();
    wait_all_read(port, usize::try_from(SESSIONS).unwrap());
    let open_peak = peak_rss(&sink);
    all_read.wait();
    for c in clients {
        let reply = c.join().expect("client");
        assert!(reply.starts_with("250"), "{reply}");
    }
    eprintln!(
        "256 open 7 MB records: peak RSS {:.1} MiB while open",
        open_peak as f64 / MIB as f64
    );
    assert_peak_under(&sink, OPEN_RECORDS_BOUND, "256 open 7 MB records, -D");
    drop(sink);
    let sent: HashMap<u64, usize> = (0..SESSIONS).map(|id| (id, lines)).collect();
    let records = read_records(&dir.path().join("shared"), &sent);
    let mut ids = records.ids.clone();
    ids.sort_unstable();
    assert_eq!(ids, (0..SESSIONS).collect::<Vec<_>>());
    // The temporary files were unlinked: only the shared file is left.
    assert_eq!(files_in(dir.path()).len(), 1);
}

/// Raises this process's soft limit on open files to `want` if it is
/// lower (the sinks started afterwards inherit it).
fn at_least_open_files(want: u64) {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).expect("getrlimit");
    if soft < want {
        assert!(hard >= want, "the hard limit on open files is {hard}");
        setrlimit(Resource::RLIMIT_NOFILE, want, hard).expect("setrlimit");
    }
}

/// 2,000 connections that say nothing, or trickle a byte now and then
/// into a command line or a message, with `-m 2500`.
#[test]
fn two_thousand_slowloris_connections() {
    let _serial = one_at_a_time();
    const CONNECTIONS: usize = 2000;
    at_least_open_files(3 * CONNECTIONS as u64);
    let port = support::free_port();
    let sink = start_sink(&["-m", "2500"], port);
    let mut clients: Vec<Client> = (0..CONNECTIONS).map(|_| Client::connect(port)).collect();
    for (k, c) in clients.iter_mut().enumerate() {
        match k % 4 {
            // Silent after the greeting.
            0 => {}
            // A command line that never ends.
            1 => c.send(b"EHLO slow"),
            // A message that never ends (the replies are not read).
            2 => c.send(b"EHLO t\r\nMAIL FROM:<s@t>\r\nRCPT TO:<r@t>\r\nDATA\r\nSubject: slow\r\n"),
            // A MAIL command arriving a byte at a time.
            _ => c.send(b"EHLO t\r\nM"),
        }
    }
    for round in 0..5 {
        for (k, c) in clients.iter_mut().enumerate() {
            match k % 4 {
                0 => {}
                1 => c.send(b"w"),
                2 => c.send(if round % 2 == 0 { b"y" } else { b"\n" }),
                _ => c.send(&b"AIL FROM:<slow@t>"[round..=round]),
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    wait_all_read(port, CONNECTIONS);
    // The sink still serves a client that means business.
    assert_eq!(send_message(port, 7, 100).get(..3), Some("250"));
    assert_peak_under(&sink, SLOWLORIS_BOUND, "2000 slowloris connections");
    drop(clients);
}

/// A 10 MB line: as a command it ends the session without a reply (the
/// sink drops a command line once 2048 bytes have no line end); inside a
/// message with `-D` it is received and dumped whole.
#[test]
fn a_ten_megabyte_line() {
    let _serial = one_at_a_time();
    let dir = dump_dir();
    let port = support::free_port();
    let template = format!("{}/shared", dir.path().display());
    let sink = start_sink(&["-D", &template], port);
    let line = vec![b'y'; 10_000_000];

    let mut c = Client::connect(port);
    // The sink closes while this is being written: a write error is fine.
    let _ = c.w.write_all(&line);
    let mut rest = Vec::new();
    match c.r.read_to_end(&mut rest) {
        Ok(_) => assert_eq!(rest, b"", "no reply to an over-long command line"),
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}"),
    }

    let mut c = Client::connect(port);
    c.start_data(1);
    c.send(&line);
    c.send(b"\r\n");
    let reply = c.end_data();
    assert!(reply.starts_with("250"), "{reply}");
    c.quit();
    assert_peak_under(&sink, ONE_MESSAGE_BOUND, "10 MB lines");
    drop(sink);
    let data = std::fs::read(dir.path().join("shared")).expect("dump");
    let body_at = data.windows(2).position(|w| w == b"\ny").expect("body") + 1;
    assert_eq!(data.len() - body_at, line.len() + 2);
    assert!(data[body_at..body_at + line.len()]
        .iter()
        .all(|&b| b == b'y'));
    assert!(data.ends_with(b"y\n\n"));
}

/// Four sink processes on one port (SO_REUSEPORT) append to one `-D`
/// file. Many clients at once send small, medium and 9 MB messages (past
/// the spill size, so their records are copied in pieces): every record
/// in the file is whole, and there is one for each 250.
#[test]
fn four_sinks_share_one_dump_file_without_interleaving() {
    let _serial = one_at_a_time();
    const SINKS: usize = 4;
    const CLIENTS: u64 = 16;
    const MESSAGES: u64 = 12;
    let dir = dump_dir();
    let port = support::free_port();
    let template = format!("{}/shared", dir.path().display());
    let names: Vec<String> = (0..SINKS).map(|n| format!("sink{n}")).collect();
    let sinks: Vec<Killed> = names
        .iter()
        .map(|name| start_sink(&["-h", name, "-D", &template], port))
        .collect();
    // Connecting proves only that one sink listens: wait for all four.
    let deadline = Instant::now() + PATIENCE;
    while tcp_sockets()
        .iter()
        .filter(|s| s.0 == port && s.2 == LISTEN)
        .count()
        < SINKS
    {
        assert!(Instant::now() < deadline, "not all sinks listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    let size = |id: u64| match id % MESSAGES {
        0 => 9_000_000,
        1 | 2 => 300_000,
        n => 200 * n,
    };
    let start = Arc::new(Barrier::new(usize::try_from(CLIENTS).unwrap()));
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let start = start.clone();
            std::thread::spawn(move || {
                start.wait();
                (0..MESSAGES)
                    .map(|m| client * MESSAGES + m)
                    .filter(|&id| send_message(port, id, lines_for(size(id))).starts_with("250"))
                    .count()
            })
        })
        .collect();
    let acked: usize = clients.into_iter().map(|c| c.join().expect("client")).sum();
    drop(sinks);
    let sent: HashMap<u64, usize> = (0..CLIENTS * MESSAGES)
        .map(|id| (id, lines_for(size(id))))
        .collect();
    let records = read_records(&dir.path().join("shared"), &sent);
    assert_eq!(acked, sent.len(), "every message got 250");
    assert_eq!(records.ids.len(), acked);
    let mut ids = records.ids.clone();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), acked, "a record was written twice");
    let mut hosts: Vec<_> = records.by_host.keys().cloned().collect();
    hosts.sort();
    assert_eq!(
        hosts, names,
        "every sink wrote records: {:?}",
        records.by_host
    );
}
