// Tiled SGEMM shared by matmul and the three convolutions (implicit GEMM: the im2col matrix is
// never formed; each tile loader computes input coordinates on the fly).
//
// C[m, n] = sum_k A[m, k] · B[k, n]. A block computes a BM×BN tile of C with (BM/TM)·(BN/TN)
// = 256 threads, each holding a TM×TN accumulator; K advances BK at a time through shared
// memory, and the next tile's global loads are issued into registers before the current tile is
// consumed. Thread (ty, tx) owns rows {h·BM/2 + ty·TM/2 + v} and columns {h·BN/2 + tx·TN/2 + v}
// (h ∈ {0, 1}, v < TM/2): its fragments are two aligned vector reads from shared memory.
//
// Every load slot of a thread keeps the same row (A) or column (B) for the whole K loop and
// advances its k by BK per step, so each problem's loader decomposes its fixed coordinate once
// and then walks k with carries (no divisions inside the loop).
// gridDim.z splits K (weight gradients reduce over N·Ho·Wo; also small-output convolutions) or
// indexes the matmul batch; with more than one K split the partial tiles are added atomically
// into a zeroed output.

struct ConvGeom {
    int n, c, h, w;      // input
    int co, kh, kw;      // weight [co, c, kh, kw]
    int ho, wo;          // output
    int sh, sw, ph, pw, dh, dw;
};

// A mixed-radix counter over (hi, mid, lo) digits with radices (—, mid_n, lo_n), advanced by a
// fixed step whose digits are each below their radix (so every carry is 0 or 1).
struct Digits3 {
    int hi, mid, lo;
    __device__ void init(int value, int mid_n, int lo_n) {
        lo = value % lo_n;
        value /= lo_n;
        mid = value % mid_n;
        hi = value / mid_n;
    }
    __device__ void add(const Digits3& step, int mid_n, int lo_n) {
        lo += step.lo;
        int carry = lo >= lo_n;
        lo -= carry * lo_n;
        mid += step.mid + carry;
        carry = mid >= mid_n;
        mid -= carry * mid_n;
        hi += step.hi + carry;
    }
};

// ---- problems: size, then a per-slot A walker (fixed m) and B walker (fixed n) over k ----

// Batched row-major matmul: A [batch, M, K], B [batch or 1, K, N], C [batch, M, N].
struct MatmulProblem {
    const float* a; const float* b; float* c;
    int M, N, K; int b_batched;
    static const bool B_K_FASTEST = false;
    static const bool SPLIT_K = false;
    __device__ int m_size() const { return M; }
    __device__ int n_size() const { return N; }
    __device__ int k_size() const { return K; }
    struct AWalk {
        const float* p; bool ok;
        __device__ void init(const MatmulProblem& P, int m, int k, int) {
            ok = m < P.M;
            p = P.a + ((size_t)blockIdx.z * P.M + (ok ? m : 0)) * P.K + k;
        }
        __device__ float load(const MatmulProblem&, bool k_ok) const { return ok && k_ok ? *p : 0.0f; }
        __device__ void step(const MatmulProblem&, int bk) { p += bk; }
    };
    struct BWalk {
        const float* p; bool ok;
        __device__ void init(const MatmulProblem& P, int k, int n, int) {
            ok = n < P.N;
            p = P.b + ((P.b_batched ? (size_t)blockIdx.z : 0) * P.K + k) * P.N + (ok ? n : 0);
        }
        __device__ float load(const MatmulProblem&, bool k_ok) const { return ok && k_ok ? *p : 0.0f; }
        __device__ void step(const MatmulProblem& P, int bk) { p += (size_t)bk * P.N; }
    };
    __device__ void store(int m, int n, float v, bool atomic) const {
        float* q = &c[((size_t)blockIdx.z * M + m) * N + n];
        if (atomic) atomicAdd(q, v); else *q = v;
    }
};

