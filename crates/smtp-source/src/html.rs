//! `--html FILE`: the report as one self-contained page (no script, no
//! font or style from elsewhere; the charts are inline SVG), for people to
//! look at. It shows what the JSON report holds: the run's header, its
//! counters, exit status and thresholds; throughput, errors and latency
//! over time (the report's `series`); a percentile-distribution chart of
//! every phase, all together and each alone (raw and corrected side by
//! side under `--rate`); and the table of `--summary`.

use std::fmt::Write as _;

use crate::{
    chart::{self, Curve, Line},
    exit,
    latency::{Latencies, Metric, PhaseLatency, LATE_AFTER},
    report::Report,
};

/// The page of `report`.
pub fn render(report: &Report) -> String {
    let mut page = String::with_capacity(256 * 1024);
    let title = format!("smtp-source report: {}", report.info.target);
    let _ = write!(
        page,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<h1>{}</h1>\n",
        escape(&title),
        escape(&title)
    );
    header(&mut page, report);
    thresholds(&mut page, report);
    over_time(&mut page, report);
    distributions(&mut page, report);
    table(&mut page, report);
    page.push_str("</body>\n</html>\n");
    page
}

const STYLE: &str = "\
body{font-family:system-ui,sans-serif;margin:1.5em auto;max-width:1340px;padding:0 1em;color:#222}\
h1{font-size:1.5em}h2{font-size:1.2em;margin-top:1.6em;border-bottom:1px solid #ccc}\
table{border-collapse:collapse;margin:.5em 0}\
td,th{padding:.2em .7em;border-bottom:1px solid #e4e4e4;text-align:left}\
table.figures td.n,table.figures th.n{text-align:right;font-variant-numeric:tabular-nums}\
code{font-family:ui-monospace,monospace;font-size:.92em;word-break:break-all}\
.pass{color:#0a6e31}.fail{color:#b00020;font-weight:bold}\
.charts{display:flex;flex-wrap:wrap;gap:12px}\
figure{margin:0 0 12px 0}figcaption{font-size:.9em;color:#555}\
svg{display:block;max-width:100%;height:auto;border:1px solid #eee}";

