// Where memory lives and whether a GPU can be used. Device memory is counted in bytes (current
// and peak) so memory reports come from the allocator itself.
#pragma once
#include <string>

#include "engine/common.h"

namespace engine {

enum class Device { cpu, cuda };
const char* device_name(Device d);

// True when this build has the CUDA backend and a usable GPU is present. When false, *why (if
// given) says why: built without CUDA, no device, or the driver refused (for example "CUDA
// driver version is insufficient" on a machine with the toolkit but no GPU). Never throws.
bool cuda_usable(std::string* why = nullptr);
int cuda_device_count();  // 0 when not usable
bool built_with_cuda();

// Raw allocation on a device (cpu: 64-byte aligned host memory; cuda: cudaMalloc). Throws
// DeviceError with the size when allocation fails.
void* device_alloc(Device d, size_t bytes);
void device_free(Device d, void* p, size_t bytes);
// Synchronous zeroing (setup time: waits for all queued device work, complete on return).
void device_memset_zero(Device d, void* p, size_t bytes);
// Zeroing of device memory ordered on a stream (inside a GPU step: no host synchronisation).
void device_zero_async(void* p, size_t bytes, cudaStream_t stream);
// Copy between any two places (host<->device, device<->device, host<->host). Synchronous:
// waits for all queued device work, complete on return (setup, tests and log intervals only;
// never inside a GPU step).
void device_copy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes);
// Copy ordered on a stream (no host synchronisation): for pinned host <-> device transfers
// inside a GPU step.
void device_copy_async(void* dst, const void* src, size_t bytes, cudaStream_t stream);
// Pinned (page-locked) host memory for staging batches: pinned when `pin` and a GPU is usable,
// ordinary aligned memory otherwise. pinned_free knows which it was (a registry of the pinned
// pointers), so after a sticky CUDA error a failing cudaFreeHost leaks the block instead of
// handing pinned memory to free().
void* pinned_alloc(size_t bytes, bool pin = true);
void pinned_free(void* p);

// A point in a stream the host can wait for: reusing a pinned staging buffer waits only until
// the copy that read it has run, not for the whole stream. The CUDA event is created at the first
// record(), so a CPU run never touches the GPU. Without CUDA the calls do nothing.
class StreamEvent {
public:
    StreamEvent();
    ~StreamEvent();
    StreamEvent(const StreamEvent&) = delete;
    StreamEvent& operator=(const StreamEvent&) = delete;
    void record(cudaStream_t stream);
    void host_wait();  // returns at once when never recorded
private:
    void* event_ = nullptr;
    bool recorded_ = false;
};

struct MemoryCounter {
    size_t current = 0, peak = 0;
};
// Bytes currently allocated and the peak, per device, through device_alloc.
MemoryCounter memory_counter(Device d);
void reset_peak_memory(Device d);

}  // namespace engine
