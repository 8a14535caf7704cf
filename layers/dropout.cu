// Inverted dropout, CUDA: the mask is drawn from the same counter-based generator as the CPU
// reference (keep = random_uniform01(seed, offset + i) >= p), so both backends keep the same
// elements bit for bit, and backward redraws it instead of storing it.
#include <algorithm>

#include "engine/cuda_check.h"
#include "engine/gpu_context.h"
#include "engine/nvtx.h"
#include "engine/rng.h"
#include "layers/dropout.h"

namespace {

// out[i] = keep(i) ? in[i] / (1 - p) : 0; backward is the same map on the gradient (the
// derivative of the kept branch is 1 / (1 - p), of the dropped one 0).
__global__ void dropout_kernel(float* out, const float* in, i64 n, float p, float keep_frac,
                               u64 seed, u64 offset) {
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n;
         i += (i64)gridDim.x * blockDim.x) {
        const bool keep = engine::random_uniform01(seed, offset + (u64)i) >= p;
        out[i] = keep ? in[i] / keep_frac : 0.f;
    }
}

void launch(float* out, const float* in, i64 n, float p, u64 seed, u64 offset,
            engine::GpuContext& g) {
    // As the CPU reference: p = 1 would scale by 1 / 0, and drops everything anyway.
    ENGINE_CHECK(p >= 0.f && p < 1.f, engine::ArgError, "dropout_cuda: drop probability ", p,
                 " must be in [0, 1)");
    if (n == 0) return;
    const float keep_frac = 1.f - p;
    const int threads = 256;
    const int blocks = (int)std::min<i64>((n + threads - 1) / threads, 65535 * 8);
    dropout_kernel<<<blocks, threads, 0, g.stream()>>>(out, in, n, p, keep_frac, seed, offset);
    CUDA_CHECK_LAUNCH();
}

}  // namespace

void dropout_forward_cuda(float* out, const float* in, i64 n, float p, u64 seed, u64 offset,
                          engine::GpuContext& g) {
    engine::NvtxRange r("dropout_forward");
    launch(out, in, n, p, seed, offset, g);
}

void dropout_backward_cuda(float* din, const float* dout, i64 n, float p, u64 seed, u64 offset,
                           engine::GpuContext& g) {
    engine::NvtxRange r("dropout_backward");
    launch(din, dout, n, p, seed, offset, g);
}
