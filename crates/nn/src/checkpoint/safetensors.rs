//! safetensors import and export of state dicts under PyTorch's names, so weights move both
//! ways between tessera and PyTorch (`safetensors.torch.load_file` / `save_file`).
//!
//! Export writes float32 tensors and the metadata `{"format": "pt"}` (what the Hugging Face
//! tools write for PyTorch weights); the bytes are those `safetensors.torch.save_file` writes
//! for the same tensors and metadata. Import accepts F32, and converts F16, BF16 and F64 to
//! f32 (F64 rounds to nearest); any other dtype is an [`Error::Checkpoint`] naming the tensor.
//! The `safetensors` crate validates the header (its size, JSON, offsets against the file); the
//! shape of each tensor is checked against its bytes again here before anything is allocated.
use super::{checkpoint_error, load_into, read_file, write_atomic};
use crate::{Error, Module, ModuleExt, Result};
use safetensors::tensor::TensorView;
use safetensors::{Dtype, SafeTensors};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use tessera_tensor::{Device, Tensor};

/// The file's bytes for `tensors` (f32) and optional string metadata.
///
/// The `safetensors` crate writes the metadata map in hash order: with more than one metadata
/// entry the bytes (not the contents) may differ from run to run.
pub fn to_bytes(
    tensors: &BTreeMap<String, Tensor>,
    metadata: Option<&BTreeMap<String, String>>,
) -> Result<Vec<u8>> {
    let mut raw: Vec<(&str, Vec<usize>, Vec<u8>)> = Vec::with_capacity(tensors.len());
    for (name, t) in tensors {
        let mut bytes = Vec::with_capacity(t.numel() * 4);
        for v in t.to_vec()? {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        raw.push((name, t.dims().to_vec(), bytes));
    }
    let mut views = Vec::with_capacity(raw.len());
    for (name, shape, bytes) in &raw {
        let view = TensorView::new(Dtype::F32, shape.clone(), bytes).map_err(|e| Error::Layer {
            layer: "safetensors export".into(),
            why: format!("tensor {name}: {e}"),
        })?;
        views.push((*name, view));
    }
    let info: Option<HashMap<String, String>> =
        metadata.map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect());
    safetensors::serialize(views, info).map_err(|e| Error::Layer {
        layer: "safetensors export".into(),
        why: e.to_string(),
    })
}

/// The tensors (as f32, on the CPU) and metadata of a safetensors file's bytes; `path` is only
/// used to name the file in errors.
#[allow(clippy::type_complexity)]
pub fn from_bytes(
    bytes: &[u8],
    path: &Path,
) -> Result<(BTreeMap<String, Tensor>, BTreeMap<String, String>)> {
    let err = |why: String| checkpoint_error(path, why);
    let (header_len, header) = SafeTensors::read_metadata(bytes)
        .map_err(|e| err(format!("not a valid safetensors file: {e}")))?;
    // read_metadata has checked that the offsets tile the rest of the file; slicing with `get`
    // still keeps a violation from panicking.
    let data = header_len
        .checked_add(8)
        .and_then(|start| bytes.get(start..))
        .ok_or_else(|| err("the header runs past the end of the file".into()))?;
    let mut tensors = BTreeMap::new();
    for (name, info) in header.tensors() {
        let (start, end) = info.data_offsets;
        let t = data
            .get(start..end)
            .ok_or_else(|| format!("data offsets {start}..{end} lie outside the file"))
            .and_then(|raw| tensor(info.dtype, &info.shape, raw))
            .map_err(|why| err(format!("tensor {name}: {why}")))?;
        tensors.insert(name, t);
    }
    let metadata = header
        .metadata()
        .as_ref()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .unwrap_or_default();
    Ok((tensors, metadata))
}

