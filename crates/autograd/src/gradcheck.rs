//! Finite-difference gradient checks for differentiable ops: [`check_grad`] (first order, like
//! `torch.autograd.gradcheck`) and [`check_grad_grad`] (second order, like
//! `torch.autograd.gradgradcheck`). Later crates use them for their own layers and losses.
//!
//! # What is compared
//!
//! The op `f` maps the inputs `x` to one or more outputs `y`. It is reduced to a scalar
//! `s(x) = Σₖ wₖ·yₖ(x)` with fixed random weights `w` (drawn from [`GradcheckConfig::seed`]),
//! so every output element takes part. The analytic gradient is
//! `grad(y, x, grad_outputs = w)`; the numeric one differentiates `s` by central differences.
//! Each input element is checked on its own (or, with [`GradcheckConfig::directions`], the
//! derivative along a few random ±1 directions over all inputs at once, for large inputs).
//!
//! # Why this is accurate enough in f32
//!
//! Tensors are f32 only, so `s` cannot be evaluated in f64. The checker keeps every step that
//! it controls exact or in f64:
//!
//! * **Stencil.** Four evaluations at `x + tⱼ·e` with `tⱼ ≈ −2h, −h, h, 2h` give the 4th-order
//!   5-point central difference `(s(−2h) − 8s(−h) + 8s(h) − s(2h)) / 12h` (Richardson
//!   extrapolation of the 2-point rule). Its truncation error is `h⁴·|s⁽⁵⁾|/30`: with the
//!   default relative step `h = 10⁻²·max(|xᵢ|, 1)` that is about `3·10⁻¹⁰·|s⁽⁵⁾|`, far below
//!   the tolerance for the smooth functions tested (inputs are kept away from kinks).
//! * **Exact steps.** `xᵢ + tⱼ` is rounded to f32 before `f` sees it, so the nodes actually used
//!   are `tⱼ = fl(xᵢ + j·h) − xᵢ`, computed exactly in f64. The derivative weights are those of
//!   the polynomial through the actual nodes (and the centre); for symmetric nodes they are the
//!   5-point stencil above, otherwise an equally accurate non-uniform rule.
//! * **Differences, not totals.** The weighted sum is accumulated in f64 on the host, and as
//!   differences `Σₖ wₖ·(yₖ(x+tⱼ) − yₖ(x))`, each exact in f64. Outputs that `xᵢ` does not
//!   touch are bit-identical between evaluations and cancel exactly, so the only noise comes
//!   from the f32 rounding of the outputs that do change.
//! * **Noise floor.** That rounding is bounded per changed output by
//!   `κ·ε₃₂·(|yₖ| + rms(y))` (κ = [`GradcheckConfig::noise_ulps`], ε₃₂ = 2⁻²³; the rms term
//!   covers accumulations whose result cancels to a small value), and the stencil amplifies it
//!   by `G = Σⱼ|cⱼ| ≈ 1.5/h`. The resulting bound `G·κ·ε₃₂·Σₖ|wₖ|(|yₖ| + rms)` over changed
//!   outputs is added to `atol` for that element. With `h = 10⁻²` and a handful of changed
//!   outputs of size ~1 it is ~10⁻⁴, so it only matters for gradient entries that cancel to
//!   near zero, where an f32 finite difference cannot resolve a relative error anyway.
//!
//! Each checked entry must satisfy `|a − n| ≤ atol + floor + rtol·max(|a|, |n|)`. The defaults
//! (`rtol = 10⁻³`, `atol = 10⁻⁵`) sit well above the error budget above (relative stencil and
//! rounding errors of ~10⁻⁵ for well-scaled ops) and twenty times below a 2 % error, which the
//! tests in this module show is rejected, as is a backward rule that detaches its result
//! (silently zero second derivatives).
//!
//! # Second order
//!
//! [`check_grad_grad`] builds `g = grad(f(x), x, grad_outputs = v, create_graph = true)` with
//! random `v` and checks that function of `(x, v)` with [`check_grad`] — that is, the gradient
//! of `h = Σ uᵢ·gᵢ` (random `u`) with respect to both the inputs and `v`. Differentiating with
//! respect to `v` exercises the backward rule of each backward rule even for linear ops, whose
//! second derivative with respect to `x` is zero.
//!
//! Inputs must be valid points for finite differences: at least `2h` away from kinks (relu,
//! abs, clamp, max, ...) and from the edge of the domain (log, sqrt, ...).
use crate::{grad, Var};
use std::fmt;
use tessera_tensor::{Rng, Tensor};

