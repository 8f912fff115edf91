//! The SPADE generator.
use crate::block::{BlockConfig, Conditioning, SpadeResnetBlock, LRELU_SLOPE};
use crate::config::{ModelConfig, UpsamplingLayers};
use crate::error::{shape_error, Result};
use tessera_autograd::Var;
use tessera_nn::{join, Conv2d, Conv2dConfig, Entry, Linear, Module};
use tessera_tensor::{Device, Rng, Tensor};

/// Where the generator starts: a 3×3 conv of the downsampled label map, or (VAE mode) a linear
/// layer of z. Either is named `fc`.
#[derive(Debug)]
pub enum GeneratorInput {
    Conv(Conv2d),
    Linear(Linear),
}

/// The SPADE generator (`SPADEGenerator`), with `nf = ngf`:
///
/// ```text
/// x = fc(nearest(seg, sh×sw))   or   reshape(fc(z), [N, 16nf, sh, sw]) in VAE mode
/// x = head_0(x)                                   16nf → 16nf
/// x = up(x); x = G_middle_0(x)                    16nf
/// x = up(x) only for "more" and "most"
/// x = G_middle_1(x)                               16nf
/// x = up_0(up(x)), up_1(up(x)), up_2(up(x)), up_3(up(x))   → 8nf, 4nf, 2nf, nf
/// x = up_4(up(x)) only for "most"                 nf → nf/2
/// image = tanh(conv_img(lrelu(x, 0.2)))           3×3 conv to 3 channels
/// ```
///
/// `up` is a ×2 nearest upsampling; every block also takes the full-resolution label map.
/// Names are the reference's (`fc`, `head_0`, `G_middle_0`, `G_middle_1`, `up_0` … `up_4`,
/// `conv_img`), so a PyTorch `state_dict` maps 1:1.
#[derive(Debug)]
pub struct SpadeGenerator {
    pub config: ModelConfig,
    pub fc: GeneratorInput,
    pub head_0: SpadeResnetBlock,
    pub g_middle_0: SpadeResnetBlock,
    pub g_middle_1: SpadeResnetBlock,
    /// `up_0` … `up_3` (and `up_4` with "most").
    pub ups: Vec<SpadeResnetBlock>,
    pub conv_img: Conv2d,
}

impl SpadeGenerator {
    /// With PyTorch's default layer init (see [`crate::init_xavier`] for the reference's), in
    /// training mode.
    pub fn new(config: &ModelConfig, rng: &mut Rng) -> Result<Self> {
        config.validate()?;
        let nf = config.ngf;
        let (sh, sw) = config.latent_hw();
        let snc = config.semantic_nc();
        let block = |fin: usize, fout: usize, rng: &mut Rng| {
            SpadeResnetBlock::new(
                BlockConfig {
                    fin,
                    fout,
                    label_nc: snc,
                    spectral: config.norm_g.spectral,
                    norm: config.norm_g.param_free,
                    kernel: config.norm_g.kernel,
                    hidden: config.spade_hidden,
                },
                rng,
            )
        };
        let fc = if config.use_vae {
            GeneratorInput::Linear(Linear::new(config.z_dim, 16 * nf * sh * sw, true, rng)?)
        } else {
            GeneratorInput::Conv(Conv2d::new(
                Conv2dConfig::new(snc, 16 * nf, 3).padding(1),
                rng,
            )?)
        };
        let mut widths = vec![16 * nf, 8 * nf, 4 * nf, 2 * nf, nf];
        if config.num_upsampling_layers == UpsamplingLayers::Most {
            widths.push(nf / 2);
        }
        let final_nc = *widths.last().expect("five widths");
        if final_nc == 0 {
            return Err(crate::error::config_error(
                "ngf",
                "\"most\" upsampling halves ngf for its last block: ngf must be at least 2",
            ));
        }
        let head_0 = block(16 * nf, 16 * nf, rng)?;
        let g_middle_0 = block(16 * nf, 16 * nf, rng)?;
        let g_middle_1 = block(16 * nf, 16 * nf, rng)?;
        let ups = widths
            .windows(2)
            .map(|w| block(w[0], w[1], rng))
            .collect::<Result<Vec<_>>>()?;
        let conv_img = Conv2d::new(Conv2dConfig::new(final_nc, 3, 3).padding(1), rng)?;
        Ok(SpadeGenerator {
            config: config.clone(),
            fc,
            head_0,
            g_middle_0,
            g_middle_1,
            ups,
            conv_img,
        })
    }

