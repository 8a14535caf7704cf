// Random mirror, gray and colour jitter into float CHW; formulas and order in augment.h.
#include "data/augment.h"

#include <algorithm>
#include <vector>

#include "engine/error.h"
#include "engine/rng.h"

namespace data {

namespace {
// Philox counter words: (sample lo, sample hi, epoch, block tag). The tag's high bits keep these
// counters apart from engine::random_block's, whose fourth word is always 0.
constexpr u32 kAugmentTag = 0xA6A60000u;

void augment_block(u64 seed, i64 sample, i64 epoch, u32 block, u32 out[4]) {
    const u32 ctr[4] = {(u32)(u64)sample, (u32)((u64)sample >> 32), (u32)(u64)epoch,
                        kAugmentTag | block};
    const u32 key[2] = {(u32)seed, (u32)(seed >> 32)};
    engine::philox4x32(ctr, key, out);
}

inline float unit(u32 w) { return (float)(w >> 8) * (1.0f / 16777216.0f); }  // [0, 1)
inline float sym(u32 w, float r) { return 1.0f + r * (2.0f * unit(w) - 1.0f); }  // 1 + U(-r, r)
}  // namespace

AugmentDraw draw_augment(const AugmentConfig& cfg, i64 sample, i64 epoch) {
    u32 a[4], b[4];
    augment_block(cfg.seed, sample, epoch, 0, a);
    augment_block(cfg.seed, sample, epoch, 1, b);
    AugmentDraw d;
    // Each decision has its own word, so changing one probability leaves the others' draws.
    d.mirror = unit(a[0]) < cfg.mirror_p;
    d.gray = unit(a[1]) < cfg.gray_p;
    d.jitter = unit(a[2]) < cfg.jitter_p;
    if (d.jitter) {
        d.brightness = sym(b[0], cfg.brightness);
        d.contrast = sym(b[1], cfg.contrast);
        d.saturation = sym(b[2], cfg.saturation);
        // One of the 6 orders, uniformly (a[3] % 6 has a bias below 2^-29).
        static const int perms[6][3] = {{0, 1, 2}, {0, 2, 1}, {1, 0, 2},
                                        {1, 2, 0}, {2, 0, 1}, {2, 1, 0}};
        const int* p = perms[a[3] % 6];
        for (int k = 0; k < 3; ++k) d.order[k] = p[k];
    }
    return d;
}

void image_to_chw(float* out, const u8* hwc, int height, int width) {
    const i64 plane = (i64)height * width;
    for (i64 i = 0; i < plane; ++i) {
        out[i] = hwc[3 * i];
        out[plane + i] = hwc[3 * i + 1];
        out[2 * plane + i] = hwc[3 * i + 2];
    }
}

void augment_to_chw(float* out, const u8* hwc, int height, int width, const AugmentDraw& d) {
    ENGINE_CHECK(height > 0 && width > 0, engine::ArgError, "augment_to_chw: size ", height, "x",
                 width);
    const i64 plane = (i64)height * width;
    float* r = out;
    float* g = out + plane;
    float* b = out + 2 * plane;
    // Step 1: bytes -> float planes, mirrored when drawn (exact: a pure index permutation).
    for (int y = 0; y < height; ++y) {
        const u8* row = hwc + (i64)y * width * 3;
        const i64 o = (i64)y * width;
        if (d.mirror) {
            for (int x = 0; x < width; ++x) {
                const u8* p = row + (i64)(width - 1 - x) * 3;
                r[o + x] = p[0];
                g[o + x] = p[1];
                b[o + x] = p[2];
            }
        } else {
            for (int x = 0; x < width; ++x) {
                const u8* p = row + (i64)x * 3;
                r[o + x] = p[0];
                g[o + x] = p[1];
                b[o + x] = p[2];
            }
        }
    }
    if (!d.jitter && !d.gray) return;  // values are bytes: already within [0, 255]

    // Step 2: colour jitter in the drawn order (formulas in augment.h).
    if (d.jitter) {
        for (int k = 0; k < 3; ++k) {
            const int op = d.order[k];
            if (op == 0) {
                const float a = d.brightness;
                for (i64 i = 0; i < 3 * plane; ++i) out[i] *= a;
            } else if (op == 1) {
                const float a = d.contrast;
                double sum = 0;  // mean luma of the current (already jittered) image
                for (i64 i = 0; i < plane; ++i)
                    sum += 0.299 * r[i] + 0.587 * g[i] + 0.114 * b[i];
                const float add = (float)((1.0 - a) * (sum / (double)plane));
                for (i64 i = 0; i < 3 * plane; ++i) out[i] = a * out[i] + add;
            } else {
                const float a = d.saturation;
                for (i64 i = 0; i < plane; ++i) {
                    const float add = (1.0f - a) * (0.299f * r[i] + 0.587f * g[i] + 0.114f * b[i]);
                    r[i] = a * r[i] + add;
                    g[i] = a * g[i] + add;
                    b[i] = a * b[i] + add;
                }
            }
        }
    }
    // Step 3: gray, one value written to all three planes (the channels are equal exactly).
    if (d.gray) {
        for (i64 i = 0; i < plane; ++i) {
            const float v = 0.21f * r[i] + 0.72f * g[i] + 0.07f * b[i];
            r[i] = v;
            g[i] = v;
            b[i] = v;
        }
    }
    for (i64 i = 0; i < 3 * plane; ++i) out[i] = std::min(255.0f, std::max(0.0f, out[i]));
}

}  // namespace data
