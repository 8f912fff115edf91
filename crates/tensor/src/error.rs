//! The one error type of tessera-tensor: every variant names the op that failed.
use crate::{Device, Shape};

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum Error {
    #[error("{op}: shapes {lhs} and {rhs} are incompatible: {why}")]
    ShapeMismatch {
        op: &'static str,
        lhs: Shape,
        rhs: Shape,
        why: String,
    },
    #[error("{op}: invalid argument for input of shape {shape}: {why}")]
    InvalidArgument {
        op: &'static str,
        shape: Shape,
        why: String,
    },
    #[error("{op}: tensors live on different devices ({lhs:?} and {rhs:?})")]
    DeviceMismatch {
        op: &'static str,
        lhs: Device,
        rhs: Device,
    },
    #[error("{op}: device {device:?} needs tessera built with the `cuda` feature")]
    CudaNotBuilt { op: &'static str, device: Device },
    /// A failure inside the CUDA backend (driver, kernel compilation, size limits).
    #[error("{op}: CUDA backend: {why}")]
    Cuda { op: &'static str, why: String },
    #[error("{op}: {len} values cannot fill shape {shape}")]
    DataLength {
        op: &'static str,
        len: usize,
        shape: Shape,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub(crate) fn invalid(op: &'static str, shape: &Shape, why: impl Into<String>) -> Self {
        Error::InvalidArgument {
            op,
            shape: shape.clone(),
            why: why.into(),
        }
    }
    pub(crate) fn mismatch(
        op: &'static str,
        lhs: &Shape,
        rhs: &Shape,
        why: impl Into<String>,
    ) -> Self {
        Error::ShapeMismatch {
            op,
            lhs: lhs.clone(),
            rhs: rhs.clone(),
            why: why.into(),
        }
    }
}
