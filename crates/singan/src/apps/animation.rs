//! Animation (the reference's `animation.py`, `generate_gif`): a short video from one image, by
//! a momentum random walk of the noise around the reconstruction noise, per scale.
//!
//! At every scale from `start_scale` up, the noise of frame t is
//!
//! ```text
//! Δ_t = β·(z_{t−1} − z_{t−2}) + (1 − β)·r_t        r_t ~ N(0, 1), grey at scale 0
//! z_t = α·Z_opt + (1 − α)·(z_{t−1} + Δ_t)
//! ```
//!
//! started from z₀ = 0.95·Z_opt + 0.05·r and z₋₁ = Z_opt: β sets how smooth the motion is, α
//! how strongly it is pulled back to the reconstruction noise Z_opt (z* at scale 0, zeros
//! elsewhere). Scales below `start_scale` use Z_opt, so the coarse structure stays still. The
//! noise is drawn at the padded size (the reference's "noise padding"); frame t of scale n
//! enters scale n + 1 as frame t. The reference trains animation models with noise padding and
//! min_size 20 (`singan train --noise-padding --min-size 20`).
use super::{invalid_option, Result};
use crate::model::{noise, pad, SinGan};
use tessera_tensor::{Rng, Tensor};

/// The settings of [`animate`], with the reference's defaults.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AnimationOptions {
    /// Pull towards Z_opt (`alpha_animation`, 0.1).
    pub alpha: f32,
    /// Momentum (`beta_animation`, 0.9; the reference's script loops over 0.80–0.95).
    pub beta: f32,
    /// First scale whose noise moves (`start_scale`, 2).
    pub start_scale: usize,
    /// Number of frames (100).
    pub frames: usize,
}

impl Default for AnimationOptions {
    fn default() -> Self {
        AnimationOptions {
            alpha: 0.1,
            beta: 0.9,
            start_scale: 2,
            frames: 100,
        }
    }
}

impl AnimationOptions {
    fn check(&self, num_scales: usize) -> Result<()> {
        let unit = |what, v: f32| {
            if (0.0..=1.0).contains(&v) {
                Ok(())
            } else {
                Err(invalid_option(what, format!("must be in [0, 1], got {v}")))
            }
        };
        unit("animation alpha", self.alpha)?;
        unit("animation beta", self.beta)?;
        if self.frames == 0 {
            return Err(invalid_option("frames", "must be at least 1"));
        }
        if self.start_scale >= num_scales {
            return Err(invalid_option(
                "animation start scale",
                format!(
                    "must be below the number of trained scales ({num_scales}), got {}",
                    self.start_scale
                ),
            ));
        }
        Ok(())
    }
}

/// The momentum walk of one scale's noise (see the module docs).
#[derive(Clone, Debug)]
pub struct MomentumWalk {
    z_opt: Tensor,
    previous: Tensor,
    before_previous: Tensor,
    alpha: f32,
    beta: f32,
}

impl MomentumWalk {
    /// Starts at z₀ = 0.95·Z_opt + 0.05·`first_draw`, z₋₁ = Z_opt.
    pub fn new(z_opt: Tensor, first_draw: &Tensor, alpha: f32, beta: f32) -> Result<MomentumWalk> {
        let previous = z_opt.mul_scalar(0.95)?.add(&first_draw.mul_scalar(0.05)?)?;
        Ok(MomentumWalk {
            before_previous: z_opt.clone(),
            z_opt,
            previous,
            alpha,
            beta,
        })
    }

    /// The next noise map, given the fresh draw `r` (the shape of Z_opt).
    pub fn step(&mut self, r: &Tensor) -> Result<Tensor> {
        let next = (|| -> tessera_tensor::Result<Tensor> {
            let delta = self
                .previous
                .sub(&self.before_previous)?
                .mul_scalar(self.beta)?
                .add(&r.mul_scalar(1.0 - self.beta)?)?;
            self.z_opt
                .mul_scalar(self.alpha)?
                .add(&self.previous.add(&delta)?.mul_scalar(1.0 - self.alpha)?)
        })()?;
        self.before_previous = std::mem::replace(&mut self.previous, next.clone());
        Ok(next)
    }
}

