// Gradient checks of the losses in float64: each case builds a small random problem (embeddings x,
// classifier W, labels), takes the scalar loss itself (the batch mean) as f, runs the analytic
// backward once and compares the gradients w.r.t. x and W with central differences.
// The scale is the real one (s = 64); the step is 1e-6 because s^3 makes the third derivative
// large (truncation error of the central difference ~ h^2 f''' / 6).
#include "losses/gradcheck_losses.h"

#include <cmath>
#include <cstdint>
#include <vector>

#include "engine/rng.h"
#include "losses/center_dispersed.h"
#include "losses/margin_softmax.h"
#include "losses/normalized_classifier.h"

using engine::check_gradient;
using engine::GradCheckCase;
using engine::GradCheckRow;
using engine::random_values;

namespace {

// A classification problem. Rows listed in `keep_rows` get x_b = -w_y + small noise, so that
// cos t_y ~ -0.99 sits in the arcface keep branch (cos t_y <= cos(pi - m)).
struct Problem {
    i64 B, C, D;
    std::vector<double> x, W;
    std::vector<std::int32_t> labels;
};

Problem make_problem(u64 seed, const std::vector<i64>& keep_rows) {
    Problem p{6, 5, 16, {}, {}, {}};
    p.x = random_values(p.B * p.D, seed);
    p.W = random_values(p.C * p.D, seed + 1);
    engine::Rng rng(seed + 2);
    for (i64 b = 0; b < p.B; ++b) p.labels.push_back((std::int32_t)rng.below(p.C));
    // Pull each sample towards its class a little, so target probabilities are not all tiny.
    for (i64 b = 0; b < p.B; ++b)
        for (i64 d = 0; d < p.D; ++d) p.x[b * p.D + d] += 0.3 * p.W[p.labels[b] * p.D + d];
    for (i64 b : keep_rows)
        for (i64 d = 0; d < p.D; ++d)
            p.x[b * p.D + d] = -p.W[p.labels[b] * p.D + d] + 0.05 * p.x[b * p.D + d];
    return p;
}

// The loss of the full pipeline (normalised classifier -> margin softmax), and its gradient.
double pipeline_loss(Problem& p, const MarginSoftmaxOptions& opt, std::vector<double>* cos_out) {
    std::vector<double> cos(p.B * p.C), xn(p.B * p.D), xnorm(p.B), wn(p.C * p.D), wnorm(p.C);
    normalized_classifier_forward_cpu(cos.data(), xn.data(), xnorm.data(), wn.data(), wnorm.data(),
                                      p.x.data(), p.W.data(), p.B, p.C, p.D);
    if (cos_out) *cos_out = cos;
    return margin_softmax_loss_cpu(cos.data(), (double*)nullptr, p.labels.data(), p.B, p.C, opt);
}

void pipeline_gradient(Problem& p, const MarginSoftmaxOptions& opt, std::vector<double>& dx,
                       std::vector<double>& dW) {
    std::vector<double> cos(p.B * p.C), xn(p.B * p.D), xnorm(p.B), wn(p.C * p.D), wnorm(p.C);
    normalized_classifier_forward_cpu(cos.data(), xn.data(), xnorm.data(), wn.data(), wnorm.data(),
                                      p.x.data(), p.W.data(), p.B, p.C, p.D);
    margin_softmax_loss_cpu(cos.data(), (double*)nullptr, p.labels.data(), p.B, p.C, opt);
    dx.assign(p.B * p.D, 0.0);
    dW.assign(p.C * p.D, 0.0);
    normalized_classifier_backward_cpu(dx.data(), dW.data(), cos.data(), xn.data(), xnorm.data(),
                                       wn.data(), wnorm.data(), p.B, p.C, p.D);
}

engine::GradCheckOptions loss_check_options() {
    engine::GradCheckOptions o;
    o.step = 1e-6;
    return o;
}

std::vector<GradCheckRow> check_margin_case(const std::string& name,
                                            const MarginSoftmaxOptions& opt, u64 seed,
                                            const std::vector<i64>& keep_rows) {
    Problem p = make_problem(seed, keep_rows);
    std::vector<double> dx, dW;
    pipeline_gradient(p, opt, dx, dW);
    auto f = [&] { return pipeline_loss(p, opt, nullptr); };
    const auto o = loss_check_options();
    std::vector<GradCheckRow> rows;
    rows.push_back(check_gradient(name, "embedding", p.x.data(), (i64)p.x.size(), dx.data(), f, o));
    rows.push_back(check_gradient(name, "weight", p.W.data(), (i64)p.W.size(), dW.data(), f, o));
    return rows;
}

// PyTorch InsightFace's variant: the margin is computed under no_grad, so the loss it
// differentiates is CE over z_j = s cos t_j with the constant delta_b = z_y(cos_y0) - s cos_y0
// (taken at the unperturbed point) added to the target. f below is exactly that function,
// written out naively, so its true gradient is what margin_gradient = false must give.
std::vector<GradCheckRow> check_no_margin_grad() {
    const std::string name = "arcface.no_margin_grad";
    MarginSoftmaxOptions opt = arcface_options(64.0, 0.5);
    opt.margin_gradient = false;
    Problem p = make_problem(41, {1});
    std::vector<double> dx, dW, cos0;
    pipeline_gradient(p, opt, dx, dW);
    pipeline_loss(p, opt, &cos0);
    std::vector<double> delta(p.B);
    for (i64 b = 0; b < p.B; ++b) {
        const double c = cos0[b * p.C + p.labels[b]];
        delta[b] = margin_target_logit<double>(c, opt.scale, 1, opt.m, 0, 0, 0, true, nullptr) -
                   opt.scale * c;
    }
    auto f = [&] {
        std::vector<double> cos(p.B * p.C), xn(p.B * p.D), xnorm(p.B), wn(p.C * p.D), wnorm(p.C);
        normalized_classifier_forward_cpu(cos.data(), xn.data(), xnorm.data(), wn.data(),
                                          wnorm.data(), p.x.data(), p.W.data(), p.B, p.C, p.D);
        double total = 0;
        for (i64 b = 0; b < p.B; ++b) {
            std::vector<double> z(p.C);
            double zmax = -INFINITY;
            for (i64 j = 0; j < p.C; ++j) {
                z[j] = opt.scale * cos[b * p.C + j] + (j == p.labels[b] ? delta[b] : 0.0);
                zmax = std::fmax(zmax, z[j]);
            }
            double sum = 0;
            for (i64 j = 0; j < p.C; ++j) sum += std::exp(z[j] - zmax);
            total += -(z[p.labels[b]] - zmax - std::log(sum));
        }
        return total / (double)p.B;
    };
    const auto o = loss_check_options();
    std::vector<GradCheckRow> rows;
    rows.push_back(check_gradient(name, "embedding", p.x.data(), (i64)p.x.size(), dx.data(), f, o));
    rows.push_back(check_gradient(name, "weight", p.W.data(), (i64)p.W.size(), dW.data(), f, o));
    return rows;
}

std::vector<GradCheckRow> check_center_dispersed() {
    const i64 K = 4, k = 3, N = K * k, D = 6;
    const double interweight = 1.7;
    auto e = random_values(N * D, 61);
    // Members of one identity share a direction (plus noise), as real tail triples do.
    auto base = random_values(K * D, 62);
    for (i64 n = 0; n < N; ++n)
        for (i64 d = 0; d < D; ++d) e[n * D + d] = base[(n / k) * D + d] + 0.4 * e[n * D + d];
    std::vector<double> cache(center_dispersed_cache_numel(N, D, k)), de(N * D);
    center_dispersed_forward_cpu(cache.data(), e.data(), nullptr, N, D, k, interweight);
    center_dispersed_backward_cpu(de.data(), cache.data(), N, D, k, interweight, 1.0);
    auto f = [&] {
        std::vector<double> c2(cache.size());
        return center_dispersed_forward_cpu(c2.data(), e.data(), nullptr, N, D, k, interweight);
    };
    return {check_gradient("center_dispersed", "embedding", e.data(), N * D, de.data(), f,
                           engine::GradCheckOptions{})};
}

}  // namespace

