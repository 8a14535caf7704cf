// Fully connected layer with bias: out = in * weight^T + bias (PyTorch's weight layout).
#pragma once
#include "engine/common.h"

namespace engine { class GpuContext; }

template <typename T>
void linear_forward_cpu(T* out,           // (N, OC)
                        const T* in,      // (N, IC)
                        const T* weight,  // (OC, IC)
                        const T* bias,    // (OC); may be null
                        i64 N, i64 IC, i64 OC);

template <typename T>
void linear_backward_cpu(T* din,           // (N, IC) written; may be null
                         T* dweight,       // (OC, IC) accumulated
                         T* dbias,         // (OC) accumulated; may be null
                         const T* dout,    // (N, OC)
                         const T* in,      // (N, IC)
                         const T* weight,  // (OC, IC)
                         i64 N, i64 IC, i64 OC);

void linear_forward_cuda(float* out, const float* in, const float* weight, const float* bias,
                         i64 N, i64 IC, i64 OC, engine::GpuContext& g);
void linear_backward_cuda(float* din, float* dweight, float* dbias, const float* dout,
                          const float* in, const float* weight, i64 N, i64 IC, i64 OC,
                          engine::GpuContext& g);
