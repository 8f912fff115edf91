//! The fused `Tensor::spade_norm` against the composite (mean, biased variance, rsqrt, mul, add)
//! that tessera-nn's SPADE layer builds, for batch and instance statistics, on shapes that take
//! the serial and the parallel paths.
use tessera_tensor::{Device, Error, Rng, Tensor};

fn composite(x: &Tensor, gamma: &Tensor, beta: &Tensor, instance: bool, eps: f32) -> Tensor {
    let axes: &[usize] = if instance { &[2, 3] } else { &[0, 2, 3] };
    let mean = x.mean(axes, true).unwrap();
    let r = x
        .var(axes, false, true)
        .unwrap()
        .add_scalar(eps)
        .unwrap()
        .rsqrt()
        .unwrap();
    x.sub(&mean)
        .unwrap()
        .mul(&r)
        .unwrap()
        .mul(&gamma.add_scalar(1.0).unwrap())
        .unwrap()
        .add(beta)
        .unwrap()
}

#[test]
fn fused_spade_norm_matches_the_composite() {
    let mut rng = Rng::seed(3);
    // [3, 4, 5, 7] runs serially; [2, 16, 48, 48] (73 728 values) in parallel.
    for dims in [[3usize, 4, 5, 7], [2, 16, 48, 48], [1, 2, 1, 1]] {
        let mut t =
            |mean: f32, std: f32| Tensor::randn(dims, mean, std, &mut rng, Device::Cpu).unwrap();
        let (x, gamma, beta) = (t(0.7, 2.0), t(0.0, 0.3), t(0.0, 0.3));
        for instance in [false, true] {
            let got = x.spade_norm(&gamma, &beta, instance, 1e-5).unwrap();
            let want = composite(&x, &gamma, &beta, instance, 1e-5);
            let (g, w) = (got.to_vec().unwrap(), want.to_vec().unwrap());
            let worst = g
                .iter()
                .zip(&w)
                .fold(0f32, |m, (a, b)| m.max((a - b).abs() / (1.0 + b.abs())));
            assert!(worst < 2e-5, "{dims:?} instance={instance}: {worst}");
        }
    }
}

#[test]
fn fused_spade_norm_rejects_bad_arguments() {
    let x = Tensor::zeros([1, 2, 3, 3], Device::Cpu).unwrap();
    let small = Tensor::zeros([1, 2, 1, 1], Device::Cpu).unwrap();
    let e = x.spade_norm(&small, &x, false, 1e-5).unwrap_err();
    assert!(
        matches!(
            e,
            Error::ShapeMismatch {
                op: "spade_norm",
                ..
            }
        ),
        "{e}"
    );
    let e = x.spade_norm(&x, &x, true, 0.0).unwrap_err();
    assert!(
        matches!(
            e,
            Error::InvalidArgument {
                op: "spade_norm",
                ..
            }
        ),
        "{e}"
    );
    let flat = Tensor::zeros([2, 3], Device::Cpu).unwrap();
    assert!(flat.spade_norm(&flat, &flat, false, 1e-5).is_err());
}
