// Noise scores (max softmax probability and label probability), CPU reference.
#include "losses/noise_scores.h"

#include <algorithm>
#include <cmath>

#include "engine/error.h"

template <typename T>
void noise_scores_cpu(T* max_p, T* p_label, std::int32_t* predicted, const T* cos,
                      const std::int32_t* labels, i64 B, i64 C, const MarginSoftmaxOptions& opt) {
    ENGINE_CHECK(B >= 0 && C > 0, engine::ShapeError, "noise_scores: B = ", B, ", C = ", C);
    for (i64 b = 0; b < B; ++b)
        ENGINE_CHECK(labels[b] >= 0 && labels[b] < C, engine::DataError, "noise_scores: sample ", b,
                     " has label ", labels[b], " outside [0, ", C, ")");
    const double s = opt.scale;
    const int keep = opt.margin == MarginKind::arcface_keep;
    i64 bad = B;
#pragma omp parallel for schedule(dynamic, 1) reduction(min : bad)
    for (i64 b = 0; b < B; ++b) {
        const T* row = cos + b * C;
        const i64 y = labels[b];
        const double zy = margin_target_logit<double>((double)row[y], s, keep, opt.m, opt.m1,
                                                      opt.m2, opt.m3, true, nullptr);
        double zmax = -INFINITY;
        i64 arg = 0;
        bool finite = std::isfinite(zy);
        for (i64 j = 0; j < C; ++j) {
            const double c = (double)row[j];
            finite = finite && std::isfinite(c);
            const double z = j == y ? zy : s * c;
            if (z > zmax) {
                zmax = z;
                arg = j;
            }
        }
        if (!finite) {
            bad = std::min(bad, b);
            continue;
        }
        double sum = 0;
        for (i64 j = 0; j < C; ++j) sum += std::exp((j == y ? zy : s * (double)row[j]) - zmax);
        max_p[b] = (T)(1.0 / sum);
        p_label[b] = (T)(std::exp(zy - zmax) / sum);
        if (predicted) predicted[b] = (std::int32_t)arg;
    }
    ENGINE_CHECK(bad == B, engine::DataError, "noise_scores: sample ", bad,
                 " has a non-finite cos (non-finite embedding or classifier weight)");
}

template void noise_scores_cpu<float>(float*, float*, std::int32_t*, const float*,
                                      const std::int32_t*, i64, i64, const MarginSoftmaxOptions&);
template void noise_scores_cpu<double>(double*, double*, std::int32_t*, const double*,
                                       const std::int32_t*, i64, i64, const MarginSoftmaxOptions&);
