// Synthetic face set: long-tail counts, the ground-truth noise against the flags and against
// the written records, label ranges, the verification .bin (read back here and by Python's
// pickle), determinism, and that identity (not background) is what separates images.
#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "data/image.h"
#include "data/recordio.h"
#include "data/synth.h"
#include "data/verification_bin.h"
#include "engine/error.h"

namespace fs = std::filesystem;

TEST_CASE("synth: long-tail counts are exact, monotone and long-tailed") {
    double a = 0;
    const std::vector<i64> c = data::long_tail_counts(200, 4000, 500, 3, &a);
    REQUIRE(c.size() == 200);
    CHECK(std::accumulate(c.begin(), c.end(), (i64)0) == 4000);
    CHECK(c.front() == 500);
    CHECK(c.back() >= 3);
    CHECK(std::is_sorted(c.rbegin(), c.rend()));
    CHECK(a > 0.5);
    CHECK(a < 1.5);
    // A few identities with many images, many with few.
    const i64 top20 = std::accumulate(c.begin(), c.begin() + 20, (i64)0);
    CHECK(top20 > 0.45 * 4000);
    const auto few = std::count_if(c.begin(), c.end(), [](i64 v) { return v < 9; });
    CHECK(few > 80);  // more than 40% of the identities
    // The floor binds when the total is tight.
    const std::vector<i64> tight = data::long_tail_counts(50, 500 + 49 * 2 + 10, 500, 2);
    CHECK(std::accumulate(tight.begin(), tight.end(), (i64)0) == 608);
    CHECK(tight.back() == 2);
    CHECK_THROWS_AS(data::long_tail_counts(10, 20, 5, 3), engine::ArgError);   // < 5 + 9*3
    CHECK_THROWS_AS(data::long_tail_counts(10, 60, 5, 3), engine::ArgError);   // > 10*5
}

TEST_CASE("synth: rendering is deterministic and identities differ") {
    const auto id0 = data::make_identity(7, 0), id0b = data::make_identity(7, 0);
    const auto id1 = data::make_identity(7, 1);
    CHECK(id0.face_w == id0b.face_w);
    CHECK(id0.face_w != id1.face_w);
    const data::Image a = data::render_face(id0, 7, 0, 3, 64);
    const data::Image b = data::render_face(id0, 7, 0, 3, 64);
    const data::Image c = data::render_face(id0, 7, 0, 4, 64);
    CHECK(a.height == 64);
    CHECK(a.width == 64);
    CHECK(a.pixels == b.pixels);
    CHECK(a.pixels != c.pixels);
}

TEST_CASE("synth: identity, not background, separates the images") {
    // Mean squared difference over the central face region (where the face is) for images of
    // the same person versus different people, and over the corners (background) likewise.
    const int S = 64, P = 12, K = 4;
    std::vector<std::vector<data::Image>> imgs(P);
    for (int p = 0; p < P; ++p) {
        const auto id = data::make_identity(3, p);
        for (int k = 0; k < K; ++k) imgs[p].push_back(data::render_face(id, 3, p, k, S));
    }
    auto dist = [&](const data::Image& x, const data::Image& y, bool centre) {
        double d = 0;
        i64 n = 0;
        for (int yy = 0; yy < S; ++yy)
            for (int xx = 0; xx < S; ++xx) {
                const bool in_centre = std::abs(yy - S / 2) < S / 5 && std::abs(xx - S / 2) < S / 5;
                const bool in_corner = (yy < S / 8 || yy >= S - S / 8) && (xx < S / 8 || xx >= S - S / 8);
                if (centre ? !in_centre : !in_corner) continue;
                for (int ch = 0; ch < 3; ++ch) {
                    const double e = (double)x.at(yy, xx)[ch] - y.at(yy, xx)[ch];
                    d += e * e;
                }
                ++n;
            }
        return d / n;
    };
    double same_c = 0, diff_c = 0, same_b = 0, diff_b = 0;
    int ns = 0, nd = 0;
    for (int p = 0; p < P; ++p)
        for (int k = 0; k < K; ++k)
            for (int q = p; q < P; ++q)
                for (int l = (q == p ? k + 1 : 0); l < K; ++l) {
                    if (p == q) {
                        same_c += dist(imgs[p][k], imgs[q][l], true);
                        same_b += dist(imgs[p][k], imgs[q][l], false);
                        ++ns;
                    } else {
                        diff_c += dist(imgs[p][k], imgs[q][l], true);
                        diff_b += dist(imgs[p][k], imgs[q][l], false);
                        ++nd;
                    }
                }
    same_c /= ns;
    diff_c /= nd;
    same_b /= ns;
    diff_b /= nd;
    MESSAGE("centre MSD same ", same_c, " different ", diff_c, "; corners same ", same_b,
            " different ", diff_b);
    CHECK(same_c < 0.6 * diff_c);  // the face carries the identity
    CHECK(same_b > 0.7 * diff_b);  // the background does not
}

namespace {
struct TempDir {
    fs::path path;
    TempDir() {
        path = fs::temp_directory_path() / ("test_synth_" + std::to_string(::getpid()));
        fs::remove_all(path);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(path, ec);
    }
};
}  // namespace

