// Small elementwise ops: the residual add, gradient accumulation where a tensor fans out, and
// the input normalisation the network applies to raw 0..255 pixels. Flatten needs no op: NCHW is
// contiguous, so (N, C, H, W) is already (N, C*H*W).
#pragma once
#include "engine/common.h"

namespace engine { class GpuContext; }

constexpr double kInputMean = 127.5, kInputScale = 0.0078125;

template <typename T>
void add_forward_cpu(T* out, const T* a, const T* b, i64 n);  // out = a + b
template <typename T>
void accumulate_cpu(T* dst, const T* src, i64 n);  // dst += src
template <typename T>
void input_normalize_cpu(T* out, const T* in, i64 n);  // out = (in - 127.5) * 0.0078125

void add_forward_cuda(float* out, const float* a, const float* b, i64 n, engine::GpuContext& g);
void accumulate_cuda(float* dst, const float* src, i64 n, engine::GpuContext& g);
void input_normalize_cuda(float* out, const float* in, i64 n, engine::GpuContext& g);
