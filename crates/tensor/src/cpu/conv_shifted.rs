//! Stride-1 convolution without im2col: the sum of kh·kw GEMMs, one per kernel position, each
//! reading the (zero-padded) input at a fixed offset.
//!
//! The trick is to compute the output on the padded input's row pitch ("wide" pixels
//! q = oy·wp + ox, for ox < wp): then the input pixel under kernel position (ky, kx) of output q
//! is simply q + ky·dy·wp + kx·dx, so each kernel position's input matrix [C × pixels] is a
//! strided view of the input itself. The wp − wo extra columns of each row are computed and
//! dropped (≈1–6 % extra work at SinGAN's sizes); im2col's 9× copy of the input disappears.
use super::conv::{balanced_tile, sum_over_tasks, with_scratch, SharedMut};
use super::conv_direct::{self, Isa, PackedWeights, GRAD_TAPS};
use super::gemm_f32;
use crate::backend::Conv2dParams;
use rayon::prelude::*;
use std::borrow::Cow;

/// Input channels below which the kernel-position GEMMs (inner dimension c) are too thin and
/// im2col's single GEMM (inner dimension c·kh·kw) is faster: SinGAN's RGB head convolutions.
/// On the AVX2 machine, 3 → 128 at 155×203 took 1.5 ms by im2col against 5.3 ms shifted with
/// `gemm` (2.0 direct), and its weight gradient 1.65 ms against 6.9; 3 → 64 at 79×101 0.21 ms
/// against 0.64 (0.23 direct), weight gradient 0.25 against 0.44.
const MIN_CHANNELS: usize = 8;

/// Output channels up to which the direct kernels take padded convolutions whatever the number
/// of inputs: im2col's GEMM then has a degenerate width of `co` columns. A patch discriminator's
/// last convolution (4 × 4, padding 2, to one channel) on the AVX2 machine, 4 images of 18 × 18
/// (alternating builds, two runs): 256 → 1 forward 0.49–0.50 ms against 2.39–2.82 by im2col,
/// weight gradient 0.60–0.68 against 2.36–3.68; 512 → 1 forward 0.97–1.06 against 5.67–5.77,
/// weight gradient 1.46–1.62 against 7.26–7.51; 256 → 16 forward 1.82–2.25 against 4.43–5.52,
/// weight gradient 3.53–3.88 against 5.61–6.48. (At 256 → 64 and 128 the two were mixed.)
const FEW_OUTPUTS: usize = 16;

/// Whether the shifted scheme is used for a convolution of `c` to `co` channels: stride 1, at
/// least `MIN_CHANNELS` inputs, and either no padding or the direct kernels with at most 128
/// channels on either side (or at most `FEW_OUTPUTS` outputs). With padding the input is first
/// copied into a zero-padded buffer;
/// with `gemm` for the sums that measured slower than tiled im2col (SPADE's 3×3, pad 1 convs:
/// 128 → 1024 channels at 16×16 took 2.9 ms by im2col against 5.7 ms shifted), and so it still
/// does with the direct kernels for SPADE's wide layers (5.8 ms against 10.4 ms on one thread),
/// while at 64 and 128 channels on 128×128 and 64×64 images the direct AVX-512 kernels take
/// 0.7–0.9 of im2col's time (docs/PERF.md).
pub(super) fn applies(p: Conv2dParams, [c, co]: [usize; 2]) -> bool {
    p.stride == [1, 1]
        && c >= MIN_CHANNELS
        && (p.padding == [0, 0]
            || (((c <= 128 && co <= 128) || co <= FEW_OUTPUTS) && conv_direct::available()))
}

