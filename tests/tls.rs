//! TLS and AUTH end to end: our smtp-source into our smtp-sink over
//! STARTTLS and implicit TLS, logged in; what each side reports and dumps.

use std::{fs, os::unix::fs::PermissionsExt, path::Path, process::Command};

mod support;
use support::{
    assert_matches_schema, assert_violates_schema, bin, dump_dir, files_in, free_port, json_number,
    start_sink, wait_dumps,
};

/// A `user:password` file readable by the sink after it drops to nobody.
fn users_file(dir: &Path, lines: &str) -> String {
    let path = dir.join("users");
    fs::write(&path, lines).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    path.display().to_string()
}

struct Ran {
    ok: bool,
    stdout: String,
    stderr: String,
}

fn source(args: &[&str], port: u16) -> Ran {
    let out = Command::new(bin("smtp-source"))
        .args(args)
        .arg(format!("127.0.0.1:{port}"))
        .output()
        .expect("run smtp-source");
    Ran {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// The value of a numeric field of the JSON report.
fn field(json: &str, name: &str) -> u64 {
    json_number(json, &format!("\"{name}\":"))
}

/// STARTTLS then AUTH PLAIN, logins in turn from a file: every message is
/// dumped with the TLS and AUTH lines, and both sides count the same.
#[test]
fn starttls_and_auth_into_our_sink() {
    let dumps = dump_dir();
    let users = users_file(dumps.path(), "alice:secret\nbob:hunter2\n");
    let template = format!("{}/m.", dumps.path().display());
    let port = free_port();
    let _sink = start_sink(
        &["--starttls", "--auth-users", &users, "-d", &template],
        port,
    );
    // The client's own copy, outside the sink's dump directory.
    let client_dir = dump_dir();
    let client_users = users_file(client_dir.path(), "alice:secret\nbob:hunter2\n");
    let run = source(
        &[
            "--starttls",
            "--auth=PLAIN",
            "--auth-users",
            &client_users,
            "-s",
            "2",
            "-m",
            "20",
            "--json",
            "-",
        ],
        port,
    );
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(field(&run.stdout, "accepted"), 20);
    assert_eq!(field(&run.stdout, "auth_successes"), 20);
    // One connection per message: the first of each session is a full
    // handshake, the others resume.
    let full = field(&run.stdout, "tls_handshakes_full");
    let resumed = field(&run.stdout, "tls_handshakes_resumed");
    assert_eq!(full + resumed, 20, "{}", run.stdout);
    assert!(resumed > 0, "sessions resume by default: {}", run.stdout);
    let files = wait_dumps(dumps.path(), 20);
    let mut users_seen = std::collections::BTreeSet::new();
    for f in &files {
        let text = String::from_utf8_lossy(&fs::read(f).unwrap()).into_owned();
        let tls = text
            .lines()
            .find(|l| l.starts_with("X-Client-TLS: TLSv1."))
            .unwrap_or_else(|| panic!("no TLS line in {text}"));
        assert!(tls.contains("TLS13_") || tls.contains("TLS_ECDHE"), "{tls}");
        let user = text
            .lines()
            .find_map(|l| l.strip_prefix("X-Client-Auth: "))
            .unwrap_or_else(|| panic!("no AUTH line in {text}"));
        users_seen.insert(user.to_owned());
        assert!(text.contains("La de da de da 4."), "{text}");
    }
    assert_eq!(
        users_seen.into_iter().collect::<Vec<_>>(),
        ["alice", "bob"],
        "logins taken in turn"
    );
}

/// Implicit TLS on both ends, AUTH LOGIN, pipelining and BDAT inside TLS;
/// `--no-tls-resume` forces a full handshake per connection.
#[test]
fn implicit_tls_login_pipelining_and_full_handshakes() {
    let dumps = dump_dir();
    let users = users_file(dumps.path(), "carol:pw\n");
    let template = format!("{}/m.", dumps.path().display());
    let port = free_port();
    let _sink = start_sink(
        &[
            "--tls-on-connect",
            "--chunking",
            "--auth-users",
            &users,
            "-d",
            &template,
        ],
        port,
    );
    let run = source(
        &[
            "--tls-on-connect",
            "--no-tls-resume",
            "--auth=LOGIN",
            "--auth-user",
            "carol",
            "--auth-password",
            "pw",
            "--pipelining",
            "--chunking",
            "-s",
            "2",
            "-m",
            "10",
            "--json",
            "-",
        ],
        port,
    );
    assert!(run.ok, "{}", run.stderr);
    assert_eq!(field(&run.stdout, "tls_handshakes_full"), 10);
    assert_eq!(field(&run.stdout, "tls_handshakes_resumed"), 0);
    assert_eq!(field(&run.stdout, "accepted"), 10);
    assert_eq!(wait_dumps(dumps.path(), 10).len(), 10);
}

/// What fails, fails clearly: a certificate that does not verify, a wrong
/// password (fatal, or counted under -A), AUTH in the clear, STARTTLS not
/// offered.
#[test]
fn failures_name_their_reason() {
    let dir = dump_dir();
    let users = users_file(dir.path(), "dave:right\n");
    let port = free_port();
    let _sink = start_sink(&["--starttls", "--auth-users", &users], port);

    let run = source(&["--starttls", "--tls-verify", "-m", "1"], port);
    assert!(!run.ok);
    assert!(
        run.stderr
            .contains("fatal: TLS handshake failed: invalid peer certificate"),
        "{}",
        run.stderr
    );

    let wrong = [
        "--starttls",
        "--auth",
        "--auth-user",
        "dave",
        "--auth-password",
        "wrong",
        "-m",
        "3",
    ];
    let run = source(&wrong, port);
    assert!(!run.ok);
    assert!(
        run.stderr
            .contains("fatal: authentication rejected: 535 5.7.8"),
        "{}",
        run.stderr
    );
    let mut tolerant = vec!["-A", "--json", "-"];
    tolerant.extend_from_slice(&wrong);
    let run = source(&tolerant, port);
    assert!(run.ok, "{}", run.stderr);
    assert!(run.stdout.contains("\"auth\":3"), "{}", run.stdout);
    assert!(
        run.stderr.contains("warning: authentication rejected: 535"),
        "{}",
        run.stderr
    );

    let run = source(
        &["--auth", "--auth-user", "dave", "--auth-password", "right"],
        port,
    );
    assert!(!run.ok);
    assert!(run.stderr.contains("--auth-plaintext"), "{}", run.stderr);

    let plain_port = free_port();
    let _plain = start_sink(&[], plain_port);
    let run = source(&["--starttls", "-m", "1"], plain_port);
    assert!(!run.ok);
    assert!(
        run.stderr.contains("fatal: server does not offer STARTTLS"),
        "{}",
        run.stderr
    );
    assert!(files_in(dir.path()).iter().all(|f| f.ends_with("users")));
}

/// `-v` shows the handshake and hides the secrets.
#[test]
fn verbose_hides_secrets() {
    let dir = dump_dir();
    let users = users_file(dir.path(), "erin:s3cr3t\n");
    let port = free_port();
    let _sink = start_sink(&["--starttls", "--auth-users", &users], port);
    for mech in ["PLAIN", "LOGIN"] {
        let auth = format!("--auth={mech}");
        let run = source(
            &[
                "-v",
                "--starttls",
                &auth,
                "--auth-user",
                "erin",
                "--auth-password",
                "s3cr3t",
            ],
            port,
        );
        assert!(run.ok, "{}", run.stderr);
        assert!(run.stderr.contains(": STARTTLS\n"), "{}", run.stderr);
        assert!(
            run.stderr.contains(": TLS TLSv1.3 ") && run.stderr.contains("full handshake, peer: "),
            "{}",
            run.stderr
        );
        assert!(
            run.stderr.contains(&format!(": AUTH {mech}")),
            "{}",
            run.stderr
        );
        assert!(run.stderr.contains("<<< 235 "), "{}", run.stderr);
        // Neither the password nor its base64 forms appear.
        for secret in ["s3cr3t", "czNjcjN0", "AGVyaW4AczNjcjN0", "ZXJpbg=="] {
            assert!(!run.stderr.contains(secret), "{secret} in {}", run.stderr);
        }
    }
}

/// Every report is valid against docs/report.schema.json (checked with
/// Python's jsonschema, a real validator): plain, several recipients,
/// ESMTP, TLS with AUTH; the sink rejects every RCPT (`-r rcpt`), so the
/// per-phase counters are filled too.
#[test]
fn reports_match_their_schema() {
    let dir = dump_dir();
    let users = users_file(dir.path(), "frank:pw\n");
    let port = free_port();
    let _sink = start_sink(
        &[
            "--starttls",
            "--chunking",
            "--auth-users",
            &users,
            "-r",
            "rcpt",
        ],
        port,
    );
    let login = ["--auth-user", "frank", "--auth-password", "pw"];
    let mut reports = Vec::new();
    for args in [
        vec!["-A", "-m", "2"],
        vec!["-A", "-m", "2", "-r", "2"],
        vec!["-A", "-d", "--pipelining", "--chunking", "-m", "3"],
        [&["-A", "--starttls", "--auth", "-m", "2"][..], &login[..]].concat(),
    ] {
        let mut args = args.clone();
        args.extend(["--json", "-"]);
        let run = source(&args, port);
        assert!(run.ok, "{}", run.stderr);
        reports.push(run.stdout);
    }
    assert!(
        reports[3].contains("\"tls_protocol\":\"TLSv1."),
        "{}",
        reports[3]
    );
    for report in &reports {
        assert_matches_schema("docs/report.schema.json", report);
    }
    // The schema rejects what it should: a missing field.
    let broken = reports[0].replace("\"accepted\":", "\"accepted_\":");
    assert_violates_schema("docs/report.schema.json", &broken);
}
