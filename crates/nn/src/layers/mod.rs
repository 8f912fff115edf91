//! Layers. Each owns its parameters and buffers, names them like its PyTorch counterpart, and
//! has its own `forward`.
mod conv;

pub use conv::{Conv2d, Conv2dConfig, Padding};
