// Row-wise L2 normalisation, CPU reference: out = x / |x| per row, with the norms saved for the
// backward pass. A row with zero or non-finite norm is a DataError naming the row.
#include "layers/l2norm.h"

#include <cmath>

#include "engine/error.h"

namespace {
// Loops over fewer elements than this run on one thread: below it the cost of waking the
// OpenMP team exceeds the work (the float64 gradient audit calls these ops thousands of times).
constexpr i64 kParallelMin = 32768;
}  // namespace

// Norms are summed in double (in a fixed order per row). The rows are checked after the
// parallel loop, because an exception must not leave an OpenMP region.
template <typename T>
void l2norm_forward_cpu(T* out, T* norm, const T* in, i64 N, i64 D) {
    ENGINE_CHECK(N >= 0 && D > 0, engine::ShapeError, "l2norm_forward_cpu: bad sizes N=", N,
                 " D=", D);
#pragma omp parallel for schedule(static) if (N * D >= kParallelMin)
    for (i64 n = 0; n < N; ++n) {
        double ss = 0;
        for (i64 d = 0; d < D; ++d) ss += (double)in[n * D + d] * (double)in[n * D + d];
        norm[n] = (T)std::sqrt(ss);
    }
    for (i64 n = 0; n < N; ++n) {
        const double r = (double)norm[n];
        ENGINE_CHECK(std::isfinite(r), engine::DataError, "l2norm_forward_cpu: row ", n, " of ", N,
                     " is not finite (norm ", r, ")");
        ENGINE_CHECK(r > 0, engine::DataError, "l2norm_forward_cpu: row ", n, " of ", N,
                     " has zero norm");
    }
#pragma omp parallel for schedule(static) if (N * D >= kParallelMin)
    for (i64 n = 0; n < N; ++n) {
        const T r = norm[n];
        for (i64 d = 0; d < D; ++d) out[n * D + d] = in[n * D + d] / r;
    }
}

// With y = x / |x|: dy/dx = (I - y y^T) / |x|, symmetric, so din = (dout - y <dout, y>) / |x|.
template <typename T>
void l2norm_backward_cpu(T* din, const T* dout, const T* out, const T* norm, i64 N, i64 D) {
    ENGINE_CHECK(N >= 0 && D > 0, engine::ShapeError, "l2norm_backward_cpu: bad sizes N=", N,
                 " D=", D);
#pragma omp parallel for schedule(static) if (N * D >= kParallelMin)
    for (i64 n = 0; n < N; ++n) {
        const T* g = dout + n * D;
        const T* y = out + n * D;
        double dot = 0;
        for (i64 d = 0; d < D; ++d) dot += (double)g[d] * (double)y[d];
        const double inv = 1.0 / (double)norm[n];
        for (i64 d = 0; d < D; ++d) din[n * D + d] = (T)(((double)g[d] - (double)y[d] * dot) * inv);
    }
}

template void l2norm_forward_cpu<float>(float*, float*, const float*, i64, i64);
template void l2norm_forward_cpu<double>(double*, double*, const double*, i64, i64);
template void l2norm_backward_cpu<float>(float*, const float*, const float*, const float*, i64,
                                         i64);
template void l2norm_backward_cpu<double>(double*, const double*, const double*, const double*,
                                          i64, i64);
