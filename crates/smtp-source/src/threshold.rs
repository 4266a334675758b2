//! `--threshold`: pass/fail conditions on a finished run.
//!
//! In the spirit of k6's thresholds: every `--threshold EXPR` is checked
//! once the run is over, and one that does not hold fails the run, so a
//! load test can gate CI. Pure code: parsing and evaluation only; the run's
//! numbers come in through [`Measured`]. Grammar and semantics: [`HELP`].

use std::{fmt, str::FromStr};

use ThresholdErrorKind as E;

/// The grammar and semantics in short, for `--help` and the docs.
pub const HELP: &str = "\
EXPR is METRIC OP VALUE (spaces allowed); the run fails if a threshold does not hold.
  METRIC  PHASE.STAT, a latency: rcpt.p99, session.p999, datasent.max, mail.mean
          PHASE: connect, connect_wait, banner, helo, starttls, auth, mail, rcpt,
          data, datasent, rset, quit, transaction, session
          STAT: min, max, mean or a percentile: p50 p90 p95 p99 are 50 90 95 99;
          digits after the first two are decimals (p999 = 99.9, p9999 = 99.99);
          p5 = 5, p100 = 100; or explicit: p99.9
        | a counter: accepted, failed, rejected, sent, transactions, connections,
          connect_failures, late_starts, rate (messages accepted per second)
  OP      <  <=  >  >=  ==  !=
  VALUE   latency: a number with us, µs, ms, s or m (minutes); bare = ms
          counter: a bare count, or N% of its denominator: transactions for
          accepted, failed, rejected and sent; connect attempts for connect_failures
          rate: a bare number, or with msg/s or /s
A phase with no samples, an unknown phase, or a percentage of nothing fails.
Both sides are rounded to 6 decimals before comparing.
Examples: 'rcpt.p99 < 50ms'  'failed < 1%'  'rate >= 1000'";

/// A latency statistic of one phase.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum LatencyStat {
    Min,
    Max,
    Mean,
    /// The q-th percentile, 0 < q <= 100.
    Percentile(f64),
}

impl fmt::Display for LatencyStat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LatencyStat::Min => f.write_str("min"),
            LatencyStat::Max => f.write_str("max"),
            LatencyStat::Mean => f.write_str("mean"),
            LatencyStat::Percentile(q) => write!(f, "p{q}"),
        }
    }
}

/// A run-wide number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    Accepted,
    Failed,
    Rejected,
    Sent,
    Transactions,
    Connections,
    ConnectFailures,
    /// Messages accepted per second of the run.
    Rate,
    LateStarts,
}

/// Every counter with its name, in the order of the grammar.
const COUNTERS: [(&str, Counter); 9] = [
    ("accepted", Counter::Accepted),
    ("failed", Counter::Failed),
    ("rejected", Counter::Rejected),
    ("sent", Counter::Sent),
    ("transactions", Counter::Transactions),
    ("connections", Counter::Connections),
    ("connect_failures", Counter::ConnectFailures),
    ("rate", Counter::Rate),
    ("late_starts", Counter::LateStarts),
];

impl Counter {
    /// The name in an expression.
    pub fn name(self) -> &'static str {
        COUNTERS
            .iter()
            .find(|(_, c)| *c == self)
            .map_or("", |(name, _)| name)
    }

    /// What `N%` of this counter is a percentage of, if anything.
    pub fn denominator(self) -> Option<&'static str> {
        match self {
            Counter::Accepted | Counter::Failed | Counter::Rejected | Counter::Sent => {
                Some("transactions")
            }
            Counter::ConnectFailures => Some("connect attempts"),
            _ => None,
        }
    }
}

/// What a threshold measures.
#[derive(Debug, Clone, PartialEq)]
enum Metric {
    /// A statistic of one phase's latencies, in milliseconds.
    Latency { phase: String, stat: LatencyStat },
    /// A counter as is (rate in messages per second).
    Count(Counter),
    /// A counter as a percentage of its [`Counter::denominator`].
    Percent(Counter),
}

impl fmt::Display for Metric {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Metric::Latency { phase, stat } => write!(f, "{phase}.{stat}"),
            Metric::Count(c) | Metric::Percent(c) => f.write_str(c.name()),
        }
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
    Ne,
}

