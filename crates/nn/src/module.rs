//! The `Module` trait: hierarchical names for parameters and buffers (PyTorch's `state_dict`
//! convention, e.g. `body.block1.norm.running_mean`), train/eval mode, freezing, and loading.
use crate::{Buffer, Error, Param, Result};
use std::collections::BTreeMap;
use tessera_tensor::{Device, Tensor};

/// One named piece of state, as visited by [`Module::visit`].
pub enum Entry<'a> {
    Param(&'a Param),
    Buffer(&'a Buffer),
}

/// A layer or a model. Forward methods are each layer's own (their inputs differ); what all
/// share is named state and a mode.
pub trait Module {
    /// Calls `f` with the full name (`prefix` joined with each local name by '.') of every
    /// parameter and buffer, children included, in a fixed order.
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>));
    /// Training (batch statistics, power iterations) or evaluation mode; containers pass it on.
    fn set_training(&mut self, training: bool);
}

/// `prefix.name`, or `name` at the top.
pub fn join(prefix: &str, name: &str) -> String {
    if prefix.is_empty() {
        name.to_string()
    } else {
        format!("{prefix}.{name}")
    }
}

/// What every module gets for free.
pub trait ModuleExt: Module {
    fn named_params(&self) -> Vec<(String, Param)> {
        let mut out = Vec::new();
        self.visit("", &mut |n, e| {
            if let Entry::Param(p) = e {
                out.push((n.to_string(), p.clone()));
            }
        });
        out
    }
    fn named_buffers(&self) -> Vec<(String, Buffer)> {
        let mut out = Vec::new();
        self.visit("", &mut |n, e| {
            if let Entry::Buffer(b) = e {
                out.push((n.to_string(), b.clone()));
            }
        });
        out
    }
    fn params(&self) -> Vec<Param> {
        self.named_params().into_iter().map(|(_, p)| p).collect()
    }
    /// Every parameter and buffer by name.
    fn state_dict(&self) -> BTreeMap<String, Tensor> {
        let mut out = BTreeMap::new();
        self.visit("", &mut |n, e| {
            let t = match e {
                Entry::Param(p) => p.tensor(),
                Entry::Buffer(b) => b.get(),
            };
            out.insert(n.to_string(), t);
        });
        out
    }
    /// Loads every tensor by name. With `strict`, any missing or unexpected name is an error;
    /// a mis-shaped tensor always is. All problems are reported together and nothing is
    /// changed unless the whole load succeeds.
    fn load_state_dict(&self, state: &BTreeMap<String, Tensor>, strict: bool) -> Result<()> {
        let mut missing = Vec::new();
        let mut mismatched = Vec::new();
        let mut seen = std::collections::BTreeSet::new();
        self.visit("", &mut |n, e| {
            let shape = match e {
                Entry::Param(p) => p.shape(),
                Entry::Buffer(b) => b.get().shape().clone(),
            };
            match state.get(n) {
                None => missing.push(n.to_string()),
                Some(t) if t.shape() != &shape => {
                    mismatched.push((n.to_string(), shape, t.shape().clone()))
                }
                Some(_) => {}
            }
            seen.insert(n.to_string());
        });
        let unexpected: Vec<String> = state
            .keys()
            .filter(|k| !seen.contains(*k))
            .cloned()
            .collect();
        if !mismatched.is_empty() || (strict && (!missing.is_empty() || !unexpected.is_empty())) {
            return Err(Error::StateDict {
                missing,
                unexpected,
                mismatched,
            });
        }
        let mut result = Ok(());
        self.visit("", &mut |n, e| {
            if let (Some(t), true) = (state.get(n), result.is_ok()) {
                result = match e {
                    Entry::Param(p) => p.set(n, t.clone()),
                    Entry::Buffer(b) => b.set(n, t.clone()),
                };
            }
        });
        result
    }
    /// Moves every parameter and buffer to `device` (each parameter becomes a fresh leaf there;
    /// optimizers hold the same handles and follow, and Adam moves its moments to the parameters'
    /// device at its next step). Scalar buffers, such as batch norm's
    /// `num_batches_tracked`, stay on the host: layers read them at every training step, and a
    /// read from a GPU would wait for the device each time.
    fn to_device(&self, device: Device) -> Result<()> {
        let mut result = Ok(());
        self.visit("", &mut |n, e| {
            if result.is_err() {
                return;
            }
            // Whatever is already there stays as it is (a parameter keeps its autograd leaf).
            result = (|| match e {
                Entry::Param(p) if p.tensor().device() != device => {
                    p.set(n, p.tensor().to_device(device)?)
                }
                Entry::Buffer(b) if b.get().shape().rank() > 0 && b.get().device() != device => {
                    b.set(n, b.get().to_device(device)?)
                }
                Entry::Param(_) | Entry::Buffer(_) => Ok(()),
            })();
        });
        result
    }
    /// Freezes (false) or unfreezes every parameter.
    fn set_requires_grad(&self, on: bool) {
        for p in self.params() {
            p.set_requires_grad(on);
        }
    }
}

impl<M: Module + ?Sized> ModuleExt for M {}
