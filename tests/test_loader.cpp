// Loader: every image of an epoch exactly once across ranks (R = 1, 2, 3), the remainder
// policies, determinism for a seed, position restore, error surfacing and the skip policy, and
// the index-list entry point. Uses an in-memory ImageDataset (no RecordIO).
#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "data/image.h"
#include "data/loader.h"
#include "engine/error.h"

namespace {

// Sample i is an 8x8 PNG whose first pixel encodes i (R = i % 256, G = i / 256) and whose other
// pixels vary with i, so a test can tell from the decoded floats which sample it got.
// Identities: consecutive ranges of 1..5 samples.
class MemoryDataset : public data::ImageDataset {
public:
    explicit MemoryDataset(i64 n, int size = 8) {
        int label = 0;
        for (i64 i = 0; i < n;) {
            const i64 len = std::min<i64>(1 + (label * 7) % 5, n - i);
            ids_.push_back({i, i + len, label});
            for (i64 j = 0; j < len; ++j) labels_.push_back(label);
            i += len;
            ++label;
        }
        classes_ = label;
        for (i64 i = 0; i < n; ++i) {
            data::Image img(size, size);
            for (int y = 0; y < size; ++y)
                for (int x = 0; x < size; ++x) {
                    u8* p = img.at(y, x);
                    p[0] = (u8)((i + 3 * x) % 256);
                    p[1] = (u8)((i / 256 + 5 * y) % 256);
                    p[2] = (u8)((7 * i + x * y) % 256);
                }
            enc_.push_back(data::encode_png(img));
        }
    }
    i64 size() const override { return (i64)enc_.size(); }
    int label(i64 i) const override { return labels_.at((size_t)i); }
    std::vector<u8> encoded(i64 i) const override {
        if (io_fail.count(i)) throw engine::IoError("read failed (injected)");
        return enc_.at((size_t)i);
    }
    std::string describe(i64 i) const override { return "mem.rec record " + std::to_string(i); }
    i64 num_classes() const override { return classes_; }
    const std::vector<data::IdentityRange>& identities() const override { return ids_; }

    std::vector<std::vector<u8>> enc_;
    std::vector<int> labels_;
    std::set<i64> io_fail;

private:
    std::vector<data::IdentityRange> ids_;
    i64 classes_ = 0;
};

data::LoaderConfig small_config(i64 batch, int rank = 0, int world = 1) {
    data::LoaderConfig c;
    c.batch_size = batch;
    c.height = c.width = 8;
    c.rank = rank;
    c.world = world;
    c.shuffle_seed = 11;
    c.workers = 2;
    c.prefetch = 3;
    return c;
}

// The sample a decoded (unaugmented) image shows: first pixel R + 256 G.
i64 sample_shown(const data::Batch& b, i64 j) {
    const float* img = b.images + j * 3 * b.height * b.width;
    return (i64)img[0] + 256 * (i64)img[b.height * b.width];
}

std::vector<float> copy_images(const data::Batch& b) {
    return std::vector<float>(b.images, b.images + b.n * 3 * b.height * b.width);
}

}  // namespace

