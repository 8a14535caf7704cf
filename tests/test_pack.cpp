// .lst / folder reading, and the apps run as programs: pack (folder, both .lst layouts, bad
// images rejected or counted with --skip-bad), inspect on every file type and on damaged files,
// split and denoise. The apps are found beside the test binary (make test builds them first).
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <climits>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "data/lst.h"
#include "data/recordio.h"
#include "engine/error.h"
#include "tests/test_files.h"

namespace fs = std::filesystem;

namespace {

using test::error_of;
using test::has;
using test::read_bytes;
using test::write_bytes;
using test::write_text;
using test::app;
using test::run;
using test::Run;
struct TempDir : test::TempDir {
    TempDir() : test::TempDir("engine_test_pack") {}
};

const std::string kFix = "tests/fixtures/data/";



// The apps live beside this test binary (build/pack next to build/tests).
int count_lines(const std::string& s) {
    int n = 0;
    for (char c : s) n += c == '\n';
    return n;
}

// The 6 images of tests/fixtures/data/folder in label order: alice 0 (3), bob 1 (2), carol 2.
const char* kFolderImages[6] = {"alice/img0.png", "alice/img1.png", "alice/img2.png",
                                "bob/img0.png", "bob/img1.png", "carol/img0.png"};
const int kFolderLabels[6] = {0, 0, 0, 1, 1, 2};

void check_packed_folder(const std::string& dir) {
    data::RecordDataset ds(dir);
    REQUIRE(ds.size() == 6);
    CHECK(ds.num_classes() == 3);
    CHECK(ds.image_height() == 8);
    CHECK(ds.image_width() == 8);
    CHECK(ds.identities().size() == 3);
    for (i64 i = 0; i < 6; ++i) {
        CHECK(ds.label(i) == kFolderLabels[i]);
        // Stored as on disk: the exact file bytes.
        CHECK(ds.encoded(i) == read_bytes(kFix + "folder/" + kFolderImages[i]));
    }
}

}  // namespace

TEST_CASE("lst: InsightFace and im2rec layouts give the same entries; folders sort by name") {
    const auto a = data::read_lst(kFix + "insightface.lst");
    const auto b = data::read_lst(kFix + "im2rec.lst");
    std::vector<std::string> names;
    const auto f = data::scan_image_folder(kFix + "folder", &names);
    CHECK(names == std::vector<std::string>{"alice", "bob", "carol"});
    REQUIRE(a.size() == 6);
    REQUIRE(b.size() == 6);
    REQUIRE(f.size() == 6);  // bob/notes.txt is not an image
    for (int i = 0; i < 6; ++i) {
        CHECK(a[i].label == kFolderLabels[i]);
        CHECK(b[i].label == kFolderLabels[i]);
        CHECK(f[i].label == kFolderLabels[i]);
        CHECK(fs::equivalent(a[i].path, kFix + "folder/" + kFolderImages[i]));
        CHECK(fs::equivalent(b[i].path, kFix + "folder/" + kFolderImages[i]));
        CHECK(fs::equivalent(f[i].path, kFix + "folder/" + kFolderImages[i]));
        CHECK(a[i].line == i + 1);
    }
    TempDir t;
    write_text(t / "x.lst", "1\ta.png\t0\n1\t2\t3\n");  // line 2: all numbers, ambiguous
    std::string e = error_of<engine::FormatError>([&] { data::read_lst(t / "x.lst"); });
    CHECK(has(e, "x.lst"));
    CHECK(has(e, "line 2"));
    write_text(t / "x.lst", "1\ta.png\t-4\n");
    CHECK(has(error_of<engine::FormatError>([&] { data::read_lst(t / "x.lst"); }), "line 1"));
    write_text(t / "x.lst", "1\ta.png\n");
    CHECK(has(error_of<engine::FormatError>([&] { data::read_lst(t / "x.lst"); }), "columns"));
    const auto r = data::read_lst(kFix + "im2rec.lst", "/data/root");
    CHECK(r[0].path == "/data/root/folder/alice/img0.png");
    CHECK_THROWS_AS(data::read_lst(t / "none.lst"), engine::IoError);
    CHECK_THROWS_AS(data::scan_image_folder(t / "nodir"), engine::IoError);
}

TEST_CASE("pack: folder and both .lst layouts store the image files as they are") {
    TempDir t;
    Run r = run(app("pack") + " --folder " + kFix + "folder --out " + (t / "f") + " --size 8", t);
    INFO(r.out);
    CHECK(r.rc == 0);
    CHECK(has(r.out, "6 images, 3 classes, 0 skipped"));
    check_packed_folder(t / "f");
    r = run(app("pack") + " --lst " + kFix + "insightface.lst --out " + (t / "l1") + " --size 8", t);
    CHECK(r.rc == 0);
    check_packed_folder(t / "l1");
    r = run(app("pack") + " --lst " + kFix + "im2rec.lst --out " + (t / "l2") + " --size 8", t);
    CHECK(r.rc == 0);
    check_packed_folder(t / "l2");
    r = run(app("pack") + " --help", t);
    CHECK(r.rc == 0);
    CHECK(has(r.out, "--skip-bad"));
}