/// The frames of an animation through every trained scale, each [1, 3, H_N, W_N] in [−1, 1].
pub fn animate(model: &SinGan, options: &AnimationOptions, rng: &mut Rng) -> Result<Vec<Tensor>> {
    options.check(model.num_trained())?;
    let mut frames: Vec<Tensor> = Vec::new();
    for n in 0..model.num_trained() {
        let z_opt = model.z_opt(n)?;
        let zd = z_opt.dims();
        let padded = [zd[2], zd[3]];
        let mut walk = MomentumWalk::new(
            z_opt.clone(),
            &noise(n, padded, rng)?,
            options.alpha,
            options.beta,
        )?;
        let mut current = Vec::with_capacity(options.frames);
        for t in 0..options.frames {
            // The walk advances at every scale (the draws happen either way, as in the
            // reference); below start_scale its value is replaced by Z_opt.
            let walked = walk.step(&noise(n, padded, rng)?)?;
            let z = if n < options.start_scale {
                z_opt.clone()
            } else {
                walked
            };
            let prev = match frames.get(t) {
                None => tessera_tensor::Tensor::zeros(zd.to_vec(), z_opt.device())?,
                Some(frame) => pad(&model.upsample_to(frame, model.shape(n))?)?,
            };
            current.push(model.generate_scale(n, &z, &prev)?);
        }
        frames = current;
    }
    Ok(frames)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::apps::test_model::tiny_model_and_finest;
    use tessera_tensor::Device;

    fn constant(v: f32, n: usize) -> Tensor {
        Tensor::full(v, [1, 1, 1, n], Device::Cpu).unwrap()
    }

    #[test]
    fn walk_follows_the_recurrence() {
        let z_opt = Tensor::from_vec(vec![1.0, -2.0], [1, 1, 1, 2], Device::Cpu).unwrap();
        let (alpha, beta) = (0.1f32, 0.9f32);
        let mut walk = MomentumWalk::new(z_opt.clone(), &constant(2.0, 2), alpha, beta).unwrap();
        let zo = [1.0f32, -2.0];
        let mut prev = [0.95 * 1.0 + 0.05 * 2.0, 0.95 * -2.0 + 0.05 * 2.0];
        let mut before = zo;
        for (t, r) in [0.5f32, -1.0, 3.0, 0.0].into_iter().enumerate() {
            let got = walk.step(&constant(r, 2)).unwrap().to_vec().unwrap();
            for i in 0..2 {
                let delta = beta * (prev[i] - before[i]) + (1.0 - beta) * r;
                let want = alpha * zo[i] + (1.0 - alpha) * (prev[i] + delta);
                assert!((got[i] - want).abs() < 1e-6, "step {t}");
                before[i] = prev[i];
                prev[i] = want;
            }
        }
        // α = 1 pins the walk to Z_opt whatever the draws.
        let mut pinned = MomentumWalk::new(z_opt.clone(), &constant(5.0, 2), 1.0, 0.9).unwrap();
        assert_eq!(
            pinned.step(&constant(7.0, 2)).unwrap().to_vec().unwrap(),
            vec![1.0, -2.0]
        );
    }

    #[test]
    fn walk_stays_around_z_opt_with_bounded_spread() {
        // Many independent walkers (one per element) around Z_opt = 0.5: after a burn-in the
        // mean over walkers and time is close to 0.5 and the spread is stationary and finite.
        let walkers = 4000;
        let mut rng = Rng::seed(11);
        let z_opt = constant(0.5, walkers);
        let first = Tensor::randn([1, 1, 1, walkers], 0.0, 1.0, &mut rng, Device::Cpu).unwrap();
        let mut walk = MomentumWalk::new(z_opt, &first, 0.1, 0.9).unwrap();
        let mut variances = Vec::new();
        let mut means = Vec::new();
        for t in 0..300 {
            let r = Tensor::randn([1, 1, 1, walkers], 0.0, 1.0, &mut rng, Device::Cpu).unwrap();
            let z = walk.step(&r).unwrap().to_vec().unwrap();
            if t >= 100 {
                let mean = z.iter().sum::<f32>() / walkers as f32;
                means.push(mean);
                variances.push(z.iter().map(|v| (v - mean).powi(2)).sum::<f32>() / walkers as f32);
            }
        }
        let mean = means.iter().sum::<f32>() / means.len() as f32;
        assert!((mean - 0.5).abs() < 0.05, "{mean}");
        let early = variances[..50].iter().sum::<f32>() / 50.0;
        let late = variances[150..].iter().sum::<f32>() / 50.0;
        assert!(early > 0.05 && early < 5.0, "{early}");
        assert!((late / early - 1.0).abs() < 0.2, "{early} {late}");
    }

    #[test]
    fn frames_have_the_finest_size_and_move_above_the_start_scale() {
        let (model, n, [h, w]) = tiny_model_and_finest();
        let options = AnimationOptions {
            frames: 3,
            start_scale: 1,
            ..AnimationOptions::default()
        };
        let frames = animate(&model, &options, &mut Rng::seed(9)).unwrap();
        assert_eq!(frames.len(), 3);
        assert!(frames.iter().all(|f| f.dims() == [1, 3, h, w]));
        assert_ne!(frames[0].to_vec().unwrap(), frames[1].to_vec().unwrap());
        let bad = AnimationOptions {
            start_scale: n + 1,
            ..options
        };
        assert!(animate(&model, &bad, &mut Rng::seed(9)).is_err());
        let bad_beta = AnimationOptions {
            beta: 1.5,
            ..options
        };
        assert!(animate(&model, &bad_beta, &mut Rng::seed(9)).is_err());
    }
}
