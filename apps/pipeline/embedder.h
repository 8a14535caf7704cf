// Embedding images with a model in inference mode, in batches of the model's max batch: the
// verification protocol (image and horizontal mirror), the bag sampler's callback, build/embed.
// On the GPU each batch ends with one wait for the model's stream, since the host reads the
// embeddings: in a training step that is the one sanctioned host synchronisation besides the
// loss read, taken only when the bag sampler refills the tail stream (SPEC.md section 6).
#pragma once
#include <vector>

#include "data/image.h"
#include "engine/gpu_context.h"
#include "layers/iresnet.h"

namespace pipeline {

class Embedder {
public:
    // The model must outlive the embedder; gpu is the model's context (nullptr on the CPU).
    Embedder(IResNet<float>& model, engine::GpuContext* gpu);

    // images: n float CHW images (n, 3, S, S), values 0..255, in host memory. out: (n, D).
    void embed(const float* images, i64 n, float* out);
    // Decoded HWC images (already at the model's input size); mirror = embed the flipped image.
    void embed(const std::vector<data::Image>& images, bool mirror, float* out);
    i64 dim() const { return model_.embedding_size(); }
    int input_size() const { return model_.config().input_size; }

private:
    IResNet<float>& model_;
    engine::GpuContext* gpu_;
    i64 batch_;
    i64 prepared_ = 0;  // the batch size the model's cuDNN plans were last prepared for
    std::vector<float> host_in_;
    engine::Buffer<float> dev_in_;
};

}  // namespace pipeline
