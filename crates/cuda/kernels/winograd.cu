// Weight gradient of a 3×3, stride-1, undilated convolution by Winograd's F(4×4, 3×3) (Lavin &
// Gray, 2016), the same transforms as the CPU backend (interpolation points 0, ±1, ±2, ∞).
//
// The forward computes each 4×4 output tile as Aᵀ[(G w Gᵀ) ⊙ (Bᵀ d B)]A from the 6×6 input
// window d under it. Its adjoint in w gives the weight gradient as a sum over output tiles:
//   dW[o][i] = Gᵀ [ Σ_tiles (A e Aᵀ)[o] ⊙ (Bᵀ d B)[i] ] G
// where e is the 4×4 output-gradient tile of channel o (zero beyond the output) and d the 6×6
// input window of channel i (zero outside the input). The sum is, for each of the 36
// frequencies f = 6a + b, a GEMM over tiles: M[f][o][i] = Σ_t E[f][o][t]·V[f][i][t]. That is
// 36 products per tile and channel pair where the direct sum takes 16·9 = 144.
//
// Three kernels here and the batched GEMM `tessera_winograd_wgrad_gemm_*` in gemm.cu:
// 1. `tessera_winograd_wgrad_input`: V[f][i][t] = (Bᵀ d B)[f]
// 2. `tessera_winograd_wgrad_grad`: E[f][o][t] = (A e Aᵀ)[f]
// 3. the GEMM: M[f][o][i]
// 4. `tessera_winograd_wgrad_weights`: dW[o][i][r][s] = (Gᵀ M[·][o][i] G)[r][s]
// Tiles t = (image, tile row, tile column), row-major, contiguous: consecutive threads handle
// consecutive tiles, so every transform store is coalesced and the GEMM reads K contiguously.

#define WINOGRAD_T 6
#define WINOGRAD_FREQS 36

// Bᵀ·d for one 6-vector (the input transform).
__device__ __forceinline__ void winograd_bt(float (&r)[6], const float (&d)[6]) {
    r[0] = 4.0f * d[0] - 5.0f * d[2] + d[4];
    r[1] = -4.0f * d[1] - 4.0f * d[2] + d[3] + d[4];
    r[2] = 4.0f * d[1] - 4.0f * d[2] - d[3] + d[4];
    r[3] = -2.0f * d[1] - d[2] + 2.0f * d[3] + d[4];
    r[4] = 2.0f * d[1] - d[2] - 2.0f * d[3] + d[4];
    r[5] = 4.0f * d[1] - 5.0f * d[3] + d[5];
}

// A·e for one 4-vector (the output-gradient transform, the adjoint of the forward's Aᵀ·y).
__device__ __forceinline__ void winograd_a(float (&r)[6], const float (&e)[4]) {
    const float even = e[0] + e[2], odd = e[1] + e[3];
    const float even4 = e[0] + 4.0f * e[2], odd8 = 2.0f * e[1] + 8.0f * e[3];
    r[0] = e[0];
    r[1] = even + odd;
    r[2] = even - odd;
    r[3] = even4 + odd8;
    r[4] = even4 - odd8;
    r[5] = e[3];
}

// Gᵀ·u for one 6-vector (the adjoint of the forward's kernel transform G·w).
__device__ __forceinline__ void winograd_gt(float (&r)[3], const float (&u)[6]) {
    const float s12 = u[1] + u[2], d12 = u[2] - u[1], s34 = u[3] + u[4], d34 = u[3] - u[4];
    r[0] = 0.25f * u[0] - s12 * (1.0f / 6.0f) + s34 * (1.0f / 24.0f);
    r[1] = d12 * (1.0f / 6.0f) + d34 * (1.0f / 12.0f);
    r[2] = (s34 - s12) * (1.0f / 6.0f) + u[5];
}

// The position of tile t: its image and the top-left output pixel it covers.
__device__ __forceinline__ void winograd_tile(const ConvGeom& g, unsigned t, int& img, int& oy0, int& ox0) {
    const int tw = (g.wo + 3) / 4, th = (g.ho + 3) / 4;
    const int tx = (int)(t % (unsigned)tw), rest = (int)(t / (unsigned)tw);
    oy0 = (rest % th) * 4;
    ox0 = tx * 4;
    img = rest / th;
}

__device__ __forceinline__ unsigned winograd_tiles(const ConvGeom& g) {
    return (unsigned)(g.n * ((g.ho + 3) / 4) * ((g.wo + 3) / 4));
}

