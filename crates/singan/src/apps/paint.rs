//! Paint-to-image (the reference's `paint2image.py`): a rough painting, injected at a chosen
//! scale n (1 ≤ n ≤ N), is turned into an image with the training image's textures by the scales
//! from n up.
//!
//! Without quantization the painting enters scale n down- and up-sampled (blurred), as
//! [`SinGan::injection_input`] builds it. With quantization, as the reference's
//! `--quantization_flag`: the colours of the training image at scale n are clustered with
//! k-means (k = 5), every pixel of the painting is replaced by its nearest centre, and the
//! quantized painting is shrunk straight to scale n. The reference then re-trains scale n on
//! quantized inputs (`train_paint`): [`retrain_for_paint`](super::retrain_for_paint).
use super::{generate_from, invalid_option, Result};
use crate::model::{crop, SinGan};
use crate::resize::imresize;
use tessera_tensor::{Device, Rng, Tensor};

/// Number of k-means restarts; the best (lowest inertia) clustering is kept.
const KMEANS_RESTARTS: usize = 4;
/// Lloyd iterations per restart, at most.
const KMEANS_MAX_ITERATIONS: usize = 100;

/// Paints `paint` ([1, 3, H_N, W_N] in [−1, 1], the finest scale's size) into an image, injecting
/// it at scale `n`. With `centers` (from [`kmeans_colors`] on `model.reals[n]`, as the
/// reference quantizes), the painting is first quantized to those colours and shrunk straight
/// to scale n; without, it enters blurred ([`SinGan::injection_input`]).
pub fn paint_to_image(
    model: &SinGan,
    paint: &Tensor,
    n: usize,
    centers: Option<&[[f32; 3]]>,
    rng: &mut Rng,
) -> Result<Tensor> {
    let injected = match centers {
        None => model.injection_input(paint, n)?,
        Some(centers) => {
            let last = model.reals.len() - 1;
            if n == 0 || n > last {
                return Err(invalid_option(
                    "paint start scale",
                    format!("must be in 1..={last}, got {n}"),
                ));
            }
            let quantized = quantize_to_centers(paint, centers)?;
            let shrunk = imresize(&quantized, model.pyramid.relative_scale(n))?;
            crop(&shrunk, model.shape(n))?
        }
    };
    generate_from(model, &injected, n, rng)
}

/// The pixels of an image [1, 3, H, W] as RGB triples.
fn pixels(image: &Tensor) -> Result<Vec<[f32; 3]>> {
    let d = image.dims();
    if d.len() != 4 || d[0] != 1 || d[1] != 3 {
        return Err(invalid_option(
            "image",
            format!("expected [1, 3, H, W], got {}", image.shape()),
        ));
    }
    let plane = d[2] * d[3];
    let values = image.to_vec()?;
    Ok((0..plane)
        .map(|p| [values[p], values[plane + p], values[2 * plane + p]])
        .collect())
}

fn distance2(a: &[f32; 3], b: &[f32; 3]) -> f32 {
    (0..3).map(|c| (a[c] - b[c]) * (a[c] - b[c])).sum()
}

fn nearest(centers: &[[f32; 3]], p: &[f32; 3]) -> (usize, f32) {
    centers
        .iter()
        .enumerate()
        .map(|(i, c)| (i, distance2(c, p)))
        .fold(
            (0, f32::INFINITY),
            |best, cur| if cur.1 < best.1 { cur } else { best },
        )
}

/// k-means++ seeding: the first centre uniformly, each next one with probability ∝ squared
/// distance to the nearest chosen centre.
fn seed_centers(points: &[[f32; 3]], k: usize, rng: &mut Rng) -> Vec<[f32; 3]> {
    let pick = |rng: &mut Rng, n: usize| (rng.next_u64() % n as u64) as usize;
    let mut centers = vec![points[pick(rng, points.len())]];
    while centers.len() < k {
        let weights: Vec<f64> = points
            .iter()
            .map(|p| f64::from(nearest(&centers, p).1))
            .collect();
        let total: f64 = weights.iter().sum();
        if total <= 0.0 {
            // Fewer distinct colours than k: repeat one (its cluster stays empty).
            centers.push(centers[0]);
            continue;
        }
        let mut target = rng.uniform_vec(1, 0.0, 1.0)[0] as f64 * total;
        let mut chosen = points.len() - 1;
        for (i, w) in weights.iter().enumerate() {
            if target < *w {
                chosen = i;
                break;
            }
            target -= w;
        }
        centers.push(points[chosen]);
    }
    centers
}

/// Lloyd's algorithm from `centers`; returns the centres and the inertia (sum of squared
/// distances to the nearest centre).
fn lloyd(points: &[[f32; 3]], mut centers: Vec<[f32; 3]>) -> (Vec<[f32; 3]>, f64) {
    let mut labels = vec![usize::MAX; points.len()];
    for _ in 0..KMEANS_MAX_ITERATIONS {
        let mut changed = false;
        for (label, p) in labels.iter_mut().zip(points) {
            let (nearest_center, _) = nearest(&centers, p);
            changed |= *label != nearest_center;
            *label = nearest_center;
        }
        if !changed {
            break;
        }
        let mut sums = vec![[0f64; 3]; centers.len()];
        let mut counts = vec![0usize; centers.len()];
        for (&label, p) in labels.iter().zip(points) {
            counts[label] += 1;
            for c in 0..3 {
                sums[label][c] += f64::from(p[c]);
            }
        }
        for ((center, sum), &count) in centers.iter_mut().zip(&sums).zip(&counts) {
            if count > 0 {
                *center = sum.map(|s| (s / count as f64) as f32);
            }
        }
    }
    let inertia = points
        .iter()
        .map(|p| f64::from(nearest(&centers, p).1))
        .sum();
    (centers, inertia)
}

