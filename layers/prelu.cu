// PReLU, CUDA. Forward: one thread per element. Backward: one block per channel computes the
// slope gradient with a block reduction (fixed order inside a block, so deterministic) and
// writes the input gradient in the same pass.
#include <algorithm>

#include "engine/cuda_check.h"
#include "engine/gpu_context.h"
#include "engine/nvtx.h"
#include "layers/prelu.h"

namespace {

__global__ void prelu_forward_kernel(float* out, const float* in, const float* slope, i64 total,
                                     i64 C, i64 HW) {
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < total;
         i += (i64)gridDim.x * blockDim.x) {
        const float x = in[i];
        const i64 c = (i / HW) % C;
        out[i] = x > 0.f ? x : slope[c] * x;
    }
}

// grid = C blocks; each block walks its channel over all n and spatial positions.
__global__ void prelu_backward_kernel(float* din, float* dslope, const float* dout,
                                      const float* in, const float* slope, i64 N, i64 C, i64 HW) {
    const i64 c = blockIdx.x;
    const float a = slope[c];
    float ds = 0.f;
    const i64 per_channel = N * HW;
    for (i64 j = threadIdx.x; j < per_channel; j += blockDim.x) {
        const i64 n = j / HW, i = j % HW;
        const i64 idx = (n * C + c) * HW + i;
        const float x = in[idx], g = dout[idx];
        if (x > 0.f) {
            if (din) din[idx] = g;
        } else {
            if (din) din[idx] = a * g;
            ds += g * x;
        }
    }
    __shared__ float partial[256];
    partial[threadIdx.x] = ds;
    __syncthreads();
    for (int s = blockDim.x / 2; s > 0; s >>= 1) {
        if (threadIdx.x < s) partial[threadIdx.x] += partial[threadIdx.x + s];
        __syncthreads();
    }
    if (threadIdx.x == 0) dslope[c] += partial[0];
}

}  // namespace

void prelu_forward_cuda(float* out, const float* in, const float* slope, i64 N, i64 C, i64 HW,
                        engine::GpuContext& g) {
    engine::NvtxRange r("prelu_forward");
    const i64 total = N * C * HW;
    const int threads = 256;
    const int blocks = (int)std::min<i64>((total + threads - 1) / threads, 65535 * 8);
    if (total == 0) return;
    prelu_forward_kernel<<<blocks, threads, 0, g.stream()>>>(out, in, slope, total, C, HW);
    CUDA_CHECK_LAUNCH();
}

void prelu_backward_cuda(float* din, float* dslope, const float* dout, const float* in,
                         const float* slope, i64 N, i64 C, i64 HW, engine::GpuContext& g) {
    engine::NvtxRange r("prelu_backward");
    if (C == 0) return;
    prelu_backward_kernel<<<(unsigned)C, 256, 0, g.stream()>>>(din, dslope, dout, in, slope, N, C,
                                                                HW);
    CUDA_CHECK_LAUNCH();
}
