//! Layers. Each owns its parameters and buffers, names them like its PyTorch counterpart, and
//! has its own `forward`. Every forward checks its input's shape first and answers a bad one
//! with [`Error::Layer`] naming the layer.
mod activation;
mod conv;
mod conv_transpose;
mod linear;
mod norm;
mod pool;
mod spade;
mod spectral;

pub use activation::{LeakyReLU, ReLU, Tanh};
pub use conv::{Conv2d, Conv2dConfig, Padding};
pub use conv_transpose::{ConvTranspose2d, ConvTranspose2dConfig};
pub use linear::Linear;
pub use norm::{BatchNorm2d, InstanceNorm2d, NormConfig};
pub use pool::{AvgPool2d, Upsample, UpsampleSize};
pub use spade::{ParamFreeNorm, Spade, SpadeConfig, SpadeNorm};
pub use spectral::{SpectralNorm, WeightLayer};

use crate::{Error, Result};
use tessera_autograd::Var;

/// `Error::Layer` for `layer`.
/// A weight given in place of `param` (spectral norm's normalized weight) must have its shape.
pub(crate) fn expect_weight_shape(
    layer: &str,
    weight: &tessera_autograd::Var,
    param: &crate::Param,
) -> crate::Result<()> {
    if weight.shape() != &param.shape() {
        return Err(layer_error(
            layer,
            format!(
                "weight of shape {} given where {} is expected",
                weight.shape(),
                param.shape()
            ),
        ));
    }
    Ok(())
}

/// Visits `weight` and the optional `bias` under PyTorch's names.
pub(crate) fn visit_weight_bias(
    prefix: &str,
    weight: &crate::Param,
    bias: Option<&crate::Param>,
    f: &mut dyn FnMut(&str, crate::Entry<'_>),
) {
    f(&crate::join(prefix, "weight"), crate::Entry::Param(weight));
    if let Some(b) = bias {
        f(&crate::join(prefix, "bias"), crate::Entry::Param(b));
    }
}

pub(crate) fn layer_error(layer: &str, why: impl Into<String>) -> Error {
    Error::Layer {
        layer: layer.into(),
        why: why.into(),
    }
}

/// Checks that `x` is [N, C, H, W] (with `C == channels` when given) and returns its dims.
pub(crate) fn expect_nchw(layer: &str, x: &Var, channels: Option<usize>) -> Result<[usize; 4]> {
    let d = x.dims();
    let want = || match channels {
        Some(c) => format!("[N, {c}, H, W]"),
        None => "[N, C, H, W]".to_string(),
    };
    if d.len() != 4 || channels.is_some_and(|c| d[1] != c) {
        return Err(layer_error(
            layer,
            format!("expected input {}, got {}", want(), x.shape()),
        ));
    }
    Ok([d[0], d[1], d[2], d[3]])
}
