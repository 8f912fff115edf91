// Pooling and resizing (NCHW, one thread per output element, planes = N·C) and their adjoints.
// Adjoints scatter with atomicAdd into a zeroed output, the exact transpose of each gather.

// Window span along one axis for avg pooling, as the CPU backend computes it.
__device__ __forceinline__ void pool_span(int o, int stride, int pad, int k, int len, int& lo,
                                          int& hi, int& padded) {
    int start = o * stride - pad;
    int end = min(start + k, len + pad);
    padded = end - start;
    lo = max(start, 0);
    hi = min(end, len);
}

extern "C" __global__ void tessera_avg_pool2d(float* out, const float* x, unsigned planes, int h,
                                              int w, int ho, int wo, int kh, int kw, int sh, int sw,
                                              int ph, int pw, int include_pad) {
    unsigned n = planes * (unsigned)(ho * wo);
    GRID_LOOP(i, n) {
        unsigned plane = i / (unsigned)(ho * wo);
        int rem = (int)(i % (unsigned)(ho * wo)), oy = rem / wo, ox = rem % wo;
        int y0, y1, x0, x1, phh, pww;
        pool_span(oy, sh, ph, kh, h, y0, y1, phh);
        pool_span(ox, sw, pw, kw, w, x0, x1, pww);
        const float* src = x + plane * (unsigned)(h * w);
        float s = 0.0f;
        for (int y = y0; y < y1; ++y)
            for (int xx = x0; xx < x1; ++xx) s += src[y * w + xx];
        int count = include_pad ? phh * pww : (y1 - y0) * (x1 - x0);
        out[i] = s / (float)count;
    }
}

extern "C" __global__ void tessera_avg_pool2d_adjoint(float* out, const float* g, unsigned planes,
                                                      int h, int w, int ho, int wo, int kh, int kw,
                                                      int sh, int sw, int ph, int pw,
                                                      int include_pad) {
    unsigned n = planes * (unsigned)(ho * wo);
    GRID_LOOP(i, n) {
        unsigned plane = i / (unsigned)(ho * wo);
        int rem = (int)(i % (unsigned)(ho * wo)), oy = rem / wo, ox = rem % wo;
        int y0, y1, x0, x1, phh, pww;
        pool_span(oy, sh, ph, kh, h, y0, y1, phh);
        pool_span(ox, sw, pw, kw, w, x0, x1, pww);
        int count = include_pad ? phh * pww : (y1 - y0) * (x1 - x0);
        float v = g[i] / (float)count;
        float* dst = out + plane * (unsigned)(h * w);
        for (int y = y0; y < y1; ++y)
            for (int xx = x0; xx < x1; ++xx) atomicAdd(&dst[y * w + xx], v);
    }
}

// Max pooling: the value and the window offset ky·kw + kx of the first maximum (-1 for a window
// wholly in the padding); NaN wins, as on the CPU backend.
extern "C" __global__ void tessera_max_pool2d(float* out, float* idx, const float* x,
                                              unsigned planes, int h, int w, int ho, int wo, int kh,
                                              int kw, int sh, int sw, int ph, int pw, int dh,
                                              int dw) {
    unsigned n = planes * (unsigned)(ho * wo);
    GRID_LOOP(i, n) {
        unsigned plane = i / (unsigned)(ho * wo);
        int rem = (int)(i % (unsigned)(ho * wo)), oy = rem / wo, ox = rem % wo;
        const float* src = x + plane * (unsigned)(h * w);
        float best = -INFINITY;
        int best_k = -1;
        for (int ky = 0; ky < kh; ++ky) {
            int iy = oy * sh - ph + ky * dh;
            if (iy < 0 || iy >= h) continue;
            for (int kx = 0; kx < kw; ++kx) {
                int ix = ox * sw - pw + kx * dw;
                if (ix < 0 || ix >= w) continue;
                float v = src[iy * w + ix];
                if (best_k < 0 || (!isnan(best) && (v > best || isnan(v)))) {
                    best = v;
                    best_k = ky * kw + kx;
                }
            }
        }
        out[i] = best;
        idx[i] = (float)best_k;
    }
}

// Input position named by window offset k of output (oy, ox), or -1 when k names none.
__device__ __forceinline__ int max_pool_source(float k, int oy, int ox, int h, int w, int kh,
                                               int kw, int sh, int sw, int ph, int pw, int dh,
                                               int dw) {
    if (!(k >= 0.0f && k < (float)(kh * kw))) return -1;
    int ki = (int)k, ky = ki / kw, kx = ki % kw;
    int iy = oy * sh - ph + ky * dh, ix = ox * sw - pw + kx * dw;
    return (iy >= 0 && iy < h && ix >= 0 && ix < w) ? iy * w + ix : -1;
}

