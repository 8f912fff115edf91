//! Checkpoints: round trips of both formats, resuming training, load errors that list every
//! name, atomic writes, and typed errors for damaged or hostile files.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tessera_autograd::Var;
use tessera_nn::checkpoint::{self, safetensors as st, Checkpoint, HEADER_LEN, MAGIC};
use tessera_nn::optim::{Adam, AdamConfig};
use tessera_nn::{join, Buffer, Conv2d, Conv2dConfig, Entry, Error, Module, ModuleExt, Param};
use tessera_tensor::{Device, Rng, Tensor};

/// A conv, a free parameter and a buffer, under nested names.
struct Tiny {
    conv: Conv2d,
    scale: Param,
    stats: Buffer,
}

impl Tiny {
    fn new(seed: u64, channels: usize) -> Tiny {
        let mut rng = Rng::seed(seed);
        Tiny {
            conv: Conv2d::new(Conv2dConfig::new(channels, 3, 3).padding(1), &mut rng).unwrap(),
            scale: Param::new(Tensor::randn([3], 1.0, 0.1, &mut rng, Device::Cpu).unwrap()),
            stats: Buffer::new(Tensor::randn([3], 0.0, 1.0, &mut rng, Device::Cpu).unwrap()),
        }
    }
    fn loss(&self, x: &Var) -> Var {
        let y = self.conv.forward(x).unwrap();
        let s = self.scale.var().reshape([1, 3, 1, 1]).unwrap();
        y.mul(&s)
            .unwrap()
            .tanh()
            .unwrap()
            .sqr()
            .unwrap()
            .mean_all()
            .unwrap()
    }
}

impl Module for Tiny {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.conv.visit(&join(prefix, "body.conv"), f);
        f(&join(prefix, "scale"), Entry::Param(&self.scale));
        f(&join(prefix, "stats.running"), Entry::Buffer(&self.stats));
    }
    fn set_training(&mut self, _training: bool) {}
}

fn bits(t: &Tensor) -> Vec<u32> {
    t.to_vec().unwrap().iter().map(|v| v.to_bits()).collect()
}

fn assert_same_state(a: &dyn Module, b: &dyn Module) {
    let (sa, sb) = (a.state_dict(), b.state_dict());
    assert_eq!(sa.keys().collect::<Vec<_>>(), sb.keys().collect::<Vec<_>>());
    for (k, t) in &sa {
        assert_eq!(t.dims(), sb[k].dims(), "{k}");
        assert_eq!(bits(t), bits(&sb[k]), "{k}");
    }
}

