//! `singan train`: settings from a preset and overrides, a progress bar per scale, and per
//! scale the real, a random sample and the reconstruction as PNG plus the loss curves.
//!
//! Output folder layout (the folder is also the model folder the other commands read):
//!
//! ```text
//! <out>/pyramid.safetensors, scale_NN.safetensors   the model, one file per finished scale
//! <out>/images/scale_NN/{real,sample,reconstruction}.png
//! <out>/losses.csv, losses.svg                      every iteration's losses, and their plot
//! <out>/samples/sample_NN.png, reconstruction.png   written when training ends
//! ```
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle};
use tessera_singan::image_io::{self, write_png};
use tessera_singan::{store, Event, Pyramid, SampleOptions, SinGan, TrainConfig};
use tessera_tensor::Rng;

use crate::cli::{Preset, TrainArgs};
use crate::error::{CliError, Result};
use crate::loss_log::{self, LossRecord};

/// The reference's learning-rate milestone as a fraction of the iterations (1600 of 2000).
const MILESTONE_FRACTION: f64 = 0.8;
/// Offsets the seed of the sampling draws from the training ones (which use the seed itself).
const SAMPLE_SEED_OFFSET: u64 = 0x5a17_7e57;

/// The settings a run uses: the preset with the command line's overrides.
pub fn config_from(args: &TrainArgs) -> Result<TrainConfig> {
    let mut config = match args.preset.unwrap_or(Preset::Paper) {
        Preset::Paper => TrainConfig::paper(),
        Preset::Quick => TrainConfig::quick(),
    };
    config.seed = args.seed;
    if let Some(v) = args.max_size {
        config.pyramid.max_size = v as usize;
    }
    if let Some(v) = args.min_size {
        config.pyramid.min_size = v as usize;
    }
    if let Some(v) = args.scale_factor {
        config.pyramid.scale_factor_init = v;
    }
    if config.pyramid.min_size > config.pyramid.max_size {
        return Err(CliError::Usage(format!(
            "--min-size {} is above --max-size {}",
            config.pyramid.min_size, config.pyramid.max_size
        )));
    }
    if let Some(v) = args.iters {
        config.iterations = v as usize;
        config.lr_milestone = (v as f64 * MILESTONE_FRACTION).round() as usize;
    }
    if let Some(v) = args.width {
        config.width = v as usize;
        config.max_width = config.max_width.max(config.width);
    }
    if let Some(v) = args.max_width {
        if (v as usize) < config.width {
            return Err(CliError::Usage(format!(
                "--max-width {v} is below the width {}",
                config.width
            )));
        }
        config.max_width = v as usize;
    }
    if let Some(v) = args.alpha {
        config.alpha = v as f32;
    }
    config.noise_padding |= args.noise_padding;
    config.fixed_z_star &= !args.redraw_z_star;
    Ok(config)
}

/// Whether the command line chose any setting (a resumed run ignores them).
fn settings_given(args: &TrainArgs) -> bool {
    args.preset.is_some()
        || args.max_size.is_some()
        || args.min_size.is_some()
        || args.scale_factor.is_some()
        || args.iters.is_some()
        || args.width.is_some()
        || args.max_width.is_some()
        || args.alpha.is_some()
        || args.noise_padding
        || args.redraw_z_star
}

fn print_settings(config: &TrainConfig, pyramid: &Pyramid, preset: &str) {
    let sizes: Vec<String> = pyramid
        .shapes
        .iter()
        .map(|[h, w]| format!("{h}×{w}"))
        .collect();
    let widths: Vec<String> = (0..pyramid.shapes.len())
        .map(|n| config.width_for_scale(n).to_string())
        .collect();
    println!("settings ({preset}, seed {}):", config.seed);
    println!(
        "  pyramid   {} scales, factor {:.4} (from {}; min size {}, max size {}): {}",
        pyramid.shapes.len(),
        pyramid.scale_factor,
        config.pyramid.scale_factor_init,
        config.pyramid.min_size,
        config.pyramid.max_size,
        sizes.join(", ")
    );
    println!("  widths    {}", widths.join(" "));
    println!(
        "  per scale {} iterations of {} critic + {} generator steps; Adam lr G {} D {}, betas {:?}, ×{} from iteration {}",
        config.iterations,
        config.d_steps,
        config.g_steps,
        config.lr_g,
        config.lr_d,
        config.betas,
        config.lr_gamma,
        config.lr_milestone
    );
    println!(
        "  losses    WGAN-GP λ {} (per pixel), reconstruction α {}, noise amplitude {}·RMSE",
        config.lambda_grad, config.alpha, config.noise_amp_init
    );
    println!(
        "  z*        {}; noise padding {}",
        if config.fixed_z_star {
            "fixed (the paper)"
        } else {
            "redrawn every iteration (the reference code)"
        },
        if config.noise_padding { "on" } else { "off" }
    );
}

