//! conv2d and its two gradients by tiled im2col + GEMM, after dispatch to the faster schemes
//! where they apply: Winograd for wide 3×3 stride-1 convolutions on large enough images
//! (`conv_winograd`), then the shifted / direct stride-1 kernels (`conv_shifted`).
//!
//! The output pixels of each image are cut into tiles; a tile's column matrix (K = C·kh·kw rows,
//! one column per output pixel) is built in a thread-local buffer sized to stay in L2, then one
//! GEMM per tile runs on the rayon thread that built it. Tiles, not images, are the unit of
//! parallel work, so a batch of one (SinGAN) still uses every core.
use super::{conv_shifted, conv_winograd, gemm_f32};
use crate::backend::Conv2dParams;
use rayon::prelude::*;
use std::cell::RefCell;

/// Shape of one convolution, as seen from its input side.
#[derive(Clone, Copy)]
struct Geometry {
    c: usize,
    h: usize,
    w: usize,
    kh: usize,
    kw: usize,
    ho: usize,
    wo: usize,
    p: Conv2dParams,
}

impl Geometry {
    fn new(c: usize, hw: [usize; 2], khw: [usize; 2], p: Conv2dParams) -> Self {
        let [ho, wo] = p
            .output_hw(hw, khw)
            .expect("conv geometry checked by Tensor");
        Geometry {
            c,
            h: hw[0],
            w: hw[1],
            kh: khw[0],
            kw: khw[1],
            ho,
            wo,
            p,
        }
    }
    fn k(&self) -> usize {
        self.c * self.kh * self.kw
    }
    fn pixels(&self) -> usize {
        self.ho * self.wo
    }
    /// Output pixels per tile: the column tile fills about 1 MiB, and one image yields at least
    /// one tile per thread.
    fn tile(&self) -> usize {
        balanced_tile(
            self.pixels(),
            ((1usize << 18) / self.k().max(1)).clamp(64, 4096),
            16,
        )
    }

    /// The runs of consecutive output pixels on one output row that make up tile pixels
    /// `t0..t0+len`, as (offset in tile, length, output row, first output column). Computed
    /// once per tile and shared by all K column rows.
    fn runs(&self, t0: usize, len: usize) -> Vec<Run> {
        let mut runs = Vec::with_capacity(len / self.wo + 2);
        let (mut j, mut pix) = (0, t0);
        while j < len {
            let (oy, ox0) = (pix / self.wo, pix % self.wo);
            let n = (self.wo - ox0).min(len - j);
            runs.push(Run { j, n, oy, ox0 });
            j += n;
            pix += n;
        }
        runs
    }

    /// For column row (ky, kx) and a run: the input row (None in the padding), and the part
    /// `q0..q1` of the run whose input columns `first + (q − q0)·sx` lie inside the image.
    #[inline(always)]
    fn locate(&self, run: &Run, ky: usize, kx: usize) -> Option<(usize, usize, usize, usize)> {
        let [sy, sx] = self.p.stride;
        let iy = (run.oy * sy + ky * self.p.dilation[0]) as isize - self.p.padding[0] as isize;
        if iy < 0 || iy as usize >= self.h {
            return None;
        }
        let ix0 = (run.ox0 * sx + kx * self.p.dilation[1]) as isize - self.p.padding[1] as isize;
        let (w, n) = (self.w as isize, run.n as isize);
        let (q0, q1) = if sx == 1 {
            let q0 = (-ix0).clamp(0, n);
            (q0, (w - ix0).clamp(q0, n))
        } else {
            let sx = sx as isize;
            let q0 = if ix0 >= 0 { 0 } else { (-ix0 + sx - 1) / sx }.min(n);
            let q1 = if ix0 >= w { 0 } else { (w - ix0 + sx - 1) / sx }.clamp(q0, n);
            (q0, q1)
        };
        // An empty span has no first column inside the image; 0 keeps slicing in bounds.
        let first = if q1 > q0 {
            (ix0 + q0 * sx as isize) as usize
        } else {
            0
        };
        Some((iy as usize, q0 as usize, q1 as usize, first))
    }
}

