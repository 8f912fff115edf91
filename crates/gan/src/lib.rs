//! tessera-gan: GAN losses built on tessera-autograd, each twice differentiable where the
//! training recipe needs it (the gradient penalties).
//!
//! Every loss is a function on [`Var`](tessera_autograd::Var)s returning a scalar `Var` (shape `[]`), documented with
//! its exact formula and reduction, and fails with a typed [`Error`] rather than panicking:
//! shapes that do not fit are [`Error::InvalidInput`], and a loss whose value is NaN or ±∞ is
//! [`Error::NonFinite`] naming the loss ([`check_finite`] applies the same check to totals you
//! compose yourself).
//!
//! | loss | formula |
//! |---|---|
//! | [`wgan_critic_loss`] / [`wgan_generator_loss`] | `mean D(fake) − mean D(real)` / `−mean D(fake)` |
//! | [`gradient_penalty`] | `λ·mean_n((‖∇D(x̂)_n‖₂ over C·H·W − 1)²)` |
//! | [`singan_gradient_penalty`] | `λ·mean_{n,h,w}((‖∇D(x̂)[n,:,h,w]‖₂ over C − 1)²)` |
//! | [`hinge_d_loss`] / [`hinge_g_loss`] | `mean relu(1 − D(real)) + mean relu(1 + D(fake))` / `−mean D(fake)` |
//! | [`ns_d_loss`] / [`ns_g_loss`] | `BCE(D(real), 1) + BCE(D(fake), 0)` / `BCE(D(fake), 1)`, logits |
//! | [`lsgan_d_loss`] / [`lsgan_g_loss`] | `mean (D(real) − 1)² + mean D(fake)²` / `mean (D(fake) − 1)²` |
//! | [`feature_matching_loss`] | `Σᵢⱼ (λ/num_D)·mean|fakeᵢⱼ − realᵢⱼ|`, real detached |
//! | [`kl_divergence`] | `−½·Σ(1 + logvar − μ² − exp logvar)`, summed over batch and dims |
//! | [`l1_loss`] / [`mse_loss`] | `mean|x − y|` / `mean (x − y)²` |
//! | [`VggPerceptualLoss`] | `Σₖ wₖ·mean|φₖ(x) − φₖ(y)|`, SPADE's VGG19 slices and weights |
//!
//! ```
//! use tessera_autograd::Var;
//! use tessera_gan::{gradient_penalty, sample_alpha, wgan_critic_loss, Mixing};
//! use tessera_tensor::{Conv2dParams, Device, Rng, Tensor};
//!
//! # fn main() -> tessera_gan::Result<()> {
//! let mut rng = Rng::seed(0);
//! let w = Var::param(Tensor::randn([1, 3, 3, 3], 0.0, 0.2, &mut rng, Device::Cpu)?);
//! let critic = |x: &Var| -> tessera_gan::Result<Var> {
//!     Ok(x.conv2d(&w, None, Conv2dParams::new(1, 1, 1))?.tanh()?)
//! };
//! let real = Var::constant(Tensor::randn([2, 3, 8, 8], 0.0, 1.0, &mut rng, Device::Cpu)?);
//! let fake = Var::constant(Tensor::randn([2, 3, 8, 8], 0.0, 1.0, &mut rng, Device::Cpu)?);
//! let alpha = sample_alpha(Mixing::PerSample, 2, &mut rng, Device::Cpu)?;
//! let loss = wgan_critic_loss(&critic(&real)?, &critic(&fake)?)?
//!     .add(&gradient_penalty(&critic, &real, &fake, &alpha, 10.0)?)?;
//! loss.backward()?;
//! assert!(w.grad().is_some());
//! # Ok(())
//! # }
//! ```
mod adversarial;
mod error;
mod penalty;
mod reconstruction;
pub mod vgg;

pub use adversarial::{
    bce_with_logits, hinge_d_fake_loss, hinge_d_loss, hinge_d_real_loss, hinge_g_loss,
    lsgan_d_loss, lsgan_g_loss, mean_over_scales, ns_d_loss, ns_g_loss, wgan_critic_loss,
    wgan_generator_loss,
};
pub use error::{check_finite, is_finite, Error};
pub use penalty::{
    gradient_penalty, sample_alpha, singan_gradient_penalty, Critic, Mixing, SINGAN_GP_LAMBDA,
    WGAN_GP_LAMBDA,
};
pub use reconstruction::{feature_matching_loss, kl_divergence, l1_loss, mse_loss};
pub use vgg::{Vgg19, Vgg19Config, VggPerceptualLoss, SPADE_VGG_WEIGHTS};

pub type Result<T> = std::result::Result<T, Error>;
