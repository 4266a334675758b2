//! One client's conversation, sans I/O: bytes in, replies and steps out.
//!
//! This is Postfix's smtp-sink protocol engine without its sockets and
//! timers. The async shell ([`crate::session`]) feeds it whatever it read,
//! writes [`Conversation::output`] out in one go, and obeys the returned
//! [`Step`] (read more, wait for a delay, close, exit). Everything that
//! depends on a clock is passed in (`now`), so tests drive it directly.
//!
//! Differences from Postfix's engine are deliberate and listed in
//! docs/smtp-sink.md: a delayed reply stops the processing of pipelined
//! input until it is sent (Postfix answers out of order and loses one), a
//! dump failure gives 451 instead of killing the process.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use memchr::memchr;
use rand::rngs::SmallRng;
use rand::RngCore;
use smtp_proto::{CommandParser, DataDecoder, DataEvent, DataMode, Limits};
use tracing::{info, warn};

use crate::config::Config;
use crate::dump::{self, ClientAddr, DumpSink};
use crate::policy::{Action, SinkCmd};
use crate::replies;
use crate::stats::{MessageOutcome, Stats};

/// What the shell must do next. Before acting on any step, it writes out
/// the pending [`Conversation::output`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// All buffered input is used up: read more (idle timer running).
    Read,
    /// Wait, reading nothing and with the idle timer suspended, then call
    /// [`Conversation::resume`].
    Delay(Duration),
    /// `-H`: read nothing for this long (idle timer suspended), then go on
    /// with [`Conversation::input`].
    Stall(Duration),
    /// `-A`: read nothing for this long, then call
    /// [`Conversation::abort_data`] and close.
    Abort(Duration),
    /// Close the connection.
    Close,
    /// `-M` reached: the process exits once the output is sent.
    Exit,
}

/// A dump transaction in progress.
#[derive(Debug, Clone, Copy)]
struct Txn {
    id: u32,
    mail_time: i64,
    /// A dump operation failed: the end of data gets 451.
    failed: bool,
}

/// Called with `<command as typed> <args, at most 100 bytes>` for `-s`.
pub type SyslogHook = Arc<dyn Fn(&[u8]) + Send + Sync>;

/// The protocol state of one connection.
pub struct Conversation<D: DumpSink> {
    cfg: Arc<Config>,
    stats: Arc<Stats>,
    parser: CommandParser,
    decoder: DataDecoder,
    in_data: bool,
    in_mail: bool,
    /// Postfix's counter: MAIL zeroes it, RCPT bumps it, the LMTP end of
    /// data counts it down (to -1), RSET leaves it alone.
    rcpts: i32,
    proto: &'static str,
    helo_args: Option<Bytes>,
    client: ClientAddr,
    dump: Option<D>,
    txn: Option<Txn>,
    /// The last end of data could not be dumped.
    dot_failed: bool,
    delayed: Option<(SinkCmd, Bytes)>,
    exit_pending: bool,
    out: BytesMut,
    rng: SmallRng,
    syslog: Option<SyslogHook>,
}

impl<D: DumpSink> std::fmt::Debug for Conversation<D> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conversation")
            .field("in_data", &self.in_data)
            .field("in_mail", &self.in_mail)
            .field("rcpts", &self.rcpts)
            .finish_non_exhaustive()
    }
}

/// Postfix's printable(): every byte that is not printable ASCII becomes "?".
pub fn printable(args: &[u8]) -> Cow<'_, [u8]> {
    let ok = |b: &u8| (0x20..0x7f).contains(b);
    if args.iter().all(ok) {
        Cow::Borrowed(args)
    } else {
        Cow::Owned(args.iter().map(|b| if ok(b) { *b } else { b'?' }).collect())
    }
}

/// Cuts at the first NUL, as Postfix's C strings end there.
fn c_str(b: &Bytes) -> Bytes {
    match memchr(0, b) {
        Some(i) => b.slice(..i),
        None => b.clone(),
    }
}

impl<D: DumpSink> Conversation<D> {
    /// A new conversation; `dump` is `Some` when `-d`/`-D` is on.
    pub fn new(
        cfg: Arc<Config>,
        stats: Arc<Stats>,
        client: ClientAddr,
        dump: Option<D>,
        rng: SmallRng,
        syslog: Option<SyslogHook>,
    ) -> Self {
        let mode = if dump.is_some() {
            DataMode::Unstuff
        } else {
            DataMode::CountOnly
        };
        let proto = if cfg.lmtp { "LMTP" } else { "SMTP" };
        Conversation {
            parser: CommandParser::new(Limits::POSTFIX_SINK_LINE),
            decoder: DataDecoder::new(mode),
            in_data: false,
            in_mail: false,
            rcpts: 0,
            proto,
            helo_args: None,
            client,
            dump,
            txn: None,
            dot_failed: false,
            delayed: None,
            exit_pending: false,
            out: BytesMut::new(),
            rng,
            syslog,
            cfg,
            stats,
        }
    }

