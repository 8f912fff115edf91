//! The architecture options of a SPADE model, mirroring the reference's command-line options
//! (`--label_nc`, `--contain_dontcare_label`, `--no_instance`, `--ngf`, `--ndf`, `--crop_size`,
//! `--aspect_ratio`, `--num_upsampling_layers`, `--norm_G`, `--use_vae`, `--z_dim`, `--num_D`,
//! `--n_layers_D`), with the presets of the reference datasets and a CPU-sized one.
use crate::error::{config_error, Result};
use std::collections::BTreeMap;
use tessera_nn::SpadeNorm;

/// How many ×2 upsamplings the generator does (`--num_upsampling_layers`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UpsamplingLayers {
    /// 5: `fc` works at crop/32.
    Normal,
    /// 6: an extra upsampling between `G_middle_0` and `G_middle_1`.
    More,
    /// 7: as `More`, plus a last block `up_4` (64 → 32 channels at ngf 64).
    Most,
}

impl UpsamplingLayers {
    pub fn count(self) -> u32 {
        match self {
            UpsamplingLayers::Normal => 5,
            UpsamplingLayers::More => 6,
            UpsamplingLayers::Most => 7,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            UpsamplingLayers::Normal => "normal",
            UpsamplingLayers::More => "more",
            UpsamplingLayers::Most => "most",
        }
    }
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "normal" => Ok(UpsamplingLayers::Normal),
            "more" => Ok(UpsamplingLayers::More),
            "most" => Ok(UpsamplingLayers::Most),
            other => Err(config_error(
                "num_upsampling_layers",
                format!("{other:?} is not one of normal, more, most"),
            )),
        }
    }
}

/// The generator's `--norm_G`: `[spectral]spade<norm><k>x<k>`, e.g. the reference default
/// `spectralspadesyncbatch3x3`. "spectral" puts spectral norm on the residual blocks' convs;
/// `<norm>` is SPADE's parameter-free norm (`syncbatch` is batch norm over the whole batch,
/// which on one device is plain `batch`); `k` is the kernel of SPADE's three convs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GeneratorNorm {
    pub spectral: bool,
    pub param_free: SpadeNorm,
    pub kernel: usize,
}

impl Default for GeneratorNorm {
    /// `spectralspadesyncbatch3x3`.
    fn default() -> Self {
        GeneratorNorm {
            spectral: true,
            param_free: SpadeNorm::Batch,
            kernel: 3,
        }
    }
}

impl GeneratorNorm {
    /// Parses `[spectral]spade{batch|syncbatch|instance}<k>x<k>`.
    pub fn parse(s: &str) -> Result<Self> {
        let bad = |why: String| config_error("norm_G", format!("{s:?}: {why}"));
        let (spectral, rest) = match s.strip_prefix("spectral") {
            Some(r) => (true, r),
            None => (false, s),
        };
        let rest = rest.strip_prefix("spade").ok_or_else(|| {
            bad("expected [spectral]spade<norm><k>x<k>, e.g. spectralspadesyncbatch3x3".into())
        })?;
        let (param_free, size) = if let Some(r) = rest.strip_prefix("syncbatch") {
            (SpadeNorm::Batch, r)
        } else if let Some(r) = rest.strip_prefix("batch") {
            (SpadeNorm::Batch, r)
        } else if let Some(r) = rest.strip_prefix("instance") {
            (SpadeNorm::Instance, r)
        } else {
            return Err(bad("the norm must be batch, syncbatch or instance".into()));
        };
        let kernel = match size.split_once('x') {
            Some((a, b)) if a == b => a.parse::<usize>().ok(),
            _ => None,
        }
        .filter(|k| k % 2 == 1)
        .ok_or_else(|| bad(format!("kernel {size:?} is not <k>x<k> with an odd k")))?;
        Ok(GeneratorNorm {
            spectral,
            param_free,
            kernel,
        })
    }

    /// The option string (batch norm written as `syncbatch`, the reference's spelling).
    pub fn as_option(&self) -> String {
        let norm = match self.param_free {
            SpadeNorm::Batch => "syncbatch",
            SpadeNorm::Instance => "instance",
        };
        let spectral = if self.spectral { "spectral" } else { "" };
        format!("{spectral}spade{norm}{k}x{k}", k = self.kernel)
    }
}

