//! `spade train`: the reference's training loop (a G step then a D step per batch) over a dataset
//! folder, with a progress bar, sample grids, loss curves and resumable checkpoints.
//!
//! Files under `--out`: `checkpoint.bin` (the whole training state, for `--resume`),
//! `latest_net_{G,D,E}.safetensors` (each network's state dict under PyTorch names, with the
//! model options as metadata), `losses.csv` and `losses.svg`, `samples/step_NNNNNNN.png`
//! (label | synthesis | real), `opt.txt`. Every file is written atomically. Ctrl-C or SIGTERM
//! finishes the current step, writes a checkpoint and exits (a second one exits at once); a kill
//! loses at most the steps since the last checkpoint, and `--resume` continues from it with the
//! same data order.
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use clap::{Args, ValueEnum};
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use tessera_gan::{Vgg19, VggPerceptualLoss};
use tessera_nn::checkpoint::safetensors::save_state_dict;
use tessera_nn::{Module, ModuleExt};
use tessera_spade::data::{
    write_atomic, Dataset, DatasetOptions, Layout, Phase, Preprocess, SampleBatch,
};
use tessera_spade::{
    semantic_input, Batch, DiscriminatorStep, GeneratorStep, ModelConfig, TrainConfig, Trainer,
};
use tessera_tensor::{Device, Tensor};

