//! Register-blocked kernels for the stride-1 ("wide pixel") convolution of `conv_shifted`: the
//! forward sum over kernel positions and the weight gradient, read straight from the input
//! instead of through kh·kw calls to a general GEMM (which re-packs the same input rows and
//! weight slices for every call; perf showed that packing at 15–20 % of a SinGAN epoch).
//!
//! Both kernels keep a block of accumulators in registers for a whole reduction. With AVX-512
//! (32 zmm registers): the forward kernel 8 output channels × 48 wide pixels (vectors along
//! pixels, weights broadcast), the weight gradient 48 output channels × 9 kernel positions of one
//! input channel (vectors along output channels of a pixel-major output gradient, input pixels
//! broadcast). With AVX2 and FMA (16 ymm registers) the same loops run with smaller blocks
//! (module `avx2`). The instruction set is chosen at run time (`isa`); without either,
//! `conv_shifted` keeps its GEMM path.

/// Output channels per forward register block.
const OUT_BLOCK: usize = 8;
/// Wide pixels per forward register block: three zmm vectors.
const PIX_BLOCK: usize = 48;
/// Input channels per pass over a pixel block, so that the input rows a block reads (3 rows of
/// PIX_BLOCK + 2 pixels per channel for a 3×3 kernel) stay in L1 while every output-channel block
/// reuses them.
const IN_CHUNK: usize = 16;
/// Output-channel vectors (of 16) per weight-gradient register block (× 9 kernel positions =
/// 27 accumulators).
const GRAD_VECS: usize = 3;
/// Wide pixels per weight-gradient pass: the transposed output-gradient rows they cover
/// (GRAD_PIX × cop floats, 32 KB at 128 channels) stay close while every input channel reuses them.
const GRAD_PIX: usize = 64;
/// The weight-gradient kernel's fixed number of kernel positions (3×3).
pub(super) const GRAD_TAPS: usize = 9;

/// The instruction sets the kernels are written for, best first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Isa {
    /// AVX-512F: 32 registers of 16 floats.
    Avx512,
    /// AVX2 with FMA: 16 registers of 8 floats.
    Avx2,
}

/// The best instruction set of this CPU that the kernels support, if any (checked at run time).
pub(super) fn isa() -> Option<Isa> {
    [Isa::Avx512, Isa::Avx2].into_iter().find(|&i| has(i))
}

/// Whether the kernels can run on this CPU.
pub(super) fn available() -> bool {
    isa().is_some()
}

/// Whether this CPU has `isa`.
fn has(isa: Isa) -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        match isa {
            Isa::Avx512 => std::arch::is_x86_feature_detected!("avx512f"),
            Isa::Avx2 => {
                std::arch::is_x86_feature_detected!("avx2")
                    && std::arch::is_x86_feature_detected!("fma")
            }
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = isa;
        false
    }
}

/// The variants a test can run on this CPU.
#[cfg(test)]
pub(super) fn supported() -> Vec<Isa> {
    [Isa::Avx512, Isa::Avx2]
        .into_iter()
        .filter(|&i| has(i))
        .collect()
}

/// Weights [co][c][taps] regrouped as [co / 8][c][taps][8] (the last block zero-filled), so the
/// forward kernel reads the 8 weights it broadcasts for one (input channel, kernel position)
/// from one contiguous 32-byte run.
pub(super) struct PackedWeights {
    data: Vec<f32>,
    co: usize,
    c: usize,
    taps: usize,
}

impl PackedWeights {
    pub(super) fn new(wt: &[f32], co: usize, c: usize, taps: usize) -> Self {
        assert_eq!(wt.len(), co * c * taps, "weight length");
        let blocks = co.div_ceil(OUT_BLOCK);
        let mut data = vec![0f32; blocks * c * taps * OUT_BLOCK];
        for o in 0..co {
            let (blk, lane) = (o / OUT_BLOCK, o % OUT_BLOCK);
            for i in 0..c {
                for t in 0..taps {
                    data[((blk * c + i) * taps + t) * OUT_BLOCK + lane] =
                        wt[(o * c + i) * taps + t];
                }
            }
        }
        PackedWeights { data, co, c, taps }
    }
}

