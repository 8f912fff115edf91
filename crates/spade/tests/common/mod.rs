//! Shared by the golden tests: the fixture scripts' counter-based generator (see the docstring
//! of tests/fixtures/make_spade_model.py, which this reproduces bit for bit) and summary
//! comparisons.
#![allow(dead_code)]
use tessera_autograd::Var;
use tessera_nn::Module;
use tessera_nn::ModuleExt;
use tessera_spade::{semantic_input, IdMap, ModelConfig};
use tessera_tensor::{Device, Tensor};
use tessera_tests::Fixture;

pub const PROJ_A: u64 = 900_001;
pub const PROJ_B: u64 = 900_002;
pub const WEIGHT_STREAM: u64 = 900_003;

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// 24 random bits for element `i` of `stream`.
pub fn bits(stream: u64, i: usize) -> u64 {
    splitmix64((stream << 32) | i as u64) >> 40
}

/// Exact float32 values in [−1, 1).
pub fn uniform_vec(stream: u64, n: usize) -> Vec<f32> {
    (0..n)
        .map(|i| (bits(stream, i) as f64 / (1u64 << 23) as f64 - 1.0) as f32)
        .collect()
}

pub fn uniform(stream: u64, shape: &[usize]) -> Tensor {
    let n = shape.iter().product();
    Tensor::from_vec(uniform_vec(stream, n), shape.to_vec(), Device::Cpu).unwrap()
}

pub fn labels(stream: u64, n: usize, classes: usize) -> Vec<u32> {
    (0..n)
        .map(|i| ((bits(stream, i) * classes as u64) >> 24) as u32)
        .collect()
}

/// Every parameter and buffer of `module`, filled as the fixture script's `fill_state`.
pub fn fill_state<M: Module + ?Sized>(module: &M, base: u64) {
    let mut state = module.state_dict();
    for (k, (name, t)) in state.iter_mut().enumerate() {
        let stream = base + k as u64;
        let dims = t.dims().to_vec();
        let n: usize = dims.iter().product();
        let values: Vec<f32> = if name.ends_with("num_batches_tracked") {
            vec![0.0; n]
        } else if name.ends_with("weight_u") || name.ends_with("weight_v") {
            let v = uniform_vec(stream, n);
            let norm = v.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
            v.iter().map(|&x| (x as f64 / norm) as f32).collect()
        } else if name.ends_with("running_mean") {
            uniform_vec(stream, n).iter().map(|&x| 0.1 * x).collect()
        } else if name.ends_with("running_var") {
            uniform_vec(stream, n)
                .iter()
                .map(|&x| (1.0 + 0.5 * x as f64) as f32)
                .collect()
        } else if dims.len() >= 2 {
            let fan = (n / dims[0]) as f64;
            uniform_vec(stream, n)
                .iter()
                .map(|&x| (x as f64 / fan.sqrt()) as f32)
                .collect()
        } else {
            uniform_vec(stream, n)
                .iter()
                .map(|&x| (0.1 * x as f64) as f32)
                .collect()
        };
        *t = Tensor::from_vec(values, dims, Device::Cpu).unwrap();
    }
    module.load_state_dict(&state, true).unwrap();
}

/// The conditioning tensor of hash labels (`stream`) and hash instance ids (`stream + 1`, 3
/// ids per 4×4 block, element (i, by, bx) of an [n, h/4, w/4] draw), through the crate's own
/// builder.
pub fn semantics(
    stream: u64,
    n: usize,
    h: usize,
    w: usize,
    classes: usize,
    instances: bool,
) -> Tensor {
    let config = ModelConfig {
        no_instance: !instances,
        ..ModelConfig::base(classes)
    };
    let ids = labels(stream, n * h * w, classes);
    let blocks = labels(stream + 1, n * (h / 4) * (w / 4), 3);
    let inst: Vec<u32> = (0..n * h * w)
        .map(|p| {
            let (i, y, x) = (p / (h * w), p / w % h, p % w);
            blocks[(i * (h / 4) + y / 4) * (w / 4) + x / 4]
        })
        .collect();
    let maps = |v: &[u32], kind: &str| -> Vec<IdMap> {
        (0..n)
            .map(|i| {
                IdMap::new(
                    format!("{kind}{i}"),
                    h,
                    w,
                    v[i * h * w..(i + 1) * h * w].to_vec(),
                )
            })
            .collect()
    };
    let inst_maps = maps(&inst, "instances");
    semantic_input(
        &config,
        &maps(&ids, "labels"),
        instances.then_some(&inst_maps[..]),
    )
    .unwrap()
}

/// Compares tensors with the fixture's summaries and collects every failure.
pub struct Golden {
    pub fixture: Fixture,
    tol: f64,
    checked: usize,
    failures: Vec<String>,
    worst: (f64, String),
}

impl Golden {
    pub fn new(file: &str, tol: f64) -> Self {
        Golden {
            fixture: Fixture::load(file),
            tol,
            checked: 0,
            failures: Vec::new(),
            worst: (0.0, String::new()),
        }
    }

