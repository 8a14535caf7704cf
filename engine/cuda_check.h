// Check macros for the CUDA runtime, cuBLAS, cuDNN and NCCL: on failure they throw
// engine::DeviceError naming the call, the error string, the file and the line.
// Include only from code built with ENGINE_CUDA.
#pragma once
#include <cuda_runtime.h>

#include "engine/error.h"

#define CUDA_CHECK(call)                                                                   \
    do {                                                                                   \
        const cudaError_t e_ = (call);                                                     \
        if (e_ != cudaSuccess)                                                             \
            throw ::engine::DeviceError(::engine::str(#call, " failed: ",                  \
                                                      cudaGetErrorString(e_), " at ",      \
                                                      __FILE__, ":", __LINE__));           \
    } while (0)

// Launch check: a kernel's configuration errors surface at the next call; this makes them
// surface here, without synchronising the stream.
#define CUDA_CHECK_LAUNCH() CUDA_CHECK(cudaGetLastError())

#define CUBLAS_CHECK(call)                                                                 \
    do {                                                                                   \
        const int s_ = (int)(call);                                                        \
        if (s_ != 0)                                                                       \
            throw ::engine::DeviceError(::engine::str(#call, " failed: cuBLAS status ", s_, \
                                                      " at ", __FILE__, ":", __LINE__));   \
    } while (0)

#define CUDNN_CHECK(call)                                                                  \
    do {                                                                                   \
        const cudnnStatus_t s_ = (call);                                                   \
        if (s_ != CUDNN_STATUS_SUCCESS)                                                    \
            throw ::engine::DeviceError(::engine::str(#call, " failed: ",                  \
                                                      cudnnGetErrorString(s_), " at ",     \
                                                      __FILE__, ":", __LINE__));           \
    } while (0)

#define NCCL_CHECK(call)                                                                   \
    do {                                                                                   \
        const ncclResult_t r_ = (call);                                                    \
        if (r_ != ncclSuccess)                                                             \
            throw ::engine::DeviceError(::engine::str(#call, " failed: ",                  \
                                                      ncclGetErrorString(r_), " at ",      \
                                                      __FILE__, ":", __LINE__));           \
    } while (0)
