//! Launchers for the kernels behind tessera's tensor ops. Every function takes dense row-major
//! device buffers with their dimensions (already validated by the caller: `tessera-tensor` checks
//! shapes before it calls in here) and returns a new buffer.
//!
//! Every launch is `unsafe`: the kernel trusts its pointer arguments and sizes. Each call site
//! states its contract: which buffers are read and written, and why every index the kernel forms
//! from the passed sizes lies inside them.
use crate::kernels::{self, Kernel};
use crate::{Buffer, Error, Gpu, Result};
use cudarc::driver::{DeviceRepr, LaunchConfig, PushKernelArg};

pub(crate) const BLOCK: u32 = 256;
const MAX_RANK: usize = 8;

/// Launches `kernel` with the given arguments (an `unsafe` operation: see the module docs).
macro_rules! launch {
    ($gpu:expr, $kernel:expr, $cfg:expr, $($arg:expr),* $(,)?) => {{
        let f = $gpu.function($kernel)?;
        let mut b = $gpu.stream().launch_builder(&f);
        $( b.arg($arg); )*
        b.launch($cfg).map(|_| ()).map_err($crate::driver_err($kernel.name))
    }};
}
pub(crate) use launch;

/// A grid-stride launch over `n` elements.
pub(crate) fn grid_1d(n: usize) -> LaunchConfig {
    let blocks = n.div_ceil(BLOCK as usize).clamp(1, 1 << 20) as u32;
    LaunchConfig {
        grid_dim: (blocks, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// Kernels index with 32-bit integers.
pub(crate) fn check_len(op: &'static str, what: &'static str, value: usize) -> Result<u32> {
    if value > i32::MAX as usize {
        return Err(Error::TooLarge { op, what, value });
    }
    Ok(value as u32)
}

/// Elementwise codes of `tessera_unary` (see `elementwise.cu`).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UnaryCode {
    pub op: i32,
    pub a: f32,
    pub b: f32,
    pub cmp: i32,
}

/// Codes of `unary_op`, `binary_op` and `cmp_op` in `elementwise.cu`.
pub mod codes {
    pub const NEG: i32 = 0;
    pub const EXP: i32 = 1;
    pub const LOG: i32 = 2;
    pub const SQRT: i32 = 3;
    pub const RSQRT: i32 = 4;
    pub const ABS: i32 = 5;
    pub const SIGN: i32 = 6;
    pub const RELU: i32 = 7;
    pub const LEAKY_RELU: i32 = 8;
    pub const TANH: i32 = 9;
    pub const SIGMOID: i32 = 10;
    pub const POWF: i32 = 11;
    pub const CLAMP: i32 = 12;
    pub const AFFINE: i32 = 13;
    pub const CMP_SCALAR: i32 = 14;

    pub const ADD: i32 = 0;
    pub const SUB: i32 = 1;
    pub const MUL: i32 = 2;
    pub const DIV: i32 = 3;
    pub const POW: i32 = 4;
    pub const MAXIMUM: i32 = 5;
    pub const MINIMUM: i32 = 6;
    pub const CMP: i32 = 7;

    pub const EQ: i32 = 0;
    pub const NE: i32 = 1;
    pub const LT: i32 = 2;
    pub const LE: i32 = 3;
    pub const GT: i32 = 4;
    pub const GE: i32 = 5;

    pub const REDUCE_SUM: i32 = 0;
    pub const REDUCE_MAX: i32 = 1;
    pub const REDUCE_MIN: i32 = 2;
    pub const REDUCE_VAR: i32 = 3;
    pub const REDUCE_VAR_UNBIASED: i32 = 4;

    pub const PAD_ZERO: i32 = 0;
    pub const PAD_REFLECT: i32 = 1;
    pub const PAD_REPLICATE: i32 = 2;

    pub const NEAREST: i32 = 0;
    pub const BILINEAR: i32 = 1;
    pub const BILINEAR_ALIGN_CORNERS: i32 = 2;
}

/// `Strided3` of `common.cuh`: an iteration space and three operands' strides in it.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Strided3 {
    rank: u32,
    dims: [u32; MAX_RANK],
    s0: [u32; MAX_RANK],
    s1: [u32; MAX_RANK],
    s2: [u32; MAX_RANK],
}

// SAFETY: a plain `repr(C)` struct of u32s, laid out exactly like `Strided3` in common.cuh.
unsafe impl DeviceRepr for Strided3 {}

impl Strided3 {
    /// The space `dims` with each operand's strides, after dropping size-1 axes and merging
    /// neighbouring axes that every operand walks contiguously (fewer divisions per element).
    pub fn new(op: &'static str, dims: &[usize], strides: [&[usize]; 3]) -> Result<Strided3> {
        let mut axes: Vec<(usize, [usize; 3])> = Vec::new();
        for (i, &d) in dims.iter().enumerate() {
            if d == 1 {
                continue;
            }
            let s = [strides[0][i], strides[1][i], strides[2][i]];
            match axes.last_mut() {
                Some((pd, ps)) if (0..3).all(|k| ps[k] == s[k] * d) => {
                    *pd *= d;
                    *ps = s;
                }
                _ => axes.push((d, s)),
            }
        }
        if axes.len() > MAX_RANK {
            return Err(Error::TooLarge {
                op,
                what: "rank after merging axes",
                value: axes.len(),
            });
        }
        let mut l = Strided3 {
            rank: axes.len() as u32,
            ..Default::default()
        };
        for (i, (d, s)) in axes.into_iter().enumerate() {
            l.dims[i] = check_len(op, "dimension", d)?;
            l.s0[i] = check_len(op, "stride", s[0])?;
            l.s1[i] = check_len(op, "stride", s[1])?;
            l.s2[i] = check_len(op, "stride", s[2])?;
        }
        Ok(l)
    }
}

pub fn contiguous_strides(dims: &[usize]) -> Vec<usize> {
    let mut s = vec![1; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1];
    }
    s
}

