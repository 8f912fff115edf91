//! Parameters and buffers: named, shared, replaceable state of a layer.
use crate::{Error, Result};
use std::sync::{Arc, RwLock};
use tessera_autograd::Var;
use tessera_tensor::{Shape, Tensor};

struct ParamState {
    var: Var,
    requires_grad: bool,
}

/// A trainable tensor. Handles are shared: the layer that owns it and the optimizer that
/// updates it see the same value. [`Param::var`] is the current autograd leaf; [`Param::set`]
/// installs a new value as a fresh leaf (the previous graph and gradient are let go).
#[derive(Clone)]
pub struct Param(Arc<RwLock<ParamState>>);

impl std::fmt::Debug for Param {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Param({}, requires_grad: {})",
            self.shape(),
            self.requires_grad()
        )
    }
}

impl Param {
    pub fn new(value: Tensor) -> Param {
        Param(Arc::new(RwLock::new(ParamState {
            var: Var::param(value),
            requires_grad: true,
        })))
    }
    /// The current value as an autograd leaf: always the same node until the next `set`, so
    /// gradients can be asked for with respect to it. A frozen parameter gives a constant.
    pub fn var(&self) -> Var {
        let s = self.0.read().expect("param lock");
        if s.requires_grad {
            s.var.clone()
        } else {
            s.var.detach()
        }
    }
    pub fn tensor(&self) -> Tensor {
        self.0.read().expect("param lock").var.value().clone()
    }
    pub fn shape(&self) -> Shape {
        self.0.read().expect("param lock").var.shape().clone()
    }
    /// Replaces the value (same shape) with a fresh leaf; `name` is used in the error.
    pub fn set(&self, name: &str, value: Tensor) -> Result<()> {
        let mut s = self.0.write().expect("param lock");
        if value.shape() != s.var.shape() {
            return Err(Error::ParamShape {
                name: name.into(),
                expected: s.var.shape().clone(),
                got: value.shape().clone(),
            });
        }
        s.var = Var::param(value);
        Ok(())
    }
    /// Installs `var` (same shape) as the current value node, without copying: gradients then
    /// flow to `var` itself. For functional evaluation and finite-difference checks of a
    /// layer with respect to its parameters; `name` is used in the error.
    pub fn set_var(&self, name: &str, var: Var) -> Result<()> {
        let mut s = self.0.write().expect("param lock");
        if var.shape() != s.var.shape() {
            return Err(Error::ParamShape {
                name: name.into(),
                expected: s.var.shape().clone(),
                got: var.shape().clone(),
            });
        }
        s.var = var;
        Ok(())
    }
    pub fn requires_grad(&self) -> bool {
        self.0.read().expect("param lock").requires_grad
    }
    /// Freezes (false) or unfreezes (true) the parameter.
    pub fn set_requires_grad(&self, on: bool) {
        self.0.write().expect("param lock").requires_grad = on;
    }
    /// The gradient accumulated on the current leaf by `Var::backward`, if any.
    pub fn grad(&self) -> Option<Tensor> {
        self.0.read().expect("param lock").var.grad()
    }
    /// Whether both handles are the same parameter.
    pub fn same(&self, other: &Param) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// Non-trainable state saved with the model (running statistics, spectral-norm vectors).
#[derive(Clone)]
pub struct Buffer(Arc<RwLock<Tensor>>);

impl std::fmt::Debug for Buffer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Buffer({})", self.get().shape())
    }
}

impl Buffer {
    pub fn new(value: Tensor) -> Buffer {
        Buffer(Arc::new(RwLock::new(value)))
    }
    pub fn get(&self) -> Tensor {
        self.0.read().expect("buffer lock").clone()
    }
    /// Replaces the value (same shape); `name` is used in the error.
    pub fn set(&self, name: &str, value: Tensor) -> Result<()> {
        let mut s = self.0.write().expect("buffer lock");
        if value.shape() != s.shape() {
            return Err(Error::ParamShape {
                name: name.into(),
                expected: s.shape().clone(),
                got: value.shape().clone(),
            });
        }
        *s = value;
        Ok(())
    }
}
