//! Scraping smtp-sink's `--metrics` endpoint in tests: a minimal HTTP/1.1
//! client on std's TcpStream, and a strict parser of the OpenMetrics text
//! it serves.

use std::{
    collections::BTreeMap,
    io::{Read, Write},
    net::TcpStream,
    time::Duration,
};

/// How long a response may take.
const DEADLINE: Duration = Duration::from_secs(30);

/// An HTTP response: status code, headers (names lowercased), body.
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `GET path` on 127.0.0.1:port, one request per connection.
pub fn get(port: u16, path: &str) -> Response {
    let mut conn = TcpStream::connect(("127.0.0.1", port)).expect("connect to --metrics");
    conn.set_read_timeout(Some(DEADLINE)).unwrap();
    write!(
        conn,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).expect("read the response");
    let raw = String::from_utf8(raw).expect("a UTF-8 response");
    let (head, body) = raw
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no end of headers: {raw:?}"));
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .and_then(|s| s.get(..3))
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("status line {status_line:?}"));
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(':').unwrap_or_else(|| panic!("header {l:?}"));
            (n.to_ascii_lowercase(), v.trim().to_owned())
        })
        .collect::<Vec<_>>();
    let response = Response {
        status,
        headers,
        body: body.to_owned(),
    };
    if let Some(length) = response.header("content-length") {
        assert_eq!(
            length.parse::<usize>().ok(),
            Some(response.body.len()),
            "{raw}"
        );
    }
    response
}

/// The samples of an exposition, `name{labels}` → value.
pub type Samples = BTreeMap<String, f64>;

/// Whether `s` is a metric or label name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
fn is_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `k="v",k="v"` (no escapes: none of our values need them).
fn check_labels(labels: &str, line: &str) {
    for pair in labels.split(',') {
        let (key, value) = pair
            .split_once('=')
            .unwrap_or_else(|| panic!("label {pair:?} in {line:?}"));
        assert!(is_name(key), "label name {key:?} in {line:?}");
        assert!(
            value.len() >= 2 && value.starts_with('"') && value.ends_with('"'),
            "label value {value:?} in {line:?}"
        );
        assert!(
            !value[1..value.len() - 1].contains(['"', '\\', '\n']),
            "{line:?}"
        );
    }
}

/// Parses OpenMetrics text: `# HELP`, `# TYPE` and `# UNIT` lines, sample
/// lines `name{labels} value` each in the family of the `# TYPE` before
/// it, and `# EOF` as the last line. Panics on anything else.
pub fn parse_exposition(text: &str) -> Samples {
    let body = text
        .strip_suffix("# EOF\n")
        .unwrap_or_else(|| panic!("no final # EOF line:\n{text}"));
    let mut samples = Samples::new();
    let mut family: Option<(String, String)> = None;
    for line in body.lines() {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut words = rest.splitn(3, ' ');
            let (kind, name, what) = (words.next(), words.next(), words.next());
            let name = name.unwrap_or_else(|| panic!("{line:?}"));
            assert!(is_name(name), "{line:?}");
            match kind {
                Some("TYPE") => {
                    let t = what.unwrap_or_default();
                    assert!(
                        [
                            "counter",
                            "gauge",
                            "histogram",
                            "info",
                            "stateset",
                            "unknown"
                        ]
                        .contains(&t),
                        "{line:?}"
                    );
                    family = Some((name.to_owned(), t.to_owned()));
                }
                Some("HELP") | Some("UNIT") => {
                    assert!(what.is_some_and(|w| !w.is_empty()), "{line:?}");
                }
                _ => panic!("unknown comment line {line:?}"),
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("sample line {line:?}"));
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("value of {line:?}"));
        let name = match series.split_once('{') {
            Some((name, labels)) => {
                let labels = labels
                    .strip_suffix('}')
                    .unwrap_or_else(|| panic!("labels of {line:?}"));
                check_labels(labels, line);
                name
            }
            None => series,
        };
        assert!(is_name(name), "{line:?}");
        let (family, kind) = family
            .as_ref()
            .unwrap_or_else(|| panic!("{line:?} before any # TYPE"));
        let suffix = name
            .strip_prefix(family.as_str())
            .unwrap_or_else(|| panic!("{line:?} outside its family {family}"));
        let allowed: &[&str] = match kind.as_str() {
            "counter" => &["_total", "_created"],
            "histogram" => &["_sum", "_count", "_bucket", "_created"],
            _ => &[""],
        };
        assert!(allowed.contains(&suffix), "{line:?} in a {kind}");
        if kind == "counter" {
            assert!(value >= 0.0, "{line:?}");
        }
        assert!(
            samples.insert(series.to_owned(), value).is_none(),
            "{series} twice"
        );
    }
    samples
}

/// A scrape of /metrics, checked and parsed.
pub fn scrape(port: u16) -> Samples {
    let r = get(port, "/metrics");
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    parse_exposition(&r.body)
}

/// The value of one series, which must be there.
pub fn value(samples: &Samples, series: &str) -> u64 {
    let v = samples
        .get(series)
        .unwrap_or_else(|| panic!("no {series} in {samples:?}"));
    assert!(v.fract() == 0.0 && *v >= 0.0, "{series} = {v}");
    *v as u64
}
