//! `Conv2d`, like `torch.nn.Conv2d` (parameters `weight` [out, in, kh, kw] and `bias` [out]).
use super::{expect_nchw, expect_weight_shape, layer_error, visit_weight_bias, WeightLayer};
use crate::module::{Entry, Module};
use crate::{init, Param, Result};
use tessera_autograd::Var;
use tessera_tensor::{Conv2dParams, PadMode, Rng};

/// How the input is padded: zeros inside the convolution, or a reflect/replicate pad first
/// (PyTorch's `padding_mode`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Padding {
    Zero,
    Reflect,
    Replicate,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Conv2dConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    pub bias: bool,
    pub padding_mode: Padding,
}

impl Conv2dConfig {
    /// A k×k convolution with stride 1, no padding, with bias (PyTorch's defaults).
    pub fn new(in_channels: usize, out_channels: usize, k: usize) -> Self {
        Conv2dConfig {
            in_channels,
            out_channels,
            kernel: [k, k],
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
            bias: true,
            padding_mode: Padding::Zero,
        }
    }
    pub fn stride(mut self, s: usize) -> Self {
        self.stride = [s, s];
        self
    }
    pub fn padding(mut self, p: usize) -> Self {
        self.padding = [p, p];
        self
    }
    pub fn dilation(mut self, d: usize) -> Self {
        self.dilation = [d, d];
        self
    }
    pub fn bias(mut self, on: bool) -> Self {
        self.bias = on;
        self
    }
    pub fn padding_mode(mut self, m: Padding) -> Self {
        self.padding_mode = m;
        self
    }
}

#[derive(Debug)]
pub struct Conv2d {
    pub config: Conv2dConfig,
    pub weight: Param,
    pub bias: Option<Param>,
}

impl Conv2d {
    /// With PyTorch's default init.
    pub fn new(config: Conv2dConfig, rng: &mut Rng) -> Result<Self> {
        let [kh, kw] = config.kernel;
        let weight = init::default_weight([config.out_channels, config.in_channels, kh, kw], rng)?;
        let fan_in = config.in_channels * kh * kw;
        let bias = if config.bias {
            Some(Param::new(init::default_bias(
                config.out_channels,
                fan_in,
                rng,
            )?))
        } else {
            None
        };
        Ok(Conv2d {
            config,
            weight: Param::new(weight),
            bias,
        })
    }

    pub fn forward(&self, x: &Var) -> Result<Var> {
        self.forward_with_weight(x, &self.weight.var())
    }

    /// The convolution with `weight` in place of the parameter's value (what [`SpectralNorm`]
    /// uses to apply the normalized weight). `weight` must have the parameter's shape.
    ///
    /// [`SpectralNorm`]: crate::SpectralNorm
    pub fn forward_with_weight(&self, x: &Var, weight: &Var) -> Result<Var> {
        let c = &self.config;
        let [_, _, h, w] = expect_nchw("Conv2d", x, Some(c.in_channels))?;
        expect_weight_shape("Conv2d", weight, &self.weight)?;
        let [py, px] = c.padding;
        if c.padding_mode == Padding::Reflect && (py >= h.max(1) || px >= w.max(1)) {
            return Err(layer_error(
                "Conv2d",
                format!(
                    "reflect padding {:?} needs an input larger than the padding, got {}",
                    c.padding,
                    x.shape()
                ),
            ));
        }
        let (input, inner_padding) = match c.padding_mode {
            Padding::Zero => (x.clone(), c.padding),
            Padding::Reflect => (x.pad2d([px, px, py, py], PadMode::Reflect)?, [0, 0]),
            Padding::Replicate => (x.pad2d([px, px, py, py], PadMode::Replicate)?, [0, 0]),
        };
        let p = Conv2dParams {
            stride: c.stride,
            padding: inner_padding,
            dilation: c.dilation,
        };
        let d = input.dims();
        if p.output_hw([d[2], d[3]], c.kernel).is_none() {
            return Err(layer_error(
                "Conv2d",
                format!(
                    "kernel {:?} (dilation {:?}, padding {:?}) does not fit the input {}",
                    c.kernel,
                    c.dilation,
                    c.padding,
                    x.shape()
                ),
            ));
        }
        let bias = self.bias.as_ref().map(Param::var);
        Ok(input.conv2d(weight, bias.as_ref(), p)?)
    }
}

impl WeightLayer for Conv2d {
    fn layer_name(&self) -> &'static str {
        "Conv2d"
    }
    fn weight(&self) -> &Param {
        &self.weight
    }
    fn forward_with_weight(&self, x: &Var, weight: &Var) -> Result<Var> {
        Conv2d::forward_with_weight(self, x, weight)
    }
}

impl Module for Conv2d {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        visit_weight_bias(prefix, &self.weight, self.bias.as_ref(), f);
    }
    fn set_training(&mut self, _training: bool) {}
}
