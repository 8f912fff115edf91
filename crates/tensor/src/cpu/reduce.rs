//! Reductions over any set of axes. The reduced axes are moved last (one copy when they are not
//! already trailing), then each output element reduces one contiguous run, accumulating in f64.
use super::{layout, PAR_MIN};
use crate::backend::ReduceOp;
use crate::Shape;
use rayon::prelude::*;

pub fn reduce(x: &[f32], shape: &Shape, axes: &[usize], op: ReduceOp) -> Vec<f32> {
    let rank = shape.rank();
    let kept: Vec<usize> = (0..rank).filter(|a| !axes.contains(a)).collect();
    let run: usize = axes.iter().map(|&a| shape.dims()[a]).product();
    let outer: usize = kept.iter().map(|&a| shape.dims()[a]).product();
    let trailing = axes
        .iter()
        .enumerate()
        .all(|(i, &a)| a == rank - axes.len() + i);
    let moved;
    let data: &[f32] = if trailing {
        x
    } else {
        let perm: Vec<usize> = kept.iter().chain(axes).copied().collect();
        moved = layout::permute(x, shape, &perm);
        &moved
    };
    let reduce_run = |r: &[f32]| -> f32 {
        match op {
            ReduceOp::Sum => r.iter().map(|&v| v as f64).sum::<f64>() as f32,
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
                let mean = r.iter().map(|&v| v as f64).sum::<f64>() / n;
                let ss: f64 = r.iter().map(|&v| (v as f64 - mean).powi(2)).sum();
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
    if data.len() >= PAR_MIN {
        data.par_chunks(run).map(reduce_run).collect()
    } else {
        data.chunks(run).map(reduce_run).collect()
    }
}
