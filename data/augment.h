// Training augmentation of SPEC.md section 7 (random mirror, random gray, colour jitter of
// brightness/contrast/saturation), deterministic for (seed, sample index, epoch), written
// straight into the network's input layout: float (3, H, W), values 0..255.
#pragma once
#include "data/image.h"
#include "engine/common.h"

namespace data {

// Probabilities and strengths. The formulas (MXNet's mx.image augmenters, which the seed's
// MXNet pipeline used; torchvision's ColorJitter is the same up to the gray weights):
//   mirror      x -> W-1-x, exact (no resampling).
//   brightness  v' = a * v,                                  a = 1 + U(-b, b)
//   contrast    v' = a * v + (1 - a) * mean(luma),           a = 1 + U(-c, c)
//   saturation  v' = a * v + (1 - a) * luma(pixel),          a = 1 + U(-s, s)
//               luma = 0.299 R + 0.587 G + 0.114 B (ITU-R BT.601), mean over the whole image
//   The three jitters run in a random order (one of the 6 permutations, MXNet's
//   RandomOrderAug) and, as one group, with probability jitter_p.
//   gray        R = G = B = 0.21 R + 0.72 G + 0.07 B (MXNet RandomGrayAug's matrix), applied
//               after the jitter, with probability gray_p.
// Order: mirror, jitter, gray (mx.image.CreateAugmenter's order). Intermediate values are
// kept in float without clipping (as MXNet does); the output is clamped to [0, 255] once at the
// end (the network's input range; MXNet would pass values above 255 through).
struct AugmentConfig {
    u64 seed = 0;
    float mirror_p = 0.5f;
    float gray_p = 0.0f;
    float jitter_p = 0.0f;
    float brightness = 0.2f, contrast = 0.2f, saturation = 0.2f;

    static AugmentConfig none() {  // evaluation: every probability 0
        AugmentConfig c;
        c.mirror_p = 0.0f;
        return c;
    }
    static AugmentConfig step1(u64 seed) {  // ArcFace pre-training: mirror only
        AugmentConfig c;
        c.seed = seed;
        return c;
    }
    static AugmentConfig step23(u64 seed) {  // NR and unequal training: all of section 7
        AugmentConfig c;
        c.seed = seed;
        c.gray_p = 0.2f;
        c.jitter_p = 0.2f;
        return c;
    }
};

// The random decisions for one (sample, epoch): a pure function of (config seed, sample,
// epoch) through Philox (engine/rng.h), so any worker thread, any run and a resumed run draw
// the same augmentation for the same sample in the same epoch.
struct AugmentDraw {
    bool mirror = false, gray = false, jitter = false;
    float brightness = 1.0f, contrast = 1.0f, saturation = 1.0f;  // the factors a above
    int order[3] = {0, 1, 2};  // jitter order: 0 brightness, 1 contrast, 2 saturation
};
AugmentDraw draw_augment(const AugmentConfig& cfg, i64 sample, i64 epoch);

// Applies `draw` to an RGB HWC byte image and writes float CHW into out (3 * H * W floats).
void augment_to_chw(float* out, const u8* hwc, int height, int width, const AugmentDraw& draw);
inline void augment_to_chw(float* out, const Image& img, const AugmentDraw& draw) {
    augment_to_chw(out, img.pixels.data(), img.height, img.width, draw);
}
// No augmentation: bytes -> float CHW.
void image_to_chw(float* out, const u8* hwc, int height, int width);

}  // namespace data
