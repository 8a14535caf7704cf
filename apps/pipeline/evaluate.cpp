// Loading and evaluating verification targets (see evaluate.h).
#include "apps/pipeline/evaluate.h"

#include "data/verification_bin.h"
#include "engine/error.h"

namespace pipeline {

namespace {
bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() &&
           s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}
std::string stem(const std::string& path) {
    const size_t slash = path.find_last_of('/');
    std::string s = slash == std::string::npos ? path : path.substr(slash + 1);
    if (ends_with(s, ".bin")) s.resize(s.size() - 4);
    return s;
}
}  // namespace

VerificationTarget load_target(const std::string& name, const std::string& dir, int input_size) {
    VerificationTarget t;
    t.path = ends_with(name, ".bin") ? name : (dir.empty() ? std::string(".") : dir) + "/" + name + ".bin";
    t.name = stem(t.path);
    data::VerificationSet set = data::read_verification_bin(t.path);
    t.issame = set.issame;
    t.images.reserve(set.images.size());
    for (size_t i = 0; i < set.images.size(); ++i)
        t.images.push_back(data::decode_image(set.images[i], engine::str(t.path, " image ", i),
                                              input_size, input_size, data::SizePolicy::resize));
    return t;
}

data::VerificationResult evaluate_target(const VerificationTarget& t, Embedder& embedder) {
    const i64 n = (i64)t.images.size(), D = embedder.dim();
    std::vector<float> emb((size_t)(n * D)), emb_mirror((size_t)(n * D));
    embedder.embed(t.images, false, emb.data());
    embedder.embed(t.images, true, emb_mirror.data());
    return data::verify_embeddings(emb.data(), emb_mirror.data(), (i64)t.issame.size(), D,
                                   t.issame);
}

}  // namespace pipeline
