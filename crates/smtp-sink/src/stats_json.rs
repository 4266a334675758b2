//! `--stats-json FILE`: the counters as one JSON object, written at start,
//! on SIGUSR1 and when the process ends.
//!
//! Each write goes to `FILE.tmp` in the same directory, which is then
//! renamed over `FILE`, so a reader sees the previous file or the new one,
//! never part of one. Writes are serialized. The layout is
//! docs/sink-stats.schema.json's: a few fields about the process and the
//! write, then [`Counters`] under `"counters"`, and with `--verify` the
//! per-run verification ([`VerifyCounts`]) under `"verify"`; later
//! additions go beside them as objects of their own.

use std::ffi::OsString;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Instant, SystemTime};

use serde::Serialize;

use crate::policy::Policy;
use crate::stats::{Counters, Stats};
use crate::verify::{Verify, VerifyCounts};

/// The `schema_version` of the file; it changes only when a field changes
/// meaning or goes away (added fields keep it).
pub const SCHEMA_VERSION: u32 = 1;

/// Why the file is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// At start, before the first client: all counters are 0.
    Start,
    /// SIGUSR1: the sink keeps running.
    Sigusr1,
    /// `-M` was reached.
    MaxMessages,
    /// `-n` was reached.
    MaxSessions,
    /// SIGTERM.
    Sigterm,
    /// SIGINT (Ctrl-C).
    Sigint,
    /// SIGHUP.
    Sighup,
    /// A fatal error after start-up.
    Error,
}

impl Trigger {
    /// The `"trigger"` value.
    pub fn name(self) -> &'static str {
        match self {
            Trigger::Start => "start",
            Trigger::Sigusr1 => "sigusr1",
            Trigger::MaxMessages => "max-messages",
            Trigger::MaxSessions => "max-sessions",
            Trigger::Sigterm => "sigterm",
            Trigger::Sigint => "sigint",
            Trigger::Sighup => "sighup",
            Trigger::Error => "error",
        }
    }

    /// Whether the process ends after this write (`"final"`).
    pub fn is_final(self) -> bool {
        !matches!(self, Trigger::Start | Trigger::Sigusr1)
    }
}

/// The whole file.
#[derive(Debug, Serialize)]
struct Document<'a> {
    schema_version: u32,
    program: &'static str,
    version: &'static str,
    pid: u32,
    started: String,
    written: String,
    uptime_seconds: f64,
    trigger: &'static str,
    #[serde(rename = "final")]
    is_final: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    counters: Counters,
    #[serde(skip_serializing_if = "Option::is_none")]
    verify: Option<VerifyCounts>,
}

/// The writer of one `--stats-json` file.
#[derive(Debug)]
pub struct StatsJson {
    path: PathBuf,
    tmp: PathBuf,
    stats: Arc<Stats>,
    policy: Policy,
    started: SystemTime,
    clock: Instant,
    /// One write at a time: they share `FILE.tmp`.
    lock: Mutex<()>,
}

