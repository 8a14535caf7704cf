// File helpers shared by the format and tool tests: a temporary directory removed at scope end,
// whole-file reads and writes, and error_of<E>(f), the message of the E that f throws (or a
// string saying which other error, or none, it threw) so tests can check what a message names.
#pragma once
#include <doctest/doctest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "engine/common.h"

namespace test {

struct TempDir {
    std::filesystem::path path;
    explicit TempDir(const std::string& tag = "engine_test") {
        static int counter = 0;
        path = std::filesystem::temp_directory_path() /
               (tag + "_" + std::to_string(::getpid()) + "_" + std::to_string(counter++));
        std::filesystem::remove_all(path);
        std::filesystem::create_directories(path);
    }
    ~TempDir() {
        std::error_code ec;
        std::filesystem::remove_all(path, ec);
    }
    TempDir(const TempDir&) = delete;
    TempDir& operator=(const TempDir&) = delete;
    std::string operator/(const std::string& name) const { return (path / name).string(); }
};

inline std::vector<u8> read_bytes(const std::string& p) {
    std::ifstream in(p, std::ios::binary);
    REQUIRE_MESSAGE(in.good(), "cannot open ", p);
    return std::vector<u8>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
inline void write_bytes(const std::string& p, const std::vector<u8>& b) {
    std::ofstream out(p, std::ios::binary);
    out.write((const char*)b.data(), (std::streamsize)b.size());
}
inline void write_text(const std::string& p, const std::string& s) {
    std::ofstream out(p);
    out << s;
}
inline bool has(const std::string& s, const std::string& part) {
    return s.find(part) != std::string::npos;
}
template <typename E, typename F>
std::string error_of(F&& f) {
    try {
        f();
    } catch (const E& e) {
        return e.what();
    } catch (const std::exception& e) {
        return std::string("WRONG ERROR TYPE: ") + e.what();
    }
    return "NO ERROR THROWN";
}

}  // namespace test
