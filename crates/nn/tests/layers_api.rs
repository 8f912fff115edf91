//! Names, modes, state updates and typed errors of the layers (their numbers are checked
//! against PyTorch in tests/tests/golden_nn_layers.rs).
use tessera_autograd::Var;
use tessera_nn::{
    AvgPool2d, BatchNorm2d, Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig, Error,
    InstanceNorm2d, Linear, Module, ModuleExt, NormConfig, Padding, Spade, SpadeConfig, SpadeNorm,
    SpectralNorm, Upsample, UpsampleSize,
};
use tessera_tensor::{Device, Interpolation, Rng, Tensor};

fn x(shape: &[usize], rng: &mut Rng) -> Var {
    Var::constant(Tensor::randn(shape.to_vec(), 0.0, 1.0, rng, Device::Cpu).unwrap())
}

fn names(m: &dyn Module) -> Vec<String> {
    let mut out = Vec::new();
    m.visit("", &mut |n, _| out.push(n.to_string()));
    out
}

/// The error is `Error::Layer` naming `layer`.
fn assert_layer_error<T: std::fmt::Debug>(r: tessera_nn::Result<T>, layer: &str) {
    match r {
        Err(Error::Layer { layer: l, why }) => {
            assert_eq!(l, layer, "{why}");
            assert!(!why.is_empty());
        }
        other => panic!("expected a {layer} layer error, got {other:?}"),
    }
}

#[test]
fn state_dict_names_follow_pytorch() {
    let rng = &mut Rng::seed(0);
    let sn = SpectralNorm::new(Conv2d::new(Conv2dConfig::new(3, 4, 3), rng).unwrap(), rng).unwrap();
    let mut got = names(&sn);
    got.sort();
    assert_eq!(got, ["bias", "weight_orig", "weight_u", "weight_v"]);
    let mut out = Vec::new();
    sn.visit("conv", &mut |n, _| out.push(n.to_string()));
    assert!(out.contains(&"conv.weight_orig".to_string()));
    assert_eq!(sn.weight_u.get().dims(), [4]);
    assert_eq!(sn.weight_v.get().dims(), [27]);

    let bn = BatchNorm2d::new(3).unwrap();
    assert_eq!(
        names(&bn),
        [
            "weight",
            "bias",
            "running_mean",
            "running_var",
            "num_batches_tracked"
        ]
    );
    assert_eq!(
        bn.num_batches_tracked().unwrap().get().dims(),
        [] as [usize; 0]
    );
    assert!(names(&InstanceNorm2d::new(3).unwrap()).is_empty());
    let tracked =
        InstanceNorm2d::with_config(NormConfig::instance_norm(2).track_running_stats(true))
            .unwrap();
    assert_eq!(
        names(&tracked),
        ["running_mean", "running_var", "num_batches_tracked"]
    );

    let spade = Spade::new(SpadeConfig::new(4, 3, SpadeNorm::Batch), rng).unwrap();
    let mut got = names(&spade);
    got.sort();
    assert_eq!(
        got,
        [
            "mlp_beta.bias",
            "mlp_beta.weight",
            "mlp_gamma.bias",
            "mlp_gamma.weight",
            "mlp_shared.0.bias",
            "mlp_shared.0.weight",
            "param_free_norm.num_batches_tracked",
            "param_free_norm.running_mean",
            "param_free_norm.running_var",
        ]
    );
    // Default hidden width 128.
    assert_eq!(spade.mlp_shared.weight.shape().dims(), [128, 3, 3, 3]);
    let inst = Spade::new(SpadeConfig::new(4, 3, SpadeNorm::Instance), rng).unwrap();
    assert_eq!(names(&inst).len(), 6);

    let ct = ConvTranspose2d::new(ConvTranspose2dConfig::new(3, 5, 2), rng).unwrap();
    assert_eq!(ct.weight.shape().dims(), [3, 5, 2, 2]);
    let lin = Linear::new(6, 2, false, rng).unwrap();
    assert_eq!(names(&lin), ["weight"]);
    assert_eq!(lin.weight.shape().dims(), [2, 6]);
}

