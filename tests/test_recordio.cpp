// RecordIO: the Python-made fixtures (tests/make_data_fixtures.py) read with known contents,
// write/read round trips with split records, and every damaged-input case as a typed error
// naming the file, the record key and the offset.
#include <doctest/doctest.h>

#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>

// Declarations only: the library compiles stb_image once (data/stb_impl.cpp).
#include <stb/stb_image.h>

#include "data/recordio.h"
#include "engine/error.h"
#include "engine/rng.h"
#include "tests/test_files.h"

namespace fs = std::filesystem;
using data::IRHeader;
using data::RecordDataset;
using data::RecordReader;
using data::RecordWriter;

namespace {

using test::error_of;
using test::has;
using test::read_bytes;
using test::write_bytes;
using test::write_text;
struct TempDir : test::TempDir {
    TempDir() : test::TempDir("engine_test_rec") {}
};

const std::string kFix = "tests/fixtures/data/";


u32 get_u32(const std::vector<u8>& b, u64 at) {
    return (u32)b[at] | (u32)b[at + 1] << 8 | (u32)b[at + 2] << 16 | (u32)b[at + 3] << 24;
}
void set_u32(std::vector<u8>& b, u64 at, u32 v) {
    for (int i = 0; i < 4; ++i) b[at + i] = (u8)(v >> (8 * i));
}

// key -> offset parsed here with plain streams (not the reader under test).
std::map<i64, u64> idx_map(const std::string& p) {
    std::ifstream in(p);
    std::map<i64, u64> m;
    long long k;
    unsigned long long o;
    while (in >> k >> o) m[k] = o;
    return m;
}

// The message of an error of type E thrown by f, or a marker that makes checks fail.

// A copy of the Python-made InsightFace fixture in a temp dir, to damage.
std::string copy_fixture(const TempDir& t, const std::string& name = "rec_insightface") {
    const std::string d = t / name;
    fs::create_directories(d);
    for (const auto& e : fs::directory_iterator(kFix + name))
        fs::copy_file(e.path(), fs::path(d) / e.path().filename());
    return d;
}

// Decodes and returns pixel (x, y) as r, g, b.
std::vector<int> pixel(const std::vector<u8>& png, int x, int y, int* w, int* h) {
    int c = 0;
    unsigned char* p = stbi_load_from_memory(png.data(), (int)png.size(), w, h, &c, 3);
    REQUIRE(p != nullptr);
    std::vector<int> rgb = {p[(y * *w + x) * 3], p[(y * *w + x) * 3 + 1], p[(y * *w + x) * 3 + 2]};
    stbi_image_free(p);
    return rgb;
}

}  // namespace

TEST_CASE("recordio: the Python InsightFace fixture reads with its known contents") {
    RecordDataset ds(kFix + "rec_insightface");
    CHECK(ds.size() == 9);
    CHECK(ds.records() == 13);
    CHECK(ds.has_header_record());
    CHECK(ds.num_classes() == 3);
    CHECK(ds.image_height() == 8);
    CHECK(ds.image_width() == 8);
    const int labels[9] = {0, 0, 0, 1, 1, 2, 2, 2, 2};  // keys 1-3, 4-5 (flag 2), 6-9
    for (i64 i = 0; i < 9; ++i) {
        CHECK(ds.label(i) == labels[i]);
        CHECK(ds.record_key(i) == i + 1);
    }
    const auto& ids = ds.identities();
    REQUIRE(ids.size() == 3);
    CHECK(ids[0].begin == 0);
    CHECK(ids[0].end == 3);
    CHECK(ids[0].label == 0);
    CHECK(ids[1].begin == 3);
    CHECK(ids[1].end == 5);
    CHECK(ids[1].label == 1);
    CHECK(ids[2].begin == 5);
    CHECK(ids[2].end == 9);
    CHECK(ids[2].label == 2);
    // Image of key k: pixel (x, y) = ((20k + x) % 256, (30y) % 256, (7k) % 256), 8x8.
    for (i64 i = 0; i < 9; ++i) {
        const int k = (int)i + 1;
        int w = 0, h = 0;
        const std::vector<int> p = pixel(ds.encoded(i), 3, 2, &w, &h);
        CHECK(w == 8);
        CHECK(h == 8);
        CHECK(p[0] == (20 * k + 3) % 256);
        CHECK(p[1] == 60);
        CHECK(p[2] == (7 * k) % 256);
    }
    CHECK(has(ds.describe(6), "train.rec"));
    CHECK(has(ds.describe(6), "key 7"));
}

