// Fully connected layer, CUDA: cuBLAS sgemm for the three products, a bias-add kernel and a
// deterministic bias-gradient reduction. cuBLAS is column-major; the row-major tensors are read
// as their transposes (see each call).
#include <cublas_v2.h>

#include <algorithm>
#include <climits>

#include "engine/cuda_check.h"
#include "engine/gpu_context.h"
#include "engine/nvtx.h"
#include "layers/linear.h"

namespace {

// out[n, o] += bias[o] over the (N, OC) output, one thread per element.
__global__ void bias_add_kernel(float* out, const float* bias, i64 N, i64 OC) {
    const i64 total = N * OC;
    for (i64 i = blockIdx.x * (i64)blockDim.x + threadIdx.x; i < total;
         i += (i64)gridDim.x * blockDim.x)
        out[i] += bias[i % OC];
}

// dbias[o] += sum_n dout[n, o]. Block (32, 8): threadIdx.x walks 32 adjacent columns (coalesced
// rows of dout), threadIdx.y splits the rows; the 8 partial sums are added in a fixed order, so
// the result is deterministic. Grid-stride over column tiles.
constexpr int kBiasCols = 32, kBiasRows = 8;
__global__ void bias_grad_kernel(float* dbias, const float* dout, i64 N, i64 OC) {
    __shared__ float partial[kBiasRows][kBiasCols];
    for (i64 tile = blockIdx.x; tile * kBiasCols < OC; tile += gridDim.x) {
        const i64 o = tile * kBiasCols + threadIdx.x;
        float sum = 0.f;
        if (o < OC)
            for (i64 n = threadIdx.y; n < N; n += kBiasRows) sum += dout[n * OC + o];
        partial[threadIdx.y][threadIdx.x] = sum;
        __syncthreads();
        if (threadIdx.y == 0 && o < OC) {
            float s = 0.f;
            for (int r = 0; r < kBiasRows; ++r) s += partial[r][threadIdx.x];
            dbias[o] += s;
        }
        __syncthreads();  // partial is reused by the next tile
    }
}

void check_dims(i64 N, i64 IC, i64 OC, const char* who) {
    ENGINE_CHECK(N >= 0 && IC > 0 && OC > 0, engine::ShapeError, who, ": bad sizes N=", N,
                 " IC=", IC, " OC=", OC);
}

int gemm_dim(i64 v, const char* what, i64 N, i64 IC, i64 OC) {
    ENGINE_CHECK(v >= 0 && v <= INT_MAX, engine::ShapeError, "linear (N ", N, ", IC ", IC, ", OC ",
                 OC, "): ", what, " = ", v, " does not fit cuBLAS's int sizes");
    return (int)v;
}

}  // namespace

// The GpuContext's cuBLAS handle keeps CUBLAS_DEFAULT_MATH (it never enables
// CUBLAS_TF32_TENSOR_OP_MATH), so cublasSgemm computes in full fp32.
void linear_forward_cuda(float* out, const float* in, const float* weight, const float* bias,
                         i64 N, i64 IC, i64 OC, engine::GpuContext& g) {
    engine::NvtxRange r("linear_forward");
    check_dims(N, IC, OC, "linear_forward_cuda");
    if (N == 0) return;
    const int n = gemm_dim(N, "N", N, IC, OC), ic = gemm_dim(IC, "IC", N, IC, OC),
              oc = gemm_dim(OC, "OC", N, IC, OC);
    gemm_dim(N * IC, "N*IC", N, IC, OC);
    gemm_dim(N * OC, "N*OC", N, IC, OC);
    gemm_dim(OC * IC, "OC*IC", N, IC, OC);
    // Row-major out (N, OC) is column-major out^T (OC, N) = W (OC, IC) * in^T (IC, N).
    // Row-major W (OC, IC) read column-major is W^T (IC, OC), ld IC: op T gives W.
    // Row-major in (N, IC) read column-major is in^T (IC, N), ld IC: op N.
    const float one = 1.f, zero = 0.f;
    CUBLAS_CHECK(cublasSgemm(g.cublas(), CUBLAS_OP_T, CUBLAS_OP_N, oc, n, ic, &one, weight, ic, in,
                             ic, &zero, out, oc));
    if (bias) {
        const int threads = 256;
        const int blocks = (int)std::min<i64>((N * OC + threads - 1) / threads, 65535 * 8);
        bias_add_kernel<<<blocks, threads, 0, g.stream()>>>(out, bias, N, OC);
        CUDA_CHECK_LAUNCH();
    }
}

void linear_backward_cuda(float* din, float* dweight, float* dbias, const float* dout,
                          const float* in, const float* weight, i64 N, i64 IC, i64 OC,
                          engine::GpuContext& g) {
    engine::NvtxRange r("linear_backward");
    check_dims(N, IC, OC, "linear_backward_cuda");
    if (N == 0) return;  // nothing to accumulate, and din has no rows
    const int n = gemm_dim(N, "N", N, IC, OC), ic = gemm_dim(IC, "IC", N, IC, OC),
              oc = gemm_dim(OC, "OC", N, IC, OC);
    gemm_dim(N * IC, "N*IC", N, IC, OC);
    gemm_dim(N * OC, "N*OC", N, IC, OC);
    gemm_dim(OC * IC, "OC*IC", N, IC, OC);
    const float one = 1.f, zero = 0.f;
    if (din) {
        // din (N, IC) = dout (N, OC) * W (OC, IC); column-major: din^T (IC, N) = W^T (IC, OC) *
        // dout^T (OC, N). W stored row-major is W^T column-major (ld IC), dout likewise dout^T
        // (ld OC): both op N. Written: beta = 0.
        CUBLAS_CHECK(cublasSgemm(g.cublas(), CUBLAS_OP_N, CUBLAS_OP_N, ic, n, oc, &one, weight, ic,
                                 dout, oc, &zero, din, ic));
    }
    // dW (OC, IC) += dout^T (OC, N) * in (N, IC); column-major: dW^T (IC, OC) += in^T (IC, N) *
    // dout (N, OC). in stored is in^T column-major (ld IC): op N; dout stored is dout^T
    // column-major (OC, N), ld OC: op T gives dout. Accumulated: beta = 1.
    CUBLAS_CHECK(cublasSgemm(g.cublas(), CUBLAS_OP_N, CUBLAS_OP_T, ic, oc, n, &one, in, ic, dout, oc,
                             &one, dweight, ic));
    if (dbias) {
        const dim3 threads(kBiasCols, kBiasRows);
        const int blocks = (int)std::min<i64>((OC + kBiasCols - 1) / kBiasCols, 65535);
        bias_grad_kernel<<<blocks, threads, 0, g.stream()>>>(dbias, dout, N, OC);
        CUDA_CHECK_LAUNCH();
    }
}
