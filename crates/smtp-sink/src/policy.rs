//! Which action a command gets: pure, table-driven, and tested with tables.
//!
//! Postfix keeps one table of the commands it knows (plus the pseudo
//! commands `connect`, the greeting, and `.`, the end of data) with flags
//! set from `-f -r -q -Q -s -W -w`. The priority between the flags is
//! Postfix's: `-q` (drop), then `-Q` (421), then `-f` (hard), then `-r`
//! (soft), then a delay, then the normal reply. `-s` logging happens first
//! and independently.

use std::fmt;

/// A command of Postfix's smtp-sink table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SinkCmd {
    /// The greeting (a pseudo-command).
    Connect,
    /// HELO.
    Helo,
    /// EHLO.
    Ehlo,
    /// LHLO.
    Lhlo,
    /// XCLIENT.
    Xclient,
    /// XFORWARD.
    Xforward,
    /// AUTH.
    Auth,
    /// MAIL.
    Mail,
    /// RCPT.
    Rcpt,
    /// DATA.
    Data,
    /// `.`: the end of data (also when sent as a command).
    Dot,
    /// RSET.
    Rset,
    /// NOOP.
    Noop,
    /// VRFY.
    Vrfy,
    /// QUIT.
    Quit,
    /// BDAT (RFC 3030). Not in Postfix's table: it exists only with
    /// `--chunking`, so that without it the sink knows exactly Postfix's
    /// commands.
    Bdat,
    /// STARTTLS (RFC 3207). Not in Postfix's table either: it exists only
    /// with `--starttls` or `--tls-on-connect`.
    Starttls,
}

impl SinkCmd {
    /// Every command: Postfix's table order, then our additions.
    pub const ALL: [SinkCmd; 17] = [
        SinkCmd::Connect,
        SinkCmd::Helo,
        SinkCmd::Ehlo,
        SinkCmd::Lhlo,
        SinkCmd::Xclient,
        SinkCmd::Xforward,
        SinkCmd::Auth,
        SinkCmd::Mail,
        SinkCmd::Rcpt,
        SinkCmd::Data,
        SinkCmd::Dot,
        SinkCmd::Rset,
        SinkCmd::Noop,
        SinkCmd::Vrfy,
        SinkCmd::Quit,
        SinkCmd::Bdat,
        SinkCmd::Starttls,
    ];

    /// The name used in command lists, lower case.
    pub fn name(self) -> &'static str {
        match self {
            SinkCmd::Connect => "connect",
            SinkCmd::Helo => "helo",
            SinkCmd::Ehlo => "ehlo",
            SinkCmd::Lhlo => "lhlo",
            SinkCmd::Xclient => "xclient",
            SinkCmd::Xforward => "xforward",
            SinkCmd::Auth => "auth",
            SinkCmd::Mail => "mail",
            SinkCmd::Rcpt => "rcpt",
            SinkCmd::Data => "data",
            SinkCmd::Dot => ".",
            SinkCmd::Rset => "rset",
            SinkCmd::Noop => "noop",
            SinkCmd::Vrfy => "vrfy",
            SinkCmd::Quit => "quit",
            SinkCmd::Bdat => "bdat",
            SinkCmd::Starttls => "starttls",
        }
    }

    /// Looks a name up, ignoring ASCII case, as Postfix's strcasecmp does.
    pub fn lookup(name: &[u8]) -> Option<SinkCmd> {
        Self::ALL
            .into_iter()
            .find(|c| c.name().as_bytes().eq_ignore_ascii_case(name))
    }

    /// The command's position in [`SinkCmd::ALL`] (and in every table
    /// indexed by command).
    pub fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for SinkCmd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A reply delay from `-W cmd:delay[:odds]` or `-w`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Delay {
    /// Seconds (> 0), or 0 for no delay.
    pub seconds: u32,
    /// 0: always `seconds`; 1..=99: a geometric multiple of `seconds`.
    pub odds: u8,
}

/// The flags of one command.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CmdRule {
    /// The command is recognised (otherwise "500 5.5.1 Error: unknown command").
    pub enabled: bool,
    /// `-s`: log to syslog.
    pub syslog: bool,
    /// `-q`: disconnect without a reply.
    pub drop: bool,
    /// `-Q`: reply 421 and disconnect.
    pub close: bool,
    /// `-f`: the hard error reply.
    pub hard: bool,
    /// `-r`: the soft error reply.
    pub soft: bool,
    /// `-W`/`-w`.
    pub delay: Delay,
}

/// What to do with a recognised command (after any syslog line).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `-q`: close the connection, no reply.
    Drop,
    /// `-Q`: "421 4.0.0 Server closing connection", then close.
    Close421,
    /// `-f`: the hard error reply; no side effects.
    Hard,
    /// `-r`: the soft error reply; no side effects.
    Soft,
    /// Reply normally after this many seconds, reading nothing meanwhile.
    Delay(u32),
    /// Reply normally now.
    Normal,
}

/// The per-command rules of a sink.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    rules: [CmdRule; SinkCmd::ALL.len()],
}

impl Default for Policy {
    /// Postfix's initial table: HELO, EHLO, LHLO and the greeting are
    /// disabled until the protocol is chosen; everything else is enabled,
    /// except BDAT and STARTTLS, which only their options enable.
    fn default() -> Self {
        let mut rules = [CmdRule::default(); SinkCmd::ALL.len()];
        for cmd in SinkCmd::ALL {
            rules[cmd.index()].enabled = !matches!(
                cmd,
                SinkCmd::Connect
                    | SinkCmd::Helo
                    | SinkCmd::Ehlo
                    | SinkCmd::Lhlo
                    | SinkCmd::Bdat
                    | SinkCmd::Starttls
            );
        }
        Policy { rules }
    }
}

