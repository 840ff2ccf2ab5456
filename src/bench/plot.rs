//! Plots a person can open: commit latency and throughput against the ring size, one line per
//! ring mode, as hand-written SVG files (no plotting service, no dependency). Axes start at
//! zero so a ratio between two points reads true; every point carries its value as a label.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use super::report::Record;

const WIDTH: f64 = 640.0;
const HEIGHT: f64 = 400.0;
const MARGIN_LEFT: f64 = 80.0;
const MARGIN_RIGHT: f64 = 110.0;
const MARGIN_TOP: f64 = 40.0;
const MARGIN_BOTTOM: f64 = 50.0;
const COLOURS: [&str; 4] = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd"];

/// One line: its label and its (x, y) points.
pub type Series = (String, Vec<(f64, f64)>);

/// Writes `latency_vs_n.svg` and `throughput_vs_n.svg` into `dir` when the records hold at
/// least one point for them; returns the files written.
pub fn write_plots(records: &[Record], dir: &Path) -> Result<Vec<PathBuf>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let charts = [
        ("latency_vs_n.svg", "Commit latency p50, one outstanding, 64 B", "µs", "commit_latency", "p50_us"),
        (
            "throughput_vs_n.svg",
            "Committed ops/s, every member submitting, 64 B",
            "ops/s",
            "throughput",
            "ops_per_s",
        ),
    ];
    let mut written = Vec::new();
    for (file, title, unit, figure, field) in charts {
        let series = series_of(records, figure, field);
        if series.iter().all(|(_, points)| points.is_empty()) {
            continue;
        }
        let path = dir.join(file);
        std::fs::write(&path, line_chart(title, unit, &series))
            .map_err(|e| format!("write {}: {e}", path.display()))?;
        written.push(path);
    }
    Ok(written)
}

/// The 64-byte points of `figure`'s `field` against n, one series per ring mode.
fn series_of(records: &[Record], figure: &str, field: &str) -> Vec<Series> {
    let mut series: Vec<Series> = Vec::new();
    for record in records.iter().filter(|r| r.figure == figure && r.get("value_bytes") == Some(64.0)) {
        let (Some(ring), Some(n), Some(y)) = (record.label("ring"), record.get("n"), record.get(field))
        else {
            continue;
        };
        let label = format!("ring {ring}");
        match series.iter_mut().find(|(l, _)| *l == label) {
            Some((_, points)) => points.push((n, y)),
            None => series.push((label, vec![(n, y)])),
        }
    }
    for (_, points) in &mut series {
        points.sort_by(|a, b| a.0.total_cmp(&b.0));
    }
    series
}

