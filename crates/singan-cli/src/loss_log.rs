//! The training losses: a CSV log (read back on --resume) and an SVG plot, both rewritten
//! atomically after every scale.
use std::fmt::Write as _;
use std::path::Path;

use crate::error::Result;
use tessera_singan::{image_io, Losses};

/// The losses of one iteration of one scale.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LossRecord {
    pub scale: usize,
    pub iteration: usize,
    pub losses: Losses,
}

const CSV_HEADER: &str = "scale,iteration,d,g,rec,gp";

fn write_text_atomically(path: &Path, text: &str) -> Result<()> {
    Ok(image_io::write_file_atomically(path, text.as_bytes())?)
}

pub fn write_csv(path: &Path, records: &[LossRecord]) -> Result<()> {
    let mut text = format!("{CSV_HEADER}\n");
    for r in records {
        let l = r.losses;
        // Writing to a String cannot fail.
        let _ = writeln!(
            text,
            "{},{},{},{},{},{}",
            r.scale, r.iteration, l.d, l.g, l.rec, l.gp
        );
    }
    write_text_atomically(path, &text)
}

/// Reads a log written by [`write_csv`]; `None` when the file is missing or not such a log
/// (the caller then starts a new one).
pub fn read_csv(path: &Path) -> Option<Vec<LossRecord>> {
    let text = std::fs::read_to_string(path).ok()?;
    let mut lines = text.lines();
    if lines.next()? != CSV_HEADER {
        return None;
    }
    lines
        .map(|line| {
            let fields: Vec<&str> = line.split(',').collect();
            let [scale, iteration, d, g, rec, gp] = fields[..] else {
                return None;
            };
            Some(LossRecord {
                scale: scale.parse().ok()?,
                iteration: iteration.parse().ok()?,
                losses: Losses {
                    d: d.parse().ok()?,
                    g: g.parse().ok()?,
                    rec: rec.parse().ok()?,
                    gp: gp.parse().ok()?,
                },
            })
        })
        .collect()
}

/// Plot size and layout, in SVG user units.
const WIDTH: f64 = 900.0;
const PANEL_HEIGHT: f64 = 180.0;
const MARGIN_LEFT: f64 = 70.0;
const MARGIN_RIGHT: f64 = 20.0;
const MARGIN_TOP: f64 = 30.0;
const PANEL_GAP: f64 = 40.0;
/// At most this many points per curve: longer runs are averaged in bins.
const MAX_POINTS: usize = 1500;

/// Means of consecutive bins, so a curve has at most [`MAX_POINTS`] points.
fn binned(values: &[f64]) -> Vec<(f64, f64)> {
    let bin = values.len().div_ceil(MAX_POINTS).max(1);
    values
        .chunks(bin)
        .enumerate()
        .map(|(i, chunk)| {
            let x = (i * bin) as f64 + (chunk.len() as f64 - 1.0) / 2.0;
            (x, chunk.iter().sum::<f64>() / chunk.len() as f64)
        })
        .collect()
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;")
}

