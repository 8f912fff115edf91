//! The CUDA backend against the CPU backend: every op of `BackendStorage`, on shapes that take
//! each kernel's edge paths (broadcasts, odd sizes, strides, dilation, padding modes, split-K
//! convolutions), plus the fused normalization kernels against the composite ops.
//! Needs a GPU: without a driver or device each test prints SKIP and passes.
#![cfg(feature = "cuda")]

mod common;

use common::{cuda_device, normal};
use tessera_tensor::*;

fn gpu() -> Option<Device> {
    cuda_device("CUDA backend tests")
}

/// Max |a − b| / (1 + |b|) over all elements, after checking shapes and devices.
fn assert_close(op: &str, gpu_result: &Tensor, cpu_result: &Tensor, tol: f32) {
    assert!(
        matches!(gpu_result.device(), Device::Cuda(_)),
        "{op} left the GPU"
    );
    assert_eq!(gpu_result.dims(), cpu_result.dims(), "{op}: shapes");
    let (g, c) = (gpu_result.to_vec().unwrap(), cpu_result.to_vec().unwrap());
    let mut worst = 0f32;
    for (i, (a, b)) in g.iter().zip(&c).enumerate() {
        if a.is_nan() || b.is_nan() {
            assert!(a.is_nan() && b.is_nan(), "{op}[{i}]: gpu {a} cpu {b}");
            continue;
        }
        if a.is_infinite() || b.is_infinite() {
            assert_eq!(a, b, "{op}[{i}]");
            continue;
        }
        worst = worst.max((a - b).abs() / (1.0 + b.abs()));
    }
    assert!(worst <= tol, "{op}: max relative error {worst} > {tol}");
}

/// Runs `f` on CPU inputs and on the same inputs moved to the GPU, and compares.
fn check(op: &str, dev: Device, inputs: Vec<Tensor>, tol: f32, f: impl Fn(&[Tensor]) -> Tensor) {
    let on_gpu: Vec<Tensor> = inputs.iter().map(|t| t.to_device(dev).unwrap()).collect();
    assert_close(op, &f(&on_gpu), &f(&inputs), tol);
}

#[test]
fn transfers_round_trip_and_devices_must_match() {
    let Some(dev) = gpu() else { return };
    let x = normal(&[3, 5, 7], 1);
    let g = x.to_device(dev).unwrap();
    assert_eq!(g.device(), dev);
    assert_eq!(g.to_vec().unwrap(), x.to_vec().unwrap());
    assert_eq!(
        g.to_device(Device::Cpu).unwrap().to_vec().unwrap(),
        x.to_vec().unwrap()
    );
    assert!(matches!(g.add(&x), Err(Error::DeviceMismatch { .. })));
    let empty = Tensor::zeros([0, 4], dev).unwrap();
    assert_eq!(
        empty.sum(&[0], false).unwrap().to_vec().unwrap(),
        vec![0.0; 4]
    );
}

