//! The release assets: the man pages in docs/man/ and the shell
//! completions in docs/completions/ are generated from the programs' clap
//! definitions (clap_mangen, clap_complete). This test generates them
//! again in memory and fails when the files in the repository differ, so
//! an option added without regenerating them fails CI; with
//! `UPDATE_RELEASE_ASSETS=1` it writes them instead:
//!
//! ```sh
//! UPDATE_RELEASE_ASSETS=1 cargo test --test release_assets
//! ```
//!
//! It also checks what was generated: the completions are valid shell (and
//! bash's completes our options), the man pages render (where `man` is
//! installed), and each program's `--version`.

mod support;

use std::{
    fmt::Write as _,
    fs,
    path::{Path, PathBuf},
    process::{Command, Stdio},
};

use clap::CommandFactory;
use clap_complete::Shell;
use clap_mangen::{
    roff::{roman, Roff},
    Man,
};

/// The environment variable that makes the test write the assets.
const UPDATE: &str = "UPDATE_RELEASE_ASSETS";

/// The crate version, which all crates of the workspace share. The man
/// pages carry this, not `--version`'s text: with the git commit in it,
/// they would change on every commit.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The programs, each with what its man page says that clap does not.
struct Program {
    name: &'static str,
    command: fn() -> clap::Command,
    /// The DESCRIPTION section: paragraphs separated by blank lines.
    description: &'static str,
    /// The EXIT STATUS section, as preformatted lines.
    exit_status: &'static str,
    /// Where the whole documentation is, for SEE ALSO.
    doc: &'static str,
}

const PROGRAMS: [Program; 3] = [
    Program {
        name: "smtp-source",
        command: smtp_source::cli::Cli::command,
        description: "\
smtp-source connects to an SMTP or LMTP server and sends it generated test \
messages over one or more parallel sessions. It is a drop-in replacement for \
Postfix's smtp-source: every short option, default and error text is \
Postfix's, and the server sees the same bytes.

The long options are additions, all off by default: ESMTP (PIPELINING, \
CHUNKING, SIZE, 8BITMIME, SMTPUTF8), STARTTLS and implicit TLS, AUTH, and \
measurement: per-phase latency percentiles (--summary), a JSON report \
(--json), a constant rate (--rate), a time limit (--duration), pass/fail \
thresholds (--threshold), segmented runs (--segment) and their merge \
(--merge-reports).",
        exit_status: smtp_source::exit::HELP,
        doc: "docs/smtp-source.md",
    },
    Program {
        name: "smtp-sink",
        command: smtp_sink::cli::Cli::command,
        description: "\
smtp-sink listens on a TCP or unix socket and receives SMTP or LMTP \
messages, which it throws away or dumps to files, so that clients can be \
measured. It is a drop-in replacement for Postfix's smtp-sink: every short \
option, reply text and dump record is Postfix's.

The long options are additions, all off by default: CHUNKING, SIZE and \
SMTPUTF8, STARTTLS and implicit TLS (with a self-signed certificate when \
none is given), AUTH with real credential checks, behaviour of real servers \
(--max-rate, --greylist, --tarpit, --fault), end-to-end verification of \
smtp-source's stamped messages (--verify, --expect), and counters \
(--stats-json, a Prometheus endpoint with --metrics, --progress).

As root, smtp-sink needs -u user to drop its privileges.",
        exit_status: "\
Exit status:
    0  stopped by -M, -n, Ctrl-C or SIGTERM (or SIGHUP with --stats-json)
    1  usage or setup error, or a fatal error while running
    3  --expect N: fewer than N unique messages arrived",
        doc: "docs/smtp-sink.md",
    },
    Program {
        name: "smtp-probe",
        command: smtp_source::probe::cli::ProbeCli::command,
        description: "\
smtp-probe sends numbered test messages to one or more mail servers (or to \
the MX hosts of the recipient's domain), one at a time, and prints a line \
per attempt with the time of each phase and whether a failure was a network \
fault or an SMTP reply, then a summary per server. With -u it retries each \
server until it has accepted a message.

It takes smtp-conversation's command line, and smtp-source's ESMTP, TLS and \
AUTH options.",
        exit_status: smtp_source::probe::EXIT_HELP,
        doc: "docs/smtp-probe.md",
    },
];

