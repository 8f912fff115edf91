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
pub mod binary_conv;
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

pub use binary_conv::BinaryMap;
pub use block::{BlockConfig, Conditioning, MaybeSpectralConv, SpadeResnetBlock};
pub use config::{GeneratorNorm, ModelConfig, UpsamplingLayers};
pub use discriminator::{MultiscaleDiscriminator, NLayerDiscriminator, ScaleOutputs};
pub use encoder::{reparameterize, reparameterize_with, ConvEncoder};
pub use error::{Error, Result};
pub use generator::{GeneratorInput, SpadeGenerator};
pub use init::{count_params, init_xavier, INIT_GAIN};
pub use semantic::{instance_edges, semantic_input, IdMap, UNKNOWN_LABEL_VALUE};
pub use trainer::{Batch, DiscriminatorStep, GeneratorStep, TrainConfig, Trainer};
pub use weights::{load_generator, save_generator};
