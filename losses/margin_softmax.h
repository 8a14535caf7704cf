// Margin softmax with cross-entropy or the NR loss (SPEC.md section 4), in one row-wise pass over
// the (B, C) cos matrix that writes the per-sample loss and d loss / d cos IN PLACE of cos.
//
// Logits: z_j = s cos t_j for j != y; the target logit z_y depends on the margin kind:
//   combined      z_y = s (cos(m1 t_y + m2) - m3)       (InsightFace loss-type 5; ArcFace is
//                                                        (1, 0.5, 0), CosFace (1, 0, 0.35))
//   arcface_keep  z_y = s (cos t_y cos m - sin t_y sin m)  if cos t_y > cos(pi - m)
//                 z_y = s (cos t_y - m sin m)               otherwise (the seed's loss-type 4)
// Loss per sample, p = softmax(z) (max-subtracted), y_hat = argmax_j z_j (first on ties):
//   softmax_ce    l = -log p_y
//   nr            l = -[beta log p_y + (1 - beta) log p_{y_hat}], no gradient through the argmax
// With beta = 1 the NR loss, its value and its gradient, are bit for bit those of softmax_ce.
//
// Gradient. The reported loss is always the batch mean. The gradient written is that of
// grad_scale * mean, where grad_scale = 1, or 1/4 with seed_nr_grad_scale (the seed divides the
// batch sum by 2B and halves again when summing two GPUs' gradients: 1/4 of the mean's).
//   d l / d z_j = p_j - beta [j = y] - (1 - beta) [j = y_hat]       (beta = 1 for softmax_ce)
//   d cos_j     = g s d l/d z_j (j != y),  d cos_y = g (d z_y / d cos t_y) d l/d z_y,  g = scale/B
// margin_gradient = false is PyTorch InsightFace's variant (margin under no_grad): the target
// then gets the gradient of plain s cos t_y, d z_y / d cos t_y = s.
//
// Finiteness at cos t_y = +-1. With t = acos(c), d sin t / d c = -c / sin t and d t / d c =
// -1 / sin t are unbounded as sin t -> 0. We evaluate them with sin t replaced by
// max(sin t, margin_sin_floor) (1e-4): exact for |t| and |pi - t| above 1e-4 rad, finite
// (|d z_y / d c| <= s (1 + m1 / 1e-4)) inside. This costs nothing where it matters: the chain
// rule multiplies d z_y / d c by d c / d x = (wn - c xn) / |x|, whose length is sin t / |x|, so
// the true gradient w.r.t. the embedding and the weights stays bounded and -> 0 with sin t.
// In float only c = +-1 exactly falls inside the floor (the next float below 1 has sin t =
// 3.5e-4). cos values outside [-1, 1] by rounding are clamped before acos.
// Special case: combined with m1 = 1 and m2 = 0 (CosFace) uses z_y = s (c - m3) directly
// (no acos), d z_y / d c = s, as InsightFace does.
//
// Errors (CPU): a label outside [0, C) -> engine::DataError naming the sample; a non-finite cos
// -> DataError naming the sample. CUDA cannot throw without synchronising the stream: there a
// bad label gives loss[b] = NaN and a zero gradient row, so it shows at the next loss read;
// callers validate labels when they build the batch (the loader does).
#pragma once
#include <cmath>
#include <cstdint>

#include "engine/common.h"

namespace engine {
class GpuContext;
}

enum class MarginKind { combined, arcface_keep };
enum class MarginLossKind { softmax_ce, nr };

// Floor on sin t in the margin derivatives (see above).
constexpr double margin_sin_floor = 1e-4;

struct MarginSoftmaxOptions {
    MarginKind margin = MarginKind::arcface_keep;  // the seed's default (loss-type 4)
    double scale = 64.0;                           // s
    double m = 0.5;                                // arcface_keep margin
    double m1 = 1.0, m2 = 0.5, m3 = 0.0;           // combined margin
    bool margin_gradient = true;                   // false: PyTorch InsightFace (no_grad margin)
    MarginLossKind loss = MarginLossKind::softmax_ce;
    double beta = 0.9;                // NR only (--noise-beta)
    bool seed_nr_grad_scale = false;  // gradient x 1/4 (the seed's NR scale)

