//! The `X-Smtp-Stamp` header: what a source writes into every message so
//! that a sink, after an MTA relayed the message, can tell which message it
//! is, when it was sent and whether its body arrived intact.
//!
//! # The header
//!
//! ```text
//! X-Smtp-Stamp: run=<id>; seq=<n>; sent=<ns>; len=<bytes>; digest=<hex>CRLF
//! ```
//!
//! | field | value | why |
//! |---|---|---|
//! | `run` | 1 to 32 of `A-Z a-z 0-9 _ -` ([`RunId`]) | tells the runs of several sources (or an earlier run's stragglers) apart |
//! | `seq` | decimal `u64` | the message's number within the run: losses and duplicates |
//! | `sent` | decimal `u64`, Unix time in nanoseconds | end-to-end delay; the caller passes its clock in (sans-IO) |
//! | `len` | decimal `u64` | the length of the normalised body (below) |
//! | `digest` | exactly 16 hex digits, written lowercase | xxh3-64 (seed 0) of the normalised body |
//!
//! [`Stamp::write`] writes the fields in this order, separated by `; `, as
//! one line of at most [`MAX_LINE_LEN`] bytes, well under RFC 5322's 998,
//! so no relay has to fold it. [`parse_header_value`] is more liberal,
//! because what it reads went through other software:
//!
//! * fields may come in any order, and a field it does not know is ignored
//!   (so a later version can add fields that this one skips);
//! * field names are case-insensitive, hex digits may be upper case;
//! * spaces, tabs, CR and LF around fields, names and values are ignored,
//!   so a value folded by a relay (RFC 5322 §2.2.3) can be passed as it is,
//!   line ends and all: the caller does not unfold it;
//! * empty fields (`;;`, a trailing `;`) are skipped;
//! * a known field given twice is an error: which one to believe?
//!
//! # The body and its normalisation
//!
//! The body is what follows the header block, that is after the first
//! empty line of the message, up to the end of the message content: with
//! DATA, up to but not including the `.` CRLF terminator, unstuffed; with
//! BDAT, the chunks' bytes. The last line end of the content belongs to the
//! body.
//!
//! `len` and `digest` are computed over the body with every CR that is
//! directly followed by LF removed: a CRLF counts as an LF. A relay may
//! turn bare LFs into CRLFs, and a sink's dump may drop the CRs, and
//! neither should count as damage. Everything else counts as it is,
//! including a CR that is not followed by an LF (a relay that changes those
//! has changed the content). The rule is applied in one pass: CR CR LF
//! becomes CR LF. [`BodyDigest`] does this over pieces split anywhere, and
//! [`body_digest`] over a whole body, with the same result.
//!
//! # Finding the stamp
//!
//! [`StampFinder`] reads a message from its first byte, in pieces split
//! anywhere, finds the `X-Smtp-Stamp` field among the others (`Received:`
//! and whatever the relays added, before or after it; name matched
//! case-insensitively; folded or not; lines ending in CRLF or a bare LF)
//! and tells where the body starts. [`StampVerifier`] puts the finder and
//! [`BodyDigest`] together: feed it the message, and it says whether the
//! body is the one that was stamped.
//!
//! Memory is bounded: the finder keeps only the stamp field, at most
//! [`STAMP_FIELD_CAP`] bytes of it, and gives up on a message whose header
//! block does not end within [`HEADER_BLOCK_CAP`] bytes (such a message is
//! "unstamped": it was not written by a source, or a relay wrapped it).
//!
//! ```
//! use smtp_proto::stamp::{body_digest, RunId, Stamp, StampVerifier, Verification};
//!
//! // The source: one digest per run, one header line per message.
//! let body = b"Hello,\r\nworld.\r\n";
//! let (len, digest) = body_digest(body);
//! let stamp = Stamp { run: RunId::new(b"run-1").unwrap(), seq: 7, sent_ns: 1, len, digest };
//! let mut message = Vec::new();
//! stamp.write(&mut message);
//! message.extend_from_slice(b"Subject: hi\r\n\r\n");
//! message.extend_from_slice(body);
//!
//! // The sink, after a relay that added a header and dropped the CRs.
//! let relayed = [&b"Received: from relay\n"[..], &message].concat();
//! let relayed: Vec<u8> = relayed.into_iter().filter(|&b| b != b'\r').collect();
//! let mut verifier = StampVerifier::new();
//! for piece in relayed.chunks(5) {
//!     verifier.update(piece);
//! }
//! assert_eq!(verifier.finish(), Verification::Intact(stamp));
//! ```

use std::fmt;
use std::str::FromStr;

use bytes::BufMut;
use memchr::{memchr, memmem};
use xxhash_rust::xxh3::{xxh3_64, Xxh3Default};

/// The header field name, as [`Stamp::write`] spells it.
pub const HEADER_NAME: &str = "X-Smtp-Stamp";

/// The longest line [`Stamp::write`] writes, CRLF included: a 32-byte run
/// id and every number at `u64::MAX`. For reserving buffer space.
pub const MAX_LINE_LEN: usize = HEADER_NAME.len()
    + ": run=".len()
    + RunId::MAX_LEN
    + "; seq=".len()
    + 20
    + "; sent=".len()
    + 20
    + "; len=".len()
    + 20
    + "; digest=".len()
    + 16
    + 2;

// No relay has to fold the line (RFC 5322 §2.1.1: at most 998 bytes).
const _: () = assert!(MAX_LINE_LEN <= 998 + 2);

/// How many bytes of a message [`StampFinder`] reads looking for the end
/// of the header block (the empty line included). A message whose header
/// block is longer is unstamped: 64 KiB is many times what a few relays
/// add, and a message without an empty line is not read to its end.
pub const HEADER_BLOCK_CAP: usize = 64 * 1024;

/// How many bytes of the stamp field [`StampFinder`] keeps: what follows
/// the colon, with the line ends of a folded field. A real stamp is at most
/// [`MAX_LINE_LEN`]; a longer field is an error, not a reason to buffer.
pub const STAMP_FIELD_CAP: usize = 1024;
const _: () = assert!(STAMP_FIELD_CAP >= MAX_LINE_LEN);

/// The fields of a stamp, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    /// `run=`
    Run,
    /// `seq=`
    Seq,
    /// `sent=`
    Sent,
    /// `len=`
    Len,
    /// `digest=`
    Digest,
}

