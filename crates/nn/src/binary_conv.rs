//! Convolutions of binary label maps by lookup instead of GEMM.
//!
//! SPADE's `mlp_shared` convolves the one-hot label map (+ the binary instance-edge channel):
//! at ADE20K's 151 channels that is a quarter of the generator's multiply-adds, although each
//! pixel has one or two non-zero channels. For a map whose values are all exactly 0 or 1,
//!
//! ```text
//! conv(map, W)[o, y, x] = Σ_{ky, kx} Σ_{c active at (y + ky − p, x + kx − p)} W[o, c, ky, kx]
//! ```
//!
//! (stride 1, zero padding `p = k / 2`, no bias), which costs `k²·active·C_out` additions per
//! pixel instead of `k²·C_in·C_out` multiply-adds. [`binary_conv`] is that op, differentiable in
//! `W`; its gradient is [`binary_conv_adjoint`] of the output gradient, whose own gradient is
//! [`binary_conv`] again, so the pair is closed under differentiation (grad of grad works). The
//! map itself is data: no gradient flows to it (use the dense convolution for that).
use rayon::prelude::*;
use std::sync::Arc;
use tessera_autograd::{Result, Var};
use tessera_tensor::{Device, Error, Shape, Storage, Tensor};

/// At most this many active channels per pixel on average, or the dense path is cheaper.
const MAX_MEAN_ACTIVE: usize = 4;
/// At most this many row blocks of the weight gradient, summed separately and then in order.
const ADJOINT_PARTS: usize = 16;
/// Pixels per row block at least: each block zeroes and sums a whole weight-sized buffer, which
/// at ADE20K's 151 labels (174K floats) outweighs the lookups of fewer pixels.
const ADJOINT_MIN_PIXELS: usize = 1024;

/// A binary [N, C, H, W] map stored as the list of active channels of every pixel.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BinaryMap {
    pub n: usize,
    pub channels: usize,
    pub h: usize,
    pub w: usize,
    /// `offsets[i]..offsets[i + 1]` indexes `active` for pixel `i` (row-major over n, y, x).
    offsets: Vec<u32>,
    active: Vec<u16>,
}

impl BinaryMap {
    /// The map of a dense [N, C, H, W] tensor, when every value is exactly 0 or 1 and few
    /// channels are active per pixel (`None` otherwise).
    pub fn from_dense(t: &Tensor) -> crate::Result<Option<BinaryMap>> {
        let d = t.dims();
        // Read in place: a one-hot map at 256² and 151 labels is 40 MB.
        let values = match t.storage() {
            Storage::Cpu(s) if d.len() == 4 && d[1] <= u16::MAX as usize => s.as_slice(),
            _ => return Ok(None),
        };
        let (n, c, h, w) = (d[0], d[1], d[2], d[3]);
        let plane = h * w;
        let mut offsets = Vec::with_capacity(n * plane + 1);
        let mut active = Vec::with_capacity(n * plane);
        offsets.push(0u32);
        for img in 0..n {
            let base = img * c * plane;
            for p in 0..plane {
                for ch in 0..c {
                    match values[base + ch * plane + p] {
                        0.0 => {}
                        1.0 => active.push(ch as u16),
                        _ => return Ok(None),
                    }
                }
                if active.len() > MAX_MEAN_ACTIVE * n * plane || active.len() > u32::MAX as usize {
                    return Ok(None);
                }
                offsets.push(active.len() as u32);
            }
        }
        Ok(Some(BinaryMap {
            n,
            channels: c,
            h,
            w,
            offsets,
            active,
        }))
    }

    /// The channels active at pixel (img, y, x).
    fn at(&self, img: usize, y: usize, x: usize) -> &[u16] {
        let i = (img * self.h + y) * self.w + x;
        &self.active[self.offsets[i] as usize..self.offsets[i + 1] as usize]
    }

