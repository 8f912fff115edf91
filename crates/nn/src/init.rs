//! Initializers, as in `torch.nn.init` and PyTorch's default layer init.
use crate::Result;
use tessera_tensor::{Device, Rng, Shape, Tensor};

/// fan_in and fan_out of a weight shaped [out, in, k…] (PyTorch's `_calculate_fan_in_and_fan_out`).
pub fn fans(shape: &Shape) -> (usize, usize) {
    let d = shape.dims();
    let receptive: usize = d.iter().skip(2).product();
    match d {
        [] => (1, 1),
        [n] => (*n, *n),
        [out, inp, ..] => (inp * receptive, out * receptive),
    }
}

/// N(mean, std²).
pub fn normal(shape: impl Into<Shape>, mean: f32, std: f32, rng: &mut Rng) -> Result<Tensor> {
    Ok(Tensor::randn(shape, mean, std, rng, Device::Cpu)?)
}

/// U(−bound, bound).
pub fn uniform(shape: impl Into<Shape>, bound: f32, rng: &mut Rng) -> Result<Tensor> {
    Ok(Tensor::rand_uniform(
        shape,
        -bound,
        bound,
        rng,
        Device::Cpu,
    )?)
}

/// Xavier (Glorot) normal: std = gain·√(2 / (fan_in + fan_out)).
pub fn xavier_normal(shape: impl Into<Shape>, gain: f32, rng: &mut Rng) -> Result<Tensor> {
    let shape = shape.into();
    let (fi, fo) = fans(&shape);
    normal(shape, 0.0, gain * (2.0 / (fi + fo) as f32).sqrt(), rng)
}

/// PyTorch's default init of Conv and Linear weights: kaiming_uniform(a = √5), which is
/// U(−1/√fan_in, 1/√fan_in).
pub fn default_weight(shape: impl Into<Shape>, rng: &mut Rng) -> Result<Tensor> {
    let shape = shape.into();
    let (fi, _) = fans(&shape);
    uniform(shape, 1.0 / (fi.max(1) as f32).sqrt(), rng)
}

/// PyTorch's default init of Conv and Linear biases: U(−1/√fan_in, 1/√fan_in).
pub fn default_bias(len: usize, fan_in: usize, rng: &mut Rng) -> Result<Tensor> {
    uniform([len], 1.0 / (fan_in.max(1) as f32).sqrt(), rng)
}
