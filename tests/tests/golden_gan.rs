//! Golden tests of tessera-gan (and max_pool2d) against PyTorch: `tests/fixtures/gan.safetensors`,
//! written by `tests/fixtures/make_gan_fixtures.py` (whose comments document every key).
//!
//! Each test rebuilds a fixture's computation with tessera-gan's losses and `Var` ops, compares
//! the value and the gradients with respect to the stored inputs (for the gradient penalties:
//! the critic's parameters, `real` and `fake`), all within `tessera_tests::TOL` (1e-4) relative
//! error. Run with `--nocapture` to see the worst error of each test.
use std::collections::HashMap;

use tessera_autograd::{grad, Var};
use tessera_gan::{self as gan, Vgg19, Vgg19Config, VggPerceptualLoss};
use tessera_tensor::{Conv2dParams, MaxPool2dParams, Pool2dParams, Tensor};
use tessera_tests::{max_abs, Fixture, Report};

type GanResult<T> = tessera_gan::Result<T>;

fn run_case(report: &mut Report, case: &str, f: impl FnOnce(&mut Report) -> GanResult<()>) {
    if let Err(e) = f(report) {
        report.fail(case, format!("tessera returned an error: {e}"));
    }
}

/// Compares a scalar loss with `<case>.value` and its gradients with `<case>.g<name>`.
fn check_loss(
    r: &mut Report,
    fx: &Fixture,
    case: &str,
    value: &Var,
    inputs: &[(&str, &Var)],
) -> GanResult<()> {
    r.check(
        &format!("{case} value"),
        &value.value().reshape([1])?,
        &fx.get(case, "value"),
    );
    let vars: Vec<&Var> = inputs.iter().map(|(_, v)| *v).collect();
    let grads = grad(&[value], &vars, None, false)?;
    for ((name, _), g) in inputs.iter().zip(&grads) {
        r.check(
            &format!("{case} g{name}"),
            g.value(),
            &fx.get(case, &format!("g{name}")),
        );
    }
    Ok(())
}

#[test]
fn adversarial_losses_match_pytorch() {
    let fx = Fixture::load("gan");
    let mut report = Report::new();
    type Two = fn(&Var, &Var) -> GanResult<Var>;
    type One = fn(&Var) -> GanResult<Var>;
    let two: [(&str, Two); 4] = [
        ("loss.wgan_d", gan::wgan_critic_loss),
        ("loss.hinge_d", gan::hinge_d_loss),
        ("loss.bce_d", gan::ns_d_loss),
        ("loss.lsgan_d", gan::lsgan_d_loss),
    ];
    for (case, f) in two {
        run_case(&mut report, case, |r| {
            let (real, fake) = (fx.param(case, "d_real"), fx.param(case, "d_fake"));
            let value = f(&real, &fake)?;
            check_loss(
                r,
                &fx,
                case,
                &value,
                &[("d_real", &real), ("d_fake", &fake)],
            )
        });
    }
    let one: [(&str, One); 4] = [
        ("loss.wgan_g", gan::wgan_generator_loss),
        ("loss.hinge_g", gan::hinge_g_loss),
        ("loss.bce_g", gan::ns_g_loss),
        ("loss.lsgan_g", gan::lsgan_g_loss),
    ];
    for (case, f) in one {
        run_case(&mut report, case, |r| {
            let fake = fx.param(case, "d_fake");
            let value = f(&fake)?;
            check_loss(r, &fx, case, &value, &[("d_fake", &fake)])
        });
    }
    run_case(&mut report, "hinge terms", |r| {
        let case = "loss.hinge_d";
        let real_term = gan::hinge_d_real_loss(&fx.param(case, "d_real"))?;
        let fake_term = gan::hinge_d_fake_loss(&fx.param(case, "d_fake"))?;
        r.check(
            "hinge real term",
            &real_term.value().reshape([1])?,
            &fx.get(case, "real_term"),
        );
        r.check(
            "hinge fake term",
            &fake_term.value().reshape([1])?,
            &fx.get(case, "fake_term"),
        );
        Ok(())
    });
    report.finish(4 * 3 + 4 * 2 + 2);
}