impl Policy {
    /// The rule of one command.
    pub fn rule(&self, cmd: SinkCmd) -> &CmdRule {
        &self.rules[cmd.index()]
    }

    /// The rule of one command, for building the policy.
    pub fn rule_mut(&mut self, cmd: SinkCmd) -> &mut CmdRule {
        &mut self.rules[cmd.index()]
    }

    /// A command that the client sent, if it is recognised and enabled.
    /// `connect` cannot be sent: it is never enabled.
    pub fn enabled(&self, name: &[u8]) -> Option<SinkCmd> {
        SinkCmd::lookup(name).filter(|c| self.rule(*c).enabled)
    }

    /// Decides the action for `cmd`. `draw` returns a uniform integer in
    /// 0..100 and is called only for a delay with odds.
    pub fn decide(&self, cmd: SinkCmd, draw: &mut dyn FnMut() -> u32) -> Action {
        let rule = self.rule(cmd);
        if rule.drop {
            Action::Drop
        } else if rule.close {
            Action::Close421
        } else if rule.hard {
            Action::Hard
        } else if rule.soft {
            Action::Soft
        } else if rule.delay.seconds > 0 {
            Action::Delay(delay_seconds(rule.delay, draw))
        } else {
            Action::Normal
        }
    }
}

/// Postfix's delay: fixed when odds is 0; otherwise count the draws below
/// `odds` before the first one that is not, and wait that many times the
/// delay (a geometric distribution with mean delay·odds/(100−odds)).
pub fn delay_seconds(delay: Delay, draw: &mut dyn FnMut() -> u32) -> u32 {
    if delay.odds == 0 {
        return delay.seconds;
    }
    let mut total: u32 = 0;
    while draw() < u32::from(delay.odds) {
        total = total.saturating_add(delay.seconds);
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn never() -> impl FnMut() -> u32 {
        || panic!("no draw expected")
    }

    #[test]
    fn lookup_is_case_insensitive_and_knows_the_pseudo_commands() {
        assert_eq!(SinkCmd::lookup(b"MaIl"), Some(SinkCmd::Mail));
        assert_eq!(SinkCmd::lookup(b"."), Some(SinkCmd::Dot));
        assert_eq!(SinkCmd::lookup(b"CONNECT"), Some(SinkCmd::Connect));
        assert_eq!(SinkCmd::lookup(b"BdAt"), Some(SinkCmd::Bdat));
        assert_eq!(SinkCmd::lookup(b"StartTLS"), Some(SinkCmd::Starttls));
        assert_eq!(SinkCmd::lookup(b"expn"), None);
        assert_eq!(SinkCmd::lookup(b""), None);
    }

    #[test]
    fn all_lists_each_command_at_its_table_index() {
        for (i, cmd) in SinkCmd::ALL.into_iter().enumerate() {
            assert_eq!(cmd.index(), i, "{cmd}");
            assert_eq!(SinkCmd::lookup(cmd.name().as_bytes()), Some(cmd));
        }
    }

    #[test]
    fn default_table_disables_the_greeting_and_hello_commands() {
        let p = Policy::default();
        for (name, expected) in [
            (&b"connect"[..], None),
            (b"helo", None),
            (b"ehlo", None),
            (b"lhlo", None),
            (b"mail", Some(SinkCmd::Mail)),
            (b".", Some(SinkCmd::Dot)),
            (b"quit", Some(SinkCmd::Quit)),
            (b"starttls", None),
            (b"bdat", None),
        ] {
            assert_eq!(p.enabled(name), expected, "{:?}", name);
        }
    }

    #[test]
    fn priority_is_drop_close_hard_soft_delay_normal() {
        // (drop, close, hard, soft, delay) -> action
        let table = [
            ((true, true, true, true, 5), Action::Drop),
            ((false, true, true, true, 5), Action::Close421),
            ((false, false, true, true, 5), Action::Hard),
            ((false, false, false, true, 5), Action::Soft),
            ((false, false, false, false, 5), Action::Delay(5)),
            ((false, false, false, false, 0), Action::Normal),
            ((true, false, false, false, 0), Action::Drop),
            ((false, false, true, false, 0), Action::Hard),
        ];
        for ((drop, close, hard, soft, secs), expected) in table {
            let mut p = Policy::default();
            *p.rule_mut(SinkCmd::Rcpt) = CmdRule {
                enabled: true,
                syslog: true,
                drop,
                close,
                hard,
                soft,
                delay: Delay {
                    seconds: secs,
                    odds: 0,
                },
            };
            assert_eq!(p.decide(SinkCmd::Rcpt, &mut never()), expected);
            assert_eq!(p.decide(SinkCmd::Mail, &mut never()), Action::Normal);
        }
    }

    #[test]
    fn odds_give_a_geometric_multiple_of_the_delay() {
        let d = Delay {
            seconds: 3,
            odds: 50,
        };
        // Draws below 50 add one delay each; the first draw >= 50 stops.
        for (draws, expected) in [
            (&[50u32][..], 0),
            (&[99][..], 0),
            (&[49, 50][..], 3),
            (&[0, 10, 49, 70][..], 9),
        ] {
            let mut it = draws.iter().copied();
            let mut draw = || it.next().expect("enough draws");
            assert_eq!(delay_seconds(d, &mut draw), expected, "{draws:?}");
        }
        let fixed = Delay {
            seconds: 4,
            odds: 0,
        };
        assert_eq!(delay_seconds(fixed, &mut never()), 4);
    }
}