/// Pixels per tile: at most `fit`, at least `min`, and a tile count that is a multiple of the
/// thread count, so one image keeps every core busy to the end (3 tiles on 2 cores would leave
/// one idle for a third of the time).
pub(super) fn balanced_tile(pixels: usize, fit: usize, min: usize) -> usize {
    let threads = rayon::current_num_threads().max(1);
    let tiles = pixels.div_ceil(fit.max(1)).div_ceil(threads) * threads;
    pixels.div_ceil(tiles).max(min)
}

/// Consecutive output pixels of one output row inside a tile.
struct Run {
    j: usize,
    n: usize,
    oy: usize,
    ox0: usize,
}

/// Where one column row reads for one run: the input row (None in the padding) and the part
/// `q0..q1` of the run inside the image, from input column `first` (see `Geometry::locate`).
type Span = Option<(usize, usize, usize, usize)>;

/// The spans of every kernel tap (ky, kx) for every run of a tile, tap-major. They do not depend
/// on the input channel, so a tile computes them once instead of once per column row: with many
/// channels on a small image (K = 4096 rows of runs of 19 pixels in SPADE's discriminator) the
/// bounds arithmetic cost more than the copies.
fn spans(g: &Geometry, runs: &[Run]) -> Vec<Span> {
    (0..g.kh * g.kw)
        .flat_map(|tap| {
            runs.iter()
                .map(move |run| g.locate(run, tap / g.kw, tap % g.kw))
        })
        .collect()
}

/// Fills `col` (K × len, row-major) with the receptive fields of output pixels `t0..t0+len`
/// of one image `x` (C × H × W).
fn im2col_tile(x: &[f32], g: &Geometry, t0: usize, len: usize, col: &mut [f32]) {
    let sx = g.p.stride[1];
    let runs = g.runs(t0, len);
    let spans = spans(g, &runs);
    let (taps, plane_len) = (g.kh * g.kw, g.h * g.w);
    let rows = col.chunks_exact_mut(len);
    // Row r is (channel r / taps, tap r % taps): the two counters avoid a division per row.
    for ((ci, tap), dst) in (0..g.c)
        .flat_map(|ci| (0..taps).map(move |t| (ci, t)))
        .zip(rows)
    {
        let plane = &x[ci * plane_len..(ci + 1) * plane_len];
        for (run, span) in runs.iter().zip(&spans[tap * runs.len()..]) {
            let out = &mut dst[run.j..run.j + run.n];
            let Some((iy, q0, q1, first)) = *span else {
                out.fill(0.0);
                continue;
            };
            out[..q0].fill(0.0);
            out[q1..].fill(0.0);
            let src = &plane[iy * g.w + first..(iy + 1) * g.w];
            match sx {
                1 => out[q0..q1].copy_from_slice(&src[..q1 - q0]),
                // Stride 2 (the discriminators' and encoders' 4×4 convolutions): pairs
                // vectorize where `step_by` stays a scalar gather.
                2 => out[q0..q1]
                    .iter_mut()
                    .zip(src.chunks(2))
                    .for_each(|(o, pair)| *o = pair[0]),
                _ => out[q0..q1]
                    .iter_mut()
                    .zip(src.iter().step_by(sx))
                    .for_each(|(o, s)| *o = *s),
            }
        }
    }
}