#[test]
fn batch_norm_updates_running_stats_only_in_training() {
    let rng = &mut Rng::seed(1);
    let mut bn = BatchNorm2d::new(2).unwrap();
    let input = x(&[4, 2, 3, 3], rng);
    bn.forward(&input).unwrap();
    bn.forward(&input).unwrap();
    let nbt = bn.num_batches_tracked().unwrap().clone();
    assert_eq!(nbt.get().to_scalar().unwrap(), 2.0);
    let mean = bn.running_mean().unwrap().get();
    bn.set_training(false);
    let y = bn.forward(&input).unwrap();
    assert_eq!(nbt.get().to_scalar().unwrap(), 2.0);
    assert_eq!(
        bn.running_mean().unwrap().get().to_vec().unwrap(),
        mean.to_vec().unwrap()
    );
    // Eval: (x − rm)/√(rv + eps) with weight 1, bias 0.
    let rm = mean.to_vec().unwrap();
    let rv = bn.running_var().unwrap().get().to_vec().unwrap();
    let xv = input.value().to_vec().unwrap();
    let yv = y.value().to_vec().unwrap();
    for (i, (&a, &b)) in xv.iter().zip(&yv).enumerate() {
        let c = (i / 9) % 2;
        let want = (a - rm[c]) / (rv[c] + 1e-5).sqrt();
        assert!((b - want).abs() < 1e-5, "{b} vs {want}");
    }
}

#[test]
fn spade_passes_the_mode_to_its_norm() {
    let rng = &mut Rng::seed(2);
    let mut spade = Spade::new(SpadeConfig::new(2, 3, SpadeNorm::Batch).hidden(4), rng).unwrap();
    let (input, seg) = (x(&[2, 2, 4, 4], rng), x(&[2, 3, 8, 8], rng));
    spade.forward(&input, &seg).unwrap();
    let state = spade.state_dict();
    assert_eq!(
        state["param_free_norm.num_batches_tracked"]
            .to_scalar()
            .unwrap(),
        1.0
    );
    spade.set_training(false);
    spade.forward(&input, &seg).unwrap();
    assert_eq!(
        spade.state_dict()["param_free_norm.num_batches_tracked"]
            .to_scalar()
            .unwrap(),
        1.0
    );
}

#[test]
fn spectral_norm_iterates_in_training_only_and_normalizes() {
    let rng = &mut Rng::seed(3);
    let mut sn = SpectralNorm::new(Linear::new(5, 4, true, rng).unwrap(), rng)
        .unwrap()
        .with_power_iterations(30)
        .unwrap();
    let input = x(&[2, 5], rng);
    for v in [&sn.weight_u, &sn.weight_v] {
        let n: f32 = v
            .get()
            .sqr()
            .unwrap()
            .sum_all()
            .unwrap()
            .to_scalar()
            .unwrap();
        assert!((n - 1.0).abs() < 1e-5);
    }
    sn.forward(&input).unwrap();
    // After many iterations W/σ has spectral norm ≈ 1: ‖(W/σ) v‖ ≈ 1 for the top v.
    let w = sn.weight().unwrap();
    let v = sn.weight_v.get().reshape([5, 1]).unwrap();
    let wv = w.value().matmul(&v).unwrap();
    let n = wv
        .sqr()
        .unwrap()
        .sum_all()
        .unwrap()
        .to_scalar()
        .unwrap()
        .sqrt();
    assert!((n - 1.0).abs() < 1e-3, "{n}");
    sn.set_training(false);
    let u = sn.weight_u.get().to_vec().unwrap();
    sn.forward(&input).unwrap();
    assert_eq!(sn.weight_u.get().to_vec().unwrap(), u);
}