/// The `k` dominant colours of `image` [1, 3, H, W]: k-means (k-means++ seeding, the best of a
/// few restarts), as the reference's `quant` (scikit-learn's KMeans) in [−1, 1] colour space.
pub fn kmeans_colors(image: &Tensor, k: usize, rng: &mut Rng) -> Result<Vec<[f32; 3]>> {
    let points = pixels(image)?;
    if k == 0 || k > points.len() {
        return Err(invalid_option(
            "colour count",
            format!("must be in 1..={} (the pixel count), got {k}", points.len()),
        ));
    }
    let mut best: Option<(Vec<[f32; 3]>, f64)> = None;
    for _ in 0..KMEANS_RESTARTS {
        let (centers, inertia) = lloyd(&points, seed_centers(&points, k, rng));
        if best.as_ref().is_none_or(|(_, b)| inertia < *b) {
            best = Some((centers, inertia));
        }
    }
    Ok(best.expect("at least one restart").0)
}

/// Replaces every pixel of `image` [1, 3, H, W] by its nearest colour in `centers` (the
/// reference's `quant2centers`).
pub fn quantize_to_centers(image: &Tensor, centers: &[[f32; 3]]) -> Result<Tensor> {
    if centers.is_empty() {
        return Err(invalid_option("colour centres", "need at least one"));
    }
    let points = pixels(image)?;
    let plane = points.len();
    let mut out = vec![0f32; 3 * plane];
    for (p, point) in points.iter().enumerate() {
        let center = centers[nearest(centers, point).0];
        for c in 0..3 {
            out[c * plane + p] = center[c];
        }
    }
    Ok(Tensor::from_vec(out, image.dims().to_vec(), Device::Cpu)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apps::test_model::{image, tiny_model_and_finest};

    /// An image of `colors.len()` vertical bands of the given colours, with a little noise.
    fn bands(colors: &[[f32; 3]], h: usize, w_per: usize, rng: &mut Rng) -> Tensor {
        let w = w_per * colors.len();
        let jitter = rng.uniform_vec(3 * h * w, -0.02, 0.02);
        let values: Vec<f32> = jitter
            .iter()
            .enumerate()
            .map(|(i, j)| colors[(i % w) / w_per][i / (h * w)] + j)
            .collect();
        Tensor::from_vec(values, [1, 3, h, w], Device::Cpu).unwrap()
    }

    #[test]
    fn kmeans_recovers_well_separated_colours() {
        let mut rng = Rng::seed(5);
        let colors = [
            [-0.8, -0.8, -0.8],
            [0.9, 0.1, -0.5],
            [0.0, 0.8, 0.0],
            [-0.2, -0.6, 0.9],
            [0.7, 0.7, 0.7],
        ];
        let img = bands(&colors, 6, 5, &mut rng);
        let mut centers = kmeans_colors(&img, 5, &mut rng).unwrap();
        centers.sort_by(|a, b| a.partial_cmp(b).unwrap());
        let mut expected = colors.to_vec();
        expected.sort_by(|a, b| a.partial_cmp(b).unwrap());
        for (got, want) in centers.iter().zip(&expected) {
            assert!(distance2(got, want) < 1e-3, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn quantization_maps_every_pixel_to_its_nearest_centre() {
        let centers = [[-1.0, -1.0, -1.0], [1.0, 1.0, 1.0], [1.0, -1.0, -1.0]];
        let values = vec![
            -0.9, 0.8, 0.9, 0.1, // red plane of four pixels
            -0.7, 0.9, -0.8, -0.2, // green
            -0.8, 0.7, -0.9, -0.3, // blue
        ];
        let img = Tensor::from_vec(values, [1, 3, 2, 2], Device::Cpu).unwrap();
        let q = quantize_to_centers(&img, &centers)
            .unwrap()
            .to_vec()
            .unwrap();
        // Pixels: dark → black, light → white, red → red, (0.1, −0.2, −0.3) → nearest is red.
        assert_eq!(
            q,
            vec![-1.0, 1.0, 1.0, 1.0, -1.0, 1.0, -1.0, -1.0, -1.0, 1.0, -1.0, -1.0]
        );
        assert!(kmeans_colors(&img, 0, &mut Rng::seed(0)).is_err());
        assert!(kmeans_colors(&img, 5, &mut Rng::seed(0)).is_err());
    }

    #[test]
    fn painting_runs_with_and_without_quantization() {
        let (model, n, [h, w]) = tiny_model_and_finest();
        let paint = image(h, w);
        let centers = kmeans_colors(&model.reals[1], 3, &mut Rng::seed(1)).unwrap();
        for quantize in [None, Some(&centers[..])] {
            let out = paint_to_image(&model, &paint, 1, quantize, &mut Rng::seed(2)).unwrap();
            assert_eq!(out.dims(), &[1, 3, h, w]);
            assert!(out.to_vec().unwrap().iter().all(|v| v.is_finite()));
        }
        assert!(paint_to_image(&model, &paint, 0, None, &mut Rng::seed(2)).is_err());
        assert!(paint_to_image(&model, &paint, n + 1, Some(&centers), &mut Rng::seed(2)).is_err());
    }
}
