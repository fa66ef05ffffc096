//! The alarm window's charts in SVG: one line per series over the same time axis, the idle
//! timeout drawn across the latency chart, the legend in HTML beside it.

use std::fmt::Write;

use super::esc;
use crate::context::format_value;
use crate::picture::charts::Chart;

const WIDTH: f64 = 540.0;
const HEIGHT: f64 = 196.0;
/// The plot area inside the chart: room for the value labels left, the times below.
const LEFT: f64 = 52.0;
const RIGHT: f64 = 528.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 160.0;
/// Series colours (CSS classes `c0`..`c4`).
const COLOURS: usize = 5;
/// Points get a dot when there are few of them, so a single point is seen.
const DOTS_UP_TO: usize = 60;

pub fn render_all(charts: &[Chart], out: &mut String) {
    if charts.is_empty() {
        return;
    }
    out.push_str("<section>\n<h2>The alarm window</h2>\n<div class=\"charts\">\n");
    for chart in charts {
        render(chart, out);
    }
    out.push_str("</div>\n</section>\n");
}

fn render(chart: &Chart, out: &mut String) {
    let times = chart
        .lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.0));
    let (first, last) = times.fold((i64::MAX, i64::MIN), |(lo, hi), t| (lo.min(t), hi.max(t)));
    let (first, last) = if first >= last {
        (first - 60, first + 60)
    } else {
        (first, last)
    };
    let highest = chart
        .lines
        .iter()
        .flat_map(|l| l.points.iter().map(|p| p.1))
        .chain(chart.limit.iter().map(|l| l.value))
        .fold(0.0_f64, f64::max);
    let top_value = if highest > 0.0 { highest * 1.1 } else { 1.0 };
    let x = |t: i64| LEFT + (t - first) as f64 / (last - first) as f64 * (RIGHT - LEFT);
    let y = |v: f64| BOTTOM - v.max(0.0) / top_value * (BOTTOM - TOP);
    let _ = write!(
        out,
        "<figure>\n<figcaption>{} ({})</figcaption>\n\
         <svg width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" aria-label=\"{}\">\n",
        esc(chart.title),
        esc(chart.unit),
        esc(chart.title)
    );
    let _ = writeln!(
        out,
        "<line class=\"axis\" x1=\"{LEFT}\" y1=\"{BOTTOM}\" x2=\"{RIGHT}\" y2=\"{BOTTOM}\"/>\
         <line class=\"axis\" x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{LEFT}\" y2=\"{BOTTOM}\"/>"
    );
    let _ = writeln!(
        out,
        "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">0</text>\
         <text x=\"{}\" y=\"{}\" text-anchor=\"end\">{}</text>",
        LEFT - 6.0,
        BOTTOM + 4.0,
        LEFT - 6.0,
        TOP + 8.0,
        format_value(top_value)
    );
    let _ = writeln!(
        out,
        "<text x=\"{LEFT}\" y=\"{}\">{}</text><text x=\"{RIGHT}\" y=\"{}\" text-anchor=\"end\">{}</text>",
        BOTTOM + 20.0,
        clock(first),
        BOTTOM + 20.0,
        clock(last)
    );
    if let Some(limit) = &chart.limit {
        let level = y(limit.value);
        let _ = writeln!(
            out,
            "<line class=\"limit\" x1=\"{LEFT}\" y1=\"{level:.1}\" x2=\"{RIGHT}\" y2=\"{level:.1}\"/>\
             <text class=\"limit\" x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{}</text>",
            RIGHT - 4.0,
            (level - 5.0).max(TOP + 10.0),
            esc(&limit.label)
        );
    }
    for (index, line) in chart.lines.iter().enumerate() {
        let colour = index % COLOURS;
        let points: Vec<String> = line
            .points
            .iter()
            .map(|(t, v)| format!("{:.1},{:.1}", x(*t), y(*v)))
            .collect();
        let _ = writeln!(
            out,
            "<polyline class=\"c{colour}\" points=\"{}\"/>",
            points.join(" ")
        );
        if line.points.len() <= DOTS_UP_TO {
            for (t, v) in &line.points {
                let _ = write!(
                    out,
                    "<circle class=\"c{colour}\" cx=\"{:.1}\" cy=\"{:.1}\" r=\"2.5\"/>",
                    x(*t),
                    y(*v)
                );
            }
            out.push('\n');
        }
    }
    out.push_str("</svg>\n<ul class=\"chart-legend\">");
    render_legend(chart, out);
    out.push_str("</ul>\n</figure>\n");
}

/// Each line's colour, label and highest value, and the limit's.
fn render_legend(chart: &Chart, out: &mut String) {
    for (index, line) in chart.lines.iter().enumerate() {
        let highest = line.points.iter().map(|p| p.1).fold(f64::MIN, f64::max);
        let _ = write!(
            out,
            "<li><span class=\"swatch c{}\"></span>{}: highest {}</li>",
            index % COLOURS,
            esc(&line.label),
            format_value(highest)
        );
    }
    if let Some(limit) = &chart.limit {
        let _ = write!(
            out,
            "<li><span class=\"swatch limit\"></span>{}</li>",
            esc(&limit.label)
        );
    }
}

/// `14:05 UTC` for a Unix time.
fn clock(at: i64) -> String {
    chrono::DateTime::from_timestamp(at, 0)
        .map(|t| t.format("%H:%M UTC").to_string())
        .unwrap_or_default()
}
