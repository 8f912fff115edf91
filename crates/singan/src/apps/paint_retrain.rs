//! The reference's `train_paint`: before painting with quantization, scale n is trained again,
//! from fresh weights, with the images entering it quantized to the same colour centres as the
//! painting, so that the generator learns to turn flat colour regions into texture.
//!
//! As the reference's `train_single_scale` in `paint_train` mode: the random samples of the
//! frozen coarser scales (`prev`) are padded, then quantized; the reconstruction input and σ_n
//! are computed as in normal training; everything else (losses, optimizers, schedule, steps)
//! is the model's training configuration, through [`ScaleTrainer`].
use super::paint::quantize_to_centers;
use super::{invalid_option, Result};
use crate::model::{pad, SinGan, TrainedScale};
use crate::net::{Critic, Generator, CHANNELS, PAD};
use crate::{Losses, ScaleTrainer};
use tessera_nn::{Module, ModuleExt};
use tessera_tensor::{Device, Rng, Tensor};

/// Re-trains scale `n` (1 ≤ n ≤ N) of `model` for `iterations` epochs with quantized inputs
/// and replaces it; `on_epoch` sees each epoch's losses (iteration from 1).
pub fn retrain_for_paint(
    model: &mut SinGan,
    n: usize,
    centers: &[[f32; 3]],
    iterations: usize,
    rng: &mut Rng,
    on_epoch: &mut dyn FnMut(usize, Losses),
) -> Result<()> {
    let last = model.reals.len() - 1;
    if n == 0 || n > last || n >= model.num_trained() {
        return Err(invalid_option(
            "paint start scale",
            format!(
                "must be in 1..={} (a trained scale above 0), got {n}",
                model.num_trained().min(last + 1).saturating_sub(1)
            ),
        ));
    }
    let mut config = model.config.clone();
    config.iterations = iterations;
    config.lr_milestone = iterations * 4 / 5;
    let width = config.width_for_scale(n);
    let generator = Generator::new(width, rng)?;
    let critic = Critic::new(width, rng)?;
    let real = model.reals[n].clone();
    let [h, w] = model.shape(n);
    let z_opt = Tensor::zeros([1, CHANNELS, h + 2 * PAD, w + 2 * PAD], Device::Cpu)?;
    let reconstruction = model.draw_concat(n, false, rng)?;
    let mse = reconstruction.sub(&real)?.sqr()?.mean_all()?.to_scalar()?;
    let noise_amp = config.noise_amp_init * mse.sqrt();
    let mut trainer = ScaleTrainer::new(
        generator,
        critic,
        &real,
        z_opt,
        pad(&reconstruction)?,
        noise_amp,
        &config,
    )?;
    for epoch in 0..iterations {
        let epoch_noise = model.training_noise(n, rng)?;
        let prevs = (0..config.d_steps.max(1))
            .map(|_| quantize_to_centers(&pad(&model.draw_concat(n, true, rng)?)?, centers))
            .collect::<Result<Vec<_>>>()?;
        let alphas = rng.uniform_vec(prevs.len(), 0.0, 1.0);
        let losses = trainer.epoch(epoch, &epoch_noise, &prevs, &alphas)?;
        on_epoch(epoch + 1, losses);
    }
    let ScaleTrainer {
        mut generator,
        mut critic,
        ..
    } = trainer;
    generator.set_training(false);
    generator.set_requires_grad(false);
    critic.set_training(false);
    critic.set_requires_grad(false);
    model.scales[n] = TrainedScale {
        generator,
        noise_amp,
        critic: Some(critic),
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apps::paint::paint_to_image;
    use crate::apps::test_model::{image, tiny_model_and_finest};

    #[test]
    fn retraining_replaces_the_scale_and_painting_still_runs() {
        let (mut model, last, [h, w]) = tiny_model_and_finest();
        let centers = [[-0.5, 0.0, 0.5], [0.5, 0.5, -0.5]];
        let before = model.scales[1].generator.state_dict();
        let mut epochs = Vec::new();
        let mut record = |i: usize, l: Losses| epochs.push((i, l));
        retrain_for_paint(&mut model, 1, &centers, 2, &mut Rng::seed(1), &mut record).unwrap();
        assert_eq!(epochs.iter().map(|e| e.0).collect::<Vec<_>>(), vec![1, 2]);
        assert!(epochs
            .iter()
            .all(|(_, l)| l.d.is_finite() && l.rec.is_finite()));
        let after = model.scales[1].generator.state_dict();
        assert_ne!(
            before["head.conv.weight"].to_vec().unwrap(),
            after["head.conv.weight"].to_vec().unwrap()
        );
        assert!(model.scales[1].noise_amp > 0.0);
        let out =
            paint_to_image(&model, &image(h, w), 1, Some(&centers), &mut Rng::seed(2)).unwrap();
        assert_eq!(out.dims(), &[1, 3, h, w]);
        let mut ignore = |_: usize, _: Losses| {};
        assert!(
            retrain_for_paint(&mut model, 0, &centers, 1, &mut Rng::seed(1), &mut ignore).is_err()
        );
        assert!(retrain_for_paint(
            &mut model,
            last + 1,
            &centers,
            1,
            &mut Rng::seed(1),
            &mut ignore
        )
        .is_err());
    }
}
