// IR unit: registered names, order and sizes; the forward is exactly the composition of the
// layer references SPEC.md section 3 describes; the float64 gradient audit passes.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "engine/params.h"
#include "engine/rng.h"
#include "layers/batchnorm.h"
#include "layers/conv2d.h"
#include "layers/elementwise.h"
#include "layers/gradcheck_model.h"
#include "layers/ir_unit.h"
#include "layers/prelu.h"
#include "tests/test_util.h"

using engine::ParamKind;
using engine::ParamStore;

namespace {

// Random values for every entry (running variances positive, gammas around 1).
void fill_random(ParamStore<double>& store, u64 seed) {
    engine::Rng rng(seed);
    for (size_t id = 0; id < store.entries().size(); ++id) {
        const auto& e = store.entry((int)id);
        const bool positive = e.name.find("running_var") != std::string::npos;
        double* p = store.value((int)id);
        for (i64 i = 0; i < e.numel; ++i)
            p[i] = positive ? 0.5 + rng.uniform() : -0.8 + 1.6 * rng.uniform();
    }
}

std::vector<std::string> bn_names(const std::string& p) {
    return {p + "weight", p + "bias", p + "running_mean", p + "running_var"};
}

}  // namespace

TEST_CASE("ir_unit registers PyTorch IBasicBlock names in module order") {
    ParamStore<float> store;
    IRUnit<float> proj(store, "layer2.0.", 64, 128, 56, 56, 2, 1);
    IRUnit<float> ident(store, "layer2.1.", 128, 128, 28, 28, 1, 1);
    CHECK(proj.projection());
    CHECK_FALSE(ident.projection());

    std::vector<std::string> want;
    for (const std::string u : {"layer2.0.", "layer2.1."}) {
        for (auto& n : bn_names(u + "bn1.")) want.push_back(n);
        want.push_back(u + "conv1.weight");
        for (auto& n : bn_names(u + "bn2.")) want.push_back(n);
        want.push_back(u + "prelu.weight");
        want.push_back(u + "conv2.weight");
        for (auto& n : bn_names(u + "bn3.")) want.push_back(n);
        if (u == "layer2.0.") {
            want.push_back(u + "downsample.0.weight");
            for (auto& n : bn_names(u + "downsample.1.")) want.push_back(n);
        }
    }
    REQUIRE(store.entries().size() == want.size());
    for (size_t i = 0; i < want.size(); ++i) CHECK(store.entries()[i].name == want[i]);

    // Shapes: conv1 keeps the resolution (Cin -> C), conv2 and the 1x1 projection stride 2.
    CHECK(store.entry(store.id("layer2.0.conv1.weight")).shape == std::vector<i64>{128, 64, 3, 3});
    CHECK(store.entry(store.id("layer2.0.conv2.weight")).shape == std::vector<i64>{128, 128, 3, 3});
    CHECK(store.entry(store.id("layer2.0.downsample.0.weight")).shape ==
          std::vector<i64>{128, 64, 1, 1});
    CHECK(store.entry(store.id("layer2.0.bn1.weight")).shape == std::vector<i64>{64});
    CHECK(store.entry(store.id("layer2.0.bn1.running_var")).kind == ParamKind::state);
    CHECK(proj.out_height() == 28);
    CHECK(proj.out_width() == 28);
    CHECK(ident.out_height() == 28);

    // Learnt element count from the architecture: BN gamma+beta, two 3x3 convs, PReLU slopes,
    // the projection's 1x1 conv and BN.
    auto unit_params = [](i64 cin, i64 c, bool projection) {
        i64 n = 2 * cin + c * cin * 9 + 2 * c + c + c * c * 9 + 2 * c;
        if (projection) n += c * cin + 2 * c;
        return n;
    };
    CHECK(store.num_params() == unit_params(64, 128, true) + unit_params(128, 128, false));
    CHECK(store.num_state() == 2 * (64 + 128 + 128 + 128) + 2 * (128 + 128 + 128));
}

TEST_CASE("ir_unit shapes: odd input with stride 2 rounds up on both branches; bad stride") {
    ParamStore<double> store;
    // conv 3x3 pad 1 stride 2 and conv 1x1 stride 2 both give ceil(7 / 2) = 4.
    IRUnit<double> odd(store, "a.", 4, 8, 7, 7, 2, 1);
    CHECK(odd.out_height() == 4);
    CHECK(odd.out_numel(2) == 2 * 8 * 4 * 4);
    CHECK_THROWS_AS(IRUnit<double>(store, "b.", 4, 8, 8, 8, 3, 1), engine::ShapeError);
    CHECK_THROWS_AS(IRUnit<double>(store, "c.", 0, 8, 8, 8, 1, 1), engine::ShapeError);
}

