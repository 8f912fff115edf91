//! The reference's `imresize`: MATLAB-compatible bicubic resizing (from assafshocher/resizer)
//! with SinGAN's 8-bit round trip. Every resize of SinGAN, the pyramid and the upsampling
//! between scales included, goes through it, so the pyramid and the noise amplitudes depend on
//! its exact behaviour:
//!
//! 1. the image in [−1, 1] is mapped to `255·clamp((x + 1)/2, 0, 1)` in f32 and **truncated** to
//!    u8 (the cast, not a rounding);
//! 2. the output size is `ceil(in · s)` per axis (f64), or given (`imresize_to_shape`, where
//!    `s = out / in`);
//! 3. axes are resized one after the other in ascending order of their scale (ties: height
//!    first); an axis whose scale is exactly 1 is skipped;
//! 4. the kernel is Keys' cubic (a = −0.5), width 4; when the **height** scale is below 1 every
//!    axis is antialiased: kernel `s·cubic(s·x)`, width `4/s`;
//! 5. output `o` (1-based) reads taps `left + k − 1`, k = 0 ..= ⌈width⌉ + 1, around
//!    `match = o/s + ½(1 − 1/s)` with `left = ⌊match − width/2⌋`; weights are normalised to sum
//!    to 1 (a zero sum stays unnormalised);
//! 6. taps past the end mirror with the edge repeated (`[0 … L−1, L−1 … 0]`, period 2L), taps
//!    before 0 get weight 0 (the reference's unsigned cast of a negative position makes its
//!    kernel distance ~1.8e19), so the top and left borders use a truncated, renormalised kernel;
//! 7. the f64 result is divided by 255, cast to f32 and mapped back by `clamp((x − 0.5)·2, −1, 1)`,
//!    without quantising again.
use crate::error::invalid;
use crate::Result;
use tessera_tensor::{Device, Tensor};

/// Keys' cubic convolution kernel with a = −0.5.
fn cubic(x: f64) -> f64 {
    let a = x.abs();
    let (a2, a3) = (a * a, a * a * a);
    if a <= 1.0 {
        1.5 * a3 - 2.5 * a2 + 1.0
    } else if a <= 2.0 {
        -0.5 * a3 + 2.5 * a2 - 4.0 * a + 2.0
    } else {
        0.0
    }
}

/// The taps of one output pixel along an axis: (input index, weight).
type Taps = Vec<(usize, f64)>;

/// Per output pixel, the input indices and normalised weights (step 5 and 6 of the module docs).
fn contributions(in_len: usize, out_len: usize, scale: f64, antialias: bool) -> Vec<Taps> {
    let kernel = |x: f64| {
        if antialias {
            scale * cubic(scale * x)
        } else {
            cubic(x)
        }
    };
    let width = if antialias { 4.0 / scale } else { 4.0 };
    let taps = width.ceil() as usize + 2;
    let period = 2 * in_len;
    (1..=out_len)
        .map(|o| {
            let centre = o as f64 / scale + 0.5 * (1.0 - 1.0 / scale);
            let left = (centre - width / 2.0).floor();
            let mut row: Taps = (0..taps)
                .map(|k| {
                    let pos = left + k as f64 - 1.0;
                    if pos < 0.0 {
                        return (0, 0.0);
                    }
                    let i = pos as usize % period;
                    let index = if i < in_len { i } else { period - 1 - i };
                    (index, kernel(centre - pos - 1.0))
                })
                .collect();
            let sum: f64 = row.iter().map(|&(_, w)| w).sum();
            let sum = if sum == 0.0 { 1.0 } else { sum };
            for (_, w) in &mut row {
                *w /= sum;
            }
            row
        })
        .collect()
}

/// An image as f64 planes, [C][H][W] flattened, with its size.
struct Planes {
    c: usize,
    h: usize,
    w: usize,
    data: Vec<f64>,
}

impl Planes {
    /// Step 1: `trunc(255·clamp((x + 1)/2, 0, 1))` in f32, as f64.
    fn quantised(image: &Tensor) -> Result<Planes> {
        let d = image.dims();
        if d.len() != 4 || d[0] != 1 || d[2] == 0 || d[3] == 0 {
            return Err(invalid(
                "imresize",
                format!(
                    "expected a non-empty image [1, C, H, W], got {}",
                    image.shape()
                ),
            ));
        }
        let data = image
            .to_vec()?
            .into_iter()
            .map(|x| {
                let v = 255.0f32 * ((x + 1.0) / 2.0).clamp(0.0, 1.0);
                // `as u8` truncates toward zero (and maps NaN to 0), like numpy's astype(uint8).
                f64::from(v as u8)
            })
            .collect();
        Ok(Planes {
            c: d[1],
            h: d[2],
            w: d[3],
            data,
        })
    }

    fn resize_height(&self, out_h: usize, taps: &[Taps]) -> Planes {
        let (h, w) = (self.h, self.w);
        let mut data = vec![0.0; self.c * out_h * w];
        for ch in 0..self.c {
            let src = &self.data[ch * h * w..(ch + 1) * h * w];
            let dst = &mut data[ch * out_h * w..(ch + 1) * out_h * w];
            for (o, row) in taps.iter().enumerate() {
                let out = &mut dst[o * w..(o + 1) * w];
                for &(i, weight) in row {
                    for (y, x) in out.iter_mut().zip(&src[i * w..(i + 1) * w]) {
                        *y += weight * x;
                    }
                }
            }
        }
        Planes {
            c: self.c,
            h: out_h,
            w,
            data,
        }
    }

