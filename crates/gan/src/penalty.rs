//! WGAN-GP gradient penalties, in the standard form and in SinGAN's per-pixel form.
//!
//! Both interpolate `x̂ = α·real + (1 − α)·fake`, take `g = ∂ sum(D(x̂)) / ∂x̂` with the graph kept
//! (`create_graph`), and penalise the distance of a gradient norm from 1:
//!
//! * [`gradient_penalty`] (Gulrajani et al.): one norm per sample over all of C·H·W,
//!   `GP = λ · mean_n((‖g_n‖₂ − 1)²)`.
//! * [`singan_gradient_penalty`] (SinGAN's reference): one norm per pixel over the channels,
//!   `GP = λ · mean_{n,h,w}((‖g[n, :, h, w]‖₂ − 1)²)`, a 1-Lipschitz constraint per patch.
//!
//! The result is differentiable with respect to the critic's parameters (and, through x̂, to
//! `real` and `fake` if they require grad: SinGAN does not detach the fake). Norms are computed
//! as `sqrt(Σ g² + 1e-12)`: the same value in f32 for any gradient that is not vanishingly
//! small, and a zero (PyTorch's) rather than NaN derivative where `g = 0`.
//!
//! `α` is given by the caller as a tensor of shape `[N, 1, 1, 1]` (one per sample) or of any
//! shape with a single element (one per batch, as SinGAN draws it); [`sample_alpha`] draws it
//! uniformly on [0, 1).
use crate::error::{check_finite, invalid};
use crate::Result;
use tessera_autograd::{grad, GradModeGuard, Var};
use tessera_tensor::{Device, Rng, Tensor};

/// The critic's score map for a batch; any output shape (the penalty differentiates its sum).
pub type Critic<'a> = &'a dyn Fn(&Var) -> Result<Var>;

/// λ of the WGAN-GP paper (and of most ports).
pub const WGAN_GP_LAMBDA: f32 = 10.0;
/// SinGAN's `lambda_grad`.
pub const SINGAN_GP_LAMBDA: f32 = 0.1;

/// Squared norms below this are lifted by it inside the square root (see the module docs).
const NORM_EPS: f32 = 1e-12;

/// How many interpolation coefficients to draw: one per sample or one for the whole batch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mixing {
    /// α of shape [N, 1, 1, 1].
    PerSample,
    /// α of shape [1, 1, 1, 1] (SinGAN).
    PerBatch,
}

/// α uniform on [0, 1) for a batch of `n` images (rank-4 shapes; see [`Mixing`]).
pub fn sample_alpha(mixing: Mixing, n: usize, rng: &mut Rng, device: Device) -> Result<Tensor> {
    let rows = match mixing {
        Mixing::PerSample => n,
        Mixing::PerBatch => 1,
    };
    Ok(Tensor::rand_uniform(
        [rows, 1, 1, 1],
        0.0,
        1.0,
        rng,
        device,
    )?)
}

/// x̂ = α·real + (1 − α)·fake, as a var that requires grad.
fn interpolate(loss: &str, real: &Var, fake: &Var, alpha: &Tensor) -> Result<Var> {
    if real.shape() != fake.shape() {
        return Err(invalid(
            loss,
            format!(
                "real {} and fake {} differ in shape",
                real.shape(),
                fake.shape()
            ),
        ));
    }
    let dims = real.dims();
    if dims.len() < 2 || real.value().numel() == 0 {
        return Err(invalid(
            loss,
            format!(
                "expected a non-empty batch [N, C, ...], got {}",
                real.shape()
            ),
        ));
    }
    let per_batch = alpha.numel() == 1;
    let per_sample = alpha.rank() == dims.len()
        && alpha.dims()[0] == dims[0]
        && alpha.dims()[1..].iter().all(|&d| d == 1);
    if !(per_batch || per_sample) {
        return Err(invalid(
            loss,
            format!(
                "alpha {} must have one element or shape [N, 1, ...] for a batch {}",
                alpha.shape(),
                real.shape()
            ),
        ));
    }
    let alpha = if per_batch {
        alpha.reshape(vec![1; dims.len()])?
    } else {
        alpha.clone()
    };
    let a = Var::constant(alpha.clone());
    let one_minus = Var::constant(alpha.affine(-1.0, 1.0)?);
    let xhat = real.mul(&a)?.add(&fake.mul(&one_minus)?)?;
    // With data inputs x̂ is a constant: make it a leaf so its gradient can be taken.
    Ok(if xhat.requires_grad() {
        xhat
    } else {
        Var::param(xhat.value().clone())
    })
}

/// `g = ∂ sum(D(x̂)) / ∂x̂`, recorded so it can be differentiated again.
fn critic_input_grad(loss: &str, critic: Critic<'_>, xhat: &Var) -> Result<Var> {
    let score = critic(xhat)?;
    if score.value().numel() == 0 {
        return Err(invalid(loss, "the critic returned an empty score"));
    }
    Ok(grad(&[&score.sum_all()?], &[xhat], None, true)?.remove(0))
}

fn check_lambda(loss: &str, lambda: f32) -> Result<()> {
    if !lambda.is_finite() {
        return Err(invalid(loss, format!("lambda {lambda} is not finite")));
    }
    Ok(())
}

/// The standard WGAN-GP penalty: `λ · mean_n((‖∇_x̂ D(x̂)_n‖₂ − 1)²)` with the norm of each
/// sample's gradient over all its elements (C·H·W) and the mean over the batch.
///
/// `critic` maps a batch to scores (any shape; their sum is differentiated). The critic runs
/// with graph recording on even inside `no_grad`, since the penalty needs its gradient.
pub fn gradient_penalty(
    critic: Critic<'_>,
    real: &Var,
    fake: &Var,
    alpha: &Tensor,
    lambda: f32,
) -> Result<Var> {
    let axes: Vec<usize> = (1..real.dims().len()).collect();
    penalty("gradient_penalty", critic, real, fake, alpha, lambda, &axes)
}

/// SinGAN's penalty: `λ · mean_{n,h,w}((‖∇_x̂ D(x̂)[n, :, h, w]‖₂ − 1)²)`, the norm taken over the
/// channel axis at each pixel and the mean over all pixels of all samples (for SinGAN's batch
/// of one, over the pixels). SinGAN draws one α per batch ([`Mixing::PerBatch`]) and uses
/// λ = [`SINGAN_GP_LAMBDA`].
pub fn singan_gradient_penalty(
    critic: Critic<'_>,
    real: &Var,
    fake: &Var,
    alpha: &Tensor,
    lambda: f32,
) -> Result<Var> {
    penalty(
        "singan_gradient_penalty",
        critic,
        real,
        fake,
        alpha,
        lambda,
        &[1],
    )
}

/// `λ · mean((‖g‖₂ − 1)²)` with g = ∂D(x̂)/∂x̂, the norm over `norm_axes`, the mean over the rest.
fn penalty(
    loss: &str,
    critic: Critic<'_>,
    real: &Var,
    fake: &Var,
    alpha: &Tensor,
    lambda: f32,
    norm_axes: &[usize],
) -> Result<Var> {
    check_lambda(loss, lambda)?;
    let _record = GradModeGuard::new(true);
    let xhat = interpolate(loss, real, fake, alpha)?;
    let g = critic_input_grad(loss, critic, &xhat)?;
    let norm = g
        .sqr()?
        .sum(norm_axes, false)?
        .add_scalar(NORM_EPS)?
        .sqrt()?;
    let gp = norm
        .add_scalar(-1.0)?
        .sqr()?
        .mean_all()?
        .mul_scalar(lambda)?;
    check_finite(loss, gp)
}