fn create_dir(path: &Path) -> Result<()> {
    std::fs::create_dir_all(path).map_err(|source| CliError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// The real, a random sample and the reconstruction at the scale just trained.
fn write_scale_images(out: &Path, model: &SinGan, scale: usize) -> Result<()> {
    let dir = out.join("images").join(format!("scale_{scale:02}"));
    create_dir(&dir)?;
    write_png(&model.reals[scale], dir.join("real.png"))?;
    let mut rng = Rng::seed(model.config.seed ^ SAMPLE_SEED_OFFSET ^ scale as u64);
    write_png(
        &model.sample(&SampleOptions::default(), &mut rng)?,
        dir.join("sample.png"),
    )?;
    write_png(&model.reconstruct()?, dir.join("reconstruction.png"))?;
    Ok(())
}

/// The training callback's state: the bar of the scale in progress, the loss log, and the
/// first error met while writing outputs (training then stops and the error is reported).
struct Reporter<'a> {
    out: &'a Path,
    bar: Option<ProgressBar>,
    records: Vec<LossRecord>,
    scale_started: Instant,
    failure: Option<CliError>,
}

impl Reporter<'_> {
    fn on_event(&mut self, event: Event<'_>) -> ControlFlow<()> {
        match event {
            Event::ScaleStart {
                scale,
                num_scales,
                iterations,
                width,
                noise_amp,
            } => {
                let style = ProgressStyle::with_template(
                    "{prefix} [{bar:28}] {pos}/{len} {elapsed_precise} (ETA {eta_precise}) {msg}",
                )
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> ");
                let bar = ProgressBar::new(iterations as u64).with_style(style);
                bar.set_prefix(format!("scale {}/{num_scales}", scale + 1));
                bar.println(format!(
                    "scale {}/{num_scales}: width {width}, noise amplitude {noise_amp:.4}",
                    scale + 1
                ));
                self.bar = Some(bar);
                self.scale_started = Instant::now();
            }
            Event::Iteration(progress) => {
                let l = progress.losses;
                if let Some(bar) = &self.bar {
                    bar.set_position(progress.iteration as u64);
                    bar.set_message(format!(
                        "D {:+.3} G {:+.3} rec {:.4} GP {:.4}",
                        l.d, l.g, l.rec, l.gp
                    ));
                }
                self.records.push(LossRecord {
                    scale: progress.scale,
                    iteration: progress.iteration,
                    losses: l,
                });
            }
            Event::ScaleDone { scale, model } => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
                let last = self.records.last().map(|r| r.losses).unwrap_or_default();
                println!(
                    "scale {}/{} done in {:.1} s: D {:+.3} G {:+.3} rec {:.4}; saved to {}",
                    scale + 1,
                    model.reals.len(),
                    self.scale_started.elapsed().as_secs_f64(),
                    last.d,
                    last.g,
                    last.rec,
                    self.out.join(store::scale_file_name(scale)).display()
                );
                let written = write_scale_images(self.out, model, scale)
                    .and_then(|()| loss_log::write_csv(&self.out.join("losses.csv"), &self.records))
                    .and_then(|()| {
                        loss_log::write_svg(&self.out.join("losses.svg"), &self.records)
                    });
                if let Err(e) = written {
                    self.failure = Some(e);
                    return ControlFlow::Break(());
                }
            }
        }
        ControlFlow::Continue(())
    }
}

fn default_out(image: &Path) -> PathBuf {
    let stem = image
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "model".into());
    PathBuf::from("runs").join(stem)
}

pub fn run(args: &TrainArgs) -> Result<()> {
    tessera_tensor::set_cuda_conv_tf32(args.tf32);
    let out = args.out.clone().unwrap_or_else(|| default_out(&args.image));
    let config = config_from(args)?;
    let started = Instant::now();
    let mut reporter = Reporter {
        out: &out,
        bar: None,
        records: Vec::new(),
        scale_started: Instant::now(),
        failure: None,
    };
    let result = if args.resume {
        let stored = store::load(&out)?;
        if settings_given(args) && stored.config != config {
            println!(
                "note: resuming with the settings the run was started with; the preset and \
                 overrides given now are ignored"
            );
        }
        print_settings(&stored.config, &stored.pyramid, "resumed");
        println!(
            "resuming {} at scale {}/{}, computing on {}",
            out.display(),
            stored.num_trained() + 1,
            stored.reals.len(),
            args.device
        );
        reporter.records = loss_log::read_csv(&out.join("losses.csv"))
            .unwrap_or_default()
            .into_iter()
            .filter(|r| r.scale < stored.num_trained())
            .collect();
        tessera_singan::resume_on(args.device, &out, &mut |event| reporter.on_event(event))
    } else {
        let image = image_io::read_image(&args.image)?;
        let d = image.dims();
        let pyramid = Pyramid::plan(d[2], d[3], &config.pyramid).map_err(|source| {
            CliError::TrainingImage {
                path: args.image.clone(),
                source,
            }
        })?;
        if out.join(store::PYRAMID_FILE).exists() {
            return Err(CliError::Usage(format!(
                "{} already holds a model: continue it with --resume, or train into another --out",
                out.display()
            )));
        }
        let preset = match args.preset.unwrap_or(Preset::Paper) {
            Preset::Paper => "preset paper",
            Preset::Quick => "preset quick",
        };
        println!(
            "training on {} ({}×{}) into {}, computing on {}",
            args.image.display(),
            d[2],
            d[3],
            out.display(),
            args.device
        );
        print_settings(&config, &pyramid, preset);
        tessera_singan::train_on(args.device, &image, &config, Some(&out), &mut |event| {
            reporter.on_event(event)
        })
    };
    if let Some(failure) = reporter.failure.take() {
        return Err(failure);
    }
    let model = result?;
    write_final_outputs(&out, &model, args.samples)?;
    println!(
        "done in {:.1} s: model, per-scale images and loss curves in {}",
        started.elapsed().as_secs_f64(),
        out.display()
    );
    Ok(())
}

fn write_final_outputs(out: &Path, model: &SinGan, samples: usize) -> Result<()> {
    write_png(&model.reconstruct()?, out.join("reconstruction.png"))?;
    if samples == 0 {
        return Ok(());
    }
    let dir = out.join("samples");
    create_dir(&dir)?;
    let mut rng = Rng::seed(model.config.seed ^ SAMPLE_SEED_OFFSET);
    for i in 0..samples {
        let sample = model.sample(&SampleOptions::default(), &mut rng)?;
        write_png(&sample, dir.join(format!("sample_{i:02}.png")))?;
    }
    println!("{samples} random samples in {}", dir.display());
    Ok(())
}
