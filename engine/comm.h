// Gradient averaging across data-parallel ranks: the slot between backward and the optimiser.
// With one rank (the only mode so far) allreduce_mean is a no-op; the NCCL (GPU) and MPI (CPU)
// implementations plug in here without touching the training step (multi-GPU is the next issue).
#pragma once
#include "engine/common.h"

namespace engine {
class GpuContext;

class Comm {
public:
    Comm() = default;  // a single rank
    int rank() const { return rank_; }
    int world() const { return world_; }
    // buf: n floats of the flat gradient buffer (on the GPU when gpu != nullptr); on return every
    // rank holds the mean over ranks.
    void allreduce_mean(float* buf, i64 n, GpuContext* gpu) const {
        if (world_ == 1) return;
        (void)buf; (void)n; (void)gpu;
    }

private:
    int rank_ = 0, world_ = 1;
};

}  // namespace engine
