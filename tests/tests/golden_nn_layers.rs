//! Golden tests of the tessera-nn layers against PyTorch modules, from
//! `tests/fixtures/nn_layers.safetensors` (written by `tests/fixtures/make_nn_fixtures.py`,
//! whose docstring documents the keys).
//!
//! Each case builds the tessera layer with the constructor arguments of its PyTorch twin (listed
//! beside the case in the script), loads PyTorch's `state_dict` by name with
//! `load_state_dict(strict = true)` — so the parameter and buffer names must agree exactly —
//! and replays the fixture's steps on the same layer: a forward in training or eval mode, the
//! gradients of `sum(wy · y)` with respect to the inputs and every parameter, and every buffer
//! afterwards (running statistics, `num_batches_tracked`, spectral-norm `weight_u`/`weight_v`).
//! Every comparison uses the relative error of `tessera_tests::rel_error` within
//! `tessera_tests::TOL` (1e-4).
use std::collections::{BTreeMap, BTreeSet};

use tessera_autograd::{grad, Var};
use tessera_nn::{
    AvgPool2d, BatchNorm2d, Conv2d, Conv2dConfig, ConvTranspose2d, ConvTranspose2dConfig,
    InstanceNorm2d, LeakyReLU, Linear, Module, ModuleExt, NormConfig, Padding, ReLU, Spade,
    SpadeConfig, SpadeNorm, SpectralNorm, Tanh, Upsample, UpsampleSize, WeightLayer,
};
use tessera_tensor::{Interpolation, Rng, Tensor};
use tessera_tests::{fixtures_dir, Fixture, Report};

const FILE: &str = "nn_layers";

/// A layer under test: its forward over the step's inputs (in the fixture's order).
trait Layer: Module {
    fn run(&self, inputs: &[Var]) -> tessera_nn::Result<Var>;
}

macro_rules! one_input_layer {
    ($($t:ty),*) => {$(
        impl Layer for $t {
            fn run(&self, inputs: &[Var]) -> tessera_nn::Result<Var> {
                self.forward(&inputs[0])
            }
        }
    )*};
}
one_input_layer!(
    Conv2d,
    ConvTranspose2d,
    Linear,
    BatchNorm2d,
    InstanceNorm2d,
    ReLU,
    LeakyReLU,
    Tanh,
    Upsample,
    AvgPool2d
);

impl<L: WeightLayer> Layer for SpectralNorm<L> {
    fn run(&self, inputs: &[Var]) -> tessera_nn::Result<Var> {
        self.forward(&inputs[0])
    }
}

impl Layer for Spade {
    fn run(&self, inputs: &[Var]) -> tessera_nn::Result<Var> {
        self.forward(&inputs[0], &inputs[1])
    }
}

