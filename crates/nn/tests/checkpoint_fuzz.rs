//! Fuzz-style property tests of both loaders: random bytes, random truncations, single-bit
//! flips of valid files, and random payloads behind a valid native header. A loader must
//! return (an error, or for safetensors possibly a still-valid file), never panic, and never
//! ask for memory far beyond the input's size: this test binary's allocator records the
//! largest single allocation of each thread, and every case checks it against the input.
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::Path;

use proptest::prelude::*;
use tessera_nn::checkpoint::{safetensors as st, Checkpoint, HEADER_LEN, MAGIC};
use tessera_nn::optim::{Adam, AdamConfig};
use tessera_nn::{Error, Param};
use tessera_tensor::{Device, Rng, Tensor};

struct Recording;

thread_local! {
    static LARGEST: Cell<usize> = const { Cell::new(0) };
}

fn note(size: usize) {
    let _ = LARGEST.try_with(|c| c.set(c.get().max(size)));
}

unsafe impl GlobalAlloc for Recording {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc(layout)
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(layout.size());
        System.alloc_zeroed(layout)
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(new_size);
        System.realloc(ptr, layout, new_size)
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        System.dealloc(ptr, layout)
    }
}

#[global_allocator]
static ALLOCATOR: Recording = Recording;

/// The most a loader may ask for at once: twice the input (the decoder's limit is the next
/// power of two of the payload) plus 1 MiB (serde's cap on pre-reserved sequence capacity).
fn allocation_bound(input_len: usize) -> usize {
    2 * input_len.max(4096) + (1 << 20)
}

/// Runs `f` on this thread and returns its result with the largest allocation it made.
fn measured<R>(f: impl FnOnce() -> R) -> (R, usize) {
    LARGEST.with(|c| c.set(0));
    let r = f();
    (r, LARGEST.with(|c| c.get()))
}

fn load_native(bytes: &[u8]) -> (Result<Checkpoint, Error>, usize) {
    measured(|| Checkpoint::from_bytes(bytes, Path::new("fuzz.ckpt")))
}

#[allow(clippy::type_complexity)]
fn load_st(
    bytes: &[u8],
) -> (
    Result<(BTreeMap<String, Tensor>, BTreeMap<String, String>), Error>,
    usize,
) {
    measured(|| st::from_bytes(bytes, Path::new("fuzz.safetensors")))
}

/// Errors of the loaders are always `Error::Checkpoint` naming the file.
fn check_err<T>(r: &Result<T, Error>, file: &str) -> Result<(), TestCaseError> {
    if let Err(e) = r {
        match e {
            Error::Checkpoint { path, why } => {
                prop_assert_eq!(path.as_path(), Path::new(file));
                prop_assert!(!why.is_empty());
            }
            other => prop_assert!(false, "not a checkpoint error: {}", other),
        }
    }
    Ok(())
}

/// A small but complete native checkpoint (tensors, optimizer state, metadata).
fn valid_native() -> Vec<u8> {
    let mut rng = Rng::seed(7);
    let mut tensors = BTreeMap::new();
    for (name, shape) in [
        ("a.weight", vec![3, 2, 2]),
        ("a.bias", vec![3]),
        ("s", vec![]),
    ] {
        tensors.insert(
            name.to_string(),
            Tensor::randn(shape, 0.0, 1.0, &mut rng, Device::Cpu).unwrap(),
        );
    }
    let params: Vec<(String, Param)> = tensors
        .iter()
        .map(|(n, t)| (n.clone(), Param::new(t.clone())))
        .collect();
    let grads: Vec<Tensor> = params.iter().map(|(_, p)| p.tensor()).collect();
    let mut opt = Adam::new(params, AdamConfig::default()).unwrap();
    opt.step(&grads).unwrap();
    let mut ckpt = Checkpoint {
        tensors,
        ..Default::default()
    };
    ckpt.optimizers.insert("G".into(), opt.state());
    ckpt.metadata.insert("epoch".into(), "4".into());
    ckpt.to_bytes().unwrap()
}

fn valid_st() -> Vec<u8> {
    let mut rng = Rng::seed(8);
    let mut tensors = BTreeMap::new();
    for (name, shape) in [("conv.weight", vec![2, 1, 3]), ("conv.bias", vec![2])] {
        tensors.insert(
            name.to_string(),
            Tensor::randn(shape, 0.0, 1.0, &mut rng, Device::Cpu).unwrap(),
        );
    }
    let meta = BTreeMap::from([("format".to_string(), "pt".to_string())]);
    st::to_bytes(&tensors, Some(&meta)).unwrap()
}

