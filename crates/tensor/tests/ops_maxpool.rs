//! max_pool2d against a naive reference (an explicitly −∞-padded plane, every dilated window
//! position visited in row-major order, the first maximum kept), its recorded window offsets,
//! the scatter/gather pair (adjoint identity, gather of the recorded offsets = the pooled
//! values), PyTorch's known values (NaN, ties, −∞ inputs, windows wholly in the padding), and
//! typed errors for bad geometry and bad offsets.
mod common;

use common::*;
use proptest::prelude::*;
use tessera_tensor::{Error, MaxPool2dParams, Tensor};

/// Output shape and (value, offset) per output, computed on an explicitly padded plane.
fn max_pool_ref(x: &Tensor, p: MaxPool2dParams) -> (Vec<usize>, Vec<f32>, Vec<f32>) {
    let d = x.dims();
    let (h, w) = (d[2], d[3]);
    let [kh, kw] = p.kernel;
    let [sh, sw] = p.stride;
    let [ph, pw] = p.padding;
    let [dh, dw] = p.dilation;
    let (hp, wp) = (h + 2 * ph, w + 2 * pw);
    let ho = (hp - dh * (kh - 1) - 1) / sh + 1;
    let wo = (wp - dw * (kw - 1) - 1) / sw + 1;
    let xv = host(x);
    let mut vals = Vec::new();
    let mut offs = Vec::new();
    for plane in 0..d[0] * d[1] {
        // None marks padding.
        let mut padded = vec![None; hp * wp];
        for y in 0..h {
            for xx in 0..w {
                padded[(y + ph) * wp + xx + pw] = Some(xv[(plane * h + y) * w + xx]);
            }
        }
        for oy in 0..ho {
            for ox in 0..wo {
                let mut best: Option<(f32, usize)> = None;
                for ky in 0..kh {
                    for kx in 0..kw {
                        let v = padded[(oy * sh + ky * dh) * wp + ox * sw + kx * dw];
                        if let Some(v) = v {
                            if best.is_none_or(|(b, _)| v > b) {
                                best = Some((v, ky * kw + kx));
                            }
                        }
                    }
                }
                vals.push(best.map_or(f32::NEG_INFINITY, |b| b.0));
                offs.push(best.map_or(-1.0, |b| b.1 as f32));
            }
        }
    }
    (vec![d[0], d[1], ho, wo], vals, offs)
}

/// The naive scatter: each pooled value added at the input position its offset names.
fn scatter_ref(g: &Tensor, offs: &[f32], [h, w]: [usize; 2], p: MaxPool2dParams) -> Vec<f64> {
    let d = g.dims();
    let (ho, wo) = (d[2], d[3]);
    let gv = host(g);
    let mut out = vec![0.0; d[0] * d[1] * h * w];
    for (i, (&v, &k)) in gv.iter().zip(offs).enumerate() {
        if k < 0.0 {
            continue;
        }
        let (plane, o) = (i / (ho * wo), i % (ho * wo));
        let (oy, ox) = (o / wo, o % wo);
        let k = k as usize;
        let (ky, kx) = (k / p.kernel[1], k % p.kernel[1]);
        let iy = (oy * p.stride[0] + ky * p.dilation[0]) as isize - p.padding[0] as isize;
        let ix = (ox * p.stride[1] + kx * p.dilation[1]) as isize - p.padding[1] as isize;
        assert!(iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w);
        out[(plane * h + iy as usize) * w + ix as usize] += v as f64;
    }
    out
}

/// A geometry and an input size for which it is valid.
fn geometry() -> impl Strategy<Value = (MaxPool2dParams, [usize; 2])> {
    (
        [1usize..=4, 1usize..=4],
        [1usize..=3, 1usize..=3],
        [0usize..=2, 0usize..=2],
        [1usize..=3, 1usize..=3],
        [0usize..=6, 0usize..=6],
    )
        .prop_map(|(k, stride, pad, dilation, extra)| {
            let padding = [pad[0].min(k[0] / 2), pad[1].min(k[1] / 2)];
            let p = MaxPool2dParams {
                kernel: k,
                stride,
                padding,
                dilation,
            };
            let span = |i: usize| dilation[i] * (k[i] - 1) + 1;
            let hw = [
                span(0).saturating_sub(2 * padding[0]).max(1) + extra[0],
                span(1).saturating_sub(2 * padding[1]).max(1) + extra[1],
            ];
            (p, hw)
        })
}

