// Image decoding/encoding (stb) and bilinear resize: round trips, hand-computed resize values,
// the size policy, and the errors for undecodable bytes.
#include <doctest/doctest.h>

#include <stb/stb_image_write.h>

#include <cmath>
#include <string>
#include <vector>

#include "data/image.h"
#include "engine/error.h"
#include "engine/rng.h"

namespace {
data::Image random_image(int h, int w, u64 seed) {
    data::Image img(h, w);
    engine::Rng rng(seed);
    for (auto& p : img.pixels) p = (u8)rng.below(256);
    return img;
}
// A smooth image (gradients): what JPEG compresses well, so a round trip error is small.
data::Image smooth_image(int h, int w) {
    data::Image img(h, w);
    for (int y = 0; y < h; ++y)
        for (int x = 0; x < w; ++x) {
            u8* p = img.at(y, x);
            p[0] = (u8)(40 + 150 * x / w);
            p[1] = (u8)(30 + 180 * y / h);
            p[2] = (u8)(120 + 60 * std::sin(0.1 * (x + y)));
        }
    return img;
}
void append_bytes(void* ctx, void* data, int size) {
    auto* v = static_cast<std::vector<u8>*>(ctx);
    v->insert(v->end(), (u8*)data, (u8*)data + size);
}
}  // namespace

TEST_CASE("image: PNG encode/decode round trip is exact") {
    const data::Image img = random_image(23, 37, 5);
    const std::vector<u8> png = data::encode_png(img);
    REQUIRE(png.size() > 8);
    CHECK(png[0] == 0x89);
    CHECK(png[1] == 'P');
    const data::Image back = data::decode_image(png, "test png");
    CHECK(back.height == 23);
    CHECK(back.width == 37);
    CHECK(back.pixels == img.pixels);
}

TEST_CASE("image: JPEG round trip is close and quality changes the size") {
    const data::Image img = smooth_image(112, 112);
    const std::vector<u8> q95 = data::encode_jpeg(img, 95);
    const std::vector<u8> q30 = data::encode_jpeg(img, 30);
    REQUIRE(q95.size() > 2);
    CHECK(q95[0] == 0xFF);
    CHECK(q95[1] == 0xD8);  // SOI marker
    CHECK(q30.size() < q95.size());
    const data::Image back = data::decode_image(q95, "test jpeg");
    REQUIRE(back.height == 112);
    REQUIRE(back.width == 112);
    double sum = 0;
    for (size_t i = 0; i < img.pixels.size(); ++i) sum += std::fabs((double)img.pixels[i] - back.pixels[i]);
    // JPEG at quality 95 on a smooth image: the mean absolute error is about 1 grey level;
    // 3 leaves room for chroma subsampling on the colour gradients, and fails on any
    // channel-order or row-stride mistake (errors of tens of levels).
    CHECK(sum / img.pixels.size() < 3.0);
    CHECK_THROWS_AS(data::encode_jpeg(img, 0), engine::ArgError);
    CHECK_THROWS_AS(data::encode_jpeg(data::Image(), 90), engine::ArgError);
}

TEST_CASE("image: grayscale and RGBA PNGs decode to RGB") {
    std::vector<u8> gray(6 * 4), png;
    for (size_t i = 0; i < gray.size(); ++i) gray[i] = (u8)(10 * i);
    REQUIRE(stbi_write_png_to_func(append_bytes, &png, 6, 4, 1, gray.data(), 6));
    data::Image img = data::decode_image(png, "gray png");
    REQUIRE(img.pixels.size() == 6 * 4 * 3);
    for (size_t i = 0; i < gray.size(); ++i) {
        CHECK(img.pixels[3 * i] == gray[i]);
        CHECK(img.pixels[3 * i + 1] == gray[i]);
        CHECK(img.pixels[3 * i + 2] == gray[i]);
    }
    std::vector<u8> rgba(3 * 2 * 4), png2;
    for (size_t i = 0; i < rgba.size(); ++i) rgba[i] = (u8)(7 * i + 1);
    REQUIRE(stbi_write_png_to_func(append_bytes, &png2, 3, 2, 4, rgba.data(), 3 * 4));
    img = data::decode_image(png2, "rgba png");
    REQUIRE(img.pixels.size() == 3 * 2 * 3);
    for (int p = 0; p < 6; ++p)
        for (int c = 0; c < 3; ++c) CHECK(img.pixels[3 * p + c] == rgba[4 * p + c]);
}

