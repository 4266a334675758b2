//! Process-wide counters: `-c` output, `-n` and `-M` limits, and the
//! always-on counters that `--stats-json` writes out ([`Counters`]).
//!
//! The `-c` line is printed under the stdout lock, as Postfix prints it:
//! one `sess=%d quit=%d mesg=%d\r` per closed session and per message.
//! With the TLS options the line goes on with ` tlsfull=%d tlsresumed=%d
//! tlsfail=%d`, with `--auth-users` with ` authok=%d authfail=%d`; without
//! them it is Postfix's, byte for byte.
//!
//! The counters are always kept, whatever the options, and cost no lock
//! and no shared write per command: what happens per command (commands
//! seen, replies by class, content bytes, ...) is counted in the session's
//! own [`SessionCounts`], plain integers, which are added to the shared
//! atomics ([`SessionCounts::flush`]) at the end of each message and when
//! the session ends. The atomics touched directly are touched at most once
//! per session or per message (sessions, QUIT, messages, TLS handshakes,
//! AUTH outcomes), or next to a timer of at least a second (a `-W`/`-w`
//! delay). All are Relaxed: each counter is exact on its own, and a
//! snapshot taken while sessions run may be a message behind here and
//! there.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use serde::ser::{Serialize, SerializeMap, Serializer};

use crate::config::{Behaviour, RateAction};
use crate::fault::MAX_RULES;
use crate::policy::{Policy, SinkCmd};
use crate::verify::Verify;

/// What a finished message means for the process.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageOutcome {
    /// Carry on.
    Continue,
    /// `-M` reached: exit after this message's reply is sent.
    Exit,
    /// `-M` was already reached by other sessions: this message is not
    /// counted, gets no reply and the session ends, as if the process had
    /// already exited (which it is about to).
    PastLimit,
}

/// Rows of the per-command tables: every [`SinkCmd`], then `unknown`
/// (unknown or disabled commands, empty lines).
pub const SLOTS: usize = SinkCmd::ALL.len() + 1;
/// The `unknown` row.
pub const UNKNOWN: usize = SinkCmd::ALL.len();
/// Reply classes counted: 2xx, 3xx, 4xx, 5xx.
const CLASSES: usize = 4;

/// The name of a row of the per-command tables.
fn slot_name(slot: usize) -> &'static str {
    SinkCmd::ALL.get(slot).map_or("unknown", |c| c.name())
}

/// The class row of a reply from its first byte (`2`..`5`).
fn class_of(first: u8) -> Option<usize> {
    match first {
        b'2'..=b'5' => Some(usize::from(first - b'2')),
        _ => None,
    }
}

/// Counters shared by every session.
pub struct Stats {
    show_count: bool,
    max_messages: u64,
    max_sessions: u64,
    /// Sessions closed (`-c`'s `sess=`, `-n`).
    sessions: AtomicU64,
    quits: AtomicU64,
    /// Messages whose end arrived (`-c`'s `mesg=`, `-M`).
    messages: AtomicU64,
    /// Print the TLS counters (`--starttls`, `--tls-on-connect`).
    show_tls: bool,
    /// Print the AUTH counters (`--auth-users`).
    show_auth: bool,
    tls_full: AtomicU64,
    tls_resumed: AtomicU64,
    tls_failed: AtomicU64,
    auth_ok: AtomicU64,
    auth_failed: AtomicU64,
    out: Mutex<Box<dyn Write + Send>>,
    /// Sessions started and ended (whatever the end), and those of them
    /// cut because the process stopped.
    opened: AtomicU64,
    ended: AtomicU64,
    cut: AtomicU64,
    /// Messages whose end of data was answered 2xx.
    accepted: AtomicU64,
    content_bytes: AtomicU64,
    commands: [AtomicU64; SLOTS],
    replies: [[AtomicU64; CLASSES]; SLOTS],
    delays: [AtomicU64; SinkCmd::ALL.len()],
    delay_seconds: [AtomicU64; SinkCmd::ALL.len()],
    aborts: AtomicU64,
    stalls: AtomicU64,
    dumps_written: AtomicU64,
    dumps_failed: AtomicU64,
    /// `--verify`.
    verify: Option<Verify>,
    /// Which of `--max-rate`, `--greylist`, `--fault` are on, for the
    /// snapshot's rule tables.
    behaviour: Behaviour,
    /// `--max-rate`: connections and MAIL commands refused.
    rate_limited_connect: AtomicU64,
    rate_limited_mail: AtomicU64,
    /// `--greylist`: RCPT commands deferred.
    greylisted: AtomicU64,
    /// `--fault`: replies replaced, per rule (command-line order).
    faults: [AtomicU64; MAX_RULES],
}

