//! Elementwise kernels: contiguous fast paths split over rayon, broadcasting through ndarray.
use super::{pool, PAR_MIN};
use crate::backend::{BinaryOp, CmpOp, UnaryOp};
use crate::Shape;
use ndarray::{ArrayViewD, ArrayViewMutD, IxDyn, Zip};
use rayon::prelude::*;

const CHUNK: usize = 1 << 13;

fn cmp(op: CmpOp, a: f32, b: f32) -> f32 {
    let t = match op {
        CmpOp::Eq => a == b,
        CmpOp::Ne => a != b,
        CmpOp::Lt => a < b,
        CmpOp::Le => a <= b,
        CmpOp::Gt => a > b,
        CmpOp::Ge => a >= b,
    };
    t as u8 as f32
}

// NaN passes through relu, clamp, maximum and minimum as in PyTorch, so a diverging model shows
// up as NaN instead of being clipped into plausible numbers (`f32::max` would drop the NaN).
#[inline(always)]
fn relu(x: f32) -> f32 {
    if x < 0.0 {
        0.0
    } else {
        x
    }
}

#[inline(always)]
fn clamp(x: f32, lo: f32, hi: f32) -> f32 {
    if x < lo {
        lo
    } else if x > hi {
        hi
    } else {
        x
    }
}

#[inline(always)]
fn nan_or(a: f32, b: f32, value: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else {
        value
    }
}

/// tanh without libm's scalar `tanhf` (a call per element, 25 ns each here), branch-free so the
/// loop vectorizes: below |x| = 0.625 an odd polynomial x + x³·P(x²) (Cephes' `tanhf`
/// coefficients), above 1 − 2/(e^{2|x|} + 1) with the sign of x, |x| capped at 10 (tanh(10)
/// rounds to 1 in f32). e^y for 0 ≤ y ≤ 20 is 2ⁿ·e^r with n = ⌊y·log₂e + ½⌋ and |r| ≤ ln2/2 (Cephes'
/// `expf` polynomial). Within 2 ulp of tanh (1.3 at worst in the test against f64); NaN passes
/// through.
#[inline(always)]
fn tanh(x: f32) -> f32 {
    let a = x.abs();
    let z = x * x;
    let poly = (((-5.704_988_7e-3 * z + 2.063_909e-2) * z - 5.373_971_6e-2) * z + 0.133_314_42) * z
        - 0.333_332_8;
    // copysign keeps tanh(−0) = −0 (the sum of the two zeros would be +0).
    let small = (poly * z * x + x).copysign(x);
    let y = 2.0 * if a > 10.0 { 10.0 } else { a };
    // y ≥ 0, so truncation is the floor.
    let n = (y * std::f32::consts::LOG2_E + 0.5) as i32;
    let nf = n as f32;
    let r = y - nf * 0.693_359_4 + nf * 2.121_944_4e-4;
    let p = (((((1.987_569_2e-4 * r + 1.398_2e-3) * r + 8.333_452e-3) * r + 4.166_579_6e-2) * r
        + 0.166_666_65)
        * r
        + 0.5)
        * r
        * r
        + r
        + 1.0;
    let e = p * f32::from_bits(((n + 127) as u32) << 23);
    let large = (1.0 - 2.0 / (e + 1.0)).copysign(x);
    // NaN fails the comparison and takes `small`, which is NaN.
    if a >= 0.625 {
        large
    } else {
        small
    }
}

#[inline(always)]
fn unary_fn(op: UnaryOp) -> impl Fn(f32) -> f32 + Sync + Send {
    move |x: f32| match op {
        UnaryOp::Neg => -x,
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Rsqrt => 1.0 / x.sqrt(),
        UnaryOp::Abs => x.abs(),
        UnaryOp::Sign => {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                0.0
            }
        }
        UnaryOp::Relu => relu(x),
        UnaryOp::LeakyRelu(s) => {
            if x > 0.0 {
                x
            } else {
                x * s
            }
        }
        UnaryOp::Tanh => tanh(x),
        UnaryOp::Sigmoid => 1.0 / (1.0 + (-x).exp()),
        UnaryOp::Powf(p) => x.powf(p),
        UnaryOp::Clamp(lo, hi) => clamp(x, lo, hi),
        UnaryOp::Affine { mul, add } => x * mul + add,
        UnaryOp::CmpScalar(c, s) => cmp(c, x, s),
    }
}

