// 2-D convolution without bias (NCHW), any kernel size, stride and padding.
// CPU reference: im2col + GEMM (OpenBLAS). CUDA: cuDNN (forward, backward data, backward filter),
// algorithms chosen once per shape and cached, workspace shared through the GpuContext.
// Conventions as in layers/prelu.h: outputs first, parameter gradients accumulate (+=), input
// gradients are written (=), a null input gradient skips that work.
#pragma once
#include <cstddef>

#include "engine/common.h"

namespace engine { class GpuContext; }

struct Conv2dShape {
    i64 N = 0, C = 0, H = 0, W = 0;  // input (N, C, H, W)
    i64 K = 0, R = 0, S = 0;         // K filters of C x R x S
    i64 stride = 1, pad = 0;         // same stride and zero padding in both directions
    i64 P() const { return (H + 2 * pad - R) / stride + 1; }  // output height
    i64 Q() const { return (W + 2 * pad - S) / stride + 1; }  // output width
    i64 in_size() const { return N * C * H * W; }
    i64 out_size() const { return N * K * P() * Q(); }
    i64 weight_size() const { return K * C * R * S; }
};

template <typename T>
void conv2d_forward_cpu(T* out,           // (N, K, P, Q)
                        const T* in,      // (N, C, H, W)
                        const T* weight,  // (K, C, R, S)
                        const Conv2dShape& s);

template <typename T>
void conv2d_backward_cpu(T* din,           // (N, C, H, W) written; may be null
                         T* dweight,       // (K, C, R, S) accumulated
                         const T* dout,    // (N, K, P, Q)
                         const T* in,      // (N, C, H, W)
                         const T* weight,  // (K, C, R, S)
                         const Conv2dShape& s);

// Chooses (once per shape, cached) the cuDNN algorithms for this shape and returns the workspace
// bytes they need; a model calls it for every conv while it is built and reserves the maximum.
size_t conv2d_prepare_cuda(const Conv2dShape& s, engine::GpuContext& g);
void conv2d_forward_cuda(float* out, const float* in, const float* weight, const Conv2dShape& s,
                         engine::GpuContext& g);
void conv2d_backward_cuda(float* din, float* dweight, const float* dout, const float* in,
                          const float* weight, const Conv2dShape& s, engine::GpuContext& g);
