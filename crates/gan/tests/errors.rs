//! Bad input gives typed errors naming the loss or the tensor, never a panic: shape mismatches,
//! empty inputs, NaN/Inf loss values, bad mixing coefficients, and broken VGG19 weight files.
mod common;

use common::*;
use tessera_autograd::{no_grad, Var};
use tessera_gan::{self as gan, Error, Vgg19, Vgg19Config};
use tessera_tensor::{Conv2dParams, Device, Rng, Tensor};

fn c(t: Tensor) -> Var {
    Var::constant(t)
}

fn expect_invalid(r: gan::Result<Var>, loss: &str) {
    match r {
        Err(Error::InvalidInput { loss: l, why }) => {
            assert_eq!(l, loss, "{why}");
            assert!(!why.is_empty());
        }
        Err(e) => panic!("{loss}: unexpected error {e}"),
        Ok(v) => panic!("{loss}: accepted, gave {:?}", v.value()),
    }
}

fn expect_non_finite(r: gan::Result<Var>, loss: &str) {
    match r {
        Err(Error::NonFinite { loss: l, value }) => {
            assert_eq!(l, loss);
            assert!(!value.is_finite());
            let msg = Error::NonFinite { loss: l, value }.to_string();
            assert!(msg.contains(loss), "{msg}");
        }
        Err(e) => panic!("{loss}: unexpected error {e}"),
        Ok(v) => panic!("{loss}: accepted, gave {:?}", v.value()),
    }
}

#[test]
fn nan_and_inf_are_reported_by_name() {
    let ok = c(normal(&[2, 1, 2, 2], 1.0, 1));
    let mut v = normal(&[2, 1, 2, 2], 1.0, 2).to_vec().unwrap();
    v[3] = f32::NAN;
    let nan = c(tensor(v.clone(), &[2, 1, 2, 2]));
    v[3] = f32::INFINITY;
    let inf = c(tensor(v, &[2, 1, 2, 2]));
    expect_non_finite(gan::wgan_critic_loss(&ok, &nan), "wgan_critic_loss");
    expect_non_finite(gan::wgan_generator_loss(&inf), "wgan_generator_loss");
    expect_non_finite(gan::hinge_d_real_loss(&nan), "hinge_d_real_loss");
    expect_non_finite(gan::hinge_d_loss(&ok, &nan), "hinge_d_fake_loss");
    expect_non_finite(gan::hinge_g_loss(&nan), "hinge_g_loss");
    expect_non_finite(gan::ns_d_loss(&nan, &ok), "bce_with_logits");
    expect_non_finite(gan::lsgan_d_loss(&ok, &inf), "lsgan_d_loss");
    expect_non_finite(gan::lsgan_g_loss(&nan), "lsgan_g_loss");
    expect_non_finite(gan::l1_loss(&ok, &inf), "l1_loss");
    expect_non_finite(gan::mse_loss(&nan, &ok), "mse_loss");
    expect_non_finite(
        gan::feature_matching_loss(&[vec![nan.clone()]], &[vec![ok.clone()]], 10.0),
        "feature_matching_loss",
    );
    // exp(logvar) overflows for a huge logvar.
    let big = c(Tensor::full(200.0, [2, 4], Device::Cpu).unwrap());
    let mu = c(Tensor::zeros([2, 4], Device::Cpu).unwrap());
    expect_non_finite(gan::kl_divergence(&mu, &big), "kl_divergence");
    // A hand-made total, and the non-failing query.
    expect_non_finite(gan::check_finite("my_total", nan.clone()), "my_total");
    assert!(!gan::is_finite(&nan).unwrap());
    assert!(gan::is_finite(&ok).unwrap());
    // Large but finite logits are fine: the BCE is computed in its stable form.
    let huge = c(tensor(vec![80.0, -80.0, 1e4, -1e4], &[4]));
    let l = gan::ns_d_loss(&huge, &huge)
        .unwrap()
        .value()
        .to_scalar()
        .unwrap();
    // softplus(−80) + softplus(80) + softplus(−1e4) + softplus(1e4) over 4, twice.
    assert!((l - 2.0 * (80.0 + 1e4) / 4.0).abs() < 1e-2, "{l}");
}