impl Field {
    /// The field's name in the header.
    pub fn name(self) -> &'static str {
        match self {
            Field::Run => "run",
            Field::Seq => "seq",
            Field::Sent => "sent",
            Field::Len => "len",
            Field::Digest => "digest",
        }
    }

    fn from_name(name: &[u8]) -> Option<Field> {
        [
            Field::Run,
            Field::Seq,
            Field::Sent,
            Field::Len,
            Field::Digest,
        ]
        .into_iter()
        .find(|f| name.eq_ignore_ascii_case(f.name().as_bytes()))
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Why a stamp could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StampError {
    /// A required field is absent.
    #[error("no `{field}=` field")]
    Missing {
        /// The absent field (the first in the documented order).
        field: Field,
    },
    /// A field is given twice.
    #[error("`{field}=` is given twice")]
    Duplicate {
        /// The repeated field.
        field: Field,
    },
    /// Something between semicolons that is not `name=value`.
    #[error("`{text}` is not a name=value field")]
    NotAField {
        /// The offending text, at most its first 32 bytes, lossily decoded.
        text: String,
    },
    /// `seq`, `sent` or `len` is not a plain decimal number that fits a
    /// `u64` (no sign, no spaces inside).
    #[error("`{field}=` is not a decimal number below 2^64")]
    BadNumber {
        /// The field.
        field: Field,
    },
    /// `digest` is not exactly 16 hexadecimal digits.
    #[error("`digest=` is not 16 hexadecimal digits")]
    BadDigest,
    /// `run` is empty.
    #[error("the run id is empty")]
    EmptyRunId,
    /// `run` is longer than [`RunId::MAX_LEN`].
    #[error("the run id is {len} bytes long; at most 32 are allowed")]
    RunIdTooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// `run` has a byte outside `A-Z a-z 0-9 _ -`.
    #[error(
        "the run id contains `{}`; only A-Z, a-z, 0-9, `_` and `-` are allowed",
        std::ascii::escape_default(*.byte)
    )]
    RunIdByte {
        /// The first such byte.
        byte: u8,
    },
    /// The stamp field is longer than [`STAMP_FIELD_CAP`] (from
    /// [`StampFinder`] only).
    #[error("the {HEADER_NAME} field is longer than {limit} bytes")]
    TooLong {
        /// The cap.
        limit: usize,
    },
    /// The header block has more than one stamp field (from
    /// [`StampFinder`] only): there is no telling which one is right.
    #[error("the header block has more than one {HEADER_NAME} field")]
    TwoStamps,
}

/// A run id: 1 to [`RunId::MAX_LEN`] bytes of `A-Z a-z 0-9 _ -`.
///
/// Stored inline, so a [`Stamp`] is `Copy` and writing one allocates
/// nothing.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct RunId {
    len: u8,
    /// The id, then zeros (so the derived equality is the ids' equality).
    bytes: [u8; RunId::MAX_LEN],
}

impl RunId {
    /// The longest run id, in bytes.
    pub const MAX_LEN: usize = 32;

    /// Checks `id` and copies it.
    pub fn new(id: &[u8]) -> Result<RunId, StampError> {
        if id.is_empty() {
            return Err(StampError::EmptyRunId);
        }
        if id.len() > Self::MAX_LEN {
            return Err(StampError::RunIdTooLong { len: id.len() });
        }
        if let Some(&byte) = id
            .iter()
            .find(|&&b| !(b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
        {
            return Err(StampError::RunIdByte { byte });
        }
        let mut bytes = [0; Self::MAX_LEN];
        bytes[..id.len()].copy_from_slice(id);
        Ok(RunId {
            // At most MAX_LEN (32), checked above.
            len: id.len() as u8,
            bytes,
        })
    }

    /// The id's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..usize::from(self.len)]
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).expect("a run id is ASCII")
    }
}

impl FromStr for RunId {
    type Err = StampError;

    fn from_str(s: &str) -> Result<RunId, StampError> {
        RunId::new(s.as_bytes())
    }
}

impl fmt::Display for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for RunId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("RunId").field(&self.as_str()).finish()
    }
}

/// The contents of one `X-Smtp-Stamp` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Stamp {
    /// Which run sent the message.
    pub run: RunId,
    /// The message's number within the run.
    pub seq: u64,
    /// When it was sent: Unix time in nanoseconds, from the caller's clock.
    pub sent_ns: u64,
    /// The normalised body's length (see the module documentation).
    pub len: u64,
    /// xxh3-64 of the normalised body.
    pub digest: u64,
}

impl Stamp {
    /// Appends the whole header line, CRLF included, at most
    /// [`MAX_LINE_LEN`] bytes.
    ///
    /// A source writes one per message, so this formats the numbers into
    /// stack buffers and allocates nothing itself.
    pub fn write(&self, out: &mut impl BufMut) {
        let mut num = [0; 20];
        out.put_slice(HEADER_NAME.as_bytes());
        out.put_slice(b": run=");
        out.put_slice(self.run.as_bytes());
        out.put_slice(b"; seq=");
        out.put_slice(crate::itoa(self.seq, &mut num));
        out.put_slice(b"; sent=");
        out.put_slice(crate::itoa(self.sent_ns, &mut num));
        out.put_slice(b"; len=");
        out.put_slice(crate::itoa(self.len, &mut num));
        out.put_slice(b"; digest=");
        out.put_slice(&hex16(self.digest));
        out.put_slice(b"\r\n");
    }
}

/// `n` as 16 lowercase hex digits.
fn hex16(n: u64) -> [u8; 16] {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0; 16];
    for (i, digit) in out.iter_mut().enumerate() {
        *digit = DIGITS[((n >> (60 - 4 * i)) & 0xf) as usize];
    }
    out
}

/// Parses what follows `X-Smtp-Stamp:` (the colon excluded).
///
/// Liberal as the module documentation describes: any order, unknown
/// fields ignored, whitespace and the line ends of a folded value ignored
/// around fields, names and values. Strict about the fields it knows:
/// each exactly once, with a valid value.
pub fn parse_header_value(value: &[u8]) -> Result<Stamp, StampError> {
    let mut run = None;
    let mut seq = None;
    let mut sent = None;
    let mut len = None;
    let mut digest = None;
    for field in value.split(|&b| b == b';') {
        let field = field.trim_ascii();
        if field.is_empty() {
            continue;
        }
        let not_a_field = || StampError::NotAField {
            text: String::from_utf8_lossy(&field[..field.len().min(32)]).into_owned(),
        };
        let eq = memchr(b'=', field).ok_or_else(not_a_field)?;
        let name = field[..eq].trim_ascii();
        let v = field[eq + 1..].trim_ascii();
        if name.is_empty() {
            return Err(not_a_field());
        }
        let Some(which) = Field::from_name(name) else {
            continue; // a field of a later version
        };
        let duplicate = Err(StampError::Duplicate { field: which });
        let number = || parse_decimal(v).ok_or(StampError::BadNumber { field: which });
        match which {
            Field::Run if run.is_some() => return duplicate,
            Field::Run => run = Some(RunId::new(v)?),
            Field::Seq if seq.is_some() => return duplicate,
            Field::Seq => seq = Some(number()?),
            Field::Sent if sent.is_some() => return duplicate,
            Field::Sent => sent = Some(number()?),
            Field::Len if len.is_some() => return duplicate,
            Field::Len => len = Some(number()?),
            Field::Digest if digest.is_some() => return duplicate,
            Field::Digest => digest = Some(parse_hex16(v).ok_or(StampError::BadDigest)?),
        }
    }
    let missing = |field| StampError::Missing { field };
    Ok(Stamp {
        run: run.ok_or(missing(Field::Run))?,
        seq: seq.ok_or(missing(Field::Seq))?,
        sent_ns: sent.ok_or(missing(Field::Sent))?,
        len: len.ok_or(missing(Field::Len))?,
        digest: digest.ok_or(missing(Field::Digest))?,
    })
}

