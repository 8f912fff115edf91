//! tessera-nn: layers with named parameters and buffers (PyTorch `state_dict` names), train and
//! eval mode, initializers, optimizers, and checkpoints.
mod error;
pub mod init;
pub mod layers;
pub mod module;
mod param;

pub use error::{Error, Result};
pub use layers::*;
pub use module::{join, Entry, Module, ModuleExt};
pub use param::{Buffer, Param};