/// f32 machine epsilon (spacing of f32 numbers at 1.0) as f64.
const EPS_F32: f64 = f32::EPSILON as f64;

/// Step, tolerances and randomness of a check. `Default` gives the values documented in the
/// module docs.
#[derive(Clone, Debug, PartialEq)]
pub struct GradcheckConfig {
    /// Relative step: element `xᵢ` is perturbed by up to `±2·eps·max(|xᵢ|, 1)`.
    pub eps: f64,
    /// Relative tolerance.
    pub rtol: f64,
    /// Absolute tolerance (added to the rounding-noise floor).
    pub atol: f64,
    /// Ulps of f32 rounding error allowed per changed output element in the noise floor.
    pub noise_ulps: f64,
    /// Seed of the random output weights (and directions, and second-order weights).
    pub seed: u64,
    /// `None`: check every input element. `Some(n)`: check `n` random ±1 directions instead.
    pub directions: Option<usize>,
}

impl Default for GradcheckConfig {
    fn default() -> Self {
        GradcheckConfig {
            eps: 1e-2,
            rtol: 1e-3,
            atol: 1e-5,
            noise_ulps: 4.0,
            seed: 0x7e55e4a,
            directions: None,
        }
    }
}

impl GradcheckConfig {
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = seed;
        self
    }
    pub fn with_eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }
    pub fn with_rtol(mut self, rtol: f64) -> Self {
        self.rtol = rtol;
        self
    }
    pub fn with_atol(mut self, atol: f64) -> Self {
        self.atol = atol;
        self
    }
    pub fn with_directions(mut self, n: usize) -> Self {
        self.directions = Some(n);
        self
    }
}

/// What a checked function returns: one output var or several.
pub trait Outputs {
    fn into_outputs(self) -> Vec<Var>;
}
impl Outputs for Var {
    fn into_outputs(self) -> Vec<Var> {
        vec![self]
    }
}
impl Outputs for Vec<Var> {
    fn into_outputs(self) -> Vec<Var> {
        self
    }
}

/// One entry whose analytic and numeric derivatives disagree.
#[derive(Clone, Debug, PartialEq)]
pub struct Mismatch {
    /// Which input (index into the checked inputs; for second order, inputs then output
    /// weights), or `None` for a direction, which spans all inputs.
    pub input: Option<usize>,
    /// Element index within that input (per-element mode), or direction number (direction mode).
    pub index: usize,
    pub analytic: f64,
    pub numeric: f64,
    /// The tolerance the difference had to stay within.
    pub tolerance: f64,
}