fn framed(payload: &[u8]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

/// Bytes that are mostly small, sometimes 0xff (huge little-endian lengths), sometimes ASCII.
fn hostile_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            3 => any::<u8>(),
            1 => Just(0xffu8),
            1 => Just(0u8),
            1 => prop::sample::select(b"{}[]\":,FI3264dtypeshapedata_offsets".to_vec()),
        ],
        0..max,
    )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in hostile_bytes(600)) {
        let (r, largest) = load_native(&bytes);
        prop_assert!(r.is_err());
        check_err(&r, "fuzz.ckpt")?;
        prop_assert!(largest <= allocation_bound(bytes.len()), "{} bytes", largest);
        let (r, largest) = load_st(&bytes);
        check_err(&r, "fuzz.safetensors")?;
        prop_assert!(largest <= allocation_bound(bytes.len()), "{} bytes", largest);
    }

    #[test]
    fn random_payloads_behind_a_valid_native_header_never_panic(payload in hostile_bytes(600)) {
        let file = framed(&payload);
        let (r, largest) = load_native(&file);
        check_err(&r, "fuzz.ckpt")?;
        prop_assert!(largest <= allocation_bound(file.len()), "{} bytes", largest);
    }

    #[test]
    fn random_safetensors_headers_never_panic(
        header in hostile_bytes(300),
        data in 0usize..64,
        valid_prefix in any::<bool>(),
    ) {
        // Half of the cases start like a real header, so the JSON and validation are reached.
        let mut text = if valid_prefix { br#"{"t":{"dtype":"F32","shape":["#.to_vec() } else { vec![] };
        text.extend_from_slice(&header);
        let mut file = (text.len() as u64).to_le_bytes().to_vec();
        file.extend_from_slice(&text);
        file.extend(std::iter::repeat_n(0u8, data));
        let (r, largest) = load_st(&file);
        check_err(&r, "fuzz.safetensors")?;
        prop_assert!(largest <= allocation_bound(file.len()), "{} bytes", largest);
    }

    #[test]
    fn structured_safetensors_headers_never_panic(
        dtype in prop::sample::select(vec!["F32", "F16", "BF16", "F64", "I64", "U8", "BOOL", "F4", "X"]),
        shape in prop::collection::vec(prop_oneof![0u64..5, Just(u32::MAX as u64), Just(u64::MAX >> 1)], 0..4),
        start in 0u64..40,
        end in prop_oneof![0u64..40, Just(u64::MAX)],
        data in 0usize..48,
    ) {
        let dims: Vec<String> = shape.iter().map(u64::to_string).collect();
        let header = format!(
            r#"{{"t":{{"dtype":"{dtype}","shape":[{}],"data_offsets":[{start},{end}]}}}}"#,
            dims.join(",")
        );
        let mut file = (header.len() as u64).to_le_bytes().to_vec();
        file.extend_from_slice(header.as_bytes());
        file.extend(std::iter::repeat_n(0u8, data));
        let (r, largest) = load_st(&file);
        check_err(&r, "fuzz.safetensors")?;
        prop_assert!(largest <= allocation_bound(file.len()), "{} bytes", largest);
        if let Ok((t, _)) = &r {
            // Whatever loads is consistent: the shape accounts for the data.
            let n: usize = t["t"].dims().iter().product();
            prop_assert_eq!(t["t"].to_vec().unwrap().len(), n);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn truncated_files_are_errors(cut in any::<prop::sample::Index>()) {
        let good = valid_native();
        let n = cut.index(good.len());
        let (r, largest) = load_native(&good[..n]);
        prop_assert!(r.is_err());
        check_err(&r, "fuzz.ckpt")?;
        prop_assert!(largest <= allocation_bound(n));

        let good = valid_st();
        let n = cut.index(good.len());
        let (r, largest) = load_st(&good[..n]);
        prop_assert!(r.is_err());
        check_err(&r, "fuzz.safetensors")?;
        prop_assert!(largest <= allocation_bound(n));
    }

    #[test]
    fn single_bit_flips(at in any::<prop::sample::Index>(), bit in 0u8..8) {
        // Native: every flip is detected (header fields are checked, and CRC-32 catches every
        // single-bit error in the payload).
        let mut file = valid_native();
        let i = at.index(file.len());
        file[i] ^= 1 << bit;
        let (r, largest) = load_native(&file);
        prop_assert!(r.is_err(), "flip of bit {} of byte {} went unnoticed", bit, i);
        check_err(&r, "fuzz.ckpt")?;
        prop_assert!(largest <= allocation_bound(file.len()));

        // Safetensors has no checksum: a flip in the data is a different valid file. Either
        // way the loader answers without panicking.
        let mut file = valid_st();
        let i = at.index(file.len());
        file[i] ^= 1 << bit;
        let (r, largest) = load_st(&file);
        check_err(&r, "fuzz.safetensors")?;
        prop_assert!(largest <= allocation_bound(file.len()));
    }

    #[test]
    fn bit_flips_with_a_repaired_checksum_never_panic(
        flips in prop::collection::vec((any::<prop::sample::Index>(), 0u8..8), 1..4),
    ) {
        // The decoder itself meets damaged lengths, names and shapes.
        let good = valid_native();
        let mut payload = good[HEADER_LEN..].to_vec();
        for (at, bit) in &flips {
            let i = at.index(payload.len());
            payload[i] ^= 1 << bit;
        }
        let file = framed(&payload);
        let (r, largest) = load_native(&file);
        check_err(&r, "fuzz.ckpt")?;
        prop_assert!(largest <= allocation_bound(file.len()), "{} bytes", largest);
        if let Ok(ckpt) = r {
            for t in ckpt.tensors.values() {
                prop_assert_eq!(t.to_vec().unwrap().len(), t.dims().iter().product::<usize>());
            }
        }
    }
}

#[test]
fn the_allocation_bound_holds_for_a_file_claiming_a_huge_string() {
    // Sanity check of the recording allocator and of the limit: a 2^40-byte name length.
    let mut payload = 1u64.to_le_bytes().to_vec();
    payload.extend_from_slice(&(1u64 << 40).to_le_bytes());
    let file = framed(&payload);
    let (r, largest) = load_native(&file);
    assert!(r.is_err());
    assert!(largest <= allocation_bound(file.len()), "{largest}");
    // And the recorder does record: loading a valid file allocates its tensors.
    let good = valid_native();
    let (r, largest) = load_native(&good);
    assert!(r.is_ok());
    assert!(largest > 0);
}
