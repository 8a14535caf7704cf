// NvtxRange: a named range in Nsight Systems timelines, open for the lifetime of the object.
// Every CUDA launcher opens one named after the op ("prelu_forward"), so a profile shows each
// layer by name. NVTX 3 is header-only and costs next to nothing when no profiler is attached.
// In builds without CUDA the class is empty.
#pragma once
#ifdef ENGINE_CUDA
#include <nvtx3/nvToolsExt.h>
#endif

namespace engine {

class NvtxRange {
public:
#ifdef ENGINE_CUDA
    explicit NvtxRange(const char* name) { nvtxRangePushA(name); }
    ~NvtxRange() { nvtxRangePop(); }
#else
    explicit NvtxRange(const char*) {}
#endif
    NvtxRange(const NvtxRange&) = delete;
    NvtxRange& operator=(const NvtxRange&) = delete;
};

}  // namespace engine