fn check_against_ref(x: &Tensor, p: MaxPool2dParams) -> Result<(), TestCaseError> {
    let (y, idx) = x.max_pool2d_with_indices(p).unwrap();
    let (shape, vals, offs) = max_pool_ref(x, p);
    prop_assert_eq!(y.dims(), &shape[..]);
    prop_assert_eq!(idx.dims(), &shape[..]);
    same(&format!("max_pool2d {p:?}"), &host(&y), &vals)?;
    same(&format!("max_pool2d offsets {p:?}"), &host(&idx), &offs)?;
    same(
        "max_pool2d without indices",
        &host(&x.max_pool2d(p).unwrap()),
        &vals,
    )?;
    Ok(())
}

proptest! {
    #![proptest_config(config(64))]

    #[test]
    fn max_pool2d_matches_reference(n in 1usize..=2, c in 1usize..=2, (p, [h, w]) in geometry(),
                                    seed in any::<u64>()) {
        check_against_ref(&normal(&[n, c, h, w], seed), p)?;
    }

    /// Values on a coarse grid, so windows hold ties: the first maximum in window order wins.
    #[test]
    fn max_pool2d_ties_take_the_first(n in 1usize..=2, c in 1usize..=2, (p, [h, w]) in geometry(),
                                      seed in any::<u64>()) {
        let x = uniform(&[n, c, h, w], 0.0, 3.0, seed);
        let x = tensor(host(&x).iter().map(|v| v.floor()).collect(), &[n, c, h, w]);
        check_against_ref(&x, p)?;
    }

    #[test]
    fn scatter_and_gather_are_adjoint(n in 1usize..=2, c in 1usize..=2, (p, [h, w]) in geometry(),
                                      seed in any::<u64>()) {
        let x = normal(&[n, c, h, w], seed);
        let (y, idx) = x.max_pool2d_with_indices(p).unwrap();
        // Gathering the input at the recorded offsets gives the pooled values back, and 0 for
        // a window wholly in the padding (offset −1, value −∞).
        let want: Vec<f32> = host(&y)
            .iter()
            .zip(host(&idx))
            .map(|(&v, k)| if k < 0.0 { 0.0 } else { v })
            .collect();
        same("gather(x, argmax)", &host(&x.max_pool2d_gather(&idx, p).unwrap()), &want)?;
        let g = normal(y.dims(), seed ^ 1);
        let back = g.max_pool2d_scatter(&idx, [h, w], p).unwrap();
        prop_assert_eq!(back.dims(), &[n, c, h, w][..]);
        // Overlapping windows add several gradients into one input in f32 (the reference in f64):
        // a sum of values of magnitude ~1 that cancels to 0.04 was off by 2.1e-7.
        close("scatter", &host(&back), &scatter_ref(&g, &host(&idx), [h, w], p), 1e-6, 2e-6)?;
        // ⟨scatter(g), u⟩ = ⟨g, gather(u)⟩ for any u.
        let u = normal(&[n, c, h, w], seed ^ 2);
        let gathered = u.max_pool2d_gather(&idx, p).unwrap();
        let (lhs, rhs) = (dot(&host(&back), &host(&u)), dot(&host(&g), &host(&gathered)));
        let scale = dot_abs(&host(&back), &host(&u)) + 1.0;
        prop_assert!((lhs - rhs).abs() <= 1e-5 * scale, "⟨S g, u⟩ = {lhs}, ⟨g, G u⟩ = {rhs}");
    }
}

