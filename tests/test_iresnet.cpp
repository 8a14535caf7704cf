// iresnet: sizes and parameter count from the architecture, PyTorch names and order (and the
// PyTorch-generated name fixture), initialisation, BN running statistics, partial batches, the
// float64 gradient audit of the whole network, and safetensors checkpoints.
#include <doctest/doctest.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/safetensors.h"
#include "layers/gradcheck_model.h"
#include "layers/iresnet.h"
#include "tests/test_util.h"

using engine::ParamKind;

namespace {

IResNetConfig tiny_config() {
    IResNetConfig cfg = IResNetConfig::named("r18");
    cfg.width = 0.125;
    cfg.input_size = 16;
    cfg.num_features = 16;
    return cfg;
}

template <typename T>
std::vector<T> images(i64 n, int size, u64 seed) {
    return test::random_vector<T>(n * 3 * size * size, seed, 0.0, 255.0);
}

std::string temp_path(const std::string& name) {
    return std::string("/tmp/test_iresnet_") + std::to_string((long long)::getpid()) + "_" + name;
}

}  // namespace

TEST_CASE("iresnet named configs") {
    CHECK(IResNetConfig::named("r18").depth == 18);
    CHECK(IResNetConfig::named("r34").depth == 34);
    CHECK(IResNetConfig::named("r50").depth == 50);
    CHECK(IResNetConfig::named("r100").depth == 100);
    CHECK(IResNetConfig::named("r50").num_features == 512);
    CHECK_THROWS_AS(IResNetConfig::named("r51"), engine::ArgError);
    IResNetConfig bad = tiny_config();
    bad.input_size = 24;  // not a multiple of 16
    CHECK_THROWS_AS(IResNet<double>(bad, 2), engine::ShapeError);
}

