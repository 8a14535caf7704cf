// Row-major GEMM on the CPU through CBLAS (OpenBLAS), for float and double:
//   C (M x N) = alpha * op(A) (M x K) * op(B) (K x N) + beta * C
// trans_a / trans_b say whether A / B are stored transposed. Leading dimensions are those of
// the stored (row-major) matrices.
#pragma once
#include "engine/common.h"

namespace engine {

template <typename T>
void gemm_cpu(bool trans_a, bool trans_b, i64 M, i64 N, i64 K, T alpha, const T* A, i64 lda,
              const T* B, i64 ldb, T beta, T* C, i64 ldc);

// Convenience with the natural leading dimensions of densely stored matrices.
template <typename T>
void gemm_cpu(bool trans_a, bool trans_b, i64 M, i64 N, i64 K, T alpha, const T* A, const T* B,
              T beta, T* C) {
    gemm_cpu(trans_a, trans_b, M, N, K, alpha, A, trans_a ? M : K, B, trans_b ? K : N, beta, C,
             N);
}

}  // namespace engine
