//! The applications of the paper, on a trained [`SinGan`]: super-resolution, paint-to-image,
//! harmonization, editing and animation.
//!
//! Each follows the reference's script of the same name (`SR.py`, `paint2image.py`,
//! `harmonization.py`, `editing.py`, `animation.py`). Functions take tensors ([1, 3, H, W] in
//! [−1, 1]); [`load_reference`] and [`load_mask`] read the user's files and bring them to the
//! model's finest size, with errors that name the file.
//!
//! Choices where the reference leaves room:
//! * A reference (paint, naive or edited) image of another size than the model's finest scale is
//!   resized to it, as the reference does, but only when its aspect ratio agrees within 2 %; a
//!   different aspect ratio is an error (the reference would silently distort it).
//! * Paint-to-image with quantization quantizes the paint to the training image's colours
//!   (k-means, k = 5; scikit-learn's KMeans in the reference, k-means++ with a few restarts
//!   here); re-training the injection scale on quantized inputs, as the reference's
//!   `train_paint` always does in that mode, is a separate step ([`retrain_for_paint`]).
use std::path::{Path, PathBuf};

use crate::image_io::{self, ImageIoError};
use crate::model::SinGan;
use crate::resize::imresize_to_shape;
use tessera_tensor::Tensor;

pub mod animation;
pub mod harmonization;
pub mod paint;
pub mod paint_retrain;
pub mod super_resolution;

pub use animation::{animate, AnimationOptions, MomentumWalk};
pub use harmonization::{
    dilate_and_blur_mask, harmonize, mask_from_image, MaskedEdit, MaskedEditKind,
};
pub use paint::{kmeans_colors, paint_to_image, quantize_to_centers};
pub use paint_retrain::retrain_for_paint;
pub use super_resolution::{super_resolve, SrPlan};

/// Largest relative difference of aspect ratio at which a reference image is resized to the
/// model's size rather than refused.
pub const ASPECT_TOLERANCE: f64 = 0.02;

/// What went wrong in an application; errors about a user's file name it.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Model(#[from] crate::Error),
    #[error(transparent)]
    Image(#[from] ImageIoError),
    /// An image does not fit: a mask of another size than its image, or a reference image of
    /// another aspect ratio than the training image.
    #[error(
        "{}: the {what} is {}×{} (H×W) but must be {}×{}{}",
        path.display(), got[0], got[1], expected[0], expected[1], note
    )]
    WrongSize {
        path: PathBuf,
        what: &'static str,
        got: [usize; 2],
        expected: [usize; 2],
        note: String,
    },
    /// A mask whose first channel is black everywhere selects nothing to edit.
    #[error("{}: the mask selects no pixel (its first channel is black everywhere)", path.display())]
    EmptyMask { path: PathBuf },
    /// An option outside its range.
    #[error("{what}: {why}")]
    InvalidOption { what: &'static str, why: String },
}

pub type Result<T> = std::result::Result<T, AppError>;

impl From<tessera_nn::Error> for AppError {
    fn from(e: tessera_nn::Error) -> Self {
        AppError::Model(e.into())
    }
}

impl From<tessera_tensor::Error> for AppError {
    fn from(e: tessera_tensor::Error) -> Self {
        AppError::Model(e.into())
    }
}

fn invalid_option(what: &'static str, why: impl Into<String>) -> AppError {
    AppError::InvalidOption {
        what,
        why: why.into(),
    }
}

/// [height, width] of an image tensor [1, C, H, W].
fn hw(t: &Tensor) -> [usize; 2] {
    let d = t.dims();
    [d[2], d[3]]
}

/// The finest trained scale of `model` and its size; an error for an untrained model.
fn finest_trained(model: &SinGan) -> Result<(usize, [usize; 2])> {
    let n = model
        .num_trained()
        .checked_sub(1)
        .ok_or_else(|| invalid_option("model", "no scale is trained yet"))?;
    Ok((n, model.shape(n)))
}

