// SGD with momentum in MXNet's form (engine/sgd.cpp) on hand-computed examples:
//   v = momentum * v - lr * (rescale * g + wd * w);   w = w + v
#include <doctest/doctest.h>

#include <vector>

#include "engine/sgd.h"

TEST_CASE("sgd momentum: two steps worked by hand (double)") {
    // lr 0.1, momentum 0.9, wd 0.01, rescale 0.5.
    // Element 0: w = 1, v = 0.5, g = 2.
    //   step 1: v = 0.45 - 0.1 * (1 + 0.01) = 0.349;          w = 1.349
    //   step 2 (g = 2 again): v = 0.3141 - 0.1 * (1 + 0.01349) = 0.212751; w = 1.561751
    // Element 1: w = -2, v = 0, g = -4.
    //   step 1: v = 0 - 0.1 * (-2 - 0.02) = 0.202;           w = -1.798
    //   step 2: v = 0.1818 - 0.1 * (-2 - 0.01798) = 0.383598; w = -1.414402
    // Element 2: zero gradient, only weight decay: w = 10, v = 0.
    //   step 1: v = -0.1 * 0.1 = -0.01;                      w = 9.99
    //   step 2: v = -0.009 - 0.1 * 0.0999 = -0.01899;        w = 9.97101
    std::vector<double> w = {1.0, -2.0, 10.0}, v = {0.5, 0.0, 0.0};
    const std::vector<double> g = {2.0, -4.0, 0.0};
    engine::sgd_momentum_update_cpu(w.data(), v.data(), g.data(), 3, 0.1, 0.9, 0.01, 0.5);
    CHECK(v[0] == doctest::Approx(0.349).epsilon(1e-14));
    CHECK(w[0] == doctest::Approx(1.349).epsilon(1e-14));
    CHECK(v[1] == doctest::Approx(0.202).epsilon(1e-14));
    CHECK(w[1] == doctest::Approx(-1.798).epsilon(1e-14));
    CHECK(v[2] == doctest::Approx(-0.01).epsilon(1e-14));
    CHECK(w[2] == doctest::Approx(9.99).epsilon(1e-14));
    engine::sgd_momentum_update_cpu(w.data(), v.data(), g.data(), 3, 0.1, 0.9, 0.01, 0.5);
    CHECK(v[0] == doctest::Approx(0.212751).epsilon(1e-13));
    CHECK(w[0] == doctest::Approx(1.561751).epsilon(1e-13));
    CHECK(v[1] == doctest::Approx(0.383598).epsilon(1e-13));
    CHECK(w[1] == doctest::Approx(-1.414402).epsilon(1e-13));
    CHECK(v[2] == doctest::Approx(-0.01899).epsilon(1e-13));
    CHECK(w[2] == doctest::Approx(9.97101).epsilon(1e-13));
}

TEST_CASE("sgd momentum: float, no momentum and no decay is plain gradient descent") {
    // w = w - lr * rescale * g: 3 - 0.5 * 0.25 * 4 = 2.5 (exact in binary).
    std::vector<float> w = {3.f, -1.f}, v = {0.f, 0.f};
    const std::vector<float> g = {4.f, -8.f};
    engine::sgd_momentum_update_cpu(w.data(), v.data(), g.data(), 2, 0.5f, 0.f, 0.f, 0.25f);
    CHECK(w[0] == 2.5f);
    CHECK(w[1] == 0.f);  // -1 + 0.5 * 0.25 * 8
    CHECK(v[0] == -0.5f);
    CHECK(v[1] == 1.f);
}
