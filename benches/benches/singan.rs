//! One SinGAN training epoch (3 critic steps with the per-pixel gradient penalty + 3 generator
//! steps with the reconstruction loss, Adam updates included) at three scales of the balloons
//! pyramid: (width 32, 25×34), (64, 69×91), (128, 145×193). `benches/torch_singan.py` times the
//! same epoch with torch.nn twins of the networks.
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::time::Duration;
use tessera_singan::net::PAD;
use tessera_singan::{Critic, Generator, ScaleTrainer, TrainConfig};
use tessera_tensor::{Device, PadMode, Rng, Tensor};

/// (width, height, width in pixels) of the scales measured.
const SCALES: [(usize, usize, usize); 3] = [(32, 25, 34), (64, 69, 91), (128, 145, 193)];

fn epoch(cr: &mut Criterion) {
    let mut group = cr.benchmark_group("singan_epoch");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    let mut rng = Rng::seed(0);
    for (width, h, w) in SCALES {
        let image = |rng: &mut Rng| Tensor::rand_uniform([1, 3, h, w], -1.0, 1.0, rng, Device::Cpu);
        let padded = |rng: &mut Rng| image(rng).unwrap().pad2d([PAD; 4], PadMode::Zero).unwrap();
        let real = image(&mut rng).unwrap();
        let noise = padded(&mut rng);
        let prevs: Vec<Tensor> = (0..3).map(|_| padded(&mut rng)).collect();
        let z_prev = padded(&mut rng);
        let z_opt = Tensor::zeros(z_prev.dims().to_vec(), Device::Cpu).unwrap();
        let mut trainer = ScaleTrainer::new(
            Generator::new(width, &mut rng).unwrap(),
            Critic::new(width, &mut rng).unwrap(),
            &real,
            z_opt,
            z_prev,
            0.1,
            &TrainConfig::paper(),
        )
        .unwrap();
        let alphas = [0.3, 0.6, 0.9];
        group.bench_function(
            BenchmarkId::from_parameter(format!("w{width}_{h}x{w}")),
            |b| b.iter(|| trainer.epoch(0, &noise, &prevs, &alphas).unwrap()),
        );
    }
    group.finish();
}

criterion_group!(benches, epoch);
criterion_main!(benches);
