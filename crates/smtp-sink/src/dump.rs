//! `-d`/`-D` dump files: Postfix's names, record format and life cycle.
//!
//! With `-d` a transaction's record goes to a file created at MAIL time,
//! named `strftime(template, MAIL time)` plus 8 hex digits, created with
//! O_EXCL (a new number on a clash, parent directories made on demand); an
//! aborted transaction removes it. Only a [`FILE_BUFFER`] write buffer is
//! held per record, never the message.
//!
//! With `-D` the finished record is appended whole to
//! `strftime(template, MAIL time)`. Postfix builds the record in an
//! unlinked temporary file and opens, appends and closes the shared file
//! for every message: about nine system calls, two of them directory
//! changes. Here a record is kept in memory while it is small, and each
//! thread keeps the shared file open, checking with one `stat` per record
//! that the path still names it, so a file that was moved or removed is
//! reopened as Postfix would. The bytes written are the same.
//!
//! Memory is bounded twice: a record moves to an unlinked temporary file
//! (it "spills") once it passes [`SPILL_AT`], or as soon as growing it
//! would take the process's open records past [`MEMORY_BUDGET`] together.
//! A spilled record is copied into the shared file in [`COPY_PIECE`]
//! pieces, never read back whole.
//!
//! Records never interleave, whichever thread or process appends them:
//! every append holds an exclusive flock(2) on the shared file (see
//! [`append_shared`]).
//!
//! The record (see docs/smtp-sink.md) is built by [`crate::conversation`]
//! with the helpers at the end of this file.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use memchr::memchr;
use rand::RngCore;
use smtp_proto::time::{mail_date, LocalTime};

use crate::config::DumpConfig;

/// A `-D` record larger than this moves from memory to a temporary file.
pub const SPILL_AT: usize = 8 << 20;

/// The memory all open `-D` records of the process may hold together. A
/// record whose growth would pass it spills, however small it is. 64 MiB
/// holds 256 concurrent records of 256 KiB (the default `-m`), so typical
/// load tests never touch the disk before the append, while 256 sessions
/// in the middle of 7 MB messages no longer hold 2 GB.
pub const MEMORY_BUDGET: usize = 64 << 20;

/// The write buffer of a `-d` file and of a spilled `-D` record.
pub const FILE_BUFFER: usize = 32 << 10;

/// The piece size in which a spilled record is copied into the shared
/// file: large enough that a 200 MB record costs 800 reads and writes,
/// small enough to be nothing next to the budget. Allocated only for the
/// copy, one at a time per thread (the copy never yields to other tasks).
pub const COPY_PIECE: usize = 256 << 10;

/// A record starts with room for its head lines and a small message.
const FIRST_CAPACITY: usize = 4096;

/// Bytes of record memory handed out, against a fixed limit. One per
/// process ([`PROCESS_BUDGET`]); the unit tests make their own.
#[derive(Debug)]
pub struct MemoryBudget {
    limit: usize,
    held: AtomicUsize,
}

impl MemoryBudget {
    /// A budget of `limit` bytes, none handed out.
    pub const fn new(limit: usize) -> MemoryBudget {
        MemoryBudget {
            limit,
            held: AtomicUsize::new(0),
        }
    }

    /// Takes `n` bytes if that keeps the total within the limit.
    fn take(&self, n: usize) -> bool {
        self.held
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                held.checked_add(n).filter(|&total| total <= self.limit)
            })
            .is_ok()
    }

    fn give_back(&self, n: usize) {
        self.held.fetch_sub(n, Ordering::Relaxed);
    }

    /// Bytes handed out now.
    pub fn held(&self) -> usize {
        self.held.load(Ordering::Relaxed)
    }
}

/// The budget every session of the process shares.
pub static PROCESS_BUDGET: MemoryBudget = MemoryBudget::new(MEMORY_BUDGET);

/// A `-D` record's bytes in memory, with the share of the budget its
/// buffer holds (given back when it is dropped).
#[derive(Debug)]
struct Budgeted {
    buf: Vec<u8>,
    taken: usize,
    budget: &'static MemoryBudget,
}

impl Budgeted {
    /// An empty record: [`FIRST_CAPACITY`] if the budget has it, else
    /// nothing (the first write then spills).
    fn new(budget: &'static MemoryBudget) -> Budgeted {
        let taken = if budget.take(FIRST_CAPACITY) {
            FIRST_CAPACITY
        } else {
            0
        };
        Budgeted {
            buf: Vec::with_capacity(taken),
            taken,
            budget,
        }
    }

