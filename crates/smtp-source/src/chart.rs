//! The HTML report's charts, drawn as SVG by plotters: latency percentile
//! distributions (HdrHistogram's plot: percentiles on a "nines" scale) and
//! lines over the run's time. Each function returns one `<svg>` element
//! to put inline in the page.

use hdrhistogram::Histogram;
use plotters::{
    coord::{ranged1d::ValueFormatter, Shift},
    prelude::*,
};

/// Width and height of one chart, in CSS pixels.
pub const SIZE: (u32, u32) = (640, 360);

/// The most nines the percentile axis shows: 99.999 %.
const NINES: f64 = 5.0;

/// Points per nine on a percentile curve.
const STEPS_PER_NINE: u32 = 40;

/// One curve of a percentile chart.
pub struct Curve<'a> {
    /// Its name in the legend.
    pub label: &'a str,
    /// Its samples (µs).
    pub histogram: &'a Histogram<u64>,
}

/// One line of a chart over time: (seconds, value) points.
pub struct Line<'a> {
    /// Its name in the legend.
    pub label: &'a str,
    /// The points, in time order.
    pub points: Vec<(f64, f64)>,
}

/// Colours for the curves, in order: Okabe and Ito's colour-blind-safe
/// set (less its yellow, faint on white) and five more dark ones, so the
/// twelve phases of a run differ.
const COLOURS: [RGBColor; 12] = [
    RGBColor(0, 114, 178),
    RGBColor(213, 94, 0),
    RGBColor(0, 158, 115),
    RGBColor(204, 121, 167),
    RGBColor(230, 159, 0),
    RGBColor(86, 180, 233),
    RGBColor(0, 0, 0),
    RGBColor(128, 128, 128),
    RGBColor(140, 81, 10),
    RGBColor(106, 61, 154),
    RGBColor(128, 128, 0),
    RGBColor(178, 24, 43),
];

/// Room for the legend, right of the plot, when there is one.
const LEGEND_WIDTH: u32 = 130;

fn colour(i: usize) -> RGBColor {
    COLOURS[i % COLOURS.len()]
}

/// Where percentile `q` (0 to 1) sits on the nines axis: 0 for 0 %, 1 for
/// 90 %, 2 for 99 %, ...
fn nines(q: f64) -> f64 {
    -(1.0 - q).max(1e-12).log10()
}

/// The axis label at `x` nines: `0%`, `90%`, `99%`, `99.9%`, ...
fn nines_label(x: f64) -> String {
    let n = x.round();
    if (x - n).abs() > 1e-6 || n < 0.0 {
        return String::new();
    }
    match n as u32 {
        0 => "0%".to_owned(),
        1 => "90%".to_owned(),
        k => format!(
            "99{}%",
            if k > 2 {
                format!(".{}", "9".repeat(k as usize - 2))
            } else {
                String::new()
            }
        ),
    }
}

/// The curve of `h` in milliseconds: its value at percentiles spread
/// evenly over the nines axis, up to 99.999 % (or, with fewer samples,
/// as far as they tell anything).
fn percentile_points(h: &Histogram<u64>) -> Vec<(f64, f64)> {
    // With n samples the last one is the 1 - 1/n percentile: beyond it
    // every value is the maximum.
    let top = nines(1.0 - 1.0 / h.len().max(1) as f64).clamp(1.0, NINES);
    let steps = (top * f64::from(STEPS_PER_NINE)).ceil() as u32;
    (0..=steps)
        .map(|i| {
            let x = (f64::from(i) / f64::from(STEPS_PER_NINE)).min(top);
            let q = 1.0 - 10f64.powf(-x);
            (x, h.value_at_quantile(q) as f64 / 1000.0)
        })
        .collect()
}