/// Whether the forward convolution of an h × w image takes the shifted scheme: as [`applies`],
/// and also, with the direct kernels:
/// - padded convolutions from up to 256 input channels to at most 128 outputs on images of at
///   least 64 × 64 (the input gradient of SPADE's γ/β convolutions at 256 channels, its
///   generator's 256 → 128 convolutions). There the direct AVX-512 kernel took 0.85–0.88 of
///   im2col's time (256 → 128 at 64² and 128², five measurements); at 32² the two were even and at
///   16² and from 512 channels im2col was faster.
/// - fewer than `MIN_CHANNELS` inputs on images under 64 × 64 (SinGAN's coarse RGB heads and the
///   input gradients of its RGB tails): 32 → 3's input gradient at 25×34 took 0.022–0.030 ms
///   direct against 0.026–0.049 by im2col (AVX2, three runs); from 64 × 64 im2col is faster, as
///   [`MIN_CHANNELS`] says.
pub(super) fn applies_forward(p: Conv2dParams, [c, co]: [usize; 2], [h, w]: [usize; 2]) -> bool {
    let direct = p.stride == [1, 1] && conv_direct::available();
    applies(p, [c, co])
        || (direct && (MIN_CHANNELS..=256).contains(&c) && co <= 128 && h * w >= 64 * 64)
        || (direct && c < MIN_CHANNELS && h * w < 64 * 64)
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

/// Planes of h × w padded by py rows above and below and px columns on each side, written in
/// one pass (no zero fill of the whole buffer before the copy).
fn zero_pad(x: &[f32], [planes, h, w]: [usize; 3], [py, px]: [usize; 2]) -> Vec<f32> {
    let wp = w + 2 * px;
    let plane = (h + 2 * py) * wp;
    let mut out = super::pool::take(planes * plane);
    let pad_plane = |(dst, src): (&mut [f32], &[f32])| {
        let (top, rest) = dst.split_at_mut(py * wp);
        let (middle, bottom) = rest.split_at_mut(h * wp);
        top.fill(0.0);
        bottom.fill(0.0);
        for (row, line) in middle.chunks_exact_mut(wp).zip(src.chunks_exact(w)) {
            row[..px].fill(0.0);
            row[px..px + w].copy_from_slice(line);
            row[px + w..].fill(0.0);
        }
    };
    if out.len() < 1 << 16 {
        out.chunks_exact_mut(plane)
            .zip(x.chunks_exact(h * w))
            .for_each(pad_plane);
    } else {
        out.par_chunks_exact_mut(plane)
            .zip(x.par_chunks_exact(h * w))
            .for_each(pad_plane);
    }
    out
}

impl Drop for Wide<'_> {
    /// The padded copy is as large as the input; SinGAN pads the same shapes at every step.
    fn drop(&mut self) {
        if let Cow::Owned(buf) = std::mem::take(&mut self.xp) {
            super::pool::give(buf);
        }
    }
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
            Cow::Owned(zero_pad(x, [n * c, h, w], [py, px]))
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
    /// `offset` of every kernel position, in the weights' (ky, kx) order.
    fn offsets(&self, [kh, kw]: [usize; 2]) -> Vec<usize> {
        (0..kh * kw).map(|t| self.offset(t / kw, t % kw)).collect()
    }
    /// Image `img` of the padded input.
    fn image(&self, img: usize) -> &[f32] {
        &self.xp[img * self.c * self.plane..(img + 1) * self.c * self.plane]
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
    wshape: [usize; 4],
    p: Conv2dParams,
) -> Vec<f32> {
    conv2d_with(x, shape, wt, wshape, p, conv_direct::isa())
}

/// `conv2d` by `conv_direct`'s kernel for instruction set `direct`, or by kh·kw GEMMs per tile.
fn conv2d_with(
    x: &[f32],
    shape: [usize; 4],
    wt: &[f32],
    [co, _, kh, kw]: [usize; 4],
    p: Conv2dParams,
    direct: Option<Isa>,
) -> Vec<f32> {
    let n = shape[0];
    let g = Wide::new(x, shape, [kh, kw], p, co);
    let (c, plane, out_pix, ntiles) = (g.c, g.plane, g.ho * g.wo, g.tiles());
    let mut out = super::pool::take(n * co * out_pix);
    let dst = SharedMut(out.as_mut_ptr());
    let direct = direct.map(|isa| (isa, PackedWeights::new(wt, co, c, kh * kw)));
    let offsets = g.offsets([kh, kw]);
    (0..n * ntiles).into_par_iter().for_each(|task| {
        let (img, q0) = (task / ntiles, (task % ntiles) * g.tile);
        let len = g.tile.min(g.pixels - q0);
        with_scratch(co * len, |acc| {
            if let Some((isa, w)) = &direct {
                conv_direct::forward_tile(*isa, w, g.image(img), plane, q0, len, &offsets, acc);
            } else {
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
    let g = Wide::new(x, shape, [kh, kw], p, co);
    // The direct kernel handles 3×3 kernels. It computes output channels in vectors of 16 and
    // transposes the output gradient first. With AVX-512, `gemm` measured faster below 16 output
    // channels (32 → 3 channels at 25×34: 0.03 ms against 0.11 ms, one thread), below 16 input
    // channels (3 → 32: 0.042 ms against 0.058 ms) and above 64 (128 → 128 at 196×196: 129 ms
    // against 147 ms), while at 32 and 64 channels the direct kernel takes 0.6 and 0.7 of gemm's
    // time. With AVX2 it takes 0.80 (32 → 32 at 35×44) and 0.89 (64 → 64 at 30×36).
    match (
        <[usize; GRAD_TAPS]>::try_from(g.offsets([kh, kw])),
        conv_direct::isa(),
    ) {
        (Ok(offsets), Some(isa)) if co >= 16 && (16..=64).contains(&g.c) => {
            weight_grad_direct(isa, &g, shape[0], gout, co, &offsets)
        }
        _ => weight_grad_gemm(&g, shape[0], gout, co, [kh, kw]),
    }
}

/// The weight gradient by `conv_direct`'s kernel, accumulated as [c][kh·kw][co rounded up to 16]
/// so that output channels are contiguous vectors.
fn weight_grad_direct(
    isa: Isa,
    g: &Wide,
    n: usize,
    gout: &[f32],
    co: usize,
    offsets: &[usize; GRAD_TAPS],
) -> Vec<f32> {
    let (c, plane, out_pix, ntiles) = (g.c, g.plane, g.ho * g.wo, g.tiles());
    let cop = conv_direct::padded_channels(co);
    let summed = sum_over_tasks(n * ntiles, c * GRAD_TAPS * cop, |acc, task| {
        let (img, q0) = (task / ntiles, (task % ntiles) * g.tile);
        let len = g.tile.min(g.pixels - q0);
        with_scratch(len * cop, |gt| {
            // The output gradient on wide pixels, transposed to pixel-major; zero on the columns
            // past wo and on the padding channels.
            gt.fill(0.0);
            g.for_each_output_run(q0, len, |t, o_pix, run| {
                // 16 pixels at a time, so the 16 rows of gt being filled stay in L1.
                for r0 in (0..run).step_by(16) {
                    let n = 16.min(run - r0);
                    for o in 0..co {
                        let src = &gout[(img * co + o) * out_pix + o_pix + r0..][..n];
                        for (r, &v) in src.iter().enumerate() {
                            gt[(t + r0 + r) * cop + o] = v;
                        }
                    }
                }
            });
            conv_direct::weight_grad_tile(
                isa,
                gt,
                cop,
                g.image(img),
                c,
                plane,
                q0,
                len,
                offsets,
                acc,
            );
        });
    });
    let mut out = super::pool::take(co * c * GRAD_TAPS);
    for (o, dst) in out.chunks_exact_mut(c * GRAD_TAPS).enumerate() {
        for (it, d) in dst.iter_mut().enumerate() {
            *d = summed[it * cop + o];
        }
    }
    super::pool::give(summed);
    out
}

fn weight_grad_gemm(g: &Wide, n: usize, gout: &[f32], co: usize, [kh, kw]: [usize; 2]) -> Vec<f32> {
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
    super::pool::give(by_position);
    out
}

#[cfg(test)]
mod tests {
    use super::super::conv_direct::tests::fill;
    use super::*;

    /// Calls f(output index, weight index, input index) for every product of the stride-1
    /// convolution's definition; returns the output's height and width.
    fn for_each_term(
        [n, c, h, w]: [usize; 4],
        [co, kh, kw]: [usize; 3],
        p: Conv2dParams,
        mut f: impl FnMut(usize, usize, usize),
    ) -> [usize; 2] {
        let [ho, wo] = p.output_hw([h, w], [kh, kw]).unwrap();
        for b in 0..n {
            for o in 0..co {
                for oy in 0..ho {
                    for ox in 0..wo {
                        let out = ((b * co + o) * ho + oy) * wo + ox;
                        for i in 0..c {
                            for ky in 0..kh {
                                for kx in 0..kw {
                                    let iy = (oy + ky * p.dilation[0]).checked_sub(p.padding[0]);
                                    let ix = (ox + kx * p.dilation[1]).checked_sub(p.padding[1]);
                                    if let (Some(iy), Some(ix)) = (iy, ix) {
                                        if iy < h && ix < w {
                                            f(
                                                out,
                                                ((o * c + i) * kh + ky) * kw + kx,
                                                ((b * c + i) * h + iy) * w + ix,
                                            );
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        [ho, wo]
    }

    /// |got − want| within f32 rounding of the sum of |terms| (the sums run in a different order).
    fn check(what: &str, got: &[f32], want: &[f64], mag: &[f64]) {
        assert_eq!(got.len(), want.len(), "{what}: length");
        for (k, ((&g, &w), &m)) in got.iter().zip(want).zip(mag).enumerate() {
            assert!(
                (g as f64 - w).abs() <= 1e-6 + 4e-6 * m,
                "{what}: element {k}: {g} vs {w}"
            );
        }
    }

    /// Forward, input gradient and weight gradient of every variant this module (and the stride-1
    /// input gradient routed through it) can take, against the definition.
    fn check_all(shape: [usize; 4], [co, kh, kw]: [usize; 3], p: Conv2dParams, seed: u64) {
        let [n, c, h, w] = shape;
        let [ho, wo] = p.output_hw([h, w], [kh, kw]).unwrap();
        let x = fill(n * c * h * w, seed);
        let wt = fill(co * c * kh * kw, seed + 1);
        let gout = fill(n * co * ho * wo, seed + 2);
        let what = format!("x {shape:?} w {:?} {p:?}", [co, c, kh, kw]);
        // Each result with the sum of its terms' magnitudes, which bounds its rounding error.
        let mut y = (vec![0f64; gout.len()], vec![0f64; gout.len()]);
        let mut dx = (vec![0f64; x.len()], vec![0f64; x.len()]);
        let mut dw = (vec![0f64; wt.len()], vec![0f64; wt.len()]);
        for_each_term(shape, [co, kh, kw], p, |o, a, b| {
            let (wa, xb, g) = (wt[a] as f64, x[b] as f64, gout[o] as f64);
            y.0[o] += wa * xb;
            y.1[o] += (wa * xb).abs();
            dx.0[b] += wa * g;
            dx.1[b] += (wa * g).abs();
            dw.0[a] += xb * g;
            dw.1[a] += (xb * g).abs();
        });
        let (y, y_mag) = y;
        let (dx, dx_mag) = dx;
        let (dw, dw_mag) = dw;

        let wshape = [co, c, kh, kw];
        let variants = conv_direct::supported().into_iter().map(Some);
        for direct in std::iter::once(None).chain(variants) {
            let got = conv2d_with(&x, shape, &wt, wshape, p, direct);
            check(
                &format!("conv2d (direct {direct:?}) {what}"),
                &got,
                &y,
                &y_mag,
            );
        }
        let g = Wide::new(&x, shape, [kh, kw], p, co);
        let got = weight_grad_gemm(&g, n, &gout, co, [kh, kw]);
        check(&format!("weight grad (gemm) {what}"), &got, &dw, &dw_mag);
        if let Ok(offsets) = <[usize; GRAD_TAPS]>::try_from(g.offsets([kh, kw])) {
            for isa in conv_direct::supported() {
                let got = weight_grad_direct(isa, &g, n, &gout, co, &offsets);
                check(
                    &format!("weight grad (direct {isa:?}) {what}"),
                    &got,
                    &dw,
                    &dw_mag,
                );
            }
        }
        // The public entry points, whichever variant they pick.
        let got = super::super::conv::conv2d(&x, shape, &wt, wshape, p);
        check(&format!("conv2d {what}"), &got, &y, &y_mag);
        let got =
            super::super::conv::conv2d_input_grad(&gout, [n, co, ho, wo], &wt, wshape, [h, w], p);
        check(&format!("input grad {what}"), &got, &dx, &dx_mag);
        let got =
            super::super::conv::conv2d_weight_grad(&x, shape, &gout, [n, co, 0, 0], [kh, kw], p);
        check(&format!("weight grad {what}"), &got, &dw, &dw_mag);
    }

    #[test]
    fn every_variant_matches_the_definition() {
        let p = |padding: [usize; 2], dilation: [usize; 2]| Conv2dParams {
            stride: [1, 1],
            padding,
            dilation,
        };
        // SinGAN's coarse shape; channel counts that are not multiples of 8, 16 or the 16-channel
        // input chunks; odd sizes; batch 2; padding (the input gradient always pads) and dilation;
        // 1×1 and 5×3 kernels (no direct weight gradient); one and three output channels.
        check_all([1, 32, 35, 35], [32, 3, 3], p([0, 0], [1, 1]), 1);
        check_all([2, 19, 13, 17], [21, 3, 3], p([1, 1], [1, 1]), 2);
        check_all([1, 40, 11, 9], [3, 3, 3], p([2, 1], [1, 1]), 3);
        check_all([1, 70, 9, 12], [17, 3, 3], p([0, 0], [2, 1]), 4);
        check_all([1, 5, 20, 7], [33, 3, 3], p([1, 2], [1, 2]), 5);
        check_all([2, 8, 10, 10], [9, 1, 1], p([0, 0], [1, 1]), 6);
        check_all([1, 6, 12, 9], [20, 5, 3], p([2, 1], [1, 1]), 7);
        check_all([1, 16, 9, 11], [1, 3, 3], p([0, 0], [1, 1]), 8);
        // Several tiles per image, tile edges inside output rows, a padded copy large enough to
        // be written in parallel.
        check_all([1, 24, 60, 50], [16, 3, 3], p([1, 1], [1, 1]), 9);
        // More than 128 input channels on an image of 64 × 64: the forward's wider direct range.
        check_all([1, 130, 64, 64], [5, 3, 3], p([1, 1], [1, 1]), 10);
        // A patch discriminator's tail: more than 128 inputs to one output (`FEW_OUTPUTS`), 4 × 4.
        check_all([2, 140, 9, 8], [1, 4, 4], p([2, 2], [1, 1]), 11);
    }
}
