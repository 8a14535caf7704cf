// Fully connected layer, CPU reference: out = in * weight^T + bias through OpenBLAS GEMM.
#include "layers/linear.h"

#include "engine/blas.h"
#include "engine/error.h"

using engine::gemm_cpu;

namespace {
// Loops over fewer elements than this run on one thread: below it the cost of waking the
// OpenMP team exceeds the work (the float64 gradient audit calls these ops thousands of times).
constexpr i64 kParallelMin = 32768;
void check_dims(i64 N, i64 IC, i64 OC, const char* who) {
    ENGINE_CHECK(N >= 0 && IC > 0 && OC > 0, engine::ShapeError, who, ": bad sizes N=", N,
                 " IC=", IC, " OC=", OC);
}
}  // namespace

// out (N, OC) = in (N, IC) * weight^T (IC, OC), then + bias on every row.
template <typename T>
void linear_forward_cpu(T* out, const T* in, const T* weight, const T* bias, i64 N, i64 IC,
                        i64 OC) {
    check_dims(N, IC, OC, "linear_forward_cpu");
    gemm_cpu(false, true, N, OC, IC, T(1), in, weight, T(0), out);
    if (!bias) return;
#pragma omp parallel for schedule(static) if (N * OC >= kParallelMin)
    for (i64 n = 0; n < N; ++n)
        for (i64 o = 0; o < OC; ++o) out[n * OC + o] += bias[o];
}

// din (N, IC) = dout (N, OC) * weight (OC, IC); dweight (OC, IC) += dout^T (OC, N) * in (N, IC);
// dbias (OC) += sum over rows of dout (each output summed over n in order).
template <typename T>
void linear_backward_cpu(T* din, T* dweight, T* dbias, const T* dout, const T* in,
                         const T* weight, i64 N, i64 IC, i64 OC) {
    check_dims(N, IC, OC, "linear_backward_cpu");
    if (din) gemm_cpu(false, false, N, IC, OC, T(1), dout, weight, T(0), din);
    if (N > 0) gemm_cpu(true, false, OC, IC, N, T(1), dout, in, T(1), dweight);
    if (!dbias) return;
#pragma omp parallel for schedule(static) if (N * OC >= kParallelMin)
    for (i64 o = 0; o < OC; ++o) {
        T acc = 0;
        for (i64 n = 0; n < N; ++n) acc += dout[n * OC + o];
        dbias[o] += acc;
    }
}

template void linear_forward_cpu<float>(float*, const float*, const float*, const float*, i64, i64,
                                        i64);
template void linear_forward_cpu<double>(double*, const double*, const double*, const double*,
                                         i64, i64, i64);
template void linear_backward_cpu<float>(float*, float*, float*, const float*, const float*,
                                         const float*, i64, i64, i64);
template void linear_backward_cpu<double>(double*, double*, double*, const double*, const double*,
                                          const double*, i64, i64, i64);
