//! Golden tests: tessera against PyTorch references stored in `tests/fixtures/*.safetensors`
//! (written by `tests/fixtures/make_fixtures.py`, whose comments document every key).
//!
//! Each test rebuilds a fixture's computation with `Var` ops and `tessera_autograd::grad`,
//! then compares the forward value, the gradients of `sum(wy · y)` for the stored weight `wy`
//! and, where the fixture has them, gradients of gradients. Every comparison uses the relative
//! error of `tessera_tests::rel_error` with tolerance `tessera_tests::TOL` (1e-4).
use tessera_autograd::{grad, Result, Var};
use tessera_tensor::{Conv2dParams, Interpolation, NormModulation, PadMode, Pool2dParams, Tensor};
use tessera_tests::{max_abs, Fixture, Report};

/// Gradients of `sum(w · y)` with respect to `inputs`.
fn weighted_grads(y: &Var, inputs: &[&Var], w: &Tensor, create_graph: bool) -> Result<Vec<Var>> {
    grad(
        &[y],
        inputs,
        Some(&[Var::constant(w.clone())]),
        create_graph,
    )
}

/// Checks d/d(input) sum(wy · y) against `<case>.g<name>` for each named input.
fn check_input_grads(
    r: &mut Report,
    fx: &Fixture,
    case: &str,
    y: &Var,
    inputs: &[(&str, Var)],
) -> Result<()> {
    let vars: Vec<&Var> = inputs.iter().map(|(_, v)| v).collect();
    let g = weighted_grads(y, &vars, &fx.get(case, "wy"), false)?;
    for ((n, _), g) in inputs.iter().zip(&g) {
        r.check(
            &format!("{case} g{n}"),
            g.value(),
            &fx.get(case, &format!("g{n}")),
        );
    }
    Ok(())
}

/// Runs one case, turning an error from tessera into a reported failure.
fn run_case(report: &mut Report, case: &str, f: impl FnOnce(&mut Report) -> Result<()>) {
    if let Err(e) = f(report) {
        report.fail(case, format!("tessera returned an error: {e}"));
    }
}

fn hw(t: &Tensor) -> [usize; 2] {
    [t.dims()[2], t.dims()[3]]
}

// ---- convolution ----

/// `<case>.params` = [stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, has_bias].
fn conv_params(fx: &Fixture, case: &str) -> (Conv2dParams, bool) {
    let p = fx.usizes(case, "params");
    (
        Conv2dParams {
            stride: [p[0], p[1]],
            padding: [p[2], p[3]],
            dilation: [p[4], p[5]],
        },
        p[6] == 1,
    )
}

#[test]
fn conv2d_forward_and_gradients() {
    let fx = Fixture::load("conv");
    let mut report = Report::new();
    let cases: Vec<String> = fx.cases("conv.c");
    assert_eq!(cases.len(), 10, "conv cases: {cases:?}");
    for case in &cases {
        run_case(&mut report, case, |r| {
            let (p, has_bias) = conv_params(&fx, case);
            let x = fx.param(case, "x");
            let w = fx.param(case, "w");
            let b = has_bias.then(|| fx.param(case, "b"));
            let y = x.conv2d(&w, b.as_ref(), p)?;
            r.check(&format!("{case} y"), y.value(), &fx.get(case, "y"));
            let mut inputs = vec![&x, &w];
            inputs.extend(b.as_ref());
            let g = weighted_grads(&y, &inputs, &fx.get(case, "wy"), false)?;
            r.check(&format!("{case} gx"), g[0].value(), &fx.get(case, "gx"));
            r.check(&format!("{case} gw"), g[1].value(), &fx.get(case, "gw"));
            if has_bias {
                r.check(&format!("{case} gb"), g[2].value(), &fx.get(case, "gb"));
            }
            Ok(())
        });
    }
    report.finish(10 * 3 + 7);
}