/// A non-empty run of ASCII digits that fits a `u64`.
fn parse_decimal(v: &[u8]) -> Option<u64> {
    if v.is_empty() {
        return None;
    }
    v.iter().try_fold(0u64, |n, &b| {
        let digit = char::from(b).to_digit(10)?;
        n.checked_mul(10)?.checked_add(u64::from(digit))
    })
}

/// Exactly 16 hex digits, either case.
fn parse_hex16(v: &[u8]) -> Option<u64> {
    if v.len() != 16 {
        return None;
    }
    v.iter().try_fold(0u64, |n, &b| {
        Some(n << 4 | u64::from(char::from(b).to_digit(16)?))
    })
}

/// The length and xxh3-64 digest of a body, fed in pieces split anywhere,
/// with every CRLF counted as an LF (see the module documentation).
///
/// A CR at the end of a piece is held back until the next byte shows
/// whether it is the CR of a CRLF, so the result never depends on where
/// the pieces were cut.
///
/// The hasher is xxhash-rust's `Xxh3Default`: the same hash as its `Xxh3`
/// with the default secret and seed 0 (and as the one-shot `xxh3_64`),
/// without carrying a copy of the 192-byte secret.
#[derive(Clone)]
pub struct BodyDigest {
    hasher: Xxh3Default,
    len: u64,
    /// The last byte fed was a CR, not hashed yet.
    pending_cr: bool,
}

impl BodyDigest {
    /// A digest of nothing yet.
    pub const fn new() -> BodyDigest {
        BodyDigest {
            hasher: Xxh3Default::new(),
            len: 0,
            pending_cr: false,
        }
    }

    /// Adds the next piece of the body.
    ///
    /// Hashes the runs between CRLFs as slices of `bytes` (the hasher
    /// buffers small runs itself), so nothing is copied here.
    pub fn update(&mut self, mut bytes: &[u8]) {
        let Some(&first) = bytes.first() else {
            return;
        };
        if self.pending_cr {
            self.pending_cr = false;
            if first != b'\n' {
                self.hash(b"\r"); // a lone CR counts
            }
        }
        if let Some(rest) = bytes.strip_suffix(b"\r") {
            self.pending_cr = true;
            bytes = rest;
        }
        let mut from = 0;
        for cr in memmem::find_iter(bytes, b"\r\n") {
            self.hash(&bytes[from..cr]);
            from = cr + 1; // the LF starts the next run
        }
        self.hash(&bytes[from..]);
    }

    /// The normalised length and the digest: `(len, digest)`, the values of
    /// [`Stamp::len`] and [`Stamp::digest`].
    pub fn finish(mut self) -> (u64, u64) {
        if self.pending_cr {
            self.hash(b"\r"); // the body ends in a lone CR
        }
        (self.len, self.hasher.digest())
    }

    fn hash(&mut self, run: &[u8]) {
        self.hasher.update(run);
        self.len += run.len() as u64;
    }
}

impl Default for BodyDigest {
    fn default() -> Self {
        Self::new()
    }
}

impl fmt::Debug for BodyDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BodyDigest")
            .field("len", &self.len)
            .field("pending_cr", &self.pending_cr)
            .finish_non_exhaustive()
    }
}

/// The normalised length and the digest of a whole body: `(len, digest)`,
/// equal to what [`BodyDigest`] gives for it in any pieces.
pub fn body_digest(body: &[u8]) -> (u64, u64) {
    if memchr(b'\r', body).is_none() {
        // Nothing to normalise: the one-shot hash is the streaming one.
        return (body.len() as u64, xxh3_64(body));
    }
    let mut digest = BodyDigest::new();
    digest.update(body);
    digest.finish()
}

/// What [`StampFinder::feed`] found in a piece.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Found {
    /// The header block goes on: feed the next piece.
    NeedMore,
    /// The body starts at `piece[at..]` (which may be empty). Once the
    /// header block has ended, every later piece is all body: `at` is 0.
    Body {
        /// Where the body starts in the piece just fed.
        at: usize,
    },
    /// The header block did not end within [`HEADER_BLOCK_CAP`] bytes. The
    /// finder ignores the rest of the message, which is unstamped.
    GaveUp,
}

/// Why a message has no stamp to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnstampedReason {
    /// The header block has no `X-Smtp-Stamp` field.
    NoStamp,
    /// The header block did not end within [`HEADER_BLOCK_CAP`] bytes.
    HeaderBlockTooLong,
    /// The message ended inside its header block: it has no empty line,
    /// so no body to check.
    NoBody,
}

impl fmt::Display for UnstampedReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::NoStamp => "no X-Smtp-Stamp field",
            Self::HeaderBlockTooLong => "header block longer than 64 KiB",
            Self::NoBody => "the message ends inside its header block",
        })
    }
}

/// What [`StampFinder::finish`] makes of a message's header block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// One stamp field, and it parses.
    Stamped(Stamp),
    /// A stamp field that does not parse, is too long, or is not the only
    /// one.
    Invalid(StampError),
    /// Nothing to check.
    Unstamped(UnstampedReason),
}

/// Where the finder is within a line of the header block.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scan {
    /// At the first byte of a line.
    LineStart,
    /// The line began with a CR: an LF next makes it the empty line.
    Cr,
    /// A field name that matches this many bytes of `NAME` so far.
    Name(usize),
    /// The whole name matched; spaces may come before the colon.
    NameEnd,
    /// In the stamp field's value (its first line or a continuation).
    Value,
    /// In any other line, up to its LF.
    Skip,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Headers,
    Body,
    GaveUp,
}

/// The stamp field's name, lower case, without the colon.
const NAME: &[u8] = b"x-smtp-stamp";

/// Finds the `X-Smtp-Stamp` field in a message's header block, fed from the
/// message's first byte in pieces split anywhere, and says where the body
/// starts (see the module documentation).
///
/// A line ends at LF, with or without a CR before it. The header block
/// ends at the first empty line (CRLF or a bare LF; a line of spaces is a
/// continuation, not the end). A line that starts with a space or a tab
/// continues the field before it (folding). Only the stamp field's bytes
/// are kept; every other line is skipped with `memchr`.
///
/// ```
/// use smtp_proto::stamp::{Found, StampFinder, Verdict, UnstampedReason};
///
/// let mut finder = StampFinder::new();
/// assert_eq!(finder.feed(b"Subject: x\r\n\r"), Found::NeedMore);
/// assert_eq!(finder.feed(b"\nbody"), Found::Body { at: 1 });
/// assert_eq!(finder.feed(b"more body"), Found::Body { at: 0 });
/// assert_eq!(finder.finish(), Verdict::Unstamped(UnstampedReason::NoStamp));
/// ```
#[derive(Debug, Clone)]
pub struct StampFinder {
    phase: Phase,
    scan: Scan,
    /// Bytes of the header block read so far.
    seen: usize,
    /// Stamp fields started so far (saturating).
    stamps: u8,
    /// The field being read is the (first) stamp field.
    in_stamp: bool,
    /// The stamp field's value, line ends included.
    value: Vec<u8>,
    /// The stamp field outgrew [`STAMP_FIELD_CAP`].
    too_long: bool,
    /// The first stamp field, parsed once it ended.
    parsed: Option<Result<Stamp, StampError>>,
}