fn binary_fn(op: BinaryOp) -> impl Fn(f32, f32) -> f32 + Sync + Send {
    move |a: f32, b: f32| match op {
        BinaryOp::Add => a + b,
        BinaryOp::Sub => a - b,
        BinaryOp::Mul => a * b,
        BinaryOp::Div => a / b,
        BinaryOp::Pow => a.powf(b),
        BinaryOp::Maximum => nan_or(a, b, a.max(b)),
        BinaryOp::Minimum => nan_or(a, b, a.min(b)),
        BinaryOp::Cmp(c) => cmp(c, a, b),
    }
}

/// out[i] = f(x[i]), in parallel chunks for large inputs.
fn map_into(out: &mut [f32], x: &[f32], f: impl Fn(f32) -> f32 + Sync + Send) {
    if x.len() >= PAR_MIN {
        out.par_chunks_mut(CHUNK)
            .zip(x.par_chunks(CHUNK))
            .for_each(|(o, i)| o.iter_mut().zip(i).for_each(|(o, &i)| *o = f(i)));
    } else {
        out.iter_mut().zip(x).for_each(|(o, &i)| *o = f(i));
    }
}

/// Applies `f` to every element; the op is matched once per chunk so the inner loop vectorizes.
pub fn unary(x: &[f32], op: UnaryOp) -> Vec<f32> {
    let mut out = pool::take(x.len());
    macro_rules! run {
        ($f:expr) => {{
            map_into(&mut out, x, $f);
        }};
    }
    match op {
        UnaryOp::Neg => run!(|v: f32| -v),
        UnaryOp::Relu => run!(relu),
        UnaryOp::Affine { mul, add } => run!(move |v: f32| v * mul + add),
        UnaryOp::LeakyRelu(s) => run!(move |v: f32| if v > 0.0 { v } else { v * s }),
        UnaryOp::Tanh => run!(tanh),
        // One closure per comparison: through `unary_fn` the comparison was matched per element
        // and did not vectorize (LeakyReLU's backward mask, 3.3× slower than an affine map).
        UnaryOp::CmpScalar(c, s) => match c {
            CmpOp::Eq => run!(move |v: f32| (v == s) as u8 as f32),
            CmpOp::Ne => run!(move |v: f32| (v != s) as u8 as f32),
            CmpOp::Lt => run!(move |v: f32| (v < s) as u8 as f32),
            CmpOp::Le => run!(move |v: f32| (v <= s) as u8 as f32),
            CmpOp::Gt => run!(move |v: f32| (v > s) as u8 as f32),
            CmpOp::Ge => run!(move |v: f32| (v >= s) as u8 as f32),
        },
        _ => run!(unary_fn(op)),
    }
    out
}

/// When `small` broadcasts to `out` by varying along one block of consecutive axes only (a
/// per-channel [1, C, 1, 1] against [N, C, H, W]), returns (block size, elements per block entry):
/// out element i then pairs with small[(i / inner) % mid]. None when runs would be too short to
/// beat the general path.
fn block_broadcast(small: &Shape, out: &Shape) -> Option<(usize, usize)> {
    let lead = out.rank().checked_sub(small.rank())?;
    let varying: Vec<usize> = (0..small.rank())
        .filter(|&i| small.dims()[i] != 1)
        .map(|i| i + lead)
        .collect();
    let (&k0, &last) = (varying.first()?, varying.last()?);
    if varying.len() != last - k0 + 1 {
        return None;
    }
    let mid: usize = out.dims()[k0..=last].iter().product();
    let inner: usize = out.dims()[last + 1..].iter().product();
    (inner >= 16).then_some((mid, inner))
}

/// Calls `f(j, chunk)` for every run j of `inner` outputs (in parallel for large outputs).
pub(super) fn per_block(out: &mut [f32], inner: usize, f: impl Fn(usize, &mut [f32]) + Sync) {
    if out.len() >= PAR_MIN {
        out.par_chunks_mut(inner)
            .enumerate()
            .for_each(|(j, o)| f(j, o));
    } else {
        out.chunks_mut(inner).enumerate().for_each(|(j, o)| f(j, o));
    }
}

