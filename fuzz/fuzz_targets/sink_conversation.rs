//! smtp-sink's whole conversation (`Conversation`, sans I/O) against a
//! random client: fuzzed sink options, fuzzed client bytes cut into reads
//! at fuzzed points, and an in-memory dump.
//!
//! Asserted:
//! - no panic;
//! - the dump API is used as it defines itself: `write` and `commit` only
//!   inside a record that `begin` opened, `begin` only outside one;
//! - every message the sink accepted (a 2xx to its end of data or BDAT
//!   LAST, counted in its counters) is one committed record (under SMTP
//!   also the other way round; see the LMTP quirk below), and every
//!   committed record is whole: its head (X-Client-Addr … X-Mail-Args), at
//!   least one X-Rcpt-Args line (under SMTP), the Received header, then the content
//!   without a CR, then the LF of the final "." line;
//! - memory is bounded: the input left buffered when the sink asks for
//!   more is at most one command line, the replies are at most a fixed
//!   factor of the input, and the dump at most a fixed factor of the input
//!   plus a constant per transaction;
//! - the conversation ends within a number of steps bounded by the input.

#![no_main]

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::rc::Rc;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use arbitrary::Arbitrary;
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use rand::rngs::SmallRng;
use rand::{RngCore, SeedableRng};
use smtp_proto::Limits;
use smtp_proto_fuzz::cut;
use smtp_sink::cli::Cli;
use smtp_sink::conversation::{Conversation, Now, Step};
use smtp_sink::dump::{ClientAddr, DumpSink};
use smtp_sink::stats::Stats;
use smtp_sink::Config;

/// Command lines and fragments a client sends: random bytes almost never
/// spell "MAIL FROM:", these always do.
const CLIENT_TOKENS: &[&[u8]] = &[
    b"HELO h\r\n",
    b"EHLO h\r\n",
    b"LHLO h\r\n",
    b"MAIL FROM:<a@b>\r\n",
    b"MAIL FROM:<a@b> SIZE=20\r\n",
    b"MAIL FROM:<a@b> SIZE=999999\r\n",
    b"MAIL FROM:<\xc3\xa9@b> SMTPUTF8\r\n",
    b"RCPT TO:<c@d>\r\n",
    b"RCPT TO:<e@f>\r\n",
    b"DATA\r\n",
    b"BDAT 5\r\n",
    b"BDAT 3 LAST\r\n",
    b"BDAT 0 LAST\r\n",
    b"BDAT x\r\n",
    b"RSET\r\n",
    b"NOOP\r\n",
    b"QUIT\r\n",
    b"STARTTLS\r\n",
    b"AUTH PLAIN\r\n",
    b"VRFY x\r\n",
    b".\r\n",
    b"..x\r\n",
    b"\r\n.\r\n",
    b"Subject: x\r\n",
    b"\r\n",
    b"\r",
    b"\n",
    b".",
    b" ",
    b"x",
    b"\0",
];

/// The sink options a case picks from, one bit each. None needs a file,
/// a clock, a socket or TLS; delays are there because they take the
/// conversation through its held-reply paths (the driver resumes at once).
const OPTIONS: &[&[&str]] = &[
    &["-p"],
    &["--chunking"],
    &["--size", "64"],
    &["-L"],
    &["-e"],
    &["--smtputf8"],
    &["-w", "1"],
    &["--tarpit", "1"],
    &["-M", "2"],
    &["-A", "1"],
    &["-H", "1"],
    &["-W", "rcpt:1"],
];

