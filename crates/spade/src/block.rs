//! Building blocks: a convolution with optional spectral norm, and the SPADE residual block.
use crate::error::{shape_error, Result};
use std::sync::Arc;
use tessera_autograd::Var;
use tessera_nn::{
    join, BinaryMap, Conv2d, Conv2dConfig, Entry, Module, Spade, SpadeConfig, SpadeNorm,
    SpectralNorm,
};
use tessera_tensor::Rng;

/// The label map as the SPADE layers take it. A constant map of 0s and 1s (one-hot labels and
/// instance edges) is kept as a [`BinaryMap`], and SPADE's `mlp_shared` convolution of it runs
/// as a lookup (`tessera_nn::binary_conv`) instead of a GEMM over every label channel; anything else (a
/// map that needs a gradient, soft labels) stays dense.
#[derive(Clone, Debug)]
pub enum Conditioning {
    Dense(Var),
    Binary(Arc<BinaryMap>),
}

impl Conditioning {
    /// Chooses the representation of `seg` [N, C, H, W].
    pub fn new(seg: &Var) -> Result<Self> {
        if !seg.requires_grad() {
            if let Some(map) = BinaryMap::from_dense(seg.value())? {
                return Ok(Conditioning::Binary(Arc::new(map)));
            }
        }
        Ok(Conditioning::Dense(seg.clone()))
    }

    /// Resized to (h, w) by nearest interpolation (unchanged if already that size).
    pub fn resized(&self, h: usize, w: usize) -> Result<Self> {
        Ok(match self {
            Conditioning::Dense(seg) if seg.dims()[2..] == [h, w] => self.clone(),
            Conditioning::Dense(seg) => Conditioning::Dense(seg.upsample_nearest2d([h, w])?),
            Conditioning::Binary(map) if (map.h, map.w) == (h, w) => self.clone(),
            Conditioning::Binary(map) => Conditioning::Binary(Arc::new(map.resize_nearest(h, w))),
        })
    }
}

/// `spade.forward(x, seg)` for a label map already at x's size, with `mlp_shared` as a
/// lookup for a binary map (the same function, see [`Conditioning`]).
pub fn spade_forward(spade: &Spade, x: &Var, seg: &Conditioning) -> Result<Var> {
    let map = match seg {
        // Conditioning::new has already found this map not binary (or needing a gradient).
        Conditioning::Dense(seg) => return Ok(spade.forward_dense(x, seg)?),
        Conditioning::Binary(map) => map,
    };
    Ok(spade.forward_binary(x, map)?)
}

/// LeakyReLU slope of every SPADE network (G, D, E).
pub const LRELU_SLOPE: f32 = 0.2;

/// A `Conv2d`, spectral-normed or not. The names are those of the PyTorch module:
/// `weight_orig`, `weight_u`, `weight_v` (+ `bias`) with spectral norm, `weight` (+ `bias`)
/// without.
#[derive(Debug)]
pub enum MaybeSpectralConv {
    Plain(Conv2d),
    Spectral(SpectralNorm<Conv2d>),
}

impl MaybeSpectralConv {
    pub fn new(config: Conv2dConfig, spectral: bool, rng: &mut Rng) -> Result<Self> {
        let conv = Conv2d::new(config, rng)?;
        Ok(if spectral {
            MaybeSpectralConv::Spectral(SpectralNorm::new(conv, rng)?)
        } else {
            MaybeSpectralConv::Plain(conv)
        })
    }

    pub fn forward(&self, x: &Var) -> Result<Var> {
        Ok(match self {
            MaybeSpectralConv::Plain(c) => c.forward(x)?,
            MaybeSpectralConv::Spectral(c) => c.forward(x)?,
        })
    }
}

impl Module for MaybeSpectralConv {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        match self {
            MaybeSpectralConv::Plain(c) => c.visit(prefix, f),
            MaybeSpectralConv::Spectral(c) => c.visit(prefix, f),
        }
    }
    fn set_training(&mut self, training: bool) {
        match self {
            MaybeSpectralConv::Plain(c) => c.set_training(training),
            MaybeSpectralConv::Spectral(c) => c.set_training(training),
        }
    }
}

/// How a [`SpadeResnetBlock`]'s SPADE layers and convolutions are built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockConfig {
    pub fin: usize,
    pub fout: usize,
    /// Channels of the label map (semantic_nc).
    pub label_nc: usize,
    /// Spectral norm on conv_0, conv_1 and conv_s.
    pub spectral: bool,
    pub norm: SpadeNorm,
    /// SPADE's kernel size.
    pub kernel: usize,
    /// SPADE's hidden width.
    pub hidden: usize,
}

