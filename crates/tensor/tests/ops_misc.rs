//! Construction, one_hot, seeded randomness, and the typed errors every op returns (naming
//! the op and the shapes) for bad arguments instead of panicking.
mod common;

use common::*;
use proptest::prelude::*;
use tessera_tensor::backend::BackendStorage;
use tessera_tensor::cpu::CpuStorage;
use tessera_tensor::{
    CmpOp, Conv2dParams, Device, Error, Interpolation, PadMode, Pool2dParams, Rng, Shape, Tensor,
};

#[test]
fn constructors() {
    let t = Tensor::from_slice(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0], [2, 3], CPU).unwrap();
    assert_eq!(t.dims(), &[2, 3]);
    assert_eq!(t.rank(), 2);
    assert_eq!(t.numel(), 6);
    assert_eq!(t.device(), Device::Cpu);
    assert_eq!(host(&t), vec![1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    assert_eq!(host(&Tensor::full(2.5, [2, 2], CPU).unwrap()), vec![2.5; 4]);
    assert_eq!(host(&Tensor::zeros([3], CPU).unwrap()), vec![0.0; 3]);
    assert_eq!(host(&Tensor::ones([1, 2], CPU).unwrap()), vec![1.0; 2]);
    let s = Tensor::scalar(4.0, CPU).unwrap();
    assert_eq!((s.rank(), s.numel(), s.to_scalar().unwrap()), (0, 1, 4.0));
    assert!(t.to_device(Device::Cpu).unwrap().same_storage(&t));
    assert_eq!(format!("{t:?}"), "Tensor([2, 3], Cpu)");
    assert_eq!(Shape::new(vec![2, 3, 4]).strides(), vec![12, 4, 1]);
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn one_hot_matches_labels(n in 1usize..=3, h in 1usize..=4, w in 1usize..=4, classes in 1usize..=5,
                              seed in any::<u64>()) {
        let mut rng = Rng::seed(seed);
        let labels: Vec<u32> = (0..n * h * w).map(|_| (rng.next_u64() % classes as u64) as u32).collect();
        let t = Tensor::one_hot(&labels, [n, h, w], classes, CPU).unwrap();
        prop_assert_eq!(t.dims(), &[n, classes, h, w][..]);
        let v = host(&t);
        for b in 0..n {
            for y in 0..h {
                for x in 0..w {
                    let label = labels[(b * h + y) * w + x] as usize;
                    for c in 0..classes {
                        let want = (c == label) as u8 as f32;
                        prop_assert_eq!(v[((b * classes + c) * h + y) * w + x], want);
                    }
                }
            }
        }
    }

    #[test]
    fn seeded_rng_is_reproducible(seed in any::<u64>(), n in 1usize..200) {
        let a = Tensor::randn([n], 0.0, 1.0, &mut Rng::seed(seed), CPU).unwrap();
        let b = Tensor::randn([n], 0.0, 1.0, &mut Rng::seed(seed), CPU).unwrap();
        prop_assert_eq!(host(&a), host(&b));
        let u = Tensor::rand_uniform([n], -1.0, 2.0, &mut Rng::seed(seed), CPU).unwrap();
        let v = Tensor::rand_uniform([n], -1.0, 2.0, &mut Rng::seed(seed), CPU).unwrap();
        prop_assert_eq!(host(&u), host(&v));
        prop_assert!(host(&u).iter().all(|&x| (-1.0..2.0).contains(&x)));
        let other = Tensor::randn([n], 0.0, 1.0, &mut Rng::seed(seed.wrapping_add(1)), CPU).unwrap();
        prop_assert_ne!(host(&a), host(&other));
        // A cloned generator continues the same stream.
        let mut r = Rng::seed(seed);
        r.next_u64();
        let mut r2 = r.clone();
        prop_assert_eq!(r.normal_vec(5, 0.0, 1.0), r2.normal_vec(5, 0.0, 1.0));
    }
}

#[test]
fn rng_moments_are_roughly_right() {
    let n = 200_000;
    let mut rng = Rng::seed(42);
    let x = rng.normal_vec(n, 1.5, 2.0);
    let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    let var = x.iter().map(|&v| (v as f64 - mean).powi(2)).sum::<f64>() / n as f64;
    let skew = x
        .iter()
        .map(|&v| ((v as f64 - mean) / var.sqrt()).powi(3))
        .sum::<f64>()
        / n as f64;
    let kurt = x
        .iter()
        .map(|&v| ((v as f64 - mean) / var.sqrt()).powi(4))
        .sum::<f64>()
        / n as f64;
    // Standard errors: mean 2/√n ≈ 0.0045, var ≈ 4·√(2/n) ≈ 0.013.
    assert!((mean - 1.5).abs() < 0.03, "mean {mean}");
    assert!((var - 4.0).abs() < 0.08, "var {var}");
    assert!(skew.abs() < 0.03, "skew {skew}");
    assert!((kurt - 3.0).abs() < 0.1, "kurtosis {kurt}");
    let u = rng.uniform_vec(n, -2.0, 4.0);
    let um = u.iter().map(|&v| v as f64).sum::<f64>() / n as f64;
    let uv = u.iter().map(|&v| (v as f64 - um).powi(2)).sum::<f64>() / n as f64;
    assert!((um - 1.0).abs() < 0.03, "uniform mean {um}");
    assert!((uv - 3.0).abs() < 0.05, "uniform var {uv} (36/12)");
    assert!(u.iter().all(|&v| (-2.0..4.0).contains(&v)));
    // Fixed seed, fixed numbers: the stream is part of reproducibility across runs.
    let a = Rng::seed(7).normal_vec(4, 0.0, 1.0);
    let b = Rng::seed(7).normal_vec(4, 0.0, 1.0);
    assert_eq!(a, b);
    assert_ne!(Rng::seed(7).next_u64(), Rng::seed(8).next_u64());
}

/// Asserts `r` is an error for `op` whose message names the op and every shape in `shapes`.
fn named<T: std::fmt::Debug>(r: tessera_tensor::Result<T>, op: &str, shapes: &[&[usize]]) -> Error {
    let e = r.expect_err("expected an error");
    let got_op = match &e {
        Error::ShapeMismatch { op, .. }
        | Error::InvalidArgument { op, .. }
        | Error::DeviceMismatch { op, .. }
        | Error::CudaNotBuilt { op, .. }
        | Error::Cuda { op, .. }
        | Error::DataLength { op, .. } => *op,
    };
    assert_eq!(got_op, op, "{e}");
    let msg = e.to_string();
    assert!(msg.starts_with(op), "{msg}");
    for s in shapes {
        assert!(msg.contains(&format!("{s:?}")), "{msg} should name {s:?}");
    }
    e
}

#[test]
fn construction_errors() {
    named(
        Tensor::from_vec(vec![1.0; 5], [2, 3], CPU),
        "from_vec",
        &[&[2, 3]],
    );
    named(
        // Without the `cuda` feature: CudaNotBuilt; with it, device 7 does not exist here.
        Tensor::scalar(1.0, CPU).unwrap().to_device(Device::Cuda(7)),
        "to_device",
        &[],
    );
    named(Tensor::zeros([2], Device::Cuda(1)), "from_vec", &[]);
    named(
        Tensor::ones([2], CPU).unwrap().to_scalar(),
        "to_scalar",
        &[&[2]],
    );
    let e = named(
        Tensor::one_hot(&[0, 3, 1], [1, 1, 3], 3, CPU),
        "one_hot",
        &[&[1, 1, 3]],
    );
    assert!(
        e.to_string().contains("label 3") && e.to_string().contains("0..3"),
        "{e}"
    );
    named(
        Tensor::one_hot(&[0, 1], [1, 1, 3], 3, CPU),
        "one_hot",
        &[&[1, 1, 3]],
    );
}

#[test]
fn elementwise_and_reduction_errors() {
    let a = normal(&[2, 3], 1);
    let b = normal(&[4], 2);
    let e = named(a.add(&b), "binary", &[&[2, 3], &[4]]);
    assert!(matches!(e, Error::ShapeMismatch { .. }));
    named(a.where_cond(&a, &b), "where_cond", &[&[2, 3], &[4]]);
    named(a.cmp(&b, CmpOp::Eq), "binary", &[&[2, 3], &[4]]);
    named(a.clamp(1.0, -1.0), "clamp", &[&[2, 3]]);
    named(a.clamp(f32::NAN, 1.0), "clamp", &[&[2, 3]]);
    named(a.sum(&[2], false), "reduce", &[&[2, 3]]);
    named(a.max(&[0, 5], true), "reduce", &[&[2, 3]]);
    named(a.mean(&[3], true), "mean", &[&[2, 3]]);
    named(a.var(&[2], true, false), "reduce", &[&[2, 3]]);
    named(
        a.sum_to(&Shape::new(vec![3, 3])),
        "sum_to",
        &[&[2, 3], &[3, 3]],
    );
    named(
        a.sum_to(&Shape::new(vec![1, 2, 3])),
        "sum_to",
        &[&[2, 3], &[1, 2, 3]],
    );
}

#[test]
fn matmul_and_layout_errors() {
    let a = normal(&[2, 3], 1);
    named(a.matmul(&normal(&[2, 3], 2)), "matmul", &[&[2, 3]]);
    named(a.matmul(&normal(&[3], 2)), "matmul", &[&[2, 3], &[3]]);
    named(
        normal(&[2, 2, 3], 3).matmul(&normal(&[3, 3, 1], 4)),
        "matmul",
        &[&[2, 2, 3], &[3, 3, 1]],
    );
    named(
        a.matmul(&normal(&[2, 3, 1], 5)),
        "matmul",
        &[&[2, 3], &[2, 3, 1]],
    );
    named(
        normal(&[1, 2, 2, 3], 6).matmul(&a),
        "matmul",
        &[&[1, 2, 2, 3]],
    );
    named(a.reshape([4, 2]), "reshape", &[&[2, 3], &[4, 2]]);
    named(a.permute(&[0, 0]), "permute", &[&[2, 3]]);
    named(a.permute(&[1]), "permute", &[&[2, 3]]);
    named(a.permute(&[0, 2]), "permute", &[&[2, 3]]);
    named(a.transpose(0, 2), "transpose", &[&[2, 3]]);
    named(a.broadcast_to([3, 3]), "broadcast_to", &[&[2, 3], &[3, 3]]);
    named(a.broadcast_to([3]), "broadcast_to", &[&[2, 3], &[3]]);
    named(a.narrow(1, 2, 2), "narrow", &[&[2, 3]]);
    named(a.narrow(2, 0, 1), "narrow", &[&[2, 3]]);
    #[allow(clippy::reversed_empty_ranges)]
    named(a.slice(1, 2..1), "slice", &[&[2, 3]]);
    named(a.pad_axis(2, 1, 1), "pad_axis", &[&[2, 3]]);
    named(Tensor::concat(&[], 0), "concat", &[]);
    named(
        Tensor::concat(&[&a, &normal(&[3, 3], 2)], 1),
        "concat",
        &[&[2, 3], &[3, 3]],
    );
    named(
        Tensor::concat(&[&a, &normal(&[2, 3, 1], 2)], 0),
        "concat",
        &[&[2, 3], &[2, 3, 1]],
    );
    named(Tensor::concat(&[&a, &a], 2), "concat", &[&[2, 3]]);
    named(a.split(&[1, 1], 1), "split", &[&[2, 3]]);
    named(a.split(&[3], 2), "split", &[&[2, 3]]);
}

#[test]
fn spatial_errors() {
    let x = normal(&[1, 2, 5, 5], 1);
    let w = normal(&[3, 2, 3, 3], 2);
    let p = Conv2dParams::default();
    // Non-4-d inputs.
    named(
        normal(&[2, 5, 5], 3).pad2d([1, 1, 1, 1], PadMode::Zero),
        "pad2d",
        &[&[2, 5, 5]],
    );
    named(normal(&[2, 5], 3).conv2d(&w, None, p), "conv2d", &[&[2, 5]]);
    named(
        normal(&[5], 3).avg_pool2d(Pool2dParams {
            kernel: [1, 1],
            stride: [1, 1],
            padding: [0, 0],
            count_include_pad: true,
        }),
        "avg_pool2d",
        &[&[5]],
    );
    named(
        normal(&[5, 5], 3).upsample2d([2, 2], Interpolation::Nearest),
        "upsample2d",
        &[&[5, 5]],
    );
    // pad2d limits.
    named(
        x.pad2d([5, 0, 0, 0], PadMode::Reflect),
        "pad2d",
        &[&[1, 2, 5, 5]],
    );
    named(
        x.pad2d([0, 0, 0, 5], PadMode::Reflect),
        "pad2d",
        &[&[1, 2, 5, 5]],
    );
    named(
        Tensor::zeros([1, 1, 0, 3], CPU)
            .unwrap()
            .pad2d([1, 1, 1, 1], PadMode::Replicate),
        "pad2d",
        &[&[1, 1, 0, 3]],
    );
    named(
        x.pad2d_adjoint([3, 3, 0, 0], PadMode::Zero),
        "pad2d_adjoint",
        &[&[1, 2, 5, 5]],
    );
    named(
        x.pad2d_adjoint([2, 2, 0, 0], PadMode::Reflect),
        "pad2d_adjoint",
        &[&[1, 2, 5, 5]],
    );
    // conv2d geometry.
    named(
        x.conv2d(&normal(&[3, 4, 3, 3], 4), None, p),
        "conv2d",
        &[&[1, 2, 5, 5], &[3, 4, 3, 3]],
    );
    named(
        x.conv2d(&normal(&[3, 2, 6, 3], 4), None, p),
        "conv2d",
        &[&[1, 2, 5, 5], &[3, 2, 6, 3]],
    );
    named(
        x.conv2d(&w, None, Conv2dParams::new(0, 0, 1)),
        "conv2d",
        &[&[1, 2, 5, 5], &[3, 2, 3, 3]],
    );
    named(
        x.conv2d(&w, None, Conv2dParams::new(1, 0, 0)),
        "conv2d",
        &[&[1, 2, 5, 5], &[3, 2, 3, 3]],
    );
    named(
        x.conv2d(&w, None, Conv2dParams::new(1, 0, 3)),
        "conv2d",
        &[&[1, 2, 5, 5], &[3, 2, 3, 3]],
    );
    named(
        x.conv2d(&normal(&[3, 2, 0, 3], 4), None, p),
        "conv2d",
        &[&[1, 2, 5, 5], &[3, 2, 0, 3]],
    );
    named(
        x.conv2d(&w, Some(&normal(&[2], 5)), p),
        "conv2d",
        &[&[3, 2, 3, 3], &[2]],
    );
    named(
        x.conv2d(&w, Some(&normal(&[1, 3], 5)), p),
        "conv2d",
        &[&[3, 2, 3, 3], &[1, 3]],
    );
    let g = normal(&[1, 3, 3, 3], 6);
    named(
        g.conv2d_input_grad(&normal(&[2, 2, 3, 3], 7), [5, 5], p),
        "conv2d_input_grad",
        &[&[1, 3, 3, 3], &[2, 2, 3, 3]],
    );
    named(
        g.conv2d_input_grad(&w, [6, 6], p),
        "conv2d_input_grad",
        &[&[1, 3, 3, 3], &[3, 2, 3, 3]],
    );
    named(
        normal(&[2, 2, 5, 5], 8).conv2d_weight_grad(&g, [3, 3], p),
        "conv2d_weight_grad",
        &[&[2, 2, 5, 5], &[1, 3, 3, 3]],
    );
    named(
        x.conv2d_weight_grad(&g, [2, 2], p),
        "conv2d_weight_grad",
        &[&[1, 2, 5, 5], &[1, 3, 3, 3]],
    );
    // avg_pool2d geometry.
    let pool = |k: usize, s: usize, pad: usize| Pool2dParams {
        kernel: [k, k],
        stride: [s, s],
        padding: [pad, pad],
        count_include_pad: true,
    };
    named(x.avg_pool2d(pool(6, 1, 0)), "avg_pool2d", &[&[1, 2, 5, 5]]);
    named(x.avg_pool2d(pool(2, 0, 0)), "avg_pool2d", &[&[1, 2, 5, 5]]);
    named(x.avg_pool2d(pool(2, 1, 2)), "avg_pool2d", &[&[1, 2, 5, 5]]);
    named(x.avg_pool2d(pool(0, 1, 0)), "avg_pool2d", &[&[1, 2, 5, 5]]);
    named(
        normal(&[1, 2, 2, 2], 9).avg_pool2d_adjoint([6, 6], pool(2, 2, 0)),
        "avg_pool2d_adjoint",
        &[&[1, 2, 2, 2]],
    );
    // Resizing to or from nothing.
    named(
        x.upsample2d([0, 3], Interpolation::Nearest),
        "upsample2d",
        &[&[1, 2, 5, 5]],
    );
    named(
        x.upsample2d_adjoint(
            [3, 0],
            Interpolation::Bilinear {
                align_corners: true,
            },
        ),
        "upsample2d_adjoint",
        &[&[1, 2, 5, 5]],
    );
    named(
        Tensor::zeros([1, 1, 0, 2], CPU)
            .unwrap()
            .upsample2d([2, 2], Interpolation::Nearest),
        "upsample2d",
        &[&[1, 1, 0, 2]],
    );
}

#[test]
fn absurd_ranges_are_errors_not_overflows() {
    let t = Tensor::zeros([2, 3], Device::Cpu).unwrap();
    assert!(matches!(
        t.narrow(1, usize::MAX, 2),
        Err(Error::InvalidArgument { op: "narrow", .. })
    ));
    assert!(matches!(
        t.pad_axis(0, usize::MAX, 1),
        Err(Error::InvalidArgument { op: "pad_axis", .. })
    ));
}

#[test]
fn uniform_stays_below_hi_when_the_range_is_tiny_against_lo() {
    let mut rng = Rng::seed(3);
    let v = Tensor::rand_uniform([4096], 1e6, 1e6 + 0.125, &mut rng, Device::Cpu)
        .unwrap()
        .to_vec()
        .unwrap();
    assert!(v.iter().all(|&x| (1e6..1e6 + 0.125).contains(&x)));
}

#[test]
fn resizing_to_the_same_size_is_the_identity_without_a_copy() {
    let mut rng = Rng::seed(5);
    let x = Tensor::randn([2, 3, 5, 7], 0.0, 1.0, &mut rng, Device::Cpu).unwrap();
    for mode in [
        Interpolation::Nearest,
        Interpolation::Bilinear {
            align_corners: false,
        },
        Interpolation::Bilinear {
            align_corners: true,
        },
    ] {
        let y = x.upsample2d([5, 7], mode).unwrap();
        assert!(y.same_storage(&x), "{mode:?}");
        // The shortcut is exact: the CPU kernel itself maps a same-size resize to the input.
        let kernel = CpuStorage(x.to_vec().unwrap())
            .upsample2d([2, 3, 5, 7], [5, 7], mode)
            .unwrap();
        assert_eq!(kernel.0, x.to_vec().unwrap(), "{mode:?}");
    }
}