#[test]
fn spectral_norm_keeps_u_v_when_the_forward_fails() {
    let rng = &mut Rng::seed(4);
    let sn = SpectralNorm::new(Conv2d::new(Conv2dConfig::new(3, 2, 3), rng).unwrap(), rng).unwrap();
    let u = sn.weight_u.get().to_vec().unwrap();
    assert_layer_error(sn.forward(&x(&[1, 4, 5, 5], rng)), "Conv2d");
    assert_eq!(sn.weight_u.get().to_vec().unwrap(), u);
}

#[test]
fn bad_inputs_are_typed_errors_naming_the_layer() {
    let rng = &mut Rng::seed(5);
    let conv = Conv2d::new(Conv2dConfig::new(3, 2, 3), rng).unwrap();
    assert_layer_error(conv.forward(&x(&[1, 2, 5, 5], rng)), "Conv2d");
    assert_layer_error(conv.forward(&x(&[3, 5, 5], rng)), "Conv2d");
    assert_layer_error(conv.forward(&x(&[1, 3, 2, 5], rng)), "Conv2d");
    let reflect = Conv2d::new(
        Conv2dConfig::new(1, 1, 3)
            .padding(2)
            .padding_mode(Padding::Reflect),
        rng,
    )
    .unwrap();
    assert_layer_error(reflect.forward(&x(&[1, 1, 2, 2], rng)), "Conv2d");

    let ct = ConvTranspose2d::new(ConvTranspose2dConfig::new(2, 3, 3).padding(2), rng).unwrap();
    assert_layer_error(ct.forward(&x(&[1, 3, 4, 4], rng)), "ConvTranspose2d");
    // Output (1 − 1)·1 + 3 − 4 = −1 rows: empty.
    assert_layer_error(ct.forward(&x(&[1, 2, 1, 1], rng)), "ConvTranspose2d");
    assert_layer_error(
        ConvTranspose2d::new(ConvTranspose2dConfig::new(2, 3, 3).output_padding(1), rng),
        "ConvTranspose2d",
    );

    let lin = Linear::new(4, 2, true, rng).unwrap();
    assert_layer_error(lin.forward(&x(&[2, 5], rng)), "Linear");
    assert_layer_error(
        lin.forward(&Var::constant(Tensor::scalar(1.0, Device::Cpu).unwrap())),
        "Linear",
    );
    assert_eq!(lin.forward(&x(&[4], rng)).unwrap().dims(), [2]);

    let mut bn = BatchNorm2d::new(2).unwrap();
    assert_layer_error(bn.forward(&x(&[2, 3, 2, 2], rng)), "BatchNorm2d");
    assert_layer_error(bn.forward(&x(&[2, 2, 2], rng)), "BatchNorm2d");
    // One value per channel: no batch variance (PyTorch raises too).
    assert_layer_error(bn.forward(&x(&[1, 2, 1, 1], rng)), "BatchNorm2d");
    bn.set_training(false);
    assert!(bn.forward(&x(&[1, 2, 1, 1], rng)).is_ok());

    let inorm = InstanceNorm2d::new(2).unwrap();
    assert_layer_error(inorm.forward(&x(&[2, 3, 2, 2], rng)), "InstanceNorm2d");
    assert_layer_error(inorm.forward(&x(&[2, 2, 1, 1], rng)), "InstanceNorm2d");

    let spade = Spade::new(SpadeConfig::new(2, 3, SpadeNorm::Instance).hidden(4), rng).unwrap();
    let good = x(&[2, 2, 4, 4], rng);
    assert_layer_error(spade.forward(&good, &x(&[2, 4, 4, 4], rng)), "SPADE");
    assert_layer_error(spade.forward(&good, &x(&[1, 3, 4, 4], rng)), "SPADE");
    assert_layer_error(spade.forward(&good, &x(&[2, 3, 4], rng)), "SPADE");
    assert_layer_error(
        spade.forward(&x(&[2, 3, 4, 4], rng), &x(&[2, 3, 4, 4], rng)),
        "SPADE",
    );
    assert_eq!(
        spade.forward(&good, &x(&[2, 3, 9, 3], rng)).unwrap().dims(),
        [2, 2, 4, 4]
    );
    assert_layer_error(
        Spade::new(SpadeConfig::new(2, 3, SpadeNorm::Batch).kernel(4), rng),
        "SPADE",
    );

    let pool = AvgPool2d::new(3);
    assert_layer_error(pool.forward(&x(&[1, 1, 2, 2], rng)), "AvgPool2d");
    assert_layer_error(
        AvgPool2d::new(2).padding(2).forward(&x(&[1, 1, 4, 4], rng)),
        "AvgPool2d",
    );
    assert_layer_error(pool.forward(&x(&[4, 4], rng)), "AvgPool2d");

    let up = Upsample::nearest(0.1);
    assert_layer_error(up.forward(&x(&[1, 1, 4, 4], rng)), "Upsample");
    assert_layer_error(
        Upsample::nearest(f64::NAN).forward(&x(&[1, 1, 4, 4], rng)),
        "Upsample",
    );
    let sized = Upsample::new(UpsampleSize::Size([0, 3]), Interpolation::Nearest);
    assert_layer_error(sized.forward(&x(&[1, 1, 4, 4], rng)), "Upsample");
    assert_layer_error(Upsample::nearest(2.0).forward(&x(&[4, 4], rng)), "Upsample");

    assert_layer_error(
        SpectralNorm::new(Linear::new(2, 2, true, rng).unwrap(), rng)
            .unwrap()
            .with_power_iterations(0),
        "SpectralNorm",
    );
}