/// The adjoint of `im2col_tile`: adds each column entry back into its input pixel of `dx`.
fn col2im_tile_add(col: &[f32], g: &Geometry, t0: usize, len: usize, dx: &mut [f32]) {
    let sx = g.p.stride[1];
    let runs = g.runs(t0, len);
    let spans = spans(g, &runs);
    let (taps, plane_len) = (g.kh * g.kw, g.h * g.w);
    let rows = col.chunks_exact(len);
    for ((ci, tap), src) in (0..g.c)
        .flat_map(|ci| (0..taps).map(move |t| (ci, t)))
        .zip(rows)
    {
        let plane = &mut dx[ci * plane_len..(ci + 1) * plane_len];
        for (run, span) in runs.iter().zip(&spans[tap * runs.len()..]) {
            let Some((iy, q0, q1, first)) = *span else {
                continue;
            };
            let dst = &mut plane[iy * g.w + first..(iy + 1) * g.w];
            for (d, &v) in dst.iter_mut().step_by(sx).zip(&src[run.j + q0..run.j + q1]) {
                *d += v;
            }
        }
    }
}

thread_local! {
    /// Column tiles are rebuilt thousands of times per training run: keep one buffer per thread.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

pub(super) fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < len {
            s.resize(len, 0.0);
        }
        f(&mut s[..len])
    })
}

/// Runs `tasks` in parallel and returns the sum of what they add (how weight gradients reduce
/// over tiles). The tasks are cut into one contiguous group per thread; each group adds its
/// tasks in order into its own zeroed accumulator, and the accumulators are summed in group
/// order. The grouping depends only on the task and thread counts, never on which thread stole
/// what, so results are reproducible run to run (rayon's adaptive `fold` is not).
pub(super) fn sum_over_tasks(
    tasks: usize,
    len: usize,
    add: impl Fn(&mut [f32], usize) + Sync,
) -> Vec<f32> {
    let groups = rayon::current_num_threads().clamp(1, tasks.max(1));
    let per_group = tasks.div_ceil(groups).max(1);
    let partial: Vec<Vec<f32>> = (0..groups)
        .into_par_iter()
        .map(|g| {
            let mut acc = super::pool::take_zeroed(len);
            for task in g * per_group..((g + 1) * per_group).min(tasks) {
                add(&mut acc, task);
            }
            acc
        })
        .collect();
    let mut parts = partial.into_iter();
    let mut total = parts.next().unwrap_or_else(|| vec![0f32; len]);
    for part in parts {
        total.iter_mut().zip(&part).for_each(|(t, p)| *t += p);
        super::pool::give(part);
    }
    total
}

/// A pointer shared by rayon tasks that write disjoint parts of one buffer.
#[derive(Clone, Copy)]
pub(super) struct SharedMut(pub(super) *mut f32);
// SAFETY: only used where every task writes a disjoint set of elements (documented at each use).
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}
impl SharedMut {
    pub(super) fn at(self, offset: usize) -> *mut f32 {
        // SAFETY: callers pass offsets inside the allocation.
        unsafe { self.0.add(offset) }
    }
}

pub fn conv2d(
    x: &[f32],
    [n, c, h, w]: [usize; 4],
    wt: &[f32],
    [co, _, kh, kw]: [usize; 4],
    p: Conv2dParams,
) -> Vec<f32> {
    let out_hw = p
        .output_hw([h, w], [kh, kw])
        .expect("conv geometry checked by Tensor");
    if let Some(tr) = conv_winograd::choice(p, [c, co], [kh, kw], out_hw) {
        return conv_winograd::conv2d(tr, x, [n, c, h, w], wt, co, p, out_hw);
    }
    if conv_shifted::applies_forward(p, [c, co], [h, w]) {
        return conv_shifted::conv2d(x, [n, c, h, w], wt, [co, c, kh, kw], p);
    }
    let g = Geometry::new(c, [h, w], [kh, kw], p);
    let (k, pix, tile) = (g.k(), g.pixels(), g.tile());
    let ntiles = pix.div_ceil(tile);
    // Every element is written: the tiles cover all pixels, each GEMM all output channels.
    let mut out = super::pool::take(n * co * pix);
    let dst = SharedMut(out.as_mut_ptr());
    (0..n * ntiles).into_par_iter().for_each(|task| {
        let (img, t0) = (task / ntiles, (task % ntiles) * tile);
        let len = tile.min(pix - t0);
        with_scratch(k * len, |col| {
            im2col_tile(&x[img * c * h * w..(img + 1) * c * h * w], &g, t0, len, col);
            // SAFETY: computes out[img][:, t0..t0+len]ᵀ (len × co, strides (1, pix)), columns only
            // this task writes, as colᵀ (len × k, strides (1, len)) times wtᵀ (k × co, strides (1, k)).
            unsafe {
                gemm_f32(
                    len,
                    co,
                    k,
                    dst.at(img * co * pix + t0),
                    1,
                    pix as isize,
                    false,
                    col.as_ptr(),
                    1,
                    len as isize,
                    wt.as_ptr(),
                    1,
                    k as isize,
                    false,
                )
            }
        })
    });
    out
}

