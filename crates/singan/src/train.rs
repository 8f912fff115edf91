//! Training, scale by scale, coarsest first, as the reference's `train` / `train_single_scale`.
//!
//! Per scale n (0 = coarsest), with real_n its image, for `iterations` epochs:
//!
//! 1. draw one noise map (grey at scale 0), kept for the whole epoch;
//! 2. `d_steps` critic steps, each with a fresh random sample of the frozen coarser scales
//!    upsampled to this scale (`prev`, zeros at scale 0): fake = G(σ_n·noise + prev, prev),
//!    `L_D = −mean D(real) + mean D(fake) + λ·GP` with SinGAN's per-pixel penalty
//!    ([`tessera_gan::singan_gradient_penalty`], one α ~ U(0, 1) per step), one Adam step;
//! 3. `g_steps` generator steps: `L_G = −mean D(G(σ_n·noise + prev, prev)) + α·MSE(G(σ_n·z* +
//!    z_prev, z_prev), real_n)` with the last critic step's `prev`, one Adam step;
//! 4. both learning rates follow MultiStepLR (×`lr_gamma` from epoch `lr_milestone`).
//!
//! z_prev is the reconstruction of the coarser scales upsampled to scale n (zeros at 0), and
//! σ_n = `noise_amp_init`·RMSE(real_n, z_prev) (1 at scale 0), fixed for the scale. Scale n
//! starts from scale n − 1's generator and critic (weights and batch-norm statistics) when
//! their widths agree, fresh otherwise (scales 0, 4, 8 with the reference's widths). A finished
//! generator is frozen and switched to eval mode (batch norm then uses its running statistics).
//!
//! # The two reference quirks
//!
//! * **Stale fake in the generator steps.** The reference reuses the fake of the last critic
//!   step, and its graph, for all three generator steps; steps 2 and 3 backpropagate through a
//!   graph built with weights the optimizer has since changed in place, which PyTorch ≥ 1.5
//!   refuses. tessera **regenerates the fake with the current weights at each generator step**
//!   (same noise and `prev`), the clean reading of the method (fix (a) of the reference
//!   description). One consequence: the generator's batch-norm statistics see two forwards per
//!   generator step instead of one.
//! * **z\* at scale 0.** The paper fixes z\*; the reference code redraws it at every epoch and
//!   saves the last draw. [`TrainConfig::fixed_z_star`] chooses: `true` (the default of both
//!   presets) follows the paper, `false` the code.
//!
//! # Reproducibility
//!
//! Every random draw of scale n comes from one generator seeded with `(seed, n)`, so a run is
//! a function of its settings and seed, and a run resumed after scale k ends where the
//! uninterrupted run does (the model files hold every weight, statistic and noise exactly).
use crate::config::TrainConfig;
use crate::error::invalid;
use crate::model::{crop, noise, pad, SinGan, TrainedScale};
use crate::net::{Critic, Generator, CHANNELS, PAD};
use crate::pyramid::Pyramid;
use crate::{store, Error, Result};
use std::ops::ControlFlow;
use std::path::Path;
use tessera_autograd::{grad, no_grad, Var};
use tessera_gan::{mse_loss, singan_gradient_penalty, wgan_generator_loss};
use tessera_nn::optim::MultiStepLR;
use tessera_nn::{Adam, AdamConfig, Module, ModuleExt};
use tessera_tensor::{Device, Rng, Tensor};

/// The losses of one epoch (those of its last critic and generator steps).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Losses {
    /// Critic loss `−mean D(real) + mean D(fake) + GP` (`errD`).
    pub d: f32,
    /// Adversarial generator loss `−mean D(fake)` (`errG`).
    pub g: f32,
    /// Weighted reconstruction loss `α·MSE(G(z*), real)` (`rec_loss`).
    pub rec: f32,
    /// The gradient penalty, λ included.
    pub gp: f32,
}

/// Where training stands after an epoch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Progress {
    /// The scale being trained (0 = coarsest).
    pub scale: usize,
    /// Scales in the pyramid (N + 1).
    pub num_scales: usize,
    /// Epochs of this scale done (1 ..= `iterations`).
    pub iteration: usize,
    pub iterations: usize,
    pub losses: Losses,
}

