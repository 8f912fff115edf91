//! `ConvTranspose2d`, like `torch.nn.ConvTranspose2d` (parameters `weight` [in, out, kh, kw] and
//! `bias` [out]).
use super::{expect_nchw, expect_weight_shape, layer_error, visit_weight_bias, WeightLayer};
use crate::module::{Entry, Module};
use crate::{init, Param, Result};
use tessera_autograd::Var;
use tessera_tensor::{Conv2dParams, Rng};

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConvTranspose2dConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    /// Extra rows/columns added at the bottom/right of the output; each must be smaller than
    /// the stride in that direction.
    pub output_padding: [usize; 2],
    pub dilation: [usize; 2],
    pub bias: bool,
}

impl ConvTranspose2dConfig {
    /// A k×k transposed convolution with stride 1, no padding, with bias (PyTorch's defaults).
    pub fn new(in_channels: usize, out_channels: usize, k: usize) -> Self {
        ConvTranspose2dConfig {
            in_channels,
            out_channels,
            kernel: [k, k],
            stride: [1, 1],
            padding: [0, 0],
            output_padding: [0, 0],
            dilation: [1, 1],
            bias: true,
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
    pub fn output_padding(mut self, p: usize) -> Self {
        self.output_padding = [p, p];
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
    fn params(&self) -> Conv2dParams {
        Conv2dParams {
            stride: self.stride,
            padding: self.padding,
            dilation: self.dilation,
        }
    }
}

/// The adjoint of a convolution: `y = conv_transpose2d(x, weight, bias)`, computed as the input
/// gradient of the convolution whose weight is `weight` ([in, out, kh, kw] read as
/// [Co, C, kh, kw]). Output size per axis:
/// `(in − 1)·stride − 2·padding + dilation·(k − 1) + output_padding + 1`.
///
/// Differences from PyTorch: no `groups`; `output_padding` must be smaller than the stride
/// (PyTorch also accepts it smaller than the dilation).
#[derive(Debug)]
pub struct ConvTranspose2d {
    pub config: ConvTranspose2dConfig,
    pub weight: Param,
    pub bias: Option<Param>,
}

impl ConvTranspose2d {
    /// With PyTorch's default init (whose fan_in is taken from the weight's second axis,
    /// i.e. `out_channels·kh·kw`).
    pub fn new(config: ConvTranspose2dConfig, rng: &mut Rng) -> Result<Self> {
        let c = &config;
        for i in 0..2 {
            if c.kernel[i] == 0 || c.stride[i] == 0 || c.dilation[i] == 0 {
                return Err(layer_error(
                    "ConvTranspose2d",
                    format!("kernel, stride and dilation must be positive: {c:?}"),
                ));
            }
            if c.output_padding[i] >= c.stride[i] {
                return Err(layer_error(
                    "ConvTranspose2d",
                    format!(
                        "output_padding {:?} must be smaller than the stride {:?}",
                        c.output_padding, c.stride
                    ),
                ));
            }
        }
        let [kh, kw] = c.kernel;
        let weight = init::default_weight([c.in_channels, c.out_channels, kh, kw], rng)?;
        let bias = if c.bias {
            let fan_in = c.out_channels * kh * kw;
            Some(Param::new(init::default_bias(c.out_channels, fan_in, rng)?))
        } else {
            None
        };
        Ok(ConvTranspose2d {
            config,
            weight: Param::new(weight),
            bias,
        })
    }

    /// The output spatial size for an input of `hw`, or None when it would be empty.
    pub fn output_hw(&self, hw: [usize; 2]) -> Option<[usize; 2]> {
        let c = &self.config;
        let mut out = [0; 2];
        for i in 0..2 {
            if hw[i] == 0 {
                return None;
            }
            let full = (hw[i] - 1) * c.stride[i]
                + c.dilation[i] * (c.kernel[i] - 1)
                + c.output_padding[i]
                + 1;
            out[i] = full.checked_sub(2 * c.padding[i]).filter(|&o| o > 0)?;
        }
        Some(out)
    }

    pub fn forward(&self, x: &Var) -> Result<Var> {
        self.forward_with_weight(x, &self.weight.var())
    }

    /// The transposed convolution with `weight` in place of the parameter's value.
    pub fn forward_with_weight(&self, x: &Var, weight: &Var) -> Result<Var> {
        let c = &self.config;
        let [_, _, h, w] = expect_nchw("ConvTranspose2d", x, Some(c.in_channels))?;
        expect_weight_shape("ConvTranspose2d", weight, &self.weight)?;
        let out_hw = self.output_hw([h, w]).ok_or_else(|| {
            layer_error(
                "ConvTranspose2d",
                format!("the input {} gives an empty output with {c:?}", x.shape()),
            )
        })?;
        let y = x.conv2d_input_grad(weight, out_hw, c.params())?;
        match &self.bias {
            None => Ok(y),
            Some(b) => Ok(y.add(&b.var().reshape([1, c.out_channels, 1, 1])?)?),
        }
    }
}

impl WeightLayer for ConvTranspose2d {
    fn layer_name(&self) -> &'static str {
        "ConvTranspose2d"
    }
    fn weight(&self) -> &Param {
        &self.weight
    }
    fn output_axis(&self) -> usize {
        1
    }
    fn forward_with_weight(&self, x: &Var, weight: &Var) -> Result<Var> {
        ConvTranspose2d::forward_with_weight(self, x, weight)
    }
}

impl Module for ConvTranspose2d {
    fn visit(&self, prefix: &str, f: &mut dyn FnMut(&str, Entry<'_>)) {
        visit_weight_bias(prefix, &self.weight, self.bias.as_ref(), f);
    }
    fn set_training(&mut self, _training: bool) {}
}
