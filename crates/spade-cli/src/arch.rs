//! The architecture flags shared by `train` and `synth`: every setting of the reference's model,
//! applied over a preset, so a generator trained with any reference configuration can be built.
use clap::{Args, ValueEnum};
use tessera_nn::SpadeNorm;
use tessera_spade::{GeneratorNorm, ModelConfig, UpsamplingLayers};

use crate::Result;

/// SPADE's parameter-free norm (`--norm`).
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum NormArg {
    /// Batch norm (the reference's `syncbatch`, which on one device is plain batch norm).
    Batch,
    Instance,
}

/// `--num-upsampling-layers`.
#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum UpsamplingArg {
    Normal,
    More,
    Most,
}

/// Architecture overrides; each unset flag keeps the preset's value. Boolean flags take an
/// optional value: `--use-vae` turns VAE mode on, `--use-vae false` off.
#[derive(Args, Clone, Debug, Default)]
pub struct ArchArgs {
    /// Number of label classes, not counting the don't-care label.
    #[arg(long)]
    pub label_nc: Option<usize>,
    /// One more one-hot channel, for the unknown label (raw value 255).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub contain_dontcare_label: Option<bool>,
    /// No instance-edge channel (and no instance maps).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub no_instance: Option<bool>,
    /// Generator width (channels of the last block; 16·ngf after `fc`).
    #[arg(long)]
    pub ngf: Option<usize>,
    /// Discriminator width.
    #[arg(long)]
    pub ndf: Option<usize>,
    /// Output width in pixels.
    #[arg(long)]
    pub crop_size: Option<usize>,
    /// Output width / height.
    #[arg(long)]
    pub aspect_ratio: Option<f64>,
    #[arg(long, value_enum)]
    pub num_upsampling_layers: Option<UpsamplingArg>,
    /// SPADE's parameter-free norm.
    #[arg(long, value_enum)]
    pub norm: Option<NormArg>,
    /// The full `--norm_G` string, e.g. `spectralspadesyncbatch3x3` (overrides --norm).
    #[arg(long)]
    pub norm_g: Option<String>,
    /// Hidden width of SPADE's shared MLP (128 in the reference).
    #[arg(long)]
    pub spade_hidden: Option<usize>,
    /// VAE mode: z from a style image through the encoder, or z ~ N(0, I).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    pub use_vae: Option<bool>,
    #[arg(long)]
    pub z_dim: Option<usize>,
    /// Number of discriminator scales.
    #[arg(long)]
    pub num_d: Option<usize>,
    /// Layers per discriminator scale.
    #[arg(long)]
    pub n_layers_d: Option<usize>,
}

impl ArchArgs {
    /// `base` with every given flag applied, validated.
    pub fn apply(&self, base: ModelConfig) -> Result<ModelConfig> {
        let mut c = base;
        c.label_nc = self.label_nc.unwrap_or(c.label_nc);
        c.contain_dontcare_label = self
            .contain_dontcare_label
            .unwrap_or(c.contain_dontcare_label);
        c.no_instance = self.no_instance.unwrap_or(c.no_instance);
        c.ngf = self.ngf.unwrap_or(c.ngf);
        c.ndf = self.ndf.unwrap_or(c.ndf);
        c.crop_size = self.crop_size.unwrap_or(c.crop_size);
        c.aspect_ratio = self.aspect_ratio.unwrap_or(c.aspect_ratio);
        if let Some(u) = self.num_upsampling_layers {
            c.num_upsampling_layers = match u {
                UpsamplingArg::Normal => UpsamplingLayers::Normal,
                UpsamplingArg::More => UpsamplingLayers::More,
                UpsamplingArg::Most => UpsamplingLayers::Most,
            };
        }
        if let Some(n) = self.norm {
            c.norm_g.param_free = match n {
                NormArg::Batch => SpadeNorm::Batch,
                NormArg::Instance => SpadeNorm::Instance,
            };
        }
        if let Some(s) = &self.norm_g {
            c.norm_g = GeneratorNorm::parse(s)?;
        }
        c.spade_hidden = self.spade_hidden.unwrap_or(c.spade_hidden);
        c.use_vae = self.use_vae.unwrap_or(c.use_vae);
        c.z_dim = self.z_dim.unwrap_or(c.z_dim);
        c.num_d = self.num_d.unwrap_or(c.num_d);
        c.n_layers_d = self.n_layers_d.unwrap_or(c.n_layers_d);
        c.validate()?;
        Ok(c)
    }
}
