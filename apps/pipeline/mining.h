// Noise mining (SPEC.md section 5, the seed's step 2a): every head sample once through the
// model and its classifier, no augmentation, margin applied as in training; a sample whose
// largest softmax probability is below the threshold is listed as noise:
//   "label record_key max_p p_label"   (the format data::apply_noise_list reads)
#pragma once
#include <string>
#include <vector>

#include "apps/pipeline/embedder.h"
#include "data/recordio.h"
#include "losses/margin_softmax.h"

namespace pipeline {

struct MiningOptions {
    double threshold = 0.007;  // the seed's
    i64 batch = 64;
    MarginSoftmaxOptions margin = arcface_options();
    int workers = 2;
    bool resize = false;
};

struct MiningResult {
    i64 samples = 0;
    std::vector<i64> noisy;           // sample indices listed as noise, in order
    std::vector<float> max_p, p_label;  // per sample
};

// W: the classifier (C, D) in host memory. Writes the list to list_path (when not empty).
MiningResult mine_noise(const data::RecordDataset& ds, Embedder& embedder, const float* W, i64 C,
                        const MiningOptions& opt, const std::string& list_path);

}  // namespace pipeline
