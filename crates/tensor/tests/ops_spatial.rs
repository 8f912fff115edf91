//! NCHW ops against direct references: conv2d as a 7-loop sum (shapes large enough for several
//! im2col tiles included), its two gradients directly and through adjoint identities, pad2d in
//! every mode, avg_pool2d with and without counting padding, nearest and bilinear resizing, and
//! the adjoint of each.
mod common;

use common::*;
use proptest::prelude::*;
use tessera_tensor::{Conv2dParams, Interpolation, PadMode, Pool2dParams, Tensor};

/// Direct convolution in f64: (output, Σ|terms| per output).
fn conv_ref(x: &Tensor, w: &Tensor, p: Conv2dParams) -> (Vec<usize>, Vec<f64>, Vec<f64>) {
    let (xd, wd) = (x.dims(), w.dims());
    let (n, c, h, wi) = (xd[0], xd[1], xd[2], xd[3]);
    let (co, kh, kw) = (wd[0], wd[2], wd[3]);
    let ho = (h + 2 * p.padding[0] - p.dilation[0] * (kh - 1) - 1) / p.stride[0] + 1;
    let wo = (wi + 2 * p.padding[1] - p.dilation[1] * (kw - 1) - 1) / p.stride[1] + 1;
    let (xv, wv) = (host(x), host(w));
    let mut out = vec![0.0; n * co * ho * wo];
    let mut mag = vec![0.0; n * co * ho * wo];
    for b in 0..n {
        for o in 0..co {
            for oy in 0..ho {
                for ox in 0..wo {
                    let at = ((b * co + o) * ho + oy) * wo + ox;
                    for ci in 0..c {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * p.stride[0] + ky * p.dilation[0]) as isize
                                    - p.padding[0] as isize;
                                let ix = (ox * p.stride[1] + kx * p.dilation[1]) as isize
                                    - p.padding[1] as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= wi as isize {
                                    continue;
                                }
                                let xval = xv[((b * c + ci) * h + iy as usize) * wi + ix as usize];
                                let wval = wv[((o * c + ci) * kh + ky) * kw + kx];
                                let t = xval as f64 * wval as f64;
                                out[at] += t;
                                mag[at] += t.abs();
                            }
                        }
                    }
                }
            }
        }
    }
    (vec![n, co, ho, wo], out, mag)
}

/// Input and weight gradients of conv2d by direct scatter/gather in f64.
fn conv_grads_ref(x: &Tensor, w: &Tensor, g: &Tensor, p: Conv2dParams) -> (Vec<f64>, Vec<f64>) {
    let (xd, wd, gd) = (x.dims(), w.dims(), g.dims());
    let (n, c, h, wi) = (xd[0], xd[1], xd[2], xd[3]);
    let (co, kh, kw) = (wd[0], wd[2], wd[3]);
    let (ho, wo) = (gd[2], gd[3]);
    let (xv, wv, gv) = (host(x), host(w), host(g));
    let mut dx = vec![0.0; xv.len()];
    let mut dw = vec![0.0; wv.len()];
    for b in 0..n {
        for o in 0..co {
            for oy in 0..ho {
                for ox in 0..wo {
                    let gval = gv[((b * co + o) * ho + oy) * wo + ox] as f64;
                    for ci in 0..c {
                        for ky in 0..kh {
                            for kx in 0..kw {
                                let iy = (oy * p.stride[0] + ky * p.dilation[0]) as isize
                                    - p.padding[0] as isize;
                                let ix = (ox * p.stride[1] + kx * p.dilation[1]) as isize
                                    - p.padding[1] as isize;
                                if iy < 0 || ix < 0 || iy >= h as isize || ix >= wi as isize {
                                    continue;
                                }
                                let xi = ((b * c + ci) * h + iy as usize) * wi + ix as usize;
                                let wi_ = ((o * c + ci) * kh + ky) * kw + kx;
                                dx[xi] += gval * wv[wi_] as f64;
                                dw[wi_] += gval * xv[xi] as f64;
                            }
                        }
                    }
                }
            }
        }
    }
    (dx, dw)
}