/// Every asset: its path in the repository and its bytes.
fn generate() -> Vec<(PathBuf, Vec<u8>)> {
    let mut assets = Vec::new();
    for program in &PROGRAMS {
        assets.push((
            PathBuf::from(format!("docs/man/{}.1", program.name)),
            man_page(program),
        ));
        for (shell, file) in [
            (Shell::Bash, format!("{}.bash", program.name)),
            (Shell::Zsh, format!("_{}", program.name)),
            (Shell::Fish, format!("{}.fish", program.name)),
        ] {
            let mut bytes = Vec::new();
            clap_complete::generate(shell, &mut (program.command)(), program.name, &mut bytes);
            assets.push((PathBuf::from("docs/completions").join(file), bytes));
        }
    }
    assets
}

/// clap_mangen's sections, with our own title, DESCRIPTION, EXIT STATUS
/// (from the `--help` epilogue, which is all it says) and SEE ALSO.
fn man_page(program: &Program) -> Vec<u8> {
    let command = (program.command)()
        .version(VERSION)
        .long_about(program.description);
    let man = Man::new(command);
    // The title by hand: clap_mangen drops an empty date argument instead
    // of quoting it, which shifts the source into the date's place. No
    // date: it would change with every regeneration.
    let mut page = format!(
        ".TH {} 1 \"\" \"smtp-suite {VERSION}\" \"smtp-suite\"\n",
        program.name.to_uppercase()
    )
    .into_bytes();
    let io = "render into memory";
    man.render_name_section(&mut page).expect(io);
    man.render_synopsis_section(&mut page).expect(io);
    man.render_description_section(&mut page).expect(io);
    man.render_options_section(&mut page).expect(io);

    let mut roff = Roff::default();
    roff.control("SH", ["EXIT STATUS"]);
    let table = program
        .exit_status
        .strip_prefix("Exit status:\n")
        .expect("the exit status text starts with its heading");
    // Preformatted: the table is laid out in columns.
    roff.control("nf", []);
    for line in table.lines() {
        roff.text([roman(line)]);
    }
    roff.control("fi", []);
    roff.control("SH", ["SEE ALSO"]);
    let others: Vec<String> = PROGRAMS
        .iter()
        .filter(|p| p.name != program.name)
        .map(|p| format!("{}(1)", p.name))
        .collect();
    roff.text([roman(format!(
        "{}. The whole documentation, with every difference from Postfix, is {} in the \
         smtp-suite source tree.",
        others.join(", "),
        program.doc
    ))]);
    roff.to_writer(&mut page).expect(io);
    only_first_preamble(&page)
}

/// Each render call of clap_mangen (and roff) starts with the same
/// two-line preamble (the definition of `\*(Aq`, the apostrophe); the page
/// needs it once, at the top.
fn only_first_preamble(page: &[u8]) -> Vec<u8> {
    const PREAMBLE: &str = ".ie \\n(.g .ds Aq \\(aq\n.el .ds Aq '\n";
    let text = std::str::from_utf8(page).expect("UTF-8");
    let body = text.replace(PREAMBLE, "");
    assert!(text.contains(PREAMBLE), "clap_mangen's preamble changed");
    format!("{PREAMBLE}{body}").into_bytes()
}

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

