//! The CUDA backend (feature `cuda`): [`CudaStorage`] implements [`BackendStorage`] with the
//! hand-written kernels of `tessera-cuda`. Every op runs on the device; nothing round-trips
//! through the host except explicit transfers (`from_vec`, `to_vec`, `to_device`).
use crate::backend::*;
use crate::{Device, Error, Result, Shape};
use std::sync::Arc;
use tessera_cuda::norm::{self, Modulation, NormShape};
use tessera_cuda::ops::{self, codes, Conv2d, ConvAlgo, ConvMath, MaxPool, Planes, UnaryCode};
use tessera_cuda::{Buffer, Gpu};

/// A dense f32 buffer on one GPU. Cloning shares the buffer (tensors are immutable).
#[derive(Clone)]
pub struct CudaStorage {
    buf: Arc<Buffer>,
    gpu: Arc<Gpu>,
}

impl std::fmt::Debug for CudaStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "CudaStorage({} values on {:?})",
            self.buf.len(),
            self.gpu
        )
    }
}

fn cuda_err(op: &'static str) -> impl Fn(tessera_cuda::Error) -> Error {
    move |e| Error::Cuda {
        op,
        why: e.to_string(),
    }
}

impl CudaStorage {
    /// Copies host data to device `ordinal`.
    pub fn from_host(data: &[f32], ordinal: usize, op: &'static str) -> Result<CudaStorage> {
        let gpu = tessera_cuda::gpu(ordinal).map_err(cuda_err(op))?;
        let buf = gpu.upload(data).map_err(cuda_err(op))?;
        Ok(CudaStorage {
            buf: Arc::new(buf),
            gpu,
        })
    }
    pub fn device(&self) -> Device {
        Device::Cuda(self.gpu.ordinal())
    }
    /// The device buffer, for custom kernels (see `tessera_cuda::norm`).
    pub fn buffer(&self) -> &Buffer {
        &self.buf
    }
    pub fn gpu(&self) -> &Arc<Gpu> {
        &self.gpu
    }
    /// Wraps a buffer produced by a custom kernel on `gpu`.
    pub fn from_buffer(buf: Buffer, gpu: Arc<Gpu>) -> CudaStorage {
        CudaStorage {
            buf: Arc::new(buf),
            gpu,
        }
    }
    fn wrap(&self, r: tessera_cuda::Result<Buffer>, op: &'static str) -> Result<Self> {
        Ok(CudaStorage {
            buf: Arc::new(r.map_err(cuda_err(op))?),
            gpu: self.gpu.clone(),
        })
    }
}

/// `Tensor` validates geometry before calling a backend, so this only guards that contract.
fn geometry_err(op: &'static str) -> Error {
    Error::Cuda {
        op,
        why: "invalid geometry reached the backend".into(),
    }
}

fn cmp_code(c: CmpOp) -> i32 {
    match c {
        CmpOp::Eq => codes::EQ,
        CmpOp::Ne => codes::NE,
        CmpOp::Lt => codes::LT,
        CmpOp::Le => codes::LE,
        CmpOp::Gt => codes::GT,
        CmpOp::Ge => codes::GE,
    }
}

fn unary_code(op: UnaryOp) -> UnaryCode {
    let c = |op: i32, a: f32, b: f32| UnaryCode { op, a, b, cmp: 0 };
    match op {
        UnaryOp::Neg => c(codes::NEG, 0.0, 0.0),
        UnaryOp::Exp => c(codes::EXP, 0.0, 0.0),
        UnaryOp::Log => c(codes::LOG, 0.0, 0.0),
        UnaryOp::Sqrt => c(codes::SQRT, 0.0, 0.0),
        UnaryOp::Rsqrt => c(codes::RSQRT, 0.0, 0.0),
        UnaryOp::Abs => c(codes::ABS, 0.0, 0.0),
        UnaryOp::Sign => c(codes::SIGN, 0.0, 0.0),
        UnaryOp::Relu => c(codes::RELU, 0.0, 0.0),
        UnaryOp::LeakyRelu(s) => c(codes::LEAKY_RELU, s, 0.0),
        UnaryOp::Tanh => c(codes::TANH, 0.0, 0.0),
        UnaryOp::Sigmoid => c(codes::SIGMOID, 0.0, 0.0),
        UnaryOp::Powf(p) => c(codes::POWF, p, 0.0),
        UnaryOp::Clamp(lo, hi) => c(codes::CLAMP, lo, hi),
        UnaryOp::Affine { mul, add } => c(codes::AFFINE, mul, add),
        UnaryOp::CmpScalar(op, s) => UnaryCode {
            op: codes::CMP_SCALAR,
            a: s,
            b: 0.0,
            cmp: cmp_code(op),
        },
    }
}

