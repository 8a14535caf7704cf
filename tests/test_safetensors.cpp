// safetensors: round trips, the layout the reference writer produces, every damaged-file case
// (each a FormatError naming the file and the tensor), and a file written by Python.
#include <doctest/doctest.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <unistd.h>

#include "engine/error.h"
#include "engine/safetensors.h"

namespace {

namespace fs = std::filesystem;

// A fresh directory under the system temp dir, removed at the end of the test case.
struct TempDir {
    fs::path dir;
    TempDir() {
        static int n = 0;
        dir = fs::temp_directory_path() /
              ("engine_test_safetensors_" + std::to_string(getpid()) + "_" + std::to_string(n++));
        fs::create_directories(dir);
    }
    ~TempDir() {
        std::error_code ec;
        fs::remove_all(dir, ec);
    }
    std::string file(const std::string& name) const { return (dir / name).string(); }
};

std::vector<u8> read_bytes(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    return std::vector<u8>(std::istreambuf_iterator<char>(f), {});
}

// A safetensors file from a literal header and n data bytes (values 0..n-1): the damaged cases
// are spelt out as the JSON a broken writer would produce.
void write_raw(const std::string& path, const std::string& header, i64 n_data,
               u64 claimed_len = ~0ull) {  // ~0: the true header length
    std::ofstream f(path, std::ios::binary);
    const u64 len = claimed_len == ~0ull ? header.size() : claimed_len;
    for (int k = 0; k < 8; ++k) f.put((char)(len >> (8 * k)));
    f << header;
    for (i64 k = 0; k < n_data; ++k) f.put((char)k);
}

// Reading must throw FormatError whose message names the file and, when given, the tensor.
void expect_format_error(const std::string& path, const std::string& tensor,
                         const std::string& about) {
    try {
        engine::read_safetensors(path);
        FAIL("no error for ", about);
    } catch (const engine::FormatError& e) {
        const std::string msg = e.what();
        INFO(about, ": ", msg);
        CHECK(msg.find(path) != std::string::npos);
        if (!tensor.empty()) CHECK(msg.find(tensor) != std::string::npos);
    }
}

}  // namespace

TEST_CASE("safetensors round trip keeps names, dtypes, shapes, bytes, order and metadata") {
    TempDir tmp;
    const float w[6] = {1.5f, -2.25f, 3e-8f, 0.f, -0.f, 1e30f};
    const double s = -7.125;
    const i64 counts[3] = {-1, 0, (i64)1 << 62};
    const double b[2] = {0.5, -0.5};
    std::vector<engine::SafeTensor> ts = {
        engine::make_safetensor("conv1.weight", {1, 2, 3}, w),
        engine::make_safetensor("scalar", {}, &s),
        engine::make_safetensor_i64("bn1.num_batches_tracked", {3}, counts),
        engine::make_safetensor("empty", {0, 4}, (const float*)nullptr),
        // names with characters JSON must escape, and UTF-8
        engine::make_safetensor("odd \"name\" \\ with\nnewline\ttab \x01 caf\xc3\xa9", {2}, b),
    };
    const std::map<std::string, std::string> meta = {{"format", "pt"},
                                                     {"note", "quote \" backslash \\"}};
    const std::string path = tmp.file("rt.safetensors");
    engine::write_safetensors(path, ts, meta);

    std::map<std::string, std::string> got_meta;
    const auto got = engine::read_safetensors(path, &got_meta);
    REQUIRE(got.size() == ts.size());
    for (size_t k = 0; k < ts.size(); ++k) {
        INFO("tensor ", k);
        CHECK(got[k].name == ts[k].name);
        CHECK(got[k].dtype == ts[k].dtype);
        CHECK(got[k].shape == ts[k].shape);
        CHECK(got[k].data == ts[k].data);
    }
    CHECK(got_meta == meta);
    CHECK(got[0].as<float>() == std::vector<float>(w, w + 6));
    CHECK(got[1].as<double>() == std::vector<double>{s});
    CHECK(got[2].as<i64>() == std::vector<i64>(counts, counts + 3));
    CHECK(got[0].as<double>()[1] == -2.25);  // F32 widened
    CHECK(got[3].as<float>().empty());
}

