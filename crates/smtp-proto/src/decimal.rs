//! Decimal numbers written without allocating: message sizes, BDAT
//! lengths and recipient numbers are formatted once per message or per
//! command on the hot path.

/// Writes `n` in decimal into `buf` and returns the digits.
///
/// ```
/// let mut buf = [0u8; 20];
/// assert_eq!(smtp_proto::itoa(1234, &mut buf), b"1234");
/// assert_eq!(smtp_proto::itoa(u64::MAX, &mut buf), b"18446744073709551615");
/// ```
pub fn itoa(n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut i = buf.len();
    let mut n = n;
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    &buf[i..]
}
