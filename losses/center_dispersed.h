// Center-dispersed loss of the tail stream (SPEC.md section 4): the tail part holds K identities
// with k adjacent images each (N = K k rows of D). With u_n = e_n / |e_n|,
//   m_i = (1/k) sum_{a<k} u_{ik+a},  c_i = m_i / |m_i|,  G = c c^T,  C = G - I (diagonal zeroed)
//   loss = interweight * (1 / K^2) sum_{i != j} G_ij^2          (mean over all K*K entries)
// Backward (dloss the upstream factor, 1 in training):
//   d c_i = dloss * interweight * (4 / K^2) sum_{j != i} G_ij c_j      (G symmetric: 2 x 2)
//   d m_i = (d c_i - c_i <d c_i, c_i>) / |m_i|,   d u_n = d m_i / k
//   d e_n = (d u_n - u_n <d u_n, u_n>) / |e_n|                          (written)
// Edge cases: N = 0 (no tail samples on this device) gives loss 0 and nothing to do; K = 1 gives
// loss 0 and a zero gradient (one center has nothing to be dispersed from), which is what the
// formula says, so it is not an error.
// Errors (CPU): N not a multiple of k, or k < 1 -> engine::ShapeError; labels given and a group
// of k adjacent samples not sharing one label (an identity with fewer than k images) ->
// engine::DataError naming the samples; a zero or non-finite embedding, or a group whose
// normalised embeddings cancel (|m_i| = 0) -> DataError naming the row or identity.
#pragma once
#include <cstdint>

#include "engine/common.h"

namespace engine {
class GpuContext;
}

// The seed's --images-per-identity: tail identities come as triples.
constexpr i64 center_dispersed_default_k = 3;

// Elements of the forward cache, laid out as u (N, D) | |e| (N) | c (K, D) | |m| (K) | G (K, K).
i64 center_dispersed_cache_numel(i64 N, i64 D, i64 k);

// Returns the loss. labels (N) may be null (no identity check).
template <typename T>
double center_dispersed_forward_cpu(T* cache,                    // center_dispersed_cache_numel
                                    const T* emb,                // (N, D)
                                    const std::int32_t* labels,  // (N) or null
                                    i64 N, i64 D, i64 k, double interweight);

template <typename T>
void center_dispersed_backward_cpu(T* demb,         // (N, D) written
                                   const T* cache,  // from the forward
                                   i64 N, i64 D, i64 k, double interweight, double dloss = 1.0);

// CUDA: loss (1) written on the device. Shape errors are thrown on the host; data errors (zero
// rows) give non-finite values instead (no synchronisation to check them).
void center_dispersed_forward_cuda(float* loss, float* cache, const float* emb, i64 N, i64 D, i64 k,
                                   double interweight, engine::GpuContext& g);
void center_dispersed_backward_cuda(float* demb, const float* cache, i64 N, i64 D, i64 k,
                                    double interweight, double dloss, engine::GpuContext& g);