/// acc[o·len + j] = Σ_i Σ_t w[o][i][t] · x[i·plane + q0 + j + offsets[t]] for o < co, j < len,
/// where `x` is one image (c planes of `plane` floats) and `acc` is co × len.
///
/// Panics if the CPU lacks `isa` or if a read would leave `x`.
#[allow(clippy::too_many_arguments)]
pub(super) fn forward_tile(
    isa: Isa,
    w: &PackedWeights,
    x: &[f32],
    plane: usize,
    q0: usize,
    len: usize,
    offsets: &[usize],
    acc: &mut [f32],
) {
    assert_eq!(offsets.len(), w.taps, "one offset per kernel position");
    assert_eq!(acc.len(), w.co * len, "accumulator length");
    let max_off = offsets.iter().copied().max().unwrap_or(0);
    if len == 0 || w.co == 0 {
        return;
    }
    assert!(
        w.c == 0 || (w.c - 1) * plane + q0 + len + max_off <= x.len(),
        "input reads stay inside the image"
    );
    assert!(has(isa), "this CPU lacks {isa:?}");
    if w.c == 0 {
        acc.fill(0.0);
        return;
    }
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the CPU has `isa` (asserted above). The kernels read x[i·plane + q0 + j + off]
    // for i < c, j < len, off ∈ offsets: the largest such index is (c−1)·plane + q0 + len − 1 +
    // max_off, asserted to be inside `x`; they read the packed weights within their length
    // (blocks·c·taps·8 floats) and write acc[o·len + j] for o < co, j < len, acc's length.
    unsafe {
        let x = x.as_ptr().add(q0);
        match isa {
            Isa::Avx512 => avx512::forward_tile(w, x, plane, len, offsets, acc),
            Isa::Avx2 => avx2::forward_tile(w, x, plane, len, offsets, acc),
        }
    }
}

/// The output channels of the weight gradient rounded up to whole vectors: the row length of its
/// transposed output-gradient tile and of its accumulator.
pub(super) fn padded_channels(co: usize) -> usize {
    co.div_ceil(16) * 16
}