impl std::fmt::Debug for Stats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stats")
            .field("sessions", &self.sessions)
            .field("quits", &self.quits)
            .field("messages", &self.messages)
            .finish_non_exhaustive()
    }
}

fn load(n: &AtomicU64) -> u64 {
    n.load(Ordering::Relaxed)
}

fn add(n: &AtomicU64, v: u64) {
    if v > 0 {
        n.fetch_add(v, Ordering::Relaxed);
    }
}

impl Stats {
    /// Counters printing to stdout.
    pub fn new(show_count: bool, max_messages: u64, max_sessions: u64) -> Stats {
        Self::with_output(
            show_count,
            max_messages,
            max_sessions,
            Box::new(std::io::stdout()),
        )
    }

    /// Counters printing `-c` lines to `out` (tests capture them).
    pub fn with_output(
        show_count: bool,
        max_messages: u64,
        max_sessions: u64,
        out: Box<dyn Write + Send>,
    ) -> Stats {
        Stats {
            show_count,
            max_messages,
            max_sessions,
            sessions: AtomicU64::new(0),
            quits: AtomicU64::new(0),
            messages: AtomicU64::new(0),
            show_tls: false,
            show_auth: false,
            tls_full: AtomicU64::new(0),
            tls_resumed: AtomicU64::new(0),
            tls_failed: AtomicU64::new(0),
            auth_ok: AtomicU64::new(0),
            auth_failed: AtomicU64::new(0),
            out: Mutex::new(out),
            opened: AtomicU64::new(0),
            ended: AtomicU64::new(0),
            cut: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            content_bytes: AtomicU64::new(0),
            commands: Default::default(),
            replies: Default::default(),
            delays: Default::default(),
            delay_seconds: Default::default(),
            aborts: AtomicU64::new(0),
            stalls: AtomicU64::new(0),
            dumps_written: AtomicU64::new(0),
            dumps_failed: AtomicU64::new(0),
            verify: None,
            behaviour: Behaviour::default(),
            rate_limited_connect: AtomicU64::new(0),
            rate_limited_mail: AtomicU64::new(0),
            greylisted: AtomicU64::new(0),
            faults: Default::default(),
        }
    }

    /// Lists the rules of `--max-rate`, `--greylist` and `--fault` in the
    /// snapshot (without them the snapshot is as before).
    #[must_use]
    pub fn with_behaviour(mut self, behaviour: &Behaviour) -> Stats {
        self.behaviour = behaviour.clone();
        self
    }

    /// Adds the TLS and the AUTH counters to the `-c` line.
    #[must_use]
    pub fn with_fields(mut self, tls: bool, auth: bool) -> Stats {
        self.show_tls = tls;
        self.show_auth = auth;
        self
    }

    /// Turns on `--verify`'s counts.
    pub fn with_verify(mut self, on: bool) -> Stats {
        self.verify = on.then(Verify::new);
        self
    }

    /// `--verify`'s counts, when on.
    pub fn verify(&self) -> Option<&Verify> {
        self.verify.as_ref()
    }

    fn print(&self) {
        // Read the counters under the lock, so that lines come out in
        // order even when several threads finish sessions at once.
        let mut out = self
            .out
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut line = format!(
            "sess={} quit={} mesg={}",
            load(&self.sessions),
            load(&self.quits),
            load(&self.messages)
        );
        if self.show_tls {
            line.push_str(&format!(
                " tlsfull={} tlsresumed={} tlsfail={}",
                load(&self.tls_full),
                load(&self.tls_resumed),
                load(&self.tls_failed)
            ));
        }
        if self.show_auth {
            line.push_str(&format!(
                " authok={} authfail={}",
                load(&self.auth_ok),
                load(&self.auth_failed)
            ));
        }
        line.push('\r');
        // A closed stdout must not take the sink down (Postfix ignores it too).
        let _ = out.write_all(line.as_bytes());
        let _ = out.flush();
    }