// Forward: M = co, N = n·ho·wo (output pixels), K = c·kh·kw as (ci, ky, kx).
struct ConvFwdProblem {
    const float* x; const float* wt; float* y; ConvGeom g;
    static const bool B_K_FASTEST = false;
    static const bool SPLIT_K = true;
    __device__ int m_size() const { return g.co; }
    __device__ int n_size() const { return g.n * g.ho * g.wo; }
    __device__ int k_size() const { return g.c * g.kh * g.kw; }
    struct AWalk {
        const float* p; bool ok;
        __device__ void init(const ConvFwdProblem& P, int m, int k, int) {
            ok = m < P.g.co;
            p = P.wt + (size_t)(ok ? m : 0) * P.k_size() + k;
        }
        __device__ float load(const ConvFwdProblem&, bool k_ok) const { return ok && k_ok ? *p : 0.0f; }
        __device__ void step(const ConvFwdProblem&, int bk) { p += bk; }
    };
    struct BWalk {
        const float* img; int iy0, ix0; bool ok;
        Digits3 k, k_step;  // (ci, ky, kx)
        __device__ void init(const ConvFwdProblem& P, int k0, int n, int bk) {
            const ConvGeom& g = P.g;
            ok = n < P.n_size();
            int hw = g.ho * g.wo, nn = ok ? n : 0, im = nn / hw, pix = nn - im * hw;
            int oy = pix / g.wo, ox = pix - oy * g.wo;
            iy0 = oy * g.sh - g.ph;
            ix0 = ox * g.sw - g.pw;
            img = P.x + (size_t)im * g.c * g.h * g.w;
            k.init(k0, g.kh, g.kw);
            k_step.init(bk, g.kh, g.kw);
        }
        __device__ float load(const ConvFwdProblem& P, bool k_ok) const {
            const ConvGeom& g = P.g;
            int iy = iy0 + k.mid * g.dh, ix = ix0 + k.lo * g.dw;
            bool in = ok && k_ok && iy >= 0 && iy < g.h && ix >= 0 && ix < g.w;
            return in ? img[((size_t)k.hi * g.h + iy) * g.w + ix] : 0.0f;
        }
        __device__ void step(const ConvFwdProblem& P, int) { k.add(k_step, P.g.kh, P.g.kw); }
    };
    __device__ void store(int m, int p, float v, bool atomic) const {
        int hw = g.ho * g.wo, im = p / hw, pix = p - im * hw;
        float* q = &y[((size_t)im * g.co + m) * hw + pix];
        if (atomic) atomicAdd(q, v); else *q = v;
    }
};

// Input gradient (transposed conv): M = c, N = n·h·w (input pixels), K = co·kh·kw as (o, ky, kx).
// dx[img, ci, iy, ix] = sum over (o, ky, kx) of w[o, ci, ky, kx] · g[img, o, oy, ox] where
// iy = oy·sh − ph + ky·dh (terms whose oy is not a whole in-range number vanish).
struct ConvDgradProblem {
    const float* gy; const float* wt; float* dx; ConvGeom g;
    static const bool B_K_FASTEST = false;
    static const bool SPLIT_K = true;
    __device__ int m_size() const { return g.c; }
    __device__ int n_size() const { return g.n * g.h * g.w; }
    __device__ int k_size() const { return g.co * g.kh * g.kw; }
    struct AWalk {
        const float* wm; bool ok;
        Digits3 k, k_step;  // (o, 0, r) with r = ky·kw + kx
        __device__ void init(const ConvDgradProblem& P, int m, int k0, int bk) {
            const ConvGeom& g = P.g;
            ok = m < g.c;
            wm = P.wt + (size_t)(ok ? m : 0) * g.kh * g.kw;
            k.init(k0, 1, g.kh * g.kw);
            k_step.init(bk, 1, g.kh * g.kw);
        }
        __device__ float load(const ConvDgradProblem& P, bool k_ok) const {
            int khw = P.g.kh * P.g.kw;
            return ok && k_ok ? wm[(size_t)k.hi * P.g.c * khw + k.lo] : 0.0f;
        }
        __device__ void step(const ConvDgradProblem& P, int) { k.add(k_step, 1, P.g.kh * P.g.kw); }
    };
    struct BWalk {
        const float* img; int ty0, tx0; bool ok;
        Digits3 k, k_step;  // (o, ky, kx)
        __device__ void init(const ConvDgradProblem& P, int k0, int n, int bk) {
            const ConvGeom& g = P.g;
            ok = n < P.n_size();
            int hw = g.h * g.w, nn = ok ? n : 0, im = nn / hw, pix = nn - im * hw;
            int iy = pix / g.w, ix = pix - iy * g.w;
            ty0 = iy + g.ph;
            tx0 = ix + g.pw;
            img = P.gy + (size_t)im * g.co * g.ho * g.wo;
            k.init(k0, g.kh, g.kw);
            k_step.init(bk, g.kh, g.kw);
        }
        __device__ float load(const ConvDgradProblem& P, bool k_ok) const {
            const ConvGeom& g = P.g;
            int ty = ty0 - k.mid * g.dh, tx = tx0 - k.lo * g.dw;
            if (!(ok && k_ok) || ty < 0 || tx < 0) return 0.0f;
            int oy = ty, ox = tx;
            if (g.sh != 1 || g.sw != 1) {
                oy = ty / g.sh;
                ox = tx / g.sw;
                if (oy * g.sh != ty || ox * g.sw != tx) return 0.0f;
            }
            if (oy >= g.ho || ox >= g.wo) return 0.0f;
            return img[((size_t)k.hi * g.ho + oy) * g.wo + ox];
        }
        __device__ void step(const ConvDgradProblem& P, int) { k.add(k_step, P.g.kh, P.g.kw); }
    };
    __device__ void store(int m, int p, float v, bool atomic) const {
        int hw = g.h * g.w, im = p / hw, pix = p - im * hw;
        float* q = &dx[((size_t)im * g.c + m) * hw + pix];
        if (atomic) atomicAdd(q, v); else *q = v;
    }
};