/// Strides of `dims` read as if broadcast to `out` (right-aligned; 0 along broadcast axes).
pub fn broadcast_strides(dims: &[usize], out: &[usize]) -> Vec<usize> {
    let own = contiguous_strides(dims);
    let lead = out.len() - dims.len();
    (0..out.len())
        .map(|i| {
            if i < lead || dims[i - lead] == 1 {
                0
            } else {
                own[i - lead]
            }
        })
        .collect()
}

fn numel(dims: &[usize]) -> usize {
    dims.iter().product()
}

pub fn fill(gpu: &Gpu, len: usize, value: f32) -> Result<Buffer> {
    let n = check_len("fill", "elements", len)?;
    let mut out = gpu.alloc(len)?;
    if len > 0 {
        // SAFETY: writes out[0..n), which has n elements.
        unsafe { launch!(gpu, kernels::FILL, grid_1d(len), &mut out, &n, &value) }?;
    }
    Ok(out)
}

pub fn unary(gpu: &Gpu, x: &Buffer, code: UnaryCode) -> Result<Buffer> {
    let len = x.len();
    let n = check_len("unary", "elements", len)?;
    let mut out = gpu.alloc(len)?;
    if len > 0 {
        // SAFETY: reads x[0..n) and writes out[0..n); both have n elements.
        unsafe {
            launch!(
                gpu,
                kernels::UNARY,
                grid_1d(len),
                &mut out,
                x,
                &n,
                &code.op,
                &code.a,
                &code.b,
                &code.cmp
            )
        }?;
    }
    Ok(out)
}

/// `op`/`cmp` are codes of [`codes`]; `out_dims` is the broadcast of both shapes.
#[allow(clippy::too_many_arguments)]
pub fn binary(
    gpu: &Gpu,
    a: &Buffer,
    a_dims: &[usize],
    b: &Buffer,
    b_dims: &[usize],
    out_dims: &[usize],
    op: i32,
    cmp: i32,
) -> Result<Buffer> {
    let len = numel(out_dims);
    let n = check_len("binary", "elements", len)?;
    let mut out = gpu.alloc(len)?;
    if len == 0 {
        return Ok(out);
    }
    if a_dims == b_dims {
        // SAFETY: a, b and out all have n elements; the kernel touches indices 0..n.
        unsafe {
            launch!(
                gpu,
                kernels::BINARY_SAME,
                grid_1d(len),
                &mut out,
                a,
                b,
                &n,
                &op,
                &cmp
            )
        }?;
        return Ok(out);
    }
    let l = Strided3::new(
        "binary",
        out_dims,
        [
            &contiguous_strides(out_dims),
            &broadcast_strides(a_dims, out_dims),
            &broadcast_strides(b_dims, out_dims),
        ],
    )?;
    // SAFETY: out is contiguous over out_dims (n elements); a and b are read through their
    // broadcast strides, which keep every offset inside their own dims (stride 0 on broadcast axes).
    unsafe {
        launch!(
            gpu,
            kernels::BINARY,
            grid_1d(len),
            &mut out,
            a,
            b,
            &l,
            &n,
            &op,
            &cmp
        )
    }?;
    Ok(out)
}

pub fn where_cond(
    gpu: &Gpu,
    cond: (&Buffer, &[usize]),
    on_true: (&Buffer, &[usize]),
    on_false: (&Buffer, &[usize]),
    out_dims: &[usize],
) -> Result<Buffer> {
    let len = numel(out_dims);
    let n = check_len("where_cond", "elements", len)?;
    let mut out = gpu.alloc(len)?;
    if len == 0 {
        return Ok(out);
    }
    let l = Strided3::new(
        "where_cond",
        out_dims,
        [
            &broadcast_strides(cond.1, out_dims),
            &broadcast_strides(on_true.1, out_dims),
            &broadcast_strides(on_false.1, out_dims),
        ],
    )?;
    // SAFETY: out has n elements written at 0..n; the three inputs are read through broadcast
    // strides of their own dims.
    unsafe {
        launch!(
            gpu,
            kernels::WHERE,
            grid_1d(len),
            &mut out,
            cond.0,
            on_true.0,
            on_false.0,
            &l,
            &n
        )
    }?;
    Ok(out)
}

/// dst[dst_off + Σ i·dst_strides] = src[src_off + Σ i·src_strides] over `dims`.
#[allow(clippy::too_many_arguments)]
fn copy_strided(
    gpu: &Gpu,
    dst: &mut Buffer,
    src: &Buffer,
    dims: &[usize],
    dst_strides: &[usize],
    src_strides: &[usize],
    dst_off: usize,
    src_off: usize,
) -> Result<()> {
    let len = numel(dims);
    if len == 0 {
        return Ok(());
    }
    let n = check_len("copy", "elements", len)?;
    let l = Strided3::new("copy", dims, [dst_strides, src_strides, src_strides])?;
    let (d, s) = (
        check_len("copy", "offset", dst_off)?,
        check_len("copy", "offset", src_off)?,
    );
    // SAFETY: callers pass strides and offsets that describe a region inside dst and src (a
    // permutation, broadcast, sub-block or placement of the source in the destination).
    unsafe {
        launch!(
            gpu,
            kernels::COPY_STRIDED,
            grid_1d(len),
            dst,
            src,
            &l,
            &n,
            &d,
            &s
        )
    }
}

