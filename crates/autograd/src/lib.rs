//! tessera-autograd: reverse-mode automatic differentiation on tessera-tensor.
//!
//! Every backward rule is written with the same differentiable ops as forward code (see
//! `ops/`), so `grad(.., create_graph: true)` returns vars that can be differentiated again —
//! what the WGAN-GP penalty needs. Ops and their rules live together, one file per family.
mod engine;
pub mod gradcheck;
pub mod ops;
mod var;

pub use engine::grad;
pub use tessera_tensor as tensor;
pub use var::{is_grad_enabled, no_grad, BackwardCtx, BackwardFn, GradModeGuard, Var};

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
