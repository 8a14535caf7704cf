// SGD momentum update, CUDA: one grid-stride pass over the flat parameter buffer,
//   v = momentum * v - lr * (rescale * g + wd * w);   w = w + v   (MXNet's form).
#include <algorithm>

#include "engine/cuda_check.h"
#include "engine/gpu_context.h"
#include "engine/nvtx.h"
#include "engine/sgd.h"

namespace engine {
namespace {

__global__ void sgd_momentum_kernel(float* w, float* v, const float* g, i64 n, float lr,
                                    float momentum, float wd, float rescale) {
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < n;
         i += (i64)gridDim.x * blockDim.x) {
        const float wi = w[i];
        const float vi = momentum * v[i] - lr * (rescale * g[i] + wd * wi);
        v[i] = vi;
        w[i] = wi + vi;
    }
}

}  // namespace

void sgd_momentum_update_cuda(float* w, float* v, const float* g, i64 n, float lr, float momentum,
                              float wd, float rescale, GpuContext& ctx) {
    NvtxRange r("sgd_momentum_update");
    if (n <= 0) return;
    const int threads = 256;
    const int blocks = (int)std::min<i64>((n + threads - 1) / threads, 65535 * 8);
    sgd_momentum_kernel<<<blocks, threads, 0, ctx.stream()>>>(w, v, g, n, lr, momentum, wd,
                                                              rescale);
    CUDA_CHECK_LAUNCH();
}

}  // namespace engine