#[test]
fn the_assets_in_the_repository_match_the_code() {
    let assets = generate();
    if std::env::var_os(UPDATE).is_some() {
        for (path, bytes) in &assets {
            let path = root().join(path);
            fs::create_dir_all(path.parent().expect("a directory")).expect("mkdir");
            fs::write(&path, bytes).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
        return;
    }
    let mut stale = String::new();
    for (path, bytes) in &assets {
        match fs::read(root().join(path)) {
            Ok(on_disk) if on_disk == *bytes => {}
            Ok(_) => writeln!(stale, "  {} differs from the code", path.display()).unwrap(),
            Err(e) => writeln!(stale, "  {}: {e}", path.display()).unwrap(),
        }
    }
    assert!(
        stale.is_empty(),
        "the man pages or completions are out of date:\n{stale}\
         run `{UPDATE}=1 cargo test --test release_assets` to regenerate them"
    );
}

/// Nothing in docs/man/ or docs/completions/ that this test does not make:
/// a renamed program leaves no orphan behind.
#[test]
fn the_asset_directories_hold_only_generated_files() {
    if std::env::var_os(UPDATE).is_some() {
        return;
    }
    let generated: Vec<PathBuf> = generate().into_iter().map(|(p, _)| p).collect();
    for dir in ["docs/man", "docs/completions"] {
        for entry in fs::read_dir(root().join(dir)).expect(dir) {
            let path = Path::new(dir).join(entry.expect(dir).file_name());
            assert!(
                generated.contains(&path),
                "{} is not generated by tests/release_assets.rs: remove it",
                path.display()
            );
        }
    }
}

#[test]
fn man_pages_carry_the_crate_version_and_every_long_option() {
    for program in &PROGRAMS {
        let page = String::from_utf8(man_page(program)).expect("UTF-8");
        assert!(
            page.contains(&format!(
                "\n.TH {} 1 \"\" \"smtp-suite {VERSION}\" \"smtp-suite\"\n",
                program.name.to_uppercase()
            )),
            "{}: {}",
            program.name,
            page.lines().nth(2).unwrap_or_default()
        );
        assert!(
            !page.contains("(git "),
            "{}: a commit in the page",
            program.name
        );
        for section in [
            "NAME",
            "SYNOPSIS",
            "DESCRIPTION",
            "OPTIONS",
            "EXIT STATUS",
            "SEE ALSO",
        ] {
            assert!(
                page.contains(&format!(".SH {section}"))
                    || page.contains(&format!(".SH \"{section}\"")),
                "{}: no {section} section",
                program.name
            );
        }
        // Every option clap knows is in the page (roff escapes '-').
        for arg in (program.command)().get_arguments() {
            if let Some(long) = arg.get_long() {
                let roff = format!("\\-\\-{}", long.replace('-', "\\-"));
                assert!(page.contains(&roff), "{}: no --{long}", program.name);
            }
        }
    }
}

/// The pages render without warnings in man(1), where it is installed
/// (it is not needed to build or test the suite).
#[test]
fn man_pages_render() {
    if !installed("man") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    for program in &PROGRAMS {
        let path = dir.path().join(format!("{}.1", program.name));
        fs::write(&path, man_page(program)).expect("write");
        let out = Command::new("man")
            .args(["--warnings", "-l", "-P", "cat"])
            .arg(&path)
            .env("MANWIDTH", "100")
            .env("LC_ALL", "C.UTF-8")
            .stdin(Stdio::null())
            .output()
            .expect("man");
        let text = String::from_utf8_lossy(&out.stdout);
        let errors = String::from_utf8_lossy(&out.stderr);
        if errors.contains("can't execute") || errors.contains("No such file") {
            // man-db without groff's nroff: nothing to render with.
            eprintln!("skip: man cannot render here: {errors}");
            return;
        }
        assert!(out.status.success(), "{}: {errors}", program.name);
        assert!(errors.trim().is_empty(), "{}: {errors}", program.name);
        assert!(text.contains("EXIT STATUS"), "{}: {text}", program.name);
        assert!(text.contains("--version"), "{}: {text}", program.name);
    }
}

/// Whether an optional program is on PATH (unlike `support::have`, a
/// missing one is no failure in CI: these checks are extras).
fn installed(program: &str) -> bool {
    let found = Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        eprintln!("skip: {program} is not installed");
    }
    found
}

