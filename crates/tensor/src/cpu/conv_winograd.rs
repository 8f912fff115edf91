//! 3×3, stride-1 convolution by Winograd's minimal filtering F(m×m, 3×3) (Lavin & Gray, 2016):
//! Y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A for each m × m output tile, with the sum over input channels done
//! in the transformed domain as t² = (m + 2)² GEMMs per block of tiles. F(4×4, 3×3) multiplies
//! 4× less than the direct sum (36 products per 16 outputs instead of 144), F(2×2, 3×3) 2.25×;
//! the transforms are additions over the input and output, a few per element.
//!
//! Layout: a task takes one image and a few rows of tiles. It transforms its tiles' inputs into
//! V[f][c][tile] (tiles contiguous, so both transforms run as vector operations along a row of
//! tiles), multiplies M[f] = U[f]·V[f] with U[f] the [co × c] transformed weights, then
//! transforms M[f][co][tile] back into the output rows it owns.
//!
//! Accuracy: the transforms' coefficients grow with m. F(2, 3) uses only ±1 and ½ and keeps
//! float32 sums as accurate as the direct sum; F(4, 3) reaches 5-fold coefficients and loses
//! about one decimal digit (relative error ~1e-6 → ~1e-5 of the output's scale); `choice` takes
//! it only where it is clearly faster.
use super::conv::{balanced_tile, sum_over_tasks, with_scratch, SharedMut};
use super::gemm_f32;
use crate::backend::Conv2dParams;
use rayon::prelude::*;

/// One F(m×m, 3×3) algorithm: its three transform matrices, row-major.
pub(super) struct Transform {
    /// Output tile side.
    m: usize,
    /// Input tile side, m + 2.
    t: usize,
    /// Bᵀ, t × t: the input transform.
    bt: &'static [f32],
    /// G, t × 3: the kernel transform.
    g: &'static [f32],
    /// Aᵀ, m × t: the output transform.
    at: &'static [f32],
}

/// F(2×2, 3×3): interpolation points 0, ±1, ∞.
pub(super) const F2: Transform = Transform {
    m: 2,
    t: 4,
    #[rustfmt::skip]
    bt: &[
        1.0, 0.0, -1.0, 0.0,
        0.0, 1.0, 1.0, 0.0,
        0.0, -1.0, 1.0, 0.0,
        0.0, 1.0, 0.0, -1.0,
    ],
    #[rustfmt::skip]
    g: &[
        1.0, 0.0, 0.0,
        0.5, 0.5, 0.5,
        0.5, -0.5, 0.5,
        0.0, 0.0, 1.0,
    ],
    #[rustfmt::skip]
    at: &[
        1.0, 1.0, 1.0, 0.0,
        0.0, 1.0, -1.0, -1.0,
    ],
};

/// F(4×4, 3×3): interpolation points 0, ±1, ±2, ∞.
pub(super) const F4: Transform = Transform {
    m: 4,
    t: 6,
    #[rustfmt::skip]
    bt: &[
        4.0, 0.0, -5.0, 0.0, 1.0, 0.0,
        0.0, -4.0, -4.0, 1.0, 1.0, 0.0,
        0.0, 4.0, -4.0, -1.0, 1.0, 0.0,
        0.0, -2.0, -1.0, 2.0, 1.0, 0.0,
        0.0, 2.0, -1.0, -2.0, 1.0, 0.0,
        0.0, 4.0, 0.0, -5.0, 0.0, 1.0,
    ],
    #[rustfmt::skip]
    g: &[
        1.0 / 4.0, 0.0, 0.0,
        -1.0 / 6.0, -1.0 / 6.0, -1.0 / 6.0,
        -1.0 / 6.0, 1.0 / 6.0, -1.0 / 6.0,
        1.0 / 24.0, 1.0 / 12.0, 1.0 / 6.0,
        1.0 / 24.0, -1.0 / 12.0, 1.0 / 6.0,
        0.0, 0.0, 1.0,
    ],
    #[rustfmt::skip]
    at: &[
        1.0, 1.0, 1.0, 1.0, 1.0, 0.0,
        0.0, 1.0, -1.0, 2.0, -2.0, 0.0,
        0.0, 1.0, 1.0, 4.0, 4.0, 0.0,
        0.0, 1.0, -1.0, 8.0, -8.0, 1.0,
    ],
};