/// A fresh directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let dir = std::env::temp_dir().join(format!("tessera-ckpt-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
    fn entries(&self) -> Vec<String> {
        let mut v: Vec<String> = std::fs::read_dir(&self.0)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn input() -> Var {
    let mut rng = Rng::seed(99);
    Var::constant(Tensor::randn([2, 2, 5, 5], 0.0, 1.0, &mut rng, Device::Cpu).unwrap())
}

#[test]
fn native_round_trip_is_bit_identical() {
    let dir = TempDir::new("native");
    let a = Tiny::new(1, 2);
    let b = Tiny::new(2, 2);
    checkpoint::save_module(dir.path("m.ckpt"), &a).unwrap();
    checkpoint::load_module(dir.path("m.ckpt"), &b).unwrap();
    assert_same_state(&a, &b);
    // Overwriting works and leaves no temporary file behind.
    checkpoint::save_module(dir.path("m.ckpt"), &b).unwrap();
    assert_eq!(dir.entries(), ["m.ckpt"]);
}

#[test]
fn safetensors_round_trip_is_bit_identical() {
    let dir = TempDir::new("st");
    let a = Tiny::new(3, 2);
    let b = Tiny::new(4, 2);
    st::save_module(dir.path("m.safetensors"), &a).unwrap();
    st::load_module(dir.path("m.safetensors"), &b).unwrap();
    assert_same_state(&a, &b);
    assert_eq!(dir.entries(), ["m.safetensors"]);
    let bytes = std::fs::read(dir.path("m.safetensors")).unwrap();
    let (tensors, meta) = st::from_bytes(&bytes, Path::new("m")).unwrap();
    assert_eq!(meta["format"], "pt");
    assert_eq!(
        tensors.keys().collect::<Vec<_>>(),
        [
            "body.conv.bias",
            "body.conv.weight",
            "scale",
            "stats.running"
        ]
    );
}

#[test]
fn special_values_survive_both_formats() {
    let values = vec![
        0.0,
        -0.0,
        f32::INFINITY,
        f32::NEG_INFINITY,
        f32::from_bits(0x7fc0_1234),
        f32::MIN_POSITIVE / 8.0,
        f32::MAX,
        -1.5,
    ];
    let mut tensors = BTreeMap::new();
    tensors.insert(
        "special".to_string(),
        Tensor::from_vec(values.clone(), [2, 4], Device::Cpu).unwrap(),
    );
    tensors.insert(
        "empty".to_string(),
        Tensor::zeros([0, 3], Device::Cpu).unwrap(),
    );
    tensors.insert(
        "scalar".to_string(),
        Tensor::scalar(7.0, Device::Cpu).unwrap(),
    );
    let ckpt = Checkpoint {
        tensors: tensors.clone(),
        ..Default::default()
    };
    let native = Checkpoint::from_bytes(&ckpt.to_bytes().unwrap(), Path::new("x")).unwrap();
    let st_bytes = st::to_bytes(&tensors, None).unwrap();
    let (from_st, _) = st::from_bytes(&st_bytes, Path::new("x")).unwrap();
    for back in [&native.tensors, &from_st] {
        for (k, t) in &tensors {
            assert_eq!(back[k].dims(), t.dims(), "{k}");
            assert_eq!(bits(&back[k]), bits(t), "{k}");
        }
    }
}

#[test]
fn resuming_from_a_checkpoint_gives_the_identical_next_steps() {
    let dir = TempDir::new("resume");
    let x = input();
    let config = AdamConfig::new(1e-2).betas(0.5, 0.999).weight_decay(1e-3);
    let g = Tiny::new(5, 2);
    let d = Tiny::new(6, 2);
    let mut opt_g = Adam::new(g.named_params(), config).unwrap();
    let mut opt_d = Adam::new(d.named_params(), config.betas(0.0, 0.9)).unwrap();
    let step = |m: &Tiny, opt: &mut Adam| {
        m.loss(&x).backward().unwrap();
        opt.step_from_backward().unwrap();
    };
    for _ in 0..3 {
        step(&g, &mut opt_g);
        step(&d, &mut opt_d);
    }
    let mut ckpt = Checkpoint::new();
    ckpt.add_module("G", &g);
    ckpt.add_module("D", &d);
    ckpt.optimizers.insert("G".into(), opt_g.state());
    ckpt.optimizers.insert("D".into(), opt_d.state());
    ckpt.metadata.insert("epoch".into(), "3".into());
    ckpt.metadata
        .insert("note".into(), "ünïcode = fine; \n too".into());
    ckpt.save(dir.path("train.ckpt")).unwrap();

    // The original run goes on ...
    for _ in 0..2 {
        step(&g, &mut opt_g);
        step(&d, &mut opt_d);
    }
    // ... and a fresh process resumes from the file.
    let back = Checkpoint::load(dir.path("train.ckpt")).unwrap();
    assert_eq!(back.metadata["epoch"], "3");
    assert_eq!(back.metadata["note"], "ünïcode = fine; \n too");
    let g2 = Tiny::new(7, 2);
    let d2 = Tiny::new(8, 2);
    back.load_module("G", &g2).unwrap();
    back.load_module("D", &d2).unwrap();
    let mut opt_g2 = Adam::new(g2.named_params(), AdamConfig::default()).unwrap();
    let mut opt_d2 = Adam::new(d2.named_params(), AdamConfig::default()).unwrap();
    opt_g2.load_state(&back.optimizers["G"]).unwrap();
    opt_d2.load_state(&back.optimizers["D"]).unwrap();
    assert_eq!(opt_d2.config().betas, (0.0, 0.9));
    for _ in 0..2 {
        step(&g2, &mut opt_g2);
        step(&d2, &mut opt_d2);
    }
    assert_same_state(&g, &g2);
    assert_same_state(&d, &d2);
    assert_eq!(opt_g2.step_count("scale"), Some(5));
}

/// A module whose names overlap `Tiny`'s only in part: conv weight of another shape, no
/// `scale`, and an extra `extra` parameter.
struct Other {
    conv: Conv2d,
    extra: Param,
    stats: Buffer,
}

impl Module for Other {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.conv.visit(&join(prefix, "body.conv"), f);
        f(&join(prefix, "extra"), Entry::Param(&self.extra));
        f(&join(prefix, "stats.running"), Entry::Buffer(&self.stats));
    }
    fn set_training(&mut self, _training: bool) {}
}

fn check_every_name_reported(e: Error) {
    match e {
        Error::StateDict {
            missing,
            unexpected,
            mismatched,
        } => {
            assert_eq!(missing, ["extra"]);
            assert_eq!(unexpected, ["scale"]);
            let names: Vec<&str> = mismatched.iter().map(|(n, _, _)| n.as_str()).collect();
            assert_eq!(names, ["body.conv.weight"]);
            assert_eq!(mismatched[0].1.dims(), [3, 4, 3, 3]);
            assert_eq!(mismatched[0].2.dims(), [3, 2, 3, 3]);
        }
        e => panic!("expected a state-dict error, got {e}"),
    }
}

