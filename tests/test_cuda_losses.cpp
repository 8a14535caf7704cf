// CUDA parity of the losses: the normalised classifier with the margin softmax (ArcFace CE, both
// margin-gradient modes, combined margin, NR, the seed's NR gradient scale), noise scores and the
// center-dispersed loss run in float on the GPU and are compared with the CPU reference in double
// on fresh random data.
// Without a GPU these cases are reported as skipped.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <vector>

#include "engine/gpu_context.h"
#include "engine/tensor.h"
#include "losses/center_dispersed.h"
#include "losses/margin_softmax.h"
#include "losses/noise_scores.h"
#include "losses/normalized_classifier.h"
#include "tests/test_util.h"

#ifdef ENGINE_CUDA  // the helpers serve the GPU cases only
namespace {

// max |a - b| / max |b|: the error relative to the reference tensor's scale. Elementwise
// relative error is meaningless for gradients whose entries span many orders of magnitude
// (softmax tails); a wrong index, transpose or formula shows up as O(1) here.
template <typename A>
double rel_to_max(const A* a, const std::vector<double>& b, const std::vector<char>* use = nullptr,
                  i64 row_len = 1) {
    double m = 0, e = 0;
    for (size_t i = 0; i < b.size(); ++i) {
        if (use && !(*use)[i / row_len]) continue;
        if (!std::isfinite((double)a[i])) return INFINITY;
        m = std::max(m, std::fabs(b[i]));
        e = std::max(e, std::fabs((double)a[i] - b[i]));
    }
    return m > 0 ? e / m : e;
}

struct Problem {
    i64 B, C, D;
    std::vector<double> x, W;
    std::vector<std::int32_t> labels;
};

Problem make_problem(i64 B, i64 C, i64 D, u64 seed) {
    Problem p{B,
              C,
              D,
              test::random_vector<double>(B * D, seed),
              test::random_vector<double>(C * D, seed + 1),
              {}};
    engine::Rng rng(seed + 2);
    for (i64 b = 0; b < B; ++b) p.labels.push_back((std::int32_t)rng.below(C));
    for (i64 b = 0; b < B; ++b)
        for (i64 d = 0; d < D; ++d) {
            double& v = p.x[b * D + d];
            const double w = p.W[p.labels[b] * D + d];
            // Most samples lean towards their class; every 8th points away from it (keep branch).
            v = b % 8 == 5 ? -w + 0.05 * v : v + 0.8 * w;
        }
    return p;
}

std::vector<float> to_float(const std::vector<double>& v) { return {v.begin(), v.end()}; }

}  // namespace
#endif

