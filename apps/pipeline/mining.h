// Noise mining (SPEC.md section 5, the seed's step 2a): every head sample once through the
// model and its classifier, no augmentation, margin applied as in training. A sample is listed
// as noise when its largest softmax probability is below `threshold` (the seed's rule: no class
// fits, e.g. a person outside the set), and, when label_threshold > 0, also when the probability
// of its label is below label_threshold (an extension, off by default: a confident prediction
// of another class, e.g. a mislabelled image). Lines "label record_key max_p p_label", the
// format data::apply_noise_list reads.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "data/recordio.h"
#include "losses/margin_softmax.h"

namespace engine {
class GpuContext;
}

namespace pipeline {

struct MiningOptions {
    double threshold = 0.007;      // the seed's
    double label_threshold = 0.0;  // 0: off
    i64 batch = 64;
    MarginSoftmaxOptions margin = arcface_options();
};

struct MiningResult {
    i64 samples = 0;
    std::vector<i64> noisy;             // sample indices listed as noise, in order
    std::vector<float> max_p, p_label;  // per sample
};

// Embeds the listed samples of the dataset into out (n, D), e.g. loader + model in inference.
using SampleEmbedFn = std::function<void(const std::vector<i64>& samples, float* out)>;

// W: the classifier (C, D) in host memory. Writes the list to list_path (when not empty).
// gpu: when given, the classifier and the scores (the B x C x D part) run there: W is uploaded
// once, and per batch only the embeddings, the labels and two scores per sample cross.
MiningResult mine_noise(const data::RecordDataset& ds, i64 D, const SampleEmbedFn& embed,
                        const float* W, i64 C, const MiningOptions& opt,
                        const std::string& list_path, engine::GpuContext* gpu = nullptr);

}  // namespace pipeline
