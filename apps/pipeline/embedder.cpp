// Batched inference embedding (see embedder.h).
#include "apps/pipeline/embedder.h"

#include <algorithm>
#include <cstring>

#include "data/augment.h"
#include "engine/error.h"

namespace pipeline {

Embedder::Embedder(IResNet<float>& model, engine::GpuContext* gpu)
    : model_(model), gpu_(gpu), batch_(model.max_batch()) {
    const i64 S = model.config().input_size;
    if (gpu_) dev_in_ = engine::Buffer<float>(batch_ * 3 * S * S, engine::Device::cuda);
}

void Embedder::embed(const float* images, i64 n, float* out) {
    const i64 S = model_.config().input_size, per = 3 * S * S, D = dim();
    for (i64 b = 0; b < n; b += batch_) {
        const i64 m = std::min(batch_, n - b);
        const float* in = images + b * per;
        if (gpu_) {
            // Upload, forward and download all on the model's stream, then one wait for that
            // stream: the host needs the embeddings (verification, the bag sampler's mining).
            // A batch size other than the last one's gets its cuDNN plans first (cached after).
            if (m != prepared_) {
                model_.prepare(m);
                prepared_ = m;
            }
            engine::device_copy_async(dev_in_.data(), in, (size_t)(m * per) * sizeof(float),
                                      gpu_->stream());
            const float* e = model_.forward(dev_in_.data(), m, false);
            engine::device_copy_async(out + b * D, e, (size_t)(m * D) * sizeof(float),
                                      gpu_->stream());
            gpu_->synchronize();
        } else {
            const float* e = model_.forward(in, m, false);
            std::memcpy(out + b * D, e, (size_t)(m * D) * sizeof(float));
        }
    }
}

void Embedder::embed(const std::vector<data::Image>& images, bool mirror, float* out) {
    const int S = model_.config().input_size;
    const i64 per = 3 * (i64)S * S, D = dim();
    data::AugmentDraw draw;
    draw.mirror = mirror;
    for (size_t b = 0; b < images.size(); b += (size_t)batch_) {
        const size_t m = std::min((size_t)batch_, images.size() - b);
        host_in_.resize(m * per);
        for (size_t i = 0; i < m; ++i) {
            const data::Image& img = images[b + i];
            ENGINE_CHECK(img.height == S && img.width == S, engine::ShapeError, "embed: image ",
                         b + i, " is ", img.height, "x", img.width, ", the model takes ", S, "x",
                         S);
            data::augment_to_chw(host_in_.data() + i * per, img, draw);
        }
        embed(host_in_.data(), (i64)m, out + (i64)b * D);
    }
}

}  // namespace pipeline