use crate::arch::ArchArgs;
use crate::images::{colour_labels, progress_bar, to_rgb, write_grid};
use crate::plot::{svg, Series};
use crate::{CliError, Result};

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DatasetMode {
    /// `--image-dir`, `--label-dir`, `--instance-dir` (default DATAROOT/images, /labels, /instances).
    Custom,
    Ade20k,
    Coco,
    Cityscapes,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Preset {
    /// CPU-trainable: 128 wide, ngf = ndf = 32, SPADE hidden 64, batch 2; on custom data 13
    /// classes without instances, on a reference dataset its label settings.
    Small,
    /// The reference's options for the dataset mode (custom: the base options with 13 classes).
    Paper,
}

#[derive(Args, Debug)]
pub struct TrainArgs {
    /// Dataset folder.
    #[arg(long)]
    pub dataroot: PathBuf,
    #[arg(long, value_enum, default_value = "custom")]
    pub dataset_mode: DatasetMode,
    /// Custom layout: photo folder (default DATAROOT/images).
    #[arg(long)]
    pub image_dir: Option<PathBuf>,
    /// Custom layout: label map folder (default DATAROOT/labels).
    #[arg(long)]
    pub label_dir: Option<PathBuf>,
    /// Custom layout: instance map folder (default DATAROOT/instances, when it exists).
    #[arg(long)]
    pub instance_dir: Option<PathBuf>,
    /// Output folder: checkpoints, samples, loss curves.
    #[arg(long)]
    pub out: PathBuf,
    /// Where to compute: cpu, cuda or cuda:N (a GPU needs the app built with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: Device,
    /// On a GPU, let convolutions use the TF32 tensor cores (operands rounded to a 10-bit
    /// mantissa, sums in FP32), like PyTorch's default `torch.backends.cudnn.allow_tf32`: faster,
    /// but no longer equal to the CPU to FP32 rounding. No effect on the CPU.
    #[arg(long)]
    pub tf32: bool,
    #[arg(long, value_enum, default_value = "small")]
    pub preset: Preset,
    #[command(flatten)]
    pub arch: ArchArgs,
    /// Preprocess mode (resize_and_crop, crop, scale_width, scale_width_and_crop,
    /// scale_shortside, scale_shortside_and_crop, fixed, none); default per dataset mode.
    #[arg(long, value_parser = parse_preprocess)]
    pub preprocess_mode: Option<Preprocess>,
    /// Resize target before cropping (default: crop_size · 286/256, or crop_size for `fixed`).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub load_size: Option<u32>,
    /// No random horizontal flips.
    #[arg(long)]
    pub no_flip: bool,
    /// Batch size (default: 2 for small, the dataset's reference default for paper).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    pub batch_size: Option<u64>,
    /// Epochs at the full learning rate (default 50; on --resume, the checkpoint's).
    #[arg(long)]
    pub niter: Option<usize>,
    /// Epochs of linear decay to zero after --niter (default 0; on --resume, the checkpoint's).
    #[arg(long)]
    pub niter_decay: Option<usize>,
    /// Stop once this many steps (batches) have been trained in all, counting resumed ones.
    #[arg(long)]
    pub max_steps: Option<u64>,
    #[arg(long, default_value_t = 2e-4)]
    pub lr: f64,
    #[arg(long, default_value_t = 0.5)]
    pub beta1: f64,
    #[arg(long, default_value_t = 0.999)]
    pub beta2: f64,
    /// Same learning rate for G and D with (beta1, beta2), instead of lr/2, 2·lr and (0, 0.9).
    #[arg(long)]
    pub no_ttur: bool,
    #[arg(long, default_value_t = 10.0)]
    pub lambda_feat: f32,
    #[arg(long, default_value_t = 10.0)]
    pub lambda_vgg: f32,
    #[arg(long, default_value_t = 0.05)]
    pub lambda_kld: f32,
    /// No discriminator feature-matching loss.
    #[arg(long)]
    pub no_ganfeat_loss: bool,
    /// VGG19 weights (safetensors, torchvision names) for the perceptual loss; without them the
    /// loss is off (the reference's --no_vgg_loss).
    #[arg(long)]
    pub vgg_weights: Option<PathBuf>,
    /// Seed of the initialisation, the data order, the crops and flips.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Write a sample grid every N steps (0: never).
    #[arg(long, default_value_t = 100)]
    pub sample_every: u64,
    /// Write a checkpoint every N steps (and always at the end).
    #[arg(long, default_value_t = 200, value_parser = clap::value_parser!(u64).range(1..))]
    pub save_every: u64,
    /// Continue from OUT/checkpoint.bin (starts afresh if there is none).
    #[arg(long)]
    pub resume: bool,
}

fn parse_preprocess(s: &str) -> std::result::Result<Preprocess, String> {
    s.parse()
        .map_err(|e: tessera_spade::data::DataError| e.to_string())
}

/// The model the flags describe: the preset, then every architecture flag over it. `small` on a
/// reference dataset keeps that dataset's labels (classes, don't-care, instances, aspect).
fn model_config(args: &TrainArgs) -> Result<ModelConfig> {
    let paper = match args.dataset_mode {
        DatasetMode::Ade20k => ModelConfig::ade20k(),
        DatasetMode::Coco => ModelConfig::coco(),
        DatasetMode::Cityscapes => ModelConfig::cityscapes(),
        DatasetMode::Custom => ModelConfig::base(13),
    };
    let base = match (args.preset, args.dataset_mode) {
        (Preset::Small, DatasetMode::Custom) => ModelConfig::small(),
        (Preset::Small, _) => ModelConfig {
            label_nc: paper.label_nc,
            contain_dontcare_label: paper.contain_dontcare_label,
            no_instance: paper.no_instance,
            aspect_ratio: paper.aspect_ratio,
            ..ModelConfig::small()
        },
        (Preset::Paper, _) => paper,
    };
    args.arch.apply(base)
}

fn dataset_options(args: &TrainArgs, model: &ModelConfig) -> Result<DatasetOptions> {
    let root = args.dataroot.clone();
    let layout = match args.dataset_mode {
        DatasetMode::Ade20k => Layout::Ade20k { root },
        DatasetMode::Coco => Layout::Coco { root },
        DatasetMode::Cityscapes => Layout::Cityscapes { root },
        DatasetMode::Custom => {
            let default_instances = root.join("instances");
            let instances = match &args.instance_dir {
                Some(dir) => Some(dir.clone()),
                None => default_instances.is_dir().then_some(default_instances),
            };
            Layout::Custom {
                images: args
                    .image_dir
                    .clone()
                    .unwrap_or_else(|| root.join("images")),
                labels: args
                    .label_dir
                    .clone()
                    .unwrap_or_else(|| root.join("labels")),
                instances,
            }
        }
    };
    let preprocess = args.preprocess_mode.unwrap_or(match args.dataset_mode {
        DatasetMode::Cityscapes => Preprocess::Fixed,
        _ => Preprocess::ResizeAndCrop,
    });
    let crop_size = u32::try_from(model.crop_size)
        .map_err(|_| CliError::Usage(format!("crop size {} is too large", model.crop_size)))?;
    let load_size = args.load_size.unwrap_or(match preprocess {
        Preprocess::Fixed => crop_size,
        // The reference loads at 286 for a 256 crop.
        _ => ((u64::from(crop_size) * 286 + 128) / 256) as u32,
    });
    Ok(DatasetOptions {
        layout,
        phase: Phase::Train,
        label_nc: model.label_nc,
        contain_dontcare_label: model.contain_dontcare_label,
        no_instance: model.no_instance,
        preprocess,
        load_size,
        crop_size,
        aspect_ratio: model.aspect_ratio as f32,
        flip: !args.no_flip,
    })
}

fn train_config(args: &TrainArgs) -> TrainConfig {
    TrainConfig {
        lr: args.lr,
        beta1: args.beta1,
        beta2: args.beta2,
        no_ttur: args.no_ttur,
        niter: args.niter.unwrap_or(50),
        niter_decay: args.niter_decay.unwrap_or(0),
        lambda_feat: args.lambda_feat,
        lambda_vgg: args.lambda_vgg,
        lambda_kld: args.lambda_kld,
        no_ganfeat_loss: args.no_ganfeat_loss,
        seed: args.seed,
        ..TrainConfig::default()
    }
}

/// One step's losses, as written to `losses.csv`.
#[derive(Clone, Debug)]
struct LossRow {
    step: u64,
    values: Vec<f64>,
}

const LOSS_NAMES: [&str; 8] = [
    "G_total", "G_GAN", "G_feat", "G_VGG", "G_KLD", "D_total", "D_fake", "D_real",
];

impl LossRow {
    fn new(step: u64, g: &GeneratorStep, d: &DiscriminatorStep) -> LossRow {
        let optional = |v: Option<f32>| v.map_or(f64::NAN, f64::from);
        LossRow {
            step,
            values: vec![
                f64::from(g.total),
                f64::from(g.gan),
                optional(g.feat),
                optional(g.vgg),
                optional(g.kld),
                f64::from(d.total),
                f64::from(d.fake),
                f64::from(d.real),
            ],
        }
    }
}

/// The sample grid: per image of the batch (four at most), its label map in palette colours,
/// the generator's output and the real photo.
fn write_samples(path: &Path, samples: &SampleBatch, fakes: &Tensor) -> Result<()> {
    let fakes = to_rgb(fakes)?;
    let reals = to_rgb(&samples.images)?;
    let rows: Vec<Vec<Vec<u8>>> = (0..fakes.len().min(4))
        .map(|i| {
            let label = colour_labels(&samples.labels[i]);
            vec![label, fakes[i].clone(), reals[i].clone()]
        })
        .collect();
    let d = samples.images.dims();
    write_grid(path, &rows, d[3], d[2])
}

fn read_losses(path: &Path, up_to: u64) -> Vec<LossRow> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return Vec::new();
    };
    // Rows past the checkpoint's step were trained again after it, so they are dropped.
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let mut fields = line.split(',');
            let step = fields.next()?.parse().ok()?;
            let values: Vec<f64> = fields.map(|f| f.parse().unwrap_or(f64::NAN)).collect();
            (step <= up_to && values.len() == LOSS_NAMES.len()).then_some(LossRow { step, values })
        })
        .collect()
}

