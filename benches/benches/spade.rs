//! The SPADE layer (batch-norm variant, training mode, 151 label channels, hidden width 128) at
//! the SPADE generator's shapes, forward and forward + backward (gradients for the input and every
//! parameter). `benches/torch_spade.py` times the same layer built from torch.nn.
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};
use std::time::Duration;
use tessera_autograd::{grad, Var};
use tessera_nn::{ModuleExt, Spade, SpadeConfig, SpadeNorm};
use tessera_tensor::{Device, Rng, Tensor};

const LABELS: usize = 151;
const SEG: usize = 256;
/// (channels, spatial size) of the SPADE blocks measured.
const SHAPES: [(usize, usize); 3] = [(1024, 16), (256, 64), (64, 256)];

fn spade(cr: &mut Criterion) {
    let mut rng = Rng::seed(0);
    let labels: Vec<u32> = (0..SEG * SEG)
        .map(|i| ((i / 997 + i % 13) % LABELS) as u32)
        .collect();
    let seg = Var::constant(Tensor::one_hot(&labels, [1, SEG, SEG], LABELS, Device::Cpu).unwrap());
    for (name, backward) in [("spade_fwd", false), ("spade_fwd_bwd", true)] {
        let mut group = cr.benchmark_group(name);
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(6));
        for (c, s) in SHAPES {
            let layer =
                Spade::new(SpadeConfig::new(c, LABELS, SpadeNorm::Batch), &mut rng).unwrap();
            let x =
                Var::param(Tensor::randn([1, c, s, s], 0.0, 1.0, &mut rng, Device::Cpu).unwrap());
            let g = Var::constant(
                Tensor::randn([1, c, s, s], 0.0, 1.0, &mut rng, Device::Cpu).unwrap(),
            );
            group.bench_function(BenchmarkId::from_parameter(format!("c{c}_{s}x{s}")), |b| {
                b.iter(|| {
                    let y = layer.forward(&x, &seg).unwrap();
                    if backward {
                        let params: Vec<Var> = layer.params().iter().map(|p| p.var()).collect();
                        let mut wrt: Vec<&Var> = params.iter().collect();
                        wrt.push(&x);
                        grad(&[&y], &wrt, Some(std::slice::from_ref(&g)), false).unwrap();
                    }
                })
            });
        }
        group.finish();
    }
}

criterion_group!(benches, spade);
criterion_main!(benches);