// Weight gradient: M = co, N = c·kh·kw, K = n·ho·wo as (img, oy, ox).
struct ConvWgradProblem {
    const float* x; const float* gy; float* dw; ConvGeom g;
    // Consecutive threads walk K (output pixels, contiguous in x) when loading B.
    static const bool B_K_FASTEST = true;
    static const bool SPLIT_K = true;
    __device__ int m_size() const { return g.co; }
    __device__ int n_size() const { return g.c * g.kh * g.kw; }
    __device__ int k_size() const { return g.n * g.ho * g.wo; }
    struct AWalk {
        const float* gm; bool ok;
        Digits3 k, k_step;  // (img, 0, pix)
        __device__ void init(const ConvWgradProblem& P, int m, int k0, int bk) {
            const ConvGeom& g = P.g;
            ok = m < g.co;
            gm = P.gy + (size_t)(ok ? m : 0) * g.ho * g.wo;
            k.init(k0, 1, g.ho * g.wo);
            k_step.init(bk, 1, g.ho * g.wo);
        }
        __device__ float load(const ConvWgradProblem& P, bool k_ok) const {
            int hw = P.g.ho * P.g.wo;
            return ok && k_ok ? gm[(size_t)k.hi * P.g.co * hw + k.lo] : 0.0f;
        }
        __device__ void step(const ConvWgradProblem& P, int) { k.add(k_step, 1, P.g.ho * P.g.wo); }
    };
    struct BWalk {
        const float* xc; int dy, dx; bool ok;
        Digits3 k, k_step;  // (img, oy, ox)
        __device__ void init(const ConvWgradProblem& P, int k0, int j, int bk) {
            const ConvGeom& g = P.g;
            ok = j < P.n_size();
            int khw = g.kh * g.kw, jj = ok ? j : 0, ci = jj / khw, r = jj - ci * khw;
            int ky = r / g.kw, kx = r - ky * g.kw;
            dy = ky * g.dh - g.ph;
            dx = kx * g.dw - g.pw;
            xc = P.x + (size_t)ci * g.h * g.w;
            k.init(k0, g.ho, g.wo);
            k_step.init(bk, g.ho, g.wo);
        }
        __device__ float load(const ConvWgradProblem& P, bool k_ok) const {
            const ConvGeom& g = P.g;
            int iy = k.mid * g.sh + dy, ix = k.lo * g.sw + dx;
            bool in = ok && k_ok && iy >= 0 && iy < g.h && ix >= 0 && ix < g.w;
            return in ? xc[((size_t)k.hi * g.c * g.h + iy) * g.w + ix] : 0.0f;
        }
        __device__ void step(const ConvWgradProblem& P, int) { k.add(k_step, P.g.ho, P.g.wo); }
    };
    __device__ void store(int m, int j, float v, bool atomic) const {
        float* q = &dw[(size_t)m * n_size() + j];
        if (atomic) atomicAdd(q, v); else *q = v;
    }
};

// V consecutive floats from 4·V-byte aligned shared memory.
template <int V> __device__ __forceinline__ void load_vec(const float* src, float* dst);
template <> __device__ __forceinline__ void load_vec<4>(const float* src, float* dst) {
    float4 v = *reinterpret_cast<const float4*>(src);
    dst[0] = v.x; dst[1] = v.y; dst[2] = v.z; dst[3] = v.w;
}
template <> __device__ __forceinline__ void load_vec<2>(const float* src, float* dst) {
    float2 v = *reinterpret_cast<const float2*>(src);
    dst[0] = v.x; dst[1] = v.y;
}