/// A percentile distribution chart of `curves` (latency in ms against
/// percentile); `log_y` for curves of very different scales.
pub fn percentiles(title: &str, curves: &[Curve<'_>], log_y: bool) -> String {
    let lines: Vec<Line<'_>> = curves
        .iter()
        .filter(|c| !c.histogram.is_empty())
        .map(|c| Line {
            label: c.label,
            points: percentile_points(c.histogram),
        })
        .collect();
    let x_top = lines
        .iter()
        .flat_map(|l| l.points.last())
        .map(|p| p.0)
        .fold(1.0, f64::max)
        .ceil();
    draw(
        &Frame {
            title,
            x_desc: "percentile",
            y_desc: if log_y {
                "latency (ms, log scale)"
            } else {
                "latency (ms)"
            },
            x_range: 0.0..x_top,
            x_labels: x_top as usize + 1,
            x_format: &|x| nines_label(*x),
            log_y,
        },
        &lines,
    )
}

/// A chart of `lines` over the run (seconds on x); `log_y` for latencies,
/// where one slow second would flatten the others on a linear axis.
pub fn over_time(title: &str, y_desc: &str, lines: &[Line<'_>], log_y: bool) -> String {
    let end = lines
        .iter()
        .flat_map(|l| l.points.last())
        .map(|p| p.0)
        .fold(1.0, f64::max);
    draw(
        &Frame {
            title,
            x_desc: "seconds into the run",
            y_desc,
            x_range: 0.0..end,
            x_labels: 10,
            x_format: &|x| format!("{x:.0}"),
            log_y,
        },
        lines,
    )
}

/// What a chart's axes are.
struct Frame<'a> {
    title: &'a str,
    x_desc: &'a str,
    y_desc: &'a str,
    x_range: std::ops::Range<f64>,
    x_labels: usize,
    x_format: &'a dyn Fn(&f64) -> String,
    log_y: bool,
}

/// Draws `lines` in `frame` as an SVG document.
fn draw(frame: &Frame<'_>, lines: &[Line<'_>]) -> String {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, SIZE).into_drawing_area();
        // Drawing into a string cannot fail; an error here would be a bug
        // in the ranges, and an empty chart is better than no report.
        let _ = plot(&root, frame, lines);
        let _ = root.present();
    }
    svg
}

fn plot(
    root: &DrawingArea<SVGBackend<'_>, Shift>,
    frame: &Frame<'_>,
    lines: &[Line<'_>],
) -> Result<(), Box<dyn std::error::Error>> {
    root.fill(&WHITE)?;
    // The legend gets its own column: inside the plot it would hide
    // curves.
    let root = if lines.len() > 1 {
        let (plot_area, legend_area) = root.split_horizontally(SIZE.0 - LEGEND_WIDTH);
        legend(&legend_area, lines)?;
        plot_area
    } else {
        root.clone()
    };
    let root = &root;
    let values = || lines.iter().flat_map(|l| l.points.iter().map(|p| p.1));
    let max = values().fold(0.0, f64::max);
    let mut chart = ChartBuilder::on(root);
    chart
        .caption(frame.title, ("sans-serif", 20))
        .margin(12)
        .margin_right(28)
        .x_label_area_size(40)
        .y_label_area_size(64);
    if frame.log_y {
        // A latency of 0 µs has no place on a log axis: 1 µs is the
        // histograms' resolution.
        let min = values().map(|v| v.max(0.001)).fold(f64::INFINITY, f64::min);
        let (lo, hi) = if min.is_finite() {
            (min / 1.5, max.max(min) * 1.5)
        } else {
            (0.001, 1.0)
        };
        let mut c = chart.build_cartesian_2d(frame.x_range.clone(), (lo..hi).log_scale())?;
        mesh(&mut c, frame)?;
        series(&mut c, lines, |v| v.max(0.001))?;
    } else {
        let hi = if max > 0.0 { max * 1.1 } else { 1.0 };
        let mut c = chart.build_cartesian_2d(frame.x_range.clone(), 0.0..hi)?;
        mesh(&mut c, frame)?;
        series(&mut c, lines, |v| v)?;
    }
    Ok(())
}

type Chart<'a, Y> =
    ChartContext<'a, SVGBackend<'a>, Cartesian2d<plotters::coord::types::RangedCoordf64, Y>>;

fn mesh<Y>(c: &mut Chart<'_, Y>, frame: &Frame<'_>) -> Result<(), Box<dyn std::error::Error>>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    c.configure_mesh()
        .x_desc(frame.x_desc)
        .y_desc(frame.y_desc)
        .x_labels(frame.x_labels)
        .x_label_formatter(frame.x_format)
        .y_label_formatter(&|v| format_ms(*v))
        .label_style(("sans-serif", 13))
        .axis_desc_style(("sans-serif", 14))
        .light_line_style(WHITE.mix(0.0))
        .draw()?;
    Ok(())
}

