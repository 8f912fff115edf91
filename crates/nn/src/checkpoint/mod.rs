//! Checkpoints: tessera's native format, and safetensors import/export ([`safetensors`]).
//!
//! # The native format (version 1)
//!
//! ```text
//! offset  size  field
//!      0     8  magic: the bytes "TSRACKPT"
//!      8     4  format version, u32 little-endian (1)
//!     12     8  payload length in bytes, u64 little-endian
//!     20     4  CRC-32 (IEEE, as crc32fast computes it) of the payload, u32 little-endian
//!     24     …  payload: exactly `payload length` bytes, nothing after it
//! ```
//!
//! The payload holds the tensors by name (shape and little-endian f32 data), zero or more named
//! optimizer states ([`OptimizerState`]), and free-form string metadata; it is encoded by the
//! private `codec` module (serde + bincode 2, fixed-size little-endian integers), the only
//! place that knows the encoding.
//!
//! Writes are atomic: the bytes go to a temporary file in the destination's directory, which is
//! flushed to disk (fsync), renamed over the destination, and the directory is synced, so a
//! crash leaves either the old file or the new one. Reading checks the magic, the version, the
//! payload length against the file's size, the checksum, and then decodes with every length
//! bounded by the payload's size: a damaged or hostile file gives [`Error::Checkpoint`] naming
//! the file and the problem, never a panic or an allocation much larger than the file.
//!
//! # Example
//!
//! ```
//! use tessera_nn::checkpoint::{self, Checkpoint};
//! use tessera_nn::optim::{Adam, AdamConfig};
//! use tessera_nn::{Conv2d, Conv2dConfig, ModuleExt};
//! use tessera_tensor::Rng;
//!
//! # fn main() -> tessera_nn::Result<()> {
//! let dir = std::env::temp_dir().join(format!("tessera-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir).unwrap();
//! let mut rng = Rng::seed(0);
//! let net = Conv2d::new(Conv2dConfig::new(3, 8, 3), &mut rng)?;
//! let opt = Adam::new(net.named_params(), AdamConfig::new(2e-4))?;
//!
//! // Weights only.
//! checkpoint::save_module(dir.join("net.ckpt"), &net)?;
//! checkpoint::load_module(dir.join("net.ckpt"), &net)?;
//!
//! // A training state: weights, optimizer, epoch.
//! let mut ckpt = Checkpoint::new();
//! ckpt.add_module("G", &net);
//! ckpt.optimizers.insert("G".into(), opt.state());
//! ckpt.metadata.insert("epoch".into(), "12".into());
//! ckpt.save(dir.join("train.ckpt"))?;
//!
//! let back = Checkpoint::load(dir.join("train.ckpt"))?;
//! let fresh = Conv2d::new(Conv2dConfig::new(3, 8, 3), &mut rng)?;
//! back.load_module("G", &fresh)?;
//! let mut fresh_opt = Adam::new(fresh.named_params(), AdamConfig::default())?;
//! fresh_opt.load_state(&back.optimizers["G"])?;
//! assert_eq!(back.metadata["epoch"], "12");
//! # std::fs::remove_dir_all(&dir).unwrap();
//! # Ok(())
//! # }
//! ```
mod codec;
pub mod safetensors;

use crate::optim::OptimizerState;
use crate::{Error, Module, ModuleExt, Result};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use tessera_tensor::Tensor;

/// The first 8 bytes of a native checkpoint.
pub const MAGIC: [u8; 8] = *b"TSRACKPT";
/// The format version this build writes (and the newest it reads).
pub const FORMAT_VERSION: u32 = 1;
/// Bytes before the payload: magic, version, payload length, checksum.
pub const HEADER_LEN: usize = 24;

/// The contents of a native checkpoint.
#[derive(Clone, Debug, Default)]
pub struct Checkpoint {
    /// Tensors by name (state-dict names, optionally prefixed per module, see
    /// [`Checkpoint::add_module`]).
    pub tensors: BTreeMap<String, Tensor>,
    /// Optimizer states by a name of the caller's choosing (e.g. "G" and "D").
    pub optimizers: BTreeMap<String, OptimizerState>,
    /// Free-form key/value strings (epoch, configuration, provenance, …).
    pub metadata: BTreeMap<String, String>,
}

/// `Error::Checkpoint` for `path`.
pub(crate) fn checkpoint_error(path: &Path, why: impl Into<String>) -> Error {
    Error::Checkpoint {
        path: path.to_path_buf(),
        why: why.into(),
    }
}

impl Checkpoint {
    pub fn new() -> Checkpoint {
        Checkpoint::default()
    }

    /// A checkpoint holding `module`'s state dict under its own names.
    pub fn from_module<M: Module + ?Sized>(module: &M) -> Checkpoint {
        let mut c = Checkpoint::new();
        c.add_module("", module);
        c
    }

    /// Adds `module`'s state dict with every name prefixed by `prefix.` (no prefix when
    /// `prefix` is empty), so several modules can share one checkpoint.
    pub fn add_module<M: Module + ?Sized>(&mut self, prefix: &str, module: &M) {
        for (name, t) in module.state_dict() {
            self.tensors.insert(crate::join(prefix, &name), t);
        }
    }

