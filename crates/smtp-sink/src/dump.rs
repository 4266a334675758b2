//! `-d`/`-D` dump files: Postfix's names, record format and life cycle.
//!
//! A transaction's record goes to a file created at MAIL time, named
//! `strftime(template, MAIL time)` plus 8 hex digits, created with O_EXCL
//! (a new number on a clash, parent directories made on demand). With
//! `-d` that file is the dump; an aborted transaction removes it. With
//! `-D` the file is unlinked at once (it only holds the record until the
//! end of data), and the finished record is appended to
//! `strftime(template, MAIL time)`.
//!
//! The record (see docs/smtp-sink.md) is built by [`crate::conversation`]
//! with the helpers at the end of this file.

use std::fs::{DirBuilder, File, OpenOptions};
use std::io::{self, BufWriter, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use memchr::memchr;
use rand::RngCore;
use smtp_proto::time::{mail_date, LocalTime};

use crate::config::DumpConfig;

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
struct Open {
    file: BufWriter<File>,
    path: PathBuf,
    mail_time: i64,
}

/// The real dump: files on disk.
#[derive(Debug)]
pub struct FileDump {
    cfg: Arc<DumpConfig>,
    open: Option<Open>,
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

impl DumpSink for FileDump {
    fn begin(&mut self, mail_time: i64, rng: &mut dyn RngCore) -> io::Result<u32> {
        self.abort();
        let base = expand(&self.cfg.template, mail_time);
        let mut tries = 0;
        let (file, path, id) = loop {
            tries += 1;
            if tries > 100 {
                return Err(io::Error::other("mail_file_open: something is looping"));
            }
            // glibc's rand() is 31 bits wide: names stay 00000000-7fffffff.
            let id = rng.next_u32() & 0x7fff_ffff;
            let path = PathBuf::from(format!("{base}{id:08x}"));
            match OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o644)
                .open(&path)
            {
                Ok(file) => break (file, path, id),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
                Err(e) if e.kind() == io::ErrorKind::NotFound => make_parent(&path)?,
                Err(e) => return Err(e),
            }
        };
        if self.cfg.shared {
            // The temporary file only holds this record; nothing is left
            // behind whatever happens to the session.
            std::fs::remove_file(&path)?;
        }
        self.open = Some(Open {
            file: BufWriter::with_capacity(32 * 1024, file),
            path,
            mail_time,
        });
        Ok(id)
    }

    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        match &mut self.open {
            Some(open) => open.file.write_all(data),
            None => Err(io::Error::other("no dump file is open")),
        }
    }

    fn commit(&mut self) -> io::Result<()> {
        let Some(open) = self.open.take() else {
            return Err(io::Error::other("no dump file is open"));
        };
        let path = open.path.clone();
        let result = finish(open, &self.cfg);
        if result.is_err() && !self.cfg.shared {
            // A partial per-transaction file is not a dump of the message.
            let _ = std::fs::remove_file(&path);
        }
        result
    }

    fn abort(&mut self) {
        if let Some(open) = self.open.take() {
            if !self.cfg.shared {
                let _ = std::fs::remove_file(&open.path);
            }
        }
    }
}

fn finish(open: Open, cfg: &DumpConfig) -> io::Result<()> {
    let mut file = open
        .file
        .into_inner()
        .map_err(io::IntoInnerError::into_error)?;
    if !cfg.shared {
        return Ok(());
    }
    let out_path = PathBuf::from(expand(&cfg.template, open.mail_time));
    let open_shared = || {
        OpenOptions::new()
            .append(true)
            .create(true)
            .mode(0o644)
            .open(&out_path)
    };
    let mut out = match open_shared() {
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            make_parent(&out_path)?;
            open_shared()?
        }
        other => other?,
    };
    file.seek(SeekFrom::Start(0))?;
    // One write per record, so that concurrent sessions appending to the
    // same file do not interleave (O_APPEND makes each write atomic).
    let mut record = Vec::new();
    io::Read::read_to_end(&mut file, &mut record)?;
    out.write_all(&record)
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

/// The start of a record, written at MAIL time: the `-S` string, then the
/// X-Client-Addr, X-Client-Proto, X-Helo-Args and X-Mail-Args lines.
pub fn head(
    start: Option<&[u8]>,
    addr: &ClientAddr,
    proto: &str,
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
}
