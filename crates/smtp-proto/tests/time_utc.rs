//! `time::mail_date` and `LocalTime::strftime` under fixed time zones.
//!
//! The zone is process state, so this binary holds one test that sets TZ
//! and checks everything in sequence; no other test shares the process.

use smtp_proto::time::{init_time_zone, mail_date, LocalTime};

fn with_tz(tz: &str) {
    std::env::set_var("TZ", tz);
    init_time_zone();
}

#[test]
fn mail_date_and_strftime_in_fixed_zones() {
    with_tz("UTC");
    assert_eq!(mail_date(0), "Thu, 01 Jan 1970 00:00:00 +0000 (UTC)");
    assert_eq!(
        mail_date(1_795_299_346),
        "Sat, 21 Nov 2026 22:15:46 +0000 (UTC)"
    );
    // 3.9 and later: a two-digit day.
    assert_eq!(
        mail_date(1_793_502_245),
        "Sun, 01 Nov 2026 03:04:05 +0000 (UTC)"
    );
    let t = LocalTime::from_unix(1_795_299_346);
    assert_eq!(t.utc_offset(), 0);
    assert_eq!(t.strftime("dump/%Y%m%d/m."), "dump/20261121/m.");
    assert_eq!(t.strftime("%H:%M:%S %Z %%"), "22:15:46 UTC %");
    assert_eq!(t.strftime(""), "");
    assert_eq!(t.strftime("%p"), "PM");
    // A NUL ends a C format string.
    assert_eq!(t.strftime("%Y\0%m"), "2026");
    // Long expansions are not cut.
    let long = "%Y".repeat(5000);
    assert_eq!(t.strftime(&long), "2026".repeat(5000));
    assert!(format!("{t:?}").starts_with("2026-11-21 22:15:46"));

    // Offsets east and west, with minutes, and daylight saving time.
    with_tz("<+0530>-5:30");
    assert_eq!(
        mail_date(1_795_299_346),
        "Sun, 22 Nov 2026 03:45:46 +0530 (+0530)"
    );
    with_tz("<-0330>3:30");
    assert_eq!(
        mail_date(1_795_299_346),
        "Sat, 21 Nov 2026 18:45:46 -0330 (-0330)"
    );
    with_tz("EST5EDT,M3.2.0,M11.1.0");
    assert_eq!(
        mail_date(1_783_166_400),
        "Sat, 04 Jul 2026 08:00:00 -0400 (EDT)"
    );
    assert_eq!(
        mail_date(1_795_299_346),
        "Sat, 21 Nov 2026 17:15:46 -0500 (EST)"
    );
    assert_eq!(LocalTime::from_unix(1_795_299_346).utc_offset(), -5 * 3600);
    with_tz("UTC");
}
