//! Interop through a real MTA: our smtp-source → Postfix's smtpd on a
//! loopback port → Postfix's smtp client → our smtp-sink on another loopback
//! port. Every message the source handed to Postfix must come out at the
//! sink, once, with the source's body.
//!
//! Each test runs a private Postfix instance: its own config, queue and data
//! directories under a temporary directory, started with
//! `postfix -c DIR start` and stopped with `postfix -c DIR stop` by a Drop
//! guard, so the system instance is never touched. Starting Postfix needs
//! root and a Postfix installation (`apt-get install postfix`); without them
//! the tests fail when CI is set and skip with a notice otherwise. The tests
//! take turns (one MTA at a time) through a static lock.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

mod support;
use support::{bin, dump_dir, expected_l_body, files_in, free_port, is_root, start_sink};

/// One Postfix instance at a time: a machine runs only so many.
static ONE_MTA_AT_A_TIME: Mutex<()> = Mutex::new(());

/// Cap on one smtp-source run (it hangs only if something is broken).
const SOURCE_CAP: Duration = Duration::from_secs(120);
/// Cap on the wait for every message to reach the sink and leave the queue.
const DELIVERY_CAP: Duration = Duration::from_secs(120);
/// Cap on one Postfix administration command (start, stop, postqueue).
const ADMIN_CAP: Duration = Duration::from_secs(60);
/// Host name of the Postfix instance, seen in its Received header.
const MTA_HOSTNAME: &str = "mta.test.invalid";

/// The default body as the sink dumps it (CRs removed).
const DEFAULT_BODY: &[u8] =
    b"La de da de da 1.\nLa de da de da 2.\nLa de da de da 3.\nLa de da de da 4.\n";

// ---------------------------------------------------------------- the tests

#[test]
fn plain_smtp_through_postfix() {
    let Some(run) = through_postfix(&["-s", "5", "-m", "200", "-d"], 200) else {
        return;
    };
    // Today's mode speaks HELO and DATA.
    run.assert_used("helo");
    run.assert_used("data");
    run.assert_unused("ehlo");
    run.assert_unused("bdat");
}

#[test]
fn esmtp_pipelining_chunking_size_smtputf8_through_postfix() {
    let Some(run) = through_postfix(
        &[
            "--ehlo",
            "--pipelining",
            "--chunking",
            "--size",
            "--smtputf8",
            "-s",
            "5",
            "-m",
            "200",
            "-d",
        ],
        200,
    ) else {
        return;
    };
    run.assert_used("ehlo");
    run.assert_unused("helo");
    // Postfix advertises CHUNKING: every message goes as BDAT, none as DATA.
    run.assert_unused("data");
    assert!(
        run.smtpd_total("bdat") >= 200,
        "one BDAT or more per message\n{}",
        run.sessions()
    );
}

#[test]
fn pipelining_through_postfix() {
    let Some(run) = through_postfix(&["--pipelining", "-s", "5", "-m", "200", "-d"], 200) else {
        return;
    };
    run.assert_unused("bdat");
}

#[test]
fn multi_chunk_bdat_through_postfix() {
    let Some(run) = through_postfix(
        &["--chunking=1000", "-l", "5000", "-s", "2", "-m", "50", "-d"],
        50,
    ) else {
        return;
    };
    run.assert_unused("data");
    // A 5000-byte body in chunks of at most 1000 bytes: five BDATs or more
    // per message.
    assert!(
        run.smtpd_total("bdat") >= 5 * 50,
        "several BDAT chunks per message\n{}",
        run.sessions()
    );
}

// ---------------------------------------------------------------- the helper

/// What Postfix's smtpd logged about the source's sessions.
struct Relayed {
    /// The `disconnect from …` lines of smtpd: one per session, with the
    /// commands it received (`ehlo=1 mail=40 rcpt=40 bdat=40 quit=1 …`).
    disconnects: Vec<String>,
}

impl Relayed {
    /// Sum of the accepted counts of one command over all sessions (the
    /// first number of `cmd=N` or `cmd=N/M`).
    fn smtpd_total(&self, cmd: &str) -> u64 {
        smtpd_totals(&self.disconnects)
            .get(cmd)
            .copied()
            .unwrap_or(0)
    }

    fn sessions(&self) -> String {
        self.disconnects.join("\n")
    }

    fn assert_used(&self, cmd: &str) {
        assert!(
            self.smtpd_total(cmd) > 0,
            "smtpd saw no {cmd}\n{}",
            self.sessions()
        );
    }