TEST_CASE("safetensors layout: header padded with spaces to 8 bytes, data contiguous in order") {
    TempDir tmp;
    const float a[3] = {1, 2, 3};
    const double b[1] = {4};
    const std::string path = tmp.file("layout.safetensors");
    engine::write_safetensors(path, {engine::make_safetensor("b", {3}, a),
                                     engine::make_safetensor("a", {1}, b)});
    const auto bytes = read_bytes(path);
    u64 n = 0;
    for (int k = 0; k < 8; ++k) n |= (u64)bytes[k] << (8 * k);
    CHECK(n % 8 == 0);
    REQUIRE(bytes.size() == 8 + n + 12 + 8);
    const std::string header(bytes.begin() + 8, bytes.begin() + 8 + n);
    // "b" is laid out first although it sorts last: the caller's order is kept.
    CHECK(header.find("\"b\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,12]}") !=
          std::string::npos);
    CHECK(header.find("\"a\":{\"dtype\":\"F64\",\"shape\":[1],\"data_offsets\":[12,20]}") !=
          std::string::npos);
    CHECK(header.find('}') < header.rfind('}'));
    const size_t end = header.rfind('}');
    for (size_t k = end + 1; k < header.size(); ++k) CHECK(header[k] == ' ');
    float first;
    std::memcpy(&first, bytes.data() + 8 + n, 4);
    CHECK(first == 1.f);
}

TEST_CASE("safetensors reads the file written by Python (tests/fixtures/small.safetensors)") {
    const std::string path = "tests/fixtures/small.safetensors";
    REQUIRE_MESSAGE(std::ifstream(path).good(),
                    path, " is missing: run /usr/bin/python3 tests/make_fixtures.py io from the "
                          "repository root");
    std::map<std::string, std::string> meta;
    const auto ts = engine::read_safetensors(path, &meta);
    std::map<std::string, const engine::SafeTensor*> by;
    for (const auto& t : ts) by[t.name] = &t;
    REQUIRE(ts.size() == 5);
    // Values stated by tests/make_fixtures.py make_io().
    REQUIRE(by.count("weight"));
    CHECK(by["weight"]->dtype == "F32");
    CHECK(by["weight"]->shape == std::vector<i64>{2, 3});
    CHECK(by["weight"]->as<float>() == std::vector<float>{-1.f, -0.75f, -0.5f, -0.25f, 0.f, 0.25f});
    REQUIRE(by.count("counts"));
    CHECK(by["counts"]->as<i64>() == std::vector<i64>{1, -2, 3, (i64)1 << 40});
    REQUIRE(by.count("scalar"));
    CHECK(by["scalar"]->shape.empty());
    CHECK(by["scalar"]->as<double>() == std::vector<double>{3.141592653589793});
    REQUIRE(by.count("empty"));
    CHECK(by["empty"]->shape == std::vector<i64>{0});
    CHECK(by["empty"]->data.empty());
    // The name was written as "caf\u00e9.bias": the escape decodes to UTF-8 (C3 A9).
    REQUIRE(by.count("caf\xc3\xa9.bias"));
    CHECK(by["caf\xc3\xa9.bias"]->as<double>() == std::vector<double>{-0.5, 2.5});
    CHECK(meta["format"] == "pt");
    CHECK(meta["note"] == "a \"quote\", a \\ and a\nnewline");
}

