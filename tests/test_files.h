// File helpers shared by the format and tool tests: a temporary directory removed at scope end,
// whole-file reads and writes, and error_of<E>(f), the message of the E that f throws (or a
// string saying which other error, or none, it threw) so tests can check what a message names.
#pragma once
#include <doctest/doctest.h>
#include <limits.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
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

// The path of an app built beside the test binary (make test builds the apps first).
inline std::string app(const std::string& name) {
    char buf[PATH_MAX];
    const ssize_t n = ::readlink("/proc/self/exe", buf, sizeof(buf) - 1);
    REQUIRE(n > 0);
    buf[n] = '\0';
    const std::string p = (std::filesystem::path(buf).parent_path() / name).string();
    REQUIRE_MESSAGE(std::filesystem::exists(p), p,
                    " not built (run `make test`, which builds the apps)");
    return p;
}

// Runs a shell command line; its exit status and its stdout and stderr together.
struct Run {
    int rc = -1;
    std::string out;
};
inline Run run(const std::string& args, const TempDir& t) {
    const std::string log = t / "log.txt";
    const int s = std::system((args + " > " + log + " 2>&1").c_str());
    Run r;
    r.rc = WIFEXITED(s) ? WEXITSTATUS(s) : -1;
    std::ifstream in(log);
    r.out.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    return r;
}

}  // namespace test