TEST_CASE("synth: a generated set matches its flags and its ground truth") {
    TempDir tmp;
    data::SynthConfig cfg;
    cfg.identities = 30;
    cfg.images = 400;
    cfg.max_per_id = 80;
    cfg.min_per_id = 3;
    cfg.flip_frac = 0.05;
    cfg.outlier_frac = 0.03;
    cfg.split_ids = 3;
    cfg.heldout_ids = 10;
    cfg.pairs = 40;
    cfg.size = 48;
    cfg.threads = 2;
    cfg.seed = 5;
    const data::SynthSummary sum = data::generate_synth(cfg, tmp.path.string(), nullptr);
    for (const char* f : {"train.rec", "train.idx", "property", "noise_truth.txt", "synth_val.bin",
                          "synth.json", "contact_sheet.png"})
        CHECK_MESSAGE(fs::exists(tmp.path / f), f);
    const i64 T = 30, C = 33, N = 400;
    CHECK(sum.images == N);
    CHECK(sum.classes == C);

    // The records: labels in range, one identity range per label, the long-tail counts.
    data::RecordDataset ds(tmp.path.string());
    REQUIRE(ds.size() == N);
    CHECK(ds.num_classes() == C);
    CHECK(ds.image_height() == 48);
    CHECK((i64)ds.identities().size() == C);
    std::map<i64, int> label_of_key;
    std::vector<i64> per_label(C, 0);
    for (i64 i = 0; i < N; ++i) {
        const int l = ds.label(i);
        REQUIRE(l >= 0);
        REQUIRE(l < C);
        per_label[l]++;
        label_of_key[ds.record_key(i)] = l;
    }
    CHECK(per_label == sum.per_label);
    // Unsplit training labels hold exactly the long-tail counts (split ones share theirs with
    // their second label).
    std::vector<i64> want = data::long_tail_counts(T, N, 80, 3);
    std::vector<i64> split_total;
    const data::Image first = data::decode_image(ds.encoded(0), ds.describe(0));
    CHECK(first.height == 48);

    // The ground truth: counts per kind equal the flags, and every line matches the records.
    std::ifstream truth(tmp.path / "noise_truth.txt");
    std::string kind;
    i64 key, person, given;
    std::map<std::string, i64> kinds;
    std::set<i64> keys, split_people;
    std::map<i64, std::set<i64>> split_labels_of;
    while (truth >> kind >> key >> person >> given) {
        kinds[kind]++;
        CHECK(keys.insert(key).second);  // one line per image
        REQUIRE(label_of_key.count(key) == 1);
        CHECK(label_of_key[key] == given);
        if (kind == "flip") {
            CHECK(person >= 0);
            CHECK(person < T);
            CHECK(person != given);
            CHECK(given < T);
        } else if (kind == "outlier") {
            CHECK(person >= T + cfg.heldout_ids);  // outside the training and held-out people
            CHECK(given < T);
        } else if (kind == "split") {
            CHECK(person < T);
            CHECK(given >= T);
            CHECK(given < C);
            split_people.insert(person);
            split_labels_of[person].insert(given);
        } else {
            FAIL("unknown kind ", kind);
        }
    }
    CHECK(kinds["flip"] == std::llround(0.05 * N));
    CHECK(kinds["outlier"] == std::llround(0.03 * N));
    CHECK((i64)split_people.size() == 3);
    for (auto& kv : split_labels_of) CHECK(kv.second.size() == 1);  // each under one new label
    // A split label holds only the split images of its person.
    i64 split_lines = kinds["split"];
    CHECK(split_lines == per_label[30] + per_label[31] + per_label[32]);
    // A split person keeps the rest under its own label: together the long-tail count.
    for (auto& kv : split_labels_of) {
        const i64 own = per_label[kv.first], moved = per_label[*kv.second.begin()];
        CHECK(own >= moved);  // half (rounded down) moved
        split_total.push_back(own + moved);
    }
    // Unsplit labels and the split persons' totals together are the long-tail counts.
    std::vector<i64> all;
    for (i64 l = 0; l < T; ++l)
        if (!split_labels_of.count(l)) all.push_back(per_label[l]);
    all.insert(all.end(), split_total.begin(), split_total.end());
    std::sort(all.begin(), all.end(), std::greater<i64>());
    CHECK(all == want);

    // The verification set reads back: pairs, half same, JPEGs of the right size.
    const data::VerificationSet val = data::read_verification_bin((tmp.path / "synth_val.bin").string());
    CHECK(val.pairs() == 40);
    CHECK(std::count(val.issame.begin(), val.issame.end(), true) == 20);
    REQUIRE(val.images.size() == 80);
    const data::Image v0 = data::decode_image(val.images[0], "synth_val.bin image 0");
    CHECK(v0.height == 48);
    CHECK(v0.width == 48);

    // Python's own pickle loads it (written as Python 2 str, hence encoding='bytes').
    if (std::system("python3 -c 'import pickle' > /dev/null 2>&1") == 0) {
        const std::string cmd =
            "python3 -c \"import pickle,sys; b,s = pickle.load(open(sys.argv[1],'rb'), "
            "encoding='bytes'); assert len(b) == 80 and len(s) == 40 and sum(s) == 20; "
            "assert all(isinstance(x, bytes) and x[:2] == b'\\xff\\xd8' for x in b)\" " +
            (tmp.path / "synth_val.bin").string();
        CHECK(std::system(cmd.c_str()) == 0);
    } else {
        MESSAGE("python3 not found: the pickle load of synth_val.bin was not checked");
    }
}
