// Elementwise maps, broadcasting binary ops, select, strided copies (every layout op) and 2-d padding.
// Op codes match tessera-cuda's `ops.rs`.

__device__ __forceinline__ float cmp_op(int c, float a, float b) {
    bool t;
    switch (c) {
        case 0: t = a == b; break;
        case 1: t = a != b; break;
        case 2: t = a < b; break;
        case 3: t = a <= b; break;
        case 4: t = a > b; break;
        default: t = a >= b; break;
    }
    return t ? 1.0f : 0.0f;
}

// NaN passes through relu, clamp, maximum and minimum, as on the CPU backend and in PyTorch.
__device__ __forceinline__ float unary_op(int op, float x, float a, float b, int c) {
    switch (op) {
        case 0: return -x;
        case 1: return expf(x);
        case 2: return logf(x);
        case 3: return sqrtf(x);
        case 4: return 1.0f / sqrtf(x);
        case 5: return fabsf(x);
        case 6: return x > 0.0f ? 1.0f : (x < 0.0f ? -1.0f : 0.0f);
        case 7: return x < 0.0f ? 0.0f : x;
        case 8: return x > 0.0f ? x : x * a;
        case 9: return tanhf(x);
        case 10: return 1.0f / (1.0f + expf(-x));
        case 11: return powf(x, a);
        case 12: return x < a ? a : (x > b ? b : x);
        case 13: return x * a + b;
        default: return cmp_op(c, x, a);
    }
}

__device__ __forceinline__ float binary_op(int op, float a, float b, int c) {
    switch (op) {
        case 0: return a + b;
        case 1: return a - b;
        case 2: return a * b;
        case 3: return a / b;
        case 4: return powf(a, b);
        case 5: return (isnan(a) || isnan(b)) ? NAN_F : fmaxf(a, b);
        case 6: return (isnan(a) || isnan(b)) ? NAN_F : fminf(a, b);
        default: return cmp_op(c, a, b);
    }
}

extern "C" __global__ void tessera_unary(float* out, const float* x, unsigned n, int op, float a,
                                         float b, int cmp) {
    GRID_LOOP(i, n) out[i] = unary_op(op, x[i], a, b, cmp);
}

// out is contiguous over L (s0); lhs and rhs are read through strides s1, s2 (0 on broadcast axes).
extern "C" __global__ void tessera_binary(float* out, const float* lhs, const float* rhs, Strided3 L,
                                          unsigned n, int op, int cmp) {
    GRID_LOOP(i, n) {
        unsigned o, a, b;
        strided_offsets(L, i, o, a, b);
        out[o] = binary_op(op, lhs[a], rhs[b], cmp);
    }
}

// Same-shape operands: no index arithmetic.
extern "C" __global__ void tessera_binary_same(float* out, const float* lhs, const float* rhs,
                                               unsigned n, int op, int cmp) {
    GRID_LOOP(i, n) out[i] = binary_op(op, lhs[i], rhs[i], cmp);
}

// out[i] = cond ≠ 0 ? t : f, with cond, t, f read through s0, s1, s2 and out contiguous.
extern "C" __global__ void tessera_where(float* out, const float* cond, const float* t,
                                         const float* f, Strided3 L, unsigned n) {
    GRID_LOOP(i, n) {
        unsigned c, a, b;
        strided_offsets(L, i, c, a, b);
        out[i] = cond[c] != 0.0f ? t[a] : f[b];
    }
}

// dst[dst_off + s0·idx] = src[src_off + s1·idx] over the iteration space: permute, broadcast,
// narrow, pad_axis and concat are all this copy.
extern "C" __global__ void tessera_copy_strided(float* dst, const float* src, Strided3 L, unsigned n,
                                                unsigned dst_off, unsigned src_off) {
    GRID_LOOP(i, n) {
        unsigned d, s, unused;
        strided_offsets(L, i, d, s, unused);
        dst[dst_off + d] = src[src_off + s];
    }
}

extern "C" __global__ void tessera_fill(float* out, unsigned n, float value) {
    GRID_LOOP(i, n) out[i] = value;
}

// Source index of padded position i (relative to the unpadded start) in a line of len, or -1.
// mode: 0 zero, 1 reflect (no edge repeat), 2 replicate.
__device__ __forceinline__ int pad_source(int i, int len, int mode) {
    if (mode == 0) return (i >= 0 && i < len) ? i : -1;
    if (mode == 1) return i < 0 ? -i : (i >= len ? 2 * (len - 1) - i : i);
    return i < 0 ? 0 : (i >= len ? len - 1 : i);
}

// One thread per padded element; planes = N·C.
extern "C" __global__ void tessera_pad2d(float* out, const float* x, unsigned planes, int h, int w,
                                         int l, int r, int t, int b, int mode) {
    int wp = w + l + r, hp = h + t + b;
    unsigned n = planes * (unsigned)(hp * wp);
    GRID_LOOP(i, n) {
        unsigned plane = i / (unsigned)(hp * wp);
        int rem = (int)(i % (unsigned)(hp * wp));
        int sy = pad_source(rem / wp - t, h, mode), sx = pad_source(rem % wp - l, w, mode);
        out[i] = (sy < 0 || sx < 0) ? 0.0f : x[plane * (unsigned)(h * w) + sy * w + sx];
    }
}

// Adjoint of pad2d: every padded value is added into its source (out must start zeroed).
extern "C" __global__ void tessera_pad2d_adjoint(float* out, const float* g, unsigned planes, int h,
                                                 int w, int l, int r, int t, int b, int mode) {
    int wp = w + l + r, hp = h + t + b;
    unsigned n = planes * (unsigned)(hp * wp);
    GRID_LOOP(i, n) {
        unsigned plane = i / (unsigned)(hp * wp);
        int rem = (int)(i % (unsigned)(hp * wp));
        int sy = pad_source(rem / wp - t, h, mode), sx = pad_source(rem % wp - l, w, mode);
        if (sy >= 0 && sx >= 0) atomicAdd(&out[plane * (unsigned)(h * w) + sy * w + sx], g[i]);
    }
}
