//! Adam and the schedules: the update against a float64 reference of PyTorch's algorithm,
//! frozen and gradient-less parameters, typed errors, and the state export/import.
use tessera_autograd::{grad, Var};
use tessera_nn::optim::{Adam, AdamConfig, LinearDecay, MultiStepLR, Optimizer, OptimizerState};
use tessera_nn::{Error, Param};
use tessera_tensor::{Device, Tensor};

fn t(v: &[f32]) -> Tensor {
    Tensor::from_slice(v, [v.len()], Device::Cpu).unwrap()
}

fn vals(p: &Param) -> Vec<f32> {
    p.tensor().to_vec().unwrap()
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.to_vec().unwrap().iter().map(|v| v.to_bits()).collect()
}

/// torch.optim.Adam's single-tensor algorithm in f64, for one parameter.
struct Reference {
    p: Vec<f64>,
    m: Vec<f64>,
    v: Vec<f64>,
    step: i32,
}

impl Reference {
    fn step(&mut self, c: &AdamConfig, g: &[f64]) {
        self.step += 1;
        let (b1, b2) = c.betas;
        let bc1 = 1.0 - b1.powi(self.step);
        let bc2 = 1.0 - b2.powi(self.step);
        for i in 0..self.p.len() {
            let g = g[i] + c.weight_decay * self.p[i];
            self.m[i] = b1 * self.m[i] + (1.0 - b1) * g;
            self.v[i] = b2 * self.v[i] + (1.0 - b2) * g * g;
            let denom = self.v[i].sqrt() / bc2.sqrt() + c.eps;
            self.p[i] -= c.lr / bc1 * self.m[i] / denom;
        }
    }
}

#[test]
fn adam_follows_pytorchs_update_rule() {
    for config in [
        AdamConfig::new(1e-2),
        AdamConfig::new(5e-3).betas(0.5, 0.999).weight_decay(0.3),
        AdamConfig::new(2e-2).betas(0.0, 0.9).eps(1e-3),
    ] {
        let init = [0.5f32, -1.25, 2.0, 0.0, 3e-3];
        let p = Param::new(t(&init));
        let mut opt = Adam::new(vec![("w".into(), p.clone())], config).unwrap();
        let mut r = Reference {
            p: init.iter().map(|&v| v as f64).collect(),
            m: vec![0.0; 5],
            v: vec![0.0; 5],
            step: 0,
        };
        for k in 0..20 {
            // A gradient that changes sign and scale over the steps.
            let g: Vec<f32> = (0..5)
                .map(|i| ((i as f32 + 1.0) * (k as f32 * 0.7 + i as f32)).sin() * (1.0 + i as f32))
                .collect();
            opt.step(&[t(&g)]).unwrap();
            r.step(&config, &g.iter().map(|&v| v as f64).collect::<Vec<_>>());
            for (i, (&got, &want)) in vals(&p).iter().zip(&r.p).enumerate() {
                assert!(
                    (got as f64 - want).abs() <= 1e-6 * (1.0 + want.abs()),
                    "{config:?} step {k} [{i}]: {got} vs {want}"
                );
            }
        }
        assert_eq!(opt.step_count("w"), Some(20));
        let state = opt.state();
        let m = state.tensors["w.exp_avg"].to_vec().unwrap();
        for (got, want) in m.iter().zip(&r.m) {
            assert!((*got as f64 - want).abs() <= 1e-5 * (1.0 + want.abs()));
        }
    }
}

#[test]
fn frozen_parameters_are_never_touched() {
    let a = Param::new(t(&[1.0, 2.0]));
    let b = Param::new(t(&[3.0, 4.0]));
    b.set_requires_grad(false);
    let mut opt = Adam::new(
        vec![("a".into(), a.clone()), ("b".into(), b.clone())],
        AdamConfig::new(0.1),
    )
    .unwrap();
    // Explicit gradients: the frozen entry is ignored.
    opt.step(&[t(&[1.0, 1.0]), t(&[1.0, 1.0])]).unwrap();
    assert_eq!(vals(&b), [3.0, 4.0]);
    assert_ne!(vals(&a), [1.0, 2.0]);
    // Through backward: the frozen parameter is a constant in the graph.
    let loss = a.var().mul(&b.var()).unwrap().sum_all().unwrap();
    loss.backward().unwrap();
    assert!(b.grad().is_none());
    opt.step_from_backward().unwrap();
    assert_eq!(vals(&b), [3.0, 4.0]);
    assert_eq!(opt.step_count("a"), Some(2));
    assert_eq!(opt.step_count("b"), Some(0));
    assert!(!opt.state().tensors.contains_key("b.exp_avg"));
}

