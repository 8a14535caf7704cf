// Dropout CPU reference: keep rate, scaling, mask reproducibility from (seed, offset), backward
// with the same mask, argument checks, and the float64 gradient audit row.
#include <doctest/doctest.h>

#include <cmath>
#include <vector>

#include "engine/error.h"
#include "engine/rng.h"
#include "layers/dropout.h"
#include "layers/gradcheck_layers.h"
#include "tests/test_util.h"

TEST_CASE("dropout keeps about 1 - p of the elements and scales them by 1 / (1 - p)") {
    const i64 n = 100000;
    const float p = 0.4f;
    auto x = test::random_vector<float>(n, 401, 0.5, 1.5);  // never zero, so 0 means dropped
    std::vector<float> out(n);
    dropout_forward_cpu(out.data(), x.data(), n, p, 1234, 0);
    i64 kept = 0;
    for (i64 i = 0; i < n; ++i) {
        if (out[i] == 0.f) continue;
        ++kept;
        REQUIRE(out[i] == x[i] / (1.f - p));
    }
    // Binomial(n, 0.6): std of the kept fraction sqrt(0.24 / n) = 0.0015; 0.01 is > 6 sigma.
    CHECK(std::fabs((double)kept / n - 0.6) < 0.01);
    // The expectation is preserved: mean(out) ~ mean(x) (same 6-sigma reasoning, looser).
    double sx = 0, so = 0;
    for (i64 i = 0; i < n; ++i) sx += x[i], so += out[i];
    CHECK(std::fabs(so / sx - 1.0) < 0.02);
}

TEST_CASE("dropout mask: same for the same (seed, offset), different for another offset") {
    const i64 n = 4096;
    auto x = test::random_vector<double>(n, 402, 1.0, 2.0);
    std::vector<double> a(n), b(n), c(n), d(n), e(n);
    dropout_forward_cpu(a.data(), x.data(), n, 0.4f, 99, 5000);
    dropout_forward_cpu(b.data(), x.data(), n, 0.4f, 99, 5000);
    dropout_forward_cpu(c.data(), x.data(), n, 0.4f, 99, 5000 + n);
    dropout_forward_cpu(d.data(), x.data(), n, 0.4f, 100, 5000);
    CHECK(a == b);
    i64 differ_offset = 0, differ_seed = 0;
    for (i64 i = 0; i < n; ++i) {
        differ_offset += (a[i] == 0) != (c[i] == 0);
        differ_seed += (a[i] == 0) != (d[i] == 0);
    }
    // Two independent masks with keep rate 0.6 disagree on 2 * 0.4 * 0.6 = 48% of the elements.
    CHECK(differ_offset > n / 3);
    CHECK(differ_seed > n / 3);
    // Element i uses counter offset + i: shifting the offset by 100 shifts the mask by 100.
    dropout_forward_cpu(e.data(), x.data(), n, 0.4f, 99, 5100);
    for (i64 i = 0; i + 100 < n; ++i) REQUIRE((a[i + 100] == 0) == (e[i] == 0));
    // And the mask is the documented draw: keep iff random_uniform01(seed, offset + i) >= p.
    for (i64 i = 0; i < n; ++i)
        REQUIRE((a[i] != 0) == (engine::random_uniform01(99, 5000 + (u64)i) >= 0.4f));
}

TEST_CASE("dropout backward redraws the same mask") {
    const i64 n = 1000;
    const float p = 0.25f;
    auto x = test::random_vector<double>(n, 403, 1.0, 2.0);
    auto dy = test::random_vector<double>(n, 404, 1.0, 2.0);
    std::vector<double> out(n), din(n);
    dropout_forward_cpu(out.data(), x.data(), n, p, 7, 123);
    dropout_backward_cpu(din.data(), dy.data(), n, p, 7, 123);
    for (i64 i = 0; i < n; ++i) {
        REQUIRE((out[i] == 0) == (din[i] == 0));
        if (din[i] != 0) REQUIRE(din[i] == dy[i] / (1.0 - 0.25));
    }
}

TEST_CASE("dropout with p = 0 is the identity; p outside [0, 1) is refused") {
    const std::vector<float> x = {1.f, -2.f, 3.5f};
    std::vector<float> out(3);
    dropout_forward_cpu(out.data(), x.data(), 3, 0.f, 1, 0);
    CHECK(out == x);
    CHECK_THROWS_AS(dropout_forward_cpu(out.data(), x.data(), 3, 1.f, 1, 0), engine::ArgError);
    CHECK_THROWS_AS(dropout_backward_cpu(out.data(), x.data(), 3, -0.1f, 1, 0), engine::ArgError);
}

TEST_CASE("dropout gradient (float64 central differences)") {
    int seen = 0;
    for (const auto& c : layer_gradcheck_cases()) {
        if (c.name != "dropout") continue;
        ++seen;
        for (const auto& row : c.run()) {
            INFO(row.group, "/", row.tensor, " max rel error ", row.max_rel_error);
            CHECK(row.pass);
        }
    }
    CHECK(seen == 1);
}
