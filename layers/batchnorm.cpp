// Batch normalisation per channel over (N, HW), CPU reference: training (batch statistics,
// running-average update) and inference (running statistics), forward and backward.
#include "layers/batchnorm.h"

#include <cmath>

#include "engine/error.h"

namespace {

// Loops over fewer elements than this run on one thread: below it the cost of waking the
// OpenMP team exceeds the work (the float64 gradient audit calls these ops thousands of times).
constexpr i64 kParallelMin = 32768;


void check_shape(const BatchNormShape& s, const char* who) {
    ENGINE_CHECK(s.N > 0 && s.C > 0 && s.HW > 0, engine::ShapeError, who, ": bad shape N=", s.N,
                 " C=", s.C, " HW=", s.HW);
    ENGINE_CHECK(s.eps > 0, engine::ArgError, who, ": eps ", s.eps, " must be > 0");
}

// Sum over (n, i) of f(value at (n, c, i)) for one channel, in double, in a fixed order.
template <typename T, typename F>
double channel_sum(const T* x, i64 c, const BatchNormShape& s, F f) {
    double acc = 0;
    for (i64 n = 0; n < s.N; ++n) {
        const T* p = x + (n * s.C + c) * s.HW;
        for (i64 i = 0; i < s.HW; ++i) acc += f(p[i], n * s.C * s.HW + c * s.HW + i);
    }
    return acc;
}

// out = gamma * (x - mean) * invstd + beta over one channel.
template <typename T>
void normalize_channel(T* out, const T* in, i64 c, double mean, double invstd, double gamma,
                       double beta, const BatchNormShape& s) {
    const double a = gamma * invstd, b = beta - a * mean;  // out = a * x + b
    for (i64 n = 0; n < s.N; ++n) {
        const i64 base = (n * s.C + c) * s.HW;
        for (i64 i = 0; i < s.HW; ++i) out[base + i] = (T)(a * (double)in[base + i] + b);
    }
}

}  // namespace

// Per channel, over the M = N * HW values: mean = sum x / M, var = sum (x - mean)^2 / M (biased,
// two passes for accuracy), invstd = 1 / sqrt(var + eps). Channels run in parallel; each one's
// sums are sequential, so the result does not depend on the thread count.
template <typename T>
void batchnorm_forward_train_cpu(T* out, T* save_mean, T* save_invstd, T* running_mean,
                                 T* running_var, const T* in, const T* gamma, const T* beta,
                                 const BatchNormShape& s) {
    check_shape(s, "batchnorm_forward_train_cpu");
    const double M = (double)(s.N * s.HW), m = s.momentum;
#pragma omp parallel for schedule(static) if (s.N * s.C * s.HW >= kParallelMin)
    for (i64 c = 0; c < s.C; ++c) {
        const double mean = channel_sum(in, c, s, [](T x, i64) { return (double)x; }) / M;
        const double var =
            channel_sum(in, c, s, [mean](T x, i64) {
                const double d = (double)x - mean;
                return d * d;
            }) / M;
        const double invstd = 1.0 / std::sqrt(var + s.eps);
        save_mean[c] = (T)mean;
        save_invstd[c] = (T)invstd;
        if (running_mean) running_mean[c] = (T)(m * (double)running_mean[c] + (1 - m) * mean);
        if (running_var) running_var[c] = (T)(m * (double)running_var[c] + (1 - m) * var);
        normalize_channel(out, in, c, mean, invstd, (double)gamma[c], (double)beta[c], s);
    }
}

template <typename T>
void batchnorm_forward_infer_cpu(T* out, const T* in, const T* gamma, const T* beta,
                                 const T* running_mean, const T* running_var,
                                 const BatchNormShape& s) {
    check_shape(s, "batchnorm_forward_infer_cpu");
#pragma omp parallel for schedule(static) if (s.N * s.C * s.HW >= kParallelMin)
    for (i64 c = 0; c < s.C; ++c) {
        const double invstd = 1.0 / std::sqrt((double)running_var[c] + s.eps);
        normalize_channel(out, in, c, (double)running_mean[c], invstd, (double)gamma[c],
                          (double)beta[c], s);
    }
}

