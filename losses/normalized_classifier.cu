// The normalised classifier, CUDA: row normalisation kernels and cuBLAS GEMMs (row-major
// matrices are handed to column-major cuBLAS as their transposes), dW in class chunks.
#include <cublas_v2.h>

#include <algorithm>

#include "engine/cuda_check.h"
#include "engine/error.h"
#include "engine/gpu_context.h"
#include "engine/nvtx.h"
#include "losses/loss_cuda_util.cuh"
#include "losses/normalized_classifier.h"

namespace {

constexpr int kThreads = 256;

int to_int(i64 v, const char* what) {
    ENGINE_CHECK(v >= 0 && v <= 0x7fffffff, engine::ShapeError,
                 "normalized_classifier_cuda: ", what, " = ", v,
                 " does not fit cuBLAS's int interface");
    return (int)v;
}

// In place: g_r = (g_r - u_r <g_r, u_r>) / norm_r, written (accumulate = false) or added to
// out_r (accumulate = true). One block per row.
__global__ void project_rows_kernel(float* out, const float* g, const float* u, const float* norm,
                                    long long D, bool accumulate) {
    const long long r = blockIdx.x;
    const float* gr = g + r * D;
    const float* ur = u + r * D;
    float dot = 0.f;
    for (long long d = threadIdx.x; d < D; d += blockDim.x) dot += gr[d] * ur[d];
    dot = loss_cuda::block_sum(dot);
    const float inv = 1.f / norm[r];
    float* o = out + r * D;
    for (long long d = threadIdx.x; d < D; d += blockDim.x) {
        const float v = (gr[d] - ur[d] * dot) * inv;
        o[d] = accumulate ? o[d] + v : v;
    }
}

}  // namespace

void normalized_classifier_forward_cuda(float* cos, float* xn, float* xnorm, float* wn,
                                        float* wnorm, const float* x, const float* W, i64 B, i64 C,
                                        i64 D, engine::GpuContext& g) {
    engine::NvtxRange range("normalized_classifier_forward");
    if (B == 0 || C == 0) return;
    loss_cuda::normalize_rows_kernel<float>
        <<<(unsigned)B, kThreads, 0, g.stream()>>>(xn, xnorm, x, D);
    CUDA_CHECK_LAUNCH();
    loss_cuda::normalize_rows_kernel<float>
        <<<(unsigned)C, kThreads, 0, g.stream()>>>(wn, wnorm, W, D);
    CUDA_CHECK_LAUNCH();
    // Row-major cos (B, C) = xn wn^T is column-major cos^T (C, B) = wn^T' xn': op(A) = T on wn
    // stored (D, C) column-major, op(B) = N on xn stored (D, B) column-major.
    const float one = 1.f, zero = 0.f;
    CUBLAS_CHECK(cublasSgemm(g.cublas(), CUBLAS_OP_T, CUBLAS_OP_N, to_int(C, "C"), to_int(B, "B"),
                             to_int(D, "D"), &one, wn, to_int(D, "D"), xn, to_int(D, "D"), &zero,
                             cos, to_int(C, "C")));
}

void normalized_classifier_backward_cuda(float* dx, float* dW, const float* dcos, const float* xn,
                                         const float* xnorm, const float* wn, const float* wnorm,
                                         i64 B, i64 C, i64 D, engine::GpuContext& g) {
    engine::NvtxRange range("normalized_classifier_backward");
    if (B == 0 || C == 0) return;
    const float one = 1.f, zero = 0.f;
    if (dx) {
        // g (B, D) = dcos (B, C) wn (C, D): column-major g^T (D, B) = wn' (D, C) dcos' (C, B).
        CUBLAS_CHECK(cublasSgemm(g.cublas(), CUBLAS_OP_N, CUBLAS_OP_N, to_int(D, "D"),
                                 to_int(B, "B"), to_int(C, "C"), &one, wn, to_int(D, "D"), dcos,
                                 to_int(C, "C"), &zero, dx, to_int(D, "D")));
        project_rows_kernel<<<(unsigned)B, kThreads, 0, g.stream()>>>(dx, dx, xn, xnorm, D, false);
        CUDA_CHECK_LAUNCH();
    }
    if (dW) {
        const i64 rows = std::min<i64>(C, normalized_classifier_chunk_rows);
        float* h = static_cast<float*>(g.workspace(normalized_classifier_workspace_bytes(C, D)));
        for (i64 j0 = 0; j0 < C; j0 += rows) {
            const i64 cc = std::min(rows, C - j0);
            // h (cc, D) = dcos[:, j0:j0+cc]^T xn: column-major h^T (D, cc) = xn' (D, B) *
            // (dcos chunk stored (cc, B) column-major with leading dimension C)^T.
            CUBLAS_CHECK(cublasSgemm(g.cublas(), CUBLAS_OP_N, CUBLAS_OP_T, to_int(D, "D"),
                                     to_int(cc, "chunk"), to_int(B, "B"), &one, xn, to_int(D, "D"),
                                     dcos + j0, to_int(C, "C"), &zero, h, to_int(D, "D")));
            project_rows_kernel<<<(unsigned)cc, kThreads, 0, g.stream()>>>(
                dW + j0 * D, h, wn + j0 * D, wnorm + j0, D, true);
            CUDA_CHECK_LAUNCH();
        }
    }
}
