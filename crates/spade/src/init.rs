//! The reference's weight init and parameter counting.
use crate::error::Result;
use tessera_nn::{init, Module, ModuleExt};
use tessera_tensor::Rng;

/// The reference's default gain (`--init_variance 0.02`).
pub const INIT_GAIN: f32 = 0.02;

/// Xavier-normal init with `gain` (std = gain·√(2 / (fan_in + fan_out))) of every conv and
/// linear weight of `module` — `weight_orig` of the spectral-normed ones included — and zero
/// biases. SPADE's norms have no affine parameters, so nothing else is touched.
///
/// The reference calls this after moving the model to the GPU, which (in its PyTorch version)
/// most likely leaves the spectral-normed `weight_orig` at PyTorch's default init; spectral
/// norm divides by σ anyway, so only the direction of the init matters there. Here every
/// weight gets the documented Xavier init.
pub fn init_xavier<M: Module + ?Sized>(module: &M, gain: f32, rng: &mut Rng) -> Result<()> {
    for (name, p) in module.named_params() {
        let shape = p.shape();
        if (name.ends_with(".weight") || name.ends_with(".weight_orig") || name == "weight")
            && shape.dims().len() >= 2
        {
            p.set(&name, init::xavier_normal(shape, gain, rng)?)?;
        } else if name.ends_with("bias") {
            p.set(&name, init::zeros(shape)?)?;
        }
    }
    Ok(())
}

/// The number of trainable values (parameters, not buffers) of `module`.
pub fn count_params<M: Module + ?Sized>(module: &M) -> usize {
    module
        .named_params()
        .iter()
        .map(|(_, p)| p.shape().numel())
        .sum()
}
