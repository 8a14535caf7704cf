// Bag sampler (SPEC.md section 6): closest-center selection on planted embeddings, triples,
// refills, determinism, small identities, and exact resume from a saved state.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <vector>

#include "data/bag_sampler.h"
#include "engine/error.h"
#include "engine/rng.h"

namespace {

constexpr i64 kImagesPer = 4;  // planted identities have 4 images, the sampler keeps 3
constexpr i64 kDim = 32;

std::vector<data::IdentityRange> uniform_identities(i64 count, i64 per) {
    std::vector<data::IdentityRange> ids;
    for (i64 c = 0; c < count; ++c) ids.push_back({c * per, (c + 1) * per, (int)c});
    return ids;
}

// Planted embeddings for 20 identities of 4 images (sample s belongs to identity s / 4).
// Identities of a planted pair share a direction e_m and differ by +-delta along e_30, so their
// normalised centers are at squared distance 4 delta^2 / (1 + delta^2); every other identity has
// its own axis (centers at squared distance 2 from everybody, more than the diagonal's 1).
// Each image is scaled by a different factor in 1..40, which the L2 normalisation must undo.
struct Planted {
    std::map<i64, std::pair<i64, double>> pair_of;  // identity -> (shared axis, +-delta)
    Planted() {
        const i64 pairs[3][2] = {{2, 7}, {4, 11}, {13, 5}};
        const double delta[3] = {0.05, 0.1, 0.15};  // pair 0 is the closest
        for (int p = 0; p < 3; ++p) {
            pair_of[pairs[p][0]] = {p, +delta[p]};
            pair_of[pairs[p][1]] = {p, -delta[p]};
        }
    }
    void embed(i64 s, float* out) const {
        const i64 c = s / kImagesPer;
        std::fill(out, out + kDim, 0.f);
        const float scale = 1.0f + 39.0f * (float)((s * 7919) % 101) / 100.0f;
        auto it = pair_of.find(c);
        if (it != pair_of.end()) {
            out[it->second.first] = scale;
            out[30] = scale * (float)it->second.second;
        } else {
            out[3 + c] = scale;
        }
        out[31] = 1e-3f * scale * (float)(s % kImagesPer);  // images of an identity differ a bit
    }
};

// An embed callback over a fixed per-sample function that logs every call.
struct LoggingEmbed {
    std::vector<std::vector<i64>> calls;
    std::function<void(i64, float*)> fn;
    i64 dim;
    data::EmbedFn callback() {
        return [this](const std::vector<i64>& samples, float* out) {
            calls.push_back(samples);
            for (size_t r = 0; r < samples.size(); ++r) fn(samples[r], out + r * dim);
        };
    }
};

// Random (but fixed) embeddings: a pure function of the sample index.
void random_embedding(i64 s, float* out, i64 dim) {
    engine::Rng rng(1234 + (u64)s);
    for (i64 c = 0; c < dim; ++c) out[c] = (float)rng.normal();
}

// Identity of each triple of a batch; checks the triple shares one identity and distinct images.
std::vector<i64> triple_identities(const std::vector<i64>& batch, i64 per) {
    REQUIRE(batch.size() % 3 == 0);
    std::vector<i64> ids;
    for (size_t t = 0; t < batch.size(); t += 3) {
        const i64 c = batch[t] / per;
        CHECK(batch[t + 1] / per == c);
        CHECK(batch[t + 2] / per == c);
        CHECK(batch[t] != batch[t + 1]);
        CHECK(batch[t] != batch[t + 2]);
        CHECK(batch[t + 1] != batch[t + 2]);
        ids.push_back(c);
    }
    return ids;
}

data::BagSamplerConfig planted_config(i64 batchsize_id) {
    data::BagSamplerConfig cfg;
    cfg.bag_size = 60;  // the whole tail order: all 20 identities in one bag
    cfg.batchsize_id = batchsize_id;
    cfg.refill_multiplier = 1;
    cfg.embedding_dim = kDim;
    cfg.seed = 7;
    return cfg;
}

}  // namespace

