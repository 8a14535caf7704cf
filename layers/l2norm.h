// Row-wise L2 normalisation: out[n] = in[n] / |in[n]|, norms saved for backward:
//   din = (dout - out * <dout, out>) / |in|.
// A zero row has no direction: forward throws engine::DataError naming the row (CPU); callers
// that must never throw check norms first.
#pragma once
#include "engine/common.h"

namespace engine { class GpuContext; }

template <typename T>
void l2norm_forward_cpu(T* out,       // (N, D)
                        T* norm,      // (N) written
                        const T* in,  // (N, D)
                        i64 N, i64 D);
template <typename T>
void l2norm_backward_cpu(T* din,         // (N, D) written
                         const T* dout,  // (N, D)
                         const T* out,   // (N, D) from the forward
                         const T* norm,  // (N) from the forward
                         i64 N, i64 D);

void l2norm_forward_cuda(float* out, float* norm, const float* in, i64 N, i64 D,
                         engine::GpuContext& g);
void l2norm_backward_cuda(float* din, const float* dout, const float* out, const float* norm, i64 N,
                          i64 D, engine::GpuContext& g);