/// One tensor as f32, after checking its shape against its bytes.
fn tensor(dtype: Dtype, shape: &[usize], data: &[u8]) -> std::result::Result<Tensor, String> {
    let width = match dtype {
        Dtype::F32 => 4,
        Dtype::F16 | Dtype::BF16 => 2,
        Dtype::F64 => 8,
        other => {
            return Err(format!(
                "dtype {other:?} is not supported (F32, F16, BF16 and F64 load as f32)"
            ))
        }
    };
    let numel = shape
        .iter()
        .try_fold(1usize, |n, &d| n.checked_mul(d))
        .ok_or_else(|| format!("shape {shape:?} overflows"))?;
    if numel.checked_mul(width) != Some(data.len()) {
        return Err(format!(
            "shape {shape:?} of {dtype:?} needs {numel} values, the file holds {} bytes",
            data.len()
        ));
    }
    let values: Vec<f32> = match dtype {
        Dtype::F32 => data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect(),
        Dtype::F16 => data
            .chunks_exact(2)
            .map(|b| f16_to_f32(u16::from_le_bytes([b[0], b[1]])))
            .collect(),
        Dtype::BF16 => data
            .chunks_exact(2)
            .map(|b| f32::from_bits((u16::from_le_bytes([b[0], b[1]]) as u32) << 16))
            .collect(),
        _ => data
            .chunks_exact(8)
            .map(|b| f64::from_le_bytes(b.try_into().expect("8 bytes")) as f32)
            .collect(),
    };
    Tensor::from_vec(values, shape.to_vec(), Device::Cpu).map_err(|e| e.to_string())
}

/// IEEE half precision to single (exact: every f16 value is an f32 value).
pub fn f16_to_f32(h: u16) -> f32 {
    let sign = ((h >> 15) as u32) << 31;
    let exp = ((h >> 10) & 0x1f) as u32;
    let frac = (h & 0x3ff) as u32;
    let bits = match (exp, frac) {
        (0, 0) => sign,
        // Subnormal: frac · 2^-24, normalised for f32.
        (0, _) => {
            let shift = frac.leading_zeros() - 21; // brings the top set bit to bit 10
            let frac = (frac << shift) & 0x3ff;
            let exp = 127 - 15 + 1 - shift;
            sign | (exp << 23) | (frac << 13)
        }
        (0x1f, 0) => sign | 0x7f80_0000,
        (0x1f, _) => sign | 0x7fc0_0000 | (frac << 13),
        _ => sign | ((exp + 127 - 15) << 23) | (frac << 13),
    };
    f32::from_bits(bits)
}

/// Writes `tensors` as a safetensors file, atomically, with `metadata`.
pub fn save_state_dict(
    path: impl AsRef<Path>,
    tensors: &BTreeMap<String, Tensor>,
    metadata: Option<&BTreeMap<String, String>>,
) -> Result<()> {
    let path = path.as_ref();
    let bytes = to_bytes(tensors, metadata).map_err(|e| checkpoint_error(path, e.to_string()))?;
    write_atomic(path, &bytes)
}

/// Reads every tensor of a safetensors file as f32.
pub fn load_state_dict(path: impl AsRef<Path>) -> Result<BTreeMap<String, Tensor>> {
    let path = path.as_ref();
    Ok(from_bytes(&read_file(path)?, path)?.0)
}

/// Saves `module`'s state dict (PyTorch names) as safetensors, with the metadata
/// `{"format": "pt"}`: `safetensors.torch.load_file` reads it, and `module.load_state_dict`
/// of the PyTorch twin accepts it.
pub fn save_module<M: Module + ?Sized>(path: impl AsRef<Path>, module: &M) -> Result<()> {
    let meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    save_state_dict(path, &module.state_dict(), Some(&meta))
}

/// Loads a safetensors file (e.g. from PyTorch's `save_file(model.state_dict(), path)`) into
/// `module` strictly: every missing, unexpected or mis-shaped tensor is reported by name in one
/// [`Error::StateDict`]; nothing changes unless all match.
pub fn load_module<M: Module + ?Sized>(path: impl AsRef<Path>, module: &M) -> Result<()> {
    load_into(module, load_state_dict(path)?)
}

#[cfg(test)]
mod tests {
    use super::f16_to_f32;

    #[test]
    fn f16_conversion_covers_every_class() {
        assert_eq!(f16_to_f32(0x0000), 0.0);
        assert!(f16_to_f32(0x8000).is_sign_negative());
        assert_eq!(f16_to_f32(0x3c00), 1.0);
        assert_eq!(f16_to_f32(0xc000), -2.0);
        assert_eq!(f16_to_f32(0x7bff), 65504.0);
        assert_eq!(f16_to_f32(0x0001), 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x03ff), 1023.0 * 2f32.powi(-24));
        assert_eq!(f16_to_f32(0x0200), 2f32.powi(-15));
        assert_eq!(f16_to_f32(0x7c00), f32::INFINITY);
        assert_eq!(f16_to_f32(0xfc00), f32::NEG_INFINITY);
        assert!(f16_to_f32(0x7e00).is_nan());
        // Finite values convert in increasing order.
        for h in 0u16..0x7c00 {
            let f = f16_to_f32(h);
            let back = f16_to_f32(h + 1);
            assert!(back > f, "{h:#x}");
        }
    }
}