TEST_CASE("bag sampler: planted closest center pairs are selected, closest first") {
    Planted planted;
    LoggingEmbed emb{{}, [&](i64 s, float* o) { planted.embed(s, o); }, kDim};
    data::BagSampler sampler(uniform_identities(20, kImagesPer), planted_config(18),
                             emb.callback());
    const auto batch = sampler.next_batch();
    REQUIRE(batch.size() == 18);
    const auto ids = triple_identities(batch, kImagesPer);
    REQUIRE(ids.size() == 6);
    CHECK(std::set<i64>{ids[0], ids[1]} == std::set<i64>{2, 7});
    CHECK(std::set<i64>{ids[2], ids[3]} == std::set<i64>{4, 11});
    CHECK(std::set<i64>{ids[4], ids[5]} == std::set<i64>{5, 13});
    // Within a pair, i (the identity earlier in the bag) is added before j.
    REQUIRE(emb.calls.size() == 1);
    const auto& bag = emb.calls[0];
    REQUIRE(bag.size() == 60);
    auto bag_pos = [&](i64 c) {
        for (size_t r = 0; r < bag.size(); ++r)
            if (bag[r] / kImagesPer == c) return (i64)r;
        return (i64)-1;
    };
    for (int p = 0; p < 3; ++p) CHECK(bag_pos(ids[2 * p]) < bag_pos(ids[2 * p + 1]));
    // Each selected identity brings exactly the 3 images it has in the bag (its tail-order
    // triple), adjacent.
    for (size_t t = 0; t < ids.size(); ++t) {
        const i64 r = bag_pos(ids[t]);
        for (int u = 0; u < 3; ++u) CHECK(batch[3 * t + u] == bag[(size_t)r + u]);
    }
}

TEST_CASE("bag sampler: an odd identity count drops the pair's second identity") {
    Planted planted;
    LoggingEmbed emb{{}, [&](i64 s, float* o) { planted.embed(s, o); }, kDim};
    data::BagSampler sampler(uniform_identities(20, kImagesPer), planted_config(15),
                             emb.callback());
    const auto ids = triple_identities(sampler.next_batch(), kImagesPer);
    REQUIRE(ids.size() == 5);
    CHECK(std::set<i64>{ids[0], ids[1]} == std::set<i64>{2, 7});
    CHECK(std::set<i64>{ids[2], ids[3]} == std::set<i64>{4, 11});
    CHECK((ids[4] == 5 || ids[4] == 13));
}

TEST_CASE("bag sampler: without close pairs the +1 diagonal walks identities in bag order") {
    // All identities on their own axis: off-diagonal distances 2, diagonal 0 + 1 = 1, so the
    // walk takes (0,0), (1,1), ... : the first K identities of the bag.
    LoggingEmbed emb{{}, [](i64 s, float* o) {
                         std::fill(o, o + kDim, 0.f);
                         o[s / kImagesPer] = 2.0f + (float)(s % kImagesPer);
                     },
                     kDim};
    data::BagSampler sampler(uniform_identities(20, kImagesPer), planted_config(12),
                             emb.callback());
    const auto batch = sampler.next_batch();
    REQUIRE(emb.calls.size() == 1);
    for (size_t r = 0; r < batch.size(); ++r) CHECK(batch[r] == emb.calls[0][r]);
}

TEST_CASE("bag sampler: lazy Gram selection equals a brute-force walk over all ordered pairs") {
    // (n, count, scale): a short walk, and selecting everybody from tightly packed centers,
    // which needs several of the lazily sorted chunks.
    const double cases[2][3] = {{200, 60, 0.3}, {300, 300, 0.1}};
    for (const auto& cs : cases) {
        const i64 n = (i64)cs[0], dim = 16, count = (i64)cs[1];
        CAPTURE(n);
        auto c = std::vector<double>((size_t)(n * dim));
        engine::Rng rng(99);
        for (auto& x : c) x = rng.normal() * cs[2];
        // Brute force straight from SPEC.md: all n*n ordered pairs, |ci - cj|^2 (+1 diagonal),
        // sorted by (d, i, j), adding i then j.
        struct P { double d; i64 i, j; };
        std::vector<P> all;
        for (i64 i = 0; i < n; ++i)
            for (i64 j = 0; j < n; ++j) {
                double d = 0;
                for (i64 k = 0; k < dim; ++k) {
                    const double t = c[(size_t)(i * dim + k)] - c[(size_t)(j * dim + k)];
                    d += t * t;
                }
                all.push_back({i == j ? d + 1.0 : d, i, j});
            }
        std::sort(all.begin(), all.end(), [](const P& a, const P& b) {
            return a.d != b.d ? a.d < b.d : (a.i != b.i ? a.i < b.i : a.j < b.j);
        });
        std::vector<i64> want;
        std::set<i64> in;
        for (const P& p : all) {
            for (i64 x : {p.i, p.j})
                if ((i64)want.size() < count && in.insert(x).second) want.push_back(x);
            if ((i64)want.size() == count) break;
        }
        const auto got = data::BagSampler::select_identities(c, n, dim, count);
        CHECK(got == want);
    }
}

