//! The TF32 tensor-core convolutions (`set_cuda_conv_tf32(true)`) against the CPU backend, within
//! the error that rounding the operands to TF32 allows. A test binary of its own: the setting is
//! process-wide, and the other CUDA tests expect FP32. Needs a GPU of compute capability 8.0 or
//! more; without one the test prints SKIP and passes.
#![cfg(feature = "cuda")]

mod common;

use common::{cuda_device, normal};
use tessera_tensor::*;

fn tf32_gpu() -> Option<Device> {
    let dev = cuda_device("TF32 convolution tests")?;
    match tessera_cuda::gpu(0) {
        Ok(g) if g.has_tf32() => Some(dev),
        Ok(g) => {
            eprintln!("SKIP: {g:?} has no TF32 tensor cores; TF32 convolution tests not run");
            None
        }
        Err(e) => panic!("CUDA device 0 is present but cannot be opened: {e}"),
    }
}

/// One convolution pass: its operands on the CPU and the op.
struct Pass<'a> {
    name: String,
    operands: [Tensor; 2],
    op: &'a dyn Fn(&Tensor, &Tensor) -> Tensor,
}

impl Pass<'_> {
    fn on(&self, dev: Device) -> Vec<f32> {
        let [a, b] = &self.operands;
        let y = (self.op)(&a.to_device(dev).unwrap(), &b.to_device(dev).unwrap());
        assert_eq!(y.device(), dev, "{} left the device", self.name);
        y.to_vec().unwrap()
    }
}

/// Checks the TF32 result of `pass` element by element against the CPU's: rounding both operands
/// to TF32 (relative error ≤ 2⁻¹¹ each) changes each product by at most 2⁻¹⁰ of its magnitude,
/// so |gpu − cpu| ≤ 2⁻¹⁰·Σ|a||b| plus FP32 summation error, where Σ|a||b| is the same pass on
/// the operands' absolute values. A wrong fragment layout errs by the size of the outputs
/// themselves, far above this bound. Also checks that the tensor cores ran: the TF32 result
/// differs from the FP32 kernels'.
fn check_tf32(pass: &Pass, dev: Device) {
    let [a, b] = &pass.operands;
    let cpu = pass.on(Device::Cpu);
    let magnitude = (pass.op)(&a.abs().unwrap(), &b.abs().unwrap())
        .to_vec()
        .unwrap();
    set_cuda_conv_tf32(true);
    let tf32 = pass.on(dev);
    set_cuda_conv_tf32(false);
    let fp32 = pass.on(dev);
    assert_eq!(tf32.len(), cpu.len(), "{}: length", pass.name);
    let mut worst = 0f32;
    for (i, ((&g, &c), &m)) in tf32.iter().zip(&cpu).zip(&magnitude).enumerate() {
        let bound = 1.2e-3 * m + 1e-5 * (1.0 + c.abs());
        assert!(
            (g - c).abs() <= bound,
            "{}[{i}]: TF32 {g}, CPU {c}, bound {bound} (Σ|a||b| = {m})",
            pass.name
        );
        worst = worst.max((g - c).abs() / m.max(f32::MIN_POSITIVE));
    }
    assert!(
        tf32 != fp32,
        "{}: the TF32 result equals the FP32 kernels' bit for bit (tensor cores not used?)",
        pass.name
    );
    eprintln!("{}: worst |TF32 − CPU| / Σ|a||b| = {worst:.2e}", pass.name);
}

/// (input, weight, stride, padding, dilation).
type ConvCase = ([usize; 4], [usize; 4], usize, usize, usize);

#[test]
fn tf32_convolutions_match_cpu_within_tf32_rounding() {
    let Some(dev) = tf32_gpu() else { return };
    // Each of the three tiles (32×128 for ≤ 32 output rows, 64×64, 128×128), split K, strides,
    // dilation, odd sizes, and SPADE's 151 label channels.
    let cases: [ConvCase; 8] = [
        ([1, 3, 11, 13], [5, 3, 3, 3], 1, 0, 1),
        ([2, 5, 17, 15], [6, 5, 4, 3], 2, 1, 1),
        ([1, 3, 20, 20], [4, 3, 3, 3], 1, 2, 2),
        ([4, 64, 32, 32], [128, 64, 3, 3], 1, 1, 1),
        ([8, 32, 64, 64], [32, 32, 3, 3], 1, 1, 1),
        ([2, 151, 16, 16], [128, 151, 3, 3], 1, 1, 1),
        ([2, 16, 96, 96], [128, 16, 3, 3], 1, 1, 1),
        ([2, 128, 96, 96], [16, 128, 3, 3], 1, 1, 1),
    ];
    for (i, &(xs, ws, s, p, d)) in cases.iter().enumerate() {
        let params = Conv2dParams::new(s, p, d);
        let x = normal(&xs, 160 + i as u64);
        let w = normal(&ws, 170 + i as u64).mul_scalar(0.2).unwrap();
        let y = x.conv2d(&w, None, params).unwrap();
        let g = normal(y.dims(), 180 + i as u64);
        let name = format!("conv {xs:?} {ws:?} s{s} p{p} d{d}");
        let forward = |x: &Tensor, w: &Tensor| x.conv2d(w, None, params).unwrap();
        let input_grad =
            |g: &Tensor, w: &Tensor| g.conv2d_input_grad(w, [xs[2], xs[3]], params).unwrap();
        let weight_grad =
            |x: &Tensor, g: &Tensor| x.conv2d_weight_grad(g, [ws[2], ws[3]], params).unwrap();
        let passes = [
            Pass {
                name: name.clone(),
                operands: [x.clone(), w.clone()],
                op: &forward,
            },
            Pass {
                name: format!("{name} input grad"),
                operands: [g.clone(), w.clone()],
                op: &input_grad,
            },
            Pass {
                name: format!("{name} weight grad"),
                operands: [x.clone(), g.clone()],
                op: &weight_grad,
            },
        ];
        for pass in &passes {
            check_tf32(pass, dev);
        }
    }
}
