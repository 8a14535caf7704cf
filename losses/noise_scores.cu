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

// Per-thread running (max, sum of exp(z - max), first argmax), merged over the block.
struct State {
    float mx, sum;
    long long arg;
};

__device__ inline State merge(State a, State b) {
    if (a.sum == 0.f) return b;
    if (b.sum == 0.f) return a;
    State r;
    r.mx = fmaxf(a.mx, b.mx);
    r.sum = a.sum * expf(a.mx - r.mx) + b.sum * expf(b.mx - r.mx);
    r.arg = a.mx > b.mx ? a.arg : (b.mx > a.mx ? b.arg : (a.arg < b.arg ? a.arg : b.arg));
    return r;
}

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
    State st{-INFINITY, 0.f, 0};
    for (long long j = threadIdx.x; j < C; j += blockDim.x) {
        const float z = j == y ? zy : s * row[j];
        if (st.sum == 0.f) {
            st = State{z, 1.f, j};
        } else if (z > st.mx) {
            st.sum = st.sum * expf(st.mx - z) + 1.f;
            st.mx = z;
            st.arg = j;
        } else {
            st.sum += expf(z - st.mx);
        }
    }
    for (int o = 16; o > 0; o >>= 1) {
        State w{__shfl_down_sync(0xffffffffu, st.mx, o), __shfl_down_sync(0xffffffffu, st.sum, o),
                __shfl_down_sync(0xffffffffu, st.arg, o)};
        st = merge(st, w);
    }
    __shared__ State part[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) part[warp] = st;
    __syncthreads();
    if (threadIdx.x == 0) {
        State t = part[0];
        for (int w = 1; w < (int)(blockDim.x >> 5); ++w) t = merge(t, part[w]);
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
