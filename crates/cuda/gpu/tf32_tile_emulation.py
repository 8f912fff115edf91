"""A check, without a GPU, of the index arithmetic of gemm_tile_tf32 (crates/cuda/kernels/gemm.cu).

It replays one block lane by lane: the fragment loads from shared memory (As[k][m], Bs[k][n]), each
mma.sync.m16n8k8 through the PTX ISA's fragment layout for .tf32 (A: (g, q), (g + 8, q),
(g, q + 4), (g + 8, q + 4); B: (q, g), (q + 4, g); C: (g, 2q), (g, 2q + 1), (g + 8, 2q),
(g + 8, 2q + 1), with g = lane / 4, q = lane % 4), and the epilogue's (m, n) of each accumulator;
then checks that every element of C is written once and equals A·B, for the three tile shapes.
It mirrors the kernel by hand, so change both together. Run: python3 tf32_tile_emulation.py
(numpy only). The GPU test `cuda_tf32` checks the kernel itself against the CPU.
"""
import numpy as np


def mma_from_fragments(a_regs, b_regs, c_regs):
    # a_regs[lane][4], b_regs[lane][2], c_regs[lane][4] -> new c_regs per the PTX ISA layout.
    A = np.zeros((16, 8)); B = np.zeros((8, 8)); C = np.zeros((16, 8))
    for lane in range(32):
        g, q = lane // 4, lane % 4
        A[g, q], A[g + 8, q], A[g, q + 4], A[g + 8, q + 4] = a_regs[lane]
        B[q, g], B[q + 4, g] = b_regs[lane]
        C[g, 2 * q], C[g, 2 * q + 1], C[g + 8, 2 * q], C[g + 8, 2 * q + 1] = c_regs[lane]
    D = A @ B + C
    out = []
    for lane in range(32):
        g, q = lane // 4, lane % 4
        out.append([D[g, 2 * q], D[g, 2 * q + 1], D[g + 8, 2 * q], D[g + 8, 2 * q + 1]])
    return out


def block(BM, BN, BK, K, rng):
    WARPS_N = 4; WM = BM // 2; WN = BN // WARPS_N; MI = WM // 16; NI = WN // 8
    A = rng.standard_normal((BM, K)); B = rng.standard_normal((K, BN))
    C = np.full((BM, BN), np.nan)
    # acc[warp][lane][i][j][v]
    acc = np.zeros((8, 32, MI, NI, 4))
    for k0 in range(0, K, BK):
        As = A[:, k0:k0 + BK].T.copy()  # As[k][m]
        Bs = B[k0:k0 + BK, :].copy()    # Bs[k][n]
        for warp in range(8):
            wm0 = (warp // WARPS_N) * WM; wn0 = (warp % WARPS_N) * WN
            for kk in range(0, BK, 8):
                a = np.zeros((32, MI, 4)); b = np.zeros((32, NI, 2))
                for lane in range(32):
                    g, q = lane // 4, lane % 4
                    for i in range(MI):
                        m = wm0 + i * 16 + g
                        a[lane, i] = [As[kk + q][m], As[kk + q][m + 8], As[kk + q + 4][m], As[kk + q + 4][m + 8]]
                    for j in range(NI):
                        n = wn0 + j * 8 + g
                        b[lane, j] = [Bs[kk + q][n], Bs[kk + q + 4][n]]
                for i in range(MI):
                    for j in range(NI):
                        new = mma_from_fragments(a[:, i], b[:, j], acc[warp, :, i, j])
                        acc[warp, :, i, j] = new
    for warp in range(8):
        wm0 = (warp // WARPS_N) * WM; wn0 = (warp % WARPS_N) * WN
        for lane in range(32):
            g, q = lane // 4, lane % 4
            for i in range(MI):
                for v in range(4):
                    m = wm0 + i * 16 + g + (v // 2) * 8
                    for j in range(NI):
                        n = wn0 + j * 8 + 2 * q + v % 2
                        assert np.isnan(C[m, n]), ("written twice", m, n)
                        C[m, n] = acc[warp, lane, i, j, v]
    assert not np.isnan(C).any(), "some outputs never written"
    err = np.abs(C - A @ B).max()
    print(f"BM={BM} BN={BN} BK={BK} K={K}: max error {err:.2e}")
    assert err < 1e-9


rng = np.random.default_rng(0)
for BM, BN, BK in [(128, 128, 8), (64, 64, 16), (32, 128, 16)]:
    block(BM, BN, BK, 2 * BK, rng)