#[test]
fn conv2d_input_and_weight_grad_ops() {
    let fx = Fixture::load("conv");
    let mut report = Report::new();
    for case in &fx.cases("conv.c") {
        run_case(&mut report, case, |r| {
            let (p, _) = conv_params(&fx, case);
            let x = fx.param(case, "x");
            let w = fx.param(case, "w");
            let go = fx.param(case, "go");

            // conv2d_input_grad (torch.nn.grad.conv2d_input), including sizes that need
            // PyTorch's output_padding, and the op's own gradients.
            let ig = go.conv2d_input_grad(&w, hw(x.value()), p)?;
            r.check(&format!("{case} ig"), ig.value(), &fx.get(case, "ig"));
            let g = weighted_grads(&ig, &[&go, &w], &fx.get(case, "wig"), false)?;
            r.check(
                &format!("{case} ig_go"),
                g[0].value(),
                &fx.get(case, "ig_go"),
            );
            r.check(&format!("{case} ig_w"), g[1].value(), &fx.get(case, "ig_w"));

            // conv2d_weight_grad (torch.nn.grad.conv2d_weight) and its gradients.
            let wg = x.conv2d_weight_grad(&go, hw(w.value()), p)?;
            r.check(&format!("{case} wg"), wg.value(), &fx.get(case, "wg"));
            let g = weighted_grads(&wg, &[&x, &go], &fx.get(case, "wwg"), false)?;
            r.check(&format!("{case} wg_x"), g[0].value(), &fx.get(case, "wg_x"));
            r.check(
                &format!("{case} wg_go"),
                g[1].value(),
                &fx.get(case, "wg_go"),
            );
            Ok(())
        });
    }
    report.finish(10 * 6);
}

#[test]
fn conv2d_grad_of_grad_linear() {
    // gx = d/dx sum(u · conv2d(x, w, b)) with create_graph; L = sum(v · gx²); dL/dw.
    let fx = Fixture::load("conv");
    let case = "conv.gg_lin";
    let mut report = Report::new();
    run_case(&mut report, case, |r| {
        let (p, _) = conv_params(&fx, case);
        let (x, w, b) = (
            fx.param(case, "x"),
            fx.param(case, "w"),
            fx.param(case, "b"),
        );
        let y = x.conv2d(&w, Some(&b), p)?;
        let gx = weighted_grads(&y, &[&x], &fx.get(case, "u"), true)?.remove(0);
        r.check("gg_lin gx", gx.value(), &fx.get(case, "gx"));
        let loss = fx.constant(case, "v").mul(&gx)?.mul(&gx)?.sum_all()?;
        r.check("gg_lin loss", loss.value(), &fx.get(case, "loss"));
        let g = grad(&[&loss], &[&w], None, false)?;
        r.check("gg_lin ggw", g[0].value(), &fx.get(case, "ggw"));
        Ok(())
    });
    report.finish(3);
}

#[test]
fn conv2d_grad_of_grad_through_tanh() {
    // y = tanh(conv2d(x, w, b)); gx, gw = d/d(x, w) sum(u · y) with create_graph;
    // L = sum(v · gx²) + sum(r · gw²); dL/dx, dL/dw, dL/db.
    let fx = Fixture::load("conv");
    let mut report = Report::new();
    let cases = fx.cases("conv.gg_tanh");
    assert_eq!(cases.len(), 2, "{cases:?}");
    for case in &cases {
        run_case(&mut report, case, |r| {
            let (p, _) = conv_params(&fx, case);
            let (x, w, b) = (
                fx.param(case, "x"),
                fx.param(case, "w"),
                fx.param(case, "b"),
            );
            let y = x.conv2d(&w, Some(&b), p)?.tanh()?;
            let g = weighted_grads(&y, &[&x, &w], &fx.get(case, "u"), true)?;
            let (gx, gw) = (&g[0], &g[1]);
            r.check(&format!("{case} gx"), gx.value(), &fx.get(case, "gx"));
            r.check(&format!("{case} gw"), gw.value(), &fx.get(case, "gw"));
            let loss = fx
                .constant(case, "v")
                .mul(gx)?
                .mul(gx)?
                .sum_all()?
                .add(&fx.constant(case, "r").mul(gw)?.mul(gw)?.sum_all()?)?;
            r.check(&format!("{case} loss"), loss.value(), &fx.get(case, "loss"));
            let gg = grad(&[&loss], &[&x, &w, &b], None, false)?;
            r.check(&format!("{case} ggx"), gg[0].value(), &fx.get(case, "ggx"));
            r.check(&format!("{case} ggw"), gg[1].value(), &fx.get(case, "ggw"));
            r.check(&format!("{case} ggb"), gg[2].value(), &fx.get(case, "ggb"));
            Ok(())
        });
    }
    report.finish(2 * 6);
}