/// The tessera twin of each fixture case (constructor arguments as in make_nn_fixtures.py),
/// and its input names.
fn build(case: &str) -> (Box<dyn Layer>, &'static [&'static str]) {
    let rng = &mut Rng::seed(1);
    let x: &'static [&'static str] = &["x"];
    let conv = |c: Conv2dConfig, rng: &mut Rng| Conv2d::new(c, rng).unwrap();
    let convt = |c: ConvTranspose2dConfig, rng: &mut Rng| ConvTranspose2d::new(c, rng).unwrap();
    let bn = |c: NormConfig| BatchNorm2d::with_config(c).unwrap();
    let inorm = |c: NormConfig| InstanceNorm2d::with_config(c).unwrap();
    let up = |size, mode| Upsample::new(size, mode);
    let bilinear = |align_corners| Interpolation::Bilinear { align_corners };
    let layer: Box<dyn Layer> = match case {
        "conv.reflect" => Box::new(conv(
            Conv2dConfig::new(3, 4, 3)
                .padding(1)
                .padding_mode(Padding::Reflect),
            rng,
        )),
        "convt.s2" => Box::new(convt(
            ConvTranspose2dConfig::new(3, 2, 3)
                .stride(2)
                .padding(1)
                .output_padding(1),
            rng,
        )),
        "convt.mixed" => Box::new(convt(
            ConvTranspose2dConfig {
                kernel: [2, 3],
                stride: [1, 2],
                padding: [0, 1],
                output_padding: [0, 1],
                dilation: [2, 1],
                ..ConvTranspose2dConfig::new(2, 3, 1).bias(false)
            },
            rng,
        )),
        "convt.k4" => Box::new(convt(
            ConvTranspose2dConfig::new(2, 2, 4).stride(2).padding(1),
            rng,
        )),
        "linear.bias" => Box::new(Linear::new(5, 4, true, rng).unwrap()),
        "linear.nobias" => Box::new(Linear::new(6, 3, false, rng).unwrap()),
        "bn.affine" => Box::new(BatchNorm2d::new(3).unwrap()),
        "bn.cumulative" => Box::new(bn(NormConfig::batch_norm(2).affine(false).momentum(None))),
        "bn.untracked" => Box::new(bn(NormConfig::batch_norm(2).track_running_stats(false))),
        "in.plain" => Box::new(InstanceNorm2d::new(3).unwrap()),
        "in.affine" => Box::new(inorm(NormConfig::instance_norm(3).affine(true))),
        "in.tracked" => Box::new(inorm(
            NormConfig::instance_norm(2).track_running_stats(true),
        )),
        "sn.conv" => Box::new(
            SpectralNorm::new(conv(Conv2dConfig::new(3, 4, 3).padding(1), rng), rng).unwrap(),
        ),
        "sn.linear2" => Box::new(
            SpectralNorm::new(Linear::new(6, 5, true, rng).unwrap(), rng)
                .unwrap()
                .with_power_iterations(2)
                .unwrap(),
        ),
        "sn.convt" => Box::new(
            SpectralNorm::new(
                convt(
                    ConvTranspose2dConfig::new(3, 2, 4).stride(2).padding(1),
                    rng,
                ),
                rng,
            )
            .unwrap(),
        ),
        "sn.conv_nobias" => Box::new(
            SpectralNorm::new(
                conv(
                    Conv2dConfig::new(2, 3, 4).stride(2).padding(2).bias(false),
                    rng,
                ),
                rng,
            )
            .unwrap(),
        ),
        "spade.batch" | "spade.instance" => {
            let cfg = if case == "spade.batch" {
                SpadeConfig::new(3, 4, SpadeNorm::Batch).hidden(5)
            } else {
                SpadeConfig::new(2, 3, SpadeNorm::Instance).hidden(4)
            };
            return (Box::new(Spade::new(cfg, rng).unwrap()), &["x", "seg"]);
        }
        "act.relu" => Box::new(ReLU),
        "act.leaky" => Box::new(LeakyReLU::new(0.2)),
        "act.leaky_default" => Box::new(LeakyReLU::default()),
        "act.tanh" => Box::new(Tanh),
        "up.nearest2" => Box::new(Upsample::nearest(2.0)),
        "up.nearest_size" => Box::new(up(UpsampleSize::Size([5, 7]), Interpolation::Nearest)),
        "up.bilinear2" => Box::new(Upsample::bilinear(2.0, false)),
        "up.bilinear_ac_size" => Box::new(up(UpsampleSize::Size([7, 5]), bilinear(true))),
        "up.bilinear_half" => Box::new(Upsample::bilinear(0.5, false)),
        "pool.k2" => Box::new(AvgPool2d::new(2)),
        "pool.spade_d" => Box::new(
            AvgPool2d::new(3)
                .stride(2)
                .padding(1)
                .count_include_pad(false),
        ),
        "pool.pad_counted" => Box::new(AvgPool2d::new(3).stride(1).padding(1)),
        other => panic!("no tessera layer for fixture case {other}"),
    };
    (layer, x)
}

/// Every key of the fixture file.
fn fixture_keys() -> BTreeSet<String> {
    let path = fixtures_dir().join(format!("{FILE}.safetensors"));
    let bytes = std::fs::read(&path).expect("read nn_layers fixture");
    let st = safetensors::SafeTensors::deserialize(&bytes).expect("parse nn_layers fixture");
    st.names().into_iter().map(|s| s.to_string()).collect()
}

/// The cases of the fixture (the keys' part before ".modes").
fn all_cases(keys: &BTreeSet<String>) -> Vec<String> {
    keys.iter()
        .filter_map(|k| k.strip_suffix(".modes").map(str::to_string))
        .collect()
}

/// The tensors stored under `<prefix>.<name>`, by name.
fn with_prefix(fx: &Fixture, keys: &BTreeSet<String>, prefix: &str) -> BTreeMap<String, Tensor> {
    let dotted = format!("{prefix}.");
    keys.iter()
        .filter_map(|k| k.strip_prefix(&dotted))
        .map(|name| (name.to_string(), fx.get(prefix, name)))
        .collect()
}

