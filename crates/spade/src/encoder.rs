//! The image encoder of VAE mode (`ConvEncoder`): style image → (μ, log σ²).
use crate::block::{MaybeSpectralConv, LRELU_SLOPE};
use crate::config::ModelConfig;
use crate::error::{config_error, shape_error, Result};
use tessera_autograd::Var;
use tessera_nn::{join, Conv2dConfig, Entry, InstanceNorm2d, Linear, Module};
use tessera_tensor::{Device, Rng, Tensor};

/// One encoder layer: spectral-normed 3×3 stride-2 conv without bias, then InstanceNorm
/// (affine off). Named `layer<k>.0.*` (the norm, `.1`, has no state).
#[derive(Debug)]
pub struct EncoderLayer {
    pub conv: MaybeSpectralConv,
    pub norm: InstanceNorm2d,
}

/// `ConvEncoder`, with `nf = ngf`:
///
/// ```text
/// x = bilinear(image, s×s)     (align_corners false; skipped when already s×s)
/// x = layer1(x)                                     3 → nf, s/2
/// x = layer_k(lrelu(x)) for k = 2..L                nf → 2nf → 4nf → 8nf → 8nf (→ 8nf)
/// h = flatten(lrelu(x))                             8nf·4·4
/// μ = fc_mu(h), log σ² = fc_var(h)                  z_dim each
/// ```
///
/// `s` and `L` come from [`ModelConfig::encoder_input_size`]: 256 and six layers (the
/// reference) when crop_size ≥ 256, 128 and five layers for smaller crops (the reference's
/// encoder does not work there).
#[derive(Debug)]
pub struct ConvEncoder {
    pub input_size: usize,
    pub layers: Vec<EncoderLayer>,
    pub fc_mu: Linear,
    pub fc_var: Linear,
}

impl ConvEncoder {
    /// With PyTorch's default layer init, in training mode.
    pub fn new(config: &ModelConfig, rng: &mut Rng) -> Result<Self> {
        let input_size = config.encoder_input_size().ok_or_else(|| {
            config_error(
                "crop_size",
                format!(
                    "the image encoder needs crop_size ≥ 128, got {}",
                    config.crop_size
                ),
            )
        })?;
        let nf = config.ngf;
        let mut widths = vec![3, nf, 2 * nf, 4 * nf, 8 * nf, 8 * nf];
        if input_size == 256 {
            widths.push(8 * nf);
        }
        let layers = widths
            .windows(2)
            .map(|w| -> Result<EncoderLayer> {
                let cfg = Conv2dConfig::new(w[0], w[1], 3)
                    .stride(2)
                    .padding(1)
                    .bias(false);
                Ok(EncoderLayer {
                    conv: MaybeSpectralConv::new(cfg, true, rng)?,
                    norm: InstanceNorm2d::new(w[1])?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let flat = 8 * nf * 4 * 4;
        Ok(ConvEncoder {
            input_size,
            layers,
            fc_mu: Linear::new(flat, config.z_dim, true, rng)?,
            fc_var: Linear::new(flat, config.z_dim, true, rng)?,
        })
    }

    /// `image` [N, 3, H, W] in [−1, 1] → (μ, log σ²), each [N, z_dim].
    pub fn forward(&self, image: &Var) -> Result<(Var, Var)> {
        let d = image.dims();
        if d.len() != 4 || d[1] != 3 || d[2] == 0 || d[3] == 0 {
            return Err(shape_error(
                "ConvEncoder",
                format!("expected an image [N, 3, H, W], got {}", image.shape()),
            ));
        }
        let s = self.input_size;
        let mut x = if d[2..] == [s, s] {
            image.clone()
        } else {
            image.upsample_bilinear2d([s, s], false)?
        };
        for (k, layer) in self.layers.iter().enumerate() {
            if k > 0 {
                x = x.leaky_relu(LRELU_SLOPE)?;
            }
            x = layer.norm.forward(&layer.conv.forward(&x)?)?;
        }
        let x = x.leaky_relu(LRELU_SLOPE)?;
        let flat = x.reshape([d[0], x.value().numel() / d[0]])?;
        Ok((self.fc_mu.forward(&flat)?, self.fc_var.forward(&flat)?))
    }
}

/// `z = μ + ε·exp(½·log σ²)` with ε ~ N(0, I) from `rng` (drawn on the host, then moved to
/// μ's device, so a seed gives the same draws on every device).
pub fn reparameterize(mu: &Var, logvar: &Var, rng: &mut Rng) -> Result<Var> {
    let eps = Var::constant(
        Tensor::randn(mu.shape().clone(), 0.0, 1.0, rng, Device::Cpu)?
            .to_device(mu.value().device())?,
    );
    reparameterize_with(mu, logvar, &eps)
}

/// `z = μ + ε·exp(½·log σ²)` with a given ε.
pub fn reparameterize_with(mu: &Var, logvar: &Var, eps: &Var) -> Result<Var> {
    let std = logvar.mul_scalar(0.5)?.exp()?;
    Ok(mu.add(&eps.mul(&std)?)?)
}

impl Module for ConvEncoder {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        for (k, layer) in self.layers.iter().enumerate() {
            let name = join(prefix, &format!("layer{}", k + 1));
            layer.conv.visit(&join(&name, "0"), f);
            layer.norm.visit(&join(&name, "1"), f);
        }
        self.fc_mu.visit(&join(prefix, "fc_mu"), f);
        self.fc_var.visit(&join(prefix, "fc_var"), f);
    }
    fn set_training(&mut self, training: bool) {
        for layer in &mut self.layers {
            layer.conv.set_training(training);
            layer.norm.set_training(training);
        }
    }
}