TEST_CASE("recordio: split records of the fixture are joined with the magic put back") {
    const std::string rec = kFix + "rec_insightface/train.rec";
    const auto off = idx_map(kFix + "rec_insightface/train.idx");
    const std::vector<u8> raw = read_bytes(rec);
    // The fixture really is split: cflag 1 in the first chunk of keys 2 and 7 (read raw here).
    CHECK((get_u32(raw, off.at(2) + 4) >> 29) == 1);
    CHECK((get_u32(raw, off.at(7) + 4) >> 29) == 1);
    CHECK((get_u32(raw, off.at(1) + 4) >> 29) == 0);
    RecordReader r(rec);
    // Key 2: the IRHeader id is the magic word (split 8 bytes into the payload).
    std::vector<u8> image;
    const IRHeader h2 = data::parse_irheader(r.read_at(off.at(2), 2), &image, "key 2");
    CHECK(h2.flag == 0);
    CHECK(h2.label == 0.0f);
    CHECK(h2.id == data::kRecordMagic);
    CHECK(image.size() > 8);
    CHECK(image[1] == 'P');
    // Key 7: three magic words in a PNG tEXt chunk, the payload is the PNG that decodes.
    const std::vector<u8> p7 = r.read_at(off.at(7), 7);
    const u8 m[4] = {0x0a, 0x23, 0xd7, 0xce};
    CHECK(std::search(p7.begin(), p7.end(), m, m + 4) != p7.end());
    // Key 4: face2rec2 style flag 2, labels [class 1, aligned 1].
    const IRHeader h4 = data::parse_irheader(r.read_at(off.at(4), 4), nullptr, "key 4");
    CHECK(h4.flag == 2);
    REQUIRE(h4.labels.size() == 2);
    CHECK(h4.labels[0] == 1.0f);
    CHECK(h4.labels[1] == 1.0f);
    // Identity record 11: labels [4, 6], no image bytes. Record 0: [10, 13].
    const IRHeader h11 = data::parse_irheader(r.read_at(off.at(11), 11), &image, "key 11");
    CHECK(h11.labels == std::vector<float>{4.0f, 6.0f});
    CHECK(image.empty());
    const IRHeader h0 = data::parse_irheader(r.read_at(off.at(0), 0), &image, "key 0");
    CHECK(h0.labels == std::vector<float>{10.0f, 13.0f});
    // A sequential scan finds the 13 records and ends exactly at the end of the file.
    u64 pos = 0;
    int n = 0;
    std::vector<u8> rec_bytes;
    while (r.read_next(&pos, &rec_bytes)) {
        if (n == 6) CHECK(rec_bytes == p7);  // physical order is keys 1..9, 10..12, 0
        ++n;
    }
    CHECK(n == 13);
    CHECK(pos == raw.size());
}

TEST_CASE("recordio: without a flagged record 0 every key is an image") {
    RecordDataset ds(kFix + "rec_plain");
    CHECK_FALSE(ds.has_header_record());
    CHECK(ds.size() == 6);
    CHECK(ds.num_classes() == 3);  // no property file: largest label + 1
    CHECK(ds.image_height() == 0);
    const int labels[6] = {0, 0, 1, 1, 1, 2};
    for (i64 i = 0; i < 6; ++i) {
        CHECK(ds.record_key(i) == i);
        CHECK(ds.label(i) == labels[i]);
        int w, h;
        CHECK(pixel(ds.encoded(i), 0, 0, &w, &h)[0] == (20 * (20 + (int)i)) % 256);
    }
    const auto& ids = ds.identities();
    REQUIRE(ids.size() == 3);
    CHECK(ids[1].begin == 2);
    CHECK(ids[1].end == 5);
    CHECK(ids[2].label == 2);
}

