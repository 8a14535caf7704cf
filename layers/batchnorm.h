// Batch normalisation over (N, HW) per channel C; also BatchNorm1d with HW = 1.
// Training: normalise with the batch mean and the biased batch variance; save mean and
// inv_std = 1 / sqrt(var + eps) for backward; update running statistics (MXNet's convention,
// as in the seed): running = momentum * running + (1 - momentum) * batch, with the biased
// variance; null running pointers skip that update. Inference: normalise with running stats.
// fix_gamma: pass gamma pointing at ones and dgamma = null.
#pragma once
#include "engine/common.h"

namespace engine { class GpuContext; }

struct BatchNormShape {
    i64 N = 0, C = 0, HW = 1;
    double eps = 2e-5;
    double momentum = 0.9;
};

template <typename T>
void batchnorm_forward_train_cpu(T* out,                // (N, C, HW)
                                 T* save_mean,          // (C) written
                                 T* save_invstd,        // (C) written
                                 T* running_mean,       // (C) updated; may be null
                                 T* running_var,        // (C) updated; may be null
                                 const T* in,           // (N, C, HW)
                                 const T* gamma,        // (C)
                                 const T* beta,         // (C)
                                 const BatchNormShape& s);

template <typename T>
void batchnorm_forward_infer_cpu(T* out, const T* in, const T* gamma, const T* beta,
                                 const T* running_mean, const T* running_var,
                                 const BatchNormShape& s);

template <typename T>
void batchnorm_backward_train_cpu(T* din,               // (N, C, HW) written; may be null
                                  T* dgamma,            // (C) accumulated; may be null
                                  T* dbeta,             // (C) accumulated
                                  const T* dout,        // (N, C, HW)
                                  const T* in,          // (N, C, HW)
                                  const T* gamma,       // (C)
                                  const T* save_mean,   // (C) from the forward
                                  const T* save_invstd, // (C) from the forward
                                  const BatchNormShape& s);

template <typename T>
void batchnorm_backward_infer_cpu(T* din, T* dgamma, T* dbeta, const T* dout, const T* in,
                                  const T* gamma, const T* running_mean, const T* running_var,
                                  const BatchNormShape& s);

void batchnorm_forward_train_cuda(float* out, float* save_mean, float* save_invstd,
                                  float* running_mean, float* running_var, const float* in,
                                  const float* gamma, const float* beta, const BatchNormShape& s,
                                  engine::GpuContext& g);
void batchnorm_forward_infer_cuda(float* out, const float* in, const float* gamma,
                                  const float* beta, const float* running_mean,
                                  const float* running_var, const BatchNormShape& s,
                                  engine::GpuContext& g);
void batchnorm_backward_train_cuda(float* din, float* dgamma, float* dbeta, const float* dout,
                                   const float* in, const float* gamma, const float* save_mean,
                                   const float* save_invstd, const BatchNormShape& s,
                                   engine::GpuContext& g);
void batchnorm_backward_infer_cuda(float* din, float* dgamma, float* dbeta, const float* dout,
                                   const float* in, const float* gamma, const float* running_mean,
                                   const float* running_var, const BatchNormShape& s,
                                   engine::GpuContext& g);
