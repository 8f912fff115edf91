//! Data and adapters shared by tessera-gan's integration tests.
#![allow(dead_code)]
use tessera_autograd::Var;
use tessera_gan::Error;
use tessera_tensor::{Device, Rng, Tensor};

pub const CPU: Device = Device::Cpu;

pub fn tensor(v: Vec<f32>, shape: &[usize]) -> Tensor {
    Tensor::from_vec(v, shape.to_vec(), CPU).unwrap()
}

pub fn normal(shape: &[usize], std: f32, seed: u64) -> Tensor {
    let n = shape.iter().product();
    tensor(Rng::seed(seed).normal_vec(n, 0.0, std), shape)
}

pub fn uniform(shape: &[usize], lo: f32, hi: f32, seed: u64) -> Tensor {
    let n = shape.iter().product();
    tensor(Rng::seed(seed).uniform_vec(n, lo, hi), shape)
}

/// Uniform values on [lo, hi) moved at least `margin` away from `kink`.
pub fn away_from(kink: f32, margin: f32, shape: &[usize], lo: f32, hi: f32, seed: u64) -> Tensor {
    let t = uniform(shape, lo, hi, seed).to_vec().unwrap();
    let v = t
        .into_iter()
        .map(|x| {
            if (x - kink).abs() < margin {
                kink + (x - kink).signum() * margin * 2.0 + margin * 0.5
            } else {
                x
            }
        })
        .collect();
    tensor(v, shape)
}

/// A tessera-gan result as the autograd result the gradient checker expects; any other error
/// is a test failure.
pub fn ag(r: tessera_gan::Result<Var>) -> tessera_autograd::Result<Var> {
    r.map_err(|e| match e {
        Error::Autograd(a) => a,
        other => panic!("unexpected error: {other}"),
    })
}

/// A narrow VGG19 weight file (torchvision names, random weights) as safetensors bytes.
pub fn vgg_bytes(widths: [usize; 5], seed: u64) -> Vec<u8> {
    vgg_bytes_edited(widths, seed, |_, shape| Some(shape))
}

/// Like [`vgg_bytes`], with `edit(name, shape)` choosing each tensor's shape (None drops it).
pub fn vgg_bytes_edited(
    widths: [usize; 5],
    seed: u64,
    edit: impl Fn(&str, Vec<usize>) -> Option<Vec<usize>>,
) -> Vec<u8> {
    use safetensors::tensor::{Dtype, TensorView};
    let config = tessera_gan::Vgg19Config { widths };
    let mut rng = Rng::seed(seed);
    let tensors: Vec<(String, Vec<usize>, Vec<u8>)> = config
        .required_tensors()
        .into_iter()
        .filter_map(|(name, shape)| {
            let shape = edit(&name, shape)?;
            let n: usize = shape.iter().product();
            let fan_in = if shape.len() == 4 { shape[1] * 9 } else { 100 };
            let std = (2.0 / fan_in as f32).sqrt();
            let bytes = rng
                .normal_vec(n, 0.0, std)
                .iter()
                .flat_map(|v| v.to_le_bytes())
                .collect();
            Some((name, shape, bytes))
        })
        .collect();
    let views: Vec<(String, TensorView<'_>)> = tensors
        .iter()
        .map(|(n, s, b)| {
            (
                n.clone(),
                TensorView::new(Dtype::F32, s.clone(), b).unwrap(),
            )
        })
        .collect();
    safetensors::serialize(views, None).unwrap()
}