pub fn permute(gpu: &Gpu, x: &Buffer, dims: &[usize], perm: &[usize]) -> Result<Buffer> {
    let out_dims: Vec<usize> = perm.iter().map(|&p| dims[p]).collect();
    let in_strides = contiguous_strides(dims);
    let src_strides: Vec<usize> = perm.iter().map(|&p| in_strides[p]).collect();
    let mut out = gpu.alloc(x.len())?;
    copy_strided(
        gpu,
        &mut out,
        x,
        &out_dims,
        &contiguous_strides(&out_dims),
        &src_strides,
        0,
        0,
    )?;
    Ok(out)
}

pub fn broadcast_to(gpu: &Gpu, x: &Buffer, dims: &[usize], out_dims: &[usize]) -> Result<Buffer> {
    let mut out = gpu.alloc(numel(out_dims))?;
    copy_strided(
        gpu,
        &mut out,
        x,
        out_dims,
        &contiguous_strides(out_dims),
        &broadcast_strides(dims, out_dims),
        0,
        0,
    )?;
    Ok(out)
}

pub fn narrow(
    gpu: &Gpu,
    x: &Buffer,
    dims: &[usize],
    axis: usize,
    start: usize,
    len: usize,
) -> Result<Buffer> {
    let mut out_dims = dims.to_vec();
    out_dims[axis] = len;
    let in_strides = contiguous_strides(dims);
    let mut out = gpu.alloc(numel(&out_dims))?;
    copy_strided(
        gpu,
        &mut out,
        x,
        &out_dims,
        &contiguous_strides(&out_dims),
        &in_strides,
        0,
        start * in_strides[axis],
    )?;
    Ok(out)
}

pub fn pad_axis(
    gpu: &Gpu,
    x: &Buffer,
    dims: &[usize],
    axis: usize,
    before: usize,
    after: usize,
) -> Result<Buffer> {
    let mut out_dims = dims.to_vec();
    out_dims[axis] += before + after;
    let out_strides = contiguous_strides(&out_dims);
    let mut out = gpu.zeros(numel(&out_dims))?;
    copy_strided(
        gpu,
        &mut out,
        x,
        dims,
        &out_strides,
        &contiguous_strides(dims),
        before * out_strides[axis],
        0,
    )?;
    Ok(out)
}

pub fn concat(gpu: &Gpu, parts: &[(&Buffer, &[usize])], axis: usize) -> Result<Buffer> {
    let mut out_dims = parts[0].1.to_vec();
    out_dims[axis] = parts.iter().map(|p| p.1[axis]).sum();
    let out_strides = contiguous_strides(&out_dims);
    let mut out = gpu.alloc(numel(&out_dims))?;
    let mut at = 0;
    for (buf, dims) in parts {
        copy_strided(
            gpu,
            &mut out,
            buf,
            dims,
            &out_strides,
            &contiguous_strides(dims),
            at * out_strides[axis],
            0,
        )?;
        at += dims[axis];
    }
    Ok(out)
}

/// Reduces over `axes` (sorted, unique) with a [`codes`] `REDUCE_*` op; kept dims stay in order.
pub fn reduce(gpu: &Gpu, x: &Buffer, dims: &[usize], axes: &[usize], op: i32) -> Result<Buffer> {
    let strides = contiguous_strides(dims);
    let split = |keep: bool| -> (Vec<usize>, Vec<usize>) {
        (0..dims.len())
            .filter(|a| axes.contains(a) != keep)
            .map(|a| (dims[a], strides[a]))
            .unzip()
    };
    let (kept_dims, kept_strides) = split(true);
    let (red_dims, red_strides) = split(false);
    let outputs = numel(&kept_dims);
    let run = check_len("reduce", "reduced elements", numel(&red_dims))?;
    check_len("reduce", "elements", x.len())?;
    let mut out = gpu.alloc(outputs)?;
    if outputs == 0 {
        return Ok(out);
    }
    let kept = Strided3::new("reduce", &kept_dims, [&kept_strides; 3])?;
    let red = Strided3::new("reduce", &red_dims, [&red_strides; 3])?;
    let cfg = LaunchConfig {
        grid_dim: (check_len("reduce", "outputs", outputs)?, 1, 1),
        block_dim: (BLOCK, 1, 1),
        shared_mem_bytes: 0,
    };
    // SAFETY: block b writes out[b] for b < outputs; it reads x at the kept offset of b plus the
    // reduced offsets of r < run, both built from x's own dims and strides.
    unsafe {
        launch!(
            gpu,
            kernels::REDUCE,
            cfg,
            &mut out,
            x,
            &kept,
            &red,
            &run,
            &op
        )
    }?;
    Ok(out)
}

/// Geometry of a convolution, laid out as `ConvGeom` in common.cuh.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConvGeom {
    pub n: i32,
    pub c: i32,
    pub h: i32,
    pub w: i32,
    pub co: i32,
    pub kh: i32,
    pub kw: i32,
    pub ho: i32,
    pub wo: i32,
    pub sh: i32,
    pub sw: i32,
    pub ph: i32,
    pub pw: i32,
    pub dh: i32,
    pub dw: i32,
}

// SAFETY: a plain `repr(C)` struct of i32s, laid out exactly like `ConvGeom` in common.cuh.
unsafe impl DeviceRepr for ConvGeom {}

/// Convolution geometry in PyTorch's terms: input [n, c, h, w], weight [co, c, kh, kw], output
/// [n, co, ho, wo], stride, padding and dilation as (height, width).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Conv2d {
    pub input: [usize; 4],
    pub weight: [usize; 4],
    pub out_hw: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
    pub math: ConvMath,
    pub algo: ConvAlgo,
}

