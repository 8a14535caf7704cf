// Batch normalisation, CUDA. The training kernels give each channel one block: it reduces the
// channel's N*HW values in double (fixed thread assignment and a fixed reduction tree, so the
// result is deterministic), then applies the result in a second pass over the same values.
// The inference forward is a pure per-channel affine map spread over more blocks.
#include <algorithm>

#include "engine/cuda_check.h"
#include "engine/gpu_context.h"
#include "engine/nvtx.h"
#include "layers/batchnorm.h"

namespace {

constexpr int kThreads = 512;  // every kernel here is launched with exactly this many threads

// Walks the elements of one channel, j = n * HW + i over [0, N * HW), from `start` in steps of
// `step`, keeping (n, i) without a 64-bit division per element: a step adds step / HW rows and
// step % HW columns, and at most one carry. The element sits at (n * C + c) * HW + i.
struct ChannelWalk {
    i64 n, i;
    const i64 step_n, step_i, HW;
    __device__ ChannelWalk(i64 start, i64 step, i64 hw)
        : n(start / hw), i(start % hw), step_n(step / hw), step_i(step % hw), HW(hw) {}
    __device__ void next() {
        n += step_n;
        i += step_i;
        if (i >= HW) {
            i -= HW;
            ++n;
        }
    }
};

// Sums a and b over the block (kThreads threads) and returns the totals to every thread. Warp
// shuffles, then one warp over the per-warp partials: a fixed order, so deterministic.
__device__ void block_sum2(double& a, double& b) {
    static_assert(kThreads % 32 == 0 && kThreads <= 1024, "block size");
    __shared__ double sa[kThreads / 32], sb[kThreads / 32];
    for (int off = 16; off > 0; off >>= 1) {
        a += __shfl_down_sync(0xffffffffu, a, off);
        b += __shfl_down_sync(0xffffffffu, b, off);
    }
    const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
    if (lane == 0) {
        sa[warp] = a;
        sb[warp] = b;
    }
    __syncthreads();
    if (warp == 0) {
        a = lane < kThreads / 32 ? sa[lane] : 0.0;
        b = lane < kThreads / 32 ? sb[lane] : 0.0;
        for (int off = 16; off > 0; off >>= 1) {
            a += __shfl_down_sync(0xffffffffu, a, off);
            b += __shfl_down_sync(0xffffffffu, b, off);
        }
        if (lane == 0) {
            sa[0] = a;
            sb[0] = b;
        }
    }
    __syncthreads();
    a = sa[0];
    b = sb[0];
    __syncthreads();  // the shared partials may be reused by the next call
}

// Training forward, grid-stride over channels, one block per channel. With M = N * HW and a
// pivot K (the channel's first value), d = x - K: mean = K + sum d / M and the biased
// var = sum d^2 / M - (sum d / M)^2, in one pass with double sums of exact double d and d^2.
// Shifting by a value of the channel keeps the subtraction from cancelling when the mean is
// large against the spread.
__global__ void bn_forward_train_kernel(float* out, float* save_mean, float* save_invstd,
                                        float* running_mean, float* running_var, const float* in,
                                        const float* gamma, const float* beta, i64 N, i64 C,
                                        i64 HW, double eps, double momentum) {
    const i64 M = N * HW;
    for (i64 c = blockIdx.x; c < C; c += gridDim.x) {
        const double pivot = in[c * HW];  // element (n = 0, c, i = 0)
        double s = 0.0, ss = 0.0;
        for (ChannelWalk w(threadIdx.x, kThreads, HW); w.n < N; w.next()) {
            const double d = (double)in[(w.n * C + c) * HW + w.i] - pivot;
            s += d;
            ss += d * d;
        }
        block_sum2(s, ss);
        const double mean_d = s / (double)M;
        const double mean = pivot + mean_d;
        const double var = fmax(ss / (double)M - mean_d * mean_d, 0.0);
        const double invstd = 1.0 / sqrt(var + eps);
        if (threadIdx.x == 0) {
            save_mean[c] = (float)mean;
            save_invstd[c] = (float)invstd;
            if (running_mean)
                running_mean[c] = (float)(momentum * running_mean[c] + (1.0 - momentum) * mean);
            if (running_var)
                running_var[c] = (float)(momentum * running_var[c] + (1.0 - momentum) * var);
        }
        // out = gamma * (x - mean) * invstd + beta; x - mean in double keeps the digits a large
        // mean would cancel.
        const float g = gamma[c], b = beta[c];
        for (ChannelWalk w(threadIdx.x, kThreads, HW); w.n < N; w.next()) {
            const i64 idx = (w.n * C + c) * HW + w.i;
            const float xhat = (float)(((double)in[idx] - mean) * invstd);
            out[idx] = g * xhat + b;
        }
    }
}

// Inference forward: out = (x - running_mean) * scale + beta with scale = gamma / sqrt(var + eps).
// Grid (channels, splits): blockIdx.y and threadIdx.x share each channel's elements.
__global__ void bn_forward_infer_kernel(float* out, const float* in, const float* gamma,
                                        const float* beta, const float* running_mean,
                                        const float* running_var, i64 N, i64 C, i64 HW,
                                        double eps) {
    const i64 step = (i64)gridDim.y * kThreads;
    for (i64 c = blockIdx.x; c < C; c += gridDim.x) {
        const float scale = (float)(gamma[c] / sqrt((double)running_var[c] + eps));
        const float m = running_mean[c], b = beta[c];
        for (ChannelWalk w((i64)blockIdx.y * kThreads + threadIdx.x, step, HW); w.n < N;
             w.next()) {
            const i64 idx = (w.n * C + c) * HW + w.i;
            out[idx] = (in[idx] - m) * scale + b;
        }
    }
}

// Training backward, one block per channel. With xhat = (x - mean) * invstd and the per-channel
// sums Sd = sum dout, Sdx = sum dout * xhat (over M = N * HW):
//   dbeta += Sd, dgamma += Sdx (each skipped when its pointer is null),
//   din = gamma * invstd * (dout - Sd / M - xhat * Sdx / M)
// (the batch mean and variance depend on every x of the channel, hence the two sums).
__global__ void bn_backward_train_kernel(float* din, float* dgamma, float* dbeta, const float* dout,
                                         const float* in, const float* gamma,
                                         const float* save_mean, const float* save_invstd, i64 N,
                                         i64 C, i64 HW) {
    const i64 M = N * HW;
    for (i64 c = blockIdx.x; c < C; c += gridDim.x) {
        const float mean = save_mean[c], invstd = save_invstd[c];
        double sd = 0.0, sdx = 0.0;
        for (ChannelWalk w(threadIdx.x, kThreads, HW); w.n < N; w.next()) {
            const i64 idx = (w.n * C + c) * HW + w.i;
            const float dy = dout[idx], xhat = (in[idx] - mean) * invstd;
            sd += dy;
            sdx += (double)dy * xhat;
        }
        block_sum2(sd, sdx);
        if (threadIdx.x == 0) {
            if (dbeta) dbeta[c] += (float)sd;
            if (dgamma) dgamma[c] += (float)sdx;
        }
        if (!din) continue;
        const float k = gamma[c] * invstd, mean_d = (float)(sd / (double)M),
                    mean_dx = (float)(sdx / (double)M);
        for (ChannelWalk w(threadIdx.x, kThreads, HW); w.n < N; w.next()) {
            const i64 idx = (w.n * C + c) * HW + w.i;
            const float xhat = (in[idx] - mean) * invstd;
            din[idx] = k * (dout[idx] - mean_d - xhat * mean_dx);
        }
    }
}

// Inference backward (running statistics are constants): din = dout * gamma * invstd,
// dgamma += sum dout * xhat, dbeta += sum dout, one block per channel in one pass.
__global__ void bn_backward_infer_kernel(float* din, float* dgamma, float* dbeta, const float* dout,
                                         const float* in, const float* gamma,
                                         const float* running_mean, const float* running_var,
                                         i64 N, i64 C, i64 HW, double eps) {
    for (i64 c = blockIdx.x; c < C; c += gridDim.x) {
        const float invstd = (float)(1.0 / sqrt((double)running_var[c] + eps));
        const float mean = running_mean[c], k = gamma[c] * invstd;
        double sd = 0.0, sdx = 0.0;
        for (ChannelWalk w(threadIdx.x, kThreads, HW); w.n < N; w.next()) {
            const i64 idx = (w.n * C + c) * HW + w.i;
            const float dy = dout[idx], xhat = (in[idx] - mean) * invstd;
            sd += dy;
            sdx += (double)dy * xhat;
            if (din) din[idx] = k * dy;
        }
        block_sum2(sd, sdx);
        if (threadIdx.x == 0) {
            if (dbeta) dbeta[c] += (float)sd;
            if (dgamma) dgamma[c] += (float)sdx;
        }
    }
}

// One block per channel, capped (the kernels grid-stride over channels).
unsigned channel_blocks(i64 C) { return (unsigned)std::min<i64>(C, 65535); }

bool empty_shape(const BatchNormShape& s) { return s.C == 0 || s.N == 0 || s.HW == 0; }

void check_shape(const BatchNormShape& s, const char* op) {
    ENGINE_CHECK(s.N >= 0 && s.C >= 0 && s.HW >= 0, engine::ShapeError, op, ": negative shape (N ",
                 s.N, ", C ", s.C, ", HW ", s.HW, ")");
    ENGINE_CHECK(s.eps > 0, engine::ArgError, op, ": eps ", s.eps, " must be > 0");
}

}  // namespace

