//! Optimizers and learning-rate schedules.
//!
//! [`Adam`] follows `torch.optim.Adam` (L2 weight decay added to the gradient, bias correction,
//! a step counter per parameter). Schedules ([`MultiStepLR`], [`LinearDecay`]) are pure
//! functions of the epoch that set an optimizer's learning rate through [`Optimizer::set_lr`],
//! so resuming from a checkpoint only needs the epoch number.
//!
//! # Two time scales
//!
//! Two-time-scale training (TTUR, as in SPADE: the generator at `lr / 2`, the discriminator at
//! `lr * 2`, betas (0, 0.9)) is simply two optimizers, each over its own network's parameters,
//! each with its own schedule:
//!
//! ```
//! use tessera_nn::optim::{Adam, AdamConfig, LinearDecay};
//! use tessera_nn::{Conv2d, Conv2dConfig, ModuleExt};
//! use tessera_tensor::Rng;
//!
//! # fn main() -> tessera_nn::Result<()> {
//! let mut rng = Rng::seed(0);
//! let generator = Conv2d::new(Conv2dConfig::new(3, 3, 3).padding(1), &mut rng)?;
//! let critic = Conv2d::new(Conv2dConfig::new(3, 1, 3).padding(1), &mut rng)?;
//! let lr = 2e-4;
//! let mut opt_g = Adam::new(
//!     generator.named_params(),
//!     AdamConfig::new(lr / 2.0).betas(0.0, 0.9),
//! )?;
//! let mut opt_d = Adam::new(
//!     critic.named_params(),
//!     AdamConfig::new(lr * 2.0).betas(0.0, 0.9),
//! )?;
//! // Constant for 100 epochs, then linearly to zero over 100 more, each from its own base.
//! let sched_g = LinearDecay::new(lr / 2.0, 100, 100);
//! let sched_d = LinearDecay::new(lr * 2.0, 100, 100);
//! for epoch in 0..3 {
//!     sched_g.apply(&mut opt_g, epoch);
//!     sched_d.apply(&mut opt_d, epoch);
//!     // ... per batch: critic loss → opt_d.step(..), generator loss → opt_g.step(..)
//! }
//! assert_eq!(opt_g.lr(), 1e-4);
//! assert_eq!(opt_d.lr(), 4e-4);
//! # Ok(())
//! # }
//! ```
mod adam;
mod schedule;

pub use adam::{Adam, AdamConfig};
pub use schedule::{LinearDecay, MultiStepLR};

use std::collections::BTreeMap;
use tessera_tensor::Tensor;

/// What a schedule needs from an optimizer.
pub trait Optimizer {
    /// The learning rate the next step uses.
    fn lr(&self) -> f64;
    fn set_lr(&mut self, lr: f64);
}

/// An optimizer's state in a form checkpoints store: hyperparameters, per-parameter tensors and
/// per-parameter counters, all under stable names.
///
/// For [`Adam`]: `kind` is `"adam"`; `hyper` holds `lr`, `beta1`, `beta2`, `eps` and
/// `weight_decay`; for every parameter that has taken a step, `tensors` holds
/// `<param>.exp_avg` and `<param>.exp_avg_sq` and `counters` holds `<param>.step`, where
/// `<param>` is the parameter's state-dict name. A parameter that never took a step has no
/// entries (as in PyTorch, whose optimizer state is created lazily).
#[derive(Clone, Debug, Default)]
pub struct OptimizerState {
    pub kind: String,
    pub hyper: BTreeMap<String, f64>,
    pub tensors: BTreeMap<String, Tensor>,
    pub counters: BTreeMap<String, u64>,
}
