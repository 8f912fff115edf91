//! Finite-difference checks (first and second order, `tessera_autograd::gradcheck`) of every
//! loss, over proptest-drawn shapes and values. Piecewise-linear losses (hinge, L1, feature
//! matching) are checked at points kept away from their kinks; the gradient penalties are
//! checked with respect to the critic's weights (first order, and second order for the
//! standard penalty: a third derivative of the critic), and the VGG loss with respect to its
//! input per element.
// `&[x.clone()]` reads better than `std::slice::from_ref(&x)` in the one-input checks.
#![allow(clippy::cloned_ref_to_slice_refs)]
mod common;

use common::*;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use tessera_autograd::gradcheck::{check_grad, check_grad_grad, GradcheckConfig, GradcheckError};
use tessera_autograd::Var;
use tessera_gan as gan;
use tessera_tensor::{Conv2dParams, Tensor};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn both(
    what: &str,
    f: impl Fn(&[Var]) -> tessera_autograd::Result<Var>,
    inputs: &[Tensor],
    seed: u64,
) -> Result<(), TestCaseError> {
    let c = GradcheckConfig::default().with_seed(seed);
    check_grad(&f, inputs, &c).map_err(|e| TestCaseError::fail(format!("{what}: {e}")))?;
    check_grad_grad(&f, inputs, &c).map_err(|e| TestCaseError::fail(format!("{what}: {e}")))?;
    Ok(())
}

/// A score-map shape [N, 1, H, W].
fn score_shape() -> impl Strategy<Value = Vec<usize>> {
    (1usize..=3, 1usize..=3, 1usize..=3).prop_map(|(n, h, w)| vec![n, 1, h, w])
}