GPU_TEST_CASE("cuda normalized classifier + margin softmax match the CPU reference") {
#ifdef ENGINE_CUDA
    using engine::Buffer;
    using engine::Device;
    // C = 10000 spans two chunks of the dW GEMM and is not a multiple of the block size;
    // D = 300 > 256 threads, not a multiple of them, so the row loops over d take a second lap
    // (the real embedding has D = 512).
    const i64 B = 32, C = 10000, D = 300;
    const Problem p = make_problem(B, C, D, 901);
    const std::vector<MarginSoftmaxOptions> variants = {
        arcface_options(64, 0.5),
        [] {
            auto o = arcface_options(64, 0.5);
            o.margin_gradient = false;
            return o;
        }(),
        combined_margin_options(64, 0.9, 0.4, 0.15),
        cosface_options(64, 0.35),
        with_nr(arcface_options(64, 0.5), 0.9),
        [] {  // the seed's 1/4 NR gradient scale, on another margin and beta
            auto o = with_nr(combined_margin_options(64, 0.9, 0.4, 0.15), 0.7);
            o.seed_nr_grad_scale = true;
            return o;
        }()};
    engine::GpuContext g(0);
    g.reserve_workspace(normalized_classifier_workspace_bytes(C, D));
    for (const auto& opt : variants) {
        // CPU reference in double.
        std::vector<double> cos(B * C), xn(B * D), xnorm(B), wn(C * D), wnorm(C), loss(B),
            dx(B * D), dW(C * D, 0.0);
        normalized_classifier_forward_cpu(cos.data(), xn.data(), xnorm.data(), wn.data(),
                                          wnorm.data(), p.x.data(), p.W.data(), B, C, D);
        const std::vector<double> cos_ref = cos;
        // Rows whose top-two logits are closer than 0.01 may pick another argmax in float; the
        // NR gradient of such a row legitimately differs (by (1 - beta) s / B at two entries).
        std::vector<char> clear(B, 1);
        for (i64 b = 0; b < B; ++b) {
            double z1 = -INFINITY, z2 = -INFINITY;
            for (i64 j = 0; j < C; ++j) {
                const double c = cos[b * C + j];
                const double z = j == p.labels[b]
                                     ? margin_target_logit<double>(
                                           c, opt.scale, opt.margin == MarginKind::arcface_keep,
                                           opt.m, opt.m1, opt.m2, opt.m3, true, nullptr)
                                     : opt.scale * c;
                if (z > z1) {
                    z2 = z1;
                    z1 = z;
                } else if (z > z2) {
                    z2 = z;
                }
            }
            clear[b] = opt.loss != MarginLossKind::nr || z1 - z2 > 0.01;
        }
        const double mean =
            margin_softmax_loss_cpu(cos.data(), loss.data(), p.labels.data(), B, C, opt);
        // The d cos rows of unclear samples are zeroed on both sides before the classifier's
        // backward, so dW (a sum over the batch) is compared whatever the draw.
        for (i64 b = 0; b < B; ++b)
            if (!clear[b]) std::fill(cos.begin() + b * C, cos.begin() + (b + 1) * C, 0.0);
        normalized_classifier_backward_cpu(dx.data(), dW.data(), cos.data(), xn.data(),
                                           xnorm.data(), wn.data(), wnorm.data(), B, C, D);
        // GPU in float. dW starts at 0.25 everywhere to check that it accumulates.
        Buffer<float> gx(B * D, Device::cuda), gW(C * D, Device::cuda), gcos(B * C, Device::cuda),
            gxn(B * D, Device::cuda), gxnorm(B, Device::cuda), gwn(C * D, Device::cuda),
            gwnorm(C, Device::cuda), gloss(B, Device::cuda), gmean(1, Device::cuda),
            gdx(B * D, Device::cuda), gdW(C * D, Device::cuda);
        Buffer<std::int32_t> glabels(B, Device::cuda);
        gx.copy_from_host(to_float(p.x));
        gW.copy_from_host(to_float(p.W));
        glabels.copy_from_host(p.labels);
        gdW.copy_from_host(std::vector<float>(C * D, 0.25f));
        normalized_classifier_forward_cuda(gcos.data(), gxn.data(), gxnorm.data(), gwn.data(),
                                           gwnorm.data(), gx.data(), gW.data(), B, C, D, g);
        g.synchronize();
        const auto cos_gpu = gcos.to_host();
        margin_softmax_loss_cuda(gcos.data(), gloss.data(), gmean.data(), glabels.data(), B, C, opt,
                                 g);
        // to_host copies on the legacy stream, which the context's non-blocking stream is not
        // ordered with: without this the copy may read cos before the loss kernel overwrote it.
        g.synchronize();
        auto dcos_gpu = gcos.to_host();
        if (!std::all_of(clear.begin(), clear.end(), [](char c) { return c; })) {
            std::vector<float> masked = dcos_gpu;
            for (i64 b = 0; b < B; ++b)
                if (!clear[b])
                    std::fill(masked.begin() + b * C, masked.begin() + (b + 1) * C, 0.0f);
            gcos.copy_from_host(masked);
        }
        normalized_classifier_backward_cuda(gdx.data(), gdW.data(), gcos.data(), gxn.data(),
                                            gxnorm.data(), gwn.data(), gwnorm.data(), B, C, D, g);
        g.synchronize();
        auto dW_gpu = gdW.to_host();
        for (auto& v : dW_gpu) v -= 0.25f;
        INFO("margin kind ", (int)opt.margin, " loss kind ", (int)opt.loss, " margin gradient ",
             opt.margin_gradient, " seed NR scale ", opt.seed_nr_grad_scale);
        // cos: a float dot product of D = 300 unit-vector terms, error ~ sqrt(D) 2^-24 ~ 1e-6.
        CHECK(test::max_rel_diff(cos_gpu.data(), cos_ref.data(), B * C) < 1e-5);
        // Logits are s = 64 times cos, so their float error is ~64 x 1e-6 = 6e-5 absolute; the
        // per-sample loss (log-sum-exp minus a logit) carries that: 5e-4 with a floor of 1
        // leaves an 8x margin. The mean is a sum of B such values.
        const auto loss_gpu = gloss.to_host();
        CHECK(test::max_rel_diff(loss_gpu.data(), loss.data(), B) < 5e-4);
        CHECK(test::max_rel_diff(gmean.to_host().data(), &mean, 1) < 5e-4);
        // Gradients: each p_j has relative error ~6e-5 from its logit; d cos, dx (sums over C)
        // and dW (sums over B) are compared relative to their largest entry: 2e-3 is ~30x the
        // expected error, while any indexing or formula error is O(1).
        CHECK(rel_to_max(dcos_gpu.data(), cos, &clear, C) < 2e-3);
        CHECK(rel_to_max(gdx.to_host().data(), dx, &clear, D) < 2e-3);
        CHECK(rel_to_max(dW_gpu.data(), dW) < 2e-3);
    }
#endif
}

