// Row-wise L2 normalisation, CUDA: one block per row (grid-stride over rows), a block reduction
// for the squared norm (forward) and for <dout, out> (backward).
#include <algorithm>

#include "engine/cuda_check.h"
#include "engine/gpu_context.h"
#include "engine/nvtx.h"
#include "layers/l2norm.h"

namespace {

constexpr int kThreads = 256;  // the kernels are launched with exactly this many threads

// Sum of v over the block, returned to every thread; fixed order, so deterministic.
__device__ float block_sum(float v) {
    static_assert(kThreads % 32 == 0 && kThreads <= 1024, "block size");
    __shared__ float partial[kThreads / 32];
    for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < kThreads / 32 ? partial[lane] : 0.f;
        for (int off = 16; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
        if (lane == 0) partial[0] = v;
    }
    __syncthreads();
    v = partial[0];
    __syncthreads();  // partial is reused by the next row
    return v;
}

// norm = sqrt(sum x^2); out = x / norm. A zero row gives norm 0 and out NaN (0/0): the GPU
// cannot throw mid-stream, so callers that may meet zero rows check `norm`.
__global__ void l2norm_forward_kernel(float* out, float* norm, const float* in, i64 N, i64 D) {
    for (i64 row = blockIdx.x; row < N; row += gridDim.x) {
        const float* x = in + row * D;
        float ss = 0.f;
        for (i64 j = threadIdx.x; j < D; j += kThreads) ss += x[j] * x[j];
        const float nrm = sqrtf(block_sum(ss));
        if (threadIdx.x == 0) norm[row] = nrm;
        float* y = out + row * D;
        for (i64 j = threadIdx.x; j < D; j += kThreads) y[j] = x[j] / nrm;
    }
}

// din = (dout - out * <dout, out>) / norm: the Jacobian of x / |x| is (I - y y^T) / |x|.
__global__ void l2norm_backward_kernel(float* din, const float* dout, const float* out,
                                       const float* norm, i64 N, i64 D) {
    for (i64 row = blockIdx.x; row < N; row += gridDim.x) {
        const float* dy = dout + row * D;
        const float* y = out + row * D;
        float dot = 0.f;
        for (i64 j = threadIdx.x; j < D; j += kThreads) dot += dy[j] * y[j];
        dot = block_sum(dot);
        const float nrm = norm[row];
        float* dx = din + row * D;
        for (i64 j = threadIdx.x; j < D; j += kThreads) dx[j] = (dy[j] - y[j] * dot) / nrm;
    }
}

unsigned row_blocks(i64 N) { return (unsigned)std::min<i64>(N, 65535); }

}  // namespace

void l2norm_forward_cuda(float* out, float* norm, const float* in, i64 N, i64 D,
                         engine::GpuContext& g) {
    engine::NvtxRange r("l2norm_forward");
    if (N <= 0 || D <= 0) return;
    l2norm_forward_kernel<<<row_blocks(N), kThreads, 0, g.stream()>>>(out, norm, in, N, D);
    CUDA_CHECK_LAUNCH();
}

void l2norm_backward_cuda(float* din, const float* dout, const float* out, const float* norm, i64 N,
                          i64 D, engine::GpuContext& g) {
    engine::NvtxRange r("l2norm_backward");
    if (N <= 0 || D <= 0) return;
    l2norm_backward_kernel<<<row_blocks(N), kThreads, 0, g.stream()>>>(din, dout, out, norm, N, D);
    CUDA_CHECK_LAUNCH();
}
