//! Copies that rearrange data: permute, broadcast, narrow, zero-pad along an axis, concat.
use super::elementwise::view;
use crate::Shape;
use ndarray::{ArrayD, Axis, IxDyn, Slice};

fn standard(a: ndarray::ArrayViewD<'_, f32>) -> Vec<f32> {
    // `iter()` walks in logical row-major order whatever the strides.
    a.iter().copied().collect()
}

pub fn permute(x: &[f32], shape: &Shape, perm: &[usize]) -> Vec<f32> {
    standard(view(x, shape).permuted_axes(IxDyn(perm)))
}

pub fn broadcast_to(x: &[f32], shape: &Shape, out: &Shape) -> Vec<f32> {
    let v = view(x, shape);
    standard(v.broadcast(IxDyn(out.dims())).expect("checked by Tensor"))
}

pub fn narrow(x: &[f32], shape: &Shape, axis: usize, start: usize, len: usize) -> Vec<f32> {
    let v = view(x, shape);
    let outer: usize = shape.dims()[..axis].iter().product();
    let inner: usize = shape.dims()[axis + 1..].iter().product();
    if outer == 1 {
        return x[start * inner..(start + len) * inner].to_vec();
    }
    standard(v.slice_axis(Axis(axis), Slice::from(start..start + len)))
}

pub fn pad_axis(x: &[f32], shape: &Shape, axis: usize, before: usize, after: usize) -> Vec<f32> {
    let mut dims = shape.dims().to_vec();
    let len = dims[axis];
    dims[axis] += before + after;
    let mut out = ArrayD::<f32>::zeros(IxDyn(&dims));
    out.slice_axis_mut(Axis(axis), Slice::from(before..before + len))
        .assign(&view(x, shape));
    out.into_raw_vec_and_offset().0
}

pub fn concat(parts: &[(&[f32], &Shape)], axis: usize) -> Vec<f32> {
    let views: Vec<_> = parts.iter().map(|(x, s)| view(x, s)).collect();
    let out = ndarray::concatenate(Axis(axis), &views).expect("checked by Tensor");
    standard(out.view())
}