TEST_CASE("iresnet r50 width 1 at 112: parameter count, names, order, shapes") {
    IResNet<float> net(IResNetConfig::named("r50"), 1);
    const auto& store = net.params();
    CHECK(net.embedding_size() == 512);

    // Expected learnt parameters, from SPEC.md section 3 (not from the code):
    //   stem conv 3x3x3 -> 64, BN 64 (gamma, beta), PReLU 64;
    //   unit (cin -> c): BN cin, conv 3x3 cin -> c, BN c, PReLU c, conv 3x3 c -> c, BN c,
    //                    first unit of a stage + conv 1x1 cin -> c, BN c;
    //   bn2 512, fc 512*7*7 -> 512 with bias, features BN 512 with gamma fixed (beta only).
    const int units[4] = {3, 4, 14, 3};
    const i64 widths[4] = {64, 128, 256, 512};
    i64 learnt = 64 * 3 * 9 + 2 * 64 + 64, state = 2 * 64, entries = 1 + 4 + 1, bns = 1;
    i64 cin = 64;
    for (int s = 0; s < 4; ++s)
        for (int u = 0; u < units[s]; ++u) {
            const i64 c = widths[s];
            learnt += 2 * cin + c * cin * 9 + 2 * c + c + c * c * 9 + 2 * c;
            state += 2 * cin + 2 * c + 2 * c;
            entries += 4 + 1 + 4 + 1 + 1 + 4;
            bns += 3;
            if (u == 0) {
                learnt += c * cin + 2 * c;
                state += 2 * c;
                entries += 1 + 4;
                bns += 1;
            }
            cin = c;
        }
    learnt += 2 * 512 + 512 * 512 * 7 * 7 + 512 + 512;
    state += 2 * 512 + 512 + 2 * 512;  // bn2 running; features gamma (fixed) and running
    entries += 4 + 2 + 4;
    bns += 2;
    CHECK(store.num_params() == learnt);
    // The same count from PyTorch (tests/torch_iresnet.py, r50): sum of numel over parameters
    // with requires_grad = 43,590,336.
    CHECK(learnt == 43590336);
    CHECK(store.num_state() == state);
    REQUIRE((i64)store.entries().size() == entries);

    const auto& e = store.entries();
    CHECK(e.front().name == "conv1.weight");
    CHECK(e.front().shape == std::vector<i64>{64, 3, 3, 3});
    CHECK(e[1].name == "bn1.weight");
    CHECK(e[5].name == "prelu.weight");
    CHECK(e[6].name == "layer1.0.bn1.weight");
    CHECK(e.back().name == "features.running_var");
    CHECK(e[e.size() - 4].name == "features.weight");
    CHECK(e[e.size() - 4].kind == ParamKind::fixed);
    CHECK(e[e.size() - 5].name == "fc.bias");
    CHECK(e[e.size() - 6].name == "fc.weight");
    CHECK(e[e.size() - 6].shape == std::vector<i64>{512, 512 * 7 * 7});
    CHECK(store.entry(store.id("layer4.2.conv2.weight")).shape == std::vector<i64>{512, 512, 3, 3});
    CHECK(store.entry(store.id("layer3.0.downsample.0.weight")).shape ==
          std::vector<i64>{256, 128, 1, 1});
    // A projection shortcut in exactly the first unit of each stage.
    for (int s = 0; s < 4; ++s)
        for (int u = 0; u < units[s]; ++u) {
            const std::string p = "layer" + std::to_string(s + 1) + "." + std::to_string(u) + ".";
            CHECK(store.has(p + "conv1.weight"));
            CHECK(store.has(p + "downsample.0.weight") == (u == 0));
            CHECK(store.has(p + "downsample.1.running_var") == (u == 0));
        }
    CHECK_FALSE(store.has("layer1.3.bn1.weight"));
    CHECK_FALSE(store.has("layer3.14.bn1.weight"));

    // Checkpoint layout: one num_batches_tracked right after every BN's running_var.
    const auto layout = net.checkpoint_layout();
    CHECK((i64)layout.size() == entries + bns);
    CHECK(layout[5].first == "bn1.num_batches_tracked");
    CHECK(layout[5].second.empty());
    CHECK(layout.back().first == "features.num_batches_tracked");

    // The names, order and shapes of PyTorch's state_dict, written by tests/make_fixtures.py.
    const std::string fixture = "tests/fixtures/iresnet50_names.txt";
    std::ifstream f(fixture);
    if (!f) {
        FAIL("fixture ", fixture, " is missing: generate it with /usr/bin/python3 "
             "tests/make_fixtures.py names (from the repository root)");
    } else {
        std::vector<std::pair<std::string, std::vector<i64>>> want;
        std::string line;
        while (std::getline(f, line)) {
            if (line.empty()) continue;
            std::istringstream ls(line);
            std::string name, dims;
            ls >> name >> dims;
            std::vector<i64> shape;
            std::istringstream ds(dims);
            for (std::string d; std::getline(ds, d, ',');)
                if (!d.empty()) shape.push_back(std::stoll(d));
            want.emplace_back(name, shape);
        }
        REQUIRE(want.size() == layout.size());
        int mismatches = 0;
        for (size_t i = 0; i < want.size(); ++i) {
            if (want[i] == layout[i]) continue;
            if (++mismatches <= 5)
                FAIL_CHECK("entry ", i, ": PyTorch has ", want[i].first, " ",
                           engine::shape_str(want[i].second), ", the engine ", layout[i].first,
                           " ", engine::shape_str(layout[i].second));
        }
        CHECK(mismatches == 0);
    }
}