impl Op {
    /// Two-character operators first, so that `<=` is not read as `<`.
    const TEXTS: [(&'static str, Op); 6] = [
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("==", Op::Eq),
        ("!=", Op::Ne),
        ("<", Op::Lt),
        (">", Op::Gt),
    ];

    /// The operator as written.
    fn as_str(self) -> &'static str {
        Op::TEXTS
            .iter()
            .find(|(_, op)| *op == self)
            .map_or("", |(s, _)| s)
    }

    /// `observed OP wanted`, both rounded to 6 decimals; NaN never holds.
    fn holds(self, observed: f64, wanted: f64) -> bool {
        let round = |x: f64| (x * 1e6).round() / 1e6;
        let (a, b) = (round(observed), round(wanted));
        !a.is_nan()
            && match self {
                Op::Lt => a < b,
                Op::Le => a <= b,
                Op::Gt => a > b,
                Op::Ge => a >= b,
                Op::Eq => a == b,
                Op::Ne => a != b,
            }
    }
}

/// Why an expression is not a threshold: `bad threshold "TEXT": KIND`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bad threshold \"{text}\": {kind}")]
pub struct ThresholdError {
    /// The expression, trimmed.
    pub text: String,
    /// What is wrong with it.
    pub kind: ThresholdErrorKind,
}

/// What is wrong with an expression.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ThresholdErrorKind {
    #[error("expected METRIC OP VALUE, e.g. rcpt.p99 < 50ms")]
    Empty,
    #[error("expected a metric (PHASE.STAT or a counter) before the operator")]
    MissingMetric,
    #[error("unknown counter \"{0}\" (accepted, failed, rejected, sent, transactions, connections, connect_failures, rate, late_starts, or PHASE.STAT)")]
    UnknownCounter(String),
    #[error("bad phase name \"{0}\" (lowercase letters and _)")]
    BadPhase(String),
    #[error("unknown statistic \"{0}\" (min, max, mean or a percentile such as p99, p999, p99.9)")]
    BadStat(String),
    #[error("percentile \"{0}\" is out of range (0 < q <= 100)")]
    PercentileRange(String),
    #[error("expected an operator (<, <=, >, >=, ==, !=) after \"{0}\"")]
    MissingOperator(String),
    #[error("expected a number after \"{0}\"")]
    MissingNumber(String),
    #[error("bad number \"{0}\"")]
    BadNumber(String),
    #[error(
        "unknown unit \"{0}\" (us, µs, ms, s, m for latencies; % for counters; msg/s for rate)"
    )]
    UnknownUnit(String),
    #[error("\"{unit}\" does not apply to {metric}: {hint}")]
    WrongUnit {
        unit: String,
        metric: String,
        hint: &'static str,
    },
    #[error("{0} has no denominator, so it cannot be a percentage")]
    NoDenominator(&'static str),
    #[error("unexpected \"{0}\" after the value")]
    Trailing(String),
}

/// The phase name is not one the run knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("unknown phase")]
pub struct UnknownPhase;

/// What the run offers; smtp-source's report implements it.
pub trait Measured {
    /// The statistic of a phase's latencies in milliseconds: `Ok(None)`
    /// when the phase is known but recorded nothing.
    ///
    /// # Errors
    /// [`UnknownPhase`] when `phase` names no phase.
    fn latency_ms(&self, phase: &str, stat: LatencyStat) -> Result<Option<f64>, UnknownPhase>;
    /// The counter's value ([`Counter::Rate`]: messages accepted per second).
    fn counter(&self, counter: Counter) -> f64;
}

/// The outcome of one threshold.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    pub passed: bool,
    /// The observed value in the threshold's unit (ms, count, %, msg/s);
    /// None when there was nothing to observe.
    pub observed: Option<f64>,
    /// E.g. `rcpt.p99 = 1003.5 ms, wanted < 50 ms`, `rcpt: no samples`.
    pub detail: String,
}

impl Verdict {
    fn fail(detail: String) -> Verdict {
        Verdict {
            passed: false,
            observed: None,
            detail,
        }
    }
}

/// A parsed `--threshold` expression.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    text: String,
    metric: Metric,
    op: Op,
    /// In ms for latencies, in % for percentages, else as the counter.
    value: f64,
}

