//! The backend trait: what a device must implement for tensors to live on it.
//!
//! Storage is always a dense row-major buffer; shapes travel beside it, so a backend never
//! sees strides. `Tensor` checks shapes and arguments before calling in here, so backend
//! methods may assume valid input. The CPU backend is [`crate::cpu::CpuStorage`]; a CUDA
//! backend implements the same trait and is added as a variant of [`crate::Storage`].
use crate::{Result, Shape};

/// Elementwise maps of one tensor. Scalar arguments are part of the op.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum UnaryOp {
    Neg,
    Exp,
    Log,
    Sqrt,
    Rsqrt,
    Abs,
    /// -1, 0 or 1.
    Sign,
    Relu,
    LeakyRelu(f32),
    Tanh,
    Sigmoid,
    Powf(f32),
    Clamp(f32, f32),
    /// x·mul + add (scalar arithmetic).
    Affine {
        mul: f32,
        add: f32,
    },
    /// 1.0 where the comparison of x with the scalar holds, else 0.0.
    CmpScalar(CmpOp, f32),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// Elementwise maps of two tensors, broadcast against each other.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    Pow,
    Maximum,
    Minimum,
    /// 1.0 where the comparison holds, else 0.0.
    Cmp(CmpOp),
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ReduceOp {
    Sum,
    Max,
    Min,
    /// Variance; `unbiased` divides by n−1 (Bessel), otherwise by n.
    Var {
        unbiased: bool,
    },
}

/// Padding modes of [`crate::Tensor::pad2d`], as in `torch.nn.functional.pad`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PadMode {
    Zero,
    Reflect,
    Replicate,
}

/// Geometry of a 2-d convolution (PyTorch's `stride`, `padding`, `dilation`), as (height, width).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Conv2dParams {
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
}

impl Default for Conv2dParams {
    fn default() -> Self {
        Conv2dParams {
            stride: [1, 1],
            padding: [0, 0],
            dilation: [1, 1],
        }
    }
}

impl Conv2dParams {
    pub fn new(stride: usize, padding: usize, dilation: usize) -> Self {
        Conv2dParams {
            stride: [stride; 2],
            padding: [padding; 2],
            dilation: [dilation; 2],
        }
    }
    /// Output spatial size for an input of `hw` and a kernel of `khw`; None when the kernel does not fit.
    pub fn output_hw(&self, hw: [usize; 2], khw: [usize; 2]) -> Option<[usize; 2]> {
        let mut out = [0; 2];
        for i in 0..2 {
            // Checked before `khw[i] - 1` is formed: a zero-sized kernel must not underflow.
            if khw[i] == 0 || self.stride[i] == 0 || self.dilation[i] == 0 {
                return None;
            }
            let span = self.dilation[i] * (khw[i] - 1) + 1;
            let padded = hw[i] + 2 * self.padding[i];
            if padded < span {
                return None;
            }
            out[i] = (padded - span) / self.stride[i] + 1;
        }
        Some(out)
    }
}

/// Geometry of `avg_pool2d`, as (height, width).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Pool2dParams {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub count_include_pad: bool,
}

impl Pool2dParams {
    pub fn output_hw(&self, hw: [usize; 2]) -> Option<[usize; 2]> {
        let mut out = [0; 2];
        for i in 0..2 {
            let padded = hw[i] + 2 * self.padding[i];
            if self.kernel[i] == 0
                || self.stride[i] == 0
                || padded < self.kernel[i]
                || 2 * self.padding[i] > self.kernel[i]
            {
                return None;
            }
            out[i] = (padded - self.kernel[i]) / self.stride[i] + 1;
        }
        Some(out)
    }
}

/// Geometry of `max_pool2d`, as (height, width): PyTorch's `kernel_size`, `stride`, `padding`,
/// `dilation` with `ceil_mode=False`. Padding acts as −∞ and may be at most half the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct MaxPool2dParams {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
}

