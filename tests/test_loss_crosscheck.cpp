// Cross-check of the losses against PyTorch autograd (float64): tests/torch_losses.py wrote the
// inputs, losses and gradients to tests/fixtures/losses_*.txt; we recompute them with the CPU
// reference in double and require relative agreement below 1e-6 (it is ~1e-13 in practice).
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "losses/center_dispersed.h"
#include "losses/margin_softmax.h"
#include "losses/normalized_classifier.h"
#include "tests/test_util.h"

namespace {

struct Fixture {
    std::map<std::string, std::vector<i64>> shape;
    std::map<std::string, std::vector<double>> value;
    const std::vector<double>& operator[](const std::string& k) const {
        auto it = value.find(k);
        REQUIRE_MESSAGE(it != value.end(), "fixture has no tensor ", k);
        return it->second;
    }
    double scalar(const std::string& k) const { return (*this)[k].at(0); }
};

// The text format of tests/torch_losses.py: '#' comments, then per tensor a line
// "NAME NDIM D0 .. D{NDIM-1}" and a line of its values.
Fixture read_fixture(const std::string& path) {
    std::ifstream in(path);
    REQUIRE_MESSAGE(in.good(), "cannot open ", path, " (run the suite from the repository root)");
    Fixture f;
    std::string line;
    while (std::getline(in, line)) {
        if (line.empty() || line[0] == '#') continue;
        std::istringstream hs(line);
        std::string name;
        int ndim = 0;
        hs >> name >> ndim;
        std::vector<i64> shape(ndim);
        i64 n = 1;
        for (auto& d : shape) {
            hs >> d;
            n *= d;
        }
        REQUIRE(std::getline(in, line));
        std::istringstream vs(line);
        std::vector<double> v;
        double x;
        while (vs >> x) v.push_back(x);
        REQUIRE_MESSAGE((i64)v.size() == n, path, ": tensor ", name, " has ", v.size(),
                        " values for ", n, " elements");
        f.shape[name] = shape;
        f.value[name] = v;
    }
    return f;
}

// max |a - b| over max |b|: agreement relative to the size of the reference tensor.
double rel_to_max(const std::vector<double>& a, const std::vector<double>& b) {
    REQUIRE(a.size() == b.size());
    double m = 0, e = 0;
    for (size_t i = 0; i < a.size(); ++i) {
        m = std::max(m, std::fabs(b[i]));
        e = std::max(e, std::fabs(a[i] - b[i]));
        if (!std::isfinite(a[i])) return INFINITY;
    }
    return e / m;
}

void check_margin_fixture(const std::string& file, const MarginSoftmaxOptions& opt) {
    const Fixture f = read_fixture("tests/fixtures/" + file);
    const i64 B = f.shape.at("x")[0], D = f.shape.at("x")[1], C = f.shape.at("W")[0];
    auto x = f["x"], W = f["W"];
    std::vector<std::int32_t> labels;
    for (double v : f["labels"]) labels.push_back((std::int32_t)v);
    std::vector<double> cos(B * C), xn(B * D), xnorm(B), wn(C * D), wnorm(C), loss(B), dx(B * D),
        dW(C * D, 0.0);
    normalized_classifier_forward_cpu(cos.data(), xn.data(), xnorm.data(), wn.data(), wnorm.data(),
                                      x.data(), W.data(), B, C, D);
    const double mean = margin_softmax_loss_cpu(cos.data(), loss.data(), labels.data(), B, C, opt);
    normalized_classifier_backward_cpu(dx.data(), dW.data(), cos.data(), xn.data(), xnorm.data(),
                                       wn.data(), wnorm.data(), B, C, D);
    INFO(file);
    CHECK(std::fabs(mean - f.scalar("loss")) / std::fabs(f.scalar("loss")) < 1e-6);
    CHECK(rel_to_max(loss, f["per_sample_loss"]) < 1e-6);
    CHECK(rel_to_max(dx, f["dx"]) < 1e-6);
    CHECK(rel_to_max(dW, f["dW"]) < 1e-6);
}

}  // namespace

TEST_CASE("loss crosscheck: ArcFace loss-type 4 (full margin gradient) matches PyTorch") {
    const Fixture f = read_fixture("tests/fixtures/losses_arcface.txt");
    check_margin_fixture("losses_arcface.txt", arcface_options(f.scalar("s"), f.scalar("m")));
}

TEST_CASE("loss crosscheck: combined margin matches PyTorch") {
    const Fixture f = read_fixture("tests/fixtures/losses_combined.txt");
    check_margin_fixture(
        "losses_combined.txt",
        combined_margin_options(f.scalar("s"), f.scalar("m1"), f.scalar("m2"), f.scalar("m3")));
}

TEST_CASE("loss crosscheck: NR loss matches PyTorch") {
    const Fixture f = read_fixture("tests/fixtures/losses_nr.txt");
    check_margin_fixture("losses_nr.txt",
                         with_nr(arcface_options(f.scalar("s"), f.scalar("m")), f.scalar("beta")));
}

TEST_CASE("loss crosscheck: center-dispersed loss matches PyTorch") {
    const Fixture f = read_fixture("tests/fixtures/losses_center_dispersed.txt");
    const i64 N = f.shape.at("emb")[0], D = f.shape.at("emb")[1], k = (i64)f.scalar("k");
    const double w = f.scalar("interweight");
    std::vector<double> cache(center_dispersed_cache_numel(N, D, k)), de(N * D);
    const double l =
        center_dispersed_forward_cpu(cache.data(), f["emb"].data(), nullptr, N, D, k, w);
    center_dispersed_backward_cpu(de.data(), cache.data(), N, D, k, w);
    CHECK(std::fabs(l - f.scalar("loss")) / std::fabs(f.scalar("loss")) < 1e-6);
    CHECK(rel_to_max(de, f["demb"]) < 1e-6);
}
