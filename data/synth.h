// A synthetic long-tailed, noisy face set: procedurally drawn faces (each identity its own
// geometry and colours, each image its own pose, lighting, expression and pixel noise), Zipf-like
// images per identity, three kinds of injected label noise with a ground-truth file, and held-out
// identities as an InsightFace verification .bin. apps/synth is the command line around it.
#pragma once
#include <iosfwd>
#include <string>
#include <vector>

#include "data/image.h"
#include "engine/common.h"

namespace data {

struct SynthConfig {
    i64 identities = 200;  // training identities (labels 0..identities-1 before splitting)
    i64 images = 4000;     // training images in all (exact)
    i64 max_per_id = 500;  // images of the largest identity (exact)
    i64 min_per_id = 3;    // floor of the long tail
    double flip_frac = 0.025;     // (a) images of another training identity: round(frac * images)
    double outlier_frac = 0.015;  // (b) images of people outside the set: round(frac * images)
    i64 split_ids = 4;            // (c) identities whose images are split under two labels
    i64 heldout_ids = 60;         // verification people (never in the training set)
    i64 pairs = 300;              // verification pairs, half same, half different
    int size = 112;               // image height and width
    int jpeg_quality = 90;
    double pixel_noise = 5.0;     // grey levels; each image draws sigma in [0.5, 1.5] x this
    u64 seed = 1;
    int threads = 0;              // rendering threads (0: OpenMP's default)
};

// The drawn person: geometry in face units (the head's half-height is about 0.7 of the canvas
// half-size) and colours as RGB in 0..255.
struct FaceIdentity {
    float face_w, face_h, jaw;
    float eye_dx, eye_y, eye_rx, eye_ry;
    float brow_dy, brow_len, brow_thick, brow_tilt, brow_arch;
    float nose_len, nose_w;
    float mouth_y, mouth_w, lip_thick;
    float ear_size;
    int hair_style;  // 0 short, 1 parted, 2 long, 3 receding, 4 fringe
    float hairline, hair_volume, part;
    bool beard, mustache, glasses, mole;
    float mole_x, mole_y;
    float skin[3], hair[3], iris[3], lip[3], frame[3];
};

// Person `person` of the set drawn from `seed`: a pure function of (seed, person).
FaceIdentity make_identity(u64 seed, i64 person);
// Image number `image_no` of that person: pose, lighting, expression, background and noise are
// a pure function of (seed, person, image_no). pixel_noise: SynthConfig::pixel_noise.
Image render_face(const FaceIdentity& id, u64 seed, i64 person, i64 image_no, int size,
                  double pixel_noise = 5.0);

// Long-tailed images per identity, largest first: c_r = max(min, M (r + 1)^-a) with the exponent
// a found by bisection so that the counts sum to `total`, then rounded so that they sum to it
// exactly (largest fractional parts first); c_0 = M. Throws ArgError when no such counts exist
// (total < M + (n - 1) min or total > n M).
std::vector<i64> long_tail_counts(i64 identities, i64 total, i64 max_per_id, i64 min_per_id,
                                  double* exponent = nullptr);

struct SynthSummary {
    i64 images = 0, classes = 0;
    i64 flip = 0, outlier = 0, split_images = 0, split_ids = 0;
    i64 pairs = 0;
    double exponent = 0;
    std::vector<i64> per_label;  // images per label, labels 0..classes-1
};

// Writes DIR/train.rec, train.idx, property (data::DatasetWriter), DIR/noise_truth.txt,
// DIR/synth_val.bin, DIR/synth.json and DIR/contact_sheet.png. Progress lines go to `log`
// when given.
//
// noise_truth.txt: one line per noisy training image, "kind record_key true_person given_label",
// kind one of flip (a: the image shows another training identity), outlier (b: a person outside
// the set), split (c: an identity's images moved under a second label, identities..classes-1).
// Persons: 0..identities-1 the training identities (person i has label i), then the held-out
// verification people, then one outsider person per outlier image.
SynthSummary generate_synth(const SynthConfig& cfg, const std::string& dir, std::ostream* log);

}  // namespace data
