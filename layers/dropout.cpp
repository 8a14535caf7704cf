// Inverted dropout, CPU reference: the keep mask is a pure function of (seed, offset + i), drawn
// again in backward instead of being stored.
#include "layers/dropout.h"

#include "engine/error.h"
#include "engine/rng.h"

namespace {
// Masks of fewer elements than this are drawn on one thread: below it the cost of waking the
// OpenMP team exceeds the work (a Philox draw is ~40 multiplies, hence a lower bound than the
// other elementwise ops; the float64 gradient audit calls these ops thousands of times).
constexpr i64 kParallelMin = 4096;

void check_p(float p, const char* who) {
    ENGINE_CHECK(p >= 0.f && p < 1.f, engine::ArgError, who, ": drop probability ", p,
                 " must be in [0, 1)");
}

// y = keep_i ? x / (1 - p) : 0 with keep_i = u(seed, offset + i) >= p. Forward and backward are
// the same map (the op is linear with a diagonal Jacobian), so both call this.
template <typename T>
void apply_mask(T* y, const T* x, i64 n, float p, u64 seed, u64 offset) {
    const T keep_prob = T(1) - T(p);
#pragma omp parallel for schedule(static) if (n >= kParallelMin)
    for (i64 i = 0; i < n; ++i)
        y[i] = engine::random_uniform01(seed, offset + (u64)i) >= p ? x[i] / keep_prob : T(0);
}
}  // namespace

template <typename T>
void dropout_forward_cpu(T* out, const T* in, i64 n, float p, u64 seed, u64 offset) {
    check_p(p, "dropout_forward_cpu");
    apply_mask(out, in, n, p, seed, offset);
}

template <typename T>
void dropout_backward_cpu(T* din, const T* dout, i64 n, float p, u64 seed, u64 offset) {
    check_p(p, "dropout_backward_cpu");
    apply_mask(din, dout, n, p, seed, offset);
}

template void dropout_forward_cpu<float>(float*, const float*, i64, float, u64, u64);
template void dropout_forward_cpu<double>(double*, const double*, i64, float, u64, u64);
template void dropout_backward_cpu<float>(float*, const float*, i64, float, u64, u64);
template void dropout_backward_cpu<double>(double*, const double*, i64, float, u64, u64);
