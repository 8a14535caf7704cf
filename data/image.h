// Images as RGB bytes (height, width, 3): decoding JPEG/PNG with stb_image, encoding JPEG/PNG
// with stb_image_write, and a bilinear resize to the network's input size.
#pragma once
#include <string>
#include <vector>

#include "engine/common.h"

namespace data {

// An 8-bit RGB image in HWC order (row-major, 3 interleaved channels per pixel).
struct Image {
    int height = 0, width = 0;
    std::vector<u8> pixels;  // (height, width, 3)
    Image() = default;
    Image(int h, int w) : height(h), width(w), pixels((size_t)h * (size_t)w * 3, 0) {}
    u8* at(int y, int x) { return pixels.data() + ((size_t)y * (size_t)width + (size_t)x) * 3; }
    const u8* at(int y, int x) const {
        return pixels.data() + ((size_t)y * (size_t)width + (size_t)x) * 3;
    }
    bool empty() const { return pixels.empty(); }
};

// What to do with a decoded image whose size is not the network's.
enum class SizePolicy {
    resize,  // bilinear resize to the requested size (resize_bilinear below)
    reject,  // throw engine::DataError naming the source and both sizes
};

// Decodes JPEG or PNG bytes to RGB (grayscale and RGBA inputs are converted; alpha dropped).
// `source` names where the bytes came from ("train.rec record 17"); it leads every error
// message. Undecodable or empty bytes -> engine::FormatError with stb's reason.
Image decode_image(const u8* bytes, size_t n, const std::string& source);
inline Image decode_image(const std::vector<u8>& bytes, const std::string& source) {
    return decode_image(bytes.data(), bytes.size(), source);
}
// Decodes and brings the image to (height, width) by `policy`. A size already equal is returned
// as decoded, bit for bit.
Image decode_image(const u8* bytes, size_t n, const std::string& source, int height, int width,
                   SizePolicy policy);
inline Image decode_image(const std::vector<u8>& bytes, const std::string& source, int height,
                          int width, SizePolicy policy) {
    return decode_image(bytes.data(), bytes.size(), source, height, width, policy);
}

// Bilinear resize with half-pixel centres (OpenCV INTER_LINEAR / PyTorch align_corners=False):
// output pixel (y, x) samples the source at sy = (y + 0.5) * H_in / H_out - 0.5 (clamped to
// the image), blending the 2x2 neighbours; results are rounded to the nearest byte. No
// anti-alias filter when shrinking (face crops are resized by small factors).
Image resize_bilinear(const Image& src, int height, int width);

// JPEG (4:2:0 chroma subsampling as stb writes it, quality 1..100) and PNG encoders.
// Throws engine::ArgError for an empty image or a bad quality, engine::Error if stb fails.
std::vector<u8> encode_jpeg(const Image& img, int quality = 95);
std::vector<u8> encode_png(const Image& img);

}  // namespace data
