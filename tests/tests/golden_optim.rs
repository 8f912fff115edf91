//! Golden tests of tessera-nn's Adam, learning-rate schedules and safetensors interop against
//! PyTorch (fixtures written by `tests/fixtures/make_optim_fixtures.py`, whose docstring
//! documents every key).
use std::collections::BTreeMap;

use tessera_autograd::{grad, Var};
use tessera_nn::checkpoint::safetensors as st;
use tessera_nn::optim::{Adam, AdamConfig, LinearDecay, MultiStepLR};
use tessera_nn::{join, Conv2d, Conv2dConfig, Entry, Module, ModuleExt};
use tessera_tensor::{Device, Rng, Tensor};
use tessera_tests::{fixtures_dir, rel_error, Fixture, Report};

const PARAMS: [&str; 4] = ["conv1.weight", "conv1.bias", "conv2.weight", "conv2.bias"];
const STEPS: usize = 10;
/// Bound on the relative error of each weight's change since the start (see `adam_case`).
const DELTA_TOL: f64 = 1e-3;

/// conv3x3 (3 → 4) → leaky_relu(0.2) → conv3x3 (4 → 2), both padded by 1.
struct Net {
    conv1: Conv2d,
    conv2: Conv2d,
}

impl Net {
    fn new() -> Net {
        let mut rng = Rng::seed(1);
        Net {
            conv1: Conv2d::new(Conv2dConfig::new(3, 4, 3).padding(1), &mut rng).unwrap(),
            conv2: Conv2d::new(Conv2dConfig::new(4, 2, 3).padding(1), &mut rng).unwrap(),
        }
    }
    fn forward(&self, x: &Var) -> tessera_nn::Result<Var> {
        let h = self.conv1.forward(x)?.leaky_relu(0.2)?;
        self.conv2.forward(&h)
    }
}

impl Module for Net {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.conv1.visit(&join(prefix, "conv1"), f);
        self.conv2.visit(&join(prefix, "conv2"), f);
    }
    fn set_training(&mut self, _training: bool) {}
}

fn scalar_tensor(v: f32) -> Tensor {
    Tensor::scalar(v, Device::Cpu).unwrap()
}

/// How a case computes its gradients.
#[derive(Clone, Copy, Debug)]
enum Grads {
    /// `loss.backward()` then `Adam::step_from_backward`.
    Backward,
    /// `tessera_autograd::grad` over `Adam::vars` then `Adam::step`.
    Explicit,
}

fn adam_case(
    fx: &Fixture,
    report: &mut Report,
    worst_delta: &mut f64,
    case: &str,
    config: AdamConfig,
    how: Grads,
) {
    // The stored hyperparameters are the ones this test uses.
    let hyper = fx.floats(case, "hyper");
    let want = [
        config.lr,
        config.betas.0,
        config.betas.1,
        config.eps,
        config.weight_decay,
    ];
    for (h, w) in hyper.iter().zip(want) {
        assert_eq!(*h, w as f32, "{case}: hyper {hyper:?} vs {want:?}");
    }
    let net = Net::new();
    let init: BTreeMap<String, Tensor> = PARAMS
        .iter()
        .map(|n| (n.to_string(), fx.get(case, &format!("init.{n}"))))
        .collect();
    net.load_state_dict(&init, true).unwrap();
    let mut opt = Adam::new(net.named_params(), config).unwrap();
    let x = fx.constant(case, "x");
    let target = fx.constant(case, "target");
    let losses = fx.floats(case, "loss");
    assert_eq!(losses.len(), STEPS);
    for step in 1..=STEPS {
        let loss = net
            .forward(&x)
            .and_then(|y| Ok(y.sub(&target)?.sqr()?.mean_all()?))
            .unwrap();
        report.check(
            &format!("{case} loss before step {step}"),
            loss.value(),
            &scalar_tensor(losses[step - 1]),
        );
        match how {
            Grads::Backward => {
                loss.backward().unwrap();
                opt.step_from_backward().unwrap();
            }
            Grads::Explicit => {
                let vars = opt.vars();
                let refs: Vec<&Var> = vars.iter().collect();
                let g: Vec<Tensor> = grad(&[&loss], &refs, None, false)
                    .unwrap()
                    .iter()
                    .map(|v| v.value().clone())
                    .collect();
                opt.step(&g).unwrap();
            }
        }
        let now = net.state_dict();
        for n in PARAMS {
            let want = fx.get(case, &format!("step{step:02}.{n}"));
            report.check(&format!("{case} step {step} {n}"), &now[n], &want);
            // Stricter: the change since the start relative to the largest change (weights
            // move by only about lr per step). The fixture stores weights in float32, whose
            // rounding alone is ~4e-5 of a two-step change, so this has its own bound.
            let moved = now[n].sub(&init[n]).unwrap();
            let want_moved = want.sub(&init[n]).unwrap();
            let err = rel_error(&moved, &want_moved);
            assert!(
                err < DELTA_TOL,
                "{case} step {step} {n}: the change since the start is off by {err:e} (> {DELTA_TOL:e})"
            );
            *worst_delta = worst_delta.max(err);
        }
    }
    let state = opt.state();
    for n in PARAMS {
        assert_eq!(state.counters[&format!("{n}.step")], STEPS as u64);
        for m in ["exp_avg", "exp_avg_sq"] {
            report.check(
                &format!("{case} final {n}.{m}"),
                &state.tensors[&format!("{n}.{m}")],
                &fx.get(case, &format!("final.{n}.{m}")),
            );
        }
    }
}

