// Noise scores, CUDA: one block per sample row, one read of the row (online max, sum, argmax).
#include <cmath>

#include "engine/cuda_check.h"
#include "engine/error.h"
#include "engine/gpu_context.h"
#include "engine/nvtx.h"
#include "losses/loss_cuda_util.cuh"
#include "losses/noise_scores.h"

namespace {

constexpr int kThreads = 512;

using loss_cuda::row_state;
using loss_cuda::SoftmaxState;

__global__ void noise_scores_kernel(float* max_p, float* p_label, std::int32_t* predicted,
                                    const float* cos, const std::int32_t* labels, long long C,
                                    float s, int keep, float m, float m1, float m2, float m3) {
    const long long b = blockIdx.x;
    const float* row = cos + b * C;
    const long long y = labels[b];
    if (y < 0 || y >= C) {
        if (threadIdx.x == 0) {
            max_p[b] = NAN;
            p_label[b] = NAN;
            if (predicted) predicted[b] = -1;
        }
        return;
    }
    const float zy = margin_target_logit<float>(row[y], s, keep, m, m1, m2, m3, true, nullptr);
    // One read of the row: online (max, sum of exp, first argmax), reduced over the block.
    const SoftmaxState t = row_state(row, C, y, zy, s);
    if (threadIdx.x == 0) {
        max_p[b] = 1.f / t.sum;
        p_label[b] = expf(zy - t.mx) / t.sum;
        if (predicted) predicted[b] = (std::int32_t)t.arg;
    }
}

}  // namespace

void noise_scores_cuda(float* max_p, float* p_label, std::int32_t* predicted, const float* cos,
                       const std::int32_t* labels, i64 B, i64 C, const MarginSoftmaxOptions& opt,
                       engine::GpuContext& g) {
    engine::NvtxRange range("noise_scores");
    ENGINE_CHECK(B >= 0 && C > 0, engine::ShapeError, "noise_scores_cuda: B = ", B, ", C = ", C);
    if (B == 0) return;
    noise_scores_kernel<<<(unsigned)B, kThreads, 0, g.stream()>>>(
        max_p, p_label, predicted, cos, labels, C, (float)opt.scale,
        opt.margin == MarginKind::arcface_keep, (float)opt.m, (float)opt.m1, (float)opt.m2,
        (float)opt.m3);
    CUDA_CHECK_LAUNCH();
}
