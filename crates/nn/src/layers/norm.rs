//! `BatchNorm2d` and `InstanceNorm2d`, like their PyTorch namesakes. Both run autograd's fused
//! normalization (`Var::normalize`: one statistics pass and one output pass, the affine map or a
//! SPADE modulation folded into the output pass), which is differentiable to any order.
use super::{expect_nchw, layer_error};
use crate::module::{join, Entry, Module};
use crate::{Buffer, Param, Result};
use tessera_autograd::{no_grad, Var};
use tessera_tensor::{Device, NormModulation, Tensor};

/// Settings shared by both norms (PyTorch's `_NormBase` arguments).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct NormConfig {
    pub num_features: usize,
    /// Added to the variance before the square root (default 1e-5).
    pub eps: f32,
    /// Weight of the new statistic in the running averages (default 0.1); `None` gives the
    /// cumulative average (factor `1 / num_batches_tracked`, batch norm only).
    pub momentum: Option<f32>,
    /// Learnable per-channel `weight` (init 1) and `bias` (init 0).
    pub affine: bool,
    /// Keep `running_mean`, `running_var` and `num_batches_tracked` and use them in eval mode.
    pub track_running_stats: bool,
}

impl NormConfig {
    /// PyTorch's `BatchNorm2d` defaults: eps 1e-5, momentum 0.1, affine, running stats.
    pub fn batch_norm(num_features: usize) -> Self {
        NormConfig {
            num_features,
            eps: 1e-5,
            momentum: Some(0.1),
            affine: true,
            track_running_stats: true,
        }
    }
    /// PyTorch's `InstanceNorm2d` defaults: eps 1e-5, momentum 0.1, no affine, no running stats.
    pub fn instance_norm(num_features: usize) -> Self {
        NormConfig {
            affine: false,
            track_running_stats: false,
            ..NormConfig::batch_norm(num_features)
        }
    }
    pub fn eps(mut self, eps: f32) -> Self {
        self.eps = eps;
        self
    }
    pub fn momentum(mut self, momentum: Option<f32>) -> Self {
        self.momentum = momentum;
        self
    }
    pub fn affine(mut self, on: bool) -> Self {
        self.affine = on;
        self
    }
    pub fn track_running_stats(mut self, on: bool) -> Self {
        self.track_running_stats = on;
        self
    }
}

/// Learnable scale and shift, and the running statistics.
#[derive(Debug)]
struct NormState {
    config: NormConfig,
    weight: Option<Param>,
    bias: Option<Param>,
    running_mean: Option<Buffer>,
    running_var: Option<Buffer>,
    /// An f32 tensor of shape [] (PyTorch stores an int64 scalar).
    num_batches_tracked: Option<Buffer>,
    training: bool,
}

