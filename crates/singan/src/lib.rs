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
//! * [`train`](mod@train): the training loop ([`train()`], [`resume`]) with a progress callback, and its
//!   one-epoch core [`ScaleTrainer`]; [`TrainConfig`] has the reference's settings
//!   ([`TrainConfig::paper`]) and a CPU demo ([`TrainConfig::quick`]); the module docs say how
//!   the two reference quirks (stale fake in the generator steps, z* redrawn at scale 0) are
//!   handled;
//! * [`store`]: the model folder (below).
//!
//! Images are [1, 3, H, W] tensors in [−1, 1] (`x_png / 255 · 2 − 1`); index 0 is the
//! **coarsest** scale.
//!
//! # Model folder format (version 1)
//!
//! A model is a folder of [safetensors](https://github.com/huggingface/safetensors) files, all
//! float32, each with string metadata (the safetensors `__metadata__` map):
//!
//! | file | tensors |
//! |---|---|
//! | `pyramid.safetensors` | `real.0` … `real.N`: every scale's real, [1, 3, H_n, W_n] in [−1, 1] |
//! | `scale_00.safetensors`, `scale_01.safetensors`, … | `netG.<name>`: the generator's state dict under the reference names (`netG.head.conv.weight`, `netG.body.block1.norm.running_var`, `netG.tail.0.bias`, …; `num_batches_tracked` as a float32 scalar); `netD.<name>`: the critic's (`netD.tail.weight`, …; optional, needed only to resume); `real`: this scale's real; `z_opt` (scale 0 only): z*, [1, 3, H₀ + 10, W₀ + 10] |
//!
//! Metadata of every file:
//!
//! | key | value |
//! |---|---|
//! | `format` | `tessera-singan` |
//! | `format_version` | `1` |
//! | `num_scales` | N + 1 |
//! | `scale_factor` | the adjusted factor between scales, as a decimal f64 |
//! | `scale1` | the factor the training image was shrunk by to the finest scale |
//! | `shapes` | JSON `[[H₀, W₀], …, [H_N, W_N]]`, coarsest first |
//! | `config` | JSON of the [`TrainConfig`] the model was trained with |
//!
//! and of a scale file also `scale` (its index n), `width` (its channel width, which must equal
//! the config's width for scale n) and `noise_amp` (σ_n, decimal f32; 1 at scale 0).
//!
//! Every file is written atomically (temporary file in the folder, fsync, rename) as its scale
//! finishes, so a killed run loses at most the scale in progress and [`resume`] continues at
//! the next one. Loading ([`store::load`]) checks the format and version of every file, that
//! all files describe the same model, and every tensor's shape, and reports a problem as
//! [`Error::ModelFile`] naming the file. A model trained with the official PyTorch code is
//! converted into this format by the script shipped with the `singan` app: the reference
//! names are those of its `netG.pth`/`netD.pth` state dicts, `Zs[0]` is `z_opt`, `NoiseAmp[n]`
//! is `noise_amp`, `reals[n]` is `real`, and the scale factor must be recomputed from the
//! training image as the reference does.
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
pub mod apps;
pub mod config;
mod error;
pub mod image_io;
pub mod model;
pub mod net;
pub mod pyramid;
pub mod resize;
pub mod store;
pub mod train;

pub use config::TrainConfig;
pub use error::{Error, Result};
pub use model::{SampleOptions, SinGan, TrainedScale};
pub use net::{Critic, Generator};
pub use pyramid::{Pyramid, PyramidConfig};
pub use train::{
    resume, resume_on, train, train_on, Event, Losses, OnEvent, Progress, ScaleTrainer,
};