#[test]
fn step_from_backward_skips_parameters_without_a_gradient_and_lets_gradients_go() {
    let used = Param::new(t(&[1.0, -1.0]));
    let unused = Param::new(t(&[5.0]));
    let mut opt = Adam::new(
        vec![
            ("used".into(), used.clone()),
            ("unused".into(), unused.clone()),
        ],
        AdamConfig::new(0.01),
    )
    .unwrap();
    let loss = used.var().sqr().unwrap().sum_all().unwrap();
    loss.backward().unwrap();
    assert!(used.grad().is_some());
    assert!(unused.grad().is_none());
    opt.step_from_backward().unwrap();
    assert_eq!(opt.step_count("used"), Some(1));
    assert_eq!(opt.step_count("unused"), Some(0));
    assert_eq!(vals(&unused), [5.0]);
    // The step installed fresh leaves: no gradient left to accumulate into the next step.
    assert!(used.grad().is_none());
    // step_partial with None skips too.
    opt.step_partial(&[None, Some(t(&[1.0]))]).unwrap();
    assert_eq!(opt.step_count("used"), Some(1));
    assert_eq!(opt.step_count("unused"), Some(1));
    // zero_grad drops an accumulated gradient.
    let loss = used.var().sum_all().unwrap();
    loss.backward().unwrap();
    opt.zero_grad();
    assert!(used.grad().is_none());
}

#[test]
fn explicit_gradients_from_grad_over_vars() {
    let w = Param::new(t(&[0.5, -0.5, 2.0]));
    let mut opt = Adam::new(vec![("w".into(), w.clone())], AdamConfig::new(0.1)).unwrap();
    let vars = opt.vars();
    let loss = vars[0].sqr().unwrap().sum_all().unwrap();
    let g: Vec<Tensor> = grad(&[&loss], &[&vars[0]], None, false)
        .unwrap()
        .iter()
        .map(Var::value)
        .cloned()
        .collect();
    opt.step(&g).unwrap();
    // The first Adam step moves every coordinate by lr against the sign of its gradient.
    let got = vals(&w);
    for (g, w0) in got.iter().zip([0.5f32, -0.5, 2.0]) {
        assert!((g - (w0 - 0.1 * w0.signum())).abs() < 1e-6, "{got:?}");
    }
}

#[test]
fn bad_input_is_a_typed_error_and_changes_nothing() {
    let a = Param::new(t(&[1.0, 2.0]));
    let b = Param::new(t(&[3.0]));
    let named = vec![("a".to_string(), a.clone()), ("b".to_string(), b.clone())];
    let mut opt = Adam::new(named.clone(), AdamConfig::new(0.1)).unwrap();
    let e = opt.step(&[t(&[1.0, 1.0])]).unwrap_err();
    assert!(
        e.to_string().contains("1 gradients for 2 parameters"),
        "{e}"
    );
    // A mis-shaped gradient for b: a is not updated either.
    let e = opt.step(&[t(&[1.0, 1.0]), t(&[1.0, 1.0])]).unwrap_err();
    assert!(e.to_string().contains("gradient of b"), "{e}");
    assert_eq!(vals(&a), [1.0, 2.0]);
    assert_eq!(opt.step_count("a"), Some(0));

    for (config, what) in [
        (AdamConfig::new(-1.0), "learning rate"),
        (AdamConfig::new(0.1).betas(1.0, 0.9), "betas"),
        (AdamConfig::new(0.1).betas(0.9, -0.1), "betas"),
        (AdamConfig::new(0.1).eps(f64::NAN), "eps"),
        (AdamConfig::new(0.1).weight_decay(-1.0), "weight_decay"),
    ] {
        let e = Adam::new(named.clone(), config).unwrap_err();
        assert!(e.to_string().contains(what), "{config:?}: {e}");
    }
    let twice = vec![("a".to_string(), a.clone()), ("a".to_string(), b.clone())];
    assert!(Adam::new(twice, AdamConfig::default()).is_err());
    let same = vec![("a".to_string(), a.clone()), ("c".to_string(), a.clone())];
    let e = Adam::new(same, AdamConfig::default()).unwrap_err();
    assert!(e.to_string().contains("same parameter"), "{e}");
}

#[test]
fn learning_rate_and_schedules() {
    let p = Param::new(t(&[1.0]));
    let mut opt = Adam::new(vec![("p".into(), p)], AdamConfig::new(0.2)).unwrap();
    assert_eq!(opt.lr(), 0.2);
    Optimizer::set_lr(&mut opt, 0.05);
    assert_eq!(Optimizer::lr(&opt), 0.05);
    assert_eq!(opt.lr(), 0.05);
    assert_eq!(opt.config().lr, 0.05);
    let ms = MultiStepLR::new(0.2, [2, 5], 0.1);
    ms.apply(&mut opt, 3);
    assert!((opt.lr() - 0.02).abs() < 1e-15);
    ms.apply(&mut opt, 0);
    assert_eq!(opt.lr(), 0.2);
    let ld = LinearDecay::new(0.2, 10, 4);
    ld.apply(&mut opt, 12);
    assert!((opt.lr() - 0.1).abs() < 1e-15);
    ld.apply(&mut opt, 100);
    assert_eq!(opt.lr(), 0.0);
}