/// How a convolution multiplies, like PyTorch's `torch.backends.cudnn.allow_tf32`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConvMath {
    /// FP32 fused multiply-adds on the CUDA cores.
    #[default]
    Fp32,
    /// Operands rounded to TF32 (10-bit mantissa) and multiplied on the tensor cores, with FP32
    /// accumulation: relative error up to about 2⁻¹⁰ per product. On devices below compute
    /// capability 8.0 this runs as `Fp32`.
    Tf32,
}

/// The algorithm of a convolution's weight gradient (the forward and input gradient always run
/// as implicit GEMMs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ConvAlgo {
    /// An implicit GEMM over every (output pixel, tap) pair.
    #[default]
    ImplicitGemm,
    /// Winograd's F(4×4, 3×3) (winograd.cu): 36 multiplications per 4×4 output tile and channel
    /// pair where the direct sum takes 144, for 3×3, stride-1, undilated convolutions with FP32
    /// math; other shapes, and TF32 math, run as `ImplicitGemm`. Its transforms' coefficients
    /// (up to 5) cost about one decimal digit of float32, like the CPU backend's F(4, 3), and it
    /// needs workspace for 36·(c + co) values per 4×4 output tile.
    Winograd,
}

impl Conv2d {
    fn geom(&self, op: &'static str) -> Result<ConvGeom> {
        let [n, c, h, w] = self.input;
        let [co, _, kh, kw] = self.weight;
        for len in [
            n * c * h * w,
            n * co * self.out_hw[0] * self.out_hw[1],
            co * c * kh * kw,
        ] {
            check_len(op, "elements", len)?;
        }
        let i = |v: usize| v as i32;
        Ok(ConvGeom {
            n: i(n),
            c: i(c),
            h: i(h),
            w: i(w),
            co: i(co),
            kh: i(kh),
            kw: i(kw),
            ho: i(self.out_hw[0]),
            wo: i(self.out_hw[1]),
            sh: i(self.stride[0]),
            sw: i(self.stride[1]),
            ph: i(self.padding[0]),
            pw: i(self.padding[1]),
            dh: i(self.dilation[0]),
            dw: i(self.dilation[1]),
        })
    }
}

/// The three tile shapes of gemm.cu, as (rows, columns) of C per block.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Tile {
    Large,
    Medium,
    Narrow,
}

impl Tile {
    fn dims(self) -> (usize, usize) {
        match self {
            Tile::Large => (128, 128),
            Tile::Medium => (64, 64),
            Tile::Narrow => (32, 128),
        }
    }
    /// The kernel of this tile among a problem's (128, 64, 32) variants.
    fn pick(self, kernels: [Kernel; 3]) -> Kernel {
        match self {
            Tile::Large => kernels[0],
            Tile::Medium => kernels[1],
            Tile::Narrow => kernels[2],
        }
    }
}

/// Tile shape and K split of one GEMM-shaped launch.
struct GemmPlan {
    tile: Tile,
    cfg: LaunchConfig,
    k_chunk: i32,
    split: bool,
}

/// Picks the tile for `batch` GEMMs of m×n×k: 32×128 for M ≤ 32, 128×128 when M and N both
/// reach 128 and there is enough work (blocks or a long K to split), else 64×64. When the tiles
/// leave the GPU under three blocks per SM and K is long, splits K (each part at least 512
/// deep), on a device of `sms` multiprocessors. The grid's z is batch · splits.
fn gemm_plan(
    sms: usize,
    (m, n, k): (usize, usize, usize),
    batch: usize,
    allow_split: bool,
) -> Result<GemmPlan> {
    let blocks_of = |t: Tile| {
        let (bm, bn) = t.dims();
        m.div_ceil(bm) * n.div_ceil(bn) * batch
    };
    let tile = if m <= 32 {
        Tile::Narrow
    } else if m >= 128 && n >= 128 && (blocks_of(Tile::Large) >= sms || (allow_split && k >= 4096))
    {
        Tile::Large
    } else {
        Tile::Medium
    };
    let blocks = blocks_of(tile);
    let mut splits = 1;
    if allow_split && blocks < 3 * sms {
        splits = (3 * sms).div_ceil(blocks).min(k / 512).clamp(1, 65535);
    }
    let k_chunk = k.div_ceil(splits).next_multiple_of(16).max(16);
    let splits = k.div_ceil(k_chunk).max(1);
    let (bm, bn) = tile.dims();
    let grid_y = m.div_ceil(bm);
    for (what, value) in [("row tiles", grid_y), ("batch × K splits", batch * splits)] {
        if value > 65535 {
            return Err(Error::TooLarge {
                op: "gemm",
                what,
                value,
            });
        }
    }
    Ok(GemmPlan {
        tile,
        cfg: LaunchConfig {
            grid_dim: (
                check_len("gemm", "column tiles", n.div_ceil(bn))?,
                grid_y as u32,
                (batch * splits) as u32,
            ),
            block_dim: (BLOCK, 1, 1),
            shared_mem_bytes: 0,
        },
        k_chunk: check_len("gemm", "k", k_chunk)? as i32,
        split: splits > 1,
    })
}

/// The output buffer of a planned GEMM: zeroed when K is split (the parts are added atomically).
fn gemm_output(gpu: &Gpu, plan: &GemmPlan, len: usize) -> Result<Buffer> {
    if plan.split {
        gpu.zeros(len)
    } else {
        gpu.alloc(len)
    }
}