#[test]
fn a_critic_producing_nan_fails_the_penalty_by_name() {
    let real = c(normal(&[2, 2, 4, 4], 1.0, 1));
    let fake = c(normal(&[2, 2, 4, 4], 1.0, 2));
    let alpha = uniform(&[2, 1, 1, 1], 0.0, 1.0, 3);
    // sqrt of a negative score: NaN gradient.
    let critic = |x: &Var| -> gan::Result<Var> { Ok(x.affine(0.0, -1.0)?.sqrt()?) };
    expect_non_finite(
        gan::gradient_penalty(&critic, &real, &fake, &alpha, 10.0),
        "gradient_penalty",
    );
    expect_non_finite(
        gan::singan_gradient_penalty(&critic, &real, &fake, &alpha, 0.1),
        "singan_gradient_penalty",
    );
}

#[test]
fn shapes_that_do_not_fit_are_invalid_input() {
    let a = c(normal(&[2, 3, 4, 4], 1.0, 1));
    let b = c(normal(&[2, 3, 4, 5], 1.0, 2));
    expect_invalid(gan::l1_loss(&a, &b), "l1_loss");
    expect_invalid(gan::mse_loss(&a, &b), "mse_loss");
    expect_invalid(gan::kl_divergence(&a, &b), "kl_divergence");
    let empty = c(Tensor::zeros([0, 1, 2, 2], Device::Cpu).unwrap());
    expect_invalid(gan::wgan_critic_loss(&a, &empty), "wgan_critic_loss");
    expect_invalid(gan::hinge_g_loss(&empty), "hinge_g_loss");
    expect_invalid(gan::bce_with_logits(&empty, 1.0), "bce_with_logits");
    expect_invalid(gan::l1_loss(&empty, &empty), "l1_loss");
    expect_invalid(gan::mean_over_scales(&[]), "mean_over_scales");
    // Feature lists: counts and shapes must agree, and something must be given.
    let fm = "feature_matching_loss";
    expect_invalid(gan::feature_matching_loss(&[], &[], 10.0), fm);
    expect_invalid(
        gan::feature_matching_loss(&[vec![a.clone()]], &[], 10.0),
        fm,
    );
    expect_invalid(
        gan::feature_matching_loss(&[vec![a.clone(), a.clone()]], &[vec![a.clone()]], 10.0),
        fm,
    );
    expect_invalid(
        gan::feature_matching_loss(&[vec![a.clone()]], &[vec![b.clone()]], 10.0),
        fm,
    );
    expect_invalid(gan::feature_matching_loss(&[vec![]], &[vec![]], 10.0), fm);
}

#[test]
fn penalty_arguments_are_checked() {
    let w = Var::param(normal(&[1, 2, 3, 3], 0.3, 9));
    let critic =
        |x: &Var| -> gan::Result<Var> { Ok(x.conv2d(&w, None, Conv2dParams::new(1, 1, 1))?) };
    let real = c(normal(&[2, 2, 4, 4], 1.0, 1));
    let fake = c(normal(&[2, 2, 4, 4], 1.0, 2));
    let gp = "gradient_penalty";
    let alpha_ok = uniform(&[2, 1, 1, 1], 0.0, 1.0, 3);
    for bad_alpha in [
        uniform(&[3, 1, 1, 1], 0.0, 1.0, 3),
        uniform(&[2, 2, 1, 1], 0.0, 1.0, 3),
        uniform(&[2], 0.0, 1.0, 3),
    ] {
        expect_invalid(
            gan::gradient_penalty(&critic, &real, &fake, &bad_alpha, 10.0),
            gp,
        );
    }
    let other = c(normal(&[2, 2, 4, 3], 1.0, 2));
    expect_invalid(
        gan::gradient_penalty(&critic, &real, &other, &alpha_ok, 10.0),
        gp,
    );
    expect_invalid(
        gan::gradient_penalty(&critic, &real, &fake, &alpha_ok, f32::NAN),
        gp,
    );
    // A critic error passes through unchanged.
    let failing = |x: &Var| -> gan::Result<Var> { Ok(x.reshape([7])?) };
    assert!(matches!(
        gan::singan_gradient_penalty(&failing, &real, &fake, &alpha_ok, 0.1),
        Err(Error::Autograd(_))
    ));
    // Per-batch α of any one-element shape; sample_alpha gives both kinds.
    for alpha in [
        uniform(&[1], 0.0, 1.0, 4),
        uniform(&[1, 1, 1, 1], 0.0, 1.0, 4),
        gan::sample_alpha(gan::Mixing::PerBatch, 2, &mut Rng::seed(1), Device::Cpu).unwrap(),
        gan::sample_alpha(gan::Mixing::PerSample, 2, &mut Rng::seed(1), Device::Cpu).unwrap(),
    ] {
        gan::singan_gradient_penalty(&critic, &real, &fake, &alpha, 0.1).unwrap();
    }
    // Inside no_grad the penalty still differentiates the critic (it records on its own).
    let gp_value = no_grad(|| gan::gradient_penalty(&critic, &real, &fake, &alpha_ok, 10.0));
    assert!(gp_value.unwrap().value().to_scalar().unwrap() > 0.0);
}