/// Summary of a passed check.
#[derive(Clone, Debug, PartialEq)]
pub struct GradcheckReport {
    /// Entries (elements or directions) compared.
    pub checked: usize,
    /// Largest `|analytic − numeric|`.
    pub max_abs_err: f64,
    /// Largest `|analytic − numeric| / tolerance` (≤ 1 when passed).
    pub worst_ratio: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub enum GradcheckError {
    /// Evaluating the op or its gradient failed.
    Autograd(crate::Error),
    /// The op produced a non-finite value or the checker could not form a step.
    Invalid(String),
    /// Some entries disagree; `worst` lists up to ten, largest violation first.
    Mismatch {
        order: u8,
        checked: usize,
        failed: usize,
        worst: Vec<Mismatch>,
    },
}

impl fmt::Display for GradcheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GradcheckError::Autograd(e) => write!(f, "gradcheck: {e}"),
            GradcheckError::Invalid(why) => write!(f, "gradcheck: {why}"),
            GradcheckError::Mismatch {
                order,
                checked,
                failed,
                worst,
            } => {
                let kind = if *order == 1 { "first" } else { "second" };
                write!(
                    f,
                    "gradcheck ({kind} order): {failed} of {checked} entries differ"
                )?;
                for m in worst {
                    write!(
                        f,
                        "\n  {} [{}]: analytic {:.7e}, numeric {:.7e}, |diff| {:.3e} > tol {:.3e}",
                        m.input
                            .map_or("direction".to_string(), |i| format!("input {i}")),
                        m.index,
                        m.analytic,
                        m.numeric,
                        (m.analytic - m.numeric).abs(),
                        m.tolerance
                    )?;
                }
                Ok(())
            }
        }
    }
}

impl std::error::Error for GradcheckError {}

impl From<crate::Error> for GradcheckError {
    fn from(e: crate::Error) -> Self {
        GradcheckError::Autograd(e)
    }
}
impl From<tessera_tensor::Error> for GradcheckError {
    fn from(e: tessera_tensor::Error) -> Self {
        GradcheckError::Autograd(e.into())
    }
}

/// Checks the gradients of `f` with respect to every tensor in `inputs` against central
/// finite differences (see the module docs for the method and tolerances).
pub fn check_grad<F, O>(
    f: F,
    inputs: &[Tensor],
    cfg: &GradcheckConfig,
) -> Result<GradcheckReport, GradcheckError>
where
    F: Fn(&[Var]) -> crate::Result<O>,
    O: Outputs,
{
    check(&|xs: &[Var]| Ok(f(xs)?.into_outputs()), inputs, cfg, 1)
}

/// Checks second derivatives: the gradient of `g(x, v) = grad(f(x), x, v, create_graph)`
/// with respect to `x` and the output weights `v`, against finite differences of `g`.
pub fn check_grad_grad<F, O>(
    f: F,
    inputs: &[Tensor],
    cfg: &GradcheckConfig,
) -> Result<GradcheckReport, GradcheckError>
where
    F: Fn(&[Var]) -> crate::Result<O>,
    O: Outputs,
{
    let n = inputs.len();
    // The output weights v become extra inputs, so their shapes come from one evaluation.
    let outs = f(&params(inputs))?.into_outputs();
    let mut rng = Rng::seed(cfg.seed ^ 0x9e37_79b9_7f4a_7c15);
    let mut all = inputs.to_vec();
    for o in &outs {
        let v = rng.normal_vec(o.value().numel(), 0.0, 1.0);
        all.push(Tensor::from_vec(v, o.shape().clone(), o.value().device())?);
    }
    drop(outs);
    let first_order = |xs: &[Var]| -> crate::Result<Vec<Var>> {
        let (x, v) = xs.split_at(n);
        let ys = f(x)?.into_outputs();
        let yr: Vec<&Var> = ys.iter().collect();
        let xr: Vec<&Var> = x.iter().collect();
        grad(&yr, &xr, Some(v), true)
    };
    check(&first_order, &all, cfg, 2)
}

fn params(inputs: &[Tensor]) -> Vec<Var> {
    inputs.iter().cloned().map(Var::param).collect()
}

type Eval<'a> = &'a dyn Fn(&[Var]) -> crate::Result<Vec<Var>>;

/// Evaluates `f` at `xs` and returns every output as host f32 values.
fn evaluate(f: Eval<'_>, xs: &[Tensor]) -> Result<Vec<Vec<f32>>, GradcheckError> {
    let outs = f(&params(xs))?;
    outs.iter()
        .map(|o| o.value().to_vec().map_err(GradcheckError::from))
        .collect()
}