TEST_CASE("recordio: writer/reader round trip, including payloads holding the magic") {
    TempDir t;
    const u8 m[4] = {0x0a, 0x23, 0xd7, 0xce};
    engine::Rng rng(42);
    std::vector<std::vector<u8>> payloads;
    payloads.push_back({});                  // empty record
    payloads.push_back({1, 2, 3});           // shorter than a word (padding only)
    payloads.push_back({m[0], m[1], m[2], m[3]});                       // magic only
    payloads.push_back({m[0], m[1], m[2], m[3], m[0], m[1], m[2], m[3], 9});  // twice, adjacent
    for (int r = 0; r < 40; ++r) {
        std::vector<u8> p(1 + (size_t)(rng.uniform() * 300));
        for (auto& b : p) b = (u8)(rng.uniform() * 256);
        // Magic at a few 4-aligned offsets (split) and one unaligned offset (not split).
        for (int j = 0; j < 3 && p.size() >= 8; ++j) {
            const size_t at = ((size_t)(rng.uniform() * (double)(p.size() - 4))) & ~size_t(3);
            std::memcpy(&p[at], m, 4);
        }
        if (p.size() > 10) std::memcpy(&p[p.size() > 12 ? 5 : 1], m, 4);
        payloads.push_back(p);
    }
    {
        RecordWriter w(t / "x.rec", t / "x.idx");
        for (size_t i = 0; i < payloads.size(); ++i) w.write((i64)i * 3 + 1, payloads[i]);
        w.close();
    }
    // Every aligned magic word in the file must be a chunk start: count split chunks too.
    const std::vector<u8> raw = read_bytes(t / "x.rec");
    CHECK(raw.size() % 4 == 0);
    const auto off = idx_map(t / "x.idx");
    REQUIRE(off.size() == payloads.size());
    RecordReader r(t / "x.rec");
    for (size_t i = 0; i < payloads.size(); ++i) {
        INFO("record ", i);
        CHECK(r.read_at(off.at((i64)i * 3 + 1)) == payloads[i]);
    }
    // The magic-only record: a cflag 1 chunk of length 0, then a cflag 3 chunk of length 0.
    const u64 o2 = off.at(7);
    CHECK(get_u32(raw, o2 + 4) == (1u << 29));
    CHECK(get_u32(raw, o2 + 12) == (3u << 29));
    u64 pos = 0;
    std::vector<u8> rec;
    size_t n = 0;
    while (r.read_next(&pos, &rec)) {
        REQUIRE(n < payloads.size());
        CHECK(rec == payloads[n]);
        ++n;
    }
    CHECK(n == payloads.size());
    // A prefix read stops early but agrees with the full record.
    const std::vector<u8> pre = r.read_prefix_at(off.at(3 * 5 + 1), 7);
    CHECK(pre == std::vector<u8>(payloads[5].begin(), payloads[5].begin() + std::min<size_t>(7, payloads[5].size())));
}

TEST_CASE("recordio: IRHeader round trip and a payload shorter than its header") {
    IRHeader h;
    h.flag = 2;
    h.labels = {3.0f, 1.0f};
    h.id = 77;
    h.id2 = 5;
    const u8 img[3] = {7, 8, 9};
    const std::vector<u8> p = data::make_irheader_payload(h, img, 3);
    CHECK(p.size() == 24 + 8 + 3);
    CHECK(get_u32(p, 0) == 2);
    std::vector<u8> out;
    const IRHeader g = data::parse_irheader(p, &out, "here");
    CHECK(g.flag == 2);
    CHECK(g.labels == h.labels);
    CHECK(g.id == 77);
    CHECK(g.id2 == 5);
    CHECK(out == std::vector<u8>{7, 8, 9});
    std::vector<u8> shortp(p.begin(), p.begin() + 28);  // flag 2 needs 32 bytes
    CHECK(has(error_of<engine::FormatError>([&] { data::parse_irheader(shortp, nullptr, "rec key 3"); }),
              "rec key 3"));
    h.labels = {1.0f};  // flag 2 with one label
    CHECK_THROWS_AS(data::make_irheader_payload(h, img, 3), engine::ArgError);
}

