//! Elementwise ops against scalar references: unary maps, broadcasting binary ops, comparisons
//! and `where_cond`, on small random shapes and on sizes that take the parallel paths.
mod common;

use common::*;
use proptest::prelude::*;
use tessera_tensor::{AdamStep, BinaryOp, CmpOp, Tensor, UnaryOp};

const CMPS: [CmpOp; 6] = [
    CmpOp::Eq,
    CmpOp::Ne,
    CmpOp::Lt,
    CmpOp::Le,
    CmpOp::Gt,
    CmpOp::Ge,
];

fn cmp_ref(op: CmpOp, a: f32, b: f32) -> f32 {
    let t = match op {
        CmpOp::Eq => a == b,
        CmpOp::Ne => a != b,
        CmpOp::Lt => a < b,
        CmpOp::Le => a <= b,
        CmpOp::Gt => a > b,
        CmpOp::Ge => a >= b,
    };
    if t {
        1.0
    } else {
        0.0
    }
}

/// The mathematical definition of each unary op, in f64.
fn unary_ref(op: UnaryOp, x: f32) -> f64 {
    let v = x as f64;
    match op {
        UnaryOp::Neg => -v,
        UnaryOp::Exp => v.exp(),
        UnaryOp::Log => v.ln(),
        UnaryOp::Sqrt => v.sqrt(),
        UnaryOp::Rsqrt => 1.0 / v.sqrt(),
        UnaryOp::Abs => v.abs(),
        UnaryOp::Sign => {
            if v > 0.0 {
                1.0
            } else if v < 0.0 {
                -1.0
            } else {
                0.0
            }
        }
        UnaryOp::Relu => {
            if v > 0.0 {
                v
            } else {
                0.0
            }
        }
        UnaryOp::LeakyRelu(s) => {
            if v > 0.0 {
                v
            } else {
                v * s as f64
            }
        }
        UnaryOp::Tanh => v.tanh(),
        UnaryOp::Sigmoid => 1.0 / (1.0 + (-v).exp()),
        UnaryOp::Powf(p) => v.powf(p as f64),
        UnaryOp::Clamp(lo, hi) => v.max(lo as f64).min(hi as f64),
        UnaryOp::Affine { mul, add } => v * mul as f64 + add as f64,
        UnaryOp::CmpScalar(c, s) => cmp_ref(c, x, s) as f64,
    }
}

fn unary_ops(p: f32, s: f32, lo: f32, hi: f32, c: f32) -> Vec<UnaryOp> {
    let mut ops = vec![
        UnaryOp::Neg,
        UnaryOp::Exp,
        UnaryOp::Abs,
        UnaryOp::Sign,
        UnaryOp::Relu,
        UnaryOp::LeakyRelu(s),
        UnaryOp::Tanh,
        UnaryOp::Sigmoid,
        UnaryOp::Clamp(lo, hi),
        UnaryOp::Affine { mul: p, add: s },
    ];
    ops.extend(CMPS.iter().map(|&op| UnaryOp::CmpScalar(op, c)));
    ops
}

/// Checks `op` on `x` against the f64 definition (a few f32 ulps).
fn check_unary(op: UnaryOp, x: &Tensor) -> Result<(), TestCaseError> {
    let got = host(&x.unary(op).unwrap());
    let want: Vec<f64> = host(x).iter().map(|&v| unary_ref(op, v)).collect();
    close(&format!("{op:?}"), &got, &want, 1e-6, 1e-7)
}

/// `a op b` through explicit broadcast indexing, computed in f32.
fn binary_ref(a: &Tensor, b: &Tensor, out: &[usize], f: impl Fn(f32, f32) -> f32) -> Vec<f32> {
    let (av, bv) = (host(a), host(b));
    (0..numel(out))
        .map(|i| {
            let idx = unravel(i, out);
            f(
                av[broadcast_index(&idx, a.dims())],
                bv[broadcast_index(&idx, b.dims())],
            )
        })
        .collect()
}

type Scalar2 = fn(f32, f32) -> f32;

