// Augmentation: determinism for (seed, sample, epoch), exact mirror, gray with equal channels,
// the jitter formulas against a double-precision re-computation, and the probabilities.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <set>
#include <vector>

#include "data/augment.h"
#include "engine/rng.h"

namespace {
data::Image random_image(int h, int w, u64 seed) {
    data::Image img(h, w);
    engine::Rng rng(seed);
    for (auto& p : img.pixels) p = (u8)rng.below(256);
    return img;
}
std::vector<float> run(const data::Image& img, const data::AugmentDraw& d) {
    std::vector<float> out((size_t)3 * img.height * img.width);
    data::augment_to_chw(out.data(), img, d);
    return out;
}
double clamp255(double v) { return std::min(255.0, std::max(0.0, v)); }
}  // namespace

TEST_CASE("augment: draws are a pure function of (seed, sample, epoch)") {
    const auto cfg = data::AugmentConfig::step23(42);
    int differ_epoch = 0, differ_seed = 0;
    const auto other = data::AugmentConfig::step23(43);
    for (i64 s = 0; s < 200; ++s) {
        const auto a = data::draw_augment(cfg, s, 3), b = data::draw_augment(cfg, s, 3);
        CHECK(a.mirror == b.mirror);
        CHECK(a.gray == b.gray);
        CHECK(a.jitter == b.jitter);
        CHECK(a.brightness == b.brightness);
        CHECK(a.contrast == b.contrast);
        CHECK(a.saturation == b.saturation);
        CHECK(a.order[0] == b.order[0]);
        const auto c = data::draw_augment(cfg, s, 4), d = data::draw_augment(other, s, 3);
        differ_epoch += (a.mirror != c.mirror) || (a.brightness != c.brightness);
        differ_seed += (a.mirror != d.mirror) || (a.brightness != d.brightness);
    }
    // Mirror alone differs with probability 1/2 per sample: 200 samples never all agree.
    CHECK(differ_epoch > 50);
    CHECK(differ_seed > 50);
    // The same draw on the same image gives the same floats, bit for bit.
    const data::Image img = random_image(20, 18, 1);
    data::AugmentDraw d;
    d.mirror = true;
    d.jitter = true;
    d.gray = false;
    d.brightness = 1.13f;
    d.contrast = 0.87f;
    d.saturation = 1.05f;
    CHECK(run(img, d) == run(img, d));
}

TEST_CASE("augment: no augmentation converts HWC bytes to CHW floats exactly") {
    const data::Image img = random_image(7, 9, 2);
    const std::vector<float> out = run(img, data::AugmentDraw());
    std::vector<float> ref((size_t)3 * 7 * 9);
    data::image_to_chw(ref.data(), img.pixels.data(), 7, 9);
    CHECK(out == ref);
    for (int c = 0; c < 3; ++c)
        for (int y = 0; y < 7; ++y)
            for (int x = 0; x < 9; ++x) CHECK(out[(c * 7 + y) * 9 + x] == (float)img.at(y, x)[c]);
}

TEST_CASE("augment: mirror is an exact horizontal flip") {
    const data::Image img = random_image(11, 13, 3);
    data::AugmentDraw d;
    d.mirror = true;
    const std::vector<float> out = run(img, d);
    bool exact = true;
    for (int c = 0; c < 3; ++c)
        for (int y = 0; y < 11; ++y)
            for (int x = 0; x < 13; ++x)
                exact &= out[(c * 11 + y) * 13 + x] == (float)img.at(y, 12 - x)[c];
    CHECK(exact);
}

TEST_CASE("augment: gray has equal channels with MXNet's weights") {
    const data::Image img = random_image(9, 10, 4);
    data::AugmentDraw d;
    d.gray = true;
    const std::vector<float> out = run(img, d);
    const i64 plane = 90;
    for (int y = 0; y < 9; ++y)
        for (int x = 0; x < 10; ++x) {
            const i64 i = y * 10 + x;
            CHECK(out[i] == out[plane + i]);
            CHECK(out[i] == out[2 * plane + i]);
            const u8* p = img.at(y, x);
            const double ref = 0.21 * p[0] + 0.72 * p[1] + 0.07 * p[2];
            CHECK(std::fabs(out[i] - ref) < 1e-3);
        }
}