void batchnorm_forward_train_cuda(float* out, float* save_mean, float* save_invstd,
                                  float* running_mean, float* running_var, const float* in,
                                  const float* gamma, const float* beta, const BatchNormShape& s,
                                  engine::GpuContext& g) {
    engine::NvtxRange r("batchnorm_forward_train");
    check_shape(s, "batchnorm_forward_train");
    if (empty_shape(s)) return;
    bn_forward_train_kernel<<<channel_blocks(s.C), kThreads, 0, g.stream()>>>(
        out, save_mean, save_invstd, running_mean, running_var, in, gamma, beta, s.N, s.C, s.HW,
        s.eps, s.momentum);
    CUDA_CHECK_LAUNCH();
}

void batchnorm_forward_infer_cuda(float* out, const float* in, const float* gamma,
                                  const float* beta, const float* running_mean,
                                  const float* running_var, const BatchNormShape& s,
                                  engine::GpuContext& g) {
    engine::NvtxRange r("batchnorm_forward_infer");
    check_shape(s, "batchnorm_forward_infer");
    if (empty_shape(s)) return;
    // Enough blocks per channel that small-C layers still fill the GPU (about 8 elements a
    // thread), at most 64 per channel and 65535 in y.
    const i64 per_channel = s.N * s.HW;
    const i64 splits = std::max<i64>(
        1, std::min<i64>({(per_channel + 8 * kThreads - 1) / (8 * kThreads), 64, 65535}));
    const dim3 grid(channel_blocks(s.C), (unsigned)splits);
    bn_forward_infer_kernel<<<grid, kThreads, 0, g.stream()>>>(out, in, gamma, beta, running_mean,
                                                               running_var, s.N, s.C, s.HW, s.eps);
    CUDA_CHECK_LAUNCH();
}

