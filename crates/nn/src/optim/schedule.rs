//! Learning-rate schedules: pure functions of the epoch (or of the step, if called per step).
//!
//! Nothing is stored between calls: `apply(opt, t)` sets the learning rate for epoch `t`
//! (counted from 0) whatever was done before, so a resumed run calls it with the epoch it
//! resumes at.
use super::Optimizer;

/// `torch.optim.lr_scheduler.MultiStepLR`: the base rate times `gamma` once for every
/// milestone reached,
///
/// ```text
/// lr(t) = base_lr · gamma^k,   k = #{ i : milestones[i] ≤ t }
/// ```
///
/// A milestone listed twice counts twice (as in PyTorch, which counts them with a `Counter`).
/// PyTorch's scheduler multiplies the previous rate by `gamma` at each milestone; the closed
/// form here differs from it only by floating-point rounding.
#[derive(Clone, Debug, PartialEq)]
pub struct MultiStepLR {
    pub base_lr: f64,
    pub milestones: Vec<usize>,
    pub gamma: f64,
}

impl MultiStepLR {
    pub fn new(base_lr: f64, milestones: impl Into<Vec<usize>>, gamma: f64) -> Self {
        MultiStepLR {
            base_lr,
            milestones: milestones.into(),
            gamma,
        }
    }
    /// The learning rate of epoch `t`.
    pub fn lr_at(&self, t: usize) -> f64 {
        let k = self.milestones.iter().filter(|&&m| m <= t).count();
        self.base_lr * self.gamma.powi(k as i32)
    }
    /// Sets `opt`'s learning rate to [`MultiStepLR::lr_at`]`(t)`.
    pub fn apply(&self, opt: &mut impl Optimizer, t: usize) {
        opt.set_lr(self.lr_at(t));
    }
}

/// Constant, then linear decay to zero: the schedule of SPADE and pix2pixHD (`--niter` =
/// `constant`, `--niter_decay` = `decay`), as a function of the 0-based epoch `t`:
///
/// ```text
/// lr(t) = base_lr · clamp(1 − max(0, t − constant) / decay, 0, 1)
/// ```
///
/// So epochs `0 ..= constant` run at `base_lr`, and each later epoch loses
/// `base_lr / decay`: epoch `constant + decay − 1`, the last of a run of
/// `constant + decay` epochs, runs at `base_lr / decay`, and the line reaches 0 at epoch
/// `constant + decay`. This equals SPADE's procedure, which starts at `base_lr` and after each
/// 1-based epoch `E > niter` subtracts `base_lr / niter_decay` (so its epoch `E` runs at
/// `lr(E − 1)`); SPADE's repeated subtraction and this closed form differ only by rounding.
/// With `decay == 0` the rate is `base_lr` up to epoch `constant` and 0 after it.
///
/// SPADE's two time scales use this with `base_lr / 2` for the generator and `base_lr · 2` for
/// the discriminator, one schedule per optimizer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinearDecay {
    pub base_lr: f64,
    /// Epochs at the full rate before the decay starts (SPADE's `niter`).
    pub constant: usize,
    /// Epochs over which the rate falls to zero (SPADE's `niter_decay`).
    pub decay: usize,
}

impl LinearDecay {
    pub fn new(base_lr: f64, constant: usize, decay: usize) -> Self {
        LinearDecay {
            base_lr,
            constant,
            decay,
        }
    }
    /// The learning rate of epoch `t` (0-based).
    pub fn lr_at(&self, t: usize) -> f64 {
        let past = t.saturating_sub(self.constant);
        let factor = if past == 0 {
            1.0
        } else if self.decay == 0 {
            0.0
        } else {
            (1.0 - past as f64 / self.decay as f64).clamp(0.0, 1.0)
        };
        self.base_lr * factor
    }
    /// Sets `opt`'s learning rate to [`LinearDecay::lr_at`]`(t)`.
    pub fn apply(&self, opt: &mut impl Optimizer, t: usize) {
        opt.set_lr(self.lr_at(t));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn multistep_counts_repeated_milestones() {
        let s = MultiStepLR::new(1.0, [2, 4, 4], 0.5);
        let got: Vec<f64> = (0..6).map(|t| s.lr_at(t)).collect();
        assert_eq!(got, [1.0, 1.0, 0.5, 0.5, 0.125, 0.125]);
    }

    #[test]
    fn linear_decay_matches_the_stated_formula() {
        let s = LinearDecay::new(2.0, 2, 4);
        let got: Vec<f64> = (0..8).map(|t| s.lr_at(t)).collect();
        assert_eq!(got, [2.0, 2.0, 2.0, 1.5, 1.0, 0.5, 0.0, 0.0]);
        let z = LinearDecay::new(1.0, 1, 0);
        assert_eq!([z.lr_at(0), z.lr_at(1), z.lr_at(2)], [1.0, 1.0, 0.0]);
    }
}