#[test]
fn load_state_dict_reports_mis_shaped_spade_weights() {
    let rng = &mut Rng::seed(6);
    let spade = Spade::new(SpadeConfig::new(2, 3, SpadeNorm::Batch).hidden(4), rng).unwrap();
    let mut state = spade.state_dict();
    state.insert(
        "mlp_gamma.weight".into(),
        Tensor::zeros([2, 5, 3, 3], Device::Cpu).unwrap(),
    );
    match spade.load_state_dict(&state, true) {
        Err(Error::StateDict { mismatched, .. }) => {
            assert_eq!(mismatched.len(), 1);
            assert_eq!(mismatched[0].0, "mlp_gamma.weight");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn conv_transpose_output_size() {
    let rng = &mut Rng::seed(7);
    let ct = ConvTranspose2d::new(
        ConvTranspose2dConfig::new(1, 1, 4).stride(2).padding(1),
        rng,
    )
    .unwrap();
    // DCGAN doubling: (8 − 1)·2 − 2 + 3 + 1 = 16.
    assert_eq!(ct.output_hw([8, 8]), Some([16, 16]));
    assert_eq!(
        ct.forward(&x(&[2, 1, 8, 5], rng)).unwrap().dims(),
        [2, 1, 16, 10]
    );
}

#[test]
fn to_device_keeps_every_value_and_the_optimizer_handles() {
    let mut rng = Rng::seed(9);
    let norm = BatchNorm2d::new(3).unwrap();
    norm.forward(&x(&[2, 3, 4, 4], &mut rng)).unwrap();
    let before = norm.state_dict();
    let handles = norm.params();
    norm.to_device(Device::Cpu).unwrap();
    let after = norm.state_dict();
    assert_eq!(
        before.keys().collect::<Vec<_>>(),
        after.keys().collect::<Vec<_>>()
    );
    for (name, t) in &before {
        assert_eq!(t.to_vec().unwrap(), after[name].to_vec().unwrap(), "{name}");
    }
    // The handles an optimizer holds see the moved values.
    for (h, p) in handles.iter().zip(norm.params()) {
        assert_eq!(h.tensor().to_vec().unwrap(), p.tensor().to_vec().unwrap());
    }
    assert!(norm.params().iter().all(|p| p.var().requires_grad()));
}