#[test]
fn elementwise_ops_match_cpu() {
    let Some(dev) = gpu() else { return };
    let x = normal(&[4, 3, 17, 9], 2);
    let pos = x.abs().unwrap().add_scalar(0.1).unwrap();
    let unary = [
        UnaryOp::Neg,
        UnaryOp::Exp,
        UnaryOp::Abs,
        UnaryOp::Sign,
        UnaryOp::Relu,
        UnaryOp::LeakyRelu(0.2),
        UnaryOp::Tanh,
        UnaryOp::Sigmoid,
        UnaryOp::Clamp(-0.5, 0.7),
        UnaryOp::Affine {
            mul: 2.5,
            add: -1.0,
        },
        UnaryOp::CmpScalar(CmpOp::Gt, 0.3),
        UnaryOp::CmpScalar(CmpOp::Le, -0.1),
    ];
    for op in unary {
        check(&format!("{op:?}"), dev, vec![x.clone()], 1e-5, |t| {
            t[0].unary(op).unwrap()
        });
    }
    for op in [
        UnaryOp::Log,
        UnaryOp::Sqrt,
        UnaryOp::Rsqrt,
        UnaryOp::Powf(1.7),
    ] {
        check(&format!("{op:?}"), dev, vec![pos.clone()], 1e-5, |t| {
            t[0].unary(op).unwrap()
        });
    }
    let binary = [
        BinaryOp::Add,
        BinaryOp::Sub,
        BinaryOp::Mul,
        BinaryOp::Div,
        BinaryOp::Maximum,
        BinaryOp::Minimum,
        BinaryOp::Cmp(CmpOp::Lt),
        BinaryOp::Cmp(CmpOp::Eq),
    ];
    // Same shape, per-channel, trailing, leading and two-sided broadcasts.
    let pairs: [(&[usize], &[usize]); 5] = [
        (&[4, 3, 17, 9], &[4, 3, 17, 9]),
        (&[4, 3, 17, 9], &[1, 3, 1, 1]),
        (&[4, 3, 17, 9], &[9]),
        (&[1, 3, 17, 9], &[4, 1, 17, 9]),
        (&[4, 1, 17, 1], &[3, 1, 9]),
    ];
    for (i, (a, b)) in pairs.iter().enumerate() {
        let (a, b) = (normal(a, 10 + i as u64), normal(b, 20 + i as u64));
        for op in binary {
            check(
                &format!("{op:?} {a:?} {b:?}"),
                dev,
                vec![a.clone(), b.clone()],
                1e-5,
                |t| t[0].binary(&t[1], op).unwrap(),
            );
        }
    }
    let (pa, pb) = (pos.clone(), normal(&[1, 3, 1, 1], 5));
    check("pow", dev, vec![pa, pb], 1e-5, |t| t[0].pow(&t[1]).unwrap());
    let cond = x.cmp_scalar(CmpOp::Gt, 0.0).unwrap();
    check(
        "where",
        dev,
        vec![cond, normal(&[3, 1, 1], 6), normal(&[4, 3, 17, 9], 7)],
        0.0,
        |t| t[0].where_cond(&t[1], &t[2]).unwrap(),
    );
    let nan = Tensor::from_vec(vec![f32::NAN, 1.0, -2.0], [3], Device::Cpu).unwrap();
    check("relu NaN", dev, vec![nan.clone()], 0.0, |t| {
        t[0].relu().unwrap()
    });
    check(
        "maximum NaN",
        dev,
        vec![nan.clone(), nan.flip_sign()],
        0.0,
        |t| t[0].maximum(&t[1]).unwrap(),
    );
}

trait FlipSign {
    fn flip_sign(&self) -> Tensor;
}
impl FlipSign for Tensor {
    fn flip_sign(&self) -> Tensor {
        self.neg().unwrap()
    }
}

#[test]
fn reductions_match_cpu() {
    let Some(dev) = gpu() else { return };
    let x = normal(&[5, 6, 7, 8], 3);
    let axes_list: [&[usize]; 7] = [
        &[3],
        &[0],
        &[0, 2, 3],
        &[2, 3],
        &[1],
        &[0, 1, 2, 3],
        &[1, 3],
    ];
    for axes in axes_list {
        for op in [
            ReduceOp::Sum,
            ReduceOp::Max,
            ReduceOp::Min,
            ReduceOp::Var { unbiased: false },
            ReduceOp::Var { unbiased: true },
        ] {
            for keepdim in [false, true] {
                check(
                    &format!("{op:?} {axes:?}"),
                    dev,
                    vec![x.clone()],
                    1e-5,
                    |t| t[0].reduce(axes, keepdim, op).unwrap(),
                );
            }
        }
    }
    // A long run: one block reduces 2¹⁸ values.
    check(
        "sum_all long",
        dev,
        vec![normal(&[1 << 18], 4)],
        1e-5,
        |t| t[0].sum_all().unwrap(),
    );
}

#[test]
fn matmul_matches_cpu() {
    let Some(dev) = gpu() else { return };
    for (i, &(b, m, k, n, batched)) in [
        (1, 1, 1, 1, true),
        (1, 37, 29, 53, true),
        (3, 64, 128, 64, true),
        (2, 300, 70, 260, false),
        (1, 1024, 256, 512, true),
    ]
    .iter()
    .enumerate()
    {
        let a = normal(&[b, m, k], 30 + i as u64);
        let rhs = if batched {
            normal(&[b, k, n], 40 + i as u64)
        } else {
            normal(&[k, n], 40 + i as u64)
        };
        check(
            &format!("matmul {b}×{m}×{k}×{n}"),
            dev,
            vec![a, rhs],
            1e-4,
            |t| t[0].matmul(&t[1]).unwrap(),
        );
    }
}