fn binary_code(op: BinaryOp) -> (i32, i32) {
    match op {
        BinaryOp::Add => (codes::ADD, 0),
        BinaryOp::Sub => (codes::SUB, 0),
        BinaryOp::Mul => (codes::MUL, 0),
        BinaryOp::Div => (codes::DIV, 0),
        BinaryOp::Pow => (codes::POW, 0),
        BinaryOp::Maximum => (codes::MAXIMUM, 0),
        BinaryOp::Minimum => (codes::MINIMUM, 0),
        BinaryOp::Cmp(c) => (codes::CMP, cmp_code(c)),
    }
}

fn interpolation_code(mode: Interpolation) -> i32 {
    match mode {
        Interpolation::Nearest => codes::NEAREST,
        Interpolation::Bilinear {
            align_corners: false,
        } => codes::BILINEAR,
        Interpolation::Bilinear {
            align_corners: true,
        } => codes::BILINEAR_ALIGN_CORNERS,
    }
}

fn conv_geometry(x: [usize; 4], w: [usize; 4], out_hw: [usize; 2], p: Conv2dParams) -> Conv2d {
    Conv2d {
        input: x,
        weight: w,
        out_hw,
        stride: p.stride,
        padding: p.padding,
        dilation: p.dilation,
        math: if crate::cuda_conv_tf32() {
            ConvMath::Tf32
        } else {
            ConvMath::Fp32
        },
        algo: if crate::cuda_conv_winograd() {
            ConvAlgo::Winograd
        } else {
            ConvAlgo::ImplicitGemm
        },
    }
}

fn max_pool(p: MaxPool2dParams) -> MaxPool {
    MaxPool {
        kernel: p.kernel,
        stride: p.stride,
        padding: p.padding,
        dilation: p.dilation,
    }
}

