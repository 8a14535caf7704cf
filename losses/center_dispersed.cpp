// Center-dispersed loss of the tail stream, CPU reference.
#include "losses/center_dispersed.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/error.h"
#include "losses/normalized_classifier.h"

namespace {
void check_shape(i64 N, i64 D, i64 k) {
    ENGINE_CHECK(k >= 1, engine::ShapeError, "center_dispersed: images per identity k = ", k,
                 " must be at least 1");
    ENGINE_CHECK(N >= 0 && D > 0, engine::ShapeError, "center_dispersed: N = ", N, ", D = ", D);
    ENGINE_CHECK(N % k == 0, engine::ShapeError, "center_dispersed: the tail part has ", N,
                 " samples, not a multiple of k = ", k, " images per identity");
}
}  // namespace

i64 center_dispersed_cache_numel(i64 N, i64 D, i64 k) {
    check_shape(N, D, k);
    const i64 K = N / k;
    return N * D + N + K * D + K + K * K;
}

template <typename T>
double center_dispersed_forward_cpu(T* cache, const T* emb, const std::int32_t* labels, i64 N,
                                    i64 D, i64 k, double interweight) {
    check_shape(N, D, k);
    const i64 K = N / k;
    if (labels)
        for (i64 n = 0; n < N; ++n) {
            const i64 first = n / k * k;
            ENGINE_CHECK(labels[n] == labels[first], engine::DataError,
                         "center_dispersed: tail samples ", first, "..", first + k - 1,
                         " should be k = ", k, " images of one identity, but sample ", n,
                         " has label ", labels[n], " and sample ", first, " label ", labels[first],
                         " (an identity with fewer than k images?)");
        }
    if (K == 0) return 0.0;
    T *u = cache, *r = u + N * D, *c = r + N, *mn = c + K * D, *G = mn + K;
    loss_normalize_rows_cpu(u, r, emb, N, D, "tail embedding");

    // Centers: mean of the k normalised embeddings, normalised again.
    i64 bad = K;
#pragma omp parallel for schedule(static) reduction(min : bad)
    for (i64 i = 0; i < K; ++i) {
        T* ci = c + i * D;
        double ss = 0;
        for (i64 d = 0; d < D; ++d) {
            double m = 0;
            for (i64 a = 0; a < k; ++a) m += (double)u[(i * k + a) * D + d];
            m /= (double)k;
            ci[d] = (T)m;
            ss += m * m;
        }
        const double norm = std::sqrt(ss);
        if (!(norm > 0)) {
            bad = std::min(bad, i);
            continue;
        }
        mn[i] = (T)norm;
        for (i64 d = 0; d < D; ++d) ci[d] = (T)((double)ci[d] / norm);
    }
    ENGINE_CHECK(bad == K, engine::DataError, "center_dispersed: identity ", bad, " (tail samples ",
                 bad * k, "..", bad * k + k - 1,
                 ") has a zero mean direction: its normalised "
                 "embeddings cancel");

    // Gram matrix of the centers and the loss over the off-diagonal entries.
    // Row sums are kept per row and added in row order, so the value is bit-identical from run
    // to run (an OpenMP reduction adds in thread-arrival order).
    std::vector<double> row_total((size_t)K, 0.0);
#pragma omp parallel for schedule(static)
    for (i64 i = 0; i < K; ++i)
        for (i64 j = 0; j < K; ++j) {
            double dot = 0;
            for (i64 d = 0; d < D; ++d) dot += (double)c[i * D + d] * (double)c[j * D + d];
            G[i * K + j] = (T)dot;
            if (i != j) row_total[(size_t)i] += dot * dot;
        }
    double total = 0;
    for (double t : row_total) total += t;
    return interweight * total / ((double)K * (double)K);
}

template <typename T>
void center_dispersed_backward_cpu(T* demb, const T* cache, i64 N, i64 D, i64 k, double interweight,
                                   double dloss) {
    check_shape(N, D, k);
    const i64 K = N / k;
    if (K == 0) return;
    const T *u = cache, *r = u + N * D, *c = r + N, *mn = c + K * D, *G = mn + K;
    const double coef = dloss * interweight * 4.0 / ((double)K * (double)K);
#pragma omp parallel for schedule(static)
    for (i64 i = 0; i < K; ++i) {
        const T* ci = c + i * D;
        // d c_i, then the centre normalisation's backward: d m_i (kept in demb of the group's
        // first row as scratch, then spread over the k rows).
        T* dm = demb + i * k * D;
        double dot = 0;
        for (i64 d = 0; d < D; ++d) {
            double v = 0;
            for (i64 j = 0; j < K; ++j)
                if (j != i) v += (double)G[i * K + j] * (double)c[j * D + d];
            v *= coef;
            dm[d] = (T)v;
            dot += v * (double)ci[d];
        }
        const double inv_m = 1.0 / (double)mn[i];
        for (i64 d = 0; d < D; ++d)
            dm[d] = (T)(((double)dm[d] - (double)ci[d] * dot) * inv_m / (double)k);  // d u_n
        // Every member gets d u_n = d m_i / k; copy first (row 0 holds it), then project.
        for (i64 a = 1; a < k; ++a) std::copy(dm, dm + D, demb + (i * k + a) * D);
        for (i64 a = 0; a < k; ++a) {
            const i64 n = i * k + a;
            T* de = demb + n * D;
            const T* un = u + n * D;
            double p = 0;
            for (i64 d = 0; d < D; ++d) p += (double)de[d] * (double)un[d];
            const double inv_r = 1.0 / (double)r[n];
            for (i64 d = 0; d < D; ++d) de[d] = (T)(((double)de[d] - (double)un[d] * p) * inv_r);
        }
    }
}

template double center_dispersed_forward_cpu<float>(float*, const float*, const std::int32_t*, i64,
                                                    i64, i64, double);
template double center_dispersed_forward_cpu<double>(double*, const double*, const std::int32_t*,
                                                     i64, i64, i64, double);
template void center_dispersed_backward_cpu<float>(float*, const float*, i64, i64, i64, double,
                                                   double);
template void center_dispersed_backward_cpu<double>(double*, const double*, i64, i64, i64, double,
                                                    double);
