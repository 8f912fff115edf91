//! Stride-1 convolution without im2col: the sum of kh·kw GEMMs, one per kernel position, each
//! reading the (zero-padded) input at a fixed offset.
//!
//! The trick is to compute the output on the padded input's row pitch ("wide" pixels
//! q = oy·wp + ox, for ox < wp): then the input pixel under kernel position (ky, kx) of output q
//! is simply q + ky·dy·wp + kx·dx, so each kernel position's input matrix [C × pixels] is a
//! strided view of the input itself. The wp − wo extra columns of each row are computed and
//! dropped (≈1–6 % extra work at SinGAN's sizes); im2col's 9× copy of the input disappears.
use super::conv::{balanced_tile, sum_over_tasks, with_scratch, SharedMut};
use super::gemm_f32;
use super::resample::pad2d;
use crate::backend::{Conv2dParams, PadMode};
use rayon::prelude::*;
use std::borrow::Cow;

/// Whether the shifted scheme is used for a convolution: stride 1 and no padding. With padding it
/// would first copy the input into a padded buffer and compute wider rows; measured on this
/// project's CPU (docs/PERF.md), tiled im2col is then as fast or faster (e.g. SPADE's 3×3, pad 1
/// convs: 128→1024 channels at 16×16 took 2.9 ms by im2col against 5.7 ms shifted).
pub(super) fn applies(p: Conv2dParams) -> bool {
    p.stride == [1, 1] && p.padding == [0, 0]
}

struct Wide<'a> {
    /// The input, zero-padded: N × C × hp × wp.
    xp: Cow<'a, [f32]>,
    c: usize,
    wp: usize,
    plane: usize,
    ho: usize,
    wo: usize,
    /// Wide pixels per image that cover every output: (ho − 1)·wp + wo.
    pixels: usize,
    /// Wide pixels per tile.
    tile: usize,
    dilation: [usize; 2],
}

impl<'a> Wide<'a> {
    /// `tile_floats` bounds the per-tile buffer (channels × tile pixels) so it stays in L2.
    fn new(
        x: &'a [f32],
        [n, c, h, w]: [usize; 4],
        [kh, kw]: [usize; 2],
        p: Conv2dParams,
        tile_channels: usize,
    ) -> Self {
        let [py, px] = p.padding;
        let xp = if py == 0 && px == 0 {
            Cow::Borrowed(x)
        } else {
            Cow::Owned(pad2d(x, [n, c, h, w], [px, px, py, py], PadMode::Zero))
        };
        let (hp, wp) = (h + 2 * py, w + 2 * px);
        let [ho, wo] = p
            .output_hw([h, w], [kh, kw])
            .expect("conv geometry checked by Tensor");
        let pixels = (ho - 1) * wp + wo;
        let tile = balanced_tile(
            pixels,
            ((1usize << 17) / tile_channels.max(1)).clamp(256, 8192),
            64,
        );
        Wide {
            xp,
            c,
            wp,
            plane: hp * wp,
            ho,
            wo,
            pixels,
            tile,
            dilation: p.dilation,
        }
    }
    fn tiles(&self) -> usize {
        self.pixels.div_ceil(self.tile)
    }
    /// Input offset of kernel position (ky, kx) relative to the output's wide pixel.
    fn offset(&self, ky: usize, kx: usize) -> usize {
        ky * self.dilation[0] * self.wp + kx * self.dilation[1]
    }
    /// Visits the valid output pixels of wide pixels q0..q0+len as runs
    /// (offset in tile, output pixel index oy·wo + ox, run length).
    fn for_each_output_run(&self, q0: usize, len: usize, mut f: impl FnMut(usize, usize, usize)) {
        let mut q = q0;
        while q < q0 + len {
            let (oy, ox) = (q / self.wp, q % self.wp);
            let row_end = (oy + 1) * self.wp;
            if ox < self.wo {
                let n = (self.wo - ox).min(q0 + len - q);
                f(q - q0, oy * self.wo + ox, n);
            }
            q = row_end.min(q0 + len);
        }
    }
}