GPU_TEST_CASE("cuda margin softmax: a bad label gives a NaN loss and a zero gradient row") {
#ifdef ENGINE_CUDA
    using engine::Buffer;
    using engine::Device;
    const i64 B = 3, C = 100;
    auto cos = test::random_vector<float>(B * C, 5, -0.9, 0.9);
    const std::vector<std::int32_t> labels = {3, 100, 7};
    engine::GpuContext g(0);
    Buffer<float> gcos(B * C, Device::cuda), gloss(B, Device::cuda);
    Buffer<std::int32_t> gl(B, Device::cuda);
    gcos.copy_from_host(cos);
    gl.copy_from_host(labels);
    margin_softmax_loss_cuda(gcos.data(), gloss.data(), nullptr, gl.data(), B, C, arcface_options(),
                             g);
    g.synchronize();
    const auto loss = gloss.to_host();
    const auto d = gcos.to_host();
    CHECK(std::isfinite(loss[0]));
    CHECK(std::isnan(loss[1]));
    CHECK(std::isfinite(loss[2]));
    for (i64 j = 0; j < C; ++j) CHECK(d[C + j] == 0.0f);
#endif
}

GPU_TEST_CASE("cuda noise scores match the CPU reference") {
#ifdef ENGINE_CUDA
    using engine::Buffer;
    using engine::Device;
    const i64 B = 40, C = 5000;
    auto cos = test::random_vector<double>(B * C, 77, -0.6, 0.6);
    std::vector<std::int32_t> labels(B);
    for (i64 b = 0; b < B; ++b) {
        labels[b] = (std::int32_t)((b * 131) % C);
        if (b % 2 == 0) cos[b * C + labels[b]] = 0.99;  // z_y = 0.88 s > 0.6 s: clear winners
        if (b % 4 == 1) cos[b * C + labels[b]] = -0.95;  // below cos(pi - m): the keep branch
    }
    engine::GpuContext g(0);
    // s = 8 keeps p_label of the keep-branch rows within float's range (at s = 64 it is ~1e-50).
    for (const auto& opt : {arcface_options(), arcface_options(8, 0.5),
                            combined_margin_options(64, 0.9, 0.4, 0.15)}) {
        INFO("scale ", opt.scale);
        INFO("margin kind ", (int)opt.margin);
        std::vector<double> max_p(B), p_label(B);
        std::vector<std::int32_t> pred(B);
        noise_scores_cpu(max_p.data(), p_label.data(), pred.data(), cos.data(), labels.data(), B,
                         C, opt);
        Buffer<float> gcos(B * C, Device::cuda), gmax(B, Device::cuda), glab(B, Device::cuda);
        Buffer<std::int32_t> gl(B, Device::cuda), gpred(B, Device::cuda);
        gcos.copy_from_host(to_float(cos));
        gl.copy_from_host(labels);
        noise_scores_cuda(gmax.data(), glab.data(), gpred.data(), gcos.data(), gl.data(), B, C,
                          opt, g);
        g.synchronize();
        // cos is rounded to float (2^-24 relative) and multiplied by s = 64: logits differ by
        // ~4e-6, probabilities by that relative amount; 1e-4 absolute on values in [0, 1] is
        // ample for max_p.
        CHECK(test::max_rel_diff(gmax.to_host().data(), max_p.data(), B) < 1e-4);
        // p_label spans many decades (about 1e-10 on the unclear rows, below float's range on
        // the keep-branch rows): compare its logarithm, which carries the logit error, 1e-3
        // absolute; where the reference is below 1e-30 the GPU's float must be too.
        const auto gp_label = glab.to_host();
        for (i64 b = 0; b < B; ++b) {
            INFO("sample ", b, ": gpu p_label ", gp_label[b], ", cpu ", p_label[b]);
            if (p_label[b] > 1e-30) {
                REQUIRE(gp_label[b] > 0.f);
                CHECK(std::fabs(std::log((double)gp_label[b]) - std::log(p_label[b])) < 1e-3);
            } else {
                CHECK(gp_label[b] < 1e-30f);
            }
        }
        // Predictions agree on the rows whose label is the clear winner.
        const auto gp = gpred.to_host();
        for (i64 b = 0; b < B; ++b)
            if (b % 2 == 0) CHECK(gp[b] == pred[b]);
    }
#endif
}