#[test]
fn penalty_of_a_one_lipschitz_linear_critic_is_zero() {
    // D(x) = Σ u·x with ‖u‖ = 1 per sample: ∇ = u everywhere, so the standard penalty is 0.
    let n = 2 * 4 * 4;
    let raw = normal(&[1, 2, 4, 4], 1.0, 5);
    let norm = raw.sqr().unwrap().sum_all().unwrap().sqrt().unwrap();
    let u = c(raw.div(&norm).unwrap());
    let critic = |x: &Var| -> gan::Result<Var> { Ok(x.mul(&u)?.sum(&[1, 2, 3], false)?) };
    let real = c(normal(&[3, 2, 4, 4], 1.0, 1));
    let fake = c(normal(&[3, 2, 4, 4], 1.0, 2));
    let alpha = uniform(&[3, 1, 1, 1], 0.0, 1.0, 3);
    let gp = gan::gradient_penalty(&critic, &real, &fake, &alpha, 10.0).unwrap();
    assert!(gp.value().to_scalar().unwrap().abs() < 1e-10, "{n}");
    // Per pixel, the norm over 2 channels of u is not 1: SinGAN's form penalises it.
    let sp = gan::singan_gradient_penalty(&critic, &real, &fake, &alpha, 0.1).unwrap();
    assert!(sp.value().to_scalar().unwrap() > 1e-3);
}

fn expect_weights_error(r: gan::Result<Vgg19>) -> (Vec<String>, Vec<String>, Vec<String>) {
    match r {
        Err(Error::Weights {
            missing,
            mismatched,
            wrong_dtype,
            file,
        }) => {
            assert_eq!(file, "test.safetensors");
            (
                missing,
                mismatched.into_iter().map(|m| m.0).collect(),
                wrong_dtype.into_iter().map(|m| m.0).collect(),
            )
        }
        Err(e) => panic!("unexpected error {e}"),
        Ok(v) => panic!("accepted: {v:?}"),
    }
}

const WIDTHS: [usize; 5] = [2, 3, 3, 4, 4];

fn load(bytes: &[u8]) -> gan::Result<Vgg19> {
    Vgg19::from_safetensors_bytes(bytes, Vgg19Config { widths: WIDTHS }, "test.safetensors")
}

#[test]
fn vgg_weights_missing_or_mis_shaped_are_named() {
    // A complete file loads, and extra tensors (deeper layers, the classifier) are ignored.
    let vgg = load(&vgg_bytes(WIDTHS, 1)).unwrap();
    use tessera_nn::ModuleExt;
    let names: Vec<String> = vgg.named_params().into_iter().map(|(n, _)| n).collect();
    assert_eq!(names.len(), 26);
    assert_eq!(names[0], "features.0.weight");
    assert_eq!(names[25], "features.28.bias");
    assert!(
        vgg.params().iter().all(|p| !p.requires_grad()),
        "VGG is frozen"
    );

    let dropped = vgg_bytes_edited(WIDTHS, 1, |name, shape| {
        (name != "features.12.weight" && name != "features.28.bias").then_some(shape)
    });
    let (missing, mismatched, _) = expect_weights_error(load(&dropped));
    assert_eq!(missing, vec!["features.12.weight", "features.28.bias"]);
    assert!(mismatched.is_empty());

    let reshaped = vgg_bytes_edited(WIDTHS, 1, |name, mut shape| {
        if name == "features.5.weight" {
            shape[1] += 1;
        }
        Some(shape)
    });
    let err = load(&reshaped).unwrap_err();
    assert!(err.to_string().contains("features.5.weight"), "{err}");
    let (_, mismatched, _) = expect_weights_error(Err(err));
    assert_eq!(mismatched, vec!["features.5.weight"]);

    // The default (torchvision) widths do not fit a narrow file: every tensor is mis-shaped.
    let narrow = vgg_bytes(WIDTHS, 1);
    match Vgg19::from_safetensors_bytes(&narrow, Vgg19Config::default(), "test.safetensors") {
        Err(Error::Weights { mismatched, .. }) => assert_eq!(mismatched.len(), 26),
        other => panic!("{other:?}"),
    }
}

