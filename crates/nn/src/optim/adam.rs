//! Adam, like `torch.optim.Adam` (not AdamW).
use super::{Optimizer, OptimizerState};
use crate::{Error, Param, Result};
use std::collections::{BTreeMap, BTreeSet};
use tessera_autograd::Var;
use tessera_tensor::{AdamStep, Shape, Tensor};

/// Hyperparameters of [`Adam`]; the defaults are PyTorch's.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    pub lr: f64,
    /// (β1, β2): decay rates of the first and second moment estimates.
    pub betas: (f64, f64),
    /// Added to the bias-corrected root of the second moment.
    pub eps: f64,
    /// L2 penalty: `weight_decay · param` is added to the gradient before the moments are
    /// updated (PyTorch's `Adam`; AdamW's decoupled decay is a different method).
    pub weight_decay: f64,
}

impl Default for AdamConfig {
    fn default() -> Self {
        AdamConfig {
            lr: 1e-3,
            betas: (0.9, 0.999),
            eps: 1e-8,
            weight_decay: 0.0,
        }
    }
}

impl AdamConfig {
    /// PyTorch's defaults with learning rate `lr`.
    pub fn new(lr: f64) -> Self {
        AdamConfig {
            lr,
            ..Default::default()
        }
    }
    pub fn betas(mut self, beta1: f64, beta2: f64) -> Self {
        self.betas = (beta1, beta2);
        self
    }
    pub fn eps(mut self, eps: f64) -> Self {
        self.eps = eps;
        self
    }
    pub fn weight_decay(mut self, weight_decay: f64) -> Self {
        self.weight_decay = weight_decay;
        self
    }
    /// The ranges `torch.optim.Adam` accepts: lr, eps, weight_decay ≥ 0 and 0 ≤ β < 1, all
    /// finite.
    fn validate(&self) -> Result<()> {
        let (b1, b2) = self.betas;
        let problem = if !(self.lr >= 0.0 && self.lr.is_finite()) {
            Some(format!("invalid learning rate {}", self.lr))
        } else if !(self.eps >= 0.0 && self.eps.is_finite()) {
            Some(format!("invalid eps {}", self.eps))
        } else if !((0.0..1.0).contains(&b1) && (0.0..1.0).contains(&b2)) {
            Some(format!(
                "invalid betas ({b1}, {b2}): each must be in [0, 1)"
            ))
        } else if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            Some(format!("invalid weight_decay {}", self.weight_decay))
        } else {
            None
        };
        match problem {
            Some(why) => Err(adam_error(why)),
            None => Ok(()),
        }
    }
}

fn adam_error(why: impl Into<String>) -> Error {
    Error::Layer {
        layer: "Adam".into(),
        why: why.into(),
    }
}

/// The state of one parameter after its first step.
#[derive(Clone)]
struct Slot {
    step: u64,
    exp_avg: Tensor,
    exp_avg_sq: Tensor,
}

/// `torch.optim.Adam` over named parameters.
///
/// For a parameter `p` with gradient `g`, step `t` (counted per parameter, from 1):
///
/// ```text
/// g  ← g + weight_decay · p
/// m  ← m + (1 − β1)(g − m)               (exp_avg)
/// v  ← β2 · v + (1 − β2) · g²            (exp_avg_sq)
/// p  ← p − lr / (1 − β1^t) · m / (√v / √(1 − β2^t) + eps)
/// ```
///
/// Frozen parameters (`requires_grad` false) are never touched. Each step installs the new
/// values with [`Param::set`], which starts fresh autograd leaves: the gradients that
/// `Var::backward` accumulated are let go with the old leaves, so there is no `zero_grad` to
/// forget between steps (a [`Adam::zero_grad`] is there for gradients accumulated and then not
/// used). All of a step's new values are computed before any is installed, so a step that
/// fails changes nothing.
pub struct Adam {
    config: AdamConfig,
    params: Vec<(String, Param)>,
    slots: Vec<Option<Slot>>,
}

impl std::fmt::Debug for Adam {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Adam")
            .field("config", &self.config)
            .field("params", &self.params.len())
            .finish()
    }
}

impl Adam {
    /// An optimizer over `named_params` (e.g. from `ModuleExt::named_params`; prefix the names
    /// yourself when combining modules). Names must be unique and no parameter may be listed
    /// twice.
    pub fn new(named_params: Vec<(String, Param)>, config: AdamConfig) -> Result<Adam> {
        config.validate()?;
        let mut names = BTreeSet::new();
        for (i, (name, p)) in named_params.iter().enumerate() {
            if !names.insert(name.as_str()) {
                return Err(adam_error(format!("parameter name {name} is listed twice")));
            }
            if let Some((other, _)) = named_params[..i].iter().find(|(_, q)| q.same(p)) {
                return Err(adam_error(format!(
                    "{name} and {other} are the same parameter"
                )));
            }
        }
        let slots = vec![None; named_params.len()];
        Ok(Adam {
            config,
            params: named_params,
            slots,
        })
    }

