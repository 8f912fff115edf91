//! Times tessera's CUDA kernels with CUDA events at SPADE's and SinGAN's shapes and prints one
//! line per case: `group/id min_ms median_ms GB/s TFLOP/s` (GB/s from the bytes the kernel must
//! move at least, TFLOP/s for convolutions). `benches/torch_gpu_kernels.py` prints the same ids
//! for PyTorch on the same GPU; `crates/cuda/gpu/report.py` pairs them. Run on a GPU machine
//! (see docs/GPU.md); `--quick` takes fewer samples.
use std::sync::Arc;
use tessera_cuda::cudarc::driver::sys::CUevent_flags;
use tessera_cuda::norm::{self, Modulation, NormShape};
use tessera_cuda::ops::{self, Conv2d, ConvAlgo, ConvMath};
use tessera_cuda::{Buffer, Gpu};

type BenchResult<T> = Result<T, Box<dyn std::error::Error>>;

/// Deterministic pseudo-random values in [-1, 1).
fn host_data(len: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
        })
        .collect()
}

struct Timer {
    gpu: Arc<Gpu>,
    samples: usize,
}

impl Timer {
    /// (min, median) ms of `f` over the samples, after warm-up calls, timed with events.
    fn time(&self, mut f: impl FnMut() -> BenchResult<()>) -> BenchResult<(f64, f64)> {
        for _ in 0..3 {
            f()?;
        }
        let ctx = self.gpu.context();
        let flags = Some(CUevent_flags::CU_EVENT_DEFAULT);
        let mut times = Vec::with_capacity(self.samples);
        for _ in 0..self.samples {
            let (start, end) = (ctx.new_event(flags)?, ctx.new_event(flags)?);
            start.record(self.gpu.stream())?;
            f()?;
            end.record(self.gpu.stream())?;
            end.synchronize()?;
            times.push(start.elapsed_ms(&end)? as f64);
        }
        times.sort_by(f64::total_cmp);
        Ok((times[0], times[times.len() / 2]))
    }
}

fn report(id: &str, (min, median): (f64, f64), bytes: f64, flops: f64) {
    let gbps = bytes / (min * 1e-3) / 1e9;
    let tflops = flops / (min * 1e-3) / 1e12;
    println!("{id} {min:.4} {median:.4} {gbps:.1} {tflops:.2}");
}

fn spade_norm(t: &Timer) -> BenchResult<()> {
    let gpu = &t.gpu;
    // SPADE generator (256×256 output, ngf 64): the normalized activations of each resolution.
    for (c, s) in [(1024, 16), (1024, 32), (512, 64), (256, 128), (128, 256)] {
        for n in [1usize, 8] {
            for instance in [false, true] {
                if instance && n == 1 {
                    continue;
                }
                let len = n * c * s * s;
                let shape = NormShape {
                    n,
                    c,
                    hw: s * s,
                    instance,
                };
                let x = gpu.upload(&host_data(len, 1))?;
                let gamma = gpu.upload(&host_data(len, 2))?;
                let beta = gpu.upload(&host_data(len, 3))?;
                let dy = gpu.upload(&host_data(len, 4))?;
                let m = Modulation::Spatial {
                    gamma: &gamma,
                    beta: &beta,
                };
                let kind = if instance { "instance" } else { "batch" };
                let id = format!("{kind}_n{n}_c{c}_{s}x{s}");
                let bytes = 4.0 * len as f64;
                let stats = norm::stats(gpu, &x, shape, 1e-5)?;
                // The fused modulation pass alone: reads x, γ, β and writes y.
                let tm = t.time(|| {
                    norm::modulate(gpu, &x, shape, (&stats.mean, &stats.rstd), m)?;
                    Ok(())
                })?;
                report(&format!("spade_modulate/{id}"), tm, 4.0 * bytes, 0.0);
                // Whole forward: statistics (reads x) + the fused pass.
                let tf = t.time(|| {
                    norm::normalize(gpu, &x, shape, 1e-5, m)?;
                    Ok(())
                })?;
                report(&format!("spade_norm_fwd/{id}"), tf, 5.0 * bytes, 0.0);
                // Backward: reduction pass (dy, x, γ) + fused pass (dy, x, γ → dx, dγ).
                let tb = t.time(|| {
                    norm::backward(
                        gpu,
                        &dy,
                        &x,
                        shape,
                        (&stats.mean, &stats.rstd),
                        Some(&gamma),
                    )?;
                    Ok(())
                })?;
                report(&format!("spade_norm_bwd/{id}"), tb, 8.0 * bytes, 0.0);
            }
        }
    }
    Ok(())
}