    /// A QUIT was answered.
    pub fn quit(&self) {
        self.quits.fetch_add(1, Ordering::Relaxed);
    }

    /// A TLS handshake finished: `Some(resumed)`, or `None` when it failed.
    /// With `-c`, printed with the next line.
    pub fn tls_handshake(&self, outcome: Option<bool>) {
        let counter = match outcome {
            Some(false) => &self.tls_full,
            Some(true) => &self.tls_resumed,
            None => &self.tls_failed,
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// An AUTH exchange ended with 235 (`true`) or 535 (`false`).
    pub fn auth(&self, ok: bool) {
        let counter = if ok { &self.auth_ok } else { &self.auth_failed };
        counter.fetch_add(1, Ordering::Relaxed);
    }

    /// A `-W`/`-w` delay of `seconds` (> 0) holds back the reply to `cmd`.
    /// A shared write, but next to a timer of at least a second.
    pub fn delayed(&self, cmd: SinkCmd, seconds: u32) {
        self.delays[cmd.index()].fetch_add(1, Ordering::Relaxed);
        self.delay_seconds[cmd.index()].fetch_add(u64::from(seconds), Ordering::Relaxed);
    }

    /// A message reached its end of data: reserves its place among the
    /// `-M` messages before anything about it is committed or answered.
    ///
    /// The check and the count are one atomic step, so with sessions on
    /// several threads exactly `-M` messages get a place: the others see
    /// [`MessageOutcome::PastLimit`] and are not counted. (Counting first
    /// and comparing afterwards let every session that got there before
    /// the process stopped have its message: `-M 1000` accepted a few
    /// more than 1000 under `--threads`.)
    pub fn message(&self) -> MessageOutcome {
        let max = self.max_messages;
        let n = if max == 0 {
            self.messages.fetch_add(1, Ordering::Relaxed) + 1
        } else {
            let reserved = self
                .messages
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                    (n < max).then_some(n + 1)
                });
            match reserved {
                Ok(before) => before + 1,
                Err(_) => return MessageOutcome::PastLimit,
            }
        };
        if self.show_count {
            self.print();
        }
        if max > 0 && n >= max {
            MessageOutcome::Exit
        } else {
            MessageOutcome::Continue
        }
    }

    /// A session closed. Returns true when `-n` is reached.
    pub fn session_closed(&self) -> bool {
        let n = self.sessions.fetch_add(1, Ordering::Relaxed) + 1;
        if self.show_count {
            self.print();
        }
        self.max_sessions > 0 && n >= self.max_sessions
    }