// ---- batch norm (training mode), composed from ops ----

const BN_EPS: f32 = 1e-5;

/// Training-mode batch norm over N, H, W with batch statistics and the biased variance,
/// composed from `Var` ops: (x − mean) · rsqrt(mean((x − mean)²) + eps) · γ + β.
fn batch_norm_train(x: &Var, gamma: &Var, beta: &Var) -> Result<Var> {
    let c = x.dims()[1];
    let mean = x.mean(&[0, 2, 3], true)?;
    let centred = x.sub(&mean)?;
    let var = centred.mul(&centred)?.mean(&[0, 2, 3], true)?;
    let inv_std = var.add_scalar(BN_EPS)?.rsqrt()?;
    centred
        .mul(&inv_std)?
        .mul(&gamma.reshape([1, c, 1, 1])?)?
        .add(&beta.reshape([1, c, 1, 1])?)
}

/// The same normalization with the variance from `Var::var` (biased) instead.
fn batch_norm_train_var(x: &Var, gamma: &Var, beta: &Var) -> Result<Var> {
    let c = x.dims()[1];
    let mean = x.mean(&[0, 2, 3], true)?;
    let var = x.var(&[0, 2, 3], false, true)?;
    x.sub(&mean)?
        .mul(&var.add_scalar(BN_EPS)?.rsqrt()?)?
        .mul(&gamma.reshape([1, c, 1, 1])?)?
        .add(&beta.reshape([1, c, 1, 1])?)
}

/// The fused op `Var::normalize` with per-channel γ, β (what tessera-nn's BatchNorm2d runs).
fn batch_norm_train_fused(x: &Var, gamma: &Var, beta: &Var) -> Result<Var> {
    let m = NormModulation::Channel { gamma, beta };
    Ok(x.normalize(false, BN_EPS, m)?.output)
}

#[test]
fn batch_norm_train_matches_f_batch_norm() {
    let fx = Fixture::load("norm");
    let mut report = Report::new();
    let cases = fx.cases("bn.");
    assert_eq!(cases.len(), 3, "{cases:?}");
    type Bn = fn(&Var, &Var, &Var) -> Result<Var>;
    let variants: [(&str, Bn); 3] = [
        ("mean-of-squares", batch_norm_train),
        ("Var::var", batch_norm_train_var),
        ("Var::normalize", batch_norm_train_fused),
    ];
    for case in &cases {
        for (variant, bn) in variants {
            let name = format!("{case} [{variant}]");
            run_case(&mut report, &name, |r| {
                let x = fx.param(case, "x");
                let gamma = fx.param(case, "gamma");
                let beta = fx.param(case, "beta");
                let y = bn(&x, &gamma, &beta)?;
                r.check(&format!("{name} y"), y.value(), &fx.get(case, "y"));
                let g = weighted_grads(&y, &[&x, &gamma, &beta], &fx.get(case, "wy"), true)?;
                r.check(&format!("{name} gx"), g[0].value(), &fx.get(case, "gx"));
                r.check(
                    &format!("{name} ggamma"),
                    g[1].value(),
                    &fx.get(case, "ggamma"),
                );
                r.check(
                    &format!("{name} gbeta"),
                    g[2].value(),
                    &fx.get(case, "gbeta"),
                );
                // Grad of grad: L = sum(v · gx²), differentiated w.r.t. x and gamma.
                let gx = &g[0];
                let loss = fx.constant(case, "v").mul(gx)?.mul(gx)?.sum_all()?;
                r.check(&format!("{name} loss"), loss.value(), &fx.get(case, "loss"));
                let gg = grad(&[&loss], &[&x, &gamma], None, false)?;
                r.check(&format!("{name} ggx"), gg[0].value(), &fx.get(case, "ggx"));
                r.check(
                    &format!("{name} gggamma"),
                    gg[1].value(),
                    &fx.get(case, "gggamma"),
                );
                Ok(())
            });
        }
    }
    report.finish(3 * 3 * 7);
}