/// acc[(i·9 + t)·cop + o] += Σ_j gt[j·cop + o] · x[i·plane + q0 + j + offsets[t]] for
/// o < cop, i < c, t < 9, j < len: the weight gradient of one tile of wide pixels, `gt` being the
/// output gradient on the tile's wide pixels transposed (len × cop, cop = padded_channels(co),
/// zero on the columns past the output's width and on the padding channels).
///
/// Panics if the CPU lacks `isa`, if cop is not a multiple of 16, or if a read would leave `x`.
#[allow(clippy::too_many_arguments)]
pub(super) fn weight_grad_tile(
    isa: Isa,
    gt: &[f32],
    cop: usize,
    x: &[f32],
    c: usize,
    plane: usize,
    q0: usize,
    len: usize,
    offsets: &[usize; GRAD_TAPS],
    acc: &mut [f32],
) {
    assert_eq!(cop % 16, 0, "channels padded to whole vectors");
    assert_eq!(gt.len(), len * cop, "output gradient tile length");
    assert_eq!(acc.len(), c * GRAD_TAPS * cop, "accumulator length");
    if len == 0 || cop == 0 || c == 0 {
        return;
    }
    let max_off = offsets.iter().copied().max().unwrap_or(0);
    assert!(
        (c - 1) * plane + q0 + len + max_off <= x.len(),
        "input reads stay inside the image"
    );
    assert!(has(isa), "this CPU lacks {isa:?}");
    #[cfg(target_arch = "x86_64")]
    // SAFETY: the CPU has `isa` (asserted above). Reads of x are bounded as in `forward_tile`;
    // gt is read and acc written inside the lengths asserted above.
    unsafe {
        let x = x.as_ptr().add(q0);
        match isa {
            Isa::Avx512 => avx512::weight_grad_tile(gt, cop, x, c, plane, len, offsets, acc),
            Isa::Avx2 => avx2::weight_grad_tile(gt, cop, x, c, plane, len, offsets, acc),
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx512 {
    use super::{PackedWeights, GRAD_PIX, GRAD_TAPS, GRAD_VECS, IN_CHUNK, OUT_BLOCK, PIX_BLOCK};
    use std::arch::x86_64::*;

    /// Asks for the 4 cache lines from `p` (52 floats: a pixel block and a 3-wide kernel's
    /// overhang) to be brought into L1. A prefetch never faults, so `p` may point anywhere.
    #[inline(always)]
    fn prefetch_row(p: *const f32) {
        for line in 0..4 {
            // SAFETY: prefetching has no architectural effect and cannot fault, whatever the
            // address; wrapping_add keeps the pointer arithmetic itself defined.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(16 * line).cast()) }
        }
    }

    /// Lanes of a vector holding pixels `from..from + 16` that are below `len`.
    fn lane_mask(from: usize, len: usize) -> __mmask16 {
        let n = len.saturating_sub(from).min(16);
        ((1u32 << n) - 1) as __mmask16
    }

    /// See `super::forward_tile`; `x` points at pixel q0 of the image's first channel.
    ///
    /// # Safety
    /// AVX-512F must be available; x[i·plane + j + off] must be readable for i < w.c, j < len,
    /// off ∈ offsets; acc must hold w.co·len floats; offsets.len() == w.taps.
    #[target_feature(enable = "avx512f")]
    pub(super) unsafe fn forward_tile(
        w: &PackedWeights,
        x: *const f32,
        plane: usize,
        len: usize,
        offsets: &[usize],
        acc: &mut [f32],
    ) {
        let (co, c, taps) = (w.co, w.c, w.taps);
        let acc = acc.as_mut_ptr();
        let last_off = offsets.iter().copied().max().unwrap_or(0);
        let run = |i0: usize, j0: usize, blk: usize| {
            let masks = [
                lane_mask(j0, len),
                lane_mask(j0 + 16, len),
                lane_mask(j0 + 32, len),
            ];
            let full = j0 + PIX_BLOCK <= len;
            let rows = OUT_BLOCK.min(co - blk * OUT_BLOCK);
            // SAFETY (the three offsets): blk < co/8 rounded up, j0 < len, i0 < c, so each
            // pointer stays inside acc (co·len floats), the image and the packed weights.
            let args = Block {
                acc: unsafe { acc.add(blk * OUT_BLOCK * len + j0) },
                acc_stride: len,
                first: i0 == 0,
                x: unsafe { x.add(i0 * plane + j0) },
                plane,
                w: unsafe { w.data.as_ptr().add((blk * c + i0) * taps * OUT_BLOCK) },
                channels: IN_CHUNK.min(c - i0),
                offsets,
                masks,
            };
            // SAFETY (all arms): `rows` output channels from `blk·8` exist (rows ≤ co − blk·8),
            // pixels j0.. are read and written only under `masks` (lanes below len) or, when
            // `full`, all 48 of them are below len; the weights of input channels
            // i0..i0+channels of this block lie inside the packed array.
            unsafe {
                match (rows, full) {
                    (8, true) => block::<8, false>(&args),
                    (8, false) => block::<8, true>(&args),
                    (7, f) => dispatch::<7>(&args, f),
                    (6, f) => dispatch::<6>(&args, f),
                    (5, f) => dispatch::<5>(&args, f),
                    (4, f) => dispatch::<4>(&args, f),
                    (3, f) => dispatch::<3>(&args, f),
                    (2, f) => dispatch::<2>(&args, f),
                    (_, f) => dispatch::<1>(&args, f),
                }
            }
        };
        // The next pixel block's input under the last kernel row is the only part no earlier
        // block has read; its IN_CHUNK·3 row streams are too many for the hardware prefetcher,
        // so it is fetched while this block computes.
        let prefetch_next = |i0: usize, j0: usize| {
            for i in i0..c.min(i0 + IN_CHUNK) {
                prefetch_row(x.wrapping_add(i * plane + j0 + PIX_BLOCK + last_off));
            }
        };
        // A chunk of input channels reuses one pixel block's input rows from L1 across every
        // output-channel block while the chunk's weights (co·IN_CHUNK·taps floats) stream from L2.
        for i0 in (0..c).step_by(IN_CHUNK) {
            for j0 in (0..len).step_by(PIX_BLOCK) {
                prefetch_next(i0, j0);
                for blk in 0..co.div_ceil(OUT_BLOCK) {
                    run(i0, j0, blk);
                }
            }
        }
    }

    /// One register block of the forward kernel: ROWS output channels × 48 wide pixels,
    /// accumulated over `channels` input channels and every kernel position.
    struct Block<'a> {
        acc: *mut f32,
        acc_stride: usize,
        /// Start from zero instead of the values in `acc` (the first input-channel chunk).
        first: bool,
        x: *const f32,
        plane: usize,
        w: *const f32,
        channels: usize,
        offsets: &'a [usize],
        masks: [__mmask16; 3],
    }

    #[target_feature(enable = "avx512f")]
    unsafe fn dispatch<const ROWS: usize>(b: &Block, full: bool) {
        unsafe {
            if full {
                block::<ROWS, false>(b)
            } else {
                block::<ROWS, true>(b)
            }
        }
    }

    /// # Safety
    /// AVX-512F; b.acc[r·acc_stride + j] writable and b.x[i·plane + j + off] readable for
    /// r < ROWS, i < channels, off ∈ offsets and every pixel j < 48 (MASKED = false) or every j
    /// whose lane is set in b.masks (MASKED = true); b.w readable for channels·taps·8 floats.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn block<const ROWS: usize, const MASKED: bool>(b: &Block) {
        unsafe {
            let load = |p: *const f32, v: usize| {
                if MASKED {
                    _mm512_maskz_loadu_ps(b.masks[v], p.add(16 * v))
                } else {
                    _mm512_loadu_ps(p.add(16 * v))
                }
            };
            let mut a = [[_mm512_setzero_ps(); 3]; ROWS];
            if !b.first {
                for (r, row) in a.iter_mut().enumerate() {
                    for (v, reg) in row.iter_mut().enumerate() {
                        *reg = load(b.acc.add(r * b.acc_stride), v);
                    }
                }
            }
            let taps = b.offsets.len();
            for i in 0..b.channels {
                let xi = b.x.add(i * b.plane);
                let wi = b.w.add(i * taps * OUT_BLOCK);
                for (t, &off) in b.offsets.iter().enumerate() {
                    let xs = [
                        load(xi.add(off), 0),
                        load(xi.add(off), 1),
                        load(xi.add(off), 2),
                    ];
                    let wt = wi.add(t * OUT_BLOCK);
                    for (r, row) in a.iter_mut().enumerate() {
                        let wv = _mm512_set1_ps(*wt.add(r));
                        for (reg, xv) in row.iter_mut().zip(xs) {
                            *reg = _mm512_fmadd_ps(wv, xv, *reg);
                        }
                    }
                }
            }
            for (r, row) in a.iter().enumerate() {
                let dst = b.acc.add(r * b.acc_stride);
                for (v, reg) in row.iter().enumerate() {
                    if MASKED {
                        _mm512_mask_storeu_ps(dst.add(16 * v), b.masks[v], *reg);
                    } else {
                        _mm512_storeu_ps(dst.add(16 * v), *reg);
                    }
                }
            }
        }
    }

    /// See `super::weight_grad_tile`; `x` points at pixel q0 of the image's first channel.
    ///
    /// # Safety
    /// AVX-512F; x[i·plane + j + off] readable for i < c, j < len, off ∈ offsets; gt holds
    /// len·cop floats and acc c·9·cop, cop a multiple of 16.
    #[target_feature(enable = "avx512f")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn weight_grad_tile(
        gt: &[f32],
        cop: usize,
        x: *const f32,
        c: usize,
        plane: usize,
        len: usize,
        offsets: &[usize; GRAD_TAPS],
        acc: &mut [f32],
    ) {
        let (gt, acc) = (gt.as_ptr(), acc.as_mut_ptr());
        let last_off = offsets.iter().copied().max().unwrap_or(0);
        // Input channels in chunks of IN_CHUNK, so that the chunk's accumulator (IN_CHUNK·9·cop
        // floats, 74 KB at 128 output channels) and its input rows stay in L2 across the tile;
        // then pixel chunks, whose transposed gradient rows stay in L1 across blocks and channels.
        for i0 in (0..c).step_by(IN_CHUNK) {
            for j0 in (0..len).step_by(GRAD_PIX) {
                let mut v0 = 0;
                while v0 < cop / 16 {
                    // Blocks of 3 vectors, but 2 + 2 rather than 3 + 1 (a lone vector leaves the
                    // loads of x unshared).
                    let left = cop / 16 - v0;
                    let vecs = if left == 4 || left == 2 {
                        2
                    } else {
                        GRAD_VECS.min(left)
                    };
                    for i in i0..c.min(i0 + IN_CHUNK) {
                        if v0 == 0 {
                            // As in the forward kernel: the next chunk's input under the last kernel
                            // row, one of c·3 streams, read after every block of this chunk.
                            prefetch_row(x.wrapping_add(i * plane + j0 + GRAD_PIX + last_off));
                            prefetch_row(x.wrapping_add(i * plane + j0 + GRAD_PIX + 64 + last_off));
                        }
                        // SAFETY (the three offsets): j0 < len, v0 < cop/16 and i < c keep them
                        // inside gt (len·cop floats), the image and acc (c·9·cop floats).
                        let args = GradBlock {
                            gt: unsafe { gt.add(j0 * cop + v0 * 16) },
                            cop,
                            pixels: GRAD_PIX.min(len - j0),
                            x: unsafe { x.add(i * plane + j0) },
                            offsets,
                            acc: unsafe { acc.add(i * GRAD_TAPS * cop + v0 * 16) },
                        };
                        // SAFETY: vectors v0..v0+vecs ≤ cop/16 of gt's rows j0.. and of acc's rows
                        // of input channel i < c exist; pixels j0..j0+pixels ≤ len.
                        unsafe {
                            match vecs {
                                3 => grad_block::<3>(&args),
                                2 => grad_block::<2>(&args),
                                _ => grad_block::<1>(&args),
                            }
                        }
                    }
                    v0 += vecs;
                }
            }
        }
    }

    /// One register block of the weight gradient: VECS × 16 output channels × 9 kernel positions
    /// of one input channel, summed over `pixels` wide pixels.
    struct GradBlock<'a> {
        gt: *const f32,
        cop: usize,
        pixels: usize,
        x: *const f32,
        offsets: &'a [usize; GRAD_TAPS],
        acc: *mut f32,
    }

    /// # Safety
    /// AVX-512F; b.gt[j·cop + 16·v + l] and b.x[j + off] readable, b.acc[t·cop + 16·v + l]
    /// readable and writable, for j < pixels, v < VECS, l < 16, t < 9, off ∈ offsets.
    #[target_feature(enable = "avx512f")]
    #[inline]
    unsafe fn grad_block<const VECS: usize>(b: &GradBlock) {
        unsafe {
            let mut a = [[_mm512_setzero_ps(); GRAD_TAPS]; VECS];
            for (v, row) in a.iter_mut().enumerate() {
                for (t, reg) in row.iter_mut().enumerate() {
                    *reg = _mm512_loadu_ps(b.acc.add(t * b.cop + 16 * v));
                }
            }
            for j in 0..b.pixels {
                let mut gs = [_mm512_setzero_ps(); VECS];
                for (v, gv) in gs.iter_mut().enumerate() {
                    *gv = _mm512_loadu_ps(b.gt.add(j * b.cop + 16 * v));
                }
                let xj = b.x.add(j);
                for (t, &off) in b.offsets.iter().enumerate() {
                    let xv = _mm512_set1_ps(*xj.add(off));
                    for (row, gv) in a.iter_mut().zip(gs) {
                        row[t] = _mm512_fmadd_ps(gv, xv, row[t]);
                    }
                }
            }
            for (v, row) in a.iter().enumerate() {
                for (t, reg) in row.iter().enumerate() {
                    _mm512_storeu_ps(b.acc.add(t * b.cop + 16 * v), *reg);
                }
            }
        }
    }
}

