// Verification protocol: data/verification.cpp against the independent numpy reimplementation
// tests/verification_ref.py (fixtures tests/fixtures/verification_*.txt), plus hand cases.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "data/verification.h"
#include "engine/error.h"

namespace {

// A fixture: lines "key v1 v2 ...", '#' comments.
struct Fixture {
    std::map<std::string, std::vector<std::string>> kv;
    const std::vector<std::string>& at(const std::string& k) const {
        auto it = kv.find(k);
        REQUIRE_MESSAGE(it != kv.end(), "fixture key missing: ", k);
        return it->second;
    }
    std::vector<double> doubles(const std::string& k) const {
        std::vector<double> v;
        for (const auto& s : at(k)) v.push_back(std::strtod(s.c_str(), nullptr));
        return v;
    }
    std::vector<float> floats(const std::string& k) const {
        std::vector<float> v;  // strtof: the float32 digits numpy printed read back exactly
        for (const auto& s : at(k)) v.push_back(std::strtof(s.c_str(), nullptr));
        return v;
    }
    std::vector<long long> ints(const std::string& k) const {
        std::vector<long long> v;
        for (const auto& s : at(k)) v.push_back(std::strtoll(s.c_str(), nullptr, 10));
        return v;
    }
    double scalar(const std::string& k) const { return doubles(k).at(0); }
    std::vector<bool> issame() const {
        std::vector<bool> v;
        for (const auto& s : at("issame")) v.push_back(s == "1");
        return v;
    }
};

Fixture load_fixture(const std::string& name) {
    const std::string path = "tests/fixtures/" + name;
    std::ifstream f(path);
    REQUIRE_MESSAGE(f.good(), "cannot open ", path, " (run the tests from the repository root)");
    Fixture fx;
    std::string line;
    while (std::getline(f, line)) {
        if (line.empty() || line[0] == '#') continue;
        std::istringstream is(line);
        std::string key, tok;
        is >> key;
        auto& v = fx.kv[key];
        while (is >> tok) v.push_back(tok);
    }
    return fx;
}

// Accuracies, VAL and FAR are ratios of small integers: the two implementations compute the
// same counts, so only the mean/std summation order can differ (a few ulps); 1e-12 absolute.
void check_close(const std::vector<double>& got, const std::vector<double>& want,
                 const char* what, double tol = 1e-12) {
    REQUIRE(got.size() == want.size());
    for (size_t i = 0; i < got.size(); ++i) {
        INFO(what, "[", i, "] got ", got[i], " want ", want[i]);
        CHECK(std::isfinite(got[i]));
        CHECK(std::fabs(got[i] - want[i]) <= tol);
    }
}

void compare_with_reference(const data::VerificationResult& r, const Fixture& fx) {
    const i64 pairs = (i64)fx.scalar("pairs");
    CHECK(r.pairs == pairs);
    REQUIRE(r.folds == 10);
    const auto sizes = fx.ints("fold_sizes");
    REQUIRE(sizes.size() == 10);
    for (int f = 0; f < 10; ++f) CHECK(r.fold_begin[f + 1] - r.fold_begin[f] == sizes[f]);
    CHECK(r.fold_begin.back() == pairs);

    // The chosen thresholds must be the same grid points, bit for bit.
    const auto best = fx.ints("best_index");
    const auto best_t = fx.doubles("best_threshold");
    for (int f = 0; f < 10; ++f) {
        INFO("fold ", f);
        CHECK(r.best_threshold_index[f] == best[f]);
        CHECK(r.best_threshold[f] == best_t[f]);
    }
    check_close(r.fold_accuracy, fx.doubles("fold_acc"), "fold accuracy");
    check_close({r.accuracy_mean, r.accuracy_std}, {fx.scalar("acc_mean"), fx.scalar("acc_std")},
                "accuracy mean/std");
    // The interpolated VAL thresholds are computed with the same formula in both; 1e-12 covers
    // any rounding of FAR ratios computed in a different order.
    check_close(r.val_threshold, fx.doubles("val_threshold"), "val threshold");
    check_close(r.fold_val, fx.doubles("fold_val"), "fold VAL");
    check_close(r.fold_far, fx.doubles("fold_far"), "fold FAR");
    check_close({r.val_mean, r.val_std, r.far_mean, r.far_std},
                {fx.scalar("val_mean"), fx.scalar("val_std"), fx.scalar("far_mean"),
                 fx.scalar("far_std")},
                "VAL/FAR mean/std");
}

}  // namespace

TEST_CASE("verification: KFold boundaries put the extra pairs in the first folds") {
    const auto b = data::kfold_boundaries(537, 10);  // 7 folds of 54, then 3 of 53
    REQUIRE(b.size() == 11);
    const i64 want[11] = {0, 54, 108, 162, 216, 270, 324, 378, 431, 484, 537};
    for (int i = 0; i < 11; ++i) CHECK(b[i] == want[i]);
    const auto c = data::kfold_boundaries(600, 10);
    for (int i = 0; i <= 10; ++i) CHECK(c[i] == 60 * i);
    CHECK_THROWS_AS(data::kfold_boundaries(9, 10), engine::ArgError);
}

TEST_CASE("verification: threshold grids are numpy's arange(0, 4, step)") {
    const auto a = data::accuracy_thresholds(), v = data::val_thresholds();
    REQUIRE(a.size() == 400);
    REQUIRE(v.size() == 4000);
    CHECK(a[0] == 0.0);
    CHECK(a[100] == 1.0);
    CHECK(a[399] == 399 * 0.01);
    CHECK(v[3999] == 3999 * 0.001);
    CHECK(a[399] < 4.0);
}

