//! Formatting a given instant in the process's time zone, exactly as C's
//! strftime(3) does, `%Z` included.
//!
//! This module takes the time as an argument and never reads a clock; it
//! does consult the time-zone database through the C library, which is why
//! it is the one place in the crate that calls into libc.

#![allow(unsafe_code)]

use std::ffi::CString;

/// A Unix time broken down in local time.
#[derive(Clone, Copy)]
pub struct LocalTime {
    tm: libc::tm,
}

impl std::fmt::Debug for LocalTime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02} {:02}:{:02}:{:02} ({:+}s)",
            self.tm.tm_year + 1900,
            self.tm.tm_mon + 1,
            self.tm.tm_mday,
            self.tm.tm_hour,
            self.tm.tm_min,
            self.tm.tm_sec,
            self.tm.tm_gmtoff
        )
    }
}

/// Loads the time-zone rules (TZ or /etc/localtime) now. Call it before a
/// chroot, after which the zone files can no longer be read.
pub fn init_time_zone() {
    extern "C" {
        fn tzset();
    }
    // SAFETY: tzset takes no arguments and only updates libc's zone state.
    unsafe { tzset() };
}

impl LocalTime {
    /// Breaks `unix_seconds` down in the process's time zone.
    pub fn from_unix(unix_seconds: i64) -> LocalTime {
        let t: libc::time_t = unix_seconds as libc::time_t;
        // SAFETY: an all-zero tm is a valid value for a plain C struct.
        let mut tm: libc::tm = unsafe { std::mem::zeroed() };
        // SAFETY: both pointers are valid for the call; localtime_r is the
        // thread-safe variant and writes only into `tm`.
        unsafe { libc::localtime_r(&t, &mut tm) };
        LocalTime { tm }
    }

    /// Offset from UTC in seconds.
    pub fn utc_offset(&self) -> i64 {
        self.tm.tm_gmtoff
    }

    /// Expands `template` with strftime(3). Formats that expand to nothing
    /// give an empty string, as in C.
    pub fn strftime(&self, template: &str) -> String {
        let Ok(format) = CString::new(template) else {
            // A NUL cannot be in a C format string; C would stop there.
            let cut = template.split('\0').next().unwrap_or("");
            return self.strftime(cut);
        };
        if template.is_empty() {
            return String::new();
        }
        let mut size = 256 + template.len() * 4;
        loop {
            let mut buf = vec![0u8; size];
            // SAFETY: buf has `size` writable bytes, format is a valid C
            // string and tm a valid broken-down time.
            let n = unsafe {
                libc::strftime(
                    buf.as_mut_ptr().cast::<libc::c_char>(),
                    size,
                    format.as_ptr(),
                    &self.tm,
                )
            };
            // 0 means "did not fit" or "expanded to nothing"; grow a few
            // times before deciding it is the latter.
            if n > 0 || size > 65536 {
                buf.truncate(n);
                return String::from_utf8_lossy(&buf).into_owned();
            }
            size *= 4;
        }
    }
}

/// The RFC 2822 date Postfix writes (`mail_date` of 3.9 and later):
/// `Sat, 01 Nov 2026 22:15:46 +0000 (UTC)`, with a two-digit day.
pub fn mail_date(unix_seconds: i64) -> String {
    let tm = LocalTime::from_unix(unix_seconds);
    let off = tm.utc_offset();
    let sign = if off < 0 { '-' } else { '+' };
    let off = off.abs();
    format!(
        "{}{}{:02}{:02}{}",
        tm.strftime("%a, %d %b %Y %H:%M:%S "),
        sign,
        off / 3600,
        off % 3600 / 60,
        tm.strftime(" (%Z)")
    )
}