/// Writes three stacked panels (critic loss, adversarial generator loss, reconstruction loss)
/// over all iterations of all scales, with a dashed line where each scale starts.
pub fn write_svg(path: &Path, records: &[LossRecord]) -> Result<()> {
    type Pick = fn(&Losses) -> f32;
    let panels: [(&str, &str, Pick); 3] = [
        ("critic loss (D)", "#1f77b4", |l| l.d),
        ("generator adversarial loss (G)", "#d62728", |l| l.g),
        ("reconstruction loss (α·MSE)", "#2ca02c", |l| l.rec),
    ];
    let height = MARGIN_TOP + panels.len() as f64 * (PANEL_HEIGHT + PANEL_GAP);
    let plot_width = WIDTH - MARGIN_LEFT - MARGIN_RIGHT;
    let count = records.len().max(2) as f64;
    let x_of = |i: f64| MARGIN_LEFT + plot_width * i / (count - 1.0);
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    for (p, (title, color, pick)) in panels.iter().enumerate() {
        let top = MARGIN_TOP + p as f64 * (PANEL_HEIGHT + PANEL_GAP);
        let values: Vec<f64> = records
            .iter()
            .map(|r| f64::from(pick(&r.losses)))
            .filter(|v| v.is_finite())
            .collect();
        let (lo, hi) = values
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
                (lo.min(v), hi.max(v))
            });
        let (lo, hi) = if lo.is_finite() && hi > lo {
            (lo, hi)
        } else if lo.is_finite() {
            (lo - 1.0, lo + 1.0)
        } else {
            (0.0, 1.0)
        };
        let y_of = |v: f64| top + PANEL_HEIGHT * (1.0 - (v - lo) / (hi - lo));
        let _ = writeln!(
            svg,
            r##"<rect x="{MARGIN_LEFT}" y="{top}" width="{plot_width}" height="{PANEL_HEIGHT}" fill="none" stroke="#888"/>"##
        );
        let _ = writeln!(
            svg,
            r#"<text x="{MARGIN_LEFT}" y="{}">{}</text>"#,
            top - 6.0,
            escape(title)
        );
        for (v, y) in [(hi, top + 10.0), (lo, top + PANEL_HEIGHT)] {
            let _ = writeln!(
                svg,
                r#"<text x="{}" y="{y}" text-anchor="end">{v:.3}</text>"#,
                MARGIN_LEFT - 6.0
            );
        }
        for (i, r) in records.iter().enumerate() {
            if r.iteration == 1 {
                let x = x_of(i as f64);
                let _ = writeln!(
                    svg,
                    r##"<line x1="{x:.1}" y1="{top}" x2="{x:.1}" y2="{}" stroke="#bbb" stroke-dasharray="4 3"/><text x="{:.1}" y="{}" fill="#666">{}</text>"##,
                    top + PANEL_HEIGHT,
                    x + 3.0,
                    top + PANEL_HEIGHT - 4.0,
                    r.scale
                );
            }
        }
        let points: Vec<String> = binned(&values)
            .into_iter()
            .map(|(i, v)| format!("{:.1},{:.1}", x_of(i), y_of(v)))
            .collect();
        let _ = writeln!(
            svg,
            r#"<polyline fill="none" stroke="{color}" stroke-width="1.2" points="{}"/>"#,
            points.join(" ")
        );
    }
    let _ = writeln!(
        svg,
        r#"<text x="{}" y="{}" text-anchor="middle">iterations, all scales in order (dashed: a scale starts; its index below)</text>"#,
        MARGIN_LEFT + plot_width / 2.0,
        height - 8.0
    );
    svg.push_str("</svg>\n");
    write_text_atomically(path, &svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn records() -> Vec<LossRecord> {
        (0..3)
            .flat_map(|scale| {
                (1..=5).map(move |iteration| LossRecord {
                    scale,
                    iteration,
                    losses: Losses {
                        d: -(iteration as f32),
                        g: scale as f32 * 0.5,
                        rec: 1.0 / iteration as f32,
                        gp: 0.01,
                    },
                })
            })
            .collect()
    }

    #[test]
    fn csv_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("losses.csv");
        write_csv(&path, &records()).unwrap();
        assert_eq!(read_csv(&path).unwrap(), records());
        std::fs::write(&path, "something else\n1,2").unwrap();
        assert!(read_csv(&path).is_none());
    }

    #[test]
    fn svg_has_one_curve_per_panel_and_scale_marks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("losses.svg");
        write_svg(&path, &records()).unwrap();
        let svg = std::fs::read_to_string(&path).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 3);
        assert_eq!(svg.matches("stroke-dasharray").count(), 9);
        // Long runs are binned.
        assert_eq!(binned(&vec![1.0; 4500]).len(), 1500);
        assert_eq!(binned(&[1.0, 3.0]), vec![(0.0, 1.0), (1.0, 3.0)]);
    }
}
