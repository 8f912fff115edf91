//! Adversarial losses on discriminator outputs (logits or critic scores) of any non-empty shape.
//!
//! Every `mean` below is over all elements of its argument (N·1·H·W for a patch discriminator),
//! as PyTorch's default `reduction='mean'`. D losses are the **sum** of their real and fake terms,
//! not halved (as SPADE's `GANLoss` combines them). For several discriminator scales, compute one
//! loss per scale and combine them with [`mean_over_scales`] (SPADE averages over `num_D`).
use crate::error::{check_finite, invalid};
use crate::Result;
use tessera_autograd::Var;

fn nonempty(loss: &str, name: &str, x: &Var) -> Result<()> {
    if x.value().numel() == 0 {
        return Err(invalid(loss, format!("{name} is empty ({})", x.shape())));
    }
    Ok(())
}

fn checked(loss: &str, inputs: &[(&str, &Var)], f: impl FnOnce() -> Result<Var>) -> Result<Var> {
    for (name, x) in inputs {
        nonempty(loss, name, x)?;
    }
    check_finite(loss, f()?)
}

// ---- WGAN ----

/// WGAN critic loss: `mean(D(fake)) − mean(D(real))` (minimised by the critic).
pub fn wgan_critic_loss(d_real: &Var, d_fake: &Var) -> Result<Var> {
    checked(
        "wgan_critic_loss",
        &[("d_real", d_real), ("d_fake", d_fake)],
        || Ok(d_fake.mean_all()?.sub(&d_real.mean_all()?)?),
    )
}

/// WGAN generator loss: `−mean(D(fake))`.
pub fn wgan_generator_loss(d_fake: &Var) -> Result<Var> {
    checked("wgan_generator_loss", &[("d_fake", d_fake)], || {
        Ok(d_fake.mean_all()?.neg()?)
    })
}

// ---- hinge ----

/// The real term of the hinge D loss: `mean(relu(1 − D(real)))`.
pub fn hinge_d_real_loss(d_real: &Var) -> Result<Var> {
    checked("hinge_d_real_loss", &[("d_real", d_real)], || {
        Ok(d_real.affine(-1.0, 1.0)?.relu()?.mean_all()?)
    })
}

/// The fake term of the hinge D loss: `mean(relu(1 + D(fake)))`.
pub fn hinge_d_fake_loss(d_fake: &Var) -> Result<Var> {
    checked("hinge_d_fake_loss", &[("d_fake", d_fake)], || {
        Ok(d_fake.add_scalar(1.0)?.relu()?.mean_all()?)
    })
}

/// Hinge D loss: `mean(relu(1 − D(real))) + mean(relu(1 + D(fake)))` (SPADE's default).
pub fn hinge_d_loss(d_real: &Var, d_fake: &Var) -> Result<Var> {
    let loss = hinge_d_real_loss(d_real)?.add(&hinge_d_fake_loss(d_fake)?)?;
    check_finite("hinge_d_loss", loss)
}

/// Hinge G loss: `−mean(D(fake))`.
pub fn hinge_g_loss(d_fake: &Var) -> Result<Var> {
    checked("hinge_g_loss", &[("d_fake", d_fake)], || {
        Ok(d_fake.mean_all()?.neg()?)
    })
}

// ---- non-saturating (BCE with logits) ----

/// Binary cross-entropy of logits `x` against a constant target `t` (PyTorch's
/// `binary_cross_entropy_with_logits`, mean reduction), in the stable form
/// `mean(max(x, 0) − x·t + log(1 + exp(−|x|)))`, which never exponentiates a positive number.
pub fn bce_with_logits(logits: &Var, target: f32) -> Result<Var> {
    checked("bce_with_logits", &[("logits", logits)], || {
        let softplus_tail = logits.abs()?.neg()?.exp()?.add_scalar(1.0)?.log()?;
        Ok(logits
            .relu()?
            .sub(&logits.mul_scalar(target)?)?
            .add(&softplus_tail)?
            .mean_all()?)
    })
}

/// Non-saturating D loss: `BCE(D(real), 1) + BCE(D(fake), 0)` with [`bce_with_logits`], i.e.
/// `mean(softplus(−D(real))) + mean(softplus(D(fake)))`.
pub fn ns_d_loss(d_real: &Var, d_fake: &Var) -> Result<Var> {
    let loss = bce_with_logits(d_real, 1.0)?.add(&bce_with_logits(d_fake, 0.0)?)?;
    check_finite("ns_d_loss", loss)
}

/// Non-saturating G loss: `BCE(D(fake), 1) = mean(softplus(−D(fake)))`.
pub fn ns_g_loss(d_fake: &Var) -> Result<Var> {
    let loss = bce_with_logits(d_fake, 1.0)?;
    check_finite("ns_g_loss", loss)
}

// ---- LSGAN ----

/// LSGAN D loss: `mean((D(real) − 1)²) + mean(D(fake)²)` (MSE to targets 1 and 0; not halved).
pub fn lsgan_d_loss(d_real: &Var, d_fake: &Var) -> Result<Var> {
    checked(
        "lsgan_d_loss",
        &[("d_real", d_real), ("d_fake", d_fake)],
        || {
            Ok(d_real
                .add_scalar(-1.0)?
                .sqr()?
                .mean_all()?
                .add(&d_fake.sqr()?.mean_all()?)?)
        },
    )
}

/// LSGAN G loss: `mean((D(fake) − 1)²)`.
pub fn lsgan_g_loss(d_fake: &Var) -> Result<Var> {
    checked("lsgan_g_loss", &[("d_fake", d_fake)], || {
        Ok(d_fake.add_scalar(-1.0)?.sqr()?.mean_all()?)
    })
}

// ---- several scales ----

/// `(1/K)·Σₖ lossₖ` over the per-scale losses of a multi-scale discriminator (SPADE's
/// `mean_i` over `num_D`).
pub fn mean_over_scales(losses: &[Var]) -> Result<Var> {
    let Some(first) = losses.first() else {
        return Err(invalid("mean_over_scales", "no losses given"));
    };
    let mut total = first.clone();
    for l in &losses[1..] {
        total = total.add(l)?;
    }
    check_finite(
        "mean_over_scales",
        total.mul_scalar(1.0 / losses.len() as f32)?,
    )
}
