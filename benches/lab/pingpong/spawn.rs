//! `spawn`: runs a program and writes its own CPU time, peak RSS and wall
//! time to a JSON file.
//!
//! Why not have the Python harness call wait4 itself: on Linux a child's
//! ru_maxrss includes the memory of the process that forked it (the high-water
//! mark of the old address space is kept across exec), so every child of the
//! harness would report at least the interpreter's ~19 MiB. Forked from this
//! small process instead, a program's peak RSS is its own plus at most this
//! launcher's ~2 MiB, which the harness reports as the floor of the figure.

use std::{process::Command, time::Instant};

use nix::sys::resource::{getrusage, UsageWho};

pub(crate) fn run(argv: &[String]) -> Result<i32, String> {
    let (report, program) = match argv {
        [flag, report, dashdash, program @ ..] if flag == "--report" && dashdash == "--" => {
            (report, program)
        }
        _ => return Err("usage: pingpong spawn --report FILE -- PROGRAM [ARGS...]".to_owned()),
    };
    let (exe, args) = program
        .split_first()
        .ok_or_else(|| "spawn: no program given".to_owned())?;
    let start = Instant::now();
    let mut child = Command::new(exe)
        .args(args)
        .spawn()
        .map_err(|e| format!("spawn {exe}: {e}"))?;
    let status = child.wait().map_err(|e| format!("wait {exe}: {e}"))?;
    let elapsed = start.elapsed().as_secs_f64();
    // The only child this process ever had, so "children" is exactly it.
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN).map_err(|e| format!("getrusage: {e}"))?;
    let seconds = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 + t.tv_usec() as f64 / 1e6;
    let code = status.code().unwrap_or_else(|| {
        use std::os::unix::process::ExitStatusExt;
        128 + status.signal().unwrap_or(0)
    });
    let json = format!(
        "{{\"exit_code\":{code},\"elapsed_s\":{elapsed:.6},\"utime_s\":{:.6},\"stime_s\":{:.6},\"maxrss_kib\":{}}}\n",
        seconds(usage.user_time()),
        seconds(usage.system_time()),
        usage.max_rss()
    );
    std::fs::write(report, json).map_err(|e| format!("write {report}: {e}"))?;
    Ok(code)
}
