// Margin softmax (ArcFace loss-type 4, combined margin, CosFace) with cross-entropy and the
// normalised classifier: known values against naive formulas, the float64 gradient audit, both
// margin-gradient modes, finiteness at cos t = +-1, and bad input.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/error.h"
#include "losses/gradcheck_losses.h"
#include "losses/margin_softmax.h"
#include "losses/normalized_classifier.h"
#include "tests/test_util.h"

namespace {

void check_loss_case(const std::string& name) {
    bool found = false;
    for (const auto& c : loss_gradcheck_cases()) {
        if (c.name != name) continue;
        found = true;
        for (const auto& row : c.run()) {
            INFO(row.group, "/", row.tensor, " checked ", row.checked, " skipped ", row.skipped,
                 " max rel error ", row.max_rel_error);
            CHECK(row.pass);
            CHECK(row.checked == row.total);  // no point swallowed by the kink test
        }
    }
    CHECK(found);
}

// Naive CE of one row with the target logit given: log sum exp z - z_y (no max shift: the
// values used below are small enough for exp).
double naive_ce(const std::vector<double>& z, int y) {
    double s = 0;
    for (double v : z) s += std::exp(v);
    return std::log(s) - z[y];
}

}  // namespace

TEST_CASE("margin softmax: ArcFace CE matches a naive formula (both branches)") {
    // B = 3, C = 4, s = 8 (small enough for the naive exp), m = 0.5. Sample 2's target cos
    // -0.95 < cos(pi - 0.5) = -0.8776 is in the keep branch.
    const double s = 8, m = 0.5;
    std::vector<double> cos = {0.30, -0.20, 0.70,  0.10,  //
                               0.90, 0.40,  -0.50, 0.20,  //
                               0.05, 0.60,  -0.95, -0.30};
    const std::vector<std::int32_t> labels = {2, 0, 2};
    const std::vector<double> cos0 = cos;
    std::vector<double> loss(3);
    const double mean = margin_softmax_loss_cpu(cos.data(), loss.data(), labels.data(), 3, 4,
                                                arcface_options(s, m));
    double expect_mean = 0;
    for (int b = 0; b < 3; ++b) {
        std::vector<double> z(4);
        for (int j = 0; j < 4; ++j) z[j] = s * cos0[b * 4 + j];
        const double c = cos0[b * 4 + labels[b]];
        // cos(t + m) through acos: independent of the engine's expanded form.
        z[labels[b]] =
            c > std::cos(M_PI - m) ? s * std::cos(std::acos(c) + m) : s * (c - m * std::sin(m));
        const double l = naive_ce(z, labels[b]);
        CHECK(loss[b] == doctest::Approx(l).epsilon(1e-12));
        expect_mean += l / 3;
        // Gradient of the non-target entries: s (p_j) / B.
        double sum = 0;
        for (double v : z) sum += std::exp(v);
        for (int j = 0; j < 4; ++j)
            if (j != labels[b])
                CHECK(cos[b * 4 + j] ==
                      doctest::Approx(s * std::exp(z[j]) / sum / 3).epsilon(1e-12));
        // Keep branch: the target derivative is s (p_y - 1) / B.
        if (b == 2)
            CHECK(cos[b * 4 + 2] ==
                  doctest::Approx(s * (std::exp(z[2]) / sum - 1) / 3).epsilon(1e-12));
    }
    CHECK(mean == doctest::Approx(expect_mean).epsilon(1e-12));
}

TEST_CASE("margin softmax: combined margin (1, 0.5, 0) equals ArcFace outside the keep branch") {
    std::vector<double> a = test::random_vector<double>(5 * 7, 3, -0.8, 0.99);
    std::vector<double> b = a;
    const std::vector<std::int32_t> labels = {0, 6, 3, 3, 1};
    std::vector<double> la(5), lb(5);
    margin_softmax_loss_cpu(a.data(), la.data(), labels.data(), 5, 7, arcface_options(64, 0.5));
    margin_softmax_loss_cpu(b.data(), lb.data(), labels.data(), 5, 7,
                            combined_margin_options(64, 1.0, 0.5, 0.0));
    CHECK(test::max_rel_diff(la.data(), lb.data(), 5) < 1e-12);
    CHECK(test::max_rel_diff(a.data(), b.data(), 5 * 7) < 1e-10);
}

TEST_CASE("margin softmax gradients (float64 central differences)") {
    for (const char* name : {"arcface", "combined_margin", "cosface", "arcface.no_margin_grad"}) {
        INFO("case ", name);
        check_loss_case(name);
    }
}