    fn assert_unused(&self, cmd: &str) {
        assert_eq!(
            self.smtpd_total(cmd),
            0,
            "smtpd saw {cmd}\n{}",
            self.sessions()
        );
    }
}

/// Sends `messages` messages with smtp-source `source_args` through a fresh
/// private Postfix instance into our smtp-sink, and checks that every one
/// arrived, once, with the source's body, and that the queue is empty.
/// Returns None (after a notice) when Postfix can't run here and CI is unset.
fn through_postfix(source_args: &[&str], messages: u64) -> Option<Relayed> {
    let _turn = ONE_MTA_AT_A_TIME
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    let tools = require_postfix()?;
    let source = bin("smtp-source");

    let dump = dump_dir();
    let sink_port = free_port();
    // Declared before the MTA so that it is dropped after it.
    let template = dump.path().join("m.");
    let _sink = start_sink(&["-d", &template.display().to_string()], sink_port);
    let mta = Mta::start(tools, sink_port);

    let label = format!("smtp-source {}", source_args.join(" "));
    let ran = run_bounded(
        Command::new(&source)
            .args(source_args)
            .arg(format!("127.0.0.1:{}", mta.smtpd_port)),
        SOURCE_CAP,
        &mta.scratch(),
    );
    assert!(
        ran.status.is_some_and(|s| s.success()),
        "{label}: {}\nstderr:\n{}",
        ran.describe(),
        ran.stderr
    );

    // Every message at the sink and none left in Postfix's queue. Once the
    // queue is empty nothing more can arrive, so the count is final.
    let started = Instant::now();
    let mut queue = String::new();
    loop {
        let delivered = files_in(dump.path()).len() as u64;
        if delivered >= messages {
            queue = mta.queue();
            if queue.is_empty() {
                break;
            }
        }
        assert!(
            started.elapsed() < DELIVERY_CAP,
            "{label}: after {:?}, {delivered} of {messages} messages at the sink; \
             Postfix queue:\n{queue}",
            DELIVERY_CAP
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "{label}: {messages} messages at the sink {:.1?} after the source exited",
        started.elapsed()
    );

    let files = files_in(dump.path());
    assert_eq!(
        files.len() as u64,
        messages,
        "{label}: one dump per message, no duplicates"
    );
    let body = expected_body(source_args);
    let via_postfix = format!("by {MTA_HOSTNAME} (Postfix)");
    for f in &files {
        let data = fs::read(f).unwrap();
        assert!(
            memchr::memmem::find(&data, via_postfix.as_bytes()).is_some(),
            "{label}: {} has no Received header of Postfix",
            f.display()
        );
        assert!(
            memchr::memmem::find(&data, &body).is_some(),
            "{label}: {} lacks the source's body:\n{}",
            f.display(),
            String::from_utf8_lossy(&data)
        );
    }
    // For the record: how Postfix's smtpd named the protocol it received
    // the first message with ("with SMTP", "with ESMTP", "with UTF8SMTP"…).
    if let Some(f) = files.first() {
        let data = String::from_utf8_lossy(&fs::read(f).unwrap()).replace("\n\t", " ");
        if let Some(received) = data
            .lines()
            .find(|l| l.starts_with("Received:") && l.contains(&via_postfix))
        {
            eprintln!(
                "{label}: {}",
                received.split(';').next().unwrap_or(received)
            );
        }
    }

    // smtpd logs a session's commands when it ends, which may be a moment
    // after the source saw its last reply: wait (bounded) for all of them.
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut disconnects = mta.smtpd_disconnects();
    while smtpd_totals(&disconnects).get("mail").copied().unwrap_or(0) < messages
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
        disconnects = mta.smtpd_disconnects();
    }
    let run = Relayed { disconnects };
    eprintln!("{label}: smtpd saw {:?}", smtpd_totals(&run.disconnects));
    assert_eq!(
        run.smtpd_total("mail"),
        messages,
        "{label}: smtpd accepted one MAIL per message\n{}",
        run.sessions()
    );
    // With default settings Postfix 3.7 only logs pipelining that RFC 2920
    // forbids (newer Postfix disconnects the client): none is allowed.
    let log = mta.log();
    let improper: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("improper command pipelining"))
        .collect();
    assert!(
        improper.is_empty(),
        "{label}: Postfix saw improper pipelining:\n{}",
        improper.join("\n")
    );
    Some(run)
}

/// The body the source sends for these arguments, as the sink dumps it.
fn expected_body(source_args: &[&str]) -> Vec<u8> {
    match source_args.iter().position(|&a| a == "-l") {
        Some(i) => expected_l_body(source_args[i + 1].parse().expect("-l length")),
        None => DEFAULT_BODY.to_vec(),
    }
}

