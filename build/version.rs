// The build script of smtp-source and smtp-sink (each crate's build.rs
// includes this file): it sets `SMTP_SUITE_VERSION`, the text
// `--version` prints after the program's name.
//
// Built from a git checkout, that is the crate version and the commit,
// `0.1.0 (git 86ed66c)`, so that a report or a bug can name the exact
// build; anywhere else (a source tarball, the container build, whose
// context leaves out .git; no git program) it is the version alone.
//
// The script reruns only when HEAD moves (a checkout, a commit), not on
// every edit: it watches HEAD and the file the current branch's ref is
// kept in. `git rev-parse --git-path` finds both in a linked worktree
// too, where HEAD is private to the worktree and refs are shared.

use std::path::PathBuf;
use std::process::Command;

fn main() {
    let version = std::env::var("CARGO_PKG_VERSION").unwrap_or_default();
    // Without this line, Cargo would rerun the script whenever any file
    // of the package changes; with it, only the lines below add reasons.
    // (A change to this file rebuilds the script, which reruns it.)
    println!("cargo:rerun-if-changed=build.rs");
    let text = match commit() {
        Some(commit) => format!("{version} (git {commit})"),
        None => version,
    };
    println!("cargo:rustc-env=SMTP_SUITE_VERSION={text}");
}

/// The abbreviated commit of HEAD, with rerun-if-changed lines for the
/// files that move with it; None outside a checkout.
fn commit() -> Option<String> {
    let commit = git(&["rev-parse", "--short", "HEAD"])?;
    for file in ["HEAD", "packed-refs"] {
        watch(file);
    }
    // On a branch, HEAD names its ref ("refs/heads/main"), whose file
    // changes on each commit; a detached HEAD holds the commit itself.
    if let Some(reference) = git(&["symbolic-ref", "--quiet", "HEAD"]) {
        watch(&reference);
    }
    Some(commit)
}

/// Tells Cargo to rerun the script when this git file changes. Only a
/// file that exists: Cargo takes a missing one as always changed.
fn watch(git_file: &str) {
    if let Some(path) = git(&["rev-parse", "--git-path", git_file]).map(PathBuf::from) {
        // --git-path answers relative to the current directory.
        let path = std::env::current_dir().map_or(path.clone(), |dir| dir.join(path));
        if path.is_file() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
}

/// One git command's trimmed output, or None if it fails or is not
/// there.
fn git(args: &[&str]) -> Option<String> {
    let out = Command::new("git").args(args).output().ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (out.status.success() && !text.is_empty()).then(|| text.to_owned())
}
