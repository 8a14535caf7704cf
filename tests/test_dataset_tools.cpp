// Dataset tools: head/tail split (relabelling, grouping, counts) and noise-list application
// (records dropped, labels and class count kept, every bad line an error naming the line).
#include <doctest/doctest.h>

#include <sstream>

#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "data/dataset_tools.h"
#include "data/recordio.h"
#include "engine/error.h"
#include "tests/test_files.h"

namespace fs = std::filesystem;
using data::RecordDataset;

namespace {

using test::error_of;
using test::has;
using test::read_bytes;
using test::write_bytes;
using test::write_text;
struct TempDir : test::TempDir {
    TempDir() : test::TempDir("engine_test_tools") {}
};

const std::string kFix = "tests/fixtures/data/";



// Image j of class c: the bytes "c<c>i<j>" (unique, so moved images can be recognised).
std::vector<u8> tag(int c, int j) {
    const std::string s = "c" + std::to_string(c) + "i" + std::to_string(j);
    return std::vector<u8>(s.begin(), s.end());
}

// A set with classes of 10, 3, 9, 1, 12 images.
const int kCounts[5] = {10, 3, 9, 1, 12};
std::string make_set(const TempDir& t) {
    const std::string d = t / "src";
    data::DatasetWriter w(d, 112, 112);
    for (int c = 0; c < 5; ++c)
        for (int j = 0; j < kCounts[c]; ++j) w.add_image(c, tag(c, j));
    w.close();
    return d;
}


}  // namespace

TEST_CASE("split_head_tail: head classes >= min_images relabelled 0..C-1, tail keeps grouping") {
    TempDir t;
    const std::string src = make_set(t);
    const data::SplitCounts c = data::split_head_tail(src, t / "head", t / "tail", 9);
    CHECK(c.head_classes == 3);  // classes 0, 2, 4
    CHECK(c.head_images == 31);
    CHECK(c.tail_classes == 2);  // classes 1, 3
    CHECK(c.tail_images == 4);
    RecordDataset head(t / "head"), tail(t / "tail");
    CHECK(head.size() == 31);
    CHECK(head.num_classes() == 3);
    CHECK(head.image_height() == 112);
    REQUIRE(head.identities().size() == 3);
    const int head_old[3] = {0, 2, 4};
    i64 i = 0;
    for (int nc = 0; nc < 3; ++nc) {
        const auto& r = head.identities()[nc];
        CHECK(r.label == nc);
        CHECK(r.end - r.begin == kCounts[head_old[nc]]);
        for (int j = 0; j < kCounts[head_old[nc]]; ++j, ++i) {
            CHECK(head.label(i) == nc);
            CHECK(head.encoded(i) == tag(head_old[nc], j));
        }
    }
    CHECK(tail.size() == 4);
    CHECK(tail.num_classes() == 2);
    REQUIRE(tail.identities().size() == 2);
    CHECK(tail.identities()[0].end == 3);
    CHECK(tail.encoded(0) == tag(1, 0));
    CHECK(tail.encoded(3) == tag(3, 0));
    CHECK(tail.label(3) == 1);
    CHECK_THROWS_AS(data::split_head_tail(src, t / "h2", t / "t2", 0), engine::ArgError);
}

TEST_CASE("split_head_tail on the Python fixture (mixed flag 0 / flag 2 labels)") {
    TempDir t;
    const data::SplitCounts c =
        data::split_head_tail(kFix + "rec_insightface", t / "head", t / "tail", 3);
    CHECK(c.head_classes == 2);  // class 0 (3 images) and class 2 (4 images)
    CHECK(c.head_images == 7);
    CHECK(c.tail_classes == 1);  // class 1 (2 images)
    CHECK(c.tail_images == 2);
    RecordDataset src(kFix + "rec_insightface"), head(t / "head"), tail(t / "tail");
    REQUIRE(head.size() == 7);
    CHECK(head.encoded(3) == src.encoded(5));  // first image of old class 2 (key 6)
    CHECK(head.label(3) == 1);
    CHECK(head.image_width() == 8);
    REQUIRE(tail.size() == 2);
    CHECK(tail.encoded(1) == src.encoded(4));
    CHECK(tail.label(1) == 0);
    // origin.txt traces every output image to its source record: the bytes must match.
    for (const auto& [out, ds] : {std::pair<std::string, RecordDataset*>{t / "head", &head},
                                  {t / "tail", &tail}}) {
        std::ifstream origin(out + "/origin.txt");
        REQUIRE(origin.good());
        std::string line;
        i64 rows = 0;
        while (std::getline(origin, line)) {
            if (line.empty() || line[0] == '#') continue;
            std::istringstream ls(line);
            i64 key = 0, src_key = 0, src_label = 0;
            REQUIRE((ls >> key >> src_key >> src_label));
            CHECK(key == ds->record_key(rows));
            i64 src_sample = -1;
            for (i64 k = 0; k < src.size(); ++k)
                if (src.record_key(k) == src_key) src_sample = k;
            REQUIRE(src_sample >= 0);
            CHECK(src.label(src_sample) == src_label);
            CHECK(src.encoded(src_sample) == ds->encoded(rows));
            ++rows;
        }
        CHECK(rows == ds->size());
    }
}