fn series<Y>(
    c: &mut Chart<'_, Y>,
    lines: &[Line<'_>],
    fit: impl Fn(f64) -> f64,
) -> Result<(), Box<dyn std::error::Error>>
where
    Y: Ranged<ValueType = f64> + ValueFormatter<f64>,
{
    for (i, line) in lines.iter().enumerate() {
        c.draw_series(LineSeries::new(
            line.points.iter().map(|&(x, y)| (x, fit(y))),
            colour(i).stroke_width(2),
        ))?;
    }
    Ok(())
}

/// The names of `lines` in their colours, one under the other.
fn legend(
    area: &DrawingArea<SVGBackend<'_>, Shift>,
    lines: &[Line<'_>],
) -> Result<(), Box<dyn std::error::Error>> {
    for (i, line) in lines.iter().enumerate() {
        let y = 48 + 20 * i32::try_from(i).unwrap_or(0);
        area.draw(&PathElement::new(
            vec![(4, y), (26, y)],
            colour(i).stroke_width(3),
        ))?;
        area.draw(&Text::new(
            line.label,
            (32, y - 7),
            ("sans-serif", 14).into_font(),
        ))?;
    }
    Ok(())
}

/// A value on the y axis: as many decimals as it needs, no more.
fn format_ms(v: f64) -> String {
    if v >= 100.0 || v == 0.0 {
        format!("{v:.0}")
    } else if v >= 1.0 {
        format!("{v:.1}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nines_axis() {
        assert_eq!(nines(0.0), 0.0);
        assert!((nines(0.99) - 2.0).abs() < 1e-9);
        assert_eq!(nines_label(0.0), "0%");
        assert_eq!(nines_label(1.0), "90%");
        assert_eq!(nines_label(2.0), "99%");
        assert_eq!(nines_label(5.0), "99.999%");
        assert_eq!(nines_label(2.5), "");
    }

    /// A curve stops where the samples stop telling anything: 100
    /// samples reach the 99th percentile (two nines), not 99.999.
    #[test]
    fn curve_reaches_as_far_as_the_samples() {
        let mut h = crate::latency::histogram();
        for v in 1..=100u64 {
            h.record(v * 1000).unwrap();
        }
        let p = percentile_points(&h);
        let last = p.last().unwrap();
        assert!((last.0 - 2.0).abs() < 1e-9, "{last:?}");
        assert!((p[0].1 - 1.0).abs() < 0.01, "{:?}", p[0]);
        assert!((last.1 - 99.0).abs() < 0.1, "{last:?}");
    }

    /// The chart is one SVG element with the title, the axis names and
    /// a polyline per curve.
    #[test]
    fn svg_has_curves_and_text() {
        let mut a = crate::latency::histogram();
        let mut b = crate::latency::histogram();
        for v in 1..=1000u64 {
            a.record(v).unwrap();
            b.record(v * 100).unwrap();
        }
        let svg = percentiles(
            "all phases",
            &[
                Curve {
                    label: "mail",
                    histogram: &a,
                },
                Curve {
                    label: "rcpt",
                    histogram: &b,
                },
            ],
            true,
        );
        assert!(svg.starts_with("<svg"), "{}", &svg[..60]);
        assert!(svg.matches("<polyline").count() >= 2);
        for text in [
            "all phases",
            "percentile",
            "latency (ms, log",
            "rcpt",
            "99.9%",
        ] {
            assert!(svg.contains(text), "{text} missing");
        }
    }
}