/// [batch, m, k] × [batch or 1, k, n] → [batch, m, n].
#[allow(clippy::too_many_arguments)]
pub fn matmul(
    gpu: &Gpu,
    a: &Buffer,
    b: &Buffer,
    batch: usize,
    b_batched: bool,
    m: usize,
    k: usize,
    n: usize,
) -> Result<Buffer> {
    for len in [batch * m * k, batch * k * n, batch * m * n] {
        check_len("matmul", "elements", len)?;
    }
    if batch > 65535 {
        return Err(Error::TooLarge {
            op: "matmul",
            what: "batch",
            value: batch,
        });
    }
    if batch * m * n == 0 || k == 0 {
        return fill(gpu, batch * m * n, 0.0);
    }
    // Tiles are picked per product; z indexes the batch.
    let mut plan = gemm_plan(gpu.sm_count() as usize, (m, n, k), 1, false)?;
    plan.cfg.grid_dim.2 = batch as u32;
    let mut out = gpu.alloc(batch * m * n)?;
    let kernel = plan
        .tile
        .pick([kernels::MATMUL_128, kernels::MATMUL_64, kernels::MATMUL_32]);
    let (mi, ni, ki, bb) = (m as i32, n as i32, k as i32, b_batched as i32);
    // SAFETY: block z reads a[z·m·k..][..m·k] and b[(z or 0)·k·n..][..k·n] and writes
    // out[z·m·n..][..m·n] for z < batch; row and column indices are bounds-checked against m, n, k.
    unsafe {
        launch!(
            gpu,
            kernel,
            plan.cfg,
            &mut out,
            a,
            b,
            &mi,
            &ni,
            &ki,
            &bb,
            &plan.k_chunk
        )
    }?;
    Ok(out)
}

/// The (128, 64, 32) tile variants of a convolution for `math` on this device: TF32 only where
/// the device has TF32 tensor cores.
fn conv_kernels(gpu: &Gpu, math: ConvMath, fp32: [Kernel; 3], tf32: [Kernel; 3]) -> [Kernel; 3] {
    if math == ConvMath::Tf32 && gpu.has_tf32() {
        tf32
    } else {
        fp32
    }
}

/// Launches one of the three convolution GEMMs: `kernels` are its (128, 64, 32) tile variants,
/// (m, n, k) its GEMM size, `out_len` the result's length.
fn conv_gemm(
    gpu: &Gpu,
    kernels: [Kernel; 3],
    (m, n, k): (usize, usize, usize),
    out_len: usize,
    a: &Buffer,
    b: &Buffer,
    g: ConvGeom,
) -> Result<Buffer> {
    if out_len == 0 || k == 0 {
        return fill(gpu, out_len, 0.0);
    }
    let plan = gemm_plan(gpu.sm_count() as usize, (m, n, k), 1, true)?;
    let mut out = gemm_output(gpu, &plan, out_len)?;
    let kernel = plan.tile.pick(kernels);
    // SAFETY: the kernel's problem struct derives every index from `g`, which describes the
    // buffers' true sizes (checked by Tensor and by Conv2d::geom); out-of-range taps of padded
    // windows are skipped, not read. With a K split, `out` is zeroed and written atomically.
    unsafe { launch!(gpu, kernel, plan.cfg, &mut out, a, b, &g, &plan.k_chunk) }?;
    Ok(out)
}

/// Cross-correlation like `F.conv2d` without bias.
pub fn conv2d(gpu: &Gpu, x: &Buffer, w: &Buffer, p: Conv2d) -> Result<Buffer> {
    let g = p.geom("conv2d")?;
    let [n, c, _, _] = p.input;
    let [co, _, kh, kw] = p.weight;
    let pix = n * p.out_hw[0] * p.out_hw[1];
    conv_gemm(
        gpu,
        conv_kernels(
            gpu,
            p.math,
            [
                kernels::CONV2D_FWD_128,
                kernels::CONV2D_FWD_64,
                kernels::CONV2D_FWD_32,
            ],
            [
                kernels::CONV2D_FWD_TF32_128,
                kernels::CONV2D_FWD_TF32_64,
                kernels::CONV2D_FWD_TF32_32,
            ],
        ),
        (co, pix, c * kh * kw),
        co * pix,
        x,
        w,
        g,
    )
}

/// Gradient of `conv2d` with respect to its input, from the output gradient `gy`.
pub fn conv2d_input_grad(gpu: &Gpu, gy: &Buffer, w: &Buffer, p: Conv2d) -> Result<Buffer> {
    let g = p.geom("conv2d_input_grad")?;
    let [n, c, h, wd] = p.input;
    let [co, _, kh, kw] = p.weight;
    conv_gemm(
        gpu,
        conv_kernels(
            gpu,
            p.math,
            [
                kernels::CONV2D_DGRAD_128,
                kernels::CONV2D_DGRAD_64,
                kernels::CONV2D_DGRAD_32,
            ],
            [
                kernels::CONV2D_DGRAD_TF32_128,
                kernels::CONV2D_DGRAD_TF32_64,
                kernels::CONV2D_DGRAD_TF32_32,
            ],
        ),
        (c, n * h * wd, co * kh * kw),
        n * c * h * wd,
        gy,
        w,
        g,
    )
}

/// Gradient of `conv2d` with respect to its weight, from the input `x` and output gradient `gy`.
pub fn conv2d_weight_grad(gpu: &Gpu, x: &Buffer, gy: &Buffer, p: Conv2d) -> Result<Buffer> {
    let g = p.geom("conv2d_weight_grad")?;
    let [n, c, _, _] = p.input;
    let [co, _, kh, kw] = p.weight;
    if let Some(tiles) = winograd_tiles(&p, gpu.has_tf32()) {
        return winograd_weight_grad(gpu, x, gy, g, tiles);
    }
    conv_gemm(
        gpu,
        conv_kernels(
            gpu,
            p.math,
            [
                kernels::CONV2D_WGRAD_128,
                kernels::CONV2D_WGRAD_64,
                kernels::CONV2D_WGRAD_32,
            ],
            [
                kernels::CONV2D_WGRAD_TF32_128,
                kernels::CONV2D_WGRAD_TF32_64,
                kernels::CONV2D_WGRAD_TF32_32,
            ],
        ),
        (co, c * kh * kw, n * p.out_hw[0] * p.out_hw[1]),
        co * c * kh * kw,
        x,
        gy,
        g,
    )
}

