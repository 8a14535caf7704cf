// Elementwise ops, CUDA: residual add, gradient accumulation and input normalisation, each a
// grid-stride loop over 64-bit indices.
#include <algorithm>

#include "engine/cuda_check.h"
#include "engine/gpu_context.h"
#include "engine/nvtx.h"
#include "layers/elementwise.h"

namespace {

__global__ void add_kernel(float* out, const float* a, const float* b, i64 n) {
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n;
         i += (i64)gridDim.x * blockDim.x)
        out[i] = a[i] + b[i];
}

__global__ void accumulate_kernel(float* dst, const float* src, i64 n) {
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n;
         i += (i64)gridDim.x * blockDim.x)
        dst[i] += src[i];
}

// (x - 127.5) * 0.0078125 = (x - 127.5) / 128: for pixel values 0..255 both steps are exact in
// float, so the GPU and the CPU agree to the bit.
__global__ void input_normalize_kernel(float* out, const float* in, i64 n) {
    const float mean = (float)kInputMean, scale = (float)kInputScale;
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n;
         i += (i64)gridDim.x * blockDim.x)
        out[i] = (in[i] - mean) * scale;
}

constexpr int kThreads = 256;
int blocks_for(i64 n) { return (int)std::min<i64>((n + kThreads - 1) / kThreads, 65535 * 8); }

}  // namespace

void add_forward_cuda(float* out, const float* a, const float* b, i64 n, engine::GpuContext& g) {
    engine::NvtxRange r("add_forward");
    if (n <= 0) return;
    add_kernel<<<blocks_for(n), kThreads, 0, g.stream()>>>(out, a, b, n);
    CUDA_CHECK_LAUNCH();
}

void accumulate_cuda(float* dst, const float* src, i64 n, engine::GpuContext& g) {
    engine::NvtxRange r("accumulate");
    if (n <= 0) return;
    accumulate_kernel<<<blocks_for(n), kThreads, 0, g.stream()>>>(dst, src, n);
    CUDA_CHECK_LAUNCH();
}

void input_normalize_cuda(float* out, const float* in, i64 n, engine::GpuContext& g) {
    engine::NvtxRange r("input_normalize");
    if (n <= 0) return;
    input_normalize_kernel<<<blocks_for(n), kThreads, 0, g.stream()>>>(out, in, n);
    CUDA_CHECK_LAUNCH();
}