impl NormState {
    fn new(config: NormConfig) -> Result<Self> {
        let c = config.num_features;
        let full = |v: f32| Tensor::full(v, [c], Device::Cpu);
        let (weight, bias) = if config.affine {
            (Some(Param::new(full(1.0)?)), Some(Param::new(full(0.0)?)))
        } else {
            (None, None)
        };
        let (running_mean, running_var, num_batches_tracked) = if config.track_running_stats {
            (
                Some(Buffer::new(full(0.0)?)),
                Some(Buffer::new(full(1.0)?)),
                Some(Buffer::new(Tensor::scalar(0.0, Device::Cpu)?)),
            )
        } else {
            (None, None, None)
        };
        Ok(NormState {
            config,
            weight,
            bias,
            running_mean,
            running_var,
            num_batches_tracked,
            training: true,
        })
    }

    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        if let (Some(w), Some(b)) = (&self.weight, &self.bias) {
            f(&join(prefix, "weight"), Entry::Param(w));
            f(&join(prefix, "bias"), Entry::Param(b));
        }
        if let (Some(m), Some(v), Some(n)) = (
            &self.running_mean,
            &self.running_var,
            &self.num_batches_tracked,
        ) {
            f(&join(prefix, "running_mean"), Entry::Buffer(m));
            f(&join(prefix, "running_var"), Entry::Buffer(v));
            f(&join(prefix, "num_batches_tracked"), Entry::Buffer(n));
        }
    }

    /// Whether the forward normalizes with statistics of its input.
    fn uses_input_stats(&self) -> bool {
        self.training || !self.config.track_running_stats
    }

    /// Normalizes `x` with its own statistics (per channel, or per plane when `instance`) when
    /// training or not tracking, else with the running ones, then applies `m`; with
    /// `NormModulation::None` the layer's own affine map (when it has one). A training forward
    /// blends the statistics into the running ones.
    fn forward_modulated(&self, x: &Var, instance: bool, m: NormModulation<&Var>) -> Result<Var> {
        let own = self
            .weight
            .as_ref()
            .zip(self.bias.as_ref())
            .map(|(w, b)| (w.var(), b.var()));
        let m = match (m, &own) {
            (NormModulation::None, Some((gamma, beta))) => NormModulation::Channel { gamma, beta },
            (m, _) => m,
        };
        if !self.uses_input_stats() {
            let (mean, rstd) = self.running_stats()?;
            return Ok(x.normalize_with_stats(&mean, &rstd, false, m)?);
        }
        let out = x.normalize(instance, self.config.eps, m)?;
        if self.training && self.config.track_running_stats {
            let d = x.dims();
            let count = if instance {
                d[2] * d[3]
            } else {
                d[0] * d[2] * d[3]
            };
            let c = self.config.num_features;
            // σ² = 1/rstd² − ε, averaged over the batch for instance statistics.
            let biased = out.rstd.powf(-2.0)?.add_scalar(-self.config.eps)?;
            let (mean, biased) = if instance {
                (out.mean.mean(&[0], false)?, biased.mean(&[0], false)?)
            } else {
                (out.mean.clone(), biased)
            };
            let unbiased = biased
                .reshape([c])?
                .mul_scalar(count as f32 / (count - 1) as f32)?;
            self.update_running(&mean.reshape([c])?, &unbiased, !instance)?;
        }
        Ok(out.output)
    }

    /// The running mean and 1/sqrt(running var + ε), as [1, C, 1, 1] (eval mode).
    fn running_stats(&self) -> Result<(Tensor, Tensor)> {
        let c = self.config.num_features;
        let (Some(rm), Some(rv)) = (&self.running_mean, &self.running_var) else {
            return Err(layer_error(
                "norm",
                "no running statistics to normalize with",
            ));
        };
        let rstd = rv.get().add_scalar(self.config.eps)?.rsqrt()?;
        Ok((rm.get().reshape([1, c, 1, 1])?, rstd.reshape([1, c, 1, 1])?))
    }

    /// `running ← (1 − m)·running + m·new` for mean and (unbiased) variance, both [C].
    fn update_running(&self, mean: &Tensor, unbiased_var: &Tensor, count: bool) -> Result<()> {
        let (Some(rm), Some(rv), Some(nbt)) = (
            &self.running_mean,
            &self.running_var,
            &self.num_batches_tracked,
        ) else {
            return Ok(());
        };
        no_grad(|| -> Result<()> {
            let mut tracked = nbt.get().to_scalar()?;
            if count {
                tracked += 1.0;
                nbt.set("num_batches_tracked", Tensor::scalar(tracked, Device::Cpu)?)?;
            }
            let m = match self.config.momentum {
                Some(m) => m,
                None if count => 1.0 / tracked,
                None => 0.0,
            };
            let blend = |old: &Tensor, new: &Tensor| -> Result<Tensor> {
                Ok(old.mul_scalar(1.0 - m)?.add(&new.mul_scalar(m)?)?)
            };
            rm.set("running_mean", blend(&rm.get(), mean)?)?;
            rv.set("running_var", blend(&rv.get(), unbiased_var)?)?;
            Ok(())
        })
    }
}

/// The accessors BatchNorm2d and InstanceNorm2d share over their `NormState`.
macro_rules! norm_accessors {
    () => {
        pub fn config(&self) -> &NormConfig {
            &self.state.config
        }
        pub fn is_training(&self) -> bool {
            self.state.training
        }
        pub fn weight(&self) -> Option<&Param> {
            self.state.weight.as_ref()
        }
        pub fn bias(&self) -> Option<&Param> {
            self.state.bias.as_ref()
        }
        pub fn running_mean(&self) -> Option<&Buffer> {
            self.state.running_mean.as_ref()
        }
        pub fn running_var(&self) -> Option<&Buffer> {
            self.state.running_var.as_ref()
        }
    };
}

