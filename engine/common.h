// Basic types shared by every part of the engine: 64-bit sizes and the host/device marker.
#pragma once
#include <cstddef>
#include <cstdint>

using i64 = std::int64_t;
using u64 = std::uint64_t;
using u32 = std::uint32_t;
using u8 = std::uint8_t;

// Functions that must compile for both the CPU reference and CUDA kernels (the RNG, small
// maths helpers) are marked ENGINE_HD.
#if defined(__CUDACC__)
#define ENGINE_HD __host__ __device__ inline
#else
#define ENGINE_HD inline
#endif

// In a CPU-only build the CUDA stream type is still named in headers (the CUDA launchers are
// declared beside the CPU functions); this is the same type cuda_runtime.h declares.
struct CUstream_st;
typedef struct CUstream_st* cudaStream_t;