fn binary_cases() -> Vec<(BinaryOp, Scalar2)> {
    let mut v: Vec<(BinaryOp, Scalar2)> = vec![
        (BinaryOp::Add, |a, b| a + b),
        (BinaryOp::Sub, |a, b| a - b),
        (BinaryOp::Mul, |a, b| a * b),
        (BinaryOp::Div, |a, b| a / b),
        (BinaryOp::Pow, |a, b| a.abs().powf(b)),
        (BinaryOp::Maximum, |a, b| a.max(b)),
        (BinaryOp::Minimum, |a, b| a.min(b)),
    ];
    for (op, f) in [
        (
            CmpOp::Eq,
            (|a, b| cmp_ref(CmpOp::Eq, a, b)) as fn(f32, f32) -> f32,
        ),
        (CmpOp::Ne, |a, b| cmp_ref(CmpOp::Ne, a, b)),
        (CmpOp::Lt, |a, b| cmp_ref(CmpOp::Lt, a, b)),
        (CmpOp::Le, |a, b| cmp_ref(CmpOp::Le, a, b)),
        (CmpOp::Gt, |a, b| cmp_ref(CmpOp::Gt, a, b)),
        (CmpOp::Ge, |a, b| cmp_ref(CmpOp::Ge, a, b)),
    ] {
        v.push((BinaryOp::Cmp(op), f));
    }
    v
}