TEST_CASE("margin softmax: the two margin-gradient modes differ on the main branch only") {
    // Target cos 0.6 (main branch) in row 0, -0.95 (keep branch) in row 1.
    const std::vector<double> cos0 = {0.6, 0.1, -0.2, 0.3, -0.95, 0.2};
    const std::vector<std::int32_t> labels = {0, 1};
    auto full = cos0, nograd = cos0;
    MarginSoftmaxOptions o = arcface_options(64, 0.5);
    margin_softmax_loss_cpu(full.data(), (double*)nullptr, labels.data(), 2, 3, o);
    o.margin_gradient = false;
    margin_softmax_loss_cpu(nograd.data(), (double*)nullptr, labels.data(), 2, 3, o);
    // Main branch: d z_y / d c = s (cos m + sin m c / sin t) vs s: ratio as the formula says.
    const double c = 0.6, st = std::sqrt(1 - c * c);
    CHECK(full[0] / nograd[0] == doctest::Approx(std::cos(0.5) + std::sin(0.5) * c / st));
    // Keep branch: z_y = s (c - m sin m) has derivative s in both modes.
    CHECK(full[4] == nograd[4]);
    // Non-target entries are the same.
    CHECK(full[1] == nograd[1]);
    CHECK(full[5] == nograd[5]);
}

TEST_CASE("margin softmax: finite loss and gradients at cos t = +-1") {
    const double eps = 1e-12;
    // Target cos at and next to the ends, and just outside [-1, 1] as float rounding gives.
    const std::vector<double> targets = {1.0, -1.0, 1.0 - eps, -1.0 + eps, 1.0 + 1e-7, -1.0 - 1e-7};
    const std::vector<MarginSoftmaxOptions> kinds = {
        arcface_options(64, 0.5), combined_margin_options(64, 0.9, 0.4, 0.15),
        combined_margin_options(64, 1.0, 0.5, 0.0), cosface_options(64, 0.35)};
    for (const auto& base : kinds)
        for (bool mg : {true, false}) {
            MarginSoftmaxOptions o = base;
            o.margin_gradient = mg;
            const i64 B = (i64)targets.size(), C = 3;
            std::vector<double> cos(B * C, 0.2);
            std::vector<std::int32_t> labels(B, 1);
            for (i64 b = 0; b < B; ++b) cos[b * C + 1] = targets[b];
            std::vector<double> loss(B);
            const double mean =
                margin_softmax_loss_cpu(cos.data(), loss.data(), labels.data(), B, C, o);
            CHECK(std::isfinite(mean));
            CHECK(test::all_finite(loss));
            CHECK(test::all_finite(cos));
            // And in float.
            std::vector<float> cf(B * C, 0.2f), lf(B);
            for (i64 b = 0; b < B; ++b) cf[b * C + 1] = (float)targets[b];
            margin_softmax_loss_cpu(cf.data(), lf.data(), labels.data(), B, C, o);
            CHECK(test::all_finite(cf));
            CHECK(test::all_finite(lf));
        }
    // The whole pipeline with an embedding equal to its class weight (cos t_y = 1 exactly) and
    // one equal to minus it (cos t_y = -1): dx and dW finite.
    const i64 B = 2, C = 3, D = 4;
    std::vector<double> W = test::random_vector<double>(C * D, 5), x(B * D);
    for (i64 d = 0; d < D; ++d) {
        x[d] = W[2 * D + d];
        x[D + d] = -W[0 * D + d];
    }
    const std::vector<std::int32_t> labels = {2, 0};
    std::vector<double> cos(B * C), xn(B * D), xnorm(B), wn(C * D), wnorm(C), dx(B * D), dW(C * D);
    normalized_classifier_forward_cpu(cos.data(), xn.data(), xnorm.data(), wn.data(), wnorm.data(),
                                      x.data(), W.data(), B, C, D);
    margin_softmax_loss_cpu(cos.data(), (double*)nullptr, labels.data(), B, C,
                            combined_margin_options(64, 0.9, 0.4, 0.15));
    normalized_classifier_backward_cpu(dx.data(), dW.data(), cos.data(), xn.data(), xnorm.data(),
                                       wn.data(), wnorm.data(), B, C, D);
    CHECK(test::all_finite(dx));
    CHECK(test::all_finite(dW));
}

TEST_CASE("margin softmax: seed NR gradient scale is exactly 1/4, the loss value unchanged") {
    auto a = test::random_vector<double>(4 * 6, 9, -0.9, 0.9);
    auto b = a;
    const std::vector<std::int32_t> labels = {5, 0, 2, 2};
    MarginSoftmaxOptions o = with_nr(arcface_options(), 0.9);
    const double la = margin_softmax_loss_cpu(a.data(), (double*)nullptr, labels.data(), 4, 6, o);
    o.seed_nr_grad_scale = true;
    const double lb = margin_softmax_loss_cpu(b.data(), (double*)nullptr, labels.data(), 4, 6, o);
    CHECK(la == lb);
    for (int i = 0; i < 24; ++i) CHECK(b[i] == doctest::Approx(a[i] / 4).epsilon(1e-15));
}

