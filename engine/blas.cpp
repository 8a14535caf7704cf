// CBLAS wrappers (OpenBLAS). Sizes are 64-bit in the engine; CBLAS takes int, so larger matrices
// are refused with a clear error instead of silently overflowing.
#include "engine/blas.h"

#include <cblas.h>

#include <climits>

#include "engine/error.h"

namespace engine {
namespace {
int to_int(i64 v, const char* what) {
    ENGINE_CHECK(v >= 0 && v <= INT_MAX, ShapeError, "gemm_cpu: ", what, " = ", v,
                 " does not fit the CBLAS int interface");
    return (int)v;
}
}  // namespace

template <>
void gemm_cpu<float>(bool ta, bool tb, i64 M, i64 N, i64 K, float alpha, const float* A, i64 lda,
                     const float* B, i64 ldb, float beta, float* C, i64 ldc) {
    if (M == 0 || N == 0) return;
    cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                to_int(M, "M"), to_int(N, "N"), to_int(K, "K"), alpha, A, to_int(lda, "lda"), B,
                to_int(ldb, "ldb"), beta, C, to_int(ldc, "ldc"));
}

template <>
void gemm_cpu<double>(bool ta, bool tb, i64 M, i64 N, i64 K, double alpha, const double* A,
                      i64 lda, const double* B, i64 ldb, double beta, double* C, i64 ldc) {
    if (M == 0 || N == 0) return;
    cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
                to_int(M, "M"), to_int(N, "N"), to_int(K, "K"), alpha, A, to_int(lda, "lda"), B,
                to_int(ldb, "ldb"), beta, C, to_int(ldc, "ldc"));
}

}  // namespace engine
