// Inverted dropout: out = keep ? in / (1 - p) : 0, with keep = random_uniform01(seed, offset + i)
// >= p (engine/rng.h). The mask is never stored: backward draws it again from the same
// counters, and the CUDA version draws the very same mask. In inference dropout is the identity
// (the caller does not call it).
#pragma once
#include "engine/common.h"

namespace engine { class GpuContext; }

template <typename T>
void dropout_forward_cpu(T* out, const T* in, i64 n, float p, u64 seed, u64 offset);
template <typename T>
void dropout_backward_cpu(T* din, const T* dout, i64 n, float p, u64 seed, u64 offset);

void dropout_forward_cuda(float* out, const float* in, i64 n, float p, u64 seed, u64 offset,
                          engine::GpuContext& g);
void dropout_backward_cuda(float* din, const float* dout, i64 n, float p, u64 seed, u64 offset,
                           engine::GpuContext& g);
