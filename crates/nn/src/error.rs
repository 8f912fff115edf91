//! Errors of tessera-nn: every variant names the layer, parameter or file concerned.
use tessera_tensor::Shape;

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum Error {
    #[error(transparent)]
    Autograd(#[from] tessera_autograd::Error),
    #[error("{layer}: {why}")]
    Layer { layer: String, why: String },
    #[error("parameter {name}: cannot set a tensor of shape {got} where {expected} is expected")]
    ParamShape {
        name: String,
        expected: Shape,
        got: Shape,
    },
    #[error("loading a state dict: {}", describe_load(.missing, .unexpected, .mismatched))]
    StateDict {
        /// Names the module has and the state dict lacks.
        missing: Vec<String>,
        /// Names the state dict has and the module lacks.
        unexpected: Vec<String>,
        /// (name, the module's shape, the state dict's shape).
        mismatched: Vec<(String, Shape, Shape)>,
    },
    /// A checkpoint file could not be written or read: `why` says what is wrong with it.
    #[error("checkpoint {}: {why}", .path.display())]
    Checkpoint {
        path: std::path::PathBuf,
        why: String,
    },
}

impl From<tessera_tensor::Error> for Error {
    fn from(e: tessera_tensor::Error) -> Self {
        Error::Autograd(e.into())
    }
}

fn describe_load(
    missing: &[String],
    unexpected: &[String],
    mismatched: &[(String, Shape, Shape)],
) -> String {
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("missing {}", missing.join(", ")));
    }
    if !unexpected.is_empty() {
        parts.push(format!("unexpected {}", unexpected.join(", ")));
    }
    if !mismatched.is_empty() {
        let m: Vec<String> = mismatched
            .iter()
            .map(|(n, want, got)| format!("{n} (module {want}, file {got})"))
            .collect();
        parts.push(format!("mis-shaped {}", m.join(", ")));
    }
    parts.join("; ")
}

pub type Result<T> = std::result::Result<T, Error>;