/// The two kernels for CPUs with AVX2 and FMA but no AVX-512: 16 ymm registers of 8 floats,
/// so smaller register blocks. The forward kernel holds 4 output channels × 16 wide pixels
/// (8 accumulators, 2 input vectors and a broadcast weight); the weight gradient up to 24 output
/// channels × the 3 kernel positions of one kernel row (9 accumulators, 3 gradient vectors and a
/// broadcast input pixel). Each block does at least as many FMAs as loads.
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{PackedWeights, GRAD_PIX, GRAD_TAPS, IN_CHUNK, OUT_BLOCK};
    use std::arch::x86_64::*;

    /// Output channels per forward register block: half of a packed block of 8.
    const ROWS: usize = 4;
    /// Vectors of 8 wide pixels per forward register block. Three (12 accumulators, 3 input
    /// vectors and a broadcast: all 16 registers) made LLVM spill an accumulator inside the loop.
    const VECS: usize = 2;
    /// Wide pixels per forward register block.
    const PIX_BLOCK: usize = 8 * VECS;
    /// Kernel positions per weight-gradient block: one row of a 3×3 kernel.
    const ROW_TAPS: usize = 3;

    /// Lanes of a vector holding pixels `from..from + 8` that are below `len` (all bits set).
    #[target_feature(enable = "avx2")]
    fn lane_mask(from: usize, len: usize) -> __m256i {
        let n = len.saturating_sub(from).min(8) as i32;
        _mm256_cmpgt_epi32(
            _mm256_set1_epi32(n),
            _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7),
        )
    }

    /// See `super::forward_tile`; `x` points at pixel q0 of the image's first channel.
    ///
    /// # Safety
    /// AVX2 and FMA must be available; x[i·plane + j + off] must be readable for i < w.c,
    /// j < len, off ∈ offsets; acc must hold w.co·len floats; offsets.len() == w.taps.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn forward_tile(
        w: &PackedWeights,
        x: *const f32,
        plane: usize,
        len: usize,
        offsets: &[usize],
        acc: &mut [f32],
    ) {
        let (co, c, taps) = (w.co, w.c, w.taps);
        let acc = acc.as_mut_ptr();
        // As in the AVX-512 kernel: a chunk of input channels reuses one pixel block's input rows
        // from L1 across every output-channel block.
        for i0 in (0..c).step_by(IN_CHUNK) {
            for j0 in (0..len).step_by(PIX_BLOCK) {
                let masks = [lane_mask(j0, len), lane_mask(j0 + 8, len)];
                let full = j0 + PIX_BLOCK <= len;
                for r0 in (0..co).step_by(ROWS) {
                    let rows = ROWS.min(co - r0);
                    let (blk, lane) = (r0 / OUT_BLOCK, r0 % OUT_BLOCK);
                    // SAFETY (the three offsets): r0 < co, j0 < len, i0 < c and lane < 8 keep
                    // each pointer inside acc (co·len floats), the image and the packed weights.
                    let args = Block {
                        acc: unsafe { acc.add(r0 * len + j0) },
                        acc_stride: len,
                        first: i0 == 0,
                        x: unsafe { x.add(i0 * plane + j0) },
                        plane,
                        w: unsafe {
                            w.data
                                .as_ptr()
                                .add((blk * c + i0) * taps * OUT_BLOCK + lane)
                        },
                        channels: IN_CHUNK.min(c - i0),
                        offsets,
                        masks,
                    };
                    // SAFETY (all arms): `rows` output channels from r0 exist, and lane + rows ≤ 8
                    // keeps the weights read inside the packed block; pixels j0.. are read and
                    // written only under `masks` (lanes below len) or, when `full`, all 16 of
                    // them are below len.
                    unsafe {
                        match (rows, full) {
                            (4, true) => block::<4, false>(&args),
                            (4, false) => block::<4, true>(&args),
                            (3, true) => block::<3, false>(&args),
                            (3, false) => block::<3, true>(&args),
                            (2, true) => block::<2, false>(&args),
                            (2, false) => block::<2, true>(&args),
                            (_, true) => block::<1, false>(&args),
                            (_, false) => block::<1, true>(&args),
                        }
                    }
                }
            }
        }
    }

    /// One register block of the forward kernel: R output channels × 16 wide pixels, summed over
    /// `channels` input channels and every kernel position. `w` points at the weight of the first
    /// row inside its packed block of 8.
    struct Block<'a> {
        acc: *mut f32,
        acc_stride: usize,
        /// Start from zero instead of the values in `acc` (the first input-channel chunk).
        first: bool,
        x: *const f32,
        plane: usize,
        w: *const f32,
        channels: usize,
        offsets: &'a [usize],
        masks: [__m256i; VECS],
    }

    /// # Safety
    /// AVX2 and FMA; b.acc[r·acc_stride + j] writable and b.x[i·plane + j + off] readable for
    /// r < R, i < channels, off ∈ offsets and every pixel j < 16 (MASKED = false) or every j
    /// whose lane is set in b.masks (MASKED = true); b.w[(i·taps + t)·8 + r] readable for
    /// i < channels, t < taps, r < R.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn block<const R: usize, const MASKED: bool>(b: &Block) {
        unsafe {
            let load = |p: *const f32, v: usize| {
                if MASKED {
                    _mm256_maskload_ps(p.add(8 * v), b.masks[v])
                } else {
                    _mm256_loadu_ps(p.add(8 * v))
                }
            };
            let mut a = [[_mm256_setzero_ps(); VECS]; R];
            if !b.first {
                for (r, row) in a.iter_mut().enumerate() {
                    for (v, reg) in row.iter_mut().enumerate() {
                        *reg = load(b.acc.add(r * b.acc_stride), v);
                    }
                }
            }
            let taps = b.offsets.len();
            for i in 0..b.channels {
                let xi = b.x.add(i * b.plane);
                let wi = b.w.add(i * taps * OUT_BLOCK);
                for (t, &off) in b.offsets.iter().enumerate() {
                    let xs = [load(xi.add(off), 0), load(xi.add(off), 1)];
                    let wt = wi.add(t * OUT_BLOCK);
                    for (r, row) in a.iter_mut().enumerate() {
                        let wv = _mm256_broadcast_ss(&*wt.add(r));
                        for (reg, xv) in row.iter_mut().zip(xs) {
                            *reg = _mm256_fmadd_ps(wv, xv, *reg);
                        }
                    }
                }
            }
            for (r, row) in a.iter().enumerate() {
                let dst = b.acc.add(r * b.acc_stride);
                for (v, reg) in row.iter().enumerate() {
                    if MASKED {
                        _mm256_maskstore_ps(dst.add(8 * v), b.masks[v], *reg);
                    } else {
                        _mm256_storeu_ps(dst.add(8 * v), *reg);
                    }
                }
            }
        }
    }

    /// See `super::weight_grad_tile`; `x` points at pixel q0 of the image's first channel.
    ///
    /// # Safety
    /// AVX2 and FMA; x[i·plane + j + off] readable for i < c, j < len, off ∈ offsets; gt holds
    /// len·cop floats and acc c·9·cop, cop a multiple of 8.
    #[target_feature(enable = "avx2,fma")]
    #[allow(clippy::too_many_arguments)]
    pub(super) unsafe fn weight_grad_tile(
        gt: &[f32],
        cop: usize,
        x: *const f32,
        c: usize,
        plane: usize,
        len: usize,
        offsets: &[usize; GRAD_TAPS],
        acc: &mut [f32],
    ) {
        let (gt, acc) = (gt.as_ptr(), acc.as_mut_ptr());
        for i0 in (0..c).step_by(IN_CHUNK) {
            for j0 in (0..len).step_by(GRAD_PIX) {
                let mut v0 = 0;
                while v0 < cop / 8 {
                    // Blocks of 3 vectors, but 2 + 2 rather than 3 + 1 (a lone vector leaves the
                    // broadcasts of x unshared).
                    let left = cop / 8 - v0;
                    let vecs = if left == 4 || left == 2 {
                        2
                    } else {
                        3.min(left)
                    };
                    for i in i0..c.min(i0 + IN_CHUNK) {
                        for (ky, row_offsets) in offsets.chunks_exact(ROW_TAPS).enumerate() {
                            // SAFETY (the three offsets): j0 < len, v0 < cop/8, i < c and ky < 3
                            // keep them inside gt (len·cop floats), the image and acc (c·9·cop).
                            let args = GradBlock {
                                gt: unsafe { gt.add(j0 * cop + v0 * 8) },
                                cop,
                                pixels: GRAD_PIX.min(len - j0),
                                x: unsafe { x.add(i * plane + j0) },
                                offsets: row_offsets,
                                acc: unsafe {
                                    acc.add((i * GRAD_TAPS + ky * ROW_TAPS) * cop + v0 * 8)
                                },
                            };
                            // SAFETY: vectors v0..v0+vecs ≤ cop/8 of gt's rows j0.. and of acc's
                            // rows of input channel i < c exist; pixels j0..j0+pixels ≤ len.
                            unsafe {
                                match vecs {
                                    3 => grad_block::<3, 1>(&args),
                                    2 => grad_block::<2, 2>(&args),
                                    _ => grad_block::<1, 2>(&args),
                                }
                            }
                        }
                    }
                    v0 += vecs;
                }
            }
        }
    }

    /// One register block of the weight gradient: V × 8 output channels × the 3 kernel positions
    /// of one kernel row, for one input channel, summed over `pixels` wide pixels. With P > 1,
    /// consecutive pixels add into P sets of accumulators (summed at the end), so that 2 vectors
    /// still give the 8+ independent FMA chains that hide the FMA latency (2 pixels × 6
    /// accumulators took 0.91–0.97 of one pixel's time at 32 and 64 channels).
    struct GradBlock<'a> {
        gt: *const f32,
        cop: usize,
        pixels: usize,
        x: *const f32,
        offsets: &'a [usize],
        acc: *mut f32,
    }

    /// # Safety
    /// AVX2 and FMA; b.gt[j·cop + 8·v + l] and b.x[j + off] readable, b.acc[t·cop + 8·v + l]
    /// readable and writable, for j < pixels, v < V, l < 8, t < 3, off ∈ offsets; V·3·P + V + 1
    /// ≤ 16 keeps the block in registers.
    #[target_feature(enable = "avx2,fma")]
    #[inline]
    unsafe fn grad_block<const V: usize, const P: usize>(b: &GradBlock) {
        const T: usize = ROW_TAPS;
        unsafe {
            let off: [usize; T] = [b.offsets[0], b.offsets[1], b.offsets[2]];
            let mut a = [[[_mm256_setzero_ps(); T]; V]; P];
            for (v, row) in a[0].iter_mut().enumerate() {
                for (t, reg) in row.iter_mut().enumerate() {
                    *reg = _mm256_loadu_ps(b.acc.add(t * b.cop + 8 * v));
                }
            }
            let pixel = |a: &mut [[__m256; T]; V], j: usize| {
                let mut gs = [_mm256_setzero_ps(); V];
                for (v, gv) in gs.iter_mut().enumerate() {
                    *gv = _mm256_loadu_ps(b.gt.add(j * b.cop + 8 * v));
                }
                let xj = b.x.add(j);
                for (t, &o) in off.iter().enumerate() {
                    let xv = _mm256_broadcast_ss(&*xj.add(o));
                    for (row, gv) in a.iter_mut().zip(gs) {
                        row[t] = _mm256_fmadd_ps(gv, xv, row[t]);
                    }
                }
            };
            let full = b.pixels - b.pixels % P;
            for j in (0..full).step_by(P) {
                for (p, set) in a.iter_mut().enumerate() {
                    pixel(set, j + p);
                }
            }
            for j in full..b.pixels {
                pixel(&mut a[0], j);
            }
            let (total, rest) = a.split_at_mut(1);
            for set in rest {
                for (sum_row, row) in total[0].iter_mut().zip(set.iter()) {
                    for (sum, reg) in sum_row.iter_mut().zip(row) {
                        *sum = _mm256_add_ps(*sum, *reg);
                    }
                }
            }
            for (v, row) in total[0].iter().enumerate() {
                for (t, reg) in row.iter().enumerate() {
                    _mm256_storeu_ps(b.acc.add(t * b.cop + 8 * v), *reg);
                }
            }
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;

    /// A deterministic pseudo-random fill in [−1, 1) (a 64-bit LCG's high bits).
    pub(in crate::cpu) fn fill(len: usize, seed: u64) -> Vec<f32> {
        let mut s = seed;
        (0..len)
            .map(|_| {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (s >> 40) as f32 / (1u64 << 23) as f32 - 1.0
            })
            .collect()
    }

    fn close(a: &[f32], b: &[f32], what: &str) {
        assert_eq!(a.len(), b.len(), "{what}: length");
        for (k, (x, y)) in a.iter().zip(b).enumerate() {
            assert!(
                (x - y).abs() <= 1e-4 * (1.0 + y.abs()),
                "{what}: element {k}: {x} vs {y}"
            );
        }
    }

    /// (co, c, plane, q0, len, offsets) cases covering partial output blocks (co not a multiple
    /// of 8), input-channel chunks (c > 16, not a multiple of 16), pixel tails (len not a
    /// multiple of 16 or 48) and reads that end exactly at the image's last float.
    fn cases() -> Vec<(usize, usize, usize, usize, usize, Vec<usize>)> {
        let taps3 = |wp: usize| vec![0, 1, 2, wp, wp + 1, wp + 2, 2 * wp, 2 * wp + 1, 2 * wp + 2];
        vec![
            (8, 3, 7 * 9, 0, 5 * 9 - 2, taps3(9)),
            (1, 1, 5 * 5, 0, 3 * 5 - 2, taps3(5)),
            (13, 5, 12 * 11, 11, 9 * 11 - 2 - 11, taps3(11)),
            (32, 32, 35 * 35, 0, 32 * 35 + 33, taps3(35)),
            (20, 70, 19 * 23, 40, 17 * 23 - 2 - 40, taps3(23)),
            (3, 33, 30 * 17, 5, 100, taps3(17)),
            (17, 9, 40 * 40, 7, 48 * 5 + 1, vec![0, 2, 80, 82]),
            (9, 4, 50, 0, 1, vec![49]),
            (40, 20, 8 * 9, 0, 5 * 9 + 7, taps3(9)),
        ]
    }

    #[test]
    fn forward_tile_matches_the_definition() {
        skip_missing_variants();
        for isa in supported() {
            for (n, (co, c, plane, q0, len, offsets)) in cases().into_iter().enumerate() {
                let taps = offsets.len();
                let x = fill(c * plane, n as u64);
                let wt = fill(co * c * taps, 100 + n as u64);
                let mut expect = vec![0f32; co * len];
                for o in 0..co {
                    for j in 0..len {
                        let mut s = 0f64;
                        for i in 0..c {
                            for (t, off) in offsets.iter().enumerate() {
                                s += wt[(o * c + i) * taps + t] as f64
                                    * x[i * plane + q0 + j + off] as f64;
                            }
                        }
                        expect[o * len + j] = s as f32;
                    }
                }
                let mut acc = vec![f32::NAN; co * len];
                forward_tile(
                    isa,
                    &PackedWeights::new(&wt, co, c, taps),
                    &x,
                    plane,
                    q0,
                    len,
                    &offsets,
                    &mut acc,
                );
                close(&acc, &expect, &format!("{isa:?} forward case {n}"));
            }
        }
    }

    #[test]
    fn weight_grad_tile_matches_the_definition() {
        skip_missing_variants();
        // Output-channel counts that exercise every block split (AVX-512: 1, 2, 3, 2 + 2,
        // 3 + 2 vectors of 16; AVX2: 2, 2 + 2, 3 + 3, 3 + 3 + 2, 3 + 3 + 2 + 2 vectors of 8).
        let outs = [1, 16, 20, 40, 64, 75];
        for isa in supported() {
            for (n, (_, c, plane, q0, len, offsets)) in cases().into_iter().enumerate() {
                let Ok(offsets) = <[usize; GRAD_TAPS]>::try_from(offsets) else {
                    continue;
                };
                let co = outs[n % outs.len()];
                let cop = padded_channels(co);
                let x = fill(c * plane, n as u64);
                let mut gt = fill(len * cop, 200 + n as u64);
                for row in gt.chunks_exact_mut(cop) {
                    row[co..].fill(0.0);
                }
                // Accumulates onto existing values, as the weight gradient's tiles do.
                let start = fill(c * GRAD_TAPS * cop, 300 + n as u64);
                let mut expect = start.clone();
                for o in 0..cop {
                    for i in 0..c {
                        for (t, off) in offsets.iter().enumerate() {
                            let s: f64 = (0..len)
                                .map(|j| {
                                    gt[j * cop + o] as f64 * x[i * plane + q0 + j + off] as f64
                                })
                                .sum();
                            expect[(i * GRAD_TAPS + t) * cop + o] += s as f32;
                        }
                    }
                }
                let mut acc = start;
                weight_grad_tile(isa, &gt, cop, &x, c, plane, q0, len, &offsets, &mut acc);
                close(&acc, &expect, &format!("{isa:?} weight gradient case {n}"));
            }
        }
    }

    /// Says which kernel variants this CPU cannot test.
    fn skip_missing_variants() {
        for isa in [Isa::Avx512, Isa::Avx2] {
            if !has(isa) {
                eprintln!("SKIP {isa:?} variant: this CPU lacks it");
            }
        }
    }

    #[test]
    #[should_panic(expected = "input reads stay inside the image")]
    fn forward_tile_rejects_reads_past_the_input() {
        let w = PackedWeights::new(&[1.0; 4], 1, 1, 4);
        let mut acc = vec![0f32; 10];
        forward_tile(
            Isa::Avx2,
            &w,
            &[0.0; 20],
            20,
            0,
            10,
            &[0, 1, 5, 11],
            &mut acc,
        );
    }
}