impl MaxPool2dParams {
    /// A square `k`×`k` window with stride `s` and padding `p`, no dilation.
    pub fn new(k: usize, s: usize, p: usize) -> Self {
        MaxPool2dParams {
            kernel: [k; 2],
            stride: [s; 2],
            padding: [p; 2],
            dilation: [1; 2],
        }
    }
    pub fn dilation(mut self, d: usize) -> Self {
        self.dilation = [d; 2];
        self
    }
    /// Number of positions in a window (`kh·kw`): window offsets lie in `0..area`.
    pub fn window_area(&self) -> usize {
        self.kernel[0] * self.kernel[1]
    }
    /// `floor((hw + 2·pad − dil·(k − 1) − 1) / stride) + 1` per axis; None when the geometry is
    /// invalid (a zero kernel, stride or dilation, padding above half the kernel, or a window
    /// that does not fit the padded input).
    pub fn output_hw(&self, hw: [usize; 2]) -> Option<[usize; 2]> {
        let mut out = [0; 2];
        for i in 0..2 {
            let (k, s, p, d) = (
                self.kernel[i],
                self.stride[i],
                self.padding[i],
                self.dilation[i],
            );
            if k == 0 || s == 0 || d == 0 || 2 * p > k {
                return None;
            }
            let span = d.checked_mul(k - 1)?.checked_add(1)?;
            let padded = hw[i].checked_add(2 * p)?;
            if padded < span {
                return None;
            }
            out[i] = (padded - span) / s + 1;
        }
        Some(out)
    }
}

/// Interpolation of `upsample2d` and its adjoint.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Interpolation {
    /// PyTorch's legacy `nearest`: src = min(floor(dst · in / out), in − 1).
    Nearest,
    Bilinear {
        align_corners: bool,
    },
}

/// One step of PyTorch's `torch.optim.Adam` (L2 weight decay added to the gradient, bias
/// corrections `1 − βᵢᵗ`); `step` counts from 1.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamStep {
    pub lr: f64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    pub weight_decay: f64,
    pub step: u64,
}

