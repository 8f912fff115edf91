//! tessera-nn: layers with named parameters and buffers (PyTorch `state_dict` names), train and
//! eval mode, initializers, optimizers, and checkpoints.
pub mod binary_conv;
pub mod checkpoint;
mod error;
pub mod init;
pub mod layers;
pub mod module;
pub mod optim;
mod param;

pub use binary_conv::BinaryMap;
pub use error::{Error, Result};
pub use layers::*;
pub use module::{join, Entry, Module, ModuleExt};
pub use optim::{Adam, AdamConfig, Optimizer};
pub use param::{Buffer, Param};
