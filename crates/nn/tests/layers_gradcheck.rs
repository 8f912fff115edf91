//! Finite-difference gradient checks (first and second order) of every layer's forward with
//! respect to its inputs and its parameters, with `tessera_autograd::gradcheck`.
//!
//! Parameters enter the checked function through `Param::set_var`, so the checker's own leaves
//! are the layer's parameters. Layers run in training mode, except `SpectralNorm`: a training
//! forward first moves u and v by a power iteration that depends on the weight but, as in
//! PyTorch, is not differentiated, so its gradient is by design the gradient of the eval-mode
//! function at the updated u, v. That function is what is checked here (and
//! `spectral_norm_train_gradient_is_the_eval_gradient` shows the two agree).
use tessera_autograd::gradcheck::{check_grad, check_grad_grad, GradcheckConfig};
use tessera_autograd::{grad, Var};
use tessera_nn::{
    AvgPool2d, BatchNorm2d, Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig,
    InstanceNorm2d, LeakyReLU, Linear, Module, ModuleExt, NormConfig, Padding, ReLU, Spade,
    SpadeConfig, SpadeNorm, SpectralNorm, Tanh, Upsample, UpsampleSize,
};
use tessera_tensor::{Device, Interpolation, Rng, Tensor};

fn randn(shape: &[usize], std: f32, rng: &mut Rng) -> Tensor {
    Tensor::randn(shape.to_vec(), 0.0, std, rng, Device::Cpu).unwrap()
}

/// Values with |v| in [0.5, 1.5) and random signs: away from the kinks of relu and friends.
fn away_from_zero(shape: &[usize], rng: &mut Rng) -> Tensor {
    let n: usize = shape.iter().product();
    let mag = rng.uniform_vec(n, 0.5, 1.5);
    let sign = rng.uniform_vec(n, 0.0, 1.0);
    let v = mag
        .iter()
        .zip(&sign)
        .map(|(m, s)| if *s < 0.5 { -m } else { *m })
        .collect();
    Tensor::from_vec(v, shape.to_vec(), Device::Cpu).unwrap()
}

fn to_autograd(e: tessera_nn::Error) -> tessera_autograd::Error {
    match e {
        tessera_nn::Error::Autograd(e) => e,
        other => panic!("layer error in a gradient check: {other}"),
    }
}

/// First- and second-order checks of `forward(layer, inputs)` with respect to `inputs` and
/// every parameter of `layer`.
fn check_layer<L: Module>(
    what: &str,
    layer: &L,
    inputs: &[Tensor],
    forward: impl Fn(&L, &[Var]) -> tessera_nn::Result<Var>,
    cfg: &GradcheckConfig,
) {
    let params = layer.named_params();
    let n = inputs.len();
    let mut all = inputs.to_vec();
    all.extend(params.iter().map(|(_, p)| p.tensor()));
    let f = |xs: &[Var]| -> tessera_autograd::Result<Var> {
        for ((name, p), v) in params.iter().zip(&xs[n..]) {
            p.set_var(name, v.clone())
                .map_err(|e| panic!("{e}"))
                .unwrap();
        }
        forward(layer, &xs[..n]).map_err(to_autograd)
    };
    let r1 = check_grad(f, &all, cfg).unwrap_or_else(|e| panic!("{what}, first order: {e}"));
    let r2 = check_grad_grad(f, &all, cfg).unwrap_or_else(|e| panic!("{what}, second order: {e}"));
    assert!(
        r1.checked > 0 && r2.checked >= r1.checked,
        "{what}: {r1:?} {r2:?}"
    );
}

fn one<L>(
    f: impl Fn(&L, &Var) -> tessera_nn::Result<Var>,
) -> impl Fn(&L, &[Var]) -> tessera_nn::Result<Var> {
    move |l, xs| f(l, &xs[0])
}

#[test]
fn conv2d_zero_and_reflect_padding() {
    let mut rng = Rng::seed(1);
    let cfg = GradcheckConfig::default();
    for mode in [Padding::Zero, Padding::Reflect] {
        let conv = Conv2d::new(
            Conv2dConfig::new(2, 3, 3)
                .stride(2)
                .padding(1)
                .padding_mode(mode),
            &mut rng,
        )
        .unwrap();
        let x = randn(&[1, 2, 4, 5], 1.0, &mut rng);
        check_layer(
            &format!("Conv2d {mode:?}"),
            &conv,
            &[x],
            one(Conv2d::forward),
            &cfg,
        );
    }
}

#[test]
fn conv_transpose2d_with_output_padding() {
    let mut rng = Rng::seed(2);
    let layer = ConvTranspose2d::new(
        ConvTranspose2dConfig::new(2, 3, 3)
            .stride(2)
            .padding(1)
            .output_padding(1),
        &mut rng,
    )
    .unwrap();
    let x = randn(&[1, 2, 3, 3], 1.0, &mut rng);
    check_layer(
        "ConvTranspose2d",
        &layer,
        &[x],
        one(ConvTranspose2d::forward),
        &GradcheckConfig::default(),
    );
}

