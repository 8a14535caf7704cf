// PReLU: known values, the float64 gradient audit, and CUDA parity with the CPU reference.
#include <doctest/doctest.h>

#include "engine/gpu_context.h"
#include "engine/tensor.h"
#include "layers/gradcheck_layers.h"
#include "layers/prelu.h"
#include "tests/test_util.h"

TEST_CASE("prelu forward: positive values pass, negative values are scaled per channel") {
    const double in[4] = {2.0, -2.0, 3.0, -4.0};  // (N=1, C=2, HW=2)
    const double slope[2] = {0.5, 0.25};
    double out[4];
    prelu_forward_cpu(out, in, slope, 1, 2, 2);
    CHECK(out[0] == 2.0);
    CHECK(out[1] == -1.0);
    CHECK(out[2] == 3.0);
    CHECK(out[3] == -1.0);
}

TEST_CASE("prelu gradients (float64 central differences)") {
    for (const auto& c : layer_gradcheck_cases()) {
        if (c.name != "prelu") continue;
        for (const auto& row : c.run()) {
            INFO(row.group, "/", row.tensor, " max rel error ", row.max_rel_error);
            CHECK(row.pass);
        }
    }
}

GPU_TEST_CASE("prelu CUDA matches the CPU reference") {
#ifdef ENGINE_CUDA
    using engine::Buffer;
    using engine::Device;
    const i64 N = 4, C = 16, HW = 49, n = N * C * HW;
    auto x = test::random_vector<float>(n, 1), slope = test::random_vector<float>(C, 2, 0.0, 0.5);
    auto dout = test::random_vector<float>(n, 3);
    std::vector<float> out(n), din(n), dslope(C, 0.f);
    prelu_forward_cpu(out.data(), x.data(), slope.data(), N, C, HW);
    prelu_backward_cpu(din.data(), dslope.data(), dout.data(), x.data(), slope.data(), N, C, HW);

    engine::GpuContext g(0);
    Buffer<float> dx(n, Device::cuda), ds(C, Device::cuda), ddout(n, Device::cuda),
        dy(n, Device::cuda), ddin(n, Device::cuda), dds(C, Device::cuda);
    dx.copy_from_host(x);
    ds.copy_from_host(slope);
    ddout.copy_from_host(dout);
    prelu_forward_cuda(dy.data(), dx.data(), ds.data(), N, C, HW, g);
    prelu_backward_cuda(ddin.data(), dds.data(), ddout.data(), dx.data(), ds.data(), N, C, HW, g);
    g.synchronize();
    // Elementwise ops are exact in float; the slope sum over N*HW = 196 terms reorders float
    // additions, so 1e-5 relative covers its rounding.
    CHECK(test::max_rel_diff(dy.to_host().data(), out.data(), n) == 0.0);
    CHECK(test::max_rel_diff(ddin.to_host().data(), din.data(), n) == 0.0);
    CHECK(test::max_rel_diff(dds.to_host().data(), dslope.data(), C) < 1e-5);
#endif
}