pub fn conv2d(
    x: &[f32],
    shape: [usize; 4],
    wt: &[f32],
    [co, _, kh, kw]: [usize; 4],
    p: Conv2dParams,
) -> Vec<f32> {
    let n = shape[0];
    let g = Wide::new(x, shape, [kh, kw], p, co);
    let (c, plane, out_pix, ntiles) = (g.c, g.plane, g.ho * g.wo, g.tiles());
    let mut out = super::pool::take_zeroed(n * co * out_pix);
    let dst = SharedMut(out.as_mut_ptr());
    (0..n * ntiles).into_par_iter().for_each(|task| {
        let (img, q0) = (task / ntiles, (task % ntiles) * g.tile);
        let len = g.tile.min(g.pixels - q0);
        with_scratch(co * len, |acc| {
            for ky in 0..kh {
                for kx in 0..kw {
                    let src = &g.xp[img * c * plane + q0 + g.offset(ky, kx)..];
                    // SAFETY: acc is co × len (as len × co with strides (1, len)); the input view is
                    // len × c with strides (1, plane), in bounds because the wide pixels end at
                    // (ho−1)·wp + wo and the largest offset reaches the padded plane's last pixel;
                    // the weight view wt[:, :, ky, kx]ᵀ is c × co with strides (kh·kw, c·kh·kw).
                    unsafe {
                        gemm_f32(
                            len,
                            co,
                            c,
                            acc.as_mut_ptr(),
                            1,
                            len as isize,
                            ky + kx > 0,
                            src.as_ptr(),
                            1,
                            plane as isize,
                            wt[ky * kw + kx..].as_ptr(),
                            (kh * kw) as isize,
                            (c * kh * kw) as isize,
                            false,
                        )
                    }
                }
            }
            g.for_each_output_run(q0, len, |t, o_pix, run| {
                for o in 0..co {
                    // SAFETY: out[img][o] has out_pix entries; the runs of distinct tiles cover
                    // distinct output pixels, so no two tasks write the same element.
                    let d = unsafe {
                        std::slice::from_raw_parts_mut(
                            dst.at((img * co + o) * out_pix + o_pix),
                            run,
                        )
                    };
                    d.copy_from_slice(&acc[o * len + t..o * len + t + run]);
                }
            });
        })
    });
    out
}

pub fn conv2d_weight_grad(
    x: &[f32],
    shape: [usize; 4],
    gout: &[f32],
    [_, co, _, _]: [usize; 4],
    [kh, kw]: [usize; 2],
    p: Conv2dParams,
) -> Vec<f32> {
    let n = shape[0];
    let g = Wide::new(x, shape, [kh, kw], p, co);
    let (c, plane, out_pix, ntiles) = (g.c, g.plane, g.ho * g.wo, g.tiles());
    let wlen = co * c * kh * kw;
    let by_position = sum_over_tasks(n * ntiles, wlen, |acc, task| {
        let (img, q0) = (task / ntiles, (task % ntiles) * g.tile);
        let len = g.tile.min(g.pixels - q0);
        with_scratch(co * len, |gw| {
            // The output gradient on wide pixels, zero on the columns past wo.
            gw.fill(0.0);
            g.for_each_output_run(q0, len, |t, o_pix, run| {
                for o in 0..co {
                    let src = &gout[(img * co + o) * out_pix + o_pix..][..run];
                    gw[o * len + t..o * len + t + run].copy_from_slice(src);
                }
            });
            for ky in 0..kh {
                for kx in 0..kw {
                    let src = &g.xp[img * c * plane + q0 + g.offset(ky, kx)..];
                    // SAFETY: gw is co × len row-major; the input view (len × c, strides
                    // (1, plane)) is in bounds as in `conv2d`; the destination is the
                    // contiguous co × c block of kernel position (ky, kx) in this fold's acc.
                    unsafe {
                        gemm_f32(
                            co,
                            c,
                            len,
                            acc[(ky * kw + kx) * co * c..].as_mut_ptr(),
                            c as isize,
                            1,
                            true,
                            gw.as_ptr(),
                            len as isize,
                            1,
                            src.as_ptr(),
                            1,
                            plane as isize,
                            false,
                        )
                    }
                }
            }
        });
    });
    // Accumulated as [kh·kw][co][c] so each GEMM writes a contiguous block; reorder to [co][c][kh][kw].
    let mut out = super::pool::take_zeroed(wlen);
    for (pos, block) in by_position.chunks_exact(co * c).enumerate() {
        for (oc, &v) in block.iter().enumerate() {
            out[oc * kh * kw + pos] = v;
        }
    }
    out
}
