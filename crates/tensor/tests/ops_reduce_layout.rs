//! Reductions over arbitrary axis sets, layout ops (reshape, permute, broadcast, narrow, pad,
//! concat, split) and matmul, against naive index-walking references.
mod common;

use common::*;
use proptest::collection::vec;
use proptest::prelude::*;
use tessera_tensor::{ReduceOp, Shape, Tensor};

/// Reference reduction: every input element goes to the output slot of its kept indices.
fn reduce_ref(x: &Tensor, axes: &[usize], keepdim: bool, op: ReduceOp) -> (Vec<usize>, Vec<f64>) {
    let dims = x.dims();
    let kept_dims: Vec<usize> = (0..dims.len())
        .map(|a| if axes.contains(&a) { 1 } else { dims[a] })
        .collect();
    let n_out = numel(&kept_dims);
    let count: usize = (0..dims.len())
        .filter(|a| axes.contains(a))
        .map(|a| dims[a])
        .product();
    let mut groups: Vec<Vec<f64>> = vec![Vec::new(); n_out];
    for (i, &v) in host(x).iter().enumerate() {
        let mut idx = unravel(i, dims);
        for &a in axes {
            idx[a] = 0;
        }
        groups[ravel(&idx, &kept_dims)].push(v as f64);
    }
    let out = groups
        .iter()
        .map(|g| match op {
            ReduceOp::Sum => g.iter().sum(),
            ReduceOp::Max => g.iter().cloned().fold(f64::NEG_INFINITY, f64::max),
            ReduceOp::Min => g.iter().cloned().fold(f64::INFINITY, f64::min),
            ReduceOp::Var { unbiased } => {
                let mean = g.iter().sum::<f64>() / count as f64;
                let ss: f64 = g.iter().map(|v| (v - mean).powi(2)).sum();
                ss / if unbiased {
                    count as f64 - 1.0
                } else {
                    count as f64
                }
            }
        })
        .collect();
    let shape = if keepdim {
        kept_dims
    } else {
        (0..dims.len())
            .filter(|a| !axes.contains(a))
            .map(|a| dims[a])
            .collect()
    };
    (shape, out)
}

fn check_reductions(x: &Tensor, axes: &[usize], keepdim: bool) -> Result<(), TestCaseError> {
    let mut uniq = axes.to_vec();
    uniq.sort_unstable();
    uniq.dedup();
    let count: usize = uniq.iter().map(|&a| x.dims()[a]).product();
    for op in [
        ReduceOp::Sum,
        ReduceOp::Max,
        ReduceOp::Min,
        ReduceOp::Var { unbiased: false },
        ReduceOp::Var { unbiased: true },
    ] {
        if op == (ReduceOp::Var { unbiased: true }) && count < 2 {
            continue;
        }
        let got = x.reduce(axes, keepdim, op).unwrap();
        let (shape, want) = reduce_ref(x, &uniq, keepdim, op);
        prop_assert_eq!(got.dims(), &shape[..], "{:?} over {:?}", op, axes);
        close(
            &format!("{op:?} {:?} over {axes:?}", x.dims()),
            &host(&got),
            &want,
            1e-6,
            1e-6,
        )?;
    }
    let (_, sum) = reduce_ref(x, &uniq, keepdim, ReduceOp::Sum);
    let mean: Vec<f64> = sum.iter().map(|s| s / count as f64).collect();
    close(
        "mean",
        &host(&x.mean(axes, keepdim).unwrap()),
        &mean,
        2e-6,
        1e-6,
    )?;
    // The named wrappers are the same reductions.
    same(
        "sum",
        &host(&x.sum(axes, keepdim).unwrap()),
        &host(&x.reduce(axes, keepdim, ReduceOp::Sum).unwrap()),
    )?;
    same(
        "max",
        &host(&x.max(axes, keepdim).unwrap()),
        &host(&x.reduce(axes, keepdim, ReduceOp::Max).unwrap()),
    )?;
    same(
        "min",
        &host(&x.min(axes, keepdim).unwrap()),
        &host(&x.reduce(axes, keepdim, ReduceOp::Min).unwrap()),
    )?;
    same(
        "var",
        &host(&x.var(axes, false, keepdim).unwrap()),
        &host(
            &x.reduce(axes, keepdim, ReduceOp::Var { unbiased: false })
                .unwrap(),
        ),
    )?;
    Ok(())
}