proptest! {
    #![proptest_config(config(12))]

    #[test]
    fn smooth_adversarial_losses(shape in score_shape(), seed in any::<u64>()) {
        let real = normal(&shape, 1.5, seed);
        let fake = normal(&shape, 1.5, seed ^ 1);
        let two = [real.clone(), fake.clone()];
        both("wgan_critic_loss", |v| ag(gan::wgan_critic_loss(&v[0], &v[1])), &two, seed)?;
        both("wgan_generator_loss", |v| ag(gan::wgan_generator_loss(&v[0])), &[fake.clone()], seed)?;
        both("ns_d_loss", |v| ag(gan::ns_d_loss(&v[0], &v[1])), &two, seed)?;
        both("ns_g_loss", |v| ag(gan::ns_g_loss(&v[0])), &[fake.clone()], seed)?;
        both("bce_with_logits(0.3)", |v| ag(gan::bce_with_logits(&v[0], 0.3)), &[real.clone()], seed)?;
        both("lsgan_d_loss", |v| ag(gan::lsgan_d_loss(&v[0], &v[1])), &two, seed)?;
        both("lsgan_g_loss", |v| ag(gan::lsgan_g_loss(&v[0])), &[fake.clone()], seed)?;
        both("mean_over_scales", |v| {
            let a = ag(gan::lsgan_g_loss(&v[0]))?;
            let b = ag(gan::ns_g_loss(&v[1]))?;
            ag(gan::mean_over_scales(&[a, b]))
        }, &two, seed)?;
    }

    #[test]
    fn hinge_losses_away_from_kinks(shape in score_shape(), seed in any::<u64>()) {
        let real = away_from(1.0, 0.1, &shape, -2.0, 3.0, seed);
        let fake = away_from(-1.0, 0.1, &shape, -3.0, 2.0, seed ^ 1);
        both("hinge_d_loss", |v| ag(gan::hinge_d_loss(&v[0], &v[1])), &[real.clone(), fake.clone()], seed)?;
        both("hinge_d_real_loss", |v| ag(gan::hinge_d_real_loss(&v[0])), &[real], seed)?;
        both("hinge_d_fake_loss", |v| ag(gan::hinge_d_fake_loss(&v[0])), &[fake.clone()], seed)?;
        both("hinge_g_loss", |v| ag(gan::hinge_g_loss(&v[0])), &[fake], seed)?;
    }

    #[test]
    fn reconstruction_and_kl(n in 1usize..=3, c in 1usize..=3, hw in 1usize..=3, seed in any::<u64>()) {
        let shape = [n, c, hw, hw];
        let x = normal(&shape, 1.0, seed);
        // y = x + d with |d| ≥ 0.1: L1 stays away from its kink.
        let d = away_from(0.0, 0.1, &shape, -1.0, 1.0, seed ^ 1);
        let y = x.add(&d).unwrap();
        both("l1_loss", |v| ag(gan::l1_loss(&v[0], &v[1])), &[x.clone(), y.clone()], seed)?;
        both("mse_loss", |v| ag(gan::mse_loss(&v[0], &v[1])), &[x.clone(), y], seed)?;
        let mu = normal(&[n, c * 2], 1.0, seed ^ 2);
        let logvar = normal(&[n, c * 2], 0.5, seed ^ 3);
        both("kl_divergence", |v| ag(gan::kl_divergence(&v[0], &v[1])), &[mu, logvar], seed)?;
    }

    #[test]
    fn feature_matching(seed in any::<u64>(), lambda in 0.5f32..10.0) {
        let shapes = [[vec![2, 2, 3, 3], vec![2, 3, 2, 2]], [vec![2, 2, 2, 2], vec![2, 3, 1, 1]]];
        let mut fake = Vec::new();
        let mut real = Vec::new();
        for (i, layer) in shapes.iter().enumerate() {
            for (j, s) in layer.iter().enumerate() {
                let k = (i * 2 + j) as u64;
                let r = normal(s, 1.0, seed ^ (10 + k));
                let d = away_from(0.0, 0.1, s, -1.0, 1.0, seed ^ (20 + k));
                fake.push(r.add(&d).unwrap());
                real.push(r);
            }
        }
        let real_vars: Vec<Var> = real.into_iter().map(Var::constant).collect();
        let f = |v: &[Var]| {
            let fk = vec![v[0..2].to_vec(), v[2..4].to_vec()];
            let rl = vec![real_vars[0..2].to_vec(), real_vars[2..4].to_vec()];
            ag(gan::feature_matching_loss(&fk, &rl, lambda))
        };
        both("feature_matching_loss", f, &fake, seed)?;
    }
}

/// A smooth critic for the penalty checks: `tanh(conv1x1(tanh(conv3x3(x; w1)); w2)) + Σ_c u_c·x_c`
/// with a fixed u = (1.5, −1.5, …). The linear term keeps every pixel's input gradient near
/// ‖u‖ ≈ 2, away from 0, where the norm has a cone point and finite differences fail.
fn critic<'a>(w1: &'a Var, w2: &'a Var) -> impl Fn(&Var) -> gan::Result<Var> + 'a {
    move |x: &Var| {
        let c = x.dims()[1];
        let u: Vec<f32> = (0..c)
            .map(|i| if i % 2 == 0 { 1.5 } else { -1.5 })
            .collect();
        let linear = x
            .mul(&Var::constant(tensor(u, &[1, c, 1, 1])))?
            .sum(&[1], true)?;
        let h = x.conv2d(w1, None, Conv2dParams::new(1, 1, 1))?.tanh()?;
        Ok(h.conv2d(w2, None, Conv2dParams::new(1, 0, 1))?
            .tanh()?
            .add(&linear)?)
    }
}

/// A step small enough for the third derivatives of the penalties' second-order check.
fn penalty_config(seed: u64) -> GradcheckConfig {
    GradcheckConfig::default().with_seed(seed).with_eps(3e-3)
}

