// Margin softmax + cross-entropy / NR loss, CPU reference: one pass per row, in place.
#include "losses/margin_softmax.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/error.h"

MarginSoftmaxOptions arcface_options(double s, double m) {
    MarginSoftmaxOptions o;
    o.margin = MarginKind::arcface_keep;
    o.scale = s;
    o.m = m;
    return o;
}

MarginSoftmaxOptions combined_margin_options(double s, double m1, double m2, double m3) {
    MarginSoftmaxOptions o;
    o.margin = MarginKind::combined;
    o.scale = s;
    o.m1 = m1;
    o.m2 = m2;
    o.m3 = m3;
    return o;
}

MarginSoftmaxOptions cosface_options(double s, double m3) {
    return combined_margin_options(s, 1.0, 0.0, m3);
}

MarginSoftmaxOptions with_nr(MarginSoftmaxOptions o, double beta) {
    o.loss = MarginLossKind::nr;
    o.beta = beta;
    return o;
}

template <typename T>
double margin_softmax_loss_cpu(T* cos_to_grad, T* loss, const std::int32_t* labels, i64 B, i64 C,
                               const MarginSoftmaxOptions& opt) {
    ENGINE_CHECK(B >= 0 && C > 0, engine::ShapeError, "margin_softmax_loss: B = ", B, ", C = ", C);
    ENGINE_CHECK(opt.scale > 0, engine::ArgError, "margin_softmax_loss: scale s = ", opt.scale,
                 " must be positive");
    for (i64 b = 0; b < B; ++b)
        ENGINE_CHECK(labels[b] >= 0 && labels[b] < C, engine::DataError,
                     "margin_softmax_loss: sample ", b, " has label ", labels[b], " outside [0, ",
                     C, ")");
    if (B == 0) return 0.0;

    const double beta = opt.effective_beta();
    const double s = opt.scale;
    const double g = opt.grad_scale() / (double)B;  // chain rule of the batch mean (and scale)
    const int keep = opt.margin == MarginKind::arcface_keep;
    // Per-row losses summed in row order after the loop, so the mean is bit-identical from run
    // to run (an OpenMP reduction would add in thread-arrival order).
    std::vector<double> row_loss((size_t)B, 0.0);
    i64 bad = B;  // first sample with a non-finite cos

#pragma omp parallel for schedule(dynamic, 1) reduction(min : bad)
    for (i64 b = 0; b < B; ++b) {
        T* row = cos_to_grad + b * C;
        const i64 y = labels[b];
        double dz_dc = 0;
        const double zy = margin_target_logit<double>((double)row[y], s, keep, opt.m, opt.m1,
                                                      opt.m2, opt.m3, opt.margin_gradient, &dz_dc);
        // Pass 1: max and (first) argmax of the margin logits; finiteness.
        double zmax = -INFINITY;
        i64 arg = 0;
        bool finite = true;
        for (i64 j = 0; j < C; ++j) {
            const double c = (double)row[j];
            finite = finite && std::isfinite(c);
            const double z = j == y ? zy : s * c;
            if (z > zmax) {
                zmax = z;
                arg = j;
            }
        }
        if (!finite || !std::isfinite(zy)) {
            bad = std::min(bad, b);
            continue;
        }
        // Pass 2: e_j = exp(z_j - max) stored in place of cos, and their sum.
        double sum = 0;
        for (i64 j = 0; j < C; ++j) {
            const double z = j == y ? zy : s * (double)row[j];
            const double e = std::exp(z - zmax);
            row[j] = (T)e;
            sum += e;
        }
        const double log_sum = std::log(sum);
        const double logp_y = zy - zmax - log_sum;
        const double logp_hat = -log_sum;  // z_hat = max
        const double l = -(beta * logp_y + (1.0 - beta) * logp_hat);
        if (loss) loss[b] = (T)l;
        row_loss[(size_t)b] = l;
        // Pass 3: d l / d z_j = p_j - beta [j = y] - (1 - beta) [j = y_hat], then d z / d cos.
        const double inv_sum = 1.0 / sum;
        for (i64 j = 0; j < C; ++j) {
            double dl = (double)row[j] * inv_sum;
            if (j == y) dl -= beta;
            if (j == arg) dl -= 1.0 - beta;
            row[j] = (T)(g * (j == y ? dz_dc : s) * dl);
        }
    }
    ENGINE_CHECK(bad == B, engine::DataError, "margin_softmax_loss: sample ", bad,
                 " has a non-finite cos (non-finite embedding or classifier weight)");
    double total = 0;
    for (double l : row_loss) total += l;
    return total / (double)B;
}

template double margin_softmax_loss_cpu<float>(float*, float*, const std::int32_t*, i64, i64,
                                               const MarginSoftmaxOptions&);
template double margin_softmax_loss_cpu<double>(double*, double*, const std::int32_t*, i64, i64,
                                                const MarginSoftmaxOptions&);
