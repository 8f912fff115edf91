//! Max pooling. Its gradient routes each output gradient to the argmax position recorded in the
//! forward (the window offsets are data, held constant): `max_pool2d_scatter`. That op is linear
//! and its gradient is the matching read, `max_pool2d_gather`, whose gradient is the scatter
//! again, so the pair closes under differentiation and grad of grad works (the second derivative
//! of max pooling with respect to its input is zero almost everywhere; with respect to an output
//! gradient it is the gather).
use crate::{Result, Var};
use tessera_tensor::{MaxPool2dParams, Tensor};

fn hw(v: &Var) -> [usize; 2] {
    let d = v.dims();
    [d[2], d[3]]
}

impl Var {
    /// `F.max_pool2d(x, kernel, stride, padding, dilation)` (`ceil_mode=False`).
    pub fn max_pool2d(&self, p: MaxPool2dParams) -> Result<Var> {
        Ok(self.max_pool2d_with_indices(p)?.0)
    }
    /// Max pooling and the window offsets it chose (see [`Tensor::max_pool2d_with_indices`]).
    pub fn max_pool2d_with_indices(&self, p: MaxPool2dParams) -> Result<(Var, Tensor)> {
        let (value, indices) = self.value().max_pool2d_with_indices(p)?;
        let idx = indices.clone();
        let out = self.unary_op("max_pool2d", value, move |x, _, g| {
            g.max_pool2d_scatter(&idx, hw(x), p)
        });
        Ok((out, indices))
    }
    /// Adds each value of `self` (pooled shape) into the input position its window offset in
    /// `indices` names; the result has spatial size `in_hw`. Linear in `self`; `indices` is
    /// constant.
    pub fn max_pool2d_scatter(
        &self,
        indices: &Tensor,
        in_hw: [usize; 2],
        p: MaxPool2dParams,
    ) -> Result<Var> {
        let value = self.value().max_pool2d_scatter(indices, in_hw, p)?;
        let idx = indices.clone();
        Ok(self.unary_op("max_pool2d_scatter", value, move |_, _, g| {
            g.max_pool2d_gather(&idx, p)
        }))
    }
    /// Reads `self` at the positions the window offsets in `indices` name: the adjoint of
    /// [`Var::max_pool2d_scatter`]. Linear in `self`; `indices` is constant.
    pub fn max_pool2d_gather(&self, indices: &Tensor, p: MaxPool2dParams) -> Result<Var> {
        let value = self.value().max_pool2d_gather(indices, p)?;
        let idx = indices.clone();
        Ok(self.unary_op("max_pool2d_gather", value, move |x, _, g| {
            g.max_pool2d_scatter(&idx, hw(x), p)
        }))
    }
}