/// Most workspace the Winograd weight gradient takes (its transformed operands), in floats:
/// 1 GiB. Larger problems run as an implicit GEMM.
const WINOGRAD_MAX_WORKSPACE: usize = 1 << 28;

/// The number of 4×4 output tiles when `p` asks for Winograd's weight gradient and it applies
/// (see [`ConvAlgo::Winograd`]) on a device with (`tf32_cores`) or without TF32 tensor cores,
/// with every index of its kernels within 32 bits.
fn winograd_tiles(p: &Conv2d, tf32_cores: bool) -> Option<usize> {
    let [n, c, _, _] = p.input;
    let [co, _, kh, kw] = p.weight;
    let [ho, wo] = p.out_hw;
    let fp32 = p.math == ConvMath::Fp32 || !tf32_cores;
    let applies = p.algo == ConvAlgo::Winograd
        && fp32
        && [
            kh,
            kw,
            p.stride[0],
            p.stride[1],
            p.dilation[0],
            p.dilation[1],
        ] == [3, 3, 1, 1, 1, 1]
        && n * c * co * ho * wo > 0;
    let tiles = n * ho.div_ceil(4) * wo.div_ceil(4);
    let workspace = 36 * ((c + co) * tiles + c * co);
    (applies && workspace <= WINOGRAD_MAX_WORKSPACE).then_some(tiles)
}

/// `conv2d_weight_grad` by F(4×4, 3×3) over `tiles` output tiles (winograd.cu).
fn winograd_weight_grad(
    gpu: &Gpu,
    x: &Buffer,
    gy: &Buffer,
    g: ConvGeom,
    tiles: usize,
) -> Result<Buffer> {
    let (c, co) = (g.c as usize, g.co as usize);
    let mut v = gpu.alloc(36 * c * tiles)?;
    let mut e = gpu.alloc(36 * co * tiles)?;
    let mut dw = gpu.alloc(co * c * 9)?;
    // SAFETY: one thread per (channel, tile) reads the 6×6 input window (or 4×4 gradient tile)
    // of its tile, skipping positions outside x [n, c, h, w] (gy [n, co, ho, wo]), and writes
    // v[f][ci][t] (e[f][o][t]) for f < 36, t < tiles: v and e have exactly 36·c·tiles and
    // 36·co·tiles elements, under 2³¹ (`winograd_tiles`).
    unsafe {
        launch!(
            gpu,
            kernels::WINOGRAD_WGRAD_INPUT,
            grid_1d(c * tiles),
            &mut v,
            x,
            &g
        )?;
        launch!(
            gpu,
            kernels::WINOGRAD_WGRAD_GRAD,
            grid_1d(co * tiles),
            &mut e,
            gy,
            &g
        )?;
    }
    let plan = gemm_plan(gpu.sm_count() as usize, (co, c, tiles), 36, true)?;
    let mut m = gemm_output(gpu, &plan, 36 * co * c)?;
    let gemm = plan.tile.pick([
        kernels::WINOGRAD_WGRAD_GEMM_128,
        kernels::WINOGRAD_WGRAD_GEMM_64,
        kernels::WINOGRAD_WGRAD_GEMM_32,
    ]);
    let (coi, ci, ti) = (g.co, g.c, tiles as i32);
    // SAFETY: z = f·splits + part with f < 36 (`gemm_plan`'s batch); the blocks of frequency f
    // read e[f][0..co][0..tiles] and v[f][0..c][0..tiles] and write m[f][0..co][0..c], rows and
    // columns bounds-checked against co, c and tiles; with a K split m is zeroed and added to
    // atomically.
    unsafe {
        launch!(
            gpu,
            gemm,
            plan.cfg,
            &mut m,
            &e,
            &v,
            &coi,
            &ci,
            &ti,
            &plan.k_chunk
        )?;
    }
    // SAFETY: one thread per channel pair (o, i) < co·c reads m[f][o][i] for f < 36 and writes
    // dw[(o·c + i)·9 ..][..9]; dw has co·c·9 elements.
    unsafe {
        launch!(
            gpu,
            kernels::WINOGRAD_WGRAD_WEIGHTS,
            grid_1d(co * c),
            &mut dw,
            &m,
            &g
        )?;
    }
    Ok(dw)
}

/// Per-plane spatial geometry passed to the pooling, padding and resizing kernels.
#[derive(Clone, Copy, Debug)]
pub struct Planes {
    /// N·C.
    pub planes: usize,
    pub in_hw: [usize; 2],
    pub out_hw: [usize; 2],
}

impl Planes {
    fn sizes(&self, op: &'static str) -> Result<(u32, [i32; 4])> {
        check_len(op, "elements", self.planes * self.in_hw[0] * self.in_hw[1])?;
        check_len(
            op,
            "elements",
            self.planes * self.out_hw[0] * self.out_hw[1],
        )?;
        Ok((
            self.planes as u32,
            [
                self.in_hw[0] as i32,
                self.in_hw[1] as i32,
                self.out_hw[0] as i32,
                self.out_hw[1] as i32,
            ],
        ))
    }
    fn in_len(&self) -> usize {
        self.planes * self.in_hw[0] * self.in_hw[1]
    }
    fn out_len(&self) -> usize {
        self.planes * self.out_hw[0] * self.out_hw[1]
    }
}

