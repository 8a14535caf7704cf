// BatchNorm CPU reference: normalised statistics, the running-average update, inference with
// running statistics, accumulation of parameter gradients, properties of the training gradient,
// and the float64 gradient audit rows.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "layers/batchnorm.h"
#include "layers/gradcheck_layers.h"
#include "tests/test_util.h"

namespace {

BatchNormShape bn_shape(i64 N, i64 C, i64 HW) {
    BatchNormShape s;
    s.N = N; s.C = C; s.HW = HW;
    return s;
}

// Per-channel mean and biased variance of x (N, C, HW), computed here in double.
void channel_stats(const std::vector<double>& x, const BatchNormShape& s, std::vector<double>& mean,
                   std::vector<double>& var) {
    const double M = (double)(s.N * s.HW);
    mean.assign(s.C, 0.0);
    var.assign(s.C, 0.0);
    for (i64 n = 0; n < s.N; ++n)
        for (i64 c = 0; c < s.C; ++c)
            for (i64 i = 0; i < s.HW; ++i) mean[c] += x[(n * s.C + c) * s.HW + i] / M;
    for (i64 n = 0; n < s.N; ++n)
        for (i64 c = 0; c < s.C; ++c)
            for (i64 i = 0; i < s.HW; ++i) {
                const double d = x[(n * s.C + c) * s.HW + i] - mean[c];
                var[c] += d * d / M;
            }
}

}  // namespace

TEST_CASE("batchnorm train: output has per-channel mean 0 and variance 1 (gamma 1, beta 0)") {
    const BatchNormShape s = bn_shape(8, 4, 9);
    const i64 n = s.N * s.C * s.HW;
    // Channel-dependent offsets and scales, so a wrong channel index shows.
    auto x = test::random_vector<double>(n, 201, -1, 1);
    for (i64 k = 0; k < n; ++k) {
        const i64 c = (k / s.HW) % s.C;
        x[k] = 3.0 * (double)(c + 1) * x[k] + 10.0 * (double)c;
    }
    std::vector<double> gamma(s.C, 1.0), beta(s.C, 0.0), out(n), mean(s.C), invstd(s.C);
    batchnorm_forward_train_cpu(out.data(), mean.data(), invstd.data(), (double*)nullptr,
                                (double*)nullptr, x.data(), gamma.data(), beta.data(), s);
    std::vector<double> xm, xv, om, ov;
    channel_stats(x, s, xm, xv);
    channel_stats(out, s, om, ov);
    for (i64 c = 0; c < s.C; ++c) {
        INFO("channel ", c);
        CHECK(std::fabs(om[c]) < 1e-12);
        // var(out) = var / (var + eps), just below 1.
        CHECK(ov[c] == doctest::Approx(xv[c] / (xv[c] + s.eps)).epsilon(1e-12));
        CHECK(std::fabs(ov[c] - 1.0) < 1e-4);
        CHECK(mean[c] == doctest::Approx(xm[c]).epsilon(1e-12));
        CHECK(invstd[c] == doctest::Approx(1.0 / std::sqrt(xv[c] + s.eps)).epsilon(1e-12));
    }
}

TEST_CASE("batchnorm train: gamma and beta set the output's std and mean (float)") {
    const BatchNormShape s = bn_shape(6, 3, 10);
    const i64 n = s.N * s.C * s.HW;
    auto xf = test::random_vector<float>(n, 202, -2, 5);
    std::vector<float> gamma = {0.5f, 2.0f, 1.5f}, beta = {-1.0f, 0.25f, 3.0f};
    std::vector<float> out(n), mean(s.C), invstd(s.C);
    batchnorm_forward_train_cpu(out.data(), mean.data(), invstd.data(), (float*)nullptr,
                                (float*)nullptr, xf.data(), gamma.data(), beta.data(), s);
    std::vector<double> od(out.begin(), out.end()), om, ov;
    channel_stats(od, s, om, ov);
    for (i64 c = 0; c < s.C; ++c) {
        INFO("channel ", c);
        // float rounding of 60 outputs of magnitude ~5: 1e-5 absolute is ample.
        CHECK(std::fabs(om[c] - beta[c]) < 1e-5);
        CHECK(std::fabs(std::sqrt(ov[c]) - gamma[c]) < 1e-4);
    }
}

TEST_CASE("batchnorm train: running stats become 0.9 * old + 0.1 * batch (biased variance)") {
    const BatchNormShape s = bn_shape(5, 3, 4);
    const i64 n = s.N * s.C * s.HW;
    auto x = test::random_vector<double>(n, 203, -3, 2);
    std::vector<double> gamma(s.C, 1.0), beta(s.C, 0.0), out(n), mean(s.C), invstd(s.C);
    std::vector<double> rmean = {0.5, -1.0, 2.0}, rvar = {1.0, 0.25, 4.0};
    const std::vector<double> old_mean = rmean, old_var = rvar;
    batchnorm_forward_train_cpu(out.data(), mean.data(), invstd.data(), rmean.data(), rvar.data(),
                                x.data(), gamma.data(), beta.data(), s);
    std::vector<double> bm, bv;
    channel_stats(x, s, bm, bv);
    for (i64 c = 0; c < s.C; ++c) {
        INFO("channel ", c);
        CHECK(rmean[c] == doctest::Approx(0.9 * old_mean[c] + 0.1 * bm[c]).epsilon(1e-12));
        CHECK(rvar[c] == doctest::Approx(0.9 * old_var[c] + 0.1 * bv[c]).epsilon(1e-12));
    }
}

