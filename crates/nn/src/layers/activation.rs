//! Activations as small layers without state: `ReLU`, `LeakyReLU`, `Tanh` (any input shape).
use crate::module::{Entry, Module};
use crate::Result;
use tessera_autograd::Var;

/// `max(x, 0)` (`torch.nn.ReLU`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ReLU;

impl ReLU {
    pub fn forward(&self, x: &Var) -> Result<Var> {
        Ok(x.relu()?)
    }
}

/// `x` for `x ≥ 0`, `slope·x` otherwise (`torch.nn.LeakyReLU`, default slope 0.01; GANs
/// mostly use 0.2).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LeakyReLU {
    pub negative_slope: f32,
}

impl Default for LeakyReLU {
    fn default() -> Self {
        LeakyReLU {
            negative_slope: 0.01,
        }
    }
}

impl LeakyReLU {
    pub fn new(negative_slope: f32) -> Self {
        LeakyReLU { negative_slope }
    }
    pub fn forward(&self, x: &Var) -> Result<Var> {
        Ok(x.leaky_relu(self.negative_slope)?)
    }
}

/// `tanh(x)` (`torch.nn.Tanh`).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Tanh;

impl Tanh {
    pub fn forward(&self, x: &Var) -> Result<Var> {
        Ok(x.tanh()?)
    }
}

macro_rules! stateless_module {
    ($($t:ty),*) => {$(
        impl Module for $t {
            fn visit(&self, _prefix: &str, _f: &mut dyn FnMut(&str, Entry<'_>)) {}
            fn set_training(&mut self, _training: bool) {}
        }
    )*};
}

stateless_module!(ReLU, LeakyReLU, Tanh);
