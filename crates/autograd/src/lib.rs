//! tessera-autograd: reverse-mode automatic differentiation on tessera-tensor.
//!
//! Every backward rule is written with the same differentiable ops as forward code (see
//! `ops/`), so `grad(.., create_graph: true)` returns vars that can be differentiated again —
//! what the WGAN-GP penalty needs. Ops and their rules live together, one file per family.
//!
//! ```
//! use tessera_autograd::{grad, Var};
//! use tessera_tensor::{Conv2dParams, Device, Rng, Tensor};
//!
//! # fn main() -> tessera_autograd::Result<()> {
//! let mut rng = Rng::seed(0);
//! let x = Var::param(Tensor::randn([1, 3, 16, 16], 0.0, 1.0, &mut rng, Device::Cpu)?);
//! let w = Var::param(Tensor::randn([8, 3, 3, 3], 0.0, 0.1, &mut rng, Device::Cpu)?);
//! let score = x.conv2d(&w, None, Conv2dParams::new(1, 1, 1))?.tanh()?.sum_all()?;
//! // ∂score/∂x, kept differentiable ...
//! let gx = grad(&[&score], &[&x], None, true)?.remove(0);
//! // ... so a penalty on it can be differentiated with respect to the weights.
//! let penalty = gx.sqr()?.sum_all()?.sqrt()?.add_scalar(-1.0)?.sqr()?;
//! let gw = grad(&[&penalty], &[&w], None, false)?.remove(0);
//! assert_eq!(gw.dims(), &[8, 3, 3, 3]);
//! assert!(gw.value().abs()?.sum_all()?.to_scalar()? > 0.0);
//! # Ok(())
//! # }
//! ```
mod engine;
pub mod gradcheck;
pub mod ops;
mod var;

pub use engine::grad;
pub use tessera_tensor as tensor;
pub use var::{
    is_grad_enabled, no_grad, on_worker_thread, BackwardCtx, BackwardFn, GradModeGuard, Var,
};

/// Errors of autograd: a tensor op failed, or the graph was used inconsistently.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum Error {
    #[error(transparent)]
    Tensor(#[from] tessera_tensor::Error),
    #[error(
        "backward of {op} returned a gradient of shape {got} for an input of shape {expected}"
    )]
    BackwardShape {
        op: &'static str,
        expected: tessera_tensor::Shape,
        got: tessera_tensor::Shape,
    },
    #[error("grad: {given} output gradients given for {outputs} outputs")]
    GradOutputs { outputs: usize, given: usize },
}

pub type Result<T> = std::result::Result<T, Error>;
