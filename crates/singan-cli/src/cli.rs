//! The command line: one subcommand per task, with clap's value parsers rejecting bad values
//! before anything runs.
// The doc comments are clap's help text, printed verbatim: `<model>` there is a placeholder for
// the terminal, not an HTML tag.
#![allow(rustdoc::invalid_html_tags)]
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::path::PathBuf;
use tessera_tensor::Device;

#[derive(Debug, Parser)]
#[command(
    name = "singan",
    version,
    about = "SinGAN: learn a generative model from a single image, then sample it, \
             enlarge it, paint with it, harmonize, edit and animate",
    long_about = "SinGAN (Shaham, Dekel, Michaeli, ICCV 2019), faithful to the official PyTorch \
                  code. Train a model on one image with `singan train`; every other command \
                  reads the model folder it writes (or one converted from the official code with \
                  convert_official.py)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Train a model on one image, scale by scale; each finished scale is saved, so an
    /// interrupted run (Ctrl-C, kill) continues with --resume.
    Train(TrainArgs),
    /// Write random samples, at any size and aspect.
    Sample(SampleArgs),
    /// Write the deterministic reconstruction G(z*) of the training image.
    Reconstruct(ReconstructArgs),
    /// Super-resolution: enlarge the training image by a factor, in steps of 2^(1/3).
    Sr(SrArgs),
    /// Paint-to-image: turn a rough painting into an image with the training image's look.
    Paint(PaintArgs),
    /// Harmonization: blend a pasted object into the training image.
    Harmonize(MaskedArgs),
    /// Editing: make a crude edit of the training image look natural.
    Edit(MaskedArgs),
    /// Animation: a looping GIF from a random walk of the noise.
    Animate(AnimateArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Preset {
    /// The reference's defaults: 2000 iterations per scale, finest side 250, widths 32/64/128.
    Paper,
    /// A CPU demo: smaller finest size, width 32, fewer iterations (`train` prints them).
    Quick,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// The training image (PNG or JPEG; RGBA, grayscale and 16-bit are accepted).
    pub image: PathBuf,
    /// Settings to start from; the options below override single values [default: paper].
    #[arg(long, value_enum)]
    pub preset: Option<Preset>,
    /// Output folder: the model files, per-scale images, loss curves and samples
    /// [default: runs/<image name>].
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Seed of every random draw: the same seed and settings give the same model.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Continue the interrupted run in --out at its first unfinished scale, with the settings it
    /// was started with.
    #[arg(long)]
    pub resume: bool,
    /// Where to compute: cpu, cuda or cuda:N (a GPU needs the app built with `--features cuda`).
    #[arg(long, default_value = "cpu")]
    pub device: Device,
    /// On a GPU, let convolutions use the TF32 tensor cores (operands rounded to a 10-bit
    /// mantissa, sums in FP32), like PyTorch's default `torch.backends.cudnn.allow_tf32`: faster,
    /// but no longer equal to the CPU to FP32 rounding. No effect on the CPU.
    #[arg(long)]
    pub tf32: bool,
    /// Longest side of the finest scale (the image is shrunk to it).
    #[arg(long, value_parser = clap::value_parser!(u32).range(2..=4096))]
    pub max_size: Option<u32>,
    /// Shortest side of the coarsest scale.
    #[arg(long, value_parser = clap::value_parser!(u32).range(2..=4096))]
    pub min_size: Option<u32>,
    /// Initial factor between scales (adjusted so the pyramid ends exactly at max-size).
    #[arg(long, value_parser = unit_interval_open)]
    pub scale_factor: Option<f64>,
    /// Training iterations (epochs) per scale; the learning rate drops ×0.1 at 80 % of them.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub iters: Option<u32>,
    /// Channel width of scales 0–3 (doubled every 4 scales up to --max-width).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub width: Option<u32>,
    /// Largest channel width.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub max_width: Option<u32>,
    /// Weight of the reconstruction loss (the reference uses 100 for super-resolution).
    #[arg(long, value_parser = non_negative)]
    pub alpha: Option<f64>,
    /// Draw the noise at the padded size (the reference's animation training).
    #[arg(long)]
    pub noise_padding: bool,
    /// Redraw z* at every iteration of scale 0, as the reference code does (the paper, and the
    /// default, keep it fixed).
    #[arg(long)]
    pub redraw_z_star: bool,
    /// Random samples written when training ends.
    #[arg(long, default_value_t = 8)]
    pub samples: usize,
}

#[derive(Debug, Args)]
pub struct ModelArg {
    /// Model folder (written by `singan train` or by convert_official.py).
    #[arg(long)]
    pub model: PathBuf,
}

#[derive(Debug, Args)]
pub struct SampleArgs {
    #[command(flatten)]
    pub model: ModelArg,
    /// Number of samples.
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub n: u32,
    /// Width factor relative to the training image (arbitrary sizes need --gen-start-scale 0).
    #[arg(long, default_value_t = 1.0, value_parser = positive_factor)]
    pub scale_h: f64,
    /// Height factor relative to the training image.
    #[arg(long, default_value_t = 1.0, value_parser = positive_factor)]
    pub scale_v: f64,
    /// First scale with random noise; coarser scales reproduce the training image's layout.
    #[arg(long, default_value_t = 0)]
    pub gen_start_scale: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output folder [default: <model>/samples].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReconstructArgs {
    #[command(flatten)]
    pub model: ModelArg,
    /// Output PNG [default: <model>/reconstruction.png].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct SrArgs {
    #[command(flatten)]
    pub model: ModelArg,
    /// Enlargement factor (≥ 1.13; the reference uses 4).
    #[arg(long, default_value_t = 4.0, value_parser = positive_factor)]
    pub factor: f64,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output PNG [default: <model>/sr_x<factor>.png].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct PaintArgs {
    #[command(flatten)]
    pub model: ModelArg,
    /// The painting (the training image's size, or any size with its aspect ratio).
    #[arg(long)]
    pub paint: PathBuf,
    /// Scale the painting is injected at (1 ..= N; coarser keeps less of the painting's detail).
    #[arg(long)]
    pub start_scale: usize,
    /// Quantize the painting to the training image's dominant colours first.
    #[arg(long)]
    pub quantize: bool,
    /// Number of colours for --quantize.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub colors: u32,
    /// With --quantize: first re-train the start scale on quantized inputs, as the reference's
    /// paint2image does (takes as long as training that scale; the model files are unchanged).
    #[arg(long, requires = "quantize")]
    pub retrain: bool,
    /// Iterations of --retrain [default: the model's iterations per scale].
    #[arg(long, requires = "retrain", value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub retrain_iters: Option<u32>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output PNG [default: <model>/paint_<painting name>.png].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct MaskedArgs {
    #[command(flatten)]
    pub model: ModelArg,
    /// The naive composite or edited image (the training image's size, or its aspect ratio).
    #[arg(long)]
    pub image: PathBuf,
    /// Mask of the region (white) [default: <image>_mask.<ext>, as the reference names it].
    #[arg(long)]
    pub mask: Option<PathBuf>,
    /// Scale the image is injected at (1 ..= N).
    #[arg(long)]
    pub start_scale: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output PNG of the masked result [default: <model>/<command>_<image name>.png]; editing
    /// also writes the unmasked output beside it (`…_unmasked.png`).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AnimateArgs {
    #[command(flatten)]
    pub model: ModelArg,
    /// Pull of the noise walk towards the reconstruction noise.
    #[arg(long, default_value_t = 0.1, value_parser = unit_interval)]
    pub alpha: f32,
    /// Momentum of the noise walk (higher = smoother; the reference tries 0.80–0.95).
    #[arg(long, default_value_t = 0.9, value_parser = unit_interval)]
    pub beta: f32,
    /// First scale whose noise moves (coarser scales keep the training image's layout).
    #[arg(long, default_value_t = 2)]
    pub start_scale: usize,
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub frames: u32,
    #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100))]
    pub fps: u32,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Output GIF [default: <model>/animation.gif].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

fn parse_f64(s: &str) -> Result<f64, String> {
    let v: f64 = s.parse().map_err(|_| format!("`{s}` is not a number"))?;
    if !v.is_finite() {
        return Err(format!("`{s}` is not a finite number"));
    }
    Ok(v)
}

fn positive_factor(s: &str) -> Result<f64, String> {
    let v = parse_f64(s)?;
    if v > 0.0 && v <= 64.0 {
        Ok(v)
    } else {
        Err(format!("must be in (0, 64], got {v}"))
    }
}

fn non_negative(s: &str) -> Result<f64, String> {
    let v = parse_f64(s)?;
    if v >= 0.0 {
        Ok(v)
    } else {
        Err(format!("must be ≥ 0, got {v}"))
    }
}

fn unit_interval_open(s: &str) -> Result<f64, String> {
    let v = parse_f64(s)?;
    if v > 0.0 && v < 1.0 {
        Ok(v)
    } else {
        Err(format!("must be strictly between 0 and 1, got {v}"))
    }
}

fn unit_interval(s: &str) -> Result<f32, String> {
    let v = parse_f64(s)?;
    if (0.0..=1.0).contains(&v) {
        Ok(v as f32)
    } else {
        Err(format!("must be in [0, 1], got {v}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn bad_values_are_rejected_by_the_parser() {
        for args in [
            &["singan", "train", "x.png", "--preset", "fast"][..],
            &["singan", "train", "x.png", "--iters", "0"],
            &["singan", "train", "x.png", "--scale-factor", "1.5"],
            &["singan", "sample", "--model", "m", "--scale-h", "-1"],
            &["singan", "sample", "--model", "m", "--scale-v", "nan"],
            &["singan", "animate", "--model", "m", "--beta", "2"],
            &["singan", "sample"],
        ] {
            assert!(Cli::try_parse_from(args).is_err(), "{args:?}");
        }
        let ok = Cli::try_parse_from([
            "singan", "train", "x.png", "--preset", "quick", "--iters", "5",
        ]);
        assert!(ok.is_ok());
    }
}
