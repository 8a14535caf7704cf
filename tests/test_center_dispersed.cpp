// Center-dispersed loss: float64 gradient audit, the analytic cases (orthogonal centers give 0,
// identical centers give interweight (K^2 - K) / K^2, two centers at angle a give
// interweight cos^2 a / 2), the edge cases K = 1 and N = 0, and bad input.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "engine/error.h"
#include "losses/center_dispersed.h"
#include "losses/gradcheck_losses.h"
#include "tests/test_util.h"

namespace {
double run_forward(const std::vector<double>& e, i64 N, i64 D, i64 k, double w,
                   std::vector<double>* de = nullptr, const std::int32_t* labels = nullptr) {
    std::vector<double> cache(center_dispersed_cache_numel(N, D, k));
    const double l = center_dispersed_forward_cpu(cache.data(), e.data(), labels, N, D, k, w);
    if (de) {
        de->assign(N * D, 1.0);  // written, not accumulated: the 1s must disappear
        center_dispersed_backward_cpu(de->data(), cache.data(), N, D, k, w);
    }
    return l;
}
}  // namespace

TEST_CASE("center-dispersed gradients (float64 central differences)") {
    bool found = false;
    for (const auto& c : loss_gradcheck_cases()) {
        if (c.name != "center_dispersed") continue;
        found = true;
        for (const auto& row : c.run()) {
            INFO(row.group, "/", row.tensor, " max rel error ", row.max_rel_error);
            CHECK(row.pass);
            CHECK(row.checked == row.total);
        }
    }
    CHECK(found);
}

TEST_CASE("center-dispersed: orthogonal centers give zero loss and zero gradient") {
    // K = 4 identities, k = 3, D = 8: identity i lives in its own plane (axes i and 4 + i), so
    // every pair of centers is exactly orthogonal whatever the members' spread.
    const i64 K = 4, k = 3, N = K * k, D = 8;
    auto r = test::random_vector<double>(N * 2, 5, 0.2, 1.0);
    std::vector<double> e(N * D, 0.0);
    for (i64 n = 0; n < N; ++n) {
        const i64 i = n / k;
        e[n * D + i] = 1.0 + r[2 * n];
        e[n * D + 4 + i] = r[2 * n + 1] - 0.6;
    }
    std::vector<double> de;
    CHECK(run_forward(e, N, D, k, 2.5, &de) == 0.0);
    for (double v : de) CHECK(v == 0.0);
}

TEST_CASE("center-dispersed: identical centers give interweight (K^2 - K) / K^2") {
    // Every embedding a positive multiple of one vector: all centers equal, G_ij = 1.
    const i64 K = 5, k = 3, N = K * k, D = 7;
    const double w = 1.5;
    auto v = test::random_vector<double>(D, 8);
    auto scale = test::random_vector<double>(N, 9, 0.5, 3.0);
    std::vector<double> e(N * D);
    for (i64 n = 0; n < N; ++n)
        for (i64 d = 0; d < D; ++d) e[n * D + d] = scale[n] * v[d];
    std::vector<double> de;
    const double l = run_forward(e, N, D, k, w, &de);
    CHECK(l == doctest::Approx(w * (K * K - K) / (double)(K * K)).epsilon(1e-13));
    // The loss is at a maximum with respect to rotating centers apart... but every embedding
    // gradient is perpendicular to its own embedding (scale invariance).
    for (i64 n = 0; n < N; ++n) {
        double dot = 0;
        for (i64 d = 0; d < D; ++d) dot += de[n * D + d] * e[n * D + d];
        CHECK(std::fabs(dot) < 1e-12);
    }
}