TEST_CASE("iresnet init: InsightFace values, deterministic per seed") {
    IResNet<double> a(tiny_config(), 2), b(tiny_config(), 2);
    a.init(3);
    b.init(3);
    auto& s = a.params();
    const auto pa = s.params().to_host(), pb = b.params().params().to_host();
    CHECK(pa == pb);
    b.init(4);
    CHECK(pa != b.params().params().to_host());

    auto values = [&](const std::string& name) {
        const auto& e = s.entry(s.id(name));
        const double* p = s.value(s.id(name));
        return std::vector<double>(p, p + e.numel);
    };
    for (double x : values("bn1.weight")) CHECK(x == 1.0);
    for (double x : values("layer2.0.bn3.bias")) CHECK(x == 0.0);
    for (double x : values("layer2.0.bn3.running_var")) CHECK(x == 1.0);
    for (double x : values("layer2.0.prelu.weight")) CHECK(x == 0.25);
    for (double x : values("fc.bias")) CHECK(x == 0.0);
    for (double x : values("features.weight")) CHECK(x == 1.0);
    // Gaussian with std sqrt(2 / fan_out): layer4.1.conv2 (64, 64, 3, 3) has fan_out 576.
    for (const std::string name : {"layer4.1.conv2.weight", "fc.weight"}) {
        const auto w = values(name);
        const auto& e = s.entry(s.id(name));
        const double fan_out = e.shape.size() == 4 ? (double)(e.shape[0] * e.shape[2] * e.shape[3])
                                                   : (double)e.shape[0];
        double m = 0, v = 0;
        for (double x : w) m += x;
        m /= (double)w.size();
        for (double x : w) v += (x - m) * (x - m);
        const double sd = std::sqrt(v / (double)w.size()), want = std::sqrt(2.0 / fan_out);
        INFO(name, " std ", sd, " expected ", want, " over ", w.size(), " values");
        CHECK(std::fabs(sd / want - 1) < 4.0 / std::sqrt((double)w.size()) + 0.01);
        CHECK(std::fabs(m) < 4 * want / std::sqrt((double)w.size()));
    }
}

TEST_CASE("iresnet forward: embedding shape, running statistics only in training") {
    const IResNetConfig cfg = tiny_config();
    IResNet<double> net(cfg, 4);
    net.init(1);
    const auto x = images<double>(4, cfg.input_size, 2);
    auto& store = net.params();
    const auto state0 = store.state().to_host();
    const u64 c0 = net.dropout_counter();

    const double* e = net.forward(x.data(), 4, false);
    std::vector<double> infer(e, e + 4 * cfg.num_features);
    CHECK(test::all_finite(infer));
    CHECK(store.state().to_host() == state0);  // inference leaves running statistics alone
    CHECK(net.num_batches_tracked() == 0);
    CHECK(net.dropout_counter() == c0);

    e = net.forward(x.data(), 4, true);
    std::vector<double> train(e, e + 4 * cfg.num_features);
    CHECK(test::all_finite(train));
    const auto state1 = store.state().to_host();
    CHECK(net.num_batches_tracked() == 1);
    // Dropout advanced by one slot per element of the (4, 64 * 1 * 1) fc input.
    CHECK(net.dropout_counter() == c0 + 4 * 64);
    // Every running mean moved (batch means are not exactly 0); features.weight did not.
    for (const auto& en : store.entries()) {
        if (en.kind == ParamKind::learnt) continue;
        const double* before = state0.data() + en.offset;
        const double* after = state1.data() + en.offset;
        bool changed = false;
        for (i64 i = 0; i < en.numel; ++i) changed = changed || before[i] != after[i];
        INFO(en.name);
        CHECK(changed == (en.kind == ParamKind::state));
    }
    // Training-mode BN over the batch: each embedding feature has batch mean beta = 0.
    for (int j = 0; j < cfg.num_features; ++j) {
        double m = 0;
        for (int n = 0; n < 4; ++n) m += train[n * cfg.num_features + j];
        CHECK(std::fabs(m / 4) < 1e-12);
    }
}