    /// Appends `data` if the record stays within [`SPILL_AT`] and the
    /// budget can pay for any growth; false (nothing appended) otherwise.
    /// Growth doubles, as a Vec's does, but is paid for first and never
    /// past [`SPILL_AT`]; when the budget cannot pay for the double, it is
    /// asked for just what `data` needs.
    fn try_extend(&mut self, data: &[u8]) -> bool {
        let needed = self.buf.len() + data.len();
        if needed > SPILL_AT {
            return false;
        }
        if needed > self.taken {
            let doubled = (self.taken * 2).clamp(needed, SPILL_AT);
            let grown = [doubled, needed]
                .into_iter()
                .find(|&cap| self.budget.take(cap - self.taken));
            let Some(cap) = grown else {
                return false;
            };
            self.buf.reserve_exact(cap - self.buf.len());
            self.taken = cap;
        }
        self.buf.extend_from_slice(data);
        true
    }
}

impl Drop for Budgeted {
    fn drop(&mut self) {
        self.budget.give_back(self.taken);
    }
}

/// Where the records of one session go. The conversation calls
/// `begin` at MAIL, `write` for each piece, then `commit` or `abort`.
pub trait DumpSink {
    /// Starts a record for a transaction whose MAIL came at `mail_time`
    /// (Unix seconds). Returns the random id (`%08x` in names and headers).
    ///
    /// # Errors
    /// The file could not be created.
    fn begin(&mut self, mail_time: i64, rng: &mut dyn RngCore) -> io::Result<u32>;
    /// Appends bytes to the record.
    ///
    /// # Errors
    /// A write error.
    fn write(&mut self, data: &[u8]) -> io::Result<()>;
    /// Finishes the record (for `-D`, appends it to the shared file).
    ///
    /// # Errors
    /// A write, open or append error; the record may be incomplete.
    fn commit(&mut self) -> io::Result<()>;
    /// Drops the record (for `-d`, removes the file).
    fn abort(&mut self);
}

/// A record in progress.
#[derive(Debug)]
enum Record {
    /// `-d`: the dump file itself.
    File {
        file: BufWriter<File>,
        path: PathBuf,
    },
    /// `-D`: the record, kept until it is appended whole.
    Memory { buf: Budgeted, mail_time: i64 },
    /// `-D`, a record past [`SPILL_AT`] or the budget: an unlinked
    /// temporary file.
    Spilled {
        file: BufWriter<File>,
        mail_time: i64,
    },
}

/// The real dump: files on disk.
#[derive(Debug)]
pub struct FileDump {
    cfg: Arc<DumpConfig>,
    open: Option<Record>,
    budget: &'static MemoryBudget,
}

impl FileDump {
    /// A dump writer for one session, sharing [`PROCESS_BUDGET`].
    pub fn new(cfg: Arc<DumpConfig>) -> FileDump {
        FileDump::with_budget(cfg, &PROCESS_BUDGET)
    }

    /// A dump writer whose `-D` records share `budget`.
    pub fn with_budget(cfg: Arc<DumpConfig>, budget: &'static MemoryBudget) -> FileDump {
        FileDump {
            cfg,
            open: None,
            budget,
        }
    }
}

/// Creates the parent directories of `path` with mode 0755.
fn make_parent(path: &Path) -> io::Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => {
            DirBuilder::new().recursive(true).mode(0o755).create(parent)
        }
        _ => Ok(()),
    }
}

/// Expands the template at `time` in the process's time zone.
pub fn expand(template: &str, time: i64) -> String {
    LocalTime::from_unix(time).strftime(template)
}

/// Creates `base` plus 8 random hex digits with O_EXCL, as Postfix's
/// mail_file_open does: a new number on a clash, parents made on demand.
fn create_unique(base: &str, mut next_id: impl FnMut() -> u32) -> io::Result<(File, PathBuf, u32)> {
    for _ in 0..100 {
        // glibc's rand() is 31 bits wide: names stay 00000000-7fffffff.
        let id = next_id() & 0x7fff_ffff;
        let path = PathBuf::from(format!("{base}{id:08x}"));
        match OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o644)
            .open(&path)
        {
            Ok(file) => return Ok((file, path, id)),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => make_parent(&path)?,
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other("mail_file_open: something is looping"))
}