TEST_CASE("bag sampler: refills mine multiplier bags and rebuild the order when it runs short") {
    // 25 identities x 4 images -> a tail order of 75 images; bags of 30 (10 identities); 6 tail
    // images per step; a refill mines until 4 x 6 = 24 samples wait, i.e. 4 bags. The order
    // holds 2 bags (60 of 75); the third bag needs a new order.
    data::BagSamplerConfig cfg;
    cfg.bag_size = 30;
    cfg.batchsize_id = 6;
    cfg.refill_multiplier = 4;
    cfg.embedding_dim = 8;
    cfg.mining_batch = 7;
    cfg.seed = 3;
    LoggingEmbed emb{{}, [](i64 s, float* o) { random_embedding(s, o, 8); }, 8};
    data::BagSampler sampler(uniform_identities(25, kImagesPer), cfg, emb.callback());
    CHECK(sampler.effective_bag_size() == 30);

    std::vector<std::vector<i64>> batches;
    batches.push_back(sampler.next_batch());
    CHECK(sampler.refills() == 1);
    CHECK(sampler.bags_mined() == 4);
    CHECK(sampler.orders_built() == 2);
    // Embedding in chunks of mining_batch = 7: 7, 7, 7, 7, 2 per bag.
    REQUIRE(emb.calls.size() == 20);
    for (size_t call = 0; call < emb.calls.size(); ++call)
        CHECK(emb.calls[call].size() == (call % 5 == 4 ? 2u : 7u));
    std::vector<std::vector<i64>> bags(4);
    for (size_t call = 0; call < 20; ++call)
        bags[call / 5].insert(bags[call / 5].end(), emb.calls[call].begin(), emb.calls[call].end());
    // The two bags of one order hold different identities (the order lists each identity once).
    std::set<i64> first_order;
    for (int b = 0; b < 2; ++b)
        for (i64 s : bags[(size_t)b]) first_order.insert(s / kImagesPer);
    CHECK(first_order.size() == 20);

    for (int step = 1; step < 4; ++step) batches.push_back(sampler.next_batch());
    CHECK(emb.calls.size() == 20);  // served from the sequence, no new mining
    CHECK(sampler.refills() == 1);
    // Batch b comes from bag b, each a triple-structured batch.
    for (int b = 0; b < 4; ++b) {
        const std::set<i64> in_bag(bags[(size_t)b].begin(), bags[(size_t)b].end());
        for (i64 s : batches[(size_t)b]) CHECK(in_bag.count(s) == 1);
        const auto ids = triple_identities(batches[(size_t)b], kImagesPer);
        CHECK(std::set<i64>(ids.begin(), ids.end()).size() == ids.size());
    }
    // The fifth step refills again: 4 more bags; the second order has 15 images left, so bags
    // 5, 6 come from a third order and bags 7, 8 from a fourth.
    sampler.next_batch();
    CHECK(sampler.refills() == 2);
    CHECK(sampler.bags_mined() == 8);
    CHECK(emb.calls.size() == 40);
    CHECK(sampler.orders_built() == 4);
}