/// The architecture of a SPADE model: generator, image encoder and discriminator.
///
/// Fixed as in the reference: LeakyReLU slope 0.2, the encoder's and the discriminator's
/// `spectralinstance` norm, D's 4×4 kernels, channel growth capped at 512 in D, `16·ngf`
/// channels after `fc`.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelConfig {
    /// Number of label classes (`--label_nc`), not counting the don't-care label.
    pub label_nc: usize,
    /// One more one-hot channel for the unknown label (raw value 255 maps to `label_nc`).
    pub contain_dontcare_label: bool,
    /// No instance-edge channel.
    pub no_instance: bool,
    pub ngf: usize,
    pub ndf: usize,
    /// Output width; the height is `round(width / aspect_ratio)`-derived (see
    /// [`ModelConfig::output_hw`]).
    pub crop_size: usize,
    /// Width / height of the output.
    pub aspect_ratio: f64,
    pub num_upsampling_layers: UpsamplingLayers,
    pub norm_g: GeneratorNorm,
    /// Width of SPADE's shared MLP (128 in the reference, where it is hard-coded).
    pub spade_hidden: usize,
    /// VAE mode: `fc` is a Linear from z, and an image encoder gives z from a style image.
    pub use_vae: bool,
    pub z_dim: usize,
    /// Number of discriminator scales.
    pub num_d: usize,
    /// Layers per discriminator (4: model0..model3 plus the logit conv model4).
    pub n_layers_d: usize,
}

impl ModelConfig {
    /// The reference base options with `label_nc` classes: ngf = ndf = 64, crop 256, aspect
    /// 1, `normal`, `spectralspadesyncbatch3x3`, hidden 128, no VAE (z_dim 256), num_D 2,
    /// n_layers_D 4, no don't-care label, with instance maps.
    pub fn base(label_nc: usize) -> Self {
        ModelConfig {
            label_nc,
            contain_dontcare_label: false,
            no_instance: false,
            ngf: 64,
            ndf: 64,
            crop_size: 256,
            aspect_ratio: 1.0,
            num_upsampling_layers: UpsamplingLayers::Normal,
            norm_g: GeneratorNorm::default(),
            spade_hidden: 128,
            use_vae: false,
            z_dim: 256,
            num_d: 2,
            n_layers_d: 4,
        }
    }

    /// ADE20K: 150 classes + "other" as channel 0 (the don't-care label), no instances:
    /// semantic_nc 151.
    pub fn ade20k() -> Self {
        ModelConfig {
            contain_dontcare_label: true,
            no_instance: true,
            ..Self::base(150)
        }
    }

    /// COCO-Stuff: 182 classes + don't-care + instance edges: semantic_nc 184.
    pub fn coco() -> Self {
        ModelConfig {
            contain_dontcare_label: true,
            ..Self::base(182)
        }
    }

    /// Cityscapes: 35 classes + instance edges (semantic_nc 36), 512 wide at aspect 2
    /// (256×512 output), `more` upsampling layers.
    pub fn cityscapes() -> Self {
        ModelConfig {
            crop_size: 512,
            aspect_ratio: 2.0,
            num_upsampling_layers: UpsamplingLayers::More,
            ..Self::base(35)
        }
    }

    /// A CPU-trainable model: 13 classes without don't-care or instances, ngf = ndf = 32,
    /// 128², SPADE hidden width 64.
    pub fn small() -> Self {
        ModelConfig {
            no_instance: true,
            ngf: 32,
            ndf: 32,
            crop_size: 128,
            spade_hidden: 64,
            ..Self::base(13)
        }
    }

    /// A preset by name: `ade20k`, `coco`, `cityscapes`, `small`.
    pub fn preset(name: &str) -> Result<Self> {
        match name {
            "ade20k" => Ok(Self::ade20k()),
            "coco" => Ok(Self::coco()),
            "cityscapes" => Ok(Self::cityscapes()),
            "small" => Ok(Self::small()),
            other => Err(config_error(
                "config",
                format!("unknown preset {other:?} (have ade20k, coco, cityscapes, small)"),
            )),
        }
    }

    /// One-hot channels: `label_nc` (+1 with the don't-care label).
    pub fn label_channels(&self) -> usize {
        self.label_nc + usize::from(self.contain_dontcare_label)
    }

    /// Channels of the conditioning tensor: the one-hot channels, then the instance-edge
    /// channel unless `no_instance`.
    pub fn semantic_nc(&self) -> usize {
        self.label_channels() + usize::from(!self.no_instance)
    }

