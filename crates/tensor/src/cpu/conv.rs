//! conv2d and its two gradients by tiled im2col + GEMM.
//!
//! The output pixels of each image are cut into tiles; a tile's column matrix (K = C·kh·kw rows,
//! one column per output pixel) is built in a thread-local buffer sized to stay in L2, then one
//! GEMM per tile runs on the rayon thread that built it. Tiles, not images, are the unit of
//! parallel work, so a batch of one (SinGAN) still uses every core.
use super::gemm_f32;
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
        let fit = ((1usize << 18) / self.k().max(1)).clamp(64, 4096);
        let per_thread = self.pixels().div_ceil(rayon::current_num_threads()).max(16);
        fit.min(per_thread)
    }

    /// Visits, for column row `r` = (ci, ky, kx) and tile pixels `t0..t0+len`, each run of
    /// consecutive output pixels on one output row as (offset in tile, run length, input row or
    /// None when it falls in the padding, input column of the run's first pixel).
    #[inline]
    fn for_each_run(
        &self,
        t0: usize,
        len: usize,
        ky: usize,
        kx: usize,
        mut f: impl FnMut(usize, usize, Option<usize>, isize),
    ) {
        let [sy, sx] = self.p.stride;
        let [py, px] = self.p.padding;
        let [dy, dx] = self.p.dilation;
        let (mut j, mut pix) = (0, t0);
        while j < len {
            let (oy, ox) = (pix / self.wo, pix % self.wo);
            let run = (self.wo - ox).min(len - j);
            let iy = (oy * sy + ky * dy) as isize - py as isize;
            let row = (iy >= 0 && (iy as usize) < self.h).then_some(iy as usize);
            let ix0 = (ox * sx + kx * dx) as isize - px as isize;
            f(j, run, row, ix0);
            j += run;
            pix += run;
        }
    }
}

/// The part `q_start..q_end` of a run of `run` pixels, starting at input column `ix0` and
/// stepping by `sx`, whose input columns lie inside `0..w`.
#[inline]
fn valid_span(ix0: isize, run: usize, sx: isize, w: usize) -> (usize, usize) {
    let w = w as isize;
    let q_start = if ix0 >= 0 { 0 } else { (-ix0 + sx - 1) / sx };
    let q_end = if ix0 >= w { 0 } else { (w - ix0 + sx - 1) / sx };
    let q_end = (q_end.max(0) as usize).min(run);
    ((q_start as usize).min(q_end), q_end)
}

/// Fills `col` (K × len, row-major) with the receptive fields of output pixels `t0..t0+len`
/// of one image `x` (C × H × W).
fn im2col_tile(x: &[f32], g: &Geometry, t0: usize, len: usize, col: &mut [f32]) {
    let sx = g.p.stride[1] as isize;
    for (r, dst) in col.chunks_exact_mut(len).enumerate() {
        let (ci, ky, kx) = (r / (g.kh * g.kw), (r / g.kw) % g.kh, r % g.kw);
        let plane = &x[ci * g.h * g.w..(ci + 1) * g.h * g.w];
        g.for_each_run(t0, len, ky, kx, |j, run, row, ix0| {
            let out = &mut dst[j..j + run];
            let Some(iy) = row else {
                out.fill(0.0);
                return;
            };
            let src = &plane[iy * g.w..(iy + 1) * g.w];
            let (q0, q1) = valid_span(ix0, run, sx, g.w);
            out[..q0].fill(0.0);
            out[q1..].fill(0.0);
            if q0 == q1 {
                return;
            }
            let first = (ix0 + q0 as isize * sx) as usize;
            if sx == 1 {
                out[q0..q1].copy_from_slice(&src[first..first + q1 - q0]);
            } else {
                for (o, s) in out[q0..q1]
                    .iter_mut()
                    .zip(src[first..].iter().step_by(sx as usize))
                {
                    *o = *s;
                }
            }
        });
    }
}

