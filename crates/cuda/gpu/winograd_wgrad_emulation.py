"""A check, without a GPU, of the Winograd weight gradient (crates/cuda/kernels/winograd.cu and
WinogradWgradProblem in gemm.cu, launched by `winograd_weight_grad` in crates/cuda/src/ops.rs).

It replays the kernels thread by thread on numpy arrays: the tile decoding (`winograd_tile`), the
windows each thread reads with their zero fill, the transforms written out as the kernels write
them (`winograd_bt`, `winograd_a`, `winograd_gt`), the layouts v[f][ci][t], e[f][o][t] and
m[f][o][ci], and the GEMM's z = f * splits + part decomposition with `gemm_plan`'s K chunks.
It checks
- the hand-written transforms against the CPU backend's F4 matrices (conv_winograd.rs);
- the result against the direct weight gradient, in float64 (to 1e-10: the algebra and indexing)
  and in float32 (the error the GPU test `cuda_winograd` allows for, relative to
  sum |x| |gy| over the same taps).
It mirrors the kernels by hand, so change both together. Run: python3 winograd_wgrad_emulation.py
(numpy only).
"""
import numpy as np

# The CPU backend's F(4x4, 3x3) (crates/tensor/src/cpu/conv_winograd.rs, `F4`).
BT = np.array([
    [4, 0, -5, 0, 1, 0],
    [0, -4, -4, 1, 1, 0],
    [0, 4, -4, -1, 1, 0],
    [0, -2, -1, 2, 1, 0],
    [0, 2, -1, -2, 1, 0],
    [0, 4, 0, -5, 0, 1],
], dtype=np.float64)
G = np.array([
    [1 / 4, 0, 0],
    [-1 / 6, -1 / 6, -1 / 6],
    [-1 / 6, 1 / 6, -1 / 6],
    [1 / 24, 1 / 12, 1 / 6],
    [1 / 24, -1 / 12, 1 / 6],
    [0, 0, 1],
], dtype=np.float64)
AT = np.array([
    [1, 1, 1, 1, 1, 0],
    [0, 1, -1, 2, -2, 0],
    [0, 1, 1, 4, 4, 0],
    [0, 1, -1, 8, -8, 1],
], dtype=np.float64)


# The kernels' transforms, vectorized over a leading axis of threads (last axis: the vector).
def winograd_bt(d, f):
    r = np.empty(d.shape[:-1] + (6,), dtype=d.dtype)
    r[..., 0] = f(4) * d[..., 0] - f(5) * d[..., 2] + d[..., 4]
    r[..., 1] = -f(4) * d[..., 1] - f(4) * d[..., 2] + d[..., 3] + d[..., 4]
    r[..., 2] = f(4) * d[..., 1] - f(4) * d[..., 2] - d[..., 3] + d[..., 4]
    r[..., 3] = -f(2) * d[..., 1] - d[..., 2] + f(2) * d[..., 3] + d[..., 4]
    r[..., 4] = f(2) * d[..., 1] - d[..., 2] - f(2) * d[..., 3] + d[..., 4]
    r[..., 5] = f(4) * d[..., 1] - f(5) * d[..., 3] + d[..., 5]
    return r


def winograd_a(e, f):
    even = e[..., 0] + e[..., 2]
    odd = e[..., 1] + e[..., 3]
    even4 = e[..., 0] + f(4) * e[..., 2]
    odd8 = f(2) * e[..., 1] + f(8) * e[..., 3]
    r = np.empty(e.shape[:-1] + (6,), dtype=e.dtype)
    r[..., 0] = e[..., 0]
    r[..., 1] = even + odd
    r[..., 2] = even - odd
    r[..., 3] = even4 + odd8
    r[..., 4] = even4 - odd8
    r[..., 5] = e[..., 3]
    return r


def winograd_gt(u, f):
    s12 = u[..., 1] + u[..., 2]
    d12 = u[..., 2] - u[..., 1]
    s34 = u[..., 3] + u[..., 4]
    d34 = u[..., 3] - u[..., 4]
    r = np.empty(u.shape[:-1] + (3,), dtype=u.dtype)
    r[..., 0] = f(0.25) * u[..., 0] - s12 * f(1 / 6) + s34 * f(1 / 24)
    r[..., 1] = d12 * f(1 / 6) + d34 * f(1 / 12)
    r[..., 2] = (s34 - s12) * f(1 / 6) + u[..., 5]
    return r