#[test]
fn adam_ten_steps_match_pytorch() {
    let fx = Fixture::load("optim");
    let mut report = Report::new();
    let mut worst_delta = 0.0;
    let base = AdamConfig::new(5e-4).betas(0.5, 0.999);
    adam_case(
        &fx,
        &mut report,
        &mut worst_delta,
        "adam",
        base,
        Grads::Backward,
    );
    adam_case(
        &fx,
        &mut report,
        &mut worst_delta,
        "adam_wd",
        base.weight_decay(0.1),
        Grads::Explicit,
    );
    adam_case(
        &fx,
        &mut report,
        &mut worst_delta,
        "adam_ttur",
        AdamConfig::new(4e-4).betas(0.0, 0.9),
        Grads::Backward,
    );
    eprintln!("worst relative error of a weight change: {worst_delta:.2e}");
    // Per case: 10 losses, 10 × 4 weights, 4 × 2 moments.
    report.finish(3 * (STEPS + STEPS * 4 + 8));
}

/// max|got − want| / max|want| over a schedule, in f64.
fn schedule_error(got: &[f64], want: &[f32]) -> f64 {
    assert_eq!(got.len(), want.len());
    let scale = want.iter().fold(0f64, |m, &w| m.max((w as f64).abs()));
    let diff = got
        .iter()
        .zip(want)
        .fold(0f64, |m, (&g, &w)| m.max((g - w as f64).abs()));
    diff / scale
}

#[test]
fn multistep_lr_matches_pytorch() {
    let fx = Fixture::load("optim");
    let p = fx.floats("sched_multistep", "params");
    let milestones: Vec<usize> = p[2..].iter().map(|&m| m as usize).collect();
    assert_eq!(milestones, [3, 6, 6, 8]);
    let sched = MultiStepLR::new(0.1, milestones, 0.3);
    assert_eq!(p[0], 0.1f32);
    assert_eq!(p[1], 0.3f32);
    let want = fx.floats("sched_multistep", "lr");
    let got: Vec<f64> = (0..want.len()).map(|t| sched.lr_at(t)).collect();
    let err = schedule_error(&got, &want);
    assert!(
        err < 1e-6,
        "MultiStepLR: error {err:e}\n got {got:?}\nwant {want:?}"
    );
}

#[test]
fn linear_decay_matches_spade() {
    let fx = Fixture::load("optim");
    let p = fx.floats("sched_linear", "params");
    let (lr, niter, niter_decay) = (2e-4, 3, 5);
    assert_eq!(p, [lr as f32, niter as f32, niter_decay as f32]);
    for (key, base) in [("lr", lr), ("lr_g", lr / 2.0), ("lr_d", lr * 2.0)] {
        let sched = LinearDecay::new(base, niter, niter_decay);
        let want = fx.floats("sched_linear", key);
        assert_eq!(want.len(), niter + niter_decay);
        let got: Vec<f64> = (0..want.len()).map(|t| sched.lr_at(t)).collect();
        let err = schedule_error(&got, &want);
        assert!(
            err < 1e-6,
            "{key}: error {err:e}\n got {got:?}\nwant {want:?}"
        );
    }
}

#[test]
fn safetensors_from_python_loads_and_our_export_is_byte_identical() {
    let fx = Fixture::load("optim");
    let path = fixtures_dir().join("interop.safetensors");
    let net = Net::new();
    st::load_module(&path, &net).unwrap();
    let state = net.state_dict();
    for n in PARAMS {
        let got = state[n].to_vec().unwrap();
        let want = fx.get("adam", &format!("init.{n}")).to_vec().unwrap();
        assert!(
            got.iter()
                .zip(&want)
                .all(|(a, b)| a.to_bits() == b.to_bits()),
            "{n} differs from the Python-written file"
        );
    }
    // Our export of the same state dict is the file Python's safetensors wrote, byte for byte,
    // so Python reads what tessera writes.
    let meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    let ours = st::to_bytes(&state, Some(&meta)).unwrap();
    let theirs = std::fs::read(&path).unwrap();
    assert!(
        ours == theirs,
        "tessera's safetensors export differs from Python's"
    );
    // And save_module writes exactly that.
    let out =
        std::env::temp_dir().join(format!("tessera-golden-{}.safetensors", std::process::id()));
    st::save_module(&out, &net).unwrap();
    let written = std::fs::read(&out).unwrap();
    std::fs::remove_file(&out).unwrap();
    assert!(
        written == theirs,
        "save_module's file differs from Python's"
    );
}

#[test]
fn safetensors_half_bfloat_and_double_convert_like_pytorch() {
    let path = fixtures_dir().join("interop_dtypes.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let (tensors, meta) = st::from_bytes(&bytes, &path).unwrap();
    assert_eq!(meta.get("format").map(String::as_str), Some("pt"));
    for name in ["half", "bfloat", "double"] {
        let got = &tensors[name];
        let want = &tensors[&format!("{name}_ref")];
        assert_eq!(got.dims(), want.dims(), "{name}");
        let (g, w) = (got.to_vec().unwrap(), want.to_vec().unwrap());
        for (i, (a, b)) in g.iter().zip(&w).enumerate() {
            assert_eq!(a.to_bits(), b.to_bits(), "{name}[{i}]: {a} vs {b}");
        }
    }
}
