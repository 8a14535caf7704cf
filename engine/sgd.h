// SGD with momentum in MXNet's form, over the flat parameter buffer in one call:
//   v = momentum * v - lr * (rescale * g + wd * w);   w = w + v
// rescale turns summed gradients into averaged ones (e.g. 1 / num_devices). Only learnt
// parameters live in the flat buffer, so fixed values and BN statistics are never touched.
#pragma once
#include "engine/common.h"

namespace engine {
class GpuContext;

template <typename T>
void sgd_momentum_update_cpu(T* w, T* v, const T* g, i64 n, T lr, T momentum, T wd, T rescale);

void sgd_momentum_update_cuda(float* w, float* v, const float* g, i64 n, float lr, float momentum,
                              float wd, float rescale, GpuContext& ctx);
}  // namespace engine