#[test]
fn layout_ops_match_cpu() {
    let Some(dev) = gpu() else { return };
    let x = normal(&[2, 3, 4, 5], 50);
    check("permute", dev, vec![x.clone()], 0.0, |t| {
        t[0].permute(&[2, 0, 3, 1]).unwrap()
    });
    check("broadcast", dev, vec![normal(&[3, 1, 5], 51)], 0.0, |t| {
        t[0].broadcast_to([2, 3, 4, 5]).unwrap()
    });
    check("narrow", dev, vec![x.clone()], 0.0, |t| {
        t[0].narrow(2, 1, 2).unwrap()
    });
    check("pad_axis", dev, vec![x.clone()], 0.0, |t| {
        t[0].pad_axis(1, 2, 1).unwrap()
    });
    check(
        "concat",
        dev,
        vec![x.clone(), normal(&[2, 1, 4, 5], 52)],
        0.0,
        |t| Tensor::concat(&[&t[0], &t[1], &t[0]], 1).unwrap(),
    );
    for mode in [PadMode::Zero, PadMode::Reflect, PadMode::Replicate] {
        check(&format!("pad2d {mode:?}"), dev, vec![x.clone()], 0.0, |t| {
            t[0].pad2d([2, 1, 3, 0], mode).unwrap()
        });
        check(
            &format!("pad2d_adjoint {mode:?}"),
            dev,
            vec![normal(&[2, 3, 7, 8], 53)],
            1e-6,
            |t| t[0].pad2d_adjoint([2, 1, 3, 0], mode).unwrap(),
        );
    }
}

/// (input, weight, stride, padding, dilation).
type ConvCase = ([usize; 4], [usize; 4], usize, usize, usize);

#[test]
fn convolutions_match_cpu() {
    let Some(dev) = gpu() else { return };
    // (input, weight, stride, padding, dilation): odd sizes, strides, dilation, a 1×1, one large
    // enough for the 128×128 tile, and one whose weight gradient splits K.
    let cases: [ConvCase; 7] = [
        ([1, 3, 11, 13], [5, 3, 3, 3], 1, 0, 1),
        ([2, 4, 16, 16], [8, 4, 3, 3], 1, 1, 1),
        ([2, 5, 17, 15], [6, 5, 4, 3], 2, 1, 1),
        ([1, 3, 20, 20], [4, 3, 3, 3], 1, 2, 2),
        ([2, 16, 9, 9], [7, 16, 1, 1], 1, 0, 1),
        ([4, 64, 32, 32], [128, 64, 3, 3], 1, 1, 1),
        ([8, 32, 64, 64], [32, 32, 3, 3], 1, 1, 1),
    ];
    for (i, &(xs, ws, s, p, d)) in cases.iter().enumerate() {
        let params = Conv2dParams::new(s, p, d);
        let x = normal(&xs, 60 + i as u64);
        let w = normal(&ws, 70 + i as u64).mul_scalar(0.2).unwrap();
        let name = format!("conv {xs:?} {ws:?} s{s} p{p} d{d}");
        check(&name, dev, vec![x.clone(), w.clone()], 1e-4, |t| {
            t[0].conv2d(&t[1], None, params).unwrap()
        });
        let y = x.conv2d(&w, None, params).unwrap();
        let g = normal(y.dims(), 80 + i as u64);
        check(
            &format!("{name} input grad"),
            dev,
            vec![g.clone(), w.clone()],
            1e-4,
            |t| {
                t[0].conv2d_input_grad(&t[1], [xs[2], xs[3]], params)
                    .unwrap()
            },
        );
        check(
            &format!("{name} weight grad"),
            dev,
            vec![x.clone(), g.clone()],
            // Sums of up to N·Ho·Wo = 32768 products, accumulated in a different order than the CPU's.
            5e-4,
            |t| {
                t[0].conv2d_weight_grad(&t[1], [ws[2], ws[3]], params)
                    .unwrap()
            },
        );
    }
}