/// Batch normalization over N, H, W of an [N, C, H, W] input (`torch.nn.BatchNorm2d`).
///
/// * training: normalizes with the batch mean and the **biased** batch variance; updates
///   `running_mean` and `running_var` with momentum (`(1 − m)·old + m·new`) using the
///   **unbiased** variance, and adds 1 to `num_batches_tracked`;
/// * eval: normalizes with the running statistics (batch statistics when
///   `track_running_stats` is off).
///
/// Names: `weight`, `bias` (when affine), `running_mean`, `running_var`,
/// `num_batches_tracked` (when tracking). `num_batches_tracked` is stored as an **f32 tensor of
/// shape []**, where PyTorch keeps an int64: exact up to 2²⁴ batches; a PyTorch state dict
/// converted to float32 loads into it.
#[derive(Debug)]
pub struct BatchNorm2d {
    state: NormState,
}

impl BatchNorm2d {
    /// PyTorch's defaults (see [`NormConfig::batch_norm`]), in training mode.
    pub fn new(num_features: usize) -> Result<Self> {
        Self::with_config(NormConfig::batch_norm(num_features))
    }
    pub fn with_config(config: NormConfig) -> Result<Self> {
        Ok(BatchNorm2d {
            state: NormState::new(config)?,
        })
    }
    norm_accessors!();
    pub fn num_batches_tracked(&self) -> Option<&Buffer> {
        self.state.num_batches_tracked.as_ref()
    }

    pub fn forward(&self, x: &Var) -> Result<Var> {
        self.forward_modulated(x, NormModulation::None)
    }

    /// The normalization followed by `m` in place of the layer's own affine map (none, per
    /// channel, or SPADE's spatial `x̂·(1 + γ) + β`), fused into one output pass.
    pub fn forward_modulated(&self, x: &Var, m: NormModulation<&Var>) -> Result<Var> {
        let s = &self.state;
        let c = s.config.num_features;
        let [n, _, h, w] = expect_nchw("BatchNorm2d", x, Some(c))?;
        if s.uses_input_stats() && n * h * w <= 1 {
            return Err(layer_error(
                "BatchNorm2d",
                format!(
                    "expected more than 1 value per channel with batch statistics, got input {}",
                    x.shape()
                ),
            ));
        }
        s.forward_modulated(x, false, m)
    }
}

impl Module for BatchNorm2d {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.state.visit(prefix, f)
    }
    fn set_training(&mut self, training: bool) {
        self.state.training = training;
    }
}

/// Instance normalization over H, W of each sample and channel (`torch.nn.InstanceNorm2d`):
/// biased variance, eps 1e-5; by default no affine parameters and no running statistics.
///
/// With `track_running_stats`, a training forward blends the mean over the batch of the
/// per-instance means and unbiased variances into `running_mean` and `running_var` (as
/// PyTorch does; `num_batches_tracked` exists but, as in PyTorch, is not incremented), and eval
/// mode normalizes with them.
///
/// Difference from PyTorch: an input whose channel count differs from `num_features` is an
/// error even without affine parameters (PyTorch only warns).
#[derive(Debug)]
pub struct InstanceNorm2d {
    state: NormState,
}

impl InstanceNorm2d {
    /// PyTorch's defaults (see [`NormConfig::instance_norm`]), in training mode.
    pub fn new(num_features: usize) -> Result<Self> {
        Self::with_config(NormConfig::instance_norm(num_features))
    }
    pub fn with_config(config: NormConfig) -> Result<Self> {
        Ok(InstanceNorm2d {
            state: NormState::new(config)?,
        })
    }
    norm_accessors!();

    pub fn forward(&self, x: &Var) -> Result<Var> {
        self.forward_modulated(x, NormModulation::None)
    }

    /// The normalization followed by `m` in place of the layer's own affine map (none, per
    /// channel, or SPADE's spatial `x̂·(1 + γ) + β`), fused into one output pass.
    pub fn forward_modulated(&self, x: &Var, m: NormModulation<&Var>) -> Result<Var> {
        let s = &self.state;
        let c = s.config.num_features;
        let [_, _, h, w] = expect_nchw("InstanceNorm2d", x, Some(c))?;
        if s.uses_input_stats() && h * w <= 1 {
            return Err(layer_error(
                "InstanceNorm2d",
                format!(
                    "expected more than 1 spatial element with instance statistics, got input {}",
                    x.shape()
                ),
            ));
        }
        s.forward_modulated(x, true, m)
    }
}

impl Module for InstanceNorm2d {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.state.visit(prefix, f)
    }
    fn set_training(&mut self, training: bool) {
        self.state.training = training;
    }
}