/// Checks forward, both gradients and the adjoint identities for one geometry.
fn check_conv(
    n: usize,
    c: usize,
    co: usize,
    hw: [usize; 2],
    k: [usize; 2],
    p: Conv2dParams,
    seed: u64,
) -> Result<(), TestCaseError> {
    let x = normal(&[n, c, hw[0], hw[1]], seed);
    let w = normal(&[co, c, k[0], k[1]], seed ^ 1);
    let bias = normal(&[co], seed ^ 2);
    let what = format!("x {:?} w {:?} {p:?}", x.dims(), w.dims());
    let (shape, want, mag) = conv_ref(&x, &w, p);
    let y = x.conv2d(&w, None, p).unwrap();
    prop_assert_eq!(y.dims(), &shape[..], "{}", what);
    let kk = (c * k[0] * k[1]) as f64;
    let within =
        |got: &[f32], want: &[f64], mag: &[f64], name: &str| -> Result<(), TestCaseError> {
            for (i, (&g, (&w, &m))) in got.iter().zip(want.iter().zip(mag)).enumerate() {
                let tol = 1e-6 + (kk + 2.0) * 1.2e-7 * m;
                prop_assert!(
                    (g as f64 - w).abs() <= tol,
                    "{} {}: [{}] {} vs {}",
                    name,
                    what,
                    i,
                    g,
                    w
                );
            }
            Ok(())
        };
    within(&host(&y), &want, &mag, "conv2d")?;
    // Bias adds per output channel.
    let yb = x.conv2d(&w, Some(&bias), p).unwrap();
    let bv = host(&bias);
    let plane = shape[2] * shape[3];
    let want_b: Vec<f64> = want
        .iter()
        .enumerate()
        .map(|(i, v)| v + bv[i / plane % co] as f64)
        .collect();
    let mag_b: Vec<f64> = mag
        .iter()
        .enumerate()
        .map(|(i, m)| m + bv[i / plane % co].abs() as f64)
        .collect();
    within(&host(&yb), &want_b, &mag_b, "conv2d bias")?;

    let g = normal(&shape, seed ^ 3);
    let dx = g.conv2d_input_grad(&w, hw, p).unwrap();
    let dw = x.conv2d_weight_grad(&g, k, p).unwrap();
    prop_assert_eq!(dx.dims(), x.dims());
    prop_assert_eq!(dw.dims(), w.dims());
    let (dx_ref, dw_ref) = conv_grads_ref(&x, &w, &g, p);
    // Loose magnitude bounds for the gradients: Σ|g|·max|w| per input, Σ|g|·max|x| per weight.
    let gsum: f64 = host(&g).iter().map(|v| v.abs() as f64).sum();
    let wmax = host(&w).iter().fold(0f32, |a, v| a.max(v.abs())) as f64;
    let xmax = host(&x).iter().fold(0f32, |a, v| a.max(v.abs())) as f64;
    for (i, (&got, &r)) in host(&dx).iter().zip(&dx_ref).enumerate() {
        let tol = 1e-5 + 1e-6 * gsum * wmax / (x.numel() as f64).sqrt();
        prop_assert!(
            (got as f64 - r).abs() <= tol.max(1e-5 * r.abs()),
            "input_grad {}: [{}] {} vs {}",
            what,
            i,
            got,
            r
        );
    }
    for (i, (&got, &r)) in host(&dw).iter().zip(&dw_ref).enumerate() {
        let tol = 1e-5 + 1e-6 * gsum * xmax / (w.numel() as f64).sqrt();
        prop_assert!(
            (got as f64 - r).abs() <= tol.max(1e-5 * r.abs()),
            "weight_grad {}: [{}] {} vs {}",
            what,
            i,
            got,
            r
        );
    }
    // ⟨conv(x, w), g⟩ = ⟨x, input_grad(g, w)⟩ = ⟨w, weight_grad(x, g)⟩.
    let (yv, gv) = (host(&y), host(&g));
    let lhs = dot(&yv, &gv);
    let scale = mag
        .iter()
        .zip(&gv)
        .map(|(m, g)| m * g.abs() as f64)
        .sum::<f64>();
    let tol = 1e-5 * scale + 1e-5;
    let via_x = dot(&host(&x), &host(&dx));
    let via_w = dot(&host(&w), &host(&dw));
    prop_assert!(
        (lhs - via_x).abs() <= tol,
        "adjoint x {}: {} vs {}",
        what,
        lhs,
        via_x
    );
    prop_assert!(
        (lhs - via_w).abs() <= tol,
        "adjoint w {}: {} vs {}",
        what,
        lhs,
        via_w
    );
    Ok(())
}

