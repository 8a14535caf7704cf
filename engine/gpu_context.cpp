// GpuContext: stream, cuBLAS/cuDNN handles and the shared workspace of one device.
#include "engine/gpu_context.h"

#include "engine/device.h"
#include "engine/error.h"
#ifdef ENGINE_CUDA
#include <cublas_v2.h>
#include <cudnn.h>

#include "engine/cuda_check.h"
#endif

namespace engine {

#ifdef ENGINE_CUDA
GpuContext::GpuContext(int device) : device_(device) {
    std::string why;
    ENGINE_CHECK(cuda_usable(&why), DeviceError, "GpuContext: ", why);
    ENGINE_CHECK(device >= 0 && device < cuda_device_count(), DeviceError, "GpuContext: device ",
                 device, " does not exist (", cuda_device_count(), " visible)");
    try {
        CUDA_CHECK(cudaSetDevice(device));
        CUDA_CHECK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
        CUBLAS_CHECK(cublasCreate(&cublas_));
        CUBLAS_CHECK(cublasSetStream(cublas_, stream_));
        CUDNN_CHECK(cudnnCreate(&cudnn_));
        CUDNN_CHECK(cudnnSetStream(cudnn_, stream_));
    } catch (...) {
        release();  // a throwing constructor runs no destructor: free what was created
        throw;
    }
}

void GpuContext::release() {
    if (workspace_) device_free(Device::cuda, workspace_, workspace_bytes_);
    if (cudnn_) cudnnDestroy(cudnn_);
    if (cublas_) cublasDestroy(cublas_);
    if (stream_) cudaStreamDestroy(stream_);
    workspace_ = nullptr;
    workspace_bytes_ = 0;
    cudnn_ = nullptr;
    cublas_ = nullptr;
    stream_ = nullptr;
}

GpuContext::~GpuContext() { release(); }

void* GpuContext::workspace(size_t bytes) {
    if (bytes > workspace_bytes_) {
        if (workspace_) {
            CUDA_CHECK(cudaStreamSynchronize(stream_));
            device_free(Device::cuda, workspace_, workspace_bytes_);
            // If the allocation below throws, the destructor must not free (and uncount) the
            // old block a second time.
            workspace_ = nullptr;
            workspace_bytes_ = 0;
        }
        workspace_ = device_alloc(Device::cuda, bytes);
        workspace_bytes_ = bytes;
    }
    return workspace_;
}

void GpuContext::synchronize() { CUDA_CHECK(cudaStreamSynchronize(stream_)); }

#else
GpuContext::GpuContext(int device) : device_(device) {
    throw DeviceError("GpuContext: built without the CUDA backend (CUDA=0 or nvcc not found)");
}
GpuContext::~GpuContext() {}
void* GpuContext::workspace(size_t) { return nullptr; }
void GpuContext::synchronize() {}
#endif

}  // namespace engine