/// (id, input [n, c, h, w], weight [co, c, k, k], padding, with backward)
type ConvCase = (&'static str, [usize; 4], [usize; 4], usize, bool);

const CONV_CASES: [ConvCase; 8] = [
    (
        "singan_3to32_250x188",
        [1, 3, 250, 188],
        [32, 3, 3, 3],
        0,
        false,
    ),
    (
        "singan_32to32_250x188",
        [1, 32, 250, 188],
        [32, 32, 3, 3],
        0,
        true,
    ),
    (
        "spade_151to128_n1_64x64",
        [1, 151, 64, 64],
        [128, 151, 3, 3],
        1,
        false,
    ),
    (
        "spade_151to128_n8_64x64",
        [8, 151, 64, 64],
        [128, 151, 3, 3],
        1,
        true,
    ),
    (
        "spade_128to512_n8_64x64",
        [8, 128, 64, 64],
        [512, 128, 3, 3],
        1,
        true,
    ),
    (
        "spade_128to1024_n8_32x32",
        [8, 128, 32, 32],
        [1024, 128, 3, 3],
        1,
        false,
    ),
    (
        "spade_128to256_n1_128x128",
        [1, 128, 128, 128],
        [256, 128, 3, 3],
        1,
        false,
    ),
    (
        "spade_128to64_n1_256x256",
        [1, 128, 256, 256],
        [64, 128, 3, 3],
        1,
        false,
    ),
];

/// Every case in FP32, then on the tensor cores (ids suffixed `_tf32`, like PyTorch's TF32 runs),
/// then the weight gradients in FP32 by Winograd's F(4×4, 3×3) (ids suffixed `_winograd`; cuDNN
/// picks its own algorithm, so they compare with PyTorch's FP32 ids).
fn convs(t: &Timer) -> BenchResult<()> {
    let gpu = &t.gpu;
    let variants = [
        (ConvMath::Fp32, ConvAlgo::ImplicitGemm, ""),
        (ConvMath::Tf32, ConvAlgo::ImplicitGemm, "_tf32"),
        (ConvMath::Fp32, ConvAlgo::Winograd, "_winograd"),
    ];
    for (math, algo, suffix) in variants {
        let wgrad_only = algo == ConvAlgo::Winograd;
        for (id, xs, ws, pad, backward) in CONV_CASES {
            if wgrad_only && !backward {
                continue;
            }
            let [n, c, h, w] = xs;
            let [co, _, k, _] = ws;
            let out_hw = [h + 2 * pad - k + 1, w + 2 * pad - k + 1];
            let p = Conv2d {
                input: xs,
                weight: ws,
                out_hw,
                stride: [1, 1],
                padding: [pad, pad],
                dilation: [1, 1],
                math,
                algo,
            };
            let x = gpu.upload(&host_data(n * c * h * w, 5))?;
            let wt = gpu.upload(&host_data(co * c * k * k, 6))?;
            let gy: Buffer = gpu.upload(&host_data(n * co * out_hw[0] * out_hw[1], 7))?;
            let flops = 2.0 * (n * co * out_hw[0] * out_hw[1] * c * k * k) as f64;
            if !wgrad_only {
                let tf = t.time(|| {
                    ops::conv2d(gpu, &x, &wt, p)?;
                    Ok(())
                })?;
                report(&format!("conv2d_fwd/{id}{suffix}"), tf, 0.0, flops);
            }
            if backward && !wgrad_only {
                let td = t.time(|| {
                    ops::conv2d_input_grad(gpu, &gy, &wt, p)?;
                    Ok(())
                })?;
                report(&format!("conv2d_dgrad/{id}{suffix}"), td, 0.0, flops);
            }
            if backward {
                let tw = t.time(|| {
                    ops::conv2d_weight_grad(gpu, &x, &gy, p)?;
                    Ok(())
                })?;
                report(&format!("conv2d_wgrad/{id}{suffix}"), tw, 0.0, flops);
            }
        }
    }
    Ok(())
}

/// Device-to-device copy of 1 GiB: the HBM bandwidth the norm kernels are measured against.
fn copy_bandwidth(t: &Timer) -> BenchResult<()> {
    let len = 1 << 28;
    let src = t.gpu.zeros(len)?;
    let mut dst = t.gpu.zeros(len)?;
    let stream = t.gpu.stream().clone();
    let tc = t.time(|| {
        stream.memcpy_dtod(&src, &mut dst)?;
        Ok(())
    })?;
    report("hbm/copy_1GiB", tc, 2.0 * 4.0 * len as f64, 0.0);
    Ok(())
}

fn main() -> BenchResult<()> {
    let quick = std::env::args().any(|a| a == "--quick");
    let gpu = tessera_cuda::gpu(0)?;
    eprintln!(
        "# device: {} ({}, {} SMs)",
        gpu.name(),
        gpu.arch(),
        gpu.sm_count()
    );
    let t = Timer {
        gpu,
        samples: if quick { 10 } else { 40 },
    };
    copy_bandwidth(&t)?;
    spade_norm(&t)?;
    convs(&t)?;
    Ok(())
}