fn write_losses(out: &Path, rows: &[LossRow]) -> Result<()> {
    let mut csv = format!("step,{}\n", LOSS_NAMES.join(","));
    for row in rows {
        let values: Vec<String> = row.values.iter().map(|v| format!("{v}")).collect();
        csv.push_str(&format!("{},{}\n", row.step, values.join(",")));
    }
    write_atomic(&out.join("losses.csv"), csv.as_bytes())?;
    let plotted = ["G_total", "G_GAN", "G_feat", "D_total"];
    let series: Vec<Series> = plotted
        .iter()
        .map(|name| {
            let k = LOSS_NAMES.iter().position(|n| n == name).unwrap_or(0);
            Series {
                name,
                points: rows.iter().map(|r| (r.step as f64, r.values[k])).collect(),
            }
        })
        .collect();
    write_atomic(
        &out.join("losses.svg"),
        svg("SPADE training losses", &series).as_bytes(),
    )?;
    Ok(())
}

/// Writes the resumable state, each network's weights, and the loss log.
fn save(out: &Path, trainer: &Trainer, losses: &[LossRow]) -> Result<()> {
    trainer.save(out.join("checkpoint.bin"))?;
    let mut meta = BTreeMap::from([
        ("format".to_string(), "pt".to_string()),
        ("step".to_string(), trainer.step.to_string()),
    ]);
    trainer.model.to_metadata("model.", &mut meta);
    let mut networks: Vec<(&str, &dyn Module)> =
        vec![("G", &trainer.generator), ("D", &trainer.discriminator)];
    if let Some(e) = &trainer.encoder {
        networks.push(("E", e));
    }
    for (name, net) in networks {
        let path = out.join(format!("latest_net_{name}.safetensors"));
        save_state_dict(path, &net.state_dict(), Some(&meta))?;
    }
    write_losses(out, losses)
}

