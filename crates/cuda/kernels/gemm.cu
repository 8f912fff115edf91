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
// indexes the matmul batch (or both, for the Winograd weight gradient's 36 frequencies); with
// more than one K split the partial tiles are added atomically into a zeroed output.

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
    static const int Z_BATCH = 1;
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
    static const int Z_BATCH = 1;
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
    static const int Z_BATCH = 1;
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

// Winograd weight gradient (winograd.cu): for each of the 36 frequencies f,
// M[f] = E[f]·V[f]ᵀ with E [36, co, tiles], V [36, c, tiles] and M [36, co, c]: M = co, N = c,
// K = tiles, contiguous in both operands. z = f · (K splits) + part.
struct WinogradWgradProblem {
    const float* e; const float* v; float* out; int co, c, tiles;
    // Consecutive threads walk K (tiles, contiguous in V) when loading B.
    static const bool B_K_FASTEST = true;
    static const bool SPLIT_K = true;
    static const int Z_BATCH = 36;
    __device__ int m_size() const { return co; }
    __device__ int n_size() const { return c; }
    __device__ int k_size() const { return tiles; }
    __device__ int freq() const { return blockIdx.z / (gridDim.z / Z_BATCH); }
    struct AWalk {
        const float* p; bool ok;
        __device__ void init(const WinogradWgradProblem& P, int m, int k, int) {
            ok = m < P.co;
            p = P.e + ((size_t)P.freq() * P.co + (ok ? m : 0)) * P.tiles + k;
        }
        __device__ float load(const WinogradWgradProblem&, bool k_ok) const { return ok && k_ok ? *p : 0.0f; }
        __device__ void step(const WinogradWgradProblem&, int bk) { p += bk; }
    };
    struct BWalk {
        const float* p; bool ok;
        __device__ void init(const WinogradWgradProblem& P, int k, int n, int) {
            ok = n < P.c;
            p = P.v + ((size_t)P.freq() * P.c + (ok ? n : 0)) * P.tiles + k;
        }
        __device__ float load(const WinogradWgradProblem&, bool k_ok) const { return ok && k_ok ? *p : 0.0f; }
        __device__ void step(const WinogradWgradProblem&, int bk) { p += bk; }
    };
    __device__ void store(int m, int n, float val, bool atomic) const {
        float* q = &out[((size_t)freq() * co + m) * c + n];
        if (atomic) atomicAdd(q, val); else *q = val;
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

// The rows of C a block owns and the part of K it reduces: gridDim.z splits K when the problem
// allows it (the partial tiles are then added atomically), else it indexes the matmul batch.
// A problem that splits K may also batch in z (Z_BATCH > 1): z = batch index · splits + part.
template <class P>
struct BlockRange {
    int m0, n0, k_begin, k_end;
    bool split;
    __device__ BlockRange(const P& prob, int bm, int bn, int k_chunk) {
        const int K = prob.k_size();
        m0 = blockIdx.y * bm;
        n0 = blockIdx.x * bn;
        split = false;
        k_begin = 0;
        if constexpr (P::SPLIT_K) {
            const int splits = gridDim.z / P::Z_BATCH;
            split = splits > 1;
            const int part = P::Z_BATCH == 1 ? blockIdx.z : blockIdx.z % splits;
            k_begin = split ? part * k_chunk : 0;
        }
        k_end = split ? min(K, k_begin + k_chunk) : K;
    }
};

// The global → shared pipeline of a 256-thread block, shared by the FP32 and TF32 tiles.
// Slot e of A covers (mm, kk) = (tid / BK + e·NT/BK, tid % BK); slot e of B covers
// (kk, nn) = (tid / BN + e·NT/BN, tid % BN), or (tid % BK, tid / BK + e·NT/BK) k-fastest.
// fetch() issues the next BK-deep tile's global loads into registers (and advances the walkers),
// so they are in flight while the current tile is consumed; stash() stores them into shared
// memory, As[k][m] and Bs[k][n].
template <int BM, int BN, int BK, class P>
struct TileLoader {
    static constexpr int NT = 256, A_PER = BM * BK / NT, B_PER = BK * BN / NT;
    typename P::AWalk aw[A_PER];
    typename P::BWalk bw[B_PER];
    int tid, a_kk, b_kk[B_PER];
    float ra[A_PER], rb[B_PER];

    __device__ int b_nn(int e) const {
        return P::B_K_FASTEST ? tid / BK + e * (NT / BK) : tid % BN;
    }
    __device__ TileLoader(const P& prob, const BlockRange<P>& r) {
        tid = threadIdx.x;
        a_kk = tid % BK;
#pragma unroll
        for (int e = 0; e < A_PER; ++e) aw[e].init(prob, r.m0 + tid / BK + e * (NT / BK), r.k_begin + a_kk, BK);
#pragma unroll
        for (int e = 0; e < B_PER; ++e) {
            b_kk[e] = P::B_K_FASTEST ? tid % BK : tid / BN + e * (NT / BN);
            bw[e].init(prob, r.k_begin + b_kk[e], r.n0 + b_nn(e), BK);
        }
    }
    __device__ void fetch(const P& prob, int k0, int k_end) {
#pragma unroll
        for (int e = 0; e < A_PER; ++e) ra[e] = aw[e].load(prob, k0 + a_kk < k_end);
#pragma unroll
        for (int e = 0; e < B_PER; ++e) rb[e] = bw[e].load(prob, k0 + b_kk[e] < k_end);
#pragma unroll
        for (int e = 0; e < A_PER; ++e) aw[e].step(prob, BK);
#pragma unroll
        for (int e = 0; e < B_PER; ++e) bw[e].step(prob, BK);
    }
    // ROUND maps each value on its way into shared memory (identity, or rounding to TF32).
    template <class ROUND, int AW, int BW>
    __device__ void stash(float (&As)[BK][AW], float (&Bs)[BK][BW]) const {
#pragma unroll
        for (int e = 0; e < A_PER; ++e) As[a_kk][tid / BK + e * (NT / BK)] = ROUND::apply(ra[e]);
#pragma unroll
        for (int e = 0; e < B_PER; ++e) Bs[b_kk[e]][b_nn(e)] = ROUND::apply(rb[e]);
    }
    // The block's K loop: each BK-deep tile is stashed, the next one fetched, and then
    // consume() reads the stashed tile from As and Bs.
    template <class ROUND, int AW, int BW, class F>
    __device__ void run(const P& prob, const BlockRange<P>& r, float (&As)[BK][AW], float (&Bs)[BK][BW],
                        F consume) {
        if (r.k_begin < r.k_end) fetch(prob, r.k_begin, r.k_end);
        for (int k0 = r.k_begin; k0 < r.k_end; k0 += BK) {
            __syncthreads();
            stash<ROUND>(As, Bs);
            __syncthreads();
            if (k0 + BK < r.k_end) fetch(prob, k0 + BK, r.k_end);
            consume();
        }
    }
};

struct KeepFp32 {
    static __device__ __forceinline__ float apply(float v) { return v; }
};

// FP32 on the CUDA cores: thread (ty, tx) accumulates a TM×TN block of C with FMAs.
template <int BM, int BN, int BK, int TM, int TN, class P>
__device__ __forceinline__ void gemm_tile(const P& prob, int k_chunk) {
    constexpr int TY = BM / TM, TX = BN / TN, NT = TY * TX;
    constexpr int VM = TM / 2, VN = TN / 2;
    constexpr int BPAD = P::B_K_FASTEST ? 4 : 0;
    static_assert(NT == 256, "256 threads per block");
    // +4 columns: the transposing stores into As (k fastest across threads) hit distinct banks.
    __shared__ __align__(16) float As[BK][BM + 4];
    __shared__ __align__(16) float Bs[BK][BN + BPAD];
    const int tid = threadIdx.x, tx = tid % TX, ty = tid / TX;
    const BlockRange<P> r(prob, BM, BN, k_chunk);

    float acc[TM][TN];
#pragma unroll
    for (int i = 0; i < TM; ++i)
#pragma unroll
        for (int j = 0; j < TN; ++j) acc[i][j] = 0.0f;

    TileLoader<BM, BN, BK, P> loader(prob, r);
    loader.template run<KeepFp32>(prob, r, As, Bs, [&] {
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
    });
    const int M = prob.m_size(), N = prob.n_size();
#pragma unroll
    for (int i = 0; i < TM; ++i) {
        int m = r.m0 + (i / VM) * (BM / 2) + ty * VM + i % VM;
        if (m >= M) continue;
#pragma unroll
        for (int j = 0; j < TN; ++j) {
            int n = r.n0 + (j / VN) * (BN / 2) + tx * VN + j % VN;
            if (n < N) prob.store(m, n, acc[i][j], r.split);
        }
    }
}

// ---- TF32 on the tensor cores (compute capability 8.0 and up) ----
//
// Operands are rounded to TF32 (10-bit mantissa, round to nearest, ties away) as they enter
// shared memory; products are exact and accumulate in FP32, like cuDNN with allow_tf32. Each
// of the 8 warps (2 along M × 4 along N) owns a (BM/2)×(BN/4) block of C as 16×8 tiles of
// mma.sync.m16n8k8. In a tile, lane l (group g = l / 4, quad q = l % 4) holds
//   A: (g, q), (g + 8, q), (g, q + 4), (g + 8, q + 4)   rows m, columns k
//   B: (q, g), (q + 4, g)                               rows k, columns n
//   C: (g, 2q), (g, 2q + 1), (g + 8, 2q), (g + 8, 2q + 1)
// (the PTX ISA's fragment layout for .m16n8k8 with .tf32).

struct RoundTf32 {
    static __device__ __forceinline__ float apply(float v) {
        unsigned bits;
        asm("cvt.rna.tf32.f32 %0, %1;" : "=r"(bits) : "f"(v));
        return __uint_as_float(bits);
    }
};

__device__ __forceinline__ void mma_tf32(float (&c)[4], const unsigned (&a)[4], const unsigned (&b)[2]) {
    asm("mma.sync.aligned.m16n8k8.row.col.f32.tf32.tf32.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

template <int BM, int BN, int BK, class P>
__device__ __forceinline__ void gemm_tile_tf32(const P& prob, int k_chunk) {
    constexpr int WARPS_N = 4, WM = BM / 2, WN = BN / WARPS_N, MI = WM / 16, NI = WN / 8;
    static_assert(WM % 16 == 0 && WN % 8 == 0 && BK % 8 == 0, "whole m16n8k8 tiles");
    // Rows of 8 (mod 32) extra words: a fragment read (4 k rows × 8 columns) hits 32 banks.
    __shared__ __align__(16) float As[BK][BM + 8];
    __shared__ __align__(16) float Bs[BK][BN + 8];
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32, g = lane / 4, q = lane % 4;
    const int wm0 = (warp / WARPS_N) * WM, wn0 = (warp % WARPS_N) * WN;
    const BlockRange<P> r(prob, BM, BN, k_chunk);

    float acc[MI][NI][4];
#pragma unroll
    for (int i = 0; i < MI; ++i)
#pragma unroll
        for (int j = 0; j < NI; ++j)
#pragma unroll
            for (int v = 0; v < 4; ++v) acc[i][j][v] = 0.0f;

    TileLoader<BM, BN, BK, P> loader(prob, r);
    loader.template run<RoundTf32>(prob, r, As, Bs, [&] {
#pragma unroll
        for (int kk = 0; kk < BK; kk += 8) {
            unsigned a[MI][4], b[NI][2];
#pragma unroll
            for (int i = 0; i < MI; ++i) {
                const int m = wm0 + i * 16 + g;
                a[i][0] = __float_as_uint(As[kk + q][m]);
                a[i][1] = __float_as_uint(As[kk + q][m + 8]);
                a[i][2] = __float_as_uint(As[kk + q + 4][m]);
                a[i][3] = __float_as_uint(As[kk + q + 4][m + 8]);
            }
#pragma unroll
            for (int j = 0; j < NI; ++j) {
                const int n = wn0 + j * 8 + g;
                b[j][0] = __float_as_uint(Bs[kk + q][n]);
                b[j][1] = __float_as_uint(Bs[kk + q + 4][n]);
            }
#pragma unroll
            for (int i = 0; i < MI; ++i)
#pragma unroll
                for (int j = 0; j < NI; ++j) mma_tf32(acc[i][j], a[i], b[j]);
        }
    });
    const int M = prob.m_size(), N = prob.n_size();
#pragma unroll
    for (int i = 0; i < MI; ++i)
#pragma unroll
        for (int v = 0; v < 4; ++v) {
            const int m = r.m0 + wm0 + i * 16 + g + (v / 2) * 8;
            if (m >= M) continue;
#pragma unroll
            for (int j = 0; j < NI; ++j) {
                const int n = r.n0 + wn0 + j * 8 + 2 * q + v % 2;
                if (n < N) prob.store(m, n, acc[i][j][v], r.split);
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

// The same three tiles on the tensor cores, for the convolutions (`ConvMath::Tf32`). Below
// compute capability 8.0 there is no TF32 mma: the entry points exist but trap, and the host
// never launches them there.
#if __CUDA_ARCH__ >= 800
#define TF32_TILE(BM, BN, BK) gemm_tile_tf32<BM, BN, BK>(prob, k_chunk)
#else
#define TF32_TILE(BM, BN, BK) __trap()
#endif
#define GEMM_TF32_KERNELS(NAME, PROBLEM, PARAMS, INIT)                                             \
    extern "C" __global__ void __launch_bounds__(256) NAME##_tf32_128 PARAMS {                      \
        PROBLEM prob = INIT;                                                                       \
        TF32_TILE(128, 128, 8);                                                                    \
    }                                                                                              \
    extern "C" __global__ void __launch_bounds__(256) NAME##_tf32_64 PARAMS {                       \
        PROBLEM prob = INIT;                                                                       \
        TF32_TILE(64, 64, 16);                                                                     \
    }                                                                                              \
    extern "C" __global__ void __launch_bounds__(256) NAME##_tf32_32 PARAMS {                       \
        PROBLEM prob = INIT;                                                                       \
        TF32_TILE(32, 128, 16);                                                                    \
    }

#define CONV_KERNELS(NAME, PROBLEM, PARAMS, INIT)                                                  \
    GEMM_KERNELS(NAME, PROBLEM, PARAMS, INIT)                                                      \
    GEMM_TF32_KERNELS(NAME, PROBLEM, PARAMS, INIT)

GEMM_KERNELS(tessera_matmul, MatmulProblem,
             (float* c, const float* a, const float* b, int M, int N, int K, int b_batched, int k_chunk),
             (MatmulProblem{a, b, c, M, N, K, b_batched}))
GEMM_KERNELS(tessera_winograd_wgrad_gemm, WinogradWgradProblem,
             (float* out, const float* e, const float* v, int co, int c, int tiles, int k_chunk),
             (WinogradWgradProblem{e, v, out, co, c, tiles}))
CONV_KERNELS(tessera_conv2d_fwd, ConvFwdProblem,
             (float* y, const float* x, const float* wt, ConvGeom g, int k_chunk),
             (ConvFwdProblem{x, wt, y, g}))
CONV_KERNELS(tessera_conv2d_dgrad, ConvDgradProblem,
             (float* dx, const float* gy, const float* wt, ConvGeom g, int k_chunk),
             (ConvDgradProblem{gy, wt, dx, g}))
CONV_KERNELS(tessera_conv2d_wgrad, ConvWgradProblem,
             (float* dw, const float* x, const float* gy, ConvGeom g, int k_chunk),
             (ConvWgradProblem{x, gy, dw, g}))
