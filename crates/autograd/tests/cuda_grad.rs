//! Autograd on the GPU: a small critic (conv, LeakyReLU, instance norm as a composite, bilinear
//! resize, average pooling, max pooling, fused batch norm, conv) and a WGAN-GP penalty on its
//! input gradient, so the second-order pass (grad of grad) runs through every backward rule on
//! the device. The GPU values and gradients must match the CPU backend's. Without a GPU the test
//! prints SKIP.
#![cfg(feature = "cuda")]

use tessera_autograd::{grad, Var};
use tessera_tensor::{
    Conv2dParams, Device, MaxPool2dParams, NormModulation, Pool2dParams, Rng, Tensor,
};

fn gpu() -> Option<Device> {
    if !tessera_cuda::driver_present() || tessera_cuda::device_count() == 0 {
        eprintln!("SKIP: no CUDA driver or device; GPU autograd test not run");
        return None;
    }
    Some(Device::Cuda(0))
}

/// (critic score, ∂score/∂x, ∂penalty/∂w1, ∂penalty/∂w2) on `dev`, all as host vectors.
fn critic_and_penalty(dev: Device) -> Vec<Vec<f32>> {
    let mut rng = Rng::seed(7);
    let mut t = |dims: &[usize], std: f32| {
        Tensor::randn(dims.to_vec(), 0.0, std, &mut rng, Device::Cpu)
            .and_then(|t| t.to_device(dev))
            .unwrap()
    };
    let x = Var::param(t(&[2, 3, 12, 12], 1.0));
    let w1 = Var::param(t(&[8, 3, 3, 3], 0.3));
    let w2 = Var::param(t(&[1, 8, 3, 3], 0.3));
    let h = x
        .conv2d(&w1, None, Conv2dParams::new(1, 1, 1))
        .unwrap()
        .leaky_relu(0.2)
        .unwrap();
    let mean = h.mean(&[2, 3], true).unwrap();
    let var = h.var(&[2, 3], false, true).unwrap();
    let h = h
        .sub(&mean)
        .unwrap()
        .mul(&var.add_scalar(1e-5).unwrap().rsqrt().unwrap())
        .unwrap()
        .upsample_bilinear2d([18, 18], false)
        .unwrap()
        .avg_pool2d(Pool2dParams {
            kernel: [2, 2],
            stride: [2, 2],
            padding: [0, 0],
            count_include_pad: true,
        })
        .unwrap()
        .max_pool2d(MaxPool2dParams::new(3, 1, 1))
        .unwrap()
        // The fused batch norm: fused kernels first order, recorded composite second order.
        .normalize(false, 1e-5, NormModulation::None)
        .unwrap()
        .output;
    let score = h
        .conv2d(&w2, None, Conv2dParams::new(2, 0, 1))
        .unwrap()
        .tanh()
        .unwrap()
        .sum_all()
        .unwrap();
    let gx = grad(&[&score], &[&x], None, true).unwrap().remove(0);
    let norm = gx
        .sqr()
        .unwrap()
        .sum(&[1, 2, 3], false)
        .unwrap()
        .sqrt()
        .unwrap();
    let penalty = norm
        .add_scalar(-1.0)
        .unwrap()
        .sqr()
        .unwrap()
        .mean_all()
        .unwrap();
    let g = grad(&[&penalty], &[&w1, &w2], None, false).unwrap();
    for v in [&score, &gx, &g[0], &g[1]] {
        assert_eq!(v.value().device(), dev, "a result left the device");
    }
    [&score, &gx, &g[0], &g[1]]
        .iter()
        .map(|v| v.value().to_vec().unwrap())
        .collect()
}

#[test]
fn wgan_gp_penalty_gradients_match_cpu_on_gpu() {
    let Some(dev) = gpu() else { return };
    let cpu = critic_and_penalty(Device::Cpu);
    let gpu = critic_and_penalty(dev);
    for (name, (c, g)) in ["score", "∂score/∂x", "∂penalty/∂w1", "∂penalty/∂w2"]
        .iter()
        .zip(cpu.iter().zip(&gpu))
    {
        let scale = c.iter().fold(0f32, |m, v| m.max(v.abs())).max(1e-6);
        let worst = c
            .iter()
            .zip(g)
            .fold(0f32, |m, (a, b)| m.max((a - b).abs() / scale));
        assert!(
            worst < 1e-3,
            "{name}: GPU differs from CPU by {worst} of its scale"
        );
    }
    // The second-order gradient must not be silently zero.
    assert!(
        gpu[2].iter().any(|v| v.abs() > 1e-6),
        "∂penalty/∂w1 is zero"
    );
}
