//! Loss curves as a self-contained SVG: one polyline per loss over the training steps, with the
//! value range on the y axis, the step range on the x axis and the legend to the right. Long runs
//! are averaged into at most [`MAX_POINTS`] points per curve, which smooths GAN losses' step-to-step
//! noise and bounds the file's size.
use std::fmt::Write;

const WIDTH: f64 = 800.0;
const HEIGHT: f64 = 420.0;
const MARGIN: f64 = 50.0;
/// Room right of the plot area for the legend.
const LEGEND: f64 = 110.0;
pub const MAX_POINTS: usize = 400;
const COLOURS: [&str; 6] = [
    "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b",
];

/// One named curve of (step, value) points.
pub struct Series<'a> {
    pub name: &'a str,
    pub points: Vec<(f64, f64)>,
}

/// The SVG text of a plot of `series`; non-finite values are left out.
pub fn svg(title: &str, series: &[Series]) -> String {
    let finite = || {
        series
            .iter()
            .flat_map(|s| s.points.iter())
            .filter(|(x, y)| x.is_finite() && y.is_finite())
    };
    let range = |values: Vec<f64>| {
        let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
        let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        match (lo.is_finite(), hi > lo) {
            (true, true) => (lo, hi),
            (true, false) => (lo - 0.5, lo + 0.5),
            _ => (0.0, 1.0),
        }
    };
    let (x0, x1) = range(finite().map(|p| p.0).collect());
    let (y0, y1) = range(finite().map(|p| p.1).collect());
    let px = |x: f64| MARGIN + (x - x0) / (x1 - x0) * (WIDTH - 2.0 * MARGIN - LEGEND);
    let py = |y: f64| HEIGHT - MARGIN - (y - y0) / (y1 - y0) * (HEIGHT - 2.0 * MARGIN);

    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{MARGIN}" y="20" font-size="14">{title}</text>"#
    );
    let (left, right, top, bottom) = (MARGIN, WIDTH - MARGIN - LEGEND, MARGIN, HEIGHT - MARGIN);
    let _ = writeln!(
        s,
        r#"<path d="M{left} {top} V{bottom} H{right}" stroke="black" fill="none"/>"#
    );
    let labels = [
        (left - 5.0, bottom, "end", format!("{y0:.3}")),
        (left - 5.0, top + 4.0, "end", format!("{y1:.3}")),
        (left, bottom + 16.0, "start", format!("step {x0}")),
        (right, bottom + 16.0, "end", format!("step {x1}")),
    ];
    for (x, y, anchor, text) in labels {
        let _ = writeln!(
            s,
            r#"<text x="{x}" y="{y}" text-anchor="{anchor}">{text}</text>"#
        );
    }
    for (k, series) in series.iter().enumerate() {
        let colour = COLOURS[k % COLOURS.len()];
        let kept: Vec<(f64, f64)> = series
            .points
            .iter()
            .copied()
            .filter(|(x, y)| x.is_finite() && y.is_finite())
            .collect();
        let bucket = kept.len().div_ceil(MAX_POINTS).max(1);
        let points: Vec<String> = kept
            .chunks(bucket)
            .map(|c| {
                let n = c.len() as f64;
                let (x, y) = c.iter().fold((0.0, 0.0), |(a, b), (x, y)| (a + x, b + y));
                format!("{:.1},{:.1}", px(x / n), py(y / n))
            })
            .collect();
        let _ = writeln!(
            s,
            r#"<polyline points="{}" stroke="{colour}" fill="none" stroke-width="1.2"/>"#,
            points.join(" ")
        );
        let ly = top + 16.0 * k as f64;
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{ly}" fill="{colour}">{}</text>"#,
            right + 15.0,
            series.name
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn maps_the_data_range_onto_the_plot_area() {
        let text = svg(
            "losses",
            &[Series {
                name: "G",
                points: vec![(0.0, 2.0), (10.0, 1.0), (5.0, f64::NAN)],
            }],
        );
        // (0, 2) is the top-left corner of the plot area, (10, 1) the bottom-right.
        assert!(text.contains(r#"points="50.0,50.0 640.0,370.0""#), "{text}");
        assert!(text.contains(">G</text>") && text.ends_with("</svg>\n"));
    }

    #[test]
    fn long_runs_are_averaged_into_buckets() {
        // 2·MAX_POINTS steps alternating 0 and 2: each bucket of two averages to 1, a flat line.
        let points = (0..2 * MAX_POINTS)
            .map(|i| (i as f64, 2.0 * (i % 2) as f64))
            .collect();
        let text = svg("t", &[Series { name: "G", points }]);
        let line = text.lines().find(|l| l.starts_with("<polyline")).unwrap();
        let ys: Vec<&str> = line
            .split(' ')
            .filter_map(|p| Some(p.split(',').nth(1)?.trim_end_matches('"')))
            .collect();
        assert_eq!(ys.len(), MAX_POINTS);
        assert!(ys.iter().all(|y| *y == "210.0"), "{line}");
    }
}