    /// (height, width) where `fc` works: `sw = crop / 2^num_up`, `sh = round(sw / aspect)`
    /// (ties to even).
    pub fn latent_hw(&self) -> (usize, usize) {
        let sw = self.crop_size >> self.num_upsampling_layers.count();
        // Python's round (ties to even), as the reference computes it.
        let sh = (sw as f64 / self.aspect_ratio).round_ties_even() as usize;
        (sh, sw)
    }

    /// (height, width) of the generated image: the latent size times `2^num_up`.
    pub fn output_hw(&self) -> (usize, usize) {
        let (sh, sw) = self.latent_hw();
        let f = 1usize << self.num_upsampling_layers.count();
        (sh * f, sw * f)
    }

    /// Checks that the options describe a buildable model.
    pub fn validate(&self) -> Result<()> {
        let positive = [
            ("label_nc", self.label_nc),
            ("ngf", self.ngf),
            ("ndf", self.ndf),
            ("crop_size", self.crop_size),
            ("spade_hidden", self.spade_hidden),
            ("z_dim", self.z_dim),
            ("num_D", self.num_d),
            ("n_layers_D", self.n_layers_d),
        ];
        for (name, v) in positive {
            if v == 0 {
                return Err(config_error(name, "must be positive, got 0"));
            }
        }
        if !(self.aspect_ratio.is_finite() && self.aspect_ratio > 0.0) {
            return Err(config_error(
                "aspect_ratio",
                format!("must be positive, got {}", self.aspect_ratio),
            ));
        }
        let (sh, sw) = self.latent_hw();
        if sh == 0 || sw == 0 {
            return Err(config_error(
                "crop_size",
                format!(
                    "{} with {} upsampling layers and aspect ratio {} leaves a latent size of \
                     {sh}×{sw}; crop_size must be at least 2^{} (× the aspect ratio)",
                    self.crop_size,
                    self.num_upsampling_layers.as_str(),
                    self.aspect_ratio,
                    self.num_upsampling_layers.count()
                ),
            ));
        }
        if self.use_vae && self.encoder_input_size().is_none() {
            return Err(config_error(
                "crop_size",
                format!(
                    "the image encoder (use_vae) needs crop_size ≥ 128, got {}",
                    self.crop_size
                ),
            ));
        }
        Ok(())
    }

    /// The square size the image encoder resizes its input to: 256 (six stride-2 layers, as
    /// the reference) when `crop_size ≥ 256`; 128 with five layers for `128 ≤ crop_size < 256`
    /// (where the reference's encoder does not work); `None` below. Either way the last
    /// feature map is 4×4.
    pub fn encoder_input_size(&self) -> Option<usize> {
        match self.crop_size {
            c if c >= 256 => Some(256),
            c if c >= 128 => Some(128),
            _ => None,
        }
    }

