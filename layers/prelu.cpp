// PReLU, CPU reference.
#include "layers/prelu.h"

template <typename T>
void prelu_forward_cpu(T* out, const T* in, const T* slope, i64 N, i64 C, i64 HW) {
#pragma omp parallel for collapse(2) schedule(static)
    for (i64 n = 0; n < N; ++n)
        for (i64 c = 0; c < C; ++c) {
            const i64 base = (n * C + c) * HW;
            const T a = slope[c];
            for (i64 i = 0; i < HW; ++i) {
                const T x = in[base + i];
                out[base + i] = x > 0 ? x : a * x;
            }
        }
}

// d in = dout where x > 0, slope * dout elsewhere; d slope[c] = sum over x <= 0 of dout * x.
// The slope sum runs per channel in a fixed order (n, then i), so it is deterministic.
template <typename T>
void prelu_backward_cpu(T* din, T* dslope, const T* dout, const T* in, const T* slope, i64 N,
                        i64 C, i64 HW) {
#pragma omp parallel for schedule(static)
    for (i64 c = 0; c < C; ++c) {
        const T a = slope[c];
        T ds = 0;
        for (i64 n = 0; n < N; ++n) {
            const i64 base = (n * C + c) * HW;
            for (i64 i = 0; i < HW; ++i) {
                const T x = in[base + i], g = dout[base + i];
                if (x > 0) {
                    if (din) din[base + i] = g;
                } else {
                    if (din) din[base + i] = a * g;
                    ds += g * x;
                }
            }
        }
        dslope[c] += ds;
    }
}

template void prelu_forward_cpu<float>(float*, const float*, const float*, i64, i64, i64);
template void prelu_forward_cpu<double>(double*, const double*, const double*, i64, i64, i64);
template void prelu_backward_cpu<float>(float*, float*, const float*, const float*, const float*,
                                        i64, i64, i64);
template void prelu_backward_cpu<double>(double*, double*, const double*, const double*,
                                         const double*, i64, i64, i64);