impl StampFinder {
    /// A finder at the start of a message.
    pub fn new() -> StampFinder {
        StampFinder {
            phase: Phase::Headers,
            scan: Scan::LineStart,
            seen: 0,
            stamps: 0,
            in_stamp: false,
            value: Vec::new(),
            too_long: false,
            parsed: None,
        }
    }

    /// Reads the next piece of the message.
    pub fn feed(&mut self, piece: &[u8]) -> Found {
        match self.phase {
            Phase::Body => return Found::Body { at: 0 },
            Phase::GaveUp => return Found::GaveUp,
            Phase::Headers => {}
        }
        // Never read past the cap, so where it gives up does not depend on
        // how the message was cut.
        let window = &piece[..piece.len().min(HEADER_BLOCK_CAP - self.seen)];
        if let Some(at) = self.scan_headers(window) {
            self.phase = Phase::Body;
            return Found::Body { at };
        }
        self.seen += window.len();
        if self.seen == HEADER_BLOCK_CAP {
            self.phase = Phase::GaveUp;
            return Found::GaveUp;
        }
        Found::NeedMore
    }

    /// The verdict on the message fed so far, which ends here. The finder
    /// is then ready for the next message (and keeps its buffer).
    pub fn finish(&mut self) -> Verdict {
        let verdict = match self.phase {
            Phase::GaveUp => Verdict::Unstamped(UnstampedReason::HeaderBlockTooLong),
            Phase::Headers => Verdict::Unstamped(UnstampedReason::NoBody),
            Phase::Body if self.stamps > 1 => Verdict::Invalid(StampError::TwoStamps),
            Phase::Body => match self.parsed.take() {
                Some(Ok(stamp)) => Verdict::Stamped(stamp),
                Some(Err(e)) => Verdict::Invalid(e),
                None => Verdict::Unstamped(UnstampedReason::NoStamp),
            },
        };
        self.reset();
        verdict
    }

    /// Forgets the message fed so far (an aborted transaction).
    pub fn reset(&mut self) {
        let mut value = std::mem::take(&mut self.value);
        value.clear();
        *self = StampFinder {
            value,
            ..StampFinder::new()
        };
    }

    /// Runs the line machine over `buf`; returns where the body starts if
    /// the header block ends in it.
    fn scan_headers(&mut self, buf: &[u8]) -> Option<usize> {
        let mut i = 0;
        // Each arm consumes at least one byte or changes state to one that
        // will, so the loop ends.
        while let Some(&b) = buf.get(i) {
            match self.scan {
                Scan::LineStart => match b {
                    b'\n' => {
                        self.end_field();
                        return Some(i + 1);
                    }
                    b'\r' => {
                        self.scan = Scan::Cr;
                        i += 1;
                    }
                    b' ' | b'\t' => {
                        // A continuation: its bytes go where the field's went.
                        self.scan = if self.in_stamp {
                            Scan::Value
                        } else {
                            Scan::Skip
                        };
                    }
                    _ => {
                        self.end_field();
                        self.scan = Scan::Name(0);
                    }
                },
                Scan::Cr => {
                    self.end_field();
                    if b == b'\n' {
                        return Some(i + 1);
                    }
                    // A line that begins with a lone CR: not a field we want.
                    self.scan = Scan::Skip;
                }
                Scan::Name(n) => {
                    if b.to_ascii_lowercase() == NAME[n] {
                        self.scan = if n + 1 == NAME.len() {
                            Scan::NameEnd
                        } else {
                            Scan::Name(n + 1)
                        };
                        i += 1;
                    } else {
                        self.scan = Scan::Skip;
                    }
                }
                Scan::NameEnd => match b {
                    b' ' | b'\t' => i += 1,
                    b':' => {
                        i += 1;
                        self.stamps = self.stamps.saturating_add(1);
                        if self.stamps == 1 {
                            self.in_stamp = true;
                            self.scan = Scan::Value;
                        } else {
                            self.scan = Scan::Skip;
                        }
                    }
                    _ => self.scan = Scan::Skip, // X-Smtp-Stamped: and the like
                },
                Scan::Value => {
                    let rest = &buf[i..];
                    let (take, line_ends) = match memchr(b'\n', rest) {
                        Some(lf) => (lf + 1, true),
                        None => (rest.len(), false),
                    };
                    self.keep(&rest[..take]);
                    i += take;
                    if line_ends {
                        self.scan = Scan::LineStart;
                    }
                }
                Scan::Skip => match memchr(b'\n', &buf[i..]) {
                    Some(lf) => {
                        i += lf + 1;
                        self.scan = Scan::LineStart;
                    }
                    None => i = buf.len(),
                },
            }
        }
        None
    }

    /// Adds bytes to the stamp field's value, up to the cap.
    fn keep(&mut self, bytes: &[u8]) {
        if self.too_long {
            return;
        }
        if self.value.len() + bytes.len() > STAMP_FIELD_CAP {
            self.too_long = true;
            self.value.clear();
        } else {
            self.value.extend_from_slice(bytes);
        }
    }

    /// A new field starts, or the header block ends: if the stamp field
    /// was the one being read, it is complete.
    fn end_field(&mut self) {
        if !self.in_stamp {
            return;
        }
        self.in_stamp = false;
        self.parsed = Some(if self.too_long {
            Err(StampError::TooLong {
                limit: STAMP_FIELD_CAP,
            })
        } else {
            parse_header_value(&self.value)
        });
    }
}

impl Default for StampFinder {
    fn default() -> Self {
        Self::new()
    }
}

/// What [`StampVerifier::finish`] makes of a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verification {
    /// The body's length and digest are the stamp's.
    Intact(Stamp),
    /// The body is not the one that was stamped.
    Altered {
        /// The stamp as read.
        stamp: Stamp,
        /// The normalised length of the body received.
        len: u64,
        /// The digest of the body received.
        digest: u64,
    },
    /// The stamp field is there but cannot be believed.
    Invalid(StampError),
    /// Nothing to check.
    Unstamped(UnstampedReason),
}

/// A [`StampFinder`] and a [`BodyDigest`] together: fed a whole message in
/// pieces split anywhere, it checks the body against the stamp.
#[derive(Debug, Clone, Default)]
pub struct StampVerifier {
    finder: StampFinder,
    body: BodyDigest,
}

impl StampVerifier {
    /// A verifier at the start of a message.
    pub fn new() -> StampVerifier {
        StampVerifier::default()
    }

