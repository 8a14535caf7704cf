// safetensors files (../shared/FORMATS.md section 5): u64 little-endian header length, a JSON
// header {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {str: str}}, then
// the raw little-endian tensor bytes. Loads in PyTorch with safetensors.torch.load_file.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "engine/common.h"

namespace engine {

struct SafeTensor {
    std::string name;
    std::string dtype;  // "F32", "F64", "I64" (others are read as raw bytes)
    std::vector<i64> shape;
    std::vector<u8> data;  // raw little-endian bytes, numel * element size

    template <typename T>
    std::vector<T> as() const;  // F32/F64 converted to T; throws FormatError otherwise
};

// Typed helpers to build entries.
SafeTensor make_safetensor(const std::string& name, const std::vector<i64>& shape,
                           const float* data);
SafeTensor make_safetensor(const std::string& name, const std::vector<i64>& shape,
                           const double* data);
SafeTensor make_safetensor_i64(const std::string& name, const std::vector<i64>& shape,
                               const i64* data);

// Writes tensors in the given order. Throws IoError naming the file.
void write_safetensors(const std::string& path, const std::vector<SafeTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});
// Reads every tensor (file order). Throws IoError / FormatError naming the file and what is wrong.
std::vector<SafeTensor> read_safetensors(const std::string& path,
                                         std::map<std::string, std::string>* metadata = nullptr);

}  // namespace engine