/// The size of the model's finest scale, where reference images are injected from; the
/// injection applications need every scale trained.
fn injection_size(model: &SinGan) -> Result<[usize; 2]> {
    if !model.is_complete() {
        return Err(invalid_option(
            "model",
            format!(
                "{} of {} scales are trained; paint, harmonize and edit need them all",
                model.num_trained(),
                model.reals.len()
            ),
        ));
    }
    Ok(model.shape(model.reals.len() - 1))
}

/// Whether an image of size `got` has the aspect ratio of `target`: within
/// [`ASPECT_TOLERANCE`], or within the rounding of a resize (scaled by the mean of the two axes'
/// ratios, each side lands within a pixel of the target's; the pyramid's ceil sizes make small
/// images differ by more than 2 %).
fn same_aspect(got: [usize; 2], target: [usize; 2]) -> bool {
    let aspect = |[h, w]: [usize; 2]| w as f64 / h as f64;
    let ratios = [0, 1].map(|a| target[a] as f64 / got[a] as f64);
    let scale = (ratios[0] + ratios[1]) / 2.0;
    let rounding = (0..2).all(|a| (got[a] as f64 * scale - target[a] as f64).abs() <= 1.0);
    rounding || (aspect(got) / aspect(target) - 1.0).abs() <= ASPECT_TOLERANCE
}

/// Brings an image read from `path` to `target` [H, W]: unchanged at that size, resized with
/// the reference's bicubic `imresize_to_shape` when only the scale differs, an error naming the
/// file when the aspect ratio differs by more than [`ASPECT_TOLERANCE`].
fn fit_to(image: Tensor, target: [usize; 2], path: &Path, what: &'static str) -> Result<Tensor> {
    let got = hw(&image);
    if got == target {
        return Ok(image);
    }
    if !same_aspect(got, target) {
        return Err(AppError::WrongSize {
            path: path.to_path_buf(),
            what,
            got,
            expected: target,
            note: " (or any size with that aspect ratio: the training image's, after its \
                   max-size shrink)"
                .into(),
        });
    }
    Ok(imresize_to_shape(&image, target)?)
}

/// Reads a reference image (paint, naive composite, edited image) and brings it to the size of
/// the model's finest trained scale.
pub fn load_reference(model: &SinGan, path: impl AsRef<Path>) -> Result<Tensor> {
    let path = path.as_ref();
    let target = injection_size(model)?;
    fit_to(image_io::read_image(path)?, target, path, "reference image")
}

/// Reads a mask for the reference image `reference_path` (white = the region to harmonize or
/// edit; only the first channel counts, as in the reference). It must have the reference image's
/// size; it is brought to the model's finest size the same way.
pub fn load_mask(
    model: &SinGan,
    path: impl AsRef<Path>,
    reference_path: impl AsRef<Path>,
) -> Result<Tensor> {
    let path = path.as_ref();
    let reference_path = reference_path.as_ref();
    let reference_hw = image_io::image_size(reference_path)?;
    let mask = image_io::read_image(path)?;
    if hw(&mask) != [reference_hw.0, reference_hw.1] {
        return Err(AppError::WrongSize {
            path: path.to_path_buf(),
            what: "mask",
            got: hw(&mask),
            expected: [reference_hw.0, reference_hw.1],
            note: format!(" (the size of {})", reference_path.display()),
        });
    }
    let target = injection_size(model)?;
    fit_to(mask, target, path, "mask")
}

/// Runs the trained scales from `n` on the reference image injected at scale `n` (the shared
/// core of paint-to-image, harmonization and editing: `SinGAN_generate(Gs[n:], …, in_s, n)`).
fn generate_from(
    model: &SinGan,
    injected: &Tensor,
    n: usize,
    rng: &mut tessera_tensor::Rng,
) -> Result<Tensor> {
    injection_size(model)?;
    Ok(model.generate(n, injected, &crate::SampleOptions::default(), rng)?)
}

#[cfg(test)]
pub(crate) mod test_model {
    //! A small model with random weights for the applications' smoke tests: three scales of a
    //! 20×28 image, untrained generators in eval mode.
    use crate::config::TrainConfig;
    use crate::model::{SinGan, TrainedScale};
    use crate::net::Generator;
    use crate::pyramid::PyramidConfig;
    use tessera_nn::Module;
    use tessera_tensor::{Device, Rng, Tensor};