/// What a device's storage implements. Every method gets dense row-major inputs with their
/// shapes and returns a new dense buffer; argument checking happened in `Tensor`.
pub trait BackendStorage: Sized + Send + Sync {
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
    fn to_vec(&self) -> Result<Vec<f32>>;
    fn unary(&self, op: UnaryOp) -> Result<Self>;
    /// `out_shape` is the broadcast of both shapes.
    fn binary(
        &self,
        shape: &Shape,
        rhs: &Self,
        rhs_shape: &Shape,
        out_shape: &Shape,
        op: BinaryOp,
    ) -> Result<Self>;
    /// cond ≠ 0 ? on_true : on_false, all three broadcast to `out_shape`.
    fn where_cond(
        &self,
        shape: &Shape,
        on_true: (&Self, &Shape),
        on_false: (&Self, &Shape),
        out_shape: &Shape,
    ) -> Result<Self>;
    /// Reduces over `axes` (sorted, unique); the result has the kept dims in order.
    fn reduce(&self, shape: &Shape, axes: &[usize], op: ReduceOp) -> Result<Self>;
    /// [batch, m, k] × [batch or 1, k, n] → [batch, m, n].
    fn matmul(
        &self,
        rhs: &Self,
        batch: usize,
        rhs_batched: bool,
        m: usize,
        k: usize,
        n: usize,
    ) -> Result<Self>;
    fn permute(&self, shape: &Shape, perm: &[usize]) -> Result<Self>;
    fn broadcast_to(&self, shape: &Shape, out_shape: &Shape) -> Result<Self>;
    fn narrow(&self, shape: &Shape, axis: usize, start: usize, len: usize) -> Result<Self>;
    /// Zero-pads along one axis: the adjoint of `narrow`.
    fn pad_axis(&self, shape: &Shape, axis: usize, before: usize, after: usize) -> Result<Self>;
    fn concat(parts: &[(&Self, &Shape)], axis: usize) -> Result<Self>;
    /// Pads the last two dims by [left, right, top, bottom].
    fn pad2d(&self, shape: [usize; 4], pads: [usize; 4], mode: PadMode) -> Result<Self>;
    /// Adjoint of `pad2d`: `shape` is the padded shape; sums each padded value back into its source.
    fn pad2d_adjoint(&self, shape: [usize; 4], pads: [usize; 4], mode: PadMode) -> Result<Self>;
    fn conv2d(
        &self,
        shape: [usize; 4],
        weight: &Self,
        wshape: [usize; 4],
        p: Conv2dParams,
    ) -> Result<Self>;
    /// Gradient of conv2d with respect to its input (a transposed convolution); `in_hw` fixes the output size.
    fn conv2d_input_grad(
        &self,
        gshape: [usize; 4],
        weight: &Self,
        wshape: [usize; 4],
        in_hw: [usize; 2],
        p: Conv2dParams,
    ) -> Result<Self>;
    /// Gradient of conv2d with respect to its weight, from the input (`self`) and the output gradient.
    fn conv2d_weight_grad(
        &self,
        shape: [usize; 4],
        grad_out: &Self,
        gshape: [usize; 4],
        khw: [usize; 2],
        p: Conv2dParams,
    ) -> Result<Self>;
    fn avg_pool2d(&self, shape: [usize; 4], p: Pool2dParams) -> Result<Self>;
    /// Adjoint of `avg_pool2d`: `shape` is the pooled shape, `in_hw` the unpooled size.
    fn avg_pool2d_adjoint(
        &self,
        shape: [usize; 4],
        in_hw: [usize; 2],
        p: Pool2dParams,
    ) -> Result<Self>;
    /// Max pooling: the pooled values and, per output, the offset `ky·kw + kx` of the chosen
    /// element within its window (as f32; −1 for a window lying wholly in the padding).
    fn max_pool2d(&self, shape: [usize; 4], p: MaxPool2dParams) -> Result<(Self, Self)>;
    /// Adds each pooled value (`self`, of the pooled `shape`) into the input position that
    /// `indices` (window offsets from `max_pool2d`) names; the result has spatial size `in_hw`.
    fn max_pool2d_scatter(
        &self,
        shape: [usize; 4],
        indices: &Self,
        in_hw: [usize; 2],
        p: MaxPool2dParams,
    ) -> Result<Self>;
    /// The adjoint of `max_pool2d_scatter`: reads the input (`self`, of `shape`) at the position
    /// each window offset in `indices` names; the result has spatial size `out_hw`.
    fn max_pool2d_gather(
        &self,
        shape: [usize; 4],
        indices: &Self,
        out_hw: [usize; 2],
        p: MaxPool2dParams,
    ) -> Result<Self>;
    fn upsample2d(
        &self,
        shape: [usize; 4],
        out_hw: [usize; 2],
        mode: Interpolation,
    ) -> Result<Self>;
    /// Adjoint of `upsample2d`: `shape` is the resized shape, `in_hw` the original size.
    fn upsample2d_adjoint(
        &self,
        shape: [usize; 4],
        in_hw: [usize; 2],
        mode: Interpolation,
    ) -> Result<Self>;
    /// Normalization statistics of [N, C, H, W] (`shape`): the mean and 1/sqrt(σ² + ε) with the
    /// biased variance σ², per plane (`instance`, N·C values each) or per channel over N, H, W
    /// (batch norm in training mode, C values each).
    fn norm_stats(&self, shape: [usize; 4], instance: bool, eps: f32) -> Result<(Self, Self)>;
    /// `(x − mean)·rstd` with statistics from `norm_stats`, then the modulation `m`.
    fn norm_modulate(
        &self,
        shape: [usize; 4],
        mean: &Self,
        rstd: &Self,
        instance: bool,
        m: NormModulation<&Self>,
    ) -> Result<Self>;
    /// Gradients of `y = x̂·s` (x̂ the normalized x, s = 1, or 1 + γ with a γ map of x's shape
    /// when `gamma` is given), `self` being dy: returns dx and, with `gamma`, dγ = dy·x̂.
    /// One Adam update of the parameter `self` from `grad` and the moments `m`, `v` (all of one
    /// length): returns the new parameter, m and v.
    fn adam_step(&self, grad: &Self, m: &Self, v: &Self, s: AdamStep)
        -> Result<(Self, Self, Self)>;
    #[allow(clippy::too_many_arguments)]
    fn norm_backward(
        &self,
        x: &Self,
        shape: [usize; 4],
        mean: &Self,
        rstd: &Self,
        instance: bool,
        gamma: Option<&Self>,
    ) -> Result<(Self, Option<Self>)>;
}

/// What a normalization applies after normalizing: nothing, a per-channel affine map
/// `x̂·γ[c] + β[c]` (γ, β of length C), or SPADE's spatial one `x̂·(1 + γ) + β` (γ, β of x's shape).
#[derive(Clone, Copy, Debug)]
pub enum NormModulation<T> {
    None,
    Channel { gamma: T, beta: T },
    Spatial { gamma: T, beta: T },
}

impl<T> NormModulation<T> {
    /// The same modulation over other handles (a tensor's storage, say).
    pub fn map<U>(self, mut f: impl FnMut(T) -> U) -> NormModulation<U> {
        match self {
            NormModulation::None => NormModulation::None,
            NormModulation::Channel { gamma, beta } => NormModulation::Channel {
                gamma: f(gamma),
                beta: f(beta),
            },
            NormModulation::Spatial { gamma, beta } => NormModulation::Spatial {
                gamma: f(gamma),
                beta: f(beta),
            },
        }
    }
}
