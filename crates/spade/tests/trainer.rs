//! The trainer's checkpoints: resume equals an uninterrupted run, and bad checkpoints are
//! typed errors naming the file.
mod common;

use common::{semantics, uniform};
use std::collections::BTreeMap;
use tessera_nn::{Module, ModuleExt};
use tessera_spade::{Batch, Error, ModelConfig, TrainConfig, Trainer};

fn tiny(use_vae: bool) -> ModelConfig {
    ModelConfig {
        ngf: 1,
        ndf: 2,
        spade_hidden: 3,
        crop_size: if use_vae { 128 } else { 64 },
        use_vae,
        z_dim: 8,
        no_instance: false,
        ..ModelConfig::base(3)
    }
}

fn batch(seed: u64, size: usize) -> Batch {
    Batch {
        semantics: semantics(seed, 2, size, size, 3, true),
        image: uniform(seed + 7, &[2, 3, size, size])
            .mul_scalar(0.9)
            .unwrap(),
    }
}

fn train_config() -> TrainConfig {
    TrainConfig {
        niter: 1,
        niter_decay: 2,
        seed: 5,
        ..TrainConfig::default()
    }
}

fn values<M: Module>(m: &M) -> BTreeMap<String, Vec<f32>> {
    m.state_dict()
        .into_iter()
        .map(|(k, t)| (k, t.to_vec().unwrap()))
        .collect()
}

fn step(t: &mut Trainer, b: &Batch) -> (f32, f32) {
    let g = t.generator_step(b).unwrap();
    let d = t.discriminator_step(b).unwrap();
    (g.total, d.total)
}

#[test]
fn resuming_from_a_checkpoint_continues_the_same_run() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latest.ckpt");
    let model = tiny(false);
    let mut t = Trainer::new(&model, &train_config(), None).unwrap();
    let b = batch(1, 64);
    t.set_epoch(0);
    step(&mut t, &b);
    t.set_epoch(2);
    step(&mut t, &b);
    t.save(&path).unwrap();
    let uninterrupted = step(&mut t, &b);
    let mut resumed = Trainer::load_matching(&path, &model, None).unwrap();
    assert_eq!((resumed.step, resumed.epoch), (2, 2));
    // Epoch 2 (0-based) of niter 1 + niter_decay 2: half the base rates, restored with the
    // optimizers.
    assert_eq!(resumed.learning_rates(), (1e-4 / 2.0, 4e-4 / 2.0));
    assert_eq!(step(&mut resumed, &b), uninterrupted);
    assert_eq!(values(&resumed.generator), values(&t.generator));
    assert_eq!(values(&resumed.discriminator), values(&t.discriminator));
    resumed.set_epoch(3);
    assert_eq!(resumed.learning_rates(), (0.0, 0.0));
}

#[test]
fn vae_checkpoints_hold_the_encoder() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vae.ckpt");
    let model = tiny(true);
    let mut t = Trainer::new(&model, &train_config(), None).unwrap();
    let gs = t.generator_step(&batch(2, 128)).unwrap();
    assert!(gs.kld.is_some() && gs.feat.is_some() && gs.vgg.is_none());
    t.discriminator_step(&batch(2, 128)).unwrap();
    t.save(&path).unwrap();
    let back = Trainer::load(&path, None).unwrap();
    assert_eq!(
        values(back.encoder.as_ref().unwrap()),
        values(t.encoder.as_ref().unwrap())
    );
}

#[test]
fn a_checkpoint_of_another_config_is_refused_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.ckpt");
    Trainer::new(&tiny(false), &train_config(), None)
        .unwrap()
        .save(&path)
        .unwrap();
    let wanted = ModelConfig {
        label_nc: 4,
        ..tiny(false)
    };
    let err = Trainer::load_matching(&path, &wanted, None)
        .err()
        .expect("another config");
    assert!(matches!(err, Error::Checkpoint { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(
        msg.contains("other.ckpt") && msg.contains("label_nc: 3 vs 4"),
        "{msg}"
    );
    // A damaged file names the file too, and nothing half-read is returned.
    let bytes = std::fs::read(&path).unwrap();
    let damaged = dir.path().join("damaged.ckpt");
    std::fs::write(&damaged, &bytes[..bytes.len() / 2]).unwrap();
    let msg = Trainer::load(&damaged, None).err().unwrap().to_string();
    assert!(msg.contains("damaged.ckpt"), "{msg}");
}

#[test]
fn bad_batches_are_shape_errors() {
    let mut t = Trainer::new(&tiny(false), &train_config(), None).unwrap();
    let mut b = batch(3, 64);
    b.image = uniform(1, &[2, 3, 32, 32]);
    let msg = t.generator_step(&b).err().unwrap().to_string();
    assert!(msg.contains("semantics [N, 4, H, W]"), "{msg}");
}