/// Parsing a configuration with clap costs more than a whole case, so
/// each combination is made once.
fn config(bits: u16) -> Arc<Config> {
    static CONFIGS: OnceLock<Mutex<HashMap<u16, Arc<Config>>>> = OnceLock::new();
    let bits = bits & ((1 << OPTIONS.len()) - 1);
    let mut configs = CONFIGS.get_or_init(Default::default).lock().expect("lock");
    configs
        .entry(bits)
        .or_insert_with(|| {
            let mut argv = vec!["smtp-sink"];
            for (i, opt) in OPTIONS.iter().enumerate() {
                if bits & (1 << i) != 0 {
                    argv.extend_from_slice(opt);
                }
            }
            argv.extend_from_slice(&[":25", "10"]);
            let cli = Cli::try_parse_ordered(argv).expect("clap");
            Arc::new(Config::from_cli(cli, "smtp-sink", 1000).expect("valid"))
        })
        .clone()
}

/// What the in-memory dump saw.
#[derive(Debug, Default)]
struct Records {
    /// Committed records.
    committed: Vec<Vec<u8>>,
    /// The record being written.
    open: Option<Vec<u8>>,
    /// Every byte written, aborted records included.
    written: usize,
    /// Records begun.
    begun: usize,
}

/// A `DumpSink` in memory that checks how it is used.
#[derive(Debug, Clone, Default)]
struct MemDump(Rc<RefCell<Records>>);

impl DumpSink for MemDump {
    fn begin(&mut self, _mail_time: i64, rng: &mut dyn RngCore) -> io::Result<u32> {
        let mut r = self.0.borrow_mut();
        assert!(r.open.is_none(), "begin inside a record");
        r.open = Some(Vec::new());
        r.begun += 1;
        Ok(rng.next_u32())
    }
    fn write(&mut self, data: &[u8]) -> io::Result<()> {
        let mut r = self.0.borrow_mut();
        r.written += data.len();
        r.open
            .as_mut()
            .expect("write outside a record")
            .extend_from_slice(data);
        Ok(())
    }
    fn commit(&mut self) -> io::Result<()> {
        let mut r = self.0.borrow_mut();
        let record = r.open.take().expect("commit outside a record");
        r.committed.push(record);
        Ok(())
    }
    fn abort(&mut self) {
        self.0.borrow_mut().open = None;
    }
}

#[derive(Debug, Arbitrary)]
struct Input {
    /// Which of [`OPTIONS`] are on.
    options: u16,
    /// Map each byte to a whole token of [`CLIENT_TOKENS`].
    tokens: bool,
    cuts: Vec<u16>,
    data: Vec<u8>,
}

impl Input {
    fn bytes(&self) -> Vec<u8> {
        if !self.tokens {
            return self.data.clone();
        }
        self.data
            .iter()
            .flat_map(|&b| CLIENT_TOKENS[usize::from(b) % CLIENT_TOKENS.len()].iter())
            .copied()
            .collect()
    }
}

/// The most input the sink may leave buffered when it asks for more: one
/// command line not yet ended (the DATA decoder holds back less).
const MAX_BUFFERED: usize = Limits::POSTFIX_SINK_LINE + 2;
/// Replies per input byte: the EHLO list answers a 6-byte "EHLO\r\n"
/// with about 200 bytes, more than any other command per byte.
const OUT_PER_BYTE: usize = 64;
/// The greeting and whatever one step may add without input.
const OUT_FIXED: usize = 1024;
/// What a record holds beyond the bytes of its own commands and content:
/// the head and the Received header repeat the HELO arguments (up to a
/// command line) and add fixed text.
const DUMP_PER_RECORD: usize = 3 * Limits::POSTFIX_SINK_LINE + 1024;

