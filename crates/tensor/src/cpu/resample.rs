//! Per-plane spatial kernels and their adjoints: pad2d, avg_pool2d, nearest and bilinear
//! resizing. Each runs in parallel over the N·C planes; an adjoint scatters what its forward
//! gathered, so each pair is exactly transposed.
use super::PAR_MIN;
use crate::backend::{Interpolation, PadMode, Pool2dParams};
use rayon::prelude::*;

/// Applies `f(src_plane, dst_plane)` to every (N·C) plane pair in parallel.
fn per_plane(
    x: &[f32],
    in_len: usize,
    out_len: usize,
    planes: usize,
    f: impl Fn(&[f32], &mut [f32]) + Sync,
) -> Vec<f32> {
    let mut out = super::pool::take_zeroed(planes * out_len);
    if out_len == 0 {
        return out;
    }
    if out.len() + x.len() < PAR_MIN {
        out.chunks_mut(out_len)
            .zip(x.chunks(in_len.max(1)))
            .for_each(|(o, i)| f(i, o));
        return out;
    }
    out.par_chunks_mut(out_len)
        .zip(x.par_chunks(in_len.max(1)))
        .for_each(|(o, i)| f(i, o));
    out
}

/// Source index of padded position `i` (relative to the unpadded start) in a line of `len`.
fn pad_source(i: isize, len: usize, mode: PadMode) -> Option<usize> {
    let n = len as isize;
    match mode {
        PadMode::Zero => (0..n).contains(&i).then_some(i as usize),
        // Reflection without repeating the edge; the pad is smaller than `len` (checked by Tensor).
        PadMode::Reflect => Some(if i < 0 {
            -i
        } else if i >= n {
            2 * (n - 1) - i
        } else {
            i
        } as usize),
        PadMode::Replicate => Some(i.clamp(0, n - 1) as usize),
    }
}

fn pad_maps(len: usize, before: usize, after: usize, mode: PadMode) -> Vec<Option<usize>> {
    (0..len + before + after)
        .map(|o| pad_source(o as isize - before as isize, len, mode))
        .collect()
}

pub fn pad2d(
    x: &[f32],
    [n, c, h, w]: [usize; 4],
    [l, r, t, b]: [usize; 4],
    mode: PadMode,
) -> Vec<f32> {
    let (ys, xs) = (pad_maps(h, t, b, mode), pad_maps(w, l, r, mode));
    per_plane(x, h * w, ys.len() * xs.len(), n * c, |src, dst| {
        for (row, sy) in dst.chunks_exact_mut(xs.len()).zip(&ys) {
            if let Some(sy) = sy {
                let line = &src[sy * w..(sy + 1) * w];
                // The interior is a straight copy; only the l + r edge entries need the map.
                let (left, rest) = row.split_at_mut(l);
                let (middle, right) = rest.split_at_mut(w);
                middle.copy_from_slice(line);
                for (o, sx) in left
                    .iter_mut()
                    .chain(right)
                    .zip(xs[..l].iter().chain(&xs[l + w..]))
                {
                    *o = sx.map_or(0.0, |sx| line[sx]);
                }
            }
        }
    })
}

pub fn pad2d_adjoint(
    g: &[f32],
    [n, c, hp, wp]: [usize; 4],
    [l, r, t, b]: [usize; 4],
    mode: PadMode,
) -> Vec<f32> {
    let (h, w) = (hp - t - b, wp - l - r);
    let (ys, xs) = (pad_maps(h, t, b, mode), pad_maps(w, l, r, mode));
    per_plane(g, hp * wp, h * w, n * c, |src, dst| {
        for (row, sy) in src.chunks_exact(wp).zip(&ys) {
            if let Some(sy) = sy {
                for (&v, sx) in row.iter().zip(&xs) {
                    if let Some(sx) = sx {
                        dst[sy * w + sx] += v;
                    }
                }
            }
        }
    })
}

/// Visits each pooling window as (output index, rows, cols, divisor).
fn for_each_window(
    h: usize,
    w: usize,
    p: &Pool2dParams,
    mut f: impl FnMut(usize, std::ops::Range<usize>, std::ops::Range<usize>, f32),
) {
    let [ho, wo] = p
        .output_hw([h, w])
        .expect("pool geometry checked by Tensor");
    let span = |o: usize, i: usize, len: usize| {
        let start = (o * p.stride[i]) as isize - p.padding[i] as isize;
        let end = (start + p.kernel[i] as isize).min((len + p.padding[i]) as isize);
        let padded = (end - start) as usize;
        (
            start.max(0) as usize..end.min(len as isize) as usize,
            padded,
        )
    };
    for oy in 0..ho {
        let (rows, ph) = span(oy, 0, h);
        for ox in 0..wo {
            let (cols, pw) = span(ox, 1, w);
            let count = if p.count_include_pad {
                ph * pw
            } else {
                rows.len() * cols.len()
            };
            f(oy * wo + ox, rows.clone(), cols, count as f32);
        }
    }
}

