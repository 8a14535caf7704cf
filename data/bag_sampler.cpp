// Tail-stream bag sampler: tail order, bag embedding, center distances, closest-pair identity
// selection and refills, with a state that resumes the stream exactly.
#include "data/bag_sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>
#include <tuple>

#include "engine/blas.h"
#include "engine/error.h"

namespace data {

namespace {
constexpr i64 kStateMagic = 0x31474142;  // "BAG1" little-endian
constexpr i64 kStateHeader = 11;         // magic + 10 fields before the sequence
}  // namespace

std::vector<i64> BagSamplerState::pack() const {
    std::vector<i64> v = {kStateMagic,      (i64)seed,  (i64)order_rng_counter,
                          orders_built,     order_position, bags_mined,
                          refills,          batches_served, tail_images,
                          sequence_position, (i64)sequence.size()};
    v.insert(v.end(), sequence.begin(), sequence.end());
    return v;
}

BagSamplerState BagSamplerState::unpack(const std::vector<i64>& v) {
    ENGINE_CHECK((i64)v.size() >= kStateHeader && v[0] == kStateMagic, engine::FormatError,
                 "bag sampler state: not a packed state (", v.size(), " values, first ",
                 v.empty() ? 0 : v[0], ")");
    BagSamplerState s;
    s.seed = (u64)v[1];
    s.order_rng_counter = (u64)v[2];
    s.orders_built = v[3];
    s.order_position = v[4];
    s.bags_mined = v[5];
    s.refills = v[6];
    s.batches_served = v[7];
    s.tail_images = v[8];
    s.sequence_position = v[9];
    const i64 n = v[10];
    ENGINE_CHECK(n >= 0 && (i64)v.size() == kStateHeader + n, engine::FormatError,
                 "bag sampler state: sequence length ", n, " but ", (i64)v.size() - kStateHeader,
                 " values follow the header");
    ENGINE_CHECK(s.sequence_position >= 0 && s.sequence_position <= n, engine::FormatError,
                 "bag sampler state: sequence position ", s.sequence_position, " outside [0, ",
                 n, "]");
    s.sequence.assign(v.begin() + kStateHeader, v.end());
    return s;
}

bool BagSamplerState::operator==(const BagSamplerState& o) const {
    return std::tie(seed, order_rng_counter, orders_built, order_position, bags_mined, refills,
                    batches_served, tail_images, sequence_position, sequence) ==
           std::tie(o.seed, o.order_rng_counter, o.orders_built, o.order_position, o.bags_mined,
                    o.refills, o.batches_served, o.tail_images, o.sequence_position, o.sequence);
}

BagSampler::BagSampler(std::vector<IdentityRange> identities, const BagSamplerConfig& cfg,
                       EmbedFn embed)
    : cfg_(cfg), embed_(std::move(embed)), rng_(cfg.seed) {
    const i64 k = cfg_.images_per_identity;
    ENGINE_CHECK(k >= 1, engine::ArgError, "bag sampler: images per identity must be >= 1, got ",
                 k);
    ENGINE_CHECK(cfg_.batchsize_id > 0 && cfg_.batchsize_id % k == 0, engine::ArgError,
                 "bag sampler: batchsize_id ", cfg_.batchsize_id, " must be a positive multiple of ",
                 k);
    ENGINE_CHECK(cfg_.bag_size > 0 && cfg_.bag_size % k == 0, engine::ArgError,
                 "bag sampler: bag size ", cfg_.bag_size, " must be a positive multiple of ", k);
    ENGINE_CHECK(cfg_.refill_multiplier >= 1, engine::ArgError,
                 "bag sampler: refill multiplier must be >= 1, got ", cfg_.refill_multiplier);
    ENGINE_CHECK(cfg_.embedding_dim > 0 && cfg_.mining_batch >= 0, engine::ArgError,
                 "bag sampler: bad embedding dim ", cfg_.embedding_dim, " or mining batch ",
                 cfg_.mining_batch);
    ENGINE_CHECK((bool)embed_, engine::ArgError, "bag sampler: no embed callback");

    for (const IdentityRange& id : identities) {
        const i64 n = id.end - id.begin;
        ENGINE_CHECK(n >= 0 && id.begin >= 0, engine::ArgError, "bag sampler: identity ", id.label,
                     " has a bad sample range [", id.begin, ", ", id.end, ")");
        if (n == 0) {
            ++empty_;
            continue;
        }
        if (n < k) {
            ++small_;
            if (cfg_.small_identities == SmallIdentityPolicy::skip) continue;
        }
        ids_.push_back(id);
    }
    const i64 want_ids = cfg_.batchsize_id / k;
    ENGINE_CHECK((i64)ids_.size() >= want_ids, engine::ArgError, "bag sampler: ", ids_.size(),
                 " usable tail identities (", small_, " with fewer than ", k, " images ",
                 cfg_.small_identities == SmallIdentityPolicy::skip ? "skipped" : "padded", ", ",
                 empty_, " empty) cannot fill ", want_ids, " identities per step");
    // A tail smaller than one bag mines the whole order as its bag.
    bag_ = std::min(cfg_.bag_size, k * (i64)ids_.size());
}

void BagSampler::build_order() {
    // Shuffle the identities; for each, shuffle its images and keep the first k (an identity with
    // fewer images, under the repeat policy, keeps all of them and draws the rest with
    // replacement). Every draw comes from rng_, so the order is a function of its counter.
    order_rng_counter_ = rng_.counter();
    const i64 k = cfg_.images_per_identity;
    std::vector<i64> perm(ids_.size());
    std::iota(perm.begin(), perm.end(), (i64)0);
    rng_.shuffle(perm);
    order_.clear();
    order_.reserve(perm.size() * (size_t)k);
    std::vector<i64> images;
    for (i64 p : perm) {
        const IdentityRange& id = ids_[(size_t)p];
        images.resize((size_t)(id.end - id.begin));
        std::iota(images.begin(), images.end(), id.begin);
        rng_.shuffle(images);
        const i64 n = (i64)images.size();
        for (i64 t = 0; t < k; ++t)
            order_.push_back(t < n ? images[(size_t)t] : images[(size_t)rng_.below(n)]);
    }
    order_pos_ = 0;
    ++orders_built_;
}

std::vector<i64> BagSampler::select_identities(const std::vector<double>& centers, i64 n,
                                               i64 dim, i64 count) {
    ENGINE_CHECK((i64)centers.size() == n * dim && count >= 0 && count <= n, engine::ArgError,
                 "bag sampler: cannot select ", count, " of ", n, " centers of dim ", dim);
    // Squared distances |c_i - c_j|^2 = |c_i|^2 + |c_j|^2 - 2 c_i.c_j from one Gram matrix.
    std::vector<double> gram((size_t)(n * n));
    if (n > 0)
        engine::gemm_cpu<double>(false, true, n, n, dim, 1.0, centers.data(), centers.data(), 0.0,
                                 gram.data());
    // The walk over ALL ordered pairs (i, j) by (distance, i, j) reduces to the pairs i <= j:
    // (i, j) and (j, i) share the distance and (i, j) comes first, and after (i, j) both i and j
    // are selected (or the walk has stopped), so (j, i) never adds anything. The diagonal
    // (distance 0, +1 so that an identity is not paired with itself first) stays in the walk.
    struct Pair {
        double d;
        i64 i, j;
        bool operator<(const Pair& o) const {
            return d < o.d || (d == o.d && (i < o.i || (i == o.i && j < o.j)));
        }
    };
    std::vector<Pair> pairs;
    pairs.reserve((size_t)(n * (n + 1) / 2));
    for (i64 i = 0; i < n; ++i)
        for (i64 j = i; j < n; ++j) {
            const double d = i == j ? 1.0
                                    : gram[(size_t)(i * n + i)] + gram[(size_t)(j * n + j)] -
                                          2.0 * gram[(size_t)(i * n + j)];
            pairs.push_back({d, i, j});
        }
    std::vector<i64> selected;
    std::vector<char> taken((size_t)n, 0);
    auto take = [&](i64 x) {
        if (!taken[(size_t)x] && (i64)selected.size() < count) {
            taken[(size_t)x] = 1;
            selected.push_back(x);
        }
    };
    // Sort lazily: the smallest chunk first (nth_element + sort give exactly the prefix of the
    // full sort, since the order is total), a larger chunk only when the walk needs it.
    size_t lo = 0, chunk = (size_t)std::max<i64>(4 * count, 1024);
    while ((i64)selected.size() < count && lo < pairs.size()) {
        const size_t hi = std::min(pairs.size(), lo + chunk);
        if (hi < pairs.size()) std::nth_element(pairs.begin() + lo, pairs.begin() + hi, pairs.end());
        std::sort(pairs.begin() + lo, pairs.begin() + hi);
        for (size_t p = lo; p < hi && (i64)selected.size() < count; ++p) {
            // Adding i then j; stopping as soon as count is reached is the seed's "add both, drop
            // the one that overshoots".
            take(pairs[p].i);
            take(pairs[p].j);
        }
        lo = hi;
        chunk *= 2;
    }
    return selected;
}

std::vector<i64> BagSampler::mine_bag() {
    const i64 k = cfg_.images_per_identity, D = cfg_.embedding_dim;
    if (orders_built_ == 0 || (i64)order_.size() - order_pos_ < bag_) build_order();
    const std::vector<i64> bag(order_.begin() + order_pos_, order_.begin() + order_pos_ + bag_);
    order_pos_ += bag_;

    // Embed in chunks of mining_batch samples (the app's inference batch).
    std::vector<float> emb((size_t)(bag_ * D));
    const i64 step = cfg_.mining_batch > 0 ? cfg_.mining_batch : bag_;
    for (i64 b = 0; b < bag_; b += step) {
        const i64 e = std::min(bag_, b + step);
        embed_(std::vector<i64>(bag.begin() + b, bag.begin() + e), &emb[(size_t)(b * D)]);
    }

    // L2-normalise each embedding (a zero vector stays zero), then center = mean of the k
    // normalised embeddings of an identity (not normalised again), all in double.
    const i64 n = bag_ / k;
    std::vector<double> centers((size_t)(n * D), 0.0);
    for (i64 r = 0; r < bag_; ++r) {
        const float* x = &emb[(size_t)(r * D)];
        double q = 0;
        for (i64 c = 0; c < D; ++c) {
            ENGINE_CHECK(std::isfinite(x[c]), engine::DataError, "bag sampler: embedding of tail ",
                         "sample ", bag[(size_t)r], " has a non-finite value at component ", c);
            q += (double)x[c] * (double)x[c];
        }
        const double inv = q > 0 ? 1.0 / std::sqrt(q) : 0.0;
        double* center = &centers[(size_t)((r / k) * D)];
        for (i64 c = 0; c < D; ++c) center[c] += (double)x[c] * inv / (double)k;
    }

    const std::vector<i64> chosen = select_identities(centers, n, D, cfg_.batchsize_id / k);
    std::vector<i64> out;
    out.reserve((size_t)cfg_.batchsize_id);
    for (i64 id : chosen)
        for (i64 t = 0; t < k; ++t) out.push_back(bag[(size_t)(id * k + t)]);
    ++bags_mined_;
    return out;
}

void BagSampler::refill() {
    // Drop what was served, then mine bags until at least multiplier * batchsize_id samples wait
    // (each bag brings exactly batchsize_id, so a refill mines `multiplier` bags from empty).
    seq_.erase(seq_.begin(), seq_.begin() + seq_pos_);
    seq_pos_ = 0;
    while ((i64)seq_.size() < cfg_.refill_multiplier * cfg_.batchsize_id) {
        const std::vector<i64> mined = mine_bag();
        seq_.insert(seq_.end(), mined.begin(), mined.end());
    }
    ++refills_;
}

std::vector<i64> BagSampler::next_batch() {
    if ((i64)seq_.size() - seq_pos_ < cfg_.batchsize_id) refill();
    std::vector<i64> batch(seq_.begin() + seq_pos_, seq_.begin() + seq_pos_ + cfg_.batchsize_id);
    seq_pos_ += cfg_.batchsize_id;
    ++batches_served_;
    return batch;
}

BagSamplerState BagSampler::state() const {
    BagSamplerState s;
    s.seed = rng_.seed();
    s.order_rng_counter = orders_built_ > 0 ? order_rng_counter_ : rng_.counter();
    s.orders_built = orders_built_;
    s.order_position = order_pos_;
    s.bags_mined = bags_mined_;
    s.refills = refills_;
    s.batches_served = batches_served_;
    s.tail_images = cfg_.images_per_identity * (i64)ids_.size();
    s.sequence_position = seq_pos_;
    s.sequence = seq_;
    return s;
}

void BagSampler::restore(const BagSamplerState& s) {
    const i64 tail = cfg_.images_per_identity * (i64)ids_.size();
    ENGINE_CHECK(s.tail_images == tail, engine::ArgError, "bag sampler: saved state is for a tail ",
                 "order of ", s.tail_images, " images, this tail has ", tail);
    ENGINE_CHECK(s.sequence_position >= 0 && s.sequence_position <= (i64)s.sequence.size(),
                 engine::ArgError, "bag sampler: saved sequence position ", s.sequence_position,
                 " outside the saved sequence of ", s.sequence.size());
    rng_ = engine::Rng(s.seed, s.order_rng_counter);
    cfg_.seed = s.seed;
    order_.clear();
    orders_built_ = 0;
    if (s.orders_built > 0) {
        build_order();  // redraws the same order and leaves the RNG where the original left it
        ENGINE_CHECK(s.order_position >= 0 && s.order_position <= (i64)order_.size(),
                     engine::ArgError, "bag sampler: saved order position ", s.order_position,
                     " outside the order of ", order_.size());
    }
    orders_built_ = s.orders_built;
    order_pos_ = s.order_position;
    bags_mined_ = s.bags_mined;
    refills_ = s.refills;
    batches_served_ = s.batches_served;
    seq_ = s.sequence;
    seq_pos_ = s.sequence_position;
}

}  // namespace data