/// Geometry from random parameters such that the kernel fits.
fn geometry(
    k: [usize; 2],
    padding: [usize; 2],
    dilation: [usize; 2],
    extra: [usize; 2],
) -> [usize; 2] {
    let side = |i: usize| {
        (dilation[i] * (k[i] - 1) + 1)
            .saturating_sub(2 * padding[i])
            .max(1)
            + extra[i]
    };
    [side(0), side(1)]
}

fn pad_source(i: isize, len: usize, mode: PadMode) -> Option<usize> {
    let n = len as isize;
    match mode {
        PadMode::Zero => (i >= 0 && i < n).then_some(i as usize),
        PadMode::Reflect => Some(if i < 0 {
            -i
        } else if i >= n {
            2 * n - 2 - i
        } else {
            i
        } as usize),
        PadMode::Replicate => Some(i.max(0).min(n - 1) as usize),
    }
}

fn pad_ref(x: &Tensor, [l, r, t, b]: [usize; 4], mode: PadMode) -> (Vec<usize>, Vec<f32>) {
    let d = x.dims();
    let (hp, wp) = (d[2] + t + b, d[3] + l + r);
    let xv = host(x);
    let mut out = vec![0.0; d[0] * d[1] * hp * wp];
    for plane in 0..d[0] * d[1] {
        for y in 0..hp {
            for xx in 0..wp {
                let sy = pad_source(y as isize - t as isize, d[2], mode);
                let sx = pad_source(xx as isize - l as isize, d[3], mode);
                if let (Some(sy), Some(sx)) = (sy, sx) {
                    out[(plane * hp + y) * wp + xx] = xv[(plane * d[2] + sy) * d[3] + sx];
                }
            }
        }
    }
    (vec![d[0], d[1], hp, wp], out)
}

/// PyTorch's avg_pool2d (ceil_mode off): windows clipped to the padded input for the
/// count_include_pad divisor, then to the input for the sum.
fn avg_pool_ref(x: &Tensor, p: Pool2dParams) -> (Vec<usize>, Vec<f64>) {
    let d = x.dims();
    let (h, w) = (d[2], d[3]);
    let ho = (h + 2 * p.padding[0] - p.kernel[0]) / p.stride[0] + 1;
    let wo = (w + 2 * p.padding[1] - p.kernel[1]) / p.stride[1] + 1;
    let xv = host(x);
    let mut out = vec![0.0; d[0] * d[1] * ho * wo];
    for plane in 0..d[0] * d[1] {
        for oy in 0..ho {
            for ox in 0..wo {
                let hs = (oy * p.stride[0]) as isize - p.padding[0] as isize;
                let ws = (ox * p.stride[1]) as isize - p.padding[1] as isize;
                let he = (hs + p.kernel[0] as isize).min((h + p.padding[0]) as isize);
                let we = (ws + p.kernel[1] as isize).min((w + p.padding[1]) as isize);
                let pool = ((he - hs) * (we - ws)) as f64;
                let (hs, ws) = (hs.max(0), ws.max(0));
                let (he, we) = (he.min(h as isize), we.min(w as isize));
                let mut s = 0.0;
                for y in hs..he {
                    for xx in ws..we {
                        s += xv[(plane * h + y as usize) * w + xx as usize] as f64;
                    }
                }
                let div = if p.count_include_pad {
                    pool
                } else {
                    ((he - hs) * (we - ws)) as f64
                };
                out[(plane * ho + oy) * wo + ox] = s / div;
            }
        }
    }
    (vec![d[0], d[1], ho, wo], out)
}

