// The training loop of the three stages of ../shared/SPEC.md section 2, one class for all:
//   arcface  margin softmax cross-entropy on the head set
//   nr       the NR loss (margin softmax, beta = --noise-beta) on the head set
//   unequal  NR on the head stream + the center-dispersed loss on hard-mined tail triples
// One step (ARCHITECTURE.md): loader batch [head | tail] -> iresnet forward -> normalised
// classifier + margin softmax (head rows) and center-dispersed loss (tail rows) -> d embedding
// -> iresnet backward -> gradient all-reduce slot -> SGD momentum (backbone and classifier).
// Checkpoints: PREFIX-NNNNNN.safetensors (the backbone, loads in PyTorch) and
// PREFIX-NNNNNN.state.safetensors (classifier fc7, momentum, step, stream positions, RNG), and
// PREFIX-best.* for the best mean verification accuracy; --resume continues exactly.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "data/loader.h"
#include "engine/progress.h"
#include "losses/margin_softmax.h"

namespace pipeline {

struct TrainOptions {
    std::string stage = "arcface";  // arcface | nr | unequal
    // network
    std::string network = "r50";
    double width = 1.0;
    int input_size = 112;
    int num_features = 512;
    double dropout = 0.4;
    // loss
    int loss_type = 4;  // 4: ArcFace with the keep branch; 5: combined (a, m, b); 2: CosFace
    double margin_s = 64, margin_m = 0.5, margin_a = 1.0, margin_b = 0.0;
    bool margin_gradient = true;
    double noise_beta = 0.9;  // nr and unequal
    bool seed_nr_grad_scale = false;
    // data
    std::string data_dir, data_dir_tail;
    i64 batch_size = 128;  // head samples per step (global; one device for now)
    i64 tail_ids = 120;    // tail identities per step (3 images each)
    i64 bag_size = 3600;
    i64 mining_batch = 40;
    i64 refill_multiplier = 100;  // a tail refill mines >= this x (tail_ids x 3) samples (seed: 100)
    double interweight = 1.0;
    bool resize = false;  // resize images to input_size instead of rejecting other sizes
    int workers = 2;
    // optimiser
    double lr = 0.1;
    std::vector<i64> lr_steps;
    double wd = 5e-4, mom = 0.9;
    i64 max_steps = 0, end_epoch = 0;
    // checkpoints and logging
    std::string pretrained;
    bool drop_classifier = false;
    std::string resume;
    std::string prefix = "model/model";
    i64 verbose = 2000;  // verification + checkpoint every N steps (and at the end)
    i64 log_every = 20;
    std::vector<std::string> targets;  // names in data_dir (lfw) or paths to .bin files
    u64 seed = 0;
    std::string device = "auto";

    MarginSoftmaxOptions loss_options() const;
};

struct StepLosses {
    double head = 0, tail = 0;
    double total() const { return head + tail; }
};

class Trainer {
public:
    explicit Trainer(const TrainOptions& opt);
    ~Trainer();

    // Runs until max_steps (or end_epoch), with progress, metrics, verification and checkpoints.
    void run();
    // One training step; the losses are read back (on the GPU that synchronises the stream,
    // so run() asks only at log intervals).
    StepLosses step(bool read_losses = true);
    // Verification on every target; returns the mean accuracy (NaN without targets).
    double verify();
    // Writes PATH_PREFIX.safetensors and PATH_PREFIX.state.safetensors.
    void save(const std::string& path_prefix);

    i64 steps_done() const;
    i64 total_steps() const;
    i64 num_classes() const;
    double current_lr() const;
    // Host copies, for tests: the backbone's flat parameters and the classifier.
    std::vector<float> backbone_params() const;
    std::vector<float> classifier() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace pipeline
