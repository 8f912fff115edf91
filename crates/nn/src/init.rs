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

/// A tensor filled with `value` (`nn.init.constant_`).
pub fn constant(shape: impl Into<Shape>, value: f32) -> Result<Tensor> {
    Ok(Tensor::full(value, shape, Device::Cpu)?)
}

pub fn zeros(shape: impl Into<Shape>) -> Result<Tensor> {
    constant(shape, 0.0)
}

pub fn ones(shape: impl Into<Shape>) -> Result<Tensor> {
    constant(shape, 1.0)
}

/// The nonlinearity a layer feeds, for [`calculate_gain`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Nonlinearity {
    /// Identity, convolutions and sigmoid: gain 1.
    Linear,
    Sigmoid,
    /// Gain 5/3.
    Tanh,
    /// Gain √2.
    Relu,
    /// Gain √(2 / (1 + slope²)).
    LeakyRelu(f32),
}

/// PyTorch's `nn.init.calculate_gain`.
pub fn calculate_gain(nonlinearity: Nonlinearity) -> f32 {
    match nonlinearity {
        Nonlinearity::Linear | Nonlinearity::Sigmoid => 1.0,
        Nonlinearity::Tanh => 5.0 / 3.0,
        Nonlinearity::Relu => 2f32.sqrt(),
        Nonlinearity::LeakyRelu(slope) => (2.0 / (1.0 + slope * slope)).sqrt(),
    }
}

/// Xavier (Glorot) uniform: U(−b, b) with b = gain·√(6 / (fan_in + fan_out)).
pub fn xavier_uniform(shape: impl Into<Shape>, gain: f32, rng: &mut Rng) -> Result<Tensor> {
    let shape = shape.into();
    let (fi, fo) = fans(&shape);
    uniform(shape, gain * (6.0 / (fi + fo).max(1) as f32).sqrt(), rng)
}

/// Which fan Kaiming init preserves the variance of.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FanMode {
    FanIn,
    FanOut,
}

fn kaiming_std(shape: &Shape, slope: f32, mode: FanMode) -> f32 {
    let (fi, fo) = fans(shape);
    let fan = match mode {
        FanMode::FanIn => fi,
        FanMode::FanOut => fo,
    };
    calculate_gain(Nonlinearity::LeakyRelu(slope)) / (fan.max(1) as f32).sqrt()
}

/// Kaiming (He) normal for a leaky-ReLU slope `a` (0 for ReLU): N(0, std²) with
/// std = √(2 / (1 + a²)) / √fan (`nn.init.kaiming_normal_(w, a, mode, 'leaky_relu')`).
pub fn kaiming_normal(
    shape: impl Into<Shape>,
    a: f32,
    mode: FanMode,
    rng: &mut Rng,
) -> Result<Tensor> {
    let shape = shape.into();
    let std = kaiming_std(&shape, a, mode);
    normal(shape, 0.0, std, rng)
}

/// Kaiming (He) uniform: U(−b, b) with b = √3·std of [`kaiming_normal`]. With `a = √5` and
/// fan-in this is PyTorch's default layer init ([`default_weight`]).
pub fn kaiming_uniform(
    shape: impl Into<Shape>,
    a: f32,
    mode: FanMode,
    rng: &mut Rng,
) -> Result<Tensor> {
    let shape = shape.into();
    let bound = 3f32.sqrt() * kaiming_std(&shape, a, mode);
    uniform(shape, bound, rng)
}

/// The DCGAN/SinGAN init of a layer's weight: N(0, 0.02²) for convolutions, N(1, 0.02²) for a
/// norm's scale (whose shift is then set to 0).
pub fn gan_normal(shape: impl Into<Shape>, mean: f32, rng: &mut Rng) -> Result<Tensor> {
    normal(shape, mean, 0.02, rng)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stats(t: &Tensor) -> (f64, f64, f64) {
        let v = t.to_vec().unwrap();
        let n = v.len() as f64;
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
        let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n;
        let max = v.iter().fold(0f64, |m, &x| m.max((x as f64).abs()));
        (mean, var.sqrt(), max)
    }

    #[test]
    fn fans_follow_pytorch() {
        assert_eq!(fans(&Shape::new([8, 3, 3, 3])), (27, 72));
        assert_eq!(fans(&Shape::new([5, 7])), (7, 5));
        // ConvTranspose2d weight [in, out, k, k]: PyTorch takes fan_in from axis 1.
        assert_eq!(fans(&Shape::new([4, 6, 2, 2])), (24, 16));
    }

    #[test]
    fn gains() {
        assert_eq!(calculate_gain(Nonlinearity::Linear), 1.0);
        assert!((calculate_gain(Nonlinearity::Tanh) - 5.0 / 3.0).abs() < 1e-7);
        assert!((calculate_gain(Nonlinearity::Relu) - 2f32.sqrt()).abs() < 1e-7);
        let g = calculate_gain(Nonlinearity::LeakyRelu(0.2));
        assert!((g - (2.0f32 / 1.04).sqrt()).abs() < 1e-7);
    }

    #[test]
    fn distributions_have_the_documented_scale() {
        let mut rng = Rng::seed(7);
        let shape = [64, 32, 3, 3]; // fan_in 288, fan_out 576
        let (m, s, _) = stats(&xavier_normal(shape, 2.0, &mut rng).unwrap());
        assert!(m.abs() < 0.01 && (s / (2.0 * (2.0f64 / 864.0).sqrt()) - 1.0).abs() < 0.03);
        let b = (6.0f64 / 864.0).sqrt();
        let (_, s, max) = stats(&xavier_uniform(shape, 1.0, &mut rng).unwrap());
        assert!(max <= b && (s / (b / 3f64.sqrt()) - 1.0).abs() < 0.03);
        let (_, s, _) = stats(&kaiming_normal(shape, 0.0, FanMode::FanOut, &mut rng).unwrap());
        assert!((s / (2.0f64 / 576.0).sqrt() - 1.0).abs() < 0.03);
        // kaiming_uniform(a = √5) is the default init: bound 1/√fan_in.
        let t = kaiming_uniform(shape, 5f32.sqrt(), FanMode::FanIn, &mut rng).unwrap();
        let (_, _, max) = stats(&t);
        assert!(max <= 1.0 / 288f64.sqrt() + 1e-7 && max > 0.9 / 288f64.sqrt());
        let (m, s, _) = stats(&gan_normal(shape, 1.0, &mut rng).unwrap());
        assert!((m - 1.0).abs() < 0.002 && (s / 0.02 - 1.0).abs() < 0.03);
        assert_eq!(stats(&ones([3]).unwrap()), (1.0, 0.0, 1.0));
    }
}