/// Source coordinate of a bilinear sample, in f64, as PyTorch defines it.
fn bilinear_src(dst: usize, len_in: usize, len_out: usize, align_corners: bool) -> f64 {
    if align_corners {
        if len_out > 1 {
            dst as f64 * (len_in - 1) as f64 / (len_out - 1) as f64
        } else {
            0.0
        }
    } else {
        ((dst as f64 + 0.5) * len_in as f64 / len_out as f64 - 0.5).max(0.0)
    }
}

/// (i0, i1, weight of i1) along one axis.
fn bilinear_taps(dst: usize, len_in: usize, len_out: usize, ac: bool) -> (usize, usize, f64) {
    let src = bilinear_src(dst, len_in, len_out, ac);
    let i0 = (src.floor() as usize).min(len_in - 1);
    let i1 = (i0 + 1).min(len_in - 1);
    (i0, i1, (src - i0 as f64).clamp(0.0, 1.0))
}

fn upsample_ref(x: &Tensor, [ho, wo]: [usize; 2], mode: Interpolation) -> Vec<f64> {
    let d = x.dims();
    let (h, w) = (d[2], d[3]);
    let xv = host(x);
    let mut out = vec![0.0; d[0] * d[1] * ho * wo];
    for plane in 0..d[0] * d[1] {
        let at = |y: usize, xx: usize| xv[(plane * h + y) * w + xx] as f64;
        for oy in 0..ho {
            for ox in 0..wo {
                out[(plane * ho + oy) * wo + ox] = match mode {
                    Interpolation::Nearest => {
                        // floor(dst·in/out) in exact integer arithmetic.
                        at((oy * h / ho).min(h - 1), (ox * w / wo).min(w - 1))
                    }
                    Interpolation::Bilinear { align_corners } => {
                        let (y0, y1, ly) = bilinear_taps(oy, h, ho, align_corners);
                        let (x0, x1, lx) = bilinear_taps(ox, w, wo, align_corners);
                        (1.0 - ly) * ((1.0 - lx) * at(y0, x0) + lx * at(y0, x1))
                            + ly * ((1.0 - lx) * at(y1, x0) + lx * at(y1, x1))
                    }
                };
            }
        }
    }
    out
}

/// ⟨f(x), y⟩ = ⟨x, f*(y)⟩ for a linear map and its adjoint.
fn adjoint_identity(
    what: &str,
    fx: &Tensor,
    y: &Tensor,
    x: &Tensor,
    fty: &Tensor,
) -> Result<(), TestCaseError> {
    prop_assert_eq!(fx.dims(), y.dims());
    prop_assert_eq!(fty.dims(), x.dims());
    let (fxv, yv, xv, ftyv) = (host(fx), host(y), host(x), host(fty));
    let (l, r) = (dot(&fxv, &yv), dot(&xv, &ftyv));
    let tol = 1e-5 * (dot_abs(&fxv, &yv) + dot_abs(&xv, &ftyv)) + 1e-6;
    prop_assert!((l - r).abs() <= tol, "{}: {} vs {}", what, l, r);
    Ok(())
}

fn pad_mode() -> impl Strategy<Value = PadMode> {
    prop_oneof![
        Just(PadMode::Zero),
        Just(PadMode::Reflect),
        Just(PadMode::Replicate)
    ]
}