/// Tiles per task, about: enough columns for `gemm` to run near its peak (it reaches it from
/// about 32), few enough that a task's V and M stay in L2/L3 (t²·(c + co)·tiles floats).
const TILES_PER_TASK: usize = 96;

/// The algorithm for a convolution, if Winograd's pays: 3×3, stride 1, no dilation, padding at
/// most 2 (the input gradient of an unpadded convolution is padded by 2), at least 32 channels
/// on both sides (the transforms cost per channel what the GEMMs save per channel pair) and an
/// output of at least 40 × 40 (smaller ones give tasks too few tiles for an efficient GEMM, and
/// their weight transform, t²·c·co, outweighs the saving: 1024 channels at 16 × 16 took 43 ms
/// against 30 ms direct). F(4, 3) on outputs of at least 96 × 96, F(2, 3) below; measured on
/// 2 cores (AVX2), per forward convolution, against the best other path (fifth stop):
/// - 128 → 128, 153 × 201: F(4) 36 ms, F(2) 41 ms, shifted GEMM 61 ms;
/// - 64 → 64 padded, 128 × 128: F(2) 5.7 ms, F(4) 5.5 ms, im2col 8.2 ms;
/// - 128 → 128 padded, 48 × 48: F(2) 4.3 ms, F(4) 5.8 ms, im2col 5.2 ms;
/// - 32 → 32 padded, 128 × 128: F(2) 3.2 ms, im2col 3.7 ms.
///
/// F(4) used to start at 96 channels. With the later kernels it was faster from 32 channels
/// on outputs of at least 96 × 96 (seventh stop, alternating builds, three runs each, ms,
/// F(4) against F(2)): 32 → 32 at 128², batch 2: forward 4.0–4.9 / 5.3–6.8, weight gradient
/// 4.5–6.1 / 7.6–7.8; 64 → 32 at 128², batch 2: forward 6.8–8.6 / 8.3–9.2, weight gradient
/// 8.3–10.6 / 10.9–13.2; 64 → 64 at 128²: forward 5.0–6.6 / 6.2–7.3; 128 → 64 at 256²:
/// forward 29–36 / 44–54, weight gradient 32–37 / 43–61. At 98 × 98 the two were even.
pub(super) fn choice(
    p: Conv2dParams,
    [c, co]: [usize; 2],
    [kh, kw]: [usize; 2],
    [ho, wo]: [usize; 2],
) -> Option<&'static Transform> {
    let shape_fits = [kh, kw] == [3, 3]
        && p.stride == [1, 1]
        && p.dilation == [1, 1]
        && p.padding[0] <= 2
        && p.padding[1] <= 2;
    if !shape_fits || c < 32 || co < 32 || ho * wo < 40 * 40 || ho < 8 || wo < 8 {
        return None;
    }
    if ho * wo >= 96 * 96 {
        Some(&F4)
    } else {
        Some(&F2)
    }
}

/// y = conv2d(x, wt) by `tr` (from `choice`); `[ho, wo]` is the output size.
pub(super) fn conv2d(
    tr: &'static Transform,
    x: &[f32],
    [n, c, h, w]: [usize; 4],
    wt: &[f32],
    co: usize,
    p: Conv2dParams,
    [ho, wo]: [usize; 2],
) -> Vec<f32> {
    let plan = Plan::new(tr, [c, h, w], co, p, [ho, wo]);
    let u = transform_weights(tr, wt, co, c);
    // Every output element is written: the tasks' tile rows cover all output rows.
    let mut out = super::pool::take(n * co * ho * wo);
    let dst = SharedMut(out.as_mut_ptr());
    (0..n * plan.tasks_per_image)
        .into_par_iter()
        .for_each(|task| {
            plan.run(task, x, |img, a0, rows, v, mm, work| {
                let nt = rows * plan.g.tx;
                for f in 0..plan.freqs {
                    // SAFETY: M[f] (co × nt, row stride nt) = U[f] (co × c, row stride c) ·
                    // V[f] (c × nt, row stride nt); the three slices are disjoint parts of this
                    // task's scratch and of `u`.
                    unsafe {
                        gemm_f32(
                            co,
                            nt,
                            c,
                            mm[f * co * nt..].as_mut_ptr(),
                            nt as isize,
                            1,
                            false,
                            u[f * co * c..].as_ptr(),
                            c as isize,
                            1,
                            v[f * c * nt..].as_ptr(),
                            nt as isize,
                            1,
                            false,
                        )
                    }
                }
                // SAFETY: output rows a0·m.. (a0 + rows)·m of image `img` belong to this task alone.
                unsafe { transform_output(tr, &plan.g, mm, a0, rows, dst, img, work) };
            })
        });
    super::pool::give(u);
    out
}

