//! Generator weights as safetensors under the reference's state-dict names, e.g. converted from
//! a PyTorch checkpoint by `crates/spade-cli/convert_torch_generator.py`.
use crate::config::ModelConfig;
use crate::error::{Error, Result};
use crate::generator::SpadeGenerator;
use std::path::Path;
use tessera_nn::checkpoint::safetensors;
use tessera_nn::Module;
use tessera_tensor::Rng;

/// A generator built from `config` with the weights of the safetensors file at `path`, in eval
/// mode (running batch statistics, stored spectral-norm vectors), ready for inference.
///
/// Every tensor of the generator must be in the file with its shape, and the file may hold no
/// other: a mismatch is [`Error::Checkpoint`] naming the file, each missing, unexpected and
/// mis-shaped tensor, and the config's semantic_nc (the usual cause is a label-channel count
/// that differs from the training run's: `--contain_dontcare_label`, `--no_instance`,
/// `--label_nc`).
pub fn load_generator(path: impl AsRef<Path>, config: &ModelConfig) -> Result<SpadeGenerator> {
    let path = path.as_ref();
    // The generator's own init is replaced by the file: a fixed seed keeps this deterministic.
    let mut generator = SpadeGenerator::new(config, &mut Rng::seed(0))?;
    safetensors::load_module(path, &generator).map_err(|e| match e {
        tessera_nn::Error::Checkpoint { .. } => Error::from(e),
        other => Error::Checkpoint {
            path: path.to_path_buf(),
            why: format!(
                "does not fit the generator of this configuration (semantic_nc {}, ngf {}, \
                 {} upsampling layers, {}): {other}",
                config.semantic_nc(),
                config.ngf,
                config.num_upsampling_layers.as_str(),
                if config.use_vae { "VAE" } else { "no VAE" },
            ),
        },
    })?;
    generator.set_training(false);
    Ok(generator)
}

/// Writes `generator`'s weights as safetensors (reference names, `{"format": "pt"}` metadata),
/// atomically; PyTorch's `load_state_dict` of the reference generator accepts them after
/// `safetensors.torch.load_file` (with `num_batches_tracked` as a float32 scalar).
pub fn save_generator(path: impl AsRef<Path>, generator: &SpadeGenerator) -> Result<()> {
    Ok(safetensors::save_module(path, generator)?)
}
