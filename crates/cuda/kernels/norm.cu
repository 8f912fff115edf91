// Batch / instance normalization with an optional modulation, as SPADE uses it:
//   y = (x − μ)·rsqrt(σ² + ε)·s + t
// with (s, t) = (1, 0) for a plain norm, (γ[c], β[c]) for a per-channel affine norm, and
// (1 + γ[i], β[i]) for SPADE's spatial maps (affine = 0, 1, 2). x is [N, C, HW]; statistics are
// per plane (instance norm, N·C groups) or per channel over N and HW (batch norm, C groups).
//
// Every pass runs on a grid (chunks, N·C): one block handles `chunk` elements of one plane, so
// the statistics group is fixed per block and no per-element division is needed. Statistics are
// accumulated per thread in double, reduced per block and added atomically into per-group double
// sums; σ² = E[x²] − E[x]² is formed in double.

__device__ __forceinline__ int norm_group(int plane, int C, int instance) {
    return instance ? plane : plane % C;
}

// acc[group] += (Σx, Σx²) over this block's chunk. acc must start zeroed.
extern "C" __global__ void tessera_norm_stats_partial(double* acc, const float* x, int C, int HW,
                                                      int instance, int chunk) {
    int plane = blockIdx.y, begin = blockIdx.x * chunk, end = min(HW, begin + chunk);
    const float* src = x + (size_t)plane * HW;
    double s = 0.0, ss = 0.0;
    if ((HW & 3) == 0 && (chunk & 3) == 0) {
        const float4* v4 = reinterpret_cast<const float4*>(src);
        for (int i = begin / 4 + threadIdx.x; i < end / 4; i += blockDim.x) {
            float4 v = v4[i];
            s += (double)v.x + (double)v.y + (double)v.z + (double)v.w;
            ss += (double)v.x * v.x + (double)v.y * v.y + (double)v.z * v.z + (double)v.w * v.w;
        }
    } else {
        for (int i = begin + threadIdx.x; i < end; i += blockDim.x) {
            double v = src[i];
            s += v;
            ss += v * v;
        }
    }
    s = block_sum_d(s);
    ss = block_sum_d(ss);
    if (threadIdx.x == 0) {
        int g = norm_group(plane, C, instance);
        atomicAdd(&acc[2 * g], s);
        atomicAdd(&acc[2 * g + 1], ss);
    }
}

// mean[g], rstd[g] from the sums of `count` values per group.
extern "C" __global__ void tessera_norm_stats_finish(float* mean, float* rstd, const double* acc,
                                                     int groups, double count, float eps) {
    GRID_LOOP(g, (unsigned)groups) {
        double m = acc[2 * g] / count;
        double var = fmax(acc[2 * g + 1] / count - m * m, 0.0);
        mean[g] = (float)m;
        rstd[g] = (float)(1.0 / sqrt(var + (double)eps));
    }
}

__device__ __forceinline__ float modulate(float xh, int affine, float gm, float bt) {
    return affine == 0 ? xh : (affine == 1 ? fmaf(xh, gm, bt) : fmaf(xh, 1.0f + gm, bt));
}

// The fused normalize-modulate pass: reads x (and γ, β maps), writes y once.
extern "C" __global__ void tessera_norm_modulate(float* y, const float* x, const float* mean,
                                                 const float* rstd, const float* gamma,
                                                 const float* beta, int C, int HW, int instance,
                                                 int affine, int chunk) {
    int plane = blockIdx.y, begin = blockIdx.x * chunk, end = min(HW, begin + chunk);
    int g = norm_group(plane, C, instance), c = plane % C;
    float mu = mean[g], r = rstd[g];
    size_t base = (size_t)plane * HW;
    float gc = affine == 1 ? gamma[c] : 0.0f, bc = affine == 1 ? beta[c] : 0.0f;
    if ((HW & 3) == 0 && (chunk & 3) == 0) {
        const float4* x4 = reinterpret_cast<const float4*>(x + base);
        float4* y4 = reinterpret_cast<float4*>(y + base);
        const float4* g4 = reinterpret_cast<const float4*>(gamma + base);
        const float4* b4 = reinterpret_cast<const float4*>(beta + base);
        for (int i = begin / 4 + threadIdx.x; i < end / 4; i += blockDim.x) {
            float4 v = x4[i], gm = make_float4(gc, gc, gc, gc), bt = make_float4(bc, bc, bc, bc);
            if (affine == 2) { gm = g4[i]; bt = b4[i]; }
            float4 o;
            o.x = modulate((v.x - mu) * r, affine, gm.x, bt.x);
            o.y = modulate((v.y - mu) * r, affine, gm.y, bt.y);
            o.z = modulate((v.z - mu) * r, affine, gm.z, bt.z);
            o.w = modulate((v.w - mu) * r, affine, gm.w, bt.w);
            y4[i] = o;
        }
    } else {
        for (int i = begin + threadIdx.x; i < end; i += blockDim.x) {
            float gm = affine == 2 ? gamma[base + i] : gc, bt = affine == 2 ? beta[base + i] : bc;
            y[base + i] = modulate((x[base + i] - mu) * r, affine, gm, bt);
        }
    }
}