TEST_CASE("ir_unit forward is BN-conv-BN-PReLU-conv-BN plus the BN(conv1x1) shortcut") {
    const i64 N = 3, Cin = 3, C = 5, H = 6, P = 3;
    ParamStore<double> store;
    IRUnit<double> unit(store, "u.", Cin, C, H, H, 2, N);
    store.allocate(engine::Device::cpu);
    unit.allocate(nullptr);
    fill_random(store, 5);
    const auto x = test::random_vector<double>(N * Cin * H * H, 6, -2, 2);
    auto v = [&](const std::string& n) { return store.value(store.id("u." + n)); };

    for (const bool training : {true, false}) {
        CAPTURE(training);
        // The reference, from the layer functions; running statistics on copies.
        std::vector<std::vector<double>> running;
        for (const std::string bn : {"bn1.", "bn2.", "bn3.", "downsample.1."})
            for (const std::string s : {"running_mean", "running_var"}) {
                const double* r = v(bn + s);
                running.emplace_back(r, r + (bn == "bn1." ? Cin : C));
            }
        std::vector<double> mean(C), invstd(C);
        auto bn = [&](std::vector<double>& out, const std::vector<double>& in,
                      const std::string& name, int k, i64 ch, i64 hw) {
            BatchNormShape s;
            s.N = N, s.C = ch, s.HW = hw;
            out.assign(in.size(), 0.0);
            if (training)
                batchnorm_forward_train_cpu(out.data(), mean.data(), invstd.data(),
                                            running[2 * k].data(), running[2 * k + 1].data(),
                                            in.data(), v(name + "weight"), v(name + "bias"), s);
            else
                batchnorm_forward_infer_cpu(out.data(), in.data(), v(name + "weight"),
                                            v(name + "bias"), running[2 * k].data(),
                                            running[2 * k + 1].data(), s);
        };
        auto conv = [&](std::vector<double>& out, const std::vector<double>& in,
                        const std::string& name, i64 cin, i64 r, i64 stride, i64 pad) {
            Conv2dShape s;
            s.N = N, s.C = cin, s.H = s.W = H, s.K = C, s.R = s.S = r, s.stride = stride,
            s.pad = pad;
            out.assign(s.out_size(), 0.0);
            conv2d_forward_cpu(out.data(), in.data(), v(name), s);
        };
        std::vector<double> a1, c1, a2, p, c2, b3, d1, d2;
        bn(a1, x, "bn1.", 0, Cin, H * H);
        conv(c1, a1, "conv1.weight", Cin, 3, 1, 1);
        bn(a2, c1, "bn2.", 1, C, H * H);
        p.assign(a2.size(), 0.0);
        prelu_forward_cpu(p.data(), a2.data(), v("prelu.weight"), N, C, H * H);
        std::vector<double> p_in = p;
        // conv2 runs on the (C, H, H) PReLU output with stride 2.
        {
            Conv2dShape s;
            s.N = N, s.C = C, s.H = s.W = H, s.K = C, s.R = s.S = 3, s.stride = 2, s.pad = 1;
            c2.assign(s.out_size(), 0.0);
            conv2d_forward_cpu(c2.data(), p_in.data(), v("conv2.weight"), s);
        }
        bn(b3, c2, "bn3.", 2, C, P * P);
        conv(d1, x, "downsample.0.weight", Cin, 1, 2, 0);
        bn(d2, d1, "downsample.1.", 3, C, P * P);
        std::vector<double> want(b3.size());
        add_forward_cpu(want.data(), b3.data(), d2.data(), (i64)want.size());

        const double* got = unit.forward(x.data(), N, training);
        REQUIRE(unit.out_numel(N) == (i64)want.size());
        CHECK(test::max_rel_diff(got, want.data(), (i64)want.size()) < 1e-14);
        // Training updates the running statistics exactly as the reference did.
        int k = 0;
        for (const std::string b : {"bn1.", "bn2.", "bn3.", "downsample.1."})
            for (const std::string s : {"running_mean", "running_var"}) {
                CHECK(test::max_rel_diff(v(b + s), running[k].data(), (i64)running[k].size()) <
                      1e-14);
                ++k;
            }
    }
}

TEST_CASE("ir_unit backward without an input gradient gives the same parameter gradients") {
    const i64 N = 2, C = 4, H = 5;
    ParamStore<double> store;
    IRUnit<double> unit(store, "u.", C, C, H, H, 1, N);
    store.allocate(engine::Device::cpu);
    unit.allocate(nullptr);
    fill_random(store, 8);
    const auto x = test::random_vector<double>(N * C * H * H, 9);
    const auto dout = test::random_vector<double>(N * C * H * H, 10);
    std::vector<double> dx(x.size());
    unit.forward(x.data(), N, true);
    unit.backward(dout.data(), dx.data());
    const auto with_din = store.grads().to_host();
    CHECK(test::all_finite(dx));
    store.grads().zero();
    unit.backward(dout.data(), nullptr);
    const auto without = store.grads().to_host();
    CHECK(test::max_rel_diff(with_din.data(), without.data(), (i64)without.size()) == 0.0);
    // A second backward accumulates: twice the gradient.
    unit.backward(dout.data(), nullptr);
    const auto twice = store.grads().to_host();
    std::vector<double> doubled(with_din);
    for (auto& g : doubled) g *= 2;
    CHECK(test::max_rel_diff(twice.data(), doubled.data(), (i64)twice.size()) < 1e-14);
}

TEST_CASE("ir_unit gradients (float64 central differences)") {
    int cases = 0;
    for (const auto& c : model_gradcheck_cases()) {
        if (c.name.rfind("ir_unit.", 0) != 0) continue;
        ++cases;
        int rows = 0;
        for (const auto& row : c.run()) {
            ++rows;
            INFO(c.name, " / ", row.tensor, ": checked ", row.checked, "/", row.total,
                 ", skipped ", row.skipped, ", max rel error ", row.max_rel_error);
            CHECK(row.pass);
        }
        // Input plus 9 learnt tensors (identity) or 12 (projection).
        CHECK(rows == (c.name.find("projection") != std::string::npos ? 13 : 10));
    }
    CHECK(cases == 4);
}