    pub fn config(&self) -> &AdamConfig {
        &self.config
    }

    /// The learning rate the next step uses (also [`Optimizer::lr`]).
    pub fn lr(&self) -> f64 {
        self.config.lr
    }

    /// Sets the learning rate of the next steps (also [`Optimizer::set_lr`], which schedules
    /// use).
    pub fn set_lr(&mut self, lr: f64) {
        self.config.lr = lr;
    }

    /// The parameters, in the order [`Adam::step`] expects gradients.
    pub fn named_params(&self) -> &[(String, Param)] {
        &self.params
    }

    /// The current autograd leaves of the parameters in order (constants for frozen ones), to
    /// ask `tessera_autograd::grad` for the gradients that [`Adam::step`] takes.
    pub fn vars(&self) -> Vec<Var> {
        self.params.iter().map(|(_, p)| p.var()).collect()
    }

    /// How many steps the parameter `name` has taken (`None`: unknown name).
    pub fn step_count(&self, name: &str) -> Option<u64> {
        let i = self.params.iter().position(|(n, _)| n == name)?;
        Some(self.slots[i].as_ref().map_or(0, |s| s.step))
    }

    /// One step with one gradient per parameter, in the order of [`Adam::named_params`] (e.g.
    /// from `tessera_autograd::grad` over [`Adam::vars`]). Every trainable parameter is updated,
    /// a zero gradient included; entries for frozen parameters are ignored.
    pub fn step(&mut self, grads: &[Tensor]) -> Result<()> {
        let grads: Vec<Option<Tensor>> = grads.iter().cloned().map(Some).collect();
        self.step_partial(&grads)
    }

    /// [`Adam::step`] where `None` skips a parameter: its value, moments and step counter stay
    /// as they are (PyTorch's treatment of a parameter whose `.grad` is `None`).
    pub fn step_partial(&mut self, grads: &[Option<Tensor>]) -> Result<()> {
        if grads.len() != self.params.len() {
            return Err(adam_error(format!(
                "{} gradients for {} parameters",
                grads.len(),
                self.params.len()
            )));
        }
        let mut updates = Vec::new();
        for (i, ((name, p), g)) in self.params.iter().zip(grads).enumerate() {
            let Some(g) = g else { continue };
            if !p.requires_grad() {
                continue;
            }
            let value = p.tensor();
            if g.shape() != value.shape() {
                return Err(adam_error(format!(
                    "the gradient of {name} has shape {}, the parameter {}",
                    g.shape(),
                    value.shape()
                )));
            }
            let (new_value, slot) = self.update(&value, g, self.slots[i].as_ref())?;
            updates.push((i, new_value, slot));
        }
        for (i, value, slot) in updates {
            let (name, p) = &self.params[i];
            p.set(name, value)?;
            self.slots[i] = Some(slot);
        }
        Ok(())
    }

    /// One step with the gradients that `Var::backward` accumulated on the parameters' leaves
    /// ([`Param::grad`]); parameters without a gradient are skipped.
    pub fn step_from_backward(&mut self) -> Result<()> {
        let grads: Vec<Option<Tensor>> = self.params.iter().map(|(_, p)| p.grad()).collect();
        self.step_partial(&grads)
    }

    /// Drops the gradients accumulated on the parameters' current leaves.
    pub fn zero_grad(&self) {
        for (_, p) in &self.params {
            if p.requires_grad() {
                p.var().zero_grad();
            }
        }
    }

    /// The new value and state of one parameter (see the type's documentation).
    fn update(&self, p: &Tensor, g: &Tensor, slot: Option<&Slot>) -> Result<(Tensor, Slot)> {
        let c = &self.config;
        let (step, m, v) = match slot {
            // The moments follow the parameter when a module moves between devices (a no-op
            // clone when it has not).
            Some(s) => (
                s.step + 1,
                s.exp_avg.to_device(p.device())?,
                s.exp_avg_sq.to_device(p.device())?,
            ),
            None => {
                let zeros = Tensor::zeros(p.shape().clone(), p.device())?;
                (1, zeros.clone(), zeros)
            }
        };
        // One fused pass per parameter (PyTorch's update rule; see `Tensor::adam_step`).
        let (new_p, exp_avg, exp_avg_sq) = p.adam_step(
            g,
            &m,
            &v,
            AdamStep {
                lr: c.lr,
                beta1: c.betas.0,
                beta2: c.betas.1,
                eps: c.eps,
                weight_decay: c.weight_decay,
                step,
            },
        )?;
        Ok((
            new_p,
            Slot {
                step,
                exp_avg,
                exp_avg_sq,
            },
        ))
    }

