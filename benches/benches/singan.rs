//! One SinGAN training epoch (3 critic steps with the per-pixel gradient penalty + 3 generator
//! steps with the reconstruction loss, Adam updates included) at three scales of the balloons
//! pyramid: (width 32, 25×34), (64, 69×91), (128, 145×193). `benches/torch_singan.py` times the
//! same epoch with torch.nn twins of the networks.
//!
//! Built with `--features cuda` and run with a GPU present, group `singan_epoch_gpu` times the
//! same epochs with the networks and tensors on `Device::Cuda(0)` (`torch_singan.py --cuda` is
//! its PyTorch side), then group `singan_epoch_gpu_tf32` with TF32 convolutions on both sides,
//! then `singan_epoch_gpu_winograd` with FP32 Winograd weight gradients (against PyTorch's FP32
//! epoch); `--bench singan_epoch_gpu` runs only those.
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::time::Duration;
use tessera_singan::net::PAD;
use tessera_singan::{Critic, Generator, ScaleTrainer, TrainConfig};
use tessera_tensor::{Device, PadMode, Rng, Tensor};

/// (width, height, width in pixels) of the scales measured.
const SCALES: [(usize, usize, usize); 3] = [(32, 25, 34), (64, 69, 91), (128, 145, 193)];

/// The epochs of every scale in `SCALES` on `device`, as group `name`.
fn epochs_on(cr: &mut Criterion, name: &str, device: Device) {
    let mut group = cr.benchmark_group(name);
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));
    let mut rng = Rng::seed(0);
    for (width, h, w) in SCALES {
        // Drawn on the host (the same values on every device), then moved; the trainer moves the
        // networks to the device of `real`.
        let image = |rng: &mut Rng| Tensor::rand_uniform([1, 3, h, w], -1.0, 1.0, rng, Device::Cpu);
        let padded = |rng: &mut Rng| {
            let t = image(rng).unwrap().pad2d([PAD; 4], PadMode::Zero).unwrap();
            t.to_device(device).unwrap()
        };
        let real = image(&mut rng).unwrap().to_device(device).unwrap();
        let noise = padded(&mut rng);
        let prevs: Vec<Tensor> = (0..3).map(|_| padded(&mut rng)).collect();
        let z_prev = padded(&mut rng);
        let z_opt = Tensor::zeros(z_prev.dims().to_vec(), device).unwrap();
        let generator = Generator::new(width, &mut rng).unwrap();
        let critic = Critic::new(width, &mut rng).unwrap();
        let mut trainer = ScaleTrainer::new(
            generator,
            critic,
            &real,
            z_opt,
            z_prev,
            0.1,
            &TrainConfig::paper(),
        )
        .unwrap();
        let alphas = [0.3, 0.6, 0.9];
        // Each step reads its losses back to the host, which waits for the device: the epoch's
        // time includes all of its GPU work.
        group.bench_function(
            BenchmarkId::from_parameter(format!("w{width}_{h}x{w}")),
            |b| b.iter(|| trainer.epoch(0, &noise, &prevs, &alphas).unwrap()),
        );
    }
    group.finish();
}

fn epoch(cr: &mut Criterion) {
    epochs_on(cr, "singan_epoch", Device::Cpu);
}

#[cfg(feature = "cuda")]
fn epoch_gpu(cr: &mut Criterion) {
    if !tessera_cuda::driver_present() || tessera_cuda::device_count() == 0 {
        eprintln!("singan_epoch_gpu: no CUDA device, GPU cases skipped");
        return;
    }
    epochs_on(cr, "singan_epoch_gpu", Device::Cuda(0));
    // The same epochs with the convolutions on the TF32 tensor cores.
    tessera_tensor::set_cuda_conv_tf32(true);
    epochs_on(cr, "singan_epoch_gpu_tf32", Device::Cuda(0));
    tessera_tensor::set_cuda_conv_tf32(false);
    // And in FP32 with the weight gradients by Winograd F(4×4, 3×3).
    tessera_tensor::set_cuda_conv_winograd(true);
    epochs_on(cr, "singan_epoch_gpu_winograd", Device::Cuda(0));
    tessera_tensor::set_cuda_conv_winograd(false);
}

#[cfg(not(feature = "cuda"))]
criterion_group!(benches, epoch);
#[cfg(feature = "cuda")]
criterion_group!(benches, epoch, epoch_gpu);
criterion_main!(benches);