TEST_CASE("center-dispersed: two centers at a known angle") {
    // K = 2, k = 3, D = 2: identity 0 along (1, 0), identity 1 along (cos a, sin a), members
    // scaled differently. G_01 = cos a; loss = w (2 cos^2 a) / 4. d loss / d a = -w sin 2a / 2,
    // and the gradient w.r.t. identity 1's members is tangential with that total rate.
    const double a = 0.7, w = 3.0;
    const std::vector<double> e = {2,
                                   0,
                                   0.5,
                                   0,
                                   1,
                                   0,  //
                                   std::cos(a),
                                   std::sin(a),
                                   3 * std::cos(a),
                                   3 * std::sin(a),
                                   0.2 * std::cos(a),
                                   0.2 * std::sin(a)};
    std::vector<double> de;
    const double l = run_forward(e, 6, 2, 3, w, &de);
    CHECK(l == doctest::Approx(w * std::cos(a) * std::cos(a) / 2).epsilon(1e-13));
    // Member n of identity 1 at radius r_n: d loss / d e_n = (d loss / d a) (1/3) t / r_n with
    // t = (-sin a, cos a): each member moves the center direction by a third of its own turn.
    const double dl_da = -w * std::sin(2 * a) / 2;
    const double radius[3] = {1.0, 3.0, 0.2};
    for (int m = 0; m < 3; ++m) {
        const i64 n = 3 + m;
        CHECK(de[n * 2] == doctest::Approx(dl_da / 3 * -std::sin(a) / radius[m]).epsilon(1e-12));
        CHECK(de[n * 2 + 1] == doctest::Approx(dl_da / 3 * std::cos(a) / radius[m]).epsilon(1e-12));
    }
}

TEST_CASE("center-dispersed: K = 1 and an empty tail give zero loss") {
    auto e = test::random_vector<double>(3 * 4, 3);
    std::vector<double> de;
    CHECK(run_forward(e, 3, 4, 3, 1.0, &de) == 0.0);
    for (double v : de) CHECK(v == 0.0);
    CHECK(run_forward({}, 0, 4, 3, 1.0) == 0.0);
}

TEST_CASE("center-dispersed: bad input errors") {
    auto e = test::random_vector<double>(7 * 4, 3);
    // 7 samples are not a multiple of k = 3.
    try {
        run_forward(e, 7, 4, 3, 1.0);
        FAIL("no error for 7 samples with k = 3");
    } catch (const engine::ShapeError& err) {
        CHECK(std::string(err.what()).find("not a multiple of k = 3") != std::string::npos);
    }
    CHECK_THROWS_AS(run_forward(e, 6, 4, 0, 1.0), engine::ShapeError);
    // Labels: the second triple mixes identities 8 and 9 (identity 8 had only 2 images).
    const std::vector<std::int32_t> labels = {7, 7, 7, 8, 8, 9};
    e.resize(6 * 4);
    try {
        run_forward(e, 6, 4, 3, 1.0, nullptr, labels.data());
        FAIL("no error for a mixed triple");
    } catch (const engine::DataError& err) {
        CHECK(std::string(err.what()).find("sample 5") != std::string::npos);
    }
    const std::vector<std::int32_t> good = {7, 7, 7, 9, 9, 9};
    CHECK_NOTHROW(run_forward(e, 6, 4, 3, 1.0, nullptr, good.data()));
    // A non-finite and a zero embedding.
    auto bad = e;
    bad[4 * 4 + 1] = NAN;
    try {
        run_forward(bad, 6, 4, 3, 1.0);
        FAIL("no error for a NaN embedding");
    } catch (const engine::DataError& err) {
        CHECK(std::string(err.what()).find("row 4") != std::string::npos);
    }
    bad = e;
    for (int d = 0; d < 4; ++d) bad[2 * 4 + d] = 0.0;
    CHECK_THROWS_AS(run_forward(bad, 6, 4, 3, 1.0), engine::DataError);
    // k = 2 with opposite members: their normalised mean is zero.
    const std::vector<double> opposite = {1, 2, -1, -2, 1, 0, 0, 1};
    try {
        run_forward(opposite, 4, 2, 2, 1.0);
        FAIL("no error for cancelling members");
    } catch (const engine::DataError& err) {
        CHECK(std::string(err.what()).find("identity 0") != std::string::npos);
    }
}
