//! What bounds smtp-source against odd input and odd servers: `-l` read as
//! glibc's atoi reads it (as Postfix's smtp-source does), a long `-l` body
//! sent without building it (memory stays flat, the bytes are the same),
//! `--reply-timeout` against a server that trickles a reply, replies too
//! long or with too many lines, out-of-range ports in both programs, and
//! connect errors that name the address.
//!
//! Memory is the program's peak resident set (VmHWM in /proc/PID/status),
//! read every few milliseconds while it runs: memory that grew without
//! bound would also keep the program running, so the last reading is
//! close to the true peak.

use std::{
    fs,
    io::{BufRead as _, BufReader, Write as _},
    net::{TcpListener, TcpStream},
    process::{Command, Stdio},
    thread,
    time::{Duration, Instant},
};

mod support;
use support::{
    assert_matches_schema, bin, dump_dir, expected_l_body, free_port, have, is_root, start_sink,
    wait_dumps, wait_exit,
};

/// Postfix's smtp-source, compared with where it is installed (in CI).
const POSTFIX_SOURCE: &str = "/usr/sbin/smtp-source";

/// Far below what a body built whole (1 GB for `-l 1000000000`) or a
/// reply buffered whole would take, far above a debug build's baseline.
const SMALL_KIB: u64 = 150 * 1024;

/// What one run of a program gave.
struct Run {
    code: Option<i32>,
    stderr: String,
    took: Duration,
    /// The highest VmHWM seen while it ran, KiB.
    peak_kib: u64,
}