TEST_CASE("pack: bad images stop packing naming the file, or are counted with --skip-bad") {
    TempDir t;
    // folder_bad: a (2 good), b (big.png 16x16, broken.png truncated), c (1 good).
    Run r = run(app("pack") + " --folder " + kFix + "folder_bad --out " + (t / "o") + " --size 8", t);
    CHECK(r.rc != 0);
    CHECK(has(r.out, "folder_bad/b/big.png"));
    CHECK(has(r.out, "16x16, expected 8x8"));
    r = run(app("pack") + " --folder " + kFix + "folder_bad --out " + (t / "s") +
                " --size 8 --skip-bad", t);
    INFO(r.out);
    CHECK(r.rc == 0);
    CHECK(has(r.out, "3 images, 3 classes, 2 skipped"));
    CHECK(has(r.out, "broken.png: cannot decode"));
    data::RecordDataset ds(t / "s");
    CHECK(ds.size() == 3);
    CHECK(ds.num_classes() == 3);  // class b keeps its id with no image left
    CHECK(ds.label(2) == 2);
    // The wrong size for every image; and no input at all.
    r = run(app("pack") + " --folder " + kFix + "folder --out " + (t / "w") + " --size 16", t);
    CHECK(r.rc != 0);
    CHECK(has(r.out, "alice/img0.png: image is 8x8, expected 16x16"));
    r = run(app("pack") + " --out " + (t / "w"), t);
    CHECK(r.rc != 0);
    CHECK(has(r.out, "exactly one of --folder and --lst"));
}

TEST_CASE("inspect: summaries of a .rec set, a .bin, a .safetensors and a .npy") {
    TempDir t;
    Run r = run(app("inspect") + " " + kFix + "rec_insightface", t);
    INFO(r.out);
    CHECK(r.rc == 0);
    CHECK(has(r.out, "records     13"));
    CHECK(has(r.out, "images      9"));
    CHECK(has(r.out, "identities  3"));
    CHECK(has(r.out, "classes     3"));
    CHECK(has(r.out, "labels      0..2"));
    CHECK(has(r.out, "first image 8x8"));
    r = run(app("inspect") + " " + kFix + "rec_plain/train.rec", t);
    CHECK(r.rc == 0);
    CHECK(has(r.out, "every key is an image"));
    CHECK(has(r.out, "images      6"));
    r = run(app("inspect") + " " + kFix + "py_proto4.bin", t);
    CHECK(r.rc == 0);
    CHECK(has(r.out, "protocol 4"));
    CHECK(has(r.out, "images      8"));
    CHECK(has(r.out, "pairs       4 (2 same, 2 different)"));
    r = run(app("inspect") + " " + kFix + "sample.safetensors", t);
    CHECK(r.rc == 0);
    CHECK(has(r.out, "2 tensors"));
    CHECK(has(r.out, "F32"));
    CHECK(has(r.out, "(2, 3)"));
    CHECK(has(r.out, "I64"));
    CHECK(has(r.out, "total       56 bytes"));
    r = run(app("inspect") + " " + kFix + "sample.npy", t);
    CHECK(r.rc == 0);
    CHECK(has(r.out, "<f4 (2, 3), 24 bytes"));
}

TEST_CASE("inspect: a damaged file gives one line and a non-zero exit") {
    TempDir t;
    // A .rec set whose last record (record 0) is cut short.
    fs::create_directories(t / "cut");
    for (const char* f : {"train.idx", "property"})
        fs::copy_file(kFix + "rec_insightface/" + f, t / (std::string("cut/") + f));
    std::vector<u8> raw = read_bytes(kFix + "rec_insightface/train.rec");
    raw.resize(raw.size() - 6);
    {
        std::ofstream o(t / "cut/train.rec", std::ios::binary);
        o.write((const char*)raw.data(), (std::streamsize)raw.size());
    }
    const std::vector<std::pair<std::string, std::string>> cases = {
        {t / "cut", "train.rec"},
        {kFix + "numpy_fake_p4.bin", "numpy"},
        {kFix + "mismatch.bin", "mismatch.bin"},
        {t / "none.bin", "none.bin"},
        {kFix + "insightface.lst", "unknown file type"},
    };
    for (const auto& c : cases) {
        Run r = run(app("inspect") + " " + c.first, t);
        INFO(c.first, ": ", r.out);
        CHECK(r.rc != 0);
        CHECK(count_lines(r.out) == 1);
        CHECK(has(r.out, c.second));
    }
}

TEST_CASE("split and denoise apps") {
    TempDir t;
    Run r = run(app("split") + " --data " + kFix + "rec_insightface --min-images 3 --head " +
                    (t / "h") + " --tail " + (t / "t"), t);
    INFO(r.out);
    CHECK(r.rc == 0);
    CHECK(has(r.out, "2 classes, 7 images"));
    CHECK(data::RecordDataset(t / "h").size() == 7);
    CHECK(data::RecordDataset(t / "t").size() == 2);
    write_text(t / "noise.txt", "1 1 0.003 0.002\n");  // head set: key 1 is class 0 ... label 0
    r = run(app("denoise") + " --data " + (t / "h") + " --noise-list " + (t / "noise.txt") +
                " --out " + (t / "d"), t);
    CHECK(r.rc != 0);  // key 1 has label 0 in the head set, not 1
    CHECK(has(r.out, "noise.txt: line 1"));
    write_text(t / "noise.txt", "0 1 0.003 0.002\n1 5 0.001 0.0001\n");
    r = run(app("denoise") + " --data " + (t / "h") + " --noise-list " + (t / "noise.txt") +
                " --out " + (t / "d"), t);
    CHECK(r.rc == 0);
    CHECK(has(r.out, "7 images in, 2 removed, 5 written, 2 classes"));
    r = run(app("split") + " --data " + kFix + "rec_insightface --head x", t);
    CHECK(r.rc != 0);
}