TEST_CASE("iresnet batch smaller than max_batch") {
    const IResNetConfig cfg = tiny_config();
    IResNet<double> net(cfg, 4);
    net.init(5);
    // Running statistics from two training steps, then inference is per sample: the first two
    // images alone give the same embeddings as inside the batch of four.
    for (u64 k = 0; k < 2; ++k) net.forward(images<double>(4, cfg.input_size, 30 + k).data(), 4, true);
    const auto x = images<double>(4, cfg.input_size, 6);
    const double* e = net.forward(x.data(), 4, false);
    const std::vector<double> full(e, e + 4 * cfg.num_features);
    e = net.forward(x.data(), 2, false);
    const std::vector<double> part(e, e + 2 * cfg.num_features);
    CHECK(test::max_rel_diff(part.data(), full.data(), (i64)part.size()) < 1e-12);

    // A training step on 3 of 4 slots runs and gives finite gradients.
    net.zero_grad();
    e = net.forward(x.data(), 3, true);
    CHECK(test::all_finite(std::vector<double>(e, e + 3 * cfg.num_features)));
    const auto d = test::random_vector<double>(3 * cfg.num_features, 7);
    std::vector<double> dx(3 * 3 * cfg.input_size * cfg.input_size);
    net.backward(d.data(), dx.data());
    CHECK(test::all_finite(net.params().grads().to_host()));
    CHECK(test::all_finite(dx));
    CHECK_THROWS_AS(net.forward(x.data(), 5, true), engine::ShapeError);
}

TEST_CASE("iresnet backward accumulates parameter gradients") {
    const IResNetConfig cfg = tiny_config();
    IResNet<double> net(cfg, 4);
    net.init(8);
    const auto x = images<double>(4, cfg.input_size, 9);
    const auto d = test::random_vector<double>(4 * cfg.num_features, 10);
    net.zero_grad();
    net.set_dropout_rng(11, 0);
    net.forward(x.data(), 4, true);
    net.backward(d.data());
    const auto once = net.params().grads().to_host();
    net.set_dropout_rng(11, 0);  // same mask
    net.forward(x.data(), 4, true);
    net.backward(d.data());
    auto twice = net.params().grads().to_host();
    double nonzero = 0;
    for (size_t i = 0; i < once.size(); ++i) {
        nonzero += std::fabs(once[i]);
        twice[i] *= 0.5;
    }
    CHECK(nonzero > 0);
    CHECK(test::max_rel_diff(twice.data(), once.data(), (i64)once.size()) < 1e-12);
    net.zero_grad();
    for (double g : net.params().grads().to_host()) REQUIRE(g == 0.0);
}

TEST_CASE("iresnet gradients (float64 central differences, r18 width 1/8)") {
    int cases = 0;
    for (const auto& c : model_gradcheck_cases()) {
        if (c.name.rfind("iresnet.", 0) != 0) continue;
        ++cases;
        int rows = 0, failed = 0;
        for (const auto& row : c.run()) {
            ++rows;
            if (!row.pass) ++failed;
            INFO(c.name, " / ", row.tensor, ": checked ", row.checked, "/", row.total,
                 ", skipped ", row.skipped, ", max rel error ", row.max_rel_error);
            CHECK(row.pass);
        }
        // Every learnt tensor of r18 (4 stem + 8 units x 9 + 4 projections x 3 + 5 head) and
        // the images.
        CHECK(rows == 4 + 8 * 9 + 4 * 3 + 5 + 1);
        CHECK(failed == 0);
    }
    CHECK(cases == 2);
}

