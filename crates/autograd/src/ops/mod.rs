//! Differentiable ops: each forward op beside its backward rule, the rule written with ops
//! from this module so it can be differentiated again.
//!
//! Closed families keep this finite: conv2d ↔ conv2d_input_grad ↔ conv2d_weight_grad; pad2d ↔
//! pad2d_adjoint; avg_pool2d ↔ its adjoint; max_pool2d_scatter ↔ max_pool2d_gather (max_pool2d's
//! backward); upsample2d ↔ its adjoint; narrow ↔ pad_axis;
//! broadcast_to ↔ sum_to; permute ↔ inverse permute. Piecewise-linear activations multiply by
//! a constant mask; smooth ones express their derivative through their input or output.
mod elementwise;
mod layout;
mod linalg;
mod maxpool;
mod norm;
mod reduce;
mod spatial;

use crate::{Result, Var};
pub use norm::Normalized;
use tessera_tensor::Tensor;

impl Var {
    /// Records a one-input op whose gradient is `rule(input, output, grad_out)`.
    pub(crate) fn unary_op(
        &self,
        name: &'static str,
        value: Tensor,
        rule: impl Fn(&Var, &Var, &Var) -> Result<Var> + Send + Sync + 'static,
    ) -> Var {
        Var::from_op(name, value, vec![self.clone()], move |ctx, g| {
            Ok(vec![
                ctx.grad_for(0, || rule(&ctx.inputs[0], ctx.output, g))?
            ])
        })
    }
}

/// A constant var from a tensor op's result.
pub(crate) fn constant(t: tessera_tensor::Result<Tensor>) -> Result<Var> {
    Ok(Var::constant(t?))
}