    /// Every option as (name, value) strings, in a fixed order: what a checkpoint stores and
    /// compares.
    pub fn to_pairs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("label_nc", self.label_nc.to_string()),
            (
                "contain_dontcare_label",
                self.contain_dontcare_label.to_string(),
            ),
            ("no_instance", self.no_instance.to_string()),
            ("ngf", self.ngf.to_string()),
            ("ndf", self.ndf.to_string()),
            ("crop_size", self.crop_size.to_string()),
            ("aspect_ratio", self.aspect_ratio.to_string()),
            (
                "num_upsampling_layers",
                self.num_upsampling_layers.as_str().to_string(),
            ),
            ("norm_G", self.norm_g.as_option()),
            ("spade_hidden", self.spade_hidden.to_string()),
            ("use_vae", self.use_vae.to_string()),
            ("z_dim", self.z_dim.to_string()),
            ("num_D", self.num_d.to_string()),
            ("n_layers_D", self.n_layers_d.to_string()),
        ]
    }

    /// The options stored under `prefix` + name in `meta` (see [`ModelConfig::to_pairs`]).
    pub fn to_metadata(&self, prefix: &str, meta: &mut BTreeMap<String, String>) {
        for (k, v) in self.to_pairs() {
            meta.insert(format!("{prefix}{k}"), v);
        }
    }

    /// Reads back what [`ModelConfig::to_metadata`] wrote; a missing or unparsable entry is a
    /// [`crate::Error::Config`] naming it.
    pub fn from_metadata(prefix: &str, meta: &BTreeMap<String, String>) -> Result<Self> {
        let get = |k: &str| -> Result<&str> {
            meta.get(&format!("{prefix}{k}"))
                .map(String::as_str)
                .ok_or_else(|| config_error(k, "missing from the stored configuration"))
        };
        fn num<T: std::str::FromStr>(k: &str, v: &str) -> Result<T> {
            v.parse()
                .map_err(|_| config_error(k, format!("cannot parse {v:?}")))
        }
        let config = ModelConfig {
            label_nc: num("label_nc", get("label_nc")?)?,
            contain_dontcare_label: num("contain_dontcare_label", get("contain_dontcare_label")?)?,
            no_instance: num("no_instance", get("no_instance")?)?,
            ngf: num("ngf", get("ngf")?)?,
            ndf: num("ndf", get("ndf")?)?,
            crop_size: num("crop_size", get("crop_size")?)?,
            aspect_ratio: num("aspect_ratio", get("aspect_ratio")?)?,
            num_upsampling_layers: UpsamplingLayers::parse(get("num_upsampling_layers")?)?,
            norm_g: GeneratorNorm::parse(get("norm_G")?)?,
            spade_hidden: num("spade_hidden", get("spade_hidden")?)?,
            use_vae: num("use_vae", get("use_vae")?)?,
            z_dim: num("z_dim", get("z_dim")?)?,
            num_d: num("num_D", get("num_D")?)?,
            n_layers_d: num("n_layers_D", get("n_layers_D")?)?,
        };
        config.validate()?;
        Ok(config)
    }

    /// The options that differ from `other`, as `name: self vs other` lines.
    pub fn differences(&self, other: &ModelConfig) -> Vec<String> {
        self.to_pairs()
            .into_iter()
            .zip(other.to_pairs())
            .filter(|((_, a), (_, b))| a != b)
            .map(|((k, a), (_, b))| format!("{k}: {a} vs {b}"))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presets_give_the_reference_channel_counts_and_sizes() {
        assert_eq!(ModelConfig::ade20k().semantic_nc(), 151);
        assert_eq!(ModelConfig::coco().semantic_nc(), 184);
        assert_eq!(ModelConfig::cityscapes().semantic_nc(), 36);
        assert_eq!(ModelConfig::small().semantic_nc(), 13);
        assert_eq!(ModelConfig::ade20k().latent_hw(), (8, 8));
        assert_eq!(ModelConfig::cityscapes().latent_hw(), (4, 8));
        assert_eq!(ModelConfig::cityscapes().output_hw(), (256, 512));
        let most = ModelConfig {
            crop_size: 512,
            num_upsampling_layers: UpsamplingLayers::Most,
            ..ModelConfig::ade20k()
        };
        assert_eq!(most.latent_hw(), (4, 4));
        assert_eq!(most.output_hw(), (512, 512));
    }

    #[test]
    fn norm_g_parses_the_reference_spellings() {
        let d = GeneratorNorm::parse("spectralspadesyncbatch3x3").unwrap();
        assert_eq!(d, GeneratorNorm::default());
        let i = GeneratorNorm::parse("spadeinstance5x5").unwrap();
        assert_eq!(
            (i.spectral, i.param_free, i.kernel),
            (false, SpadeNorm::Instance, 5)
        );
        assert_eq!(GeneratorNorm::parse(&i.as_option()).unwrap(), i);
        assert_eq!(
            GeneratorNorm::parse("spectralspadebatch3x3").unwrap(),
            GeneratorNorm::default()
        );
        for bad in [
            "spectralinstance",
            "spadegroup3x3",
            "spadebatch3x5",
            "spadebatch4x4",
        ] {
            assert!(GeneratorNorm::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn metadata_round_trips_and_differences_are_named() {
        let c = ModelConfig::cityscapes();
        let mut meta = BTreeMap::new();
        c.to_metadata("model.", &mut meta);
        assert_eq!(ModelConfig::from_metadata("model.", &meta).unwrap(), c);
        let diff = c.differences(&ModelConfig::coco());
        assert!(diff.iter().any(|d| d.starts_with("label_nc: 35 vs 182")));
        meta.remove("model.ngf");
        let err = ModelConfig::from_metadata("model.", &meta).unwrap_err();
        assert!(err.to_string().contains("ngf"), "{err}");
    }

    #[test]
    fn too_small_crops_are_config_errors() {
        let c = ModelConfig {
            crop_size: 16,
            ..ModelConfig::small()
        };
        assert!(c.validate().unwrap_err().to_string().contains("crop_size"));
        let v = ModelConfig {
            crop_size: 64,
            use_vae: true,
            ..ModelConfig::small()
        };
        assert!(v.validate().is_err());
    }
}