#[test]
fn pooling_and_resizing_match_cpu() {
    let Some(dev) = gpu() else { return };
    let x = normal(&[2, 3, 13, 10], 90);
    for include_pad in [false, true] {
        let p = Pool2dParams {
            kernel: [3, 2],
            stride: [2, 2],
            padding: [1, 1],
            count_include_pad: include_pad,
        };
        check("avg_pool2d", dev, vec![x.clone()], 1e-6, |t| {
            t[0].avg_pool2d(p).unwrap()
        });
        let pooled = x.avg_pool2d(p).unwrap();
        check(
            "avg_pool2d_adjoint",
            dev,
            vec![normal(pooled.dims(), 91)],
            1e-6,
            |t| t[0].avg_pool2d_adjoint([13, 10], p).unwrap(),
        );
    }
    let mp = MaxPool2dParams::new(3, 2, 1).dilation(2);
    let xd = x.to_device(dev).unwrap();
    let (v, i) = x.max_pool2d_with_indices(mp).unwrap();
    let (vg, ig) = xd.max_pool2d_with_indices(mp).unwrap();
    assert_close("max_pool2d", &vg, &v, 0.0);
    assert_close("max_pool2d indices", &ig, &i, 0.0);
    let g = normal(v.dims(), 92);
    let scattered = g.max_pool2d_scatter(&i, [13, 10], mp).unwrap();
    let scattered_gpu = g
        .to_device(dev)
        .unwrap()
        .max_pool2d_scatter(&ig, [13, 10], mp)
        .unwrap();
    assert_close("max_pool2d_scatter", &scattered_gpu, &scattered, 1e-6);
    assert_close(
        "max_pool2d_gather",
        &xd.max_pool2d_gather(&ig, mp).unwrap(),
        &x.max_pool2d_gather(&i, mp).unwrap(),
        0.0,
    );
    for mode in [
        Interpolation::Nearest,
        Interpolation::Bilinear {
            align_corners: false,
        },
        Interpolation::Bilinear {
            align_corners: true,
        },
    ] {
        for out in [[26, 20], [7, 23]] {
            check(
                &format!("upsample {mode:?} {out:?}"),
                dev,
                vec![x.clone()],
                1e-5,
                |t| t[0].upsample2d(out, mode).unwrap(),
            );
            check(
                &format!("upsample adjoint {mode:?} {out:?}"),
                dev,
                vec![normal(&[2, 3, out[0], out[1]], 93)],
                1e-5,
                |t| t[0].upsample2d_adjoint([13, 10], mode).unwrap(),
            );
        }
    }
}

/// The composite normalization (as tessera-nn builds it) on CPU.
fn composite_norm(x: &Tensor, instance: bool, eps: f32) -> Tensor {
    let axes: &[usize] = if instance { &[2, 3] } else { &[0, 2, 3] };
    let mean = x.mean(axes, true).unwrap();
    let var = x.var(axes, false, true).unwrap();
    x.sub(&mean)
        .unwrap()
        .mul(&var.add_scalar(eps).unwrap().rsqrt().unwrap())
        .unwrap()
}