/// Sums the `cmd=N` (or `cmd=N/M`: N accepted of M) fields of smtpd's
/// `disconnect from` lines.
fn smtpd_totals(disconnects: &[String]) -> BTreeMap<String, u64> {
    let mut totals = BTreeMap::new();
    for line in disconnects {
        let Some(at) = line.find(" disconnect from ") else {
            continue;
        };
        for field in line[at..].split_whitespace() {
            let Some((cmd, count)) = field.split_once('=') else {
                continue;
            };
            let ok = count.split('/').next().unwrap_or("");
            if let Ok(n) = ok.parse::<u64>() {
                *totals.entry(cmd.to_owned()).or_insert(0) += n;
            }
        }
    }
    totals
}

// ---------------------------------------------------------------- Postfix

/// Where Postfix's commands are.
struct Tools {
    postfix: PathBuf,
    postqueue: PathBuf,
}

/// Finds a Postfix command on PATH or in the usual sbin directories (which a
/// non-login PATH often lacks).
fn postfix_tool(name: &str) -> Option<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect())
        .unwrap_or_default();
    dirs.extend(["/usr/sbin", "/usr/local/sbin", "/sbin"].map(PathBuf::from));
    dirs.into_iter().map(|d| d.join(name)).find(|p| p.is_file())
}

/// Postfix's commands, when Postfix can run here (installed, and we are
/// root). Otherwise fails under CI and returns None after a notice.
fn require_postfix() -> Option<Tools> {
    let tools = postfix_tool("postfix")
        .zip(postfix_tool("postqueue"))
        .map(|(postfix, postqueue)| Tools { postfix, postqueue });
    let problem = match tools {
        Some(tools) if is_root() => return Some(tools),
        Some(_) => "starting Postfix needs root",
        None => "Postfix (postfix, postqueue) is not installed",
    };
    if std::env::var_os("CI").is_some() {
        panic!("{problem}: the MTA interop tests require it in CI (apt-get install postfix; run as root)");
    }
    eprintln!("skipping: {problem}");
    None
}

/// A private Postfix instance relaying everything to one loopback port.
/// Dropping it stops it (`postfix -c DIR stop`) and removes its files; a
/// test that panics prints the tail of its log first.
struct Mta {
    tools: Tools,
    dir: tempfile::TempDir,
    conf: PathBuf,
    smtpd_port: u16,
}

impl Mta {
    fn start(tools: Tools, relay_port: u16) -> Mta {
        let dir = tempfile::Builder::new()
            .prefix("mta-test.")
            .tempdir()
            .expect("temporary directory");
        // Postfix's daemons run as the postfix user and must reach the queue.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        let root = dir
            .path()
            .to_str()
            .expect("UTF-8 temporary path")
            .to_owned();
        assert!(
            !root.contains(|c: char| c.is_whitespace() || c == ',' || c == '$'),
            "temporary path unusable in main.cf: {root}"
        );
        let conf = dir.path().join("conf");
        let queue = dir.path().join("queue");
        for d in [&conf, &queue, &dir.path().join("scratch")] {
            fs::create_dir(d).unwrap();
            fs::set_permissions(d, fs::Permissions::from_mode(0o755)).unwrap();
        }
        // data_directory is left for `postfix start` to create: it must be
        // owned by the postfix user.
        let main_cf = format!(
            "\
compatibility_level = 3.6
queue_directory = {root}/queue
data_directory = {root}/data
syslog_name = postfix-mta-test
maillog_file = {root}/maillog
maillog_file_prefixes = {root}
myhostname = {MTA_HOSTNAME}
mydestination =
alias_maps =
alias_database =
inet_interfaces = loopback-only
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:{relay_port}
smtp_tls_security_level = none
smtpd_tls_security_level = none
in_flow_delay = 0
default_process_limit = 200
smtpd_client_connection_count_limit = 0
smtpd_client_connection_rate_limit = 0
smtp_destination_concurrency_limit = 50
smtp_connection_cache_on_demand = yes
queue_run_delay = 2s
minimal_backoff_time = 2s
maximal_backoff_time = 4s
"
        );
        fs::write(conf.join("main.cf"), main_cf).unwrap();

        let mta = Mta {
            tools,
            conf,
            smtpd_port: free_port(),
            dir,
        };
        // No chroot: a private queue directory has no copies of /etc.
        let master_cf = format!(
            "\
127.0.0.1:{port} inet n - n - - smtpd
pickup    unix  n - n 60    1 pickup
cleanup   unix  n - n -     0 cleanup
qmgr      unix  n - n 300   1 qmgr
rewrite   unix  - - n -     - trivial-rewrite
bounce    unix  - - n -     0 bounce
defer     unix  - - n -     0 bounce
trace     unix  - - n -     0 bounce
verify    unix  - - n -     1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n -     - proxymap
smtp      unix  - - n -     - smtp
relay     unix  - - n -     - smtp
showq     unix  n - n -     - showq
error     unix  - - n -     - error
retry     unix  - - n -     - error
discard   unix  - - n -     - discard
anvil     unix  - - n -     1 anvil
scache    unix  - - n -     1 scache
postlog   unix-dgram n - n - 1 postlogd
",
            port = mta.smtpd_port
        );
        fs::write(mta.conf.join("master.cf"), master_cf).unwrap();

        // From here on the guard stops whatever started, even on a panic.
        let ran = run_bounded(
            Command::new(&mta.tools.postfix)
                .arg("-c")
                .arg(&mta.conf)
                .arg("start"),
            ADMIN_CAP,
            &mta.scratch(),
        );
        assert!(
            ran.status.is_some_and(|s| s.success()),
            "postfix start: {}\n{}{}",
            ran.describe(),
            ran.stdout,
            ran.stderr
        );
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", mta.smtpd_port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "Postfix's smtpd did not listen on {}",
                mta.smtpd_port
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        mta
    }

