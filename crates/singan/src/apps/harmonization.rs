//! Harmonization and editing (the reference's `harmonization.py` and `editing.py`): a naive
//! composite (or a crudely edited copy) of the training image is injected at scale n, the scales
//! from n up make it consistent with the image's statistics, and the result replaces the
//! training image inside a soft mask.
//!
//! The mask is processed as the reference's `dilate_mask`: its first channel, as 8-bit values,
//! is thresholded at "not black" (any value above 0), dilated with a disk (radius 7 for
//! harmonization, 20 for editing), blurred with a Gaussian of σ = 5 (scikit-image's
//! `filters.gaussian`: kernel radius 20, edges extended with the nearest pixel) and stretched
//! to [0, 1]. The output is `(1 − mask)·real + mask·generated`.
use super::{generate_from, hw, invalid_option, AppError, Result};
use crate::model::SinGan;
use std::path::Path;
use tessera_tensor::{Device, Rng, Tensor};

/// The Gaussian blur of the mask (σ in pixels) and its kernel's radius (scipy's
/// `int(truncate·σ + 0.5)` with truncate = 4).
const BLUR_SIGMA: f64 = 5.0;
const BLUR_RADIUS: usize = 20;

/// Which of the two applications: they differ only in the dilation radius.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum MaskedEditKind {
    /// Dilation radius 7.
    Harmonization,
    /// Dilation radius 20.
    Editing,
}

impl MaskedEditKind {
    /// The radius of the disk the mask is dilated with.
    pub fn dilation_radius(self) -> usize {
        match self {
            MaskedEditKind::Harmonization => 7,
            MaskedEditKind::Editing => 20,
        }
    }
}

/// The result of [`harmonize`]: the generated image and its composite into the training image
/// with the processed mask (the reference saves both for editing).
#[derive(Debug)]
pub struct MaskedEdit {
    pub generated: Tensor,
    pub composited: Tensor,
    /// The processed mask, [1, 3, H, W] in [0, 1] (three equal channels).
    pub mask: Tensor,
}

/// The binary mask of an image [1, C, H, W] in [−1, 1]: a pixel is in when its first channel,
/// converted to 8 bits as the reference's `torch2uint8` does (truncating), is above 0. Returns
/// the row-major H×W mask. `path` names the mask in the error for an all-black mask.
pub fn mask_from_image(mask: &Tensor, path: &Path) -> Result<Vec<bool>> {
    let [h, w] = hw(mask);
    let values = mask.to_vec()?;
    let bits: Vec<bool> = values[..h * w]
        .iter()
        .map(|&v| (255.0 * ((v + 1.0) / 2.0).clamp(0.0, 1.0)) as u8 > 0)
        .collect();
    if !bits.iter().any(|&b| b) {
        return Err(AppError::EmptyMask {
            path: path.to_path_buf(),
        });
    }
    Ok(bits)
}

/// Binary dilation of an H×W mask by a disk of `radius` (the pixels within Euclidean distance
/// `radius`, scikit-image's `disk`); outside the image counts as unset.
fn dilate(mask: &[bool], [h, w]: [usize; 2], radius: usize) -> Vec<bool> {
    // Per row, a prefix count of set pixels makes "any set pixel in columns a..=b" O(1); the disk
    // is a union of horizontal runs, one per row offset.
    let prefix: Vec<Vec<usize>> = (0..h)
        .map(|y| {
            let mut counts = vec![0usize; w + 1];
            for x in 0..w {
                counts[x + 1] = counts[x] + usize::from(mask[y * w + x]);
            }
            counts
        })
        .collect();
    let r = radius as isize;
    let half_widths: Vec<usize> = (-r..=r)
        .map(|dy| ((r * r - dy * dy) as f64).sqrt().floor() as usize)
        .collect();
    let mut out = vec![false; h * w];
    for y in 0..h {
        for x in 0..w {
            out[y * w + x] = (-r..=r).zip(&half_widths).any(|(dy, &half)| {
                let yy = y as isize + dy;
                if yy < 0 || yy >= h as isize {
                    return false;
                }
                let row = &prefix[yy as usize];
                let lo = x.saturating_sub(half);
                let hi = (x + half).min(w - 1);
                row[hi + 1] > row[lo]
            })
        }
    }
    out
}

/// The normalised Gaussian kernel of [`BLUR_SIGMA`] over −[`BLUR_RADIUS`]..=[`BLUR_RADIUS`].
fn gaussian_kernel() -> Vec<f64> {
    let r = BLUR_RADIUS as isize;
    let raw: Vec<f64> = (-r..=r)
        .map(|x| (-0.5 * (x * x) as f64 / (BLUR_SIGMA * BLUR_SIGMA)).exp())
        .collect();
    let total: f64 = raw.iter().sum();
    raw.into_iter().map(|v| v / total).collect()
}

