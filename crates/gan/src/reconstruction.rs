//! Feature matching, the VAE encoder's KL divergence, and L1/MSE reconstruction.
use crate::error::{check_finite, invalid};
use crate::Result;
use tessera_autograd::Var;

fn same_shape(loss: &str, a: (&str, &Var), b: (&str, &Var)) -> Result<()> {
    if a.1.shape() != b.1.shape() {
        return Err(invalid(
            loss,
            format!(
                "{} {} and {} {} differ in shape",
                a.0,
                a.1.shape(),
                b.0,
                b.1.shape()
            ),
        ));
    }
    if a.1.value().numel() == 0 {
        return Err(invalid(loss, format!("{} is empty", a.0)));
    }
    Ok(())
}

/// L1 reconstruction: `mean|x − y|` over all elements (PyTorch's `l1_loss`). Both arguments are
/// differentiated; detach the target yourself if it is data. At `x = y` the gradient is 0.
pub fn l1_loss(x: &Var, y: &Var) -> Result<Var> {
    same_shape("l1_loss", ("x", x), ("y", y))?;
    check_finite("l1_loss", x.sub(y)?.abs()?.mean_all()?)
}

/// MSE reconstruction: `mean((x − y)²)` over all elements (PyTorch's `mse_loss`; SinGAN's
/// reconstruction term, which it weights by α = 10). Both arguments are differentiated.
pub fn mse_loss(x: &Var, y: &Var) -> Result<Var> {
    same_shape("mse_loss", ("x", x), ("y", y))?;
    check_finite("mse_loss", x.sub(y)?.sqr()?.mean_all()?)
}

/// Feature matching (pix2pixHD, SPADE): `Σᵢ Σⱼ (λ_feat / num_D) · mean|fakeᵢⱼ − realᵢⱼ|` with
/// the real features detached. `fake[i][j]` is layer `j` of discriminator (scale) `i`, and
/// `num_D = fake.len()`. SPADE passes each discriminator's intermediate outputs without its
/// final logit map and uses λ_feat = 10.
pub fn feature_matching_loss(
    fake: &[Vec<Var>],
    real: &[Vec<Var>],
    lambda_feat: f32,
) -> Result<Var> {
    const LOSS: &str = "feature_matching_loss";
    if fake.len() != real.len() {
        return Err(invalid(
            LOSS,
            format!("{} fake and {} real discriminators", fake.len(), real.len()),
        ));
    }
    if fake.is_empty() {
        return Err(invalid(LOSS, "no discriminator features given"));
    }
    let weight = lambda_feat / fake.len() as f32;
    let mut total: Option<Var> = None;
    for (i, (f, r)) in fake.iter().zip(real).enumerate() {
        if f.len() != r.len() {
            return Err(invalid(
                LOSS,
                format!(
                    "discriminator {i}: {} fake and {} real features",
                    f.len(),
                    r.len()
                ),
            ));
        }
        for (j, (fj, rj)) in f.iter().zip(r).enumerate() {
            let (nf, nr) = (format!("fake[{i}][{j}]"), format!("real[{i}][{j}]"));
            same_shape(LOSS, (&nf, fj), (&nr, rj))?;
            let term = fj
                .sub(&rj.detach())?
                .abs()?
                .mean_all()?
                .mul_scalar(weight)?;
            total = Some(match total {
                None => term,
                Some(t) => t.add(&term)?,
            });
        }
    }
    let total = total.ok_or_else(|| invalid(LOSS, "no features given"))?;
    check_finite(LOSS, total)
}

/// KL divergence of the encoder's `N(μ, exp(logvar))` from `N(0, I)`:
/// `−0.5 · Σ(1 + logvar − μ² − exp(logvar))`, a **sum** over the batch and the latent dims (as
/// SPADE's reference computes it, before its weight λ_kld = 0.05). Divide by N for a per-sample
/// mean.
pub fn kl_divergence(mu: &Var, logvar: &Var) -> Result<Var> {
    const LOSS: &str = "kl_divergence";
    same_shape(LOSS, ("mu", mu), ("logvar", logvar))?;
    let inner = logvar
        .add_scalar(1.0)?
        .sub(&mu.sqr()?)?
        .sub(&logvar.exp()?)?;
    check_finite(LOSS, inner.sum_all()?.mul_scalar(-0.5)?)
}
