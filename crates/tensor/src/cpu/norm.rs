//! Fused batch / instance normalization on the CPU (SPADE's included).
//!
//! Forward: one pass computes per-group statistics (f64 sums), a second writes
//! `(x − μ)·rsqrt(σ² + ε)` with the modulation applied. Backward: one pass sums, per group,
//! g and g·x̂ (g = dy·s, s the modulation's scale), a second writes
//! `dx = rstd·(g − mean(g) − x̂·mean(g·x̂))` (and dγ = dy·x̂ for SPADE). Both run in parallel
//! over planes; the composite ops in tessera-autograd are the reference they are tested against.
use super::elementwise::per_block as per_plane;
use super::PAR_MIN;
use crate::backend::NormModulation;
use rayon::prelude::*;

/// The statistics group of plane `p` (of n·c planes).
fn group_of(p: usize, c: usize, instance: bool) -> usize {
    if instance {
        p
    } else {
        p % c
    }
}

/// Per-plane values `f(p)` for the n·c planes, in parallel when the planes hold many elements.
fn map_planes<T: Send>(
    planes: usize,
    total: usize,
    f: impl Fn(usize) -> T + Sync + Send,
) -> Vec<T> {
    if total >= PAR_MIN {
        (0..planes).into_par_iter().map(f).collect()
    } else {
        (0..planes).map(f).collect()
    }
}

/// Sums per-plane pairs into per-group pairs (batch norm: groups are channels over the batch).
fn per_group(plane_sums: Vec<(f64, f64)>, c: usize, instance: bool) -> Vec<(f64, f64)> {
    if instance {
        return plane_sums;
    }
    let mut groups = vec![(0f64, 0f64); c];
    for (p, (a, b)) in plane_sums.into_iter().enumerate() {
        groups[p % c].0 += a;
        groups[p % c].1 += b;
    }
    groups
}

/// (mean, 1/sqrt(σ² + ε)) per group: N·C groups for instance norm, C for batch norm.
pub fn norm_stats(
    x: &[f32],
    [n, c, h, w]: [usize; 4],
    instance: bool,
    eps: f32,
) -> (Vec<f32>, Vec<f32>) {
    let hw = h * w;
    let sums = map_planes(n * c, x.len(), |p| {
        super::sum::sum_and_squares(&x[p * hw..][..hw])
    });
    let count = (if instance { hw } else { n * hw }) as f64;
    per_group(sums, c, instance)
        .into_iter()
        .map(|(s, ss)| {
            let mean = s / count;
            let var = (ss / count - mean * mean).max(0.0);
            (mean as f32, (1.0 / (var + eps as f64).sqrt()) as f32)
        })
        .unzip()
}

pub fn norm_modulate(
    x: &[f32],
    [_, c, h, w]: [usize; 4],
    mean: &[f32],
    rstd: &[f32],
    instance: bool,
    m: NormModulation<&[f32]>,
) -> Vec<f32> {
    let hw = h * w;
    let mut out = super::pool::take(x.len());
    if hw == 0 {
        return out;
    }
    per_plane(&mut out, hw, |p, y| {
        let g = group_of(p, c, instance);
        let (mu, r) = (mean[g], rstd[g]);
        let src = &x[p * hw..][..hw];
        match m {
            NormModulation::None => {
                y.iter_mut().zip(src).for_each(|(y, &v)| *y = (v - mu) * r);
            }
            NormModulation::Channel { gamma, beta } => {
                let (s, t) = (r * gamma[p % c], beta[p % c]);
                y.iter_mut()
                    .zip(src)
                    .for_each(|(y, &v)| *y = (v - mu) * s + t);
            }
            NormModulation::Spatial { gamma, beta } => {
                let (gm, bt) = (&gamma[p * hw..][..hw], &beta[p * hw..][..hw]);
                for i in 0..hw {
                    y[i] = (src[i] - mu) * r * (1.0 + gm[i]) + bt[i];
                }
            }
        }
    });
    out
}

/// dx (and dγ when `gamma` is given) of `y = x̂·s`, s = 1 or 1 + γ; `dy` has x's shape.
#[allow(clippy::too_many_arguments)]
pub fn norm_backward(
    dy: &[f32],
    x: &[f32],
    [n, c, h, w]: [usize; 4],
    mean: &[f32],
    rstd: &[f32],
    instance: bool,
    gamma: Option<&[f32]>,
) -> (Vec<f32>, Option<Vec<f32>>) {
    let hw = h * w;
    let mut dx = super::pool::take(x.len());
    let mut dgamma = gamma.map(|_| super::pool::take(x.len()));
    if hw == 0 {
        return (dx, dgamma);
    }
    // Per plane: the plane's dy, x and γ (when given), and its group's statistics.
    let plane = |p: usize| {
        let g = group_of(p, c, instance);
        let span = p * hw..(p + 1) * hw;
        (
            &dy[span.clone()],
            &x[span.clone()],
            gamma.map(|gm| &gm[span]),
            mean[g],
            rstd[g],
        )
    };
    // Σ g and Σ g·x̂ with g = dy·s; the γ branch is outside the loops so each one vectorizes.
    let sums = map_planes(n * c, x.len(), |p| {
        let (d, src, gm, mu, r) = plane(p);
        let pair = |gi: f32, xi: f32| {
            let xhat = ((xi - mu) * r) as f64;
            (gi as f64, gi as f64 * xhat)
        };
        match gm {
            Some(gm) => super::sum::lane_sums(d, gm, src, |d, gv, xi| pair(d * (1.0 + gv), xi)),
            None => super::sum::lane_sums(d, src, src, |d, xi, _| pair(d, xi)),
        }
    });
    let count = (if instance { hw } else { n * hw }) as f64;
    let means: Vec<(f32, f32)> = per_group(sums, c, instance)
        .into_iter()
        .map(|(a, b)| ((a / count) as f32, (b / count) as f32))
        .collect();
    per_plane(&mut dx, hw, |p, out| {
        let (d, src, gm, mu, r) = plane(p);
        let (mg, mgx) = means[group_of(p, c, instance)];
        match gm {
            Some(gm) => {
                for i in 0..hw {
                    let xhat = (src[i] - mu) * r;
                    out[i] = r * (d[i] * (1.0 + gm[i]) - mg - xhat * mgx);
                }
            }
            None => {
                for i in 0..hw {
                    let xhat = (src[i] - mu) * r;
                    out[i] = r * (d[i] - mg - xhat * mgx);
                }
            }
        }
    });
    if let Some(dg) = dgamma.as_mut() {
        per_plane(dg, hw, |p, out| {
            let g = group_of(p, c, instance);
            let (mu, r) = (mean[g], rstd[g]);
            let (src, d) = (&x[p * hw..][..hw], &dy[p * hw..][..hw]);
            for i in 0..hw {
                out[i] = d[i] * (src[i] - mu) * r;
            }
        });
    }
    (dx, dgamma)
}