/// The run: what, where, when, how much, how it ended.
fn header(page: &mut String, r: &Report) {
    let s = &r.stats;
    let info = &r.info;
    let mut rows: Vec<(&str, String)> = vec![
        (
            "command line",
            format!("<code>{}</code>", escape(&info.command_line.join(" "))),
        ),
        ("target", escape(&info.target)),
        ("run id", escape(&info.run_id)),
    ];
    if let Some(seg) = info.segment {
        rows.push(("segment", format!("{} of {}", seg.index, seg.count)));
    }
    if let Some(m) = &info.merged {
        let missing = if m.missing.is_empty() {
            String::new()
        } else {
            format!(
                " (missing: {})",
                m.missing
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        rows.push((
            "merged",
            format!(
                "{} reports of {} segments{missing}",
                m.segments.len(),
                m.count
            ),
        ));
    }
    rows.extend([
        ("started", smtp_net::rfc3339(r.started)),
        ("ended", smtp_net::rfc3339(r.ended)),
        (
            "duration",
            format!("{:.3} s", r.elapsed.as_secs_f64())
                + &info
                    .warmup
                    .map(|w| format!(" (after a {:.3} s warm-up)", w.as_secs_f64()))
                    .unwrap_or_default(),
        ),
        ("sessions", r.sessions.to_string()),
        (
            "connections",
            format!("{} ({} connects failed)", s.connections, s.connect_failures),
        ),
        ("transactions", s.transactions.to_string()),
        ("messages sent", s.messages_sent.to_string()),
        ("accepted", s.accepted.to_string()),
        (
            "failed transactions",
            s.failed_by_phase.iter().sum::<u64>().to_string(),
        ),
        (
            "rate",
            format!(
                "{:.1} msg/s sent, {:.1} msg/s accepted",
                r.msgs_per_sec(),
                r.accepted_per_sec()
            ) + &info
                .rate_target
                .map(|t| format!(" (asked for {t} msg/s)"))
                .unwrap_or_default(),
        ),
        ("bytes sent", s.bytes_sent.to_string()),
    ]);
    if let Some(late) = &r.latency.lateness {
        rows.push((
            "schedule",
            format!(
                "{} starts, {} late by more than {} ms",
                late.len(),
                r.latency.late_starts,
                LATE_AFTER / 1000
            ),
        ));
    }
    let code = r.exit_code();
    let class = if code == exit::OK { "pass" } else { "fail" };
    rows.push((
        "exit status",
        format!(
            "<span class=\"{class}\">{code}: {}</span>",
            escape(exit::meaning(code))
        ),
    ));
    if let Some(f) = &r.fatal {
        rows.push((
            "error",
            format!(
                "<span class=\"fail\">in {}: {}</span>",
                f.phase.unwrap_or("setup"),
                escape(&f.message)
            ),
        ));
    }
    page.push_str("<section id=\"run\">\n<table class=\"facts\">\n");
    for (name, value) in rows {
        let _ = writeln!(page, "<tr><th>{name}</th><td>{value}</td></tr>");
    }
    page.push_str("</table>\n</section>\n");
}

/// `--threshold`: each with how it fared.
fn thresholds(page: &mut String, r: &Report) {
    if r.thresholds.is_empty() {
        return;
    }
    page.push_str("<section id=\"thresholds\">\n<h2>Thresholds</h2>\n<table>\n");
    for t in &r.thresholds {
        let (class, word) = if t.passed {
            ("pass", "passed")
        } else {
            ("fail", "FAILED")
        };
        let _ = writeln!(
            page,
            "<tr><td><code>{}</code></td><td class=\"{class}\">{word}</td><td>{}</td></tr>",
            escape(&t.threshold),
            escape(&t.detail)
        );
    }
    page.push_str("</table>\n</section>\n");
}

/// Transactions and latency per point of the series.
fn over_time(page: &mut String, r: &Report) {
    let series = &r.latency.series;
    if series.points().next().is_none() {
        return;
    }
    let per = series.interval() as f64;
    let unit = if series.interval() == 1 {
        "per second".to_owned()
    } else {
        format!("per second, in {}-second points", series.interval())
    };
    let line = |label, value: &dyn Fn(&crate::series::Point) -> Option<f64>| Line {
        label,
        points: series
            .points()
            .filter_map(|(t, p)| value(p).map(|v| (t as f64, v)))
            .collect(),
    };
    let mut counts = vec![
        line("accepted", &|p| Some(p.accepted as f64 / per)),
        line("refused", &|p| Some(p.rejected as f64 / per)),
    ];
    if r.stats.connect_failures > 0 {
        counts.push(line("connects failed", &|p| {
            Some(p.connect_failures as f64 / per)
        }));
    }
    let q = |q: f64| {
        move |p: &crate::series::Point| {
            (!p.latency.is_empty()).then(|| p.latency.value_at_quantile(q) as f64 / 1000.0)
        }
    };
    let latency = [line("p50", &q(0.5)), line("p99", &q(0.99))];
    let from = if r.latency.lateness.is_some() {
        " (from each message's intended start)"
    } else {
        ""
    };
    let _ = write!(
        page,
        "<section id=\"over-time\">\n<h2>Throughput and errors over time</h2>\n<div class=\"charts\">\n{}{}</div>\n</section>\n",
        figure(
            "over-time-transactions",
            &chart::over_time(
                &format!("transactions {unit}"),
                "transactions/s",
                &counts,
                false
            ),
            "Transactions the server accepted and refused",
        ),
        figure(
            "over-time-latency",
            &chart::over_time(
                &format!("transaction latency {unit}"),
                "ms (log scale)",
                &latency,
                true
            ),
            &format!("Transaction latency: MAIL to the last reply{from}"),
        ),
    );
}

/// The percentile distributions: all phases on one chart, then each.
fn distributions(page: &mut String, r: &Report) {
    let raw = &r.latency.raw;
    let corrected = r.latency.lateness.is_some().then_some(&r.latency.corrected);
    let measured: Vec<Metric> = Metric::ALL
        .into_iter()
        .filter(|m| !raw.get(*m).is_empty())
        .collect();
    if measured.is_empty() {
        return;
    }
    page.push_str("<section id=\"percentiles\">\n<h2>Latency percentile distribution</h2>\n");
    let pair = |id: &str, title: &str, metrics: &[Metric], log_y: bool| -> String {
        let mut out = String::new();
        for (lat, which) in [(Some(raw), "raw"), (corrected, "corrected")] {
            let Some(lat) = lat else { continue };
            let list: Vec<Curve<'_>> = metrics
                .iter()
                .map(|m| Curve {
                    label: m.name(),
                    histogram: lat.get(*m),
                })
                .collect();
            let heading = match (corrected.is_some(), which) {
                (false, _) => title.to_owned(),
                (true, "raw") => format!("{title}: from the actual send"),
                (true, _) => format!("{title}: from the intended start"),
            };
            out += &chart::percentiles(&heading, &list, log_y);
        }
        format!("<figure id=\"{id}\"><div class=\"charts\">{out}</div></figure>\n")
    };
    page.push_str(&pair("percentiles-all", "all phases", &measured, true));
    page.push_str("<div class=\"charts\">\n");
    for m in &measured {
        page.push_str(&pair(
            &format!("percentiles-{}", m.name()),
            m.name(),
            &[*m],
            false,
        ));
    }
    page.push_str("</div>\n</section>\n");
}

/// The `--summary` table: one row per phase measured (ms).
fn table(page: &mut String, r: &Report) {
    page.push_str("<section id=\"summary\">\n<h2>Latency by phase (ms)</h2>\n");
    let _ = writeln!(page, "<p>{}</p>", escape(&r.summary()));
    let mut section = |title: &str, lat: &Latencies| {
        let _ = writeln!(
            page,
            "<table class=\"figures\"><tr><th>{title}</th>{}</tr>",
            ["count", "min", "mean", "p50", "p90", "p99", "p99.9", "max"]
                .iter()
                .map(|h| format!("<th class=\"n\">{h}</th>"))
                .collect::<String>()
        );
        for m in Metric::ALL {
            let h = lat.get(m);
            if h.is_empty() {
                continue;
            }
            let p = PhaseLatency::of(h);
            let _ = write!(
                page,
                "<tr><td>{}</td><td class=\"n\">{}</td>",
                m.name(),
                p.count
            );
            for v in [
                p.min_ms, p.mean_ms, p.p50_ms, p.p90_ms, p.p99_ms, p.p999_ms, p.max_ms,
            ] {
                let _ = write!(page, "<td class=\"n\">{v:.3}</td>");
            }
            page.push_str("</tr>\n");
        }
        page.push_str("</table>\n");
    };
    section("phase", &r.latency.raw);
    if r.latency.lateness.is_some() {
        section("corrected", &r.latency.corrected);
    }
    page.push_str("</section>\n");
}

/// One chart in a figure with a caption.
fn figure(id: &str, svg: &str, caption: &str) -> String {
    format!(
        "<figure id=\"{id}\">{svg}<figcaption>{}</figcaption></figure>\n",
        escape(caption)
    )
}

/// `text` safe in HTML text and attribute values.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape("<a href=\"x\">&'"),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
