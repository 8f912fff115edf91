//! The app's errors: the library's, plus files the app itself writes and options that do not
//! fit the model. Each is printed with the file it concerns.
use std::path::PathBuf;

use tessera_singan::apps::AppError;
use tessera_singan::image_io::ImageIoError;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Model(#[from] tessera_singan::Error),
    #[error(transparent)]
    Image(#[from] ImageIoError),
    #[error(transparent)]
    App(#[from] AppError),
    /// The library reports an image too small for the pyramid without its file name.
    #[error("{}: {source}", path.display())]
    TrainingImage {
        path: PathBuf,
        source: tessera_singan::Error,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// An option that parses but does not fit (a scale index beyond the model's scales).
    #[error("{0}")]
    Usage(String),
}

impl From<tessera_tensor::Error> for CliError {
    fn from(e: tessera_tensor::Error) -> Self {
        CliError::Model(e.into())
    }
}

pub type Result<T> = std::result::Result<T, CliError>;