/// The weight gradient of `conv2d` by `tr` (from `choice`): with V the input's and
/// E = A·dY·Aᵀ the output gradient's transformed tiles, dU[f] = Σ_tiles E[f]·V[f]ᵀ
/// ([co × c] per f, summed over tasks in a fixed order), then dW[o][i] = Gᵀ·dU[o][i]·G.
pub(super) fn conv2d_weight_grad(
    tr: &'static Transform,
    x: &[f32],
    [n, c, h, w]: [usize; 4],
    gout: &[f32],
    co: usize,
    p: Conv2dParams,
    [ho, wo]: [usize; 2],
) -> Vec<f32> {
    let plan = Plan::new(tr, [c, h, w], co, p, [ho, wo]);
    let freqs = plan.freqs;
    let du = sum_over_tasks(n * plan.tasks_per_image, freqs * co * c, |acc, task| {
        plan.run(task, x, |img, a0, rows, v, e, work| {
            let nt = rows * plan.g.tx;
            let grad = &gout[img * co * ho * wo..(img + 1) * co * ho * wo];
            transform_tiles(Tiles::OutputGrad, tr, &plan.g, grad, a0, rows, e, work);
            for f in 0..freqs {
                // SAFETY: dU[f] (co × c, row stride c; this task group's accumulator) +=
                // E[f] (co × nt, row stride nt) · V[f]ᵀ (nt × c: V[f] is c × nt, row stride nt).
                unsafe {
                    gemm_f32(
                        co,
                        c,
                        nt,
                        acc[f * co * c..].as_mut_ptr(),
                        c as isize,
                        1,
                        true,
                        e[f * co * nt..].as_ptr(),
                        nt as isize,
                        1,
                        v[f * c * nt..].as_ptr(),
                        1,
                        nt as isize,
                        false,
                    )
                }
            }
        })
    });
    // dW[o][i][k][l] = Σ_f G[a][k]·G[b][l]·dU[f][o][i], f = (a, b): the adjoint of
    // `transform_weights`.
    let coef = kernel_coefficients(tr);
    let mut dw = super::pool::take(co * c * 9);
    dw.par_chunks_mut(9 * 256)
        .enumerate()
        .for_each(|(blk, chunk)| {
            for (j, taps) in chunk.chunks_exact_mut(9).enumerate() {
                let oi = blk * 256 + j;
                taps.fill(0.0);
                for (f, cf) in coef.iter().enumerate() {
                    let d = du[f * co * c + oi];
                    taps.iter_mut().zip(cf).for_each(|(t, k)| *t += k * d);
                }
            }
        });
    super::pool::give(du);
    dw
}

/// Sizes shared by the transforms of one convolution.
struct Geometry {
    c: usize,
    h: usize,
    w: usize,
    co: usize,
    ho: usize,
    wo: usize,
    /// Tiles per row.
    tx: usize,
    padding: [usize; 2],
}

/// How one convolution's tiles are cut into tasks, and each task's scratch.
struct Plan {
    tr: &'static Transform,
    g: Geometry,
    freqs: usize,
    /// Tile rows.
    ty: usize,
    /// Tile rows per task.
    rows: usize,
    tasks_per_image: usize,
}

impl Plan {
    fn new(
        tr: &'static Transform,
        [c, h, w]: [usize; 3],
        co: usize,
        p: Conv2dParams,
        [ho, wo]: [usize; 2],
    ) -> Self {
        let (ty, tx) = (ho.div_ceil(tr.m), wo.div_ceil(tr.m));
        let rows = balanced_tile(ty, (TILES_PER_TASK / tx).max(1), 1);
        Plan {
            tr,
            g: Geometry {
                c,
                h,
                w,
                co,
                ho,
                wo,
                tx,
                padding: p.padding,
            },
            freqs: tr.t * tr.t,
            ty,
            rows,
            tasks_per_image: ty.div_ceil(rows),
        }
    }