/// The adjoint of `im2col_tile`: adds each column entry back into its input pixel of `dx`.
fn col2im_tile_add(col: &[f32], g: &Geometry, t0: usize, len: usize, dx: &mut [f32]) {
    let sx = g.p.stride[1] as isize;
    for (r, src) in col.chunks_exact(len).enumerate() {
        let (ci, ky, kx) = (r / (g.kh * g.kw), (r / g.kw) % g.kh, r % g.kw);
        let plane = &mut dx[ci * g.h * g.w..(ci + 1) * g.h * g.w];
        g.for_each_run(t0, len, ky, kx, |j, run, row, ix0| {
            let Some(iy) = row else { return };
            let dst = &mut plane[iy * g.w..(iy + 1) * g.w];
            let (q0, q1) = valid_span(ix0, run, sx, g.w);
            if q0 == q1 {
                return;
            }
            let first = (ix0 + q0 as isize * sx) as usize;
            for (d, &v) in dst[first..]
                .iter_mut()
                .step_by(sx as usize)
                .zip(&src[j + q0..j + q1])
            {
                *d += v;
            }
        });
    }
}

thread_local! {
    /// Column tiles are rebuilt thousands of times per training run: keep one buffer per thread.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < len {
            s.resize(len, 0.0);
        }
        f(&mut s[..len])
    })
}

/// A pointer shared by rayon tasks that write disjoint parts of one buffer.
#[derive(Clone, Copy)]
struct SharedMut(*mut f32);
// SAFETY: only used where every task writes a disjoint set of elements (documented at each use).
unsafe impl Send for SharedMut {}
unsafe impl Sync for SharedMut {}
impl SharedMut {
    fn at(self, offset: usize) -> *mut f32 {
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
    let g = Geometry::new(c, [h, w], [kh, kw], p);
    let (k, pix, tile) = (g.k(), g.pixels(), g.tile());
    let ntiles = pix.div_ceil(tile);
    let mut out = vec![0f32; n * co * pix];
    let dst = SharedMut(out.as_mut_ptr());
    (0..n * ntiles).into_par_iter().for_each(|task| {
        let (img, t0) = (task / ntiles, (task % ntiles) * tile);
        let len = tile.min(pix - t0);
        with_scratch(k * len, |col| {
            im2col_tile(&x[img * c * h * w..(img + 1) * c * h * w], &g, t0, len, col);
            // SAFETY: out[img] is co × pix row-major; this task writes only its columns t0..t0+len.
            // wt is co × k, col is k × len.
            unsafe {
                gemm_f32(
                    co,
                    len,
                    k,
                    dst.at(img * co * pix + t0),
                    pix as isize,
                    1,
                    false,
                    wt.as_ptr(),
                    k as isize,
                    1,
                    col.as_ptr(),
                    len as isize,
                    1,
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
    let g = Geometry::new(c, [h, w], [kh, kw], p);
    let (k, pix, tile) = (g.k(), g.pixels(), g.tile());
    let ntiles = pix.div_ceil(tile);
    (0..n * ntiles)
        .into_par_iter()
        .fold(
            || vec![0f32; co * k],
            |mut acc, task| {
                let (img, t0) = (task / ntiles, (task % ntiles) * tile);
                let len = tile.min(pix - t0);
                with_scratch(k * len, |col| {
                    im2col_tile(&x[img * c * h * w..(img + 1) * c * h * w], &g, t0, len, col);
                    // SAFETY: acc is co × k (owned by this fold); the output-gradient tile is co × len
                    // with row stride pix; colᵀ is len × k read through strides (1, len).
                    unsafe {
                        gemm_f32(
                            co,
                            k,
                            len,
                            acc.as_mut_ptr(),
                            k as isize,
                            1,
                            true,
                            gout[img * co * pix + t0..].as_ptr(),
                            pix as isize,
                            1,
                            col.as_ptr(),
                            1,
                            len as isize,
                            false,
                        )
                    }
                });
                acc
            },
        )
        .reduce(
            || vec![0f32; co * k],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(a, b)| *a += b);
                a
            },
        )
}

/// [co, c, kh, kw] → [c, co, kh, kw] with both spatial axes reversed.
fn flip_transpose(wt: &[f32], [co, c, kh, kw]: [usize; 4]) -> Vec<f32> {
    let mut out = vec![0f32; wt.len()];
    for o in 0..co {
        for i in 0..c {
            for y in 0..kh {
                for x in 0..kw {
                    out[((i * co + o) * kh + kh - 1 - y) * kw + kw - 1 - x] =
                        wt[((o * c + i) * kh + y) * kw + x];
                }
            }
        }
    }
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
    if p.stride == [1, 1] && p.padding[0] <= full[0] && p.padding[1] <= full[1] {
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
        return conv2d(gout, [n, co, ho, wo], &flipped, [c, co, kh, kw], q);
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
    let mut out = vec![0f32; n * img_len];
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