    fn record(&mut self, key: &str, err: f64) {
        self.checked += 1;
        if err.is_nan() || err > self.worst.0 {
            self.worst = (err, key.to_string());
        }
        if err.is_nan() || err > self.tol {
            self.failures
                .push(format!("{key}: relative error {err:.3e} > {:e}", self.tol));
        }
    }

    /// `t` against the summary stored under `key` (full values, or projections and norm).
    pub fn check(&mut self, key: &str, t: &Tensor) {
        let v: Vec<f64> = t.to_vec().unwrap().iter().map(|&x| x as f64).collect();
        if let Some(want) = self.fixture.try_get(key, "full") {
            let want = want.to_vec().unwrap();
            if want.len() != v.len() {
                self.failures.push(format!(
                    "{key}: {} values, expected {}",
                    v.len(),
                    want.len()
                ));
                return;
            }
            let scale = want.iter().fold(1e-6f64, |m, &x| m.max((x as f64).abs()));
            let diff = v
                .iter()
                .zip(&want)
                .fold(0f64, |m, (&a, &b)| m.max((a - b as f64).abs()));
            self.record(key, diff / scale);
            return;
        }
        let (Some(proj), Some(norm)) = (
            self.fixture.try_get(key, "proj"),
            self.fixture.try_get(key, "norm"),
        ) else {
            self.failures.push(format!("{key}: not in the fixture"));
            return;
        };
        let proj = proj.to_vec().unwrap();
        let norm_want = norm.to_vec().unwrap()[0] as f64;
        let norm_got = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        self.record(
            &format!("{key} (norm)"),
            (norm_got - norm_want).abs() / norm_want.max(1e-12),
        );
        for (stream, want) in [PROJ_A, PROJ_B].into_iter().zip(proj) {
            let r = uniform_vec(stream, v.len());
            let got: f64 = v.iter().zip(&r).map(|(a, &b)| a * b as f64).sum();
            let r_norm = r.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
            // Cauchy–Schwarz: |⟨Δ, r⟩| ≤ ‖Δ‖·‖r‖, so this bounds ‖Δ‖ / ‖T‖ from below.
            self.record(
                &format!("{key} (projection {stream})"),
                (got - want as f64).abs() / (norm_want * r_norm).max(1e-12),
            );
        }
    }

    pub fn check_value(&mut self, key: &str, got: f32, want: f32) {
        self.record(
            key,
            (got - want).abs() as f64 / (want.abs() as f64).max(1e-6),
        );
    }

    pub fn finish(self, min_checks: usize) {
        assert!(
            self.checked >= min_checks,
            "only {} comparisons ran, expected at least {min_checks}",
            self.checked
        );
        eprintln!(
            "{} comparisons, worst relative error {:.2e} ({})",
            self.checked, self.worst.0, self.worst.1
        );
        assert!(
            self.failures.is_empty(),
            "{} of {} comparisons failed:\n  {}",
            self.failures.len(),
            self.checked,
            self.failures.join("\n  ")
        );
    }
}

/// The largest entry allowed in a gradient that is zero in exact arithmetic (marked
/// `<key>.zero` in the fixture: conv biases in front of a normalization), where float32 holds
/// rounding noise of sums over every pixel. The other gradients are of order 1e-2 to 10.
pub const ZERO_GRAD_BOUND: f32 = 1e-3;

/// Gradients of `sum(out · uniform(WEIGHT_STREAM))` with respect to `inputs` and every
/// parameter of `module`, checked against `<case>.grad_input.<name>` and `<case>.grad.<param>`
/// (or against [`ZERO_GRAD_BOUND`] where the fixture marks the gradient as zero).
pub fn check_grads<M: Module + ?Sized>(
    golden: &mut Golden,
    case: &str,
    out: &Var,
    module: &M,
    inputs: &[(&str, &Var)],
) {
    let weight = Var::constant(uniform(WEIGHT_STREAM, out.dims()));
    let params = module.named_params();
    let vars: Vec<Var> = params.iter().map(|(_, p)| p.var()).collect();
    let mut wrt: Vec<&Var> = inputs.iter().map(|(_, v)| *v).collect();
    wrt.extend(vars.iter());
    let grads =
        tessera_autograd::grad(&[out], &wrt, Some(std::slice::from_ref(&weight)), false).unwrap();
    let names = inputs
        .iter()
        .map(|(n, _)| format!("{case}.grad_input.{n}"))
        .chain(params.iter().map(|(n, _)| format!("{case}.grad.{n}")));
    for (name, g) in names.zip(&grads) {
        if golden.fixture.try_get(&name, "zero").is_some() {
            let largest = max_abs(g.value());
            assert!(
                largest <= ZERO_GRAD_BOUND,
                "{name}: zero in exact arithmetic, got entries up to {largest}"
            );
        } else {
            golden.check(&name, g.value());
        }
    }
}

pub fn max_abs(t: &Tensor) -> f32 {
    t.to_vec().unwrap().iter().fold(0f32, |m, v| m.max(v.abs()))
}

/// Every buffer of `module` against `<key>.<buffer>`.
pub fn check_buffers<M: Module + ?Sized>(golden: &mut Golden, key: &str, module: &M) {
    for (name, b) in module.named_buffers() {
        golden.check(&format!("{key}.{name}"), &b.get());
    }
}