TEST_CASE("verification: 'same' means dist strictly below the threshold") {
    // Ten folds of two pairs: a same pair at exactly 0.5 (= threshold index 50) and a different
    // pair at 0.52. Thresholds 0.51 and 0.52 separate them perfectly; 0.50 would too if the
    // comparison were '<='. The first perfect one is index 51.
    std::vector<double> d;
    std::vector<bool> s;
    for (int i = 0; i < 10; ++i) {
        d.push_back(0.5);
        s.push_back(true);
        d.push_back(0.52);
        s.push_back(false);
    }
    const auto r = data::verify_distances(d, s);
    for (int f = 0; f < 10; ++f) {
        CHECK(r.best_threshold_index[f] == 51);
        CHECK(r.fold_accuracy[f] == 1.0);
    }
    CHECK(r.accuracy_mean == 1.0);
    CHECK(r.accuracy_std == 0.0);
    // FAR(train) jumps from 0 (t <= 0.52) to 1 (t > 0.52): the interpolated threshold for FAR
    // 1e-3 lies just above 0.52 (between grid points 0.520 and 0.521), accepting every pair
    // of the test fold: VAL 1 and FAR 1.
    for (int f = 0; f < 10; ++f) {
        CHECK(r.val_threshold[f] > 0.52);
        CHECK(r.val_threshold[f] < 0.521);
        CHECK(r.fold_val[f] == 1.0);
        CHECK(r.fold_far[f] == 1.0);
    }
}

TEST_CASE("verification: matches the numpy reference, 537 pairs (folds of 54 and 53)") {
    const Fixture fx = load_fixture("verification_dist_537.txt");
    compare_with_reference(data::verify_distances(fx.doubles("dist"), fx.issame()), fx);
}

TEST_CASE("verification: matches the numpy reference, 600 pairs (folds of 60)") {
    const Fixture fx = load_fixture("verification_dist_600.txt");
    compare_with_reference(data::verify_distances(fx.doubles("dist"), fx.issame()), fx);
}

TEST_CASE("verification: largest training FAR below 1e-3 gives threshold 0 and VAL 0") {
    const Fixture fx = load_fixture("verification_dist_far0.txt");
    const auto r = data::verify_distances(fx.doubles("dist"), fx.issame());
    compare_with_reference(r, fx);
    for (int f = 0; f < 10; ++f) CHECK(r.val_threshold[f] == 0.0);
}

TEST_CASE("verification: full flip protocol from embeddings matches the numpy reference") {
    const Fixture fx = load_fixture("verification_emb_253.txt");
    const i64 pairs = (i64)fx.scalar("pairs"), dim = (i64)fx.scalar("dim");
    const auto emb = fx.floats("emb"), mir = fx.floats("emb_mirror");
    REQUIRE((i64)emb.size() == 2 * pairs * dim);
    REQUIRE((i64)mir.size() == 2 * pairs * dim);
    const auto r = data::verify_embeddings(emb.data(), mir.data(), pairs, dim, fx.issame());
    compare_with_reference(r, fx);
    // XNorm ~ 20, a mean of 1012 norms summed in a different order: 1e-12 relative.
    const double want = fx.scalar("xnorm");
    INFO("xnorm got ", r.xnorm, " want ", want);
    CHECK(std::fabs(r.xnorm - want) <= 1e-12 * want);
}

TEST_CASE("verification: XNorm averages the originals and the mirrors, not their sums") {
    // One pair, D = 2. Norms: originals 5 and 1, mirrors 5 and 3 -> XNorm 3.5. The flip sums
    // (7, 7) and (0, 4) have norms 9.899 and 4 (mean 6.95, halved 3.47): a different number.
    const float emb[4] = {3, 4, 0, 1};
    const float mir[4] = {4, 3, 0, 3};
    CHECK(data::mean_embedding_norm(emb, mir, 2, 2) == 3.5);
    // normalize(7, 7) = (1, 1) / sqrt 2, normalize(0, 4) = (0, 1): distance 2 - sqrt 2.
    const auto d = data::flip_pair_distances(emb, mir, 1, 2);
    REQUIRE(d.size() == 1);
    CHECK(std::fabs(d[0] - (2.0 - std::sqrt(2.0))) < 1e-15);
}

TEST_CASE("verification: bad input is rejected with a typed error") {
    std::vector<double> d(20, 1.0);
    std::vector<bool> s(19, true);
    CHECK_THROWS_AS(data::verify_distances(d, s), engine::ArgError);
    s.push_back(false);
    d[7] = -0.5;
    CHECK_THROWS_AS(data::verify_distances(d, s), engine::DataError);
    d[7] = NAN;
    CHECK_THROWS_AS(data::verify_distances(d, s), engine::DataError);
    std::vector<float> emb(40 * 4, 1.0f), mir(40 * 4, 1.0f);  // 20 pairs, D = 4
    CHECK_THROWS_AS(data::verify_embeddings(emb.data(), mir.data(), 10, 4, s), engine::ArgError);
    mir[13] = INFINITY;
    CHECK_THROWS_AS(data::verify_embeddings(emb.data(), mir.data(), 20, 4, s), engine::DataError);
}
