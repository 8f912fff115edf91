//! The image pyramid (the reference's `adjust_scales2image` and `creat_reals_pyramid`).
//!
//! With `sf0` the initial scale factor, `min_size` and `max_size` the coarsest short side and the
//! finest long side, and `log_b` the logarithm to base b, for an image H×W:
//!
//! ```text
//! num_scales = ceil(log_sf0(min_size / min(H, W))) + 1
//! scale2stop = ceil(log_sf0(min(max_size, max(H, W)) / max(H, W)))
//! N          = num_scales − scale2stop            (N + 1 scales, 0 = coarsest)
//! scale1     = min(max_size / max(H, W), 1)       (the finest real: imresize(image, scale1))
//! sf         = (min_size / min(h, w))^(1/N)       (h×w: the finest real's size)
//! reals[i]   = imresize(finest, sf^(N − i)),  i = 0 ..= N
//! ```
//!
//! sf is the factor actually used between scales (≈ 0.75–0.83); the reference does not save it
//! and recomputes it from the training image, tessera stores it in the model.
use crate::error::Error;
use crate::resize::{imresize, resized_size};
use crate::Result;
use serde::{Deserialize, Serialize};
use tessera_tensor::Tensor;

/// The settings of the pyramid (the reference's defaults: 0.75, 25, 250).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct PyramidConfig {
    /// `scale_factor_init`: the factor the number of scales is planned with.
    pub scale_factor_init: f64,
    /// Short side of the coarsest scale.
    pub min_size: usize,
    /// Long side of the finest scale (larger images are shrunk to it first).
    pub max_size: usize,
}

impl Default for PyramidConfig {
    fn default() -> Self {
        PyramidConfig {
            scale_factor_init: 0.75,
            min_size: 25,
            max_size: 250,
        }
    }
}

/// The planned pyramid of an image: what a model stores to regenerate at the right sizes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Pyramid {
    /// The factor between consecutive scales (`opt.scale_factor` after adjustment).
    pub scale_factor: f64,
    /// The factor the training image was shrunk by to make the finest scale (≤ 1).
    pub scale1: f64,
    /// [height, width] of every scale, coarsest first; `shapes.len()` = N + 1.
    pub shapes: Vec<[usize; 2]>,
}

fn log_base(x: f64, base: f64) -> f64 {
    x.ln() / base.ln()
}

impl Pyramid {
    /// Plans the pyramid of an `height`×`width` image. Errors: the image (after the max-size
    /// shrink) is smaller than `min_size`, or too elongated to give at least two scales.
    pub fn plan(height: usize, width: usize, config: &PyramidConfig) -> Result<Pyramid> {
        let too_small = |why: String| Error::ImageTooSmall { height, width, why };
        let PyramidConfig {
            scale_factor_init: sf0,
            min_size,
            max_size,
        } = *config;
        if !(sf0 > 0.0 && sf0 < 1.0) || min_size == 0 || max_size < min_size {
            return Err(crate::error::invalid(
                "pyramid",
                format!(
                    "need 0 < scale_factor_init < 1 and 0 < min_size ≤ max_size, got {config:?}"
                ),
            ));
        }
        let (short, long) = (height.min(width) as f64, height.max(width) as f64);
        if short < min_size as f64 {
            return Err(too_small(format!(
                "smaller than the coarsest scale: the short side must be at least min_size = {min_size}"
            )));
        }
        let num_scales = log_base(min_size as f64 / short, sf0).ceil() as i64 + 1;
        let scale2stop = log_base((max_size as f64).min(long) / long, sf0).ceil() as i64;
        let stop_scale = num_scales - scale2stop;
        let scale1 = (max_size as f64 / long).min(1.0);
        let [h, w] = resized_size(height, width, scale1);
        if stop_scale < 1 || h.min(w) < min_size {
            return Err(too_small(format!(
                "shrunk to {h}×{w} (max_size {max_size}) it gives no coarser scale with the short side min_size = {min_size}"
            )));
        }
        let n = stop_scale as usize;
        let scale_factor = (min_size as f64 / h.min(w) as f64).powf(1.0 / n as f64);
        let shapes = (0..=n)
            .map(|i| resized_size(h, w, scale_factor.powf((n - i) as f64)))
            .collect();
        Ok(Pyramid {
            scale_factor,
            scale1,
            shapes,
        })
    }

    /// N, the index of the finest scale.
    pub fn finest(&self) -> usize {
        self.shapes.len() - 1
    }

    /// The factor of scale `n` relative to the finest: sf^(N − n).
    pub fn relative_scale(&self, n: usize) -> f64 {
        self.scale_factor.powf((self.finest() - n) as f64)
    }

    /// The reals: the image [1, 3, H, W] in [−1, 1] shrunk to the finest size with `scale1`,
    /// then to every scale's size, coarsest first (each through the 8-bit round trip of
    /// [`imresize`]). The image must have the size this pyramid was planned for.
    pub fn reals(&self, image: &Tensor, planned_from: [usize; 2]) -> Result<Vec<Tensor>> {
        let d = image.dims();
        if d.len() != 4 || d[0] != 1 || [d[2], d[3]] != planned_from {
            return Err(crate::error::invalid(
                "pyramid",
                format!(
                    "image {} given for a pyramid planned for [1, C, {}, {}]",
                    image.shape(),
                    planned_from[0],
                    planned_from[1]
                ),
            ));
        }
        let finest = imresize(image, self.scale1)?;
        (0..self.shapes.len())
            .map(|i| {
                let real = imresize(&finest, self.relative_scale(i))?;
                if real.dims()[2..] != self.shapes[i] {
                    return Err(crate::error::invalid(
                        "pyramid",
                        format!(
                            "scale {i} came out {}, planned {:?}",
                            real.shape(),
                            self.shapes[i]
                        ),
                    ));
                }
                Ok(real)
            })
            .collect()
    }
}
