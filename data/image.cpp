// Decoding (stb_image), encoding (stb_image_write) and bilinear resizing of RGB byte images.
#include "data/image.h"

#include <stb/stb_image.h>
#include <stb/stb_image_write.h>

#include <algorithm>
#include <climits>
#include <cmath>

#include "engine/error.h"

namespace data {

Image decode_image(const u8* bytes, size_t n, const std::string& source) {
    ENGINE_CHECK(bytes != nullptr && n > 0, engine::FormatError, source,
                 ": cannot decode image: no bytes");
    ENGINE_CHECK(n <= (size_t)INT_MAX, engine::FormatError, source, ": cannot decode image: ", n,
                 " bytes is more than stb_image accepts");
    int w = 0, h = 0, comp = 0;
    // req_comp = 3: stb converts gray, gray+alpha and RGBA to RGB itself.
    u8* p = stbi_load_from_memory(bytes, (int)n, &w, &h, &comp, 3);
    if (!p) {
        const char* why = stbi_failure_reason();  // thread-local in stb_image >= 2.26
        // Name the format the leading bytes claim, which tells a truncated JPEG from non-images.
        const char* kind = (n >= 2 && bytes[0] == 0xFF && bytes[1] == 0xD8) ? "JPEG"
                           : (n >= 4 && bytes[0] == 0x89 && bytes[1] == 'P') ? "PNG"
                                                                              : "unknown format";
        throw engine::FormatError(engine::str(source, ": cannot decode image (", kind, ", ", n,
                                              " bytes): ", why ? why : "unknown reason"));
    }
    Image img;
    img.height = h;
    img.width = w;
    img.pixels.assign(p, p + (size_t)w * (size_t)h * 3);
    stbi_image_free(p);
    return img;
}

Image decode_image(const u8* bytes, size_t n, const std::string& source, int height, int width,
                   SizePolicy policy) {
    ENGINE_CHECK(height > 0 && width > 0, engine::ArgError, "decode_image: target size ", height,
                 "x", width, " is not positive");
    Image img = decode_image(bytes, n, source);
    if (img.height == height && img.width == width) return img;
    ENGINE_CHECK(policy == SizePolicy::resize, engine::DataError, source, ": image is ",
                 img.height, "x", img.width, " (HxW), the network takes ", height, "x", width,
                 " and resizing is off");
    return resize_bilinear(img, height, width);
}

Image resize_bilinear(const Image& src, int height, int width) {
    ENGINE_CHECK(!src.empty() && src.height > 0 && src.width > 0, engine::ArgError,
                 "resize_bilinear: empty source image");
    ENGINE_CHECK(height > 0 && width > 0, engine::ArgError, "resize_bilinear: target size ",
                 height, "x", width, " is not positive");
    Image dst(height, width);
    const double fy = (double)src.height / height, fx = (double)src.width / width;
    // Column source positions and weights are the same for every row: compute them once.
    std::vector<int> x0(width), x1(width);
    std::vector<float> wx(width);
    for (int x = 0; x < width; ++x) {
        double sx = (x + 0.5) * fx - 0.5;
        sx = std::min(std::max(sx, 0.0), (double)(src.width - 1));
        x0[x] = (int)sx;
        x1[x] = std::min(x0[x] + 1, src.width - 1);
        wx[x] = (float)(sx - x0[x]);
    }
    for (int y = 0; y < height; ++y) {
        double sy = (y + 0.5) * fy - 0.5;
        sy = std::min(std::max(sy, 0.0), (double)(src.height - 1));
        const int y0 = (int)sy, y1 = std::min(y0 + 1, src.height - 1);
        const float wy = (float)(sy - y0);
        for (int x = 0; x < width; ++x) {
            const u8* a = src.at(y0, x0[x]);
            const u8* b = src.at(y0, x1[x]);
            const u8* c = src.at(y1, x0[x]);
            const u8* d = src.at(y1, x1[x]);
            u8* o = dst.at(y, x);
            for (int ch = 0; ch < 3; ++ch) {
                const float top = a[ch] + wx[x] * (b[ch] - a[ch]);
                const float bot = c[ch] + wx[x] * (d[ch] - c[ch]);
                const float v = top + wy * (bot - top);
                o[ch] = (u8)std::min(255.0f, std::max(0.0f, std::nearbyint(v)));
            }
        }
    }
    return dst;
}

namespace {
void append_bytes(void* context, void* data, int size) {
    auto* out = static_cast<std::vector<u8>*>(context);
    const u8* p = static_cast<const u8*>(data);
    out->insert(out->end(), p, p + size);
}

void check_encodable(const Image& img, const char* what) {
    ENGINE_CHECK(img.height > 0 && img.width > 0 &&
                     img.pixels.size() == (size_t)img.height * (size_t)img.width * 3,
                 engine::ArgError, what, ": image ", img.height, "x", img.width, " holds ",
                 img.pixels.size(), " bytes, expected height*width*3");
}
}  // namespace

std::vector<u8> encode_jpeg(const Image& img, int quality) {
    check_encodable(img, "encode_jpeg");
    ENGINE_CHECK(quality >= 1 && quality <= 100, engine::ArgError,
                 "encode_jpeg: quality must be 1..100, got ", quality);
    std::vector<u8> out;
    out.reserve((size_t)img.height * img.width / 2 + 1024);
    const int ok = stbi_write_jpg_to_func(append_bytes, &out, img.width, img.height, 3,
                                          img.pixels.data(), quality);
    ENGINE_CHECK(ok && !out.empty(), engine::Error, "encode_jpeg: stb_image_write failed for a ",
                 img.height, "x", img.width, " image");
    return out;
}

std::vector<u8> encode_png(const Image& img) {
    check_encodable(img, "encode_png");
    std::vector<u8> out;
    const int ok = stbi_write_png_to_func(append_bytes, &out, img.width, img.height, 3,
                                          img.pixels.data(), img.width * 3);
    ENGINE_CHECK(ok && !out.empty(), engine::Error, "encode_png: stb_image_write failed for a ",
                 img.height, "x", img.width, " image");
    return out;
}

}  // namespace data
