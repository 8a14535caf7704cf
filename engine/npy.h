// NumPy .npy files, format version 1.0 (little-endian '<f4', '<f8', '<i8', '|u1', C order),
// for arrays exchanged with Python tools (embeddings, fixtures).
#pragma once
#include <string>
#include <vector>

#include "engine/common.h"

namespace engine {

struct NpyArray {
    std::string descr;  // "<f4", "<f8", "<i8", "|u1"
    std::vector<i64> shape;
    std::vector<u8> data;  // raw bytes in C order
    template <typename T>
    std::vector<T> as() const;  // float/double/int64 conversion; throws FormatError otherwise
};

void write_npy(const std::string& path, const std::vector<i64>& shape, const float* data);
void write_npy(const std::string& path, const std::vector<i64>& shape, const double* data);
void write_npy(const std::string& path, const std::vector<i64>& shape, const i64* data);
NpyArray read_npy(const std::string& path);  // throws IoError / FormatError naming the file

}  // namespace engine