// ---- WGAN-GP ----

struct Critic {
    w1: Var,
    b1: Var,
    gamma: Var,
    beta: Var,
    w2: Var,
    b2: Var,
    use_sum: bool,
    use_tanh: bool,
}

impl Critic {
    /// conv3x3 → batch norm (train, composed) → leaky_relu(0.2) or tanh → conv3x3 → mean or
    /// sum over C, H, W: one score per sample.
    fn forward(&self, x: &Var) -> Result<Var> {
        let same = Conv2dParams::new(1, 1, 1);
        let h = x.conv2d(&self.w1, Some(&self.b1), same)?;
        let h = batch_norm_train(&h, &self.gamma, &self.beta)?;
        let h = if self.use_tanh {
            h.tanh()?
        } else {
            h.leaky_relu(0.2)?
        };
        let out = h.conv2d(&self.w2, Some(&self.b2), same)?;
        if self.use_sum {
            out.sum(&[1, 2, 3], false)
        } else {
            out.mean(&[1, 2, 3], false)
        }
    }
    fn params(&self) -> [(&'static str, &Var); 6] {
        [
            ("w1", &self.w1),
            ("b1", &self.b1),
            ("gamma", &self.gamma),
            ("beta", &self.beta),
            ("w2", &self.w2),
            ("b2", &self.b2),
        ]
    }
}

/// λ · mean((‖∂D(x̂)/∂x̂‖₂ − 1)²) with the norm per sample over C·H·W; also returns D(x̂),
/// the input gradient and the norms.
fn gradient_penalty(critic: &Critic, xhat: &Var, lambda: f32) -> Result<[Var; 4]> {
    let d = critic.forward(xhat)?;
    let gx = grad(&[&d], &[xhat], None, true)?.remove(0);
    let norm = gx.mul(&gx)?.sum(&[1, 2, 3], false)?.sqrt()?;
    let penalty = norm
        .add_scalar(-1.0)?
        .sqr()?
        .mean_all()?
        .mul_scalar(lambda)?;
    Ok([d, gx, norm, penalty])
}

#[test]
fn wgan_gp_penalty_and_parameter_gradients() {
    let fx = Fixture::load("wgan_gp");
    let mut report = Report::new();
    let cases = fx.cases("gp.");
    assert_eq!(cases.len(), 3, "{cases:?}");
    for case in &cases {
        run_case(&mut report, case, |r| {
            let flags = fx.usizes(case, "params");
            let critic = Critic {
                w1: fx.param(case, "w1"),
                b1: fx.param(case, "b1"),
                gamma: fx.param(case, "gamma"),
                beta: fx.param(case, "beta"),
                w2: fx.param(case, "w2"),
                b2: fx.param(case, "b2"),
                use_sum: flags[0] == 1,
                use_tanh: flags[1] == 1,
            };
            // x̂ = α·real + (1 − α)·fake, α per sample; x̂ itself is the leaf of the inner grad.
            let alpha = fx.get(case, "alpha");
            let mixed = alpha
                .mul(&fx.get(case, "real"))?
                .add(&alpha.affine(-1.0, 1.0)?.mul(&fx.get(case, "fake"))?)?;
            r.check(&format!("{case} xhat"), &mixed, &fx.get(case, "xhat"));
            let xhat = Var::param(mixed);
            let lambda = fx.floats(case, "lambda")[0];
            let [d, gx, norm, penalty] = gradient_penalty(&critic, &xhat, lambda)?;
            r.check(&format!("{case} D(xhat)"), d.value(), &fx.get(case, "d"));
            r.check(&format!("{case} gxhat"), gx.value(), &fx.get(case, "gxhat"));
            r.check(&format!("{case} norm"), norm.value(), &fx.get(case, "norm"));
            r.check(
                &format!("{case} penalty"),
                &penalty.value().reshape([1])?,
                &fx.get(case, "penalty"),
            );

            let params = critic.params();
            let vars: Vec<&Var> = params.iter().map(|(_, v)| *v).collect();
            let grads = grad(&[&penalty], &vars, None, false)?;
            // Some references are zero in exact arithmetic (b1, b2, and beta with leaky_relu)
            // and hold only rounding noise; those are measured against the largest parameter
            // gradient of the penalty, everything else against itself.
            let wants: Vec<Tensor> = params
                .iter()
                .map(|(n, _)| fx.get(case, &format!("g{n}")))
                .collect();
            let scale = wants.iter().map(max_abs).fold(0.0, f64::max);
            // The same gradients through `backward()`, which accumulates into the leaves.
            penalty.backward()?;
            for (((name, var), g), want) in params.iter().zip(&grads).zip(&wants) {
                // A parameter the penalty does not reach (b2) gets no gradient, as in PyTorch.
                let accumulated = match var.grad() {
                    Some(t) => t,
                    None => Tensor::zeros(var.shape().clone(), var.value().device())?,
                };
                for (how, got) in [("grad", g.value()), ("backward", &accumulated)] {
                    let what = format!("{case} d penalty/d {name} ({how})");
                    if max_abs(want) < 1e-6 * scale {
                        r.check_scaled(&what, got, want, scale);
                    } else {
                        r.check(&what, got, want);
                    }
                }
            }
            Ok(())
        });
    }
    report.finish(3 * 17);
}

// ---- elementwise ops ----

#[test]
fn unary_ops_and_their_second_derivatives() {
    let fx = Fixture::load("ops");
    let mut report = Report::new();
    let cases = fx.cases("un.");
    assert_eq!(cases.len(), 24, "{cases:?}");
    for case in &cases {
        run_case(&mut report, case, |r| {
            // Edge cases (`un.edge_<op>`) apply the same op to inputs at kinks, zeros and bounds.
            let name = case.strip_prefix("un.").unwrap();
            let op = name.strip_prefix("edge_").unwrap_or(name);
            let params = fx.try_get(case, "params").map(|t| t.to_vec()).transpose()?;
            let p = |i: usize| params.as_ref().expect("params")[i];
            let x = fx.param(case, "x");
            let y = match op {
                "exp" => x.exp()?,
                "log" => x.log()?,
                "sqrt" => x.sqrt()?,
                "rsqrt" => x.rsqrt()?,
                "tanh" => x.tanh()?,
                "sigmoid" => x.sigmoid()?,
                "powf" | "powf_int" | "powf_neg" | "powf_one" | "powf_zero" => x.powf(p(0))?,
                "neg" => x.neg()?,
                "abs" => x.abs()?,
                "relu" => x.relu()?,
                "leaky_relu" | "leaky_relu_small" => x.leaky_relu(p(0))?,
                "clamp" => x.clamp(p(0), p(1))?,
                "affine" => x.affine(p(0), p(1))?,
                "sqr" => x.sqr()?,
                other => panic!("unknown unary case {other}"),
            };
            r.check(&format!("{case} y"), y.value(), &fx.get(case, "y"));
            let want_gg = fx.try_get(case, "ggx");
            let gx = weighted_grads(&y, &[&x], &fx.get(case, "wy"), want_gg.is_some())?.remove(0);
            r.check(&format!("{case} gx"), gx.value(), &fx.get(case, "gx"));
            if let Some(want) = want_gg {
                let ggx = weighted_grads(&gx, &[&x], &fx.get(case, "v"), false)?.remove(0);
                r.check(&format!("{case} ggx"), ggx.value(), &want);
            }
            Ok(())
        });
    }
    report.finish(24 * 2 + 10);
}

#[test]
fn broadcasting_binary_ops() {
    let fx = Fixture::load("ops");
    let mut report = Report::new();
    let cases = fx.cases("bin.");
    assert_eq!(cases.len(), 14, "{cases:?}");
    for case in &cases {
        run_case(&mut report, case, |r| {
            let (a, b) = (fx.param(case, "a"), fx.param(case, "b"));
            let name = case.strip_prefix("bin.").unwrap();
            let y = match name.strip_prefix("edge_").unwrap_or(name) {
                "add" | "add_both" => a.add(&b)?,
                "sub" => a.sub(&b)?,
                "mul" | "mul_both" | "scalar_rhs" => a.mul(&b)?,
                "div" | "div_both" => a.div(&b)?,
                "pow" => a.pow(&b)?,
                "maximum" => a.maximum(&b)?,
                "minimum" => a.minimum(&b)?,
                other => panic!("unknown binary case {other}"),
            };
            r.check(&format!("{case} y"), y.value(), &fx.get(case, "y"));
            let g = weighted_grads(&y, &[&a, &b], &fx.get(case, "wy"), false)?;
            r.check(&format!("{case} ga"), g[0].value(), &fx.get(case, "ga"));
            r.check(&format!("{case} gb"), g[1].value(), &fx.get(case, "gb"));
            Ok(())
        });
    }
    report.finish(14 * 3);
}

#[test]
fn reductions_over_axes() {
    let fx = Fixture::load("ops");
    let mut report = Report::new();
    let cases = fx.cases("red.");
    assert_eq!(cases.len(), 17, "{cases:?}");
    for case in &cases {
        run_case(&mut report, case, |r| {
            // params = [keepdim, unbiased, axes...]
            let p = fx.usizes(case, "params");
            let (keepdim, unbiased, axes) = (p[0] == 1, p[1] == 1, &p[2..]);
            let x = fx.param(case, "x");
            let name = case.strip_prefix("red.").unwrap();
            let name = name.strip_prefix("edge_").unwrap_or(name);
            let kind = name.split('_').next().unwrap();
            let y = match kind {
                "sum" => x.sum(axes, keepdim)?,
                "mean" => x.mean(axes, keepdim)?,
                "var" => x.var(axes, unbiased, keepdim)?,
                "max" => x.max(axes, keepdim)?,
                "min" => x.min(axes, keepdim)?,
                other => panic!("unknown reduction {other}"),
            };
            r.check(&format!("{case} y"), y.value(), &fx.get(case, "y"));
            let want_gg = fx.try_get(case, "ggx");
            let gx = weighted_grads(&y, &[&x], &fx.get(case, "wy"), want_gg.is_some())?.remove(0);
            r.check(&format!("{case} gx"), gx.value(), &fx.get(case, "gx"));
            if let Some(want) = want_gg {
                let ggx = weighted_grads(&gx, &[&x], &fx.get(case, "v"), false)?.remove(0);
                r.check(&format!("{case} ggx"), ggx.value(), &want);
            }
            Ok(())
        });
    }
    report.finish(17 * 2 + 4);
}

#[test]
fn matmul_2d_and_batched() {
    let fx = Fixture::load("ops");
    let mut report = Report::new();
    let cases = fx.cases("mm.");
    assert_eq!(cases.len(), 4, "{cases:?}");
    for case in &cases {
        run_case(&mut report, case, |r| {
            let (a, b) = (fx.param(case, "a"), fx.param(case, "b"));
            let y = a.matmul(&b)?;
            r.check(&format!("{case} y"), y.value(), &fx.get(case, "y"));
            let g = weighted_grads(&y, &[&a, &b], &fx.get(case, "wy"), false)?;
            r.check(&format!("{case} ga"), g[0].value(), &fx.get(case, "ga"));
            r.check(&format!("{case} gb"), g[1].value(), &fx.get(case, "gb"));
            Ok(())
        });
    }
    report.finish(4 * 3);
}

#[test]
fn layout_ops_and_linear() {
    let fx = Fixture::load("ops");
    let mut report = Report::new();
    let cases = fx.cases("lay.");
    assert_eq!(cases.len(), 7, "{cases:?}");
    for case in &cases {
        run_case(&mut report, case, |r| {
            let name = case.strip_prefix("lay.").unwrap();
            let inputs: Vec<(&str, Var)> = match name {
                "concat" => ["a", "b", "c"]
                    .into_iter()
                    .map(|n| (n, fx.param(case, n)))
                    .collect(),
                "linear" | "linear3d" => ["x", "w", "b"]
                    .into_iter()
                    .map(|n| (n, fx.param(case, n)))
                    .collect(),
                _ => vec![("x", fx.param(case, "x"))],
            };
            let v = |i: usize| &inputs[i].1;
            let p = || fx.usizes(case, "params");
            let y = match name {
                "permute" => v(0).permute(&p())?,
                "transpose" => v(0).transpose(p()[0], p()[1])?,
                "narrow" => v(0).narrow(p()[0], p()[1], p()[2])?,
                "expand" => v(0).expand(p())?,
                "concat" => Var::concat(&[v(0), v(1), v(2)], 1)?,
                "linear" | "linear3d" => v(0).linear(v(1), Some(v(2)))?,
                other => panic!("unknown layout case {other}"),
            };
            r.check(&format!("{case} y"), y.value(), &fx.get(case, "y"));
            check_input_grads(r, &fx, case, &y, &inputs)
        });
    }
    report.finish(7 * 2 + 6);
}

// ---- spatial ops ----

/// Checks y = f(x) and d/dx sum(wy · y) for every case under `prefix`.
fn check_spatial(
    fx: &Fixture,
    prefix: &str,
    expected_cases: usize,
    f: impl Fn(&str, &Var, &Tensor) -> Result<Var>,
) {
    let mut report = Report::new();
    let cases = fx.cases(prefix);
    assert_eq!(cases.len(), expected_cases, "{cases:?}");
    for case in &cases {
        run_case(&mut report, case, |r| {
            let x = fx.param(case, "x");
            let want = fx.get(case, "y");
            let y = f(case, &x, &want)?;
            r.check(&format!("{case} y"), y.value(), &want);
            let gx = weighted_grads(&y, &[&x], &fx.get(case, "wy"), false)?.remove(0);
            r.check(&format!("{case} gx"), gx.value(), &fx.get(case, "gx"));
            Ok(())
        });
    }
    report.finish(expected_cases * 2);
}

#[test]
fn pad2d_zero_reflect_replicate() {
    let fx = Fixture::load("spatial");
    check_spatial(&fx, "pad.", 4, |case, x, _| {
        let p = fx.usizes(case, "params"); // F.pad order: left, right, top, bottom
        let mode = match case.strip_prefix("pad.").unwrap() {
            "zero" => PadMode::Zero,
            "reflect" | "reflect_full" => PadMode::Reflect,
            "replicate" => PadMode::Replicate,
            other => panic!("unknown pad case {other}"),
        };
        x.pad2d([p[0], p[1], p[2], p[3]], mode)
    });
}

#[test]
fn avg_pool2d_with_padding() {
    let fx = Fixture::load("spatial");
    check_spatial(&fx, "pool.", 5, |case, x, _| {
        // params = [kh, kw, sh, sw, ph, pw, count_include_pad]
        let p = fx.usizes(case, "params");
        x.avg_pool2d(Pool2dParams {
            kernel: [p[0], p[1]],
            stride: [p[2], p[3]],
            padding: [p[4], p[5]],
            count_include_pad: p[6] == 1,
        })
    });
}

#[test]
fn upsample_nearest_and_bilinear() {
    let fx = Fixture::load("spatial");
    check_spatial(&fx, "up.", 17, |case, x, want| {
        let name = case.strip_prefix("up.").unwrap();
        let mode = if name.starts_with("nearest") {
            Interpolation::Nearest
        } else if name.starts_with("bilinear_ac") {
            Interpolation::Bilinear {
                align_corners: true,
            }
        } else {
            Interpolation::Bilinear {
                align_corners: false,
            }
        };
        x.upsample2d(hw(want), mode)
    });
}

#[test]
fn one_hot_matches_f_one_hot() {
    let fx = Fixture::load("spatial");
    let mut report = Report::new();
    let cases = fx.cases("onehot.");
    assert_eq!(cases.len(), 2, "{cases:?}");
    for case in &cases {
        let labels = fx.get(case, "labels");
        let want = fx.get(case, "y");
        let ids: Vec<u32> = fx
            .usizes(case, "labels")
            .into_iter()
            .map(|l| l as u32)
            .collect();
        let d = labels.dims();
        match Tensor::one_hot(&ids, [d[0], d[1], d[2]], want.dims()[1], want.device()) {
            Ok(y) => report.check(&format!("{case} y"), &y, &want),
            Err(e) => report.fail(case, e),
        }
    }
    report.finish(2);
}

// ---- ops whose other goldens reach them only indirectly ----

/// Wrappers (reshape, pad_axis, slice, split, sum_to, sum_all, mean_all, add_scalar,
/// mul_scalar), where_cond, linear without bias, and the adjoints of pad2d, avg_pool2d and upsample2d on their own:
/// y and d/dx sum(wy · y) against PyTorch (`ext.*` in tests/fixtures/make_fixtures.py).
#[test]
fn wrappers_where_and_adjoints_match_pytorch() {
    let fx = Fixture::load("ops_extra");
    let mut report = Report::new();
    let cases = fx.cases("ext.");
    assert_eq!(cases.len(), 19, "{cases:?}");
    let mut checks = 0;
    for case in &cases {
        let name = case.strip_prefix("ext.").unwrap();
        if name == "split" {
            run_case(&mut report, case, |r| {
                let x = fx.param(case, "x");
                let parts = x.split(&fx.usizes(case, "params"), 1)?;
                let mut total = Var::constant(Tensor::zeros([], x.value().device())?);
                for (i, part) in parts.iter().enumerate() {
                    r.check(
                        &format!("{case} y{i}"),
                        part.value(),
                        &fx.get(case, &format!("y{i}")),
                    );
                    let w = fx.constant(case, &format!("wy{i}"));
                    total = total.add(&part.mul(&w)?.sum_all()?)?;
                }
                let gx = grad(&[&total], &[&x], None, false)?.remove(0);
                r.check(&format!("{case} gx"), gx.value(), &fx.get(case, "gx"));
                Ok(())
            });
            checks += 4;
            continue;
        }
        let inputs: Vec<(&str, Var)> = match name {
            "where" => vec![("a", fx.param(case, "a")), ("b", fx.param(case, "b"))],
            "linear_nobias" => vec![("x", fx.param(case, "x")), ("w", fx.param(case, "w"))],
            _ => vec![("x", fx.param(case, "x"))],
        };
        checks += 1 + inputs.len();
        run_case(&mut report, case, |r| {
            let x = &inputs[0].1;
            let want = fx.get(case, "y");
            let p = || fx.usizes(case, "params");
            let pool = |p: &[usize]| Pool2dParams {
                kernel: [p[0], p[1]],
                stride: [p[2], p[3]],
                padding: [p[4], p[5]],
                count_include_pad: p[6] == 1,
            };
            let y = match name {
                "where" => Var::where_cond(&fx.get(case, "cond"), x, &inputs[1].1)?,
                "reshape" => x.reshape(p())?,
                "pad_axis" => x.pad_axis(p()[0], p()[1], p()[2])?,
                "slice" => x.slice(p()[0], p()[1]..p()[2])?,
                "sum_to" => x.sum_to(&p().into())?,
                "sum_all" => x.sum_all()?,
                "mean_all" => x.mean_all()?,
                "linear_nobias" => x.linear(&inputs[1].1, None)?,
                "add_scalar" => x.add_scalar(fx.floats(case, "params")[0])?,
                "mul_scalar" => x.mul_scalar(fx.floats(case, "params")[0])?,
                _ if name.starts_with("pad_adj.") => {
                    let mode = match &name["pad_adj.".len()..] {
                        "zero" => PadMode::Zero,
                        "reflect" => PadMode::Reflect,
                        "replicate" => PadMode::Replicate,
                        other => panic!("unknown pad mode {other}"),
                    };
                    let q = p(); // F.pad order: left, right, top, bottom
                    x.pad2d_adjoint([q[0], q[1], q[2], q[3]], mode)?
                }
                _ if name.starts_with("pool_adj.") => {
                    let q = p();
                    x.avg_pool2d_adjoint([q[7], q[8]], pool(&q))?
                }
                _ if name.starts_with("up_adj.") => {
                    let mode = match &name["up_adj.".len()..] {
                        "nearest" => Interpolation::Nearest,
                        "bilinear" => Interpolation::Bilinear {
                            align_corners: false,
                        },
                        "bilinear_ac" => Interpolation::Bilinear {
                            align_corners: true,
                        },
                        other => panic!("unknown interpolation {other}"),
                    };
                    let q = p();
                    x.upsample2d_adjoint([q[0], q[1]], mode)?
                }
                other => panic!("unknown case {other}"),
            };
            r.check(&format!("{case} y"), y.value(), &want);
            check_input_grads(r, &fx, case, &y, &inputs)
        });
    }
    report.finish(checks);
}
