// Tiled SGEMM shared by matmul and the three convolutions (implicit GEMM: the im2col matrix is
// never formed; each tile loader computes input coordinates on the fly).
//
// C[m, n] = sum_k A[m, k] · B[k, n]. A block computes a BM×BN tile of C with (BM/TM)·(BN/TN)
// threads, each holding a TM×TN accumulator; K advances BK at a time through shared memory, and
// the next tile's global loads are issued into registers before the current tile is consumed.
// Thread (ty, tx) owns rows ty + i·(BM/TM) and columns tx + j·(BN/TN): shared-memory reads are
// broadcasts or consecutive words, and stores to C are coalesced along n.
// gridDim.z splits K (conv weight gradients reduce over N·Ho·Wo) or indexes the matmul batch;
// with more than one K split the partial tiles are added atomically into a zeroed output.

struct ConvGeom {
    int n, c, h, w;      // input
    int co, kh, kw;      // weight [co, c, kh, kw]
    int ho, wo;          // output
    int sh, sw, ph, pw, dh, dw;
};

// ---- problem definitions: size, A and B element loaders, C store ----

// Batched row-major matmul: A [batch, M, K], B [batch or 1, K, N], C [batch, M, N].
struct MatmulProblem {
    const float* a; const float* b; float* c;
    int M, N, K; int b_batched;
    __device__ int m_size() const { return M; }
    __device__ int n_size() const { return N; }
    __device__ int k_size() const { return K; }
    __device__ float load_a(int m, int k) const {
        return a[((size_t)blockIdx.z * M + m) * K + k];
    }
    __device__ float load_b(int k, int n) const {
        return b[((b_batched ? (size_t)blockIdx.z : 0) * K + k) * N + n];
    }
    __device__ void store(int m, int n, float v, bool atomic) const {
        float* p = &c[((size_t)blockIdx.z * M + m) * N + n];
        if (atomic) atomicAdd(p, v); else *p = v;
    }
    static const bool B_K_FASTEST = false;
    __device__ bool split_k() const { return false; }
};

// Forward: M = co, N = n·ho·wo (output pixels), K = c·kh·kw.
struct ConvFwdProblem {
    const float* x; const float* wt; float* y; ConvGeom g;
    __device__ int m_size() const { return g.co; }
    __device__ int n_size() const { return g.n * g.ho * g.wo; }
    __device__ int k_size() const { return g.c * g.kh * g.kw; }
    __device__ float load_a(int m, int k) const { return wt[(size_t)m * k_size() + k]; }
    __device__ float load_b(int k, int p) const {
        int khw = g.kh * g.kw, ci = k / khw, r = k - ci * khw, ky = r / g.kw, kx = r - ky * g.kw;
        int hw = g.ho * g.wo, img = p / hw, pix = p - img * hw, oy = pix / g.wo, ox = pix - oy * g.wo;
        int iy = oy * g.sh - g.ph + ky * g.dh, ix = ox * g.sw - g.pw + kx * g.dw;
        if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) return 0.0f;
        return x[(((size_t)img * g.c + ci) * g.h + iy) * g.w + ix];
    }
    __device__ void store(int m, int p, float v, bool atomic) const {
        int hw = g.ho * g.wo, img = p / hw, pix = p - img * hw;
        float* q = &y[((size_t)img * g.co + m) * hw + pix];
        if (atomic) atomicAdd(q, v); else *q = v;
    }
    static const bool B_K_FASTEST = false;
    __device__ bool split_k() const { return true; }
};

