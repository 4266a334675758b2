//! What the workspace-level tests share: finding the built binaries,
//! ports, our sink as a child process that is always stopped, and dump
//! directories. Each test binary uses part of it.
#![allow(dead_code)]

pub mod dns;
pub mod metrics;
pub mod series;
pub mod smtp;

use std::{
    fs,
    net::{TcpListener, TcpStream},
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

/// The directory holding the workspace's binaries (target/debug), found from
/// this test's own path so CARGO_TARGET_DIR is respected.
pub fn bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} not built; run `cargo test --workspace`",
        path.display()
    );
    path
}

/// Whether the tests run as root (then our sink needs `-u nobody`).
pub fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| o.stdout.starts_with(b"0\n"))
        .unwrap_or(false)
}

/// A loopback port nobody listens on now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process that is killed and reaped when dropped, on every path.
pub struct Killed(pub Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits (bounded) until something accepts connections on the port.
pub fn wait_listening(port: u16) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "nothing listens on {port}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Our smtp-sink on 127.0.0.1:port with these options, listening when this
/// returns.
pub fn start_sink(args: &[&str], port: u16) -> Killed {
    start_sink_with_stderr(args, port, Stdio::inherit())
}

/// [`start_sink`], with the sink's stderr going to `stderr` (piped, for a
/// test that reads what the sink prints at its end).
pub fn start_sink_with_stderr(args: &[&str], port: u16, stderr: Stdio) -> Killed {
    let mut cmd = Command::new(bin("smtp-sink"));
    if is_root() {
        cmd.args(["-u", "nobody"]);
    }
    cmd.args(args).arg(format!("127.0.0.1:{port}")).arg("128");
    cmd.stdout(Stdio::null()).stderr(stderr);
    let sink = Killed(cmd.spawn().expect("start smtp-sink"));
    wait_listening(port);
    sink
}

/// A dump directory the sink can write as nobody.
pub fn dump_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o777)).unwrap();
    dir
}

/// The files in a directory, sorted.
pub fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    v.sort();
    v
}

/// Waits (bounded) until `dir` holds at least `n` dump files (the sink
/// closes a file just after its 250), and returns them.
pub fn wait_dumps(dir: &Path, n: usize) -> Vec<PathBuf> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let dumps = || -> Vec<PathBuf> {
        files_in(dir)
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .is_some_and(|f| f.to_string_lossy().starts_with("m."))
            })
            .collect()
    };
    while dumps().len() < n && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    dumps()
}

/// The `-l` body as the sink dumps it: CRs removed, with the LF the
/// source's trailing CRLF leaves.
pub fn expected_l_body(len: usize) -> Vec<u8> {
    let mut block = vec![b'X'; len];
    let mut end = 80;
    while end < len {
        block[end - 80] = b"0123456789"[(end / 80) % 10];
        block[end - 2] = b'\r';
        block[end - 1] = b'\n';
        end += 80;
    }
    let mut body: Vec<u8> = block.into_iter().filter(|&b| b != b'\r').collect();
    body.push(b'\n');
    body
}

/// The number after `key` in a JSON text (smtp-source's report), e.g.
/// `json_number(report, "\"accepted\":")`; searching from a later offset
/// reaches a nested object's field.
pub fn json_number(json: &str, key: &str) -> u64 {
    let at = json.find(key).unwrap_or_else(|| panic!("{key} in {json}")) + key.len();
    json[at..]
        .chars()
        .take_while(char::is_ascii_digit)
        .collect::<String>()
        .parse()
        .unwrap_or_else(|_| panic!("a number after {key} in {json}"))
}

/// The python3 that has jsonschema (the one on PATH, or Debian's), or None
/// outside CI when neither has it; in CI a missing validator fails.
fn python_with_jsonschema() -> Option<&'static str> {
    let found = ["python3", "/usr/bin/python3"].into_iter().find(|p| {
        Command::new(p)
            .args(["-c", "import jsonschema"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "python3 with jsonschema is missing (apt-get install python3-jsonschema)"
        );
        eprintln!("skipping schema check: python3 jsonschema is not installed");
    }
    found
}

/// Checks `json` against the schema at `schema` (relative to the
/// workspace, e.g. `docs/report.schema.json`) with Python's jsonschema, a
/// real validator. Returns the validator's complaint, or None when valid;
/// also None (with a note on stderr) when no validator is installed
/// outside CI.
pub fn schema_errors(schema: &str, json: &str) -> Option<String> {
    let python = python_with_jsonschema()?;
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(schema);
    let out = Command::new(python)
        .args([
            "-c",
            "import json, sys, jsonschema\n\
             schema = json.load(open(sys.argv[1]))\n\
             jsonschema.Draft202012Validator.check_schema(schema)\n\
             jsonschema.validate(json.loads(sys.stdin.read()), schema,\n\
                 cls=jsonschema.Draft202012Validator)",
        ])
        .arg(&path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .and_then(|mut child| {
            use std::io::Write as _;
            child
                .stdin
                .take()
                .expect("stdin")
                .write_all(json.as_bytes())?;
            child.wait_with_output()
        })
        .expect("python3");
    (!out.status.success()).then(|| String::from_utf8_lossy(&out.stderr).into_owned())
}

/// Asserts that `json` is valid against the schema at `schema`.
pub fn assert_matches_schema(schema: &str, json: &str) {
    if let Some(err) = schema_errors(schema, json) {
        panic!("{json}\ndoes not match {schema}:\n{err}");
    }
}

/// Asserts that the schema at `schema` refuses `json` (a schema that
/// accepts anything would pass every other check).
pub fn assert_violates_schema(schema: &str, json: &str) {
    if python_with_jsonschema().is_some() {
        assert!(
            schema_errors(schema, json).is_some(),
            "{schema} accepted {json}"
        );
    }
}

/// Where Debian's postfix package puts Postfix's smtp-sink.
pub const POSTFIX_SINK: &str = "/usr/sbin/smtp-sink";

/// Whether an external program the test needs is there; outside CI a
/// missing one skips the test (with a note), in CI it fails.
pub fn have(program: &str) -> bool {
    let found = if program.contains('/') {
        Path::new(program).exists()
    } else {
        Command::new("sh")
            .args(["-c", &format!("command -v {program}")])
            .stdout(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{program} is missing (it is needed in CI)"
        );
        eprintln!("skipping: {program} is not installed");
    }
    found
}

/// Postfix's smtp-sink with these options on 127.0.0.1:port, accepting
/// when this returns; killed on drop.
pub fn start_postfix_sink(args: &[&str], port: u16) -> Killed {
    let mut cmd = Command::new(POSTFIX_SINK);
    if is_root() {
        // Postfix's sink refuses to run as root without -u.
        cmd.args(["-u", "nobody"]);
    }
    cmd.args(args)
        .arg(format!("127.0.0.1:{port}"))
        .arg("128")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let sink = Killed(cmd.spawn().expect("start Postfix smtp-sink"));
    wait_listening(port);
    sink
}

/// Waits (bounded by `cap`) for a child to exit; its status, and what it
/// wrote to stdout and stderr when those were piped (empty otherwise).
pub fn wait_exit(child: &mut Child, cap: Duration) -> (std::process::ExitStatus, String, String) {
    use std::io::Read as _;
    let deadline = Instant::now() + cap;
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "still running after {cap:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut out = String::new();
    if let Some(mut o) = child.stdout.take() {
        o.read_to_string(&mut out).expect("stdout");
    }
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        e.read_to_string(&mut err).expect("stderr");
    }
    (status, out, err)
}