#[test]
fn linear_with_leading_axes() {
    let mut rng = Rng::seed(3);
    let layer = Linear::new(4, 3, true, &mut rng).unwrap();
    let x = randn(&[2, 2, 4], 1.0, &mut rng);
    check_layer(
        "Linear",
        &layer,
        &[x],
        one(Linear::forward),
        &GradcheckConfig::default(),
    );
}

/// Affine parameters away from their init (1, 0), so their gradients are generic.
fn perturb_affine<L: Module>(layer: &L, rng: &mut Rng) {
    for (name, p) in layer.named_params() {
        let c = p.shape().dims()[0];
        let base = if name.ends_with("weight") { 1.0 } else { 0.0 };
        let v = randn(&[c], 0.3, rng).add_scalar(base).unwrap();
        p.set(&name, v).unwrap();
    }
}

#[test]
fn batch_norm_train_affine_and_plain() {
    let mut rng = Rng::seed(4);
    let cfg = GradcheckConfig::default();
    for affine in [true, false] {
        let bn = BatchNorm2d::with_config(NormConfig::batch_norm(2).affine(affine)).unwrap();
        perturb_affine(&bn, &mut rng);
        let x = randn(&[3, 2, 2, 3], 1.0, &mut rng);
        check_layer(
            &format!("BatchNorm2d affine={affine}"),
            &bn,
            &[x],
            one(BatchNorm2d::forward),
            &cfg,
        );
    }
}

#[test]
fn batch_norm_eval() {
    let mut rng = Rng::seed(5);
    let mut bn = BatchNorm2d::new(2).unwrap();
    perturb_affine(&bn, &mut rng);
    // Move the running statistics off their init.
    bn.forward(&Var::constant(randn(&[4, 2, 3, 3], 2.0, &mut rng)))
        .unwrap();
    bn.set_training(false);
    let x = randn(&[2, 2, 2, 2], 1.0, &mut rng);
    check_layer(
        "BatchNorm2d eval",
        &bn,
        &[x],
        one(BatchNorm2d::forward),
        &GradcheckConfig::default(),
    );
}

#[test]
fn instance_norm_train_affine_and_plain() {
    let mut rng = Rng::seed(6);
    let cfg = GradcheckConfig::default();
    for affine in [true, false] {
        let layer =
            InstanceNorm2d::with_config(NormConfig::instance_norm(2).affine(affine)).unwrap();
        perturb_affine(&layer, &mut rng);
        let x = randn(&[2, 2, 3, 3], 1.0, &mut rng);
        check_layer(
            &format!("InstanceNorm2d affine={affine}"),
            &layer,
            &[x],
            one(InstanceNorm2d::forward),
            &cfg,
        );
    }
}

#[test]
fn spectral_norm_of_conv_linear_and_conv_transpose() {
    let mut rng = Rng::seed(7);
    let cfg = GradcheckConfig::default();
    let mut conv = SpectralNorm::new(
        Conv2d::new(Conv2dConfig::new(2, 3, 3).padding(1), &mut rng).unwrap(),
        &mut rng,
    )
    .unwrap();
    conv.forward(&Var::constant(randn(&[1, 2, 3, 3], 1.0, &mut rng)))
        .unwrap();
    conv.set_training(false);
    let x = randn(&[1, 2, 3, 3], 1.0, &mut rng);
    check_layer(
        "SpectralNorm<Conv2d>",
        &conv,
        &[x],
        |l, xs| l.forward(&xs[0]),
        &cfg,
    );

    let mut lin = SpectralNorm::new(Linear::new(4, 3, true, &mut rng).unwrap(), &mut rng).unwrap();
    lin.set_training(false);
    let x = randn(&[2, 4], 1.0, &mut rng);
    check_layer(
        "SpectralNorm<Linear>",
        &lin,
        &[x],
        |l, xs| l.forward(&xs[0]),
        &cfg,
    );

    let mut convt = SpectralNorm::new(
        ConvTranspose2d::new(
            ConvTranspose2dConfig::new(2, 2, 2).stride(2).bias(false),
            &mut rng,
        )
        .unwrap(),
        &mut rng,
    )
    .unwrap();
    convt.set_training(false);
    let x = randn(&[1, 2, 2, 2], 1.0, &mut rng);
    check_layer(
        "SpectralNorm<ConvTranspose2d>",
        &convt,
        &[x],
        |l, xs| l.forward(&xs[0]),
        &cfg,
    );
}