// Input gradient (transposed conv): M = c, N = n·h·w (input pixels), K = co·kh·kw.
// dx[img, ci, iy, ix] = sum over (o, ky, kx) of w[o, ci, ky, kx] · g[img, o, oy, ox] where
// iy = oy·sh − ph + ky·dh (terms whose oy is not a whole in-range number vanish).
struct ConvDgradProblem {
    const float* gy; const float* wt; float* dx; ConvGeom g;
    __device__ int m_size() const { return g.c; }
    __device__ int n_size() const { return g.n * g.h * g.w; }
    __device__ int k_size() const { return g.co * g.kh * g.kw; }
    __device__ float load_a(int m, int k) const {
        int khw = g.kh * g.kw, o = k / khw, r = k - o * khw;
        return wt[((size_t)o * g.c + m) * khw + r];
    }
    __device__ float load_b(int k, int p) const {
        int khw = g.kh * g.kw, o = k / khw, r = k - o * khw, ky = r / g.kw, kx = r - ky * g.kw;
        int hw = g.h * g.w, img = p / hw, pix = p - img * hw, iy = pix / g.w, ix = pix - iy * g.w;
        int ty = iy + g.ph - ky * g.dh, tx = ix + g.pw - kx * g.dw;
        if (ty < 0 || tx < 0) return 0.0f;
        int oy = ty / g.sh, ox = tx / g.sw;
        if (oy * g.sh != ty || ox * g.sw != tx || oy >= g.ho || ox >= g.wo) return 0.0f;
        return gy[(((size_t)img * g.co + o) * g.ho + oy) * g.wo + ox];
    }
    __device__ void store(int m, int p, float v, bool atomic) const {
        int hw = g.h * g.w, img = p / hw, pix = p - img * hw;
        float* q = &dx[((size_t)img * g.c + m) * hw + pix];
        if (atomic) atomicAdd(q, v); else *q = v;
    }
    static const bool B_K_FASTEST = false;
    __device__ bool split_k() const { return true; }
};

// Weight gradient: M = co, N = c·kh·kw, K = n·ho·wo.
struct ConvWgradProblem {
    const float* x; const float* gy; float* dw; ConvGeom g;
    __device__ int m_size() const { return g.co; }
    __device__ int n_size() const { return g.c * g.kh * g.kw; }
    __device__ int k_size() const { return g.n * g.ho * g.wo; }
    __device__ float load_a(int m, int k) const {
        int hw = g.ho * g.wo, img = k / hw, pix = k - img * hw;
        return gy[((size_t)img * g.co + m) * hw + pix];
    }
    __device__ float load_b(int k, int j) const {
        int khw = g.kh * g.kw, ci = j / khw, r = j - ci * khw, ky = r / g.kw, kx = r - ky * g.kw;
        int hw = g.ho * g.wo, img = k / hw, pix = k - img * hw, oy = pix / g.wo, ox = pix - oy * g.wo;
        int iy = oy * g.sh - g.ph + ky * g.dh, ix = ox * g.sw - g.pw + kx * g.dw;
        if (iy < 0 || iy >= g.h || ix < 0 || ix >= g.w) return 0.0f;
        return x[(((size_t)img * g.c + ci) * g.h + iy) * g.w + ix];
    }
    __device__ void store(int m, int j, float v, bool atomic) const {
        float* q = &dw[(size_t)m * n_size() + j];
        if (atomic) atomicAdd(q, v); else *q = v;
    }
    // Consecutive threads walk K (output pixels, contiguous in x) when loading B.
    static const bool B_K_FASTEST = true;
    __device__ bool split_k() const { return true; }
};