/// What training reports to its caller.
#[derive(Debug)]
pub enum Event<'a> {
    /// A scale starts: its width and noise amplitude σ_n are set.
    ScaleStart {
        scale: usize,
        num_scales: usize,
        iterations: usize,
        width: usize,
        noise_amp: f32,
    },
    /// An epoch ended.
    Iteration(Progress),
    /// A scale is trained (and saved, when training into a folder); `model` holds it.
    ScaleDone { scale: usize, model: &'a SinGan },
}

/// The callback of [`train`] and [`resume`]: `ControlFlow::Break(())` stops training with
/// [`Error::Stopped`]; the scales finished so far stay saved.
pub type OnEvent<'a> = &'a mut dyn FnMut(Event<'_>) -> ControlFlow<()>;

/// The random generator of scale `n` of a run seeded with `seed`.
fn scale_rng(seed: u64, n: usize) -> Rng {
    Rng::seed(seed ^ (n as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15))
}

/// One step of `opt` on `loss`.
fn adam_step(opt: &mut Adam, loss: &Var) -> Result<()> {
    let vars = opt.vars();
    let wrt: Vec<&Var> = vars.iter().collect();
    let grads: Vec<Tensor> = grad(&[loss], &wrt, None, false)?
        .into_iter()
        .map(|g| g.value().clone())
        .collect();
    Ok(opt.step(&grads)?)
}

fn scalar(x: &Var) -> Result<f32> {
    Ok(x.value().to_scalar()?)
}

/// The training state of one scale: its generator and critic with their optimizers, and the
/// fixed inputs of the scale. [`ScaleTrainer::epoch`] takes the epoch's random draws as
/// arguments, so an epoch can be replayed exactly (the PyTorch golden test does).
pub struct ScaleTrainer {
    pub generator: Generator,
    pub critic: Critic,
    opt_g: Adam,
    opt_d: Adam,
    schedule_g: MultiStepLR,
    schedule_d: MultiStepLR,
    real: Var,
    /// The reconstruction noise, padded (z* at scale 0, zeros elsewhere).
    pub z_opt: Tensor,
    /// The upsampled reconstruction of the coarser scales, padded (zeros at scale 0).
    pub z_prev: Tensor,
    /// σ_n.
    pub noise_amp: f32,
    lambda_grad: f32,
    alpha: f32,
    g_steps: usize,
}

impl ScaleTrainer {
    /// A trainer for `real` [1, 3, H, W] with fresh Adam optimizers (as the reference makes per
    /// scale); `z_opt` and `z_prev` are [1, 3, H + 10, W + 10]. Training runs on `real`'s device:
    /// the networks and noise maps are moved there (and each epoch's draws, in [`Self::epoch`]).
    pub fn new(
        generator: Generator,
        critic: Critic,
        real: &Tensor,
        z_opt: Tensor,
        z_prev: Tensor,
        noise_amp: f32,
        config: &TrainConfig,
    ) -> Result<Self> {
        let d = real.dims();
        let padded = [1, CHANNELS, d[2] + 2 * PAD, d[3] + 2 * PAD];
        if d.len() != 4 || z_opt.dims() != padded || z_prev.dims() != padded {
            return Err(invalid(
                "ScaleTrainer",
                format!(
                    "real {}, z_opt {} and z_prev {} do not fit (noise maps are the real padded by {PAD})",
                    real.shape(),
                    z_opt.shape(),
                    z_prev.shape()
                ),
            ));
        }
        let device = real.device();
        generator.to_device(device)?;
        critic.to_device(device)?;
        let (z_opt, z_prev) = (z_opt.to_device(device)?, z_prev.to_device(device)?);
        let (b1, b2) = config.betas;
        let opt_g = Adam::new(
            generator.named_params(),
            AdamConfig::new(config.lr_g).betas(b1, b2),
        )?;
        let opt_d = Adam::new(
            critic.named_params(),
            AdamConfig::new(config.lr_d).betas(b1, b2),
        )?;
        let milestones = vec![config.lr_milestone];
        Ok(ScaleTrainer {
            generator,
            critic,
            opt_g,
            opt_d,
            schedule_g: MultiStepLR::new(config.lr_g, milestones.clone(), config.lr_gamma),
            schedule_d: MultiStepLR::new(config.lr_d, milestones, config.lr_gamma),
            real: Var::constant(real.clone()),
            z_opt,
            z_prev,
            noise_amp,
            lambda_grad: config.lambda_grad,
            alpha: config.alpha,
            g_steps: config.g_steps,
        })
    }

    /// G(σ_n·z + prev, prev) with the generator in training mode.
    fn fake(&self, z: &Tensor, prev: &Tensor) -> Result<Var> {
        let input = z.mul_scalar(self.noise_amp)?.add(prev)?;
        Ok(self
            .generator
            .forward(&Var::constant(input), &Var::constant(prev.clone()))?)
    }

    /// One critic step: `−mean D(real) + mean D(fake) + λ·GP` and an Adam step; returns
    /// (loss, GP) and the fake.
    fn critic_step(&mut self, noise: &Tensor, prev: &Tensor, alpha: f32) -> Result<(f32, f32)> {
        // The reference's order of critic forwards (its batch-norm statistics depend on it):
        // real, fake, then the penalty's interpolate.
        let d_real = self.critic.forward(&self.real)?.mean_all()?.neg()?;
        // The critic step needs the fake's value only: computed without recording, it is a
        // constant and no generator graph is kept.
        let fake = no_grad(|| self.fake(noise, prev))?;
        let d_fake = self.critic.forward(&fake)?.mean_all()?;
        let critic = &self.critic;
        let score = |x: &Var| -> tessera_gan::Result<Var> { Ok(critic.forward(x)?) };
        let mix = Tensor::full(alpha, [1, 1, 1, 1], self.real.value().device())?;
        let gp = singan_gradient_penalty(&score, &self.real, &fake, &mix, self.lambda_grad)?;
        let loss = d_real.add(&d_fake)?.add(&gp)?;
        let values = (scalar(&loss)?, scalar(&gp)?);
        tessera_gan::check_finite("critic loss", loss.clone())?;
        adam_step(&mut self.opt_d, &loss)?;
        Ok(values)
    }

    /// One generator step; returns (adversarial loss, weighted reconstruction loss).
    fn generator_step(&mut self, noise: &Tensor, prev: &Tensor) -> Result<(f32, f32)> {
        let adversarial = wgan_generator_loss(&self.critic.forward(&self.fake(noise, prev)?)?)?;
        let reconstruction = self.fake(&self.z_opt, &self.z_prev)?;
        let rec = mse_loss(&reconstruction, &self.real)?.mul_scalar(self.alpha)?;
        let loss = adversarial.add(&rec)?;
        let values = (scalar(&adversarial)?, scalar(&rec)?);
        tessera_gan::check_finite("generator loss", loss.clone())?;
        adam_step(&mut self.opt_g, &loss)?;
        Ok(values)
    }

    /// Epoch `epoch` (from 0, for the learning-rate schedule) with its draws: the epoch's noise
    /// (padded), one `prev` (padded) and one penalty α per critic step. The generator steps use
    /// the last `prev`.
    pub fn epoch(
        &mut self,
        epoch: usize,
        noise: &Tensor,
        prevs: &[Tensor],
        alphas: &[f32],
    ) -> Result<Losses> {
        if prevs.is_empty() || prevs.len() != alphas.len() {
            return Err(invalid(
                "ScaleTrainer::epoch",
                format!(
                    "{} prevs and {} alphas: need one of each per critic step",
                    prevs.len(),
                    alphas.len()
                ),
            ));
        }
        self.schedule_g.apply(&mut self.opt_g, epoch);
        self.schedule_d.apply(&mut self.opt_d, epoch);
        let device = self.real.value().device();
        let noise = &noise.to_device(device)?;
        let prevs = prevs
            .iter()
            .map(|p| p.to_device(device))
            .collect::<std::result::Result<Vec<_>, _>>()?;
        // Inside a rayon worker, the kernels' forks skip the hand-off from the calling thread.
        tessera_autograd::on_worker_thread(|| {
            let mut losses = Losses::default();
            for (prev, &alpha) in prevs.iter().zip(alphas) {
                (losses.d, losses.gp) = self.critic_step(noise, prev, alpha)?;
            }
            let prev = &prevs[prevs.len() - 1];
            for _ in 0..self.g_steps {
                (losses.g, losses.rec) = self.generator_step(noise, prev)?;
            }
            Ok(losses)
        })
    }
}

impl SinGan {
    /// An untrained model for `image` [1, 3, H, W] in [−1, 1]: the pyramid and its reals.
    pub fn untrained(image: &Tensor, config: &TrainConfig) -> Result<SinGan> {
        let d = image.dims();
        if d.len() != 4 || d[0] != 1 || d[1] != CHANNELS {
            return Err(invalid(
                "train",
                format!("expected an RGB image [1, 3, H, W], got {}", image.shape()),
            ));
        }
        let pyramid = Pyramid::plan(d[2], d[3], &config.pyramid)?;
        let reals = pyramid.reals(image, [d[2], d[3]])?;
        let [h0, w0] = pyramid.shapes[0];
        Ok(SinGan {
            config: config.clone(),
            pyramid,
            reals,
            z_star: Tensor::zeros([1, CHANNELS, h0 + 2 * PAD, w0 + 2 * PAD], Device::Cpu)?,
            scales: Vec::new(),
        })
    }

    /// A noise map for scale `n` at its training size, as the generator takes it: zero-padded,
    /// or drawn at the padded size with noise padding (animation training).
    pub(crate) fn training_noise(&self, n: usize, rng: &mut Rng) -> Result<Tensor> {
        let [h, w] = self.shape(n);
        let device = self.device();
        if self.config.noise_padding {
            Ok(noise(n, [h + 2 * PAD, w + 2 * PAD], rng)?.to_device(device)?)
        } else {
            pad(&noise(n, [h, w], rng)?.to_device(device)?)
        }
    }

    /// The reference's `draw_concat`: the frozen scales 0..n run from zeros, with fresh noise
    /// (`random`) or the reconstruction noise, and the result upsampled to scale n (unpadded).
    pub(crate) fn draw_concat(&self, n: usize, random: bool, rng: &mut Rng) -> Result<Tensor> {
        let [h0, w0] = self.shape(0);
        let mut image = Tensor::zeros([1, CHANNELS, h0, w0], self.device())?;
        for k in 0..n {
            let z = if random {
                self.training_noise(k, rng)?
            } else {
                self.z_opt(k)?
            };
            let prev = pad(&crop(&image, self.shape(k))?)?;
            image = self.generate_scale(k, &z, &prev)?;
            image = self.upsample_to(&image, self.shape(k + 1))?;
        }
        Ok(image)
    }

    /// Trains scale `n` (the next untrained one) and appends it; reports through `on_event`.
    fn train_scale(&mut self, n: usize, on_event: OnEvent<'_>) -> Result<()> {
        let config = self.config.clone();
        let mut rng = scale_rng(config.seed, n);
        let width = config.width_for_scale(n);
        let generator = Generator::new(width, &mut rng)?;
        let critic = Critic::new(width, &mut rng)?;
        if let Some(previous) = n.checked_sub(1).map(|p| &self.scales[p]) {
            if previous.generator.width() == width {
                generator.load_state_dict(&previous.generator.state_dict(), true)?;
                if let Some(c) = &previous.critic {
                    critic.load_state_dict(&c.state_dict(), true)?;
                }
            }
        }
        let real = self.reals[n].clone();
        let [h, w] = self.shape(n);
        let zeros = Tensor::zeros([1, CHANNELS, h + 2 * PAD, w + 2 * PAD], self.device())?;
        let (z_opt, first_prev, z_prev, noise_amp) = if n == 0 {
            let z_star = self.training_noise(0, &mut rng)?;
            (z_star, zeros.clone(), zeros.clone(), 1.0)
        } else {
            let prev = pad(&self.draw_concat(n, true, &mut rng)?)?;
            let rec = self.draw_concat(n, false, &mut rng)?;
            let mse = rec.sub(&real)?.sqr()?.mean_all()?.to_scalar()?;
            (
                zeros.clone(),
                prev,
                pad(&rec)?,
                config.noise_amp_init * mse.sqrt(),
            )
        };
        let mut trainer =
            ScaleTrainer::new(generator, critic, &real, z_opt, z_prev, noise_amp, &config)?;
        let num_scales = self.reals.len();
        let stop = |iteration| Error::Stopped {
            scale: n,
            iteration,
        };
        if on_event(Event::ScaleStart {
            scale: n,
            num_scales,
            iterations: config.iterations,
            width,
            noise_amp,
        })
        .is_break()
        {
            return Err(stop(0));
        }
        let mut first_prev = Some(first_prev);
        for epoch in 0..config.iterations {
            if n == 0 && !config.fixed_z_star {
                trainer.z_opt = self.training_noise(0, &mut rng)?;
            }
            let noise = self.training_noise(n, &mut rng)?;
            let prevs = (0..config.d_steps)
                .map(|_| match first_prev.take() {
                    Some(p) => Ok(p),
                    None if n == 0 => Ok(zeros.clone()),
                    None => pad(&self.draw_concat(n, true, &mut rng)?),
                })
                .collect::<Result<Vec<_>>>()?;
            let alphas = rng.uniform_vec(config.d_steps, 0.0, 1.0);
            let losses = trainer.epoch(epoch, &noise, &prevs, &alphas)?;
            let progress = Progress {
                scale: n,
                num_scales,
                iteration: epoch + 1,
                iterations: config.iterations,
                losses,
            };
            if on_event(Event::Iteration(progress)).is_break() {
                return Err(stop(epoch + 1));
            }
        }
        let ScaleTrainer {
            mut generator,
            mut critic,
            z_opt,
            ..
        } = trainer;
        generator.set_training(false);
        generator.set_requires_grad(false);
        critic.set_training(false);
        critic.set_requires_grad(false);
        if n == 0 {
            self.z_star = z_opt;
        }
        self.scales.push(TrainedScale {
            generator,
            noise_amp,
            critic: Some(critic),
        });
        Ok(())
    }

    /// Trains the remaining scales, saving each into `dir` (when given) as it finishes.
    fn train_remaining(&mut self, dir: Option<&Path>, on_event: OnEvent<'_>) -> Result<()> {
        if self.config.d_steps == 0 {
            return Err(invalid("train", "d_steps must be at least 1"));
        }
        for n in self.scales.len()..self.reals.len() {
            self.train_scale(n, on_event)?;
            if let Some(dir) = dir {
                store::save_scale(dir, self, n)?;
            }
            if on_event(Event::ScaleDone {
                scale: n,
                model: self,
            })
            .is_break()
                && n + 1 < self.reals.len()
            {
                return Err(Error::Stopped {
                    scale: n + 1,
                    iteration: 0,
                });
            }
        }
        Ok(())
    }
}

/// Trains a SinGAN on `image` [1, 3, H, W] in [−1, 1] with `config`. With `dir`, the pyramid is
/// saved there first and every scale as it finishes (see the crate docs' "Model folder
/// format"), so an interrupted run can [`resume`]; an existing model in `dir` is an error (resume
/// it, or choose another folder).
pub fn train(
    image: &Tensor,
    config: &TrainConfig,
    dir: Option<&Path>,
    on_event: OnEvent<'_>,
) -> Result<SinGan> {
    train_on(Device::Cpu, image, config, dir, on_event)
}

/// [`train`] with the computation on `device`; the model returned is on that device.
pub fn train_on(
    device: Device,
    image: &Tensor,
    config: &TrainConfig,
    dir: Option<&Path>,
    on_event: OnEvent<'_>,
) -> Result<SinGan> {
    let mut model = SinGan::untrained(image, config)?;
    // Before anything is written: a device that is not there leaves no folder behind.
    model.to_device(device)?;
    if let Some(dir) = dir {
        store::create(dir, &model)?;
    }
    model.train_remaining(dir, on_event)?;
    Ok(model)
}

/// Continues an interrupted run saved in `dir` at the first untrained scale, with the
/// settings it was started with; a complete model is returned as it is.
pub fn resume(dir: &Path, on_event: OnEvent<'_>) -> Result<SinGan> {
    resume_on(Device::Cpu, dir, on_event)
}

/// [`resume`] with the computation on `device`; the model returned is on that device.
pub fn resume_on(device: Device, dir: &Path, on_event: OnEvent<'_>) -> Result<SinGan> {
    let mut model = store::load(dir)?;
    model.to_device(device)?;
    model.train_remaining(Some(dir), on_event)?;
    Ok(model)
}
