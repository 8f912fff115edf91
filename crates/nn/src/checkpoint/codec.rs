//! The payload of the native format: serde types encoded with bincode 2. All of tessera's use
//! of bincode is in this file, so the encoding can change without touching callers.
//!
//! Encoding: `bincode::config::standard()` with fixed-size little-endian integers (so every
//! length is 8 bytes and the bytes decoding claims equal the bytes it consumes). Tensor data is
//! one byte string of little-endian f32 values. Decoding runs with a byte limit (bincode's
//! `with_limit`) of the smallest power of two at least as large as the payload (and at least
//! 4 KiB): no length read from the file can make the decoder reserve more than twice the
//! payload's size for a string or byte string, and sequences of records start from serde's
//! capped capacity (1 MiB) and grow only with records actually present.
use super::Checkpoint;
use crate::optim::OptimizerState;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use tessera_tensor::{Device, Tensor};

/// Version 1 of the payload.
#[derive(Serialize, Deserialize)]
struct Payload {
    tensors: Vec<TensorRecord>,
    optimizers: Vec<OptimizerRecord>,
    metadata: Vec<(String, String)>,
}

#[derive(Serialize, Deserialize)]
struct TensorRecord {
    name: String,
    shape: Vec<u64>,
    data: F32Bytes,
}

#[derive(Serialize, Deserialize)]
struct OptimizerRecord {
    name: String,
    kind: String,
    hyper: Vec<(String, f64)>,
    tensors: Vec<TensorRecord>,
    counters: Vec<(String, u64)>,
}

/// f32 values as one little-endian byte string (serde `bytes`, not a sequence of floats).
struct F32Bytes(Vec<u8>);

impl Serialize for F32Bytes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.0)
    }
}

impl<'de> Deserialize<'de> for F32Bytes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = F32Bytes;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a byte string of f32 values")
            }
            fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<F32Bytes, E> {
                Ok(F32Bytes(v))
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<F32Bytes, E> {
                Ok(F32Bytes(v.to_vec()))
            }
        }
        d.deserialize_byte_buf(Visitor)
    }
}

fn config() -> bincode::config::Configuration<
    bincode::config::LittleEndian,
    bincode::config::Fixint,
    bincode::config::NoLimit,
> {
    bincode::config::standard()
        .with_little_endian()
        .with_fixed_int_encoding()
}

fn tensor_record(name: &str, t: &Tensor) -> crate::Result<TensorRecord> {
    let values = t.to_vec()?;
    let mut data = Vec::with_capacity(values.len() * 4);
    for v in values {
        data.extend_from_slice(&v.to_le_bytes());
    }
    Ok(TensorRecord {
        name: name.to_string(),
        shape: t.dims().iter().map(|&d| d as u64).collect(),
        data: F32Bytes(data),
    })
}

/// The payload bytes of `ckpt`. Only reading tensors can fail (a tensor on a device that cannot
/// be read back).
pub(super) fn encode(ckpt: &Checkpoint) -> crate::Result<Vec<u8>> {
    let tensors = ckpt
        .tensors
        .iter()
        .map(|(n, t)| tensor_record(n, t))
        .collect::<crate::Result<_>>()?;
    let optimizers = ckpt
        .optimizers
        .iter()
        .map(|(name, o)| {
            Ok(OptimizerRecord {
                name: name.clone(),
                kind: o.kind.clone(),
                hyper: o.hyper.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                tensors: o
                    .tensors
                    .iter()
                    .map(|(n, t)| tensor_record(n, t))
                    .collect::<crate::Result<_>>()?,
                counters: o.counters.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            })
        })
        .collect::<crate::Result<_>>()?;
    let payload = Payload {
        tensors,
        optimizers,
        metadata: ckpt
            .metadata
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
    };
    // Encoding plain data into a Vec cannot fail; a failure would be a bug in this file.
    bincode::serde::encode_to_vec(&payload, config()).map_err(|e| crate::Error::Layer {
        layer: "checkpoint encoder".into(),
        why: e.to_string(),
    })
}