template <int BM, int BN, int BK, int TM, int TN, class P>
__device__ __forceinline__ void gemm_tile(const P& prob, int k_chunk) {
    constexpr int TY = BM / TM, TX = BN / TN, NT = TY * TX;
    constexpr int A_PER = BM * BK / NT, B_PER = BK * BN / NT;
    constexpr int BPAD = P::B_K_FASTEST ? 4 : 0;
    // +4 columns: the transposing stores into As (k fastest across threads) hit distinct banks.
    __shared__ float As[BK][BM + 4];
    __shared__ float Bs[BK][BN + BPAD];
    const int tid = threadIdx.x, tx = tid % TX, ty = tid / TX;
    const int M = prob.m_size(), N = prob.n_size(), K = prob.k_size();
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    const bool split = prob.split_k() && gridDim.z > 1;
    const int k_begin = split ? blockIdx.z * k_chunk : 0;
    const int k_end = split ? min(K, k_begin + k_chunk) : K;

    float acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;

    float ra[A_PER], rb[B_PER];
    auto fetch = [&](int k0) {
#pragma unroll
        for (int e = 0; e < A_PER; ++e) {
            int idx = tid + e * NT, mm = idx / BK, kk = idx % BK;
            int m = m0 + mm, k = k0 + kk;
            ra[e] = (m < M && k < k_end) ? prob.load_a(m, k) : 0.0f;
        }
#pragma unroll
        for (int e = 0; e < B_PER; ++e) {
            int idx = tid + e * NT;
            int kk = P::B_K_FASTEST ? idx % BK : idx / BN;
            int nn = P::B_K_FASTEST ? idx / BK : idx % BN;
            int n = n0 + nn, k = k0 + kk;
            rb[e] = (n < N && k < k_end) ? prob.load_b(k, n) : 0.0f;
        }
    };
    auto stash = [&]() {
#pragma unroll
        for (int e = 0; e < A_PER; ++e) {
            int idx = tid + e * NT;
            As[idx % BK][idx / BK] = ra[e];
        }
#pragma unroll
        for (int e = 0; e < B_PER; ++e) {
            int idx = tid + e * NT;
            int kk = P::B_K_FASTEST ? idx % BK : idx / BN;
            int nn = P::B_K_FASTEST ? idx / BK : idx % BN;
            Bs[kk][nn] = rb[e];
        }
    };

    if (k_begin < k_end) fetch(k_begin);
    for (int k0 = k_begin; k0 < k_end; k0 += BK) {
        __syncthreads();
        stash();
        __syncthreads();
        if (k0 + BK < k_end) fetch(k0 + BK);
#pragma unroll
        for (int kk = 0; kk < BK; ++kk) {
            float fa[TM], fb[TN];
#pragma unroll
            for (int i = 0; i < TM; ++i) fa[i] = As[kk][ty + i * TY];
#pragma unroll
            for (int j = 0; j < TN; ++j) fb[j] = Bs[kk][tx + j * TX];
#pragma unroll
            for (int i = 0; i < TM; ++i)
#pragma unroll
                for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(fa[i], fb[j], acc[i][j]);
        }
    }
#pragma unroll
    for (int i = 0; i < TM; ++i) {
        int m = m0 + ty + i * TY;
        if (m >= M) continue;
#pragma unroll
        for (int j = 0; j < TN; ++j) {
            int n = n0 + tx + j * TX;
            if (n < N) prob.store(m, n, acc[i][j], split);
        }
    }
}

// Two tile shapes per problem: 128×128 (8×8 per thread) for large problems, 64×64 (4×4) when
// the large tile would leave most of the GPU idle. Both use 256 threads.
#define GEMM_KERNELS(NAME, PROBLEM, PARAMS, INIT)                                                  \
    extern "C" __global__ void __launch_bounds__(256) NAME##_128 PARAMS {                           \
        PROBLEM prob = INIT;                                                                       \
        gemm_tile<128, 128, 8, 8, 8>(prob, k_chunk);                                               \
    }                                                                                              \
    extern "C" __global__ void __launch_bounds__(256) NAME##_64 PARAMS {                            \
        PROBLEM prob = INIT;                                                                       \
        gemm_tile<64, 64, 16, 4, 4>(prob, k_chunk);                                                \
    }

GEMM_KERNELS(tessera_matmul, MatmulProblem,
             (float* c, const float* a, const float* b, int M, int N, int K, int b_batched, int k_chunk),
             (MatmulProblem{a, b, c, M, N, K, b_batched}))
GEMM_KERNELS(tessera_conv2d_fwd, ConvFwdProblem,
             (float* y, const float* x, const float* wt, ConvGeom g, int k_chunk),
             (ConvFwdProblem{x, wt, y, g}))
GEMM_KERNELS(tessera_conv2d_dgrad, ConvDgradProblem,
             (float* dx, const float* gy, const float* wt, ConvGeom g, int k_chunk),
             (ConvDgradProblem{gy, wt, dx, g}))
GEMM_KERNELS(tessera_conv2d_wgrad, ConvWgradProblem,
             (float* dw, const float* x, const float* gy, ConvGeom g, int k_chunk),
             (ConvWgradProblem{x, gy, dw, g}))