    /// Reads the next piece of the message.
    pub fn update(&mut self, piece: &[u8]) {
        if let Found::Body { at } = self.finder.feed(piece) {
            self.body.update(&piece[at..]);
        }
    }

    /// The outcome for the message fed so far, which ends here. The
    /// verifier is then ready for the next message.
    pub fn finish(&mut self) -> Verification {
        let (len, digest) = std::mem::take(&mut self.body).finish();
        match self.finder.finish() {
            Verdict::Stamped(stamp) if (stamp.len, stamp.digest) == (len, digest) => {
                Verification::Intact(stamp)
            }
            Verdict::Stamped(stamp) => Verification::Altered { stamp, len, digest },
            Verdict::Invalid(e) => Verification::Invalid(e),
            Verdict::Unstamped(reason) => Verification::Unstamped(reason),
        }
    }

    /// Forgets the message fed so far (an aborted transaction).
    pub fn reset(&mut self) {
        self.finder.reset();
        self.body = BodyDigest::new();
    }
}

#[cfg(test)]
mod tests {
    use bytes::BytesMut;

    use super::*;

    fn run(id: &str) -> RunId {
        id.parse().unwrap()
    }

    fn sample() -> Stamp {
        Stamp {
            run: run("load-test_7"),
            seq: 42,
            sent_ns: 1_700_000_000_123_456_789,
            len: 72,
            digest: 0x6eae_39f4_ec6a_5e4c,
        }
    }

    fn line(stamp: &Stamp) -> Vec<u8> {
        let mut out = Vec::new();
        stamp.write(&mut out);
        out
    }

    /// The value part of a written line, as the finder hands it over.
    fn value_of(line: &[u8]) -> &[u8] {
        line.strip_prefix(b"X-Smtp-Stamp:").unwrap()
    }

