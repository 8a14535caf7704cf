// Typed errors. Every error names where it happened: the file, the record or byte offset, the
// tensor. Apps catch engine::Error at main, print one line and exit non-zero.
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace engine {

struct Error : std::runtime_error {
    explicit Error(const std::string& what) : std::runtime_error(what) {}
};
// A caller passed inconsistent sizes or a bad argument (a programming or usage error).
struct ShapeError : Error { using Error::Error; };
struct ArgError : Error { using Error::Error; };
// A file could not be opened, read or written.
struct IoError : Error { using Error::Error; };
// A file was read but its content is not what its format says (bad magic, truncated, ...).
struct FormatError : Error { using Error::Error; };
// Input values the maths cannot take (labels out of range, non-finite embeddings, ...).
struct DataError : Error { using Error::Error; };
// CUDA, cuBLAS, cuDNN or NCCL reported a failure, or no GPU is usable.
struct DeviceError : Error { using Error::Error; };

namespace detail {
inline void cat(std::ostringstream&) {}
template <typename A, typename... R>
void cat(std::ostringstream& os, const A& a, const R&... r) {
    os << a;
    cat(os, r...);
}
}  // namespace detail

// str("file ", name, " at offset ", off) -> one string; used to build error messages.
template <typename... A>
std::string str(const A&... a) {
    std::ostringstream os;
    detail::cat(os, a...);
    return os.str();
}

}  // namespace engine

// ENGINE_CHECK(cond, ErrorType, message parts...): throw ErrorType("message") when cond fails.
#define ENGINE_CHECK(cond, Type, ...)                          \
    do {                                                       \
        if (!(cond)) throw Type(::engine::str(__VA_ARGS__));   \
    } while (0)
