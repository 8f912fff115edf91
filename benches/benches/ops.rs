//! Criterion benches of the ops the foundation issue sets targets for. `benches/torch_bench.py`
//! times the same work with PyTorch; `cargo xtask bench` runs both and prints the ratios.
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use std::time::Duration;
use tessera_autograd::{grad, Var};
use tessera_tensor::{Conv2dParams, Device, Rng, Tensor};

/// (channels, spatial size): SinGAN's coarse, middle and fine scales.
const CONV_SHAPES: [(usize, usize); 3] = [(32, 35), (64, 79), (128, 196)];

fn conv_inputs(c: usize, s: usize) -> (Tensor, Tensor, Tensor) {
    let mut rng = Rng::seed(0);
    let x = Tensor::randn([1, c, s, s], 0.0, 1.0, &mut rng, Device::Cpu).unwrap();
    let w = Tensor::randn([c, c, 3, 3], 0.0, 0.05, &mut rng, Device::Cpu).unwrap();
    let g = Tensor::randn([1, c, s - 2, s - 2], 0.0, 1.0, &mut rng, Device::Cpu).unwrap();
    (x, w, g)
}

fn conv(cr: &mut Criterion) {
    let p = Conv2dParams::default();
    for (name, backward) in [("conv2d_fwd", false), ("conv2d_fwd_bwd", true)] {
        let mut group = cr.benchmark_group(name);
        for (c, s) in CONV_SHAPES {
            let (x, w, g) = conv_inputs(c, s);
            let flops = 2 * c * c * 9 * (s - 2) * (s - 2) * if backward { 3 } else { 1 };
            group.throughput(Throughput::Elements(flops as u64));
            if c >= 128 {
                group
                    .sample_size(10)
                    .measurement_time(Duration::from_secs(8));
            }
            group.bench_function(BenchmarkId::from_parameter(format!("c{c}_{s}x{s}")), |b| {
                if backward {
                    let (xv, wv, gv) = (
                        Var::param(x.clone()),
                        Var::param(w.clone()),
                        Var::constant(g.clone()),
                    );
                    b.iter(|| {
                        let y = xv.conv2d(&wv, None, p).unwrap();
                        grad(&[&y], &[&xv, &wv], Some(std::slice::from_ref(&gv)), false).unwrap()
                    })
                } else {
                    b.iter(|| x.conv2d(&w, None, p).unwrap())
                }
            });
        }
        group.finish();
    }
}

fn matmul(cr: &mut Criterion) {
    let n = 1024;
    let mut rng = Rng::seed(1);
    let a = Tensor::randn([n, n], 0.0, 1.0, &mut rng, Device::Cpu).unwrap();
    let b = Tensor::randn([n, n], 0.0, 1.0, &mut rng, Device::Cpu).unwrap();
    let mut group = cr.benchmark_group("matmul");
    group.throughput(Throughput::Elements(2 * (n * n * n) as u64));
    group.bench_function(BenchmarkId::from_parameter("1024"), |bch| {
        bch.iter(|| a.matmul(&b).unwrap())
    });
    group.finish();
}

criterion_group!(benches, conv, matmul);
criterion_main!(benches);