TEST_CASE("batchnorm infer uses the running statistics, not the batch's") {
    const BatchNormShape s = bn_shape(3, 2, 5);
    const i64 n = s.N * s.C * s.HW;
    auto x = test::random_vector<double>(n, 204, -1, 1);
    const std::vector<double> gamma = {1.5, 0.5}, beta = {0.1, -0.2};
    const std::vector<double> rmean = {0.3, -0.7}, rvar = {2.0, 0.5};
    std::vector<double> out(n);
    batchnorm_forward_infer_cpu(out.data(), x.data(), gamma.data(), beta.data(), rmean.data(),
                                rvar.data(), s);
    for (i64 k = 0; k < n; ++k) {
        const i64 c = (k / s.HW) % s.C;
        const double expect = gamma[c] * (x[k] - rmean[c]) / std::sqrt(rvar[c] + 2e-5) + beta[c];
        CHECK(out[k] == doctest::Approx(expect).epsilon(1e-12));
    }
}

TEST_CASE("batchnorm backward: parameter gradients accumulate, din is orthogonal to 1 and xhat") {
    const BatchNormShape s = bn_shape(4, 3, 6);
    const i64 n = s.N * s.C * s.HW;
    auto x = test::random_vector<double>(n, 205, -2, 2), dy = test::random_vector<double>(n, 206);
    const std::vector<double> gamma = {0.7, 1.3, -0.4}, beta = {0.0, 0.5, -0.5};
    std::vector<double> out(n), mean(s.C), invstd(s.C), din(n);
    batchnorm_forward_train_cpu(out.data(), mean.data(), invstd.data(), (double*)nullptr,
                                (double*)nullptr, x.data(), gamma.data(), beta.data(), s);
    std::vector<double> dgamma(s.C, 1.0), dbeta(s.C, -2.0);  // accumulate onto these
    batchnorm_backward_train_cpu(din.data(), dgamma.data(), dbeta.data(), dy.data(), x.data(),
                                 gamma.data(), mean.data(), invstd.data(), s);
    for (i64 c = 0; c < s.C; ++c) {
        // Sums of dy and dy * xhat computed here.
        double sdy = 0, sdyx = 0, sdin = 0, sdinx = 0;
        for (i64 b = 0; b < s.N; ++b)
            for (i64 i = 0; i < s.HW; ++i) {
                const i64 k = (b * s.C + c) * s.HW + i;
                const double xhat = (x[k] - mean[c]) * invstd[c];
                sdy += dy[k];
                sdyx += dy[k] * xhat;
                sdin += din[k];
                sdinx += din[k] * xhat;
            }
        INFO("channel ", c);
        CHECK(dbeta[c] == doctest::Approx(-2.0 + sdy).epsilon(1e-12));
        CHECK(dgamma[c] == doctest::Approx(1.0 + sdyx).epsilon(1e-12));
        // The output does not change when x moves along 1 (a shift), so the input gradient has
        // no component along it. Along xhat (a scale x -> mean + (1 + t)(x - mean)) the output
        // changes only through eps: xhat -> xhat (1 + t) sqrt(var + eps) / sqrt((1 + t)^2 var
        // + eps), whose derivative at t = 0 is xhat * eps / (var + eps) = xhat * eps * invstd^2;
        // so sum din * (x - mean) = gamma * sum(dy * xhat) * eps * invstd^2.
        CHECK(std::fabs(sdin) < 1e-12);
        const double expect_scale = gamma[c] * sdyx * s.eps * invstd[c] * invstd[c];
        CHECK(std::fabs(sdinx / invstd[c] - expect_scale) < 1e-12);
        CHECK(std::fabs(expect_scale) > 0);  // not a vacuous comparison
    }

    // Inference backward: din = dy * gamma / sqrt(rv + eps); dgamma null is allowed (fix_gamma).
    const std::vector<double> rmean = {0.1, 0.2, 0.3}, rvar = {0.5, 1.0, 2.0};
    std::vector<double> dbeta2(s.C, 0.0);
    batchnorm_backward_infer_cpu(din.data(), (double*)nullptr, dbeta2.data(), dy.data(), x.data(),
                                 gamma.data(), rmean.data(), rvar.data(), s);
    for (i64 k = 0; k < n; ++k) {
        const i64 c = (k / s.HW) % s.C;
        const double expect = dy[k] * gamma[c] / std::sqrt(rvar[c] + 2e-5);
        CHECK(din[k] == doctest::Approx(expect).epsilon(1e-12));
    }
}

TEST_CASE("batchnorm gradients (float64 central differences)") {
    int seen = 0;
    for (const auto& c : layer_gradcheck_cases()) {
        if (c.name.rfind("batchnorm", 0) != 0) continue;
        ++seen;
        for (const auto& row : c.run()) {
            INFO(row.group, "/", row.tensor, " max rel error ", row.max_rel_error, " checked ",
                 row.checked, " skipped ", row.skipped);
            CHECK(row.pass);
        }
    }
    CHECK(seen == 4);
}