#[test]
fn spectral_norm_train_gradient_is_the_eval_gradient() {
    let mut rng = Rng::seed(8);
    let mut sn = SpectralNorm::new(
        Conv2d::new(Conv2dConfig::new(2, 3, 3).padding(1), &mut rng).unwrap(),
        &mut rng,
    )
    .unwrap();
    let x = Var::param(randn(&[1, 2, 4, 4], 1.0, &mut rng));
    let w = sn.inner.weight.var();
    let u0 = sn.weight_u.get().to_vec().unwrap();
    let y_train = sn.forward(&x).unwrap();
    assert_ne!(sn.weight_u.get().to_vec().unwrap(), u0, "u moved");
    let g_train = grad(&[&y_train.sum_all().unwrap()], &[&x, &w], None, false).unwrap();
    sn.set_training(false);
    let u1 = sn.weight_u.get().to_vec().unwrap();
    let y_eval = sn.forward(&x).unwrap();
    assert_eq!(sn.weight_u.get().to_vec().unwrap(), u1, "eval keeps u");
    let g_eval = grad(&[&y_eval.sum_all().unwrap()], &[&x, &w], None, false).unwrap();
    assert_eq!(
        y_train.value().to_vec().unwrap(),
        y_eval.value().to_vec().unwrap()
    );
    for (a, b) in g_train.iter().zip(&g_eval) {
        assert_eq!(a.value().to_vec().unwrap(), b.value().to_vec().unwrap());
    }
}

/// A SPADE layer whose shared-MLP pre-activations stay at least 1 away from ReLU's kink:
/// small weights and biases of ±3 (so some channels are active and some dead).
fn spade_for_gradcheck(norm: SpadeNorm, rng: &mut Rng) -> Spade {
    let spade = Spade::new(SpadeConfig::new(2, 3, norm).hidden(4), rng).unwrap();
    spade
        .mlp_shared
        .weight
        .set("w", randn(&[4, 3, 3, 3], 0.05, rng))
        .unwrap();
    let b = Tensor::from_vec(vec![3.0, -3.0, 3.0, -3.0], [4], Device::Cpu).unwrap();
    spade.mlp_shared.bias.as_ref().unwrap().set("b", b).unwrap();
    spade
}

#[test]
fn spade_batch_and_instance() {
    let mut rng = Rng::seed(9);
    let cfg = GradcheckConfig::default();
    for norm in [SpadeNorm::Batch, SpadeNorm::Instance] {
        let spade = spade_for_gradcheck(norm, &mut rng);
        let x = randn(&[2, 2, 3, 3], 1.0, &mut rng);
        // Label values in [0, 1) (|W·s| ≤ 27·0.05·3σ stays well below the biases).
        let seg = Tensor::rand_uniform([2, 3, 5, 4], 0.0, 1.0, &mut rng, Device::Cpu).unwrap();
        check_layer(
            &format!("SPADE {norm:?}"),
            &spade,
            &[x, seg],
            |l, xs| l.forward(&xs[0], &xs[1]),
            &cfg,
        );
    }
}

#[test]
fn spade_with_an_upsampled_label_map() {
    let mut rng = Rng::seed(10);
    let spade = spade_for_gradcheck(SpadeNorm::Instance, &mut rng);
    let x = randn(&[1, 2, 2, 2], 1.0, &mut rng);
    let seg = Tensor::rand_uniform([1, 3, 1, 2], 0.0, 1.0, &mut rng, Device::Cpu).unwrap();
    check_layer(
        "SPADE instance, label map 1×2 → 2×2",
        &spade,
        &[x, seg],
        |l, xs| l.forward(&xs[0], &xs[1]),
        &GradcheckConfig::default(),
    );
}

#[test]
fn activations() {
    let mut rng = Rng::seed(11);
    let cfg = GradcheckConfig::default();
    let x = away_from_zero(&[2, 3, 2], &mut rng);
    check_layer(
        "ReLU",
        &ReLU,
        std::slice::from_ref(&x),
        one(ReLU::forward),
        &cfg,
    );
    let leaky = LeakyReLU::new(0.2);
    check_layer(
        "LeakyReLU",
        &leaky,
        std::slice::from_ref(&x),
        one(LeakyReLU::forward),
        &cfg,
    );
    check_layer("Tanh", &Tanh, &[x], one(Tanh::forward), &cfg);
}

#[test]
fn upsample_and_avg_pool() {
    let mut rng = Rng::seed(12);
    let cfg = GradcheckConfig::default();
    let x = randn(&[1, 2, 3, 4], 1.0, &mut rng);
    for up in [
        Upsample::nearest(2.0),
        Upsample::bilinear(2.0, false),
        Upsample::new(
            UpsampleSize::Size([4, 6]),
            Interpolation::Bilinear {
                align_corners: true,
            },
        ),
        Upsample::new(UpsampleSize::Size([2, 5]), Interpolation::Nearest),
    ] {
        check_layer(
            &format!("{up:?}"),
            &up,
            std::slice::from_ref(&x),
            one(Upsample::forward),
            &cfg,
        );
    }
    for pool in [
        AvgPool2d::new(2),
        AvgPool2d::new(3)
            .stride(2)
            .padding(1)
            .count_include_pad(false),
    ] {
        check_layer(
            &format!("{pool:?}"),
            &pool,
            std::slice::from_ref(&x),
            one(AvgPool2d::forward),
            &cfg,
        );
    }
}