    /// Replies not yet sent. The shell writes them out and clears it.
    pub fn output(&mut self) -> &mut BytesMut {
        &mut self.out
    }

    /// Whether the conversation is inside DATA (the shell reads bigger
    /// chunks then).
    pub fn in_data(&self) -> bool {
        self.in_data
    }

    /// The connection opened: the `connect` pseudo-command (greeting).
    pub fn start(&mut self, now: i64) -> Step {
        self.dispatch(SinkCmd::Connect, b"connect", Bytes::new(), now)
            .unwrap_or(Step::Read)
    }

    /// Processes everything in `buf` that can be processed, stopping early
    /// for a delay or a close.
    pub fn input(&mut self, buf: &mut BytesMut, now: i64) -> Step {
        loop {
            if self.in_data {
                if let Some(step) = self.data(buf, now) {
                    return step;
                }
                continue;
            }
            match self.parser.parse(buf) {
                Ok(None) => return Step::Read,
                Ok(Some(cmd)) => {
                    if let Some(step) = self.command(&cmd.name, &cmd.args, now) {
                        return step;
                    }
                }
                Err(_) => {
                    warn!("command line too long");
                    return Step::Close;
                }
            }
        }
    }

    /// Sends the reply that a [`Step::Delay`] held back.
    pub fn resume(&mut self, now: i64) -> Step {
        let Some((cmd, args)) = self.delayed.take() else {
            return Step::Read;
        };
        let step = self.respond(cmd, &args, now);
        if self.exit_pending {
            return Step::Exit;
        }
        step.unwrap_or(Step::Read)
    }

    /// `-A`: the premature reply after 354.
    pub fn abort_data(&mut self) {
        self.out.put_slice(replies::ABORT);
    }

    /// The connection is closing: an open transaction is aborted (its dump
    /// file removed).
    pub fn close(&mut self) {
        self.mail_reset();
    }

    /// Data phase: returns `None` after the end of data has been handled
    /// and command reading should go on.
    fn data(&mut self, buf: &mut BytesMut, now: i64) -> Option<Step> {
        loop {
            match self.decoder.parse(buf) {
                Ok(None) => return Some(Step::Read),
                Ok(Some(DataEvent::Skipped(_))) => {}
                Ok(Some(DataEvent::Chunk(chunk))) => self.dump_write_data(&chunk),
                Ok(Some(DataEvent::End)) => break,
                Err(never) => match never {},
            }
        }
        self.in_data = false;
        // Postfix finishes the dump, resets the transaction and counts the
        // message, then handles "." as a command.
        self.dot_failed = false;
        if let Some(txn) = self.txn.take() {
            self.dot_failed = txn.failed || self.dump_finish().is_err();
        }
        self.in_mail = false;
        if self.stats.message() == MessageOutcome::Exit {
            self.exit_pending = true;
        }
        if self.cfg.verbose > 0 {
            info!(".");
        }
        let step = self.dispatch(SinkCmd::Dot, b".", Bytes::new(), now);
        if self.exit_pending && !matches!(step, Some(Step::Delay(_))) {
            return Some(Step::Exit);
        }
        step
    }

    fn command(&mut self, name: &Bytes, args: &Bytes, now: i64) -> Option<Step> {
        // A NUL ends the line for Postfix (a C string): in the verb, it
        // also drops the arguments.
        let (name, args) = match memchr(0, name) {
            Some(_) => (c_str(name), Bytes::new()),
            None => (name.clone(), c_str(args)),
        };
        if self.cfg.verbose > 0 {
            if args.is_empty() {
                info!("{}", String::from_utf8_lossy(&name));
            } else {
                info!(
                    "{} {}",
                    String::from_utf8_lossy(&name),
                    String::from_utf8_lossy(&args)
                );
            }
        }
        if name.is_empty() {
            self.out.put_slice(replies::EMPTY);
            return None;
        }
        let Some(cmd) = self.cfg.policy.enabled(&name) else {
            self.out.put_slice(replies::UNKNOWN);
            return None;
        };
        let args = match printable(&args) {
            Cow::Borrowed(_) => args,
            Cow::Owned(v) => Bytes::from(v),
        };
        self.dispatch(cmd, &name, args, now)
    }