    /// Resized to (oh, ow) by PyTorch's legacy nearest rule, `src = floor(dst · (in / out))`
    /// in f32 (PyTorch's CPU arithmetic, as tessera's dense `upsample2d`).
    pub fn resize_nearest(&self, oh: usize, ow: usize) -> BinaryMap {
        if (oh, ow) == (self.h, self.w) {
            return self.clone();
        }
        let src = |o: usize, len_in: usize, len_out: usize| {
            ((o as f32 * (len_in as f32 / len_out as f32)).floor() as usize).min(len_in - 1)
        };
        let mut offsets = Vec::with_capacity(self.n * oh * ow + 1);
        let mut active = Vec::new();
        offsets.push(0u32);
        for img in 0..self.n {
            for y in 0..oh {
                let sy = src(y, self.h, oh);
                for x in 0..ow {
                    let sx = src(x, self.w, ow);
                    active.extend_from_slice(self.at(img, sy, sx));
                    offsets.push(active.len() as u32);
                }
            }
        }
        BinaryMap {
            n: self.n,
            channels: self.channels,
            h: oh,
            w: ow,
            offsets,
            active,
        }
    }
}

/// Side of the square blocks [`transpose`] copies.
const TILE: usize = 32;

/// `batches` row-major [rows, cols] matrices → their transposes [cols, rows], in TILE×TILE
/// blocks (both the reads and the writes stay within a few cache lines per block).
fn transpose(src: &[f32], batches: usize, rows: usize, cols: usize) -> Vec<f32> {
    let mut out = vec![0f32; batches * rows * cols];
    if out.is_empty() {
        return out;
    }
    out.par_chunks_mut(rows * cols)
        .zip(src.par_chunks(rows * cols))
        .for_each(|(dst, src)| {
            dst.par_chunks_mut(TILE * rows)
                .enumerate()
                .for_each(|(tile, dst)| {
                    let c0 = tile * TILE;
                    let c1 = (c0 + TILE).min(cols);
                    for r0 in (0..rows).step_by(TILE) {
                        for c in c0..c1 {
                            let line = &mut dst[(c - c0) * rows..(c - c0 + 1) * rows];
                            for r in r0..(r0 + TILE).min(rows) {
                                line[r] = src[r * cols + c];
                            }
                        }
                    }
                });
        });
    out
}

/// The (padding, kernel, output channels) of a square odd weight [C_out, C, k, k] for `map`.
fn weight_dims(map: &BinaryMap, dims: &[usize]) -> Result<(usize, usize, usize)> {
    if dims.len() != 4 || dims[1] != map.channels || dims[2] != dims[3] || dims[2].is_multiple_of(2)
    {
        return Err(invalid(
            "binary_conv",
            dims,
            format!(
                "expected a weight [C_out, {}, k, k] with odd k",
                map.channels
            ),
        ));
    }
    Ok((dims[2] / 2, dims[2], dims[0]))
}

/// Forward kernel: weight [C_out, C, k, k] → output [N, C_out, H, W].
fn forward_kernel(map: &BinaryMap, weight: &Tensor) -> Result<Tensor> {
    let (pad, k, cout) = weight_dims(map, weight.dims())?;
    // [C, k, k, C_out]: every tap of every channel is one contiguous run of C_out values.
    let wt = transpose(&weight.to_vec()?, 1, cout, map.channels * k * k);
    let (h, w) = (map.h, map.w);
    let mut out = vec![0f32; map.n * h * w * cout];
    out.par_chunks_mut(w * cout)
        .enumerate()
        .for_each(|(row, chunk)| {
            let (img, y) = (row / h, row % h);
            for ky in 0..k {
                let Some(sy) = (y + ky).checked_sub(pad).filter(|&s| s < h) else {
                    continue;
                };
                for x in 0..w {
                    let acc = &mut chunk[x * cout..(x + 1) * cout];
                    for kx in 0..k {
                        let Some(sx) = (x + kx).checked_sub(pad).filter(|&s| s < w) else {
                            continue;
                        };
                        for &c in map.at(img, sy, sx) {
                            let start = ((c as usize * k + ky) * k + kx) * cout;
                            for (a, &v) in acc.iter_mut().zip(&wt[start..start + cout]) {
                                *a += v;
                            }
                        }
                    }
                }
            }
        });
    let nchw = transpose(&out, map.n, h * w, cout);
    Tensor::from_vec(nchw, [map.n, cout, h, w], Device::Cpu).map_err(Into::into)
}