/// Checks that a committed record is whole.
/// Under LMTP a record may have none (the quirk described below).
fn check_record(record: &[u8], lmtp: bool) {
    assert!(
        record.starts_with(b"X-Client-Addr: "),
        "record head: {record:?}"
    );
    assert!(record.ends_with(b"\n"), "record end");
    let mut lines = record.split(|&b| b == b'\n');
    let mut rcpts = 0;
    let mut mail = false;
    for line in lines.by_ref() {
        if line.starts_with(b"Received: from ") {
            break;
        }
        if line.starts_with(b"X-Mail-Args: ") {
            mail = true;
        }
        if line.starts_with(b"X-Rcpt-Args: ") {
            assert!(mail, "a recipient before the sender");
            rcpts += 1;
        }
    }
    assert!(mail, "record without X-Mail-Args: {record:?}");
    assert!(lmtp || rcpts > 0, "record without recipients: {record:?}");
    let by = lines.next().expect("Received by");
    assert!(by.starts_with(b"\tby "), "Received by: {by:?}");
    let date = lines.next().expect("Received date");
    assert!(date.starts_with(b"\t"), "Received date: {date:?}");
    let content = lines.collect::<Vec<_>>().concat();
    assert!(!content.contains(&b'\r'), "a CR in the dumped content");
}

fuzz_target!(|input: Input| {
    let cfg = config(input.options);
    let lmtp = cfg.lmtp;
    let stats = Arc::new(Stats::with_output(
        false,
        cfg.max_messages,
        0,
        Box::new(io::sink()),
    ));
    let dump = MemDump::default();
    let records = dump.0.clone();
    let mut conv = Conversation::new(
        cfg.clone(),
        stats.clone(),
        ClientAddr::from_ip([127, 0, 0, 1].into()),
        Some(dump),
        SmallRng::seed_from_u64(7),
        None,
    );

    let data = input.bytes();
    let mut parts = cut(&data, &input.cuts).into_iter();
    // Each step takes a part of the input or handles at least a line of
    // it (a delay holds one reply, to one line); plus the greeting.
    let bound = 8 + 2 * (data.len() + input.cuts.len());
    let mut now = Now {
        unix: 1_700_000_000,
        elapsed: Duration::ZERO,
    };
    let mut out = Vec::new();
    let mut buf = BytesMut::new();
    let mut step = conv.start(now);
    for steps in 0.. {
        assert!(steps <= bound, "no end after {steps} steps");
        out.extend_from_slice(&conv.output().split());
        step = match step {
            Step::Read => {
                assert!(buf.len() <= MAX_BUFFERED, "{} bytes buffered", buf.len());
                let Some(part) = parts.next() else { break };
                buf.extend_from_slice(part);
                conv.input(&mut buf, now)
            }
            Step::Delay(pause) => {
                now.elapsed += pause;
                match conv.resume(now) {
                    // Input read before the delay is still to be handled.
                    Step::Read => conv.input(&mut buf, now),
                    other => other,
                }
            }
            Step::Stall(pause) => {
                now.elapsed += pause;
                conv.input(&mut buf, now)
            }
            Step::Abort(_) => {
                conv.abort_data();
                break;
            }
            Step::Close | Step::Exit | Step::StartTls => break,
        };
    }
    conv.close();
    out.extend_from_slice(&conv.output().split());
    drop(conv);

    let total_in = data.len();
    assert!(
        out.len() <= OUT_PER_BYTE * total_in + OUT_FIXED,
        "{} bytes of replies to {total_in} bytes",
        out.len()
    );
    let records = records.borrow();
    assert!(
        records.written <= 4 * total_in + DUMP_PER_RECORD * records.begun,
        "dumped {} bytes of {total_in} in {} records",
        records.written,
        records.begun
    );
    let accepted = stats.snapshot(&cfg.policy).messages.accepted;
    let committed = records.committed.len() as u64;
    if lmtp {
        // Postfix's LMTP quirk, kept: a "." typed outside DATA counts the
        // recipients down past zero (to -1), and DATA checks only for
        // zero, so it is taken with no recipient to answer for: that
        // message is dumped (with no X-Rcpt-Args line if the "." came
        // before any RCPT) but its end of data gets no reply at all and
        // is not counted as accepted.
        assert!(
            accepted <= committed,
            "{accepted} accepted, {committed} dumped"
        );
    } else {
        assert_eq!(committed, accepted, "dumped and accepted messages differ");
    }
    for record in &records.committed {
        check_record(record, lmtp);
    }
});