#[test]
fn max_pool2d_large_input_runs_in_parallel_and_matches() {
    // 2·16·48·40 inputs: above the size where planes are split over threads.
    let x = normal(&[2, 16, 48, 40], 7);
    for p in [
        MaxPool2dParams::new(2, 2, 0),
        MaxPool2dParams::new(3, 2, 1),
        MaxPool2dParams::new(3, 1, 1).dilation(2),
    ] {
        let (y, idx) = x.max_pool2d_with_indices(p).unwrap();
        let (_, vals, offs) = max_pool_ref(&x, p);
        assert_eq!(host(&y), vals, "{p:?}");
        assert_eq!(host(&idx), offs, "{p:?}");
        let back = y.max_pool2d_scatter(&idx, [48, 40], p).unwrap();
        let want = scatter_ref(&y, &offs, [48, 40], p);
        let got = host(&back);
        for (g, w) in got.iter().zip(&want) {
            assert!((*g as f64 - w).abs() <= 1e-5 * w.abs().max(1.0));
        }
    }
}

#[test]
fn max_pool2d_known_values_from_pytorch() {
    // F.max_pool2d(x, (1, 2), stride=(1, 2), return_indices=True) on [1, NaN, 3, 0]:
    // values [NaN, 3], PyTorch indices [1, 2] (window offsets 1 and 0).
    let x = tensor(vec![1.0, f32::NAN, 3.0, 0.0], &[1, 1, 1, 4]);
    let p = MaxPool2dParams {
        kernel: [1, 2],
        stride: [1, 2],
        padding: [0, 0],
        dilation: [1, 1],
    };
    let (y, idx) = x.max_pool2d_with_indices(p).unwrap();
    let y = host(&y);
    assert!(y[0].is_nan() && y[1] == 3.0, "{y:?}");
    assert_eq!(host(&idx), vec![1.0, 0.0]);

    // All −1 with kernel 3, stride 1, padding 1: padding never wins; PyTorch's indices are
    // [[0, 0, 1], [0, 0, 1], [3, 3, 4]] (the first in-bounds position of each window).
    let x = Tensor::full(-1.0, [1, 1, 3, 3], CPU).unwrap();
    let p = MaxPool2dParams::new(3, 1, 1);
    let (y, idx) = x.max_pool2d_with_indices(p).unwrap();
    assert_eq!(host(&y), vec![-1.0; 9]);
    // Window offsets of those plane indices: window origin (oy − 1, ox − 1).
    assert_eq!(
        host(&idx),
        vec![4.0, 3.0, 3.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0]
    );

    // All −∞ inputs: the value is −∞, the index still the first in-bounds position.
    let x = Tensor::full(f32::NEG_INFINITY, [1, 1, 2, 2], CPU).unwrap();
    let (y, idx) = x
        .max_pool2d_with_indices(MaxPool2dParams::new(2, 1, 1))
        .unwrap();
    assert!(host(&y).iter().all(|v| *v == f32::NEG_INFINITY));
    assert_eq!(host(&idx)[0], 3.0);

    // Kernel 2, dilation 3, padding 1 on a 2×2 input: the one window (rows/cols −1 and 2) is
    // all padding. PyTorch gives −∞ (and an out-of-range index); here −∞ and offset −1, whose
    // gradient goes nowhere.
    let x = tensor(vec![0.0, 1.0, 2.0, 3.0], &[1, 1, 2, 2]);
    let p = MaxPool2dParams::new(2, 1, 1).dilation(3);
    let (y, idx) = x.max_pool2d_with_indices(p).unwrap();
    assert_eq!(host(&y), vec![f32::NEG_INFINITY]);
    assert_eq!(host(&idx), vec![-1.0]);
    let g = tensor(vec![5.0], &[1, 1, 1, 1]);
    assert_eq!(
        host(&g.max_pool2d_scatter(&idx, [2, 2], p).unwrap()),
        vec![0.0; 4]
    );
    assert_eq!(host(&x.max_pool2d_gather(&idx, p).unwrap()), vec![0.0]);
}

#[test]
fn max_pool2d_vgg_pool_halves() {
    // The 2×2, stride-2 pool of VGG: each output is the max of its block.
    let x = tensor(
        (0..16).map(|v| ((v * 7) % 16) as f32).collect(),
        &[1, 1, 4, 4],
    );
    let y = x.max_pool2d(MaxPool2dParams::new(2, 2, 0)).unwrap();
    // x = [0 7 14 5 / 12 3 10 1 / 8 15 6 13 / 4 11 2 9]
    assert_eq!(host(&y), vec![12.0, 14.0, 15.0, 13.0]);
}