/// Adjoint kernel: output gradient [N, C_out, H, W] → weight gradient [C_out, C, k, k].
fn adjoint_kernel(map: &BinaryMap, grad: &Tensor, kernel: usize) -> Result<Tensor> {
    let d = grad.dims();
    if d.len() != 4 || d[0] != map.n || d[2] != map.h || d[3] != map.w {
        return Err(invalid(
            "binary_conv_adjoint",
            d,
            format!(
                "expected a gradient [{}, C_out, {}, {}]",
                map.n, map.h, map.w
            ),
        ));
    }
    let (cout, k, pad) = (d[1], kernel, kernel / 2);
    let (h, w) = (map.h, map.w);
    let g = transpose(&grad.to_vec()?, map.n, cout, h * w);
    let size = map.channels * k * k * cout;
    // A partition of the rows fixed by the map's size, each part summed into its own
    // [C, k, k, C_out] buffer, and the buffers added in order: the result does not depend on the
    // thread count or scheduling.
    let rows = map.n * h;
    let parts = rows
        .min(ADJOINT_PARTS)
        .min((rows * w / ADJOINT_MIN_PIXELS).max(1));
    let partials: Vec<Vec<f32>> = (0..parts)
        .into_par_iter()
        .map(|part| {
            let mut acc = vec![0f32; size];
            for row in part * rows / parts..(part + 1) * rows / parts {
                let (img, y) = (row / h, row % h);
                for ky in 0..k {
                    let Some(sy) = (y + ky).checked_sub(pad).filter(|&s| s < h) else {
                        continue;
                    };
                    for x in 0..w {
                        let gp = &g[(row * w + x) * cout..(row * w + x + 1) * cout];
                        for kx in 0..k {
                            let Some(sx) = (x + kx).checked_sub(pad).filter(|&s| s < w) else {
                                continue;
                            };
                            for &c in map.at(img, sy, sx) {
                                let start = ((c as usize * k + ky) * k + kx) * cout;
                                for (a, &v) in acc[start..start + cout].iter_mut().zip(gp) {
                                    *a += v;
                                }
                            }
                        }
                    }
                }
            }
            acc
        })
        .collect();
    let mut dwt = vec![0f32; size];
    for part in &partials {
        for (a, &b) in dwt.iter_mut().zip(part) {
            *a += b;
        }
    }
    let dw = transpose(&dwt, 1, map.channels * k * k, cout);
    Tensor::from_vec(dw, [cout, map.channels, k, k], Device::Cpu).map_err(Into::into)
}

fn invalid(op: &'static str, dims: &[usize], why: String) -> tessera_autograd::Error {
    Error::InvalidArgument {
        op,
        shape: Shape::new(dims.to_vec()),
        why,
    }
    .into()
}

/// `conv2d(map, weight)` with stride 1, zero padding k/2 and no bias, computed by lookup:
/// [N, C, H, W] map, weight [C_out, C, k, k] (odd k) → [N, C_out, H, W]. Differentiable in
/// `weight`, to any order.
pub fn binary_conv(map: &Arc<BinaryMap>, weight: &Var) -> Result<Var> {
    let value = forward_kernel(map, weight.value())?;
    let m = Arc::clone(map);
    let kernel = weight.dims()[2];
    Ok(Var::from_op(
        "binary_conv",
        value,
        vec![weight.clone()],
        move |ctx, g| Ok(vec![ctx.grad_for(0, || binary_conv_adjoint(&m, g, kernel))?]),
    ))
}

/// The adjoint of [`binary_conv`] in its weight: output gradient [N, C_out, H, W] → weight
/// gradient [C_out, C, k, k]. Differentiable in `grad` (its gradient is [`binary_conv`]).
pub fn binary_conv_adjoint(map: &Arc<BinaryMap>, grad: &Var, kernel: usize) -> Result<Var> {
    let value = adjoint_kernel(map, grad.value(), kernel)?;
    let m = Arc::clone(map);
    Ok(Var::from_op(
        "binary_conv_adjoint",
        value,
        vec![grad.clone()],
        move |ctx, gw| Ok(vec![ctx.grad_for(0, || binary_conv(&m, gw))?]),
    ))
}