/// Writes the generated completions into a directory, for the shells.
fn completions_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (path, bytes) in generate() {
        if path.starts_with("docs/completions") {
            fs::write(dir.path().join(path.file_name().expect("name")), bytes).expect("write");
        }
    }
    dir
}

#[test]
fn bash_completions_parse_and_complete_our_options() {
    let dir = completions_dir();
    for program in &PROGRAMS {
        let file = dir.path().join(format!("{}.bash", program.name));
        let syntax = Command::new("bash")
            .arg("-n")
            .arg(&file)
            .output()
            .expect("bash");
        assert!(
            syntax.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&syntax.stderr)
        );
        // What bash does on `<program> --vers<TAB>`: the completion
        // function that `complete -F` registered, called with the words.
        let script = format!(
            r#"source "$1"
spec=$(complete -p {name}) || exit 2
function=$(sed -n 's/.*-F \([^ ]*\).*/\1/p' <<<"$spec")
COMP_WORDS=({name} --vers); COMP_CWORD=1; COMP_LINE="{name} --vers"; COMP_POINT=${{#COMP_LINE}}
"$function" {name} --vers {name}
printf '%s\n' "${{COMPREPLY[@]}}""#,
            name = program.name
        );
        let out = Command::new("bash")
            .args(["-c", &script, "bash"])
            .arg(&file)
            .output()
            .expect("bash");
        let replies = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success() && replies.lines().any(|l| l.trim() == "--version"),
            "{}: completing --vers gave {replies:?} ({})",
            program.name,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// zsh and fish check their files' syntax where they are installed (CI
/// does not install them).
#[test]
fn zsh_and_fish_completions_parse_where_installed() {
    let dir = completions_dir();
    for (shell, file) in [("zsh", "_{}"), ("fish", "{}.fish")] {
        if !installed(shell) {
            continue;
        }
        for program in &PROGRAMS {
            let path = dir.path().join(file.replace("{}", program.name));
            let out = Command::new(shell)
                .arg("-n")
                .arg(&path)
                .output()
                .expect(shell);
            assert!(
                out.status.success(),
                "{shell} -n {}: {}",
                path.display(),
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
}

/// `--version`: the name, the crate version and, when built from a git
/// checkout, the commit; on stdout, with status 0. The letter `-V` is not
/// an alias: Postfix's programs refuse it, and so do ours.
#[test]
fn every_program_prints_its_version() {
    for program in &PROGRAMS {
        let out = Command::new(support::bin(program.name))
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .expect("run");
        let text = String::from_utf8(out.stdout).expect("UTF-8");
        assert!(out.status.success(), "{}: {:?}", program.name, out.status);
        assert!(out.stderr.is_empty(), "{}: {:?}", program.name, out.stderr);
        let rest = text
            .strip_prefix(&format!("{} {VERSION}", program.name))
            .unwrap_or_else(|| panic!("{}: {text:?}", program.name));
        let commit = match rest {
            "\n" => None,
            _ => rest
                .strip_prefix(" (git ")
                .and_then(|r| r.strip_suffix(")\n"))
                .filter(|c| c.len() >= 7 && c.bytes().all(|b| b.is_ascii_hexdigit())),
        };
        assert!(
            rest == "\n" || commit.is_some(),
            "{}: {text:?}",
            program.name
        );
        // In a checkout, the commit is there and is one of ours.
        if let Some(commit) = commit {
            let known = Command::new("git")
                .args(["cat-file", "-e", &format!("{commit}^{{commit}}")])
                .current_dir(root())
                .status();
            assert!(
                known.map_or(true, |s| s.success()),
                "{}: commit {commit} is not in this repository",
                program.name
            );
        }

        let refused = Command::new(support::bin(program.name))
            .arg("-V")
            .stdin(Stdio::null())
            .output()
            .expect("run");
        assert!(
            !refused.status.success(),
            "{}: -V was accepted",
            program.name
        );
    }
}