/// VmHWM of a live process, KiB (0 once it is gone).
fn vm_hwm_kib(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Runs smtp-source with `args` within a generous cap, watching its
/// memory.
fn source(args: &[&str]) -> Run {
    let began = Instant::now();
    let mut child = Command::new(bin("smtp-source"))
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start smtp-source");
    let mut peak_kib = 0;
    let cap = Duration::from_secs(120);
    while child.try_wait().expect("wait").is_none() && began.elapsed() < cap {
        peak_kib = peak_kib.max(vm_hwm_kib(child.id()));
        thread::sleep(Duration::from_millis(2));
    }
    let (status, _, stderr) = wait_exit(&mut child, Duration::from_secs(10));
    Run {
        code: status.code(),
        stderr,
        took: began.elapsed(),
        peak_kib,
    }
}

/// A one-connection server on loopback: answers what `script` writes after
/// each line it reads (the first call, before reading, is the greeting).
/// The thread ends when the client goes away; its writes are bounded.
fn server(script: impl FnOnce(&mut TcpStream) + Send + 'static) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().unwrap().port();
    thread::spawn(move || {
        if let Ok((mut conn, _)) = listener.accept() {
            script(&mut conn);
        }
    });
    port
}

/// Writes `text` one byte per `pause`, stopping when the client is gone.
fn trickle(conn: &mut TcpStream, text: &[u8], pause: Duration) {
    for b in text {
        if conn.write_all(&[*b]).is_err() {
            return;
        }
        thread::sleep(pause);
    }
}

/// --timeout bounds each read (Postfix's meaning), so a byte a second
/// would keep the source for the whole reply; --reply-timeout 2 bounds
/// the greeting as a whole.
#[test]
fn reply_timeout_ends_a_trickled_greeting() {
    let port = server(|conn| {
        trickle(
            conn,
            b"220 a greeting that arrives one byte a second\r\n",
            Duration::from_secs(1),
        );
    });
    let addr = format!("127.0.0.1:{port}");
    let Run {
        code, stderr, took, ..
    } = source(&["--timeout", "5", "--reply-timeout", "2", &addr]);
    assert_eq!(code, Some(22), "{stderr}");
    assert!(
        stderr.ends_with(
            "fatal: timeout while reading server greeting: no complete reply within 2 s (--reply-timeout)\n"
        ),
        "{stderr}"
    );
    // 2 s asked; without the option it would take 47 s. A loaded machine
    // may be slow to start the process, hence the margin.
    assert!(took < Duration::from_secs(20), "{took:?}");
}

/// The clock of a reply starts when its command is sent: a quick greeting,
/// then a HELO reply trickled.
#[test]
fn reply_timeout_names_the_phase_of_a_later_reply() {
    let port = server(|conn| {
        if conn.write_all(b"220 ready\r\n").is_err() {
            return;
        }
        let mut line = String::new();
        let _ = BufReader::new(conn.try_clone().unwrap()).read_line(&mut line);
        trickle(
            conn,
            b"250 this reply comes one byte a second\r\n",
            Duration::from_secs(1),
        );
    });
    let addr = format!("127.0.0.1:{port}");
    let Run {
        code, stderr, took, ..
    } = source(&["--reply-timeout", "2", &addr]);
    assert_eq!(code, Some(23), "{stderr}");
    assert!(
        stderr.ends_with(
            "fatal: timeout while sending HELO: no complete reply within 2 s (--reply-timeout)\n"
        ),
        "{stderr}"
    );
    assert!(took < Duration::from_secs(20), "{took:?}");
}

/// A 1 MB reply line: refused at the reply-line cap (10240, Postfix's),
/// never buffered whole.
#[test]
fn a_one_megabyte_reply_line_is_refused_with_small_memory() {
    let port = server(|conn| {
        let mut line = b"220 ".to_vec();
        line.resize(1 << 20, b'x');
        line.extend_from_slice(b"\r\n");
        let _ = conn.write_all(&line);
    });
    let run = source(&[&format!("127.0.0.1:{port}")]);
    assert_eq!(run.code, Some(22), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("fatal: malformed reply while reading server greeting"),
        "{}",
        run.stderr
    );
    assert!(run.peak_kib < SMALL_KIB, "peak RSS {} KiB", run.peak_kib);
}

/// Endless `250-` continuation lines: refused at the line-count cap.
#[test]
fn endless_continuation_lines_are_refused_with_small_memory() {
    let port = server(|conn| {
        let mut lines = Vec::new();
        for _ in 0..100 {
            lines.extend_from_slice(b"220-more of the greeting\r\n");
        }
        // At most 10 MB, stopping when the client gives up.
        for _ in 0..4000 {
            if conn.write_all(&lines).is_err() {
                return;
            }
        }
    });
    let run = source(&[&format!("127.0.0.1:{port}")]);
    assert_eq!(run.code, Some(22), "{}", run.stderr);
    assert!(
        run.stderr
            .contains("fatal: malformed reply while reading server greeting"),
        "{}",
        run.stderr
    );
    assert!(run.peak_kib < SMALL_KIB, "peak RSS {} KiB", run.peak_kib);
}

/// `-l 1000000000` into our sink (no dump): the body is a repeated chunk,
/// so the source's memory stays far below the 1 GB a built body takes;
/// the report counts every byte and gives the preparation time.
#[test]
fn a_gigabyte_body_is_sent_with_small_memory() {
    let port = free_port();
    let sink = start_sink(&[], port);
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let run = source(&[
        "-l",
        "1000000000",
        "--json",
        json.to_str().unwrap(),
        &format!("127.0.0.1:{port}"),
    ]);
    drop(sink);
    assert_eq!(run.code, Some(0), "{}", run.stderr);
    assert!(run.peak_kib < SMALL_KIB, "peak RSS {} KiB", run.peak_kib);
    eprintln!(
        "-l 1000000000: peak RSS {} KiB, {:?}",
        run.peak_kib, run.took
    );
    let report = fs::read_to_string(&json).unwrap();
    assert!(report.contains("\"accepted\":1,"), "{report}");
    // The header block, the body, its CRLF; not the final ".".
    let bytes = support::json_number(&report, "\"bytes_sent\":");
    assert!(
        bytes > 1_000_000_002 && bytes < 1_000_001_000,
        "bytes_sent {bytes}"
    );
    assert!(report.contains("\"prepare_seconds\":"), "{report}");
    assert_matches_schema("docs/report.schema.json", &report);
}

/// A streamed body arrives byte for byte as the body built whole, with
/// DATA and with BDAT chunks that cut it anywhere: the sink's dump of
/// `-l` past the streaming threshold, across several chunk boundaries.
#[test]
fn a_streamed_body_is_dumped_as_the_whole_body() {
    const LEN: usize = 1_300_017;
    for extra in [&[][..], &["--chunking=100000"][..]] {
        let dir = dump_dir();
        let template = format!("{}/m.", dir.path().display());
        let port = free_port();
        let mut sink_args = vec!["-d", template.as_str()];
        if !extra.is_empty() {
            sink_args.push("--chunking");
        }
        let sink = start_sink(&sink_args, port);
        let len = LEN.to_string();
        let mut args = vec!["-m", "2", "-l", &len];
        args.extend_from_slice(extra);
        let addr = format!("127.0.0.1:{port}");
        args.push(&addr);
        let run = source(&args);
        assert_eq!(run.code, Some(0), "{extra:?}: {}", run.stderr);
        let files = wait_dumps(dir.path(), 2);
        drop(sink);
        assert_eq!(files.len(), 2, "{extra:?}");
        let body = expected_l_body(LEN);
        for f in &files {
            let data = fs::read(f).unwrap();
            let split = data
                .windows(2)
                .position(|w| w == b"\n\n")
                .expect("header/body separator");
            let rest = &data[split + 2..];
            assert!(
                rest.len() == body.len() + 1 && rest[..body.len()] == body[..],
                "{extra:?}: body of {} ({} bytes, want {})",
                f.display(),
                rest.len() - 1,
                body.len()
            );
        }
    }
}

/// `-l` as glibc's atoi reads it, as Postfix's smtp-source does: past
/// 2^31 it is negative (refused), 2^32 + 1 is 1 (accepted), a number too
/// long for a long is -1 (refused). Each accepted value reaches the
/// address check, which fails the same way in both programs.
#[test]
fn message_length_is_read_as_postfix_reads_it() {
    let want = |l: &str, text: &str| {
        let Run { code, stderr, .. } = source(&["-l", l, "a..b"]);
        assert_eq!(code, Some(1), "-l {l}: {stderr}");
        assert!(
            stderr.ends_with(&format!("fatal: {text}\n")),
            "-l {l}: {stderr}"
        );
    };
    want("2147483648", "bad message length: 2147483648");
    want(
        "4294967297",
        "a..b: valid hostname or network address required",
    );
    want(
        "99999999999999999999999999999",
        "bad message length: 99999999999999999999999999999",
    );
    if !have(POSTFIX_SOURCE) {
        return;
    }
    // Only values Postfix refuses or reads as small: it builds the whole
    // body before connecting (2147483647 would be 2 GB).
    for l in [
        "2147483648",
        "4294967296",
        "4294967297",
        "-99999999999",
        "99999999999999999999999999999",
        "12x",
        " 7",
    ] {
        let run = |program: &str| {
            let mut child = Command::new(program)
                .args(["-l", l, "a..b"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("start");
            let (status, _, stderr) = wait_exit(&mut child, Duration::from_secs(60));
            (status.code(), stderr.replace(program, "PROG"))
        };
        let theirs = run(POSTFIX_SOURCE);
        let ours = run(bin("smtp-source").to_str().unwrap());
        assert_eq!(ours, theirs, "-l {l:?}");
    }
}

/// One port grammar: both programs refuse a port past 65535 (Postfix's
/// resolver would wrap 99999 to 34463) with the same words.
#[test]
fn ports_past_65535_are_refused_by_both_programs() {
    let Run { code, stderr, .. } = source(&["127.0.0.1:99999"]);
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.ends_with("fatal: 127.0.0.1:99999: port number out of range (0-65535)\n"),
        "{stderr}"
    );
    let mut sink = Command::new(bin("smtp-sink"));
    if is_root() {
        sink.args(["-u", "nobody"]);
    }
    let mut child = sink
        .args(["127.0.0.1:99999", "10"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start smtp-sink");
    let (status, _, stderr) = wait_exit(&mut child, Duration::from_secs(60));
    assert_eq!(status.code(), Some(1), "{stderr}");
    assert!(
        stderr.ends_with("fatal: 127.0.0.1:99999: port number out of range (0-65535)\n"),
        "{stderr}"
    );
}

/// A failed connect names where it went, then says what Postfix says.
#[test]
fn connect_errors_name_the_address() {
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let Run { code, stderr, .. } = source(&["-C", "2", &addr]);
    assert_eq!(code, Some(21), "{stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 2, "{stderr}");
    assert!(
        lines[0].ends_with(&format!("warning: {addr}: connect: Connection refused")),
        "{stderr}"
    );
    assert!(
        lines[1].ends_with(&format!("fatal: {addr}: connect: Connection refused")),
        "{stderr}"
    );
    let Run { code, stderr, .. } = source(&["unix:/nonexistent/smtp"]);
    assert_eq!(code, Some(21), "{stderr}");
    assert!(
        stderr.ends_with("fatal: unix:/nonexistent/smtp: connect: No such file or directory\n"),
        "{stderr}"
    );
}