fn two_params() -> (Param, Param, Vec<(String, Param)>) {
    let a = Param::new(Tensor::from_vec(vec![0.1, 0.2, 0.3, 0.4], [2, 2], Device::Cpu).unwrap());
    let b = Param::new(t(&[-1.0, 1.0, 0.5]));
    let named = vec![
        ("net.a".to_string(), a.clone()),
        ("net.b".to_string(), b.clone()),
    ];
    (a, b, named)
}

fn grads_for(k: usize) -> Vec<Tensor> {
    let s = k as f32 + 1.0;
    vec![
        Tensor::from_vec(vec![0.3 * s, -0.1, 0.2 / s, 1.0], [2, 2], Device::Cpu).unwrap(),
        t(&[s.sin(), -0.5, 0.25 * s]),
    ]
}

#[test]
fn state_round_trip_resumes_bit_identically() {
    let config = AdamConfig::new(3e-2).betas(0.5, 0.99).weight_decay(0.01);
    let (a, b, named) = two_params();
    let mut opt = Adam::new(named, config).unwrap();
    for k in 0..3 {
        opt.step(&grads_for(k)).unwrap();
    }
    let state = opt.state();
    assert_eq!(state.kind, "adam");
    assert_eq!(
        state.tensors.keys().collect::<Vec<_>>(),
        [
            "net.a.exp_avg",
            "net.a.exp_avg_sq",
            "net.b.exp_avg",
            "net.b.exp_avg_sq"
        ]
    );
    assert_eq!(state.counters["net.a.step"], 3);
    assert_eq!(state.hyper["beta1"], 0.5);

    // A second optimizer over copies of the parameters, from default hyperparameters.
    let a2 = Param::new(a.tensor());
    let b2 = Param::new(b.tensor());
    let mut resumed = Adam::new(
        vec![("net.a".into(), a2.clone()), ("net.b".into(), b2.clone())],
        AdamConfig::default(),
    )
    .unwrap();
    resumed.load_state(&state).unwrap();
    assert_eq!(*resumed.config(), config);
    for k in 3..6 {
        opt.step(&grads_for(k)).unwrap();
        resumed.step(&grads_for(k)).unwrap();
        assert_eq!(bits(&a.tensor()), bits(&a2.tensor()));
        assert_eq!(bits(&b.tensor()), bits(&b2.tensor()));
    }
}

#[test]
fn bad_state_is_reported_in_one_error_and_changes_nothing() {
    let (_, _, named) = two_params();
    let mut source = Adam::new(named.clone(), AdamConfig::new(0.1)).unwrap();
    source.step(&grads_for(0)).unwrap();
    let good = source.state();

    let mut bad = good.clone();
    bad.tensors.insert(
        "net.a.exp_avg".into(),
        Tensor::zeros([4], Device::Cpu).unwrap(),
    );
    bad.tensors.remove("net.b.exp_avg_sq");
    bad.tensors.insert(
        "ghost.exp_avg".into(),
        Tensor::zeros([1], Device::Cpu).unwrap(),
    );
    bad.counters.insert("ghost.step".into(), 1);

    let mut target = Adam::new(named, AdamConfig::new(0.5)).unwrap();
    match target.load_state(&bad).unwrap_err() {
        Error::StateDict {
            missing,
            unexpected,
            mismatched,
        } => {
            assert_eq!(missing, ["net.b.exp_avg_sq"]);
            assert_eq!(unexpected, ["ghost.exp_avg", "ghost.step"]);
            assert_eq!(mismatched.len(), 1);
            assert_eq!(mismatched[0].0, "net.a.exp_avg");
        }
        e => panic!("unexpected error {e}"),
    }
    assert_eq!(target.lr(), 0.5);
    assert_eq!(target.step_count("net.a"), Some(0));

    let mut other = good.clone();
    other.kind = "sgd".into();
    assert!(target.load_state(&other).is_err());
    let mut no_lr = good.clone();
    no_lr.hyper.remove("lr");
    let e = target.load_state(&no_lr).unwrap_err();
    assert!(e.to_string().contains("lr"), "{e}");
    // An empty state (an optimizer that never stepped) is fine.
    let mut empty = good.clone();
    empty.tensors.clear();
    empty.counters.clear();
    target.load_state(&empty).unwrap();
    assert_eq!(target.lr(), 0.1);
    let _ = OptimizerState::default();
}