    /// Transforms the input tiles of `task` into V, then calls
    /// `f(image, first tile row, tile rows, V, a scratch of freqs·co·tiles floats, work)`.
    fn run(
        &self,
        task: usize,
        x: &[f32],
        f: impl FnOnce(usize, usize, usize, &mut [f32], &mut [f32], &mut [f32]),
    ) {
        let (m, t, tx) = (self.tr.m, self.tr.t, self.g.tx);
        let (img, a0) = (
            task / self.tasks_per_image,
            (task % self.tasks_per_image) * self.rows,
        );
        let rows = self.rows.min(self.ty - a0);
        let nt = rows * tx;
        let (v_len, second_len) = (self.freqs * self.g.c * nt, self.freqs * self.g.co * nt);
        // The largest of the three transforms' work areas.
        let work_len = (2 * t * (tx + 1) * m).max((t * m + m * m) * tx);
        with_scratch(v_len + second_len + work_len, |s| {
            let (v, rest) = s.split_at_mut(v_len);
            let (second, work) = rest.split_at_mut(second_len);
            let plane = self.g.c * self.g.h * self.g.w;
            let image = &x[img * plane..(img + 1) * plane];
            transform_tiles(Tiles::Input, self.tr, &self.g, image, a0, rows, v, work);
            f(img, a0, rows, v, second, work)
        })
    }
}

/// Runs `f` compiled for AVX2 + FMA where the CPU has them: the transforms are vector passes
/// along rows of tiles, which the baseline x86-64 target compiles to 128-bit SSE. `f` must be
/// an `#[inline(always)]` closure: a closure does not inherit its caller's target features, so
/// compiled apart it would run as SSE (perf showed exactly that).
#[inline(always)]
fn vectorized<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
        #[target_feature(enable = "avx2,fma")]
        unsafe fn avx2<R>(f: impl FnOnce() -> R) -> R {
            f()
        }
        // SAFETY: the features `avx2` is compiled for are present.
        return unsafe { avx2(f) };
    }
    f()
}

/// (G g Gᵀ)[f] = Σ_{k,l} G[i][k]·G[j][l]·g[k][l] for f = (i, j): nine fixed coefficients per
/// frequency, indexed by k·3 + l.
fn kernel_coefficients(tr: &Transform) -> Vec<[f32; 9]> {
    let t = tr.t;
    (0..t * t)
        .map(|f| std::array::from_fn(|kl| tr.g[(f / t) * 3 + kl / 3] * tr.g[(f % t) * 3 + kl % 3]))
        .collect()
}

/// U[f][o][i] = (G g[o][i] Gᵀ)[f] for f = (row, column) of the t × t transformed kernel.
fn transform_weights(tr: &Transform, wt: &[f32], co: usize, c: usize) -> Vec<f32> {
    let coef = kernel_coefficients(tr);
    let mut u = super::pool::take(coef.len() * co * c);
    u.par_chunks_mut(co * c).zip(&coef).for_each(|(uf, coef)| {
        for (dst, g) in uf.iter_mut().zip(wt.chunks_exact(9)) {
            *dst = coef.iter().zip(g).map(|(a, b)| a * b).sum();
        }
    });
    u
}