TEST_CASE("image: bilinear resize with half-pixel centres (hand-computed values)") {
    // Upscale one row [0, 100] to 4 columns: sx = (x + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75,
    // 1.25 -> clamped to 0, 0.25, 0.75, 1 -> 0, 25, 75, 100.
    data::Image row(1, 2);
    row.at(0, 0)[0] = 0;
    row.at(0, 1)[0] = 100;
    data::Image up = data::resize_bilinear(row, 1, 4);
    CHECK(up.at(0, 0)[0] == 0);
    CHECK(up.at(0, 1)[0] == 25);
    CHECK(up.at(0, 2)[0] == 75);
    CHECK(up.at(0, 3)[0] == 100);
    // Downscale 4x4 -> 2x2: sx = (x + 0.5) * 2 - 0.5 = 0.5, 2.5: each output pixel is the mean
    // of a 2x2 block.
    data::Image sq(4, 4);
    for (int y = 0; y < 4; ++y)
        for (int x = 0; x < 4; ++x) sq.at(y, x)[1] = (u8)(10 * (4 * y + x));
    data::Image down = data::resize_bilinear(sq, 2, 2);
    CHECK(down.at(0, 0)[1] == 25);   // (0 + 10 + 40 + 50) / 4
    CHECK(down.at(0, 1)[1] == 45);   // (20 + 30 + 60 + 70) / 4
    CHECK(down.at(1, 0)[1] == 105);  // (80 + 90 + 120 + 130) / 4
    CHECK(down.at(1, 1)[1] == 125);
    // A constant image stays constant; the same size is the identity.
    data::Image flat(9, 7);
    for (auto& p : flat.pixels) p = 77;
    for (u8 p : data::resize_bilinear(flat, 13, 5).pixels) CHECK(p == 77);
    const data::Image r = random_image(10, 12, 3);
    CHECK(data::resize_bilinear(r, 10, 12).pixels == r.pixels);
}

TEST_CASE("image: size policy resizes or rejects, naming the source") {
    const std::vector<u8> png = data::encode_png(random_image(10, 8, 4));
    data::Image same = data::decode_image(png, "s", 10, 8, data::SizePolicy::reject);
    CHECK(same.height == 10);
    CHECK(same.width == 8);
    data::Image big = data::decode_image(png, "s", 20, 16, data::SizePolicy::resize);
    CHECK(big.height == 20);
    CHECK(big.width == 16);
    CHECK(big.pixels.size() == 20u * 16 * 3);
    try {
        data::decode_image(png, "train.rec record 17", 112, 112, data::SizePolicy::reject);
        FAIL("a 10x8 image was accepted for a 112x112 network");
    } catch (const engine::DataError& e) {
        const std::string m = e.what();
        CHECK(m.find("train.rec record 17") != std::string::npos);
        CHECK(m.find("10x8") != std::string::npos);
        CHECK(m.find("112x112") != std::string::npos);
    }
}

TEST_CASE("image: undecodable, truncated and empty bytes are FormatErrors naming the source") {
    const std::vector<u8> garbage = {'n', 'o', 't', ' ', 'a', 'n', ' ', 'i', 'm', 'a', 'g', 'e'};
    try {
        data::decode_image(garbage, "train.rec record 17");
        FAIL("garbage decoded");
    } catch (const engine::FormatError& e) {
        CHECK(std::string(e.what()).find("train.rec record 17") != std::string::npos);
    }
    // A JPEG cut after its headers: only the first 40 bytes (SOI, APP0, part of a table).
    std::vector<u8> jpeg = data::encode_jpeg(smooth_image(32, 32), 90);
    jpeg.resize(40);
    try {
        data::decode_image(jpeg, "cut.jpg");
        FAIL("a truncated JPEG decoded");
    } catch (const engine::FormatError& e) {
        const std::string m = e.what();
        CHECK(m.find("cut.jpg") != std::string::npos);
        CHECK(m.find("JPEG") != std::string::npos);
    }
    CHECK_THROWS_AS(data::decode_image(std::vector<u8>(), "empty"), engine::FormatError);
    // A PNG with its data chunk damaged (CRC/zlib failure).
    std::vector<u8> png = data::encode_png(random_image(16, 16, 9));
    for (size_t i = 40; i < png.size() - 12; i += 7) png[i] ^= 0x5A;
    CHECK_THROWS_AS(data::decode_image(png, "damaged.png"), engine::FormatError);
}