fn matmul_ref(
    a: &[f32],
    b: &[f32],
    batch: usize,
    shared: bool,
    m: usize,
    k: usize,
    n: usize,
) -> (Vec<f64>, Vec<f64>) {
    let mut out = vec![0.0; batch * m * n];
    let mut mag = vec![0.0; batch * m * n];
    for bt in 0..batch {
        let boff = if shared { 0 } else { bt * k * n };
        for i in 0..m {
            for j in 0..n {
                for l in 0..k {
                    let p = a[bt * m * k + i * k + l] as f64 * b[boff + l * n + j] as f64;
                    out[bt * m * n + i * n + j] += p;
                    mag[bt * m * n + i * n + j] += p.abs();
                }
            }
        }
    }
    (out, mag)
}

fn check_matmul(a: &Tensor, b: &Tensor) -> Result<(), TestCaseError> {
    let got = a.matmul(b).unwrap();
    let (batch, m, k) = match *a.dims() {
        [m, k] => (1, m, k),
        [bt, m, k] => (bt, m, k),
        _ => unreachable!(),
    };
    let n = *b.dims().last().unwrap();
    let shared = b.rank() == 2;
    let (want, mag) = matmul_ref(&host(a), &host(b), batch, shared, m, k, n);
    let mut shape = a.dims().to_vec();
    *shape.last_mut().unwrap() = n;
    prop_assert_eq!(got.dims(), &shape[..]);
    for (i, (&g, (&w, &s))) in host(&got).iter().zip(want.iter().zip(&mag)).enumerate() {
        // f32 accumulation of k products: error ≤ ~k·ε·Σ|aᵢbᵢ|.
        let tol = 1e-6 + (k as f64 + 2.0) * 1.2e-7 * s;
        prop_assert!(
            (g as f64 - w).abs() <= tol,
            "matmul {:?}·{:?} [{}]: {} vs {}",
            a.dims(),
            b.dims(),
            i,
            g,
            w
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn reductions_over_any_axes(shape in small_shape(), axes in vec(0usize..4, 0..5),
                                keepdim in any::<bool>(), seed in any::<u64>()) {
        let axes: Vec<usize> = axes.into_iter().filter(|&a| a < shape.len()).collect();
        // Rounded values make ties in max/min.
        let x = tensor(host(&normal(&shape, seed).mul_scalar(3.0).unwrap()).iter().map(|v| v.round()).collect(), &shape);
        check_reductions(&x, &axes, keepdim)?;
        check_reductions(&normal(&shape, seed ^ 1), &axes, keepdim)?;
        let all: Vec<usize> = (0..shape.len()).collect();
        let s = x.sum_all().unwrap();
        prop_assert_eq!(s.rank(), 0);
        let (_, want) = reduce_ref(&x, &all, false, ReduceOp::Sum);
        close("sum_all", &host(&s), &want, 1e-6, 1e-6)?;
        close("mean_all", &host(&x.mean_all().unwrap()), &[want[0] / x.numel() as f64], 2e-6, 1e-6)?;
    }

    #[test]
    fn sum_to_inverts_broadcasting(out in small_shape(), ones in any::<u32>(), drop in 0usize..5,
                                   seed in any::<u64>()) {
        let small = broadcast_operand(&out, ones, drop);
        let x = normal(&out, seed);
        let got = x.sum_to(&Shape::new(small.clone())).unwrap();
        prop_assert_eq!(got.dims(), &small[..]);
        let mut want = vec![0.0f64; numel(&small)];
        for (i, &v) in host(&x).iter().enumerate() {
            want[broadcast_index(&unravel(i, &out), &small)] += v as f64;
        }
        close("sum_to", &host(&got), &want, 1e-6, 1e-6)?;
        // broadcast_to then sum_to multiplies by the number of copies.
        let y = normal(&small, seed ^ 1);
        let b = y.broadcast_to(out.clone()).unwrap();
        prop_assert_eq!(b.dims(), &out[..]);
        let yv = host(&y);
        let want_b: Vec<f32> = (0..numel(&out)).map(|i| yv[broadcast_index(&unravel(i, &out), &small)]).collect();
        same("broadcast_to", &host(&b), &want_b)?;
        same("expand", &host(&y.expand(out.clone()).unwrap()), &want_b)?;
        let copies = (numel(&out) / numel(&small)) as f64;
        let back: Vec<f64> = yv.iter().map(|&v| v as f64 * copies).collect();
        close("sum_to ∘ broadcast_to", &host(&b.sum_to(y.shape()).unwrap()), &back, 1e-6, 1e-6)?;
    }

    #[test]
    fn permute_transpose_reshape(shape in vec(1usize..=4, 1..=5), seed in any::<u64>(),
                                 a in any::<usize>(), b in any::<usize>()) {
        let x = normal(&shape, seed);
        let xv = host(&x);
        let r = shape.len();
        let perm = permutation(r, seed);
        let p = x.permute(&perm).unwrap();
        let pdims: Vec<usize> = perm.iter().map(|&q| shape[q]).collect();
        prop_assert_eq!(p.dims(), &pdims[..]);
        let want: Vec<f32> = (0..x.numel()).map(|j| {
            let jdx = unravel(j, &pdims);
            let mut idx = vec![0; r];
            for (a, &q) in perm.iter().enumerate() {
                idx[q] = jdx[a];
            }
            xv[ravel(&idx, &shape)]
        }).collect();
        same("permute", &host(&p), &want)?;
        let mut inverse = vec![0; r];
        for (i, &q) in perm.iter().enumerate() {
            inverse[q] = i;
        }
        same("permute back", &host(&p.permute(&inverse).unwrap()), &xv)?;
        let (ta, tb) = (a % r, b % r);
        let mut swap: Vec<usize> = (0..r).collect();
        swap.swap(ta, tb);
        same("transpose", &host(&x.transpose(ta, tb).unwrap()), &host(&x.permute(&swap).unwrap()))?;
        // reshape keeps the data (and the buffer) in row-major order.
        let flat = x.reshape([x.numel()]).unwrap();
        prop_assert!(flat.same_storage(&x));
        same("reshape", &host(&flat), &xv)?;
        let back = flat.reshape(shape.clone()).unwrap();
        prop_assert_eq!(back.dims(), &shape[..]);
    }

    #[test]
    fn narrow_slice_pad_axis(shape in vec(1usize..=5, 1..=4), axis in any::<usize>(), s in any::<usize>(),
                             l in any::<usize>(), before in 0usize..3, after in 0usize..3, seed in any::<u64>()) {
        let x = normal(&shape, seed);
        let xv = host(&x);
        let axis = axis % shape.len();
        let d = shape[axis];
        let start = s % d;
        let len = l % (d - start + 1);
        let n = x.narrow(axis, start, len).unwrap();
        let mut ndims = shape.clone();
        ndims[axis] = len;
        prop_assert_eq!(n.dims(), &ndims[..]);
        let want: Vec<f32> = (0..numel(&ndims)).map(|j| {
            let mut idx = unravel(j, &ndims);
            idx[axis] += start;
            xv[ravel(&idx, &shape)]
        }).collect();
        same("narrow", &host(&n), &want)?;
        same("slice", &host(&x.slice(axis, start..start + len).unwrap()), &want)?;
        let p = x.pad_axis(axis, before, after).unwrap();
        let mut pdims = shape.clone();
        pdims[axis] += before + after;
        prop_assert_eq!(p.dims(), &pdims[..]);
        let want: Vec<f32> = (0..numel(&pdims)).map(|j| {
            let mut idx = unravel(j, &pdims);
            if idx[axis] < before || idx[axis] >= before + d {
                0.0
            } else {
                idx[axis] -= before;
                xv[ravel(&idx, &shape)]
            }
        }).collect();
        same("pad_axis", &host(&p), &want)?;
        // pad_axis and narrow are mutually inverse.
        same("narrow ∘ pad_axis", &host(&p.narrow(axis, before, d).unwrap()), &xv)?;
    }

    #[test]
    fn concat_and_split(shape in vec(1usize..=4, 1..=4), axis in any::<usize>(),
                        sizes in vec(0usize..=3, 1..=4), seed in any::<u64>()) {
        let axis = axis % shape.len();
        let parts: Vec<Tensor> = sizes.iter().enumerate().map(|(i, &s)| {
            let mut d = shape.clone();
            d[axis] = s;
            normal(&d, seed ^ i as u64)
        }).collect();
        let refs: Vec<&Tensor> = parts.iter().collect();
        let c = Tensor::concat(&refs, axis).unwrap();
        let mut cdims = shape.clone();
        cdims[axis] = sizes.iter().sum();
        prop_assert_eq!(c.dims(), &cdims[..]);
        let hosts: Vec<Vec<f32>> = parts.iter().map(host).collect();
        let want: Vec<f32> = (0..numel(&cdims)).map(|j| {
            let mut idx = unravel(j, &cdims);
            let mut p = 0;
            while idx[axis] >= sizes[p] {
                idx[axis] -= sizes[p];
                p += 1;
            }
            hosts[p][ravel(&idx, parts[p].dims())]
        }).collect();
        same("concat", &host(&c), &want)?;
        let pieces = c.split(&sizes, axis).unwrap();
        prop_assert_eq!(pieces.len(), sizes.len());
        for (piece, part) in pieces.iter().zip(&parts) {
            prop_assert_eq!(piece.dims(), part.dims());
            same("split", &host(piece), &host(part))?;
        }
    }

    #[test]
    fn matmul_matches_triple_loop(b in 1usize..=3, m in 1usize..=9, k in 1usize..=9, n in 1usize..=9,
                                  seed in any::<u64>()) {
        check_matmul(&normal(&[m, k], seed), &normal(&[k, n], seed ^ 1))?;
        check_matmul(&normal(&[b, m, k], seed ^ 2), &normal(&[b, k, n], seed ^ 3))?;
        check_matmul(&normal(&[b, m, k], seed ^ 4), &normal(&[k, n], seed ^ 5))?;
    }
}

#[test]
fn large_reductions_and_matmuls() {
    // ≥ 2^15 elements: parallel reduction runs, trailing and moved axes.
    let x = normal(&[8, 70, 64], 11);
    for axes in [vec![2], vec![1, 2], vec![0], vec![0, 2], vec![0, 1, 2]] {
        check_reductions(&x, &axes, true).unwrap();
    }
    // Big enough for gemm's own parallel split (m·n·k ≥ 2^18).
    check_matmul(&normal(&[70, 65], 1), &normal(&[65, 80], 2)).unwrap();
    check_matmul(&normal(&[2, 70, 65], 3), &normal(&[65, 80], 4)).unwrap();
}

#[test]
fn reduction_edge_cases() {
    // No axes: the identity (var 0 biased).
    let x = normal(&[2, 3], 5);
    same(
        "sum over none",
        &host(&x.sum(&[], false).unwrap()),
        &host(&x),
    )
    .unwrap();
    assert_eq!(host(&x.var(&[], false, false).unwrap()), vec![0.0; 6]);
    // Duplicates and order do not matter.
    same(
        "dup axes",
        &host(&x.sum(&[1, 0, 1], false).unwrap()),
        &host(&x.sum(&[0, 1], false).unwrap()),
    )
    .unwrap();
    // Rank 0.
    let s = Tensor::scalar(2.5, CPU).unwrap();
    assert_eq!(host(&s.sum_all().unwrap()), vec![2.5]);
    assert_eq!(s.to_scalar().unwrap(), 2.5);
    // Empty reduced axes give the identity of each reduction.
    let e = Tensor::zeros([2, 0], CPU).unwrap();
    assert_eq!(host(&e.sum(&[1], false).unwrap()), vec![0.0, 0.0]);
    assert_eq!(
        host(&e.max(&[1], false).unwrap()),
        vec![f32::NEG_INFINITY; 2]
    );
    assert_eq!(host(&e.min(&[1], true).unwrap()), vec![f32::INFINITY; 2]);
    // Max propagates NaN.
    let nan = tensor(vec![1.0, f32::NAN, 3.0], &[3]);
    assert!(host(&nan.max(&[0], false).unwrap())[0].is_nan());
    assert!(host(&nan.min(&[0], false).unwrap())[0].is_nan());
}

#[test]
fn layout_fast_paths_share_or_copy_as_documented() {
    let x = normal(&[3, 4], 1);
    assert!(x.permute(&[0, 1]).unwrap().same_storage(&x));
    assert!(x.narrow(1, 0, 4).unwrap().same_storage(&x));
    assert!(x.pad_axis(0, 0, 0).unwrap().same_storage(&x));
    assert!(x.broadcast_to([3, 4]).unwrap().same_storage(&x));
    assert!(x.sum_to(&Shape::new(vec![3, 4])).unwrap().same_storage(&x));
    // Narrow on the leading axis (one contiguous run).
    same(
        "narrow axis 0",
        &host(&x.narrow(0, 1, 2).unwrap()),
        &host(&x)[4..12],
    )
    .unwrap();
    // Empty pieces are allowed.
    let parts = x.split(&[0, 4, 0], 1).unwrap();
    assert_eq!(parts[0].dims(), &[3, 0]);
    assert_eq!(parts[1].dims(), &[3, 4]);
    let z = Tensor::concat(&[&parts[0], &x, &parts[2]], 1).unwrap();
    same("concat with empty", &host(&z), &host(&x)).unwrap();
}
