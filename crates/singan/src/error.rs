//! Errors of tessera-singan: each names the file, image or setting concerned.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Gan(#[from] tessera_gan::Error),
    #[error(transparent)]
    Nn(#[from] tessera_nn::Error),
    #[error(transparent)]
    Autograd(#[from] tessera_autograd::Error),
    /// An argument does not fit the model (a shape, a scale index, a setting).
    #[error("{what}: {why}")]
    InvalidInput { what: String, why: String },
    /// The training image cannot give a pyramid (smaller than the coarsest scale, or so
    /// elongated that the max-size limit brings its short side below `min_size`).
    #[error("image {height}×{width}: {why}")]
    ImageTooSmall {
        height: usize,
        width: usize,
        why: String,
    },
    /// A model file or folder is missing, unreadable, from another format version, or does not
    /// fit the rest of the model; `why` says which.
    #[error("model {}: {why}", .path.display())]
    ModelFile { path: PathBuf, why: String },
    /// Training was stopped by the progress callback (the scales finished so far are saved).
    #[error("training stopped at scale {scale}, iteration {iteration}")]
    Stopped { scale: usize, iteration: usize },
}

impl From<tessera_tensor::Error> for Error {
    fn from(e: tessera_tensor::Error) -> Self {
        Error::Autograd(e.into())
    }
}

pub type Result<T> = std::result::Result<T, Error>;

pub(crate) fn invalid(what: impl Into<String>, why: impl Into<String>) -> Error {
    Error::InvalidInput {
        what: what.into(),
        why: why.into(),
    }
}

pub(crate) fn model_error(path: impl Into<PathBuf>, why: impl Into<String>) -> Error {
    Error::ModelFile {
        path: path.into(),
        why: why.into(),
    }
}