pub fn conv2d_weight_grad(
    x: &[f32],
    [n, c, h, w]: [usize; 4],
    gout: &[f32],
    [_, co, _, _]: [usize; 4],
    [kh, kw]: [usize; 2],
    p: Conv2dParams,
) -> Vec<f32> {
    let out_hw = p
        .output_hw([h, w], [kh, kw])
        .expect("conv geometry checked by Tensor");
    if let Some(tr) = conv_winograd::choice(p, [c, co], [kh, kw], out_hw) {
        return conv_winograd::conv2d_weight_grad(tr, x, [n, c, h, w], gout, co, p, out_hw);
    }
    if conv_shifted::applies(p, [c, co]) {
        return conv_shifted::conv2d_weight_grad(x, [n, c, h, w], gout, [n, co, 0, 0], [kh, kw], p);
    }
    let g = Geometry::new(c, [h, w], [kh, kw], p);
    let (k, pix, tile) = (g.k(), g.pixels(), g.tile());
    let ntiles = pix.div_ceil(tile);
    sum_over_tasks(n * ntiles, co * k, |acc, task| {
        let (img, t0) = (task / ntiles, (task % ntiles) * tile);
        let len = tile.min(pix - t0);
        with_scratch(k * len, |col| {
            im2col_tile(&x[img * c * h * w..(img + 1) * c * h * w], &g, t0, len, col);
            // SAFETY: computes accᵀ (k × co, strides (1, k); acc is owned by this fold) +=
            // col (k × len, strides (len, 1)) times the output-gradient tileᵀ (len × co,
            // strides (1, pix)).
            unsafe {
                gemm_f32(
                    k,
                    co,
                    len,
                    acc.as_mut_ptr(),
                    1,
                    k as isize,
                    true,
                    col.as_ptr(),
                    len as isize,
                    1,
                    gout[img * co * pix + t0..].as_ptr(),
                    1,
                    pix as isize,
                    false,
                )
            }
        });
    })
}

/// [co, c, kh, kw] → [c, co, kh, kw] with both spatial axes reversed. Blocks of 16 input
/// channels per task: each output channel's taps for the block are one contiguous read, and the
/// block's 16 output rows are written in order (a plain loop in either array's order strides
/// every access of the other by a whole row, which made this copy a tenth of the input
/// gradient's time at 1024 × 128 × 3 × 3).
fn flip_transpose(wt: &[f32], [co, c, kh, kw]: [usize; 4]) -> Vec<f32> {
    const BLOCK: usize = 16;
    let taps = kh * kw;
    let row = co * taps;
    let mut out = super::pool::take(wt.len());
    out.par_chunks_mut(BLOCK * row)
        .enumerate()
        .for_each(|(b, rows)| {
            let i0 = b * BLOCK;
            let block = rows.len() / row;
            for o in 0..co {
                let src = &wt[(o * c + i0) * taps..(o * c + i0 + block) * taps];
                for (i, taps_in) in src.chunks_exact(taps).enumerate() {
                    let dst = &mut rows[i * row + o * taps..i * row + (o + 1) * taps];
                    dst.iter_mut()
                        .zip(taps_in.iter().rev())
                        .for_each(|(d, s)| *d = *s);
                }
            }
        });
    out
}

