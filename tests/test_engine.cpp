// Engine basics: buffers and the byte counter, the parameter store, the RNG, GPU detection.
#include <doctest/doctest.h>

#include <set>

#include "engine/device.h"
#include "engine/error.h"
#include "engine/params.h"
#include "engine/rng.h"
#include "engine/tensor.h"
#include "tests/test_util.h"

using namespace engine;

TEST_CASE("buffers are zeroed, move-only and counted in bytes") {
    const size_t before = memory_counter(Device::cpu).current;
    {
        Buffer<double> a(1000);
        CHECK(memory_counter(Device::cpu).current == before + 8000);
        CHECK(a[999] == 0.0);
        Buffer<double> b(std::move(a));
        CHECK(a.data() == nullptr);
        CHECK(b.size() == 1000);
        CHECK(memory_counter(Device::cpu).current == before + 8000);
    }
    CHECK(memory_counter(Device::cpu).current == before);
    CHECK(memory_counter(Device::cpu).peak >= before + 8000);
}

TEST_CASE("tensor reshape keeps the element count") {
    Tensor<float> t({2, 3, 4, 5});
    CHECK(t.numel() == 120);
    t.reshape({2, 60});
    CHECK(t.dim(1) == 60);
    CHECK_THROWS_AS(t.reshape({7, 7}), ShapeError);
}

TEST_CASE("param store: flat buffers, named views, state apart") {
    ParamStore<float> ps;
    const int w = ps.add("conv1.weight", {4, 3, 3, 3});
    const int g = ps.add("bn1.weight", {4});
    const int m = ps.add("bn1.running_mean", {4}, ParamKind::state);
    const int fx = ps.add("features.weight", {4}, ParamKind::fixed);
    CHECK_THROWS_AS(ps.add("bn1.weight", {4}), ArgError);
    ps.allocate(Device::cpu);
    CHECK(ps.num_params() == 108 + 4);
    CHECK(ps.num_state() == 4 + 4);
    CHECK(ps.param(g) == ps.params().data() + 108);
    CHECK(ps.grad(g) == ps.grads().data() + 108);
    CHECK(ps.value(m) == ps.state().data());
    CHECK(ps.param(fx) == ps.state().data() + 4);
    CHECK_THROWS_AS(ps.grad(m), ArgError);
    CHECK_THROWS_AS(ps.grad(fx), ArgError);
    CHECK(ps.id("bn1.running_mean") == m);
    CHECK(ps.entries()[w].name == "conv1.weight");
}

TEST_CASE("rng: counter-based draws are pure functions of (seed, counter)") {
    CHECK(random_uniform01(7, 123) == random_uniform01(7, 123));
    CHECK(random_uniform01(7, 123) != random_uniform01(8, 123));
    // Uniform mean and normal moments over many draws.
    double s = 0, s1 = 0, s2 = 0;
    const int n = 200000;
    bool in_range = true;
    for (int i = 0; i < n; ++i) {
        const float u = random_uniform01(3, i);
        in_range = in_range && u >= 0.f && u < 1.f;
        s += u;
        const double z = random_normal(3, i);
        s1 += z;
        s2 += z * z;
    }
    CHECK(in_range);
    CHECK(s / n == doctest::Approx(0.5).epsilon(0.01));
    CHECK(std::fabs(s1 / n) < 0.01);
    CHECK(s2 / n == doctest::Approx(1.0).epsilon(0.02));
    // The host generator resumes exactly from (seed, counter).
    Rng a(5);
    for (int i = 0; i < 10; ++i) a.next_u64();
    Rng b(5, a.counter());
    CHECK(a.next_u64() == b.next_u64());
    // below() covers its range; shuffle is a permutation.
    std::vector<int> v(100);
    for (int i = 0; i < 100; ++i) v[i] = i;
    a.shuffle(v);
    CHECK(std::set<int>(v.begin(), v.end()).size() == 100);
}

TEST_CASE("philox4x32-10 matches the published known-answer vector") {
    // Random123 kat_vectors: philox4x32_10 with counter = key = 0.
    const u32 ctr[4] = {0, 0, 0, 0}, key[2] = {0, 0};
    u32 out[4];
    philox4x32(ctr, key, out);
    CHECK(out[0] == 0x6627e8d5u);
    CHECK(out[1] == 0xe169c58du);
    CHECK(out[2] == 0xbc57ac4cu);
    CHECK(out[3] == 0x9b00dbd8u);
}

TEST_CASE("splitmix64 matches the reference generator's first outputs") {
    // Vigna's splitmix64.c from state 0: each call adds the golden gamma, then mixes. Our
    // splitmix64(x) is one call from state x, so chaining x += gamma reproduces the sequence.
    CHECK(engine::splitmix64(0) == 0xE220A8397B1DCDAFull);
    CHECK(engine::splitmix64(0x9E3779B97F4A7C15ull) == 0x6E789E6AA1B965F4ull);
    CHECK(engine::splitmix64(2 * 0x9E3779B97F4A7C15ull) == 0x06C45D188009454Full);
}

TEST_CASE("no usable GPU means CPU, never a crash") {
    std::string why;
    const bool ok = cuda_usable(&why);
    if (!ok) {
        CHECK(!why.empty());
        CHECK(cuda_device_count() == 0);
        MESSAGE("GPU: ", why);
    } else {
        CHECK(cuda_device_count() > 0);
    }
}
