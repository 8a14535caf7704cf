// Verification .bin: files made by Python's own pickle (protocols 2-5, Python 2 style, the
// _codecs form), round trips through our protocol-2 writer (also loaded by python3 when
// present), and rejection of numpy arrays, other globals and every truncation.
#include <doctest/doctest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "data/verification_bin.h"
#include "engine/error.h"
#include "engine/rng.h"
#include "tests/test_files.h"

namespace fs = std::filesystem;
using data::read_verification_bin;
using data::VerificationSet;

namespace {

using test::error_of;
using test::has;
using test::read_bytes;
using test::write_bytes;
using test::write_text;

const std::string kFix = "tests/fixtures/data/";

std::vector<u8> file_bytes(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    REQUIRE_MESSAGE(in.good(), "cannot open ", p);
    return std::vector<u8>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
void put_bytes(const std::string& p, const std::vector<u8>& b) {
    std::ofstream out(p, std::ios::binary);
    out.write((const char*)b.data(), (std::streamsize)b.size());
}
std::string temp_path(const std::string& name) {
    return (fs::temp_directory_path() / ("engine_test_bin_" + std::to_string(::getpid()) + "_" + name))
        .string();
}

// PNG facts checked from the bytes: signature and IHDR width/height (big-endian at 16 and 20).
void check_png_8x8(const std::vector<u8>& b) {
    REQUIRE(b.size() > 24);
    CHECK(b[0] == 0x89);
    CHECK(b[1] == 'P');
    CHECK(b[19] == 8);
    CHECK(b[23] == 8);
}

}  // namespace

TEST_CASE("verification bin: Python pickle protocols 2, 3, 4, 5 give the same set") {
    // make_data_fixtures.py: 8 PNGs 8x8 (image 1 longer than 255 bytes), issame T F T F.
    const VerificationSet ref = read_verification_bin(kFix + "py_proto3.bin");
    for (int p = 2; p <= 5; ++p) {
        INFO("protocol ", p);
        const VerificationSet s = read_verification_bin(kFix + "py_proto" + std::to_string(p) + ".bin");
        CHECK(s.protocol == p);
        REQUIRE(s.images.size() == 8);
        CHECK(s.pairs() == 4);
        CHECK(s.issame == std::vector<bool>{true, false, true, false});
        CHECK(s.images[1].size() > 255);
        for (size_t i = 0; i < 8; ++i) {
            check_png_8x8(s.images[i]);
            // Protocol 2 goes through _codecs.encode(latin-1 text); 3-5 through BINBYTES.
            CHECK(s.images[i] == ref.images[i]);
        }
    }
    // Distinct images: image i's colour (7 * (40 + i)) differs, so no two files are equal.
    CHECK(ref.images[0] != ref.images[2]);
}

TEST_CASE("verification bin: 1002 pairs (two APPENDS batches, LONG_BINPUT memo)") {
    for (int p : {2, 4}) {
        INFO("protocol ", p);
        const VerificationSet s = read_verification_bin(kFix + "py_proto" + std::to_string(p) + "_many.bin");
        REQUIRE(s.images.size() == 2004);
        REQUIRE(s.pairs() == 1002);
        for (int i = 0; i < 2004; ++i) {
            // image i = bytes([i % 256, 7i % 256, 128 + i % 128]) + ascii(i)
            std::vector<u8> want = {(u8)(i % 256), (u8)((7 * i) % 256), (u8)(128 + i % 128)};
            for (char c : std::to_string(i)) want.push_back((u8)c);
            if (s.images[i] != want) {
                FAIL_CHECK("image ", i, " differs");
                break;
            }
        }
        for (int q = 0; q < 1002; ++q) CHECK(s.issame[q] == (q % 3 == 0));
    }
}

TEST_CASE("verification bin: a Python-2-style file (SHORT_BINSTRING / BINSTRING)") {
    const VerificationSet s = read_verification_bin(kFix + "py2_style.bin");
    const VerificationSet ref = read_verification_bin(kFix + "py_proto4.bin");
    CHECK(s.protocol == 2);
    REQUIRE(s.images.size() == 4);
    CHECK(s.issame == std::vector<bool>{true, false});
    for (int i = 0; i < 4; ++i) CHECK(s.images[i] == ref.images[i]);
    // Opcodes of the file (read raw): image 0 is SHORT_BINSTRING 'U', image 1 BINSTRING 'T'.
    const std::vector<u8> raw = file_bytes(kFix + "py2_style.bin");
    CHECK(raw[6] == 'U');
}

TEST_CASE("verification bin: numpy arrays and other globals are rejected with a clear message") {
    for (const char* f : {"numpy_fake_p2.bin", "numpy_fake_p4.bin"}) {
        const std::string e = error_of<engine::FormatError>([&] { read_verification_bin(kFix + f); });
        CHECK(has(e, f));
        CHECK(has(e, "numpy"));
        CHECK(has(e, "not supported"));
        CHECK(has(e, "re-pickle the images as bytes"));
    }
    const std::string e = error_of<engine::FormatError>([&] { read_verification_bin(kFix + "evil_global.bin"); });
    CHECK(has(e, "evil_global.bin"));
    CHECK(has(e, "os.system"));
    CHECK(has(e, "not allowed"));
}

TEST_CASE("verification bin: structure errors, truncations, bad opcodes, missing file") {
    std::string e = error_of<engine::FormatError>([&] { read_verification_bin(kFix + "mismatch.bin"); });
    CHECK(has(e, "mismatch.bin"));
    CHECK(has(e, "3 images for 1 pairs"));
    // Every prefix of two real files is a FormatError naming the file, never a crash.
    const std::string tmp = temp_path("cut.bin");
    for (const char* f : {"py_proto2.bin", "py_proto4.bin", "py2_style.bin"}) {
        const std::vector<u8> raw = file_bytes(kFix + f);
        int wrong = 0;
        for (size_t n = 0; n < raw.size(); ++n) {
            put_bytes(tmp, std::vector<u8>(raw.begin(), raw.begin() + (long)n));
            e = error_of<engine::FormatError>([&] { read_verification_bin(tmp); });
            if (!has(e, tmp)) {
                if (wrong++ == 0) FAIL_CHECK(f, " cut at ", n, ": ", e);
            }
        }
        CHECK(wrong == 0);
    }
    // An opcode outside the subset (0xff in place of the first EMPTY_LIST).
    std::vector<u8> raw = file_bytes(kFix + "py_proto2.bin");
    REQUIRE(raw[2] == ']');
    raw[2] = 0xff;
    put_bytes(tmp, raw);
    e = error_of<engine::FormatError>([&] { read_verification_bin(tmp); });
    CHECK(has(e, "opcode 0xff"));
    CHECK(has(e, "offset 2"));
    // A BINGET of a memo slot never written.
    raw = file_bytes(kFix + "py_proto2.bin");
    REQUIRE(raw[301] == 'h');
    raw[302] = 200;
    put_bytes(tmp, raw);
    CHECK(has(error_of<engine::FormatError>([&] { read_verification_bin(tmp); }), "memo index 200"));
    // One bytes object listed twice (a BINGET of the memo): both images get the bytes.
    // ([b'abc', <same object>], [True]) as protocol 2 with Python 2 opcodes, written by hand.
    const std::vector<u8> dup = {0x80, 2, ']', 'q', 0, '(', 'U', 3, 'a', 'b', 'c', 'q', 1,
                                 'h', 1, 'e', ']', 'q', 2, 0x88, 'a', 0x86, 'q', 3, '.'};
    put_bytes(tmp, dup);
    const VerificationSet d = read_verification_bin(tmp);
    REQUIRE(d.images.size() == 2);
    CHECK(d.images[0] == std::vector<u8>{'a', 'b', 'c'});
    CHECK(d.images[1] == std::vector<u8>{'a', 'b', 'c'});
    CHECK(d.issame == std::vector<bool>{true});
    std::remove(tmp.c_str());
    CHECK(has(error_of<engine::IoError>([&] { read_verification_bin(kFix + "none.bin"); }), "none.bin"));
}

TEST_CASE("verification bin: our protocol-2 writer round trips, in Python 2's opcodes") {
    engine::Rng rng(7);
    VerificationSet s;
    const int pairs = 1201;  // two list batches
    for (int i = 0; i < 2 * pairs; ++i) {
        // Sizes around the SHORT_BINSTRING / BINSTRING boundary and a few large images.
        const size_t n = i % 100 == 0 ? 70000 : (size_t)(rng.uniform() * 520);
        std::vector<u8> b(n);
        for (auto& x : b) x = (u8)(rng.uniform() * 256);
        s.images.push_back(b);
    }
    for (int p = 0; p < pairs; ++p) s.issame.push_back(rng.uniform() < 0.5);
    const std::string tmp = temp_path("rt.bin");
    data::write_verification_bin(tmp, s);
    const std::vector<u8> raw = file_bytes(tmp);
    CHECK(raw[0] == 0x80);
    CHECK(raw[1] == 2);
    CHECK(raw[2] == ']');
    CHECK(raw[raw.size() - 1] == '.');
    const VerificationSet r = read_verification_bin(tmp);
    CHECK(r.protocol == 2);
    CHECK(r.issame == s.issame);
    REQUIRE(r.images.size() == s.images.size());
    for (size_t i = 0; i < s.images.size(); ++i)
        if (r.images[i] != s.images[i]) {
            FAIL_CHECK("image ", i, " differs");
            break;
        }

    // Python's own pickle loads it too (when python3 is on PATH): compare a checksum computed
    // here from the input with the one Python computes from what it loaded.
    if (std::system("python3 -c 'import pickle' > /dev/null 2>&1") == 0) {
        u64 sum = 0, total = 0;
        for (const auto& im : s.images) {
            total += im.size();
            for (size_t j = 0; j < im.size(); ++j) sum += (u64)im[j] * (j % 7 + 1);
        }
        std::string bits;
        for (bool b : s.issame) bits += b ? '1' : '0';
        const std::string out = temp_path("py.txt");
        const std::string cmd =
            "python3 -c \"import pickle,sys; b,s=pickle.load(open(sys.argv[1],'rb'),encoding='bytes');"
            " print(len(b), sum(len(x) for x in b), sum(v*(j%7+1) for x in b for j,v in enumerate(x)),"
            " ''.join('1' if t else '0' for t in s))\" " + tmp + " > " + out + " 2>&1";
        const int rc = std::system(cmd.c_str());
        CHECK(WEXITSTATUS(rc) == 0);
        std::ifstream in(out);
        std::string got((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
        const std::string want = std::to_string(s.images.size()) + " " + std::to_string(total) +
                                 " " + std::to_string(sum) + " " + bits + "\n";
        CHECK(got == want);
        std::remove(out.c_str());
    } else {
        MESSAGE("python3 not found: the Python load of our .bin was not checked");
    }
    std::remove(tmp.c_str());
    // Inconsistent input is an ArgError.
    s.issame.push_back(true);
    CHECK_THROWS_AS(data::write_verification_bin(tmp, s), engine::ArgError);
}