impl DumpSink for FileDump {
    fn begin(&mut self, mail_time: i64, rng: &mut dyn RngCore) -> io::Result<u32> {
        self.abort();
        if self.cfg.shared {
            let id = rng.next_u32() & 0x7fff_ffff;
            self.open = Some(Record::Memory {
                buf: Budgeted::new(self.budget),
                mail_time,
            });
            return Ok(id);
        }
        let base = expand(&self.cfg.template, mail_time);
        let (file, path, id) = create_unique(&base, || rng.next_u32())?;
        self.open = Some(Record::File {
            file: BufWriter::with_capacity(FILE_BUFFER, file),
            path,
        });
        Ok(id)
    }

    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        match &mut self.open {
            Some(Record::File { file, .. } | Record::Spilled { file, .. }) => file.write_all(data),
            Some(Record::Memory { buf, mail_time }) => {
                if buf.try_extend(data) {
                    return Ok(());
                }
                let mail_time = *mail_time;
                let mut file = spill(&self.cfg, mail_time, &buf.buf)?;
                file.write_all(data)?;
                // Dropping the memory record gives its share back.
                self.open = Some(Record::Spilled { file, mail_time });
                Ok(())
            }
            None => Err(io::Error::other("no dump file is open")),
        }
    }

    fn commit(&mut self) -> io::Result<()> {
        match self.open.take() {
            None => Err(io::Error::other("no dump file is open")),
            Some(Record::File { file, path }) => {
                let result = file
                    .into_inner()
                    .map(drop)
                    .map_err(io::IntoInnerError::into_error);
                if result.is_err() {
                    // A partial per-transaction file is not a dump of the message.
                    let _ = std::fs::remove_file(&path);
                }
                result
            }
            Some(Record::Memory { buf, mail_time }) => {
                let path = expand(&self.cfg.template, mail_time);
                append_shared(&path, Source::Memory(&buf.buf))
            }
            Some(Record::Spilled { file, mail_time }) => {
                let file = file.into_inner().map_err(io::IntoInnerError::into_error)?;
                let path = expand(&self.cfg.template, mail_time);
                append_shared(&path, Source::Spilled(&file))
            }
        }
    }

    fn abort(&mut self) {
        if let Some(Record::File { path, .. }) = self.open.take() {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Moves a `-D` record that grew too large (or found the budget spent)
/// into an unlinked temporary file beside the shared file, as Postfix
/// keeps every record.
fn spill(cfg: &DumpConfig, mail_time: i64, buf: &[u8]) -> io::Result<BufWriter<File>> {
    let base = expand(&cfg.template, mail_time);
    let (file, path, _) = create_unique(&base, rand::random::<u32>)?;
    std::fs::remove_file(&path)?;
    let mut file = BufWriter::with_capacity(FILE_BUFFER, file);
    file.write_all(buf)?;
    Ok(file)
}

/// Where a finished `-D` record is.
#[derive(Clone, Copy)]
enum Source<'a> {
    /// In memory: one write appends it.
    Memory(&'a [u8]),
    /// In a spilled temporary file (flushed), copied in pieces.
    Spilled(&'a File),
}

/// The shared file a thread keeps open, with the identity of the inode it
/// opened, so that a rename or removal of the path is noticed.
struct SharedFile {
    path: String,
    file: File,
    dev: u64,
    ino: u64,
}

thread_local! {
    static SHARED: RefCell<Option<SharedFile>> = const { RefCell::new(None) };
}

/// Appends a whole record to the shared file at `path`.
///
/// The rule that keeps records whole: every append, one write or many,
/// holds an exclusive flock(2) on the shared file from its first byte to
/// its last. A single O_APPEND write(2) is atomic with respect to other
/// appends, but a spilled record takes many writes, and an unlocked
/// single write from another thread or process could land between two of
/// them; so small records take the lock too. Threads keep their own open
/// file (flock belongs to the open file, so they exclude each other as
/// processes do), and a task never yields while it holds the lock. An
/// uncontended lock is two system calls per record.
fn append_shared(path: &str, record: Source<'_>) -> io::Result<()> {
    SHARED.with(|cell| {
        let mut cached = cell.borrow_mut();
        let still_there = cached.as_ref().is_some_and(|c| {
            c.path == path
                && std::fs::metadata(path).is_ok_and(|m| m.dev() == c.dev && m.ino() == c.ino)
        });
        if !still_there {
            *cached = None;
            let file = open_shared(Path::new(path))?;
            let meta = file.metadata()?;
            *cached = Some(SharedFile {
                path: path.to_owned(),
                file,
                dev: meta.dev(),
                ino: meta.ino(),
            });
        }
        let shared = cached.as_mut().expect("opened above");
        let result = Locked::new(&shared.file).and_then(|_lock| {
            let mut written = 0;
            let result = match record {
                Source::Memory(bytes) => write_counted(&shared.file, bytes, &mut written),
                Source::Spilled(from) => copy_pieces(from, &shared.file, &mut written),
            };
            // Still under the lock: no record of ours went in meanwhile.
            result.or_else(|e| roll_back(&shared.file, written, e))
        });
        if result.is_err() {
            // Open afresh next time rather than trust a file that failed.
            *cached = None;
        }
        result
    })
}

/// An exclusive flock(2) on a file, released when dropped.
struct Locked<'a>(&'a File);

impl<'a> Locked<'a> {
    fn new(file: &'a File) -> io::Result<Locked<'a>> {
        loop {
            // The function form, not nix's `Flock`: that one owns the
            // file and panics in drop if the unlock fails.
            #[allow(deprecated)]
            match nix::fcntl::flock(file.as_raw_fd(), nix::fcntl::FlockArg::LockExclusive) {
                Ok(()) => return Ok(Locked(file)),
                Err(nix::errno::Errno::EINTR) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

impl Drop for Locked<'_> {
    fn drop(&mut self) {
        // Cannot fail on an open file; closing it would release it anyway.
        #[allow(deprecated)]
        let _ = nix::fcntl::flock(self.0.as_raw_fd(), nix::fcntl::FlockArg::Unlock);
    }
}

/// Writes all of `bytes` at the end of `file`, adding what went in to
/// `written`.
fn write_counted(mut file: &File, bytes: &[u8], written: &mut usize) -> io::Result<()> {
    let mut done = 0;
    while done < bytes.len() {
        match file.write(&bytes[done..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => {
                done += n;
                *written += n;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// Copies the whole of `from` to the end of `to` in [`COPY_PIECE`]
/// pieces, counting what went in. (copy_file_range(2) and sendfile(2)
/// refuse an O_APPEND destination.)
fn copy_pieces(from: &File, to: &File, written: &mut usize) -> io::Result<()> {
    let mut piece = vec![0; COPY_PIECE];
    let mut at = 0u64;
    loop {
        let n = match from.read_at(&mut piece, at) {
            Ok(0) => return Ok(()),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        write_counted(to, &piece[..n], written)?;
        at += n as u64;
    }
}

/// A failed append (the disk filled up half-way) is cut off again, so the
/// file holds whole records only: the client gets a 451 for this one, and
/// the records before it stay readable. The caller still holds the lock,
/// so the last `written` bytes are ours.
fn roll_back(file: &File, written: usize, error: io::Error) -> io::Result<()> {
    if written > 0 {
        if let Ok(len) = file.metadata().map(|m| m.len()) {
            let ours = u64::try_from(written).unwrap_or(u64::MAX);
            if len >= ours {
                let _ = file.set_len(len - ours);
            }
        }
    }
    Err(error)
}

fn open_shared(path: &Path) -> io::Result<File> {
    let open = || {
        OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o644)
            .open(path)
    };
    match open() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            make_parent(path)?;
            open()
        }
        other => other,
    }
}

impl Drop for FileDump {
    fn drop(&mut self) {
        self.abort();
    }
}

/// The text after MAIL FROM/RCPT TO: after the first ":" run and the
/// blanks that follow it, or nothing when there is no ":".
pub fn after_colon(args: &[u8]) -> &[u8] {
    let Some(i) = memchr(b':', args) else {
        return &[];
    };
    let rest = &args[i..];
    let rest = &rest[rest.iter().take_while(|&&b| b == b':').count()..];
    &rest[rest.iter().take_while(|b| is_c_space(**b)).count()..]
}

/// isspace(3) in the C locale.
pub fn is_c_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// The client address as the dump writes it: `ipv6:` prefix (or none)
/// and the numeric address (or `local`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientAddr {
    /// `ipv6:` for IPv6 peers, empty otherwise.
    pub prefix: &'static str,
    /// Numeric address, or `local`.
    pub addr: String,
}

impl ClientAddr {
    /// The address of a TCP peer.
    pub fn from_ip(ip: std::net::IpAddr) -> ClientAddr {
        match ip {
            std::net::IpAddr::V4(v4) => ClientAddr {
                prefix: "",
                addr: v4.to_string(),
            },
            std::net::IpAddr::V6(v6) => ClientAddr {
                prefix: "ipv6:",
                addr: v6.to_string(),
            },
        }
    }

    /// A unix-socket peer.
    pub fn local() -> ClientAddr {
        ClientAddr {
            prefix: "",
            addr: "local".to_owned(),
        }
    }
}

/// What the session negotiated, for the record: `X-Client-TLS` and
/// `X-Client-Auth` (neither line is written for a plaintext,
/// unauthenticated session, whose record stays Postfix's).
#[derive(Debug, Clone, Copy, Default)]
pub struct Security<'a> {
    /// `<protocol> <cipher>` once TLS is up.
    pub tls: Option<&'a [u8]>,
    /// The authenticated user, already censored for the record.
    pub user: Option<&'a [u8]>,
}

/// The start of a record, written at MAIL time: the `-S` string, then the
/// X-Client-Addr, X-Client-Proto, X-Client-TLS and X-Client-Auth (when the
/// session has them), X-Helo-Args and X-Mail-Args lines.
pub fn head(
    start: Option<&[u8]>,
    addr: &ClientAddr,
    proto: &str,
    security: Security<'_>,
    helo: Option<&[u8]>,
    mail_args: &[u8],
) -> Vec<u8> {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(start.unwrap_or_default());
    out.extend_from_slice(b"X-Client-Addr: ");
    out.extend_from_slice(addr.prefix.as_bytes());
    out.extend_from_slice(addr.addr.as_bytes());
    out.extend_from_slice(b"\nX-Client-Proto: ");
    out.extend_from_slice(proto.as_bytes());
    out.push(b'\n');
    for (name, value) in [
        (&b"X-Client-TLS: "[..], security.tls),
        (b"X-Client-Auth: ", security.user),
    ] {
        if let Some(value) = value {
            out.extend_from_slice(name);
            out.extend_from_slice(value);
            out.push(b'\n');
        }
    }
    if let Some(helo) = helo {
        out.extend_from_slice(b"X-Helo-Args: ");
        out.extend_from_slice(helo);
        out.push(b'\n');
    }
    out.extend_from_slice(b"X-Mail-Args: ");
    out.extend_from_slice(after_colon(mail_args));
    out.push(b'\n');
    out
}

/// One `X-Rcpt-Args` line.
pub fn rcpt_line(rcpt_args: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(b"X-Rcpt-Args: ");
    out.extend_from_slice(after_colon(rcpt_args));
    out.push(b'\n');
    out
}

/// The three-line Received header written when DATA is accepted.
pub fn received(
    addr: &ClientAddr,
    helo: Option<&[u8]>,
    hostname: &[u8],
    proto: &str,
    id: u32,
    mail_time: i64,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(192);
    let bracketed = format!("[{}{}]", addr.prefix, addr.addr);
    out.extend_from_slice(b"Received: from ");
    match helo {
        Some(h) => out.extend_from_slice(h),
        None => out.extend_from_slice(bracketed.as_bytes()),
    }
    out.extend_from_slice(b" (");
    out.extend_from_slice(bracketed.as_bytes());
    out.extend_from_slice(b")\n\tby ");
    out.extend_from_slice(hostname);
    out.extend_from_slice(format!(" (smtp-sink) with {proto} id {id:08x};\n\t").as_bytes());
    out.extend_from_slice(mail_date(mail_time).as_bytes());
    out.push(b'\n');
    out
}

/// The MAIL and RCPT arguments of a `--smtputf8` transaction (its MAIL
/// carried SMTPUTF8) as the dump writes them: printable ASCII and every
/// well-formed UTF-8 character that is not a control character are kept,
/// so internationalised addresses stay readable. As with Postfix's
/// printable(), every other byte (controls, DEL, C1 controls, malformed
/// UTF-8) becomes "?", one per byte, so that no argument can break a
/// record line.
pub fn printable_utf8(args: &[u8]) -> Cow<'_, [u8]> {
    if args.iter().all(|b| (0x20..0x7f).contains(b)) {
        return Cow::Borrowed(args);
    }
    let mut out = Vec::with_capacity(args.len());
    for chunk in args.utf8_chunks() {
        for c in chunk.valid().chars() {
            let len = c.len_utf8();
            if c.is_control() {
                out.resize(out.len() + len, b'?');
            } else {
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
        }
        out.resize(out.len() + chunk.invalid().len(), b'?');
    }
    Cow::Owned(out)
}

/// Calls `out` with the pieces of `data` between its CRs: the dump keeps
/// every byte of the message except CR.
pub fn without_cr(data: &[u8], out: &mut dyn FnMut(&[u8]) -> io::Result<()>) -> io::Result<()> {
    let mut rest = data;
    while let Some(i) = memchr(b'\r', rest) {
        if i > 0 {
            out(&rest[..i])?;
        }
        rest = &rest[i + 1..];
    }
    if !rest.is_empty() {
        out(rest)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::rngs::SmallRng;
    use rand::SeedableRng;

    #[test]
    fn after_colon_skips_colons_and_blanks() {
        for (input, out) in [
            (
                &b"FROM:<a@b> BODY=8BITMIME"[..],
                &b"<a@b> BODY=8BITMIME"[..],
            ),
            (b"from::  <x>  ", b"<x>  "),
            (b"no colon", b""),
            (b"TO:", b""),
        ] {
            assert_eq!(after_colon(input), out);
        }
    }

    #[test]
    fn head_gains_tls_and_auth_lines_only_when_used() {
        let a = ClientAddr::from_ip("127.0.0.1".parse().expect("ip"));
        let plain = head(
            None,
            &a,
            "ESMTP",
            Security::default(),
            Some(b"c"),
            b"FROM:<a>",
        );
        assert_eq!(
            plain,
            b"X-Client-Addr: 127.0.0.1\nX-Client-Proto: ESMTP\nX-Helo-Args: c\nX-Mail-Args: <a>\n"
        );
        let both = Security {
            tls: Some(b"TLSv1.3 TLS13_AES_256_GCM_SHA384"),
            user: Some(b"alice"),
        };
        assert_eq!(
            head(None, &a, "ESMTP", both, None, b"FROM:<a>"),
            &b"X-Client-Addr: 127.0.0.1\nX-Client-Proto: ESMTP\n\
X-Client-TLS: TLSv1.3 TLS13_AES_256_GCM_SHA384\nX-Client-Auth: alice\nX-Mail-Args: <a>\n"[..]
        );
        let auth_only = Security {
            tls: None,
            user: Some(b"bob"),
        };
        assert_eq!(
            head(None, &a, "SMTP", auth_only, None, b"FROM:<a>"),
            &b"X-Client-Addr: 127.0.0.1\nX-Client-Proto: SMTP\nX-Client-Auth: bob\nX-Mail-Args: <a>\n"[..]
        );
    }

    #[test]
    fn received_without_and_with_helo() {
        let a = ClientAddr::from_ip("::1".parse().expect("ip"));
        let r = received(&a, None, b"h", "LMTP", 0xab, 0);
        assert_eq!(
            String::from_utf8(r).expect("utf8"),
            format!(
                "Received: from [ipv6:::1] ([ipv6:::1])\n\tby h (smtp-sink) with LMTP id 000000ab;\n\t{}\n",
                mail_date(0)
            )
        );
        let r = received(&ClientAddr::local(), Some(b"x  "), b"h", "ESMTP", 1, 0);
        assert!(r.starts_with(b"Received: from x   ([local])\n"));
    }

    #[test]
    fn printable_utf8_keeps_characters_and_censors_controls() {
        for (input, want) in [
            (&b"<a@b> SMTPUTF8"[..], &b"<a@b> SMTPUTF8"[..]),
            (
                "<us\u{e9}r@b\u{fc}cher.example>".as_bytes(),
                "<us\u{e9}r@b\u{fc}cher.example>".as_bytes(),
            ),
            (
                "<\u{7528}\u{6237}@\u{1f4e7}>".as_bytes(),
                "<\u{7528}\u{6237}@\u{1f4e7}>".as_bytes(),
            ),
            (b"a\tb\nc\x7fd", b"a?b?c?d"),
            // A C1 control (U+0085, two bytes) and malformed UTF-8.
            (b"a\xc2\x85b\xff\xc3(", b"a??b??("),
            (b"\xe2\x82", b"??"),
        ] {
            assert_eq!(
                &printable_utf8(input)[..],
                want,
                "{}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn without_cr_drops_every_cr() {
        let mut got = Vec::new();
        without_cr(b"\ra\r\nb\r\r\nc\r", &mut |p| {
            got.extend_from_slice(p);
            Ok(())
        })
        .expect("no error");
        assert_eq!(got, b"a\nb\nc");
    }

    #[test]
    fn per_transaction_file_is_created_and_removed_on_abort() {
        let dir = tempfile::tempdir().expect("tempdir");
        let template = format!("{}/sub/dir/m.", dir.path().display());
        let cfg = Arc::new(DumpConfig {
            template,
            shared: false,
            start_string: Some(bytes::Bytes::from_static(b"S:")),
        });
        let mut rng = SmallRng::seed_from_u64(1);
        let mut d = FileDump::new(cfg.clone());
        let id = d.begin(0, &mut rng).expect("begin");
        assert!(id <= 0x7fff_ffff);
        let path = dir.path().join(format!("sub/dir/m.{id:08x}"));
        d.write(b"hello\n").expect("write");
        d.commit().expect("commit");
        assert_eq!(std::fs::read(&path).expect("read"), b"hello\n");
        let id2 = d.begin(0, &mut rng).expect("begin");
        let path2 = dir.path().join(format!("sub/dir/m.{id2:08x}"));
        assert!(path2.exists());
        d.abort();
        assert!(!path2.exists());
        let _id3 = d.begin(0, &mut rng).expect("begin");
        drop(d);
        assert_eq!(
            std::fs::read_dir(dir.path().join("sub/dir"))
                .expect("dir")
                .count(),
            1
        );
    }

    #[test]
    fn shared_file_gets_appended_records_and_no_temporaries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let template = format!("{}/%Y/shared", dir.path().display());
        let cfg = Arc::new(DumpConfig {
            template,
            shared: true,
            start_string: None,
        });
        let mut rng = SmallRng::seed_from_u64(2);
        let mut d = FileDump::new(cfg);
        for text in [&b"one\n"[..], b"two\n"] {
            d.begin(0, &mut rng).expect("begin");
            d.write(text).expect("write");
            d.commit().expect("commit");
        }
        d.begin(0, &mut rng).expect("begin");
        d.write(b"aborted\n").expect("write");
        d.abort();
        let year = expand("%Y", 0);
        let sub = dir.path().join(year);
        assert_eq!(
            std::fs::read(sub.join("shared")).expect("read"),
            b"one\ntwo\n"
        );
        assert_eq!(std::fs::read_dir(&sub).expect("dir").count(), 1);
    }

    fn shared(dir: &Path) -> FileDump {
        FileDump::new(Arc::new(DumpConfig {
            template: format!("{}/shared", dir.display()),
            shared: true,
            start_string: None,
        }))
    }

    fn record(d: &mut FileDump, rng: &mut SmallRng, parts: &[&[u8]]) {
        d.begin(0, rng).expect("begin");
        for p in parts {
            d.write(p).expect("write");
        }
        d.commit().expect("commit");
    }

    #[test]
    fn shared_file_removed_or_renamed_while_running_is_recreated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("shared");
        let mut rng = SmallRng::seed_from_u64(3);
        let mut d = shared(dir.path());
        record(&mut d, &mut rng, &[b"one\n"]);
        std::fs::rename(&path, dir.path().join("rotated")).expect("rename");
        record(&mut d, &mut rng, &[b"two\n"]);
        std::fs::remove_file(&path).expect("remove");
        record(&mut d, &mut rng, &[b"three\n"]);
        record(&mut d, &mut rng, &[b"four\n"]);
        assert_eq!(
            std::fs::read(dir.path().join("rotated")).expect("read"),
            b"one\n"
        );
        assert_eq!(std::fs::read(&path).expect("read"), b"three\nfour\n");
    }

    #[test]
    fn record_past_the_spill_size_is_appended_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut rng = SmallRng::seed_from_u64(4);
        let mut d = shared(dir.path());
        let chunk = vec![b'x'; 1 << 20];
        let mut parts: Vec<&[u8]> = vec![b"head\n"];
        parts.extend(std::iter::repeat_n(&chunk[..], SPILL_AT / chunk.len() + 2));
        record(&mut d, &mut rng, &parts);
        record(&mut d, &mut rng, &[b"small\n"]);
        let data = std::fs::read(dir.path().join("shared")).expect("read");
        let big = 5 + chunk.len() * (SPILL_AT / chunk.len() + 2);
        assert_eq!(data.len(), big + 6);
        assert!(data.starts_with(b"head\nxxxx"));
        assert!(data.ends_with(b"xxxxsmall\n"));
        // The temporary file was unlinked at once: only the shared file.
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1);
    }

    fn shared_with(dir: &Path, budget: &'static MemoryBudget) -> FileDump {
        FileDump::with_budget(
            Arc::new(DumpConfig {
                template: format!("{}/shared", dir.display()),
                shared: true,
                start_string: None,
            }),
            budget,
        )
    }

    fn leaked(limit: usize) -> &'static MemoryBudget {
        Box::leak(Box::new(MemoryBudget::new(limit)))
    }

    #[test]
    fn budget_grows_records_by_doubling_and_takes_it_all_back() {
        let budget = leaked(1 << 20);
        let mut a = Budgeted::new(budget);
        assert_eq!(budget.held(), FIRST_CAPACITY);
        assert!(a.try_extend(&[b'a'; 5000]));
        assert_eq!((a.taken, budget.held()), (8192, 8192));
        assert!(a.buf.capacity() >= 5000);
        // A second record gets what is left, then no more.
        let mut b = Budgeted::new(budget);
        assert!(b.try_extend(&vec![b'b'; (1 << 20) - 8192]));
        assert_eq!(budget.held(), 1 << 20);
        assert!(!b.try_extend(b"x"), "over the budget");
        assert!(!a.try_extend(&[b'a'; 8192]), "over the budget");
        assert_eq!(a.buf.len(), 5000, "a refused write appends nothing");
        drop(b);
        assert_eq!(budget.held(), 8192);
        drop(a);
        assert_eq!(budget.held(), 0);
        // Nothing left at all: a record starts empty and cannot grow.
        let none = leaked(0);
        let mut c = Budgeted::new(none);
        assert!(!c.try_extend(b"x"));
        assert_eq!(none.held(), 0);
    }

    #[test]
    fn budget_never_grows_a_record_past_the_spill_size() {
        let budget = leaked(4 * SPILL_AT);
        let mut r = Budgeted::new(budget);
        let chunk = vec![b'x'; SPILL_AT / 2 + 1];
        assert!(r.try_extend(&chunk));
        assert!(!r.try_extend(&chunk), "past SPILL_AT");
        assert!(r.taken <= SPILL_AT);
        drop(r);
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn records_that_find_the_budget_spent_spill_and_stay_whole() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut rng = SmallRng::seed_from_u64(5);
        // Room for the first record grown to 8 KiB, not for a second one.
        let budget = leaked(FIRST_CAPACITY * 2);
        let mut first = shared_with(dir.path(), budget);
        let mut second = shared_with(dir.path(), budget);
        first.begin(0, &mut rng).expect("begin");
        first.write(&[b'1'; 6000]).expect("write");
        assert!(matches!(first.open, Some(Record::Memory { .. })));
        second.begin(0, &mut rng).expect("begin");
        second.write(b"2222\n").expect("write");
        assert!(matches!(second.open, Some(Record::Spilled { .. })));
        second.write(b"more\n").expect("write");
        second.commit().expect("commit");
        first.write(b"\n").expect("write");
        first.commit().expect("commit");
        assert_eq!(budget.held(), 0);
        let data = std::fs::read(dir.path().join("shared")).expect("read");
        let mut want = b"2222\nmore\n".to_vec();
        want.extend_from_slice(&[b'1'; 6000]);
        want.push(b'\n');
        assert_eq!(data, want);
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 1);
    }

    #[test]
    fn an_append_waits_for_the_lock_of_another_open_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("shared");
        let other = open_shared(&path).expect("open");
        let lock = Locked::new(&other).expect("lock");
        let dir_path = dir.path().to_owned();
        let writer = std::thread::spawn(move || {
            let mut rng = SmallRng::seed_from_u64(6);
            let mut d = shared(&dir_path);
            record(&mut d, &mut rng, &[b"theirs\n"]);
        });
        // However long the writer has had, it cannot have appended.
        std::thread::sleep(std::time::Duration::from_millis(200));
        assert_eq!(std::fs::read(&path).expect("read"), b"");
        (&other).write_all(b"ours\n").expect("write");
        drop(lock);
        writer.join().expect("writer");
        assert_eq!(std::fs::read(&path).expect("read"), b"ours\ntheirs\n");
    }

    #[test]
    fn threads_appending_spilled_and_small_records_never_interleave() {
        let dir = tempfile::tempdir().expect("tempdir");
        // No memory at all: every record spills, and the big ones are
        // copied in several pieces.
        let budget = leaked(0);
        let big = COPY_PIECE * 2 + 1000;
        let writers: Vec<_> = (0..4u8)
            .map(|t| {
                let dir = dir.path().to_owned();
                std::thread::spawn(move || {
                    let mut rng = SmallRng::seed_from_u64(u64::from(t));
                    let mut d = shared_with(&dir, budget);
                    let line = [b'a' + t; 99];
                    for n in 0..12 {
                        let lines = if n % 3 == 0 { big / 100 } else { 1 };
                        d.begin(0, &mut rng).expect("begin");
                        d.write(&[b'<', b'a' + t, b'\n']).expect("write");
                        for _ in 0..lines {
                            d.write(&line).expect("write");
                            d.write(b"\n").expect("write");
                        }
                        d.write(b">\n").expect("write");
                        d.commit().expect("commit");
                    }
                })
            })
            .collect();
        for w in writers {
            w.join().expect("writer");
        }
        let data = std::fs::read(dir.path().join("shared")).expect("read");
        let mut records = 0;
        let mut lines = data.split(|&b| b == b'\n');
        while let Some(start) = lines.next() {
            if start.is_empty() {
                break;
            }
            assert_eq!(start.len(), 2, "a record starts with <t");
            let t = start[1];
            loop {
                let line = lines.next().expect("record ends with >");
                if line == b">" {
                    break;
                }
                assert!(line.len() == 99 && line.iter().all(|&b| b == t));
            }
            records += 1;
        }
        assert_eq!(records, 4 * 12);
        assert_eq!(budget.held(), 0);
    }
}