    fn resize_width(&self, out_w: usize, taps: &[Taps]) -> Planes {
        let w = self.w;
        let rows = self.c * self.h;
        let mut data = vec![0.0; rows * out_w];
        for r in 0..rows {
            let src = &self.data[r * w..(r + 1) * w];
            for (o, row) in taps.iter().enumerate() {
                data[r * out_w + o] = row.iter().map(|&(i, weight)| weight * src[i]).sum();
            }
        }
        Planes {
            c: self.c,
            h: self.h,
            w: out_w,
            data,
        }
    }

    /// Step 7: back to [−1, 1].
    fn into_tensor(self) -> Result<Tensor> {
        let data = self
            .data
            .into_iter()
            .map(|v| (((v / 255.0) as f32 - 0.5) * 2.0).clamp(-1.0, 1.0))
            .collect();
        Ok(Tensor::from_vec(
            data,
            [1, self.c, self.h, self.w],
            Device::Cpu,
        )?)
    }
}

/// Resizes with the per-axis scales `scales` (height, width) to `out` (height, width).
fn resize(image: &Tensor, scales: [f64; 2], out: [usize; 2]) -> Result<Tensor> {
    if scales.iter().any(|s| !(s.is_finite() && *s > 0.0)) || out.contains(&0) {
        return Err(invalid(
            "imresize",
            format!(
                "scales {scales:?} to {out:?} from {}: need positive scales and sizes",
                image.shape()
            ),
        ));
    }
    let mut planes = Planes::quantised(image)?;
    let antialias = scales[0] < 1.0;
    // Ascending scale, height first on ties (numpy's argsort of three values is stable).
    let order = if scales[1] < scales[0] {
        [1, 0]
    } else {
        [0, 1]
    };
    for axis in order {
        let s = scales[axis];
        if s == 1.0 {
            continue;
        }
        planes = if axis == 0 {
            let taps = contributions(planes.h, out[0], s, antialias);
            planes.resize_height(out[0], &taps)
        } else {
            let taps = contributions(planes.w, out[1], s, antialias);
            planes.resize_width(out[1], &taps)
        };
    }
    planes.into_tensor()
}

/// The output size of [`imresize`] for an input `h`×`w`: `ceil(h·s)`×`ceil(w·s)` in f64.
pub fn resized_size(h: usize, w: usize, scale: f64) -> [usize; 2] {
    [
        (h as f64 * scale).ceil() as usize,
        (w as f64 * scale).ceil() as usize,
    ]
}

/// The reference's `imresize(image, scale)` of an image [1, C, H, W] in [−1, 1] (see the module
/// docs); the output is `ceil(H·scale)`×`ceil(W·scale)`. A scale of exactly 1 returns the
/// 8-bit-quantised image.
pub fn imresize(image: &Tensor, scale: f64) -> Result<Tensor> {
    let d = image.dims();
    if d.len() != 4 {
        return Err(invalid(
            "imresize",
            format!("expected an image [1, C, H, W], got {}", image.shape()),
        ));
    }
    resize(image, [scale, scale], resized_size(d[2], d[3], scale))
}

/// The reference's `imresize_to_shape(image, [H', W'])`: the scales are `H'/H` and `W'/W`.
pub fn imresize_to_shape(image: &Tensor, out_hw: [usize; 2]) -> Result<Tensor> {
    let d = image.dims();
    if d.len() != 4 {
        return Err(invalid(
            "imresize_to_shape",
            format!("expected an image [1, C, H, W], got {}", image.shape()),
        ));
    }
    let scales = [
        out_hw[0] as f64 / d[2] as f64,
        out_hw[1] as f64 / d[3] as f64,
    ];
    resize(image, scales, out_hw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cubic_interpolates_and_sums_to_one() {
        assert_eq!(cubic(0.0), 1.0);
        assert_eq!(cubic(1.0), 0.0);
        assert_eq!(cubic(2.5), 0.0);
        let s: f64 = [-1.5, -0.5, 0.5, 1.5].iter().map(|&x| cubic(x)).sum();
        assert!((s - 1.0).abs() < 1e-12);
    }

    #[test]
    fn left_border_taps_get_no_weight() {
        // Downscaling by 2: the first output's window reaches before index 0.
        let taps = contributions(10, 5, 0.5, true);
        let total: f64 = taps[0].iter().map(|&(_, w)| w).sum();
        assert!((total - 1.0).abs() < 1e-12);
        assert!(taps[0].iter().all(|&(i, w)| w == 0.0 || i < 10));
    }

    #[test]
    fn scale_one_is_a_quantisation_round_trip() {
        let img = Tensor::from_vec(vec![-1.0, -0.5, -0.2, 1.0], [1, 1, 2, 2], Device::Cpu).unwrap();
        let out = imresize(&img, 1.0).unwrap().to_vec().unwrap();
        // 255·0.25 = 63.75 truncates to 63, 255·0.4 = 102.0 (f32: 102.00001) to 102.
        let expect = |q: f64| ((q / 255.0) as f32 - 0.5) * 2.0;
        assert_eq!(out, [-1.0, expect(63.0), expect(102.0), 1.0]);
    }
}