/// `pads` = [left, right, top, bottom]; `mode` a `PAD_*` code. `adjoint` sums the padded
/// `x` (of the padded size) back onto the unpadded planes.
pub fn pad2d(
    gpu: &Gpu,
    x: &Buffer,
    planes: usize,
    hw: [usize; 2],
    pads: [usize; 4],
    mode: i32,
    adjoint: bool,
) -> Result<Buffer> {
    let padded = [hw[0] + pads[2] + pads[3], hw[1] + pads[0] + pads[1]];
    let geo = Planes {
        planes,
        in_hw: hw,
        out_hw: padded,
    };
    let (np, [h, w, _, _]) = geo.sizes("pad2d")?;
    let [l, r, t, b] = pads.map(|v| v as i32);
    let (mut out, kernel) = if adjoint {
        (gpu.zeros(geo.in_len())?, kernels::PAD2D_ADJOINT)
    } else {
        (gpu.alloc(geo.out_len())?, kernels::PAD2D)
    };
    if geo.out_len() > 0 {
        // SAFETY: one thread per padded element (planes·hp·wp). Forward: writes each of out's
        // elements, reading x inside its own h×w plane. Adjoint: reads the padded x and adds into
        // the zeroed out at source positions inside each h×w plane.
        unsafe {
            launch!(
                gpu,
                kernel,
                grid_1d(geo.out_len()),
                &mut out,
                x,
                &np,
                &h,
                &w,
                &l,
                &r,
                &t,
                &b,
                &mode
            )
        }?;
    }
    Ok(out)
}

/// Average pooling (`adjoint`: `x` is pooled, the result has `geo.in_hw`).
#[allow(clippy::too_many_arguments)]
pub fn avg_pool2d(
    gpu: &Gpu,
    x: &Buffer,
    geo: Planes,
    kernel: [usize; 2],
    stride: [usize; 2],
    padding: [usize; 2],
    count_include_pad: bool,
    adjoint: bool,
) -> Result<Buffer> {
    let (np, [h, w, ho, wo]) = geo.sizes("avg_pool2d")?;
    let [kh, kw] = kernel.map(|v| v as i32);
    let [sh, sw] = stride.map(|v| v as i32);
    let [ph, pw] = padding.map(|v| v as i32);
    let inc = count_include_pad as i32;
    let cfg = grid_1d(geo.out_len());
    let (mut out, k) = if adjoint {
        (gpu.zeros(geo.in_len())?, kernels::AVG_POOL2D_ADJOINT)
    } else {
        (gpu.alloc(geo.out_len())?, kernels::AVG_POOL2D)
    };
    if geo.out_len() > 0 {
        // SAFETY: one thread per pooled element (planes·ho·wo); window spans are clipped to the
        // h×w plane, so reads (forward) or atomic adds (adjoint) stay inside the unpooled planes.
        unsafe {
            launch!(
                gpu, k, cfg, &mut out, x, &np, &h, &w, &ho, &wo, &kh, &kw, &sh, &sw, &ph, &pw, &inc
            )
        }?;
    }
    Ok(out)
}

/// Window geometry of max pooling: kernel, stride, padding, dilation as (height, width).
#[derive(Clone, Copy, Debug)]
pub struct MaxPool {
    pub kernel: [usize; 2],
    pub stride: [usize; 2],
    pub padding: [usize; 2],
    pub dilation: [usize; 2],
}

impl MaxPool {
    fn args(&self) -> [i32; 8] {
        [
            self.kernel[0],
            self.kernel[1],
            self.stride[0],
            self.stride[1],
            self.padding[0],
            self.padding[1],
            self.dilation[0],
            self.dilation[1],
        ]
        .map(|v| v as i32)
    }
}

/// Max pooling: (values, window offsets).
pub fn max_pool2d(gpu: &Gpu, x: &Buffer, geo: Planes, p: MaxPool) -> Result<(Buffer, Buffer)> {
    let (np, [h, w, ho, wo]) = geo.sizes("max_pool2d")?;
    let [kh, kw, sh, sw, ph, pw, dh, dw] = p.args();
    let mut out = gpu.alloc(geo.out_len())?;
    let mut idx = gpu.alloc(geo.out_len())?;
    if geo.out_len() > 0 {
        // SAFETY: writes out and idx at 0..planes·ho·wo; window taps outside h×w are skipped.
        unsafe {
            launch!(
                gpu,
                kernels::MAX_POOL2D,
                grid_1d(geo.out_len()),
                &mut out,
                &mut idx,
                x,
                &np,
                &h,
                &w,
                &ho,
                &wo,
                &kh,
                &kw,
                &sh,
                &sw,
                &ph,
                &pw,
                &dh,
                &dw
            )
        }?;
    }
    Ok((out, idx))
}

/// `scatter`: adds pooled `x` into the input positions `idx` names (result of `geo.in_hw`);
/// otherwise gathers input `x` at those positions (result of `geo.out_hw`).
pub fn max_pool2d_route(
    gpu: &Gpu,
    x: &Buffer,
    idx: &Buffer,
    geo: Planes,
    p: MaxPool,
    scatter: bool,
) -> Result<Buffer> {
    let (np, [h, w, ho, wo]) = geo.sizes("max_pool2d")?;
    let [kh, kw, sh, sw, ph, pw, dh, dw] = p.args();
    let (mut out, k) = if scatter {
        (gpu.zeros(geo.in_len())?, kernels::MAX_POOL2D_SCATTER)
    } else {
        (gpu.alloc(geo.out_len())?, kernels::MAX_POOL2D_GATHER)
    };
    if geo.out_len() > 0 {
        // SAFETY: one thread per pooled position; offsets read from idx are range-checked in the
        // kernel before they address the h×w plane.
        unsafe {
            launch!(
                gpu,
                k,
                grid_1d(geo.out_len()),
                &mut out,
                x,
                idx,
                &np,
                &h,
                &w,
                &ho,
                &wo,
                &kh,
                &kw,
                &sh,
                &sw,
                &ph,
                &pw,
                &dh,
                &dw
            )
        }?;
    }
    Ok(out)
}

