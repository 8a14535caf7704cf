// Shared helpers for the doctest suite: random fills, comparisons, and GPU_TEST_CASE, a case
// that is registered as skipped (with the reason printed at the end) when no GPU is usable.
#pragma once
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/rng.h"

namespace test {

inline bool gpu_present() {
    static const bool present = engine::cuda_usable();
    return present;
}
inline std::string gpu_skip_reason() {
    std::string why;
    engine::cuda_usable(&why);
    return why.empty() ? "none (GPU present)" : why;
}

// n values uniform in [lo, hi), reproducible from seed.
template <typename T>
std::vector<T> random_vector(std::int64_t n, std::uint64_t seed, double lo = -1.0,
                             double hi = 1.0) {
    engine::Rng rng(seed);
    std::vector<T> v((size_t)n);
    for (auto& x : v) x = (T)(lo + (hi - lo) * rng.uniform());
    return v;
}

template <typename T>
bool all_finite(const std::vector<T>& v) {
    for (const T& x : v)
        if (!std::isfinite((double)x)) return false;
    return true;
}

// Largest |a - b| / max(|a|, |b|, floor) over two arrays.
template <typename A, typename B>
double max_rel_diff(const A* a, const B* b, std::int64_t n, double floor = 1.0) {
    double m = 0;
    for (std::int64_t i = 0; i < n; ++i) {
        const double x = (double)a[i], y = (double)b[i];
        const double d = std::fabs(x - y) / std::fmax(std::fmax(std::fabs(x), std::fabs(y)), floor);
        if (std::isnan(d)) return INFINITY;  // a NaN is a failure, never a pass
        if (d > m) m = d;
    }
    return m;
}

// max |a - ref| / max |ref| over two arrays (scale 1 when ref is all zero): an error measured
// against the tensor's magnitude, not per element (rounding scales with the terms summed, not
// with an entry that cancels to near zero). Infinite when a has a NaN or an infinity.
template <typename A, typename R>
double scaled_diff(const std::vector<A>& a, const std::vector<R>& ref) {
    REQUIRE(a.size() == ref.size());
    double scale = 0, m = 0;
    for (const R& r : ref) scale = std::fmax(scale, std::fabs((double)r));
    if (scale == 0) scale = 1;
    for (size_t i = 0; i < a.size(); ++i) {
        if (!std::isfinite((double)a[i])) return INFINITY;
        m = std::fmax(m, std::fabs((double)a[i] - (double)ref[i]));
    }
    return m / scale;
}

}  // namespace test

#define GPU_TEST_CASE(name) TEST_CASE(name * doctest::skip(!::test::gpu_present()))