    pub fn image(h: usize, w: usize) -> Tensor {
        let values: Vec<f32> = (0..3 * h * w)
            .map(|i| ((i % 97) as f32 / 48.0 - 1.0).clamp(-1.0, 1.0))
            .collect();
        Tensor::from_vec(values, [1, 3, h, w], Device::Cpu).unwrap()
    }

    fn tiny_model() -> SinGan {
        let config = TrainConfig {
            pyramid: PyramidConfig {
                scale_factor_init: 0.75,
                min_size: 12,
                max_size: 28,
            },
            width: 8,
            max_width: 8,
            ..TrainConfig::paper()
        };
        let mut model = SinGan::untrained(&image(20, 28), &config).unwrap();
        let mut rng = Rng::seed(3);
        for n in 0..model.reals.len() {
            let mut generator = Generator::new(8, &mut rng).unwrap();
            generator.set_training(false);
            model.scales.push(TrainedScale {
                generator,
                noise_amp: if n == 0 { 1.0 } else { 0.1 },
                critic: None,
            });
        }
        model
    }

    /// The tiny model, the index of its finest scale and that scale's [H, W].
    pub fn tiny_model_and_finest() -> (SinGan, usize, [usize; 2]) {
        let model = tiny_model();
        let n = model.num_trained() - 1;
        let shape = model.shape(n);
        (model, n, shape)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tessera_tensor::Rng;
    use test_model::{image, tiny_model_and_finest};

    #[test]
    fn references_are_resized_when_only_the_scale_differs() {
        let (model, _, finest) = tiny_model_and_finest();
        let dir = tempfile::tempdir().unwrap();
        let double = dir.path().join("double.png");
        image_io::write_png(&image(finest[0] * 2, finest[1] * 2), &double).unwrap();
        let loaded = load_reference(&model, &double).unwrap();
        assert_eq!(hw(&loaded), finest);

        let square = dir.path().join("square.png");
        image_io::write_png(&image(30, 30), &square).unwrap();
        let err = load_reference(&model, &square).unwrap_err();
        assert!(matches!(err, AppError::WrongSize { .. }), "{err}");
        assert!(err.to_string().contains("square.png"), "{err}");
    }

    #[test]
    fn aspect_ratios_allow_the_pyramids_rounding() {
        // 28×40 shrinks to the finest scale 23×32 (ceil), 2.7 % off in aspect.
        assert!(same_aspect([28, 40], [23, 32]));
        assert!(same_aspect([400, 600], [167, 250]));
        assert!(!same_aspect([30, 30], [23, 32]));
        assert!(!same_aspect([400, 560], [167, 250]));
    }

    #[test]
    fn injection_needs_a_complete_model() {
        let (mut model, n, [h, w]) = tiny_model_and_finest();
        model.scales.pop();
        let err = paint_to_image(&model, &image(h, w), n - 1, None, &mut Rng::seed(0)).unwrap_err();
        assert!(matches!(err, AppError::InvalidOption { .. }), "{err}");
    }

    #[test]
    fn a_mask_must_have_its_images_size() {
        let (model, _, finest) = tiny_model_and_finest();
        let dir = tempfile::tempdir().unwrap();
        let reference = dir.path().join("naive.png");
        let mask = dir.path().join("naive_mask.png");
        image_io::write_png(&image(finest[0], finest[1]), &reference).unwrap();
        image_io::write_png(&image(finest[0], finest[1] + 1), &mask).unwrap();
        let err = load_mask(&model, &mask, &reference).unwrap_err();
        assert!(err.to_string().contains("naive_mask.png"), "{err}");
        let unreadable = dir.path().join("nothing.png");
        std::fs::write(&unreadable, b"not a png").unwrap();
        let err = load_mask(&model, &unreadable, &reference).unwrap_err();
        assert!(err.to_string().contains("nothing.png"), "{err}");
    }
}