proptest! {
    #![proptest_config(config(4))]

    #[test]
    fn gradient_penalties_with_respect_to_the_critic(seed in any::<u64>(), per_sample in any::<bool>()) {
        let real = Var::constant(normal(&[2, 2, 4, 4], 1.0, seed));
        let fake = Var::constant(normal(&[2, 2, 4, 4], 1.0, seed ^ 1));
        let alpha = if per_sample {
            uniform(&[2, 1, 1, 1], 0.0, 1.0, seed ^ 2)
        } else {
            uniform(&[1], 0.0, 1.0, seed ^ 2)
        };
        let w1 = normal(&[3, 2, 3, 3], 0.3, seed ^ 3);
        let w2 = normal(&[1, 3, 1, 1], 0.5, seed ^ 4);
        let (r, f, a) = (real.clone(), fake.clone(), alpha.clone());
        let standard = move |v: &[Var]| {
            let d = critic(&v[0], &v[1]);
            ag(gan::gradient_penalty(&d, &r, &f, &a, 10.0))
        };
        let c = penalty_config(seed);
        check_grad(&standard, &[w1.clone(), w2.clone()], &c)
            .map_err(|e| TestCaseError::fail(format!("gradient_penalty: {e}")))?;
        check_grad_grad(&standard, &[w1.clone(), w2.clone()], &c)
            .map_err(|e| TestCaseError::fail(format!("gradient_penalty: {e}")))?;
        let singan = move |v: &[Var]| {
            let d = critic(&v[0], &v[1]);
            ag(gan::singan_gradient_penalty(&d, &real, &fake, &alpha, 0.1))
        };
        check_grad(singan, &[w1, w2], &c)
            .map_err(|e| TestCaseError::fail(format!("singan_gradient_penalty: {e}")))?;
    }

    /// The penalty also reaches a fake that requires grad (SinGAN does not detach it).
    #[test]
    fn gradient_penalty_reaches_real_and_fake(seed in any::<u64>()) {
        let w1 = Var::constant(normal(&[3, 2, 3, 3], 0.3, seed ^ 3));
        let w2 = Var::constant(normal(&[1, 3, 1, 1], 0.5, seed ^ 4));
        let alpha = uniform(&[1, 1, 1, 1], 0.0, 1.0, seed ^ 2);
        let f = |v: &[Var]| {
            let d = critic(&w1, &w2);
            ag(gan::singan_gradient_penalty(&d, &v[0], &v[1], &alpha, 0.1))
        };
        let c = penalty_config(seed);
        check_grad(f, &[normal(&[1, 2, 4, 5], 1.0, seed), normal(&[1, 2, 4, 5], 1.0, seed ^ 1)], &c)
            .map_err(|e| TestCaseError::fail(format!("singan_gradient_penalty(real, fake): {e}")))?;
    }
}

#[test]
fn vgg_perceptual_loss_gradient() {
    let widths = [2, 3, 3, 4, 4];
    let vgg = gan::Vgg19::from_safetensors_bytes(
        &vgg_bytes(widths, 5),
        gan::Vgg19Config { widths },
        "test",
    )
    .unwrap();
    let loss = gan::VggPerceptualLoss::new(vgg);
    let x = uniform(&[1, 3, 16, 16], -1.0, 1.0, 1);
    let y = Var::constant(uniform(&[1, 3, 16, 16], -1.0, 1.0, 2));
    // ReLU, max pooling and L1 are piecewise linear: a small step per input element. Even so a
    // few elements move some deep unit across a kink, where a finite difference is not the
    // derivative; the golden test checks this gradient against PyTorch exactly. Here at most
    // 1% of the entries may differ, and none by more than a few tolerances.
    let c = GradcheckConfig::default().with_seed(3).with_eps(1e-3);
    match check_grad(|v: &[Var]| ag(loss.loss(&v[0], &y)), &[x], &c) {
        Ok(_) => {}
        Err(GradcheckError::Mismatch {
            checked,
            failed,
            worst,
            ..
        }) => {
            assert!(
                failed * 100 <= checked,
                "{failed} of {checked} entries differ"
            );
            for m in worst {
                let diff = (m.analytic - m.numeric).abs();
                assert!(diff <= 3.0 * m.tolerance, "{m:?}");
            }
        }
        Err(e) => panic!("{e}"),
    }
}