    /// The normalisation, written the obvious way: the reference the
    /// streaming code is checked against.
    fn normalise(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, &b) in body.iter().enumerate() {
            if b == b'\r' && body.get(i + 1) == Some(&b'\n') {
                continue;
            }
            out.push(b);
        }
        out
    }

    /// Feeds `parts` to a fresh digest.
    fn digest_parts(parts: &[&[u8]]) -> (u64, u64) {
        let mut d = BodyDigest::new();
        for part in parts {
            d.update(part);
        }
        d.finish()
    }

    /// Every way of cutting `input` this module's tests use: whole, in two
    /// at every offset, one byte at a time, and (for short inputs) in three
    /// at every pair of offsets.
    fn splits(input: &[u8]) -> Vec<Vec<&[u8]>> {
        let mut out = vec![vec![input]];
        for i in 0..=input.len() {
            out.push(vec![&input[..i], &input[i..]]);
        }
        out.push(input.chunks(1).collect());
        if input.len() <= 200 {
            for i in 0..=input.len() {
                for j in i..=input.len() {
                    out.push(vec![&input[..i], &input[i..j], &input[j..]]);
                }
            }
        }
        out
    }

    #[test]
    fn writes_the_documented_line() {
        assert_eq!(
            line(&sample()),
            b"X-Smtp-Stamp: run=load-test_7; seq=42; sent=1700000000123456789; \
              len=72; digest=6eae39f4ec6a5e4c\r\n"
        );
        let zero = Stamp {
            run: run("a"),
            seq: 0,
            sent_ns: 0,
            len: 0,
            digest: 0xf,
        };
        assert_eq!(
            line(&zero),
            b"X-Smtp-Stamp: run=a; seq=0; sent=0; len=0; digest=000000000000000f\r\n"
        );
        let max = Stamp {
            run: run(&"Z".repeat(32)),
            seq: u64::MAX,
            sent_ns: u64::MAX,
            len: u64::MAX,
            digest: u64::MAX,
        };
        assert_eq!(line(&max).len(), MAX_LINE_LEN);
        // Into a BytesMut as into a Vec, appended to what is there.
        let mut out = BytesMut::from(&b"From: <a@b>\r\n"[..]);
        sample().write(&mut out);
        assert_eq!(&out[13..], &line(&sample())[..]);
    }

    #[test]
    fn write_then_parse_round_trips() {
        for stamp in [
            sample(),
            Stamp {
                run: run("0"),
                seq: 0,
                sent_ns: 0,
                len: 0,
                digest: 0,
            },
            Stamp {
                run: run("abcdefghijklmnopqrstuvwxyz-_0123"),
                seq: u64::MAX,
                sent_ns: u64::MAX,
                len: u64::MAX,
                digest: u64::MAX,
            },
            Stamp {
                run: run("R"),
                seq: 1,
                sent_ns: 10,
                len: 100,
                digest: 0x0123_4567_89ab_cdef,
            },
        ] {
            let line = line(&stamp);
            let value = value_of(&line);
            assert_eq!(parse_header_value(value), Ok(stamp), "{line:?}");
        }
    }

    #[test]
    fn parse_is_liberal_about_form() {
        let want = sample();
        for value in [
            // Another order, upper-case names and digits, odd spacing.
            &b" DIGEST=6EAE39F4EC6A5E4C;len = 72 ;\tSeq=42; sent=1700000000123456789;run=load-test_7 "[..],
            // Folded by a relay, passed with its line ends.
            b" run=load-test_7; seq=42;\r\n sent=1700000000123456789;\r\n\tlen=72; digest=6eae39f4ec6a5e4c\r\n",
            // The same after a dump dropped the CRs.
            b" run=load-test_7; seq=42;\n sent=1700000000123456789; len=72;\n digest=6eae39f4ec6a5e4c\n",
            // Unknown fields (of any form) and empty ones are skipped.
            b"v=2; run=load-test_7;; seq=42; sent=1700000000123456789; x=a=b; len=72; digest=6eae39f4ec6a5e4c;",
            // Leading zeros are still the number.
            b"run=load-test_7; seq=0042; sent=1700000000123456789; len=072; digest=6eae39f4ec6a5e4c",
        ] {
            assert_eq!(
                parse_header_value(value),
                Ok(want),
                "{}",
                String::from_utf8_lossy(value)
            );
        }
    }

    #[test]
    fn every_field_has_its_error() {
        use StampError as E;
        let ok = "run=r; seq=1; sent=2; len=3; digest=0000000000000004";
        assert!(parse_header_value(ok.as_bytes()).is_ok());
        let cases: &[(&str, StampError)] = &[
            ("", E::Missing { field: Field::Run }),
            (
                "seq=1; sent=2; len=3; digest=0000000000000004",
                E::Missing { field: Field::Run },
            ),
            (
                "run=r; sent=2; len=3; digest=0000000000000004",
                E::Missing { field: Field::Seq },
            ),
            (
                "run=r; seq=1; len=3; digest=0000000000000004",
                E::Missing { field: Field::Sent },
            ),
            (
                "run=r; seq=1; sent=2; digest=0000000000000004",
                E::Missing { field: Field::Len },
            ),
            (
                "run=r; seq=1; sent=2; len=3",
                E::Missing {
                    field: Field::Digest,
                },
            ),
            (&format!("{ok}; run=s"), E::Duplicate { field: Field::Run }),
            (&format!("{ok}; SEQ=1"), E::Duplicate { field: Field::Seq }),
            (
                &format!("{ok}; sent=2"),
                E::Duplicate { field: Field::Sent },
            ),
            (&format!("{ok}; len=3"), E::Duplicate { field: Field::Len }),
            (
                &format!("{ok}; digest=0000000000000004"),
                E::Duplicate {
                    field: Field::Digest,
                },
            ),
            ("run=r; seq; sent=2", E::NotAField { text: "seq".into() }),
            ("run=r; =5", E::NotAField { text: "=5".into() }),
            (
                &format!("{ok}; {}", "y".repeat(40)),
                E::NotAField {
                    text: "y".repeat(32),
                },
            ),
            ("run=; seq=1", E::EmptyRunId),
            (
                &format!("run={}", "a".repeat(33)),
                E::RunIdTooLong { len: 33 },
            ),
            ("run=a.b", E::RunIdByte { byte: b'.' }),
            ("run=a b", E::RunIdByte { byte: b' ' }),
            ("run=r; seq=", E::BadNumber { field: Field::Seq }),
            ("run=r; seq=+1", E::BadNumber { field: Field::Seq }),
            ("run=r; seq=1 2", E::BadNumber { field: Field::Seq }),
            (
                "run=r; seq=1; sent=18446744073709551616",
                E::BadNumber { field: Field::Sent },
            ),
            (
                "run=r; seq=1; sent=2; len=-3",
                E::BadNumber { field: Field::Len },
            ),
            (
                "run=r; seq=1; sent=2; len=0x3",
                E::BadNumber { field: Field::Len },
            ),
            ("run=r; seq=1; sent=2; len=3; digest=", E::BadDigest),
            (
                "run=r; seq=1; sent=2; len=3; digest=000000000000004",
                E::BadDigest,
            ),
            (
                "run=r; seq=1; sent=2; len=3; digest=00000000000000004",
                E::BadDigest,
            ),
            (
                "run=r; seq=1; sent=2; len=3; digest=000000000000000g",
                E::BadDigest,
            ),
            (
                "run=r; seq=1; sent=2; len=3; digest=+000000000000004",
                E::BadDigest,
            ),
        ];
        for (value, want) in cases {
            assert_eq!(
                parse_header_value(value.as_bytes()).as_ref(),
                Err(want),
                "{value}"
            );
        }
        // The first problem in the value is the one reported.
        assert_eq!(
            parse_header_value(b"seq=x; run=r"),
            Err(E::BadNumber { field: Field::Seq })
        );
        assert_eq!(RunId::new(b"\xff"), Err(E::RunIdByte { byte: 0xff }));
    }

    #[test]
    fn errors_read_well() {
        use StampError as E;
        for (e, text) in [
            (E::Missing { field: Field::Len }, "no `len=` field"),
            (E::Duplicate { field: Field::Run }, "`run=` is given twice"),
            (
                E::NotAField { text: "seq".into() },
                "`seq` is not a name=value field",
            ),
            (
                E::BadNumber { field: Field::Sent },
                "`sent=` is not a decimal number below 2^64",
            ),
            (E::BadDigest, "`digest=` is not 16 hexadecimal digits"),
            (E::EmptyRunId, "the run id is empty"),
            (
                E::RunIdTooLong { len: 40 },
                "the run id is 40 bytes long; at most 32 are allowed",
            ),
            (
                E::RunIdByte { byte: 0xff },
                "the run id contains `\\xff`; only A-Z, a-z, 0-9, `_` and `-` are allowed",
            ),
            (
                E::TooLong { limit: 1024 },
                "the X-Smtp-Stamp field is longer than 1024 bytes",
            ),
            (
                E::TwoStamps,
                "the header block has more than one X-Smtp-Stamp field",
            ),
        ] {
            assert_eq!(e.to_string(), text);
        }
    }

    #[test]
    fn run_ids() {
        let id = run("Ab-_9");
        assert_eq!(id.as_bytes(), b"Ab-_9");
        assert_eq!(id.as_str(), "Ab-_9");
        assert_eq!(id.to_string(), "Ab-_9");
        assert_eq!(format!("{id:?}"), r#"RunId("Ab-_9")"#);
        assert_ne!(run("a"), run("A"));
        assert_ne!(run("a"), run("a0"));
        assert_eq!(run(&"x".repeat(32)).as_bytes().len(), 32);
        assert_eq!("".parse::<RunId>(), Err(StampError::EmptyRunId));
    }

    #[test]
    fn crlf_counts_as_lf_and_a_lone_cr_is_kept() {
        let lf = body_digest(b"one\ntwo\n\nthree\n");
        assert_eq!(body_digest(b"one\r\ntwo\r\n\r\nthree\r\n"), lf);
        assert_eq!(body_digest(b"one\r\ntwo\n\r\nthree\n"), lf);
        assert_eq!(lf.0, 15);
        // A lone CR is content: it counts, and it is not an LF.
        let (len, digest) = body_digest(b"a\rb\n");
        assert_eq!(len, 4);
        assert_ne!(digest, body_digest(b"ab\n").1);
        assert_ne!(digest, body_digest(b"a\nb\n").1);
        // At the end too.
        assert_eq!(body_digest(b"a\r"), (2, xxh3_64(b"a\r")));
        // One pass: CR CR LF is CR LF.
        assert_eq!(body_digest(b"a\r\r\n"), (3, xxh3_64(b"a\r\n")));
        assert_eq!(body_digest(b"\r\n\r\n"), (2, xxh3_64(b"\n\n")));
    }

    #[test]
    fn the_digest_is_xxh3_of_the_normalised_body() {
        let generated = crate::message::Body::Generated(5000).render_raw();
        for body in [
            &b""[..],
            b"\r",
            b"\n",
            b"x\r\r\n\r\ry\n\n\r\r",
            &crate::message::Body::Default.render_raw()[..],
            &generated[..],
        ] {
            let want = normalise(body);
            assert_eq!(
                body_digest(body),
                (want.len() as u64, xxh3_64(&want)),
                "{body:?}"
            );
        }
    }

    #[test]
    fn incremental_equals_whole_at_every_split() {
        let long = crate::message::Body::Generated(2000).render_raw();
        for body in [
            &b""[..],
            b"\r\n",
            b"\r\r\n\n\r",
            b"a\rb\r\nc\n\r\r\nd\r",
            b"La de da de da 1.\r\nLa de da de da 2.\r\n.\r\n\r\n",
            &long[..],
        ] {
            let whole = body_digest(body);
            assert_eq!(digest_parts(&[body]), whole);
            for parts in splits(body) {
                assert_eq!(digest_parts(&parts), whole, "{parts:?}");
            }
            // Empty pieces change nothing, even after a held-back CR.
            let mut d = BodyDigest::new();
            for b in body.chunks(1) {
                d.update(b);
                d.update(b"");
            }
            assert_eq!(d.finish(), whole);
        }
    }

    /// Pinned so that the format cannot drift. Checked once against the
    /// reference C implementation (python-xxhash's `xxh3_64`) on the
    /// normalised bytes.
    #[test]
    fn known_answers() {
        assert_eq!(body_digest(b""), (0, 0x2d06_8005_38d3_94c2));
        let default = crate::message::Body::Default.render_raw();
        assert_eq!(body_digest(&default), (72, 0x6eae_39f4_ec6a_5e4c));
        assert_eq!(body_digest(b"a\rb\r\n\r\n."), (6, 0x874d_79c5_3d1b_ada8));
        let generated = crate::message::Body::Generated(1000).render_raw();
        assert_eq!(body_digest(&generated), (989, 0x81d9_8046_939e_7ddf));
    }

    /// What a finder makes of `parts`: the verdict, and the body bytes as
    /// the `Found::Body` offsets cut them out.
    fn find(parts: &[&[u8]]) -> (Verdict, Option<Vec<u8>>, bool) {
        let mut finder = StampFinder::new();
        let mut body: Option<Vec<u8>> = None;
        let mut gave_up = false;
        for part in parts {
            match finder.feed(part) {
                Found::NeedMore => assert!(body.is_none() && !gave_up),
                Found::Body { at } => {
                    assert!(!gave_up);
                    assert!(body.is_none() || at == 0);
                    body.get_or_insert_with(Vec::new)
                        .extend_from_slice(&part[at..]);
                }
                Found::GaveUp => {
                    assert!(body.is_none());
                    gave_up = true;
                }
            }
        }
        (finder.finish(), body, gave_up)
    }

    /// `find` over every split of `message`, which must agree; returns the
    /// verdict and the body.
    fn find_split(message: &[u8]) -> (Verdict, Option<Vec<u8>>) {
        let whole = find(&[message]);
        for parts in splits(message) {
            assert_eq!(find(&parts), whole, "{parts:?}");
        }
        // The verifier agrees with the finder and the digest.
        let want = match &whole {
            (Verdict::Stamped(stamp), Some(body), _) => {
                let (len, digest) = body_digest(body);
                if (len, digest) == (stamp.len, stamp.digest) {
                    Verification::Intact(*stamp)
                } else {
                    Verification::Altered {
                        stamp: *stamp,
                        len,
                        digest,
                    }
                }
            }
            (Verdict::Invalid(e), ..) => Verification::Invalid(e.clone()),
            (Verdict::Unstamped(reason), ..) => Verification::Unstamped(*reason),
            (Verdict::Stamped(_), None, _) => unreachable!("a verdict needs a body"),
        };
        let mut verifier = StampVerifier::new();
        for parts in [
            vec![message],
            message.chunks(1).collect(),
            message.chunks(7).collect(),
        ] {
            for part in parts {
                verifier.update(part);
            }
            assert_eq!(verifier.finish(), want);
        }
        (whole.0, whole.1)
    }

    /// A message as a relay might deliver it: headers before and after the
    /// stamp, `stamp_lines` standing for the stamp field.
    fn relayed(stamp_lines: &[u8], body: &[u8]) -> Vec<u8> {
        [
            &b"Received: from source.example (source.example [127.0.0.1])\r\n\
               \tby relay.example (Postfix) with ESMTP id 4F2A1\r\n\
               \tfor <sink@example.org>; Mon,  1 Jan 2024 00:00:00 +0000 (UTC)\r\n\
               X-Smtp-Stamped: not this one\r\n\
               X-Smtp-Stam: nor this\r\n\
               Comments: nor\r\n X-Smtp-Stamp: this continuation\r\n"[..],
            stamp_lines,
            b"From: <a@example.org>\r\nTo: <b@example.org>\r\n\
              Message-Id: <0001.0002.0003@source.example>\r\n\r\n",
            body,
        ]
        .concat()
    }

    #[test]
    fn finder_finds_the_stamp_among_other_headers() {
        let body = crate::message::Body::Default.render_raw();
        let stamp = sample();
        let message = relayed(&line(&stamp), &body);
        let (verdict, found_body) = find_split(&message);
        assert_eq!(verdict, Verdict::Stamped(stamp));
        assert_eq!(found_body.as_deref(), Some(&body[..]));
        // Short enough to be cut in three at every pair of offsets.
        let short = [&line(&stamp)[..], b"\r\nb\r\n"].concat();
        assert!(short.len() <= 200);
        assert_eq!(
            find_split(&short),
            (Verdict::Stamped(stamp), Some(b"b\r\n".to_vec()))
        );

        // Name in any case, spaces before the colon, none after it.
        let message = relayed(
            b"x-SMTP-stamp :run=load-test_7; seq=42; sent=1700000000123456789; len=72; digest=6eae39f4ec6a5e4c\r\n",
            &body,
        );
        assert_eq!(find_split(&message).0, Verdict::Stamped(stamp));
    }

    #[test]
    fn finder_unfolds_a_folded_stamp() {
        let body = b"folded\r\n";
        let (len, digest) = body_digest(body);
        let stamp = Stamp {
            len,
            digest,
            ..sample()
        };
        let folded = format!(
            "X-Smtp-Stamp: run=load-test_7;\r\n seq=42;\r\n\tsent=1700000000123456789;\r\n   \
             len={len};\r\n digest={digest:016x}\r\n"
        );
        let (verdict, found_body) = find_split(&relayed(folded.as_bytes(), body));
        assert_eq!(verdict, Verdict::Stamped(stamp));
        assert_eq!(found_body.as_deref(), Some(&body[..]));
        // A dump without CRs: the same stamp, the same body digest.
        let lf: Vec<u8> = relayed(folded.as_bytes(), body)
            .into_iter()
            .filter(|&b| b != b'\r')
            .collect();
        let (verdict, found_body) = find_split(&lf);
        assert_eq!(verdict, Verdict::Stamped(stamp));
        assert_eq!(body_digest(&found_body.unwrap()), (len, digest));
    }

    #[test]
    fn finder_without_a_stamp() {
        let message = relayed(b"", b"body\r\n");
        let (verdict, body) = find_split(&message);
        assert_eq!(verdict, Verdict::Unstamped(UnstampedReason::NoStamp));
        assert_eq!(body.as_deref(), Some(&b"body\r\n"[..]));
        // No header at all: the body starts after the first empty line.
        assert_eq!(
            find_split(b"\r\nbody"),
            (
                Verdict::Unstamped(UnstampedReason::NoStamp),
                Some(b"body".to_vec())
            )
        );
        assert_eq!(
            find_split(b"\n"),
            (
                Verdict::Unstamped(UnstampedReason::NoStamp),
                Some(Vec::new())
            )
        );
        // A line of spaces is a continuation, a lone CR line is not empty.
        assert_eq!(
            find_split(b"A: b\r\n  \r\n\rx\r\n\r\nbody").1,
            Some(b"body".to_vec())
        );
        // No empty line: no body.
        let stamped = line(&sample());
        for message in [&b""[..], &b"Subject: x\r\n"[..], &stamped[..], &b"\r"[..]] {
            assert_eq!(
                find_split(message),
                (Verdict::Unstamped(UnstampedReason::NoBody), None),
                "{message:?}"
            );
        }
    }

    #[test]
    fn finder_rejects_bad_stamps() {
        let body = b"b\r\n";
        let bad = relayed(b"X-Smtp-Stamp: run=r; seq=1\r\n", body);
        assert_eq!(
            find_split(&bad).0,
            Verdict::Invalid(StampError::Missing { field: Field::Sent })
        );
        // Two stamp fields, even two good ones.
        let two = [line(&sample()), line(&sample())].concat();
        assert_eq!(
            find_split(&relayed(&two, body)).0,
            Verdict::Invalid(StampError::TwoStamps)
        );
        // A stamp field over the cap, with folding or without.
        let mut long = line(&sample());
        long.truncate(long.len() - 2);
        long.extend_from_slice(b"; x=");
        long.resize(HEADER_NAME.len() + 1 + STAMP_FIELD_CAP - 2, b'y');
        long.extend_from_slice(b"\r\n");
        assert_eq!(
            find_split(&relayed(&long, body)).0,
            Verdict::Stamped(sample())
        );
        let one_more = [&long[..long.len() - 2], b"y\r\n"].concat();
        let (verdict, found_body) = find_split(&relayed(&one_more, body));
        assert_eq!(
            verdict,
            Verdict::Invalid(StampError::TooLong {
                limit: STAMP_FIELD_CAP
            })
        );
        assert_eq!(found_body.as_deref(), Some(&body[..]));
        let folded = [&line(&sample())[..], &b" y\r\n".repeat(300)].concat();
        assert_eq!(
            find_split(&relayed(&folded, body)).0,
            Verdict::Invalid(StampError::TooLong {
                limit: STAMP_FIELD_CAP
            })
        );
    }

    #[test]
    fn finder_caps_the_header_block() {
        let stamp = line(&sample());
        // A header block of exactly `size` bytes, its empty line included:
        // the stamp, then one long field.
        let block = |size: usize| {
            let mut block = stamp.clone();
            block.extend_from_slice(b"X-Filler: ");
            block.resize(size - 4, b'f');
            block.extend_from_slice(b"\r\n\r\n");
            assert_eq!(block.len(), size);
            block
        };
        let body = crate::message::Body::Default.render_raw();
        let at_cap = [block(HEADER_BLOCK_CAP), body.to_vec()].concat();
        let over = [block(HEADER_BLOCK_CAP + 1), body.to_vec()].concat();
        for (message, want) in [
            (&at_cap[..], Verdict::Stamped(sample())),
            (
                &over[..],
                Verdict::Unstamped(UnstampedReason::HeaderBlockTooLong),
            ),
        ] {
            // Too long for every split; these cuts cover the cap's edges.
            let whole = find(&[message]);
            assert_eq!(whole.0, want);
            for i in (0..300)
                .chain(HEADER_BLOCK_CAP - 300..HEADER_BLOCK_CAP + 300)
                .chain(message.len() - 100..=message.len())
                .filter(|&i| i <= message.len())
            {
                assert_eq!(find(&[&message[..i], &message[i..]]), whole, "{i}");
            }
            assert_eq!(find(&message.chunks(1).collect::<Vec<_>>()), whole);
        }
        assert_eq!(find(&[&at_cap[..]]).1.as_deref(), Some(&body[..]));
        let (_, body, gave_up) = find(&[&over[..]]);
        assert_eq!((body, gave_up), (None, true));
        // The whole of an over-long message is ignored.
        let mut finder = StampFinder::new();
        assert_eq!(finder.feed(&over), Found::GaveUp);
        assert_eq!(finder.feed(b"\r\n\r\n"), Found::GaveUp);
    }

    #[test]
    fn finders_and_verifiers_are_reused() {
        let body = crate::message::Body::Default.render_raw();
        let message = relayed(&line(&sample()), &body);
        let mut finder = StampFinder::new();
        let mut verifier = StampVerifier::new();
        for _ in 0..3 {
            assert!(matches!(finder.feed(&message), Found::Body { .. }));
            assert_eq!(finder.finish(), Verdict::Stamped(sample()));
            verifier.update(&message);
            assert_eq!(verifier.finish(), Verification::Intact(sample()));
            // An aborted message leaves nothing behind.
            finder.feed(b"X-Smtp-Stamp: run=r\r\n\r\nbody");
            finder.reset();
            verifier.update(b"X-Smtp-Stamp: run=r\r\n\r\nbody");
            verifier.reset();
        }
        assert_eq!(finder.feed(b"\r\n"), Found::Body { at: 2 });
        assert_eq!(
            finder.finish(),
            Verdict::Unstamped(UnstampedReason::NoStamp)
        );
    }

    #[test]
    fn verifier_tells_intact_from_altered() {
        let body = crate::message::Body::Generated(300).render_raw();
        let (len, digest) = body_digest(&body);
        let stamp = Stamp {
            len,
            digest,
            ..sample()
        };
        let message = relayed(&line(&stamp), &body);
        let check = |message: &[u8]| {
            let mut v = StampVerifier::new();
            v.update(message);
            v.finish()
        };
        assert_eq!(check(&message), Verification::Intact(stamp));
        // Line ends changed by a relay or a dump do not count.
        let lf: Vec<u8> = message.iter().copied().filter(|&b| b != b'\r').collect();
        assert_eq!(check(&lf), Verification::Intact(stamp));
        // One byte changed, one line added, a lone CR turned into CRLF.
        let mut changed = message.clone();
        *changed.last_mut().unwrap() ^= 1;
        let added = [&message[..], b"-- \r\nDisclaimer\r\n"].concat();
        for altered in [changed, added] {
            assert!(matches!(
                check(&altered),
                Verification::Altered { stamp: s, .. } if s == stamp
            ));
        }
        let cr = Stamp {
            len: 4,
            digest: xxh3_64(b"a\rb\n"),
            ..sample()
        };
        let cr_message = [&line(&cr)[..], b"\r\na\rb\r\n"].concat();
        assert_eq!(check(&cr_message), Verification::Intact(cr));
        let crlf = [&line(&cr)[..], b"\r\na\r\nb\r\n"].concat();
        assert_eq!(
            check(&crlf),
            Verification::Altered {
                stamp: cr,
                len: 4,
                digest: xxh3_64(b"a\nb\n")
            }
        );
        // The finder's other verdicts pass through.
        assert_eq!(
            check(b"Subject: x\r\n\r\nbody"),
            Verification::Unstamped(UnstampedReason::NoStamp)
        );
        assert_eq!(
            check(b"X-Smtp-Stamp: run=\r\n\r\n"),
            Verification::Invalid(StampError::EmptyRunId)
        );
    }
}