/// Weights `c` with `p′(0) = Σⱼ cⱼ·p(tⱼ)` for the polynomial through the nodes `t` and 0
/// (where the value is taken as 0: differences from the centre are what get weighted).
fn derivative_weights(t: &[f64]) -> Vec<f64> {
    (0..t.len())
        .map(|j| {
            let num: f64 = (0..t.len()).filter(|&m| m != j).map(|m| -t[m]).product();
            let den: f64 = t[j]
                * (0..t.len())
                    .filter(|&m| m != j)
                    .map(|m| t[j] - t[m])
                    .product::<f64>();
            num / den
        })
        .collect()
}

/// Numeric derivative from outputs at the nodes, with its rounding-noise floor.
struct Stencil<'a> {
    weights: &'a [Vec<f32>],
    base: &'a [Vec<f32>],
    rms: &'a [f64],
    noise_ulps: f64,
}

impl Stencil<'_> {
    /// (derivative, noise floor) from the outputs `at[j]` at nodes `t[j]`.
    fn derivative(&self, t: &[f64], at: &[Vec<Vec<f32>>]) -> (f64, f64) {
        let c = derivative_weights(t);
        let gain: f64 = c.iter().map(|c| c.abs()).sum();
        let mut d = 0.0;
        let mut noise = 0.0;
        for (o, (w, y0)) in self.weights.iter().zip(self.base).enumerate() {
            for k in 0..y0.len() {
                let mut changed = false;
                let mut mag = y0[k].abs() as f64;
                for (j, yj) in at.iter().enumerate() {
                    let y = yj[o][k];
                    if y.to_bits() != y0[k].to_bits() {
                        changed = true;
                        d += c[j] * w[k] as f64 * (y as f64 - y0[k] as f64);
                        mag = mag.max(y.abs() as f64);
                    }
                }
                if changed {
                    noise += (w[k] as f64).abs() * (mag + self.rms[o]);
                }
            }
        }
        (d, gain * self.noise_ulps * EPS_F32 * noise)
    }
}

fn finite(what: &str, v: &[Vec<f32>]) -> Result<(), GradcheckError> {
    if v.iter().flatten().all(|x| x.is_finite()) {
        Ok(())
    } else {
        Err(GradcheckError::Invalid(format!("{what} is not finite")))
    }
}