/// dst[b] = Σ_k coef[k]·src_k[b], skipping zero coefficients (most of them). Up to four terms
/// go in one pass over dst, so each output is written once (one pass per term measured the
/// transforms at a third of a 64-channel convolution).
#[inline(always)]
fn combine(dst: &mut [f32], coef: &[f32], src: impl Fn(usize) -> *const f32) {
    let n = dst.len();
    let mut terms: [(f32, &[f32]); 6] = [(0.0, &[]); 6];
    let mut k = 0;
    for (j, &cf) in coef.iter().enumerate() {
        if cf != 0.0 {
            // SAFETY: callers give src(j) pointing at dst.len() readable floats that dst does not
            // overlap.
            terms[k] = (cf, unsafe { std::slice::from_raw_parts(src(j), n) });
            k += 1;
        }
    }
    let [(c0, s0), (c1, s1), (c2, s2), (c3, s3), ..] = terms;
    match k {
        0 => dst.fill(0.0),
        1 => dst.iter_mut().zip(s0).for_each(|(d, a)| *d = c0 * a),
        2 => dst
            .iter_mut()
            .zip(s0.iter().zip(s1))
            .for_each(|(d, (a, b))| *d = c0 * a + c1 * b),
        3 => dst
            .iter_mut()
            .zip(s0.iter().zip(s1).zip(s2))
            .for_each(|(d, ((a, b), c))| *d = c0 * a + c1 * b + c2 * c),
        _ => {
            dst.iter_mut()
                .zip(s0.iter().zip(s1).zip(s2.iter().zip(s3)))
                .for_each(|(d, ((a, b), (c, e)))| *d = c0 * a + c1 * b + (c2 * c + c3 * e));
            for &(cf, sk) in &terms[4..k] {
                dst.iter_mut().zip(sk).for_each(|(d, v)| *d += cf * v);
            }
        }
    }
}

/// Which tiles `transform_tiles` transforms.
#[derive(Clone, Copy)]
enum Tiles {
    /// V[f][i][r·tx + b] = (Bᵀ d B)[f] for the input tile d of channel i, tile row a0 + r, tile b.
    Input,
    /// E[f][o][r·tx + b] = (A·dY·Aᵀ)[f] for the output-gradient tile dY of channel o, tile row
    /// a0 + r, tile b (zero past the output's edge).
    OutputGrad,
}

/// Transforms the tiles of tile rows a0..a0 + rows of one image (`src`) into `dst`.
#[allow(clippy::too_many_arguments)]
fn transform_tiles(
    kind: Tiles,
    tr: &Transform,
    g: &Geometry,
    src: &[f32],
    a0: usize,
    rows: usize,
    dst: &mut [f32],
    work: &mut [f32],
) {
    vectorized(
        #[inline(always)]
        || match (kind, tr.m) {
            (Tiles::Input, 2) => transform_input_tiles::<2>(tr, g, src, a0, rows, dst, work),
            (Tiles::Input, 4) => transform_input_tiles::<4>(tr, g, src, a0, rows, dst, work),
            (Tiles::OutputGrad, 2) => transform_grad_tiles::<2>(tr, g, src, a0, rows, dst, work),
            (Tiles::OutputGrad, 4) => transform_grad_tiles::<4>(tr, g, src, a0, rows, dst, work),
            (_, m) => unreachable!("no F({m}, 3) transform"),
        },
    )
}

/// `Tiles::Input` for tiles of side M (a constant, so the phase split vectorizes).
#[inline(always)]
fn transform_input_tiles<const M: usize>(
    tr: &Transform,
    g: &Geometry,
    x: &[f32],
    a0: usize,
    rows: usize,
    v: &mut [f32],
    work: &mut [f32],
) {
    let (m, t, tx) = (M, M + 2, g.tx);
    let [py, px] = g.padding;
    let nt = rows * tx;
    // Rows of the vertical transform, each covering every tile of the row plus the overlap.
    let row_len = (tx + 1) * m;
    let (vert, phases) = work[..2 * t * row_len].split_at_mut(t * row_len);
    for i in 0..g.c {
        let plane = &x[i * g.h * g.w..(i + 1) * g.h * g.w];
        for r in 0..rows {
            // Vertical: vert[k][X] = Σ_s Bᵀ[k][s]·xpad[a·m + s][X], xpad being the zero-padded
            // input; only the columns inside the image get contributions.
            let y0 = (a0 + r) * m;
            for (k, vrow) in vert.chunks_exact_mut(row_len).enumerate() {
                // Rows outside the image contribute nothing: their coefficient is zeroed.
                let coef: [f32; 6] = std::array::from_fn(|s| {
                    let y = (y0 + s).wrapping_sub(py);
                    if s < t && y < g.h {
                        tr.bt[k * t + s]
                    } else {
                        0.0
                    }
                });
                vrow[..px].fill(0.0);
                vrow[px + g.w..].fill(0.0);
                combine(&mut vrow[px..px + g.w], &coef[..t], |s| {
                    plane[(y0 + s - py) * g.w..].as_ptr()
                });
            }
            // Split each row by column phase: phases[k][q][b] = vert[k][b·m + q], so that column
            // b·m + s of every tile b is the contiguous run phases[k][s % m][s / m..].
            for (vrow, prow) in vert
                .chunks_exact(row_len)
                .zip(phases.chunks_exact_mut(row_len))
            {
                for (q, dst) in prow.chunks_exact_mut(tx + 1).enumerate() {
                    dst.iter_mut()
                        .zip(vrow[q..].iter().step_by(M))
                        .for_each(|(d, v)| *d = *v);
                }
            }
            // Horizontal: V[k][l][b] = Σ_s Bᵀ[l][s]·vert[k][b·m + s].
            for k in 0..t {
                let prow = &phases[k * row_len..(k + 1) * row_len];
                for l in 0..t {
                    let f = k * t + l;
                    let dst = &mut v[(f * g.c + i) * nt + r * tx..][..tx];
                    combine(dst, &tr.bt[l * t..(l + 1) * t], |s| {
                        prow[(s % m) * (tx + 1) + s / m..].as_ptr()
                    });
                }
            }
        }
    }
}