/// Runs every binary op on `a`, `b` (pow on |a|) against the broadcast reference.
fn check_binary(a: &Tensor, b: &Tensor) -> Result<(), TestCaseError> {
    let out = tessera_tensor::Shape::broadcast("test", a.shape(), b.shape()).unwrap();
    for (op, f) in binary_cases() {
        let lhs = if op == BinaryOp::Pow {
            a.abs().unwrap()
        } else {
            a.clone()
        };
        let got = lhs.binary(b, op).unwrap();
        prop_assert_eq!(got.shape(), &out);
        same(
            &format!("{op:?} {:?} {:?}", a.dims(), b.dims()),
            &host(&got),
            &binary_ref(a, b, out.dims(), f),
        )?;
    }
    // The named methods are the same ops.
    same(
        "add",
        &host(&a.add(b).unwrap()),
        &host(&a.binary(b, BinaryOp::Add).unwrap()),
    )?;
    same(
        "sub",
        &host(&a.sub(b).unwrap()),
        &host(&a.binary(b, BinaryOp::Sub).unwrap()),
    )?;
    same(
        "mul",
        &host(&a.mul(b).unwrap()),
        &host(&a.binary(b, BinaryOp::Mul).unwrap()),
    )?;
    same(
        "div",
        &host(&a.div(b).unwrap()),
        &host(&a.binary(b, BinaryOp::Div).unwrap()),
    )?;
    same(
        "maximum",
        &host(&a.maximum(b).unwrap()),
        &host(&a.binary(b, BinaryOp::Maximum).unwrap()),
    )?;
    same(
        "minimum",
        &host(&a.minimum(b).unwrap()),
        &host(&a.binary(b, BinaryOp::Minimum).unwrap()),
    )?;
    same(
        "cmp",
        &host(&a.cmp(b, CmpOp::Lt).unwrap()),
        &host(&a.binary(b, BinaryOp::Cmp(CmpOp::Lt)).unwrap()),
    )?;
    Ok(())
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn unary_ops_match_definitions(shape in small_shape(), p in -3.0f32..3.0, s in 0.0f32..1.0,
                                   lo in -2.0f32..0.0, width in 0.0f32..2.0, c in -1.0f32..1.0,
                                   seed in any::<u64>()) {
        let x = normal(&shape, seed).mul_scalar(2.0).unwrap();
        for op in unary_ops(p, s, lo, lo + width, c) {
            check_unary(op, &x)?;
        }
        let pos = uniform(&shape, 0.01, 5.0, seed ^ 1);
        for op in [UnaryOp::Log, UnaryOp::Sqrt, UnaryOp::Rsqrt, UnaryOp::Powf(p)] {
            check_unary(op, &pos)?;
        }
        // Named wrappers.
        same("neg", &host(&x.neg().unwrap()), &host(&x.unary(UnaryOp::Neg).unwrap()))?;
        same("sqr", &host(&x.sqr().unwrap()), &host(&x.mul(&x).unwrap()))?;
        same("add_scalar", &host(&x.add_scalar(c).unwrap()),
             &host(&x.affine(1.0, c).unwrap()))?;
        same("mul_scalar", &host(&x.mul_scalar(p).unwrap()),
             &host(&x.affine(p, 0.0).unwrap()))?;
        same("leaky_relu", &host(&x.leaky_relu(s).unwrap()),
             &host(&x.unary(UnaryOp::LeakyRelu(s)).unwrap()))?;
        same("clamp", &host(&x.clamp(lo, lo + width).unwrap()),
             &host(&x.unary(UnaryOp::Clamp(lo, lo + width)).unwrap()))?;
        let e = x.exp().unwrap();
        prop_assert_eq!(e.dims(), x.dims());
    }

    #[test]
    fn binary_ops_broadcast(out in small_shape(), ones_a in any::<u32>(), ones_b in any::<u32>(),
                            drop_a in 0usize..5, drop_b in 0usize..5, seed in any::<u64>()) {
        let sa = broadcast_operand(&out, ones_a, drop_a);
        let sb = broadcast_operand(&out, ones_b, drop_b);
        // Integers and half-integers make ties (for max, min and comparisons) common.
        let ints = |t: Tensor, dims: &[usize]| {
            tensor(host(&t).iter().map(|v| (2.0 * v).round() / 2.0).collect(), dims)
        };
        let a = ints(normal(&sa, seed).mul_scalar(2.0).unwrap(), &sa);
        let b = ints(normal(&sb, seed ^ 1).mul_scalar(2.0).unwrap(), &sb);
        check_binary(&a, &b)?;
        check_binary(&b, &a)?;
    }

    #[test]
    fn where_cond_broadcasts_three_ways(out in small_shape(), ones in [any::<u32>(), any::<u32>(), any::<u32>()],
                                        drop in [0usize..4, 0usize..4, 0usize..4], seed in any::<u64>()) {
        let sc = broadcast_operand(&out, ones[0], drop[0]);
        let st = broadcast_operand(&out, ones[1], drop[1]);
        let sf = broadcast_operand(&out, ones[2], drop[2]);
        // Any non-zero condition selects on_true, including negative values and NaN.
        let choices = [0.0, 1.0, -2.5, f32::NAN, 0.0];
        let cv: Vec<f32> = host(&uniform(&sc, 0.0, 5.0, seed)).iter().map(|&u| choices[u as usize]).collect();
        let (c, t, f) = (tensor(cv, &sc), normal(&st, seed ^ 1), normal(&sf, seed ^ 2));
        let got = c.where_cond(&t, &f).unwrap();
        let ct = tessera_tensor::Shape::broadcast("t", c.shape(), t.shape()).unwrap();
        let full = tessera_tensor::Shape::broadcast("t", &ct, f.shape()).unwrap();
        prop_assert_eq!(got.shape(), &full);
        let (cv, tv, fv) = (host(&c), host(&t), host(&f));
        let want: Vec<f32> = (0..full.numel()).map(|i| {
            let idx = unravel(i, full.dims());
            if cv[broadcast_index(&idx, c.dims())] != 0.0 {
                tv[broadcast_index(&idx, t.dims())]
            } else {
                fv[broadcast_index(&idx, f.dims())]
            }
        }).collect();
        same("where_cond", &host(&got), &want)?;
    }
}

#[test]
fn large_tensors_take_the_parallel_paths() {
    // ≥ 2^15 elements: chunked rayon paths for unary, same-shape binary and broadcast binary.
    let x = normal(&[48, 1024], 1);
    let y = normal(&[48, 1024], 2);
    let row = normal(&[1024], 3);
    for op in unary_ops(1.5, 0.2, -0.5, 0.5, 0.1) {
        check_unary(op, &x).unwrap();
    }
    check_binary(&x, &y).unwrap();
    check_binary(&x, &row).unwrap();
    check_binary(&row, &x).unwrap();
    let col = normal(&[48, 1], 4);
    check_binary(&col, &row).unwrap();
}

#[test]
fn scalar_operands_take_the_fast_paths() {
    let x = normal(&[3, 5], 5);
    for s in [
        Tensor::scalar(0.75, CPU).unwrap(),
        tensor(vec![-1.25], &[1]),
        tensor(vec![2.0], &[1, 1, 1]),
    ] {
        check_binary(&x, &s).unwrap();
        check_binary(&s, &x).unwrap();
    }
    // Scalar with scalar, including rank growth [1] ⊕ [1, 1] → [1, 1].
    let a = tensor(vec![3.0], &[1]);
    let b = tensor(vec![4.0], &[1, 1]);
    assert_eq!(a.add(&b).unwrap().dims(), &[1, 1]);
    check_binary(&a, &b).unwrap();
}

