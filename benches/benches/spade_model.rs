//! SPADE models end to end: the ADE20K generator's eval forward at 256², batch 1, and one
//! training iteration (G step + D step) of the small configuration (13 classes, ngf = ndf = 32,
//! 128², SPADE hidden width 64, batch 2, no VGG). `benches/torch_spade_model.py` times the same
//! work with the PyTorch networks of tests/fixtures/make_spade_model.py.
use criterion::{criterion_group, criterion_main, Criterion};
use std::time::Duration;
use tessera_autograd::{no_grad, Var};
use tessera_nn::Module;
use tessera_spade::{
    semantic_input, Batch, IdMap, ModelConfig, SpadeGenerator, TrainConfig, Trainer,
};
use tessera_tensor::{Device, Rng, Tensor};

/// A label map of `classes` ids in vertical bands with a diagonal, as the PyTorch script.
fn label_map(classes: usize, size: usize) -> IdMap {
    let ids = (0..size * size)
        .map(|i| (((i % size) / 16 + (i / size) / 32) % classes) as u32)
        .collect();
    IdMap::new("bench", size, size, ids)
}

fn spade_model(cr: &mut Criterion) {
    let mut group = cr.benchmark_group("spade_model");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(30));

    let ade = ModelConfig::ade20k();
    let mut generator = SpadeGenerator::new(&ade, &mut Rng::seed(0)).unwrap();
    generator.set_training(false);
    let seg = Var::constant(semantic_input(&ade, &[label_map(151, 256)], None).unwrap());
    group.bench_function("generator_ade20k_256_eval", |b| {
        b.iter(|| no_grad(|| generator.forward(&seg, None).unwrap()))
    });
    drop(generator);

    let small = ModelConfig::small();
    let mut trainer = Trainer::new(&small, &TrainConfig::default(), None).unwrap();
    let maps = [label_map(13, 128), label_map(13, 128)];
    let batch = Batch {
        semantics: semantic_input(&small, &maps, None).unwrap(),
        image: Tensor::randn([2, 3, 128, 128], 0.0, 0.5, &mut Rng::seed(1), Device::Cpu)
            .unwrap()
            .clamp(-1.0, 1.0)
            .unwrap(),
    };
    group.bench_function("train_iter_small_128_b2", |b| {
        b.iter(|| {
            trainer.generator_step(&batch).unwrap();
            trainer.discriminator_step(&batch).unwrap();
        })
    });
    group.finish();
}

criterion_group!(benches, spade_model);
criterion_main!(benches);