    /// Postfix's command_resp: syslog, then -q, -Q, -f, -r, delay, reply.
    fn dispatch(&mut self, cmd: SinkCmd, typed: &[u8], args: Bytes, now: i64) -> Option<Step> {
        let rule = *self.cfg.policy.rule(cmd);
        if rule.syslog {
            if let Some(log) = &self.syslog {
                let mut line = Vec::with_capacity(typed.len() + 1 + args.len().min(100));
                line.extend_from_slice(typed);
                line.push(b' ');
                line.extend_from_slice(&args[..args.len().min(100)]);
                log(&line);
            }
        }
        let rng = &mut self.rng;
        let mut draw = || ((u64::from(rng.next_u32()) * 100) >> 32) as u32;
        match self.cfg.policy.decide(cmd, &mut draw) {
            Action::Drop => Some(Step::Close),
            Action::Close421 => {
                self.out.put_slice(replies::CLOSING);
                Some(Step::Close)
            }
            Action::Hard => {
                let reply = self.cfg.replies.hard.clone();
                self.reject(cmd, &reply);
                None
            }
            Action::Soft => {
                let reply = self.cfg.replies.soft.clone();
                self.reject(cmd, &reply);
                None
            }
            Action::Delay(0) | Action::Normal => self.respond(cmd, &args, now),
            Action::Delay(secs) => {
                self.delayed = Some((cmd, args));
                Some(Step::Delay(Duration::from_secs(u64::from(secs))))
            }
        }
    }

    /// A -f/-r reply: once, or once per recipient for "." under LMTP.
    fn reject(&mut self, cmd: SinkCmd, reply: &[u8]) {
        if cmd == SinkCmd::Dot && self.cfg.lmtp {
            while self.count_down_rcpt() {
                self.out.put_slice(reply);
            }
        } else {
            self.out.put_slice(reply);
        }
    }

    /// Postfix's `while (rcpts-- > 0)`.
    fn count_down_rcpt(&mut self) -> bool {
        let before = self.rcpts;
        self.rcpts = before.saturating_sub(1);
        before > 0
    }

    /// The normal reply and its side effects.
    fn respond(&mut self, cmd: SinkCmd, args: &Bytes, now: i64) -> Option<Step> {
        match cmd {
            SinkCmd::Connect => self.out.put_slice(&self.cfg.replies.greeting),
            SinkCmd::Helo | SinkCmd::Ehlo | SinkCmd::Lhlo => {
                self.mail_reset();
                if cmd == SinkCmd::Helo {
                    self.proto = "SMTP";
                    self.out.put_slice(&self.cfg.replies.helo);
                } else {
                    if !self.cfg.lmtp {
                        self.proto = "ESMTP";
                    }
                    self.out.put_slice(&self.cfg.replies.ehlo);
                }
                if self.dump.is_some() {
                    let skip = args.iter().take_while(|b| dump::is_c_space(**b)).count();
                    self.helo_args = Some(args.slice(skip..));
                }
            }
            SinkCmd::Xclient
            | SinkCmd::Xforward
            | SinkCmd::Auth
            | SinkCmd::Noop
            | SinkCmd::Vrfy => {
                self.out.put_slice(replies::OK);
            }
            SinkCmd::Mail => {
                if self.in_mail {
                    self.out.put_slice(replies::NESTED_MAIL);
                    return None;
                }
                self.in_mail = true;
                self.rcpts = 0;
                self.out.put_slice(replies::MAIL_OK);
                self.dump_begin(args, now);
            }
            SinkCmd::Rcpt => {
                if !self.in_mail {
                    self.out.put_slice(replies::NEED_MAIL);
                    return None;
                }
                self.rcpts = self.rcpts.saturating_add(1);
                self.out.put_slice(replies::RCPT_OK);
                if self.txn.is_some() {
                    let line = dump::rcpt_line(args);
                    self.dump_write(&line);
                }
            }
            SinkCmd::Data => {
                if !self.in_mail || self.rcpts == 0 {
                    self.out.put_slice(replies::NEED_RCPT);
                    return None;
                }
                self.out.put_slice(replies::DATA_GO);
                if let Some(txn) = self.txn {
                    let received = dump::received(
                        &self.client,
                        self.helo_args.as_deref(),
                        &self.cfg.hostname,
                        self.proto,
                        txn.id,
                        txn.mail_time,
                    );
                    self.dump_write(&received);
                }
                if let Some(secs) = self.cfg.abort_delay {
                    return Some(Step::Abort(Duration::from_secs(u64::from(secs))));
                }
                self.in_data = true;
                self.decoder.reset();
                if self.cfg.data_read_delay > 0 {
                    let secs = u64::from(self.cfg.data_read_delay);
                    return Some(Step::Stall(Duration::from_secs(secs)));
                }
            }
            SinkCmd::Dot => {
                let failed = std::mem::take(&mut self.dot_failed);
                let ok = match (failed, self.cfg.lmtp) {
                    (true, _) => replies::DUMP_FAILED,
                    (false, true) => replies::LMTP_OK,
                    (false, false) => replies::OK,
                };
                if self.cfg.lmtp {
                    while self.count_down_rcpt() {
                        self.out.put_slice(ok);
                    }
                } else {
                    self.out.put_slice(ok);
                }
            }
            SinkCmd::Rset => {
                self.mail_reset();
                self.out.put_slice(replies::RSET_OK);
            }
            SinkCmd::Quit => {
                self.out.put_slice(replies::BYE);
                self.stats.quit();
                return Some(Step::Close);
            }
        }
        None
    }

