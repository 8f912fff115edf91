//! Layout ops: each one's backward is another layout op (reshape ↔ reshape, permute ↔ inverse
//! permute, broadcast_to ↔ sum_to, narrow ↔ pad_axis).
use crate::{Result, Var};
use tessera_tensor::{Shape, Tensor};

impl Var {
    pub fn reshape(&self, shape: impl Into<Shape>) -> Result<Var> {
        let value = self.value().reshape(shape)?;
        Ok(self.unary_op("reshape", value, |x, _, g| g.reshape(x.shape().clone())))
    }
    pub fn permute(&self, perm: &[usize]) -> Result<Var> {
        let value = self.value().permute(perm)?;
        let mut inverse = vec![0; perm.len()];
        for (i, &p) in perm.iter().enumerate() {
            inverse[p] = i;
        }
        Ok(self.unary_op("permute", value, move |_, _, g| g.permute(&inverse)))
    }
    pub fn transpose(&self, a: usize, b: usize) -> Result<Var> {
        let mut perm: Vec<usize> = (0..self.dims().len()).collect();
        if a >= perm.len() || b >= perm.len() {
            // Let the tensor op produce the error naming the shape.
            self.value().transpose(a, b)?;
        }
        perm.swap(a, b);
        self.permute(&perm)
    }
    pub fn broadcast_to(&self, shape: impl Into<Shape>) -> Result<Var> {
        let shape = shape.into();
        if &shape == self.shape() {
            return Ok(self.clone());
        }
        let value = self.value().broadcast_to(shape)?;
        Ok(self.unary_op("broadcast_to", value, |x, _, g| g.sum_to(x.shape())))
    }
    pub fn expand(&self, shape: impl Into<Shape>) -> Result<Var> {
        self.broadcast_to(shape)
    }
    pub fn narrow(&self, axis: usize, start: usize, len: usize) -> Result<Var> {
        let value = self.value().narrow(axis, start, len)?;
        Ok(self.unary_op("narrow", value, move |x, _, g| {
            g.pad_axis(axis, start, x.dims()[axis] - start - len)
        }))
    }
    pub fn slice(&self, axis: usize, range: std::ops::Range<usize>) -> Result<Var> {
        self.value().slice(axis, range.clone())?;
        self.narrow(axis, range.start, range.end - range.start)
    }
    /// Zero-pads `axis`; the adjoint of `narrow`.
    pub fn pad_axis(&self, axis: usize, before: usize, after: usize) -> Result<Var> {
        let value = self.value().pad_axis(axis, before, after)?;
        Ok(self.unary_op("pad_axis", value, move |x, _, g| {
            g.narrow(axis, before, x.dims()[axis])
        }))
    }
    pub fn concat(parts: &[&Var], axis: usize) -> Result<Var> {
        let values: Vec<&Tensor> = parts.iter().map(|p| p.value()).collect();
        let value = Tensor::concat(&values, axis)?;
        let inputs: Vec<Var> = parts.iter().map(|&p| p.clone()).collect();
        Ok(Var::from_op("concat", value, inputs, move |ctx, g| {
            let mut start = 0;
            let mut grads = Vec::with_capacity(ctx.inputs.len());
            for (i, input) in ctx.inputs.iter().enumerate() {
                let len = input.dims()[axis];
                grads.push(ctx.grad_for(i, || g.narrow(axis, start, len))?);
                start += len;
            }
            Ok(grads)
        }))
    }
    pub fn split(&self, sizes: &[usize], axis: usize) -> Result<Vec<Var>> {
        self.value().split(sizes, axis)?;
        let mut start = 0;
        sizes
            .iter()
            .map(|&len| {
                let part = self.narrow(axis, start, len);
                start += len;
                part
            })
            .collect()
    }
}