TEST_CASE("iresnet checkpoint: save -> load reproduces the model exactly") {
    const IResNetConfig cfg = tiny_config();
    const std::string path = temp_path("roundtrip.safetensors");
    IResNet<float> a(cfg, 4);
    a.init(12);
    for (u64 k = 0; k < 3; ++k) a.forward(images<float>(4, cfg.input_size, 40 + k).data(), 4, true);
    a.save(path);

    std::map<std::string, std::string> meta;
    const auto tensors = engine::read_safetensors(path, &meta);
    CHECK(meta["format"] == "pt");
    CHECK(meta["network"] == "r18");
    CHECK(meta["width"] == "0.125");
    const auto layout = a.checkpoint_layout();
    REQUIRE(tensors.size() == layout.size());
    for (size_t i = 0; i < tensors.size(); ++i) {
        CHECK(tensors[i].name == layout[i].first);
        CHECK(tensors[i].shape == layout[i].second);
        const bool tracked = tensors[i].name.find("num_batches_tracked") != std::string::npos;
        CHECK(tensors[i].dtype == (tracked ? "I64" : "F32"));
        if (tracked) {
            REQUIRE(tensors[i].data.size() == 8);
            CHECK(tensors[i].data[0] == 3);  // three training forwards, little-endian
        }
    }

    IResNet<float> b(cfg, 4);
    b.init(99);
    b.load(path);
    CHECK(b.params().params().to_host() == a.params().params().to_host());
    CHECK(b.params().state().to_host() == a.params().state().to_host());
    CHECK(b.num_batches_tracked() == 3);
    const auto x = images<float>(4, cfg.input_size, 13);
    const float* ea = a.forward(x.data(), 4, false);
    const std::vector<float> va(ea, ea + 4 * cfg.num_features);
    const float* eb = b.forward(x.data(), 4, false);
    const std::vector<float> vb(eb, eb + 4 * cfg.num_features);
    CHECK(va == vb);

    // A float64 model writes float32 and reads it back converted.
    IResNet<double> c(cfg, 4);
    c.load(path);
    const auto pc = c.params().params().to_host();
    const auto pa = a.params().params().to_host();
    REQUIRE(pc.size() == pa.size());
    bool same = true;
    for (size_t i = 0; i < pc.size(); ++i) same = same && pc[i] == (double)pa[i];
    CHECK(same);
    std::remove(path.c_str());
}

TEST_CASE("iresnet checkpoint: a missing, mis-shaped or unknown tensor is a FormatError") {
    const IResNetConfig cfg = tiny_config();
    const std::string good = temp_path("good.safetensors"), bad = temp_path("bad.safetensors");
    IResNet<float> a(cfg, 2);
    a.init(14);
    a.save(good);
    std::map<std::string, std::string> meta;
    const auto tensors = engine::read_safetensors(good, &meta);
    IResNet<float> b(cfg, 2);
    b.init(15);
    const auto before = b.params().params().to_host();

    auto expect_error = [&](const std::vector<engine::SafeTensor>& ts, const std::string& what,
                            bool strict) {
        engine::write_safetensors(bad, ts, meta);
        std::string msg;
        try {
            b.load(bad, strict);
        } catch (const engine::FormatError& e) {
            msg = e.what();
        }
        INFO("message: ", msg);
        CHECK(msg.find(what) != std::string::npos);
        CHECK(msg.find(bad) != std::string::npos);
        // A failed load leaves the model unchanged.
        CHECK(b.params().params().to_host() == before);
    };

    std::vector<engine::SafeTensor> missing;
    for (const auto& t : tensors)
        if (t.name != "layer2.1.conv1.weight") missing.push_back(t);
    expect_error(missing, "layer2.1.conv1.weight", true);

    std::vector<engine::SafeTensor> reshaped = tensors;
    for (auto& t : reshaped)
        if (t.name == "layer3.0.bn2.running_var") {
            const std::vector<float> v = t.as<float>();
            t = engine::make_safetensor(t.name, {(i64)v.size() - 1}, v.data());
        }
    expect_error(reshaped, "layer3.0.bn2.running_var", true);

    std::vector<engine::SafeTensor> extra = tensors;
    const float one = 1.0f;
    extra.push_back(engine::make_safetensor("fc7.weight", {1}, &one));
    expect_error(extra, "fc7.weight", true);
    // Not strict: the unknown tensor is ignored and the rest loads.
    engine::write_safetensors(bad, extra, meta);
    b.load(bad, false);
    CHECK(b.params().params().to_host() == a.params().params().to_host());

    CHECK_THROWS_AS(b.load(temp_path("does_not_exist.safetensors")), engine::IoError);
    std::remove(good.c_str());
    std::remove(bad.c_str());
}
