//! smtp-source's `--html` report opened in a real browser: our source into
//! our sink, which holds every RCPT for a second (`-W rcpt:1`); headless
//! Chromium loads the page with no network (its own network namespace
//! when root, and no proxy or DNS in any case), takes a screenshot, and a
//! harness page measures what it laid out: every chart an SVG of real
//! size, the rcpt curve drawn at about one second on its chart's axis, no
//! resource fetched and nothing logged to the console.
//!
//! Needs Debian's `chromium`; outside CI a missing browser skips the test.

mod support;

use std::{
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use support::{bin, free_port, have, is_root, start_sink, wait_exit};

/// Where Debian's package puts the browser.
const CHROMIUM: &str = "chromium";

/// The harness: the report in a frame (readable across frames thanks to
/// --allow-file-access-from-files), and what the browser laid out of it
/// as JSON in `#result`, which --dump-dom prints.
const HARNESS: &str = r#"<!DOCTYPE html>
<html><body><pre id="result">not loaded</pre>
<script>
function centre(el) { const r = el.getBoundingClientRect(); return (r.top + r.bottom) / 2; }
function curveOf(svg) {
  // The y axis labels are the right-aligned numbers; the curve is the
  // 2-pixel line (axes and ticks are 1 pixel).
  const ticks = [...svg.querySelectorAll('text[text-anchor="end"]')]
    .map(t => ({ v: parseFloat(t.textContent), y: centre(t) }))
    .filter(t => isFinite(t.v));
  const lines = [...svg.querySelectorAll('polyline')]
    .filter(p => p.getAttribute('stroke-width') === '2');
  if (ticks.length < 2 || lines.length === 0) return { ticks: ticks.length, lines: lines.length };
  const a = ticks[0], b = ticks[ticks.length - 1];
  const ms = y => a.v + (y - a.y) * (b.v - a.v) / (b.y - a.y);
  const r = lines[0].getBoundingClientRect();
  return { ticks: ticks.length, lines: lines.length, top_ms: ms(r.top), bottom_ms: ms(r.bottom), width: r.width };
}
// Called by the frame's onload attribute: defined before the frame
// exists, so however the parser and the load interleave it runs once the
// report has loaded.
function measure() {
  const frame = document.getElementById('report');
  const doc = frame.contentDocument;
  // Not the frame's first, empty document.
  if (!doc || !doc.location.href.endsWith('report.html')) return;
  const out = {
    title: doc.title,
    svgs: [...doc.querySelectorAll('svg')].map(s => {
      const r = s.getBoundingClientRect();
      return { id: s.closest('figure') ? s.closest('figure').id : '', width: r.width, height: r.height };
    }),
    resources: frame.contentWindow.performance.getEntriesByType('resource').map(e => e.name),
    rcpt: curveOf(doc.querySelector('#percentiles-rcpt svg')),
    tables: doc.querySelectorAll('table').length,
  };
  document.getElementById('result').textContent = JSON.stringify(out);
}
</script>
<iframe id="report" src="report.html" width="1360" height="3000" onload="measure()"></iframe>
</body></html>
"#;

/// Chromium headless with `args` on `url`: stdout and stderr.
fn chromium(dir: &Path, args: &[&str], url: &str) -> (String, String) {
    // Root: a network namespace of its own with nothing in it (not even
    // loopback up). Either way no proxy and no name resolves.
    let mut cmd = if is_root() && have("unshare") {
        let mut c = Command::new("unshare");
        c.args(["--net", CHROMIUM]);
        c
    } else {
        Command::new(CHROMIUM)
    };
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--proxy-server=127.0.0.1:9",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--enable-logging=stderr",
        "--v=0",
    ])
    .arg(format!("--user-data-dir={}", dir.join("profile").display()))
    .args(args)
    .arg(url)
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("start chromium");
    let (status, out, err) = wait_exit(&mut child, Duration::from_secs(300));
    assert!(status.success(), "chromium failed: {status}\n{err}");
    (out, err)
}

#[test]
fn html_report_renders_in_chromium() {
    if !have(CHROMIUM) {
        return;
    }
    let port = free_port();
    let _sink = start_sink(&["-W", "rcpt:1"], port);
    let dir = tempfile::tempdir().unwrap();
    let report = dir.path().join("report.html");
    let out = Command::new(bin("smtp-source"))
        .args(["-s", "4", "-m", "16", "--html"])
        .arg(&report)
        .arg(format!("127.0.0.1:{port}"))
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    // With --html alone the summary is not printed (as with --json).
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = std::fs::read_to_string(&report).unwrap();
    // Self-contained: nothing to load, nothing to run.
    for banned in ["<script", "<link", "<img", "@import", "url(", "src="] {
        assert!(!page.contains(banned), "the report holds {banned}");
    }
    std::fs::write(dir.path().join("harness.html"), HARNESS).unwrap();

    let shot = dir.path().join("report.png");
    let url = |name: &str| format!("file://{}", dir.path().join(name).display());
    let (_, err) = chromium(
        dir.path(),
        &[
            &format!("--screenshot={}", shot.display()),
            "--window-size=1360,2400",
        ],
        &url("report.html"),
    );
    assert!(!err.contains("CONSOLE"), "the browser logged:\n{err}");
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    // A blank page of that size compresses to a few KiB; charts do not.
    assert!(png.len() > 50_000, "screenshot of {} bytes", png.len());

    let (dom, err) = chromium(
        dir.path(),
        &[
            "--allow-file-access-from-files",
            "--virtual-time-budget=20000",
            "--dump-dom",
        ],
        &url("harness.html"),
    );
    assert!(!err.contains("CONSOLE"), "the browser logged:\n{err}");
    let start = dom.find("<pre id=\"result\">").expect("the harness ran") + 17;
    let end = start + dom[start..].find("</pre>").unwrap();
    let text = dom[start..end].replace("&amp;", "&");
    let laid: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));

    assert_eq!(
        laid["title"].as_str().unwrap(),
        format!("smtp-source report: 127.0.0.1:{port}")
    );
    assert_eq!(
        laid["resources"],
        serde_json::json!([]),
        "fetched something"
    );
    let svgs = laid["svgs"].as_array().unwrap();
    let ids: Vec<&str> = svgs.iter().map(|s| s["id"].as_str().unwrap()).collect();
    for id in [
        "over-time-transactions",
        "over-time-latency",
        "percentiles-all",
        "percentiles-rcpt",
        "percentiles-transaction",
    ] {
        assert!(ids.contains(&id), "no chart {id} in {ids:?}");
    }
    for s in svgs {
        let (w, h) = (s["width"].as_f64().unwrap(), s["height"].as_f64().unwrap());
        assert!(w > 300.0 && h > 150.0, "chart {s} laid out at {w}x{h}");
    }
    // The rcpt curve: drawn, and where the axis says 1 s (the sink's
    // delay; a loaded machine adds to it, never takes away).
    let rcpt = &laid["rcpt"];
    assert_eq!(rcpt["lines"], 1, "{rcpt}");
    assert!(rcpt["ticks"].as_u64().unwrap() >= 3, "{rcpt}");
    assert!(rcpt["width"].as_f64().unwrap() > 100.0, "{rcpt}");
    let (top, bottom) = (
        rcpt["top_ms"].as_f64().unwrap(),
        rcpt["bottom_ms"].as_f64().unwrap(),
    );
    assert!(
        (950.0..1600.0).contains(&bottom) && (950.0..1600.0).contains(&top),
        "rcpt curve drawn between {bottom} and {top} ms: {rcpt}"
    );
    assert!(laid["tables"].as_u64().unwrap() >= 2, "{laid}");
}