fn check(
    f: Eval<'_>,
    inputs: &[Tensor],
    cfg: &GradcheckConfig,
    order: u8,
) -> Result<GradcheckReport, GradcheckError> {
    let mut rng = Rng::seed(cfg.seed);
    // Analytic gradient of s = Σ w·y.
    let (base, weights, analytic) = {
        let xs = params(inputs);
        let outs = f(&xs)?;
        let base: Vec<Vec<f32>> = outs
            .iter()
            .map(|o| o.value().to_vec())
            .collect::<Result<_, _>>()?;
        finite("the output", &base)?;
        let weights: Vec<Vec<f32>> = base
            .iter()
            .map(|y| rng.normal_vec(y.len(), 0.0, 1.0))
            .collect();
        let wvars: Vec<Var> = outs
            .iter()
            .zip(&weights)
            .map(|(o, w)| {
                Tensor::from_slice(w, o.shape().clone(), o.value().device()).map(Var::constant)
            })
            .collect::<Result<_, _>>()?;
        let or: Vec<&Var> = outs.iter().collect();
        let xr: Vec<&Var> = xs.iter().collect();
        let g = grad(&or, &xr, Some(&wvars), false)?;
        let analytic: Vec<Vec<f32>> = g
            .iter()
            .map(|g| g.value().to_vec())
            .collect::<Result<_, _>>()?;
        finite("the analytic gradient", &analytic)?;
        (base, weights, analytic)
    };
    let rms: Vec<f64> = base
        .iter()
        .map(|y| {
            let ss: f64 = y.iter().map(|&v| (v as f64).powi(2)).sum();
            (ss / y.len().max(1) as f64).sqrt()
        })
        .collect();
    let stencil = Stencil {
        weights: &weights,
        base: &base,
        rms: &rms,
        noise_ulps: cfg.noise_ulps,
    };
    let host: Vec<Vec<f32>> = inputs
        .iter()
        .map(|x| x.to_vec())
        .collect::<Result<_, _>>()?;
    let rebuild = |vals: &[Vec<f32>]| -> Result<Vec<Tensor>, GradcheckError> {
        inputs
            .iter()
            .zip(vals)
            .map(|(x, v)| {
                Tensor::from_slice(v, x.shape().clone(), x.device()).map_err(GradcheckError::from)
            })
            .collect()
    };
    let steps = [-2.0, -1.0, 1.0, 2.0];
    // One per checked element or direction: (input, index, analytic, numeric, tolerance).
    type Entry = (Option<usize>, usize, f64, f64, f64);
    let mut entries: Vec<Entry> = Vec::new();
    let tolerance = |a: f64, n: f64, floor: f64| cfg.atol + floor + cfg.rtol * a.abs().max(n.abs());
    match cfg.directions {
        None => {
            for (i, xv) in host.iter().enumerate() {
                for e in 0..xv.len() {
                    let x0 = xv[e];
                    let h = cfg.eps * (x0.abs() as f64).max(1.0);
                    let mut t = Vec::with_capacity(4);
                    let mut at = Vec::with_capacity(4);
                    for s in steps {
                        let xj = (x0 as f64 + s * h) as f32;
                        t.push(xj as f64 - x0 as f64);
                        let mut vals = host.clone();
                        vals[i][e] = xj;
                        at.push(evaluate(f, &rebuild(&vals)?)?);
                    }
                    if !distinct_nonzero(&t) {
                        return Err(GradcheckError::Invalid(format!(
                            "step {h:e} vanishes in f32 at input {i} [{e}] = {x0}"
                        )));
                    }
                    for a in &at {
                        finite("the output near the input point", a)?;
                    }
                    let (n, floor) = stencil.derivative(&t, &at);
                    let a = analytic[i][e] as f64;
                    entries.push((Some(i), e, a, n, tolerance(a, n, floor)));
                }
            }
        }
        Some(ndir) => {
            for dir in 0..ndir {
                let v: Vec<Vec<f32>> = host
                    .iter()
                    .map(|x| {
                        rng.uniform_vec(x.len(), 0.0, 1.0)
                            .into_iter()
                            .map(|u| if u < 0.5 { -1.0 } else { 1.0 })
                            .collect()
                    })
                    .collect();
                let h = cfg.eps;
                let mut t = Vec::with_capacity(4);
                let mut at = Vec::with_capacity(4);
                // Rounding makes each displacement differ slightly from s·h·v; its effect on
                // s is bounded by Σ|a|·|residual| and added to the floor.
                let mut residual = 0.0f64;
                let mut resid_per_node = Vec::with_capacity(4);
                for s in steps {
                    let mut vals = host.clone();
                    let mut r = 0.0;
                    for (i, (x, vi)) in host.iter().zip(&v).enumerate() {
                        for e in 0..x.len() {
                            let xj = (x[e] as f64 + s * h * vi[e] as f64) as f32;
                            vals[i][e] = xj;
                            let off = xj as f64 - x[e] as f64;
                            r += (analytic[i][e] as f64).abs() * (off - s * h * vi[e] as f64).abs();
                        }
                    }
                    resid_per_node.push(r);
                    t.push(s * h);
                    at.push(evaluate(f, &rebuild(&vals)?)?);
                }
                for a in &at {
                    finite("the output near the input point", a)?;
                }
                let c = derivative_weights(&t);
                for (c, r) in c.iter().zip(&resid_per_node) {
                    residual += c.abs() * r;
                }
                let (n, floor) = stencil.derivative(&t, &at);
                let a: f64 = analytic
                    .iter()
                    .zip(&v)
                    .flat_map(|(a, v)| a.iter().zip(v).map(|(&a, &v)| a as f64 * v as f64))
                    .sum();
                entries.push((None, dir, a, n, tolerance(a, n, floor + residual)));
            }
        }
    }
    let checked = entries.len();
    let mut bad: Vec<Mismatch> = Vec::new();
    let (mut max_abs_err, mut worst_ratio) = (0.0f64, 0.0f64);
    for &(input, index, a, n, tol) in &entries {
        let err = (a - n).abs();
        max_abs_err = max_abs_err.max(err);
        worst_ratio = worst_ratio.max(err / tol);
        // NaN differences fail too.
        if err.is_nan() || err > tol {
            bad.push(Mismatch {
                input,
                index,
                analytic: a,
                numeric: n,
                tolerance: tol,
            });
        }
    }
    if bad.is_empty() {
        return Ok(GradcheckReport {
            checked,
            max_abs_err,
            worst_ratio,
        });
    }
    let failed = bad.len();
    let ratio = |m: &Mismatch| (m.analytic - m.numeric).abs() / m.tolerance;
    bad.sort_by(|a, b| ratio(b).total_cmp(&ratio(a)));
    bad.truncate(10);
    Err(GradcheckError::Mismatch {
        order,
        checked,
        failed,
        worst: bad,
    })
}