    /// A session starts: it counts as open until the guard is dropped,
    /// and as cut if that happens before [`SessionGuard::finish`] (the
    /// process stopped under it).
    pub fn session_opened(&self) -> SessionGuard<'_> {
        self.opened.fetch_add(1, Ordering::Relaxed);
        SessionGuard {
            stats: self,
            finished: false,
        }
    }

    /// The counters now. `policy` tells which rule each command's count
    /// belongs to (its action is fixed by the rule, except a delay's).
    pub fn snapshot(&self, policy: &Policy) -> Counters {
        // Ended first: `open` may then be high for a moment, never
        // negative.
        let ended = load(&self.ended);
        let opened = load(&self.opened);
        let per_cmd = |f: &dyn Fn(SinkCmd) -> Option<u64>| {
            CmdMap(
                SinkCmd::ALL
                    .into_iter()
                    .filter_map(|c| f(c).map(|n| (c.name(), n)))
                    .collect(),
            )
        };
        let commands = |c: SinkCmd| load(&self.commands[c.index()]);
        let rule_count = |c: SinkCmd, decided: bool| decided.then(|| commands(c));
        Counters {
            sessions: SessionCounters {
                accepted: opened,
                open: opened.saturating_sub(ended),
                closed: ended,
                cut: load(&self.cut),
                quit: load(&self.quits),
            },
            messages: MessageCounters {
                received: load(&self.messages),
                accepted: load(&self.accepted),
                content_bytes: load(&self.content_bytes),
            },
            commands: CmdMap(
                (0..SLOTS)
                    .map(|s| (slot_name(s), load(&self.commands[s])))
                    .collect(),
            ),
            replies: CmdMap(
                (0..SLOTS)
                    .map(|s| {
                        let r = &self.replies[s];
                        (
                            slot_name(s),
                            Classes {
                                c2xx: load(&r[0]),
                                c3xx: load(&r[1]),
                                c4xx: load(&r[2]),
                                c5xx: load(&r[3]),
                            },
                        )
                    })
                    .collect(),
            ),
            rules: RuleCounters {
                // The priority is Policy::decide's: -q, -Q, -f, -r. A
                // command whose rule is configured but loses to another
                // is listed with 0.
                hard_reject: per_cmd(&|c| {
                    let r = policy.rule(c);
                    r.hard
                        .then(|| rule_count(c, !r.drop && !r.close).unwrap_or(0))
                }),
                soft_reject: per_cmd(&|c| {
                    let r = policy.rule(c);
                    r.soft
                        .then(|| rule_count(c, !r.drop && !r.close && !r.hard).unwrap_or(0))
                }),
                drop: per_cmd(&|c| policy.rule(c).drop.then(|| commands(c))),
                close: per_cmd(&|c| {
                    let r = policy.rule(c);
                    r.close.then(|| rule_count(c, !r.drop).unwrap_or(0))
                }),
                delay: CmdMap(
                    SinkCmd::ALL
                        .into_iter()
                        .filter(|c| policy.rule(*c).delay.seconds > 0)
                        .map(|c| {
                            (
                                c.name(),
                                DelayCounters {
                                    count: load(&self.delays[c.index()]),
                                    seconds: load(&self.delay_seconds[c.index()]),
                                },
                            )
                        })
                        .collect(),
                ),
                abort_delay: load(&self.aborts),
                data_read_delay: load(&self.stalls),
                max_rate: self.behaviour.max_rate.map(|m| {
                    let mut refused = Vec::new();
                    if m.action == RateAction::Connect {
                        refused.push((SinkCmd::Connect.name(), load(&self.rate_limited_connect)));
                    }
                    refused.push((SinkCmd::Mail.name(), load(&self.rate_limited_mail)));
                    CmdMap(refused)
                }),
                greylist: self
                    .behaviour
                    .greylist
                    .map(|_| CmdMap(vec![(SinkCmd::Rcpt.name(), load(&self.greylisted))])),
                fault: self
                    .behaviour
                    .faults
                    .rules()
                    .iter()
                    .zip(&self.faults)
                    .map(|(rule, count)| FaultCounter {
                        command: rule.cmd.name(),
                        reply: rule.reply.text(),
                        probability: rule.probability,
                        count: load(count),
                    })
                    .collect(),
            },
            tls: TlsCounters {
                full: load(&self.tls_full),
                resumed: load(&self.tls_resumed),
                failed: load(&self.tls_failed),
            },
            auth: AuthCounters {
                ok: load(&self.auth_ok),
                failed: load(&self.auth_failed),
            },
            dump: DumpCounters {
                written: load(&self.dumps_written),
                failed: load(&self.dumps_failed),
            },
        }
    }
}

/// A session in progress (see [`Stats::session_opened`]).
#[derive(Debug)]
pub struct SessionGuard<'a> {
    stats: &'a Stats,
    finished: bool,
}

impl SessionGuard<'_> {
    /// The session ended by itself (not cut by the process stopping).
    pub fn finish(&mut self) {
        self.finished = true;
    }
}

impl Drop for SessionGuard<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.stats.cut.fetch_add(1, Ordering::Relaxed);
        }
        self.stats.ended.fetch_add(1, Ordering::Relaxed);
    }
}

