//! -d/-D dump files from the real binary, compared whole.

use std::path::{Path, PathBuf};

use crate::common::*;

/// Files under `dir`, recursively, sorted.
pub(crate) fn files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut todo = vec![dir.to_path_buf()];
    while let Some(d) = todo.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir").flatten() {
            let p = e.path();
            if p.is_dir() {
                todo.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// Replaces the 8-hex-digit id after "id " and the date line after it.
pub(crate) fn normalise(record: &[u8]) -> String {
    let text = String::from_utf8_lossy(record);
    let mut out = String::new();
    let mut date_next = false;
    for line in text.split_inclusive('\n') {
        if date_next {
            out.push_str("\t<DATE>\n");
            date_next = false;
            continue;
        }
        if let Some(i) = line.find(" (smtp-sink) with ") {
            if let Some(j) = line[i..].find(" id ") {
                let start = i + j + 4;
                out.push_str(&line[..start]);
                out.push_str("<ID>");
                out.push_str(&line[(start + 8).min(line.len())..]);
                date_next = true;
                continue;
            }
        }
        out.push_str(line);
    }
    out
}

const SESSION: &[&[u8]] = &[
    b"EHLO   client.example  \r\n",
    b"MAIL FROM:<a@b> BODY=8BITMIME\r\nRCPT TO:<x@y>\r\nRCPT TO:<z@y> NOTIFY=NEVER\r\nDATA\r\n",
    b"Subject: hi\r\n\r\n..leading dot\r\nbare\rCR and \x80\x00 bytes\r\n\r\n.\r\n",
    b"MAIL FROM:<aborted>\r\nRCPT TO:<x>\r\nRSET\r\n",
    b"QUIT\r\n",
];

#[test]
fn per_transaction_files_are_postfix_records() {
    let dir = open_dir();
    let template = format!("{}/%Y/sub/m.", dir.path().display());
    let sink = start(
        OURS,
        &[
            "-d",
            &template,
            "-h",
            "sinkhost.example",
            "-S",
            r"START\tX\\n\101\n",
        ],
    );
    let got = converse(&sink.addr, SESSION);
    assert!(
        show(&got).contains("250 2.1.0 Ok\\r\\n\n221 Bye"),
        "{}",
        show(&got)
    );
    drop(sink);
    let files = files(dir.path());
    assert_eq!(
        files.len(),
        1,
        "the RSET transaction leaves no file: {files:?}"
    );
    let name = files[0]
        .file_name()
        .expect("name")
        .to_string_lossy()
        .into_owned();
    let hex = name.strip_prefix("m.").expect("template prefix");
    assert!(
        hex.len() == 8 && hex.bytes().all(|b| b.is_ascii_hexdigit()),
        "{name}"
    );
    let year = files[0].parent().and_then(Path::parent).expect("year dir");
    assert!(year
        .file_name()
        .expect("y")
        .to_string_lossy()
        .parse::<u32>()
        .is_ok());
    let record = std::fs::read(&files[0]).expect("read dump");
    let want = "START\tX\\nA\nX-Client-Addr: 127.0.0.1\nX-Client-Proto: ESMTP\nX-Helo-Args: client.example  \n\
X-Mail-Args: <a@b> BODY=8BITMIME\nX-Rcpt-Args: <x@y>\nX-Rcpt-Args: <z@y> NOTIFY=NEVER\n\
Received: from client.example   ([127.0.0.1])\n\tby sinkhost.example (smtp-sink) with ESMTP id <ID>;\n\t<DATE>\n\
Subject: hi\n\n.leading dot\nbareCR and \u{fffd}\0 bytes\n\n\n";
    assert_eq!(normalise(&record), want);
    assert!(String::from_utf8_lossy(&record).contains(&format!("id {hex};")));
}

#[test]
fn shared_file_over_unix_lmtp() {
    let dir = open_dir();
    let template = format!("{}/%Y/shared", dir.path().display());
    let sink = start_unix(OURS, &["-L", "-D", &template]);
    for _ in 0..2 {
        let got = converse(
            &sink.addr,
            &[
                b"LHLO lclient\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n",
                b"x\r\n.\r\nQUIT\r\n",
            ],
        );
        assert!(show(&got).contains("250 2.2.0 Ok"), "{}", show(&got));
    }
    drop(sink);
    let files = files(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");
    let one = "X-Client-Addr: local\nX-Client-Proto: LMTP\nX-Helo-Args: lclient\nX-Mail-Args: <a>\n\
X-Rcpt-Args: <b>\nReceived: from lclient ([local])\n\tby smtp-sink (smtp-sink) with LMTP id <ID>;\n\t<DATE>\nx\n\n";
    assert_eq!(
        normalise(&std::fs::read(&files[0]).expect("read")),
        one.repeat(2)
    );
}

#[test]
fn without_helo_received_names_the_address() {
    let dir = open_dir();
    let template = format!("{}/m.", dir.path().display());
    let sink = start(OURS, &["-d", &template]);
    let _ = converse(
        &sink.addr,
        &[b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n.\r\nQUIT\r\n"],
    );
    drop(sink);
    let files = files(dir.path());
    assert_eq!(files.len(), 1);
    assert_eq!(
        normalise(&std::fs::read(&files[0]).expect("read")),
        "X-Client-Addr: 127.0.0.1\nX-Client-Proto: SMTP\nX-Mail-Args: <a>\nX-Rcpt-Args: <b>\n\
Received: from [127.0.0.1] ([127.0.0.1])\n\tby smtp-sink (smtp-sink) with SMTP id <ID>;\n\t<DATE>\n\n"
    );
}

#[test]
fn unwritable_dump_directory_gives_451_not_250() {
    let dir = open_dir();
    let blocked = dir.path().join("blocked");
    std::fs::write(&blocked, b"a file, not a directory").expect("write");
    let template = format!("{}/m.", blocked.display());
    let mut sink = start(OURS, &["-d", &template]);
    let got = converse(
        &sink.addr,
        &[b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n"],
    );
    assert!(
        show(&got).contains("451 4.3.0 Error: dump file write failed\\r\\n\n221 Bye"),
        "{}",
        show(&got)
    );
    let out = stop(&mut sink);
    assert!(String::from_utf8_lossy(&out.stderr).contains("warning: dump file"));
}

#[test]
fn privileges_are_dropped_and_chroot_applies_after_binding() {
    if !is_root() {
        eprintln!("SKIP: chroot needs root");
        return;
    }
    let dir = open_dir();
    let root = dir.path().to_string_lossy().into_owned();
    // The template is inside the chroot.
    let sink = start(OURS, &["-u", "nobody", "-R", &root, "-d", "/m."]);
    let got = converse(
        &sink.addr,
        &[b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\nx\r\n.\r\nQUIT\r\n"],
    );
    assert!(show(&got).contains("250 2.0.0 Ok"), "{}", show(&got));
    drop(sink);
    let files = files(dir.path());
    assert_eq!(files.len(), 1, "{files:?}");
    let nobody = nix::unistd::User::from_name("nobody")
        .expect("getpwnam")
        .expect("nobody exists");
    let meta = std::fs::metadata(&files[0]).expect("meta");
    assert_eq!(
        std::os::unix::fs::MetadataExt::uid(&meta),
        nobody.uid.as_raw()
    );
    let text = std::fs::read_to_string(&files[0]).expect("read");
    assert!(
        text.contains("Received: from [127.0.0.1] ([127.0.0.1])"),
        "{text}"
    );
}

#[test]
fn exit_on_max_messages_keeps_finished_dumps_only() {
    for threads in ["0", "2"] {
        let dir = open_dir();
        let template = format!("{}/m.", dir.path().display());
        let mut sink = start(OURS, &["--threads", threads, "-M", "1", "-d", &template]);
        let mut half = Client::connect(&sink.addr);
        let _ = half.read_until(|b| b.ends_with(b"\r\n"), std::time::Duration::from_secs(5));
        half.send(b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\nhalf\r\n");
        let _ = half.read_until(
            |b| b.ends_with(b"<CR><LF>\r\n"),
            std::time::Duration::from_secs(5),
        );
        let got = converse(
            &sink.addr,
            &[b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\nfull\r\n.\r\n"],
        );
        assert!(show(&got).contains("250 2.0.0 Ok"), "{}", show(&got));
        let out = wait_exit(&mut sink, std::time::Duration::from_secs(10)).expect("-M 1 exits");
        assert!(out.status.success());
        let files = files(dir.path());
        assert_eq!(files.len(), 1, "threads {threads}: {files:?}");
        assert!(std::fs::read_to_string(&files[0])
            .expect("read")
            .ends_with("full\n\n"));
    }
}

#[test]
fn ipv6_clients_are_marked_in_the_record() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("SKIP: no IPv6 loopback");
        return;
    }
    let dir = open_dir();
    let template = format!("{}/m.", dir.path().display());
    let port = free_port();
    let addr = Addr::Tcp(format!("[::1]:{port}"));
    let sink = start_at(OURS, &["-d", &template], addr.clone(), None);
    let _ = converse(
        &addr,
        &[b"HELO v6\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n.\r\nQUIT\r\n"],
    );
    drop(sink);
    let files = files(dir.path());
    assert_eq!(files.len(), 1);
    let text = normalise(&std::fs::read(&files[0]).expect("read"));
    assert_eq!(
        text,
        "X-Client-Addr: ipv6:::1\nX-Client-Proto: SMTP\nX-Helo-Args: v6\nX-Mail-Args: <a>\nX-Rcpt-Args: <b>\n\
Received: from v6 ([ipv6:::1])\n\tby smtp-sink (smtp-sink) with SMTP id <ID>;\n\t<DATE>\n\n"
    );
}

/// A disk that fills up while messages arrive: the sink runs with a file
/// size limit (`ulimit -f`, SIGXFSZ ignored, so writes past it fail with
/// EFBIG as they would with ENOSPC). Every message answered 250 must be in
/// the dump whole, every other one must get 451, and a shared file must
/// hold whole records only.
#[test]
fn filling_disk_loses_no_accepted_message_and_tears_no_record() {
    // The limit is per file: a large message fails even with -d, where
    // each message has its own file; small ones fail once a shared file
    // has grown past it.
    let small = vec![b'X'; 1000];
    let large = vec![b'Y'; 30_000];
    for shared in [false, true] {
        let dir = open_dir();
        let wrapper = dir.path().join("limited-sink");
        std::fs::write(
            &wrapper,
            format!("#!/bin/bash\ntrap '' XFSZ\nulimit -f 24\nexec {OURS} \"$@\"\n"),
        )
        .expect("write wrapper");
        let mut perm = std::fs::metadata(&wrapper).expect("meta").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o755);
        std::fs::set_permissions(&wrapper, perm).expect("chmod");
        let dumps = dir.path().join("dumps");
        std::fs::create_dir(&dumps).expect("mkdir");
        let mut perm = std::fs::metadata(&dumps).expect("meta").permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perm, 0o777);
        std::fs::set_permissions(&dumps, perm).expect("chmod");
        let (flag, template) = if shared {
            ("-D", format!("{}/shared", dumps.display()))
        } else {
            ("-d", format!("{}/m.", dumps.display()))
        };
        let wrapper = wrapper.to_string_lossy().into_owned();
        let sink = start(&wrapper, &[flag, &template]);
        let mut session = b"EHLO c\r\n".to_vec();
        for i in 0..60 {
            session.extend_from_slice(b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n");
            session.extend_from_slice(if i % 3 == 2 { &large } else { &small });
            session.extend_from_slice(b"\r\n.\r\n");
        }
        session.extend_from_slice(b"QUIT\r\n");
        let got = String::from_utf8_lossy(&converse(&sink.addr, &[&session])).into_owned();
        let accepted = got.matches("250 2.0.0 Ok").count();
        let refused = got
            .matches("451 4.3.0 Error: dump file write failed")
            .count();
        assert_eq!(accepted + refused, 60, "{flag}: {got}");
        assert!(
            accepted > 0 && refused > 0,
            "{flag}: the limit must bite: {got}"
        );
        let whole = |record: &[u8]| {
            record.starts_with(b"X-Client-Addr: ")
                && [&small, &large].iter().any(|body| {
                    let tail = [&body[..], b"\n\n"].concat();
                    record.ends_with(&tail) && record[..record.len() - tail.len()].ends_with(b"\n")
                })
        };
        let found = files(&dumps);
        if shared {
            assert_eq!(found.len(), 1, "only the shared file: {found:?}");
            let data = std::fs::read(&found[0]).expect("read");
            let records: Vec<&[u8]> = data
                .split_inclusive(|&b| b == b'\n')
                .collect::<Vec<_>>()
                .chunk_by(|_, line| !line.starts_with(b"X-Client-Addr: "))
                .map(|lines| {
                    &data[offset(&data, lines[0])
                        ..offset(&data, lines[lines.len() - 1]) + lines[lines.len() - 1].len()]
                })
                .collect();
            assert_eq!(records.len(), accepted, "one record per 250");
            assert!(
                records.iter().all(|r| whole(r)),
                "a torn record in the shared file"
            );
        } else {
            assert_eq!(found.len(), accepted, "one file per 250: {found:?}");
            for f in found {
                assert!(whole(&std::fs::read(&f).expect("read")), "{}", f.display());
            }
        }
    }
}

/// Where `part` starts inside `whole` (both slices of the same buffer).
fn offset(whole: &[u8], part: &[u8]) -> usize {
    part.as_ptr() as usize - whole.as_ptr() as usize
}