pub fn avg_pool2d(x: &[f32], [n, c, h, w]: [usize; 4], p: Pool2dParams) -> Vec<f32> {
    let [ho, wo] = p
        .output_hw([h, w])
        .expect("pool geometry checked by Tensor");
    per_plane(x, h * w, ho * wo, n * c, |src, dst| {
        for_each_window(h, w, &p, |o, rows, cols, count| {
            let s: f32 = rows
                .map(|y| {
                    src[y * w + cols.start..y * w + cols.end]
                        .iter()
                        .sum::<f32>()
                })
                .sum();
            dst[o] = s / count;
        })
    })
}

pub fn avg_pool2d_adjoint(
    g: &[f32],
    [n, c, ho, wo]: [usize; 4],
    [h, w]: [usize; 2],
    p: Pool2dParams,
) -> Vec<f32> {
    per_plane(g, ho * wo, h * w, n * c, |src, dst| {
        for_each_window(h, w, &p, |o, rows, cols, count| {
            let v = src[o] / count;
            for y in rows {
                dst[y * w + cols.start..y * w + cols.end]
                    .iter_mut()
                    .for_each(|d| *d += v);
            }
        })
    })
}

/// Per output position along one axis: two source indices and their weights.
/// Float arithmetic follows PyTorch's CPU kernels so indices and weights agree bit for bit.
fn axis_coeffs(
    len_in: usize,
    len_out: usize,
    mode: Interpolation,
) -> Vec<(usize, usize, f32, f32)> {
    (0..len_out)
        .map(|o| match mode {
            Interpolation::Nearest => {
                let scale = len_in as f32 / len_out as f32;
                let i = ((o as f32 * scale).floor() as usize).min(len_in - 1);
                (i, i, 1.0, 0.0)
            }
            Interpolation::Bilinear { align_corners } => {
                let src = if align_corners {
                    let scale = if len_out > 1 {
                        (len_in - 1) as f32 / (len_out - 1) as f32
                    } else {
                        0.0
                    };
                    scale * o as f32
                } else {
                    let scale = len_in as f32 / len_out as f32;
                    (scale * (o as f32 + 0.5) - 0.5).max(0.0)
                };
                let i0 = (src.floor() as usize).min(len_in - 1);
                let i1 = if i0 < len_in - 1 { i0 + 1 } else { i0 };
                let l1 = (src - i0 as f32).clamp(0.0, 1.0);
                (i0, i1, 1.0 - l1, l1)
            }
        })
        .collect()
}

pub fn upsample2d(
    x: &[f32],
    [n, c, h, w]: [usize; 4],
    [ho, wo]: [usize; 2],
    mode: Interpolation,
) -> Vec<f32> {
    let (ys, xs) = (axis_coeffs(h, ho, mode), axis_coeffs(w, wo, mode));
    per_plane(x, h * w, ho * wo, n * c, |src, dst| {
        for (row, &(y0, y1, a0, a1)) in dst.chunks_exact_mut(wo).zip(&ys) {
            let (r0, r1) = (&src[y0 * w..(y0 + 1) * w], &src[y1 * w..(y1 + 1) * w]);
            for (o, &(x0, x1, b0, b1)) in row.iter_mut().zip(&xs) {
                *o = match mode {
                    Interpolation::Nearest => r0[x0],
                    Interpolation::Bilinear { .. } => {
                        a0 * (b0 * r0[x0] + b1 * r0[x1]) + a1 * (b0 * r1[x0] + b1 * r1[x1])
                    }
                };
            }
        }
    })
}

pub fn upsample2d_adjoint(
    g: &[f32],
    [n, c, ho, wo]: [usize; 4],
    [h, w]: [usize; 2],
    mode: Interpolation,
) -> Vec<f32> {
    let (ys, xs) = (axis_coeffs(h, ho, mode), axis_coeffs(w, wo, mode));
    per_plane(g, ho * wo, h * w, n * c, |src, dst| {
        for (row, &(y0, y1, a0, a1)) in src.chunks_exact(wo).zip(&ys) {
            for (&v, &(x0, x1, b0, b1)) in row.iter().zip(&xs) {
                match mode {
                    Interpolation::Nearest => dst[y0 * w + x0] += v,
                    Interpolation::Bilinear { .. } => {
                        dst[y0 * w + x0] += a0 * b0 * v;
                        dst[y0 * w + x1] += a0 * b1 * v;
                        dst[y1 * w + x0] += a1 * b0 * v;
                        dst[y1 * w + x1] += a1 * b1 * v;
                    }
                }
            }
        }
    })
}