TEST_CASE("bag sampler: a tail smaller than a bag mines the whole order each time") {
    data::BagSamplerConfig cfg;
    cfg.bag_size = 3600;
    cfg.batchsize_id = 9;
    cfg.refill_multiplier = 2;
    cfg.embedding_dim = 8;
    LoggingEmbed emb{{}, [](i64 s, float* o) { random_embedding(s, o, 8); }, 8};
    data::BagSampler sampler(uniform_identities(5, kImagesPer), cfg, emb.callback());
    CHECK(sampler.effective_bag_size() == 15);
    sampler.next_batch();
    CHECK(sampler.bags_mined() == 2);
    CHECK(sampler.orders_built() == 2);
    REQUIRE(emb.calls.size() == 2);
    CHECK(emb.calls[0].size() == 15);
}

TEST_CASE("bag sampler: same seed, same stream; another seed, another stream") {
    auto run = [](u64 seed) {
        data::BagSamplerConfig cfg;
        cfg.bag_size = 30;
        cfg.batchsize_id = 6;
        cfg.refill_multiplier = 3;
        cfg.embedding_dim = 8;
        cfg.seed = seed;
        LoggingEmbed emb{{}, [](i64 s, float* o) { random_embedding(s, o, 8); }, 8};
        data::BagSampler sampler(uniform_identities(40, kImagesPer), cfg, emb.callback());
        std::vector<i64> all;
        for (int step = 0; step < 10; ++step) {
            const auto b = sampler.next_batch();
            all.insert(all.end(), b.begin(), b.end());
        }
        return all;
    };
    const auto a = run(11), b = run(11), c = run(12);
    CHECK(a == b);
    CHECK(a != c);
}

TEST_CASE("bag sampler: a saved state resumes the stream exactly") {
    data::BagSamplerConfig cfg;
    cfg.bag_size = 30;
    cfg.batchsize_id = 6;
    cfg.refill_multiplier = 3;
    cfg.embedding_dim = 8;
    cfg.seed = 5;
    auto fn = [](i64 s, float* o) { random_embedding(s, o, 8); };
    const auto ids = uniform_identities(23, kImagesPer);  // 69-image order: rebuilds mid-stream

    for (int stop : {0, 1, 4, 7}) {
        CAPTURE(stop);
        LoggingEmbed ea{{}, fn, 8};
        data::BagSampler a(ids, cfg, ea.callback());
        std::vector<std::vector<i64>> straight;
        for (int step = 0; step < 14; ++step) straight.push_back(a.next_batch());

        LoggingEmbed eb{{}, fn, 8};
        data::BagSampler b(ids, cfg, eb.callback());
        for (int step = 0; step < stop; ++step) CHECK(b.next_batch() == straight[(size_t)step]);
        const data::BagSamplerState saved = b.state();
        const auto restored = data::BagSamplerState::unpack(saved.pack());
        CHECK(restored == saved);

        // A fresh sampler with another seed in its config: the state's seed wins.
        LoggingEmbed ec{{}, fn, 8};
        data::BagSamplerConfig other = cfg;
        other.seed = 999;
        data::BagSampler c(ids, other, ec.callback());
        c.restore(restored);
        CHECK(c.state() == saved);
        for (int step = stop; step < 14; ++step) CHECK(c.next_batch() == straight[(size_t)step]);
        CHECK(c.bags_mined() == a.bags_mined());
        CHECK(c.orders_built() == a.orders_built());
        CHECK(c.state() == a.state());
    }
}

TEST_CASE("bag sampler: state packing rejects damaged data and foreign tails") {
    data::BagSamplerConfig cfg;
    cfg.bag_size = 30;
    cfg.batchsize_id = 6;
    cfg.embedding_dim = 8;
    cfg.refill_multiplier = 2;
    auto fn = [](const std::vector<i64>& s, float* o) {
        for (size_t r = 0; r < s.size(); ++r) random_embedding(s[r], o + 8 * r, 8);
    };
    data::BagSampler a(uniform_identities(12, kImagesPer), cfg, fn);
    a.next_batch();
    auto packed = a.state().pack();
    auto cut = packed;
    cut.pop_back();
    CHECK_THROWS_AS(data::BagSamplerState::unpack(cut), engine::FormatError);
    auto bad = packed;
    bad[0] = 0;
    CHECK_THROWS_AS(data::BagSamplerState::unpack(bad), engine::FormatError);
    data::BagSampler other(uniform_identities(13, kImagesPer), cfg, fn);
    CHECK_THROWS_AS(other.restore(a.state()), engine::ArgError);
}

