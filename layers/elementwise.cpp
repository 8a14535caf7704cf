// Elementwise ops, CPU reference: residual add, gradient accumulation, input normalisation.
#include "layers/elementwise.h"

namespace {
// Loops over fewer elements than this run on one thread: below it the cost of waking the
// OpenMP team exceeds the work (the float64 gradient audit calls these ops thousands of times).
constexpr i64 kParallelMin = 32768;
}  // namespace

template <typename T>
void add_forward_cpu(T* out, const T* a, const T* b, i64 n) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
    for (i64 i = 0; i < n; ++i) out[i] = a[i] + b[i];
}

template <typename T>
void accumulate_cpu(T* dst, const T* src, i64 n) {
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
    for (i64 i = 0; i < n; ++i) dst[i] += src[i];
}

// (x - 127.5) * 0.0078125 maps 0..255 onto [-0.99609375, 0.99609375]; both constants and every
// result are exact in float (0.0078125 = 2^-7), so CPU and GPU agree bit for bit.
template <typename T>
void input_normalize_cpu(T* out, const T* in, i64 n) {
    const T mean = (T)kInputMean, scale = (T)kInputScale;
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
    for (i64 i = 0; i < n; ++i) out[i] = (in[i] - mean) * scale;
}

#define INSTANTIATE(T)                                                  \
    template void add_forward_cpu<T>(T*, const T*, const T*, i64);      \
    template void accumulate_cpu<T>(T*, const T*, i64);                 \
    template void input_normalize_cpu<T>(T*, const T*, i64);
INSTANTIATE(float)
INSTANTIATE(double)
