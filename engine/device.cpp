// Memory on either device, its byte counter, and GPU detection. Compiled by the host compiler;
// the CUDA runtime API is used only when the build has ENGINE_CUDA.
#include "engine/device.h"

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <unordered_set>

#include "engine/error.h"
#ifdef ENGINE_CUDA
#include <cuda_runtime.h>

#include "engine/cuda_check.h"
#endif

namespace engine {
namespace {
std::atomic<size_t> g_current[2], g_peak[2];

void count_alloc(Device d, size_t bytes) {
    const int i = (int)d;
    const size_t now = g_current[i].fetch_add(bytes) + bytes;
    size_t peak = g_peak[i].load();
    while (now > peak && !g_peak[i].compare_exchange_weak(peak, now)) {
    }
}
}  // namespace

const char* device_name(Device d) { return d == Device::cpu ? "cpu" : "cuda"; }

bool built_with_cuda() {
#ifdef ENGINE_CUDA
    return true;
#else
    return false;
#endif
}

bool cuda_usable(std::string* why) {
#ifdef ENGINE_CUDA
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        if (why) *why = str("no usable GPU: ", cudaGetErrorString(e));
        cudaGetLastError();  // clear the sticky error so later calls are not confused
        return false;
    }
    if (n == 0) {
        if (why) *why = "no usable GPU: no CUDA device found";
        return false;
    }
    if (why) why->clear();
    return true;
#else
    if (why) *why = "built without the CUDA backend (CUDA=0 or nvcc not found)";
    return false;
#endif
}

int cuda_device_count() {
#ifdef ENGINE_CUDA
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return n;
#else
    return 0;
#endif
}

void* device_alloc(Device d, size_t bytes) {
    if (bytes == 0) return nullptr;
    void* p = nullptr;
    if (d == Device::cpu) {
        p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
        ENGINE_CHECK(p, DeviceError, "host allocation of ", bytes, " bytes failed");
    } else {
#ifdef ENGINE_CUDA
        const cudaError_t e = cudaMalloc(&p, bytes);
        ENGINE_CHECK(e == cudaSuccess, DeviceError, "cudaMalloc of ", bytes,
                     " bytes failed: ", cudaGetErrorString(e), " (", g_current[1].load(),
                     " bytes already allocated)");
#else
        throw DeviceError("device_alloc(cuda): built without the CUDA backend");
#endif
    }
    count_alloc(d, bytes);
    return p;
}

void device_free(Device d, void* p, size_t bytes) {
    if (!p) return;
    g_current[(int)d].fetch_sub(bytes);
    if (d == Device::cpu) {
        std::free(p);
    } else {
#ifdef ENGINE_CUDA
        cudaFree(p);  // never throws from a destructor path
#endif
    }
}

void device_memset_zero(Device d, void* p, size_t bytes) {
    if (!p || bytes == 0) return;
    if (d == Device::cpu) {
        std::memset(p, 0, bytes);
        return;
    }
#ifdef ENGINE_CUDA
    // cudaMemset runs on the legacy default stream, which is not ordered with our non-blocking
    // compute streams either way: wait for queued kernels first (they may still use the
    // buffer), and finish it here, so this stays a synchronous, setup-time call. Inside a
    // training step use device_zero_async on the step's stream instead.
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaMemset(p, 0, bytes));
    CUDA_CHECK(cudaDeviceSynchronize());
#else
    throw DeviceError("device_memset_zero(cuda): built without the CUDA backend");
#endif
}

void device_zero_async(void* p, size_t bytes, cudaStream_t stream) {
    if (!p || bytes == 0) return;
#ifdef ENGINE_CUDA
    CUDA_CHECK(cudaMemsetAsync(p, 0, bytes, stream));
#else
    throw DeviceError("device_zero_async: built without the CUDA backend");
#endif
}

void device_copy(void* dst, Device dst_dev, const void* src, Device src_dev, size_t bytes) {
    if (bytes == 0) return;
    if (dst_dev == Device::cpu && src_dev == Device::cpu) {
        std::memcpy(dst, src, bytes);
        return;
    }
#ifdef ENGINE_CUDA
    // The legacy-stream cudaMemcpy is not ordered with the non-blocking compute streams: wait
    // for queued kernels first (a download would read stale values, an upload overwrite data a
    // kernel still reads). A pageable upload may return before the data has landed, and kernels
    // on non-blocking streams do not order after it: synchronise so the copy is complete.
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDefault));
    CUDA_CHECK(cudaDeviceSynchronize());
#else
    throw DeviceError("device_copy: built without the CUDA backend");
#endif
}

void device_copy_async(void* dst, const void* src, size_t bytes, cudaStream_t stream) {
    if (bytes == 0) return;
#ifdef ENGINE_CUDA
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream));
#else
    throw DeviceError("device_copy_async: built without the CUDA backend");
#endif
}

namespace {
std::mutex g_pinned_mutex;
std::unordered_set<void*> g_pinned;  // blocks from cudaMallocHost, not yet freed
}  // namespace

void* pinned_alloc(size_t bytes, bool pin) {
#ifdef ENGINE_CUDA
    if (pin && cuda_usable()) {
        void* p = nullptr;
        CUDA_CHECK(cudaMallocHost(&p, bytes));
        std::lock_guard<std::mutex> lock(g_pinned_mutex);
        g_pinned.insert(p);
        return p;
    }
#else
    (void)pin;
#endif
    void* p = std::aligned_alloc(64, (bytes + 63) / 64 * 64);
    ENGINE_CHECK(p, DeviceError, "host allocation of ", bytes, " bytes failed");
    return p;
}

void pinned_free(void* p) {
    if (!p) return;
    {
        std::lock_guard<std::mutex> lock(g_pinned_mutex);
        if (g_pinned.erase(p) == 1) {
#ifdef ENGINE_CUDA
            // Fails only after a sticky CUDA error (the process is ending with it): leak.
            if (cudaFreeHost(p) != cudaSuccess) cudaGetLastError();
#endif
            return;
        }
    }
    std::free(p);
}

StreamEvent::StreamEvent() = default;

StreamEvent::~StreamEvent() {
#ifdef ENGINE_CUDA
    if (event_) cudaEventDestroy((cudaEvent_t)event_);
#endif
}

void StreamEvent::record(cudaStream_t stream) {
#ifdef ENGINE_CUDA
    if (!event_) {
        cudaEvent_t e = nullptr;
        CUDA_CHECK(cudaEventCreateWithFlags(&e, cudaEventDisableTiming));
        event_ = e;
    }
    CUDA_CHECK(cudaEventRecord((cudaEvent_t)event_, stream));
    recorded_ = true;
#else
    (void)stream;
#endif
}

void StreamEvent::host_wait() {
#ifdef ENGINE_CUDA
    if (event_ && recorded_) CUDA_CHECK(cudaEventSynchronize((cudaEvent_t)event_));
#endif
}

MemoryCounter memory_counter(Device d) {
    MemoryCounter m;
    m.current = g_current[(int)d].load();
    m.peak = g_peak[(int)d].load();
    return m;
}

void reset_peak_memory(Device d) { g_peak[(int)d].store(g_current[(int)d].load()); }

}  // namespace engine
