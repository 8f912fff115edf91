//! Errors of tessera-spade: every variant names the file, option or tensor concerned.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Nn(#[from] tessera_nn::Error),
    #[error(transparent)]
    Gan(#[from] tessera_gan::Error),
    #[error(transparent)]
    Autograd(#[from] tessera_autograd::Error),
    /// A configuration that cannot describe a SPADE model (`option` names the setting).
    #[error("config option {option}: {why}")]
    Config { option: String, why: String },
    /// A label id that has no one-hot channel (the reference fails here with a CUDA scatter
    /// "index out of bounds").
    #[error(
        "label map {file}: pixel ({x}, {y}) holds {value}, outside the valid ids 0..={max} \
         ({channels} one-hot channels: label_nc {label_nc}{dontcare}; 255 maps to {label_nc})"
    )]
    LabelOutOfRange {
        file: String,
        x: usize,
        y: usize,
        value: u32,
        max: usize,
        channels: usize,
        label_nc: usize,
        dontcare: &'static str,
    },
    /// A label or instance map whose size or pairing does not fit the batch.
    #[error("{file}: {why}")]
    InputMap { file: String, why: String },
    /// A tensor given to a model has the wrong shape.
    #[error("{model}: {why}")]
    Shape { model: &'static str, why: String },
    /// A training checkpoint that cannot be used with this configuration.
    #[error("checkpoint {}: {why}", .path.display())]
    Checkpoint { path: PathBuf, why: String },
}

impl From<tessera_tensor::Error> for Error {
    fn from(e: tessera_tensor::Error) -> Self {
        Error::Autograd(e.into())
    }
}

pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn config_error(option: &str, why: impl Into<String>) -> Error {
    Error::Config {
        option: option.into(),
        why: why.into(),
    }
}

pub(crate) fn shape_error(model: &'static str, why: impl Into<String>) -> Error {
    Error::Shape {
        model,
        why: why.into(),
    }
}