/// Runs the decoder with the smallest power-of-two byte limit ≥ the payload's length.
macro_rules! decode_limited {
    ($bytes:expr, $bits:expr, [$($b:literal),*]) => {
        match $bits {
            $($b => bincode::serde::decode_from_slice::<Payload, _>(
                $bytes,
                config().with_limit::<{ 1usize << $b }>(),
            ),)*
            _ => return Err(format!("payload of {} bytes is too large to decode", $bytes.len())),
        }
    };
}

fn describe(e: bincode::error::DecodeError) -> String {
    use bincode::error::DecodeError as D;
    match e {
        D::LimitExceeded => "a length field exceeds the size of the file".to_string(),
        D::UnexpectedEnd { additional } => {
            format!("the payload ends early ({additional} more bytes needed)")
        }
        D::OutsideUsizeRange(v) => format!("a length field ({v}) does not fit in memory"),
        other => format!("malformed payload: {other}"),
    }
}

/// Decodes and validates a payload; the error says what is wrong (the caller adds the path).
pub(super) fn decode(bytes: &[u8]) -> Result<Checkpoint, String> {
    let bits = bytes
        .len()
        .max(1 << 12)
        .next_power_of_two()
        .trailing_zeros();
    let decoded = decode_limited!(
        bytes,
        bits,
        [
            12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33,
            34, 35, 36, 37, 38, 39, 40, 41, 42, 43, 44, 45, 46, 47
        ]
    );
    let (payload, used) = decoded.map_err(describe)?;
    if used != bytes.len() {
        return Err(format!(
            "{} bytes of trailing data after the payload",
            bytes.len() - used
        ));
    }
    let tensors = tensor_map(payload.tensors, "")?;
    let mut optimizers = BTreeMap::new();
    for o in payload.optimizers {
        let what = format!("optimizer {}: ", o.name);
        let state = OptimizerState {
            kind: o.kind,
            hyper: unique(o.hyper, &what)?,
            tensors: tensor_map(o.tensors, &what)?,
            counters: unique(o.counters, &what)?,
        };
        if optimizers.insert(o.name.clone(), state).is_some() {
            return Err(format!("optimizer {} is stored twice", o.name));
        }
    }
    let metadata = unique(payload.metadata, "metadata: ")?;
    Ok(Checkpoint {
        tensors,
        optimizers,
        metadata,
    })
}

fn unique<V>(pairs: Vec<(String, V)>, what: &str) -> Result<BTreeMap<String, V>, String> {
    let mut out = BTreeMap::new();
    for (k, v) in pairs {
        if out.contains_key(&k) {
            return Err(format!("{what}{k} is stored twice"));
        }
        out.insert(k, v);
    }
    Ok(out)
}

fn tensor_map(records: Vec<TensorRecord>, what: &str) -> Result<BTreeMap<String, Tensor>, String> {
    let mut out = BTreeMap::new();
    for r in records {
        if out.contains_key(&r.name) {
            return Err(format!("{what}tensor {} is stored twice", r.name));
        }
        let t = tensor(&r).map_err(|why| format!("{what}tensor {}: {why}", r.name))?;
        out.insert(r.name, t);
    }
    Ok(out)
}

/// A tensor from its record, checking the shape against the data (in the order
/// `Shape::numel` multiplies, so it cannot overflow later).
fn tensor(r: &TensorRecord) -> Result<Tensor, String> {
    let mut dims = Vec::with_capacity(r.shape.len());
    let mut numel = 1usize;
    for &d in &r.shape {
        let d = usize::try_from(d).map_err(|_| format!("dimension {d} does not fit in memory"))?;
        numel = numel
            .checked_mul(d)
            .ok_or_else(|| format!("shape {:?} overflows", r.shape))?;
        dims.push(d);
    }
    let data = &r.data.0;
    if numel.checked_mul(4) != Some(data.len()) {
        return Err(format!(
            "shape {:?} needs {numel} f32 values, the file holds {} bytes",
            r.shape,
            data.len()
        ));
    }
    let values: Vec<f32> = data
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Tensor::from_vec(values, dims, Device::Cpu).map_err(|e| e.to_string())
}