impl Threshold {
    /// Parses `METRIC OP VALUE` (see [`HELP`]).
    ///
    /// # Errors
    /// What is wrong with the expression, naming the bad part.
    pub fn parse(text: &str) -> Result<Threshold, ThresholdError> {
        let text = text.trim().to_owned();
        match parse_parts(&text) {
            Ok((metric, op, value)) => Ok(Threshold {
                text,
                metric,
                op,
                value,
            }),
            Err(kind) => Err(ThresholdError { text, kind }),
        }
    }

    /// The expression as written, trimmed.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The phase a latency threshold names (`rcpt` in `rcpt.p99<50ms`), so
    /// that a caller can refuse an unknown one before the run.
    pub fn phase(&self) -> Option<&str> {
        match &self.metric {
            Metric::Latency { phase, .. } => Some(phase),
            _ => None,
        }
    }

    /// Evaluates the threshold against a finished run.
    pub fn check(&self, run: &dyn Measured) -> Verdict {
        let (observed, unit, of) = match &self.metric {
            Metric::Latency { phase, stat } => match run.latency_ms(phase, *stat) {
                Err(UnknownPhase) => return Verdict::fail(format!("unknown phase \"{phase}\"")),
                Ok(None) => return Verdict::fail(format!("{phase}: no samples")),
                Ok(Some(ms)) => (ms, " ms", String::new()),
            },
            Metric::Count(Counter::Rate) => (run.counter(Counter::Rate), " msg/s", String::new()),
            Metric::Count(c) => (run.counter(*c), "", String::new()),
            Metric::Percent(c) => {
                let part = run.counter(*c);
                let whole = match c {
                    Counter::ConnectFailures => run.counter(Counter::Connections) + part,
                    _ => run.counter(Counter::Transactions),
                };
                let of = c.denominator().unwrap_or_default();
                if whole <= 0.0 {
                    return Verdict::fail(format!("{}%: no {of}", c.name()));
                }
                let of = format!(" ({} of {} {of})", num(part), num(whole));
                (100.0 * part / whole, "%", of)
            }
        };
        let (metric, op, value) = (&self.metric, self.op.as_str(), num(self.value));
        let detail = format!(
            "{metric} = {}{unit}{of}, wanted {op} {value}{unit}",
            num(observed)
        );
        Verdict {
            passed: self.op.holds(observed, self.value),
            observed: Some(observed),
            detail,
        }
    }
}

impl FromStr for Threshold {
    type Err = ThresholdError;

    fn from_str(s: &str) -> Result<Threshold, ThresholdError> {
        Threshold::parse(s)
    }
}