pub fn conv2d_input_grad(
    gout: &[f32],
    [n, co, _, _]: [usize; 4],
    wt: &[f32],
    [_, c, kh, kw]: [usize; 4],
    [h, w]: [usize; 2],
    p: Conv2dParams,
) -> Vec<f32> {
    let full = [(kh - 1) * p.dilation[0], (kw - 1) * p.dilation[1]];
    // On small images with many more output than input channels, the flipped kernel's copy and
    // its im2col of the co-channel gradient outweigh the scatter below (128 → 1024 channels at
    // 16×16: 5.0 against 8.3–10.9 ms, in-process).
    let scatter_cheaper = h * w <= 256 && co >= 2 * c;
    if !scatter_cheaper && p.stride == [1, 1] && p.padding[0] <= full[0] && p.padding[1] <= full[1]
    {
        // With stride 1 the transposed convolution is a plain convolution of the output gradient,
        // zero-padded by (k−1)·d − p, with the kernel flipped and its channel axes swapped: no
        // scatter, and the fast forward path.
        let [ho, wo] = p
            .output_hw([h, w], [kh, kw])
            .expect("conv geometry checked by Tensor");
        let flipped = flip_transpose(wt, [co, c, kh, kw]);
        let q = Conv2dParams {
            stride: [1, 1],
            padding: [full[0] - p.padding[0], full[1] - p.padding[1]],
            dilation: p.dilation,
        };
        let dx = conv2d(gout, [n, co, ho, wo], &flipped, [c, co, kh, kw], q);
        // Scratch taken from the pool goes back to it (dropped, the next call would miss).
        super::pool::give(flipped);
        return dx;
    }
    let g = Geometry::new(c, [h, w], [kh, kw], p);
    let (k, pix, tile) = (g.k(), g.pixels(), g.tile());
    let ntiles = pix.div_ceil(tile);
    let img_len = c * h * w;
    // Tiles of one image scatter into overlapping input pixels, so each group of tiles adds into
    // a private image; groups are summed afterwards. With a large batch, one group per image.
    let threads = rayon::current_num_threads();
    let groups = if n >= threads { 1 } else { threads.min(ntiles) };
    let partial: Vec<Vec<f32>> = (0..n * groups)
        .into_par_iter()
        .map(|task| {
            let (img, grp) = (task / groups, task % groups);
            let mut dx = vec![0f32; img_len];
            for t in grp * ntiles / groups..(grp + 1) * ntiles / groups {
                let t0 = t * tile;
                let len = tile.min(pix - t0);
                with_scratch(k * len, |dcol| {
                    // SAFETY: dcol is k × len; Wᵀ (k × co) is read from the co × k weight through
                    // strides (1, k); the output-gradient tile is co × len with row stride pix.
                    unsafe {
                        gemm_f32(
                            k,
                            len,
                            co,
                            dcol.as_mut_ptr(),
                            len as isize,
                            1,
                            false,
                            wt.as_ptr(),
                            1,
                            k as isize,
                            gout[img * co * pix + t0..].as_ptr(),
                            pix as isize,
                            1,
                            false,
                        )
                    }
                    col2im_tile_add(dcol, &g, t0, len, &mut dx);
                });
            }
            dx
        })
        .collect();
    if groups == 1 {
        return partial.concat();
    }
    let mut out = super::pool::take_zeroed(n * img_len);
    for (img, o) in out.chunks_mut(img_len).enumerate() {
        let parts = &partial[img * groups..(img + 1) * groups];
        o.par_chunks_mut(1 << 14)
            .enumerate()
            .for_each(|(i, chunk)| {
                let off = i << 14;
                let len = chunk.len();
                for part in parts {
                    chunk
                        .iter_mut()
                        .zip(&part[off..off + len])
                        .for_each(|(o, v)| *o += v);
                }
            });
    }
    out
}