fn interpolation() -> impl Strategy<Value = Interpolation> {
    prop_oneof![
        Just(Interpolation::Nearest),
        Just(Interpolation::Bilinear {
            align_corners: false
        }),
        Just(Interpolation::Bilinear {
            align_corners: true
        }),
    ]
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn conv2d_small(n in 1usize..=3, c in 1usize..=4, co in 1usize..=4, k in [1usize..=4, 1usize..=4],
                    stride in [1usize..=3, 1usize..=3], padding in [0usize..=3, 0usize..=3],
                    dilation in [1usize..=3, 1usize..=3], extra in [0usize..=6, 0usize..=6],
                    seed in any::<u64>()) {
        let p = Conv2dParams { stride, padding, dilation };
        check_conv(n, c, co, geometry(k, padding, dilation, extra), k, p, seed)?;
    }

    #[test]
    fn pad2d_every_mode(n in 1usize..=2, c in 1usize..=2, h in 1usize..=5, w in 1usize..=5,
                        pads in [0usize..=4, 0usize..=4, 0usize..=4, 0usize..=4], mode in pad_mode(),
                        seed in any::<u64>()) {
        let mut pads = pads;
        if mode == PadMode::Reflect {
            pads = [pads[0].min(w - 1), pads[1].min(w - 1), pads[2].min(h - 1), pads[3].min(h - 1)];
        }
        let x = normal(&[n, c, h, w], seed);
        let y = x.pad2d(pads, mode).unwrap();
        let (shape, want) = pad_ref(&x, pads, mode);
        prop_assert_eq!(y.dims(), &shape[..]);
        same(&format!("pad2d {mode:?} {pads:?}"), &host(&y), &want)?;
        let g = normal(&shape, seed ^ 1);
        let back = g.pad2d_adjoint(pads, mode).unwrap();
        adjoint_identity("pad2d_adjoint", &y, &g, &x, &back)?;
        // Direct scatter reference.
        let mut want = vec![0.0f64; x.numel()];
        let gv = host(&g);
        for (i, &v) in gv.iter().enumerate() {
            let idx = unravel(i, &shape);
            let sy = pad_source(idx[2] as isize - pads[2] as isize, h, mode);
            let sx = pad_source(idx[3] as isize - pads[0] as isize, w, mode);
            if let (Some(sy), Some(sx)) = (sy, sx) {
                want[ravel(&[idx[0], idx[1], sy, sx], &[n, c, h, w])] += v as f64;
            }
        }
        close("pad2d_adjoint", &host(&back), &want, 1e-6, 1e-6)?;
    }

    #[test]
    fn avg_pool2d_matches_pytorch_rule(n in 1usize..=2, c in 1usize..=2, k in [1usize..=4, 1usize..=4],
                                       stride in [1usize..=3, 1usize..=3], pad in [0usize..=2, 0usize..=2],
                                       extra in [0usize..=6, 0usize..=6], count_include_pad in any::<bool>(),
                                       seed in any::<u64>()) {
        let padding = [pad[0].min(k[0] / 2), pad[1].min(k[1] / 2)];
        let p = Pool2dParams { kernel: k, stride, padding, count_include_pad };
        let h = k[0].saturating_sub(2 * padding[0]).max(1) + extra[0];
        let w = k[1].saturating_sub(2 * padding[1]).max(1) + extra[1];
        let x = normal(&[n, c, h, w], seed);
        let y = x.avg_pool2d(p).unwrap();
        let (shape, want) = avg_pool_ref(&x, p);
        prop_assert_eq!(y.dims(), &shape[..]);
        close(&format!("avg_pool2d {p:?}"), &host(&y), &want, 1e-5, 1e-6)?;
        let g = normal(&shape, seed ^ 1);
        let back = g.avg_pool2d_adjoint([h, w], p).unwrap();
        adjoint_identity("avg_pool2d_adjoint", &y, &g, &x, &back)?;
    }

    #[test]
    fn upsample2d_matches_reference(n in 1usize..=2, c in 1usize..=2, h in 1usize..=12, w in 1usize..=12,
                                    ho in 1usize..=25, wo in 1usize..=25, mode in interpolation(),
                                    seed in any::<u64>()) {
        let x = normal(&[n, c, h, w], seed);
        let y = x.upsample2d([ho, wo], mode).unwrap();
        prop_assert_eq!(y.dims(), &[n, c, ho, wo][..]);
        close(&format!("upsample2d {mode:?} {h}x{w} → {ho}x{wo}"), &host(&y), &upsample_ref(&x, [ho, wo], mode), 1e-5, 1e-5)?;
        let g = normal(&[n, c, ho, wo], seed ^ 1);
        let back = g.upsample2d_adjoint([h, w], mode).unwrap();
        adjoint_identity("upsample2d_adjoint", &y, &g, &x, &back)?;
        // The named wrappers.
        let named = match mode {
            Interpolation::Nearest => x.upsample_nearest2d([ho, wo]).unwrap(),
            Interpolation::Bilinear { align_corners } => x.upsample_bilinear2d([ho, wo], align_corners).unwrap(),
        };
        same("named upsample", &host(&named), &host(&y))?;
    }
}