fn write_options(out: &Path, trainer: &Trainer, data: &DatasetOptions) -> Result<()> {
    let mut text = String::new();
    for (k, v) in trainer.model.to_pairs() {
        text.push_str(&format!("{k}: {v}\n"));
    }
    text.push_str(&format!("{:#?}\n{:#?}\n", trainer.train, data));
    write_atomic(&out.join("opt.txt"), text.as_bytes())?;
    Ok(())
}

/// The photos must come out at the generator's output size; say which options disagree.
fn check_sizes(model: &ModelConfig, images: &Tensor, data: &DatasetOptions) -> Result<()> {
    let (h, w) = model.output_hw();
    let d = images.dims();
    if d[2..] == [h, w] {
        return Ok(());
    }
    Err(CliError::Usage(format!(
        "the data come out {}×{} (preprocess {}, crop size {}) but the generator makes {w}×{h} \
         images ({} upsampling layers: the crop size should be a multiple of {})",
        d[3],
        d[2],
        data.preprocess,
        data.crop_size,
        model.num_upsampling_layers.as_str(),
        1u32 << model.num_upsampling_layers.count()
    )))
}

/// A seed for the `index`-th draw of a stream (data order per epoch, transforms per step).
fn stream_seed(seed: u64, stream: u64, index: u64) -> u64 {
    seed ^ stream.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ index.wrapping_mul(0xD1B5_4A32_D192_ED03)
}

