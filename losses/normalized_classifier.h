// The normalised classifier of the margin losses: cos[b, j] = <x_b / |x_b|, w_j / |w_j|> for
// embeddings x (B, D) and classifier rows W (C, D). The margin and the scale s come after it.
//
// Forward saves the normalised copies and the norms; backward takes d cos (B, C) and gives
//   dx_b  = (g_b - xn_b <g_b, xn_b>) / |x_b|,  g_b = sum_j dcos[b, j] wn_j     (written)
//   dW_j += (h_j - wn_j <h_j, wn_j>) / |w_j|,  h_j = sum_b dcos[b, j] xn_b     (accumulated)
// (the derivative of v / |v| is (I - vn vn^T) / |v|). The classifier gradient is formed in
// chunks of at most normalized_classifier_chunk_rows classes, so no C x D temporary exists
// besides dW itself, and no B x C one besides the caller's cos buffer.
//
// A zero or non-finite row of x or W has no direction: the CPU forward throws engine::DataError
// naming the row. The CUDA forward cannot throw without synchronising; a zero row gives an
// infinite inverse norm there and the non-finite values show up in the loss.
#pragma once
#include <cstddef>

#include "engine/common.h"

namespace engine {
class GpuContext;
}

// Classes per chunk of the classifier-gradient GEMM (CPU and CUDA).
constexpr i64 normalized_classifier_chunk_rows = 8192;

template <typename T>
void normalized_classifier_forward_cpu(T* cos,      // (B, C) written
                                       T* xn,       // (B, D) written: x / |x|
                                       T* xnorm,    // (B) written: |x|
                                       T* wn,       // (C, D) written: W / |W|
                                       T* wnorm,    // (C) written: |W|
                                       const T* x,  // (B, D)
                                       const T* W,  // (C, D)
                                       i64 B, i64 C, i64 D);

template <typename T>
void normalized_classifier_backward_cpu(T* dx,           // (B, D) written; may be null
                                        T* dW,           // (C, D) accumulated; may be null
                                        const T* dcos,   // (B, C)
                                        const T* xn,     // (B, D) from the forward
                                        const T* xnorm,  // (B)
                                        const T* wn,     // (C, D) from the forward
                                        const T* wnorm,  // (C)
                                        i64 B, i64 C, i64 D);

// Row-wise L2 normalisation used by the losses: out[n] = in[n] / |in[n]|, norm[n] = |in[n]|.
// Throws DataError naming `what` and the row when a row is zero or not finite.
template <typename T>
void loss_normalize_rows_cpu(T* out, T* norm, const T* in, i64 N, i64 D, const char* what);

// Workspace the CUDA backward takes from GpuContext::workspace (the dW chunk): reserve it when
// building a model so that the step never grows the workspace.
size_t normalized_classifier_workspace_bytes(i64 C, i64 D);

void normalized_classifier_forward_cuda(float* cos, float* xn, float* xnorm, float* wn,
                                        float* wnorm, const float* x, const float* W, i64 B, i64 C,
                                        i64 D, engine::GpuContext& g);
void normalized_classifier_backward_cuda(float* dx, float* dW, const float* dcos, const float* xn,
                                         const float* xnorm, const float* wn, const float* wnorm,
                                         i64 B, i64 C, i64 D, engine::GpuContext& g);
