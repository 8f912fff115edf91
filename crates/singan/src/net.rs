//! The per-scale networks of SinGAN: a generator and a patch critic, each five 3×3 unpadded
//! convolutions, with the reference's parameter names (`head.conv.weight`,
//! `body.block1.norm.running_var`, `tail.0.weight` for the generator, `tail.weight` for the
//! critic), so state dicts move both ways with the official PyTorch code.
use tessera_autograd::Var;
use tessera_nn::{init, join, BatchNorm2d, Conv2d, Conv2dConfig, Entry, Error, Module, Result};
use tessera_tensor::Rng;

/// Convolutions per network (`num_layer`).
pub const NUM_LAYERS: usize = 5;
/// Kernel size of every convolution (`ker_size`).
pub const KERNEL: usize = 3;
/// Pixels trimmed per side by the five unpadded convolutions, and the zero pad added to the
/// generator's inputs to make up for it: (KERNEL − 1)·NUM_LAYERS / 2 = 5.
pub const PAD: usize = (KERNEL - 1) * NUM_LAYERS / 2;
/// Image channels (`nc_im` = `nc_z`).
pub const CHANNELS: usize = 3;
/// Slope of every LeakyReLU.
const LEAKY_SLOPE: f32 = 0.2;

/// The channel width of scale `n` (0 = coarsest): `min(base · 2^⌊n/4⌋, max)`. With the
/// reference's base 32 and max 128, scales 0–3 are 32 wide, 4–7 are 64 and 8 onwards 128.
pub fn width_for_scale(n: usize, base: usize, max: usize) -> usize {
    let doublings = (n / 4).min(usize::BITS as usize - 1) as u32;
    base.saturating_mul(1usize << doublings).min(max)
}

/// conv 3×3 (bias, no padding) → BatchNorm2d → LeakyReLU(0.2); names `conv.*`, `norm.*`.
#[derive(Debug)]
pub struct ConvBlock {
    pub conv: Conv2d,
    pub norm: BatchNorm2d,
}

impl ConvBlock {
    /// With the reference's `weights_init`: conv weights N(0, 0.02), conv biases PyTorch's
    /// default U(±1/√fan_in), norm weights N(1, 0.02), norm biases 0.
    fn new(in_channels: usize, out_channels: usize, rng: &mut Rng) -> Result<Self> {
        let conv = init_conv(Conv2dConfig::new(in_channels, out_channels, KERNEL), rng)?;
        let norm = BatchNorm2d::new(out_channels)?;
        if let Some(w) = norm.weight() {
            w.set("weight", init::normal([out_channels], 1.0, 0.02, rng)?)?;
        }
        Ok(ConvBlock { conv, norm })
    }
    fn forward(&self, x: &Var) -> Result<Var> {
        let h = self.conv.forward(x)?;
        Ok(self.norm.forward(&h)?.leaky_relu(LEAKY_SLOPE)?)
    }
}

impl Module for ConvBlock {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.conv.visit(&join(prefix, "conv"), f);
        self.norm.visit(&join(prefix, "norm"), f);
    }
    fn set_training(&mut self, training: bool) {
        self.norm.set_training(training);
    }
}

/// A conv layer with weights N(0, 0.02) and PyTorch's default bias.
fn init_conv(config: Conv2dConfig, rng: &mut Rng) -> Result<Conv2d> {
    let conv = Conv2d::new(config, rng)?;
    let shape = conv.weight.shape();
    conv.weight
        .set("weight", init::normal(shape, 0.0, 0.02, rng)?)?;
    Ok(conv)
}

/// head and body: the four conv blocks both networks share in structure.
#[derive(Debug)]
struct Trunk {
    head: ConvBlock,
    body: Vec<ConvBlock>,
}

