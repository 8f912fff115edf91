//! The one place tessera calls the `gemm` crate (AVX-512 kernels through its `x86-v4` feature,
//! chosen at run time by CPU-feature dispatch inside `gemm`).

/// dst ← (accumulate ? dst : 0) + lhs·rhs for an m×k `lhs` and a k×n `rhs`.
///
/// Each matrix is given by a pointer and (row stride, column stride) in elements, so transposes
/// are free. `parallel` lets `gemm` split the work over rayon's threads; callers that already run
/// inside a rayon task pass `false`.
///
/// # Safety
/// For every i < m, j < n, l < k the addresses `lhs + i·lhs_rs + l·lhs_cs`, `rhs + l·rhs_rs + j·rhs_cs`
/// must be readable and `dst + i·dst_rs + j·dst_cs` writable; `dst` must not alias `lhs` or `rhs`,
/// and no other thread may touch the written elements during the call.
#[allow(clippy::too_many_arguments)]
pub(crate) unsafe fn gemm_f32(
    m: usize,
    n: usize,
    k: usize,
    dst: *mut f32,
    dst_rs: isize,
    dst_cs: isize,
    accumulate: bool,
    lhs: *const f32,
    lhs_rs: isize,
    lhs_cs: isize,
    rhs: *const f32,
    rhs_rs: isize,
    rhs_cs: isize,
    parallel: bool,
) {
    if m == 0 || n == 0 {
        return;
    }
    let par = if parallel && m * n * k >= 1 << 18 {
        gemm::Parallelism::Rayon(0)
    } else {
        gemm::Parallelism::None
    };
    unsafe {
        gemm::gemm(
            m, n, k, dst, dst_cs, dst_rs, accumulate, lhs, lhs_cs, lhs_rs, rhs, rhs_cs, rhs_rs,
            1.0f32, 1.0f32, false, false, false, par,
        )
    }
}