#[test]
fn reconstruction_losses_match_pytorch() {
    let fx = Fixture::load("gan");
    let mut report = Report::new();
    for (case, f) in [
        ("loss.l1", gan::l1_loss as fn(&Var, &Var) -> GanResult<Var>),
        ("loss.mse", gan::mse_loss),
    ] {
        run_case(&mut report, case, |r| {
            let (x, y) = (fx.param(case, "x"), fx.param(case, "y"));
            let value = f(&x, &y)?;
            check_loss(r, &fx, case, &value, &[("x", &x), ("y", &y)])
        });
    }
    run_case(&mut report, "loss.kl", |r| {
        let case = "loss.kl";
        let (mu, logvar) = (fx.param(case, "mu"), fx.param(case, "logvar"));
        let value = gan::kl_divergence(&mu, &logvar)?;
        check_loss(r, &fx, case, &value, &[("mu", &mu), ("logvar", &logvar)])
    });
    run_case(&mut report, "loss.fm", |r| {
        let case = "loss.fm";
        let lambda = fx.floats(case, "params")[0];
        let mut fake = Vec::new();
        let mut real = Vec::new();
        let mut names = Vec::new();
        for i in 0..2 {
            let (mut f, mut re) = (Vec::new(), Vec::new());
            for j in 0..3 {
                f.push(fx.param(case, &format!("fake_{i}_{j}")));
                re.push(fx.param(case, &format!("real_{i}_{j}")));
                names.push(format!("fake_{i}_{j}"));
            }
            fake.push(f);
            real.push(re);
        }
        let value = gan::feature_matching_loss(&fake, &real, lambda)?;
        let flat: Vec<&Var> = fake.iter().flatten().collect();
        let inputs: Vec<(&str, &Var)> = names.iter().map(|n| n.as_str()).zip(flat).collect();
        check_loss(r, &fx, case, &value, &inputs)?;
        // The real features are detached: no gradient reaches them.
        let g = grad(&[&value], &[&real[0][0]], None, false)?;
        assert_eq!(max_abs(g[0].value()), 0.0, "feature matching reached real");
        Ok(())
    });
    report.finish(3 * 2 + 3 + 1 + 6);
}

// ---- gradient penalties ----

const EPS: f32 = 1e-5;
const SLOPE: f32 = 0.2;

/// Batch norm in training mode composed from Var ops: batch statistics over (N, H, W), biased
/// variance, eps 1e-5, affine.
fn batch_norm_train(h: &Var, gamma: &Var, beta: &Var) -> GanResult<Var> {
    let c = h.dims()[1];
    let mean = h.mean(&[0, 2, 3], true)?;
    let var = h.var(&[0, 2, 3], false, true)?;
    Ok(h.sub(&mean)?
        .mul(&var.add_scalar(EPS)?.rsqrt()?)?
        .mul(&gamma.reshape([1, c, 1, 1])?)?
        .add(&beta.reshape([1, c, 1, 1])?)?)
}

/// Instance norm without affine: statistics per sample and channel over (H, W).
fn instance_norm(h: &Var) -> GanResult<Var> {
    let mean = h.mean(&[2, 3], true)?;
    let var = h.var(&[2, 3], false, true)?;
    Ok(h.sub(&mean)?.mul(&var.add_scalar(EPS)?.rsqrt()?)?)
}

/// `v / max(‖v‖₂, 1e-12)` for a column vector (no graph).
fn normalize(v: &Tensor) -> GanResult<Tensor> {
    let norm = v.sqr()?.sum_all()?.sqrt()?.reshape([1, 1])?;
    let floor = Tensor::full(1e-12, [1, 1], v.device())?;
    Ok(v.div(&norm.maximum(&floor)?)?)
}

/// σ = uᵀ W v with u, v from one power iteration from `u0` (both constants), as a Var in W.
fn spectral_sigma(w: &Var, u0: &Tensor) -> GanResult<Var> {
    let out = w.dims()[0];
    let k = w.value().numel() / out;
    let w_mat = w.value().reshape([out, k])?;
    let v = normalize(&w_mat.transpose(0, 1)?.matmul(&u0.reshape([out, 1])?)?)?;
    let u = normalize(&w_mat.matmul(&v)?)?;
    Ok(w.reshape([out, k])?
        .matmul(&Var::constant(v))?
        .mul(&Var::constant(u))?
        .sum_all()?)
}

