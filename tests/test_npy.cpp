// .npy: round trips, numpy's header layout (64-byte aligned, '\n' ended), files written by numpy
// itself, and every damaged-file case (a FormatError naming the file).
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "engine/error.h"
#include "engine/npy.h"

namespace {

namespace fs = std::filesystem;

struct NpyTempDir {
    fs::path dir;
    NpyTempDir() {
        static int n = 0;
        dir = fs::temp_directory_path() /
              ("engine_test_npy_" + std::to_string(getpid()) + "_" + std::to_string(n++));
        fs::create_directories(dir);
    }
    ~NpyTempDir() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
    std::string file(const std::string& name) const { return (dir / name).string(); }
};

std::string file_bytes(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(f), {});
}

// A version 1.0 file with a literal header dict (padding as given) and n_data bytes of data.
void write_npy_raw(const std::string& path, const std::string& dict, i64 n_data,
                   const std::string& magic = std::string("\x93NUMPY\x01\x00", 8)) {
    std::ofstream f(path, std::ios::binary);
    f.write(magic.data(), (std::streamsize)magic.size());
    f.put((char)(dict.size() & 0xFF));
    f.put((char)(dict.size() >> 8));
    f << dict;
    for (i64 k = 0; k < n_data; ++k) f.put((char)k);
}

void expect_npy_format_error(const std::string& path, const std::string& about) {
    try {
        engine::read_npy(path);
        FAIL("no error for ", about);
    } catch (const engine::FormatError& e) {
        INFO(about, ": ", e.what());
        CHECK(std::string(e.what()).find(path) != std::string::npos);
    }
}

}  // namespace

TEST_CASE("npy round trip for float, double and int64, any rank") {
    NpyTempDir tmp;
    const std::vector<float> f = {1.5f, -2.f, 3e-9f, 4.f, 5.f, 6.f};
    engine::write_npy(tmp.file("f.npy"), {1, 2, 3}, f.data());
    const auto a = engine::read_npy(tmp.file("f.npy"));
    CHECK(a.descr == "<f4");
    CHECK(a.shape == std::vector<i64>{1, 2, 3});
    CHECK(a.as<float>() == f);
    CHECK(a.as<double>()[0] == 1.5);

    const std::vector<double> d = {0.1, -1e300, 7};
    engine::write_npy(tmp.file("d.npy"), {3}, d.data());
    CHECK(engine::read_npy(tmp.file("d.npy")).as<double>() == d);

    const i64 s = -((i64)1 << 60);
    engine::write_npy(tmp.file("s.npy"), {}, &s);  // a 0-d array
    const auto sa = engine::read_npy(tmp.file("s.npy"));
    CHECK(sa.shape.empty());
    CHECK(sa.as<i64>() == std::vector<i64>{s});

    engine::write_npy(tmp.file("e.npy"), {0, 5}, (const float*)nullptr);
    const auto e = engine::read_npy(tmp.file("e.npy"));
    CHECK(e.shape == std::vector<i64>{0, 5});
    CHECK(e.data.empty());
}

TEST_CASE("npy header: version 1.0, numpy's dict, padded with spaces to 64 bytes, ends in newline") {
    NpyTempDir tmp;
    const double d[5] = {1, 2, 3, 4, 5};
    engine::write_npy(tmp.file("h.npy"), {5}, d);
    const std::string b = file_bytes(tmp.file("h.npy"));
    REQUIRE(b.size() > 10);
    CHECK(b.compare(0, 8, std::string("\x93NUMPY\x01\x00", 8)) == 0);
    const size_t hl = (unsigned char)b[8] | (size_t)(unsigned char)b[9] << 8;
    CHECK((10 + hl) % 64 == 0);
    REQUIRE(b.size() == 10 + hl + 40);
    const std::string h = b.substr(10, hl);
    CHECK(h.rfind("{'descr': '<f8', 'fortran_order': False, 'shape': (5,), }", 0) == 0);
    CHECK(h.back() == '\n');
}

