//! What goes on the wire, counted by the kernel's side: with
//! `--pipelining --chunking`, a message costs one write from our source
//! and one from our sink (the MAIL, RCPT and BDAT-LAST replies together).
//! Both programs run under strace, which counts their write calls on the
//! socket; counts do not depend on timing, because the client sends the
//! next group only after the replies to the last one.

use std::{
    fs,
    path::Path,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

mod support;
use support::{bin, free_port, is_root, wait_listening, Killed};

/// strace, or a skip notice (a failure when CI is set).
fn strace() -> Option<&'static str> {
    let found = Command::new("strace")
        .arg("-V")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if found {
        return Some("strace");
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "strace is missing (apt-get install strace)"
    );
    eprintln!("skipping: strace is not installed");
    None
}

/// The write calls (write, writev, sendto, sendmsg) a trace shows on the
/// SMTP sockets: the descriptors on which a conversation starts (`220` from
/// a server, `EHLO` or `HELO` from a client). The runtime's own wake-up writes to its
/// eventfd are not counted.
fn socket_writes(trace: &Path) -> usize {
    let text = fs::read_to_string(trace).expect("trace");
    let calls: Vec<(&str, &str)> = text
        .lines()
        .filter_map(|l| {
            // `PID  call(...)`: strace pads short pids with spaces.
            let call = l.split_once(' ')?.1.trim_start();
            let (name, rest) = call.split_once('(')?;
            let (fd, args) = rest.split_once(", ")?;
            ["write", "writev", "sendto", "sendmsg"]
                .contains(&name)
                .then_some((fd, args))
        })
        .collect();
    let starts = |args: &str| {
        let args = args.strip_prefix("[{iov_base=").unwrap_or(args);
        ["\"220 ", "\"EHLO ", "\"HELO "]
            .iter()
            .any(|p| args.starts_with(p))
    };
    let fds: Vec<&str> = calls
        .iter()
        .filter(|(_, args)| starts(args))
        .map(|(fd, _)| *fd)
        .collect();
    calls.iter().filter(|(fd, _)| fds.contains(fd)).count()
}

/// Runs our sink and our source, both traced; returns (source writes,
/// sink writes).
fn traced_run(strace: &str, source_args: &[&str], sink_args: &[&str]) -> (usize, usize) {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let sink_trace = dir.path().join("sink.trace");
    let source_trace = dir.path().join("source.trace");
    let trace_args = |out: &Path| {
        vec![
            "-f".to_owned(),
            "-qq".to_owned(),
            "-e".to_owned(),
            "trace=write,writev,sendto,sendmsg".to_owned(),
            "-o".to_owned(),
            out.display().to_string(),
        ]
    };
    let mut cmd = Command::new(strace);
    cmd.args(trace_args(&sink_trace)).arg(bin("smtp-sink"));
    if is_root() {
        cmd.args(["-u", "nobody"]);
    }
    cmd.args(sink_args)
        .args(["-n", "2"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("128")
        .stdout(Stdio::null());
    let sink = Killed(cmd.spawn().expect("start the traced sink"));
    wait_listening(port);
    let out = Command::new(strace)
        .args(trace_args(&source_trace))
        .arg(bin("smtp-source"))
        .args(source_args)
        .arg(format!("127.0.0.1:{port}"))
        .output()
        .expect("run the traced source");
    assert!(
        out.status.success(),
        "smtp-source failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The probe and the source's session: the sink exits after both (-n 2),
    // and strace with it.
    let mut sink = sink;
    let deadline = Instant::now() + Duration::from_secs(60);
    while sink.0.try_wait().unwrap().is_none() {
        assert!(Instant::now() < deadline, "sink did not exit after -n 2");
        std::thread::sleep(Duration::from_millis(50));
    }
    // The probe connection made the sink write one greeting.
    (socket_writes(&source_trace), socket_writes(&sink_trace) - 1)
}

#[test]
fn one_write_each_way_per_message() {
    let Some(strace) = strace() else { return };
    let m = 200;
    let (source, sink) = traced_run(
        strace,
        &["--pipelining", "--chunking", "-s", "1", "-d", "-m", "200"],
        &["--chunking"],
    );
    // EHLO, one write per message, QUIT.
    assert_eq!(source, m + 2, "source writes");
    // Greeting, EHLO reply, one write per message, 221.
    assert_eq!(sink, m + 3, "sink writes");

    // Pipelined DATA: the content shares a write with the next envelope.
    let (source, sink) = traced_run(strace, &["--pipelining", "-s", "1", "-d", "-m", "200"], &[]);
    assert_eq!(source, m + 2, "source writes, pipelined DATA");
    assert_eq!(sink, m + 3, "sink writes, pipelined DATA");

    // Postfix's mode, for contrast: MAIL, RCPT, DATA and the content each
    // wait for a reply.
    let (source, sink) = traced_run(strace, &["-s", "1", "-d", "-m", "200"], &[]);
    assert_eq!(source, 4 * m + 2, "source writes, stop and wait");
    assert_eq!(sink, 4 * m + 3, "sink writes, stop and wait");
}
