// Noise mining pass (see mining.h). The embeddings come from the caller (the model on its
// device), one batch at a time; the classifier and the scores run on the CPU reference, or on the
// GPU when one is given.
#include "apps/pipeline/mining.h"

#include <algorithm>
#include <cstdio>

#include "engine/device.h"
#include "engine/error.h"
#include "engine/gpu_context.h"
#include "engine/tensor.h"
#include "engine/timer.h"
#include "losses/noise_scores.h"
#include "losses/normalized_classifier.h"

namespace pipeline {
namespace {

// Scores batches of up to B embeddings against the classifier: max_p and p_label per sample.
class BatchScorer {
public:
    BatchScorer(const float* W, i64 C, i64 D, i64 B, const MarginSoftmaxOptions& margin,
                engine::GpuContext* gpu)
        : W_(W), C_(C), D_(D), margin_(margin), gpu_(gpu) {
        const engine::Device dev = gpu ? engine::Device::cuda : engine::Device::cpu;
        wn_ = engine::Buffer<float>(C * D, dev);
        wnorm_ = engine::Buffer<float>(C, dev);
        cos_ = engine::Buffer<float>(B * C, dev);
        xn_ = engine::Buffer<float>(B * D, dev);
        xnorm_ = engine::Buffer<float>(B, dev);
        if (gpu) {
            W_dev_ = engine::Buffer<float>(C * D, dev);
            W_dev_.copy_from_host(std::vector<float>(W, W + C * D));
            emb_ = engine::Buffer<float>(B * D, dev);
            labels_ = engine::Buffer<std::int32_t>(B, dev);
            maxp_ = engine::Buffer<float>(B, dev);
            plab_ = engine::Buffer<float>(B, dev);
        }
    }

    // emb (m, D), labels (m) and the outputs in host memory.
    void score(const float* emb, const std::int32_t* labels, i64 m, float* max_p, float* p_label) {
        if (!gpu_) {
            // (normalising W again per batch costs C x D, small next to the B x C x D product)
            normalized_classifier_forward_cpu(cos_.data(), xn_.data(), xnorm_.data(), wn_.data(),
                                              wnorm_.data(), emb, W_, m, C_, D_);
            noise_scores_cpu(max_p, p_label, (std::int32_t*)nullptr, cos_.data(), labels, m, C_,
                             margin_);
            return;
        }
#ifdef ENGINE_CUDA
        engine::GpuContext& g = *gpu_;
        engine::device_copy_async(emb_.data(), emb, (size_t)(m * D_) * sizeof(float), g.stream());
        engine::device_copy_async(labels_.data(), labels, (size_t)m * sizeof(std::int32_t),
                                  g.stream());
        normalized_classifier_forward_cuda(cos_.data(), xn_.data(), xnorm_.data(), wn_.data(),
                                           wnorm_.data(), emb_.data(), W_dev_.data(), m, C_, D_, g);
        noise_scores_cuda(maxp_.data(), plab_.data(), nullptr, cos_.data(), labels_.data(), m, C_,
                          margin_, g);
        engine::device_copy_async(max_p, maxp_.data(), (size_t)m * sizeof(float), g.stream());
        engine::device_copy_async(p_label, plab_.data(), (size_t)m * sizeof(float), g.stream());
        g.synchronize();  // the host decides per sample next
#endif
    }

private:
    const float* W_;
    i64 C_, D_;
    MarginSoftmaxOptions margin_;
    engine::GpuContext* gpu_;
    engine::Buffer<float> W_dev_, wn_, wnorm_, cos_, xn_, xnorm_, emb_, maxp_, plab_;
    engine::Buffer<std::int32_t> labels_;
};

}  // namespace

MiningResult mine_noise(const data::RecordDataset& ds, i64 D, const SampleEmbedFn& embed,
                        const float* W, i64 C, const MiningOptions& opt,
                        const std::string& list_path, engine::GpuContext* gpu) {
    ENGINE_CHECK(ds.num_classes() == C, engine::ArgError, "mine: the set has ",
                 ds.num_classes(), " classes but the classifier has ", C);
    const i64 N = ds.size(), B = std::max<i64>(1, opt.batch);
    FILE* out = nullptr;
    if (!list_path.empty()) {
        out = std::fopen(list_path.c_str(), "w");
        ENGINE_CHECK(out, engine::IoError, list_path, ": cannot open for writing");
    }
    MiningResult r;
    r.samples = N;
    r.max_p.resize((size_t)N);
    r.p_label.resize((size_t)N);
    BatchScorer scorer(W, C, D, B, opt.margin, gpu);
    std::vector<float> emb((size_t)(B * D)), maxp((size_t)B), plab((size_t)B);
    std::vector<std::int32_t> labels((size_t)B);
    engine::Timer clock, since_print;
    for (i64 b = 0; b < N; b += B) {
        const i64 m = std::min(B, N - b);
        std::vector<i64> idx((size_t)m);
        for (i64 i = 0; i < m; ++i) {
            idx[(size_t)i] = b + i;
            labels[(size_t)i] = ds.label(b + i);
        }
        embed(idx, emb.data());
        scorer.score(emb.data(), labels.data(), m, maxp.data(), plab.data());
        for (i64 i = 0; i < m; ++i) {
            const float mp = maxp[(size_t)i], pl = plab[(size_t)i];
            r.max_p[(size_t)(b + i)] = mp;
            r.p_label[(size_t)(b + i)] = pl;
            const bool noise = mp < opt.threshold ||
                               (opt.label_threshold > 0 && pl < opt.label_threshold);
            if (!noise) continue;
            r.noisy.push_back(b + i);
            if (out)
                std::fprintf(out, "%d %lld %.6g %.6g\n", labels[(size_t)i],
                             (long long)ds.record_key(b + i), mp, pl);
        }
        if (since_print.seconds() > 10 || b + m == N) {
            std::fprintf(stderr, "mine: %lld/%lld samples, %lld listed, %.0f samples/s\n",
                         (long long)(b + m), (long long)N, (long long)r.noisy.size(),
                         (double)(b + m) / std::max(1e-9, clock.seconds()));
            since_print.reset();
        }
    }
    if (out) ENGINE_CHECK(std::fclose(out) == 0, engine::IoError, list_path, ": write failed");
    return r;
}

}  // namespace pipeline