impl BackendStorage for CudaStorage {
    fn len(&self) -> usize {
        self.buf.len()
    }
    fn to_vec(&self) -> Result<Vec<f32>> {
        self.gpu.download(&self.buf).map_err(cuda_err("to_vec"))
    }
    fn unary(&self, op: UnaryOp) -> Result<Self> {
        self.wrap(ops::unary(&self.gpu, &self.buf, unary_code(op)), "unary")
    }
    fn binary(
        &self,
        shape: &Shape,
        rhs: &Self,
        rhs_shape: &Shape,
        out_shape: &Shape,
        op: BinaryOp,
    ) -> Result<Self> {
        let (code, cmp) = binary_code(op);
        self.wrap(
            ops::binary(
                &self.gpu,
                &self.buf,
                shape.dims(),
                &rhs.buf,
                rhs_shape.dims(),
                out_shape.dims(),
                code,
                cmp,
            ),
            "binary",
        )
    }
    fn where_cond(
        &self,
        shape: &Shape,
        on_true: (&Self, &Shape),
        on_false: (&Self, &Shape),
        out_shape: &Shape,
    ) -> Result<Self> {
        self.wrap(
            ops::where_cond(
                &self.gpu,
                (&self.buf, shape.dims()),
                (&on_true.0.buf, on_true.1.dims()),
                (&on_false.0.buf, on_false.1.dims()),
                out_shape.dims(),
            ),
            "where_cond",
        )
    }
    fn reduce(&self, shape: &Shape, axes: &[usize], op: ReduceOp) -> Result<Self> {
        let code = match op {
            ReduceOp::Sum => codes::REDUCE_SUM,
            ReduceOp::Max => codes::REDUCE_MAX,
            ReduceOp::Min => codes::REDUCE_MIN,
            ReduceOp::Var { unbiased: false } => codes::REDUCE_VAR,
            ReduceOp::Var { unbiased: true } => codes::REDUCE_VAR_UNBIASED,
        };
        self.wrap(
            ops::reduce(&self.gpu, &self.buf, shape.dims(), axes, code),
            "reduce",
        )
    }
    fn matmul(
        &self,
        rhs: &Self,
        batch: usize,
        rhs_batched: bool,
        m: usize,
        k: usize,
        n: usize,
    ) -> Result<Self> {
        self.wrap(
            ops::matmul(&self.gpu, &self.buf, &rhs.buf, batch, rhs_batched, m, k, n),
            "matmul",
        )
    }
    fn permute(&self, shape: &Shape, perm: &[usize]) -> Result<Self> {
        self.wrap(
            ops::permute(&self.gpu, &self.buf, shape.dims(), perm),
            "permute",
        )
    }
    fn broadcast_to(&self, shape: &Shape, out_shape: &Shape) -> Result<Self> {
        self.wrap(
            ops::broadcast_to(&self.gpu, &self.buf, shape.dims(), out_shape.dims()),
            "broadcast_to",
        )
    }
    fn narrow(&self, shape: &Shape, axis: usize, start: usize, len: usize) -> Result<Self> {
        self.wrap(
            ops::narrow(&self.gpu, &self.buf, shape.dims(), axis, start, len),
            "narrow",
        )
    }
    fn pad_axis(&self, shape: &Shape, axis: usize, before: usize, after: usize) -> Result<Self> {
        self.wrap(
            ops::pad_axis(&self.gpu, &self.buf, shape.dims(), axis, before, after),
            "pad_axis",
        )
    }
    fn concat(parts: &[(&Self, &Shape)], axis: usize) -> Result<Self> {
        let first = parts[0].0;
        let bufs: Vec<(&Buffer, &[usize])> =
            parts.iter().map(|(s, sh)| (&*s.buf, sh.dims())).collect();
        first.wrap(ops::concat(&first.gpu, &bufs, axis), "concat")
    }
    fn pad2d(&self, [n, c, h, w]: [usize; 4], pads: [usize; 4], mode: PadMode) -> Result<Self> {
        self.wrap(
            ops::pad2d(
                &self.gpu,
                &self.buf,
                n * c,
                [h, w],
                pads,
                pad_code(mode),
                false,
            ),
            "pad2d",
        )
    }
    fn pad2d_adjoint(
        &self,
        [n, c, hp, wp]: [usize; 4],
        pads: [usize; 4],
        mode: PadMode,
    ) -> Result<Self> {
        let hw = [hp - pads[2] - pads[3], wp - pads[0] - pads[1]];
        self.wrap(
            ops::pad2d(&self.gpu, &self.buf, n * c, hw, pads, pad_code(mode), true),
            "pad2d_adjoint",
        )
    }
    fn conv2d(
        &self,
        shape: [usize; 4],
        weight: &Self,
        wshape: [usize; 4],
        p: Conv2dParams,
    ) -> Result<Self> {
        let out_hw = p
            .output_hw([shape[2], shape[3]], [wshape[2], wshape[3]])
            .ok_or_else(|| geometry_err("conv2d"))?;
        self.wrap(
            ops::conv2d(
                &self.gpu,
                &self.buf,
                &weight.buf,
                conv_geometry(shape, wshape, out_hw, p),
            ),
            "conv2d",
        )
    }
    fn conv2d_input_grad(
        &self,
        gshape: [usize; 4],
        weight: &Self,
        wshape: [usize; 4],
        in_hw: [usize; 2],
        p: Conv2dParams,
    ) -> Result<Self> {
        let x = [gshape[0], wshape[1], in_hw[0], in_hw[1]];
        self.wrap(
            ops::conv2d_input_grad(
                &self.gpu,
                &self.buf,
                &weight.buf,
                conv_geometry(x, wshape, [gshape[2], gshape[3]], p),
            ),
            "conv2d_input_grad",
        )
    }
    fn conv2d_weight_grad(
        &self,
        shape: [usize; 4],
        grad_out: &Self,
        gshape: [usize; 4],
        khw: [usize; 2],
        p: Conv2dParams,
    ) -> Result<Self> {
        let w = [gshape[1], shape[1], khw[0], khw[1]];
        self.wrap(
            ops::conv2d_weight_grad(
                &self.gpu,
                &self.buf,
                &grad_out.buf,
                conv_geometry(shape, w, [gshape[2], gshape[3]], p),
            ),
            "conv2d_weight_grad",
        )
    }
    fn avg_pool2d(&self, [n, c, h, w]: [usize; 4], p: Pool2dParams) -> Result<Self> {
        let out_hw = p
            .output_hw([h, w])
            .ok_or_else(|| geometry_err("avg_pool2d"))?;
        let geo = Planes {
            planes: n * c,
            in_hw: [h, w],
            out_hw,
        };
        self.wrap(
            ops::avg_pool2d(
                &self.gpu,
                &self.buf,
                geo,
                p.kernel,
                p.stride,
                p.padding,
                p.count_include_pad,
                false,
            ),
            "avg_pool2d",
        )
    }
    fn avg_pool2d_adjoint(
        &self,
        [n, c, ho, wo]: [usize; 4],
        in_hw: [usize; 2],
        p: Pool2dParams,
    ) -> Result<Self> {
        let geo = Planes {
            planes: n * c,
            in_hw,
            out_hw: [ho, wo],
        };
        self.wrap(
            ops::avg_pool2d(
                &self.gpu,
                &self.buf,
                geo,
                p.kernel,
                p.stride,
                p.padding,
                p.count_include_pad,
                true,
            ),
            "avg_pool2d_adjoint",
        )
    }
    fn max_pool2d(&self, [n, c, h, w]: [usize; 4], p: MaxPool2dParams) -> Result<(Self, Self)> {
        let out_hw = p
            .output_hw([h, w])
            .ok_or_else(|| geometry_err("max_pool2d"))?;
        let geo = Planes {
            planes: n * c,
            in_hw: [h, w],
            out_hw,
        };
        let (v, i) = ops::max_pool2d(&self.gpu, &self.buf, geo, max_pool(p))
            .map_err(cuda_err("max_pool2d"))?;
        Ok((
            self.wrap(Ok(v), "max_pool2d")?,
            self.wrap(Ok(i), "max_pool2d")?,
        ))
    }
    fn max_pool2d_scatter(
        &self,
        [n, c, ho, wo]: [usize; 4],
        indices: &Self,
        in_hw: [usize; 2],
        p: MaxPool2dParams,
    ) -> Result<Self> {
        let geo = Planes {
            planes: n * c,
            in_hw,
            out_hw: [ho, wo],
        };
        self.wrap(
            ops::max_pool2d_route(&self.gpu, &self.buf, &indices.buf, geo, max_pool(p), true),
            "max_pool2d_scatter",
        )
    }
    fn max_pool2d_gather(
        &self,
        [n, c, h, w]: [usize; 4],
        indices: &Self,
        out_hw: [usize; 2],
        p: MaxPool2dParams,
    ) -> Result<Self> {
        let geo = Planes {
            planes: n * c,
            in_hw: [h, w],
            out_hw,
        };
        self.wrap(
            ops::max_pool2d_route(&self.gpu, &self.buf, &indices.buf, geo, max_pool(p), false),
            "max_pool2d_gather",
        )
    }
    fn upsample2d(
        &self,
        [n, c, h, w]: [usize; 4],
        out_hw: [usize; 2],
        mode: Interpolation,
    ) -> Result<Self> {
        let geo = Planes {
            planes: n * c,
            in_hw: [h, w],
            out_hw,
        };
        self.wrap(
            ops::upsample2d(&self.gpu, &self.buf, geo, interpolation_code(mode), false),
            "upsample2d",
        )
    }
    fn upsample2d_adjoint(
        &self,
        [n, c, ho, wo]: [usize; 4],
        in_hw: [usize; 2],
        mode: Interpolation,
    ) -> Result<Self> {
        let geo = Planes {
            planes: n * c,
            in_hw,
            out_hw: [ho, wo],
        };
        self.wrap(
            ops::upsample2d(&self.gpu, &self.buf, geo, interpolation_code(mode), true),
            "upsample2d_adjoint",
        )
    }
    fn norm_stats(
        &self,
        [n, c, h, w]: [usize; 4],
        instance: bool,
        eps: f32,
    ) -> Result<(Self, Self)> {
        let shape = NormShape {
            n,
            c,
            hw: h * w,
            instance,
        };
        let stats =
            norm::stats(&self.gpu, &self.buf, shape, eps).map_err(cuda_err("norm_stats"))?;
        Ok((
            self.wrap(Ok(stats.mean), "norm_stats")?,
            self.wrap(Ok(stats.rstd), "norm_stats")?,
        ))
    }
    fn norm_modulate(
        &self,
        [n, c, h, w]: [usize; 4],
        mean: &Self,
        rstd: &Self,
        instance: bool,
        m: NormModulation<&Self>,
    ) -> Result<Self> {
        let shape = NormShape {
            n,
            c,
            hw: h * w,
            instance,
        };
        let m = match m {
            NormModulation::None => Modulation::None,
            NormModulation::Channel { gamma, beta } => Modulation::Channel {
                gamma: &gamma.buf,
                beta: &beta.buf,
            },
            NormModulation::Spatial { gamma, beta } => Modulation::Spatial {
                gamma: &gamma.buf,
                beta: &beta.buf,
            },
        };
        self.wrap(
            norm::modulate(&self.gpu, &self.buf, shape, (&mean.buf, &rstd.buf), m),
            "norm_modulate",
        )
    }
    fn adam_step(
        &self,
        grad: &Self,
        m: &Self,
        v: &Self,
        s: AdamStep,
    ) -> Result<(Self, Self, Self)> {
        let op = "adam_step";
        let copy = |b: &Buffer| self.gpu.duplicate(b).map_err(cuda_err(op));
        let (mut p2, mut m2, mut v2) = (copy(&self.buf)?, copy(&m.buf)?, copy(&v.buf)?);
        let step = norm::AdamStep {
            lr: s.lr as f32,
            beta1: s.beta1 as f32,
            beta2: s.beta2 as f32,
            eps: s.eps as f32,
            weight_decay: s.weight_decay as f32,
            step: u32::try_from(s.step).map_err(|_| Error::Cuda {
                op,
                why: format!("step {} does not fit the kernel's 32-bit counter", s.step),
            })?,
        };
        norm::adam(&self.gpu, &mut p2, &mut m2, &mut v2, &grad.buf, step).map_err(cuda_err(op))?;
        Ok((
            self.wrap(Ok(p2), op)?,
            self.wrap(Ok(m2), op)?,
            self.wrap(Ok(v2), op)?,
        ))
    }
    fn norm_backward(
        &self,
        x: &Self,
        [n, c, h, w]: [usize; 4],
        mean: &Self,
        rstd: &Self,
        instance: bool,
        gamma: Option<&Self>,
    ) -> Result<(Self, Option<Self>)> {
        let shape = NormShape {
            n,
            c,
            hw: h * w,
            instance,
        };
        let (dx, dgamma) = norm::backward(
            &self.gpu,
            &self.buf,
            &x.buf,
            shape,
            (&mean.buf, &rstd.buf),
            gamma.map(|g| &*g.buf),
        )
        .map_err(cuda_err("norm_backward"))?;
        Ok((
            self.wrap(Ok(dx), "norm_backward")?,
            dgamma
                .map(|g| self.wrap(Ok(g), "norm_backward"))
                .transpose()?,
        ))
    }
}

fn pad_code(mode: PadMode) -> i32 {
    match mode {
        PadMode::Zero => codes::PAD_ZERO,
        PadMode::Reflect => codes::PAD_REFLECT,
        PadMode::Replicate => codes::PAD_REPLICATE,
    }
}
