// Everything a CUDA launcher needs for one device: the device id, the one explicit stream every
// kernel of a training step runs on, cuBLAS and cuDNN handles bound to that stream, and one
// shared workspace (grown outside the step, never inside). CUDA launchers take a GpuContext&
// as their last argument; the CPU reference of the same op takes nothing in its place.
#pragma once
#include <cstddef>

#include "engine/common.h"

// The same opaque handle types as cublas_api.h and cudnn_graph.h declare.
struct cublasContext;
typedef struct cublasContext* cublasHandle_t;
struct cudnnContext;
typedef struct cudnnContext* cudnnHandle_t;

namespace engine {

class GpuContext {
public:
    // Selects the device, creates the stream and the handles. Throws DeviceError when the build
    // has no CUDA backend or the device is not usable.
    explicit GpuContext(int device = 0);
    ~GpuContext();
    GpuContext(const GpuContext&) = delete;
    GpuContext& operator=(const GpuContext&) = delete;

    int device() const { return device_; }
    cudaStream_t stream() const { return stream_; }
    cublasHandle_t cublas() const { return cublas_; }
    cudnnHandle_t cudnn() const { return cudnn_; }

    // The shared workspace, at least `bytes` long. Growing it frees and reallocates, so call
    // reserve_workspace with the largest need while building a model, not inside a step.
    void* workspace(size_t bytes);
    void reserve_workspace(size_t bytes) { workspace(bytes); }
    size_t workspace_bytes() const { return workspace_bytes_; }

    // Wait for all work queued on the stream (for tests and log intervals only).
    void synchronize();

private:
    void release();  // destroys whatever exists (constructor failure, destructor)
    int device_ = 0;
    cudaStream_t stream_ = nullptr;
    cublasHandle_t cublas_ = nullptr;
    cudnnHandle_t cudnn_ = nullptr;
    void* workspace_ = nullptr;
    size_t workspace_bytes_ = 0;
};

}  // namespace engine
