//! First- and second-order finite-difference checks of max_pool2d and of its closed pair of
//! linear companions, max_pool2d_scatter ↔ max_pool2d_gather.
//!
//! Max pooling is piecewise linear: finite differences are valid only where no perturbation
//! changes a window's argmax. Inputs are therefore distinct values on a grid of spacing 0.3
//! (`common::distinct`, every pair ≥ 0.1 apart), and the step is small enough (relative step
//! 10⁻³, so at most 2·10⁻³·max(|x|, 1) < 0.06 for these sizes) that a perturbed element never
//! overtakes or falls behind another one.
#![allow(clippy::cloned_ref_to_slice_refs)]
mod common;

use common::*;
use proptest::prelude::*;
use tessera_autograd::gradcheck::{check_grad, check_grad_grad, GradcheckConfig};
use tessera_autograd::{grad, Var};
use tessera_tensor::{Conv2dParams, MaxPool2dParams, Tensor};

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

fn small_step(seed: u64) -> GradcheckConfig {
    GradcheckConfig::default().with_seed(seed).with_eps(1e-3)
}

fn check_both_small_step<F>(
    what: &str,
    f: F,
    inputs: &[Tensor],
    seed: u64,
) -> Result<(), TestCaseError>
where
    F: Fn(&[Var]) -> tessera_autograd::Result<Var>,
{
    let c = small_step(seed);
    check_grad(&f, inputs, &c).map_err(|e| TestCaseError::fail(format!("{what}: {e}")))?;
    check_grad_grad(&f, inputs, &c).map_err(|e| TestCaseError::fail(format!("{what}: {e}")))?;
    Ok(())
}

/// A valid geometry and input size (padding at most half the kernel; the dilated window fits).
fn geometry() -> impl Strategy<Value = (MaxPool2dParams, [usize; 2])> {
    (
        [1usize..=3, 1usize..=3],
        [1usize..=3, 1usize..=3],
        [0usize..=1, 0usize..=1],
        [1usize..=2, 1usize..=2],
        [0usize..=3, 0usize..=3],
    )
        .prop_map(|(k, stride, pad, dilation, extra)| {
            let padding = [pad[0].min(k[0] / 2), pad[1].min(k[1] / 2)];
            let p = MaxPool2dParams {
                kernel: k,
                stride,
                padding,
                dilation,
            };
            let span = |i: usize| dilation[i] * (k[i] - 1) + 1;
            let hw = [
                span(0).saturating_sub(2 * padding[0]).max(1) + extra[0],
                span(1).saturating_sub(2 * padding[1]).max(1) + extra[1],
            ];
            (p, hw)
        })
}

proptest! {
    #![proptest_config(config(24))]

    #[test]
    fn max_pool2d_first_and_second_order(n in 1usize..=2, c in 1usize..=2, (p, [h, w]) in geometry(),
                                         seed in any::<u64>()) {
        let x = distinct(&[n, c, h, w], 0.0, seed);
        // A window wholly in the padding gives −∞ (no gradient); finite differences need
        // finite outputs, and the kernel tests cover that case.
        let y = x.max_pool2d(p).unwrap().to_vec().unwrap();
        prop_assume!(y.iter().all(|v| v.is_finite()));
        check_both_small_step("max_pool2d", |v: &[Var]| v[0].max_pool2d(p), &[x], seed)?;
    }

    #[test]
    fn scatter_and_gather_first_and_second_order(n in 1usize..=2, c in 1usize..=2,
                                                 (p, [h, w]) in geometry(), seed in any::<u64>()) {
        let x = distinct(&[n, c, h, w], 0.0, seed);
        let (y, idx) = x.max_pool2d_with_indices(p).unwrap();
        let g = normal(y.dims(), seed ^ 1);
        let (i1, i2) = (idx.clone(), idx.clone());
        check_both("max_pool2d_scatter", move |v: &[Var]| v[0].max_pool2d_scatter(&i1, [h, w], p),
                   &[g], seed)?;
        check_both("max_pool2d_gather", move |v: &[Var]| v[0].max_pool2d_gather(&i2, p),
                   &[normal(&[n, c, h, w], seed ^ 2)], seed)?;
    }

    /// A penalty on the input gradient of tanh → conv → max-pool → tanh, differentiated with
    /// respect to the conv weight (the WGAN-GP pattern through a pooling layer).
    #[test]
    fn max_pool2d_inside_a_gradient_penalty(seed in any::<u64>()) {
        // Scaled to ±1 so tanh does not saturate (x itself is not perturbed here).
        let x = distinct(&[1, 2, 6, 6], 0.0, seed).mul_scalar(0.1).unwrap();
        let w = normal(&[2, 2, 1, 1], seed ^ 3).mul_scalar(0.5).unwrap();
        let f = |v: &[Var]| {
            // The pool sees x itself, so its argmax does not move when w is perturbed.
            let pooled = v[0].max_pool2d(MaxPool2dParams::new(2, 2, 0))?;
            let out = pooled.tanh()?.conv2d(&v[1], None, Conv2dParams::new(1, 0, 1))?.tanh()?;
            let gx = grad(&[&out.sum_all()?], &[&v[0]], None, true)?.remove(0);
            gx.sqr()?.sum_all()?.add_scalar(1e-3)?.sqrt()?.add_scalar(-1.0)?.sqr()
        };
        // Only the weight is perturbed in this check: x is a constant of the penalty.
        let fw = |v: &[Var]| f(&[Var::param(x.clone()), v[0].clone()]);
        let c = small_step(seed);
        check_grad(fw, &[w.clone()], &c).map_err(|e| TestCaseError::fail(format!("gp: {e}")))?;
        check_grad_grad(fw, &[w], &c).map_err(|e| TestCaseError::fail(format!("gp 2nd: {e}")))?;
    }
}

#[test]
fn max_pool2d_gradient_goes_to_the_argmax() {
    // x = [[1, 5], [3, 2]] pooled 2×2: the gradient is all at the 5.
    let x = Var::param(tensor(vec![1.0, 5.0, 3.0, 2.0], &[1, 1, 2, 2]));
    let y = x.max_pool2d(MaxPool2dParams::new(2, 2, 0)).unwrap();
    assert_eq!(y.value().to_vec().unwrap(), vec![5.0]);
    // An output gradient that is itself a variable, so the input gradient is recorded.
    let v = Var::param(tensor(vec![3.0], &[1, 1, 1, 1]));
    let g = grad(&[&y], &[&x], Some(&[v.clone()]), true)
        .unwrap()
        .remove(0);
    assert_eq!(g.value().to_vec().unwrap(), vec![0.0, 3.0, 0.0, 0.0]);
    assert_eq!(g.op_name(), Some("max_pool2d_scatter"));
    // d/dv Σ u·g = gather(u) at the argmax; d/dx of it is zero (max pooling is piecewise linear).
    let u = Var::constant(tensor(vec![10.0, 20.0, 30.0, 40.0], &[1, 1, 2, 2]));
    let s = g.mul(&u).unwrap().sum_all().unwrap();
    let gv = grad(&[&s], &[&v], None, true).unwrap().remove(0);
    assert_eq!(gv.value().to_vec().unwrap(), vec![20.0]);
    assert_eq!(gv.op_name(), None, "u is constant, so the result is too");
}