impl fmt::Display for Threshold {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// At most 6 decimals, without trailing zeros.
fn num(x: f64) -> String {
    let s = format!("{x:.6}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

fn parse_parts(text: &str) -> Result<(Metric, Op, f64), E> {
    if text.is_empty() {
        return Err(E::Empty);
    }
    let end = text.find(|c: char| c.is_whitespace() || "<>=!".contains(c));
    let (name, rest) = text.split_at(end.unwrap_or(text.len()));
    if name.is_empty() {
        return Err(E::MissingMetric);
    }
    let metric = parse_metric(name)?;
    let rest = rest.trim_start();
    let Some(&(op_text, op)) = Op::TEXTS.iter().find(|(s, _)| rest.starts_with(s)) else {
        return Err(E::MissingOperator(name.to_owned()));
    };
    let rest = rest[op_text.len()..].trim_start();
    let end = rest.find(|c: char| !(c.is_ascii_digit() || c == '.'));
    let (number, rest) = rest.split_at(end.unwrap_or(rest.len()));
    if number.is_empty() {
        return Err(E::MissingNumber(op_text.to_owned()));
    }
    let number: f64 = number
        .parse()
        .map_err(|_| E::BadNumber(number.to_owned()))?;
    let rest = rest.trim_start();
    let (unit, trailing) = rest.split_at(rest.find(char::is_whitespace).unwrap_or(rest.len()));
    if !trailing.trim().is_empty() {
        return Err(E::Trailing(trailing.trim().to_owned()));
    }
    let (metric, value) = apply_unit(metric, name, number, unit)?;
    Ok((metric, op, value))
}

fn parse_metric(name: &str) -> Result<Metric, E> {
    let Some((phase, stat)) = name.split_once('.') else {
        let counter = COUNTERS.into_iter().find(|(n, _)| *n == name);
        let counter = counter.ok_or_else(|| E::UnknownCounter(name.to_owned()));
        return counter.map(|(_, c)| Metric::Count(c));
    };
    if phase.is_empty() || !phase.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        return Err(E::BadPhase(phase.to_owned()));
    }
    let stat = match stat {
        "min" => LatencyStat::Min,
        "max" => LatencyStat::Max,
        "mean" => LatencyStat::Mean,
        _ => LatencyStat::Percentile(parse_percentile(stat)?),
    };
    Ok(Metric::Latency {
        phase: phase.to_owned(),
        stat,
    })
}

/// `pQ`: with a dot Q is literal (p99.9); without, the digits after the
/// first two are decimals (p999 = 99.9, p50 = 50, p5 = 5), except p100.
fn parse_percentile(stat: &str) -> Result<f64, E> {
    let bad = || E::BadStat(stat.to_owned());
    let digits = stat.strip_prefix('p').ok_or_else(bad)?;
    let all_digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let q = match digits.split_once('.') {
        Some((int, frac)) if all_digits(int) && all_digits(frac) => digits.to_owned(),
        None if all_digits(digits) && (digits.len() <= 2 || digits == "100") => digits.to_owned(),
        None if all_digits(digits) => format!("{}.{}", &digits[..2], &digits[2..]),
        _ => return Err(bad()),
    };
    let q: f64 = q.parse().map_err(|_| bad())?;
    if q > 0.0 && q <= 100.0 {
        Ok(q)
    } else {
        Err(E::PercentileRange(stat.to_owned()))
    }
}

/// Checks the unit against the metric; converts durations to ms.
fn apply_unit(m: Metric, name: &str, n: f64, unit: &str) -> Result<(Metric, f64), E> {
    let wrong = |hint| E::WrongUnit {
        unit: unit.to_owned(),
        metric: name.to_owned(),
        hint,
    };
    let ms_per_unit = match unit {
        "us" | "µs" | "μs" => Some(0.001),
        "" | "ms" => Some(1.0),
        "s" => Some(1000.0),
        "m" => Some(60_000.0),
        "%" | "msg/s" | "/s" => None,
        _ => return Err(E::UnknownUnit(unit.to_owned())),
    };
    match (m, unit) {
        (m @ Metric::Latency { .. }, _) => match ms_per_unit {
            Some(k) => Ok((m, n * k)),
            None => Err(wrong("a latency takes us, µs, ms, s or m (bare: ms)")),
        },
        (Metric::Count(c), "%") => match c.denominator() {
            Some(_) => Ok((Metric::Percent(c), n)),
            None => Err(E::NoDenominator(c.name())),
        },
        (m @ Metric::Count(_), "") => Ok((m, n)),
        (m @ Metric::Count(Counter::Rate), "msg/s" | "/s") => Ok((m, n)),
        (Metric::Count(Counter::Rate), _) => Err(wrong(
            "rate is a bare number of messages per second, or with msg/s or /s",
        )),
        (Metric::Count(_) | Metric::Percent(_), _) => {
            Err(wrong("a count is a bare number, or N% of its denominator"))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{num, Counter, LatencyStat, Measured, Metric, Threshold, UnknownPhase, COUNTERS};

    /// rcpt: p99 50 ms, else 1003.5 ms; quit: no samples; 195 accepted,
    /// 5 failed of `.0` transactions; 97 connections + 3 failures.
    struct Fake(f64);

    impl Measured for Fake {
        fn latency_ms(&self, phase: &str, stat: LatencyStat) -> Result<Option<f64>, UnknownPhase> {
            match (phase, stat) {
                ("rcpt", LatencyStat::Percentile(q)) if (q - 99.0).abs() < 1e-9 => Ok(Some(50.0)),
                ("rcpt", _) => Ok(Some(1003.5)),
                ("quit", _) => Ok(None),
                _ => Err(UnknownPhase),
            }
        }

        fn counter(&self, counter: Counter) -> f64 {
            match counter {
                Counter::Transactions => self.0,
                Counter::Accepted => 195.0,
                Counter::Failed => 5.0,
                Counter::Connections => 97.0,
                Counter::ConnectFailures => 3.0,
                Counter::Rate => 1234.5,
                _ => 0.0,
            }
        }
    }

    fn parse(text: &str) -> Threshold {
        Threshold::parse(text).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Runs `check` on every "INPUT => WANT" of `cases`.
    fn table(cases: &[&str], check: impl Fn(&str) -> String) {
        for case in cases {
            let (input, want) = case.split_once(" => ").unwrap_or_else(|| panic!("{case}"));
            assert_eq!(check(input), want, "{input}");
        }
    }

    #[test]
    fn parses_every_form() {
        // The parsed form: metric, operator, value in ms, count or %.
        table(
            &[
                "rcpt.p99<5 => rcpt.p99 < 5",
                " rcpt.p99 <= 5us  => rcpt.p99 <= 0.005",
                "rcpt.p99>5µs => rcpt.p99 > 0.005",
                "rcpt.p99 >= 2.5ms => rcpt.p99 >= 2.5",
                "rcpt.p99 == 1.5 s => rcpt.p99 == 1500",
                "rcpt.p99 != 2m => rcpt.p99 != 120000",
                "session.min < 1 => session.min < 1",
                "session.max < 1 => session.max < 1",
                "mail.mean < 1 => mail.mean < 1",
                "connect_wait.p50 < 1 => connect_wait.p50 < 1",
                "data.p90 < 1 => data.p90 < 1",
                "data.p95 < 1 => data.p95 < 1",
                "session.p999 < 1 => session.p99.9 < 1",
                "session.p9999 < 1 => session.p99.99 < 1",
                "session.p99.9 < 1 => session.p99.9 < 1",
                "session.p5 < 1 => session.p5 < 1",
                "session.p05 < 1 => session.p5 < 1",
                "session.p001 < 1 => session.p0.1 < 1",
                "session.p100 < 1 => session.p100 < 1",
                "accepted >= 195 => accepted >= 195",
                "failed < 1.5% => failed < 1.5%",
                "rejected < 1 % => rejected < 1%",
                "sent >= 99% => sent >= 99%",
                "connect_failures <= 2% => connect_failures <= 2%",
                "rate>=100 => rate >= 100",
                "rate >= 100msg/s => rate >= 100",
                "rate >= 100 /s => rate >= 100",
            ],
            |text| {
                let t = parse(text);
                let percent = if matches!(t.metric, Metric::Percent(_)) {
                    "%"
                } else {
                    ""
                };
                format!("{} {} {}{percent}", t.metric, t.op.as_str(), num(t.value))
            },
        );
        for (_, c) in COUNTERS {
            assert_eq!(parse(&format!("{}==3", c.name())).metric, Metric::Count(c));
        }
        let t: Threshold = "  rcpt.p99 < 5ms \n"
            .parse()
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (t.text(), t.to_string().as_str()),
            ("rcpt.p99 < 5ms", "rcpt.p99 < 5ms")
        );
    }

    #[test]
    fn errors_name_the_bad_part() {
        table(&[
            "   => expected METRIC OP VALUE, e.g. rcpt.p99 < 50ms",
            "< 5 => expected a metric (PHASE.STAT or a counter) before the operator",
            "rcpt < 5 => unknown counter \"rcpt\" (accepted, failed, rejected, sent, transactions, \
                connections, connect_failures, rate, late_starts, or PHASE.STAT)",
            "RCPT.p99 < 5 => bad phase name \"RCPT\" (lowercase letters and _)",
            ".p99 < 5 => bad phase name \"\" (lowercase letters and _)",
            "rcpt.avg < 5 => unknown statistic \"avg\" (min, max, mean or a percentile such as \
                p99, p999, p99.9)",
            "rcpt.p < 5 => unknown statistic \"p\" (min, max, mean or a percentile such as p99, \
                p999, p99.9)",
            "rcpt.p99. < 5 => unknown statistic \"p99.\" (min, max, mean or a percentile such as \
                p99, p999, p99.9)",
            "rcpt.p0 < 5 => percentile \"p0\" is out of range (0 < q <= 100)",
            "rcpt.p100.5 < 5 => percentile \"p100.5\" is out of range (0 < q <= 100)",
            "rcpt.p99 5ms => expected an operator (<, <=, >, >=, ==, !=) after \"rcpt.p99\"",
            "rcpt.p99 = 5 => expected an operator (<, <=, >, >=, ==, !=) after \"rcpt.p99\"",
            "rcpt.p99<<5ms => expected a number after \"<\"",
            "rcpt.p99 <= -5 => expected a number after \"<=\"",
            "rcpt.p99 < 1.2.3ms => bad number \"1.2.3\"",
            "rcpt.p99 < 5xs => unknown unit \"xs\" (us, µs, ms, s, m for latencies; % for \
                counters; msg/s for rate)",
            "rcpt.p99 < 5% => \"%\" does not apply to rcpt.p99: a latency takes us, µs, ms, s or m \
                (bare: ms)",
            "rcpt.p99 < 5msg/s => \"msg/s\" does not apply to rcpt.p99: a latency takes us, µs, \
                ms, s or m (bare: ms)",
            "accepted > 5ms => \"ms\" does not apply to accepted: a count is a bare number, or N% \
                of its denominator",
            "sent > 5/s => \"/s\" does not apply to sent: a count is a bare number, or N% of its \
                denominator",
            "rate > 5s => \"s\" does not apply to rate: rate is a bare number of messages per \
                second, or with msg/s or /s",
            "transactions > 5% => transactions has no denominator, so it cannot be a percentage",
            "rate > 5% => rate has no denominator, so it cannot be a percentage",
            "rcpt.p99 < 5 ms and more => unexpected \"and more\" after the value",
        ], |text| {
            let err = Threshold::parse(text).err().unwrap_or_else(|| panic!("{text} parsed"));
            let prefix = format!("bad threshold \"{}\": ", text.trim());
            err.to_string().strip_prefix(&prefix).unwrap_or_else(|| panic!("{err}")).to_owned()
        });
    }

    #[test]
    fn checks() {
        table(&[
            "rcpt.max < 50ms => FAIL rcpt.max = 1003.5 ms, wanted < 50 ms",
            "rcpt.mean < 1.1s => pass rcpt.mean = 1003.5 ms, wanted < 1100 ms",
            "rcpt.p99 <= 50 => pass rcpt.p99 = 50 ms, wanted <= 50 ms",
            "rcpt.p99 < 50 => FAIL rcpt.p99 = 50 ms, wanted < 50 ms",
            "rcpt.p99 >= 0.05s => pass rcpt.p99 = 50 ms, wanted >= 50 ms",
            "rcpt.p99 > 50 => FAIL rcpt.p99 = 50 ms, wanted > 50 ms",
            "rcpt.p99 == 50000us => pass rcpt.p99 = 50 ms, wanted == 50 ms",
            "rcpt.p99 != 50.0000001 => FAIL rcpt.p99 = 50 ms, wanted != 50 ms",
            "quit.p99 < 5ms => FAIL quit: no samples",
            "rpct.p99 < 5ms => FAIL unknown phase \"rpct\"",
            "failed < 5% => pass failed = 2.5% (5 of 200 transactions), wanted < 5%",
            "accepted >= 99% => FAIL accepted = 97.5% (195 of 200 transactions), wanted >= 99%",
            "connect_failures == 3% => pass connect_failures = 3% (3 of 100 connect attempts), \
                wanted == 3%",
            "accepted >= 195 => pass accepted = 195, wanted >= 195",
            "late_starts == 0 => pass late_starts = 0, wanted == 0",
            "rate > 1000 msg/s => pass rate = 1234.5 msg/s, wanted > 1000 msg/s",
        ], |text| {
            let v = parse(text).check(&Fake(200.0));
            format!("{} {}", if v.passed { "pass" } else { "FAIL" }, v.detail)
        });
        assert_eq!(
            parse("rcpt.p99 < 60").check(&Fake(1.0)).observed,
            Some(50.0)
        );
        assert_eq!(parse("failed < 5%").check(&Fake(200.0)).observed, Some(2.5));
        assert_eq!(parse("quit.p99 < 5").check(&Fake(1.0)).observed, None);
        let v = parse("accepted >= 99%").check(&Fake(0.0));
        assert_eq!((v.passed, v.observed), (false, None));
        assert_eq!(v.detail, "accepted%: no transactions");
    }
}