pub fn binary(
    a: &[f32],
    ashape: &Shape,
    b: &[f32],
    bshape: &Shape,
    out_shape: &Shape,
    op: BinaryOp,
) -> Vec<f32> {
    let n = out_shape.numel();
    let mut out = pool::take(n);
    macro_rules! run {
        ($f:expr) => {{
            let f = $f;
            if ashape == bshape {
                if n >= PAR_MIN {
                    out.par_chunks_mut(CHUNK)
                        .zip(a.par_chunks(CHUNK).zip(b.par_chunks(CHUNK)))
                        .for_each(|(o, (x, y))| {
                            o.iter_mut()
                                .zip(x.iter().zip(y))
                                .for_each(|(o, (&x, &y))| *o = f(x, y))
                        });
                } else {
                    out.iter_mut()
                        .zip(a.iter().zip(b))
                        .for_each(|(o, (&x, &y))| *o = f(x, y));
                }
            } else if b.len() == 1 {
                let y = b[0];
                map_into(&mut out, a, |x: f32| f(x, y));
            } else if a.len() == 1 {
                let x = a[0];
                map_into(&mut out, b, |y: f32| f(x, y));
            } else if let (true, Some((mid, inner))) =
                (ashape == out_shape, block_broadcast(bshape, out_shape))
            {
                per_block(&mut out, inner, |j, o| {
                    let (x, y) = (&a[j * inner..(j + 1) * inner], b[j % mid]);
                    o.iter_mut().zip(x).for_each(|(o, &x)| *o = f(x, y));
                });
            } else if let (true, Some((mid, inner))) =
                (bshape == out_shape, block_broadcast(ashape, out_shape))
            {
                per_block(&mut out, inner, |j, o| {
                    let (x, y) = (a[j % mid], &b[j * inner..(j + 1) * inner]);
                    o.iter_mut().zip(y).for_each(|(o, &y)| *o = f(x, y));
                });
            } else {
                let (a0, b0) = (view(a, ashape), view(b, bshape));
                let av = a0
                    .broadcast(IxDyn(out_shape.dims()))
                    .expect("checked by Tensor");
                let bv = b0
                    .broadcast(IxDyn(out_shape.dims()))
                    .expect("checked by Tensor");
                let mut ov = ArrayViewMutD::from_shape(IxDyn(out_shape.dims()), &mut out)
                    .expect("output length matches shape");
                let z = Zip::from(&mut ov).and(&av).and(&bv);
                if n >= PAR_MIN {
                    z.par_for_each(|o, &x, &y| *o = f(x, y));
                } else {
                    z.for_each(|o, &x, &y| *o = f(x, y));
                }
            }
        }};
    }
    match op {
        BinaryOp::Add => run!(|x: f32, y: f32| x + y),
        BinaryOp::Sub => run!(|x: f32, y: f32| x - y),
        BinaryOp::Mul => run!(|x: f32, y: f32| x * y),
        BinaryOp::Div => run!(|x: f32, y: f32| x / y),
        _ => run!(binary_fn(op)),
    }
    out
}

pub fn where_cond(
    c: &[f32],
    cshape: &Shape,
    t: (&[f32], &Shape),
    f: (&[f32], &Shape),
    out_shape: &Shape,
) -> Vec<f32> {
    let dims = IxDyn(out_shape.dims());
    let (c0, t0, f0) = (view(c, cshape), view(t.0, t.1), view(f.0, f.1));
    let cv = c0.broadcast(dims.clone()).expect("checked by Tensor");
    let tv = t0.broadcast(dims.clone()).expect("checked by Tensor");
    let fv = f0.broadcast(dims.clone()).expect("checked by Tensor");
    let mut out = pool::take(out_shape.numel());
    let mut ov = ArrayViewMutD::from_shape(dims, &mut out).expect("output length matches shape");
    let z = Zip::from(&mut ov).and(&cv).and(&tv).and(&fv);
    let pick = |o: &mut f32, &c: &f32, &t: &f32, &f: &f32| *o = if c != 0.0 { t } else { f };
    if out_shape.numel() >= PAR_MIN {
        z.par_for_each(pick);
    } else {
        z.for_each(pick);
    }
    drop(ov);
    out
}

