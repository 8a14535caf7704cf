// PReLU with one learnt slope per channel: out = x > 0 ? x : slope[c] * x.
// Convention for every op in layers/ and losses/:
//   - foo_forward_cpu / foo_backward_cpu are the CPU reference (float and double);
//     foo_forward_cuda / foo_backward_cuda have the same arguments on device pointers (float)
//     plus the GpuContext last, and are declared here, defined in foo.cu (CUDA builds only).
//   - outputs first, inputs next, dimensions last; every pointer carries its shape.
//   - parameter gradients ACCUMULATE (+=) into the flat gradient buffer (zeroed once per step);
//     input gradients are WRITTEN (=). A null input-gradient pointer skips that work.
#pragma once
#include "engine/common.h"

namespace engine { class GpuContext; }

template <typename T>
void prelu_forward_cpu(T* out,          // (N, C, HW)
                       const T* in,     // (N, C, HW)
                       const T* slope,  // (C)
                       i64 N, i64 C, i64 HW);

template <typename T>
void prelu_backward_cpu(T* din,          // (N, C, HW) written; may be null
                        T* dslope,       // (C) accumulated
                        const T* dout,   // (N, C, HW)
                        const T* in,     // (N, C, HW)
                        const T* slope,  // (C)
                        i64 N, i64 C, i64 HW);

void prelu_forward_cuda(float* out, const float* in, const float* slope, i64 N, i64 C, i64 HW,
                        engine::GpuContext& g);
void prelu_backward_cuda(float* din, float* dslope, const float* dout, const float* in,
                         const float* slope, i64 N, i64 C, i64 HW, engine::GpuContext& g);