impl Trunk {
    fn new(width: usize, rng: &mut Rng) -> Result<Self> {
        let head = ConvBlock::new(CHANNELS, width, rng)?;
        let body = (0..NUM_LAYERS - 2)
            .map(|_| ConvBlock::new(width, width, rng))
            .collect::<Result<_>>()?;
        Ok(Trunk { head, body })
    }
    fn forward(&self, x: &Var) -> Result<Var> {
        let mut h = self.head.forward(x)?;
        for block in &self.body {
            h = block.forward(&h)?;
        }
        Ok(h)
    }
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.head.visit(&join(prefix, "head"), f);
        for (i, block) in self.body.iter().enumerate() {
            block.visit(&join(prefix, &format!("body.block{}", i + 1)), f);
        }
    }
    fn set_training(&mut self, training: bool) {
        self.head.set_training(training);
        for block in &mut self.body {
            block.set_training(training);
        }
    }
}

/// The generator of one scale (the reference's `GeneratorConcatSkip2CleanAdd`):
/// `G(x, y) = tanh(tail(body(head(x)))) + crop₅(y)`, where `x` is the padded noise plus the
/// padded upsampled previous image and `y` that padded previous image; the output is 10 px
/// smaller than the inputs in each dimension, i.e. the unpadded size. No clamp.
///
/// Names: `head.{conv,norm}.*`, `body.block{1,2,3}.{conv,norm}.*`, `tail.0.{weight,bias}`.
#[derive(Debug)]
pub struct Generator {
    width: usize,
    trunk: Trunk,
    tail: Conv2d,
}

impl Generator {
    /// A freshly initialised generator `width` channels wide, in training mode.
    pub fn new(width: usize, rng: &mut Rng) -> Result<Self> {
        let trunk = Trunk::new(width, rng)?;
        let tail = init_conv(Conv2dConfig::new(width, CHANNELS, KERNEL), rng)?;
        Ok(Generator { width, trunk, tail })
    }
    pub fn width(&self) -> usize {
        self.width
    }
    /// `x`, `y`: [1, 3, H + 10, W + 10]; returns [1, 3, H, W].
    pub fn forward(&self, x: &Var, y: &Var) -> Result<Var> {
        let o = self.tail.forward(&self.trunk.forward(x)?)?.tanh()?;
        let (yd, od) = (y.dims(), o.dims());
        if yd.len() != 4 || yd[2] < od[2] || yd[3] < od[3] {
            return Err(Error::Layer {
                layer: "Generator".into(),
                why: format!(
                    "skip input {} smaller than the output {}",
                    y.shape(),
                    o.shape()
                ),
            });
        }
        // The reference crops both axes by the height difference.
        let d = (yd[2] - od[2]) / 2;
        let skip = y.narrow(2, d, yd[2] - 2 * d)?.narrow(3, d, yd[3] - 2 * d)?;
        Ok(o.add(&skip)?)
    }
}

impl Module for Generator {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.trunk.visit(prefix, f);
        self.tail.visit(&join(prefix, "tail.0"), f);
    }
    fn set_training(&mut self, training: bool) {
        self.trunk.set_training(training);
    }
}

/// The critic of one scale (the reference's `WDiscriminator`): the same head and body as the
/// generator and a 3×3 conv to one channel, no activation. An H×W input gives an
/// (H − 10)×(W − 10) score map (11×11 patches).
///
/// Names: `head.{conv,norm}.*`, `body.block{1,2,3}.{conv,norm}.*`, `tail.{weight,bias}`.
#[derive(Debug)]
pub struct Critic {
    width: usize,
    trunk: Trunk,
    tail: Conv2d,
}

impl Critic {
    pub fn new(width: usize, rng: &mut Rng) -> Result<Self> {
        let trunk = Trunk::new(width, rng)?;
        let tail = init_conv(Conv2dConfig::new(width, 1, KERNEL), rng)?;
        Ok(Critic { width, trunk, tail })
    }
    pub fn width(&self) -> usize {
        self.width
    }
    /// The score map of `x` [1, 3, H, W]: [1, 1, H − 10, W − 10].
    pub fn forward(&self, x: &Var) -> Result<Var> {
        self.tail.forward(&self.trunk.forward(x)?)
    }
}

impl Module for Critic {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.trunk.visit(prefix, f);
        self.tail.visit(&join(prefix, "tail"), f);
    }
    fn set_training(&mut self, training: bool) {
        self.trunk.set_training(training);
    }
}