/// `Tiles::OutputGrad` for tiles of side M.
#[inline(always)]
fn transform_grad_tiles<const M: usize>(
    tr: &Transform,
    g: &Geometry,
    grad: &[f32],
    a0: usize,
    rows: usize,
    e: &mut [f32],
    work: &mut [f32],
) {
    let (m, t, tx) = (M, M + 2, g.tx);
    let nt = rows * tx;
    // A = (Aᵀ)ᵀ, t × m: column j of Aᵀ as a contiguous row (t·m ≤ 24).
    let a: [f32; 24] = std::array::from_fn(|k| {
        if k < t * m {
            tr.at[(k % m) * t + k / m]
        } else {
            0.0
        }
    });
    let (phases, hor) = work[..(m * m + m * t) * tx].split_at_mut(m * m * tx);
    for o in 0..g.co {
        let plane = &grad[o * g.ho * g.wo..(o + 1) * g.ho * g.wo];
        for r in 0..rows {
            // phases[p][q][b] = dY[(a0 + r)·m + p][b·m + q], zero outside the output.
            for (p, ph) in phases.chunks_exact_mut(m * tx).enumerate() {
                ph.fill(0.0);
                let oy = (a0 + r) * m + p;
                if oy >= g.ho {
                    continue;
                }
                let row = &plane[oy * g.wo..(oy + 1) * g.wo];
                for (q, dst) in ph.chunks_exact_mut(tx).enumerate() {
                    dst.iter_mut()
                        .zip(row[q.min(g.wo)..].iter().step_by(M))
                        .for_each(|(d, v)| *d = *v);
                }
            }
            // Horizontal: hor[p][l][b] = Σ_q A[l][q]·dY[p][q][b].
            for p in 0..m {
                for l in 0..t {
                    let dst = &mut hor[(p * t + l) * tx..][..tx];
                    combine(dst, &a[l * m..(l + 1) * m], |q| {
                        phases[(p * m + q) * tx..].as_ptr()
                    });
                }
            }
            // Vertical: E[k][l][b] = Σ_p A[k][p]·hor[p][l][b].
            for k in 0..t {
                for l in 0..t {
                    let dst = &mut e[((k * t + l) * g.co + o) * nt + r * tx..][..tx];
                    combine(dst, &a[k * m..(k + 1) * m], |p| {
                        hor[(p * t + l) * tx..].as_ptr()
                    });
                }
            }
        }
    }
}