#[test]
fn loading_a_mismatched_module_lists_every_name_and_changes_nothing() {
    let dir = TempDir::new("mismatch");
    let src = Tiny::new(9, 2);
    checkpoint::save_module(dir.path("m.ckpt"), &src).unwrap();
    st::save_module(dir.path("m.safetensors"), &src).unwrap();
    let mut rng = Rng::seed(10);
    let other = Other {
        conv: Conv2d::new(Conv2dConfig::new(4, 3, 3).padding(1), &mut rng).unwrap(),
        extra: Param::new(Tensor::zeros([2], Device::Cpu).unwrap()),
        stats: Buffer::new(Tensor::zeros([3], Device::Cpu).unwrap()),
    };
    let before = other.state_dict();
    check_every_name_reported(checkpoint::load_module(dir.path("m.ckpt"), &other).unwrap_err());
    check_every_name_reported(st::load_module(dir.path("m.safetensors"), &other).unwrap_err());
    let e = checkpoint::load_module(dir.path("m.ckpt"), &other).unwrap_err();
    let text = e.to_string();
    for name in ["extra", "scale", "body.conv.weight"] {
        assert!(text.contains(name), "{text}");
    }
    // Nothing was loaded, not even the matching buffer.
    for (k, t) in other.state_dict() {
        assert_eq!(bits(&t), bits(&before[&k]), "{k}");
    }
}

#[test]
fn module_state_strips_prefixes() {
    let a = Tiny::new(11, 2);
    let mut ckpt = Checkpoint::new();
    ckpt.add_module("net", &a);
    ckpt.tensors
        .insert("network.x".into(), Tensor::zeros([1], Device::Cpu).unwrap());
    let names: Vec<String> = ckpt.module_state("net").into_keys().collect();
    assert_eq!(
        names,
        [
            "body.conv.bias",
            "body.conv.weight",
            "scale",
            "stats.running"
        ]
    );
    assert_eq!(ckpt.module_state("").len(), 5);
}

fn valid_native() -> Vec<u8> {
    let mut ckpt = Checkpoint::from_module(&Tiny::new(12, 2));
    let mut opt = Adam::new(Tiny::new(13, 2).named_params(), AdamConfig::default()).unwrap();
    let grads: Vec<Tensor> = opt
        .named_params()
        .iter()
        .map(|(_, p)| Tensor::ones(p.shape(), Device::Cpu).unwrap())
        .collect();
    opt.step(&grads).unwrap();
    ckpt.optimizers.insert("opt".into(), opt.state());
    ckpt.metadata.insert("k".into(), "v".into());
    ckpt.to_bytes().unwrap()
}

/// A native file around `payload`, with a correct length and checksum.
fn framed(payload: &[u8]) -> Vec<u8> {
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&(payload.len() as u64).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
    out
}

fn native_err(bytes: &[u8]) -> String {
    match Checkpoint::from_bytes(bytes, Path::new("/some/dir/model.ckpt")) {
        Err(Error::Checkpoint { path, why }) => {
            assert_eq!(path, Path::new("/some/dir/model.ckpt"));
            why
        }
        Err(e) => panic!("expected a checkpoint error, got {e}"),
        Ok(_) => panic!("a damaged file loaded"),
    }
}

