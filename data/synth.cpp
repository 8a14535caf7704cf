// The synthetic face set: identity and image parameters, the rasteriser (anti-aliased signed
// distance shapes composited back to front), long-tailed counts, noise injection and the writers.
#include "data/synth.h"

#include <algorithm>
#include <filesystem>
#include <cmath>
#include <fstream>
#include <ostream>
#include <sstream>

#include <omp.h>

#include "data/recordio.h"
#include "data/verification_bin.h"
#include "engine/error.h"
#include "engine/rng.h"
#include "engine/timer.h"

namespace data {

namespace {

using engine::splitmix64;
u64 mix(u64 a, u64 b, u64 c) { return splitmix64(a ^ splitmix64(b ^ splitmix64(c))); }

// Seeds of the independent streams (identities, images, set layout, pairs).
constexpr u64 kIdentityTag = 0x1D1D1D1Dull, kLayoutTag = 0x1A1A0u, kPairTag = 0x9A1Bu;

struct Uniform {
    engine::Rng& rng;
    float operator()(double lo, double hi) { return (float)(lo + (hi - lo) * rng.uniform()); }
    bool chance(double p) { return rng.uniform() < p; }
};

inline float clampf(float v, float lo, float hi) { return std::min(hi, std::max(lo, v)); }
// Anti-aliased coverage of a shape from its signed distance d (negative inside), pw = one pixel.
inline float cover(float d, float pw) { return clampf(0.5f - d / pw, 0.0f, 1.0f); }
inline void blend(float* c, const float* col, float a) {
    if (a <= 0.0f) return;
    c[0] += a * (col[0] - c[0]);
    c[1] += a * (col[1] - c[1]);
    c[2] += a * (col[2] - c[2]);
}
inline void scaled(float* out, const float* col, float s) {
    out[0] = col[0] * s;
    out[1] = col[1] * s;
    out[2] = col[2] * s;
}
// Approximate signed distance to an axis-aligned ellipse with semi-axes (a, b) centred at the
// origin: the implicit k = |(x/a, y/b)| - 1 divided by its gradient's length (first order).
inline float sd_ellipse(float x, float y, float a, float b) {
    const float nx = x / a, ny = y / b;
    const float k = std::sqrt(nx * nx + ny * ny);
    if (k < 1e-6f) return -std::min(a, b);
    const float gx = nx / a, gy = ny / b;
    return k * (k - 1.0f) / std::sqrt(gx * gx + gy * gy);
}
inline float sd_circle(float x, float y, float r) { return std::sqrt(x * x + y * y) - r; }

void lerp3(float* out, const float* a, const float* b, float t) {
    for (int k = 0; k < 3; ++k) out[k] = a[k] + t * (b[k] - a[k]);
}

// Colour palettes: a continuous skin range from light to dark, hair and iris families.
const float kSkin[5][3] = {{250, 221, 196}, {233, 190, 158}, {198, 144, 106}, {141, 94, 64},
                           {88, 58, 40}};
const float kHair[7][3] = {{28, 24, 22},   {62, 40, 28},   {110, 72, 42},  {196, 160, 98},
                           {150, 66, 32},  {168, 166, 162}, {230, 215, 170}};
const float kIris[5][3] = {{92, 56, 30}, {60, 110, 170}, {70, 125, 80}, {120, 120, 125},
                           {140, 100, 45}};

// Per-image parameters.
struct Shot {
    float sx, sy, rot, scale, yaw;
    float light_x, light_y, light_amt, ambient, tint[3];
    float smile, open, brow_raise, eye_open, gaze;
    float sigma;
    float bg0[3], bg1[3], bg_dx, bg_dy;
    float blob[2][3], blob_x[2], blob_y[2], blob_r[2];
};

Shot make_shot(u64 seed, i64 person, i64 image_no, double pixel_noise) {
    engine::Rng rng(mix(seed, (u64)person * 0x10001ull + 7, (u64)image_no));
    Uniform U{rng};
    Shot s;
    s.sx = U(-0.07, 0.07);
    s.sy = U(-0.06, 0.06);
    s.rot = U(-0.17, 0.17);  // +-10 degrees
    s.scale = U(0.92, 1.08);
    s.yaw = U(-1.0, 1.0);
    const float la = U(0.0, 6.2831853);
    s.light_x = std::cos(la);
    s.light_y = std::sin(la);
    s.light_amt = U(0.0, 0.35);
    s.ambient = U(0.8, 1.12);
    for (int k = 0; k < 3; ++k) s.tint[k] = U(0.94, 1.06);
    s.smile = U(-0.4, 1.0);
    s.open = U.chance(0.3) ? U(0.2, 1.0) : 0.0f;
    s.brow_raise = U(-0.02, 0.04);
    s.eye_open = U.chance(0.05) ? U(0.1, 0.3) : U(0.7, 1.1);
    s.gaze = U(-0.35, 0.35);
    s.sigma = (float)(pixel_noise * U(0.5, 1.5));
    // The background is drawn per image, independently of the person: it carries no identity.
    for (int k = 0; k < 3; ++k) {
        s.bg0[k] = U(15, 240);
        s.bg1[k] = U(15, 240);
    }
    const float ga = U(0.0, 6.2831853);
    s.bg_dx = std::cos(ga);
    s.bg_dy = std::sin(ga);
    for (int b = 0; b < 2; ++b) {
        for (int k = 0; k < 3; ++k) s.blob[b][k] = U(15, 240);
        s.blob_x[b] = U(-1.0, 1.0);
        s.blob_y[b] = U(-1.0, 1.0);
        s.blob_r[b] = U(0.15, 0.6);
    }
    return s;
}

// A small fast generator for pixel noise: splitmix64 steps, 4 uniforms summed (Irwin-Hall,
// variance 4/12) as an approximate normal. Quality is ample for noise pixels.
struct NoiseGen {
    u64 state;
    float normal() {
        float sum = 0;
        for (int i = 0; i < 2; ++i) {
            state = splitmix64(state);
            sum += (float)(state & 0xFFFFFFFFull) * (1.0f / 4294967296.0f);
            sum += (float)(state >> 32) * (1.0f / 4294967296.0f);
        }
        return (sum - 2.0f) * 1.7320508f;  // / sqrt(4/12)
    }
};

}  // namespace

FaceIdentity make_identity(u64 seed, i64 person) {
    engine::Rng rng(mix(seed, kIdentityTag, (u64)person));
    Uniform U{rng};
    FaceIdentity f;
    f.face_w = U(0.58, 0.78);
    f.face_h = U(0.90, 1.08);
    f.jaw = U(0.05, 0.45);
    f.eye_dx = U(0.24, 0.36);
    f.eye_y = U(-0.17, -0.03);
    f.eye_rx = U(0.075, 0.12);
    f.eye_ry = f.eye_rx * U(0.42, 0.68);
    f.brow_dy = U(0.09, 0.17);
    f.brow_len = U(0.09, 0.16);
    f.brow_thick = U(0.022, 0.06);
    f.brow_tilt = U(-0.35, 0.35);
    f.brow_arch = U(0.0, 0.05);
    f.nose_len = U(0.2, 0.34);
    f.nose_w = U(0.055, 0.11);
    f.mouth_y = f.eye_y + f.nose_len + U(0.14, 0.24);
    f.mouth_w = U(0.13, 0.24);
    f.lip_thick = U(0.02, 0.055);
    f.ear_size = U(0.8, 1.25);
    f.hair_style = (int)rng.below(5);
    f.hairline = U(0.5, 0.74);
    f.hair_volume = U(0.02, 0.14);
    f.part = U(-0.5, 0.5);
    f.beard = U.chance(0.14);
    f.mustache = U.chance(0.14);
    f.glasses = U.chance(0.18);
    f.mole = U.chance(0.3);
    f.mole_x = U(-0.45, 0.45) * f.face_w;
    f.mole_y = U(-0.1, 0.5);

    // Skin: a point on the light-to-dark range, then a small per-channel shift.
    const float t = U(0.0, 3.999);
    const int i0 = (int)t;
    lerp3(f.skin, kSkin[i0], kSkin[i0 + 1], t - (float)i0);
    for (int k = 0; k < 3; ++k) f.skin[k] = clampf(f.skin[k] + U(-10, 10), 0, 255);
    const float* hair = kHair[rng.below(7)];
    const float hshade = U(0.75, 1.2);
    for (int k = 0; k < 3; ++k) f.hair[k] = clampf(hair[k] * hshade + U(-12, 12), 0, 255);
    const float* iris = kIris[rng.below(5)];
    for (int k = 0; k < 3; ++k) f.iris[k] = clampf(iris[k] + U(-20, 20), 0, 255);
    const float lip_red = U(0.15, 0.45);
    f.lip[0] = clampf(f.skin[0] * (0.85f - 0.2f * lip_red) + 120 * lip_red, 0, 255);
    f.lip[1] = f.skin[1] * U(0.5, 0.7);
    f.lip[2] = f.skin[2] * U(0.55, 0.75);
    const float frame_v = U(10, 200);
    for (int k = 0; k < 3; ++k) f.frame[k] = clampf(frame_v + U(-40, 40), 0, 255);
    return f;
}

Image render_face(const FaceIdentity& f, u64 seed, i64 person, i64 image_no, int size,
                  double pixel_noise) {
    ENGINE_CHECK(size >= 16, engine::ArgError, "render_face: size ", size, " (need >= 16)");
    const Shot s = make_shot(seed, person, image_no, pixel_noise);
    NoiseGen noise{mix(seed ^ 0xA0A0ull, (u64)person, (u64)image_no)};
    Image img(size, size);
    const float half = 0.5f * (float)size;
    const float pw = (2.0f / (float)size) / s.scale;  // one pixel in face units
    const float cr = std::cos(s.rot), sr = std::sin(s.rot);
    const float yaw_eye = 0.05f * s.yaw, yaw_nose = 0.09f * s.yaw, yaw_mouth = 0.06f * s.yaw;

    float skin_dark[3], skin_ear[3], skin_neck[3], brow[3], lid[3], nostril[3], nose_shade[3];
    scaled(skin_ear, f.skin, 0.9f);
    scaled(skin_neck, f.skin, 0.78f);
    scaled(brow, f.hair, 0.8f);
    scaled(lid, f.skin, 0.45f);
    scaled(nostril, f.skin, 0.42f);
    scaled(nose_shade, f.skin, 0.8f);
    scaled(skin_dark, f.skin, 0.5f);
    const float sclera[3] = {242, 240, 234}, pupil[3] = {12, 10, 10}, white[3] = {255, 255, 255};
    const float mouth_in[3] = {70, 25, 30}, teeth[3] = {236, 232, 220};
    const float hair_y = -f.face_h * f.hairline;
    const float nose_x = yaw_nose, nose_y = f.eye_y + f.nose_len;
    const float mouth_x = yaw_mouth;
    const float shade_side = s.light_x > 0 ? -1.0f : 1.0f;  // the nose casts away from the light

    for (int py = 0; py < size; ++py) {
        for (int px = 0; px < size; ++px) {
            const float cx = ((float)px + 0.5f) / half - 1.0f;
            const float cy = ((float)py + 0.5f) / half - 1.0f;
            float c[3];
            // Background: a two-colour gradient and two soft blobs, all drawn per image.
            const float g = clampf(0.5f + 0.5f * (s.bg_dx * cx + s.bg_dy * cy), 0, 1);
            lerp3(c, s.bg0, s.bg1, g);
            for (int b = 0; b < 2; ++b) {
                // cover(d, 0.25) is 0 beyond d = 0.125: skip the square root out there.
                const float bx = cx - s.blob_x[b], by = cy - s.blob_y[b], reach = s.blob_r[b] + 0.125f;
                if (bx * bx + by * by < reach * reach)
                    blend(c, s.blob[b], 0.7f * cover(sd_circle(bx, by, s.blob_r[b]), 0.25f));
            }

            // Face coordinates: undo the shot's shift, rotation and scale.
            const float dx = cx - s.sx, dy = cy - s.sy;
            const float x = (cr * dx + sr * dy) / s.scale;
            const float y = (-sr * dx + cr * dy) / s.scale;
            const float ax = std::fabs(x);

            // Long hair behind the head (style 2).
            if (f.hair_style == 2) {
                const float d1 = sd_ellipse(x, y + 0.1f, f.face_w * 1.22f, f.face_h * 1.02f);
                const float d2 = std::max(ax - f.face_w * 1.18f, -(y + 0.1f));
                blend(c, f.hair, cover(std::min(d1, d2), pw));
            }
            // Neck and ears, then the head.
            blend(c, skin_neck, cover(std::max(ax - f.face_w * 0.55f, 0.45f - y), pw));
            const float ear_y = f.eye_y + 0.13f;
            if (std::fabs(y - ear_y) < 0.25f)
                blend(c, skin_ear,
                      cover(sd_ellipse(ax - f.face_w * 0.97f, y - ear_y, 0.075f * f.ear_size,
                                       0.15f * f.ear_size), pw));
            const float jaw_t = clampf(y / f.face_h, 0, 1);
            const float head_a = f.face_w * (1.0f - f.jaw * jaw_t * jaw_t);
            const float d_head = sd_ellipse(x, y, head_a, f.face_h);
            if (d_head < pw) {
                // Shading towards the rim gives the head some roundness.
                const float kx = x / head_a, ky = y / f.face_h;
                const float k2 = std::min(1.0f, kx * kx + ky * ky);
                float skin[3];
                scaled(skin, f.skin, 1.0f - 0.2f * k2 * k2);
                blend(c, skin, cover(d_head, pw));
            }
            // Beard: the lower face below the mouth's upper edge.
            if (f.beard && y > f.mouth_y - 0.1f)
                blend(c, f.hair, 0.85f * cover(std::max(d_head, f.mouth_y - 0.04f - y), pw));
            // Hair on top of the head, above a hairline whose shape is the style.
            {
                const float u = x / f.face_w;
                float hl = hair_y + 0.1f * u * u;
                if (f.hair_style == 1)
                    hl = hair_y + 0.12f * u * u - 0.07f * std::max(0.0f, 1.0f - std::fabs(u - f.part) / 0.15f);
                else if (f.hair_style == 3)
                    hl = hair_y - 0.16f + 0.3f * u * u;
                else if (f.hair_style == 4)
                    hl = hair_y + 0.16f + 0.02f * std::sin(45.0f * x);
                if (y < hl + pw) {
                    const float dh = sd_ellipse(x, y + 0.5f * f.hair_volume, f.face_w + f.hair_volume,
                                                f.face_h + f.hair_volume);
                    float d = std::max(dh, y - hl);
                    if (f.hair_style == 2)  // long hair also frames the sides of the face
                        d = std::min(d, std::max(std::max(dh, f.face_w * 0.8f - ax), y - (f.eye_y + 0.3f)));
                    blend(c, f.hair, cover(d, pw));
                }
            }
            // Eyebrows and eyes, mirrored about the face's axis (u measured outwards).
            for (int side = -1; side <= 1; side += 2) {
                const float ex = (float)side * f.eye_dx + yaw_eye;
                const float u = (x - ex) * (float)side;
                const float ry = f.eye_ry * s.eye_open;
                if (std::fabs(u) < f.brow_len + 0.05f) {
                    const float by = f.eye_y - f.brow_dy - s.brow_raise;
                    const float t = u / f.brow_len;
                    const float yc = by - f.brow_arch * (1.0f - t * t) + f.brow_tilt * 0.3f * u;
                    const float d = std::max(std::fabs(y - yc) - 0.5f * f.brow_thick, std::fabs(u) - f.brow_len);
                    blend(c, brow, 0.92f * cover(d, pw));
                }
                if (std::fabs(u) < f.eye_rx + 0.03f && std::fabs(y - f.eye_y) < f.eye_ry + 0.03f) {
                    const float ds = sd_ellipse(x - ex, y - f.eye_y, f.eye_rx, std::max(ry, 0.004f));
                    blend(c, sclera, cover(ds, pw));
                    const float ri = f.eye_ry * 0.95f;
                    const float ix = ex + s.gaze * f.eye_rx * 0.45f;
                    const float di = sd_circle(x - ix, y - f.eye_y, ri);
                    blend(c, f.iris, cover(std::max(di, ds), pw));
                    blend(c, pupil, cover(std::max(sd_circle(x - ix, y - f.eye_y, ri * 0.45f), ds), pw));
                    blend(c, white, 0.8f * cover(std::max(sd_circle(x - ix - 0.3f * ri, y - f.eye_y + 0.3f * ri, ri * 0.22f), ds), pw));
                    // Upper lid line (lashes) along the top of the eye.
                    if (y < f.eye_y) blend(c, lid, cover(std::fabs(ds) - 0.007f, pw));
                }
            }
            // Nose: a shaded tip, nostrils and a shadow along one side of the bridge.
            if (std::fabs(x - nose_x) < 0.2f && y > f.eye_y && y < nose_y + 0.1f) {
                const float bx = nose_x + shade_side * f.nose_w * 0.6f;
                const float db = std::max(std::fabs(x - bx) - 0.012f,
                                          std::max(f.eye_y + 0.06f - y, y - (nose_y - 0.02f)));
                blend(c, nose_shade, 0.55f * cover(db, pw));
                blend(c, nose_shade, 0.7f * cover(sd_ellipse(x - nose_x, y - nose_y, f.nose_w, f.nose_w * 0.55f), pw));
                for (int side = -1; side <= 1; side += 2) {
                    const float d = sd_ellipse(x - nose_x - (float)side * f.nose_w * 0.55f,
                                               y - nose_y - f.nose_w * 0.28f, f.nose_w * 0.28f,
                                               f.nose_w * 0.15f);
                    blend(c, nostril, 0.9f * cover(d, pw));
                }
            }
            // Mouth: lips along a curve whose bend is the expression; open mouths show inside.
            {
                const float u = x - mouth_x;
                if (std::fabs(u) < f.mouth_w + 0.03f && std::fabs(y - f.mouth_y) < 0.16f) {
                    const float t = u / f.mouth_w;
                    const float yc = f.mouth_y - s.smile * 0.05f * t * t + s.smile * 0.015f;
                    const float open_h = s.open * 0.05f * std::max(0.0f, 1.0f - t * t);
                    const float thick = f.lip_thick * (1.0f - 0.6f * t * t) + open_h;
                    const float d = std::max(std::fabs(y - yc) - 0.5f * thick, std::fabs(u) - f.mouth_w);
                    blend(c, f.lip, cover(d, pw));
                    if (s.open > 0) {
                        const float din = std::max(std::fabs(y - yc) - 0.5f * open_h, std::fabs(u) - 0.8f * f.mouth_w);
                        blend(c, mouth_in, cover(din, pw));
                        const float dt = std::max(din, y - (yc - 0.5f * open_h + 0.012f));
                        blend(c, teeth, cover(dt, pw));
                    }
                    if (f.mustache) {
                        const float my = yc - 0.5f * thick - 0.025f;
                        const float dm = std::max(std::fabs(y - my) - 0.018f, std::fabs(u) - 1.05f * f.mouth_w);
                        blend(c, f.hair, 0.9f * cover(dm, pw));
                    }
                }
            }
            if (f.mole) blend(c, skin_dark, 0.85f * cover(sd_circle(x - f.mole_x, y - f.mole_y, 0.014f), pw));
            // Glasses: two rings and a bridge.
            if (f.glasses && std::fabs(y - f.eye_y) < 0.25f) {
                const float R = f.eye_rx * 1.55f;
                for (int side = -1; side <= 1; side += 2) {
                    const float ex = (float)side * f.eye_dx + yaw_eye;
                    blend(c, f.frame, cover(std::fabs(sd_circle(x - ex, y - f.eye_y, R)) - 0.011f, pw));
                }
                const float db = std::max(std::fabs(y - f.eye_y + 0.01f) - 0.009f,
                                          std::fabs(x - yaw_eye) - (f.eye_dx - R + 0.005f));
                blend(c, f.frame, cover(db, pw));
            }

            // Lighting (a linear gradient over the canvas, an ambient level, a colour tint),
            // then pixel noise.
            const float light = s.ambient * (1.0f + s.light_amt * (s.light_x * cx + s.light_y * cy));
            u8* out = img.at(py, px);
            for (int k = 0; k < 3; ++k) {
                const float v = c[k] * light * s.tint[k] + s.sigma * noise.normal();
                out[k] = (u8)(clampf(v, 0, 255) + 0.5f);  // round half up (v >= 0)
            }
        }
    }
    return img;
}

std::vector<i64> long_tail_counts(i64 identities, i64 total, i64 max_per_id, i64 min_per_id,
                                  double* exponent) {
    ENGINE_CHECK(identities >= 1 && min_per_id >= 1 && max_per_id >= min_per_id,
                 engine::ArgError, "long-tail counts: identities ", identities, ", max ",
                 max_per_id, ", min ", min_per_id, " (need identities >= 1, 1 <= min <= max)");
    const i64 lo_total = max_per_id + (identities - 1) * min_per_id;
    const i64 hi_total = identities * max_per_id;
    ENGINE_CHECK(total >= lo_total && total <= hi_total, engine::ArgError, "long-tail counts: ",
                 total, " images cannot be spread over ", identities,
                 " identities with max ", max_per_id, " and min ", min_per_id, " (possible: ",
                 lo_total, "..", hi_total, ")");
    const double M = (double)max_per_id, m = (double)min_per_id;
    auto real_counts = [&](double a, std::vector<double>* c) {
        double sum = 0;
        for (i64 r = 0; r < identities; ++r) {
            const double v = std::max(m, M * std::pow((double)(r + 1), -a));
            if (c) (*c)[(size_t)r] = v;
            sum += v;
        }
        return sum;
    };
    // The sum falls monotonically from n M (a = 0) to M + (n - 1) m (a -> infinity).
    double lo = 0.0, hi = 64.0;
    for (int it = 0; it < 200; ++it) {
        const double a = 0.5 * (lo + hi);
        (real_counts(a, nullptr) > (double)total ? lo : hi) = a;
    }
    const double a = 0.5 * (lo + hi);
    std::vector<double> c((size_t)identities);
    real_counts(a, &c);
    // Round down, then hand the missing images to the largest fractional parts (within max).
    std::vector<i64> out((size_t)identities);
    i64 sum = 0;
    for (i64 r = 0; r < identities; ++r) {
        out[r] = std::min<i64>(max_per_id, (i64)std::floor(c[r]));
        sum += out[r];
    }
    std::vector<i64> order((size_t)identities);
    for (i64 r = 0; r < identities; ++r) order[r] = r;
    std::stable_sort(order.begin(), order.end(), [&](i64 x, i64 y) {
        return c[x] - std::floor(c[x]) > c[y] - std::floor(c[y]);
    });
    for (i64 pass = 0; sum < total; ++pass)
        for (i64 r : order) {
            if (sum == total) break;
            if (out[r] < max_per_id) {
                ++out[r];
                ++sum;
            }
        }
    for (i64 pass = 0; sum > total; ++pass)
        for (auto it = order.rbegin(); it != order.rend() && sum > total; ++it)
            if (out[*it] > min_per_id && *it != 0) {
                --out[*it];
                --sum;
            }
    // Keep the shape monotone (rounding may swap neighbours that differ by less than one).
    std::sort(out.begin(), out.end(), std::greater<i64>());
    if (exponent) *exponent = a;
    return out;
}

namespace {

enum class Kind { clean, flip, outlier, split };
const char* kind_name(Kind k) {
    return k == Kind::flip ? "flip" : k == Kind::outlier ? "outlier" : k == Kind::split ? "split" : "clean";
}

struct Slot {
    i64 person = 0, image_no = 0;
    Kind kind = Kind::clean;
};

void write_text(const std::string& path, const std::string& text) {
    std::ofstream f(path, std::ios::binary);
    ENGINE_CHECK(f, engine::IoError, path, ": cannot create");
    f.write(text.data(), (std::streamsize)text.size());
    f.close();
    ENGINE_CHECK(f, engine::IoError, path, ": write failed");
}

// Renders and encodes jobs [begin, end) in parallel; the result order is the job order.
std::vector<std::vector<u8>> render_jobs(const std::vector<Slot>& jobs, size_t begin, size_t end,
                                         const std::vector<FaceIdentity>& people,
                                         const SynthConfig& cfg) {
    std::vector<std::vector<u8>> out(end - begin);
    const int threads = cfg.threads > 0 ? cfg.threads : omp_get_max_threads();
#pragma omp parallel for schedule(dynamic, 8) num_threads(threads)
    for (i64 j = (i64)begin; j < (i64)end; ++j) {
        const Slot& s = jobs[(size_t)j];
        const Image img = render_face(people[(size_t)s.person], cfg.seed, s.person, s.image_no,
                                      cfg.size, cfg.pixel_noise);
        out[(size_t)j - begin] = encode_jpeg(img, cfg.jpeg_quality);
    }
    return out;
}

}  // namespace

SynthSummary generate_synth(const SynthConfig& cfg, const std::string& dir, std::ostream* log) {
    namespace fs = std::filesystem;
    engine::Timer timer;
    const i64 T = cfg.identities, V = cfg.heldout_ids, N = cfg.images;
    ENGINE_CHECK(cfg.size >= 16 && cfg.size <= 1024, engine::ArgError, "synth: size ", cfg.size);
    ENGINE_CHECK(cfg.jpeg_quality >= 1 && cfg.jpeg_quality <= 100, engine::ArgError,
                 "synth: jpeg quality ", cfg.jpeg_quality);
    ENGINE_CHECK(cfg.flip_frac >= 0 && cfg.outlier_frac >= 0 && cfg.split_ids >= 0,
                 engine::ArgError, "synth: negative noise amount");
    ENGINE_CHECK(T >= 2 || (cfg.flip_frac == 0 && T >= 1), engine::ArgError,
                 "synth: ", T, " identities (label flips need at least 2)");
    ENGINE_CHECK(cfg.pairs >= 0 && (cfg.pairs == 0 || V >= 2), engine::ArgError, "synth: ",
                 cfg.pairs, " verification pairs need at least 2 held-out identities, got ", V);
    SynthSummary sum;
    engine::Rng rng(mix(cfg.seed, kLayoutTag, 0));

    // 1. Long-tailed counts, assigned to identities in a random order.
    std::vector<i64> counts = long_tail_counts(T, N, cfg.max_per_id, cfg.min_per_id, &sum.exponent);
    rng.shuffle(counts);

    // 2. Split identities: half of an identity's images move under a new label T + s.
    const i64 split_min = std::max<i64>(2 * cfg.min_per_id, 6);
    std::vector<i64> candidates;
    for (i64 i = 0; i < T; ++i)
        if (counts[i] >= split_min) candidates.push_back(i);
    ENGINE_CHECK((i64)candidates.size() >= cfg.split_ids, engine::ArgError, "synth: ",
                 cfg.split_ids, " identities to split but only ", candidates.size(),
                 " have at least ", split_min, " images");
    rng.shuffle(candidates);
    std::vector<i64> split_of(T, -1);  // identity -> split index
    for (i64 s = 0; s < cfg.split_ids; ++s) split_of[candidates[s]] = s;
    const i64 C = T + cfg.split_ids;
    std::vector<std::vector<Slot>> labels((size_t)C);
    for (i64 i = 0; i < T; ++i) {
        const i64 moved = split_of[i] >= 0 ? counts[i] / 2 : 0;
        for (i64 j = 0; j < counts[i] - moved; ++j) labels[i].push_back({i, 0, Kind::clean});
        for (i64 j = 0; j < moved; ++j) labels[T + split_of[i]].push_back({i, 0, Kind::split});
    }

    // 3. Flips and outliers replace clean images of unsplit labels; at most a third of any
    // label's images (at least one stays clean), so the label's identity stays the majority.
    const i64 n_flip = std::llround(cfg.flip_frac * (double)N);
    const i64 n_out = std::llround(cfg.outlier_frac * (double)N);
    std::vector<std::pair<i64, i64>> eligible;  // (label, position)
    for (i64 i = 0; i < T; ++i)
        if (split_of[i] < 0)
            for (i64 j = 0; j < (i64)labels[i].size(); ++j) eligible.push_back({i, j});
    rng.shuffle(eligible);
    std::vector<i64> noisy_in(T, 0);
    i64 placed = 0;
    const i64 first_outsider = T + V;
    for (const auto& e : eligible) {
        if (placed == n_flip + n_out) break;
        const i64 i = e.first;
        if (3 * (noisy_in[i] + 1) > (i64)labels[i].size()) continue;
        ++noisy_in[i];
        Slot& s = labels[i][e.second];
        if (placed < n_flip) {
            s.kind = Kind::flip;
            s.person = (i + 1 + rng.below(T - 1)) % T;  // any other training identity
        } else {
            s.kind = Kind::outlier;
            s.person = first_outsider + (placed - n_flip);
        }
        ++placed;
    }
    ENGINE_CHECK(placed == n_flip + n_out, engine::ArgError, "synth: ", n_flip + n_out,
                 " noisy images do not fit (at most a third of each unsplit label may be noise)");

    // 4. Image numbers per person (their pose etc.), then a shuffle inside each label so the
    // noisy images are not at fixed places.
    std::vector<i64> next_image((size_t)(first_outsider + n_out), 0);
    for (auto& lab : labels) {
        for (Slot& s : lab) s.image_no = next_image[(size_t)s.person]++;
        rng.shuffle(lab);
    }

    // 5. Verification pairs of held-out people T..T+V-1: half same, half different, shuffled.
    engine::Rng prng(mix(cfg.seed, kPairTag, 0));
    std::vector<bool> issame((size_t)cfg.pairs);
    for (i64 p = 0; p < cfg.pairs; ++p) issame[p] = p < cfg.pairs / 2;
    for (i64 p = cfg.pairs - 1; p > 0; --p) {
        const i64 q = prng.below(p + 1);
        const bool t = issame[p];
        issame[p] = issame[q];
        issame[q] = t;
    }
    std::vector<Slot> pair_jobs;
    for (i64 p = 0; p < cfg.pairs; ++p) {
        const i64 a = T + prng.below(V);
        i64 b = a;
        if (!issame[p]) b = T + (a - T + 1 + prng.below(V - 1)) % V;
        pair_jobs.push_back({a, next_image[(size_t)a]++, Kind::clean});
        pair_jobs.push_back({b, next_image[(size_t)b]++, Kind::clean});
    }

    std::vector<FaceIdentity> people((size_t)(first_outsider + n_out));
    for (i64 p = 0; p < (i64)people.size(); ++p) people[(size_t)p] = make_identity(cfg.seed, p);

    // 6. Render and write the training set in chunks (bounded memory), label by label.
    std::vector<Slot> jobs;
    std::vector<int> job_label;
    for (i64 L = 0; L < C; ++L)
        for (const Slot& s : labels[(size_t)L]) {
            jobs.push_back(s);
            job_label.push_back((int)L);
        }
    DatasetWriter writer(dir, cfg.size, cfg.size);
    std::ostringstream truth;
    const size_t chunk = 1024;
    for (size_t b = 0; b < jobs.size(); b += chunk) {
        const size_t e = std::min(jobs.size(), b + chunk);
        const auto encoded = render_jobs(jobs, b, e, people, cfg);
        for (size_t j = b; j < e; ++j) {
            writer.add_image(job_label[j], encoded[j - b]);
            const i64 key = writer.images();  // keys run 1, 2, ... in the order written
            const Slot& s = jobs[j];
            if (s.kind != Kind::clean)
                truth << kind_name(s.kind) << ' ' << key << ' ' << s.person << ' ' << job_label[j] << '\n';
        }
        if (log) *log << "synth: " << e << "/" << jobs.size() << " training images\n" << std::flush;
    }
    writer.close();
    write_text((fs::path(dir) / "noise_truth.txt").string(), truth.str());

    // 7. Verification .bin.
    VerificationSet val;
    val.issame = issame;
    val.images = render_jobs(pair_jobs, 0, pair_jobs.size(), people, cfg);
    write_verification_bin((fs::path(dir) / "synth_val.bin").string(), val);

    // 8. Contact sheet: 8 images of each of the 8 largest labels, as rendered (PNG).
    {
        std::vector<i64> by_size((size_t)C);
        for (i64 L = 0; L < C; ++L) by_size[L] = L;
        std::stable_sort(by_size.begin(), by_size.end(), [&](i64 x, i64 y) {
            return labels[x].size() > labels[y].size();
        });
        const int rows = (int)std::min<i64>(8, C), cols = 8, S = cfg.size;
        Image sheet(rows * S, cols * S);
        for (int r = 0; r < rows; ++r) {
            const auto& lab = labels[(size_t)by_size[r]];
            for (int c = 0; c < cols && c < (int)lab.size(); ++c) {
                const Slot& s = lab[(size_t)c];
                const Image img = render_face(people[(size_t)s.person], cfg.seed, s.person,
                                              s.image_no, S, cfg.pixel_noise);
                for (int y = 0; y < S; ++y)
                    std::copy(img.at(y, 0), img.at(y, 0) + 3 * S, sheet.at(r * S + y, c * S));
            }
        }
        const std::vector<u8> png = encode_png(sheet);
        write_text((fs::path(dir) / "contact_sheet.png").string(), std::string(png.begin(), png.end()));
    }

    // 9. Summary and synth.json (the parameters and what came out).
    sum.images = (i64)jobs.size();
    sum.classes = C;
    sum.flip = n_flip;
    sum.outlier = n_out;
    sum.split_ids = cfg.split_ids;
    for (const Slot& s : jobs) sum.split_images += s.kind == Kind::split;
    sum.pairs = cfg.pairs;
    for (const auto& lab : labels) sum.per_label.push_back((i64)lab.size());
    std::ostringstream js;
    js << "{\n"
       << "  \"generator\": \"apps/synth\",\n"
       << "  \"seed\": " << cfg.seed << ",\n"
       << "  \"identities\": " << T << ",\n"
       << "  \"images\": " << N << ",\n"
       << "  \"max_per_id\": " << cfg.max_per_id << ",\n"
       << "  \"min_per_id\": " << cfg.min_per_id << ",\n"
       << "  \"zipf_exponent\": " << sum.exponent << ",\n"
       << "  \"flip_frac\": " << cfg.flip_frac << ",\n"
       << "  \"outlier_frac\": " << cfg.outlier_frac << ",\n"
       << "  \"split_ids\": " << cfg.split_ids << ",\n"
       << "  \"heldout_ids\": " << V << ",\n"
       << "  \"pairs\": " << cfg.pairs << ",\n"
       << "  \"size\": " << cfg.size << ",\n"
       << "  \"jpeg_quality\": " << cfg.jpeg_quality << ",\n"
       << "  \"pixel_noise\": " << cfg.pixel_noise << ",\n"
       << "  \"classes\": " << C << ",\n"
       << "  \"noisy_images\": {\"flip\": " << n_flip << ", \"outlier\": " << n_out
       << ", \"split\": " << sum.split_images << "},\n"
       << "  \"noise_truth_format\": \"kind record_key true_person given_label; kind flip|outlier|split; "
          "persons 0..identities-1 train (label = person), then held-out, then outsiders\",\n"
       << "  \"persons\": {\"train\": [0, " << T << "], \"heldout\": [" << T << ", " << T + V
       << "], \"outsiders\": [" << first_outsider << ", " << first_outsider + n_out << "]}\n"
       << "}\n";
    write_text((fs::path(dir) / "synth.json").string(), js.str());
    if (log)
        *log << "synth: " << sum.images << " images, " << C << " classes, noise " << n_flip
             << " flip + " << n_out << " outlier + " << sum.split_images << " split, "
             << cfg.pairs << " pairs, " << timer.seconds() << " s\n";
    return sum;
}

}  // namespace data
