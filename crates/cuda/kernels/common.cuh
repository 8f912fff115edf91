// Shared by every kernel module: prepended to each .cu file before NVRTC compiles it.
// Tensors are dense row-major f32; every size fits in 32 bits (checked on the Rust side).

#define MAX_RANK 8
// NVRTC has no <cmath>: the IEEE constants by bit pattern.
#define INFINITY __int_as_float(0x7f800000)
#define NAN_F __int_as_float(0x7fc00000)

// Shape of a (collapsed) iteration space and the element strides of up to three operands in it.
// Rank 0 is a single element.
struct Strided3 {
    unsigned rank;
    unsigned dims[MAX_RANK];
    unsigned s0[MAX_RANK];
    unsigned s1[MAX_RANK];
    unsigned s2[MAX_RANK];
};

// Offsets of linear index i of the iteration space in each of the three operands.
__device__ __forceinline__ void strided_offsets(const Strided3& L, unsigned i, unsigned& o0,
                                                unsigned& o1, unsigned& o2) {
    o0 = 0; o1 = 0; o2 = 0;
    for (int d = (int)L.rank - 1; d >= 0; --d) {
        unsigned k = i % L.dims[d];
        i /= L.dims[d];
        o0 += k * L.s0[d];
        o1 += k * L.s1[d];
        o2 += k * L.s2[d];
    }
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    return v;
}
__device__ __forceinline__ double warp_sum_d(double v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); the result is valid in thread 0.
__device__ double block_sum_d(double v) {
    __shared__ double partial[32];
    v = warp_sum_d(v);
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    __syncthreads();
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < (int)(blockDim.x >> 5) ? partial[lane] : 0.0;
        v = warp_sum_d(v);
    }
    return v;
}

// Grid-stride loop over n elements.
#define GRID_LOOP(i, n) \
    for (unsigned i = blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += gridDim.x * blockDim.x)

// Geometry of a convolution (gemm.cu's implicit GEMMs, winograd.cu's transforms), laid out like
// `ops::ConvGeom` on the Rust side.
struct ConvGeom {
    int n, c, h, w;      // input
    int co, kh, kw;      // weight [co, c, kh, kw]
    int ho, wo;          // output
    int sh, sw, ph, pw, dh, dw;
};
