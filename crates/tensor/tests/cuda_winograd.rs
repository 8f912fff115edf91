//! The Winograd F(4×4, 3×3) weight gradient on CUDA (`set_cuda_conv_winograd(true)`) against
//! the CPU backend, within the float32 error its transforms allow. A test binary of its own: the
//! setting is process-wide, and the other CUDA tests expect the implicit GEMM. Needs a GPU;
//! without one the test prints SKIP and passes.
#![cfg(feature = "cuda")]

mod common;

use common::{cuda_device, normal};
use tessera_tensor::*;

fn weight_grad(x: &Tensor, g: &Tensor, k: [usize; 2], p: Conv2dParams, dev: Device) -> Vec<f32> {
    let dw = x
        .to_device(dev)
        .unwrap()
        .conv2d_weight_grad(&g.to_device(dev).unwrap(), k, p)
        .unwrap();
    assert_eq!(dw.device(), dev, "the weight gradient left the device");
    dw.to_vec().unwrap()
}

/// Checks the Winograd result element by element against the CPU's: |gpu − cpu| ≤
/// 3e-5·Σ|x||gy| + 1e-5·(1 + |cpu|), where Σ|x||gy| is the weight gradient of the absolute
/// values. The kernels' replay in float32 (`crates/cuda/gpu/winograd_wgrad_emulation.py`) errs
/// by at most 1e-6 of Σ|x||gy|; a wrong index errs by the size of the result itself. Also checks
/// that Winograd ran: its result differs from the implicit GEMM's.
fn check_winograd(x: &Tensor, g: &Tensor, p: Conv2dParams, dev: Device, name: &str) {
    let k = [3, 3];
    let cpu = weight_grad(x, g, k, p, Device::Cpu);
    let magnitude = x
        .abs()
        .unwrap()
        .conv2d_weight_grad(&g.abs().unwrap(), k, p)
        .unwrap()
        .to_vec()
        .unwrap();
    set_cuda_conv_winograd(true);
    let winograd = weight_grad(x, g, k, p, dev);
    set_cuda_conv_winograd(false);
    let gemm = weight_grad(x, g, k, p, dev);
    assert_eq!(winograd.len(), cpu.len(), "{name}: length");
    let mut worst = 0f32;
    for (i, ((&w, &c), &m)) in winograd.iter().zip(&cpu).zip(&magnitude).enumerate() {
        let bound = 3e-5 * m + 1e-5 * (1.0 + c.abs());
        assert!(
            (w - c).abs() <= bound,
            "{name}[{i}]: Winograd {w}, CPU {c}, bound {bound} (Σ|x||gy| = {m})"
        );
        worst = worst.max((w - c).abs() / m.max(f32::MIN_POSITIVE));
    }
    assert!(
        winograd != gemm,
        "{name}: the Winograd result equals the implicit GEMM's bit for bit (Winograd not used?)"
    );
    eprintln!("{name}: worst |Winograd − CPU| / Σ|x||gy| = {worst:.2e}");
}

/// One test, because the setting is process-wide and tests run on parallel threads.
#[test]
fn winograd_weight_gradients() {
    let Some(dev) = cuda_device("Winograd weight-gradient tests") else {
        return;
    };
    winograd_matches_cpu(dev);
    other_convolutions_ignore_the_setting(dev);
}

fn winograd_matches_cpu(dev: Device) {
    // (input, output channels, padding): each GEMM tile (32×128 for ≤ 32 output channels,
    // 64×64, 128×128), K splits, partial 4×4 tiles, padding 0–2, several images, SPADE's 151
    // label channels.
    let cases: [([usize; 4], usize, usize); 7] = [
        ([1, 3, 11, 13], 5, 1),
        ([2, 40, 17, 9], 48, 0),
        ([2, 16, 20, 22], 8, 2),
        ([4, 128, 32, 32], 256, 1),
        ([2, 151, 32, 32], 128, 1),
        ([1, 64, 100, 100], 64, 1),
        ([3, 7, 6, 5], 130, 1),
    ];
    for (i, &(xs, co, pad)) in cases.iter().enumerate() {
        let p = Conv2dParams::new(1, pad, 1);
        let x = normal(&xs, 260 + i as u64);
        let y = x
            .conv2d(&normal(&[co, xs[1], 3, 3], 270 + i as u64), None, p)
            .unwrap();
        let g = normal(y.dims(), 280 + i as u64);
        check_winograd(
            &x,
            &g,
            p,
            dev,
            &format!("weight grad {xs:?} → {co}, padding {pad}"),
        );
    }
}

/// (input, weight, stride, padding, dilation).
type ConvCase = ([usize; 4], [usize; 4], usize, usize, usize);

fn other_convolutions_ignore_the_setting(dev: Device) {
    // Strided, dilated and non-3×3 convolutions run as the implicit GEMM, setting or not.
    let cases: [ConvCase; 3] = [
        ([2, 8, 17, 15], [16, 8, 3, 3], 2, 1, 1),
        ([1, 8, 20, 20], [16, 8, 3, 3], 1, 2, 2),
        ([2, 8, 12, 12], [16, 8, 5, 5], 1, 2, 1),
    ];
    for (i, &(xs, ws, s, pad, d)) in cases.iter().enumerate() {
        let p = Conv2dParams::new(s, pad, d);
        let x = normal(&xs, 290 + i as u64);
        let y = x.conv2d(&normal(&ws, 300 + i as u64), None, p).unwrap();
        let g = normal(y.dims(), 310 + i as u64);
        let k = [ws[2], ws[3]];
        set_cuda_conv_winograd(true);
        let with = weight_grad(&x, &g, k, p, dev);
        set_cuda_conv_winograd(false);
        let without = weight_grad(&x, &g, k, p, dev);
        assert_eq!(with, without, "case {i}: {xs:?} {ws:?} s{s} p{pad} d{d}");
    }
}
