//! Conventions of Postfix's command lines that both programs follow so
//! that existing scripts behave the same.

/// Reads a number the way C's `atoi` does, as Postfix reads option values:
/// leading blanks, an optional sign, then digits up to the first other
/// character; no digits give 0 (so `-s 10x` is 10 and `-s abc` is 0).
/// Values outside C's `int` are clamped to it.
pub fn atoi(s: &str) -> i64 {
    let s = s.trim_start_matches([' ', '\t', '\n', '\r', '\x0b', '\x0c']);
    let (negative, digits) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut n: i64 = 0;
    for b in digits.bytes().take_while(u8::is_ascii_digit) {
        n = n.saturating_mul(10).saturating_add(i64::from(b - b'0'));
    }
    let n = if negative { -n } else { n };
    n.clamp(i64::from(i32::MIN), i64::from(i32::MAX))
}

#[cfg(test)]
mod tests {
    use super::atoi;

    #[test]
    fn reads_like_c_atoi() {
        for (s, n) in [
            ("10", 10),
            ("  7x", 7),
            (" 12abc", 12),
            ("x", 0),
            ("abc", 0),
            ("-3", -3),
            ("+4", 4),
            ("", 0),
            ("-", 0),
            ("99999999999", i64::from(i32::MAX)),
            ("-99999999999", i64::from(i32::MIN)),
        ] {
            assert_eq!(atoi(s), n, "{s:?}");
        }
    }
}