TEST_CASE("loader: every image of an epoch exactly once across ranks (R = 1, 2, 3)") {
    MemoryDataset ds(120);  // 120 is a multiple of R x 4 for R = 1, 2, 3: nothing dropped
    for (int world = 1; world <= 3; ++world) {
        CAPTURE(world);
        std::vector<std::vector<i64>> epoch_seen(2);
        for (int rank = 0; rank < world; ++rank) {
            data::Loader loader(ds, small_config(4, rank, world));
            CHECK(loader.steps_per_epoch() == 120 / (4 * world));
            CHECK(loader.dropped_per_epoch() == 0);
            for (i64 s = 0; s < 2 * loader.steps_per_epoch(); ++s) {
                const data::Batch& b = loader.get();
                REQUIRE(b.n == 4);
                CHECK(b.position.epoch == s / loader.steps_per_epoch());
                CHECK(b.position.step == s % loader.steps_per_epoch());
                for (i64 j = 0; j < b.n; ++j) {
                    // The decoded pixels, the index and the label all belong to one sample.
                    CHECK(sample_shown(b, j) == b.indices[j]);
                    CHECK(b.labels[j] == ds.label(b.indices[j]));
                    epoch_seen[(size_t)b.position.epoch].push_back(b.indices[j]);
                }
            }
            CHECK(loader.errors() == 0);
        }
        for (auto& seen : epoch_seen) {
            std::vector<i64> sorted = seen;
            std::sort(sorted.begin(), sorted.end());
            REQUIRE(sorted.size() == 120);
            for (i64 i = 0; i < 120; ++i) CHECK(sorted[i] == i);
        }
        // Shuffled: epoch 0 and epoch 1 come in different orders.
        CHECK(epoch_seen[0] != epoch_seen[1]);
    }
}

TEST_CASE("loader: the remainder is dropped and counted, or wrapped") {
    MemoryDataset ds(50);  // 3 ranks x 4 = 12 per step: 4 full steps hold 48, remainder 2
    SUBCASE("drop") {
        std::vector<i64> seen;
        i64 dropped = -1;
        for (int rank = 0; rank < 3; ++rank) {
            data::Loader loader(ds, small_config(4, rank, 3));
            CHECK(loader.steps_per_epoch() == 4);
            dropped = loader.dropped_per_epoch();
            for (int s = 0; s < 4; ++s) {
                const data::Batch& b = loader.get();
                seen.insert(seen.end(), b.indices, b.indices + b.n);
            }
            CHECK(loader.position() == data::LoaderPosition{1, 0});
        }
        CHECK(dropped == 2);
        std::set<i64> distinct(seen.begin(), seen.end());
        CHECK(seen.size() == 48);
        CHECK(distinct.size() == 48);  // disjoint across ranks
        CHECK((i64)distinct.size() + dropped == 50);
    }
    SUBCASE("wrap") {
        std::map<i64, int> count;
        i64 wrapped = -1;
        for (int rank = 0; rank < 3; ++rank) {
            auto cfg = small_config(4, rank, 3);
            cfg.remainder = data::Remainder::wrap;
            data::Loader loader(ds, cfg);
            CHECK(loader.steps_per_epoch() == 5);
            wrapped = loader.wrapped_per_epoch();
            CHECK(loader.dropped_per_epoch() == 0);
            for (int s = 0; s < 5; ++s) {
                const data::Batch& b = loader.get();
                for (i64 j = 0; j < b.n; ++j) count[b.indices[j]]++;
            }
        }
        CHECK(wrapped == 10);
        CHECK(count.size() == 50);  // every sample at least once
        int twice = 0;
        for (auto& kv : count) {
            CHECK(kv.second <= 2);
            twice += kv.second == 2;
        }
        CHECK(twice == 10);
    }
    SUBCASE("no full batch at all is an error, not an empty epoch") {
        CHECK_THROWS_AS(data::Loader(ds, small_config(20, 0, 3)), engine::ArgError);
    }
}

TEST_CASE("loader: deterministic for a seed, whatever the worker count") {
    MemoryDataset ds(60);
    auto cfg = small_config(5);
    cfg.augment = data::AugmentConfig::step23(3);
    auto cfg3 = cfg;
    cfg3.workers = 3;
    cfg3.prefetch = 1;
    auto other = cfg;
    other.shuffle_seed = 12;
    data::Loader a(ds, cfg), b(ds, cfg3), c(ds, other);
    bool order_differs = false;
    for (int s = 0; s < 30; ++s) {  // 2.5 epochs of 12 steps
        const data::Batch& x = a.get();
        const data::Batch& y = b.get();
        const data::Batch& z = c.get();
        CHECK(std::vector<i64>(x.indices, x.indices + x.n) == std::vector<i64>(y.indices, y.indices + y.n));
        CHECK(copy_images(x) == copy_images(y));
        order_differs |= std::vector<i64>(x.indices, x.indices + x.n) !=
                         std::vector<i64>(z.indices, z.indices + z.n);
    }
    CHECK(order_differs);
    // epoch_order is the order the stream follows, and differs between epochs.
    CHECK(a.epoch_order(0) != a.epoch_order(1));
    data::Loader fresh(ds, cfg);
    const auto want = fresh.step_indices(0, 0);
    const data::Batch& first = fresh.get();
    CHECK(std::vector<i64>(first.indices, first.indices + first.n) == want);
}