/// Resizes `geo.in_hw` planes to `geo.out_hw` (`adjoint`: `x` has the resized size and the
/// result the original); `mode` is a `NEAREST`/`BILINEAR*` code.
pub fn upsample2d(gpu: &Gpu, x: &Buffer, geo: Planes, mode: i32, adjoint: bool) -> Result<Buffer> {
    let (np, [h, w, ho, wo]) = geo.sizes("upsample2d")?;
    let (mut out, k) = if adjoint {
        (gpu.zeros(geo.in_len())?, kernels::UPSAMPLE2D_ADJOINT)
    } else {
        (gpu.alloc(geo.out_len())?, kernels::UPSAMPLE2D)
    };
    if geo.out_len() > 0 {
        // SAFETY: one thread per resized element; source indices are clamped to the h×w plane.
        unsafe {
            launch!(
                gpu,
                k,
                grid_1d(geo.out_len()),
                &mut out,
                x,
                &np,
                &h,
                &w,
                &ho,
                &wo,
                &mode
            )
        }?;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every K split is non-empty, the chunks cover K, and z is batch × splits.
    #[test]
    fn gemm_plans_cover_k_in_non_empty_parts() {
        for sms in [1, 80, 132] {
            for (m, n, k) in [
                (32, 32, 2961),
                (128, 151, 2048),
                (512, 128, 2048),
                (64, 1359, 32768),
                (1024, 1152, 100),
                (5, 27, 7),
            ] {
                for batch in [1, 36] {
                    let plan = gemm_plan(sms, (m, n, k), batch, true).unwrap();
                    let z = plan.cfg.grid_dim.2 as usize;
                    assert_eq!(z % batch, 0);
                    let (splits, chunk) = (z / batch, plan.k_chunk as usize);
                    assert_eq!(chunk % 16, 0);
                    assert!(
                        splits * chunk >= k && (splits - 1) * chunk < k,
                        "{m}×{n}×{k}"
                    );
                    assert_eq!(plan.split, splits > 1);
                    let (bm, bn) = plan.tile.dims();
                    assert_eq!(plan.cfg.grid_dim.0 as usize, n.div_ceil(bn));
                    assert_eq!(plan.cfg.grid_dim.1 as usize, m.div_ceil(bm));
                }
                let unsplit = gemm_plan(sms, (m, n, k), 1, false).unwrap();
                assert_eq!((unsplit.cfg.grid_dim.2, unsplit.split), (1, false));
            }
        }
    }

    /// The plans of the Winograd weight gradient at SPADE's shapes on a 132-SM H200 (batch 8,
    /// 64² outputs: 2048 tiles).
    #[test]
    fn winograd_gemm_plans_at_spade_shapes() {
        let plan = gemm_plan(132, (512, 128, 2048), 36, true).unwrap();
        assert_eq!(plan.tile, Tile::Large);
        assert_eq!((plan.cfg.grid_dim.2, plan.k_chunk), (36 * 3, 688));
        let plan = gemm_plan(132, (128, 151, 2048), 36, true).unwrap();
        assert_eq!(plan.tile, Tile::Medium);
        assert_eq!((plan.cfg.grid_dim.2, plan.k_chunk), (36 * 2, 1024));
    }

    #[test]
    fn winograd_applies_to_3x3_stride_1_fp32_weight_gradients() {
        let base = Conv2d {
            input: [8, 128, 64, 64],
            weight: [512, 128, 3, 3],
            out_hw: [64, 64],
            stride: [1, 1],
            padding: [1, 1],
            dilation: [1, 1],
            math: ConvMath::Fp32,
            algo: ConvAlgo::Winograd,
        };
        assert_eq!(winograd_tiles(&base, true), Some(8 * 16 * 16));
        let odd = Conv2d {
            input: [2, 3, 11, 13],
            out_hw: [9, 11],
            padding: [0, 0],
            weight: [5, 3, 3, 3],
            ..base
        };
        assert_eq!(winograd_tiles(&odd, true), Some(2 * 3 * 3));
        // TF32 math keeps the tensor-core implicit GEMM, unless the device has no TF32 cores.
        let tf32 = Conv2d {
            math: ConvMath::Tf32,
            ..base
        };
        assert_eq!(winograd_tiles(&tf32, true), None);
        assert_eq!(winograd_tiles(&tf32, false), Some(8 * 16 * 16));
        let not_asked = Conv2d {
            algo: ConvAlgo::ImplicitGemm,
            ..base
        };
        assert_eq!(winograd_tiles(&not_asked, true), None);
        for other in [
            Conv2d {
                stride: [2, 2],
                out_hw: [32, 32],
                ..base
            },
            Conv2d {
                dilation: [2, 2],
                out_hw: [62, 62],
                ..base
            },
            Conv2d {
                weight: [512, 128, 5, 5],
                out_hw: [62, 62],
                ..base
            },
            Conv2d {
                input: [0, 128, 64, 64],
                ..base
            },
        ] {
            assert_eq!(winograd_tiles(&other, true), None, "{other:?}");
        }
        // Workspace above 1 GiB: 36·(c + co) floats per tile.
        let huge = Conv2d {
            input: [16, 1024, 256, 256],
            weight: [1024, 1024, 3, 3],
            out_hw: [256, 256],
            ..base
        };
        assert_eq!(winograd_tiles(&huge, true), None);
    }
}