    /// Postfix's mail_cmd_reset: leaves the transaction (not the rcpt
    /// counter) and drops an unfinished dump.
    fn mail_reset(&mut self) {
        self.in_mail = false;
        if self.txn.take().is_some() {
            if let Some(d) = &mut self.dump {
                d.abort();
            }
        }
    }

    fn dump_begin(&mut self, args: &Bytes, now: i64) {
        let Some(d) = &mut self.dump else { return };
        match d.begin(now, &mut self.rng) {
            Ok(id) => {
                self.txn = Some(Txn {
                    id,
                    mail_time: now,
                    failed: false,
                });
                let start = self
                    .cfg
                    .dump
                    .as_ref()
                    .and_then(|d| d.start_string.as_deref());
                let head = dump::head(
                    start,
                    &self.client,
                    self.proto,
                    self.helo_args.as_deref(),
                    args,
                );
                self.dump_write(&head);
            }
            Err(e) => {
                warn!("dump file: {e}");
                self.txn = Some(Txn {
                    id: 0,
                    mail_time: now,
                    failed: true,
                });
            }
        }
    }

    fn dump_write(&mut self, bytes: &[u8]) {
        let (Some(txn), Some(d)) = (&mut self.txn, &mut self.dump) else {
            return;
        };
        if txn.failed {
            return;
        }
        if let Err(e) = d.write(bytes) {
            warn!("dump file write: {e}");
            txn.failed = true;
            d.abort();
        }
    }

    fn dump_write_data(&mut self, chunk: &[u8]) {
        let (Some(txn), Some(d)) = (&mut self.txn, &mut self.dump) else {
            return;
        };
        if txn.failed {
            return;
        }
        if let Err(e) = dump::without_cr(chunk, &mut |piece| d.write(piece)) {
            warn!("dump file write: {e}");
            txn.failed = true;
            d.abort();
        }
    }

