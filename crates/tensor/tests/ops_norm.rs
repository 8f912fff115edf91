//! The fused normalization ops (`norm_stats`, `norm_modulate`, `norm_backward`, `spade_norm`)
//! against their definitions composed of elementary ops (mean, biased variance, rsqrt, mul, add),
//! for batch and instance statistics and every modulation, on random shapes that take the serial
//! and the parallel paths.
use proptest::prelude::*;
use tessera_tensor::{Device, Error, NormModulation, Rng, Tensor};

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

const EPS: f32 = 1e-5;

fn axes(instance: bool) -> &'static [usize] {
    if instance {
        &[2, 3]
    } else {
        &[0, 2, 3]
    }
}

/// The mean and 1/sqrt(σ² + ε), σ² the biased variance, composed of elementary ops.
fn reference_stats(x: &Tensor, instance: bool) -> (Tensor, Tensor) {
    let mean = x.mean(axes(instance), true).unwrap();
    let var = x.var(axes(instance), false, true).unwrap();
    (mean, var.add_scalar(EPS).unwrap().rsqrt().unwrap())
}

/// dx and dγ of y = x̂·s (s = 1, or 1 + γ) where x̂ normalizes x with its own statistics:
/// dx = rstd·(d − mean(d) − x̂·mean(d·x̂)) with d = dy·s, and dγ = dy·x̂.
fn reference_backward(
    dy: &Tensor,
    x: &Tensor,
    instance: bool,
    gamma: Option<&Tensor>,
) -> (Tensor, Option<Tensor>) {
    let a = axes(instance);
    let (mean, rstd) = reference_stats(x, instance);
    let xhat = x.sub(&mean).unwrap().mul(&rstd).unwrap();
    let d = match gamma {
        Some(g) => dy.mul(&g.add_scalar(1.0).unwrap()).unwrap(),
        None => dy.clone(),
    };
    let along = xhat
        .mul(&d.mul(&xhat).unwrap().mean(a, true).unwrap())
        .unwrap();
    let dx = d
        .sub(&d.mean(a, true).unwrap())
        .unwrap()
        .sub(&along)
        .unwrap()
        .mul(&rstd)
        .unwrap();
    (dx, gamma.map(|_| dy.mul(&xhat).unwrap()))
}

/// max |a − b| / (1 + max |b|): errors relative to the result's scale.
fn scaled_error(a: &Tensor, b: &Tensor) -> f32 {
    assert_eq!(a.dims(), b.dims());
    let (a, b) = (a.to_vec().unwrap(), b.to_vec().unwrap());
    let scale = 1.0 + b.iter().fold(0f32, |m, v| m.max(v.abs()));
    a.iter()
        .zip(&b)
        .fold(0f32, |m, (x, y)| m.max((x - y).abs()))
        / scale
}

/// [N, C, H, W] with up to 3 × 4 × 96 × 96 values: from one element per plane to sizes above the
/// parallel threshold (32 Ki values).
fn nchw() -> impl Strategy<Value = [usize; 4]> {
    (1usize..=3, 1usize..=4, 1usize..=96, 1usize..=96).prop_map(|(n, c, h, w)| [n, c, h, w])
}

fn randn(dims: [usize; 4], mean: f32, std: f32, seed: u64) -> Tensor {
    Tensor::randn(dims, mean, std, &mut Rng::seed(seed), Device::Cpu).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn norm_stats_and_modulate_match_their_definitions(dims in nchw(), instance in any::<bool>(),
                                                       kind in 0u8..3, seed in any::<u64>()) {
        let x = randn(dims, 0.7, 2.0, seed);
        let (mean, rstd) = x.norm_stats(instance, EPS).unwrap();
        let (ref_mean, ref_rstd) = reference_stats(&x, instance);
        prop_assert!(scaled_error(&mean, &ref_mean) < 1e-5, "mean");
        prop_assert!(scaled_error(&rstd, &ref_rstd) < 1e-5, "rstd");
        let xhat = x.sub(&ref_mean).unwrap().mul(&ref_rstd).unwrap();
        let c = dims[1];
        let (got, want) = match kind {
            0 => (x.norm_modulate(&mean, &rstd, instance, NormModulation::None).unwrap(), xhat),
            1 => {
                let g = randn([1, c, 1, 1], 1.0, 0.3, seed ^ 1).reshape(vec![c]).unwrap();
                let b = randn([1, c, 1, 1], 0.0, 0.3, seed ^ 2).reshape(vec![c]).unwrap();
                let m = NormModulation::Channel { gamma: &g, beta: &b };
                let want = xhat.mul(&g.reshape(vec![1, c, 1, 1]).unwrap()).unwrap()
                    .add(&b.reshape(vec![1, c, 1, 1]).unwrap()).unwrap();
                (x.norm_modulate(&mean, &rstd, instance, m).unwrap(), want)
            }
            _ => {
                let (g, b) = (randn(dims, 0.0, 0.3, seed ^ 1), randn(dims, 0.0, 0.3, seed ^ 2));
                let m = NormModulation::Spatial { gamma: &g, beta: &b };
                let want = xhat.mul(&g.add_scalar(1.0).unwrap()).unwrap().add(&b).unwrap();
                (x.norm_modulate(&mean, &rstd, instance, m).unwrap(), want)
            }
        };
        prop_assert!(scaled_error(&got, &want) < 2e-5, "modulation {kind}: {}", scaled_error(&got, &want));
    }

    #[test]
    fn norm_backward_matches_its_definition(dims in nchw(), instance in any::<bool>(),
                                            spatial in any::<bool>(), seed in any::<u64>()) {
        let x = randn(dims, 0.7, 2.0, seed);
        let dy = randn(dims, 0.0, 1.0, seed ^ 3);
        let gamma = spatial.then(|| randn(dims, 0.0, 0.3, seed ^ 4));
        let (mean, rstd) = x.norm_stats(instance, EPS).unwrap();
        let (dx, dgamma) = dy.norm_backward(&x, &mean, &rstd, instance, gamma.as_ref()).unwrap();
        let (ref_dx, ref_dgamma) = reference_backward(&dy, &x, instance, gamma.as_ref());
        // dx cancels (its mean over the statistics' axes is 0), so allow for the sums' rounding.
        prop_assert!(scaled_error(&dx, &ref_dx) < 1e-4, "dx: {}", scaled_error(&dx, &ref_dx));
        prop_assert_eq!(dgamma.is_some(), spatial);
        if let (Some(a), Some(b)) = (dgamma, ref_dgamma) {
            prop_assert!(scaled_error(&a, &b) < 2e-5, "dgamma: {}", scaled_error(&a, &b));
        }
    }

    #[test]
    fn spade_norm_matches_the_composite_on_random_shapes(dims in nchw(), instance in any::<bool>(),
                                                         seed in any::<u64>()) {
        let x = randn(dims, 0.7, 2.0, seed);
        let (g, b) = (randn(dims, 0.0, 0.3, seed ^ 1), randn(dims, 0.0, 0.3, seed ^ 2));
        let got = x.spade_norm(&g, &b, instance, EPS).unwrap();
        let want = composite(&x, &g, &b, instance, EPS);
        prop_assert!(scaled_error(&got, &want) < 2e-5, "{}", scaled_error(&got, &want));
    }
}