#[test]
fn fused_spade_norm_matches_the_composite() {
    use tessera_cuda::norm::{self, Modulation, NormShape};
    let Some(dev) = gpu() else { return };
    let buf = |t: &Tensor| match t.to_device(dev).unwrap().storage() {
        Storage::Cuda(s) => (s.buffer().clone(), s.gpu().clone()),
        Storage::Cpu(_) => unreachable!("moved to the GPU"),
    };
    let eps = 1e-5;
    for (dims, seed) in [([2usize, 5, 12, 12], 100u64), ([3, 4, 7, 9], 110)] {
        let [n, c, h, w] = dims;
        let x = normal(&dims, seed).affine(1.5, 0.3).unwrap();
        let gamma = normal(&dims, seed + 1).mul_scalar(0.3).unwrap();
        let beta = normal(&dims, seed + 2).mul_scalar(0.3).unwrap();
        let dy = normal(&dims, seed + 3);
        for instance in [true, false] {
            let shape = NormShape {
                n,
                c,
                hw: h * w,
                instance,
            };
            let (xb, g) = buf(&x);
            let (gb, _) = buf(&gamma);
            let (bb, _) = buf(&beta);
            let (dyb, _) = buf(&dy);
            let (y, stats) = norm::normalize(
                &g,
                &xb,
                shape,
                eps,
                Modulation::Spatial {
                    gamma: &gb,
                    beta: &bb,
                },
            )
            .unwrap();
            let y = Tensor::from_vec(g.download(&y).unwrap(), dims, Device::Cpu).unwrap();
            let xh = composite_norm(&x, instance, eps);
            let want = xh
                .mul(&gamma.add_scalar(1.0).unwrap())
                .unwrap()
                .add(&beta)
                .unwrap();
            let cmp = |name: &str, got: &Tensor, want: &Tensor, tol: f32| {
                assert_close(name, &got.to_device(dev).unwrap(), want, tol)
            };
            cmp(&format!("spade forward inst={instance}"), &y, &want, 1e-4);
            // Backward against the closed form of the composite's gradient:
            // dx = r·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)), ĝ = dy·(1 + γ), dγ = dy·x̂.
            let (dx, dgamma) =
                norm::backward(&g, &dyb, &xb, shape, (&stats.mean, &stats.rstd), Some(&gb))
                    .unwrap();
            let axes: &[usize] = if instance { &[2, 3] } else { &[0, 2, 3] };
            let r = x
                .var(axes, false, true)
                .unwrap()
                .add_scalar(eps)
                .unwrap()
                .rsqrt()
                .unwrap();
            let gh = dy.mul(&gamma.add_scalar(1.0).unwrap()).unwrap();
            let want_dx = gh
                .sub(&gh.mean(axes, true).unwrap())
                .unwrap()
                .sub(
                    &xh.mul(&gh.mul(&xh).unwrap().mean(axes, true).unwrap())
                        .unwrap(),
                )
                .unwrap()
                .mul(&r)
                .unwrap();
            let dx = Tensor::from_vec(g.download(&dx).unwrap(), dims, Device::Cpu).unwrap();
            let dgamma =
                Tensor::from_vec(g.download(&dgamma.unwrap()).unwrap(), dims, Device::Cpu).unwrap();
            cmp(&format!("spade dx inst={instance}"), &dx, &want_dx, 1e-3);
            check(
                &format!("Tensor::spade_norm inst={instance}"),
                dev,
                vec![x.clone(), gamma.clone(), beta.clone()],
                1e-4,
                |t| t[0].spade_norm(&t[1], &t[2], instance, eps).unwrap(),
            );
            cmp(
                &format!("spade dgamma inst={instance}"),
                &dgamma,
                &dy.mul(&xh).unwrap(),
                1e-4,
            );
        }
    }
}

#[test]
fn fused_adam_matches_a_host_reference() {
    use tessera_cuda::norm::{adam, AdamStep};
    if gpu().is_none() {
        return;
    }
    let gpu = tessera_cuda::gpu(0).unwrap();
    let len = 1000;
    let host = |seed| normal(&[len], seed).to_vec().unwrap();
    let (mut p, mut m, mut v) = (host(200), vec![0f32; len], vec![0f32; len]);
    let (mut pd, mut md, mut vd) = (
        gpu.upload(&p).unwrap(),
        gpu.upload(&m).unwrap(),
        gpu.upload(&v).unwrap(),
    );
    for step in 1..=3u32 {
        let g = host(210 + step as u64);
        let s = AdamStep {
            lr: 1e-2,
            beta1: 0.5,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 1e-3,
            step,
        };
        adam(&gpu, &mut pd, &mut md, &mut vd, &gpu.upload(&g).unwrap(), s).unwrap();
        // torch.optim.Adam's update, in f32 on the host.
        let (bc1, bc2) = (
            1.0 - s.beta1.powi(step as i32),
            1.0 - s.beta2.powi(step as i32),
        );
        for i in 0..len {
            let gi = g[i] + s.weight_decay * p[i];
            m[i] = s.beta1 * m[i] + (1.0 - s.beta1) * gi;
            v[i] = s.beta2 * v[i] + (1.0 - s.beta2) * gi * gi;
            p[i] -= s.lr * (m[i] / bc1) / ((v[i] / bc2).sqrt() + s.eps);
        }
    }
    let got = gpu.download(&pd).unwrap();
    let worst = got
        .iter()
        .zip(&p)
        .fold(0f32, |w, (a, b)| w.max((a - b).abs() / (1.0 + b.abs())));
    assert!(worst < 1e-6, "adam: {worst}");
    let short = gpu.upload(&[0.0; 3]).unwrap();
    let step = AdamStep {
        lr: 1e-3,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
        step: 1,
    };
    assert!(adam(&gpu, &mut pd, &mut md, &mut vd, &short, step).is_err());
}