TEST_CASE("safetensors rejects damaged files with a FormatError naming the file and tensor") {
    TempDir tmp;
    int n = 0;
    auto path = [&] { return tmp.file("bad" + std::to_string(n++) + ".safetensors"); };
    const std::string ok_entry = "\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}";

    SUBCASE("a valid file reads (the baseline the damaged ones are made from)") {
        const std::string p = path();
        write_raw(p, "{" + ok_entry + "}", 8);
        CHECK(engine::read_safetensors(p).size() == 1);
    }
    SUBCASE("shorter than the length field") {
        const std::string p = path();
        std::ofstream(p, std::ios::binary) << "abc";
        expect_format_error(p, "", "3-byte file");
    }
    SUBCASE("header length beyond the file") {
        const std::string p = path();
        write_raw(p, "{" + ok_entry + "}", 8, 1 << 20);
        expect_format_error(p, "", "header length 1 MiB");
        const std::string q = path();
        write_raw(q, "{" + ok_entry + "}", 8, ~0ull - 1);  // 2^64 - 2
        expect_format_error(q, "", "header length 2^64-2");
    }
    SUBCASE("bad JSON") {
        const char* bad[] = {
            "",                                      // empty header
            "{",                                     // unterminated
            "{\"t\" {}}",                            // missing colon
            "{\"t\":{}} x",                          // trailing garbage
            "{\"t\":{\"dtype\":\"F32\\q\"}}",        // unknown escape
            "{\"t\":{\"dtype\":\"\\ud800\"}}",       // lone surrogate
            "{\"t\":{\"dtype\":\"F\n32\"}}",         // raw control character in a string
            "{\"t\":{\"shape\":[01]}}",              // leading zero
            "{\"t\":{\"shape\":[1,]}}",              // trailing comma
            "{'t':1}",                               // single quotes
            "[1, 2]",                                // not an object
            "{\"t\":{},\"t\":{}}",                   // duplicate key
        };
        for (const char* h : bad) {
            const std::string p = path();
            write_raw(p, h, 0);
            expect_format_error(p, "", std::string("header <") + h + ">");
        }
    }
    SUBCASE("entry fields: missing, wrong types, unknown dtype, bad shape") {
        const char* bad[] = {
            "{\"t\":{\"shape\":[2],\"data_offsets\":[0,8]}}",
            "{\"t\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}",
            "{\"t\":{\"dtype\":\"F32\",\"shape\":[2]}}",
            "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8,8]}}",
            "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,\"8\"]}}",
            "{\"t\":{\"dtype\":\"F33\",\"shape\":[2],\"data_offsets\":[0,8]}}",
            "{\"t\":{\"dtype\":32,\"shape\":[2],\"data_offsets\":[0,8]}}",
            "{\"t\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}",
            "{\"t\":{\"dtype\":\"F32\",\"shape\":[2.0],\"data_offsets\":[0,8]}}",
            "{\"t\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,8]}}",
            "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8],\"extra\":1}}",
            "{\"t\":[]}",
        };
        for (const char* h : bad) {
            const std::string p = path();
            write_raw(p, h, 8);
            expect_format_error(p, "t", std::string("header <") + h + ">");
        }
        const std::string p = path();
        write_raw(p, "{\"__metadata__\":{\"k\":1}," + ok_entry + "}", 8);
        expect_format_error(p, "__metadata__", "non-string metadata value");
    }
    SUBCASE("offsets out of range") {
        const std::string p = path();
        write_raw(p, "{\"t\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}", 8);
        expect_format_error(p, "t", "end past the data section");
        const std::string q = path();
        write_raw(q, "{\"t\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", 8);
        expect_format_error(q, "t", "end before begin");
    }
    SUBCASE("dtype size x numel differs from the byte count") {
        const std::string p = path();
        write_raw(p, "{\"t\":{\"dtype\":\"F64\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8);
        expect_format_error(p, "t", "F64 x 2 in 8 bytes");
    }
    SUBCASE("overlapping tensors") {
        const std::string p = path();
        write_raw(p,
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                  "\"bb\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                  12);
        expect_format_error(p, "bb", "[0,8) and [4,12)");
    }
    SUBCASE("a gap between tensors and bytes after the last one") {
        const std::string p = path();
        write_raw(p,
                  "{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                  "\"bb\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[8,12]}}",
                  12);
        expect_format_error(p, "bb", "gap [4,8)");
        const std::string q = path();
        write_raw(q, "{" + ok_entry + "}", 12);
        expect_format_error(q, "t", "4 trailing bytes");
    }
}

TEST_CASE("safetensors errors: missing file, bad tensors passed to the writer, bad conversion") {
    TempDir tmp;
    CHECK_THROWS_AS(engine::read_safetensors(tmp.file("nope.safetensors")), engine::IoError);
    const float x[2] = {1, 2};
    auto a = engine::make_safetensor("a", {2}, x);
    CHECK_THROWS_AS(engine::write_safetensors(tmp.file("d.safetensors"), {a, a}), engine::ArgError);
    auto short_data = a;
    short_data.data.pop_back();
    CHECK_THROWS_AS(engine::write_safetensors(tmp.file("s.safetensors"), {short_data}),
                    engine::ShapeError);
    CHECK_THROWS_AS(engine::write_safetensors(tmp.file("no/such/dir/x.safetensors"), {a}),
                    engine::IoError);
    auto u8t = a;
    u8t.dtype = "U8";
    u8t.shape = {8};
    CHECK_THROWS_AS(u8t.as<float>(), engine::FormatError);
    // A U8 tensor is still written and read back as raw bytes.
    engine::write_safetensors(tmp.file("u8.safetensors"), {u8t});
    CHECK(engine::read_safetensors(tmp.file("u8.safetensors"))[0].data == u8t.data);
}
