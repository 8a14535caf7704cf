// Verification targets (lfw.bin, cfp_fp.bin, agedb_30.bin, synth_val.bin): loaded and decoded
// once, then evaluated with InsightFace's protocol (data/verification.h) on the current model.
#pragma once
#include <string>
#include <vector>

#include "apps/pipeline/embedder.h"
#include "data/verification.h"

namespace pipeline {

struct VerificationTarget {
    std::string name;                   // "lfw"
    std::string path;                   // the .bin file
    std::vector<data::Image> images;    // decoded at the model's input size
    std::vector<bool> issame;
};

// name: "lfw" (read DIR/lfw.bin) or a path ending in .bin. Images of another size are resized
// (bilinear). Throws IoError/FormatError naming the file.
VerificationTarget load_target(const std::string& name, const std::string& dir, int input_size);

// Embeds every image and its mirror and applies the protocol.
data::VerificationResult evaluate_target(const VerificationTarget& t, Embedder& embedder);

}  // namespace pipeline