#[test]
fn vgg_weights_of_another_dtype_or_broken_files_are_errors() {
    use safetensors::tensor::{Dtype, TensorView};
    let cfg = Vgg19Config { widths: WIDTHS };
    let bytes: Vec<Vec<u8>> = cfg
        .required_tensors()
        .iter()
        .map(|(_, s)| vec![0u8; s.iter().product::<usize>() * 2])
        .collect();
    let views: Vec<(String, TensorView<'_>)> = cfg
        .required_tensors()
        .into_iter()
        .zip(&bytes)
        .map(|((n, s), b)| (n, TensorView::new(Dtype::F16, s, b).unwrap()))
        .collect();
    let f16 = safetensors::serialize(views, None).unwrap();
    let (_, _, wrong) = expect_weights_error(load(&f16));
    assert_eq!(wrong.len(), 26);

    // Not a safetensors file, a truncated one, a hostile header length: errors, not panics.
    let good = vgg_bytes(WIDTHS, 1);
    let mut hostile = good.clone();
    hostile[..8].copy_from_slice(&u64::MAX.to_le_bytes());
    for bad in [
        b"not a safetensors file".to_vec(),
        good[..good.len() / 2].to_vec(),
        hostile,
        Vec::new(),
    ] {
        assert!(matches!(load(&bad), Err(Error::WeightFile { .. })));
    }
    match Vgg19::from_safetensors("/nonexistent/vgg19.safetensors") {
        Err(Error::WeightFile { file, .. }) => assert!(file.contains("vgg19")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        Vgg19::from_safetensors_bytes(
            &good,
            Vgg19Config {
                widths: [0, 1, 1, 1, 1]
            },
            "t"
        ),
        Err(Error::InvalidInput { .. })
    ));
}

#[test]
fn vgg_input_is_checked() {
    let loss = gan::VggPerceptualLoss::new(load(&vgg_bytes(WIDTHS, 1)).unwrap());
    let x = c(uniform(&[1, 3, 16, 16], -1.0, 1.0, 1));
    for bad in [
        c(uniform(&[1, 1, 16, 16], -1.0, 1.0, 1)),
        c(uniform(&[1, 3, 8, 16], -1.0, 1.0, 1)),
        c(uniform(&[3, 16, 16], -1.0, 1.0, 1)),
    ] {
        expect_invalid(loss.loss(&bad, &bad), "Vgg19");
    }
    expect_invalid(
        loss.loss(&x, &c(uniform(&[1, 3, 16, 17], -1.0, 1.0, 1))),
        "vgg_perceptual_loss",
    );
    // x against itself: zero loss; the gradient reaches x only, not the frozen weights or y.
    let xp = Var::param(uniform(&[2, 3, 20, 18], -1.0, 1.0, 2));
    let yp = Var::param(uniform(&[2, 3, 20, 18], -1.0, 1.0, 3));
    assert_eq!(
        loss.loss(&xp, &xp.detach())
            .unwrap()
            .value()
            .to_scalar()
            .unwrap(),
        0.0
    );
    let l = loss.loss(&xp, &yp).unwrap();
    let g = tessera_autograd::grad(&[&l], &[&xp, &yp], None, false).unwrap();
    assert!(
        g[0].value()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar()
            .unwrap()
            > 0.0
    );
    assert_eq!(
        g[1].value()
            .abs()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar()
            .unwrap(),
        0.0
    );
}
