//! `--fault CMD:REPLY:PROBABILITY` and `--seed N`: replies replaced at
//! random, reproducibly with a seed. Pure: the grammar, and which rule a
//! draw picks.
//!
//! The grammar: CMD is a command name as `-f`/`-r` take it (`connect`,
//! `.`, `rcpt`, ...); REPLY is `disconnect` (close without a reply) or a
//! 4xx/5xx reply, a code of three digits then a space and text (or the code
//! alone), one line; PROBABILITY is a fraction from 0 to 1 written in
//! decimal (`0.05`, `1`, `.5`; no percentages, no exponents). The REPLY
//! may hold colons: CMD ends at the first colon, PROBABILITY starts after
//! the last.
//!
//! Each command that has rules costs one draw per time it comes, whatever
//! the outcome: its rules share the interval [0, 1) in command-line
//! order, each taking a slice as wide as its probability, so their
//! probabilities may add up to 1 at most. Commands without rules draw
//! nothing, so a session's sequence of draws depends only on its own
//! commands.

use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::SeedableRng;
use thiserror::Error;

use crate::policy::SinkCmd;

/// The most `--fault` rules (they have fixed-size counters).
pub const MAX_RULES: usize = 16;

/// Why a `--fault` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FaultError {
    /// Not `CMD:REPLY:PROBABILITY`.
    #[error("bad fault: {0} (expected COMMAND:REPLY:PROBABILITY)")]
    Syntax(String),
    /// CMD is not a command the sink knows (with its options).
    #[error("unknown command: {0}")]
    UnknownCommand(String),
    /// REPLY is neither `disconnect` nor a one-line 4xx/5xx reply.
    #[error("bad fault reply: {0} (expected disconnect, or a 4xx or 5xx code and text)")]
    Reply(String),
    /// PROBABILITY is not a decimal fraction from 0 to 1.
    #[error("bad fault probability: {0} (expected a number from 0 to 1)")]
    Probability(String),
    /// More than [`MAX_RULES`] rules.
    #[error("too many --fault rules (at most {MAX_RULES})")]
    TooMany,
    /// The rules of one command add up to more than 1.
    #[error("--fault probabilities for {0} add up to more than 1")]
    OverOne(SinkCmd),
}

/// What a fault answers instead of the normal reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FaultReply {
    /// Close the connection without a reply.
    Disconnect,
    /// This reply line (CRLF included), with no side effects; a 421
    /// closes the connection after it, as 421 means (RFC 5321 §3.8).
    Reply(Bytes),
}

impl FaultReply {
    /// Parses REPLY.
    fn parse(text: &str) -> Result<FaultReply, FaultError> {
        if text.eq_ignore_ascii_case("disconnect") {
            return Ok(FaultReply::Disconnect);
        }
        let b = text.as_bytes();
        let code_ok = b.len() >= 3
            && matches!(b[0], b'4' | b'5')
            && b[1..3].iter().all(u8::is_ascii_digit)
            && (b.len() == 3 || b[3] == b' ');
        // One line: no CR, LF or other control character.
        if !code_ok || b.iter().any(u8::is_ascii_control) {
            return Err(FaultError::Reply(text.to_owned()));
        }
        Ok(FaultReply::Reply(Bytes::from(format!("{text}\r\n"))))
    }

    /// Whether the connection closes after this fault.
    pub fn closes(&self) -> bool {
        match self {
            FaultReply::Disconnect => true,
            FaultReply::Reply(r) => r.starts_with(b"421"),
        }
    }

    /// As `--stats-json` and the documentation write it.
    pub fn text(&self) -> String {
        match self {
            FaultReply::Disconnect => "disconnect".to_owned(),
            FaultReply::Reply(r) => String::from_utf8_lossy(r.trim_ascii_end()).into_owned(),
        }
    }
}

/// One `--fault` rule.
#[derive(Debug, Clone, PartialEq)]
pub struct FaultRule {
    /// The command whose reply it replaces.
    pub cmd: SinkCmd,
    /// What it answers.
    pub reply: FaultReply,
    /// As given, 0 to 1.
    pub probability: f64,
    /// Its slice of the 32-bit draws: probability · 2^32, rounded.
    width: u64,
}

