//! Copies that rearrange data: permute, broadcast, narrow, zero-pad along an axis, concat.
use super::elementwise::view;
use crate::Shape;
use ndarray::{ArrayViewMutD, Axis, IxDyn, Slice};
use rayon::prelude::*;

fn standard(a: ndarray::ArrayViewD<'_, f32>) -> Vec<f32> {
    // `iter()` walks in logical row-major order whatever the strides.
    a.iter().copied().collect()
}

/// Outputs below this many elements are copied on one thread (rayon's hand-off costs more).
const PARALLEL_MIN: usize = 1 << 16;

/// Row-major copy of the view of `x` with `dims` and element `strides` (stride 0 repeats).
///
/// ndarray's dynamic-rank iterator costs tens of cycles per element; here dimensions that are
/// contiguous with each other are merged first, and the innermost run is a slice copy (stride 1),
/// a fill (stride 0) or a strided gather, so a broadcast or a permute runs at copy speed.
fn gather_strided(x: &[f32], dims: &[usize], strides: &[usize]) -> Vec<f32> {
    let mut merged: Vec<(usize, usize)> = Vec::with_capacity(dims.len());
    for (&d, &s) in dims.iter().zip(strides) {
        if d == 1 {
            continue;
        }
        match merged.last_mut() {
            Some((outer_d, outer_s)) if *outer_s == s * d => {
                *outer_d *= d;
                *outer_s = s;
            }
            _ => merged.push((d, s)),
        }
    }
    let (run, run_stride) = merged.pop().unwrap_or((1, 1));
    let total: usize = dims.iter().product();
    let mut out = super::pool::take(total);
    if total == 0 {
        return out;
    }
    // Source offset of output row `row` (one run each), from its mixed-radix digits.
    let row_offset = |mut row: usize| {
        let mut offset = 0;
        for &(d, s) in merged.iter().rev() {
            offset += (row % d) * s;
            row /= d;
        }
        offset
    };
    let copy_rows = |first_row: usize, chunk: &mut [f32]| {
        for (i, dst) in chunk.chunks_exact_mut(run).enumerate() {
            let src = row_offset(first_row + i);
            match run_stride {
                1 => dst.copy_from_slice(&x[src..src + run]),
                0 => dst.fill(x[src]),
                s => dst
                    .iter_mut()
                    .enumerate()
                    .for_each(|(j, v)| *v = x[src + j * s]),
            }
        }
    };
    if total < PARALLEL_MIN {
        copy_rows(0, &mut out);
    } else {
        let rows_per_task = PARALLEL_MIN.div_ceil(run).max(1);
        out.par_chunks_mut(rows_per_task * run)
            .enumerate()
            .for_each(|(t, chunk)| copy_rows(t * rows_per_task, chunk));
    }
    out
}

/// Row-major element strides of `dims`.
fn contiguous_strides(dims: &[usize]) -> Vec<usize> {
    let mut strides = vec![1; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        strides[i] = strides[i + 1] * dims[i + 1];
    }
    strides
}

pub fn permute(x: &[f32], shape: &Shape, perm: &[usize]) -> Vec<f32> {
    let strides = contiguous_strides(shape.dims());
    let dims: Vec<usize> = perm.iter().map(|&p| shape.dims()[p]).collect();
    let moved: Vec<usize> = perm.iter().map(|&p| strides[p]).collect();
    gather_strided(x, &dims, &moved)
}

pub fn broadcast_to(x: &[f32], shape: &Shape, out: &Shape) -> Vec<f32> {
    // Dimensions align on the right; missing leading ones and size-1 ones repeat (stride 0).
    let lead = out.rank() - shape.rank();
    let own = contiguous_strides(shape.dims());
    let strides: Vec<usize> = (0..out.rank())
        .map(|i| match i.checked_sub(lead) {
            Some(j) if shape.dims()[j] != 1 => own[j],
            _ => 0,
        })
        .collect();
    gather_strided(x, out.dims(), &strides)
}

pub fn narrow(x: &[f32], shape: &Shape, axis: usize, start: usize, len: usize) -> Vec<f32> {
    let strides = contiguous_strides(shape.dims());
    let mut dims = shape.dims().to_vec();
    dims[axis] = len;
    gather_strided(&x[start * strides[axis]..], &dims, &strides)
}

pub fn pad_axis(x: &[f32], shape: &Shape, axis: usize, before: usize, after: usize) -> Vec<f32> {
    let mut dims = shape.dims().to_vec();
    let len = dims[axis];
    dims[axis] += before + after;
    let mut out = super::pool::take_zeroed(dims.iter().product());
    ArrayViewMutD::from_shape(IxDyn(&dims), &mut out)
        .expect("output length matches shape")
        .slice_axis_mut(Axis(axis), Slice::from(before..before + len))
        .assign(&view(x, shape));
    out
}

pub fn concat(parts: &[(&[f32], &Shape)], axis: usize) -> Vec<f32> {
    let views: Vec<_> = parts.iter().map(|(x, s)| view(x, s)).collect();
    let out = ndarray::concatenate(Axis(axis), &views).expect("checked by Tensor");
    standard(out.view())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp(n: usize) -> Vec<f32> {
        (0..n).map(|i| i as f32).collect()
    }

    /// Shapes large enough for the parallel path, with runs that do not divide the task size.
    #[test]
    fn permute_and_broadcast_match_ndarray_on_large_shapes() {
        for (dims, perm) in [
            (vec![3, 37, 41, 29], vec![0, 2, 3, 1]),
            (vec![2, 64, 33, 35], vec![1, 0, 2, 3]),
            (vec![5, 300, 70], vec![2, 1, 0]),
            (vec![1, 129, 1, 700], vec![3, 2, 1, 0]),
        ] {
            let shape = Shape::from(dims.as_slice());
            let x = ramp(shape.numel());
            let want = standard(view(&x, &shape).permuted_axes(IxDyn(&perm)));
            assert_eq!(
                permute(&x, &shape, &perm),
                want,
                "permute {dims:?} by {perm:?}"
            );
        }
        for (from, to) in [
            (vec![64, 1, 1], vec![2, 64, 33, 35]),
            (vec![1, 64, 1, 1], vec![3, 64, 31, 37]),
            (vec![1, 1, 33, 35], vec![2, 64, 33, 35]),
            (vec![700], vec![3, 41, 700]),
            (vec![], vec![300, 301]),
        ] {
            let (from_shape, to_shape) = (Shape::from(from.as_slice()), Shape::from(to.as_slice()));
            let x = ramp(from_shape.numel());
            let want = standard(view(&x, &from_shape).broadcast(IxDyn(&to)).unwrap());
            assert_eq!(
                broadcast_to(&x, &from_shape, &to_shape),
                want,
                "{from:?} to {to:?}"
            );
        }
    }
}