TEST_CASE("normalized classifier: cos and chunked classifier gradient against naive formulas") {
    // C spans three chunks of the dW GEMM.
    const i64 B = 3, C = 2 * normalized_classifier_chunk_rows + 5, D = 4;
    auto x = test::random_vector<double>(B * D, 21), W = test::random_vector<double>(C * D, 22);
    auto dcos = test::random_vector<double>(B * C, 23);
    std::vector<double> cos(B * C), xn(B * D), xnorm(B), wn(C * D), wnorm(C), dx(B * D),
        dW(C * D, 0.5);  // dW accumulates onto 0.5
    normalized_classifier_forward_cpu(cos.data(), xn.data(), xnorm.data(), wn.data(), wnorm.data(),
                                      x.data(), W.data(), B, C, D);
    normalized_classifier_backward_cpu(dx.data(), dW.data(), dcos.data(), xn.data(), xnorm.data(),
                                       wn.data(), wnorm.data(), B, C, D);
    auto norm = [&](const double* v) {
        double s = 0;
        for (i64 d = 0; d < D; ++d) s += v[d] * v[d];
        return std::sqrt(s);
    };
    double max_cos_err = 0, max_dw_err = 0, max_dx_err = 0;
    for (i64 b = 0; b < B; ++b)
        for (i64 j = 0; j < C; ++j) {
            double dot = 0;
            for (i64 d = 0; d < D; ++d) dot += x[b * D + d] * W[j * D + d];
            const double c = dot / (norm(&x[b * D]) * norm(&W[j * D]));
            max_cos_err = std::fmax(max_cos_err, std::fabs(c - cos[b * C + j]));
        }
    // d cos_bj / d W_j = (xn_b - c_bj wn_j) / |W_j|; d cos_bj / d x_b = (wn_j - c_bj xn_b) / |x_b|.
    for (i64 j = 0; j < C; j += 997)
        for (i64 d = 0; d < D; ++d) {
            double g = 0.5;
            for (i64 b = 0; b < B; ++b)
                g += dcos[b * C + j] * (xn[b * D + d] - cos[b * C + j] * wn[j * D + d]) / wnorm[j];
            max_dw_err = std::fmax(max_dw_err, std::fabs(g - dW[j * D + d]));
        }
    for (i64 b = 0; b < B; ++b)
        for (i64 d = 0; d < D; ++d) {
            double g = 0;
            for (i64 j = 0; j < C; ++j)
                g += dcos[b * C + j] * (wn[j * D + d] - cos[b * C + j] * xn[b * D + d]) / xnorm[b];
            max_dx_err =
                std::fmax(max_dx_err, std::fabs(g - dx[b * D + d]) / std::fmax(1, std::fabs(g)));
        }
    CHECK(max_cos_err < 1e-14);
    CHECK(max_dw_err < 1e-13);
    CHECK(max_dx_err < 1e-11);  // sums of ~16K terms
}

TEST_CASE("margin softmax: bad input gets a DataError naming the sample") {
    std::vector<double> cos(3 * 4, 0.1);
    std::vector<std::int32_t> labels = {0, 1, 4};
    try {
        margin_softmax_loss_cpu(cos.data(), (double*)nullptr, labels.data(), 3, 4,
                                arcface_options());
        FAIL("no error for label 4 of 4 classes");
    } catch (const engine::DataError& e) {
        CHECK(std::string(e.what()).find("sample 2") != std::string::npos);
        CHECK(std::string(e.what()).find("label 4") != std::string::npos);
    }
    labels = {0, -1, 1};
    CHECK_THROWS_AS(margin_softmax_loss_cpu(cos.data(), (double*)nullptr, labels.data(), 3, 4,
                                            arcface_options()),
                    engine::DataError);
    labels = {0, 1, 2};
    cos[1 * 4 + 3] = NAN;
    try {
        margin_softmax_loss_cpu(cos.data(), (double*)nullptr, labels.data(), 3, 4,
                                arcface_options());
        FAIL("no error for a NaN cos");
    } catch (const engine::DataError& e) {
        CHECK(std::string(e.what()).find("sample 1") != std::string::npos);
    }
    // Non-finite embedding and zero classifier row, caught by the normalised classifier.
    std::vector<double> x = {1, 2, INFINITY, 4, 1, 1};    // (B 2, D 3)
    std::vector<double> W = {1, 0, 0, 0, 1, 0, 0, 0, 1};  // (C 3, D 3)
    std::vector<double> c(2 * 3), xn(6), xnorm(2), wn(9), wnorm(3);
    try {
        normalized_classifier_forward_cpu(c.data(), xn.data(), xnorm.data(), wn.data(),
                                          wnorm.data(), x.data(), W.data(), 2, 3, 3);
        FAIL("no error for an infinite embedding");
    } catch (const engine::DataError& e) {
        CHECK(std::string(e.what()).find("embedding row 0") != std::string::npos);
    }
    x = {1, 2, 3, 4, 1, 1};
    W = {1, 0, 0, 0, 0, 0, 0, 0, 1};
    try {
        normalized_classifier_forward_cpu(c.data(), xn.data(), xnorm.data(), wn.data(),
                                          wnorm.data(), x.data(), W.data(), 2, 3, 3);
        FAIL("no error for a zero classifier row");
    } catch (const engine::DataError& e) {
        CHECK(std::string(e.what()).find("classifier weight row 1") != std::string::npos);
    }
}