    /// z ~ N(0, I) of shape [n, z_dim] for VAE mode, on the generator's device (drawn on the
    /// host, so a seed gives the same z on every device).
    pub fn random_z(&self, n: usize, rng: &mut Rng) -> Result<Var> {
        let z = Tensor::randn([n, self.config.z_dim], 0.0, 1.0, rng, Device::Cpu)?;
        Ok(Var::constant(z.to_device(self.device())?))
    }

    /// The device of the generator's parameters (see `ModuleExt::to_device`).
    pub fn device(&self) -> Device {
        self.conv_img.weight.tensor().device()
    }

    /// `seg` [N, semantic_nc, H, W] (the full-resolution conditioning tensor) and, in VAE mode,
    /// `z` [N, z_dim] → the image [N, 3, sh·2^k, sw·2^k] in [−1, 1].
    pub fn forward(&self, seg: &Var, z: Option<&Var>) -> Result<Var> {
        // Inside a rayon worker, the kernels' forks skip the hand-off from the calling thread.
        tessera_autograd::on_worker_thread(|| self.forward_here(seg, z))
    }

    fn forward_here(&self, seg: &Var, z: Option<&Var>) -> Result<Var> {
        let c = &self.config;
        let d = seg.dims();
        if d.len() != 4 || d[1] != c.semantic_nc() || d[2] == 0 || d[3] == 0 {
            return Err(shape_error(
                "SPADEGenerator",
                format!(
                    "expected a label map [N, {}, H, W] (semantic_nc), got {}",
                    c.semantic_nc(),
                    seg.shape()
                ),
            ));
        }
        let n = d[0];
        let (sh, sw) = c.latent_hw();
        let mut x = match &self.fc {
            GeneratorInput::Conv(fc) => fc.forward(&seg.upsample_nearest2d([sh, sw])?)?,
            GeneratorInput::Linear(fc) => {
                let z = z.ok_or_else(|| {
                    shape_error("SPADEGenerator", "VAE mode needs z (see random_z)")
                })?;
                if z.dims() != [n, c.z_dim] {
                    return Err(shape_error(
                        "SPADEGenerator",
                        format!("expected z [{n}, {}], got {}", c.z_dim, z.shape()),
                    ));
                }
                fc.forward(z)?.reshape([n, 16 * c.ngf, sh, sw])?
            }
        };
        let up = |x: &Var| -> Result<Var> {
            let d = x.dims();
            Ok(x.upsample_nearest2d([2 * d[2], 2 * d[3]])?)
        };
        let seg = Conditioning::new(seg)?;
        x = self.head_0.forward_conditioned(&x, &seg)?;
        x = self.g_middle_0.forward_conditioned(&up(&x)?, &seg)?;
        if c.num_upsampling_layers != UpsamplingLayers::Normal {
            x = up(&x)?;
        }
        x = self.g_middle_1.forward_conditioned(&x, &seg)?;
        for block in &self.ups {
            x = block.forward_conditioned(&up(&x)?, &seg)?;
        }
        let x = self.conv_img.forward(&x.leaky_relu(LRELU_SLOPE)?)?;
        Ok(x.tanh()?)
    }
}

impl Module for SpadeGenerator {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        match &self.fc {
            GeneratorInput::Conv(fc) => fc.visit(&join(prefix, "fc"), f),
            GeneratorInput::Linear(fc) => fc.visit(&join(prefix, "fc"), f),
        }
        self.head_0.visit(&join(prefix, "head_0"), f);
        self.g_middle_0.visit(&join(prefix, "G_middle_0"), f);
        self.g_middle_1.visit(&join(prefix, "G_middle_1"), f);
        for (i, b) in self.ups.iter().enumerate() {
            b.visit(&join(prefix, &format!("up_{i}")), f);
        }
        self.conv_img.visit(&join(prefix, "conv_img"), f);
    }
    fn set_training(&mut self, training: bool) {
        self.head_0.set_training(training);
        self.g_middle_0.set_training(training);
        self.g_middle_1.set_training(training);
        for b in &mut self.ups {
            b.set_training(training);
        }
    }
}
