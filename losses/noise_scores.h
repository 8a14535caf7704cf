// Noise scores for mining (SPEC.md section 5): per sample, with the margin applied to the label's
// logit exactly as in training (MarginSoftmaxOptions), p = softmax(z) and
//   max_p[b]   = max_j p_j  = 1 / sum_j exp(z_j - max z)
//   p_label[b] = p_y        = exp(z_y - max z) / sum_j exp(z_j - max z)
//   predicted[b] = argmax_j z_j (first on ties).
// A sample is noise when max_p < threshold (0.007 in the seed); the caller writes the list.
// cos is only read (the mining pass has no backward). Errors as margin_softmax_loss_cpu.
#pragma once
#include <cstdint>

#include "engine/common.h"
#include "losses/margin_softmax.h"

namespace engine {
class GpuContext;
}

template <typename T>
void noise_scores_cpu(T* max_p,                    // (B) written
                      T* p_label,                  // (B) written
                      std::int32_t* predicted,     // (B) written; may be null
                      const T* cos,                // (B, C)
                      const std::int32_t* labels,  // (B)
                      i64 B, i64 C, const MarginSoftmaxOptions& opt);

void noise_scores_cuda(float* max_p, float* p_label, std::int32_t* predicted, const float* cos,
                       const std::int32_t* labels, i64 B, i64 C, const MarginSoftmaxOptions& opt,
                       engine::GpuContext& g);