template <int BM, int BN, int BK, int TM, int TN, class P>
__device__ __forceinline__ void gemm_tile(const P& prob, int k_chunk) {
    constexpr int TY = BM / TM, TX = BN / TN, NT = TY * TX;
    constexpr int VM = TM / 2, VN = TN / 2;
    constexpr int A_PER = BM * BK / NT, B_PER = BK * BN / NT;
    constexpr int BPAD = P::B_K_FASTEST ? 4 : 0;
    static_assert(NT == 256, "256 threads per block");
    // +4 columns: the transposing stores into As (k fastest across threads) hit distinct banks.
    __shared__ __align__(16) float As[BK][BM + 4];
    __shared__ __align__(16) float Bs[BK][BN + BPAD];
    const int tid = threadIdx.x, tx = tid % TX, ty = tid / TX;
    const int K = prob.k_size();
    const int m0 = blockIdx.y * BM, n0 = blockIdx.x * BN;
    const bool split = P::SPLIT_K && gridDim.z > 1;
    const int k_begin = split ? blockIdx.z * k_chunk : 0;
    const int k_end = split ? min(K, k_begin + k_chunk) : K;

    float acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;

    // Slot e of A covers (mm, kk) = (tid / BK + e·NT/BK, tid % BK); slot e of B covers
    // (kk, nn) = (tid / BN + e·NT/BN, tid % BN), or (tid % BK, tid / BK + e·NT/BK) k-fastest.
    typename P::AWalk aw[A_PER];
    typename P::BWalk bw[B_PER];
    const int a_kk = tid % BK;
#pragma unroll
    for (int e = 0; e < A_PER; ++e) aw[e].init(prob, m0 + tid / BK + e * (NT / BK), k_begin + a_kk, BK);
    int b_kk[B_PER];
#pragma unroll
    for (int e = 0; e < B_PER; ++e) {
        int kk = P::B_K_FASTEST ? tid % BK : tid / BN + e * (NT / BN);
        int nn = P::B_K_FASTEST ? tid / BK + e * (NT / BK) : tid % BN;
        b_kk[e] = kk;
        bw[e].init(prob, k_begin + kk, n0 + nn, BK);
    }

    float ra[A_PER], rb[B_PER];
    auto fetch = [&](int k0) {
#pragma unroll
        for (int e = 0; e < A_PER; ++e) ra[e] = aw[e].load(prob, k0 + a_kk < k_end);
#pragma unroll
        for (int e = 0; e < B_PER; ++e) rb[e] = bw[e].load(prob, k0 + b_kk[e] < k_end);
#pragma unroll
        for (int e = 0; e < A_PER; ++e) aw[e].step(prob, BK);
#pragma unroll
        for (int e = 0; e < B_PER; ++e) bw[e].step(prob, BK);
    };

    if (k_begin < k_end) fetch(k_begin);
    for (int k0 = k_begin; k0 < k_end; k0 += BK) {
        __syncthreads();
#pragma unroll
        for (int e = 0; e < A_PER; ++e) As[a_kk][tid / BK + e * (NT / BK)] = ra[e];
#pragma unroll
        for (int e = 0; e < B_PER; ++e) {
            int nn = P::B_K_FASTEST ? tid / BK + e * (NT / BK) : tid % BN;
            Bs[b_kk[e]][nn] = rb[e];
        }
        __syncthreads();
        if (k0 + BK < k_end) fetch(k0 + BK);
#pragma unroll
        for (int kk = 0; kk < BK; ++kk) {
            float fa[TM], fb[TN];
            load_vec<VM>(&As[kk][ty * VM], fa);
            load_vec<VM>(&As[kk][BM / 2 + ty * VM], fa + VM);
            load_vec<VN>(&Bs[kk][tx * VN], fb);
            load_vec<VN>(&Bs[kk][BN / 2 + tx * VN], fb + VN);
#pragma unroll
            for (int i = 0; i < TM; ++i)
#pragma unroll
                for (int j = 0; j < TN; ++j) acc[i][j] = fmaf(fa[i], fb[j], acc[i][j]);
        }
    }
    const int M = prob.m_size(), N = prob.n_size();
#pragma unroll
    for (int i = 0; i < TM; ++i) {
        int m = m0 + (i / VM) * (BM / 2) + ty * VM + i % VM;
        if (m >= M) continue;
#pragma unroll
        for (int j = 0; j < TN; ++j) {
            int n = n0 + (j / VN) * (BN / 2) + tx * VN + j % VN;
            if (n < N) prob.store(m, n, acc[i][j], split);
        }
    }
}

// Three tile shapes per problem, all 256 threads: 128×128 (8×8 per thread) for large problems,
// 64×64 (4×4) when fewer blocks are needed to fill the GPU, 32×128 (4×4) when M ≤ 32 (SinGAN's
// 32-channel convolutions).
#define GEMM_KERNELS(NAME, PROBLEM, PARAMS, INIT)                                                  \
    extern "C" __global__ void __launch_bounds__(256) NAME##_128 PARAMS {                           \
        PROBLEM prob = INIT;                                                                       \
        gemm_tile<128, 128, 8, 8, 8>(prob, k_chunk);                                               \
    }                                                                                              \
    extern "C" __global__ void __launch_bounds__(256) NAME##_64 PARAMS {                            \
        PROBLEM prob = INIT;                                                                       \
        gemm_tile<64, 64, 16, 4, 4>(prob, k_chunk);                                                \
    }                                                                                              \
    extern "C" __global__ void __launch_bounds__(256) NAME##_32 PARAMS {                            \
        PROBLEM prob = INIT;                                                                       \
        gemm_tile<32, 128, 16, 4, 4>(prob, k_chunk);                                               \
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
