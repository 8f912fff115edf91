//! SPADE / GauGAN (Park et al., CVPR 2019): semantic image synthesis from label maps.
//!
//! Implemented from the description of the paper and the reference code's behaviour, with the
//! reference's parameter names, so a PyTorch `state_dict` of the reference generator loads 1:1
//! ([`load_generator`]).
//!
//! * [`ModelConfig`]: the architecture options, with presets `ade20k`, `coco`, `cityscapes`
//!   and `small`.
//! * [`semantic_input`]: label maps (+ instance maps) → the one-hot conditioning tensor.
//! * [`SpadeGenerator`], [`ConvEncoder`], [`MultiscaleDiscriminator`].
//! * [`Trainer`]: the G step and D step, TTUR Adam, linear decay, resumable checkpoints
//!   ([`TrainConfig`] holds the loss weights and optimizer options).
//! * [`load_generator`] / [`save_generator`]: generator weights as safetensors under the
//!   reference names (`crates/spade-cli/convert_torch_generator.py` converts PyTorch files).
//!
//! # Where the reference is ambiguous or broken, and what this crate does
//!
//! * **Label channels.** Raw label 255 is the unknown id `label_nc`; ADE20K's 0 ("other") stays
//!   channel 0 (the reference's shift never takes effect, and its weights expect this). An id
//!   without a channel is a typed error naming the file, where the reference crashes.
//! * **Batch norm.** `syncbatch` in `norm_G` is batch norm over the whole batch, which on one
//!   device is plain batch norm (the reference falls back to it on one GPU).
//! * **Spectral norm** only where the code has it (the residual blocks' convs, D's middle
//!   convs, the encoder), not on every layer as the paper says.
//! * **Init.** Xavier-normal with gain 0.02 on every conv and linear weight, `weight_orig`
//!   included (the reference most likely leaves those at PyTorch's default on GPU; spectral
//!   norm divides by σ anyway); zero biases.
//! * **Adam.** With TTUR (default): G at lr/2 = 1e-4, D at 2·lr = 4e-4, betas (0, 0.9) (the
//!   code's and the authors' choice; the paper says β2 = 0.999). `no_ttur`: both at lr with
//!   (β1, β2) = (0.5, 0.999).
//! * **Losses.** Hinge averaged over scales; feature matching weighted λ_feat / num_D over
//!   every block but the logits; KL a sum over the batch (as the reference computes it per
//!   GPU), weight 0.05; VGG (λ 10) on raw [−1, 1] images, only with user-supplied weights.
//! * **Latent height** `round(sw / aspect_ratio)` rounds ties to even, as Python does.
//! * **Encoder** for crops below 256: input resized to 128 and five layers (the reference's
//!   encoder breaks there); 256 and six layers otherwise, as the reference.
//! * **Speed.** SPADE's `mlp_shared` convolution of a one-hot map runs as a lookup
//!   (`tessera_nn::binary_conv`), with the same result as the dense convolution.
pub mod block;
pub mod config;
pub mod data;
pub mod discriminator;
pub mod encoder;
mod error;
pub mod generator;
pub mod init;
pub mod loss;
pub mod semantic;
pub mod trainer;
pub mod weights;

pub use block::{BlockConfig, Conditioning, MaybeSpectralConv, SpadeResnetBlock};
pub use config::{GeneratorNorm, ModelConfig, UpsamplingLayers};
pub use discriminator::{MultiscaleDiscriminator, NLayerDiscriminator, ScaleOutputs};
pub use encoder::{reparameterize, reparameterize_with, ConvEncoder};
pub use error::{Error, Result};
pub use generator::{GeneratorInput, SpadeGenerator};
pub use init::{count_params, init_xavier, INIT_GAIN};
pub use semantic::{instance_edges, semantic_input, IdMap, UNKNOWN_LABEL_VALUE};
pub use tessera_nn::BinaryMap;
pub use trainer::{Batch, DiscriminatorStep, GeneratorStep, TrainConfig, Trainer};
pub use weights::{load_generator, save_generator};
