// Block reductions shared by the loss kernels (CUDA only). The summation order is fixed by the
// thread layout, so results are deterministic run to run.
#pragma once
#include <cuda_runtime.h>

namespace loss_cuda {

__device__ inline float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    return v;
}

// Reduction of v over the block with a warp-level reduction warp_reduce (a functor), returned
// to every thread. empty is the value of a lane with no warp behind it. blockDim.x must be a
// multiple of 32 (at most 1024) and every thread of the block must call it (it synchronises).
// Each instantiation has its own shared slots; the closing barrier lets the next call reuse them.
template <typename T, typename WarpReduce>
__device__ inline T block_reduce(T v, T empty, WarpReduce warp_reduce) {
    __shared__ T part[32];
    __shared__ T total;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    v = warp_reduce(v);
    if (lane == 0) part[warp] = v;
    __syncthreads();
    if (warp == 0) {
        T t = lane < (int)(blockDim.x >> 5) ? part[lane] : empty;
        t = warp_reduce(t);
        if (lane == 0) total = t;
    }
    __syncthreads();
    const T r = total;
    __syncthreads();
    return r;
}

struct WarpSum {
    __device__ float operator()(float v) const { return warp_sum(v); }
};

// Sum of v over the block, returned to every thread (the block_reduce rules apply).
__device__ inline float block_sum(float v) { return block_reduce(v, 0.f, WarpSum{}); }

// Row-wise L2 normalisation, one block per row: out = in / |in|, norm = |in|. A zero row gives
// an infinite inverse norm (non-finite output): the CUDA losses report bad data that way.
// (A template, so that every .cu including this header may instantiate it without clashes.)
template <typename T>
__global__ void normalize_rows_kernel(T* out, T* norm, const T* in, long long D) {
    const long long n = blockIdx.x;
    const T* v = in + n * D;
    T ss = 0;
    for (long long d = threadIdx.x; d < D; d += blockDim.x) ss += v[d] * v[d];
    const T r = sqrt(block_sum(ss));
    const T inv = T(1) / r;
    for (long long d = threadIdx.x; d < D; d += blockDim.x) out[n * D + d] = v[d] * inv;
    if (threadIdx.x == 0) norm[n] = r;
}

// Online softmax state of a set of logits: max, sum of exp(z - max), first argmax.
struct SoftmaxState {
    float mx, sum;
    long long arg;
};

__device__ inline SoftmaxState combine(SoftmaxState a, SoftmaxState b) {
    if (a.sum == 0.f) return b;  // empty (a thread that saw no element)
    if (b.sum == 0.f) return a;
    SoftmaxState r;
    r.mx = fmaxf(a.mx, b.mx);
    r.sum = a.sum * expf(a.mx - r.mx) + b.sum * expf(b.mx - r.mx);
    r.arg = a.mx > b.mx ? a.arg : (b.mx > a.mx ? b.arg : (a.arg < b.arg ? a.arg : b.arg));
    return r;
}

__device__ inline SoftmaxState warp_combine(SoftmaxState v) {
    for (int o = 16; o > 0; o >>= 1) {
        SoftmaxState w;
        w.mx = __shfl_down_sync(0xffffffffu, v.mx, o);
        w.sum = __shfl_down_sync(0xffffffffu, v.sum, o);
        w.arg = __shfl_down_sync(0xffffffffu, v.arg, o);
        v = combine(v, w);
    }
    return v;
}

struct WarpCombine {
    __device__ SoftmaxState operator()(SoftmaxState v) const { return warp_combine(v); }
};

// Block-wide online softmax over one row; result to every thread.
__device__ inline SoftmaxState block_softmax_state(SoftmaxState v) {
    return block_reduce(v, SoftmaxState{0.f, 0.f, 0}, WarpCombine{});
}

// Pass 1 for one row: each thread folds its strided elements into a SoftmaxState.
__device__ inline SoftmaxState row_state(const float* row, long long C, long long y, float zy,
                                         float s) {
    SoftmaxState st{-INFINITY, 0.f, 0};
    for (long long j = threadIdx.x; j < C; j += blockDim.x) {
        const float z = j == y ? zy : s * row[j];
        if (st.sum == 0.f) {
            st = SoftmaxState{z, 1.f, j};
        } else if (z > st.mx) {
            st.sum = st.sum * expf(st.mx - z) + 1.f;
            st.mx = z;
            st.arg = j;
        } else {
            st.sum += expf(z - st.mx);
        }
    }
    return block_softmax_state(st);
}

}  // namespace loss_cuda
