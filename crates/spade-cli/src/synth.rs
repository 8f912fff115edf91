//! `spade synth`: a label map → a photo, with a generator from a training checkpoint or from
//! safetensors weights (e.g. a PyTorch generator converted by `convert_torch_generator.py`).
//! Networks run in eval mode (batch norm from running statistics, spectral norm from the stored
//! vectors), as the reference's test script runs them.
use std::path::{Path, PathBuf};

use clap::Args;
use image::imageops::{self, FilterType};
use tessera_autograd::{no_grad, Var};
use tessera_nn::checkpoint::safetensors::{from_bytes, load_module};
use tessera_nn::{Module, ModuleExt};
use tessera_spade::data::{read_id_map, read_label_map, read_rgb, resize_nearest};
use tessera_spade::{
    load_generator, reparameterize, semantic_input, ConvEncoder, IdMap, ModelConfig,
    SpadeGenerator, Trainer,
};
use tessera_tensor::{Device, Rng, Tensor};

use crate::arch::ArchArgs;
use crate::images::{to_rgb, write_rgb};
use crate::{CliError, Result};

#[derive(Args, Debug)]
pub struct SynthArgs {
    /// Label map (8-bit grey or palette PNG of class ids; 255 = unknown), or a folder of them.
    pub label: PathBuf,
    /// Output PNG (a folder when LABEL is one); with --samples N > 1, each name gets _0 … _N-1.
    #[arg(long)]
    pub out: PathBuf,
    /// A training checkpoint (OUT/checkpoint.bin of `spade train`): its model, options and encoder.
    #[arg(long, conflicts_with_all = ["weights", "config"])]
    pub checkpoint: Option<PathBuf>,
    /// Generator weights as safetensors under the reference's names.
    #[arg(long, required_unless_present = "checkpoint")]
    pub weights: Option<PathBuf>,
    /// Encoder weights (safetensors) for --style, with --weights.
    #[arg(long, requires = "weights")]
    pub encoder: Option<PathBuf>,
    /// The architecture of --weights: ade20k, coco, cityscapes or small, then the flags below
    /// (default: the options stored in the weights file by `spade train`).
    #[arg(long)]
    pub config: Option<String>,
    #[command(flatten)]
    pub arch: ArchArgs,
    /// Instance map (a folder of same-named maps when LABEL is a folder) for models with instance
    /// edges (default: the label map, so edges follow class boundaries).
    #[arg(long)]
    pub instance: Option<PathBuf>,
    /// Style image: the encoder's z (VAE models).
    #[arg(long)]
    pub style: Option<PathBuf>,
    /// Number of outputs, each from its own z (VAE models).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub samples: u64,
    /// Where to compute: cpu, cuda or cuda:N (a GPU needs the app built with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: Device,
    /// On a GPU, let convolutions use the TF32 tensor cores (operands rounded to a 10-bit
    /// mantissa, sums in FP32), like PyTorch's default `torch.backends.cudnn.allow_tf32`: faster,
    /// but no longer equal to the CPU to FP32 rounding. No effect on the CPU.
    #[arg(long)]
    pub tf32: bool,
    /// Seed of z.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// The model options of a weights file: `--config` and the flags, or the file's metadata.
fn weights_config(args: &SynthArgs, path: &Path) -> Result<ModelConfig> {
    let base = match &args.config {
        Some(name) => ModelConfig::preset(name)?,
        None => {
            let bytes = std::fs::read(path).map_err(|source| CliError::Io {
                path: path.to_path_buf(),
                source,
            })?;
            let (_, meta) = from_bytes(&bytes, path)?;
            ModelConfig::from_metadata("model.", &meta).map_err(|e| {
                CliError::Usage(format!(
                    "{}: no model options stored ({e}); say which with --config ade20k|coco|cityscapes|small \
                     and the architecture flags",
                    path.display()
                ))
            })?
        }
    };
    args.arch.apply(base)
}

fn load_networks(args: &SynthArgs) -> Result<(ModelConfig, SpadeGenerator, Option<ConvEncoder>)> {
    if let Some(path) = &args.checkpoint {
        let trainer = Trainer::load(path, None)?;
        return Ok((trainer.model, trainer.generator, trainer.encoder));
    }
    let path = args
        .weights
        .as_ref()
        .ok_or_else(|| CliError::Usage("give --checkpoint or --weights".into()))?;
    let config = weights_config(args, path)?;
    let generator = load_generator(path, &config)?;
    let encoder = match &args.encoder {
        Some(e) => {
            let encoder = ConvEncoder::new(&config, &mut Rng::seed(0))?;
            load_module(e, &encoder)?;
            Some(encoder)
        }
        None => None,
    };
    Ok((config, generator, encoder))
}

/// A photo as a `[1, 3, h, w]` tensor in [-1, 1], resized bicubically to `w`×`h`.
fn style_tensor(path: &Path, h: usize, w: usize) -> Result<Tensor> {
    let photo = read_rgb(path)?;
    let photo = imageops::resize(&photo, w as u32, h as u32, FilterType::CatmullRom);
    let plane = h * w;
    let mut values = vec![0f32; 3 * plane];
    for (i, px) in photo.pixels().enumerate() {
        for c in 0..3 {
            values[c * plane + i] = (f32::from(px[c]) / 255.0 - 0.5) / 0.5;
        }
    }
    Ok(Tensor::from_vec(values, [1, 3, h, w], Device::Cpu)?)
}

/// One label map to synthesize from, its instance map, and where the photo goes.
struct Job {
    label: PathBuf,
    instance: Option<PathBuf>,
    out: PathBuf,
}

/// One job for a label map file; for a folder, one per PNG in it, written to the folder OUT
/// under the same name, with the instance map of the same name from the folder --instance.
fn jobs(args: &SynthArgs) -> Result<Vec<Job>> {
    if !args.label.is_dir() {
        return Ok(vec![Job {
            label: args.label.clone(),
            instance: args.instance.clone(),
            out: args.out.clone(),
        }]);
    }
    let io_err = |path: &Path| {
        let path = path.to_path_buf();
        move |source| CliError::Io { path, source }
    };
    let mut labels: Vec<PathBuf> = std::fs::read_dir(&args.label)
        .map_err(io_err(&args.label))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")))
        .collect();
    labels.sort();
    if labels.is_empty() {
        return Err(CliError::Usage(format!(
            "{}: no PNG label maps found",
            args.label.display()
        )));
    }
    std::fs::create_dir_all(&args.out).map_err(io_err(&args.out))?;
    labels
        .into_iter()
        .map(|label| {
            let name = label.file_name().unwrap_or_default().to_owned();
            let instance = match &args.instance {
                Some(dir) => {
                    let path = dir.join(&name);
                    if !path.is_file() {
                        return Err(CliError::Usage(format!(
                            "{}: no instance map {} for it",
                            label.display(),
                            path.display()
                        )));
                    }
                    Some(path)
                }
                None => None,
            };
            Ok(Job {
                out: args.out.join(&name),
                label,
                instance,
            })
        })
        .collect()
}

fn output_path(out: &Path, k: u64, samples: u64) -> PathBuf {
    if samples == 1 {
        return out.to_path_buf();
    }
    let stem = out.file_stem().and_then(|s| s.to_str()).unwrap_or("synth");
    out.with_file_name(format!("{stem}_{k}.png"))
}

pub fn run(args: &SynthArgs) -> Result<()> {
    tessera_tensor::set_cuda_conv_tf32(args.tf32);
    let (config, mut generator, mut encoder) = load_networks(args)?;
    if !config.use_vae && (args.style.is_some() || args.samples > 1) {
        return Err(CliError::Usage(
            "--style and --samples > 1 need a VAE model (trained with --use-vae): \
             without z the generator is deterministic"
                .into(),
        ));
    }
    generator.set_training(false);
    generator.to_device(args.device)?;
    if let Some(e) = encoder.as_mut() {
        e.set_training(false);
        e.to_device(args.device)?;
    }
    let (h, w) = config.output_hw();
    let mut rng = Rng::seed(args.seed);
    let style = match &args.style {
        Some(path) => {
            let encoder = encoder.as_ref().ok_or_else(|| {
                CliError::Usage(
                    "--style needs the encoder: a --checkpoint of a VAE model, or --encoder E.safetensors"
                        .into(),
                )
            })?;
            let image = Var::constant(style_tensor(path, h, w)?.to_device(args.device)?);
            Some(no_grad(|| encoder.forward(&image))?)
        }
        None => None,
    };
    for job in jobs(args)? {
        let labels = read_label_map(&job.label, config.label_nc, config.contain_dontcare_label)?;
        let labels = resize_nearest(&labels, w, h);
        let instances: Option<IdMap> = match (&job.instance, config.no_instance) {
            (_, true) => None,
            (Some(path), false) => Some(resize_nearest(&read_id_map(path)?, w, h)),
            (None, false) => Some(labels.clone()),
        };
        let one = instances.as_ref().map(std::slice::from_ref);
        let semantics =
            Var::constant(semantic_input(&config, &[labels], one)?.to_device(args.device)?);
        for k in 0..args.samples {
            let z = match (&style, config.use_vae) {
                (Some((mu, logvar)), _) => Some(reparameterize(mu, logvar, &mut rng)?),
                (None, true) => Some(generator.random_z(1, &mut rng)?),
                (None, false) => None,
            };
            let image = no_grad(|| generator.forward(&semantics, z.as_ref()))?;
            let rgb = to_rgb(image.value())?;
            let path = output_path(&job.out, k, args.samples);
            write_rgb(&path, &rgb[0], w, h)?;
            println!("wrote {}", path.display());
        }
    }
    Ok(())
}
