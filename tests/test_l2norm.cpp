// L2 normalisation CPU reference: unit rows, saved norms, the DataError on zero or non-finite
// rows, the tangent-space gradient, and the float64 gradient audit row.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "engine/error.h"
#include "layers/gradcheck_layers.h"
#include "layers/l2norm.h"
#include "tests/test_util.h"

TEST_CASE("l2norm known values: (3, 4) has norm 5") {
    const double in[4] = {3, 4, 0, -2};  // (N=2, D=2)
    double out[4], norm[2];
    l2norm_forward_cpu(out, norm, in, 2, 2);
    CHECK(norm[0] == 5.0);
    CHECK(norm[1] == 2.0);
    CHECK(out[0] == doctest::Approx(0.6).epsilon(1e-15));
    CHECK(out[1] == doctest::Approx(0.8).epsilon(1e-15));
    CHECK(out[2] == 0.0);
    CHECK(out[3] == -1.0);
}

TEST_CASE("l2norm rows have unit norm and keep their direction (float)") {
    const i64 N = 7, D = 33;
    auto x = test::random_vector<float>(N * D, 501, -3, 3);
    std::vector<float> out(N * D), norm(N);
    l2norm_forward_cpu(out.data(), norm.data(), x.data(), N, D);
    for (i64 n = 0; n < N; ++n) {
        double ss = 0, ssx = 0;
        for (i64 d = 0; d < D; ++d) {
            ss += (double)out[n * D + d] * out[n * D + d];
            ssx += (double)x[n * D + d] * x[n * D + d];
            // out * |x| gives x back (float rounding of one divide and one multiply).
            REQUIRE(std::fabs(out[n * D + d] * norm[n] - x[n * D + d]) < 1e-5);
        }
        INFO("row ", n);
        CHECK(std::fabs(ss - 1.0) < 1e-6);
        CHECK(std::fabs(norm[n] - std::sqrt(ssx)) < 1e-5 * std::sqrt(ssx));
    }
}

TEST_CASE("l2norm: a zero row or a non-finite row is a DataError naming the row") {
    std::vector<double> x = {1, 2, 3, 4, 5, 6, 0, 0, 0, 1, 1, 1};  // (N=4, D=3), row 2 is zero
    std::vector<double> out(12), norm(4);
    try {
        l2norm_forward_cpu(out.data(), norm.data(), x.data(), 4, 3);
        FAIL("no error for a zero row");
    } catch (const engine::DataError& e) {
        CHECK(std::string(e.what()).find("row 2") != std::string::npos);
    }
    x[7] = 1.0;
    x[10] = std::numeric_limits<double>::quiet_NaN();  // row 3
    try {
        l2norm_forward_cpu(out.data(), norm.data(), x.data(), 4, 3);
        FAIL("no error for a NaN row");
    } catch (const engine::DataError& e) {
        CHECK(std::string(e.what()).find("row 3") != std::string::npos);
    }
    x[10] = 1.0;
    x[0] = std::numeric_limits<double>::infinity();  // row 0
    CHECK_THROWS_AS(l2norm_forward_cpu(out.data(), norm.data(), x.data(), 4, 3), engine::DataError);
}

TEST_CASE("l2norm backward: din is orthogonal to the output and scales with 1 / |x|") {
    const i64 N = 3, D = 10;
    auto x = test::random_vector<double>(N * D, 502), dy = test::random_vector<double>(N * D, 503);
    std::vector<double> out(N * D), norm(N), din(N * D), out2(N * D), norm2(N), din2(N * D);
    l2norm_forward_cpu(out.data(), norm.data(), x.data(), N, D);
    l2norm_backward_cpu(din.data(), dy.data(), out.data(), norm.data(), N, D);
    // Scaling x by 4 leaves out unchanged, so the gradient shrinks by 4.
    std::vector<double> x4(x);
    for (auto& v : x4) v *= 4;
    l2norm_forward_cpu(out2.data(), norm2.data(), x4.data(), N, D);
    l2norm_backward_cpu(din2.data(), dy.data(), out2.data(), norm2.data(), N, D);
    for (i64 n = 0; n < N; ++n) {
        double dot = 0;
        for (i64 d = 0; d < D; ++d) {
            dot += din[n * D + d] * out[n * D + d];
            REQUIRE(din2[n * D + d] == doctest::Approx(din[n * D + d] / 4).epsilon(1e-12));
        }
        CHECK(std::fabs(dot) < 1e-12);
    }
    // A gradient along the output itself is cancelled entirely (moving along x changes no output).
    l2norm_backward_cpu(din.data(), out.data(), out.data(), norm.data(), N, D);
    for (double v : din) CHECK(std::fabs(v) < 1e-15);
}

TEST_CASE("l2norm gradient (float64 central differences)") {
    int seen = 0;
    for (const auto& c : layer_gradcheck_cases()) {
        if (c.name != "l2norm") continue;
        ++seen;
        for (const auto& row : c.run()) {
            INFO(row.group, "/", row.tensor, " max rel error ", row.max_rel_error);
            CHECK(row.pass);
        }
    }
    CHECK(seen == 1);
}
