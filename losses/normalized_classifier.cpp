// The normalised classifier (cos of embeddings and classifier rows), CPU reference.
#include "losses/normalized_classifier.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/blas.h"
#include "engine/error.h"

template <typename T>
void loss_normalize_rows_cpu(T* out, T* norm, const T* in, i64 N, i64 D, const char* what) {
    // Rows are independent; the first bad row (lowest index) is reported after the loop, since
    // an exception cannot leave an OpenMP region.
    i64 bad = N;
#pragma omp parallel for schedule(static) reduction(min : bad)
    for (i64 n = 0; n < N; ++n) {
        const T* v = in + n * D;
        double ss = 0;  // accumulate in double: float rows of 512 lose nothing then
        for (i64 d = 0; d < D; ++d) ss += (double)v[d] * (double)v[d];
        const double r = std::sqrt(ss);
        if (!(r > 0) || !std::isfinite(r)) {
            bad = std::min(bad, n);
            continue;
        }
        norm[n] = (T)r;
        const double inv = 1.0 / r;
        for (i64 d = 0; d < D; ++d) out[n * D + d] = (T)(v[d] * inv);
    }
    if (bad < N) {
        const T* v = in + bad * D;
        bool finite = true;
        for (i64 d = 0; d < D; ++d) finite = finite && std::isfinite((double)v[d]);
        throw engine::DataError(
            engine::str(what, " row ", bad, " of ", N, ": ",
                        finite ? "zero vector (no direction to normalise)" : "non-finite value",
                        " in the loss input"));
    }
}

template <typename T>
void normalized_classifier_forward_cpu(T* cos, T* xn, T* xnorm, T* wn, T* wnorm, const T* x,
                                       const T* W, i64 B, i64 C, i64 D) {
    loss_normalize_rows_cpu(xn, xnorm, x, B, D, "embedding");
    loss_normalize_rows_cpu(wn, wnorm, W, C, D, "classifier weight");
    // cos (B, C) = xn (B, D) * wn^T (D, C)
    engine::gemm_cpu<T>(false, true, B, C, D, T(1), xn, wn, T(0), cos);
}

template <typename T>
void normalized_classifier_backward_cpu(T* dx, T* dW, const T* dcos, const T* xn, const T* xnorm,
                                        const T* wn, const T* wnorm, i64 B, i64 C, i64 D) {
    if (dx) {
        // g (B, D) = dcos (B, C) * wn (C, D), formed in dx itself, then projected in place
        // onto the tangent space of the unit sphere at xn and divided by |x|.
        engine::gemm_cpu<T>(false, false, B, D, C, T(1), dcos, wn, T(0), dx);
#pragma omp parallel for schedule(static)
        for (i64 b = 0; b < B; ++b) {
            T* g = dx + b * D;
            const T* u = xn + b * D;
            double dot = 0;
            for (i64 d = 0; d < D; ++d) dot += (double)g[d] * (double)u[d];
            const double inv = 1.0 / (double)xnorm[b];
            for (i64 d = 0; d < D; ++d) g[d] = (T)((g[d] - u[d] * dot) * inv);
        }
    }
    if (dW) {
        // h (chunk, D) = dcos[:, chunk]^T (chunk, B) * xn (B, D), then projected and added to
        // dW. The chunk bounds the temporary to chunk_rows x D whatever C is.
        const i64 rows = std::min<i64>(C, normalized_classifier_chunk_rows);
        std::vector<T> h((size_t)(rows * D));
        for (i64 j0 = 0; j0 < C; j0 += rows) {
            const i64 cc = std::min(rows, C - j0);
            engine::gemm_cpu<T>(true, false, cc, D, B, T(1), dcos + j0, C, xn, D, T(0), h.data(),
                                D);
#pragma omp parallel for schedule(static)
            for (i64 r = 0; r < cc; ++r) {
                const i64 j = j0 + r;
                const T* hr = h.data() + r * D;
                const T* u = wn + j * D;
                double dot = 0;
                for (i64 d = 0; d < D; ++d) dot += (double)hr[d] * (double)u[d];
                const double inv = 1.0 / (double)wnorm[j];
                T* out = dW + j * D;
                for (i64 d = 0; d < D; ++d) out[d] += (T)((hr[d] - u[d] * dot) * inv);
            }
        }
    }
}

template void loss_normalize_rows_cpu<float>(float*, float*, const float*, i64, i64, const char*);
template void loss_normalize_rows_cpu<double>(double*, double*, const double*, i64, i64,
                                              const char*);
template void normalized_classifier_forward_cpu<float>(float*, float*, float*, float*, float*,
                                                       const float*, const float*, i64, i64, i64);
template void normalized_classifier_forward_cpu<double>(double*, double*, double*, double*, double*,
                                                        const double*, const double*, i64, i64,
                                                        i64);
template void normalized_classifier_backward_cpu<float>(float*, float*, const float*, const float*,
                                                        const float*, const float*, const float*,
                                                        i64, i64, i64);
template void normalized_classifier_backward_cpu<double>(double*, double*, const double*,
                                                         const double*, const double*,
                                                         const double*, const double*, i64, i64,
                                                         i64);

size_t normalized_classifier_workspace_bytes(i64 C, i64 D) {
    return (size_t)(std::min<i64>(C, normalized_classifier_chunk_rows) * D) * sizeof(float);
}