    /// Writes the LF of the final ".\r\n" and finishes the record.
    fn dump_finish(&mut self) -> Result<(), ()> {
        let Some(d) = &mut self.dump else {
            return Err(());
        };
        let result = d.write(b"\n").and_then(|()| d.commit());
        result.map_err(|e| {
            warn!("dump file write: {e}");
            d.abort();
        })
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;
    use std::io;
    use std::rc::Rc;

    use rand::SeedableRng;

    use super::*;
    use crate::cli::Cli;

    /// An in-memory dump: the committed records, and the open one.
    #[derive(Default, Clone)]
    struct MemDump {
        records: Rc<RefCell<Vec<Vec<u8>>>>,
        open: Option<Vec<u8>>,
        fail_writes: bool,
    }

    impl DumpSink for MemDump {
        fn begin(&mut self, _: i64, _: &mut dyn RngCore) -> io::Result<u32> {
            self.open = Some(Vec::new());
            Ok(0x1234abcd)
        }
        fn write(&mut self, data: &[u8]) -> io::Result<()> {
            if self.fail_writes {
                return Err(io::Error::other("disk full"));
            }
            self.open.as_mut().expect("open").extend_from_slice(data);
            Ok(())
        }
        fn commit(&mut self) -> io::Result<()> {
            let rec = self.open.take().expect("open");
            self.records.borrow_mut().push(rec);
            Ok(())
        }
        fn abort(&mut self) {
            self.open = None;
        }
    }

    fn config(args: &[&str]) -> Arc<Config> {
        let argv = ["smtp-sink"]
            .iter()
            .chain(args)
            .chain([":25", "10"].iter())
            .copied();
        let cli = Cli::try_parse_ordered(argv).expect("clap");
        Arc::new(Config::from_cli(cli, "smtp-sink", 1000).expect("valid"))
    }

    fn conv(args: &[&str]) -> Conversation<MemDump> {
        let cfg = config(args);
        let stats = Arc::new(Stats::with_output(
            false,
            cfg.max_messages,
            0,
            Box::new(io::sink()),
        ));
        let dump = cfg.dump.as_ref().map(|_| MemDump::default());
        Conversation::new(
            cfg,
            stats,
            ClientAddr::from_ip("127.0.0.1".parse().expect("ip")),
            dump,
            SmallRng::seed_from_u64(7),
            None,
        )
    }

    /// Feeds `input` (greeting first) and returns the replies and the last step.
    fn run(c: &mut Conversation<MemDump>, input: &[u8]) -> (String, Step) {
        let mut step = c.start(0);
        let mut buf = BytesMut::from(input);
        if step == Step::Read {
            step = c.input(&mut buf, 0);
        }
        let out = String::from_utf8_lossy(&c.output().split()).into_owned();
        (out, step)
    }

    fn replies(args: &[&str], input: &str) -> String {
        run(&mut conv(args), input.as_bytes()).0
    }

    const GREET: &str = "220 smtp-sink ESMTP\r\n";

    #[test]
    fn exact_replies_for_a_default_session() {
        let out = replies(
            &[],
            "HELO x\r\nMAIL FROM:<a>\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\nhi\r\n.\r\n\
             RCPT TO:<b>\r\nDATA\r\nRSET\r\nNOOP\r\nVRFY x\r\nAUTH PLAIN\r\nXCLIENT NAME=x\r\n\
             XFORWARD NAME=x\r\nEXPN x\r\nSTARTTLS\r\nBDAT 1\r\nconnect\r\n\r\n   \r\n.\r\nQUIT\r\nNOOP\r\n",
        );
        let want = [
            GREET,
            "250 smtp-sink\r\n",
            "250 2.1.0 Ok\r\n",
            "503 5.5.1 Error: nested MAIL command\r\n",
            "250 2.1.5 Ok\r\n",
            "354 End data with <CR><LF>.<CR><LF>\r\n",
            "250 2.0.0 Ok\r\n",
            "503 5.5.1 Error: need MAIL command\r\n",
            "503 5.5.1 Error: need RCPT command\r\n",
            "250 2.1.0 Ok\r\n",
            "250 2.0.0 Ok\r\n",
            "250 2.0.0 Ok\r\n",
            "250 2.0.0 Ok\r\n",
            "250 2.0.0 Ok\r\n",
            "250 2.0.0 Ok\r\n",
            "500 5.5.1 Error: unknown command\r\n",
            "500 5.5.1 Error: unknown command\r\n",
            "500 5.5.1 Error: unknown command\r\n",
            "500 5.5.1 Error: unknown command\r\n",
            "500 5.5.2 Error: unknown command\r\n",
            "500 5.5.2 Error: unknown command\r\n",
            "250 2.0.0 Ok\r\n",
            "221 Bye\r\n",
        ]
        .concat();
        assert_eq!(out, want);
    }

    #[test]
    fn only_crlf_ends_a_line_and_long_lines_close_silently() {
        assert_eq!(
            replies(&[], "NOOP\nNOOP\r\n"),
            format!("{GREET}500 5.5.1 Error: unknown command\r\n")
        );
        let ok = format!("NOOP {}\r\n", "x".repeat(2046 - 5));
        assert_eq!(replies(&[], &ok), format!("{GREET}250 2.0.0 Ok\r\n"));
        let long = format!("NOOP {}\r\nNOOP\r\n", "x".repeat(2047 - 5));
        let (out, step) = run(&mut conv(&[]), long.as_bytes());
        assert_eq!((out.as_str(), step), (GREET, Step::Close));
    }

    #[test]
    fn protocol_variants_enable_the_right_hello() {
        let ehlo_all = "250-smtp-sink\r\n250-PIPELINING\r\n250-8BITMIME\r\n250-AUTH PLAIN LOGIN\r\n\
250-XCLIENT NAME HELO\r\n250-XFORWARD NAME ADDR PROTO HELO\r\n250-ENHANCEDSTATUSCODES\r\n250-DSN\r\n250 \r\n";
        let unknown = "500 5.5.1 Error: unknown command\r\n";
        assert_eq!(replies(&[], "EHLO x\r\n"), format!("{GREET}{ehlo_all}"));
        assert_eq!(
            replies(&["-L"], "EHLO x\r\nHELO x\r\nLHLO x\r\n"),
            format!("{GREET}{unknown}{unknown}{ehlo_all}")
        );
        assert_eq!(
            replies(&["-e"], "EHLO x\r\nHELO x\r\n"),
            format!("220 smtp-sink\r\n{unknown}250 smtp-sink\r\n")
        );
        assert_eq!(
            replies(&["-P", "-h", "vm"], "EHLO x\r\nHELO x\r\n"),
            format!("220 ********\r\n{unknown}250 vm\r\n")
        );
        assert_eq!(
            replies(
                &["-8", "-a", "-C", "-F", "-E", "-N", "-p"],
                "EHLO x\r\nXCLIENT a\r\nXFORWARD a\r\nAUTH x\r\n"
            ),
            format!("{GREET}250-smtp-sink\r\n250 \r\n{unknown}{unknown}250 2.0.0 Ok\r\n")
        );
    }

    #[test]
    fn lmtp_replies_once_per_recipient() {
        let out = replies(
            &["-L"],
            "LHLO x\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nRCPT TO:<c>\r\nRCPT TO:<d>\r\nDATA\r\n.\r\n.\r\n",
        );
        assert!(out.ends_with("354 End data with <CR><LF>.<CR><LF>\r\n250 2.2.0 Ok\r\n250 2.2.0 Ok\r\n250 2.2.0 Ok\r\n"), "{out}");
        let out = replies(
            &["-L", "-r", ".", "-b", "451 4.3.5 later"],
            "LHLO x\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nRCPT TO:<c>\r\nDATA\r\nx\r\n.\r\n",
        );
        assert!(
            out.ends_with("<CR><LF>\r\n451 4.3.5 later\r\n451 4.3.5 later\r\n"),
            "{out}"
        );
        // RSET keeps the counter: "." then answers for both recipients.
        let out = replies(
            &["-L"],
            "MAIL FROM:<a>\r\nRCPT TO:<b>\r\nRCPT TO:<c>\r\nRSET\r\n.\r\n",
        );
        assert!(
            out.ends_with("250 2.1.0 Ok\r\n250 2.2.0 Ok\r\n250 2.2.0 Ok\r\n"),
            "{out}"
        );
    }

    #[test]
    fn reject_lists_and_priorities() {
        let out = replies(
            &["-f", "rcpt .", "-B", "554 5.7.1 Go away"],
            "EHLO x\r\nMAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n",
        );
        assert!(!out.contains("PIPELINING"));
        assert!(
            out.ends_with(
                "250 2.1.0 Ok\r\n554 5.7.1 Go away\r\n503 5.5.1 Error: need RCPT command\r\n"
            ),
            "{out}"
        );
        let out = replies(&["-r", "mail,helo"], "HELO x\r\nMAIL FROM:<a>\r\n");
        assert_eq!(
            out,
            format!("{GREET}{}", "450 4.3.0 Error: command failed\r\n".repeat(2))
        );
        let (out, step) = run(&mut conv(&["-f", "connect"]), b"NOOP\r\n");
        assert_eq!(out, "500 5.3.0 Error: command failed\r\n250 2.0.0 Ok\r\n");
        assert_eq!(step, Step::Read);
        let (out, step) = run(
            &mut conv(&["-Q", "rcpt"]),
            b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nNOOP\r\n",
        );
        assert_eq!(
            out,
            format!("{GREET}250 2.1.0 Ok\r\n421 4.0.0 Server closing connection\r\n")
        );
        assert_eq!(step, Step::Close);
        let (out, step) = run(
            &mut conv(&["-q", "data"]),
            b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n",
        );
        assert_eq!(out, format!("{GREET}250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n"));
        assert_eq!(step, Step::Close);
        let (out, step) = run(&mut conv(&["-q", "connect"]), b"NOOP\r\n");
        assert_eq!((out.as_str(), step), ("", Step::Close));
        // -q beats -Q beats -f beats -r.
        let (out, step) = run(&mut conv(&["-r", "noop", "-f", "noop"]), b"NOOP\r\n");
        assert_eq!(
            (out, step),
            (
                format!("{GREET}500 5.3.0 Error: command failed\r\n"),
                Step::Read
            )
        );
        let (_, step) = run(&mut conv(&["-Q", "noop", "-q", "noop"]), b"NOOP\r\n");
        assert_eq!(step, Step::Close);
        // -f quit keeps the connection.
        let (out, step) = run(&mut conv(&["-f", "quit"]), b"QUIT\r\n");
        assert_eq!(
            (out, step),
            (
                format!("{GREET}500 5.3.0 Error: command failed\r\n"),
                Step::Read
            )
        );
    }

    #[test]
    fn arguments_become_printable_and_nul_ends_the_line() {
        let mut c = conv(&["-d", "x"]);
        let (out, _) = run(
            &mut c,
            b"EHLO  \tcl\xc3\xa9ent \r\nMAIL FROM:<a\x01b>\r\nRCPT TO:<x\0y>\r\nDATA\r\n.\r\nNO\0OP\r\n",
        );
        assert!(
            out.ends_with("250 2.0.0 Ok\r\n500 5.5.1 Error: unknown command\r\n"),
            "{out}"
        );
        let rec = c.dump.as_ref().expect("dump").records.borrow()[0].clone();
        let rec = String::from_utf8(rec).expect("utf8");
        assert!(rec.contains("X-Helo-Args: ?cl??ent \n"), "{rec}");
        assert!(rec.contains("X-Mail-Args: <a?b>\n"), "{rec}");
        assert!(rec.contains("X-Rcpt-Args: <x\n"), "{rec}");
    }

    #[test]
    fn hello_and_rset_abort_the_transaction() {
        for abort in ["RSET", "HELO x", "EHLO x"] {
            let input =
                format!("MAIL FROM:<a>\r\nRCPT TO:<b>\r\n{abort}\r\nDATA\r\nRCPT TO:<b>\r\n");
            let out = replies(&["-d", "x"], &input);
            assert!(
                out.ends_with(
                    "503 5.5.1 Error: need RCPT command\r\n503 5.5.1 Error: need MAIL command\r\n"
                ),
                "{abort}: {out}"
            );
        }
    }

    #[test]
    fn dump_record_is_postfix_format() {
        let mut c = conv(&[
            "-d",
            "x",
            "-S",
            r"START\tX\\n\101\n",
            "-h",
            "sinkhost.example",
        ]);
        let (out, step) = run(
            &mut c,
            b"EHLO   client.example  \r\nMAIL FROM:<a@b> BODY=8BITMIME\r\nRCPT TO:<x@y>\r\n\
RCPT TO:<z@y> NOTIFY=NEVER\r\nDATA\r\nSubject: hi\r\n\r\n..dot\r\nbare\rcr\r\n.\r\n",
        );
        assert!(out.ends_with("250 2.0.0 Ok\r\n"));
        assert_eq!(step, Step::Read);
        let rec = c.dump.as_ref().expect("dump").records.borrow()[0].clone();
        let want = format!(
            "START\tX\\nA\nX-Client-Addr: 127.0.0.1\nX-Client-Proto: ESMTP\nX-Helo-Args: client.example  \n\
X-Mail-Args: <a@b> BODY=8BITMIME\nX-Rcpt-Args: <x@y>\nX-Rcpt-Args: <z@y> NOTIFY=NEVER\n\
Received: from client.example   ([127.0.0.1])\n\tby sinkhost.example (smtp-sink) with ESMTP id 1234abcd;\n\t{}\n\
Subject: hi\n\n.dot\nbarecr\n\n",
            smtp_proto::time::mail_date(0)
        );
        assert_eq!(String::from_utf8_lossy(&rec), want);
    }

    #[test]
    fn dump_write_error_gives_451_instead_of_250() {
        let mut c = conv(&["-d", "x"]);
        c.dump.as_mut().expect("dump").fail_writes = true;
        let (out, _) = run(
            &mut c,
            b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\nx\r\n.\r\nMAIL FROM:<a>\r\n",
        );
        assert!(
            out.ends_with("451 4.3.0 Error: dump file write failed\r\n250 2.1.0 Ok\r\n"),
            "{out}"
        );
        assert!(c.dump.as_ref().expect("dump").records.borrow().is_empty());
    }

    #[test]
    fn a_delay_holds_back_later_pipelined_commands() {
        let mut c = conv(&["-W", "rcpt:1"]);
        let (out, step) = run(
            &mut c,
            b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nRCPT TO:<c>\r\nNOOP\r\n",
        );
        assert_eq!(out, format!("{GREET}250 2.1.0 Ok\r\n"));
        assert_eq!(step, Step::Delay(Duration::from_secs(1)));
        // The shell waits, then resumes and goes on with the buffer.
        let mut rest = BytesMut::from(&b"RCPT TO:<c>\r\nNOOP\r\n"[..]);
        assert_eq!(c.resume(0), Step::Read);
        assert_eq!(c.input(&mut rest, 0), Step::Delay(Duration::from_secs(1)));
        assert_eq!(c.resume(0), Step::Read);
        assert_eq!(c.input(&mut rest, 0), Step::Read);
        assert_eq!(
            &c.output().split()[..],
            b"250 2.1.5 Ok\r\n250 2.1.5 Ok\r\n250 2.0.0 Ok\r\n"
        );
    }

    #[test]
    fn delayed_greeting_quit_and_abort_steps() {
        let mut c = conv(&["-W", "connect:2"]);
        assert_eq!(c.start(0), Step::Delay(Duration::from_secs(2)));
        assert!(c.output().is_empty());
        assert_eq!(c.resume(0), Step::Read);
        assert_eq!(&c.output().split()[..], GREET.as_bytes());
        let mut c = conv(&["-W", "quit:1"]);
        let (_, step) = run(&mut c, b"QUIT\r\n");
        assert_eq!(step, Step::Delay(Duration::from_secs(1)));
        assert_eq!(c.resume(0), Step::Close);
        let mut c = conv(&["-A", "3"]);
        let (out, step) = run(
            &mut c,
            b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\nx\r\n.\r\n",
        );
        assert!(out.ends_with("354 End data with <CR><LF>.<CR><LF>\r\n"));
        assert_eq!(step, Step::Abort(Duration::from_secs(3)));
        c.abort_data();
        assert_eq!(&c.output().split()[..], b"550 This violates SMTP\r\n");
        let mut c = conv(&["-H", "2"]);
        let (_, step) = run(
            &mut c,
            b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\nx\r\n.\r\n",
        );
        assert_eq!(step, Step::Stall(Duration::from_secs(2)));
    }

    #[test]
    fn max_messages_exits_after_the_final_reply() {
        let mut c = conv(&["-M", "1"]);
        let (out, step) = run(
            &mut c,
            b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n.\r\nNOOP\r\n",
        );
        assert!(
            out.ends_with("354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 Ok\r\n"),
            "{out}"
        );
        assert_eq!(step, Step::Exit);
    }

    #[test]
    fn syslog_hook_gets_the_command_as_typed_and_at_most_100_bytes_of_args() {
        let lines = Arc::new(std::sync::Mutex::new(Vec::<Vec<u8>>::new()));
        let sink = lines.clone();
        let cfg = config(&["-s", "connect,mail", "-s", "."]);
        let stats = Arc::new(Stats::with_output(false, 0, 0, Box::new(io::sink())));
        let hook: SyslogHook =
            Arc::new(move |l: &[u8]| sink.lock().expect("lock").push(l.to_vec()));
        let mut c: Conversation<MemDump> = Conversation::new(
            cfg,
            stats,
            ClientAddr::local(),
            None,
            SmallRng::seed_from_u64(1),
            Some(hook),
        );
        let long = format!(
            "MaIl FROM:<{}>\r\nRCPT TO:<b>\r\nDATA\r\n.\r\nNOOP\r\n",
            "x".repeat(200)
        );
        let _ = run(&mut c, long.as_bytes());
        let got = lines.lock().expect("lock").clone();
        assert_eq!(got.len(), 3, "{got:?}");
        assert_eq!(got[0], b"connect ");
        assert_eq!(got[1].len(), "MaIl ".len() + 100);
        assert!(got[1].starts_with(b"MaIl FROM:<xxx"));
        assert_eq!(got[2], b". ");
    }

    #[test]
    fn data_may_arrive_a_byte_at_a_time() {
        for dumping in [false, true] {
            let args: &[&str] = if dumping { &["-d", "x"] } else { &[] };
            let mut c = conv(args);
            let _ = c.start(0);
            let input = b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n.x\r\n\r\n.\r\nNOOP\r\n";
            let mut buf = BytesMut::new();
            for b in input {
                buf.extend_from_slice(&[*b]);
                assert_eq!(c.input(&mut buf, 0), Step::Read);
            }
            let out = c.output().split();
            assert!(out.ends_with(b"<CR><LF>\r\n250 2.0.0 Ok\r\n250 2.0.0 Ok\r\n"));
            if dumping {
                let rec = c.dump.as_ref().expect("dump").records.borrow()[0].clone();
                assert!(
                    rec.ends_with(b"\nx\n\n\n"),
                    "{:?}",
                    String::from_utf8_lossy(&rec)
                );
            }
        }
    }

    /// Runs `input` split into pieces at `cuts`; returns replies, the
    /// dumped records and whether the session was closed.
    fn run_split(args: &[&str], input: &[u8], cuts: &[usize]) -> (Vec<u8>, Vec<Vec<u8>>, bool) {
        let mut c = conv(args);
        let mut out = Vec::new();
        let mut step = c.start(0);
        out.extend_from_slice(&c.output().split());
        let mut buf = BytesMut::new();
        let mut points: Vec<usize> = cuts.iter().map(|p| p % (input.len() + 1)).collect();
        points.push(input.len());
        points.sort_unstable();
        let mut from = 0;
        for p in points {
            if step != Step::Read {
                break;
            }
            buf.extend_from_slice(&input[from..p]);
            from = p;
            step = c.input(&mut buf, 0);
            out.extend_from_slice(&c.output().split());
        }
        let records = c
            .dump
            .as_ref()
            .map(|d| d.records.borrow().clone())
            .unwrap_or_default();
        (out, records, step != Step::Read)
    }

    proptest::proptest! {
        #[test]
        fn replies_do_not_depend_on_how_input_is_split(
            words in proptest::collection::vec(
                proptest::sample::select(vec![
                    &b"EHLO x\r\n"[..], b"HELO y\r\n", b"LHLO z\r\n", b"MAIL FROM:<a>\r\n",
                    b"RCPT TO:<b>\r\n", b"DATA\r\n", b".\r\n", b"..x\r\n", b"\r\n", b"RSET\r\n",
                    b"NOOP\n", b"\r", b"\n", b"x", b"\x00", b"\xff", b"QUIT\r\n", b"body line\r\n",
                ]),
                0..60,
            ),
            cuts in proptest::collection::vec(0usize..10_000, 0..20),
            lmtp in proptest::bool::ANY,
        ) {
            let input: Vec<u8> = words.concat();
            let args: &[&str] = if lmtp { &["-L", "-d", "x"] } else { &["-d", "x"] };
            let whole = run_split(args, &input, &[]);
            let split = run_split(args, &input, &cuts);
            proptest::prop_assert_eq!(whole, split);
        }

        #[test]
        fn no_input_makes_it_panic(input in proptest::collection::vec(proptest::num::u8::ANY, 0..3000)) {
            let _ = run_split(&[], &input, &[7, 100, 2047]);
            let _ = run_split(&["-L", "-D", "x"], &input, &[1]);
        }
    }
}