    double grad_scale() const { return seed_nr_grad_scale ? 0.25 : 1.0; }
    double effective_beta() const { return loss == MarginLossKind::nr ? beta : 1.0; }
};

// Presets. ArcFace as the seed trains it; the combined-margin family.
MarginSoftmaxOptions arcface_options(double s = 64.0, double m = 0.5);
MarginSoftmaxOptions combined_margin_options(double s, double m1, double m2, double m3);
MarginSoftmaxOptions cosface_options(double s = 64.0, double m3 = 0.35);
// NR on top of any margin: a copy with loss = nr and the given beta.
MarginSoftmaxOptions with_nr(MarginSoftmaxOptions o, double beta = 0.9);

// Returns the mean loss over the batch. cos_to_grad: in cos t (B, C), out d(grad_scale *
// mean loss) / d cos. loss: per-sample loss (B), written; may be null.
template <typename T>
double margin_softmax_loss_cpu(T* cos_to_grad,              // (B, C) in: cos; out: d loss / d cos
                               T* loss,                     // (B) written; may be null
                               const std::int32_t* labels,  // (B)
                               i64 B, i64 C, const MarginSoftmaxOptions& opt);

// Same on device pointers. loss (B) written; mean_loss (1) written (may be null): the batch mean,
// left on the device so that reading it is the caller's (log-interval) choice.
void margin_softmax_loss_cuda(float* cos_to_grad, float* loss, float* mean_loss,
                              const std::int32_t* labels, i64 B, i64 C,
                              const MarginSoftmaxOptions& opt, engine::GpuContext& g);

// ---- the margin maths, shared by the CPU reference and the CUDA kernels ----

template <typename T>
ENGINE_HD T margin_clamp_unit(T c) {
    return c > T(1) ? T(1) : (c < T(-1) ? T(-1) : c);
}

// The target logit z_y = s * margin(cos t_y) and, in *dz_dc, d z_y / d cos t_y as the backward
// uses it (s when margin_gradient is false; the floored derivative otherwise).
template <typename T>
ENGINE_HD T margin_target_logit(T c, T s, int kind_arcface_keep, T m, T m1, T m2, T m3,
                                bool margin_gradient, T* dz_dc) {
    using std::acos;
    using std::cos;
    using std::sin;
    using std::sqrt;
    c = margin_clamp_unit(c);
    const T one = T(1), floor = T(margin_sin_floor);
    T z, d;
    if (kind_arcface_keep) {
        const T cos_m = cos(m), sin_m = sin(m);
        const T threshold = -cos_m;  // cos(pi - m)
        if (c > threshold) {
            const T sin_t = sqrt((one - c) * (one + c));  // no cancellation near |c| = 1
            z = s * (c * cos_m - sin_t * sin_m);
            // d/dc (c cos m - sin t sin m) = cos m + sin m * c / sin t
            const T sf = sin_t > floor ? sin_t : floor;
            d = s * (cos_m + sin_m * c / sf);
        } else {
            z = s * (c - m * sin_m);
            d = s;
        }
    } else if (m1 == one && m2 == T(0)) {
        z = s * (c - m3);
        d = s;
    } else {
        const T t = acos(c);
        const T sin_t = sqrt((one - c) * (one + c));  // no cancellation near |c| = 1
        z = s * (cos(m1 * t + m2) - m3);
        // d/dc cos(m1 t + m2) = -sin(m1 t + m2) m1 dt/dc,  dt/dc = -1 / sin t
        const T sf = sin_t > floor ? sin_t : floor;
        d = s * m1 * sin(m1 * t + m2) / sf;
    }
    if (dz_dc) *dz_dc = margin_gradient ? d : s;
    return z;
}
