//! Training settings, with the reference's defaults ([`TrainConfig::paper`]) and a CPU demo
//! ([`TrainConfig::quick`]).
use crate::pyramid::PyramidConfig;
use serde::{Deserialize, Serialize};

/// Everything that shapes a training run. Stored in every model file, so a model says how it
/// was made and a resumed run continues with the same settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Initial scale factor, coarsest short side, finest long side.
    pub pyramid: PyramidConfig,
    /// Epochs per scale (`niter`).
    pub iterations: usize,
    /// Critic steps per epoch (`Dsteps`).
    pub d_steps: usize,
    /// Generator steps per epoch (`Gsteps`).
    pub g_steps: usize,
    /// Adam learning rate of the generators (`lr_g`).
    pub lr_g: f64,
    /// Adam learning rate of the critics (`lr_d`).
    pub lr_d: f64,
    /// Adam (β1, β2).
    pub betas: (f64, f64),
    /// Epoch from which both learning rates are multiplied by `lr_gamma` (MultiStepLR).
    pub lr_milestone: usize,
    pub lr_gamma: f64,
    /// λ of the per-pixel gradient penalty (`lambda_grad`).
    pub lambda_grad: f32,
    /// Weight of the reconstruction loss (`alpha`).
    pub alpha: f32,
    /// σ_n = noise_amp_init · RMSE(real_n, upsampled reconstruction) (`noise_amp_init`).
    pub noise_amp_init: f32,
    /// Channel width of scales 0–3 (`nfc`), doubled every 4 scales up to `max_width`.
    pub width: usize,
    pub max_width: usize,
    /// Scale 0's reconstruction noise z*: drawn once and kept (true, the paper), or redrawn at
    /// every epoch with the last draw saved (false, the reference code).
    pub fixed_z_star: bool,
    /// Animation training (`mode=animation_train`): noise drawn at the padded size instead of
    /// zero-padded, which gives more variety at the borders.
    pub noise_padding: bool,
    /// Seed of every random draw of the run (initialisation, noise, penalty mixing).
    pub seed: u64,
}

impl TrainConfig {
    /// The reference's defaults: 2000 epochs of 3 critic + 3 generator steps per scale, Adam
    /// 5e-4 with betas (0.5, 0.999) decayed ×0.1 at epoch 1600, λ = 0.1, α = 10, σ factor 0.1,
    /// widths 32/64/128, pyramid 0.75 / 25 / 250, z* fixed as in the paper.
    pub fn paper() -> Self {
        TrainConfig {
            pyramid: PyramidConfig::default(),
            iterations: 2000,
            d_steps: 3,
            g_steps: 3,
            lr_g: 5e-4,
            lr_d: 5e-4,
            betas: (0.5, 0.999),
            lr_milestone: 1600,
            lr_gamma: 0.1,
            lambda_grad: 0.1,
            alpha: 10.0,
            noise_amp_init: 0.1,
            width: 32,
            max_width: 128,
            fixed_z_star: true,
            noise_padding: false,
            seed: 0,
        }
    }

    /// A CPU demo that trains in minutes on two cores: finest long side 96 (5 scales for a 4:3
    /// photo, 26×37 to 65×96), every scale 32 wide, 200 epochs per scale with the decay at 160
    /// (the reference's 80 %). The reference's settings otherwise.
    pub fn quick() -> Self {
        TrainConfig {
            pyramid: PyramidConfig {
                max_size: 96,
                ..PyramidConfig::default()
            },
            iterations: 200,
            lr_milestone: 160,
            max_width: 32,
            ..TrainConfig::paper()
        }
    }

    /// The channel width of scale `n`.
    pub fn width_for_scale(&self, n: usize) -> usize {
        crate::net::width_for_scale(n, self.width, self.max_width)
    }
}