pub(crate) fn view<'a>(x: &'a [f32], shape: &Shape) -> ArrayViewD<'a, f32> {
    ArrayViewD::from_shape(IxDyn(shape.dims()), x).expect("storage length matches shape")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every 97th f32 in [−12, 12] (about 21 million values: both branches, the switch at 0.625,
    /// the saturation), plus the special values, against f64's tanh: within 2 ulp of the result.
    #[test]
    fn tanh_is_within_2_ulp() {
        let ulp = |v: f32| {
            let v = v.abs();
            if v < f32::MIN_POSITIVE {
                f32::from_bits(1)
            } else {
                f32::from_bits(v.to_bits() + 1) - v
            }
        };
        let mut worst = 0f64;
        let mut bits = 0u32;
        while bits < 12f32.to_bits() {
            for x in [f32::from_bits(bits), -f32::from_bits(bits)] {
                let want = (x as f64).tanh();
                let err = (tanh(x) as f64 - want).abs() / ulp(want as f32) as f64;
                assert!(
                    err <= 2.0,
                    "tanh({x}) = {}, want {want} ({err} ulp)",
                    tanh(x)
                );
                worst = worst.max(err);
            }
            bits += 97;
        }
        assert!(worst > 0.0);
        for x in [
            0.625f32,
            0.625f32.next_down(),
            10.0,
            10.0f32.next_up(),
            20.0,
            1e30,
        ] {
            assert_eq!(tanh(x), -tanh(-x));
            assert!((tanh(x) as f64 - (x as f64).tanh()).abs() <= 2.0 * ulp(x.tanh()) as f64);
        }
        assert_eq!(tanh(f32::INFINITY), 1.0);
        assert_eq!(tanh(f32::NEG_INFINITY), -1.0);
        assert!(tanh(f32::NAN).is_nan());
        assert_eq!(tanh(-0.0).to_bits(), (-0.0f32).to_bits());
        assert_eq!(tanh(0.0).to_bits(), 0);
    }

    /// out[i] for shapes broadcast by the index arithmetic alone (the reference).
    fn broadcast_reference(
        a: &[f32],
        ashape: &[usize],
        b: &[f32],
        bshape: &[usize],
        out: &[usize],
    ) -> Vec<f32> {
        let index = |shape: &[usize], flat: usize| -> usize {
            let (mut rem, mut idx, mut stride) = (flat, 0, 1);
            let lead = out.len() - shape.len();
            let mut coords = vec![0; out.len()];
            for d in (0..out.len()).rev() {
                coords[d] = rem % out[d];
                rem /= out[d];
            }
            for d in (0..shape.len()).rev() {
                let c = if shape[d] == 1 { 0 } else { coords[d + lead] };
                idx += c * stride;
                stride *= shape[d];
            }
            idx
        };
        (0..out.iter().product())
            .map(|i| a[index(ashape, i)] - b[index(bshape, i)])
            .collect()
    }

    #[test]
    fn per_block_broadcast_matches_the_index_rule() {
        let cases: [(&[usize], &[usize]); 5] = [
            (&[2, 3, 4, 5], &[1, 3, 1, 1]),
            (&[2, 3, 4, 5], &[3, 1, 1]),
            (&[2, 3, 4, 5], &[1, 1, 4, 5]),
            (&[2, 3, 16, 1], &[2, 3, 1, 1]),
            (&[4, 64, 32, 32], &[1, 64, 1, 1]),
        ];
        for (full, small) in cases {
            let (fs, ss) = (Shape::from(full), Shape::from(small));
            let a: Vec<f32> = (0..fs.numel()).map(|i| (i as f32 * 0.37).sin()).collect();
            let b: Vec<f32> = (0..ss.numel()).map(|i| (i as f32 * 1.3).cos()).collect();
            let ab = binary(&a, &fs, &b, &ss, &fs, BinaryOp::Sub);
            assert_eq!(
                ab,
                broadcast_reference(&a, full, &b, small, full),
                "{full:?} - {small:?}"
            );
            let ba = binary(&b, &ss, &a, &fs, &fs, BinaryOp::Sub);
            assert_eq!(
                ba,
                broadcast_reference(&b, small, &a, full, full),
                "{small:?} - {full:?}"
            );
        }
        assert_eq!(
            block_broadcast(&Shape::from([1, 3, 1, 1]), &Shape::from([2, 3, 4, 5])),
            Some((3, 20))
        );
        assert_eq!(
            block_broadcast(&Shape::from([2, 1, 1, 5]), &Shape::from([2, 3, 4, 5])),
            None
        );
        assert_eq!(
            block_broadcast(&Shape::from([1, 3, 1, 1]), &Shape::from([2, 3, 2, 2])),
            None
        );
    }

    #[test]
    fn nan_propagates_through_relu_clamp_and_extrema() {
        let nan = f32::NAN;
        for op in [
            UnaryOp::Relu,
            UnaryOp::Clamp(-1.0, 1.0),
            UnaryOp::LeakyRelu(0.2),
        ] {
            assert!(unary(&[nan], op)[0].is_nan(), "{op:?}");
            assert!(
                unary(&vec![nan; PAR_MIN], op).iter().all(|v| v.is_nan()),
                "{op:?} (parallel path)"
            );
        }
        let s = Shape::new(vec![2]);
        for op in [BinaryOp::Maximum, BinaryOp::Minimum] {
            let out = binary(&[nan, 0.0], &s, &[0.0, nan], &s, &s, op);
            assert!(out.iter().all(|v| v.is_nan()), "{op:?}: {out:?}");
        }
        assert_eq!(
            unary(&[-2.0, 0.5, 3.0], UnaryOp::Clamp(-1.0, 1.0)),
            vec![-1.0, 0.5, 1.0]
        );
        assert_eq!(unary(&[-2.0, 0.0, 3.0], UnaryOp::Relu), vec![0.0, 0.0, 3.0]);
    }
}