TEST_CASE("recordio: DatasetWriter writes InsightFace's layout that the reader reads back") {
    TempDir t;
    const std::string d = t / "set";
    const int counts[3] = {4, 1, 3};
    {
        data::DatasetWriter w(d, 112, 96);
        for (int c = 0; c < 3; ++c)
            for (int j = 0; j < counts[c]; ++j) w.add_image(c, {(u8)c, (u8)j, 0x0a, 0x23});
        CHECK(w.images() == 8);
        CHECK_THROWS_AS(w.add_image(0, {1}), engine::ArgError);  // label 0 again: not grouped
        w.close();
    }
    std::ifstream pf(d + "/property");
    std::string prop;
    std::getline(pf, prop);
    CHECK(prop == "3,112,96");
    const auto off = idx_map(d + "/train.idx");
    REQUIRE(off.size() == 8 + 3 + 1);
    // Physically: images, then identity records 9..11, then record 0 last.
    for (const auto& kv : off)
        if (kv.first != 0) CHECK(kv.second < off.at(0));
    CHECK(off.at(9) > off.at(8));
    RecordDataset ds(d);
    CHECK(ds.has_header_record());
    CHECK(ds.size() == 8);
    CHECK(ds.image_height() == 112);
    CHECK(ds.image_width() == 96);
    REQUIRE(ds.identities().size() == 3);
    CHECK(ds.identities()[1].begin == 4);
    CHECK(ds.identities()[1].end == 5);
    CHECK(ds.encoded(5) == std::vector<u8>{2, 0, 0x0a, 0x23});
    CHECK(ds.label(7) == 2);
    // Image records are flag 0 with the scalar label.
    RecordReader r(d + "/train.rec");
    const IRHeader h = data::parse_irheader(r.read_at(off.at(6)), nullptr, "");
    CHECK(h.flag == 0);
    CHECK(h.label == 2.0f);
}

TEST_CASE("recordio damage: wrong magic names file, key and offset") {
    TempDir t;
    const std::string d = copy_fixture(t);
    const auto off = idx_map(d + "/train.idx");
    std::vector<u8> raw = read_bytes(d + "/train.rec");
    raw[off.at(5)] ^= 0xff;
    write_bytes(d + "/train.rec", raw);
    const std::string e = error_of<engine::FormatError>([&] { RecordDataset ds(d); });
    CHECK(has(e, "train.rec"));
    CHECK(has(e, "key 5"));
    CHECK(has(e, "offset " + std::to_string(off.at(5))));
    CHECK(has(e, "magic"));
}

TEST_CASE("recordio damage: truncated chunk (file cut, and a length beyond the file)") {
    TempDir t;
    const std::string d = copy_fixture(t);
    const auto off = idx_map(d + "/train.idx");
    std::vector<u8> raw = read_bytes(d + "/train.rec");
    // A length field pointing past the end of the file.
    std::vector<u8> bad = raw;
    set_u32(bad, off.at(3) + 4, (1u << 29) - 1);
    write_bytes(d + "/train.rec", bad);
    std::string e = error_of<engine::FormatError>([&] { RecordDataset ds(d); });
    CHECK(has(e, "train.rec"));
    CHECK(has(e, "key 3"));
    CHECK(has(e, "truncated"));
    // The file cut in the middle of key 9's payload.
    write_bytes(d + "/cut.rec", std::vector<u8>(raw.begin(), raw.begin() + (long)off.at(9) + 20));
    RecordReader r(d + "/cut.rec");
    e = error_of<engine::FormatError>([&] { r.read_at(off.at(9), 9); });
    CHECK(has(e, "cut.rec"));
    CHECK(has(e, "key 9"));
    CHECK(has(e, "offset " + std::to_string(off.at(9))));
    CHECK(has(e, "truncated"));
    // Cut inside a chunk header.
    u64 pos = off.at(9);
    write_bytes(d + "/cut2.rec", std::vector<u8>(raw.begin(), raw.begin() + (long)off.at(9) + 5));
    RecordReader r2(d + "/cut2.rec");
    CHECK(has(error_of<engine::FormatError>([&] { r2.read_next(&pos, nullptr); }), "cut2.rec"));
}

TEST_CASE("recordio damage: bad cflag sequences") {
    TempDir t;
    const std::string d = copy_fixture(t);
    const auto off = idx_map(d + "/train.idx");
    const std::vector<u8> raw = read_bytes(d + "/train.rec");
    // Key 7's second chunk (after the first chunk's bytes) turned from cflag 2 into cflag 0.
    std::vector<u8> bad = raw;
    const u32 len1 = get_u32(raw, off.at(7) + 4) & ((1u << 29) - 1);
    const u64 second = off.at(7) + 8 + ((len1 + 3) & ~3u);
    REQUIRE(get_u32(raw, second) == data::kRecordMagic);
    REQUIRE((get_u32(raw, second + 4) >> 29) == 2);
    set_u32(bad, second + 4, get_u32(raw, second + 4) & ((1u << 29) - 1));
    write_bytes(d + "/train.rec", bad);
    // The set opens (only headers are read up front); reading the image reports the damage.
    RecordDataset ds(d);
    std::string e = error_of<engine::FormatError>([&] { ds.encoded(6); });
    CHECK(has(e, "train.rec"));
    CHECK(has(e, "key 7"));
    CHECK(has(e, "offset " + std::to_string(off.at(7))));
    CHECK(has(e, "cflag"));
    // Key 1's only chunk marked as a middle chunk (cflag 2 with no start).
    bad = raw;
    set_u32(bad, off.at(1) + 4, get_u32(raw, off.at(1) + 4) | (2u << 29));
    write_bytes(d + "/train.rec", bad);
    e = error_of<engine::FormatError>([&] { RecordDataset ds(d); });
    CHECK(has(e, "key 1"));
    CHECK(has(e, "cflag"));
}

