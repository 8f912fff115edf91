//! First- and second-order finite-difference checks of every differentiable `Var` op, over
//! proptest-generated shapes and parameters. Inputs are kept away from kinks and domain edges
//! (see `common`), so central differences are valid.
// `&[x.clone()]` reads better than `std::slice::from_ref(&x)` in the many one-input checks.
#![allow(clippy::cloned_ref_to_slice_refs)]
mod common;

use common::*;
use proptest::collection::vec;
use proptest::prelude::*;
use tessera_autograd::Var;
use tessera_tensor::{Conv2dParams, Interpolation, PadMode, Pool2dParams, Tensor};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Small shapes of rank 1 to 3.
fn small_shape() -> impl Strategy<Value = Vec<usize>> {
    vec(1usize..=3, 1..=3)
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
    #![proptest_config(config(12))]

    #[test]
    fn smooth_unary_ops(shape in small_shape(), p in -2.5f32..3.0, mul in -2.0f32..2.0,
                        add in -1.0f32..1.0, seed in any::<u64>()) {
        let x = normal(&shape, seed);
        let pos = uniform(&shape, 0.5, 3.0, seed ^ 1);
        check_both("neg", |v: &[Var]| v[0].neg(), &[x.clone()], seed)?;
        check_both("exp", |v: &[Var]| v[0].exp(), &[x.clone()], seed)?;
        check_both("tanh", |v: &[Var]| v[0].tanh(), &[x.clone()], seed)?;
        check_both("sigmoid", |v: &[Var]| v[0].sigmoid(), &[x.clone()], seed)?;
        check_both("affine", |v: &[Var]| v[0].affine(mul, add), &[x.clone()], seed)?;
        check_both("add_scalar", |v: &[Var]| v[0].add_scalar(add), &[x.clone()], seed)?;
        check_both("mul_scalar", |v: &[Var]| v[0].mul_scalar(mul), &[x.clone()], seed)?;
        // s = 1 returns the input itself (no node): its gradient must still flow.
        check_both("mul_scalar(1)", |v: &[Var]| v[0].mul_scalar(1.0), &[x.clone()], seed)?;
        // x⁰ has its own rule, which must stay finite at x = 0.
        let mut with_zero = x.to_vec().unwrap();
        with_zero[0] = 0.0;
        check_both("powf(0)", |v: &[Var]| v[0].powf(0.0), &[tensor(with_zero, &shape)], seed)?;
        check_both("sqr", |v: &[Var]| v[0].sqr(), &[x], seed)?;
        check_both("log", |v: &[Var]| v[0].log(), &[pos.clone()], seed)?;
        check_both("sqrt", |v: &[Var]| v[0].sqrt(), &[pos.clone()], seed)?;
        check_both("rsqrt", |v: &[Var]| v[0].rsqrt(), &[pos.clone()], seed)?;
        check_both("powf", |v: &[Var]| v[0].powf(p), &[pos.clone()], seed)?;
        check_both("powf(1)", |v: &[Var]| v[0].powf(1.0), &[pos.clone()], seed)?;
        check_both("powf(2)", |v: &[Var]| v[0].powf(2.0), &[pos], seed)?;
    }

    #[test]
    fn piecewise_unary_ops(shape in small_shape(), slope in 0.01f32..0.5,
                           lo in -1.5f32..-0.3, hi in 0.3f32..1.5, seed in any::<u64>()) {
        let x = away_from_zero(&shape, 0.1, seed);
        check_both("abs", |v: &[Var]| v[0].abs(), &[x.clone()], seed)?;
        check_both("relu", |v: &[Var]| v[0].relu(), &[x.clone()], seed)?;
        check_both("leaky_relu", |v: &[Var]| v[0].leaky_relu(slope), &[x], seed)?;
        // clamp: move values within 0.15 of a bound to the middle.
        let mid = (lo + hi) / 2.0;
        let raw = normal(&shape, seed ^ 2).mul_scalar(1.5).unwrap().to_vec().unwrap();
        let c: Vec<f32> = raw.iter().map(|&v| {
            if (v - lo).abs() < 0.15 || (v - hi).abs() < 0.15 { mid + v * 0.01 } else { v }
        }).collect();
        check_both("clamp", |v: &[Var]| v[0].clamp(lo, hi), &[tensor(c, &shape)], seed)?;
    }

    #[test]
    fn broadcasting_binary_ops(out in small_shape(), ones_a in any::<u32>(), ones_b in any::<u32>(),
                               drop_a in 0usize..2, drop_b in 0usize..4, seed in any::<u64>()) {
        let sa = broadcast_operand(&out, ones_a, drop_a);
        let sb = broadcast_operand(&out, ones_b, drop_b);
        let (a, b) = (normal(&sa, seed), normal(&sb, seed ^ 1));
        let both = [a.clone(), b.clone()];
        check_both("add", |v: &[Var]| v[0].add(&v[1]), &both, seed)?;
        check_both("sub", |v: &[Var]| v[0].sub(&v[1]), &both, seed)?;
        check_both("mul", |v: &[Var]| v[0].mul(&v[1]), &both, seed)?;
        // The same var on both sides accumulates both gradients.
        check_both("mul(x, x)", |v: &[Var]| v[0].mul(&v[0]), &[a.clone()], seed)?;
        let den = away_from_zero(&sb, 0.5, seed ^ 2);
        check_both("div", |v: &[Var]| v[0].div(&v[1]), &[a.clone(), den], seed)?;
        let base = uniform(&sa, 0.5, 2.0, seed ^ 3);
        let expo = uniform(&sb, -2.0, 2.0, seed ^ 4);
        check_both("pow", |v: &[Var]| v[0].pow(&v[1]), &[base, expo], seed)?;
        // Grids offset by 0.15 never come within 0.1 of each other.
        let (da, db) = (distinct(&sa, 0.0, seed ^ 5), distinct(&sb, 0.15, seed ^ 6));
        let ext = [da, db];
        check_both("maximum", |v: &[Var]| v[0].maximum(&v[1]), &ext, seed)?;
        check_both("minimum", |v: &[Var]| v[0].minimum(&v[1]), &ext, seed)?;
        // where_cond: the condition broadcasts too.
        let cond = mask(&broadcast_operand(&out, ones_b.rotate_left(7), 0), seed ^ 7);
        check_both("where_cond", |v: &[Var]| Var::where_cond(&cond, &v[0], &v[1]), &both, seed)?;
    }

    #[test]
    fn reductions(shape in small_shape(), axes_bits in any::<u8>(), keepdim in any::<bool>(),
                  seed in any::<u64>()) {
        let axes: Vec<usize> = (0..shape.len()).filter(|i| axes_bits >> i & 1 == 1).collect();
        let x = normal(&shape, seed);
        let n: usize = axes.iter().map(|&a| shape[a]).product();
        check_both("sum", |v: &[Var]| v[0].sum(&axes, keepdim), &[x.clone()], seed)?;
        check_both("mean", |v: &[Var]| v[0].mean(&axes, keepdim), &[x.clone()], seed)?;
        check_both("sum_all", |v: &[Var]| v[0].sum_all(), &[x.clone()], seed)?;
        check_both("mean_all", |v: &[Var]| v[0].mean_all(), &[x.clone()], seed)?;
        check_both("var", |v: &[Var]| v[0].var(&axes, false, keepdim), &[x.clone()], seed)?;
        if n >= 2 {
            check_both("var unbiased", |v: &[Var]| v[0].var(&axes, true, keepdim), &[x], seed)?;
        }
        let d = distinct(&shape, 0.0, seed ^ 1);
        check_both("max", |v: &[Var]| v[0].max(&axes, keepdim), &[d.clone()], seed)?;
        check_both("min", |v: &[Var]| v[0].min(&axes, keepdim), &[d], seed)?;
    }

    #[test]
    fn sum_to_and_broadcast_to(out in small_shape(), ones in any::<u32>(), drop in 0usize..4,
                               seed in any::<u64>()) {
        let small = broadcast_operand(&out, ones, drop);
        let big = normal(&out, seed);
        let target = tessera_tensor::Shape::new(small.clone());
        check_both("sum_to", |v: &[Var]| v[0].sum_to(&target), &[big], seed)?;
        let out2 = out.clone();
        check_both("broadcast_to", |v: &[Var]| v[0].broadcast_to(out2.clone()),
                   &[normal(&small, seed ^ 1)], seed)?;
        check_both("expand", |v: &[Var]| v[0].expand(out.clone()), &[normal(&small, seed ^ 2)], seed)?;
    }

    #[test]
    fn matmul_and_linear(b in 1usize..=3, m in 1usize..=4, k in 1usize..=4, n in 1usize..=4,
                         seed in any::<u64>()) {
        let mm = |v: &[Var]| v[0].matmul(&v[1]);
        check_both("matmul 2-d", mm, &[normal(&[m, k], seed), normal(&[k, n], seed ^ 1)], seed)?;
        check_both("matmul batched", mm,
                   &[normal(&[b, m, k], seed ^ 2), normal(&[b, k, n], seed ^ 3)], seed)?;
        check_both("matmul shared rhs", mm,
                   &[normal(&[b, m, k], seed ^ 4), normal(&[k, n], seed ^ 5)], seed)?;
        let (w, bias) = (normal(&[n, k], seed ^ 6), normal(&[n], seed ^ 7));
        check_both("linear", |v: &[Var]| v[0].linear(&v[1], Some(&v[2])),
                   &[normal(&[m, k], seed ^ 8), w.clone(), bias.clone()], seed)?;
        check_both("linear 3-d", |v: &[Var]| v[0].linear(&v[1], Some(&v[2])),
                   &[normal(&[b, m, k], seed ^ 9), w.clone(), bias], seed)?;
        check_both("linear no bias", |v: &[Var]| v[0].linear(&v[1], None),
                   &[normal(&[m, k], seed ^ 10), w], seed)?;
    }

    #[test]
    fn layout_ops(shape in vec(1usize..=3, 2..=4), seed in any::<u64>(), a in any::<usize>(),
                  c in any::<usize>(), before in 0usize..3, after in 0usize..3) {
        let r = shape.len();
        let x = normal(&shape, seed);
        let flat = [x.numel()];
        check_both("reshape", |v: &[Var]| v[0].reshape(flat), &[x.clone()], seed)?;
        let perm = permutation(r, seed);
        check_both("permute", |v: &[Var]| v[0].permute(&perm), &[x.clone()], seed)?;
        let (ax, bx) = (a % r, c % r);
        check_both("transpose", |v: &[Var]| v[0].transpose(ax, bx), &[x.clone()], seed)?;
        let d = shape[ax];
        let start = c % d;
        let len = 1 + a / 7 % (d - start);
        check_both("narrow", |v: &[Var]| v[0].narrow(ax, start, len), &[x.clone()], seed)?;
        check_both("slice", |v: &[Var]| v[0].slice(ax, start..start + len), &[x.clone()], seed)?;
        check_both("pad_axis", |v: &[Var]| v[0].pad_axis(ax, before, after), &[x.clone()], seed)?;
        // concat of up to three parts whose sizes along `ax` differ.
        let parts: Vec<Tensor> = (0..1 + c % 3).map(|i| {
            let mut s = shape.clone();
            s[ax] = 1 + (i + a) % 3;
            normal(&s, seed ^ (10 + i as u64))
        }).collect();
        check_both("concat", |v: &[Var]| Var::concat(&v.iter().collect::<Vec<_>>(), ax),
                   &parts, seed)?;
        // split into consecutive sizes that add up to the axis.
        let mut sizes = vec![];
        let mut left = d;
        let mut i = c;
        while left > 0 {
            let s = 1 + i % left;
            sizes.push(s);
            left -= s;
            i /= 3;
        }
        check_both("split", |v: &[Var]| v[0].split(&sizes, ax), &[x], seed)?;
    }

    #[test]
    fn pad2d_modes(n in 1usize..=2, ch in 1usize..=2, h in 1usize..=4, w in 1usize..=4,
                   pads in [0usize..=3, 0usize..=3, 0usize..=3, 0usize..=3], mode in pad_mode(),
                   seed in any::<u64>()) {
        let mut pads = pads;
        if mode == PadMode::Reflect {
            pads = [pads[0].min(w - 1), pads[1].min(w - 1), pads[2].min(h - 1), pads[3].min(h - 1)];
        }
        check_both("pad2d", |v: &[Var]| v[0].pad2d(pads, mode), &[normal(&[n, ch, h, w], seed)], seed)?;
        let padded = [n, ch, h + pads[2] + pads[3], w + pads[0] + pads[1]];
        check_both("pad2d_adjoint", |v: &[Var]| v[0].pad2d_adjoint(pads, mode),
                   &[normal(&padded, seed ^ 1)], seed)?;
    }

    #[test]
    fn conv2d_family(n in 1usize..=2, c in 1usize..=3, co in 1usize..=3, k in [1usize..=3, 1usize..=3],
                     stride in [1usize..=2, 1usize..=2], padding in [0usize..=2, 0usize..=2],
                     dilation in [1usize..=2, 1usize..=2], extra in [0usize..=3, 0usize..=3],
                     seed in any::<u64>()) {
        let p = Conv2dParams { stride, padding, dilation };
        let hw: Vec<usize> = (0..2).map(|i| {
            let span = dilation[i] * (k[i] - 1) + 1;
            span.saturating_sub(2 * padding[i]).max(1) + extra[i]
        }).collect();
        let (h, w) = (hw[0], hw[1]);
        let [ho, wo] = p.output_hw([h, w], k).unwrap();
        let x = normal(&[n, c, h, w], seed);
        let wt = normal(&[co, c, k[0], k[1]], seed ^ 1);
        let b = normal(&[co], seed ^ 2);
        check_both("conv2d", |v: &[Var]| v[0].conv2d(&v[1], Some(&v[2]), p),
                   &[x.clone(), wt.clone(), b], seed)?;
        let g = normal(&[n, co, ho, wo], seed ^ 3);
        check_both("conv2d_input_grad", |v: &[Var]| v[0].conv2d_input_grad(&v[1], [h, w], p),
                   &[g.clone(), wt], seed)?;
        check_both("conv2d_weight_grad", |v: &[Var]| v[0].conv2d_weight_grad(&v[1], k, p),
                   &[x, g], seed)?;
    }

    #[test]
    fn avg_pool2d_and_adjoint(n in 1usize..=2, c in 1usize..=2, k in [1usize..=3, 1usize..=3],
                              stride in [1usize..=3, 1usize..=3], pad_seed in [0usize..=1, 0usize..=1],
                              extra in [0usize..=3, 0usize..=3], count_include_pad in any::<bool>(),
                              seed in any::<u64>()) {
        let padding = [pad_seed[0].min(k[0] / 2), pad_seed[1].min(k[1] / 2)];
        let p = Pool2dParams { kernel: k, stride, padding, count_include_pad };
        let h = k[0].saturating_sub(2 * padding[0]).max(1) + extra[0];
        let w = k[1].saturating_sub(2 * padding[1]).max(1) + extra[1];
        let [ho, wo] = p.output_hw([h, w]).unwrap();
        check_both("avg_pool2d", |v: &[Var]| v[0].avg_pool2d(p), &[normal(&[n, c, h, w], seed)], seed)?;
        check_both("avg_pool2d_adjoint", |v: &[Var]| v[0].avg_pool2d_adjoint([h, w], p),
                   &[normal(&[n, c, ho, wo], seed ^ 1)], seed)?;
    }

    #[test]
    fn upsample2d_and_adjoint(n in 1usize..=2, c in 1usize..=2, h in 1usize..=5, w in 1usize..=5,
                              ho in 1usize..=7, wo in 1usize..=7, mode in interpolation(),
                              seed in any::<u64>()) {
        check_both("upsample2d", |v: &[Var]| v[0].upsample2d([ho, wo], mode),
                   &[normal(&[n, c, h, w], seed)], seed)?;
        check_both("upsample2d_adjoint", |v: &[Var]| v[0].upsample2d_adjoint([h, w], mode),
                   &[normal(&[n, c, ho, wo], seed ^ 1)], seed)?;
        if mode == Interpolation::Nearest {
            check_both("upsample_nearest2d", |v: &[Var]| v[0].upsample_nearest2d([ho, wo]),
                       &[normal(&[n, c, h, w], seed ^ 2)], seed)?;
        } else {
            let ac = mode == Interpolation::Bilinear { align_corners: true };
            check_both("upsample_bilinear2d", |v: &[Var]| v[0].upsample_bilinear2d([ho, wo], ac),
                       &[normal(&[n, c, h, w], seed ^ 2)], seed)?;
        }
    }

    /// Compositions: a small conv net with a WGAN-GP style penalty path exercises chains of
    /// backward rules (second order through several ops at once).
    #[test]
    fn composed_network(seed in any::<u64>(), slope in 0.1f32..0.3) {
        let x = normal(&[2, 2, 5, 5], seed);
        let w1 = normal(&[3, 2, 3, 3], seed ^ 1).mul_scalar(0.5).unwrap();
        let w2 = normal(&[1, 3, 3, 3], seed ^ 2).mul_scalar(0.5).unwrap();
        let f = |v: &[Var]| {
            let h = v[0].conv2d(&v[1], None, Conv2dParams::new(1, 1, 1))?.tanh()?;
            let h = h.avg_pool2d(Pool2dParams { kernel: [2, 2], stride: [2, 2], padding: [0, 0],
                                                count_include_pad: true })?;
            let h = h.upsample_bilinear2d([4, 4], false)?.sigmoid()?;
            h.conv2d(&v[2], None, Conv2dParams::new(1, 0, 1))?.mul_scalar(1.0 + slope)?.mean_all()
        };
        check_both("composed", f, &[x, w1, w2], seed)?;
    }
}