TEST_CASE("bag sampler: identities with fewer than 3 images are skipped or padded") {
    // Identities 0..9 have 4 images, 10 has 1, 11 has 2, 12 has none.
    std::vector<data::IdentityRange> ids = uniform_identities(10, kImagesPer);
    ids.push_back({40, 41, 10});
    ids.push_back({41, 43, 11});
    ids.push_back({43, 43, 12});
    auto identity_of = [](i64 s) { return s < 40 ? s / kImagesPer : (s == 40 ? 10 : 11); };
    data::BagSamplerConfig cfg;
    cfg.bag_size = 36;
    cfg.batchsize_id = 6;
    cfg.refill_multiplier = 20;
    cfg.embedding_dim = 8;
    cfg.seed = 1;
    // The small identities 10 and 11 (samples 40..42) are planted as the closest pair, so under
    // the repeat policy every bag selects them; the others get random embeddings.
    auto fn = [](const std::vector<i64>& s, float* o) {
        for (size_t r = 0; r < s.size(); ++r) {
            random_embedding(s[r], o + 8 * r, 8);
            if (s[r] >= 40) {
                std::fill(o + 8 * r, o + 8 * r + 8, 0.f);
                o[8 * r] = 1.0f;
                o[8 * r + 1] = 0.01f * (float)(s[r] - 40);
            }
        }
    };

    SUBCASE("skip") {
        data::BagSampler sampler(ids, cfg, fn);
        CHECK(sampler.small_identities() == 2);
        CHECK(sampler.empty_identities() == 1);
        CHECK(sampler.usable_identities() == 10);
        for (int step = 0; step < 40; ++step)
            for (i64 s : sampler.next_batch()) CHECK(s < 40);
    }
    SUBCASE("repeat") {
        cfg.small_identities = data::SmallIdentityPolicy::repeat;
        data::BagSampler sampler(ids, cfg, fn);
        CHECK(sampler.small_identities() == 2);
        CHECK(sampler.empty_identities() == 1);
        CHECK(sampler.usable_identities() == 12);
        bool saw10 = false, saw11 = false;
        for (int step = 0; step < 40; ++step) {
            const auto b = sampler.next_batch();
            for (size_t t = 0; t < b.size(); t += 3) {
                const i64 c = identity_of(b[t]);
                CHECK(identity_of(b[t + 1]) == c);
                CHECK(identity_of(b[t + 2]) == c);
                if (c == 10) {
                    saw10 = true;  // its one image three times
                    CHECK((b[t] == 40 && b[t + 1] == 40 && b[t + 2] == 40));
                }
                if (c == 11) {
                    saw11 = true;  // both images, one of them twice
                    const std::set<i64> u{b[t], b[t + 1], b[t + 2]};
                    CHECK(u == std::set<i64>{41, 42});
                }
            }
        }
        CHECK(saw10);
        CHECK(saw11);
    }
}

TEST_CASE("bag sampler: bad configurations and embeddings are rejected") {
    auto fn = [](const std::vector<i64>& s, float* o) {
        for (size_t r = 0; r < s.size(); ++r) random_embedding(s[r], o + 8 * r, 8);
    };
    data::BagSamplerConfig cfg;
    cfg.bag_size = 30;
    cfg.batchsize_id = 7;  // not a multiple of 3
    cfg.embedding_dim = 8;
    CHECK_THROWS_AS(data::BagSampler(uniform_identities(20, 4), cfg, fn), engine::ArgError);
    cfg.batchsize_id = 30;  // 10 identities per step from 5 identities
    CHECK_THROWS_AS(data::BagSampler(uniform_identities(5, 4), cfg, fn), engine::ArgError);
    cfg.batchsize_id = 6;
    data::BagSampler nan_sampler(uniform_identities(20, 4), cfg, [](const std::vector<i64>& s,
                                                                    float* o) {
        for (size_t r = 0; r < s.size() * 8; ++r) o[r] = r == 17 ? NAN : 1.0f;
    });
    CHECK_THROWS_AS(nan_sampler.next_batch(), engine::DataError);
}