TEST_CASE("loader: a restored position gives the same following batches") {
    MemoryDataset ds(40);
    auto cfg = small_config(6);  // 6 steps per epoch, 4 samples dropped per epoch
    cfg.augment = data::AugmentConfig::step23(5);
    data::Loader a(ds, cfg);
    for (int s = 0; s < 4; ++s) a.get();
    const data::LoaderPosition p = a.position();
    CHECK(p == data::LoaderPosition{0, 4});
    std::vector<std::vector<float>> want;
    std::vector<std::vector<i64>> want_idx;
    for (int s = 0; s < 5; ++s) {  // crosses into epoch 1
        const data::Batch& b = a.get();
        want.push_back(copy_images(b));
        want_idx.emplace_back(b.indices, b.indices + b.n);
    }
    CHECK(a.position() == data::LoaderPosition{1, 3});
    // A new loader started at p (a resumed run) ...
    data::Loader b(ds, cfg, p);
    CHECK(b.position() == p);
    for (int s = 0; s < 5; ++s) {
        const data::Batch& x = b.get();
        CHECK(copy_images(x) == want[s]);
        CHECK(std::vector<i64>(x.indices, x.indices + x.n) == want_idx[s]);
    }
    // ... and the same loader moved back to p.
    a.set_position(p);
    for (int s = 0; s < 5; ++s) CHECK(copy_images(a.get()) == want[s]);
    CHECK_THROWS_AS(a.set_position({0, 6}), engine::ArgError);
}

TEST_CASE("loader: an error in a sample surfaces in get() and does not hang") {
    MemoryDataset ds(24);
    ds.enc_[13] = {1, 2, 3, 4, 5};  // undecodable
    ds.io_fail.insert(5);           // the dataset itself throws
    auto cfg = small_config(4);
    cfg.shuffle = false;  // sample k is in step k / 4
    data::Loader loader(ds, cfg);
    int thrown = 0, good = 0;
    for (int s = 0; s < 6; ++s) {
        try {
            const data::Batch& b = loader.get();
            CHECK(b.position.step == s);
            ++good;
        } catch (const engine::FormatError& e) {
            CHECK(s == 3);
            CHECK(std::string(e.what()).find("mem.rec record 13") != std::string::npos);
            ++thrown;
        } catch (const engine::IoError& e) {
            CHECK(s == 1);
            const std::string m = e.what();
            CHECK(m.find("mem.rec record 5") != std::string::npos);  // describe() added
            CHECK(m.find("injected") != std::string::npos);
            ++thrown;
        }
    }
    CHECK(thrown == 2);
    CHECK(good == 4);
    CHECK(loader.position() == data::LoaderPosition{1, 0});  // the loader moved on
    CHECK(loader.errors() == 0);  // raise policy: thrown, not counted as replaced

    SUBCASE("a wrong size is an error under reject, resized under resize") {
        MemoryDataset odd(8);
        odd.enc_[2] = data::encode_png(data::Image(10, 10));
        auto c2 = small_config(8);
        data::Loader strict(odd, c2);
        CHECK_THROWS_AS(strict.get(), engine::DataError);
        c2.size_policy = data::SizePolicy::resize;
        data::Loader lenient(odd, c2);
        CHECK(lenient.get().n == 8);
    }
}

