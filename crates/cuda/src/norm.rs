//! Fused batch / instance normalization with SPADE's spatial modulation, and a fused Adam step.
//!
//! `y = (x − μ)·rsqrt(σ² + ε)·s + t`, statistics per plane ([`NormShape::instance`]) or per channel
//! over the batch and the plane (batch norm, training mode), biased variance as PyTorch uses for
//! normalizing. Forward: one statistics pass over x, then one fused pass writing y. Backward: one
//! reduction pass and one fused pass writing dx (and dγ for SPADE; dβ is dy itself).
//! These serve inference and `create_graph = false`; the composite ops are the reference they are
//! tested against.
use crate::ops::{check_len, grid_1d, launch, BLOCK};
use crate::{driver_err, kernels, Buffer, Gpu, Result};
use cudarc::driver::{CudaSlice, LaunchConfig, PushKernelArg};

/// x is [n, c, hw]; `instance` picks per-plane statistics (instance norm), else per channel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NormShape {
    pub n: usize,
    pub c: usize,
    pub hw: usize,
    pub instance: bool,
}

impl NormShape {
    fn groups(&self) -> usize {
        if self.instance {
            self.n * self.c
        } else {
            self.c
        }
    }
    /// Values per statistics group.
    fn count(&self) -> f64 {
        (if self.instance {
            self.hw
        } else {
            self.n * self.hw
        }) as f64
    }
    /// Grid (chunks per plane, planes) and chunk length: enough blocks to fill the GPU, each
    /// block at least 4·BLOCK elements, chunks a multiple of 4 for the float4 paths.
    fn plan(&self, gpu: &Gpu) -> Result<(LaunchConfig, i32)> {
        let planes = self.n * self.c;
        check_len("norm", "elements", planes * self.hw)?;
        if planes > 65535 {
            return Err(crate::Error::TooLarge {
                op: "norm",
                what: "planes (N·C)",
                value: planes,
            });
        }
        let max_chunks = self.hw.div_ceil(4 * BLOCK as usize).max(1);
        let chunks = (8 * gpu.sm_count() as usize)
            .div_ceil(planes.max(1))
            .clamp(1, max_chunks);
        let chunk = self.hw.div_ceil(chunks).next_multiple_of(4).max(4);
        let cfg = LaunchConfig {
            grid_dim: (self.hw.div_ceil(chunk).max(1) as u32, planes as u32, 1),
            block_dim: (BLOCK, 1, 1),
            shared_mem_bytes: 0,
        };
        Ok((cfg, chunk as i32))
    }
    fn ints(&self) -> (i32, i32, i32) {
        (self.c as i32, self.hw as i32, self.instance as i32)
    }
}

/// The modulation applied after normalizing.
#[derive(Clone, Copy, Debug)]
pub enum Modulation<'a> {
    /// y = x̂.
    None,
    /// `y = x̂·γ[c] + β[c]` (affine batch / instance norm); γ, β are `[c]`.
    Channel { gamma: &'a Buffer, beta: &'a Buffer },
    /// y = x̂·(1 + γ) + β with γ, β maps of x's shape (SPADE).
    Spatial { gamma: &'a Buffer, beta: &'a Buffer },
}

impl Modulation<'_> {
    fn code(&self) -> i32 {
        match self {
            Modulation::None => 0,
            Modulation::Channel { .. } => 1,
            Modulation::Spatial { .. } => 2,
        }
    }
}

/// Per-group mean and 1/sqrt(σ² + ε), each of length N·C (instance) or C (batch).
pub struct NormStats {
    pub mean: Buffer,
    pub rstd: Buffer,
}

/// Sums (Σa, Σb) per group: one pass of `partial` into a zeroed double buffer.
fn group_sums(gpu: &Gpu, shape: NormShape) -> Result<CudaSlice<f64>> {
    gpu.stream()
        .alloc_zeros::<f64>(2 * shape.groups())
        .map_err(driver_err("alloc_zeros"))
}

pub fn stats(gpu: &Gpu, x: &Buffer, shape: NormShape, eps: f32) -> Result<NormStats> {
    let (cfg, chunk) = shape.plan(gpu)?;
    let (c, hw, inst) = shape.ints();
    let mut acc = group_sums(gpu, shape)?;
    let groups = shape.groups();
    let mut mean = gpu.alloc(groups)?;
    let mut rstd = gpu.alloc(groups)?;
    if shape.n * shape.c * shape.hw > 0 {
        // SAFETY: block (k, p) reads x[p·hw + k·chunk ..][..chunk] clipped to hw, for p < n·c
        // (x has n·c·hw elements) and adds into acc[2·group], group < groups (acc has 2·groups).
        unsafe {
            launch!(
                gpu,
                kernels::NORM_STATS_PARTIAL,
                cfg,
                &mut acc,
                x,
                &c,
                &hw,
                &inst,
                &chunk
            )
        }?;
    }
    let (g, count) = (groups as i32, shape.count());
    if groups > 0 {
        // SAFETY: thread g < groups reads acc[2g], acc[2g+1] and writes mean[g], rstd[g].
        unsafe {
            launch!(
                gpu,
                kernels::NORM_STATS_FINISH,
                grid_1d(groups),
                &mut mean,
                &mut rstd,
                &acc,
                &g,
                &count,
                &eps
            )
        }?;
    }
    Ok(NormStats { mean, rstd })
}

