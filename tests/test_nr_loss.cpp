// The NR (noise-resistance) loss: float64 gradient audit, beta = 1 equal to plain ArcFace CE
// bit for bit, known values against a naive formula, and the reduced pull of a wrong label.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "losses/gradcheck_losses.h"
#include "losses/margin_softmax.h"
#include "tests/test_util.h"

TEST_CASE("nr loss gradients (float64 central differences)") {
    int rows = 0;
    for (const auto& c : loss_gradcheck_cases()) {
        if (c.name != "nr" && c.name != "nr.beta1") continue;
        for (const auto& row : c.run()) {
            INFO(row.group, "/", row.tensor, " max rel error ", row.max_rel_error);
            CHECK(row.pass);
            CHECK(row.checked == row.total);
            ++rows;
        }
    }
    CHECK(rows == 4);
}

TEST_CASE("nr loss with beta = 1 equals plain ArcFace cross-entropy exactly") {
    const i64 B = 16, C = 37;
    auto ce = test::random_vector<double>(B * C, 71, -0.9, 0.95);
    std::vector<std::int32_t> labels(B);
    for (i64 b = 0; b < B; ++b) labels[b] = (std::int32_t)((b * 7) % C);
    // Some rows have their argmax elsewhere than the label, some at the label.
    for (i64 b = 0; b < B; b += 3) ce[b * C + labels[b]] = 0.99;
    auto nr = ce;
    std::vector<double> lce(B), lnr(B);
    const double mce = margin_softmax_loss_cpu(ce.data(), lce.data(), labels.data(), B, C,
                                               arcface_options(64, 0.5));
    const double mnr = margin_softmax_loss_cpu(nr.data(), lnr.data(), labels.data(), B, C,
                                               with_nr(arcface_options(64, 0.5), 1.0));
    CHECK(mce == mnr);
    for (i64 b = 0; b < B; ++b) CHECK(lce[b] == lnr[b]);
    for (i64 i = 0; i < B * C; ++i) CHECK(ce[i] == nr[i]);
    // The same in float.
    auto cf = test::random_vector<float>(B * C, 72, -0.9, 0.95);
    auto nf = cf;
    std::vector<float> a(B), b(B);
    margin_softmax_loss_cpu(cf.data(), a.data(), labels.data(), B, C, arcface_options());
    margin_softmax_loss_cpu(nf.data(), b.data(), labels.data(), B, C,
                            with_nr(arcface_options(), 1));
    CHECK(a == b);
    CHECK(cf == nf);
}

TEST_CASE("nr loss: known values against a naive formula") {
    // s = 10, ArcFace m = 0.5, beta = 0.7. Row 0: argmax (class 1) differs from the label 0;
    // row 1: the label is the argmax.
    const double s = 10, m = 0.5, beta = 0.7;
    std::vector<double> cos = {0.2, 0.8, -0.1, 0.9, 0.3, 0.1};
    const std::vector<std::int32_t> labels = {0, 0};
    const auto cos0 = cos;
    std::vector<double> loss(2);
    const double mean = margin_softmax_loss_cpu(cos.data(), loss.data(), labels.data(), 2, 3,
                                                with_nr(arcface_options(s, m), beta));
    double expect = 0;
    for (int b = 0; b < 2; ++b) {
        double z[3], sum = 0;
        for (int j = 0; j < 3; ++j) z[j] = s * cos0[b * 3 + j];
        z[0] = s * std::cos(std::acos(cos0[b * 3]) + m);
        int arg = 0;
        for (int j = 0; j < 3; ++j) {
            sum += std::exp(z[j]);
            if (z[j] > z[arg]) arg = j;
        }
        const double l = -(beta * std::log(std::exp(z[0]) / sum) +
                           (1 - beta) * std::log(std::exp(z[arg]) / sum));
        CHECK(loss[b] == doctest::Approx(l).epsilon(1e-12));
        expect += l / 2;
        // Gradient of a non-target, non-argmax entry: s (p_j - 0) / B; of the argmax entry of
        // row 0: s (p_1 - (1 - beta)) / B.
        if (b == 0) {
            CHECK(arg == 1);
            CHECK(cos[2] == doctest::Approx(s * std::exp(z[2]) / sum / 2).epsilon(1e-12));
            CHECK(cos[1] ==
                  doctest::Approx(s * (std::exp(z[1]) / sum - (1 - beta)) / 2).epsilon(1e-12));
        } else {
            CHECK(arg == 0);
        }
    }
    CHECK(mean == doctest::Approx(expect).epsilon(1e-12));
}

TEST_CASE("nr loss: a sample predicted as its label has the CE loss; a wrong label pulls less") {
    const i64 C = 5;
    // Row 0: label 2 is the prediction. Row 1: label 0, prediction 3 (a likely wrong label).
    const std::vector<double> cos0 = {0.1, 0.2, 0.9, -0.3, 0.0, 0.1, 0.2, 0.0, 0.95, -0.1};
    const std::vector<std::int32_t> labels = {2, 0};
    auto a = cos0, b = cos0;
    std::vector<double> lce(2), lnr(2);
    margin_softmax_loss_cpu(a.data(), lce.data(), labels.data(), 2, C, arcface_options());
    margin_softmax_loss_cpu(b.data(), lnr.data(), labels.data(), 2, C,
                            with_nr(arcface_options(), 0.9));
    CHECK(lnr[0] == doctest::Approx(lce[0]).epsilon(1e-12));
    CHECK(lnr[1] < lce[1]);
    // The pull on the wrong label's logit: |p_y - beta| < |p_y - 1|.
    CHECK(std::fabs(b[1 * C + 0]) < std::fabs(a[1 * C + 0]));
    CHECK(b[1 * C + 0] == doctest::Approx(0.9 * a[1 * C + 0]).epsilon(1e-6));  // p_y ~ 0
}