def check_transforms(rng):
    f = np.float64
    for _ in range(10):
        d = rng.standard_normal(6)
        assert np.allclose(winograd_bt(d[None], f)[0], BT @ d, atol=1e-12)
        e = rng.standard_normal(4)
        assert np.allclose(winograd_a(e[None], f)[0], AT.T @ e, atol=1e-12)
        u = rng.standard_normal(6)
        assert np.allclose(winograd_gt(u[None], f)[0], G.T @ u, atol=1e-12)


def tiles_of(n, ho, wo):
    return n * ((ho + 3) // 4) * ((wo + 3) // 4)


def winograd_tile(ho, wo, t):
    # winograd_tile: t -> (img, oy0, ox0)
    tw, th = (wo + 3) // 4, (ho + 3) // 4
    tx, rest = t % tw, t // tw
    return rest // th, (rest % th) * 4, tx * 4


def input_kernel(x, c, ho, wo, ph, pw, f):
    # tessera_winograd_wgrad_input: thread idx = ci * tiles + t.
    n, _, h, w = x.shape
    tiles = tiles_of(n, ho, wo)
    idx = np.arange(c * tiles)
    ci, t = idx // tiles, idx % tiles
    img, oy0, ox0 = winograd_tile(ho, wo, t)
    y0, x0 = oy0 - ph, ox0 - pw
    d = np.zeros((idx.size, 6, 6), dtype=x.dtype)
    for i in range(6):
        for j in range(6):
            y, xx = y0 + i, x0 + j
            ok = (y >= 0) & (y < h) & (xx >= 0) & (xx < w)
            d[ok, i, j] = x[img[ok], ci[ok], y[ok], xx[ok]]
    rows = winograd_bt(d, f)  # rows[:, i, b]
    v = np.full(36 * c * tiles, np.nan, dtype=x.dtype)
    for b in range(6):
        out = winograd_bt(rows[:, :, b], f)
        for a in range(6):
            v[((a * 6 + b) * c + ci) * tiles + t] = out[:, a]
    return v


def grad_kernel(gy, f):
    # tessera_winograd_wgrad_grad: thread idx = o * tiles + t.
    n, co, ho, wo = gy.shape
    tiles = tiles_of(n, ho, wo)
    idx = np.arange(co * tiles)
    o, t = idx // tiles, idx % tiles
    img, oy0, ox0 = winograd_tile(ho, wo, t)
    d = np.zeros((idx.size, 4, 4), dtype=gy.dtype)
    for i in range(4):
        for j in range(4):
            y, xx = oy0 + i, ox0 + j
            ok = (y < ho) & (xx < wo)
            d[ok, i, j] = gy[img[ok], o[ok], y[ok], xx[ok]]
    rows = winograd_a(d, f)
    e = np.full(36 * co * tiles, np.nan, dtype=gy.dtype)
    for b in range(6):
        out = winograd_a(rows[:, :, b], f)
        for a in range(6):
            e[((a * 6 + b) * co + o) * tiles + t] = out[:, a]
    return e


def gemm_kernel(e, v, co, c, tiles, splits, dtype):
    # z = f * splits + part (BlockRange, WinogradWgradProblem::freq), K chunks as gemm_plan cuts them.
    def ceil_div(a, b):
        return -(-a // b)
    k_chunk = max(ceil_div(ceil_div(tiles, splits), 16) * 16, 16)
    grid_z = 36 * ceil_div(tiles, k_chunk)
    splits = grid_z // 36
    m = np.zeros(36 * co * c, dtype=dtype)
    for z in range(grid_z):
        freq, part = z // splits, z % splits
        k0, k1 = (part * k_chunk, min(tiles, part * k_chunk + k_chunk)) if splits > 1 else (0, tiles)
        a = e[freq * co * tiles:(freq + 1) * co * tiles].reshape(co, tiles)[:, k0:k1]
        b = v[freq * c * tiles:(freq + 1) * c * tiles].reshape(c, tiles)[:, k0:k1]
        m[freq * co * c:(freq + 1) * co * c] += (a @ b.T).astype(dtype).ravel()
    return m


def weights_kernel(m, co, c, f):
    # tessera_winograd_wgrad_weights: thread oi = o * c + i.
    pairs = co * c
    oi = np.arange(pairs)
    cols = np.empty((pairs, 6, 3), dtype=m.dtype)
    for a in range(6):
        u = np.stack([m[(a * 6 + b) * pairs + oi] for b in range(6)], axis=-1)
        cols[:, a, :] = winograd_gt(u, f)
    dw = np.full(pairs * 9, np.nan, dtype=m.dtype)
    for s in range(3):
        out = winograd_gt(cols[:, :, s], f)
        for r in range(3):
            dw[oi * 9 + r * 3 + s] = out[:, r]
    return dw.reshape(co, c, 3, 3)


def direct_weight_grad(x, gy, ph, pw):
    n, c, h, w = x.shape
    _, co, ho, wo = gy.shape
    xp = np.zeros((n, c, h + 2 * ph + 2, w + 2 * pw + 2), dtype=x.dtype)
    xp[:, :, ph:ph + h, pw:pw + w] = x
    dw = np.zeros((co, c, 3, 3), dtype=x.dtype)
    for r in range(3):
        for s in range(3):
            win = xp[:, :, r:r + ho, s:s + wo]
            dw[:, :, r, s] = np.einsum('nohw,nchw->oc', gy, win)
    return dw


def winograd_weight_grad(x, gy, ph, pw, splits, dtype):
    f = dtype
    n, c, h, w = x.shape
    _, co, ho, wo = gy.shape
    tiles = tiles_of(n, ho, wo)
    v = input_kernel(x, c, ho, wo, ph, pw, f)
    e = grad_kernel(gy, f)
    assert not np.isnan(v).any() and not np.isnan(e).any(), "a transform left an element unwritten"
    m = gemm_kernel(e, v, co, c, tiles, splits, dtype)
    dw = weights_kernel(m, co, c, f)
    assert not np.isnan(dw).any()
    return dw


def main():
    rng = np.random.default_rng(7)
    check_transforms(rng)
    # (n, c, co, h, w, padding, K splits): odd sizes, partial tiles, padding 0-2, splits.
    cases = [
        (1, 3, 5, 11, 13, (1, 1), 1),
        (2, 4, 3, 9, 8, (0, 0), 2),
        (2, 5, 6, 12, 7, (2, 1), 3),
        (3, 2, 4, 16, 16, (1, 1), 4),
        (1, 6, 2, 5, 30, (1, 0), 1),
        (2, 8, 8, 40, 36, (1, 1), 3),
    ]
    worst32 = 0.0
    for n, c, co, h, w, (ph, pw), splits in cases:
        ho, wo = h + 2 * ph - 2, w + 2 * pw - 2
        x = rng.standard_normal((n, c, h, w))
        gy = rng.standard_normal((n, co, ho, wo))
        ref = direct_weight_grad(x, gy, ph, pw)
        got = winograd_weight_grad(x, gy, ph, pw, splits, np.float64)
        err = np.abs(got - ref).max()
        assert err < 1e-10 * (1 + np.abs(ref).max()), (n, c, co, h, w, ph, pw, err)
        got32 = winograd_weight_grad(x.astype(np.float32), gy.astype(np.float32), ph, pw, splits, np.float32)
        scale = direct_weight_grad(np.abs(x), np.abs(gy), ph, pw)
        rel = (np.abs(got32.astype(np.float64) - ref) / scale).max()
        worst32 = max(worst32, rel)
        print(f"n{n} c{c} co{co} {h}x{w} pad{ph},{pw} splits {splits}: float64 max error {err:.1e}, "
              f"float32 max |error| / sum|x||gy| {rel:.1e}")
    print(f"worst float32 error relative to sum|x||gy|: {worst32:.1e}")
    print("ok: the Winograd weight gradient's kernels, replayed, equal the direct sum")


if __name__ == "__main__":
    main()
