//! `-s`: raw syslog(3) to facility mail, as Postfix's smtp-sink does.

#![allow(unsafe_code)]

use std::ffi::CString;
use std::sync::OnceLock;

/// The ident string must outlive every syslog call: openlog keeps the
/// pointer.
static IDENT: OnceLock<CString> = OnceLock::new();

/// Opens the log with `ident[pid]`, facility mail. The connection to the
/// log socket is made now (LOG_NDELAY), so it survives a later chroot.
pub fn open(ident: &str) {
    let ident =
        IDENT.get_or_init(|| CString::new(ident.replace('\0', "")).expect("NULs were removed"));
    // SAFETY: `ident` is a valid C string stored in a static for the rest
    // of the process, as openlog(3) requires.
    unsafe {
        libc::openlog(
            ident.as_ptr(),
            libc::LOG_PID | libc::LOG_NDELAY,
            libc::LOG_MAIL,
        )
    };
}

/// Logs one line at LOG_INFO. NUL bytes cannot occur (the conversation
/// cuts lines at NUL) but are dropped to be safe.
pub fn log(line: &[u8]) {
    let text: Vec<u8> = line.iter().copied().filter(|b| *b != 0).collect();
    let Ok(text) = CString::new(text) else { return };
    // SAFETY: both arguments are valid C strings; the format takes one %s.
    unsafe { libc::syslog(libc::LOG_INFO, c"%s".as_ptr(), text.as_ptr()) };
}
