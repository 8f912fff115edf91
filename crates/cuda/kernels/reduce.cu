// Reductions over any set of axes: one block per output element. The kept axes (described by
// `kept`, s0 = input strides) locate the output's first input element, the reduced axes (`red`)
// are walked by the block's threads. Sums accumulate in double, as on the CPU backend.

// op: 0 sum, 1 max, 2 min, 3 variance (biased), 4 variance (unbiased).
extern "C" __global__ void tessera_reduce(float* out, const float* x, Strided3 kept, Strided3 red,
                                          unsigned run, int op) {
    __shared__ float fpart[32];
    unsigned base, u1, u2;
    strided_offsets(kept, blockIdx.x, base, u1, u2);
    if (op == 1 || op == 2) {
        float acc = op == 1 ? -INFINITY : INFINITY;
        for (unsigned r = threadIdx.x; r < run; r += blockDim.x) {
            unsigned off, a, b;
            strided_offsets(red, r, off, a, b);
            float v = x[base + off];
            bool take = op == 1 ? (v > acc) : (v < acc);
            if (take || isnan(v)) acc = isnan(acc) ? acc : v;
        }
        for (int o = 16; o > 0; o >>= 1) {
            float v = __shfl_down_sync(0xffffffffu, acc, o);
            bool take = op == 1 ? (v > acc) : (v < acc);
            if (take || isnan(v)) acc = isnan(acc) ? acc : v;
        }
        int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
        if (lane == 0) fpart[warp] = acc;
        __syncthreads();
        if (threadIdx.x == 0) {
            for (int k = 1; k < (int)(blockDim.x >> 5); ++k) {
                float v = fpart[k];
                bool take = op == 1 ? (v > acc) : (v < acc);
                if (take || isnan(v)) acc = isnan(acc) ? acc : v;
            }
            out[blockIdx.x] = acc;
        }
        return;
    }
    double s = 0.0;
    for (unsigned r = threadIdx.x; r < run; r += blockDim.x) {
        unsigned off, a, b;
        strided_offsets(red, r, off, a, b);
        s += (double)x[base + off];
    }
    s = block_sum_d(s);
    if (op == 0) {
        if (threadIdx.x == 0) out[blockIdx.x] = (float)s;
        return;
    }
    __shared__ double mean_shared;
    if (threadIdx.x == 0) mean_shared = s / (double)run;
    __syncthreads();
    double mean = mean_shared, ss = 0.0;
    for (unsigned r = threadIdx.x; r < run; r += blockDim.x) {
        unsigned off, a, b;
        strided_offsets(red, r, off, a, b);
        double d = (double)x[base + off] - mean;
        ss += d * d;
    }
    ss = block_sum_d(ss);
    if (threadIdx.x == 0) out[blockIdx.x] = (float)(ss / ((double)run - (op == 4 ? 1.0 : 0.0)));
}