/// One session's counts: plain integers in the session, added to
/// [`Stats`] by [`flush`](Self::flush) at the end of each message and of
/// the session, so counting a command costs no shared write.
#[derive(Debug, Clone, Default)]
pub struct SessionCounts {
    commands: [u32; SLOTS],
    replies: [[u32; CLASSES]; SLOTS],
    accepted: u32,
    content_bytes: u64,
    aborts: u32,
    stalls: u32,
    dumps_written: u32,
    dumps_failed: u32,
    /// Made at the first count of `--max-rate`, `--greylist` or
    /// `--fault`, so a session without them carries one pointer.
    behaviour: Option<Box<BehaviourCounts>>,
}

/// A session's counts of `--max-rate`, `--greylist` and `--fault`.
#[derive(Debug, Clone, Default)]
struct BehaviourCounts {
    rate_limited_connect: u32,
    rate_limited_mail: u32,
    greylisted: u32,
    faults: [u32; MAX_RULES],
}

impl SessionCounts {
    /// A command the policy handled (also `connect` and `.`).
    pub fn command(&mut self, cmd: SinkCmd) {
        let n = &mut self.commands[cmd.index()];
        *n = n.saturating_add(1);
    }

    /// An unknown or disabled command, or an empty line, and its 500.
    pub fn unknown(&mut self) {
        self.commands[UNKNOWN] = self.commands[UNKNOWN].saturating_add(1);
        self.reply(UNKNOWN, b'5');
    }

    /// One reply in row `slot` whose code starts with `first`.
    pub fn reply(&mut self, slot: usize, first: u8) {
        if let Some(class) = class_of(first) {
            let n = &mut self.replies[slot][class];
            *n = n.saturating_add(1);
        }
    }

    /// Every reply in `out` (whole reply lines, as queued for the client)
    /// in row `slot`: a multiline reply counts once, at its last line.
    pub fn replies(&mut self, slot: usize, mut out: &[u8]) {
        while let Some(&first) = out.first() {
            let end = memchr::memchr(b'\n', out).map_or(out.len(), |i| i + 1);
            if out.get(3) != Some(&b'-') {
                self.reply(slot, first);
            }
            out = &out[end..];
        }
    }

    /// A message's end of data was answered 2xx.
    pub fn accepted(&mut self) {
        self.accepted = self.accepted.saturating_add(1);
    }

    /// Message content bytes received.
    pub fn content(&mut self, bytes: u64) {
        self.content_bytes = self.content_bytes.saturating_add(bytes);
    }

    /// `-A` acted.
    pub fn abort(&mut self) {
        self.aborts = self.aborts.saturating_add(1);
    }

    /// `-H` acted.
    pub fn stall(&mut self) {
        self.stalls = self.stalls.saturating_add(1);
    }

    /// A dump record was committed.
    pub fn dump_written(&mut self) {
        self.dumps_written = self.dumps_written.saturating_add(1);
    }

    /// A dump record could not be written (opened, written or committed).
    pub fn dump_failed(&mut self) {
        self.dumps_failed = self.dumps_failed.saturating_add(1);
    }

    /// `--max-rate` refused a connection (`connect`) or a MAIL.
    pub fn rate_limited(&mut self, cmd: SinkCmd) {
        let b = self.behaviour.get_or_insert_default();
        let n = if cmd == SinkCmd::Connect {
            &mut b.rate_limited_connect
        } else {
            &mut b.rate_limited_mail
        };
        *n = n.saturating_add(1);
    }

    /// `--greylist` deferred a RCPT.
    pub fn greylisted(&mut self) {
        let b = self.behaviour.get_or_insert_default();
        b.greylisted = b.greylisted.saturating_add(1);
    }

    /// `--fault` rule `rule` (its index among the rules) replaced a reply.
    pub fn fault(&mut self, rule: usize) {
        let b = self.behaviour.get_or_insert_default();
        if let Some(n) = b.faults.get_mut(rule) {
            *n = n.saturating_add(1);
        }
    }

