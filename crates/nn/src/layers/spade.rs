//! `Spade`: spatially-adaptive normalization (Park et al. 2019, the SPADE layer of GauGAN).
use super::{expect_nchw, layer_error, BatchNorm2d, Conv2d, Conv2dConfig, InstanceNorm2d};
use crate::binary_conv::{binary_conv, BinaryMap};
use crate::module::{join, Entry, Module};
use crate::{NormConfig, Param, Result};
use std::sync::Arc;
use tessera_autograd::Var;
use tessera_tensor::{NormModulation, Rng};

/// Which parameter-free normalization SPADE applies to its input.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SpadeNorm {
    /// `BatchNorm2d(affine=False)`: batch statistics in training (running mean and variance
    /// kept with momentum 0.1), running statistics in eval mode.
    Batch,
    /// `InstanceNorm2d(affine=False)`: per-sample statistics, no running statistics.
    Instance,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SpadeConfig {
    /// Channels of the normalized activation.
    pub norm_nc: usize,
    /// Channels of the label map (semantic_nc).
    pub label_nc: usize,
    /// Width of the shared MLP (default 128).
    pub hidden: usize,
    /// Odd kernel size of the three convolutions, padded by `kernel / 2` (default 3).
    pub kernel: usize,
    pub norm: SpadeNorm,
}

impl SpadeConfig {
    /// Hidden width 128, 3×3 kernels.
    pub fn new(norm_nc: usize, label_nc: usize, norm: SpadeNorm) -> Self {
        SpadeConfig {
            norm_nc,
            label_nc,
            hidden: 128,
            kernel: 3,
            norm,
        }
    }
    pub fn hidden(mut self, hidden: usize) -> Self {
        self.hidden = hidden;
        self
    }
    pub fn kernel(mut self, k: usize) -> Self {
        self.kernel = k;
        self
    }
}

/// The parameter-free normalization inside a [`Spade`] layer.
#[derive(Debug)]
pub enum ParamFreeNorm {
    Batch(BatchNorm2d),
    Instance(InstanceNorm2d),
}

impl ParamFreeNorm {
    pub fn forward(&self, x: &Var) -> Result<Var> {
        match self {
            ParamFreeNorm::Batch(n) => n.forward(x),
            ParamFreeNorm::Instance(n) => n.forward(x),
        }
    }
    /// The normalization followed by the modulation `m`, fused.
    pub fn forward_modulated(&self, x: &Var, m: NormModulation<&Var>) -> Result<Var> {
        match self {
            ParamFreeNorm::Batch(n) => n.forward_modulated(x, m),
            ParamFreeNorm::Instance(n) => n.forward_modulated(x, m),
        }
    }
}

impl Module for ParamFreeNorm {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        match self {
            ParamFreeNorm::Batch(n) => n.visit(prefix, f),
            ParamFreeNorm::Instance(n) => n.visit(prefix, f),
        }
    }
    fn set_training(&mut self, training: bool) {
        match self {
            ParamFreeNorm::Batch(n) => n.set_training(training),
            ParamFreeNorm::Instance(n) => n.set_training(training),
        }
    }
}

/// SPADE: `norm(x) · (1 + γ(s)) + β(s)`, where `s` is the label map resized to x's H×W by
/// nearest interpolation (PyTorch's legacy `nearest`), `a = relu(mlp_shared(s))` with a k×k
/// convolution from `label_nc` to `hidden` channels, and γ, β are k×k convolutions of `a` to
/// `norm_nc` channels (all with bias, padding k/2).
///
/// Names as in the reference PyTorch module: `param_free_norm.running_mean`,
/// `param_free_norm.running_var`, `param_free_norm.num_batches_tracked` (batch norm only),
/// `mlp_shared.0.weight`, `mlp_shared.0.bias`, `mlp_gamma.weight`, `mlp_gamma.bias`,
/// `mlp_beta.weight`, `mlp_beta.bias`.
///
/// A label map of exact 0s and 1s that needs no gradient (one-hot labels, instance edges) is
/// convolved by `mlp_shared` as a lookup ([`binary_conv`]): the same result as the dense
/// convolution for `k²·active·hidden` additions per pixel instead of `k²·label_nc·hidden`
/// multiply-adds, and a weight gradient by scatter instead of a GEMM.
#[derive(Debug)]
pub struct Spade {
    pub config: SpadeConfig,
    pub param_free_norm: ParamFreeNorm,
    pub mlp_shared: Conv2d,
    pub mlp_gamma: Conv2d,
    pub mlp_beta: Conv2d,
}