proptest! {
    #![proptest_config(config(6))]

    /// Output planes of 1 600 to 12 000 pixels: several im2col tiles per image, tile edges
    /// falling inside output rows, batch > 1.
    #[test]
    fn conv2d_many_tiles(n in 1usize..=2, c in 1usize..=3, co in 1usize..=3, k in [1usize..=5, 1usize..=5],
                         stride in [1usize..=2, 1usize..=2], padding in [0usize..=2, 0usize..=2],
                         dilation in [1usize..=2, 1usize..=2], hw in [40usize..=110, 40usize..=110],
                         seed in any::<u64>()) {
        let p = Conv2dParams { stride, padding, dilation };
        let hw = [hw[0].max(dilation[0] * (k[0] - 1) + 1), hw[1].max(dilation[1] * (k[1] - 1) + 1)];
        check_conv(n, c, co, hw, k, p, seed)?;
    }
}

#[test]
fn conv2d_tiles_with_many_channels() {
    // Large K = C·kh·kw shrinks the tile (2^18 / K pixels): many tiles even for modest images.
    check_conv(2, 16, 5, [37, 41], [3, 3], Conv2dParams::new(1, 1, 1), 7).unwrap();
    check_conv(1, 24, 3, [30, 33], [5, 5], Conv2dParams::new(2, 2, 1), 8).unwrap();
    // One 100×100 image, 1×1 kernel: K = 1, 10 000 pixels.
    check_conv(1, 1, 2, [100, 100], [1, 1], Conv2dParams::default(), 9).unwrap();
    // Padding beyond the full kernel span with stride 1 (no fast transposed path).
    check_conv(2, 2, 2, [9, 8], [2, 2], Conv2dParams::new(1, 3, 1), 10).unwrap();
    // Many more output than input channels on a small image: the input gradient scatters
    // columns instead of convolving with the flipped kernel.
    check_conv(2, 8, 40, [12, 14], [3, 3], Conv2dParams::new(1, 1, 1), 11).unwrap();
    // The flipped kernel's copy works in blocks of 16 input channels: 20 is one and a part.
    check_conv(1, 20, 6, [20, 21], [3, 3], Conv2dParams::new(1, 1, 1), 12).unwrap();
    // 3×3, stride 1, ≥ 32 channels and ≥ 40 × 40 outputs: Winograd F(2×2, 3×3) for the forward,
    // the input gradient (a padded forward) and the weight gradient; odd sizes end in partial
    // tiles.
    check_conv(1, 32, 33, [43, 45], [3, 3], Conv2dParams::new(1, 1, 1), 13).unwrap();
    check_conv(2, 33, 32, [44, 41], [3, 3], Conv2dParams::default(), 14).unwrap();
}

#[test]
fn pad2d_known_values() {
    let x = tensor(vec![1.0, 2.0, 3.0], &[1, 1, 1, 3]);
    let row = |mode, l, r| host(&x.pad2d([l, r, 0, 0], mode).unwrap());
    assert_eq!(
        row(PadMode::Reflect, 2, 2),
        vec![3.0, 2.0, 1.0, 2.0, 3.0, 2.0, 1.0]
    );
    assert_eq!(
        row(PadMode::Replicate, 2, 1),
        vec![1.0, 1.0, 1.0, 2.0, 3.0, 3.0]
    );
    assert_eq!(row(PadMode::Zero, 1, 2), vec![0.0, 1.0, 2.0, 3.0, 0.0, 0.0]);
    // Top/bottom pads replicate rows.
    let col = x.pad2d([0, 0, 1, 2], PadMode::Replicate).unwrap();
    assert_eq!(col.dims(), &[1, 1, 4, 3]);
    assert_eq!(host(&col), [1.0, 2.0, 3.0].repeat(4));
    // The adjoint of reflect adds each padded entry back into its source: positions 0..7 read
    // sources [2, 1, 0, 1, 2, 1, 0].
    let g = tensor((1..=7).map(|v| v as f32).collect(), &[1, 1, 1, 7]);
    assert_eq!(
        host(&g.pad2d_adjoint([2, 2, 0, 0], PadMode::Reflect).unwrap()),
        vec![3.0 + 7.0, 2.0 + 4.0 + 6.0, 1.0 + 5.0]
    );
}

