//! Pictures in and out: tensors in [-1, 1] to RGB bytes, sample grids, atomic PNG writes, the
//! progress bar style.
use std::path::Path;

use image::ExtendedColorType;
use indicatif::{ProgressBar, ProgressStyle};
use tessera_spade::data::{palette, write_png_atomic};
use tessera_spade::IdMap;
use tessera_tensor::Tensor;

use crate::Result;

/// A bar with position, rate and ETA; hidden when stderr is not a terminal.
pub fn progress_bar(len: u64, unit: &str) -> ProgressBar {
    let bar = ProgressBar::new(len);
    let template = format!(
        "{{bar:30}} {{pos}}/{{len}} {unit} [{{elapsed_precise}} < {{eta_precise}}, {{per_sec}}] {{msg}}"
    );
    if let Ok(style) = ProgressStyle::with_template(&template) {
        bar.set_style(style);
    }
    bar
}

/// Writes packed RGB bytes as a PNG, atomically.
pub fn write_rgb(path: &Path, rgb: &[u8], width: usize, height: usize) -> Result<()> {
    write_png_atomic(
        path,
        rgb,
        width as u32,
        height as u32,
        ExtendedColorType::Rgb8,
    )?;
    Ok(())
}

/// Each image of a `[N, 3, H, W]` tensor in [-1, 1] as packed RGB bytes: `(x + 1) / 2 · 255`,
/// rounded and clipped, as the reference saves its outputs.
pub fn to_rgb(images: &Tensor) -> Result<Vec<Vec<u8>>> {
    let d = images.dims().to_vec();
    let values = images.to_vec()?;
    let plane = d[2] * d[3];
    Ok(values
        .chunks_exact(3 * plane)
        .map(|img| {
            (0..plane)
                .flat_map(|i| {
                    (0..3).map(move |c| {
                        ((img[c * plane + i] + 1.0) / 2.0 * 255.0)
                            .round()
                            .clamp(0.0, 255.0) as u8
                    })
                })
                .collect()
        })
        .collect())
}

/// A grid with one row per sample and one column per picture (each `width`×`height` RGB), written
/// as a PNG.
pub fn write_grid(path: &Path, rows: &[Vec<Vec<u8>>], width: usize, height: usize) -> Result<()> {
    let cols = rows.first().map_or(0, Vec::len);
    let grid_w = cols * width;
    let mut out = vec![0u8; 3 * grid_w * height * rows.len()];
    for (r, row) in rows.iter().enumerate() {
        for (c, picture) in row.iter().enumerate() {
            for y in 0..height {
                let src = &picture[3 * y * width..3 * (y + 1) * width];
                let start = 3 * ((r * height + y) * grid_w + c * width);
                out[start..start + 3 * width].copy_from_slice(src);
            }
        }
    }
    write_rgb(path, &out, grid_w, height * rows.len())
}

/// A label map in palette colours.
pub fn colour_labels(map: &IdMap) -> Vec<u8> {
    palette::colorize(&map.ids)
}