TEST_CASE("loader: skip policy replaces bad samples and counts them") {
    MemoryDataset ds(36);
    ds.enc_[7] = {0xFF, 0xD8, 0xFF, 0x00};  // a JPEG that stops after its marker
    ds.io_fail.insert(20);
    auto cfg = small_config(6);
    cfg.on_error = data::ErrorPolicy::skip;
    data::Loader loader(ds, cfg);
    std::set<i64> seen;
    i64 replaced = 0;
    for (i64 s = 0; s < loader.steps_per_epoch(); ++s) {
        const data::Batch& b = loader.get();
        CHECK(b.n == 6);
        replaced += b.replaced;
        for (i64 j = 0; j < b.n; ++j) {
            CHECK(b.indices[j] != 7);
            CHECK(b.indices[j] != 20);
            CHECK(sample_shown(b, j) == b.indices[j]);
            CHECK(b.labels[j] == ds.label(b.indices[j]));
            seen.insert(b.indices[j]);
        }
    }
    CHECK(loader.errors() == 2);
    CHECK(replaced == 2);
    const auto msgs = loader.error_messages();
    REQUIRE(msgs.size() == 2);
    const std::string all = msgs[0] + "|" + msgs[1];
    CHECK(all.find("mem.rec record 7") != std::string::npos);
    CHECK(all.find("mem.rec record 20") != std::string::npos);
    // Replacements come from the bad sample's identity when it has others: 34 good samples
    // loaded plus 2 replacements that repeat some of them.
    CHECK(seen.size() >= 32);
}

TEST_CASE("loader: load() returns the listed samples in order") {
    MemoryDataset ds(30);
    auto cfg = small_config(4);
    cfg.workers = 3;
    cfg.augment = data::AugmentConfig::step23(1);
    data::Loader loader(ds, cfg);
    const std::vector<i64> want = {29, 3, 3, 17, 0, 8, 8, 12, 25};
    const data::Batch& b = loader.load(want, 0, false);
    REQUIRE(b.n == (i64)want.size());
    for (i64 j = 0; j < b.n; ++j) {
        CHECK(b.indices[j] == want[j]);
        CHECK(sample_shown(b, j) == want[j]);
        CHECK(b.labels[j] == ds.label(want[j]));
    }
    // With augmentation the draws are those of (seed, index, epoch): two loads agree.
    const std::vector<float> aug1 = copy_images(loader.load(want, 4, true));
    data::BatchBuffer own;
    loader.load_into(want, 4, true, &own);
    CHECK(copy_images(own.batch()) == aug1);
    CHECK_THROWS_AS(loader.load({0, 30}, 0, false), engine::ArgError);

    SUBCASE("raise names the sample; skip stays within the identity") {
        ds.io_fail.insert(3);
        try {
            loader.load(want, 0, false);
            FAIL("the bad sample was not reported");
        } catch (const engine::IoError& e) {
            CHECK(std::string(e.what()).find("mem.rec record 3") != std::string::npos);
        }
        auto skip = cfg;
        skip.on_error = data::ErrorPolicy::skip;
        data::Loader sl(ds, skip);
        const data::Batch& r = sl.load({3, 4}, 0, false);
        // Sample 3's identity range: replaced by another sample of the same label.
        CHECK(r.indices[0] != 3);
        CHECK(r.labels[0] == ds.label(3));
        CHECK(r.indices[1] == 4);
        CHECK(sl.errors() == 1);
        // An identity of one sample has no replacement within itself: raised anyway.
        const data::IdentityRange* single = nullptr;
        for (const auto& id : ds.identities())
            if (id.end - id.begin == 1) single = &id;
        REQUIRE(single != nullptr);
        ds.io_fail.insert(single->begin);
        CHECK_THROWS_AS(sl.load({single->begin}, 0, false), engine::DataError);
    }
}
