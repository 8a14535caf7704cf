// The tail stream of Unequal-Training (../shared/SPEC.md section 6): identity triples mined from
// bags by the closeness of their embedding centers, served batchsize_id samples at a time.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "data/dataset.h"
#include "engine/common.h"
#include "engine/rng.h"

namespace data {

// The model in inference mode, provided by the app: embeds the listed samples (dataset sample
// indices) into out, row-major (samples.size(), embedding_dim). Called with at most
// mining_batch samples at a time (the whole bag when mining_batch is 0).
using EmbedFn = std::function<void(const std::vector<i64>& samples, float* out)>;

// What the sampler does with tail identities that have fewer than images_per_identity images.
enum class SmallIdentityPolicy {
    skip,    // leave them out of the tail order (counted in small_identities())
    repeat,  // take all their images, then fill the triple with images drawn with replacement
};

struct BagSamplerConfig {
    i64 bag_size = 3600;            // images per mined bag (--bag-size), multiple of k
    i64 batchsize_id = 360;         // tail images per step (--batchsize_id), multiple of k
    i64 images_per_identity = 3;    // k (--images-per-identity)
    i64 refill_multiplier = 100;    // a refill mines until >= multiplier * batchsize_id samples
    i64 embedding_dim = 512;        // D of the embed callback's output
    i64 mining_batch = 0;           // samples per embed call (--batch-size2); 0 = whole bag
    u64 seed = 0;
    SmallIdentityPolicy small_identities = SmallIdentityPolicy::skip;
};

// Everything needed to continue the stream exactly after a restart. The tail order is not
// stored: it is rebuilt from the RNG counter at which it was drawn. The mined but not yet served
// samples are stored, since they depend on the model at the time of mining.
struct BagSamplerState {
    u64 seed = 0;
    u64 order_rng_counter = 0;  // RNG counter before the current order was drawn
    i64 orders_built = 0;       // 0: no order yet
    i64 order_position = 0;     // next image of the current order
    i64 bags_mined = 0;
    i64 refills = 0;
    i64 batches_served = 0;
    i64 tail_images = 0;        // size of a full tail order (checked on restore)
    i64 sequence_position = 0;  // next sample of sequence to serve
    std::vector<i64> sequence;  // mined tail samples, triples adjacent

    // A flat int64 form for checkpoints (e.g. one .npy or safetensors tensor) and back.
    std::vector<i64> pack() const;
    static BagSamplerState unpack(const std::vector<i64>& v);  // throws FormatError
    bool operator==(const BagSamplerState& o) const;
};

class BagSampler {
public:
    // identities: the tail identities as sample ranges (data::ImageDataset::identities() of the
    // tail set). Throws ArgError on a bad configuration or when the tail cannot fill one step
    // (fewer usable identities than batchsize_id / k).
    BagSampler(std::vector<IdentityRange> identities, const BagSamplerConfig& cfg, EmbedFn embed);

    // The next batchsize_id tail samples: batchsize_id / k identities, each with its k images
    // adjacent. Mines new bags first when fewer than batchsize_id mined samples remain.
    std::vector<i64> next_batch();

    BagSamplerState state() const;
    void restore(const BagSamplerState& s);  // throws ArgError when it does not fit this tail

    // Mine one bag from the tail order and return the selected identities' samples, in selection
    // order (k per identity). Advances the order; exposed for tests and diagnostics.
    std::vector<i64> mine_bag();

    // Pure selection step: centers (n, D) row-major; returns the indices (0..n-1) of the count
    // identities picked by walking all (i, j) pairs by ascending squared center distance
    // (+1 on the diagonal; ties by (i, j)), adding i then j when new.
    static std::vector<i64> select_identities(const std::vector<double>& centers, i64 n, i64 dim,
                                              i64 count);

    i64 usable_identities() const { return (i64)ids_.size(); }
    // Tail identities with fewer than k images: skipped (policy skip) or padded (policy repeat).
    i64 small_identities() const { return small_; }
    // Identities without any image; always skipped.
    i64 empty_identities() const { return empty_; }
    i64 effective_bag_size() const { return bag_; }
    const BagSamplerConfig& config() const { return cfg_; }
    i64 bags_mined() const { return bags_mined_; }
    i64 refills() const { return refills_; }
    i64 orders_built() const { return orders_built_; }

private:
    void build_order();
    void refill();

    BagSamplerConfig cfg_;
    EmbedFn embed_;
    std::vector<IdentityRange> ids_;  // usable identities, in the given order
    i64 small_ = 0, empty_ = 0;
    i64 bag_ = 0;  // images per bag actually used: min(bag_size, k * usable identities)

    engine::Rng rng_;
    u64 order_rng_counter_ = 0;
    i64 orders_built_ = 0;
    std::vector<i64> order_;  // the current tail order: k samples per identity
    i64 order_pos_ = 0;
    i64 bags_mined_ = 0, refills_ = 0, batches_served_ = 0;
    std::vector<i64> seq_;
    i64 seq_pos_ = 0;
};

}  // namespace data