pub fn run(args: &TrainArgs) -> Result<()> {
    tessera_tensor::set_cuda_conv_tf32(args.tf32);
    let model = model_config(args)?;
    let data_options = dataset_options(args, &model)?;
    let dataset = Dataset::open(data_options.clone())?;
    let batch_size = args.batch_size.map_or_else(
        || match (args.preset, args.dataset_mode) {
            (Preset::Small, _) => 2,
            (Preset::Paper, DatasetMode::Cityscapes) => 16,
            (Preset::Paper, _) => 1,
        },
        |b| b as usize,
    );
    let steps_per_epoch = (dataset.len() / batch_size) as u64;
    if steps_per_epoch == 0 {
        return Err(CliError::Usage(format!(
            "{} holds {} samples, fewer than the batch size {batch_size}",
            args.dataroot.display(),
            dataset.len()
        )));
    }
    let checkpoint = args.out.join("checkpoint.bin");
    if checkpoint.exists() && !args.resume {
        return Err(CliError::Usage(format!(
            "{} already holds a training run; pass --resume to continue it or choose another --out",
            args.out.display()
        )));
    }
    std::fs::create_dir_all(args.out.join("samples")).map_err(|source| CliError::Io {
        path: args.out.clone(),
        source,
    })?;
    let vgg = match &args.vgg_weights {
        Some(path) => Some(VggPerceptualLoss::new(Vgg19::from_safetensors(path)?)),
        None => None,
    };
    let (mut trainer, mut losses) = if args.resume && checkpoint.exists() {
        let mut t = Trainer::load_matching(&checkpoint, &model, vgg)?;
        t.train.niter = args.niter.unwrap_or(t.train.niter);
        t.train.niter_decay = args.niter_decay.unwrap_or(t.train.niter_decay);
        let rows = read_losses(&args.out.join("losses.csv"), t.step);
        eprintln!("resuming {} at step {}", checkpoint.display(), t.step);
        (t, rows)
    } else {
        if args.resume {
            eprintln!("no checkpoint in {}: starting afresh", args.out.display());
        }
        (Trainer::new(&model, &train_config(args), vgg)?, Vec::new())
    };
    trainer.to_device(args.device)?;
    let epochs = (trainer.train.niter + trainer.train.niter_decay) as u64;
    let total = (epochs * steps_per_epoch).min(args.max_steps.unwrap_or(u64::MAX));
    let interrupted = Arc::new(AtomicBool::new(false));
    let flag = interrupted.clone();
    // The first signal asks for a checkpoint at the end of the step; a second one quits at once
    // (every file is written atomically, so the last checkpoint stays whole).
    let on_signal = move || {
        if flag.swap(true, Ordering::SeqCst) {
            std::process::exit(130);
        }
    };
    if let Err(e) = ctrlc::set_handler(on_signal) {
        eprintln!(
            "warning: cannot catch Ctrl-C ({e}); checkpoints still come every --save-every steps"
        );
    }
    // Written once the handler is in place, so a watcher may interrupt as soon as it appears.
    write_options(&args.out, &trainer, &data_options)?;
    let bar = progress_bar(total, "steps");
    let log_lines = !std::io::stderr().is_terminal();
    bar.set_position(trainer.step.min(total));
    let seed = trainer.train.seed;
    // (epoch, its batches): the order is drawn from the seed and the epoch alone, so a resumed
    // run sees the batches an uninterrupted one would.
    let mut order: (u64, Vec<Vec<usize>>) = (u64::MAX, Vec::new());
    while trainer.step < total {
        let step = trainer.step;
        let epoch = step / steps_per_epoch;
        if order.0 != epoch {
            trainer.set_epoch(epoch as usize);
            let mut rng = ChaCha8Rng::seed_from_u64(stream_seed(seed, 1, epoch));
            order = (epoch, dataset.epoch(batch_size, &mut rng));
        }
        let indices = &order.1[(step % steps_per_epoch) as usize];
        let mut rng = ChaCha8Rng::seed_from_u64(stream_seed(seed, 2, step));
        let samples = dataset.batch(indices, &mut rng, Device::Cpu)?;
        check_sizes(&trainer.model, &samples.images, &data_options)?;
        let semantics = semantic_input(
            &trainer.model,
            &samples.labels,
            samples.instances.as_deref(),
        )?;
        let batch = Batch {
            semantics,
            image: samples.images.clone(),
        };
        let g = trainer.generator_step(&batch)?;
        let d = trainer.discriminator_step(&batch)?;
        losses.push(LossRow::new(trainer.step, &g, &d));
        let status = format!(
            "epoch {} | G {:.3} (GAN {:.3}) | D {:.3}",
            epoch + 1,
            g.total,
            g.gan,
            d.total
        );
        bar.set_position(trainer.step);
        if args.sample_every > 0 && trainer.step % args.sample_every == 0 {
            let path = args
                .out
                .join(format!("samples/step_{:07}.png", trainer.step));
            write_samples(&path, &samples, &g.fake)?;
        }
        let stop = interrupted.load(Ordering::SeqCst);
        if stop || trainer.step % args.save_every == 0 || trainer.step == total {
            save(&args.out, &trainer, &losses)?;
            // Without a terminal the bar is hidden: a log line per checkpoint instead.
            if log_lines {
                eprintln!("step {}/{total} | {status} | saved", trainer.step);
            }
        }
        bar.set_message(status);
        if stop {
            bar.abandon();
            eprintln!(
                "interrupted: checkpoint at step {} in {}; continue with --resume",
                trainer.step,
                args.out.display()
            );
            std::process::exit(130);
        }
    }
    // Nothing was left to train (a finished run resumed): still leave a complete output folder.
    if !checkpoint.exists() {
        save(&args.out, &trainer, &losses)?;
    }
    bar.finish();
    println!(
        "trained to step {} of {total}; checkpoint and weights in {}",
        trainer.step,
        args.out.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use tessera_nn::SpadeNorm;

    #[derive(Parser)]
    struct Wrap {
        #[command(flatten)]
        args: TrainArgs,
    }

    fn parse(extra: &[&str]) -> TrainArgs {
        let base = ["train", "--dataroot", "d", "--out", "o"];
        Wrap::try_parse_from(base.iter().chain(extra)).unwrap().args
    }

    #[test]
    fn presets_then_flags_make_the_model() {
        let city = model_config(&parse(&["--dataset-mode", "cityscapes"])).unwrap();
        assert_eq!((city.label_nc, city.no_instance, city.ngf), (35, false, 32));
        assert_eq!(city.output_hw(), (64, 128));
        let ade = model_config(&parse(&[
            "--preset",
            "paper",
            "--dataset-mode",
            "ade20k",
            "--ngf",
            "16",
            "--norm",
            "instance",
            "--use-vae",
        ]))
        .unwrap();
        assert_eq!((ade.semantic_nc(), ade.ngf, ade.use_vae), (151, 16, true));
        assert_eq!(ade.norm_g.param_free, SpadeNorm::Instance);
        let args = parse(&[
            "--preset",
            "paper",
            "--dataset-mode",
            "ade20k",
            "--contain-dontcare-label",
            "false",
        ]);
        assert!(!model_config(&args).unwrap().contain_dontcare_label);
    }

    #[test]
    fn dataset_defaults_follow_the_reference() {
        let small = dataset_options(&parse(&[]), &ModelConfig::small()).unwrap();
        assert_eq!(
            (small.preprocess, small.load_size, small.crop_size),
            (Preprocess::ResizeAndCrop, 143, 128)
        );
        assert!(small.flip);
        let args = parse(&["--dataset-mode", "cityscapes", "--no-flip"]);
        let city = dataset_options(&args, &ModelConfig::cityscapes()).unwrap();
        assert_eq!((city.preprocess, city.load_size), (Preprocess::Fixed, 512));
        assert!(!city.flip);
    }
}