TEST_CASE("recordio damage: .idx offset beyond the file and unparsable lines") {
    TempDir t;
    const std::string d = copy_fixture(t);
    std::ifstream in(d + "/train.idx");
    std::vector<std::string> lines;
    for (std::string l; std::getline(in, l);) lines.push_back(l);
    in.close();
    REQUIRE(lines.size() == 13);
    REQUIRE(lines[5].rfind("5\t", 0) == 0);  // line 6 is key 5 (the idx is not sorted)
    auto write_lines = [&](const std::vector<std::string>& ls) {
        std::string s;
        for (const auto& l : ls) s += l + "\n";
        write_text(d + "/train.idx", s);
    };
    std::vector<std::string> bad = lines;
    bad[5] = "5\t99999996";
    write_lines(bad);
    std::string e = error_of<engine::FormatError>([&] { RecordDataset ds(d); });
    CHECK(has(e, "train.idx"));
    CHECK(has(e, "line 6"));
    CHECK(has(e, "beyond"));
    bad = lines;
    bad.push_back("14\tabc");
    write_lines(bad);
    e = error_of<engine::FormatError>([&] { RecordDataset ds(d); });
    CHECK(has(e, "train.idx"));
    CHECK(has(e, "line 14"));
    bad = lines;
    bad[2] = "3 436 7";
    write_lines(bad);
    CHECK(has(error_of<engine::FormatError>([&] { RecordDataset ds(d); }), "line 3"));
    bad = lines;
    bad[0] = bad[1];  // a key twice
    write_lines(bad);
    CHECK(has(error_of<engine::FormatError>([&] { RecordDataset ds(d); }), "twice"));
}

TEST_CASE("recordio damage: label out of range of `property`") {
    TempDir t;
    const std::string d = copy_fixture(t);
    write_text(d + "/property", "2,8,8\n");
    const std::string e = error_of<engine::FormatError>([&] { RecordDataset ds(d); });
    CHECK(has(e, "train.rec"));
    CHECK(has(e, "key 6"));  // the first image of class 2
    CHECK(has(e, "out of range"));
    write_text(d + "/property", "three,8,8\n");
    CHECK(has(error_of<engine::FormatError>([&] { RecordDataset ds(d); }), "property"));
}

TEST_CASE("recordio damage: identity range beyond the images") {
    TempDir t;
    const std::string d = copy_fixture(t);
    const auto off = idx_map(d + "/train.idx");
    std::vector<u8> raw = read_bytes(d + "/train.rec");
    // Identity record 12's labels[1] (payload offset 28: after the 24-byte header and labels[0]).
    const float end = 11.0f;  // images are keys 1..9, so [6, 11) overruns
    u32 bits;
    std::memcpy(&bits, &end, 4);
    REQUIRE(get_u32(raw, off.at(12) + 4) == 32u);  // one whole chunk of 32 bytes
    set_u32(raw, off.at(12) + 8 + 28, bits);
    write_bytes(d + "/train.rec", raw);
    const std::string e = error_of<engine::FormatError>([&] { RecordDataset ds(d); });
    CHECK(has(e, "train.rec"));
    CHECK(has(e, "key 12"));
    CHECK(has(e, "identity range"));
}

TEST_CASE("recordio damage: missing files are IoErrors naming the file") {
    TempDir t;
    const std::string d = copy_fixture(t);
    fs::remove(d + "/train.idx");
    const std::string e = error_of<engine::IoError>([&] { RecordDataset ds(d); });
    CHECK(has(e, "train.idx"));
    fs::remove(d + "/train.rec");
    CHECK(has(error_of<engine::IoError>([&] { RecordDataset ds(d); }), "train.rec"));
    CHECK(has(error_of<engine::IoError>([&] { RecordReader r(t / "none.rec"); }), "none.rec"));
}