/// The SPADE residual block (pre-activation: norm → LeakyReLU 0.2 → conv):
///
/// ```text
/// x_s = conv_s(norm_s(x, seg))   if fin ≠ fout (1×1, no bias, no activation), else x
/// dx  = conv_0(lrelu(norm_0(x, seg)))          fin → fmiddle = min(fin, fout), 3×3
/// dx  = conv_1(lrelu(norm_1(dx, seg)))         fmiddle → fout, 3×3
/// out = x_s + dx
/// ```
///
/// Names as in the reference: `conv_0`, `conv_1`, `conv_s`, `norm_0`, `norm_1`, `norm_s`, each
/// SPADE's with its own names (`norm_0.mlp_shared.0.weight`, …).
#[derive(Debug)]
pub struct SpadeResnetBlock {
    pub config: BlockConfig,
    pub conv_0: MaybeSpectralConv,
    pub conv_1: MaybeSpectralConv,
    pub conv_s: Option<MaybeSpectralConv>,
    pub norm_0: Spade,
    pub norm_1: Spade,
    pub norm_s: Option<Spade>,
}

impl SpadeResnetBlock {
    pub fn new(config: BlockConfig, rng: &mut Rng) -> Result<Self> {
        let c = config;
        let fmiddle = c.fin.min(c.fout);
        let spade = |nc: usize, rng: &mut Rng| -> Result<Spade> {
            let sc = SpadeConfig::new(nc, c.label_nc, c.norm)
                .hidden(c.hidden)
                .kernel(c.kernel);
            Ok(Spade::new(sc, rng)?)
        };
        let conv3 = |i: usize, o: usize, rng: &mut Rng| {
            MaybeSpectralConv::new(Conv2dConfig::new(i, o, 3).padding(1), c.spectral, rng)
        };
        let conv_0 = conv3(c.fin, fmiddle, rng)?;
        let conv_1 = conv3(fmiddle, c.fout, rng)?;
        let norm_0 = spade(c.fin, rng)?;
        let norm_1 = spade(fmiddle, rng)?;
        let (conv_s, norm_s) = if c.fin != c.fout {
            let conv = MaybeSpectralConv::new(
                Conv2dConfig::new(c.fin, c.fout, 1).bias(false),
                c.spectral,
                rng,
            )?;
            (Some(conv), Some(spade(c.fin, rng)?))
        } else {
            (None, None)
        };
        Ok(SpadeResnetBlock {
            config,
            conv_0,
            conv_1,
            conv_s,
            norm_0,
            norm_1,
            norm_s,
        })
    }

    /// `x` [N, fin, H, W], `seg` [N, label_nc, h, w] → [N, fout, H, W].
    pub fn forward(&self, x: &Var, seg: &Var) -> Result<Var> {
        self.forward_conditioned(x, &Conditioning::new(seg)?)
    }

    /// [`SpadeResnetBlock::forward`] with the label map prepared once for several blocks.
    pub fn forward_conditioned(&self, x: &Var, seg: &Conditioning) -> Result<Var> {
        let d = x.dims();
        if d.len() != 4 {
            return Err(shape_error(
                "SPADEResnetBlock",
                format!("expected an input [N, C, H, W], got {}", x.shape()),
            ));
        }
        // Every SPADE of the block resizes the label map to x's size: done once here.
        let seg = seg.resized(d[2], d[3])?;
        let x_s = match (&self.conv_s, &self.norm_s) {
            (Some(conv), Some(norm)) => conv.forward(&spade_forward(norm, x, &seg)?)?,
            _ => x.clone(),
        };
        let dx = spade_forward(&self.norm_0, x, &seg)?.leaky_relu(LRELU_SLOPE)?;
        let dx = self.conv_0.forward(&dx)?;
        let dx = spade_forward(&self.norm_1, &dx, &seg)?.leaky_relu(LRELU_SLOPE)?;
        let dx = self.conv_1.forward(&dx)?;
        Ok(x_s.add(&dx)?)
    }
}

impl Module for SpadeResnetBlock {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        self.conv_0.visit(&join(prefix, "conv_0"), f);
        self.conv_1.visit(&join(prefix, "conv_1"), f);
        if let Some(c) = &self.conv_s {
            c.visit(&join(prefix, "conv_s"), f);
        }
        self.norm_0.visit(&join(prefix, "norm_0"), f);
        self.norm_1.visit(&join(prefix, "norm_1"), f);
        if let Some(n) = &self.norm_s {
            n.visit(&join(prefix, "norm_s"), f);
        }
    }
    fn set_training(&mut self, training: bool) {
        self.conv_0.set_training(training);
        self.conv_1.set_training(training);
        if let Some(c) = &mut self.conv_s {
            c.set_training(training);
        }
        self.norm_0.set_training(training);
        self.norm_1.set_training(training);
        if let Some(n) = &mut self.norm_s {
            n.set_training(training);
        }
    }
}
