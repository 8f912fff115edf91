//! SinGAN: a pyramid of small fully-convolutional GANs learned from one image.
//!
//! tessera-singan follows the official PyTorch code (tamarott/SinGAN) number for number:
//!
//! * [`resize`]: the reference's MATLAB-compatible bicubic `imresize` (8-bit truncation first,
//!   antialiasing only when shrinking, mirrored far edges, ceil sizes);
//! * [`pyramid`]: the scale plan (`adjust_scales2image`) with the adjusted scale factor, stored
//!   in the model;
//! * [`net`]: the per-scale [`Generator`] and [`Critic`] (five conv 3×3 → BatchNorm → LeakyReLU(0.2)
//!   blocks, widths 32/64/128 by scale, tanh tail and residual add for G) with the reference's
//!   parameter names;
//! * [`model`]: [`SinGan`], the trained pyramid, and generation: random samples at any size
//!   ([`SinGan::sample`]), the deterministic reconstruction G(z*) ([`SinGan::reconstruct`]), and
//!   generation from any scale with an injected image ([`SinGan::generate`]), the primitive of
//!   the applications.
//!
//! Images are [1, 3, H, W] tensors in [−1, 1] (`x_png / 255 · 2 − 1`); index 0 is the
//! **coarsest** scale.
//!
//! ```
//! use tessera_singan::{net::Generator, SinGan};
//! use tessera_nn::ModuleExt;
//! use tessera_tensor::Rng;
//!
//! let g = Generator::new(32, &mut Rng::seed(0)).unwrap();
//! let count: usize = g.params().iter().map(|p| p.shape().numel()).sum();
//! assert_eq!(count, 29_763);
//! ```
pub mod config;
mod error;
pub mod image_io;
pub mod model;
pub mod net;
pub mod pyramid;
pub mod resize;

pub use config::TrainConfig;
pub use error::{Error, Result};
pub use model::{SampleOptions, SinGan, TrainedScale};
pub use net::{Critic, Generator};
pub use pyramid::{Pyramid, PyramidConfig};
