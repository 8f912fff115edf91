//! `Linear`, like `torch.nn.Linear` (parameters `weight` [out, in] and `bias` [out]).
use super::{expect_weight_shape, layer_error, visit_weight_bias, WeightLayer};
use crate::module::{Entry, Module};
use crate::{init, Param, Result};
use tessera_autograd::Var;
use tessera_tensor::Rng;

/// `y = x·weightᵀ + bias` over the last axis of `x` ([.., in] → [.., out]; any leading axes,
/// or none).
#[derive(Debug)]
pub struct Linear {
    pub in_features: usize,
    pub out_features: usize,
    pub weight: Param,
    pub bias: Option<Param>,
}

impl Linear {
    /// With PyTorch's default init: weight and bias U(−1/√in, 1/√in).
    pub fn new(in_features: usize, out_features: usize, bias: bool, rng: &mut Rng) -> Result<Self> {
        let weight = Param::new(init::default_weight([out_features, in_features], rng)?);
        let bias = if bias {
            Some(Param::new(init::default_bias(
                out_features,
                in_features,
                rng,
            )?))
        } else {
            None
        };
        Ok(Linear {
            in_features,
            out_features,
            weight,
            bias,
        })
    }

    pub fn forward(&self, x: &Var) -> Result<Var> {
        self.forward_with_weight(x, &self.weight.var())
    }

    /// The layer with `weight` in place of the parameter's value.
    pub fn forward_with_weight(&self, x: &Var, weight: &Var) -> Result<Var> {
        let d = x.dims();
        if d.is_empty() || d[d.len() - 1] != self.in_features {
            return Err(layer_error(
                "Linear",
                format!(
                    "expected input [.., {}], got {}",
                    self.in_features,
                    x.shape()
                ),
            ));
        }
        expect_weight_shape("Linear", weight, &self.weight)?;
        let lead = &d[..d.len() - 1];
        let rows: usize = lead.iter().product();
        let bias = self.bias.as_ref().map(Param::var);
        let y = x
            .reshape([rows, self.in_features])?
            .linear(weight, bias.as_ref())?;
        let mut out = lead.to_vec();
        out.push(self.out_features);
        Ok(y.reshape(out)?)
    }
}

impl WeightLayer for Linear {
    fn layer_name(&self) -> &'static str {
        "Linear"
    }
    fn weight(&self) -> &Param {
        &self.weight
    }
    fn forward_with_weight(&self, x: &Var, weight: &Var) -> Result<Var> {
        Linear::forward_with_weight(self, x, weight)
    }
}

impl Module for Linear {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        visit_weight_bias(prefix, &self.weight, self.bias.as_ref(), f);
    }
    fn set_training(&mut self, _training: bool) {}
}
