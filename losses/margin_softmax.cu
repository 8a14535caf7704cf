// Margin softmax + cross-entropy / NR loss, CUDA: one block per sample row. Pass 1 reads the row
// once for an online (max, sum of exp, argmax); pass 2 writes d loss / d cos over the cos values
// in place. No temporaries: the row is the only B x C buffer.
#include <cmath>

#include "engine/cuda_check.h"
#include "engine/error.h"
#include "engine/gpu_context.h"
#include "engine/nvtx.h"
#include "losses/loss_cuda_util.cuh"
#include "losses/margin_softmax.h"

namespace {

using loss_cuda::row_state;
using loss_cuda::SoftmaxState;

constexpr int kThreads = 512;

struct MarginArgs {
    float s, m, m1, m2, m3, beta, g;
    int keep;
    bool margin_gradient;
};

__global__ void margin_softmax_kernel(float* cg, float* loss, const std::int32_t* labels,
                                      long long C, MarginArgs a) {
    const long long b = blockIdx.x;
    float* row = cg + b * C;
    const long long y = labels[b];
    if (y < 0 || y >= C) {  // uniform over the block: every thread leaves here
        for (long long j = threadIdx.x; j < C; j += blockDim.x) row[j] = 0.f;
        if (threadIdx.x == 0) loss[b] = NAN;
        return;
    }
    float dz_dc;
    const float zy = margin_target_logit<float>(row[y], a.s, a.keep, a.m, a.m1, a.m2, a.m3,
                                                a.margin_gradient, &dz_dc);
    const SoftmaxState st = row_state(row, C, y, zy, a.s);  // synchronises: row[y] read by all
    const float log_sum = logf(st.sum), inv_sum = 1.f / st.sum;
    for (long long j = threadIdx.x; j < C; j += blockDim.x) {
        const float z = j == y ? zy : a.s * row[j];
        float dl = expf(z - st.mx) * inv_sum;
        if (j == y) dl -= a.beta;
        if (j == st.arg) dl -= 1.f - a.beta;
        row[j] = a.g * (j == y ? dz_dc : a.s) * dl;
    }
    if (threadIdx.x == 0) {
        const float logp_y = zy - st.mx - log_sum, logp_hat = -log_sum;
        loss[b] = -(a.beta * logp_y + (1.f - a.beta) * logp_hat);
    }
}

// The batch mean, one block, fixed order.
__global__ void mean_kernel(float* mean, const float* v, long long n) {
    float s = 0.f;
    for (long long i = threadIdx.x; i < n; i += blockDim.x) s += v[i];
    s = loss_cuda::block_sum(s);
    if (threadIdx.x == 0) *mean = s / (float)n;
}

}  // namespace

void margin_softmax_loss_cuda(float* cos_to_grad, float* loss, float* mean_loss,
                              const std::int32_t* labels, i64 B, i64 C,
                              const MarginSoftmaxOptions& opt, engine::GpuContext& g) {
    engine::NvtxRange range("margin_softmax_loss");
    ENGINE_CHECK(B >= 0 && C > 0, engine::ShapeError, "margin_softmax_loss_cuda: B = ", B,
                 ", C = ", C);
    ENGINE_CHECK(opt.scale > 0, engine::ArgError, "margin_softmax_loss_cuda: scale s = ", opt.scale,
                 " must be positive");
    if (B == 0) return;
    MarginArgs a;
    a.s = (float)opt.scale;
    a.m = (float)opt.m;
    a.m1 = (float)opt.m1;
    a.m2 = (float)opt.m2;
    a.m3 = (float)opt.m3;
    a.beta = (float)opt.effective_beta();
    a.g = (float)(opt.grad_scale() / (double)B);
    a.keep = opt.margin == MarginKind::arcface_keep;
    a.margin_gradient = opt.margin_gradient;
    margin_softmax_kernel<<<(unsigned)B, kThreads, 0, g.stream()>>>(cos_to_grad, loss, labels, C,
                                                                    a);
    CUDA_CHECK_LAUNCH();
    if (mean_loss) {
        mean_kernel<<<1, 256, 0, g.stream()>>>(mean_loss, loss, B);
        CUDA_CHECK_LAUNCH();
    }
}