    /// The tensors stored under `prefix.` with the prefix taken off (all tensors when `prefix`
    /// is empty).
    pub fn module_state(&self, prefix: &str) -> BTreeMap<String, Tensor> {
        if prefix.is_empty() {
            return self.tensors.clone();
        }
        let head = format!("{prefix}.");
        self.tensors
            .iter()
            .filter_map(|(k, t)| k.strip_prefix(&head).map(|n| (n.to_string(), t.clone())))
            .collect()
    }

    /// Loads the tensors under `prefix` into `module` strictly: every missing, unexpected or
    /// mis-shaped name is reported in one [`Error::StateDict`], and nothing changes unless all
    /// match.
    pub fn load_module<M: Module + ?Sized>(&self, prefix: &str, module: &M) -> Result<()> {
        load_into(module, self.module_state(prefix))
    }

    /// The whole file: header and payload.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let payload = codec::encode(self)?;
        let mut out = Vec::with_capacity(HEADER_LEN + payload.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&FORMAT_VERSION.to_le_bytes());
        out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        out.extend_from_slice(&payload);
        Ok(out)
    }

    /// Parses a whole file's bytes; `path` is only used to name the file in errors.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Checkpoint> {
        let err = |why: String| checkpoint_error(path, why);
        let n = bytes.len();
        let magic_len = n.min(MAGIC.len());
        if bytes[..magic_len] != MAGIC[..magic_len] {
            return Err(err(
                "not a tessera checkpoint (wrong magic bytes; a safetensors file loads with \
                 checkpoint::safetensors)"
                    .into(),
            ));
        }
        if n < HEADER_LEN {
            return Err(err(format!(
                "truncated: {n} bytes, shorter than the {HEADER_LEN}-byte header"
            )));
        }
        let version = u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes"));
        if version != FORMAT_VERSION {
            return Err(err(format!(
                "format version {version} is not supported (this build reads version \
                 {FORMAT_VERSION})"
            )));
        }
        let declared = u64::from_le_bytes(bytes[12..20].try_into().expect("8 bytes"));
        let held = (n - HEADER_LEN) as u64;
        if declared > held {
            return Err(err(format!(
                "truncated: the header declares {declared} payload bytes, the file holds {held}"
            )));
        }
        if declared < held {
            return Err(err(format!(
                "{} bytes of trailing data after the declared {declared}-byte payload",
                held - declared
            )));
        }
        let payload = &bytes[HEADER_LEN..];
        let stored = u32::from_le_bytes(bytes[20..24].try_into().expect("4 bytes"));
        let actual = crc32fast::hash(payload);
        if stored != actual {
            return Err(err(format!(
                "checksum mismatch (header {stored:08x}, payload {actual:08x}): the file is \
                 corrupt"
            )));
        }
        codec::decode(payload).map_err(|why| err(format!("payload: {why}")))
    }

    /// Writes the checkpoint atomically (see the module documentation).
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        write_atomic(path, &self.to_bytes()?)
    }

    /// Reads and verifies a checkpoint file.
    pub fn load(path: impl AsRef<Path>) -> Result<Checkpoint> {
        let path = path.as_ref();
        let bytes = read_file(path)?;
        Checkpoint::from_bytes(&bytes, path)
    }
}

/// Saves `module`'s state dict as a native checkpoint.
pub fn save_module<M: Module + ?Sized>(path: impl AsRef<Path>, module: &M) -> Result<()> {
    Checkpoint::from_module(module).save(path)
}

/// Loads a native checkpoint into `module` strictly: every missing, unexpected or mis-shaped
/// tensor is reported by name in one [`Error::StateDict`]; nothing changes unless all match.
pub fn load_module<M: Module + ?Sized>(path: impl AsRef<Path>, module: &M) -> Result<()> {
    Checkpoint::load(path)?.load_module("", module)
}

/// `module.load_state_dict(state, strict)`, with each tensor first moved to the device of the
/// module's tensor of the same name (files load onto the CPU).
pub(crate) fn load_into<M: Module + ?Sized>(
    module: &M,
    mut state: BTreeMap<String, Tensor>,
) -> Result<()> {
    for (name, current) in module.state_dict() {
        if let Some(t) = state.get_mut(&name) {
            if t.device() != current.device() {
                *t = t.to_device(current.device())?;
            }
        }
    }
    module.load_state_dict(&state, true)
}

pub(crate) fn read_file(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| checkpoint_error(path, format!("cannot read: {e}")))
}

/// Writes `bytes` to `path` through a temporary file in the same directory: write, fsync,
/// rename over `path`, fsync the directory. On failure the temporary file is removed and
/// `path` is untouched.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let file_name = path
        .file_name()
        .ok_or_else(|| checkpoint_error(path, "the path does not name a file"))?;
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = dir.join(format!(
        ".{}.tmp-{}-{}",
        file_name.to_string_lossy(),
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        drop(f);
        std::fs::rename(&tmp, path)?;
        sync_dir(&dir)
    })();
    result.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        checkpoint_error(path, format!("cannot write: {e}"))
    })
}

/// Makes a rename in `dir` durable.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> std::io::Result<()> {
    Ok(())
}
