//! tessera-tensor: dense n-d f32 tensors (NCHW for images) on a [`Device`].
//!
//! [`Tensor`] is the user-facing type: immutable, cheap to clone (shared storage), every op
//! returning `Result` with an [`Error`] that names the op and the shapes involved. Devices
//! implement [`backend::BackendStorage`]; the CPU backend runs on ndarray, rayon and `gemm`.
pub mod backend;
pub mod cpu;
#[cfg(feature = "cuda")]
pub mod cuda;
mod device;
mod error;
mod rng;
mod shape;
mod storage;
mod tensor;

pub use backend::{
    AdamStep, BinaryOp, CmpOp, Conv2dParams, Interpolation, MaxPool2dParams, NormModulation,
    PadMode, Pool2dParams, ReduceOp, UnaryOp,
};
pub use device::{
    cuda_conv_tf32, cuda_conv_winograd, set_cuda_conv_tf32, set_cuda_conv_winograd, Device,
};
pub use error::{Error, Result};
pub use rng::Rng;
pub use shape::Shape;
pub use storage::Storage;
pub use tensor::Tensor;