/// Separable Gaussian blur of an H×W plane with edges extended by the nearest pixel.
fn blur(plane: &[f64], [h, w]: [usize; 2]) -> Vec<f64> {
    let kernel = gaussian_kernel();
    let r = BLUR_RADIUS as isize;
    let clamp = |i: isize, len: usize| i.clamp(0, len as isize - 1) as usize;
    let mut rows = vec![0f64; h * w];
    for y in 0..h {
        for x in 0..w {
            rows[y * w + x] = (-r..=r)
                .zip(&kernel)
                .map(|(d, k)| k * plane[y * w + clamp(x as isize + d, w)])
                .sum();
        }
    }
    let mut out = vec![0f64; h * w];
    for y in 0..h {
        for x in 0..w {
            out[y * w + x] = (-r..=r)
                .zip(&kernel)
                .map(|(d, k)| k * rows[clamp(y as isize + d, h) * w + x])
                .sum();
        }
    }
    out
}

/// The reference's `dilate_mask`: dilation by a disk of `radius`, Gaussian blur (σ = 5),
/// stretched to [0, 1]; returned as [1, 3, H, W] with three equal channels. A mask that covers
/// the whole image after dilation stays 1 everywhere (the reference divides 0 by 0 there).
pub fn dilate_and_blur_mask(mask: &[bool], hw: [usize; 2], radius: usize) -> Result<Tensor> {
    let [h, w] = hw;
    if mask.len() != h * w {
        return Err(invalid_option(
            "mask",
            format!("{} values for a {h}×{w} plane", mask.len()),
        ));
    }
    let dilated = dilate(mask, hw, radius);
    let plane: Vec<f64> = dilated.iter().map(|&b| f64::from(u8::from(b))).collect();
    let blurred: Vec<f32> = blur(&plane, hw).into_iter().map(|v| v as f32).collect();
    let (lo, hi) = blurred
        .iter()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let stretched: Vec<f32> = if hi > lo {
        blurred.iter().map(|v| (v - lo) / (hi - lo)).collect()
    } else {
        vec![1.0; h * w]
    };
    let three = [stretched.as_slice(); 3].concat();
    Ok(Tensor::from_vec(three, [1, 3, h, w], Device::Cpu)?)
}

