//! Max pooling and its two linear companions, per (N·C) plane and in parallel over planes.
//!
//! The forward records, for every output, the offset `ky·kw + kx` of the chosen element within
//! its window (stored as f32, exact for any window of fewer than 2²⁴ positions; −1 when the
//! window lies wholly in the padding). `scatter` adds pooled values back to those positions
//! (the gradient of max pooling) and `gather` reads them (the gradient of `scatter`), so the
//! pair is exactly transposed.
use super::PAR_MIN;
use crate::backend::MaxPool2dParams;
use rayon::prelude::*;

/// Plane geometry shared by the three kernels.
#[derive(Clone, Copy)]
struct Geometry {
    h: usize,
    w: usize,
    wo: usize,
    p: MaxPool2dParams,
}

impl Geometry {
    /// Top-left corner of output `(oy, ox)`'s window, in input coordinates (may be negative).
    fn origin(&self, oy: usize, ox: usize) -> (isize, isize) {
        (
            (oy * self.p.stride[0]) as isize - self.p.padding[0] as isize,
            (ox * self.p.stride[1]) as isize - self.p.padding[1] as isize,
        )
    }
    /// The plane index of window offset `k` of output `o`, if `k` is a valid offset naming a
    /// position inside the input (offsets come from data, so they are checked, never trusted).
    fn source(&self, o: usize, k: f32) -> Option<usize> {
        let area = self.p.window_area();
        if !(k >= 0.0 && k < area as f32) {
            return None;
        }
        let k = k as usize;
        let (ky, kx) = (k / self.p.kernel[1], k % self.p.kernel[1]);
        let (y0, x0) = self.origin(o / self.wo, o % self.wo);
        let iy = y0 + (ky * self.p.dilation[0]) as isize;
        let ix = x0 + (kx * self.p.dilation[1]) as isize;
        ((0..self.h as isize).contains(&iy) && (0..self.w as isize).contains(&ix))
            .then(|| iy as usize * self.w + ix as usize)
    }
}

/// Runs `f(plane index, input plane, output planes)` over every plane, in parallel when large.
fn planes<'a, F>(input: &'a [f32], in_len: usize, outs: Vec<&'a mut [f32]>, out_len: usize, f: F)
where
    F: Fn(usize, &[f32], &mut [&mut [f32]]) + Sync,
{
    let count = outs.first().map_or(0, |o| o.len() / out_len.max(1));
    if out_len == 0 || count == 0 {
        return;
    }
    // Split every output buffer into per-plane chunks, grouped by plane.
    let mut per_plane: Vec<Vec<&mut [f32]>> = (0..count).map(|_| Vec::new()).collect();
    for out in outs {
        for (i, chunk) in out.chunks_mut(out_len).enumerate() {
            per_plane[i].push(chunk);
        }
    }
    let run = |(i, chunks): (usize, &mut Vec<&mut [f32]>)| {
        let src = &input[i * in_len..(i + 1) * in_len];
        f(i, src, chunks)
    };
    if count * (in_len + out_len) < PAR_MIN {
        per_plane.iter_mut().enumerate().for_each(run);
    } else {
        per_plane.par_iter_mut().enumerate().for_each(run);
    }
}

pub fn max_pool2d(x: &[f32], [n, c, h, w]: [usize; 4], p: MaxPool2dParams) -> (Vec<f32>, Vec<f32>) {
    let [ho, wo] = p
        .output_hw([h, w])
        .expect("pool geometry checked by Tensor");
    let g = Geometry { h, w, wo, p };
    let mut values = super::pool::take_zeroed(n * c * ho * wo);
    let mut offsets = super::pool::take_zeroed(n * c * ho * wo);
    let [kh, kw] = p.kernel;
    let [dh, dw] = p.dilation;
    planes(
        x,
        h * w,
        vec![&mut values, &mut offsets],
        ho * wo,
        |_, src, outs| {
            let (vals, rest) = outs.split_at_mut(1);
            let (vals, offs) = (&mut *vals[0], &mut *rest[0]);
            for oy in 0..ho {
                for ox in 0..wo {
                    let (y0, x0) = g.origin(oy, ox);
                    // As PyTorch: start at −∞ with the first in-bounds position, take a strictly
                    // larger value or any NaN (so NaN propagates; the last NaN wins).
                    let mut best = f32::NEG_INFINITY;
                    let mut arg: Option<usize> = None;
                    for ky in 0..kh {
                        let iy = y0 + (ky * dh) as isize;
                        if !(0..h as isize).contains(&iy) {
                            continue;
                        }
                        let row = &src[iy as usize * w..(iy as usize + 1) * w];
                        for kx in 0..kw {
                            let ix = x0 + (kx * dw) as isize;
                            if !(0..w as isize).contains(&ix) {
                                continue;
                            }
                            let v = row[ix as usize];
                            if arg.is_none() {
                                arg = Some(ky * kw + kx);
                            }
                            if v > best || v.is_nan() {
                                best = v;
                                arg = Some(ky * kw + kx);
                            }
                        }
                    }
                    let o = oy * wo + ox;
                    vals[o] = best;
                    offs[o] = arg.map_or(-1.0, |k| k as f32);
                }
            }
        },
    );
    (values, offsets)
}

pub fn max_pool2d_scatter(
    gout: &[f32],
    [n, c, ho, wo]: [usize; 4],
    offsets: &[f32],
    [h, w]: [usize; 2],
    p: MaxPool2dParams,
) -> Vec<f32> {
    let g = Geometry { h, w, wo, p };
    let mut out = super::pool::take_zeroed(n * c * h * w);
    planes(gout, ho * wo, vec![&mut out], h * w, |i, src, outs| {
        let offs = &offsets[i * ho * wo..(i + 1) * ho * wo];
        let dst = &mut *outs[0];
        for (o, (&v, &k)) in src.iter().zip(offs).enumerate() {
            if let Some(s) = g.source(o, k) {
                dst[s] += v;
            }
        }
    });
    out
}

pub fn max_pool2d_gather(
    x: &[f32],
    [n, c, h, w]: [usize; 4],
    offsets: &[f32],
    [ho, wo]: [usize; 2],
    p: MaxPool2dParams,
) -> Vec<f32> {
    let g = Geometry { h, w, wo, p };
    let mut out = super::pool::take_zeroed(n * c * ho * wo);
    planes(x, h * w, vec![&mut out], ho * wo, |i, src, outs| {
        let offs = &offsets[i * ho * wo..(i + 1) * ho * wo];
        for (o, (d, &k)) in outs[0].iter_mut().zip(offs).enumerate() {
            *d = g.source(o, k).map_or(0.0, |s| src[s]);
        }
    });
    out
}