extern "C" __global__ void tessera_max_pool2d_scatter(float* out, const float* g, const float* idx,
                                                      unsigned planes, int h, int w, int ho, int wo,
                                                      int kh, int kw, int sh, int sw, int ph,
                                                      int pw, int dh, int dw) {
    unsigned n = planes * (unsigned)(ho * wo);
    GRID_LOOP(i, n) {
        unsigned plane = i / (unsigned)(ho * wo);
        int rem = (int)(i % (unsigned)(ho * wo));
        int s = max_pool_source(idx[i], rem / wo, rem % wo, h, w, kh, kw, sh, sw, ph, pw, dh, dw);
        if (s >= 0) atomicAdd(&out[plane * (unsigned)(h * w) + s], g[i]);
    }
}

extern "C" __global__ void tessera_max_pool2d_gather(float* out, const float* x, const float* idx,
                                                     unsigned planes, int h, int w, int ho, int wo,
                                                     int kh, int kw, int sh, int sw, int ph,
                                                     int pw, int dh, int dw) {
    unsigned n = planes * (unsigned)(ho * wo);
    GRID_LOOP(i, n) {
        unsigned plane = i / (unsigned)(ho * wo);
        int rem = (int)(i % (unsigned)(ho * wo));
        int s = max_pool_source(idx[i], rem / wo, rem % wo, h, w, kh, kw, sh, sw, ph, pw, dh, dw);
        out[i] = s >= 0 ? x[plane * (unsigned)(h * w) + s] : 0.0f;
    }
}

// Source indices and weights of output o along one axis; float arithmetic as on the CPU backend
// (which follows PyTorch's), so nearest indices agree exactly.
// mode: 0 nearest, 1 bilinear, 2 bilinear with align_corners.
__device__ __forceinline__ void axis_coeff(int o, int len_in, int len_out, int mode, int& i0,
                                           int& i1, float& w0, float& w1) {
    if (mode == 0) {
        float scale = (float)len_in / (float)len_out;
        i0 = min((int)floorf((float)o * scale), len_in - 1);
        i1 = i0; w0 = 1.0f; w1 = 0.0f;
        return;
    }
    float src;
    if (mode == 2) {
        float scale = len_out > 1 ? (float)(len_in - 1) / (float)(len_out - 1) : 0.0f;
        src = scale * (float)o;
    } else {
        float scale = (float)len_in / (float)len_out;
        src = fmaxf(scale * ((float)o + 0.5f) - 0.5f, 0.0f);
    }
    i0 = min((int)floorf(src), len_in - 1);
    i1 = i0 < len_in - 1 ? i0 + 1 : i0;
    w1 = fminf(fmaxf(src - (float)i0, 0.0f), 1.0f);
    w0 = 1.0f - w1;
}

extern "C" __global__ void tessera_upsample2d(float* out, const float* x, unsigned planes, int h,
                                              int w, int ho, int wo, int mode) {
    unsigned n = planes * (unsigned)(ho * wo);
    GRID_LOOP(i, n) {
        unsigned plane = i / (unsigned)(ho * wo);
        int rem = (int)(i % (unsigned)(ho * wo));
        int y0, y1, x0, x1;
        float a0, a1, b0, b1;
        axis_coeff(rem / wo, h, ho, mode, y0, y1, a0, a1);
        axis_coeff(rem % wo, w, wo, mode, x0, x1, b0, b1);
        const float* src = x + plane * (unsigned)(h * w);
        if (mode == 0) {
            out[i] = src[y0 * w + x0];
        } else {
            out[i] = a0 * (b0 * src[y0 * w + x0] + b1 * src[y0 * w + x1]) +
                     a1 * (b0 * src[y1 * w + x0] + b1 * src[y1 * w + x1]);
        }
    }
}

extern "C" __global__ void tessera_upsample2d_adjoint(float* out, const float* g, unsigned planes,
                                                      int h, int w, int ho, int wo, int mode) {
    unsigned n = planes * (unsigned)(ho * wo);
    GRID_LOOP(i, n) {
        unsigned plane = i / (unsigned)(ho * wo);
        int rem = (int)(i % (unsigned)(ho * wo));
        int y0, y1, x0, x1;
        float a0, a1, b0, b1;
        axis_coeff(rem / wo, h, ho, mode, y0, y1, a0, a1);
        axis_coeff(rem % wo, w, wo, mode, x0, x1, b0, b1);
        float* dst = out + plane * (unsigned)(h * w);
        float v = g[i];
        if (mode == 0) {
            atomicAdd(&dst[y0 * w + x0], v);
        } else {
            atomicAdd(&dst[y0 * w + x0], a0 * b0 * v);
            atomicAdd(&dst[y0 * w + x1], a0 * b1 * v);
            atomicAdd(&dst[y1 * w + x0], a1 * b0 * v);
            atomicAdd(&dst[y1 * w + x1], a1 * b1 * v);
        }
    }
}