fn distinct_nonzero(t: &[f64]) -> bool {
    t.iter().all(|&x| x != 0.0) && (0..t.len()).all(|i| (i + 1..t.len()).all(|j| t[i] != t[j]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BackwardCtx;
    use tessera_tensor::Device;

    fn input(seed: u64, n: usize) -> Tensor {
        // Values in ±[0.5, 2): away from 0, where x³'s relative derivative is large.
        let mut rng = Rng::seed(seed);
        let mag = rng.uniform_vec(n, 0.5, 2.0);
        let sign = rng.uniform_vec(n, 0.0, 1.0);
        let v = mag
            .iter()
            .zip(&sign)
            .map(|(m, s)| if *s < 0.5 { -m } else { *m })
            .collect();
        Tensor::from_vec(v, [n], Device::Cpu).unwrap()
    }

    /// x³ as a custom op whose backward rule is `rule`.
    fn cube(
        x: &Var,
        rule: impl Fn(&BackwardCtx<'_>, &Var) -> crate::Result<Var> + Send + Sync + 'static,
    ) -> crate::Result<Var> {
        let value = x.value().powf(3.0)?;
        Ok(Var::from_op(
            "cube",
            value,
            vec![x.clone()],
            move |ctx, g| Ok(vec![Some(rule(ctx, g)?)]),
        ))
    }

    fn correct(ctx: &BackwardCtx<'_>, g: &Var) -> crate::Result<Var> {
        g.mul(&ctx.inputs[0].sqr()?.mul_scalar(3.0)?)
    }

    #[test]
    fn correct_custom_op_passes_both_orders() {
        let x = input(1, 12);
        let cfg = GradcheckConfig::default();
        let r = check_grad(|xs| cube(&xs[0], correct), std::slice::from_ref(&x), &cfg).unwrap();
        assert_eq!(r.checked, 12);
        assert!(r.worst_ratio < 0.5, "{r:?}");
        let r = check_grad_grad(|xs| cube(&xs[0], correct), &[x], &cfg).unwrap();
        // 12 inputs and 12 output weights.
        assert_eq!(r.checked, 24);
    }

    #[test]
    fn gradient_off_by_two_percent_is_rejected() {
        let x = input(2, 12);
        let cfg = GradcheckConfig::default();
        let off = |ctx: &BackwardCtx<'_>, g: &Var| g.mul(&ctx.inputs[0].sqr()?.mul_scalar(3.06)?);
        let err = check_grad(|xs| cube(&xs[0], off), std::slice::from_ref(&x), &cfg).unwrap_err();
        match err {
            GradcheckError::Mismatch {
                order: 1,
                checked: 12,
                failed,
                ..
            } => assert_eq!(failed, 12, "every element is 2 % off"),
            e => panic!("unexpected {e:?}"),
        }
        // Also in direction mode.
        let cfg = cfg.with_directions(3);
        assert!(matches!(
            check_grad(|xs| cube(&xs[0], off), &[x], &cfg),
            Err(GradcheckError::Mismatch { failed: 3, .. })
        ));
    }

    #[test]
    fn detached_backward_fails_second_order_only() {
        let x = input(3, 10);
        let cfg = GradcheckConfig::default();
        // Right values, but 3x² is a constant: d(grad)/dx is silently zero.
        let detached = |ctx: &BackwardCtx<'_>, g: &Var| {
            let d = ctx.inputs[0].value().sqr()?.mul_scalar(3.0)?;
            g.mul(&Var::constant(d))
        };
        check_grad(|xs| cube(&xs[0], detached), std::slice::from_ref(&x), &cfg).unwrap();
        let err = check_grad_grad(|xs| cube(&xs[0], detached), &[x], &cfg).unwrap_err();
        match err {
            GradcheckError::Mismatch {
                order: 2, failed, ..
            } => assert_eq!(failed, 10, "all x entries wrong, v entries right"),
            e => panic!("unexpected {e:?}"),
        }
    }

    #[test]
    fn wrong_second_derivative_is_rejected() {
        // First derivative right, its derivative 2 % off: 3x² computed as x·x·3 with one
        // factor scaled, then the first-order value corrected by a constant.
        let x = input(4, 10);
        let cfg = GradcheckConfig::default();
        let rule = |ctx: &BackwardCtx<'_>, g: &Var| {
            let x = &ctx.inputs[0];
            // d = 3x²·1.02 − 0.02·3x² (the second term constant): value exact, derivative 2 % off.
            let d = x.sqr()?.mul_scalar(3.06)?;
            let fix = Var::constant(x.value().sqr()?.mul_scalar(-0.06)?);
            g.mul(&d.add(&fix)?)
        };
        check_grad(|xs| cube(&xs[0], rule), std::slice::from_ref(&x), &cfg).unwrap();
        assert!(matches!(
            check_grad_grad(|xs| cube(&xs[0], rule), &[x], &cfg),
            Err(GradcheckError::Mismatch { order: 2, .. })
        ));
    }

    #[test]
    fn stencil_weights_are_the_five_point_rule() {
        let h = 0.01;
        let c = derivative_weights(&[-2.0 * h, -h, h, 2.0 * h]);
        let want = [1.0 / 12.0, -8.0 / 12.0, 8.0 / 12.0, -1.0 / 12.0];
        for (c, w) in c.iter().zip(want) {
            assert!((c * h - w).abs() < 1e-12, "{c} vs {w}");
        }
        // Exact for quartics at non-uniform nodes.
        let t = [-0.021, -0.0098, 0.0102, 0.019];
        let p = |x: f64| 0.3 + 1.7 * x - 2.0 * x * x + 5.0 * x.powi(3) - 7.0 * x.powi(4);
        let c = derivative_weights(&t);
        let d: f64 = c.iter().zip(&t).map(|(c, &t)| c * (p(t) - p(0.0))).sum();
        assert!((d - 1.7).abs() < 1e-9, "{d}");
    }

    #[test]
    fn invalid_outputs_are_reported() {
        let x = Tensor::from_vec(vec![-1.0, 2.0], [2], Device::Cpu).unwrap();
        let cfg = GradcheckConfig::default();
        assert!(matches!(
            check_grad(|xs| xs[0].log(), &[x], &cfg),
            Err(GradcheckError::Invalid(_))
        ));
    }
}