/// The fused normalize-modulate pass with precomputed statistics.
pub fn modulate(
    gpu: &Gpu,
    x: &Buffer,
    shape: NormShape,
    (mean, rstd): (&Buffer, &Buffer),
    m: Modulation,
) -> Result<Buffer> {
    let (cfg, chunk) = shape.plan(gpu)?;
    let (c, hw, inst) = shape.ints();
    let mut y = gpu.alloc(x.len())?;
    if x.is_empty() {
        return Ok(y);
    }
    let code = m.code();
    let (gamma, beta) = match m {
        // Never read when the code is 0: any valid pointer will do.
        Modulation::None => (x, x),
        Modulation::Channel { gamma, beta } | Modulation::Spatial { gamma, beta } => (gamma, beta),
    };
    // SAFETY: block (k, p) reads and writes elements p·hw + [k·chunk, min(hw, (k+1)·chunk)) of
    // x, y (and of the γ, β maps when spatial, which have x's shape); per-channel γ, β are read
    // at p mod c (length c); statistics at the plane's group (< groups).
    unsafe {
        launch!(
            gpu,
            kernels::NORM_MODULATE,
            cfg,
            &mut y,
            x,
            mean,
            rstd,
            gamma,
            beta,
            &c,
            &hw,
            &inst,
            &code,
            &chunk
        )
    }?;
    Ok(y)
}

/// Statistics, then the fused pass: the whole forward.
pub fn normalize(
    gpu: &Gpu,
    x: &Buffer,
    shape: NormShape,
    eps: f32,
    m: Modulation,
) -> Result<(Buffer, NormStats)> {
    let s = stats(gpu, x, shape, eps)?;
    Ok((modulate(gpu, x, shape, (&s.mean, &s.rstd), m)?, s))
}

/// Gradients of [`normalize`] with no modulation (`gamma` None) or SPADE's spatial one
/// (`gamma` the γ map): dx and, for SPADE, dγ = dy·x̂. dβ is dy itself.
pub fn backward(
    gpu: &Gpu,
    dy: &Buffer,
    x: &Buffer,
    shape: NormShape,
    (mean, rstd): (&Buffer, &Buffer),
    gamma: Option<&Buffer>,
) -> Result<(Buffer, Option<Buffer>)> {
    let (cfg, chunk) = shape.plan(gpu)?;
    let (c, hw, inst) = shape.ints();
    let code: i32 = if gamma.is_some() { 2 } else { 0 };
    let gamma_or_x = gamma.unwrap_or(x);
    let mut dx = gpu.alloc(x.len())?;
    let mut dgamma = match gamma {
        Some(_) => gpu.alloc(x.len())?,
        None => gpu.stream().null().map_err(driver_err("null"))?,
    };
    if x.is_empty() {
        return Ok((dx, gamma.map(|_| dgamma)));
    }
    let mut acc = group_sums(gpu, shape)?;
    // SAFETY: as in `modulate`: each block touches its plane's chunk of dy, x and the γ map
    // (x's shape; unread unless code is 2) and adds into acc[2·group] (2·groups long).
    unsafe {
        launch!(
            gpu,
            kernels::NORM_BWD_PARTIAL,
            cfg,
            &mut acc,
            dy,
            x,
            mean,
            rstd,
            gamma_or_x,
            &c,
            &hw,
            &inst,
            &code,
            &chunk
        )
    }?;
    let count = shape.count();
    // SAFETY: as above; writes dx (x's length) and, only when code is 2, dγ (x's length).
    unsafe {
        launch!(
            gpu,
            kernels::NORM_BWD_APPLY,
            cfg,
            &mut dx,
            &mut dgamma,
            dy,
            x,
            mean,
            rstd,
            gamma_or_x,
            &acc,
            &count,
            &c,
            &hw,
            &inst,
            &code,
            &chunk
        )
    }?;
    Ok((dx, gamma.map(|_| dgamma)))
}

/// Hyper-parameters of one Adam step (PyTorch's `torch.optim.Adam`, L2 weight decay);
/// `step` counts from 1.
#[derive(Clone, Copy, Debug)]
pub struct AdamStep {
    pub lr: f32,
    pub beta1: f32,
    pub beta2: f32,
    pub eps: f32,
    pub weight_decay: f32,
    pub step: u32,
}

/// Updates `param` and the moment buffers `m`, `v` in place from the gradient `grad`.
pub fn adam(
    gpu: &Gpu,
    param: &mut Buffer,
    m: &mut Buffer,
    v: &mut Buffer,
    grad: &Buffer,
    s: AdamStep,
) -> Result<()> {
    let len = param.len();
    if m.len() != len || v.len() != len || grad.len() != len {
        return Err(crate::Error::LengthMismatch {
            op: "adam",
            lens: vec![len, m.len(), v.len(), grad.len()],
        });
    }
    let n = check_len("adam", "elements", len)?;
    if len == 0 {
        return Ok(());
    }
    let bc1 = 1.0 - s.beta1.powi(s.step as i32);
    let bc2 = 1.0 - s.beta2.powi(s.step as i32);
    // SAFETY: all four buffers have n elements (checked above); thread i touches index i only.
    unsafe {
        launch!(
            gpu,
            kernels::ADAM,
            grid_1d(len),
            param,
            m,
            v,
            grad,
            &n,
            &s.lr,
            &s.beta1,
            &s.beta2,
            &s.eps,
            &bc1,
            &bc2,
            &s.weight_decay
        )
    }
}