TEST_CASE("apply_noise_list: listed records dropped, labels and class count kept") {
    TempDir t;
    const std::string src = make_set(t);
    // Record keys: class 0 is keys 1-10, class 1 keys 11-13, class 2 14-22, class 3 key 23,
    // class 4 keys 24-35. Drop keys 2 and 12, and class 3's only image (key 23).
    write_text(t / "noise.txt",
               "# label record_index max_p p_label\n"
               "0 2 0.0061 0.0010\n"
               "\n"
               "1 12 0.0050 0.0002\n"
               "3 23 0.0069 0.0040\n");
    const data::DenoiseCounts c = data::apply_noise_list(src, t / "noise.txt", t / "out");
    CHECK(c.images_in == 35);
    CHECK(c.removed == 3);
    CHECK(c.images_out == 32);
    CHECK(c.classes == 5);
    RecordDataset out(t / "out");
    CHECK(out.size() == 32);
    CHECK(out.num_classes() == 5);  // class 3 has no image left but keeps its id
    CHECK(out.encoded(0) == tag(0, 0));
    CHECK(out.encoded(1) == tag(0, 2));  // key 2 (class 0 image 1) gone
    CHECK(out.encoded(9) == tag(1, 0));
    CHECK(out.encoded(10) == tag(1, 2));  // key 12 gone
    CHECK(out.label(10) == 1);
    REQUIRE(out.identities().size() == 4);
    CHECK(out.identities()[3].label == 4);
    CHECK(out.label(31) == 4);
}

TEST_CASE("apply_noise_list: the Python fixture, and every bad line named") {
    TempDir t;
    write_text(t / "n.txt", "2 7 0.001 0.0005\n");
    data::DenoiseCounts c = data::apply_noise_list(kFix + "rec_insightface", t / "n.txt", t / "o");
    CHECK(c.removed == 1);
    RecordDataset src(kFix + "rec_insightface"), out(t / "o");
    REQUIRE(out.size() == 8);
    CHECK(out.encoded(6) == src.encoded(7));  // key 8 moves up into key 7's place
    CHECK(out.num_classes() == 3);

    struct Bad {
        const char* text;
        const char* expect;
    } cases[] = {
        {"2 7 0.001 0.0005\n2 40 0.001 0.0005\n", "line 2"},   // no record 40
        {"0 10 0.001 0.0005\n", "not an image record"},        // key 10 is an identity record
        {"1 7 0.001 0.0005\n", "has label 2"},                 // label does not match
        {"2 7 0.001\n", "cannot parse"},                       // a column missing
        {"2 7 0.001 0.0005 9\n", "cannot parse"},              // a column too many
        {"2 7 0.001 0.0005\n\n2 7 0.001 0.0005\n", "line 3"},  // listed twice
    };
    for (const Bad& b : cases) {
        INFO(b.text);
        write_text(t / "bad.txt", b.text);
        const std::string e = error_of<engine::FormatError>(
            [&] { data::apply_noise_list(kFix + "rec_insightface", t / "bad.txt", t / "o2"); });
        CHECK(has(e, "bad.txt"));
        CHECK(has(e, b.expect));
    }
    CHECK(has(error_of<engine::IoError>(
                  [&] { data::apply_noise_list(kFix + "rec_insightface", t / "none.txt", t / "o3"); }),
              "none.txt"));
}