std::vector<GradCheckCase> loss_gradcheck_cases() {
    std::vector<GradCheckCase> cases;
    cases.push_back({"arcface",
                     "loss-type 4, s 64, m 0.5, full margin gradient, 2 samples in the "
                     "keep branch; (B,C,D) = (6,5,16)",
                     [] {
                         return check_margin_case("arcface", arcface_options(64, 0.5), 11, {0, 3});
                     }});
    cases.push_back({"combined_margin", "s 64, (m1, m2, m3) = (0.9, 0.4, 0.15)", [] {
                         return check_margin_case("combined_margin",
                                                  combined_margin_options(64, 0.9, 0.4, 0.15), 21,
                                                  {2});
                     }});
    cases.push_back({"cosface", "s 64, m3 0.35", [] {
                         return check_margin_case("cosface", cosface_options(64, 0.35), 31, {});
                     }});
    cases.push_back({"arcface.no_margin_grad",
                     "loss-type 4 with the margin under no_grad (PyTorch InsightFace), checked "
                     "against CE with the margin frozen at the base point",
                     check_no_margin_grad});
    cases.push_back(
        {"nr", "NR loss, beta 0.9, on loss-type-4 ArcFace",
         [] { return check_margin_case("nr", with_nr(arcface_options(64, 0.5), 0.9), 51, {4}); }});
    cases.push_back({"nr.beta1", "NR loss with beta 1 (plain ArcFace CE)", [] {
                         return check_margin_case("nr.beta1",
                                                  with_nr(arcface_options(64, 0.5), 1.0), 52, {4});
                     }});
    cases.push_back(
        {"center_dispersed", "K 4 identities x k 3, D 6, interweight 1.7", check_center_dispersed});
    return cases;
}
