//! The multiscale PatchGAN discriminator.
use crate::block::{MaybeSpectralConv, LRELU_SLOPE};
use crate::config::ModelConfig;
use crate::error::{shape_error, Result};
use tessera_autograd::Var;
use tessera_nn::{join, AvgPool2d, Conv2d, Conv2dConfig, Entry, InstanceNorm2d, Module};
use tessera_tensor::Rng;

/// Every block's output of every scale, `[scale][block]`, the logit map last in each scale.
pub type ScaleOutputs = Vec<Vec<Var>>;

/// Kernel size and padding of every discriminator conv (padding `ceil((4 − 1) / 2)`).
const KERNEL: usize = 4;
const PAD: usize = 2;
/// Channel growth stops here.
const MAX_CHANNELS: usize = 512;

/// One middle layer: spectral-normed conv without bias, InstanceNorm (affine off), LeakyReLU.
/// Named `model<k>.0.0.*`.
#[derive(Debug)]
pub struct DiscriminatorLayer {
    pub conv: MaybeSpectralConv,
    pub norm: InstanceNorm2d,
}

/// `NLayerDiscriminator` with n = n_layers_D, nf = ndf:
///
/// ```text
/// model0      conv(in → nf, stride 2), bias, LeakyReLU 0.2           (no norm)
/// model1..n−1 SN conv(→ min(2·prev, 512), stride 2; 1 for the last), IN, LeakyReLU
/// model n     conv(→ 1, stride 1), bias                                 (the patch logits)
/// ```
///
/// All 4×4 with padding 2. The forward returns every block's output; the last is the logit
/// map.
#[derive(Debug)]
pub struct NLayerDiscriminator {
    pub model0: Conv2d,
    pub middle: Vec<DiscriminatorLayer>,
    pub last: Conv2d,
}

impl NLayerDiscriminator {
    pub fn new(input_nc: usize, ndf: usize, n_layers: usize, rng: &mut Rng) -> Result<Self> {
        let conv = |i: usize, o: usize, stride: usize| {
            Conv2dConfig::new(i, o, KERNEL).stride(stride).padding(PAD)
        };
        let model0 = Conv2d::new(conv(input_nc, ndf, 2), rng)?;
        let mut nf = ndf;
        let mut middle = Vec::new();
        for n in 1..n_layers {
            let prev = nf;
            nf = (nf * 2).min(MAX_CHANNELS);
            let stride = if n == n_layers - 1 { 1 } else { 2 };
            middle.push(DiscriminatorLayer {
                conv: MaybeSpectralConv::new(conv(prev, nf, stride).bias(false), true, rng)?,
                norm: InstanceNorm2d::new(nf)?,
            });
        }
        let last = Conv2d::new(conv(nf, 1, 1), rng)?;
        Ok(NLayerDiscriminator {
            model0,
            middle,
            last,
        })
    }

    /// Every block's output, the logit map last.
    pub fn forward(&self, x: &Var) -> Result<Vec<Var>> {
        let mut outs = Vec::with_capacity(self.middle.len() + 2);
        let mut x = self.model0.forward(x)?.leaky_relu(LRELU_SLOPE)?;
        outs.push(x.clone());
        for layer in &self.middle {
            x = layer
                .norm
                .forward(&layer.conv.forward(&x)?)?
                .leaky_relu(LRELU_SLOPE)?;
            outs.push(x.clone());
        }
        outs.push(self.last.forward(&x)?);
        Ok(outs)
    }
}

impl Module for NLayerDiscriminator {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.model0.visit(&join(prefix, "model0.0"), f);
        for (k, layer) in self.middle.iter().enumerate() {
            let name = join(prefix, &format!("model{}.0", k + 1));
            layer.conv.visit(&join(&name, "0"), f);
            layer.norm.visit(&join(&name, "1"), f);
        }
        let last = format!("model{}.0", self.middle.len() + 1);
        self.last.visit(&join(prefix, &last), f);
    }
    fn set_training(&mut self, training: bool) {
        for layer in &mut self.middle {
            layer.conv.set_training(training);
            layer.norm.set_training(training);
        }
    }
}

/// `MultiscaleDiscriminator`: num_D [`NLayerDiscriminator`]s named `discriminator_<i>`; scale
/// i + 1 sees the input after `avg_pool2d(3, stride 2, padding 1, count_include_pad = false)`.
/// Its input is `cat([semantics, image], channels)`, so `semantic_nc + 3` channels.
#[derive(Debug)]
pub struct MultiscaleDiscriminator {
    pub input_nc: usize,
    pub scales: Vec<NLayerDiscriminator>,
}

impl MultiscaleDiscriminator {
    /// With PyTorch's default layer init, in training mode.
    pub fn new(config: &ModelConfig, rng: &mut Rng) -> Result<Self> {
        config.validate()?;
        let input_nc = config.semantic_nc() + 3;
        let scales = (0..config.num_d)
            .map(|_| NLayerDiscriminator::new(input_nc, config.ndf, config.n_layers_d, rng))
            .collect::<Result<Vec<_>>>()?;
        Ok(MultiscaleDiscriminator { input_nc, scales })
    }

    /// `x` [N, semantic_nc + 3, H, W] → per scale, every block's output (logits last).
    pub fn forward(&self, x: &Var) -> Result<ScaleOutputs> {
        let d = x.dims();
        if d.len() != 4 || d[1] != self.input_nc {
            return Err(shape_error(
                "MultiscaleDiscriminator",
                format!(
                    "expected [N, {}, H, W] (semantics then image), got {}",
                    self.input_nc,
                    x.shape()
                ),
            ));
        }
        let pool = AvgPool2d::new(3)
            .stride(2)
            .padding(1)
            .count_include_pad(false);
        let mut x = x.clone();
        let mut outs = Vec::with_capacity(self.scales.len());
        for (i, d) in self.scales.iter().enumerate() {
            outs.push(d.forward(&x)?);
            if i + 1 < self.scales.len() {
                x = pool.forward(&x)?;
            }
        }
        Ok(outs)
    }
}

impl Module for MultiscaleDiscriminator {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        for (i, d) in self.scales.iter().enumerate() {
            d.visit(&join(prefix, &format!("discriminator_{i}")), f);
        }
    }
    fn set_training(&mut self, training: bool) {
        for d in &mut self.scales {
            d.set_training(training);
        }
    }
}
