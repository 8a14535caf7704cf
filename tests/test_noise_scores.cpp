// Noise scores for mining: known values against a naive softmax with the training margin, the
// link to the CE loss, a planted mislabelled sample, and bad labels.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <vector>

#include "engine/error.h"
#include "losses/margin_softmax.h"
#include "losses/noise_scores.h"
#include "losses/normalized_classifier.h"
#include "tests/test_util.h"

TEST_CASE("noise scores: known values against a naive margin softmax") {
    const double s = 6, m = 0.5;
    const std::vector<double> cos = {0.3,  0.5, -0.2, 0.1,   //
                                     -0.9, 0.2, 0.4,  0.0};  // row 1 target in the keep branch
    const std::vector<std::int32_t> labels = {1, 0};
    std::vector<double> max_p(2), p_label(2);
    std::vector<std::int32_t> pred(2);
    noise_scores_cpu(max_p.data(), p_label.data(), pred.data(), cos.data(), labels.data(), 2, 4,
                     arcface_options(s, m));
    for (int b = 0; b < 2; ++b) {
        double z[4], sum = 0;
        for (int j = 0; j < 4; ++j) z[j] = s * cos[b * 4 + j];
        const double c = cos[b * 4 + labels[b]];
        z[labels[b]] =
            c > -std::cos(m) ? s * std::cos(std::acos(c) + m) : s * (c - m * std::sin(m));
        int arg = 0;
        for (int j = 0; j < 4; ++j) {
            sum += std::exp(z[j]);
            if (z[j] > z[arg]) arg = j;
        }
        CHECK(max_p[b] == doctest::Approx(std::exp(z[arg]) / sum).epsilon(1e-12));
        CHECK(p_label[b] == doctest::Approx(std::exp(z[labels[b]]) / sum).epsilon(1e-12));
        CHECK(pred[b] == arg);
    }
}

TEST_CASE("noise scores: the label probability is exp(-CE loss)") {
    const i64 B = 8, C = 50;
    auto cos = test::random_vector<double>(B * C, 31, -0.7, 0.9);
    std::vector<std::int32_t> labels(B);
    for (i64 b = 0; b < B; ++b) labels[b] = (std::int32_t)(b * 6);
    std::vector<double> max_p(B), p_label(B), loss(B);
    noise_scores_cpu(max_p.data(), p_label.data(), (std::int32_t*)nullptr, cos.data(),
                     labels.data(), B, C, combined_margin_options(64, 0.9, 0.4, 0.15));
    margin_softmax_loss_cpu(cos.data(), loss.data(), labels.data(), B, C,
                            combined_margin_options(64, 0.9, 0.4, 0.15));
    for (i64 b = 0; b < B; ++b) {
        CHECK(p_label[b] == doctest::Approx(std::exp(-loss[b])).epsilon(1e-10));
        CHECK(max_p[b] >= p_label[b]);
    }
}

TEST_CASE("noise scores: a planted mislabelled sample gets a low label probability") {
    // A 'trained' classifier: 10 random class directions in D = 32; each sample is its class
    // direction plus noise. Sample 5 truly belongs to class 3 but is labelled 7.
    const i64 B = 12, C = 10, D = 32;
    auto W = test::random_vector<double>(C * D, 41);
    auto noise = test::random_vector<double>(B * D, 42, -0.15, 0.15);
    std::vector<std::int32_t> truth(B), labels(B);
    std::vector<double> x(B * D);
    for (i64 b = 0; b < B; ++b) {
        truth[b] = (std::int32_t)(b % C);
        labels[b] = truth[b];
    }
    truth[5] = 3;
    labels[5] = 7;
    for (i64 b = 0; b < B; ++b)
        for (i64 d = 0; d < D; ++d) x[b * D + d] = W[truth[b] * D + d] + noise[b * D + d];
    std::vector<double> cos(B * C), xn(B * D), xnorm(B), wn(C * D), wnorm(C);
    normalized_classifier_forward_cpu(cos.data(), xn.data(), xnorm.data(), wn.data(), wnorm.data(),
                                      x.data(), W.data(), B, C, D);
    std::vector<double> max_p(B), p_label(B);
    std::vector<std::int32_t> pred(B);
    noise_scores_cpu(max_p.data(), p_label.data(), pred.data(), cos.data(), labels.data(), B, C,
                     arcface_options());
    for (i64 b = 0; b < B; ++b) {
        INFO("sample ", b, " p_label ", p_label[b], " max_p ", max_p[b]);
        if (b == 5) {
            CHECK(p_label[b] < 1e-6);
            CHECK(pred[b] == 3);  // the model's own prediction is the true class
        } else {
            CHECK(p_label[b] > 0.5);
            CHECK(pred[b] == labels[b]);
        }
    }
}

TEST_CASE("noise scores: a label out of range is a DataError naming the sample") {
    std::vector<float> cos(2 * 3, 0.1f), a(2), b(2);
    const std::vector<std::int32_t> labels = {1, 3};
    try {
        noise_scores_cpu(a.data(), b.data(), (std::int32_t*)nullptr, cos.data(), labels.data(), 2,
                         3, arcface_options());
        FAIL("no error");
    } catch (const engine::DataError& e) {
        CHECK(std::string(e.what()).find("sample 1") != std::string::npos);
    }
}
