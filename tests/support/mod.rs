//! What the workspace-level tests share: finding the built binaries,
//! ports, our sink as a child process that is always stopped, and dump
//! directories. Each test binary uses part of it.
#![allow(dead_code)]

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
    let mut cmd = Command::new(bin("smtp-sink"));
    if is_root() {
        cmd.args(["-u", "nobody"]);
    }
    cmd.args(args).arg(format!("127.0.0.1:{port}")).arg("128");
    cmd.stdout(Stdio::null()).stderr(Stdio::inherit());
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