TEST_CASE("augment: brightness, contrast and saturation follow their formulas") {
    const data::Image img = random_image(8, 6, 5);
    const i64 plane = 48;
    auto value = [&](int c, i64 i) { return (double)img.pixels[3 * i + c]; };
    auto luma = [&](i64 i) { return 0.299 * value(0, i) + 0.587 * value(1, i) + 0.114 * value(2, i); };
    data::AugmentDraw d;
    d.jitter = true;
    // Tolerance: float arithmetic on values up to ~300, relative error ~1e-7 per operation.
    const double tol = 1e-3;

    SUBCASE("brightness") {
        d.brightness = 1.17f;
        const auto out = run(img, d);
        for (int c = 0; c < 3; ++c)
            for (i64 i = 0; i < plane; ++i)
                CHECK(std::fabs(out[c * plane + i] - clamp255(1.17 * value(c, i))) < tol);
    }
    SUBCASE("contrast") {
        d.contrast = 0.83f;
        double mean = 0;
        for (i64 i = 0; i < plane; ++i) mean += luma(i);
        mean /= plane;
        const auto out = run(img, d);
        for (int c = 0; c < 3; ++c)
            for (i64 i = 0; i < plane; ++i) {
                const double ref = clamp255(0.83 * value(c, i) + 0.17 * mean);
                CHECK(std::fabs(out[c * plane + i] - ref) < tol);
            }
    }
    SUBCASE("saturation") {
        d.saturation = 1.19f;
        const auto out = run(img, d);
        for (int c = 0; c < 3; ++c)
            for (i64 i = 0; i < plane; ++i) {
                const double ref = clamp255(1.19 * value(c, i) - 0.19 * luma(i));
                CHECK(std::fabs(out[c * plane + i] - ref) < tol);
            }
    }
    SUBCASE("two jitters compose as the formula chain, in either order") {
        d.brightness = 1.15f;
        d.contrast = 0.8f;
        d.order[0] = 0; d.order[1] = 1; d.order[2] = 2;
        const auto a = run(img, d);
        d.order[0] = 1; d.order[1] = 0; d.order[2] = 2;
        const auto b = run(img, d);
        // b(c(v)) = 1.15 (0.8 v + 0.2 m) and c(b(v)) = 0.8 * 1.15 v + 0.2 * 1.15 m are equal:
        // the three jitters commute when nothing is clamped between them (as in MXNet), so
        // both orders must give this one composed value.
        double mean = 0;
        for (i64 i = 0; i < plane; ++i) mean += luma(i);
        mean /= plane;
        for (i64 i = 0; i < plane; ++i) {
            const double ref = clamp255(0.8 * (1.15 * value(0, i)) + 0.2 * 1.15 * mean);
            CHECK(std::fabs(a[i] - ref) < tol);
            CHECK(std::fabs(b[i] - ref) < tol);
        }
    }
}

TEST_CASE("augment: probabilities and ranges over many draws") {
    const auto cfg = data::AugmentConfig::step23(7);
    const int n = 40000;
    int mirror = 0, gray = 0, jitter = 0;
    std::set<int> orders;
    double bsum = 0;
    for (int s = 0; s < n; ++s) {
        const auto d = data::draw_augment(cfg, s, s % 5);
        mirror += d.mirror;
        gray += d.gray;
        jitter += d.jitter;
        if (d.jitter) {
            CHECK(d.brightness >= 0.8f);
            CHECK(d.brightness <= 1.2f);
            CHECK(d.contrast >= 0.8f);
            CHECK(d.contrast <= 1.2f);
            CHECK(d.saturation >= 0.8f);
            CHECK(d.saturation <= 1.2f);
            bsum += d.brightness;
            orders.insert(d.order[0] * 100 + d.order[1] * 10 + d.order[2]);
        } else {
            CHECK(d.brightness == 1.0f);
        }
    }
    // Binomial standard deviations at n = 40000: 0.0025 (p 0.5), 0.002 (p 0.2); 0.012 is > 4.5
    // sigma, so a correct sampler fails this with probability < 1e-5.
    CHECK(std::fabs(mirror / (double)n - 0.5) < 0.012);
    CHECK(std::fabs(gray / (double)n - 0.2) < 0.012);
    CHECK(std::fabs(jitter / (double)n - 0.2) < 0.012);
    CHECK(std::fabs(bsum / jitter - 1.0) < 0.01);  // U(0.8, 1.2) has mean 1, sd 0.115/sqrt(8000)
    CHECK(orders.size() == 6);
    // The gray and jitter decisions are independent draws, not one shared coin.
    int both = 0;
    for (int s = 0; s < n; ++s) {
        const auto d = data::draw_augment(cfg, s, 0);
        both += d.gray && d.jitter;
    }
    CHECK(std::fabs(both / (double)n - 0.04) < 0.01);
    // Mirror-only config (step 1) never grays or jitters; none() never mirrors.
    for (int s = 0; s < 1000; ++s) {
        const auto d1 = data::draw_augment(data::AugmentConfig::step1(1), s, 0);
        CHECK(!d1.gray);
        CHECK(!d1.jitter);
        CHECK(!data::draw_augment(data::AugmentConfig::none(), s, 0).mirror);
    }
}

TEST_CASE("augment: full step 2/3 augmentation stays within 0..255") {
    const data::Image img = random_image(16, 16, 8);
    const auto cfg = data::AugmentConfig::step23(9);
    float lo = 1e9f, hi = -1e9f;
    for (int s = 0; s < 300; ++s) {
        const auto out = run(img, data::draw_augment(cfg, s, 1));
        for (float v : out) {
            lo = std::min(lo, v);
            hi = std::max(hi, v);
        }
    }
    CHECK(lo >= 0.0f);
    CHECK(hi <= 255.0f);
    CHECK(hi > 250.0f);  // random bytes reach the top of the range
}