/// An SVG line chart with a zero-based y axis and x ticks at every point's x.
pub fn line_chart(title: &str, unit: &str, series: &[Series]) -> String {
    let points = series.iter().flat_map(|(_, p)| p.iter());
    let (x_min, x_max, y_max) =
        points.fold((f64::MAX, f64::MIN, 0.0f64), |(a, b, c), &(x, y)| (a.min(x), b.max(x), c.max(y)));
    let x_span = if x_max > x_min { x_max - x_min } else { 1.0 };
    let y_top = if y_max > 0.0 { y_max * 1.15 } else { 1.0 };
    let plot_w = WIDTH - MARGIN_LEFT - MARGIN_RIGHT;
    let plot_h = HEIGHT - MARGIN_TOP - MARGIN_BOTTOM;
    let px = |x: f64| MARGIN_LEFT + (x - x_min) / x_span * plot_w;
    let py = |y: f64| MARGIN_TOP + plot_h - y / y_top * plot_h;
    let mut svg = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\" \
         font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"{}\" y=\"22\" text-anchor=\"middle\" font-size=\"14\">{}</text>\n",
        WIDTH / 2.0,
        escape(title)
    );
    let (left, bottom, right) = (MARGIN_LEFT, MARGIN_TOP + plot_h, MARGIN_LEFT + plot_w);
    let _ =
        writeln!(svg, "<path d=\"M{left},{MARGIN_TOP} V{bottom} H{right}\" stroke=\"black\" fill=\"none\"/>");
    for step in 0..=4 {
        let y = y_top * f64::from(step) / 4.0;
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{:.1}\" text-anchor=\"end\">{:.0}</text>\
             <line x1=\"{left}\" x2=\"{right}\" y1=\"{:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/>",
            left - 6.0,
            py(y) + 4.0,
            y,
            py(y),
            py(y)
        );
    }
    let mut xs: Vec<f64> = series.iter().flat_map(|(_, p)| p.iter().map(|&(x, _)| x)).collect();
    xs.sort_by(f64::total_cmp);
    xs.dedup();
    for x in xs {
        let _ = writeln!(
            svg,
            "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">{x}</text>",
            px(x),
            bottom + 18.0
        );
    }
    let _ = writeln!(
        svg,
        "<text x=\"{:.1}\" y=\"{}\" text-anchor=\"middle\">members (n)</text>",
        left + plot_w / 2.0,
        HEIGHT - 10.0
    );
    let _ = writeln!(
        svg,
        "<text x=\"16\" y=\"{:.1}\" transform=\"rotate(-90 16 {:.1})\" text-anchor=\"middle\">{}</text>",
        MARGIN_TOP + plot_h / 2.0,
        MARGIN_TOP + plot_h / 2.0,
        escape(unit)
    );
    for (index, (label, points)) in series.iter().enumerate() {
        let colour = COLOURS[index % COLOURS.len()];
        let path: Vec<String> = points.iter().map(|&(x, y)| format!("{:.1},{:.1}", px(x), py(y))).collect();
        let _ = writeln!(
            svg,
            "<polyline points=\"{}\" stroke=\"{colour}\" stroke-width=\"2\" fill=\"none\"/>",
            path.join(" ")
        );
        for &(x, y) in points {
            let _ = writeln!(
                svg,
                "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"3\" fill=\"{colour}\"/><text x=\"{:.1}\" y=\"{:.1}\" fill=\"{colour}\">{y:.0}</text>",
                px(x),
                py(y),
                px(x) + 5.0,
                py(y) - 6.0
            );
        }
        let legend_y = MARGIN_TOP + 20.0 * index as f64;
        let _ = writeln!(
            svg,
            "<text x=\"{}\" y=\"{legend_y:.1}\" fill=\"{colour}\">{}</text>",
            right + 12.0,
            escape(label)
        );
    }
    svg.push_str("</svg>\n");
    svg
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chart_has_one_polyline_per_series() {
        let series = vec![
            ("ring bi".to_string(), vec![(3.0, 100.0), (5.0, 180.0)]),
            ("ring uni".to_string(), vec![(3.0, 120.0), (5.0, 260.0)]),
        ];
        let svg = line_chart("t <1>", "µs", &series);
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert_eq!(svg.matches("<polyline").count(), 2);
        assert!(svg.contains("t &lt;1&gt;"));
    }

    #[test]
    fn series_come_from_the_64_byte_records() {
        let records = vec![
            Record::new("throughput")
                .int("n", 5)
                .text("ring", "bi")
                .int("value_bytes", 64)
                .num("ops_per_s", 9.0),
            Record::new("throughput")
                .int("n", 3)
                .text("ring", "bi")
                .int("value_bytes", 64)
                .num("ops_per_s", 7.0),
            Record::new("throughput")
                .int("n", 3)
                .text("ring", "bi")
                .int("value_bytes", 1024)
                .num("ops_per_s", 1.0),
        ];
        let series = series_of(&records, "throughput", "ops_per_s");
        assert_eq!(series, vec![("ring bi".to_string(), vec![(3.0, 7.0), (5.0, 9.0)])]);
    }
}