    /// Adds everything to `stats` and starts again from zero. Only the
    /// counters that moved are written.
    pub fn flush(&mut self, stats: &Stats) {
        let take32 = |n: &mut u32| u64::from(std::mem::take(n));
        for (mine, shared) in self.commands.iter_mut().zip(&stats.commands) {
            add(shared, take32(mine));
        }
        for (mine, shared) in self.replies.iter_mut().zip(&stats.replies) {
            for (m, s) in mine.iter_mut().zip(shared) {
                add(s, take32(m));
            }
        }
        add(&stats.accepted, take32(&mut self.accepted));
        add(
            &stats.content_bytes,
            std::mem::take(&mut self.content_bytes),
        );
        add(&stats.aborts, take32(&mut self.aborts));
        add(&stats.stalls, take32(&mut self.stalls));
        add(&stats.dumps_written, take32(&mut self.dumps_written));
        add(&stats.dumps_failed, take32(&mut self.dumps_failed));
        if let Some(b) = &mut self.behaviour {
            add(
                &stats.rate_limited_connect,
                take32(&mut b.rate_limited_connect),
            );
            add(&stats.rate_limited_mail, take32(&mut b.rate_limited_mail));
            add(&stats.greylisted, take32(&mut b.greylisted));
            for (mine, shared) in b.faults.iter_mut().zip(&stats.faults) {
                add(shared, take32(mine));
            }
        }
    }
}

/// Rows keyed by command name, serialized as a JSON object in
/// [`SinkCmd::ALL`] order (then `unknown`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CmdMap<T>(pub Vec<(&'static str, T)>);

impl<T> CmdMap<T> {
    /// The row of a command name.
    pub fn get(&self, name: &str) -> Option<&T> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

impl<T: Serialize> Serialize for CmdMap<T> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (k, v) in &self.0 {
            map.serialize_entry(k, v)?;
        }
        map.end()
    }
}

/// Everything counted, as `--stats-json` writes it under `"counters"`
/// (docs/sink-stats.schema.json describes each field).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Counters {
    /// Sessions.
    pub sessions: SessionCounters,
    /// Messages.
    pub messages: MessageCounters,
    /// Commands handled, by name.
    pub commands: CmdMap<u64>,
    /// Replies, by command and class.
    pub replies: CmdMap<Classes>,
    /// What the policy options did.
    pub rules: RuleCounters,
    /// TLS handshakes.
    pub tls: TlsCounters,
    /// AUTH outcomes.
    pub auth: AuthCounters,
    /// Dump records.
    pub dump: DumpCounters,
}

/// Sessions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct SessionCounters {
    /// Connections accepted.
    pub accepted: u64,
    /// Sessions running now.
    pub open: u64,
    /// Sessions ended, for whatever reason (cut ones included).
    pub closed: u64,
    /// Sessions cut because the process stopped (`-M`, `-n`, a signal).
    pub cut: u64,
    /// QUIT commands answered.
    pub quit: u64,
}

/// Messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct MessageCounters {
    /// Messages whose end arrived (`-c`'s `mesg=`, what `-M` counts).
    pub received: u64,
    /// Messages whose end of data was answered 2xx.
    pub accepted: u64,
    /// Content bytes received (DATA as sent, dot-stuffing included, up to
    /// the final `.` line; BDAT chunks that were accepted).
    pub content_bytes: u64,
}

/// Replies of one command, by class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct Classes {
    /// 2xx.
    #[serde(rename = "2xx")]
    pub c2xx: u64,
    /// 3xx.
    #[serde(rename = "3xx")]
    pub c3xx: u64,
    /// 4xx.
    #[serde(rename = "4xx")]
    pub c4xx: u64,
    /// 5xx.
    #[serde(rename = "5xx")]
    pub c5xx: u64,
}

/// What each policy option did, per command it names.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct RuleCounters {
    /// `-f`: hard rejections.
    #[serde(rename = "hard-reject")]
    pub hard_reject: CmdMap<u64>,
    /// `-r`: soft rejections.
    #[serde(rename = "soft-reject")]
    pub soft_reject: CmdMap<u64>,
    /// `-q`: disconnections without a reply.
    pub drop: CmdMap<u64>,
    /// `-Q`: 421 and disconnection.
    pub close: CmdMap<u64>,
    /// `-W`/`-w`: replies held back.
    pub delay: CmdMap<DelayCounters>,
    /// `-A`: messages aborted with 550.
    #[serde(rename = "abort-delay")]
    pub abort_delay: u64,
    /// `-H`: pauses before reading message content.
    #[serde(rename = "data-read-delay")]
    pub data_read_delay: u64,
    /// `--max-rate`: refusals, under `mail` (and `connect` with
    /// `--max-rate-action connect`); absent without the option.
    #[serde(rename = "max-rate", skip_serializing_if = "Option::is_none")]
    pub max_rate: Option<CmdMap<u64>>,
    /// `--greylist`: RCPT commands deferred, under `rcpt`; absent without
    /// the option.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub greylist: Option<CmdMap<u64>>,
    /// `--fault`: one entry per rule, in command-line order; absent
    /// without the option.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fault: Vec<FaultCounter>,
}

