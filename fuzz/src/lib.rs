//! Helpers shared by the fuzz targets: the input shape, the reduced
//! alphabet, and feeding a parser its input cut at given points.

use arbitrary::Arbitrary;
use bytes::BytesMut;

/// What every target gets: bytes, where to cut them into reads, and a
/// switch for the reduced alphabet.
#[derive(Debug, Arbitrary)]
pub struct Input {
    /// Map every byte into [`ALPHABET`] (stalwart's trick): random bytes
    /// rarely spell CRLF "." CRLF or a reply code, these almost always do.
    pub reduced: bool,
    /// A size knob (line limit, line count), used as each target sees fit.
    pub knob: u16,
    /// Cut points, taken modulo the input length.
    pub cuts: Vec<u16>,
    /// The bytes.
    pub data: Vec<u8>,
}

/// The characters the framers care about, plus a few ordinary ones.
pub const ALPHABET: &[u8] = b"\r\n.\r\n. -2505\tMAILFROM:<>@xX\r\n";

impl Input {
    /// The data, mapped into the alphabet if asked.
    pub fn bytes(&self) -> Vec<u8> {
        if self.reduced {
            self.data
                .iter()
                .map(|&b| ALPHABET[usize::from(b) % ALPHABET.len()])
                .collect()
        } else {
            self.data.clone()
        }
    }
}

/// Cuts `data` at `cuts` (modulo its length, sorted).
pub fn cut<'a>(data: &'a [u8], cuts: &[u16]) -> Vec<&'a [u8]> {
    let mut at: Vec<usize> = cuts
        .iter()
        .map(|&c| usize::from(c) % (data.len() + 1))
        .collect();
    at.sort_unstable();
    let mut parts = Vec::with_capacity(at.len() + 1);
    let mut from = 0;
    for p in at {
        parts.push(&data[from..p]);
        from = p;
    }
    parts.push(&data[from..]);
    parts
}

/// Everything a parser produced from some reads: items and errors in
/// order, and what was left in the buffer (`None` after a fatal error).
#[derive(Debug, PartialEq, Eq)]
pub struct Run<T, E> {
    /// Items and errors in order.
    pub items: Vec<Result<T, E>>,
    /// Bytes left over, unless a fatal error stopped the run.
    pub rest: Option<Vec<u8>>,
}

/// Feeds `parts` to `parse`, draining after each. Errors for which
/// `recoverable` is true are recorded and parsing goes on; others end the
/// run. Panics if `Ok(None)` changes the buffer when `strict` is set, or if
/// the parser stops making progress.
pub fn drive<T, E>(
    mut parse: impl FnMut(&mut BytesMut) -> Result<Option<T>, E>,
    recoverable: impl Fn(&E) -> bool,
    parts: &[&[u8]],
    strict: bool,
) -> Run<T, E> {
    let mut buf = BytesMut::new();
    let mut items = Vec::new();
    let total: usize = parts.iter().map(|p| p.len()).sum();
    for part in parts {
        buf.extend_from_slice(part);
        loop {
            assert!(items.len() <= total + 1, "more items than input bytes");
            let before = strict.then(|| buf.clone());
            match parse(&mut buf) {
                Ok(Some(item)) => items.push(Ok(item)),
                Ok(None) => {
                    if let Some(before) = before {
                        assert_eq!(buf, before, "Ok(None) changed the buffer");
                    }
                    break;
                }
                Err(e) if recoverable(&e) => items.push(Err(e)),
                Err(e) => {
                    items.push(Err(e));
                    return Run { items, rest: None };
                }
            }
        }
    }
    Run {
        items,
        rest: Some(buf.to_vec()),
    }
}