#[test]
fn damaged_native_files_give_typed_errors() {
    let good = valid_native();
    assert!(Checkpoint::from_bytes(&good, Path::new("ok")).is_ok());

    assert!(native_err(b"").contains("truncated"));
    assert!(native_err(&good[..10]).contains("truncated"));
    assert!(native_err(&good[..good.len() - 1]).contains("truncated"));
    assert!(native_err(b"{\"__metadata__\"").contains("magic"));
    let mut longer = good.clone();
    longer.push(0);
    assert!(native_err(&longer).contains("trailing"));

    let mut version = good.clone();
    version[8] = 2;
    assert!(native_err(&version).contains("format version 2"));
    let mut flipped = good.clone();
    let last = flipped.len() - 1;
    flipped[last] ^= 0x10;
    assert!(native_err(&flipped).contains("checksum"));
    let mut crc = good.clone();
    crc[20] ^= 1;
    assert!(native_err(&crc).contains("checksum"));

    // A payload with a correct checksum but a string length of 2^62 bytes: rejected by the
    // decoder's limit before anything is allocated.
    let mut huge = Vec::new();
    huge.extend_from_slice(&1u64.to_le_bytes()); // one tensor record
    huge.extend_from_slice(&(1u64 << 62).to_le_bytes()); // its name's length
    huge.extend_from_slice(b"abc");
    let why = native_err(&framed(&huge));
    assert!(why.contains("length field"), "{why}");
    // Huge tensor count, then nothing.
    let why = native_err(&framed(&u64::MAX.to_le_bytes()));
    assert!(why.starts_with("payload:"), "{why}");

    // A well-formed payload whose shape disagrees with its data, built from a valid file by
    // changing one shape dimension and re-framing.
    let payload = &good[HEADER_LEN..];
    // The first tensor is "body.conv.bias" (16 chars) with shape [3].
    let name_len = u64::from_le_bytes(payload[8..16].try_into().unwrap()) as usize;
    assert_eq!(&payload[16..16 + name_len], b"body.conv.bias");
    let dim_at = 16 + name_len + 8;
    let mut bad_shape = payload.to_vec();
    bad_shape[dim_at..dim_at + 8].copy_from_slice(&4u64.to_le_bytes());
    let why = native_err(&framed(&bad_shape));
    assert!(
        why.contains("body.conv.bias") && why.contains("needs 4"),
        "{why}"
    );
    let mut overflow = payload.to_vec();
    overflow[dim_at..dim_at + 8].copy_from_slice(&u64::MAX.to_le_bytes());
    let why = native_err(&framed(&overflow));
    assert!(why.contains("body.conv.bias"), "{why}");
}

#[test]
fn file_errors_name_the_file() {
    let dir = TempDir::new("errors");
    let missing = dir.path("nope.ckpt");
    match Checkpoint::load(&missing) {
        Err(Error::Checkpoint { path, why }) => {
            assert_eq!(path, missing);
            assert!(why.contains("cannot read"), "{why}");
        }
        other => panic!("{other:?}"),
    }
    let e = st::load_state_dict(&missing).unwrap_err();
    assert!(e.to_string().contains("nope.ckpt"), "{e}");
    // Writing into a directory that does not exist.
    let nowhere = dir.path("no/such/dir/m.ckpt");
    let e = checkpoint::save_module(&nowhere, &Tiny::new(1, 2)).unwrap_err();
    assert!(
        matches!(&e, Error::Checkpoint { path, .. } if path == &nowhere),
        "{e}"
    );
    assert_eq!(dir.entries(), Vec::<String>::new());
    // A native file given to the safetensors loader and the other way round.
    checkpoint::save_module(dir.path("m.ckpt"), &Tiny::new(1, 2)).unwrap();
    st::save_module(dir.path("m.safetensors"), &Tiny::new(1, 2)).unwrap();
    let e = st::load_state_dict(dir.path("m.ckpt")).unwrap_err();
    assert!(matches!(e, Error::Checkpoint { .. }), "{e}");
    let e = Checkpoint::load(dir.path("m.safetensors")).unwrap_err();
    assert!(e.to_string().contains("magic"), "{e}");
}

fn st_file(header: &str, data_len: usize) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend(std::iter::repeat_n(0u8, data_len));
    out
}

fn st_err(bytes: &[u8]) -> String {
    match st::from_bytes(bytes, Path::new("w.safetensors")) {
        Err(Error::Checkpoint { path, why }) => {
            assert_eq!(path, Path::new("w.safetensors"));
            why
        }
        Err(e) => panic!("expected a checkpoint error, got {e}"),
        Ok(_) => panic!("a bad file loaded"),
    }
}

#[test]
fn bad_safetensors_files_give_typed_errors() {
    // Unsupported dtype: named.
    let why = st_err(&st_file(
        r#"{"ok":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"ids":{"dtype":"I64","shape":[2],"data_offsets":[4,20]}}"#,
        20,
    ));
    assert!(why.contains("ids") && why.contains("I64"), "{why}");
    // Shape against data, overflowing shapes, offsets past the end, huge header length.
    st_err(&st_file(
        r#"{"t":{"dtype":"F32","shape":[3],"data_offsets":[0,8]}}"#,
        8,
    ));
    st_err(&st_file(
        r#"{"t":{"dtype":"F32","shape":[4294967296,4294967296,16],"data_offsets":[0,4]}}"#,
        4,
    ));
    st_err(&st_file(
        r#"{"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#,
        2,
    ));
    let mut huge = u64::MAX.to_le_bytes().to_vec();
    huge.extend_from_slice(b"{}");
    st_err(&huge);
    st_err(&st_file("{not json", 0));
    st_err(b"");
    // A file with metadata and nothing else is an empty state dict.
    let (t, m) =
        st::from_bytes(&st_file(r#"{"__metadata__":{"a":"b"}}"#, 0), Path::new("e")).unwrap();
    assert!(t.is_empty());
    assert_eq!(m["a"], "b");
}