// Backward, pass 1: with ĝ = dy·s (s the modulation scale) and x̂ the normalized input,
// acc[group] += (Σĝ, Σĝ·x̂). affine is 0 (s = 1) or 2 (s = 1 + γ[i]).
extern "C" __global__ void tessera_norm_bwd_partial(double* acc, const float* dy, const float* x,
                                                    const float* mean, const float* rstd,
                                                    const float* gamma, int C, int HW,
                                                    int instance, int affine, int chunk) {
    int plane = blockIdx.y, begin = blockIdx.x * chunk, end = min(HW, begin + chunk);
    int g = norm_group(plane, C, instance);
    float mu = mean[g], r = rstd[g];
    size_t base = (size_t)plane * HW;
    double s = 0.0, sx = 0.0;
    for (int i = begin + threadIdx.x; i < end; i += blockDim.x) {
        float gh = dy[base + i] * (affine == 2 ? 1.0f + gamma[base + i] : 1.0f);
        float xh = (x[base + i] - mu) * r;
        s += gh;
        sx += (double)gh * xh;
    }
    s = block_sum_d(s);
    sx = block_sum_d(sx);
    if (threadIdx.x == 0) {
        atomicAdd(&acc[2 * g], s);
        atomicAdd(&acc[2 * g + 1], sx);
    }
}

// Backward, pass 2: dx = rstd·(ĝ − mean(ĝ) − x̂·mean(ĝ·x̂)) and, for SPADE, dγ = dy·x̂
// (dβ is dy itself). `count` is the number of values per group.
extern "C" __global__ void tessera_norm_bwd_apply(float* dx, float* dgamma, const float* dy,
                                                  const float* x, const float* mean,
                                                  const float* rstd, const float* gamma,
                                                  const double* acc, double count, int C, int HW,
                                                  int instance, int affine, int chunk) {
    int plane = blockIdx.y, begin = blockIdx.x * chunk, end = min(HW, begin + chunk);
    int g = norm_group(plane, C, instance);
    float mu = mean[g], r = rstd[g];
    float mg = (float)(acc[2 * g] / count), mgx = (float)(acc[2 * g + 1] / count);
    size_t base = (size_t)plane * HW;
    if ((HW & 3) == 0 && (chunk & 3) == 0) {
        const float4* dy4 = reinterpret_cast<const float4*>(dy + base);
        const float4* x4 = reinterpret_cast<const float4*>(x + base);
        const float4* g4 = reinterpret_cast<const float4*>(gamma + base);
        float4* dx4 = reinterpret_cast<float4*>(dx + base);
        float4* dg4 = reinterpret_cast<float4*>(dgamma + base);
        for (int i = begin / 4 + threadIdx.x; i < end / 4; i += blockDim.x) {
            float4 d = dy4[i], v = x4[i], s = make_float4(1.0f, 1.0f, 1.0f, 1.0f);
            if (affine == 2) {
                s = g4[i];
                s.x += 1.0f; s.y += 1.0f; s.z += 1.0f; s.w += 1.0f;
            }
            float4 xh = make_float4((v.x - mu) * r, (v.y - mu) * r, (v.z - mu) * r, (v.w - mu) * r);
            dx4[i] = make_float4(r * (d.x * s.x - mg - xh.x * mgx), r * (d.y * s.y - mg - xh.y * mgx),
                                 r * (d.z * s.z - mg - xh.z * mgx), r * (d.w * s.w - mg - xh.w * mgx));
            if (affine == 2) dg4[i] = make_float4(d.x * xh.x, d.y * xh.y, d.z * xh.z, d.w * xh.w);
        }
    } else {
        for (int i = begin + threadIdx.x; i < end; i += blockDim.x) {
            float d = dy[base + i], xh = (x[base + i] - mu) * r;
            float s = affine == 2 ? 1.0f + gamma[base + i] : 1.0f;
            dx[base + i] = r * (d * s - mg - xh * mgx);
            if (affine == 2) dgamma[base + i] = d * xh;
        }
    }
}

// One Adam step in place (PyTorch's torch.optim.Adam with L2 weight decay):
// g' = g + wd·p; m = β1·m + (1−β1)·g'; v = β2·v + (1−β2)·g'²; p −= lr·(m/bc1)/(sqrt(v/bc2) + ε),
// where bc1 = 1 − β1^t and bc2 = 1 − β2^t.
extern "C" __global__ void tessera_adam(float* p, float* m, float* v, const float* g, unsigned n,
                                        float lr, float beta1, float beta2, float eps, float bc1,
                                        float bc2, float weight_decay) {
    GRID_LOOP(i, n) {
        float gi = g[i] + weight_decay * p[i];
        float mi = beta1 * m[i] + (1.0f - beta1) * gi;
        float vi = beta2 * v[i] + (1.0f - beta2) * gi * gi;
        m[i] = mi;
        v[i] = vi;
        p[i] -= lr * (mi / bc1) / (sqrtf(vi / bc2) + eps);
    }
}