/// Harmonizes (or edits) `reference` [1, 3, H_N, W_N] — a naive composite or an edited copy of
/// the training image, at the finest scale's size — by injecting it at scale `n` (1 ≤ n ≤ N),
/// then composites the result into the training image inside `mask` (the raw mask image,
/// [1, 3, H_N, W_N] in [−1, 1]; white marks the region). `mask_path` names the mask in errors.
pub fn harmonize(
    model: &SinGan,
    reference: &Tensor,
    mask: &Tensor,
    mask_path: &Path,
    n: usize,
    kind: MaskedEditKind,
    rng: &mut Rng,
) -> Result<MaskedEdit> {
    let size = hw(reference);
    if hw(mask) != size {
        return Err(AppError::WrongSize {
            path: mask_path.to_path_buf(),
            what: "mask",
            got: hw(mask),
            expected: size,
            note: " (the reference image's size)".into(),
        });
    }
    let bits = mask_from_image(mask, mask_path)?;
    let soft = dilate_and_blur_mask(&bits, size, kind.dilation_radius())?;
    let injected = model.injection_input(reference, n)?;
    let generated = generate_from(model, &injected, n, rng)?;
    let real = &model.reals[model.num_trained() - 1];
    let composited = (|| -> tessera_tensor::Result<Tensor> {
        let inverse = soft.neg()?.add_scalar(1.0)?;
        inverse.mul(real)?.add(&soft.mul(&generated)?)
    })()?;
    Ok(MaskedEdit {
        generated,
        composited,
        mask: soft,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apps::test_model::{image, tiny_model_and_finest};

    #[test]
    fn a_single_pixel_dilates_to_the_disk() {
        let (h, w) = (45, 45);
        let mut mask = vec![false; h * w];
        mask[22 * w + 22] = true;
        for (radius, area) in [(7, 149), (20, 1257)] {
            let dilated = dilate(&mask, [h, w], radius);
            assert_eq!(
                dilated.iter().filter(|&&b| b).count(),
                area,
                "radius {radius}"
            );
            // On the axes the disk reaches exactly `radius`.
            assert!(dilated[22 * w + 22 + radius] && !dilated[22 * w + 22 + radius + 1]);
            assert!(dilated[(22 - radius) * w + 22]);
        }
        // Near a border the disk is clipped, not wrapped.
        let mut corner = vec![false; h * w];
        corner[0] = true;
        let dilated = dilate(&corner, [h, w], 7);
        assert!(!dilated[(h - 1) * w + w - 1] && !dilated[w - 1]);
        assert!(dilated[7] && !dilated[8]);
    }

    #[test]
    fn blur_preserves_constants_and_mass() {
        let kernel = gaussian_kernel();
        assert_eq!(kernel.len(), 41);
        assert!((kernel.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        // The centre weight of σ = 5: 1 / Σ exp(−x²/50).
        assert!((kernel[20] - 0.079_788).abs() < 1e-5);
        let ones = vec![1.0; 30 * 50];
        assert!(blur(&ones, [30, 50])
            .iter()
            .all(|v| (v - 1.0).abs() < 1e-12));
        // A point far from the borders spreads as the outer product of the kernel.
        let (h, w) = (60, 60);
        let mut point = vec![0.0; h * w];
        point[30 * w + 30] = 1.0;
        let b = blur(&point, [h, w]);
        assert!((b.iter().sum::<f64>() - 1.0).abs() < 1e-12);
        assert!((b[30 * w + 35] - kernel[20] * kernel[25]).abs() < 1e-15);
    }

    #[test]
    fn processed_mask_is_soft_and_spans_zero_to_one() {
        let (h, w) = (40, 50);
        let mut bits = vec![false; h * w];
        for y in 15..25 {
            for x in 20..30 {
                bits[y * w + x] = true;
            }
        }
        let soft = dilate_and_blur_mask(&bits, [h, w], 7).unwrap();
        assert_eq!(soft.dims(), &[1, 3, h, w]);
        let v = soft.to_vec().unwrap();
        let plane = &v[..h * w];
        assert_eq!(&v[h * w..2 * h * w], plane);
        let max = plane.iter().cloned().fold(f32::MIN, f32::max);
        let min = plane.iter().cloned().fold(f32::MAX, f32::min);
        assert_eq!((min, max), (0.0, 1.0));
        // The centre of the region is fully in, a far corner fully out; the edge is in between.
        assert!(plane[20 * w + 25] > 0.99);
        assert!(plane[0] < 1e-3);
        let edge = plane[20 * w + 30 + 7];
        assert!(edge > 0.1 && edge < 0.9, "{edge}");
        let full = dilate_and_blur_mask(&vec![true; h * w], [h, w], 7).unwrap();
        assert!(full.to_vec().unwrap().iter().all(|&v| v == 1.0));
    }

    #[test]
    fn mask_threshold_follows_the_reference_8_bit_conversion() {
        // 8-bit values 0, 1 and 255 read as the reference reads them.
        let norm = |v: f64| ((v / 255.0) as f32 - 0.5) * 2.0;
        let mask = Tensor::from_vec(
            [norm(0.0), norm(1.0), norm(255.0)].repeat(3),
            [1, 3, 1, 3],
            Device::Cpu,
        )
        .unwrap();
        let bits = mask_from_image(&mask, Path::new("m.png")).unwrap();
        assert!(!bits[0]);
        assert!(bits[2]);
        let black = Tensor::full(-1.0, [1, 3, 2, 2], Device::Cpu).unwrap();
        let err = mask_from_image(&black, Path::new("black_mask.png")).unwrap_err();
        assert!(err.to_string().contains("black_mask.png"), "{err}");
    }

    #[test]
    fn harmonization_keeps_the_image_outside_the_mask() {
        let (model, n, [h, w]) = tiny_model_and_finest();
        let reference = image(h, w);
        // A mask covering one pixel: with radius 7 and the blur most of the image stays out.
        let mut mask_values = vec![-1.0f32; 3 * h * w];
        mask_values[(h / 2) * w + w / 2] = 1.0;
        let mask = Tensor::from_vec(mask_values, [1, 3, h, w], Device::Cpu).unwrap();
        for kind in [MaskedEditKind::Harmonization, MaskedEditKind::Editing] {
            let out = harmonize(
                &model,
                &reference,
                &mask,
                Path::new("mask.png"),
                1,
                kind,
                &mut Rng::seed(4),
            )
            .unwrap();
            assert_eq!(out.composited.dims(), &[1, 3, h, w]);
            let soft = out.mask.to_vec().unwrap();
            let composite = out.composited.to_vec().unwrap();
            let real = model.reals[n].to_vec().unwrap();
            let generated = out.generated.to_vec().unwrap();
            for i in 0..3 * h * w {
                let want = (1.0 - soft[i]) * real[i] + soft[i] * generated[i];
                assert!((composite[i] - want).abs() < 1e-5);
            }
            // Where the mask is 0 the training image shows through exactly.
            let outside = soft.iter().position(|&m| m == 0.0);
            if let Some(i) = outside {
                assert_eq!(composite[i], real[i]);
            }
        }
        let small_mask = Tensor::full(1.0, [1, 3, h - 1, w], Device::Cpu).unwrap();
        let err = harmonize(
            &model,
            &reference,
            &small_mask,
            Path::new("small_mask.png"),
            1,
            MaskedEditKind::Harmonization,
            &mut Rng::seed(4),
        )
        .unwrap_err();
        assert!(err.to_string().contains("small_mask.png"), "{err}");
    }
}
