// Noise mining pass (see mining.h). The classifier and the scores run on the CPU reference; the
// embeddings come from the caller (the model on its device), one batch at a time.
#include "apps/pipeline/mining.h"

#include <algorithm>
#include <cstdio>

#include "engine/error.h"
#include "engine/timer.h"
#include "losses/noise_scores.h"
#include "losses/normalized_classifier.h"

namespace pipeline {

MiningResult mine_noise(const data::RecordDataset& ds, i64 D, const SampleEmbedFn& embed,
                        const float* W, i64 C, const MiningOptions& opt,
                        const std::string& list_path) {
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
    std::vector<float> wn((size_t)(C * D)), wnorm((size_t)C), cos((size_t)(B * C)),
        xn((size_t)(B * D)), xnorm((size_t)B), emb((size_t)(B * D)), maxp((size_t)B),
        plab((size_t)B);
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
        // (normalising W again per batch costs C x D, small next to the B x C x D product)
        normalized_classifier_forward_cpu(cos.data(), xn.data(), xnorm.data(), wn.data(),
                                          wnorm.data(), emb.data(), W, m, C, D);
        noise_scores_cpu(maxp.data(), plab.data(), (std::int32_t*)nullptr, cos.data(),
                         labels.data(), m, C, opt.margin);
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