impl FaultRule {
    /// Parses `CMD:REPLY:PROBABILITY`; `lookup` knows the command names.
    ///
    /// # Errors
    /// A [`FaultError`] saying which part is wrong.
    pub fn parse(
        text: &str,
        lookup: impl Fn(&str) -> Option<SinkCmd>,
    ) -> Result<FaultRule, FaultError> {
        let syntax = || FaultError::Syntax(text.to_owned());
        let (name, rest) = text.split_once(':').ok_or_else(syntax)?;
        let (reply, probability) = rest.rsplit_once(':').ok_or_else(syntax)?;
        let cmd = lookup(name).ok_or_else(|| FaultError::UnknownCommand(name.to_owned()))?;
        let reply = FaultReply::parse(reply)?;
        let probability = parse_probability(probability)?;
        Ok(FaultRule {
            cmd,
            reply,
            probability,
            width: (probability * 4_294_967_296.0).round() as u64,
        })
    }
}

/// A decimal fraction from 0 to 1: digits and at most one point.
fn parse_probability(text: &str) -> Result<f64, FaultError> {
    let bad = || FaultError::Probability(text.to_owned());
    let digits = text.bytes().filter(u8::is_ascii_digit).count();
    let points = text.bytes().filter(|b| *b == b'.').count();
    if digits == 0 || points > 1 || digits + points != text.len() {
        return Err(bad());
    }
    let p: f64 = text.parse().map_err(|_| bad())?;
    if (0.0..=1.0).contains(&p) {
        Ok(p)
    } else {
        Err(bad())
    }
}

/// Every `--fault` rule.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Faults {
    rules: Vec<FaultRule>,
}

impl Faults {
    /// Checks the rules together: at most [`MAX_RULES`], and no command's
    /// probabilities adding up to more than 1.
    ///
    /// # Errors
    /// [`FaultError::TooMany`] or [`FaultError::OverOne`].
    pub fn new(rules: Vec<FaultRule>) -> Result<Faults, FaultError> {
        if rules.len() > MAX_RULES {
            return Err(FaultError::TooMany);
        }
        for cmd in SinkCmd::ALL {
            let total: u64 = rules.iter().filter(|r| r.cmd == cmd).map(|r| r.width).sum();
            if total > 1 << 32 {
                return Err(FaultError::OverOne(cmd));
            }
        }
        Ok(Faults { rules })
    }