/// Replays one case; returns the number of steps.
fn check_case(fx: &Fixture, keys: &BTreeSet<String>, report: &mut Report, case: &str) -> usize {
    let (mut layer, input_names) = build(case);
    let state = with_prefix(fx, keys, &format!("{case}.sd"));
    if let Err(e) = layer.load_state_dict(&state, true) {
        report.fail(case, format!("load_state_dict: {e}"));
        return 0;
    }
    let modes = fx.floats(case, "modes");
    for (k, &mode) in modes.iter().enumerate() {
        let step = format!("{case}.s{k}");
        let what = |name: &str| {
            format!(
                "{step} ({}) {name}",
                if mode == 1.0 { "train" } else { "eval" }
            )
        };
        layer.set_training(mode == 1.0);
        let inputs: Vec<Var> = input_names.iter().map(|n| fx.param(&step, n)).collect();
        let y = match layer.run(&inputs) {
            Ok(y) => y,
            Err(e) => {
                report.fail(&what("forward"), e);
                continue;
            }
        };
        report.check(&what("y"), y.value(), &fx.get(&step, "y"));

        let params = layer.named_params();
        let mut wrt: Vec<Var> = inputs.clone();
        wrt.extend(params.iter().map(|(_, p)| p.var()));
        let wrt_refs: Vec<&Var> = wrt.iter().collect();
        let wy = Var::constant(fx.get(&step, "wy"));
        let grads = match grad(&[&y], &wrt_refs, Some(&[wy]), false) {
            Ok(g) => g,
            Err(e) => {
                report.fail(&what("grad"), e);
                continue;
            }
        };
        let (g_inputs, g_params) = grads.split_at(inputs.len());
        for (n, g) in input_names.iter().zip(g_inputs) {
            report.check(
                &what(&format!("g{n}")),
                g.value(),
                &fx.get(&step, &format!("g{n}")),
            );
        }
        let want_params = with_prefix(fx, keys, &format!("{step}.grad"));
        if want_params.len() != params.len() {
            report.fail(
                &what("parameter gradients"),
                format!(
                    "{} in the fixture, {} in tessera",
                    want_params.len(),
                    params.len()
                ),
            );
        }
        for ((name, _), g) in params.iter().zip(g_params) {
            match want_params.get(name) {
                Some(want) => report.check(&what(&format!("grad {name}")), g.value(), want),
                None => report.fail(&what(name), "no gradient in the fixture"),
            }
        }

        let want_buffers = with_prefix(fx, keys, &format!("{step}.after"));
        let buffers = layer.named_buffers();
        if want_buffers.len() != buffers.len() {
            report.fail(
                &what("buffers"),
                format!(
                    "{} in the fixture, {} in tessera",
                    want_buffers.len(),
                    buffers.len()
                ),
            );
        }
        for (name, b) in &buffers {
            match want_buffers.get(name) {
                Some(want) => report.check(&what(&format!("after {name}")), &b.get(), want),
                None => report.fail(&what(name), "no buffer in the fixture"),
            }
        }
    }
    modes.len()
}

/// Replays every case whose name starts with `family.`; at least `min_checks` comparisons.
fn check_family(family: &str, min_cases: usize, min_checks: usize) {
    let fx = Fixture::load(FILE);
    let keys = fixture_keys();
    let cases: Vec<String> = all_cases(&keys)
        .into_iter()
        .filter(|c| c.starts_with(&format!("{family}.")))
        .collect();
    assert!(
        cases.len() >= min_cases,
        "{family}: only {} cases in the fixture: {cases:?}",
        cases.len()
    );
    let mut report = Report::new();
    for case in &cases {
        let steps = check_case(&fx, &keys, &mut report, case);
        assert!(steps >= 2, "{case}: {steps} steps");
    }
    report.finish(min_checks);
}

#[test]
fn every_fixture_case_has_a_tessera_layer_and_a_test() {
    let families = [
        "conv", "convt", "linear", "bn", "in", "sn", "spade", "act", "up", "pool",
    ];
    for case in all_cases(&fixture_keys()) {
        let family = case.split('.').next().unwrap();
        assert!(families.contains(&family), "case {case} is not tested");
        // Panics when no constructor exists.
        let _ = build(&case);
    }
}

#[test]
fn conv2d_reflect_padding() {
    check_family("conv", 1, 2 * 4);
}

#[test]
fn conv_transpose2d_stride_padding_output_padding() {
    check_family("convt", 3, 3 * 2 * 3);
}

#[test]
fn linear_with_and_without_bias() {
    check_family("linear", 2, 2 * 2 * 2);
}

#[test]
fn batch_norm_train_eval_and_running_stats() {
    // bn.affine: 4 steps of y, gx, 2 parameter gradients, 3 buffers.
    check_family("bn", 3, 4 * 7 + 3 * 5 + 2 * 4);
}

#[test]
fn instance_norm_affine_and_tracked() {
    check_family("in", 3, 2 * 2 + 2 * 4 + 3 * 5);
}

#[test]
fn spectral_norm_power_iteration_and_eval() {
    check_family("sn", 4, 4 * 3 * 5);
}

#[test]
fn spade_batch_and_instance() {
    // Batch: 3 steps of y, gx, gseg, 6 parameter gradients, 3 buffers; instance: 2 × 9.
    check_family("spade", 2, 3 * 12 + 2 * 9);
}

#[test]
fn activations() {
    check_family("act", 4, 4 * 2 * 2);
}

#[test]
fn upsample_nearest_and_bilinear() {
    check_family("up", 5, 5 * 2 * 2);
}

#[test]
fn avg_pool2d() {
    check_family("pool", 3, 3 * 2 * 2);
}