/// What one `--fault` rule did.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FaultCounter {
    /// The command it names.
    pub command: &'static str,
    /// Its reply, or `disconnect`.
    pub reply: String,
    /// Its probability.
    pub probability: f64,
    /// Replies it replaced.
    pub count: u64,
}

/// Delays of one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct DelayCounters {
    /// Replies held back.
    pub count: u64,
    /// Seconds they were held in all.
    pub seconds: u64,
}

/// TLS handshakes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct TlsCounters {
    /// Full handshakes.
    pub full: u64,
    /// Resumed sessions.
    pub resumed: u64,
    /// Failed handshakes (timeouts included).
    pub failed: u64,
}

/// AUTH outcomes (`--auth-users`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct AuthCounters {
    /// Answered 235.
    pub ok: u64,
    /// Answered 535.
    pub failed: u64,
}

/// Dump records (`-d`, `-D`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct DumpCounters {
    /// Records committed.
    pub written: u64,
    /// Records that could not be written (the end of data gets 451).
    pub failed: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[derive(Clone, Default)]
    struct Shared(Arc<Mutex<Vec<u8>>>);

    impl Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("lock").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn counter_lines_are_postfix_format() {
        let out = Shared::default();
        let s = Stats::with_output(true, 0, 2, Box::new(out.clone()));
        assert_eq!(s.message(), MessageOutcome::Continue);
        s.quit();
        assert!(!s.session_closed());
        assert!(s.session_closed());
        let text = out.0.lock().expect("lock").clone();
        assert_eq!(
            text,
            b"sess=0 quit=0 mesg=1\rsess=1 quit=1 mesg=1\rsess=2 quit=1 mesg=1\r"
        );
    }

    #[test]
    fn tls_and_auth_fields_follow_in_the_same_style() {
        let out = Shared::default();
        let s = Stats::with_output(true, 0, 0, Box::new(out.clone())).with_fields(true, true);
        s.tls_handshake(Some(false));
        s.tls_handshake(Some(false));
        s.tls_handshake(Some(true));
        s.tls_handshake(None);
        s.auth(true);
        s.auth(false);
        s.auth(false);
        assert!(!s.session_closed());
        let out2 = Shared::default();
        let s = Stats::with_output(true, 0, 0, Box::new(out2.clone())).with_fields(false, true);
        s.tls_handshake(None);
        s.auth(true);
        assert!(!s.session_closed());
        assert_eq!(
            out.0.lock().expect("lock").clone(),
            b"sess=1 quit=0 mesg=0 tlsfull=2 tlsresumed=1 tlsfail=1 authok=1 authfail=2\r"
        );
        assert_eq!(
            out2.0.lock().expect("lock").clone(),
            b"sess=1 quit=0 mesg=0 authok=1 authfail=0\r"
        );
    }

    #[test]
    fn session_counts_flush_what_moved_and_start_again() {
        let s = Stats::with_output(false, 0, 0, Box::new(std::io::sink()));
        let mut c = SessionCounts::default();
        c.command(SinkCmd::Ehlo);
        // One multiline reply, then two replies in one buffer.
        c.replies(SinkCmd::Ehlo.index(), b"250-a\r\n250-b\r\n250 \r\n");
        c.replies(SinkCmd::Dot.index(), b"250 2.2.0 Ok\r\n451 4.3.0 Error\r\n");
        c.unknown();
        c.content(10);
        c.accepted();
        c.flush(&s);
        // Flushing again adds nothing.
        c.flush(&s);
        let snap = s.snapshot(&Policy::default());
        assert_eq!(snap.commands.get("ehlo"), Some(&1));
        assert_eq!(snap.commands.get("unknown"), Some(&1));
        let classes = |n: &str| {
            let c = snap.replies.get(n).expect(n);
            [c.c2xx, c.c3xx, c.c4xx, c.c5xx]
        };
        assert_eq!(classes("ehlo"), [1, 0, 0, 0]);
        assert_eq!(classes("."), [1, 0, 1, 0]);
        assert_eq!(classes("unknown"), [0, 0, 0, 1]);
        assert_eq!(
            (snap.messages.accepted, snap.messages.content_bytes),
            (1, 10)
        );
        // The per-session table stays small (it lives in every session).
        assert!(std::mem::size_of::<SessionCounts>() <= 400);
    }

    #[test]
    fn sessions_open_until_dropped_and_cut_unless_finished() {
        let s = Stats::with_output(false, 0, 0, Box::new(std::io::sink()));
        let mut a = s.session_opened();
        let b = s.session_opened();
        let snap = s.snapshot(&Policy::default()).sessions;
        assert_eq!((snap.accepted, snap.open, snap.closed), (2, 2, 0));
        a.finish();
        drop(a);
        drop(b);
        let snap = s.snapshot(&Policy::default()).sessions;
        assert_eq!(
            (snap.accepted, snap.open, snap.closed, snap.cut),
            (2, 0, 2, 1)
        );
    }

    #[test]
    fn counted_without_c_but_never_printed() {
        let out = Shared::default();
        let s = Stats::with_output(false, 0, 0, Box::new(out.clone()));
        s.quit();
        s.tls_handshake(Some(true));
        s.auth(false);
        assert_eq!(s.message(), MessageOutcome::Continue);
        assert!(!s.session_closed());
        assert!(out.0.lock().expect("lock").is_empty());
        let snap = s.snapshot(&Policy::default());
        assert_eq!((snap.sessions.quit, snap.messages.received), (1, 1));
        assert_eq!((snap.tls.resumed, snap.auth.failed), (1, 1));
    }

    #[test]
    fn limits_work_without_c() {
        let out = Shared::default();
        let s = Stats::with_output(false, 2, 1, Box::new(out.clone()));
        assert_eq!(s.message(), MessageOutcome::Continue);
        assert_eq!(s.message(), MessageOutcome::Exit);
        assert!(s.session_closed());
        assert!(out.0.lock().expect("lock").is_empty());
    }

    #[test]
    fn messages_past_the_limit_are_refused_and_not_counted() {
        let out = Shared::default();
        let s = Stats::with_output(true, 2, 0, Box::new(out.clone()));
        assert_eq!(s.message(), MessageOutcome::Continue);
        assert_eq!(s.message(), MessageOutcome::Exit);
        assert_eq!(s.message(), MessageOutcome::PastLimit);
        assert_eq!(s.message(), MessageOutcome::PastLimit);
        assert_eq!(s.snapshot(&Policy::default()).messages.received, 2);
        // -c prints a line for the counted messages only.
        assert_eq!(
            out.0.lock().expect("lock").clone(),
            b"sess=0 quit=0 mesg=1\rsess=0 quit=0 mesg=2\r"
        );
    }

    #[test]
    fn threads_racing_for_the_last_messages_get_exactly_the_limit() {
        let s = Arc::new(Stats::with_output(
            false,
            1000,
            0,
            Box::new(std::io::sink()),
        ));
        let workers: Vec<_> = (0..8)
            .map(|_| {
                let s = s.clone();
                std::thread::spawn(move || {
                    let mut got = [0u64; 3];
                    for _ in 0..500 {
                        match s.message() {
                            MessageOutcome::Continue => got[0] += 1,
                            MessageOutcome::Exit => got[1] += 1,
                            MessageOutcome::PastLimit => got[2] += 1,
                        }
                    }
                    got
                })
            })
            .collect();
        let mut total = [0u64; 3];
        for w in workers {
            for (t, g) in total.iter_mut().zip(w.join().expect("worker")) {
                *t += g;
            }
        }
        // 999 places, one last message that ends the process, the rest
        // refused: never more, whatever the interleaving.
        assert_eq!(total, [999, 1, 3000]);
        assert_eq!(s.snapshot(&Policy::default()).messages.received, 1000);
    }
}