// The second half of a 2-D transform: applies `transform` (N → 6) down each column b of
// rows[N][6] and stores result (a, b) at out[((6a + b)·channels + ch)·tiles + t].
template <int N, class F>
__device__ __forceinline__ void store_columns(float* out, const float (&rows)[N][6], int channels, unsigned ch,
                                              unsigned tiles, unsigned t, F transform) {
#pragma unroll
    for (int b = 0; b < 6; ++b) {
        float col[N], res[6];
#pragma unroll
        for (int i = 0; i < N; ++i) col[i] = rows[i][b];
        transform(res, col);
#pragma unroll
        for (int a = 0; a < 6; ++a) out[((size_t)(a * 6 + b) * channels + ch) * tiles + t] = res[a];
    }
}

// v [36, c, tiles]: one thread per (input channel, tile). Reads the 6×6 window at
// (oy0 − ph, ox0 − pw) of x [n, c, h, w].
extern "C" __global__ void tessera_winograd_wgrad_input(float* v, const float* x, ConvGeom g) {
    const unsigned tiles = winograd_tiles(g), total = (unsigned)g.c * tiles;
    GRID_LOOP(idx, total) {
        const unsigned ci = idx / tiles, t = idx - ci * tiles;
        int img, oy0, ox0;
        winograd_tile(g, t, img, oy0, ox0);
        const int y0 = oy0 - g.ph, x0 = ox0 - g.pw;
        const float* plane = x + ((size_t)img * g.c + ci) * g.h * g.w;
        float rows[6][6];
#pragma unroll
        for (int i = 0; i < 6; ++i) {
            const int y = y0 + i;
            const bool y_in = y >= 0 && y < g.h;
            float d[6];
#pragma unroll
            for (int j = 0; j < 6; ++j) {
                const int xx = x0 + j;
                d[j] = y_in && xx >= 0 && xx < g.w ? plane[(size_t)y * g.w + xx] : 0.0f;
            }
            winograd_bt(rows[i], d);  // rows[i][b] = (Bᵀ d[i][·])[b]
        }
        store_columns<6>(v, rows, g.c, ci, tiles, t, [](float (&r)[6], const float (&c)[6]) { winograd_bt(r, c); });
    }
}

// e [36, co, tiles]: one thread per (output channel, tile). Reads the 4×4 tile of gy [n, co, ho, wo].
extern "C" __global__ void tessera_winograd_wgrad_grad(float* e, const float* gy, ConvGeom g) {
    const unsigned tiles = winograd_tiles(g), total = (unsigned)g.co * tiles;
    GRID_LOOP(idx, total) {
        const unsigned o = idx / tiles, t = idx - o * tiles;
        int img, oy0, ox0;
        winograd_tile(g, t, img, oy0, ox0);
        const float* plane = gy + ((size_t)img * g.co + o) * g.ho * g.wo;
        float rows[4][6];
#pragma unroll
        for (int i = 0; i < 4; ++i) {
            const int y = oy0 + i;
            float d[4];
#pragma unroll
            for (int j = 0; j < 4; ++j) {
                const int xx = ox0 + j;
                d[j] = y < g.ho && xx < g.wo ? plane[(size_t)y * g.wo + xx] : 0.0f;
            }
            winograd_a(rows[i], d);  // rows[i][b] = (A e[i][·])[b]
        }
        store_columns<4>(e, rows, g.co, o, tiles, t, [](float (&r)[6], const float (&c)[4]) { winograd_a(r, c); });
    }
}

// dw [co, c, 3, 3] from m [36, co, c]: one thread per (output, input) channel pair.
extern "C" __global__ void tessera_winograd_wgrad_weights(float* dw, const float* m, ConvGeom g) {
    const unsigned pairs = (unsigned)g.co * (unsigned)g.c;
    GRID_LOOP(oi, pairs) {
        float cols[6][3];
#pragma unroll
        for (int a = 0; a < 6; ++a) {
            float u[6];
#pragma unroll
            for (int b = 0; b < 6; ++b) u[b] = m[(size_t)(a * 6 + b) * pairs + oi];
            winograd_gt(cols[a], u);  // cols[a][s] = (Gᵀ M[a][·])[s]
        }
#pragma unroll
        for (int s = 0; s < 3; ++s) {
            float u[6], out[3];
#pragma unroll
            for (int a = 0; a < 6; ++a) u[a] = cols[a][s];
            winograd_gt(out, u);
#pragma unroll
            for (int r = 0; r < 3; ++r) dw[(size_t)oi * 9 + r * 3 + s] = out[r];
        }
    }
}
