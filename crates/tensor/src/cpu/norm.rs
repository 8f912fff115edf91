//! Fused SPADE normalization on the CPU: per-group statistics (f64 sums, one pass), then one
//! pass writing `(x − μ)·rsqrt(σ² + ε)·(1 + γ) + β`, in parallel over groups and planes.
use super::PAR_MIN;
use rayon::prelude::*;

/// (mean, 1/sqrt(var + eps)) of `runs`, all of one statistics group.
fn group_stats<'a>(runs: impl Iterator<Item = &'a [f32]>, eps: f32) -> (f32, f32) {
    let (mut n, mut s, mut ss) = (0usize, 0f64, 0f64);
    for run in runs {
        n += run.len();
        for &v in run {
            let v = v as f64;
            s += v;
            ss += v * v;
        }
    }
    let mean = s / n as f64;
    let var = (ss / n as f64 - mean * mean).max(0.0);
    (mean as f32, (1.0 / (var + eps as f64).sqrt()) as f32)
}

pub fn spade_norm(
    x: &[f32],
    [n, c, h, w]: [usize; 4],
    gamma: &[f32],
    beta: &[f32],
    instance: bool,
    eps: f32,
) -> Vec<f32> {
    let hw = h * w;
    let mut out = super::pool::take(x.len());
    if hw == 0 || n * c == 0 {
        return out;
    }
    let parallel = x.len() >= PAR_MIN;
    // Statistics per plane (instance) or per channel over the batch (batch norm).
    let stats: Vec<(f32, f32)> = if instance {
        let one = |p: &[f32]| group_stats(std::iter::once(p), eps);
        if parallel {
            x.par_chunks(hw).map(one).collect()
        } else {
            x.chunks(hw).map(one).collect()
        }
    } else {
        let one = |ch: usize| group_stats((0..n).map(|i| &x[(i * c + ch) * hw..][..hw]), eps);
        if parallel {
            (0..c).into_par_iter().map(one).collect()
        } else {
            (0..c).map(one).collect()
        }
    };
    let plane = |(p, y): (usize, &mut [f32])| {
        let (mean, r) = stats[if instance { p } else { p % c }];
        let src = &x[p * hw..][..hw];
        let (g, b) = (&gamma[p * hw..][..hw], &beta[p * hw..][..hw]);
        for i in 0..hw {
            y[i] = (src[i] - mean) * r * (1.0 + g[i]) + b[i];
        }
    };
    if parallel {
        out.par_chunks_mut(hw).enumerate().for_each(plane);
    } else {
        out.chunks_mut(hw).enumerate().for_each(plane);
    }
    out
}