/// Writes output rows (a0 + r)·m + p (those below ho) of image `img` from M[f][o][r·tx + b]:
/// Y = Aᵀ M A per tile.
///
/// # Safety
/// `out` must point at an n × co × ho × wo buffer of which these rows are written by no one
/// else during the call.
#[allow(clippy::too_many_arguments)]
unsafe fn transform_output(
    tr: &Transform,
    g: &Geometry,
    mm: &[f32],
    a0: usize,
    rows: usize,
    out: SharedMut,
    img: usize,
    work: &mut [f32],
) {
    // SAFETY (both arms): the caller's contract is passed on.
    vectorized(
        #[inline(always)]
        || match tr.m {
            2 => unsafe { transform_output_tiles::<2>(tr, g, mm, a0, rows, out, img, work) },
            4 => unsafe { transform_output_tiles::<4>(tr, g, mm, a0, rows, out, img, work) },
            m => unreachable!("no F({m}, 3) transform"),
        },
    )
}

/// `transform_output` for tiles of side M.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
unsafe fn transform_output_tiles<const M: usize>(
    tr: &Transform,
    g: &Geometry,
    mm: &[f32],
    a0: usize,
    rows: usize,
    out: SharedMut,
    img: usize,
    work: &mut [f32],
) {
    let (m, t, tx) = (M, M + 2, g.tx);
    let nt = rows * tx;
    let (hor, ys) = work[..(t * m + m * m) * tx].split_at_mut(t * m * tx);
    for o in 0..g.co {
        let plane = img * g.co * g.ho * g.wo + o * g.ho * g.wo;
        for r in 0..rows {
            let tiles = |f: usize| mm[(f * g.co + o) * nt + r * tx..].as_ptr();
            // Horizontal: hor[k][q][b] = Σ_l Aᵀ[q][l]·M[k][l][b].
            for k in 0..t {
                for q in 0..m {
                    let dst = &mut hor[(k * m + q) * tx..][..tx];
                    combine(dst, &tr.at[q * t..(q + 1) * t], |l| tiles(k * t + l));
                }
            }
            // Vertical: Y[p][q][b] = Σ_k Aᵀ[p][k]·hor[k][q][b].
            for p in 0..m {
                for q in 0..m {
                    let dst = &mut ys[(p * m + q) * tx..][..tx];
                    combine(dst, &tr.at[p * t..(p + 1) * t], |k| {
                        hor[(k * m + q) * tx..].as_ptr()
                    });
                }
            }
            for p in 0..m {
                let oy = (a0 + r) * m + p;
                if oy >= g.ho {
                    break;
                }
                // SAFETY: row oy of plane `o` of image `img` is this task's (caller's contract).
                let row =
                    unsafe { std::slice::from_raw_parts_mut(out.at(plane + oy * g.wo), g.wo) };
                for q in 0..M {
                    row[q..]
                        .iter_mut()
                        .step_by(M)
                        .zip(&ys[(p * M + q) * tx..(p * M + q + 1) * tx])
                        .for_each(|(d, y)| *d = *y);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::conv_direct::tests::fill;
    use super::*;

    /// The definition, in f64.
    fn reference(
        x: &[f32],
        [n, c, h, w]: [usize; 4],
        wt: &[f32],
        co: usize,
        [py, px]: [usize; 2],
    ) -> (Vec<f64>, [usize; 2]) {
        let (ho, wo) = (h + 2 * py - 2, w + 2 * px - 2);
        let mut y = vec![0f64; n * co * ho * wo];
        for img in 0..n {
            for o in 0..co {
                for oy in 0..ho {
                    for ox in 0..wo {
                        let mut s = 0f64;
                        for i in 0..c {
                            for ky in 0..3 {
                                for kx in 0..3 {
                                    let (iy, ix) = (oy + ky, ox + kx);
                                    if iy < py || ix < px || iy - py >= h || ix - px >= w {
                                        continue;
                                    }
                                    s += x[((img * c + i) * h + iy - py) * w + ix - px] as f64
                                        * wt[((o * c + i) * 3 + ky) * 3 + kx] as f64;
                                }
                            }
                        }
                        y[((img * co + o) * ho + oy) * wo + ox] = s;
                    }
                }
            }
        }
        (y, [ho, wo])
    }

    fn check(tr: &'static Transform, shape: [usize; 4], co: usize, padding: [usize; 2], tol: f64) {
        let [n, c, h, w] = shape;
        let x = fill(n * c * h * w, 7 + h as u64);
        let wt = fill(co * c * 9, 11 + w as u64);
        let (want, [ho, wo]) = reference(&x, shape, &wt, co, padding);
        let p = Conv2dParams {
            padding,
            ..Default::default()
        };
        let got = conv2d(tr, &x, shape, &wt, co, p, [ho, wo]);
        assert_eq!(got.len(), want.len());
        // Errors relative to the scale of a sum of 9·c products of values in [−1, 1].
        let scale = (9.0 * c as f64).sqrt();
        for (k, (g, r)) in got.iter().zip(&want).enumerate() {
            assert!(
                ((*g as f64) - r).abs() <= tol * scale,
                "F({m}) {shape:?}→{co} pad {padding:?}: element {k}: {g} vs {r}",
                m = tr.m
            );
        }
    }

    /// The weight gradient's definition, in f64: dW[o][i][ky][kx] = Σ gout[o][y][x]·xpad[i][y + ky][x + kx].
    fn reference_weight_grad(
        x: &[f32],
        [n, c, h, w]: [usize; 4],
        gout: &[f32],
        co: usize,
        [py, px]: [usize; 2],
    ) -> Vec<f64> {
        let (ho, wo) = (h + 2 * py - 2, w + 2 * px - 2);
        let mut dw = vec![0f64; co * c * 9];
        for img in 0..n {
            for o in 0..co {
                for i in 0..c {
                    for ky in 0..3 {
                        for kx in 0..3 {
                            let mut s = 0f64;
                            for oy in 0..ho {
                                for ox in 0..wo {
                                    let (iy, ix) = (oy + ky, ox + kx);
                                    if iy < py || ix < px || iy - py >= h || ix - px >= w {
                                        continue;
                                    }
                                    s += x[((img * c + i) * h + iy - py) * w + ix - px] as f64
                                        * gout[((img * co + o) * ho + oy) * wo + ox] as f64;
                                }
                            }
                            dw[((o * c + i) * 3 + ky) * 3 + kx] += s;
                        }
                    }
                }
            }
        }
        dw
    }

    fn check_weight_grad(
        tr: &'static Transform,
        shape: [usize; 4],
        co: usize,
        padding: [usize; 2],
        tol: f64,
    ) {
        let [n, c, h, w] = shape;
        let (ho, wo) = (h + 2 * padding[0] - 2, w + 2 * padding[1] - 2);
        let x = fill(n * c * h * w, 3 + c as u64);
        let gout = fill(n * co * ho * wo, 5 + co as u64);
        let want = reference_weight_grad(&x, shape, &gout, co, padding);
        let p = Conv2dParams {
            padding,
            ..Default::default()
        };
        let got = conv2d_weight_grad(tr, &x, shape, &gout, co, p, [ho, wo]);
        assert_eq!(got.len(), want.len());
        let scale = ((n * ho * wo) as f64).sqrt();
        for (k, (g, r)) in got.iter().zip(&want).enumerate() {
            assert!(
                ((*g as f64) - r).abs() <= tol * scale,
                "F({m}) weight grad {shape:?}→{co} pad {padding:?}: element {k}: {g} vs {r}",
                m = tr.m
            );
        }
    }

    #[test]
    fn weight_grads_match_the_definition() {
        for (shape, co, pad) in [
            ([1, 3, 9, 11], 5, [0, 0]),
            ([2, 4, 10, 7], 3, [1, 1]),
            ([1, 17, 13, 21], 19, [2, 2]),
            ([3, 8, 6, 6], 8, [2, 0]),
            ([1, 16, 33, 40], 24, [1, 2]),
        ] {
            check_weight_grad(&F2, shape, co, pad, 2e-6);
            check_weight_grad(&F4, shape, co, pad, 2e-5);
        }
    }

    #[test]
    fn both_tile_sizes_match_the_definition() {
        // Odd and even sizes (partial last tiles), every padding, one and several images,
        // channel counts that are not multiples of a vector.
        for (shape, co, pad) in [
            ([1, 3, 9, 11], 5, [0, 0]),
            ([2, 4, 10, 7], 3, [1, 1]),
            ([1, 17, 13, 21], 19, [2, 2]),
            ([3, 8, 6, 6], 8, [2, 0]),
            ([1, 16, 33, 40], 24, [1, 2]),
        ] {
            check(&F2, shape, co, pad, 2e-6);
            check(&F4, shape, co, pad, 2e-5);
        }
    }
}
