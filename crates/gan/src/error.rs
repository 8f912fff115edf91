//! Errors of tessera-gan: every variant names the loss or the weight file concerned.
use crate::Result;
use tessera_autograd::Var;

#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum Error {
    #[error(transparent)]
    Nn(#[from] tessera_nn::Error),
    #[error(transparent)]
    Autograd(#[from] tessera_autograd::Error),
    /// The inputs of a loss do not fit together (shapes, list lengths, empty inputs, bad λ or
    /// mixing coefficients).
    #[error("{loss}: {why}")]
    InvalidInput { loss: String, why: String },
    /// A loss evaluated to NaN or ±∞ (the first non-finite element is `value`).
    #[error("{loss}: the loss is not finite ({value})")]
    NonFinite { loss: String, value: f32 },
    /// A weight file could not be read or parsed.
    #[error("weights {file}: {why}")]
    WeightFile { file: String, why: String },
    /// A weight file lacks tensors, or holds them with the wrong shape or dtype; every problem
    /// is listed, each naming its tensor.
    #[error("weights {file}: {}", describe_weights(.missing, .mismatched, .wrong_dtype))]
    Weights {
        file: String,
        /// Names the model needs and the file lacks.
        missing: Vec<String>,
        /// (name, expected shape, shape in the file).
        mismatched: Vec<(String, Vec<usize>, Vec<usize>)>,
        /// (name, dtype in the file); only float32 is read.
        wrong_dtype: Vec<(String, String)>,
    },
}

impl From<tessera_tensor::Error> for Error {
    fn from(e: tessera_tensor::Error) -> Self {
        Error::Autograd(e.into())
    }
}

fn describe_weights(
    missing: &[String],
    mismatched: &[(String, Vec<usize>, Vec<usize>)],
    wrong_dtype: &[(String, String)],
) -> String {
    let mut parts = Vec::new();
    if !missing.is_empty() {
        parts.push(format!("missing {}", missing.join(", ")));
    }
    if !mismatched.is_empty() {
        let m: Vec<String> = mismatched
            .iter()
            .map(|(n, want, got)| format!("{n} (expected {want:?}, file {got:?})"))
            .collect();
        parts.push(format!("mis-shaped {}", m.join(", ")));
    }
    if !wrong_dtype.is_empty() {
        let m: Vec<String> = wrong_dtype
            .iter()
            .map(|(n, d)| format!("{n} ({d}, expected F32)"))
            .collect();
        parts.push(format!("wrong dtype {}", m.join(", ")));
    }
    parts.join("; ")
}

pub(crate) fn invalid(loss: &str, why: impl Into<String>) -> Error {
    Error::InvalidInput {
        loss: loss.to_string(),
        why: why.into(),
    }
}

/// Returns `value` if every element is finite, else [`Error::NonFinite`] naming `loss` and the
/// first non-finite element. Every loss of this crate passes its result through this check; use
/// it for totals composed by hand. (It reads the value back from the device.)
pub fn check_finite(loss: &str, value: Var) -> Result<Var> {
    let host = value.value().to_vec()?;
    match host.iter().find(|v| !v.is_finite()) {
        Some(&bad) => Err(Error::NonFinite {
            loss: loss.to_string(),
            value: bad,
        }),
        None => Ok(value),
    }
}

/// Whether `value` holds only finite numbers: the non-failing form of [`check_finite`].
pub fn is_finite(value: &Var) -> Result<bool> {
    Ok(value.value().to_vec()?.iter().all(|v| v.is_finite()))
}
