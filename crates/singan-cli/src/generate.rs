//! The commands that read a trained model: sample, reconstruct, sr, paint, harmonize, edit,
//! animate.
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressStyle};
use tessera_singan::apps::{self, AnimationOptions, MaskedEditKind};
use tessera_singan::image_io::{write_gif, write_png};
use tessera_singan::{store, SampleOptions, SinGan};
use tessera_tensor::Rng;

use crate::cli::{AnimateArgs, MaskedArgs, PaintArgs, ReconstructArgs, SampleArgs, SrArgs};
use crate::error::{CliError, Result};

/// Loads a model folder; a model with no trained scale is an error, a partly trained one is
/// used up to its last trained scale (with a note).
fn load_model(dir: &Path) -> Result<SinGan> {
    let model = store::load(dir)?;
    if model.num_trained() == 0 {
        return Err(CliError::Usage(format!(
            "{}: the model has no trained scale yet (resume its training with `singan train --resume`)",
            dir.display()
        )));
    }
    if !model.is_complete() {
        eprintln!(
            "note: {} has {} of {} scales trained; using them (output at scale {})",
            dir.display(),
            model.num_trained(),
            model.reals.len(),
            model.num_trained() - 1
        );
    }
    Ok(model)
}

/// The name of a file without folder and extension, for default output names.
fn stem(path: &Path) -> String {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "image".into())
}

fn create_parent(path: &Path) -> Result<()> {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => {
            std::fs::create_dir_all(parent).map_err(|source| CliError::Io {
                path: parent.to_path_buf(),
                source,
            })
        }
        _ => Ok(()),
    }
}

fn written(path: &Path) {
    println!("wrote {}", path.display());
}

/// A scale option must name one of the model's trained scales, from `lowest` up.
fn check_scale(model: &SinGan, flag: &str, value: usize, lowest: usize) -> Result<()> {
    let last = model.num_trained() - 1;
    if value < lowest || value > last {
        return Err(CliError::Usage(format!(
            "{flag} must be in {lowest}..={last} for this model, got {value}"
        )));
    }
    Ok(())
}

pub fn sample(args: &SampleArgs) -> Result<()> {
    let model = load_model(&args.model.model)?;
    check_scale(&model, "--gen-start-scale", args.gen_start_scale, 0)?;
    let options = SampleOptions {
        scale_h: args.scale_h,
        scale_v: args.scale_v,
        gen_start_scale: args.gen_start_scale,
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.model.model.join("samples"));
    std::fs::create_dir_all(&out).map_err(|source| CliError::Io {
        path: out.clone(),
        source,
    })?;
    let mut rng = Rng::seed(args.seed);
    for i in 0..args.n {
        let image = model.sample(&options, &mut rng)?;
        let path = out.join(format!("sample_{i:02}.png"));
        write_png(&image, &path)?;
    }
    println!("wrote {} samples to {}", args.n, out.display());
    Ok(())
}

pub fn reconstruct(args: &ReconstructArgs) -> Result<()> {
    let model = load_model(&args.model.model)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.model.model.join("reconstruction.png"));
    create_parent(&out)?;
    write_png(&model.reconstruct()?, &out)?;
    written(&out);
    Ok(())
}

pub fn super_resolution(args: &SrArgs) -> Result<()> {
    let model = load_model(&args.model.model)?;
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.model.model.join(format!("sr_x{}.png", args.factor)));
    create_parent(&out)?;
    let image = apps::super_resolve(&model, args.factor, &mut Rng::seed(args.seed))?;
    write_png(&image, &out)?;
    written(&out);
    Ok(())
}

pub fn paint(args: &PaintArgs) -> Result<()> {
    let mut model = load_model(&args.model.model)?;
    let n = args.start_scale;
    check_scale(&model, "--start-scale", n, 1)?;
    let painting = apps::load_reference(&model, &args.paint)?;
    let out = args.out.clone().unwrap_or_else(|| {
        args.model
            .model
            .join(format!("paint_{}.png", stem(&args.paint)))
    });
    create_parent(&out)?;
    let mut rng = Rng::seed(args.seed);
    let centers = if args.quantize {
        Some(apps::kmeans_colors(
            &model.reals[n],
            args.colors as usize,
            &mut rng,
        )?)
    } else {
        None
    };
    if let (true, Some(centers)) = (args.retrain, &centers) {
        let iterations = args
            .retrain_iters
            .map_or(model.config.iterations, |i| i as usize);
        let bar = ProgressBar::new(iterations as u64).with_style(
            ProgressStyle::with_template(
                "re-training scale {prefix} [{bar:28}] {pos}/{len} (ETA {eta_precise}) {msg}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(n.to_string());
        apps::retrain_for_paint(&mut model, n, centers, iterations, &mut rng, &mut |i, l| {
            bar.set_position(i as u64);
            bar.set_message(format!("D {:+.3} G {:+.3} rec {:.4}", l.d, l.g, l.rec));
        })?;
        bar.finish_and_clear();
        println!("re-trained scale {n} for {iterations} iterations on quantized inputs");
    }
    let image = apps::paint_to_image(&model, &painting, n, centers.as_deref(), &mut rng)?;
    write_png(&image, &out)?;
    written(&out);
    Ok(())
}

/// The reference's mask name for an image: `<stem>_mask.<ext>` beside it.
fn default_mask(image: &Path) -> PathBuf {
    let ext = image
        .extension()
        .map(|e| format!(".{}", e.to_string_lossy()))
        .unwrap_or_default();
    image.with_file_name(format!("{}_mask{ext}", stem(image)))
}

pub fn masked(args: &MaskedArgs, kind: MaskedEditKind) -> Result<()> {
    let model = load_model(&args.model.model)?;
    check_scale(&model, "--start-scale", args.start_scale, 1)?;
    let mask_path = args
        .mask
        .clone()
        .unwrap_or_else(|| default_mask(&args.image));
    let reference = apps::load_reference(&model, &args.image)?;
    let mask = apps::load_mask(&model, &mask_path, &args.image)?;
    let command = match kind {
        MaskedEditKind::Harmonization => "harmonize",
        MaskedEditKind::Editing => "edit",
    };
    let out = args.out.clone().unwrap_or_else(|| {
        args.model
            .model
            .join(format!("{command}_{}.png", stem(&args.image)))
    });
    create_parent(&out)?;
    let result = apps::harmonize(
        &model,
        &reference,
        &mask,
        &mask_path,
        args.start_scale,
        kind,
        &mut Rng::seed(args.seed),
    )?;
    write_png(&result.composited, &out)?;
    written(&out);
    if kind == MaskedEditKind::Editing {
        let unmasked = out.with_file_name(format!("{}_unmasked.png", stem(&out)));
        write_png(&result.generated, &unmasked)?;
        written(&unmasked);
    }
    Ok(())
}

pub fn animate(args: &AnimateArgs) -> Result<()> {
    let model = load_model(&args.model.model)?;
    check_scale(&model, "--start-scale", args.start_scale, 0)?;
    let options = AnimationOptions {
        alpha: args.alpha,
        beta: args.beta,
        start_scale: args.start_scale,
        frames: args.frames as usize,
    };
    let out = args
        .out
        .clone()
        .unwrap_or_else(|| args.model.model.join("animation.gif"));
    create_parent(&out)?;
    let frames = apps::animate(&model, &options, &mut Rng::seed(args.seed))?;
    write_gif(&frames, args.fps, &out)?;
    written(&out);
    Ok(())
}