void batchnorm_backward_train_cuda(float* din, float* dgamma, float* dbeta, const float* dout,
                                   const float* in, const float* gamma, const float* save_mean,
                                   const float* save_invstd, const BatchNormShape& s,
                                   engine::GpuContext& g) {
    engine::NvtxRange r("batchnorm_backward_train");
    check_shape(s, "batchnorm_backward_train");
    if (empty_shape(s)) return;
    bn_backward_train_kernel<<<channel_blocks(s.C), kThreads, 0, g.stream()>>>(
        din, dgamma, dbeta, dout, in, gamma, save_mean, save_invstd, s.N, s.C, s.HW);
    CUDA_CHECK_LAUNCH();
}

void batchnorm_backward_infer_cuda(float* din, float* dgamma, float* dbeta, const float* dout,
                                   const float* in, const float* gamma, const float* running_mean,
                                   const float* running_var, const BatchNormShape& s,
                                   engine::GpuContext& g) {
    engine::NvtxRange r("batchnorm_backward_infer");
    check_shape(s, "batchnorm_backward_infer");
    if (empty_shape(s)) return;
    bn_backward_infer_kernel<<<channel_blocks(s.C), kThreads, 0, g.stream()>>>(
        din, dgamma, dbeta, dout, in, gamma, running_mean, running_var, s.N, s.C, s.HW, s.eps);
    CUDA_CHECK_LAUNCH();
}
