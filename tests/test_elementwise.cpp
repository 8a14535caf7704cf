// Elementwise ops CPU reference: residual add, gradient accumulation and input normalisation on
// known values, and the float64 gradient audit rows of the add.
#include <doctest/doctest.h>

#include <vector>

#include "layers/elementwise.h"
#include "layers/gradcheck_layers.h"
#include "tests/test_util.h"

TEST_CASE("add_forward and accumulate on known values") {
    const std::vector<double> a = {1.0, -2.5, 3.0, 0.0}, b = {0.5, 2.5, -4.0, 7.0};
    std::vector<double> out(4);
    add_forward_cpu(out.data(), a.data(), b.data(), 4);
    CHECK(out == std::vector<double>{1.5, 0.0, -1.0, 7.0});
    // In place (out aliases a) is what a residual unit does with its buffers.
    std::vector<float> af = {1.f, 2.f, 3.f}, bf = {10.f, 20.f, 30.f};
    add_forward_cpu(af.data(), af.data(), bf.data(), 3);
    CHECK(af == std::vector<float>{11.f, 22.f, 33.f});

    std::vector<double> dst = {1.0, 1.0, 1.0, 1.0};
    accumulate_cpu(dst.data(), a.data(), 4);
    accumulate_cpu(dst.data(), b.data(), 4);
    CHECK(dst == std::vector<double>{2.5, 1.0, 0.0, 8.0});
}

TEST_CASE("input_normalize maps 0..255 to (x - 127.5) / 128") {
    const std::vector<float> in = {0.f, 127.5f, 128.f, 255.f, 64.f};
    std::vector<float> out(in.size());
    input_normalize_cpu(out.data(), in.data(), (i64)in.size());
    // (0 - 127.5) / 128 = -0.99609375, (255 - 127.5) / 128 = 0.99609375, (64 - 127.5) / 128 =
    // -0.49609375; all exact in binary.
    CHECK(out == std::vector<float>{-0.99609375f, 0.f, 0.00390625f, 0.99609375f, -0.49609375f});
    std::vector<double> ind(256), outd(256);
    for (int i = 0; i < 256; ++i) ind[i] = i;
    input_normalize_cpu(outd.data(), ind.data(), 256);
    for (int i = 0; i < 256; ++i) REQUIRE(outd[i] == (i - 127.5) / 128.0);
}

TEST_CASE("add gradients (float64 central differences)") {
    int seen = 0;
    for (const auto& c : layer_gradcheck_cases()) {
        if (c.name != "add") continue;
        ++seen;
        for (const auto& row : c.run()) {
            INFO(row.group, "/", row.tensor, " max rel error ", row.max_rel_error);
            CHECK(row.pass);
        }
    }
    CHECK(seen == 1);
}