/// The critic of a gp case and its parameters (name, var), by `params[0]`.
struct CriticCase {
    params: Vec<(String, Var)>,
    spade: bool,
    u0: Option<Tensor>,
}

impl CriticCase {
    fn load(fx: &Fixture, case: &str) -> CriticCase {
        let spade = fx.usizes(case, "params")[0] == 1;
        let names: &[&str] = if spade {
            &["w"]
        } else {
            &["w1", "b1", "gamma", "beta", "w2", "b2"]
        };
        CriticCase {
            params: names
                .iter()
                .map(|n| (n.to_string(), fx.param(case, n)))
                .collect(),
            spade,
            u0: spade.then(|| fx.get(case, "u0")),
        }
    }

    fn p(&self) -> HashMap<&str, &Var> {
        self.params.iter().map(|(n, v)| (n.as_str(), v)).collect()
    }

    fn forward(&self, x: &Var) -> GanResult<Var> {
        let p = self.p();
        if self.spade {
            let w = p["w"];
            let sigma = spectral_sigma(w, self.u0.as_ref().expect("u0"))?;
            let w_sn = w.div(&sigma.reshape([1, 1, 1, 1])?)?;
            let h = x.conv2d(&w_sn, None, Conv2dParams::new(2, 2, 1))?;
            let h = instance_norm(&h)?.leaky_relu(SLOPE)?;
            Ok(h.avg_pool2d(Pool2dParams {
                kernel: [3, 3],
                stride: [2, 2],
                padding: [1, 1],
                count_include_pad: false,
            })?)
        } else {
            let h = x.conv2d(p["w1"], Some(p["b1"]), Conv2dParams::default())?;
            let h = batch_norm_train(&h, p["gamma"], p["beta"])?.leaky_relu(SLOPE)?;
            Ok(h.conv2d(p["w2"], Some(p["b2"]), Conv2dParams::default())?)
        }
    }
}

#[test]
fn gradient_penalties_match_pytorch() {
    let fx = Fixture::load("gan");
    let mut report = Report::new();
    let cases = fx.cases("gp.");
    assert_eq!(cases.len(), 6, "gp cases: {cases:?}");
    for case in &cases {
        run_case(&mut report, case, |r| {
            let critic = CriticCase::load(&fx, case);
            let per_pixel = fx.usizes(case, "params")[1] == 1;
            let (real, fake) = (fx.param(case, "real"), fx.param(case, "fake"));
            let alpha = fx.get(case, "alpha");
            let lambda = fx.floats(case, "lambda")[0];
            if let Some(u0) = &critic.u0 {
                let sigma = spectral_sigma(critic.p()["w"], u0)?;
                r.check(
                    &format!("{case} sigma"),
                    &sigma.value().reshape([1])?,
                    &fx.get(case, "sigma"),
                );
            }
            // The critic's output at x̂ (a check of the critic composition itself).
            let a = Var::constant(alpha.clone());
            let one_minus = Var::constant(alpha.affine(-1.0, 1.0)?);
            let xhat = real.mul(&a)?.add(&fake.mul(&one_minus)?)?;
            r.check(
                &format!("{case} d"),
                critic.forward(&xhat)?.value(),
                &fx.get(case, "d"),
            );
            let f = |x: &Var| critic.forward(x);
            let value = if per_pixel {
                gan::singan_gradient_penalty(&f, &real, &fake, &alpha, lambda)?
            } else {
                gan::gradient_penalty(&f, &real, &fake, &alpha, lambda)?
            };
            r.check(
                &format!("{case} value"),
                &value.value().reshape([1])?,
                &fx.get(case, "value"),
            );
            let mut inputs: Vec<(&str, &Var)> = vec![("real", &real), ("fake", &fake)];
            inputs.extend(critic.params.iter().map(|(n, v)| (n.as_str(), v)));
            let vars: Vec<&Var> = inputs.iter().map(|(_, v)| *v).collect();
            let grads = grad(&[&value], &vars, None, false)?;
            // Some parameter gradients are zero in exact arithmetic (b1: removed by BN's mean;
            // b2: does not reach ∂D/∂x̂; beta: only moves the piecewise-constant LeakyReLU mask):
            // what PyTorch stores there is rounding noise, compared at the scale of the weights'
            // gradients.
            let scale = ["gw1", "gw2", "ggamma", "gw"]
                .iter()
                .filter_map(|n| fx.try_get(case, &n[1..]).map(|_| max_abs(&fx.get(case, n))))
                .fold(0f64, f64::max);
            for ((name, _), g) in inputs.iter().zip(&grads) {
                let want = fx.get(case, &format!("g{name}"));
                let what = format!("{case} g{name}");
                if matches!(*name, "b1" | "b2" | "beta") {
                    r.check_scaled(&what, g.value(), &want, scale);
                } else {
                    r.check(&what, g.value(), &want);
                }
            }
            Ok(())
        });
    }
    // Per case: d, value, real, fake, and 6 (SinGAN) or 1 + sigma (SPADE) parameter checks.
    report.finish(4 * (4 + 6) + 2 * (4 + 2));
}

