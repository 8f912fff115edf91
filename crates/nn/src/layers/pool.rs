//! Resampling layers: `AvgPool2d` and `Upsample`.
use super::{expect_nchw, layer_error};
use crate::module::{Entry, Module};
use crate::Result;
use tessera_autograd::Var;
use tessera_tensor::{Interpolation, Pool2dParams};

/// Average pooling (`torch.nn.AvgPool2d` without `ceil_mode` and `divisor_override`).
/// `count_include_pad` (default true) decides whether zero padding counts in the divisor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AvgPool2d {
    pub params: Pool2dParams,
}

impl AvgPool2d {
    /// A k×k window with stride k, no padding, counting padding (PyTorch's defaults).
    pub fn new(k: usize) -> Self {
        AvgPool2d {
            params: Pool2dParams {
                kernel: [k, k],
                stride: [k, k],
                padding: [0, 0],
                count_include_pad: true,
            },
        }
    }
    pub fn stride(mut self, s: usize) -> Self {
        self.params.stride = [s, s];
        self
    }
    /// Zero padding on each side; at most half the kernel (as PyTorch requires).
    pub fn padding(mut self, p: usize) -> Self {
        self.params.padding = [p, p];
        self
    }
    pub fn count_include_pad(mut self, on: bool) -> Self {
        self.params.count_include_pad = on;
        self
    }

    pub fn forward(&self, x: &Var) -> Result<Var> {
        let [_, _, h, w] = expect_nchw("AvgPool2d", x, None)?;
        if self.params.output_hw([h, w]).is_none() {
            return Err(layer_error(
                "AvgPool2d",
                format!(
                    "{:?} does not fit the input {} (the padding may be at most half the kernel)",
                    self.params,
                    x.shape()
                ),
            ));
        }
        Ok(x.avg_pool2d(self.params)?)
    }
}

/// The output size of an [`Upsample`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UpsampleSize {
    /// (height, width) factors; the output is `floor(in · factor)`.
    Scale([f64; 2]),
    /// A fixed (height, width).
    Size([usize; 2]),
}

/// Resizing by nearest (PyTorch's legacy `nearest`) or bilinear interpolation
/// (`torch.nn.Upsample`).
///
/// Source positions are computed from the ratio input/output size. That is PyTorch's rule for
/// a given `size`, for `align_corners=True`, and for integer scale factors; for a non-integer
/// `scale_factor` PyTorch (unless `recompute_scale_factor=True`) uses `1/scale_factor`
/// instead, which can pick slightly different source positions.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Upsample {
    pub size: UpsampleSize,
    pub mode: Interpolation,
}

impl Upsample {
    pub fn new(size: UpsampleSize, mode: Interpolation) -> Self {
        Upsample { size, mode }
    }
    /// `nn.Upsample(scale_factor=s, mode="nearest")`.
    pub fn nearest(scale: f64) -> Self {
        Upsample::new(UpsampleSize::Scale([scale; 2]), Interpolation::Nearest)
    }
    /// `nn.Upsample(scale_factor=s, mode="bilinear", align_corners=…)`.
    pub fn bilinear(scale: f64, align_corners: bool) -> Self {
        Upsample::new(
            UpsampleSize::Scale([scale; 2]),
            Interpolation::Bilinear { align_corners },
        )
    }

    /// The output (height, width) for an input of `hw`.
    pub fn output_hw(&self, hw: [usize; 2]) -> Option<[usize; 2]> {
        let out = match self.size {
            UpsampleSize::Size(s) => s,
            UpsampleSize::Scale(f) => {
                let mut out = [0; 2];
                for i in 0..2 {
                    let o = (hw[i] as f64 * f[i]).floor();
                    if !(o.is_finite() && o >= 1.0 && o <= u32::MAX as f64) {
                        return None;
                    }
                    out[i] = o as usize;
                }
                out
            }
        };
        (out[0] > 0 && out[1] > 0 && hw[0] > 0 && hw[1] > 0).then_some(out)
    }

    pub fn forward(&self, x: &Var) -> Result<Var> {
        let [_, _, h, w] = expect_nchw("Upsample", x, None)?;
        let out = self.output_hw([h, w]).ok_or_else(|| {
            layer_error(
                "Upsample",
                format!(
                    "{:?} gives an empty output for the input {}",
                    self.size,
                    x.shape()
                ),
            )
        })?;
        Ok(x.upsample2d(out, self.mode)?)
    }
}

impl Module for AvgPool2d {
    fn visit(&self, _prefix: &str, _f: &mut dyn FnMut(&str, Entry<'_>)) {}
    fn set_training(&mut self, _training: bool) {}
}

impl Module for Upsample {
    fn visit(&self, _prefix: &str, _f: &mut dyn FnMut(&str, Entry<'_>)) {}
    fn set_training(&mut self, _training: bool) {}
}
