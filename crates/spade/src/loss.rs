//! SPADE's objectives on multiscale discriminator outputs (spade.md §7).
//!
//! ```text
//! L_G = mean_i(−mean D_i(fake)[last])                              hinge, averaged over scales
//!     + Σ_i Σ_{j<last} (λ_feat / num_D)·mean|D_i(fake)[j] − D_i(real)[j]|   (real detached)
//!     + λ_vgg·Σ_k w_k·mean|φ_k(fake) − φ_k(real)|                      optional
//!     + λ_kld·(−½·Σ(1 + log σ² − μ² − σ²))                             VAE only, a batch sum
//! L_D = mean_i mean relu(1 − D_i(real)[last]) + mean_i mean relu(1 + D_i(fake)[last])
//! ```
use crate::discriminator::ScaleOutputs;
use crate::error::Result;
use tessera_autograd::Var;
use tessera_gan::{feature_matching_loss, hinge_d_fake_loss, hinge_d_real_loss, hinge_g_loss};

/// Splits discriminator outputs on `[fake; real]` (2N along the batch) into the fake and the
/// real halves, per scale and layer.
pub fn split_fake_real(preds: &[Vec<Var>]) -> Result<(ScaleOutputs, ScaleOutputs)> {
    let mut fake = Vec::with_capacity(preds.len());
    let mut real = Vec::with_capacity(preds.len());
    for scale in preds {
        let mut f = Vec::with_capacity(scale.len());
        let mut r = Vec::with_capacity(scale.len());
        for p in scale {
            let n = p.dims()[0] / 2;
            f.push(p.narrow(0, 0, n)?);
            r.push(p.narrow(0, n, n)?);
        }
        fake.push(f);
        real.push(r);
    }
    Ok((fake, real))
}

/// The logit maps (each scale's last output).
fn logits(preds: &[Vec<Var>]) -> Vec<&Var> {
    preds.iter().filter_map(|s| s.last()).collect()
}

/// `(1/num_D)·Σᵢ loss(logitsᵢ)`.
fn over_scales(preds: &[Vec<Var>], loss: impl Fn(&Var) -> tessera_gan::Result<Var>) -> Result<Var> {
    let per_scale = logits(preds)
        .into_iter()
        .map(loss)
        .collect::<tessera_gan::Result<Vec<Var>>>()?;
    Ok(tessera_gan::mean_over_scales(&per_scale)?)
}

/// The generator's hinge term: `mean_i(−mean D_i(fake)[last])`.
pub fn generator_gan_loss(pred_fake: &[Vec<Var>]) -> Result<Var> {
    over_scales(pred_fake, hinge_g_loss)
}

/// The discriminator's hinge terms `(fake, real)`: `mean_i mean relu(1 + D_i(fake))` and
/// `mean_i mean relu(1 − D_i(real))`; L_D is their sum.
pub fn discriminator_gan_losses(
    pred_fake: &[Vec<Var>],
    pred_real: &[Vec<Var>],
) -> Result<(Var, Var)> {
    Ok((
        over_scales(pred_fake, hinge_d_fake_loss)?,
        over_scales(pred_real, hinge_d_real_loss)?,
    ))
}

/// Feature matching over every output but the logit map of each scale, weighted
/// `λ_feat / num_D`, the real features detached.
pub fn feature_matching(
    pred_fake: &[Vec<Var>],
    pred_real: &[Vec<Var>],
    lambda_feat: f32,
) -> Result<Var> {
    let body = |p: &[Vec<Var>]| -> ScaleOutputs {
        p.iter()
            .map(|s| s[..s.len().saturating_sub(1)].to_vec())
            .collect()
    };
    Ok(feature_matching_loss(
        &body(pred_fake),
        &body(pred_real),
        lambda_feat,
    )?)
}