impl StatsJson {
    /// A writer of `path` for these counters; `policy` says which command
    /// counts belong to which rule. The process counts as started now.
    pub fn new(path: PathBuf, stats: Arc<Stats>, policy: Policy) -> StatsJson {
        StatsJson {
            tmp: tmp_path(&path),
            path,
            stats,
            policy,
            started: SystemTime::now(),
            clock: Instant::now(),
            lock: Mutex::new(()),
        }
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The document as it would be written now.
    pub fn render(&self, trigger: Trigger, error: Option<&str>) -> Vec<u8> {
        let uptime = self.clock.elapsed();
        let doc = Document {
            schema_version: SCHEMA_VERSION,
            program: "smtp-sink",
            version: env!("CARGO_PKG_VERSION"),
            pid: std::process::id(),
            started: smtp_net::rfc3339(self.started),
            written: smtp_net::rfc3339(SystemTime::now()),
            // Milliseconds, as the timestamps.
            uptime_seconds: (uptime.as_millis() as f64) / 1000.0,
            trigger: trigger.name(),
            is_final: trigger.is_final(),
            error,
            counters: self.stats.snapshot(&self.policy),
            verify: self.stats.verify().map(Verify::snapshot),
        };
        let mut text = serde_json::to_vec_pretty(&doc).expect("plain data serializes");
        text.push(b'\n');
        text
    }

    /// Writes the file: `FILE.tmp`, then renamed over `FILE`.
    ///
    /// # Errors
    /// Creating, writing or renaming the temporary file failed (it is
    /// removed again when it was created).
    pub fn write(&self, trigger: Trigger, error: Option<&str>) -> io::Result<()> {
        let _one = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let text = self.render(trigger, error);
        let result = std::fs::File::create(&self.tmp)
            .and_then(|mut f| f.write_all(&text))
            .and_then(|()| std::fs::rename(&self.tmp, &self.path));
        if result.is_err() {
            let _ = std::fs::remove_file(&self.tmp);
        }
        result
    }
}

/// `FILE.tmp`, beside `FILE`.
fn tmp_path(path: &Path) -> PathBuf {
    let mut name = OsString::from(path.as_os_str());
    name.push(".tmp");
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_atomically_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("stats.json");
        let stats = Arc::new(Stats::with_output(false, 0, 0, Box::new(io::sink())));
        let w = StatsJson::new(path.clone(), stats.clone(), Policy::default());
        w.write(Trigger::Start, None).expect("written");
        let first = std::fs::read_to_string(&path).expect("read");
        assert!(first.contains("\"trigger\": \"start\""), "{first}");
        assert!(first.contains("\"final\": false"), "{first}");
        assert!(!first.contains("\"error\""), "{first}");
        stats.quit();
        w.write(Trigger::Error, Some("listen: boom"))
            .expect("written");
        let second = std::fs::read_to_string(&path).expect("read");
        assert!(second.contains("\"quit\": 1"), "{second}");
        assert!(second.contains("\"error\": \"listen: boom\""), "{second}");
        assert!(second.contains("\"final\": true"), "{second}");
        assert!(second.ends_with("}\n"));
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("dir")
            .map(|e| e.expect("entry").file_name())
            .collect();
        assert_eq!(names, [OsString::from("stats.json")]);
    }

    #[test]
    fn a_failed_write_says_why_and_keeps_the_old_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let stats = Arc::new(Stats::with_output(false, 0, 0, Box::new(io::sink())));
        let missing = dir.path().join("no/such/dir/stats.json");
        let w = StatsJson::new(missing, stats.clone(), Policy::default());
        assert_eq!(
            w.write(Trigger::Start, None)
                .expect_err("no directory")
                .kind(),
            io::ErrorKind::NotFound
        );
        // A directory where the file should be: the rename fails, the
        // temporary file goes away again.
        let path = dir.path().join("taken");
        std::fs::create_dir(&path).expect("mkdir");
        std::fs::write(path.join("x"), "x").expect("write");
        let w = StatsJson::new(path.clone(), stats, Policy::default());
        assert!(w.write(Trigger::Sigusr1, None).is_err());
        assert!(!tmp_path(&path).exists());
        assert!(path.join("x").exists());
    }

    #[test]
    fn header_fields() {
        let stats = Arc::new(Stats::with_output(false, 0, 0, Box::new(io::sink())));
        let w = StatsJson::new("s.json".into(), stats, Policy::default());
        let text = String::from_utf8(w.render(Trigger::MaxMessages, None)).expect("utf-8");
        for want in [
            "\"schema_version\": 1,".to_owned(),
            "\"program\": \"smtp-sink\",".to_owned(),
            format!("\"version\": \"{}\",", env!("CARGO_PKG_VERSION")),
            format!("\"pid\": {},", std::process::id()),
            "\"trigger\": \"max-messages\",".to_owned(),
            "\"final\": true,".to_owned(),
        ] {
            assert!(text.contains(&want), "{want} in {text}");
        }
        // RFC 3339, UTC, milliseconds.
        let started = text
            .split("\"started\": \"")
            .nth(1)
            .and_then(|t| t.split('"').next())
            .expect("started");
        assert_eq!(started.len(), "2026-12-01T10:00:00.123Z".len(), "{started}");
        assert!(
            chrono::DateTime::parse_from_rfc3339(started).is_ok(),
            "{started} is RFC 3339"
        );
        assert!(started.ends_with('Z') && started.as_bytes()[10] == b'T');
        assert_eq!(tmp_path(Path::new("/a/b.json")), Path::new("/a/b.json.tmp"));
    }
}
