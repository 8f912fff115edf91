//! Reductions over any set of axes. The reduced axes are moved last (one copy when they are not
//! already trailing), then each output element reduces one contiguous run, accumulating in f64.
use super::{layout, PAR_MIN};
use crate::backend::ReduceOp;
use crate::Shape;
use rayon::prelude::*;

/// Whether the kept axes are one non-empty run of consecutive axes (like C in N, C, H, W).
fn is_one_block(kept: &[usize]) -> bool {
    !kept.is_empty() && kept.windows(2).all(|w| w[1] == w[0] + 1)
}

/// Sums over every axis outside `k0..k1` without moving data: each kept element gathers `outer`
/// contiguous runs of `inner` values (batch-norm statistics over N, H, W read x once, in place).
fn sum_around_block(x: &[f32], dims: &[usize], k0: usize, k1: usize) -> Vec<f32> {
    let outer: usize = dims[..k0].iter().product();
    let mid: usize = dims[k0..k1].iter().product();
    let inner: usize = dims[k1..].iter().product();
    let sum_one = |m: usize| -> f32 {
        (0..outer)
            .map(|o| super::sum::sum(&x[(o * mid + m) * inner..][..inner]))
            .sum::<f64>() as f32
    };
    if x.len() >= PAR_MIN {
        (0..mid).into_par_iter().map(sum_one).collect()
    } else {
        (0..mid).map(sum_one).collect()
    }
}

pub fn reduce(x: &[f32], shape: &Shape, axes: &[usize], op: ReduceOp) -> Vec<f32> {
    let rank = shape.rank();
    let kept: Vec<usize> = (0..rank).filter(|a| !axes.contains(a)).collect();
    let run: usize = axes.iter().map(|&a| shape.dims()[a]).product();
    let outer: usize = kept.iter().map(|&a| shape.dims()[a]).product();
    let trailing = axes
        .iter()
        .enumerate()
        .all(|(i, &a)| a == rank - axes.len() + i);
    if op == ReduceOp::Sum && !trailing && is_one_block(&kept) {
        return sum_around_block(x, shape.dims(), kept[0], kept[kept.len() - 1] + 1);
    }
    let moved = (!trailing).then(|| {
        let perm: Vec<usize> = kept.iter().chain(axes).copied().collect();
        layout::permute(x, shape, &perm)
    });
    let data: &[f32] = moved.as_deref().unwrap_or(x);
    let reduce_run = |r: &[f32]| -> f32 {
        match op {
            ReduceOp::Sum => super::sum::sum(r) as f32,
            ReduceOp::Max => {
                r.iter().copied().fold(
                    f32::NEG_INFINITY,
                    |a, b| if b > a || b.is_nan() { b } else { a },
                )
            }
            ReduceOp::Min => {
                r.iter().copied().fold(
                    f32::INFINITY,
                    |a, b| if b < a || b.is_nan() { b } else { a },
                )
            }
            ReduceOp::Var { unbiased } => {
                let n = r.len() as f64;
                let mean = super::sum::sum(r) / n;
                let ss =
                    super::sum::lane_sums(r, r, r, |v, _, _| ((v as f64 - mean).powi(2), 0.0)).0;
                let denom = if unbiased { n - 1.0 } else { n };
                (ss / denom) as f32
            }
        }
    };
    if run == 0 {
        let empty = match op {
            ReduceOp::Sum => 0.0,
            ReduceOp::Max => f32::NEG_INFINITY,
            ReduceOp::Min => f32::INFINITY,
            ReduceOp::Var { .. } => f32::NAN,
        };
        return vec![empty; outer];
    }
    let out = if data.len() >= PAR_MIN {
        data.par_chunks(run).map(reduce_run).collect()
    } else {
        data.chunks(run).map(reduce_run).collect()
    };
    if let Some(moved) = moved {
        super::pool::give(moved);
    }
    out
}
