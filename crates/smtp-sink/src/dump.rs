//! `-d`/`-D` dump files: Postfix's names, record format and life cycle.
//!
//! With `-d` a transaction's record goes to a file created at MAIL time,
//! named `strftime(template, MAIL time)` plus 8 hex digits, created with
//! O_EXCL (a new number on a clash, parent directories made on demand); an
//! aborted transaction removes it.
//!
//! With `-D` the finished record is appended, in one write, to
//! `strftime(template, MAIL time)`. Postfix builds the record in an
//! unlinked temporary file and opens, appends and closes the shared file
//! for every message: about nine system calls, two of them directory
//! changes. Here the record is kept in memory (spilled to an unlinked
//! temporary file only past [`SPILL_AT`], so a huge message cannot exhaust
//! memory), and each thread keeps the shared file open, checking with one
//! `stat` per record that the path still names it, so a file that was
//! moved or removed is reopened as Postfix would. The bytes written are
//! the same.
//!
//! The record (see docs/smtp-sink.md) is built by [`crate::conversation`]
//! with the helpers at the end of this file.

use std::borrow::Cow;
use std::cell::RefCell;
use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memchr::memchr;
use rand::RngCore;
use smtp_proto::time::{mail_date, LocalTime};

use crate::config::DumpConfig;

/// A `-D` record larger than this moves from memory to a temporary file.
pub const SPILL_AT: usize = 8 << 20;

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
    Memory { buf: Vec<u8>, mail_time: i64 },
    /// `-D`, a record past [`SPILL_AT`]: an unlinked temporary file.
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
}

impl FileDump {
    /// A dump writer for one session.
    pub fn new(cfg: Arc<DumpConfig>) -> FileDump {
        FileDump { cfg, open: None }
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
                buf: Vec::with_capacity(4096),
                mail_time,
            });
            return Ok(id);
        }
        let base = expand(&self.cfg.template, mail_time);
        let (file, path, id) = create_unique(&base, || rng.next_u32())?;
        self.open = Some(Record::File {
            file: BufWriter::with_capacity(32 * 1024, file),
            path,
        });
        Ok(id)
    }

    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        match &mut self.open {
            Some(Record::File { file, .. } | Record::Spilled { file, .. }) => file.write_all(data),
            Some(Record::Memory { buf, mail_time }) if buf.len() + data.len() > SPILL_AT => {
                let mail_time = *mail_time;
                let mut file = spill(&self.cfg, mail_time, buf)?;
                file.write_all(data)?;
                self.open = Some(Record::Spilled { file, mail_time });
                Ok(())
            }
            Some(Record::Memory { buf, .. }) => {
                buf.extend_from_slice(data);
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
                append_shared(&expand(&self.cfg.template, mail_time), &buf)
            }
            Some(Record::Spilled { file, mail_time }) => {
                let mut file = file.into_inner().map_err(io::IntoInnerError::into_error)?;
                file.seek(SeekFrom::Start(0))?;
                let mut record = Vec::new();
                io::Read::read_to_end(&mut file, &mut record)?;
                append_shared(&expand(&self.cfg.template, mail_time), &record)
            }
        }
    }

    fn abort(&mut self) {
        if let Some(Record::File { path, .. }) = self.open.take() {
            let _ = std::fs::remove_file(&path);
        }
    }
}

/// Moves a `-D` record that grew too large into an unlinked temporary file
/// beside the shared file, as Postfix keeps every record.
fn spill(cfg: &DumpConfig, mail_time: i64, buf: &[u8]) -> io::Result<BufWriter<File>> {
    let base = expand(&cfg.template, mail_time);
    let (file, path, _) = create_unique(&base, rand::random::<u32>)?;
    std::fs::remove_file(&path)?;
    let mut file = BufWriter::with_capacity(256 * 1024, file);
    file.write_all(buf)?;
    Ok(file)
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

/// Appends a whole record to the shared file at `path` in one write, so
/// that records of concurrent sessions never interleave (O_APPEND makes
/// each write atomic with respect to the others).
fn append_shared(path: &str, record: &[u8]) -> io::Result<()> {
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
        let result = append_or_roll_back(&mut shared.file, record);
        if result.is_err() {
            // Open afresh next time rather than trust a file that failed.
            *cached = None;
        }
        result
    })
}

/// Writes `record` at the end of `file`. If the disk fills up half-way,
/// the part already written is cut off again, so the file holds whole
/// records only: the client gets a 451 for this one, and the records
/// before it stay readable. The cut assumes nobody else appended in the
/// meantime, which holds for one sink on its default single thread; with
/// several writers a failed append may cut theirs instead, or leave ours.
fn append_or_roll_back(file: &mut File, record: &[u8]) -> io::Result<()> {
    let mut written = 0;
    while written < record.len() {
        match file.write(&record[written..]) {
            Ok(0) => return roll_back(file, written, io::ErrorKind::WriteZero.into()),
            Ok(n) => written += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return roll_back(file, written, e),
        }
    }
    Ok(())
}

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
}