    /// The rules, in command-line order (their indexes are the counters').
    pub fn rules(&self) -> &[FaultRule] {
        &self.rules
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Which rule, if any, replaces the reply to `cmd`. `draw` gives a
    /// uniform 32-bit number and is called once when `cmd` has rules,
    /// never otherwise.
    pub fn pick(&self, cmd: SinkCmd, draw: &mut dyn FnMut() -> u32) -> Option<usize> {
        if !self.rules.iter().any(|r| r.cmd == cmd) {
            return None;
        }
        let x = u64::from(draw());
        let mut end = 0u64;
        for (i, rule) in self.rules.iter().enumerate() {
            if rule.cmd != cmd {
                continue;
            }
            end += rule.width;
            if x < end {
                return Some(i);
            }
        }
        None
    }
}

/// The random numbers of the session accepted `session`-th (from 0): from
/// `seed` when `--seed` is given, so the same seed, the same build and
/// the same commands in that session give the same faults; from the
/// system's entropy otherwise.
pub fn session_rng(seed: Option<u64>, session: u64) -> SmallRng {
    match seed {
        Some(seed) => SmallRng::seed_from_u64(splitmix64(
            seed ^ splitmix64(session.wrapping_add(0x9e37_79b9_7f4a_7c15)),
        )),
        None => SmallRng::from_rng(&mut rand::rng()),
    }
}

/// SplitMix64's finalizer: neighbouring session numbers (or seeds) give
/// unrelated streams.
fn splitmix64(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::RngCore;

    fn lookup(name: &str) -> Option<SinkCmd> {
        SinkCmd::lookup(name.as_bytes())
    }

    fn rule(text: &str) -> Result<FaultRule, FaultError> {
        FaultRule::parse(text, lookup)
    }

    #[test]
    fn grammar() {
        let r = rule("rcpt:451 4.3.0 Try again: later:0.25").expect("valid");
        assert_eq!(r.cmd, SinkCmd::Rcpt);
        assert_eq!(
            r.reply,
            FaultReply::Reply(Bytes::from_static(b"451 4.3.0 Try again: later\r\n"))
        );
        assert_eq!((r.probability, r.width), (0.25, 1 << 30));
        let r = rule(".:disconnect:1").expect("valid");
        assert_eq!(
            (r.cmd, &r.reply, r.width),
            (SinkCmd::Dot, &FaultReply::Disconnect, 1 << 32)
        );
        assert!(r.reply.closes());
        assert!(rule("MAIL:421 4.3.2 Bye:.5").expect("valid").reply.closes());
        assert!(!rule("mail:554:0").expect("valid").reply.closes());
        assert_eq!(rule("mail:554:0").expect("valid").reply.text(), "554");

        for (text, err) in [
            ("rcpt", FaultError::Syntax("rcpt".into())),
            ("rcpt:0.5", FaultError::Syntax("rcpt:0.5".into())),
            ("expn:450 x:0.5", FaultError::UnknownCommand("expn".into())),
            (":450 x:0.5", FaultError::UnknownCommand(String::new())),
            ("rcpt:250 ok:0.5", FaultError::Reply("250 ok".into())),
            ("rcpt:45 x:0.5", FaultError::Reply("45 x".into())),
            ("rcpt:4500 x:0.5", FaultError::Reply("4500 x".into())),
            (
                "rcpt:450\r\n250 x:0.5",
                FaultError::Reply("450\r\n250 x".into()),
            ),
            ("rcpt::0.5", FaultError::Reply(String::new())),
            ("rcpt:450 x:5%", FaultError::Probability("5%".into())),
            ("rcpt:450 x:1.5", FaultError::Probability("1.5".into())),
            ("rcpt:450 x:-0", FaultError::Probability("-0".into())),
            ("rcpt:450 x:1e-3", FaultError::Probability("1e-3".into())),
            ("rcpt:450 x:nan", FaultError::Probability("nan".into())),
            ("rcpt:450 x:.", FaultError::Probability(".".into())),
            ("rcpt:450 x:0..1", FaultError::Probability("0..1".into())),
            ("rcpt:450 x:", FaultError::Probability(String::new())),
        ] {
            assert_eq!(rule(text), Err(err), "{text:?}");
        }
    }

    #[test]
    fn rules_of_a_command_add_up_to_one_at_most() {
        let rules = |texts: &[&str]| Faults::new(texts.iter().map(|t| rule(t).expect(t)).collect());
        assert!(rules(&["rcpt:450:0.5", "rcpt:550:0.5", "mail:450:1"]).is_ok());
        assert_eq!(
            rules(&["rcpt:450:0.5", "mail:450:1", "rcpt:550:0.51"]),
            Err(FaultError::OverOne(SinkCmd::Rcpt))
        );
        let many = vec!["noop:450:0"; MAX_RULES + 1];
        assert_eq!(rules(&many), Err(FaultError::TooMany));
        assert!(rules(&many[1..]).is_ok());
    }

    #[test]
    fn a_draw_picks_the_rule_whose_slice_it_falls_in() {
        let faults = Faults::new(
            ["rcpt:450 a:0.25", "mail:451 m:1", "rcpt:disconnect:0.5"]
                .iter()
                .map(|t| rule(t).expect(t))
                .collect(),
        )
        .expect("valid");
        let quarter = 1u32 << 30;
        for (cmd, draw, want) in [
            (SinkCmd::Rcpt, 0, Some(0)),
            (SinkCmd::Rcpt, quarter - 1, Some(0)),
            (SinkCmd::Rcpt, quarter, Some(2)),
            (SinkCmd::Rcpt, 3 * quarter - 1, Some(2)),
            (SinkCmd::Rcpt, 3 * quarter, None),
            (SinkCmd::Rcpt, u32::MAX, None),
            (SinkCmd::Mail, u32::MAX, Some(1)),
        ] {
            let mut once = Some(draw);
            let mut d = || once.take().expect("one draw");
            assert_eq!(faults.pick(cmd, &mut d), want, "{cmd} {draw}");
        }
        // A command without rules draws nothing.
        let mut never = || -> u32 { panic!("no draw expected") };
        assert_eq!(faults.pick(SinkCmd::Data, &mut never), None);
    }

    #[test]
    fn a_seed_gives_each_session_its_own_reproducible_stream() {
        let take = |seed, session| {
            let mut rng = session_rng(Some(seed), session);
            (0..8).map(|_| rng.next_u32()).collect::<Vec<_>>()
        };
        assert_eq!(take(42, 0), take(42, 0));
        assert_eq!(take(42, 7), take(42, 7));
        assert_ne!(take(42, 0), take(42, 1));
        assert_ne!(take(42, 0), take(43, 0));
        // With probability 0.3, about 30% of a seeded session's draws hit.
        let faults = Faults::new(vec![rule("rcpt:450 x:0.3").expect("valid")]).expect("valid");
        let mut rng = session_rng(Some(1), 0);
        let hits = (0..10_000)
            .filter(|_| faults.pick(SinkCmd::Rcpt, &mut || rng.next_u32()).is_some())
            .count();
        assert!((2700..3300).contains(&hits), "{hits}");
    }
}
