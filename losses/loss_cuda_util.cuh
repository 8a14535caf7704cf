// Block reductions shared by the loss kernels (CUDA only). The summation order is fixed by the
// thread layout, so results are deterministic run to run.
#pragma once
#include <cuda_runtime.h>

namespace loss_cuda {

__device__ inline float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    return v;
}

// Sum of v over the block, returned to every thread. blockDim.x must be a multiple of 32 (at
// most 1024) and every thread of the block must call it (it synchronises).
__device__ inline float block_sum(float v) {
    __shared__ float part[32];
    __shared__ float total;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warp_sum(v);
    if (lane == 0) part[warp] = v;
    __syncthreads();
    if (warp == 0) {
        float t = lane < (int)(blockDim.x >> 5) ? part[lane] : 0.f;
        t = warp_sum(t);
        if (lane == 0) total = t;
    }
    __syncthreads();
    const float r = total;
    __syncthreads();  // part/total may be reused by the next call
    return r;
}

// Row-wise L2 normalisation, one block per row: out = in / |in|, norm = |in|. A zero row gives
// an infinite inverse norm (non-finite output): the CUDA losses report bad data that way.
// (A template, so that every .cu including this header may instantiate it without clashes.)
template <typename T>
__global__ void normalize_rows_kernel(T* out, T* norm, const T* in, long long D) {
    const long long n = blockIdx.x;
    const T* v = in + n * D;
    T ss = 0;
    for (long long d = threadIdx.x; d < D; d += blockDim.x) ss += v[d] * v[d];
    const T r = sqrt(block_sum(ss));
    const T inv = T(1) / r;
    for (long long d = threadIdx.x; d < D; d += blockDim.x) out[n * D + d] = v[d] * inv;
    if (threadIdx.x == 0) norm[n] = r;
}

}  // namespace loss_cuda