#[test]
fn nan_propagates_like_pytorch() {
    let x = tensor(vec![f32::NAN, -1.0, 2.0], &[3]);
    let one = tensor(vec![1.0, f32::NAN, 1.0], &[3]);
    let r = host(&x.relu().unwrap());
    assert!(r[0].is_nan() && r[1] == 0.0 && r[2] == 2.0);
    let c = host(&x.clamp(-0.5, 0.5).unwrap());
    assert!(c[0].is_nan() && c[1] == -0.5 && c[2] == 0.5);
    for t in [x.maximum(&one).unwrap(), x.minimum(&one).unwrap()] {
        let v = host(&t);
        assert!(v[0].is_nan() && v[1].is_nan(), "{v:?}");
    }
    assert_eq!(host(&x.maximum(&one).unwrap())[2], 2.0);
    assert_eq!(host(&x.minimum(&one).unwrap())[2], 1.0);
    // Comparisons with NaN are false, except ≠.
    for op in CMPS {
        let v = host(&x.cmp_scalar(op, 0.0).unwrap())[0];
        assert_eq!(v, (op == CmpOp::Ne) as u8 as f32, "{op:?}");
    }
}

#[test]
fn elementwise_results_are_new_buffers() {
    let x = normal(&[4], 1);
    let y = x.affine(1.0, 0.0).unwrap();
    assert!(!y.same_storage(&x));
    assert_eq!(host(&y), host(&x));
    assert!(x.clone().same_storage(&x));
}

/// torch.optim.Adam's step for one element, in f32 in the fused kernel's order of operations.
fn adam_ref(p: f32, g: f32, m: f32, v: f32, s: AdamStep) -> (f32, f32, f32) {
    let t = s.step as f64;
    let (bc1, bc2) = (1.0 - s.beta1.powf(t), 1.0 - s.beta2.powf(t));
    let g = g + p * s.weight_decay as f32;
    let m = m + (g - m) * (1.0 - s.beta1) as f32;
    let v = v * s.beta2 as f32 + g * g * (1.0 - s.beta2) as f32;
    let denom = v.sqrt() * (1.0 / bc2.sqrt()) as f32 + s.eps as f32;
    (p - m / denom * (s.lr / bc1) as f32, m, v)
}

proptest! {
    #![proptest_config(config(16))]

    /// The fused Adam step equals the per-element reference, on lengths that span several
    /// parallel chunks, with and without weight decay, at any step.
    #[test]
    fn adam_step_matches_the_update_rule(len in 1usize..20_000, step in 1u64..3000,
                                         decay in prop_oneof![Just(0.0), 1e-4f64..1e-1],
                                         seed in any::<u64>()) {
        let s = AdamStep { lr: 2e-4, beta1: 0.5, beta2: 0.999, eps: 1e-8, weight_decay: decay, step };
        let (p, g, m) = (normal(&[len], seed), normal(&[len], seed ^ 1), normal(&[len], seed ^ 2));
        let v = normal(&[len], seed ^ 3).sqr().unwrap();
        let (p2, m2, v2) = p.adam_step(&g, &m, &v, s).unwrap();
        let (hp, hg, hm, hv) = (host(&p), host(&g), host(&m), host(&v));
        let (gp, gm, gv) = (host(&p2), host(&m2), host(&v2));
        for i in 0..len {
            let (rp, rm, rv) = adam_ref(hp[i], hg[i], hm[i], hv[i], s);
            prop_assert_eq!((gp[i], gm[i], gv[i]), (rp, rm, rv), "element {}", i);
        }
        prop_assert_eq!(p2.dims(), p.dims());
    }
}

#[test]
fn adam_step_needs_matching_shapes() {
    let s = AdamStep {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
        step: 1,
    };
    let p = normal(&[4, 3], 1);
    let err = p.adam_step(&normal(&[12], 2), &p, &p, s).unwrap_err();
    assert!(err.to_string().contains("adam_step"), "{err}");
}
