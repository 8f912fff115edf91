//! Reductions. sum ↔ broadcast_to close under differentiation; mean and var are compositions.
use super::constant;
use crate::{Result, Var};
use tessera_tensor::{CmpOp, Shape};

/// The shape of `x` with `axes` kept as size 1.
fn keepdim_shape(x: &Shape, axes: &[usize]) -> Shape {
    Shape::new(
        x.dims()
            .iter()
            .enumerate()
            .map(|(i, &d)| if axes.contains(&i) { 1 } else { d })
            .collect::<Vec<_>>(),
    )
}

impl Var {
    pub fn sum(&self, axes: &[usize], keepdim: bool) -> Result<Var> {
        let value = self.value().sum(axes, keepdim)?;
        let axes = axes.to_vec();
        Ok(self.unary_op("sum", value, move |x, _, g| {
            g.reshape(keepdim_shape(x.shape(), &axes))?
                .broadcast_to(x.shape().clone())
        }))
    }
    /// How many elements each output of a reduction over `axes` combines (duplicates ignored).
    fn reduced_count(&self, axes: &[usize]) -> usize {
        let mut uniq = axes.to_vec();
        uniq.sort_unstable();
        uniq.dedup();
        uniq.iter()
            .map(|&a| self.dims().get(a).copied().unwrap_or(1))
            .product()
    }
    pub fn mean(&self, axes: &[usize], keepdim: bool) -> Result<Var> {
        let n = self.reduced_count(axes);
        self.sum(axes, keepdim)?.mul_scalar(1.0 / n.max(1) as f32)
    }
    /// Variance over `axes`, composed from differentiable ops (so twice differentiable).
    pub fn var(&self, axes: &[usize], unbiased: bool, keepdim: bool) -> Result<Var> {
        let n = self.reduced_count(axes);
        let centred = self.sub(&self.mean(axes, true)?)?;
        let denom = if unbiased { n as f32 - 1.0 } else { n as f32 };
        centred.sqr()?.sum(axes, keepdim)?.mul_scalar(1.0 / denom)
    }
    fn extreme(&self, axes: &[usize], keepdim: bool, max: bool) -> Result<Var> {
        let value = if max {
            self.value().max(axes, keepdim)?
        } else {
            self.value().min(axes, keepdim)?
        };
        let axes = axes.to_vec();
        Ok(
            self.unary_op(if max { "max" } else { "min" }, value, move |x, y, g| {
                // Gradient flows to the extreme entries, split evenly among ties (like `amax`).
                let keep = keepdim_shape(x.shape(), &axes);
                let hit = x
                    .value()
                    .cmp(&y.value().reshape(keep.clone())?, CmpOp::Eq)?;
                let share = hit.div(&hit.sum(&axes, true)?)?;
                g.reshape(keep)?.mul(&constant(Ok(share))?)
            }),
        )
    }
    pub fn max(&self, axes: &[usize], keepdim: bool) -> Result<Var> {
        self.extreme(axes, keepdim, true)
    }
    pub fn min(&self, axes: &[usize], keepdim: bool) -> Result<Var> {
        self.extreme(axes, keepdim, false)
    }
    pub fn sum_all(&self) -> Result<Var> {
        self.sum(&(0..self.dims().len()).collect::<Vec<_>>(), false)
    }
    pub fn mean_all(&self) -> Result<Var> {
        self.mean(&(0..self.dims().len()).collect::<Vec<_>>(), false)
    }
    /// Sums a broadcast value back to `shape`; the adjoint of `broadcast_to`.
    pub fn sum_to(&self, shape: &Shape) -> Result<Var> {
        if self.shape() == shape {
            return Ok(self.clone());
        }
        let value = self.value().sum_to(shape)?;
        Ok(self.unary_op("sum_to", value, |x, _, g| g.broadcast_to(x.shape().clone())))
    }
}