#[test]
fn avg_pool2d_known_values() {
    let x = Tensor::ones([1, 1, 3, 3], CPU).unwrap();
    let p = |count_include_pad| Pool2dParams {
        kernel: [3, 3],
        stride: [1, 1],
        padding: [1, 1],
        count_include_pad,
    };
    let with = host(&x.avg_pool2d(p(true)).unwrap());
    let third = |v: f32| (v * 9.0).round();
    assert_eq!(
        with.iter().map(|&v| third(v)).collect::<Vec<_>>(),
        vec![4.0, 6.0, 4.0, 6.0, 9.0, 6.0, 4.0, 6.0, 4.0]
    );
    assert_eq!(host(&x.avg_pool2d(p(false)).unwrap()), vec![1.0; 9]);
}

#[test]
fn nearest_follows_floor_of_dst_times_in_over_out() {
    // Exhaustively for sizes up to 25 along each axis, in exact integer arithmetic.
    for len_in in 1..=25usize {
        let row = tensor((0..len_in).map(|v| v as f32).collect(), &[1, 1, 1, len_in]);
        let col = row.reshape([1, 1, len_in, 1]).unwrap();
        for len_out in 1..=25usize {
            let want: Vec<f32> = (0..len_out)
                .map(|d| (d * len_in / len_out) as f32)
                .collect();
            assert_eq!(
                host(&row.upsample_nearest2d([1, len_out]).unwrap()),
                want,
                "{len_in} → {len_out}"
            );
            assert_eq!(
                host(&col.upsample_nearest2d([len_out, 1]).unwrap()),
                want,
                "{len_in} → {len_out}"
            );
        }
    }
    // Beyond that the index is computed as PyTorch does, in f32 — floor(dst · f32(in / out)) —
    // which can land one below the exact quotient: 26 → 22 maps dst 11 to 12, not 13.
    let row = tensor((0..26).map(|v| v as f32).collect(), &[1, 1, 1, 26]);
    assert_eq!(host(&row.upsample_nearest2d([1, 22]).unwrap())[11], 12.0);
    for (len_in, len_out) in [(26, 22), (39, 33), (100, 37), (64, 200), (7, 300)] {
        let row = tensor((0..len_in).map(|v| v as f32).collect(), &[1, 1, 1, len_in]);
        let scale = len_in as f32 / len_out as f32;
        let want: Vec<f32> = (0..len_out)
            .map(|d| ((d as f32 * scale).floor() as usize).min(len_in - 1) as f32)
            .collect();
        assert_eq!(host(&row.upsample_nearest2d([1, len_out]).unwrap()), want);
    }
}

#[test]
fn bilinear_known_values() {
    let x = tensor(vec![1.0, 3.0], &[1, 1, 1, 2]);
    // align_corners: the end points map onto each other.
    assert_eq!(
        host(&x.upsample_bilinear2d([1, 3], true).unwrap()),
        vec![1.0, 2.0, 3.0]
    );
    // Half-pixel centres, clamped at the border.
    assert_eq!(
        host(&x.upsample_bilinear2d([1, 4], false).unwrap()),
        vec![1.0, 1.5, 2.5, 3.0]
    );
    // Downsizing 4 → 2 without align_corners averages pairs.
    let y = tensor(vec![1.0, 3.0, 5.0, 7.0], &[1, 1, 1, 4]);
    assert_eq!(
        host(&y.upsample_bilinear2d([1, 2], false).unwrap()),
        vec![2.0, 6.0]
    );
    assert_eq!(
        host(&y.upsample_bilinear2d([1, 2], true).unwrap()),
        vec![1.0, 7.0]
    );
    // Same size is the identity in every mode.
    let z = normal(&[2, 3, 4, 5], 1);
    for mode in [
        Interpolation::Nearest,
        Interpolation::Bilinear {
            align_corners: true,
        },
        Interpolation::Bilinear {
            align_corners: false,
        },
    ] {
        same(
            "identity resize",
            &host(&z.upsample2d([4, 5], mode).unwrap()),
            &host(&z),
        )
        .unwrap();
    }
}