fn invalid(r: Result<Tensor, Error>) -> bool {
    matches!(
        r,
        Err(Error::InvalidArgument { .. }) | Err(Error::ShapeMismatch { .. })
    )
}

#[test]
fn max_pool2d_bad_geometry_is_a_typed_error() {
    let x = normal(&[1, 2, 5, 5], 1);
    let bad = [
        MaxPool2dParams::new(0, 1, 0),                      // empty kernel
        MaxPool2dParams::new(2, 0, 0),                      // zero stride
        MaxPool2dParams::new(2, 1, 0).dilation(0),          // zero dilation
        MaxPool2dParams::new(2, 1, 2),                      // padding above half the kernel
        MaxPool2dParams::new(3, 1, 2),                      // likewise (PyTorch rejects it too)
        MaxPool2dParams::new(6, 1, 0),                      // window larger than the input
        MaxPool2dParams::new(3, 1, 0).dilation(3),          // dilated window too large
        MaxPool2dParams::new(usize::MAX, 1, 0),             // absurd sizes do not overflow
        MaxPool2dParams::new(5, 1, 0).dilation(usize::MAX), // likewise
    ];
    for p in bad {
        assert!(invalid(x.max_pool2d(p)), "{p:?} accepted");
        assert!(
            invalid(x.max_pool2d_gather(&x, p)),
            "{p:?} accepted by gather"
        );
    }
    // Not NCHW.
    assert!(invalid(
        normal(&[2, 5, 5], 1).max_pool2d(MaxPool2dParams::new(2, 2, 0))
    ));
}

#[test]
fn scatter_and_gather_check_shapes() {
    let p = MaxPool2dParams::new(2, 2, 0);
    let x = normal(&[1, 2, 6, 6], 1);
    let (y, idx) = x.max_pool2d_with_indices(p).unwrap();
    // Indices of another shape.
    let wrong = Tensor::zeros([1, 2, 2, 3], CPU).unwrap();
    assert!(invalid(y.max_pool2d_scatter(&wrong, [6, 6], p)));
    assert!(invalid(x.max_pool2d_gather(&wrong, p)));
    // An input size that does not pool to the gradient's size.
    assert!(invalid(y.max_pool2d_scatter(&idx, [8, 8], p)));
    assert!(invalid(y.max_pool2d_scatter(&idx, [1, 1], p)));
    // 7×7 pools to 3×3 like 6×6: accepted.
    assert!(y.max_pool2d_scatter(&idx, [7, 7], p).is_ok());
}

#[test]
fn garbage_offsets_are_ignored_not_trusted() {
    let p = MaxPool2dParams::new(2, 2, 1);
    let g = tensor(vec![1.0, 2.0, 3.0, 4.0], &[1, 1, 2, 2]);
    // A valid offset (3: bottom-right of the first window, whose origin is (−1, −1), so input
    // position (0, 0)), then NaN, out of range and negative offsets.
    let idx = tensor(vec![3.0, f32::NAN, 1e9, -7.0], &[1, 1, 2, 2]);
    let back = g.max_pool2d_scatter(&idx, [2, 2], p).unwrap();
    assert_eq!(host(&back), vec![1.0, 0.0, 0.0, 0.0]);
    let x = tensor(vec![5.0, 6.0, 7.0, 8.0], &[1, 1, 2, 2]);
    assert_eq!(
        host(&x.max_pool2d_gather(&idx, p).unwrap()),
        vec![5.0, 0.0, 0.0, 0.0]
    );
    // Offset 0 of window 0 lies in the padding: nothing.
    let idx0 = tensor(vec![0.0, -1.0, -1.0, -1.0], &[1, 1, 2, 2]);
    assert_eq!(
        host(&g.max_pool2d_scatter(&idx0, [2, 2], p).unwrap()),
        vec![0.0; 4]
    );
}