    fn scratch(&self) -> PathBuf {
        self.dir.path().join("scratch")
    }

    /// `postqueue -j`: one JSON line per queued message, empty when the
    /// queue is.
    fn queue(&self) -> String {
        let ran = run_bounded(
            Command::new(&self.tools.postqueue)
                .arg("-c")
                .arg(&self.conf)
                .arg("-j"),
            ADMIN_CAP,
            &self.scratch(),
        );
        assert!(
            ran.status.is_some_and(|s| s.success()),
            "postqueue -j: {}\n{}",
            ran.describe(),
            ran.stderr
        );
        ran.stdout
    }

    fn log(&self) -> String {
        fs::read(self.dir.path().join("maillog"))
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// smtpd's `disconnect from` lines, one per session that ended.
    fn smtpd_disconnects(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains("/smtpd[") && l.contains(" disconnect from "))
            .map(str::to_owned)
            .collect()
    }
}

impl Drop for Mta {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let log = self.log();
            let lines: Vec<&str> = log.lines().collect();
            let tail = &lines[lines.len().saturating_sub(60)..];
            eprintln!(
                "---- Postfix log (last {} lines)\n{}\n----",
                tail.len(),
                tail.join("\n")
            );
        }
        // Stops this instance only; after 5 s it kills the master's process
        // group itself. It fails harmlessly when the instance never started.
        let ran = run_bounded(
            Command::new(&self.tools.postfix)
                .arg("-c")
                .arg(&self.conf)
                .arg("stop"),
            ADMIN_CAP,
            &self.scratch(),
        );
        if !ran.status.is_some_and(|s| s.success()) && !std::thread::panicking() {
            eprintln!("postfix stop: {}\n{}", ran.describe(), ran.stderr);
        }
    }
}

// ---------------------------------------------------------------- processes

/// A finished (or, at the cap, killed) command and its output.
struct Ran {
    /// None when it was killed at the cap.
    status: Option<ExitStatus>,
    stdout: String,
    stderr: String,
    elapsed: Duration,
}

impl Ran {
    fn describe(&self) -> String {
        match self.status {
            Some(s) => format!("{s} after {:.1?}", self.elapsed),
            None => format!("killed after {:.1?} (no exit)", self.elapsed),
        }
    }
}

/// Runs a command with its output in files (a daemon it starts may hold
/// pipes open forever) and kills it at the cap.
fn run_bounded(cmd: &mut Command, cap: Duration, scratch: &Path) -> Ran {
    static SEQ: AtomicUsize = AtomicUsize::new(0);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let out_path = scratch.join(format!("{n}.out"));
    let err_path = scratch.join(format!("{n}.err"));
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(File::create(&out_path).unwrap())
        .stderr(File::create(&err_path).unwrap())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break Some(s);
        }
        if started.elapsed() >= cap {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let read = |p: &Path| String::from_utf8_lossy(&fs::read(p).unwrap_or_default()).into_owned();
    Ran {
        status,
        stdout: read(&out_path),
        stderr: read(&err_path),
        elapsed: started.elapsed(),
    }
}
