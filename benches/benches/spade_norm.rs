//! SPADE normalization, `(x − μ)·rsqrt(σ² + ε)·(1 + γ) + β` with batch statistics, forward only,
//! on CPU and (built with `--features cuda`, with a GPU present) on the GPU, so that a custom
//! normalization kernel can be dropped in beside these and compared on the same inputs:
//! - `cpu_composite`: tessera's composite ops (mean, variance, rsqrt, mul, add), as tessera-nn's
//!   SPADE layer computes it;
//! - `cpu_fused`: `Tensor::spade_norm` (one statistics pass, one output pass);
//! - `gpu_composite`: the same ops on `Device::Cuda(0)`;
//! - `gpu_fused`: `tessera_cuda::norm::normalize` (one statistics pass, one fused pass).
//!
//! To compare your own kernel, add a `group.bench_function("my_kernel_…", …)` next to
//! `gpu_fused` (the device buffers are at hand through `CudaStorage::buffer`) and synchronize the
//! GPU inside the timed closure, as the GPU cases here do. `benches/torch_spade_norm.py` times
//! PyTorch's eager composite (`batch_norm` then `* (1 + gamma) + beta`) with the same ids.
use criterion::{criterion_group, criterion_main, Criterion};
use std::time::Duration;
use tessera_tensor::{Device, Rng, Tensor};

/// (batch, channels, spatial size): SPADE generator activations small enough for a CPU bench.
const SHAPES: [(usize, usize, usize); 2] = [(1, 256, 64), (1, 128, 128)];
const EPS: f32 = 1e-5;

fn composite(x: &Tensor, gamma: &Tensor, beta: &Tensor) -> Tensor {
    let mean = x.mean(&[0, 2, 3], true).unwrap();
    let var = x.var(&[0, 2, 3], false, true).unwrap();
    let r = var.add_scalar(EPS).unwrap().rsqrt().unwrap();
    x.sub(&mean)
        .unwrap()
        .mul(&r)
        .unwrap()
        .mul(&gamma.add_scalar(1.0).unwrap())
        .unwrap()
        .add(beta)
        .unwrap()
}

fn spade_norm(cr: &mut Criterion) {
    let mut group = cr.benchmark_group("spade_norm");
    group
        .sample_size(20)
        .measurement_time(Duration::from_secs(3));
    let mut rng = Rng::seed(0);
    for (n, c, s) in SHAPES {
        let id = format!("n{n}_c{c}_{s}x{s}");
        let mut t = || Tensor::randn([n, c, s, s], 0.0, 1.0, &mut rng, Device::Cpu).unwrap();
        let (x, gamma, beta) = (t(), t(), t());
        group.bench_function(format!("cpu_composite_{id}"), |b| {
            b.iter(|| composite(&x, &gamma, &beta))
        });
        group.bench_function(format!("cpu_fused_{id}"), |b| {
            b.iter(|| x.spade_norm(&gamma, &beta, false, EPS).unwrap())
        });
        #[cfg(feature = "cuda")]
        gpu_cases(&mut group, &id, [n, c, s], [&x, &gamma, &beta]);
    }
    group.finish();
}

#[cfg(feature = "cuda")]
fn gpu_cases(
    group: &mut criterion::BenchmarkGroup<criterion::measurement::WallTime>,
    id: &str,
    [n, c, s]: [usize; 3],
    host: [&Tensor; 3],
) {
    use tessera_cuda::norm::{self, Modulation, NormShape};
    use tessera_tensor::Storage;
    if tessera_cuda::device_count() == 0 {
        eprintln!("spade_norm: no CUDA device, GPU cases skipped");
        return;
    }
    let dev = Device::Cuda(0);
    let [x, gamma, beta] = host.map(|t| t.to_device(dev).unwrap());
    let gpu = tessera_cuda::gpu(0).unwrap();
    group.bench_function(format!("gpu_composite_{id}"), |b| {
        b.iter(|| {
            let y = composite(&x, &gamma, &beta);
            gpu.synchronize().unwrap();
            y
        })
    });
    let buffer = |t: &Tensor| match t.storage() {
        Storage::Cuda(s) => s.buffer().clone(),
        Storage::Cpu(_) => unreachable!("moved to the GPU above"),
    };
    let (xb, gb, bb) = (buffer(&x), buffer(&gamma), buffer(&beta));
    let shape = NormShape {
        n,
        c,
        hw: s * s,
        instance: false,
    };
    group.bench_function(format!("gpu_fused_{id}"), |b| {
        b.iter(|| {
            let m = Modulation::Spatial {
                gamma: &gb,
                beta: &bb,
            };
            let y = norm::normalize(&gpu, &xb, shape, EPS, m).unwrap();
            gpu.synchronize().unwrap();
            y
        })
    });
}

criterion_group!(benches, spade_norm);
criterion_main!(benches);