GPU_TEST_CASE("cuda center-dispersed loss matches the CPU reference") {
#ifdef ENGINE_CUDA
    using engine::Buffer;
    using engine::Device;
    const i64 K = 40, k = 3, N = K * k, D = 128;
    const double w = 2.0;
    auto base = test::random_vector<double>(K * D, 81);
    auto e = test::random_vector<double>(N * D, 82);
    for (i64 n = 0; n < N; ++n)
        for (i64 d = 0; d < D; ++d) e[n * D + d] = base[(n / k) * D + d] + 0.5 * e[n * D + d];
    std::vector<double> cache(center_dispersed_cache_numel(N, D, k)), de(N * D);
    const double loss = center_dispersed_forward_cpu(cache.data(), e.data(), nullptr, N, D, k, w);
    center_dispersed_backward_cpu(de.data(), cache.data(), N, D, k, w, 1.0);
    engine::GpuContext g(0);
    Buffer<float> ge(N * D, Device::cuda), gcache(cache.size(), Device::cuda),
        gloss(1, Device::cuda), gde(N * D, Device::cuda);
    ge.copy_from_host(to_float(e));
    center_dispersed_forward_cuda(gloss.data(), gcache.data(), ge.data(), N, D, k, w, g);
    center_dispersed_backward_cuda(gde.data(), gcache.data(), N, D, k, w, 1.0, g);
    g.synchronize();
    // Float normalisations and dot products over D = 128 give ~1e-6 relative errors in G; the
    // loss (a mean of K^2 squares) and the gradient (sums over K centers) stay within 1e-4 of
    // their scale, 100x the expected error.
    const double gl = gloss.to_host()[0];
    CHECK(std::fabs(gl - loss) / loss < 1e-4);
    CHECK(rel_to_max(gde.to_host().data(), de) < 1e-4);
#endif
}