proptest! {
    #![proptest_config(config(4))]

    /// Inputs big enough for several conv tiles, checked along random directions.
    #[test]
    fn conv2d_many_tiles_directional(seed in any::<u64>(), stride in 1usize..=2) {
        let p = Conv2dParams::new(stride, 1, 1);
        let x = normal(&[2, 2, 70, 70], seed);
        let wt = normal(&[2, 2, 3, 3], seed ^ 1);
        let c = cfg(seed).with_directions(4);
        let f = |v: &[Var]| v[0].conv2d(&v[1], None, p)?.sqr();
        tessera_autograd::gradcheck::check_grad(f, &[x.clone(), wt.clone()], &c)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        tessera_autograd::gradcheck::check_grad_grad(f, &[x, wt], &c)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
    }
}

#[test]
fn maximum_and_max_split_ties_evenly() {
    let x = Var::param(tensor(vec![1.0, 2.0, 2.0], &[3]));
    let y = Var::param(tensor(vec![1.0, 0.0, 3.0], &[3]));
    let g = tessera_autograd::grad(
        &[&x.maximum(&y).unwrap().sum_all().unwrap()],
        &[&x, &y],
        None,
        false,
    )
    .unwrap();
    assert_eq!(g[0].value().to_vec().unwrap(), vec![0.5, 1.0, 0.0]);
    assert_eq!(g[1].value().to_vec().unwrap(), vec![0.5, 0.0, 1.0]);
    let g = tessera_autograd::grad(&[&x.max(&[0], false).unwrap()], &[&x], None, false).unwrap();
    assert_eq!(g[0].value().to_vec().unwrap(), vec![0.0, 0.5, 0.5]);
    let g = tessera_autograd::grad(&[&x.min(&[0], false).unwrap()], &[&x], None, false).unwrap();
    assert_eq!(g[0].value().to_vec().unwrap(), vec![1.0, 0.0, 0.0]);
}

#[test]
fn unary_dispatch_matches_named_ops() {
    use tessera_tensor::UnaryOp;
    let x = uniform(&[5], 0.5, 2.0, 9);
    for op in [
        UnaryOp::Neg,
        UnaryOp::Exp,
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::Rsqrt,
        UnaryOp::Abs,
        UnaryOp::Relu,
        UnaryOp::LeakyRelu(0.2),
        UnaryOp::Tanh,
        UnaryOp::Sigmoid,
        UnaryOp::Powf(1.5),
        UnaryOp::Clamp(0.7, 1.5),
        UnaryOp::Affine { mul: 2.0, add: 1.0 },
    ] {
        check_both(
            &format!("{op:?}"),
            |v: &[Var]| v[0].unary(op),
            &[x.clone()],
            3,
        )
        .unwrap();
    }
    // Sign and comparisons are not differentiable: they come back as constants.
    let p = Var::param(x);
    assert!(!p.unary(UnaryOp::Sign).unwrap().requires_grad());
}