#[test]
fn tensor_adam_step_matches_cpu() {
    let Some(dev) = gpu() else { return };
    let s = AdamStep {
        lr: 2e-3,
        beta1: 0.5,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 1e-2,
        step: 4,
    };
    let (p, g, m) = (
        normal(&[7, 33], 300),
        normal(&[7, 33], 301),
        normal(&[7, 33], 302),
    );
    let v = normal(&[7, 33], 303).sqr().unwrap();
    let on = |t: &Tensor| t.to_device(dev).unwrap();
    let cpu = p.adam_step(&g, &m, &v, s).unwrap();
    let gpu = on(&p).adam_step(&on(&g), &on(&m), &on(&v), s).unwrap();
    assert_close("adam_step p", &gpu.0, &cpu.0, 1e-6);
    assert_close("adam_step m", &gpu.1, &cpu.1, 1e-6);
    assert_close("adam_step v", &gpu.2, &cpu.2, 1e-6);
    // The inputs are left as they were (the kernel updates copies in place).
    assert_close("adam_step input", &on(&p), &p, 0.0);
}

#[test]
fn norm_stats_modulate_and_backward_match_cpu() {
    let Some(dev) = gpu() else { return };
    let eps = 1e-5;
    for (dims, seed) in [
        ([2usize, 5, 12, 12], 200u64),
        ([3, 4, 7, 9], 210),
        ([1, 3, 1, 2], 220),
    ] {
        let c = dims[1];
        let x = normal(&dims, seed).affine(1.5, 0.3).unwrap();
        let map = normal(&dims, seed + 1).mul_scalar(0.3).unwrap();
        let dy = normal(&dims, seed + 2);
        let per_channel = normal(&[c], seed + 3);
        for instance in [true, false] {
            let name = |what: &str| format!("{what} inst={instance} {dims:?}");
            check(&name("norm_stats mean"), dev, vec![x.clone()], 1e-5, |t| {
                t[0].norm_stats(instance, eps).unwrap().0
            });
            check(&name("norm_stats rstd"), dev, vec![x.clone()], 1e-4, |t| {
                t[0].norm_stats(instance, eps).unwrap().1
            });
            for kind in 0..3 {
                let inputs = vec![x.clone(), per_channel.clone(), map.clone()];
                check(
                    &name(&format!("norm_modulate {kind}")),
                    dev,
                    inputs,
                    1e-4,
                    |t| {
                        let (mean, rstd) = t[0].norm_stats(instance, eps).unwrap();
                        let m = match kind {
                            0 => NormModulation::None,
                            1 => NormModulation::Channel {
                                gamma: &t[1],
                                beta: &t[1],
                            },
                            _ => NormModulation::Spatial {
                                gamma: &t[2],
                                beta: &t[2],
                            },
                        };
                        t[0].norm_modulate(&mean, &rstd, instance, m).unwrap()
                    },
                );
            }
            for spatial in [false, true] {
                let inputs = vec![x.clone(), dy.clone(), map.clone()];
                let backward = |t: &[Tensor]| {
                    let (mean, rstd) = t[0].norm_stats(instance, eps).unwrap();
                    let gamma = spatial.then_some(&t[2]);
                    t[1].norm_backward(&t[0], &mean, &rstd, instance, gamma)
                        .unwrap()
                };
                check(
                    &name(&format!("norm_backward dx γ={spatial}")),
                    dev,
                    inputs.clone(),
                    1e-3,
                    |t| backward(t).0,
                );
                if spatial {
                    check(&name("norm_backward dγ"), dev, inputs, 1e-4, |t| {
                        backward(t).1.unwrap()
                    });
                }
            }
        }
    }
}