// ---- max pooling ----

#[test]
fn max_pool2d_matches_pytorch() {
    let fx = Fixture::load("gan");
    let mut report = Report::new();
    let cases = fx.cases("maxpool.");
    assert_eq!(cases.len(), 4, "maxpool cases: {cases:?}");
    for case in &cases {
        run_case(&mut report, case, |r| {
            let q = fx.usizes(case, "params");
            let p = MaxPool2dParams {
                kernel: [q[0], q[1]],
                stride: [q[2], q[3]],
                padding: [q[4], q[5]],
                dilation: [q[6], q[7]],
            };
            let x = fx.param(case, "x");
            let y = x.max_pool2d(p)?;
            r.check(&format!("{case} y"), y.value(), &fx.get(case, "y"));
            let wy = fx.param(case, "wy");
            let gx = grad(&[&y], &[&x], Some(std::slice::from_ref(&wy)), true)?.remove(0);
            r.check(&format!("{case} gx"), gx.value(), &fx.get(case, "gx"));
            // Second order: d/dwy Σ v·gx is the gather of v at the argmax positions.
            let s = gx.mul(&fx.constant(case, "v"))?.sum_all()?;
            let ggwy = grad(&[&s], &[&wy], None, false)?.remove(0);
            r.check(&format!("{case} ggwy"), ggwy.value(), &fx.get(case, "ggwy"));
            Ok(())
        });
    }
    report.finish(4 * 3);
}

// ---- VGG19 perceptual loss ----

/// The fixture's VGG weights as a safetensors file with torchvision's names.
fn vgg_weights_file(fx: &Fixture, config: Vgg19Config) -> std::path::PathBuf {
    use safetensors::tensor::{Dtype, TensorView};
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = config
        .required_tensors()
        .into_iter()
        .map(|(name, shape)| {
            let (layer, kind) = name.rsplit_once('.').expect("dotted name");
            let t = fx.get(&format!("vgg.{layer}"), kind);
            assert_eq!(t.dims(), shape.as_slice(), "{name}");
            let bytes = t
                .to_vec()
                .expect("to_vec")
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            (name, shape, bytes)
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).expect("view"),
            )
        })
        .collect();
    let bytes = safetensors::serialize(views, None).expect("serialize");
    let path = std::env::temp_dir().join(format!(
        "tessera_golden_vgg_{}.safetensors",
        std::process::id()
    ));
    std::fs::write(&path, bytes).expect("write the VGG weight file");
    path
}

#[test]
fn vgg_perceptual_loss_matches_pytorch() {
    let fx = Fixture::load("gan");
    let mut report = Report::new();
    let case = "vgg.loss";
    let widths = fx.usizes(case, "widths");
    let config = Vgg19Config {
        widths: [widths[0], widths[1], widths[2], widths[3], widths[4]],
    };
    let path = vgg_weights_file(&fx, config);
    let loaded = Vgg19::from_safetensors_with(&path, config);
    let _ = std::fs::remove_file(&path);
    run_case(&mut report, case, |r| {
        let loss = VggPerceptualLoss::new(loaded?);
        let (x, y) = (fx.param(case, "x"), fx.constant(case, "y"));
        let feats = loss.vgg.features(&x)?;
        for (k, f) in feats.iter().enumerate() {
            r.check(
                &format!("{case} f{}", k + 1),
                f.value(),
                &fx.get(case, &format!("f{}", k + 1)),
            );
        }
        let value = loss.loss(&x, &y)?;
        check_loss(r, &fx, case, &value, &[("x", &x)])
    });
    report.finish(5 + 2);
}