    /// The hyperparameters and per-parameter state under stable names (see
    /// [`OptimizerState`]).
    pub fn state(&self) -> OptimizerState {
        let c = &self.config;
        let hyper = [
            ("lr", c.lr),
            ("beta1", c.betas.0),
            ("beta2", c.betas.1),
            ("eps", c.eps),
            ("weight_decay", c.weight_decay),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let mut tensors = BTreeMap::new();
        let mut counters = BTreeMap::new();
        for ((name, _), slot) in self.params.iter().zip(&self.slots) {
            if let Some(s) = slot {
                tensors.insert(format!("{name}.exp_avg"), s.exp_avg.clone());
                tensors.insert(format!("{name}.exp_avg_sq"), s.exp_avg_sq.clone());
                counters.insert(format!("{name}.step"), s.step);
            }
        }
        OptimizerState {
            kind: ADAM_KIND.to_string(),
            hyper,
            tensors,
            counters,
        }
    }

    /// Restores hyperparameters and per-parameter state exported by [`Adam::state`] (e.g. by
    /// an optimizer over the same module in an earlier run). Parameters absent from `state`
    /// start afresh. Names the optimizer does not have, mis-shaped moments, and parameters with
    /// only part of their entries are all reported in one [`Error::StateDict`]; nothing changes
    /// unless the whole state is accepted.
    pub fn load_state(&mut self, state: &OptimizerState) -> Result<()> {
        if state.kind != ADAM_KIND {
            return Err(adam_error(format!(
                "cannot load the state of a {:?} optimizer",
                state.kind
            )));
        }
        let hyper = |k: &str| {
            state
                .hyper
                .get(k)
                .copied()
                .ok_or_else(|| adam_error(format!("optimizer state lacks hyperparameter {k}")))
        };
        let config = AdamConfig {
            lr: hyper("lr")?,
            betas: (hyper("beta1")?, hyper("beta2")?),
            eps: hyper("eps")?,
            weight_decay: hyper("weight_decay")?,
        };
        config.validate()?;
        let known_tensors: BTreeSet<String> = self
            .params
            .iter()
            .flat_map(|(n, _)| [format!("{n}.exp_avg"), format!("{n}.exp_avg_sq")])
            .collect();
        let known_counters: BTreeSet<String> = self
            .params
            .iter()
            .map(|(n, _)| format!("{n}.step"))
            .collect();
        let mut unexpected: Vec<String> = state
            .tensors
            .keys()
            .filter(|k| !known_tensors.contains(*k))
            .chain(
                state
                    .counters
                    .keys()
                    .filter(|k| !known_counters.contains(*k)),
            )
            .cloned()
            .collect();
        unexpected.sort();
        unexpected.dedup();
        let mut missing = Vec::new();
        let mut mismatched: Vec<(String, Shape, Shape)> = Vec::new();
        let mut slots = vec![None; self.params.len()];
        for (i, (name, p)) in self.params.iter().enumerate() {
            let keys = [
                format!("{name}.exp_avg"),
                format!("{name}.exp_avg_sq"),
                format!("{name}.step"),
            ];
            let m = state.tensors.get(&keys[0]);
            let v = state.tensors.get(&keys[1]);
            let step = state.counters.get(&keys[2]);
            let present = [m.is_some(), v.is_some(), step.is_some()];
            if present.iter().all(|&b| !b) {
                continue;
            }
            for (k, &here) in keys.iter().zip(&present) {
                if !here {
                    missing.push(k.clone());
                }
            }
            let shape = p.shape();
            for (k, t) in keys.iter().zip([m, v]) {
                if let Some(t) = t.filter(|t| t.shape() != &shape) {
                    mismatched.push((k.clone(), shape.clone(), t.shape().clone()));
                }
            }
            if let (Some(m), Some(v), Some(&step)) = (m, v, step) {
                let device = p.tensor().device();
                slots[i] = Some(Slot {
                    step,
                    exp_avg: m.to_device(device)?,
                    exp_avg_sq: v.to_device(device)?,
                });
            }
        }
        if !missing.is_empty() || !unexpected.is_empty() || !mismatched.is_empty() {
            return Err(Error::StateDict {
                missing,
                unexpected,
                mismatched,
            });
        }
        self.config = config;
        self.slots = slots;
        Ok(())
    }
}

const ADAM_KIND: &str = "adam";

impl Optimizer for Adam {
    fn lr(&self) -> f64 {
        Adam::lr(self)
    }
    fn set_lr(&mut self, lr: f64) {
        Adam::set_lr(self, lr)
    }
}