// With xhat = (x - mean) * invstd and y = gamma * xhat + beta, where mean and var depend on
// every x of the channel, the chain rule through both statistics gives
//   dbeta = sum dy,  dgamma = sum dy * xhat,
//   dx = gamma * invstd / M * (M * dy - dbeta_c - xhat * dgamma_c)
// (dbeta_c, dgamma_c the channel sums of this call, not the accumulated buffers).
template <typename T>
void batchnorm_backward_train_cpu(T* din, T* dgamma, T* dbeta, const T* dout, const T* in,
                                  const T* gamma, const T* save_mean, const T* save_invstd,
                                  const BatchNormShape& s) {
    check_shape(s, "batchnorm_backward_train_cpu");
    const double M = (double)(s.N * s.HW);
#pragma omp parallel for schedule(static) if (s.N * s.C * s.HW >= kParallelMin)
    for (i64 c = 0; c < s.C; ++c) {
        const double mean = (double)save_mean[c], invstd = (double)save_invstd[c];
        const double sum_dy = channel_sum(dout, c, s, [](T g, i64) { return (double)g; });
        const double sum_dy_xhat = channel_sum(dout, c, s, [&](T g, i64 j) {
            return (double)g * ((double)in[j] - mean) * invstd;
        });
        if (dgamma) dgamma[c] += (T)sum_dy_xhat;
        if (dbeta) dbeta[c] += (T)sum_dy;
        if (!din) continue;
        const double k = (double)gamma[c] * invstd / M;
        for (i64 n = 0; n < s.N; ++n) {
            const i64 base = (n * s.C + c) * s.HW;
            for (i64 i = 0; i < s.HW; ++i) {
                const double xhat = ((double)in[base + i] - mean) * invstd;
                din[base + i] =
                    (T)(k * (M * (double)dout[base + i] - sum_dy - xhat * sum_dy_xhat));
            }
        }
    }
}

// Inference: the statistics are constants, so y is affine in x:
//   dx = dy * gamma * invstd,  dgamma = sum dy * xhat,  dbeta = sum dy.
template <typename T>
void batchnorm_backward_infer_cpu(T* din, T* dgamma, T* dbeta, const T* dout, const T* in,
                                  const T* gamma, const T* running_mean, const T* running_var,
                                  const BatchNormShape& s) {
    check_shape(s, "batchnorm_backward_infer_cpu");
#pragma omp parallel for schedule(static) if (s.N * s.C * s.HW >= kParallelMin)
    for (i64 c = 0; c < s.C; ++c) {
        const double mean = (double)running_mean[c];
        const double invstd = 1.0 / std::sqrt((double)running_var[c] + s.eps);
        if (dgamma)
            dgamma[c] += (T)channel_sum(dout, c, s, [&](T g, i64 j) {
                return (double)g * ((double)in[j] - mean) * invstd;
            });
        if (dbeta) dbeta[c] += (T)channel_sum(dout, c, s, [](T g, i64) { return (double)g; });
        if (!din) continue;
        const double k = (double)gamma[c] * invstd;
        for (i64 n = 0; n < s.N; ++n) {
            const i64 base = (n * s.C + c) * s.HW;
            for (i64 i = 0; i < s.HW; ++i) din[base + i] = (T)(k * (double)dout[base + i]);
        }
    }
}

#define INSTANTIATE(T)                                                                          \
    template void batchnorm_forward_train_cpu<T>(T*, T*, T*, T*, T*, const T*, const T*,        \
                                                 const T*, const BatchNormShape&);              \
    template void batchnorm_forward_infer_cpu<T>(T*, const T*, const T*, const T*, const T*,    \
                                                 const T*, const BatchNormShape&);              \
    template void batchnorm_backward_train_cpu<T>(T*, T*, T*, const T*, const T*, const T*,     \
                                                  const T*, const T*, const BatchNormShape&);   \
    template void batchnorm_backward_infer_cpu<T>(T*, T*, T*, const T*, const T*, const T*,     \
                                                  const T*, const T*, const BatchNormShape&);
INSTANTIATE(float)
INSTANTIATE(double)
