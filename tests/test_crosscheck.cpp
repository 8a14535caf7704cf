// The engine's IResNet against the same network in PyTorch (tests/torch_iresnet.py): the
// fixtures made by tests/make_fixtures.py hold a tiny r18 checkpoint written by the engine, the
// inputs, and PyTorch's float64 embeddings, parameter gradients and running statistics.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <map>

#include "engine/safetensors.h"
#include "layers/iresnet.h"

namespace {

const char* kCheckpoint = "tests/fixtures/crosscheck_r18tiny.safetensors";
const char* kIo = "tests/fixtures/crosscheck_r18tiny_io.safetensors";
const i64 kBatch = 4;

// bench/export_tiny.cpp's configuration: r18, width 1/8, input 16, 16 features, no dropout.
IResNetConfig tiny_config() {
    IResNetConfig c = IResNetConfig::named("r18");
    c.width = 0.125;
    c.input_size = 16;
    c.num_features = 16;
    c.dropout = 0.0;
    return c;
}

// Relative error of a whole tensor: max_i |a_i - b_i| / max(max_i |b_i|, floor), b the PyTorch
// reference. Scaling by the tensor's largest entry (not elementwise) keeps entries that are
// nearly zero by cancellation from dominating. The floor is 1e-6 for embeddings, input gradient
// and running statistics; for parameter gradients it is 1e-3 * G, G the largest |reference
// gradient| in the whole network (see run_crosscheck).
template <typename T>
double tensor_rel_error(const T* a, const std::vector<double>& b, double floor = 1e-6) {
    double diff = 0, scale = 0;
    for (size_t i = 0; i < b.size(); ++i) {
        const double d = std::fabs((double)a[i] - b[i]);
        if (std::isnan(d)) return INFINITY;  // a NaN never passes
        diff = std::max(diff, d);
        scale = std::max(scale, std::fabs(b[i]));
    }
    return diff / std::max(scale, floor);
}

struct Fixture {
    std::map<std::string, engine::SafeTensor> io;
    const engine::SafeTensor& at(const std::string& name) const {
        auto it = io.find(name);
        if (it == io.end()) FAIL("tensor ", name, " missing from ", kIo);
        return it->second;
    }
};

Fixture load_fixture() {
    const bool have = std::ifstream(kCheckpoint).good() && std::ifstream(kIo).good();
    REQUIRE_MESSAGE(have, kCheckpoint, " or ", kIo,
                    " is missing: build build/bench_export_tiny, then run "
                    "/usr/bin/python3 tests/make_fixtures.py crosscheck from the repository root");
    Fixture f;
    for (auto& t : engine::read_safetensors(kIo)) f.io[t.name] = std::move(t);
    return f;
}

template <typename T>
std::vector<T> as_t(const engine::SafeTensor& t) {
    return t.as<T>();
}

// Loads the engine checkpoint, applies the fixture's randomised BN/PReLU/bias values, runs one
// training forward + backward and one inference forward, and compares everything with PyTorch.
template <typename T>
void run_crosscheck(const Fixture& fx, double tol) {
    const IResNetConfig cfg = tiny_config();
    IResNet<T> net(cfg, kBatch);
    net.load(kCheckpoint, /*strict=*/true);
    auto& store = net.params();
    int n_set = 0;
    for (const auto& kv : fx.io) {
        if (kv.first.rfind("set.", 0) != 0) continue;
        const std::string name = kv.first.substr(4);
        REQUIRE_MESSAGE(store.has(name), "the model has no tensor ", name);
        const int id = store.id(name);
        const auto v = as_t<T>(kv.second);
        REQUIRE(v.size() == (size_t)store.entry(id).numel);
        std::copy(v.begin(), v.end(), store.value(id));
        ++n_set;
    }
    CHECK(n_set > 0);

    const auto input = as_t<T>(fx.at("input"));
    const auto d_emb = as_t<T>(fx.at("d_embedding"));
    REQUIRE(input.size() == (size_t)(kBatch * 3 * cfg.input_size * cfg.input_size));
    REQUIRE(d_emb.size() == (size_t)(kBatch * cfg.num_features));

    net.zero_grad();
    const T* emb = net.forward(input.data(), kBatch, /*training=*/true);
    const double e_train = tensor_rel_error(emb, fx.at("embedding_train").as<double>());
    INFO("embedding_train rel error ", e_train);
    CHECK(e_train < tol);

    std::vector<T> d_images(input.size());
    net.backward(d_emb.data(), d_images.data());
    const double e_in = tensor_rel_error(d_images.data(), fx.at("grad_input").as<double>());
    INFO("grad_input rel error ", e_in);
    CHECK(e_in < tol);

    // Every learnt parameter has a PyTorch gradient and matches it; no gradient is left over.
    // 15 bias gradients of this network are zero by construction (bn3 and downsample BN biases,
    // layer4.1.bn1.bias, bn2.bias, fc.bias): every path from them to the output runs through a
    // training-mode BN, which subtracts the batch mean and so cancels a per-channel constant.
    // PyTorch's float64 values there are ~1e-16, the float32 engine's are rounding noise of the
    // size of the other gradients times 2^-24; the floor 1e-3 * G checks those are zero to
    // rounding (|a| < tol * 1e-3 * G) instead of dividing noise by noise.
    double G = 0;
    for (const auto& kv : fx.io)
        if (kv.first.rfind("grad.", 0) == 0)
            for (double g : as_t<double>(kv.second)) G = std::max(G, std::fabs(g));
    REQUIRE(G > 0);
    int n_grads = 0, n_running = 0;
    double worst = 0;
    std::string worst_name;
    for (const auto& e : store.entries()) {
        if (e.kind != engine::ParamKind::learnt) continue;
        const auto it = fx.io.find("grad." + e.name);
        REQUIRE_MESSAGE(it != fx.io.end(), "no PyTorch gradient for ", e.name);
        const auto ref = as_t<double>(it->second);
        REQUIRE(ref.size() == (size_t)e.numel);
        const double err = tensor_rel_error(store.grad(store.id(e.name)), ref, 1e-3 * G);
        INFO("grad.", e.name, " rel error ", err);
        CHECK(err < tol);
        if (err > worst) worst = err, worst_name = e.name;
        ++n_grads;
    }
    const i64 n_ref_grads = std::count_if(fx.io.begin(), fx.io.end(), [](const auto& kv) {
        return kv.first.rfind("grad.", 0) == 0 && kv.first != "grad_input";
    });
    CHECK(n_grads == n_ref_grads);
    MESSAGE("worst parameter gradient: ", worst_name, " rel error ", worst);

    // BN running statistics after the one training forward (momentum 0.9, biased variance).
    for (const auto& kv : fx.io) {
        if (kv.first.rfind("running.", 0) != 0) continue;
        const std::string name = kv.first.substr(8);
        REQUIRE_MESSAGE(store.has(name), "the model has no tensor ", name);
        const double err = tensor_rel_error(store.value(store.id(name)), as_t<double>(kv.second));
        INFO(name, " rel error ", err);
        CHECK(err < tol);
        ++n_running;
    }
    CHECK(n_running > 0);

    const T* emb_eval = net.forward(input.data(), kBatch, /*training=*/false);
    const double e_eval = tensor_rel_error(emb_eval, fx.at("embedding_eval").as<double>());
    INFO("embedding_eval rel error ", e_eval);
    CHECK(e_eval < tol);
}

}  // namespace

TEST_CASE("crosscheck: IResNet<float> matches PyTorch (r18 tiny, train fwd/bwd, eval fwd)") {
    const Fixture fx = load_fixture();
    // The reference is PyTorch in float64. float32 rounding (2^-24 ~ 6e-8 per operation) grows
    // through 18 BN-normalised layers and the batch-of-4 BN backward; 1e-4 of each tensor's
    // largest entry leaves room for that and still catches any wrong term (those are O(1)).
    run_crosscheck<float>(fx, 1e-4);
}

TEST_CASE("crosscheck: IResNet<double> matches PyTorch float64 to rounding") {
    const Fixture fx = load_fixture();
    // Both sides in float64, only summation order differs: the measured error is ~1e-13, so
    // 1e-9 is a wide but still float32-proof bound (a float32 slip would show as ~1e-7).
    run_crosscheck<double>(fx, 1e-9);
}