impl Spade {
    /// With PyTorch's default init of the convolutions, in training mode.
    pub fn new(config: SpadeConfig, rng: &mut Rng) -> Result<Self> {
        let c = &config;
        if c.kernel % 2 != 1 {
            return Err(layer_error(
                "SPADE",
                format!("the kernel size must be odd, got {}", c.kernel),
            ));
        }
        let pad = c.kernel / 2;
        let conv = |i: usize, o: usize, rng: &mut Rng| {
            Conv2d::new(Conv2dConfig::new(i, o, c.kernel).padding(pad), rng)
        };
        let param_free_norm = match c.norm {
            SpadeNorm::Batch => ParamFreeNorm::Batch(BatchNorm2d::with_config(
                NormConfig::batch_norm(c.norm_nc).affine(false),
            )?),
            SpadeNorm::Instance => ParamFreeNorm::Instance(InstanceNorm2d::with_config(
                NormConfig::instance_norm(c.norm_nc).affine(false),
            )?),
        };
        Ok(Spade {
            config,
            param_free_norm,
            mlp_shared: conv(c.label_nc, c.hidden, rng)?,
            mlp_gamma: conv(c.hidden, c.norm_nc, rng)?,
            mlp_beta: conv(c.hidden, c.norm_nc, rng)?,
        })
    }

    /// `x` [N, norm_nc, H, W], `segmap` [N, label_nc, h, w] (any h, w) → [N, norm_nc, H, W].
    pub fn forward(&self, x: &Var, segmap: &Var) -> Result<Var> {
        let seg = self.label_map_at_input_size(x, segmap)?;
        if !seg.requires_grad() {
            if let Some(map) = BinaryMap::from_dense(seg.value())? {
                return self.forward_binary(x, &Arc::new(map));
            }
        }
        self.forward_resized_dense(x, &seg)
    }

    /// `forward` with the dense convolution whatever the map holds: for callers that have already
    /// chosen (tessera-spade tries [`BinaryMap::from_dense`] once for all the layers of a model).
    pub fn forward_dense(&self, x: &Var, segmap: &Var) -> Result<Var> {
        let seg = self.label_map_at_input_size(x, segmap)?;
        self.forward_resized_dense(x, &seg)
    }

    fn forward_resized_dense(&self, x: &Var, seg: &Var) -> Result<Var> {
        let actv = self.mlp_shared.forward(seg)?.relu()?;
        self.modulate(x, &actv)
    }

    /// `segmap` checked against `x` and resized to its H×W by nearest interpolation.
    fn label_map_at_input_size(&self, x: &Var, segmap: &Var) -> Result<Var> {
        let c = &self.config;
        let [n, _, h, w] = expect_nchw("SPADE", x, Some(c.norm_nc))?;
        let s = segmap.dims();
        if s.len() != 4 || s[1] != c.label_nc || s[0] != n || s[2] == 0 || s[3] == 0 {
            return Err(layer_error(
                "SPADE",
                format!(
                    "expected a label map [{n}, {}, h, w] for the input {}, got {}",
                    c.label_nc,
                    x.shape(),
                    segmap.shape()
                ),
            ));
        }
        Ok(if [s[2], s[3]] == [h, w] {
            segmap.clone()
        } else {
            segmap.upsample_nearest2d([h, w])?
        })
    }

    /// `forward` for a binary label map already at x's size (kept as a [`BinaryMap`] by callers
    /// that reuse one map across layers): `mlp_shared` runs as a lookup.
    pub fn forward_binary(&self, x: &Var, map: &Arc<BinaryMap>) -> Result<Var> {
        let c = &self.config;
        let [n, _, h, w] = expect_nchw("SPADE", x, Some(c.norm_nc))?;
        if (map.n, map.channels, map.h, map.w) != (n, c.label_nc, h, w) {
            return Err(layer_error(
                "SPADE",
                format!(
                    "expected a label map [{n}, {}, {h}, {w}] for the input {}, got [{}, {}, {}, {}]",
                    c.label_nc,
                    x.shape(),
                    map.n,
                    map.channels,
                    map.h,
                    map.w
                ),
            ));
        }
        let shared = &self.mlp_shared;
        let mut actv = binary_conv(map, &shared.weight.var())?;
        if let Some(b) = shared.bias.as_ref().map(Param::var) {
            actv = actv.add(&b.reshape([1, b.dims()[0], 1, 1])?)?;
        }
        self.modulate(x, &actv.relu()?)
    }

    /// norm(x)·(1 + γ(actv)) + β(actv), the normalization and modulation in one fused pass
    /// (and one fused backward pass).
    fn modulate(&self, x: &Var, actv: &Var) -> Result<Var> {
        let gamma = self.mlp_gamma.forward(actv)?;
        let beta = self.mlp_beta.forward(actv)?;
        self.param_free_norm.forward_modulated(
            x,
            NormModulation::Spatial {
                gamma: &gamma,
                beta: &beta,
            },
        )
    }
}

impl Module for Spade {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.param_free_norm
            .visit(&join(prefix, "param_free_norm"), f);
        self.mlp_shared.visit(&join(prefix, "mlp_shared.0"), f);
        self.mlp_gamma.visit(&join(prefix, "mlp_gamma"), f);
        self.mlp_beta.visit(&join(prefix, "mlp_beta"), f);
    }
    fn set_training(&mut self, training: bool) {
        self.param_free_norm.set_training(training);
    }
}
