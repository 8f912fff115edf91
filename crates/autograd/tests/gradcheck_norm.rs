//! The fused normalization op (`Var::normalize`, `Var::normalize_with_stats`): first- and
//! second-order finite-difference checks over random shapes, every modulation, batch and
//! instance statistics; and agreement of the fused backward (recording off) with the recorded
//! one (recording on) and with the forward composed of elementary ops.
#![allow(clippy::cloned_ref_to_slice_refs)]
mod common;

use common::*;
use proptest::prelude::*;
use tessera_autograd::{grad, Var};
use tessera_tensor::{NormModulation, Tensor};

const EPS: f32 = 1e-5;

fn config(cases: u32) -> ProptestConfig {
    ProptestConfig {
        cases,
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// 0: none, 1: per-channel affine, 2: SPADE's spatial modulation.
fn modulated(v: &[Var], instance: bool, kind: u8) -> tessera_autograd::Result<Var> {
    let m = match kind {
        0 => NormModulation::None,
        1 => NormModulation::Channel {
            gamma: &v[1],
            beta: &v[2],
        },
        _ => NormModulation::Spatial {
            gamma: &v[1],
            beta: &v[2],
        },
    };
    Ok(v[0].normalize(instance, EPS, m)?.output)
}

/// The same function composed of elementary recorded ops (the reference).
fn composed(v: &[Var], instance: bool, kind: u8) -> tessera_autograd::Result<Var> {
    let axes: &[usize] = if instance { &[2, 3] } else { &[0, 2, 3] };
    let x = &v[0];
    let centred = x.sub(&x.mean(axes, true)?)?;
    let xhat = centred.mul(&centred.sqr()?.mean(axes, true)?.add_scalar(EPS)?.rsqrt()?)?;
    match kind {
        0 => Ok(xhat),
        1 => {
            let c = v[1].dims()[0];
            xhat.mul(&v[1].reshape([1, c, 1, 1])?)?
                .add(&v[2].reshape([1, c, 1, 1])?)
        }
        _ => xhat.mul(&v[1].add_scalar(1.0)?)?.add(&v[2]),
    }
}

fn inputs(dims: [usize; 4], kind: u8, seed: u64) -> Vec<Tensor> {
    let mut all = vec![normal(&dims, seed)];
    match kind {
        0 => {}
        1 => {
            all.push(normal(&[dims[1]], seed ^ 1));
            all.push(normal(&[dims[1]], seed ^ 2));
        }
        _ => {
            all.push(normal(&dims, seed ^ 1));
            all.push(normal(&dims, seed ^ 2));
        }
    }
    all
}

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    let (a, b) = (a.to_vec().unwrap(), b.to_vec().unwrap());
    a.iter()
        .zip(&b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0, f32::max)
}

proptest! {
    #![proptest_config(config(16))]

    #[test]
    // Groups of at least 4 values: with 2, x̂ is ±1 and its derivatives blow up as the two
    // values approach each other, beyond what f32 finite differences can follow.
    fn normalize_first_and_second_order(n in 1usize..=2, c in 1usize..=3, h in 2usize..=3,
                                        w in 2usize..=3, instance in any::<bool>(),
                                        kind in 0u8..3, seed in any::<u64>()) {
        let all = inputs([n, c, h, w], kind, seed);
        // A product with fixed weights, so the loss is not the (constant) sum of x̂.
        let weights = Var::constant(normal(&[n, c, h, w], seed ^ 3));
        let f = |v: &[Var]| modulated(v, instance, kind)?.mul(&weights);
        check_both("normalize", f, &all, seed)?;
    }

    #[test]
    fn fused_and_recorded_gradients_match_the_composition(n in 1usize..=3, c in 1usize..=4,
                                                          h in 1usize..=6, w in 2usize..=6,
                                                          instance in any::<bool>(),
                                                          kind in 0u8..3, seed in any::<u64>()) {
        let all = inputs([n, c, h, w], kind, seed);
        let dy = normal(&[n, c, h, w], seed ^ 4);
        let grads = |f: &dyn Fn(&[Var]) -> tessera_autograd::Result<Var>, create_graph: bool| {
            let vars: Vec<Var> = all.iter().map(|t| Var::param(t.clone())).collect();
            let y = f(&vars).unwrap();
            let refs: Vec<&Var> = vars.iter().collect();
            let out = grad(&[&y], &refs, Some(&[Var::constant(dy.clone())]), create_graph).unwrap();
            (y.value().clone(), out.into_iter().map(|g| g.value().clone()).collect::<Vec<_>>())
        };
        let (y_ref, g_ref) = grads(&|v| composed(v, instance, kind), false);
        for create_graph in [false, true] {
            let (y, g) = grads(&|v| modulated(v, instance, kind), create_graph);
            prop_assert!(max_abs_diff(&y, &y_ref) < 1e-4, "forward");
            for (i, (a, b)) in g.iter().zip(&g_ref).enumerate() {
                let scale = b.to_vec().unwrap().iter().fold(1f32, |m, v| m.max(v.abs()));
                prop_assert!(max_abs_diff(a, b) < 2e-4 * scale,
                    "input {i}, create_graph {create_graph}: {}", max_abs_diff(a, b));
            }
        }
    }

    #[test]
    fn normalize_with_given_stats_first_and_second_order(n in 1usize..=2, c in 1usize..=3,
                                                         h in 1usize..=3, w in 1usize..=3,
                                                         kind in 0u8..3, instance in any::<bool>(),
                                                         seed in any::<u64>()) {
        let all = inputs([n, c, h, w], kind, seed);
        // Per-sample statistics [N, C, 1, 1] with `instance`, else per-channel [1, C, 1, 1].
        let stats_n = if instance { n } else { 1 };
        let mean = normal(&[stats_n, c, 1, 1], seed ^ 5);
        let rstd = uniform(&[stats_n, c, 1, 1], 0.5, 2.0, seed ^ 6);
        let f = |v: &[Var]| {
            let m = match kind {
                0 => NormModulation::None,
                1 => NormModulation::Channel { gamma: &v[1], beta: &v[2] },
                _ => NormModulation::Spatial { gamma: &v[1], beta: &v[2] },
            };
            v[0].normalize_with_stats(&mean, &rstd, instance, m)?.sqr()
        };
        check_both("normalize_with_stats", f, &all, seed)?;
    }
}

#[test]
fn statistics_are_the_biased_ones_and_bad_input_is_an_error() {
    let x = normal(&[2, 3, 4, 5], 7);
    let v = Var::param(x.clone());
    let out = v.normalize(false, EPS, NormModulation::None).unwrap();
    let mean = x.mean(&[0, 2, 3], true).unwrap();
    let var = x.var(&[0, 2, 3], false, true).unwrap();
    assert!(max_abs_diff(&out.mean, &mean) < 1e-6);
    let rstd = var.add_scalar(EPS).unwrap().rsqrt().unwrap();
    assert!(max_abs_diff(&out.rstd, &rstd) < 1e-5);
    // γ of the wrong size, a non-4-d input, and a non-positive eps.
    let bad = Var::constant(normal(&[4], 1));
    let m = NormModulation::Channel {
        gamma: &bad,
        beta: &bad,
    };
    assert!(v.normalize(false, EPS, m).is_err());
    assert!(Var::param(normal(&[3, 4], 1))
        .normalize(false, EPS, NormModulation::None)
        .is_err());
    assert!(v.normalize(true, 0.0, NormModulation::None).is_err());
}