TEST_CASE("npy reads files written by numpy (tests/fixtures/small.npy, small_i64.npy)") {
    const std::string p = "tests/fixtures/small.npy", q = "tests/fixtures/small_i64.npy";
    REQUIRE_MESSAGE((std::ifstream(p).good() && std::ifstream(q).good()), p, " or ", q,
                    " is missing: run /usr/bin/python3 tests/make_fixtures.py io");
    // np.arange(24, dtype=float32).reshape(2, 3, 4) * 0.5 - 3 (tests/make_fixtures.py).
    const auto a = engine::read_npy(p);
    CHECK(a.descr == "<f4");
    CHECK(a.shape == std::vector<i64>{2, 3, 4});
    const auto v = a.as<float>();
    REQUIRE(v.size() == 24);
    for (int k = 0; k < 24; ++k) CHECK(v[k] == k * 0.5f - 3.f);
    const auto b = engine::read_npy(q);
    CHECK(b.descr == "<i8");
    CHECK(b.shape == std::vector<i64>{3});
    CHECK(b.as<i64>() == std::vector<i64>{7, -8, (i64)1 << 50});
}

TEST_CASE("npy rejects damaged files with a FormatError naming the file") {
    NpyTempDir tmp;
    int n = 0;
    auto path = [&] { return tmp.file("bad" + std::to_string(n++) + ".npy"); };
    const std::string ok = "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }\n";

    SUBCASE("the baseline reads") {
        const std::string p = path();
        write_npy_raw(p, ok, 8);
        CHECK(engine::read_npy(p).shape == std::vector<i64>{2});
    }
    SUBCASE("too short, bad magic, unsupported version") {
        const std::string p = path();
        std::ofstream(p, std::ios::binary) << "\x93NUMP";
        expect_npy_format_error(p, "5-byte file");
        const std::string q = path();
        write_npy_raw(q, ok, 8, std::string("\x93NUMPZ\x01\x00", 8));
        expect_npy_format_error(q, "bad magic");
        const std::string r = path();
        write_npy_raw(r, ok, 8, std::string("\x93NUMPY\x04\x00", 8));
        expect_npy_format_error(r, "version 4.0");
    }
    SUBCASE("header length past the end") {
        const std::string p = path();
        write_npy_raw(p, ok, 0);
        // Cut the file inside the header.
        const std::string b = file_bytes(p);
        std::ofstream(p, std::ios::binary | std::ios::trunc) << b.substr(0, 30);
        expect_npy_format_error(p, "truncated header");
    }
    SUBCASE("bad dicts") {
        const char* bad[] = {
            "{'descr': '<f4', 'shape': (2,), }",                                // no fortran_order
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), 'x': 1}",  // unknown key
            "{'descr': '<f4', 'fortran_order': Maybe, 'shape': (2,), }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2 3), }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,) ",          // unterminated
            "{'descr: '<f4', 'fortran_order': False, 'shape': (2,), }",
            "{'descr': '<f4', 'fortran_order': False, 'shape': (99999999999999999999,), }",
            "{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }",        // big-endian
            "{'descr': '<c8', 'fortran_order': False, 'shape': (1,), }",        // complex
            "{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }",         // Fortran order
            "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), } junk",
        };
        for (const char* d : bad) {
            const std::string p = path();
            write_npy_raw(p, d, 8);
            expect_npy_format_error(p, d);
        }
    }
    SUBCASE("truncated data and trailing bytes") {
        const std::string p = path();
        write_npy_raw(p, ok, 7);
        expect_npy_format_error(p, "7 of 8 data bytes");
        const std::string q = path();
        write_npy_raw(q, ok, 9);
        expect_npy_format_error(q, "one trailing byte");
    }
    SUBCASE("a missing file is an IoError") {
        CHECK_THROWS_AS(engine::read_npy(tmp.file("nope.npy")), engine::IoError);
    }
}
