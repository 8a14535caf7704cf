// 2-D convolution (NCHW, float, no bias), CUDA: cuDNN 9 legacy API. Descriptors and algorithms are
// chosen once per (device, shape), cached, and reused; the workspace comes from the GpuContext.
#include <cudnn.h>

#include <algorithm>
#include <climits>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>

#include "engine/cuda_check.h"
#include "engine/gpu_context.h"
#include "engine/nvtx.h"
#include "layers/conv2d.h"

namespace {

// An algorithm whose workspace exceeds this is skipped while another one fits: the shared
// workspace is sized by the largest conv of the model, and a few hundred MiB per device is the
// most a model should reserve for it.
constexpr size_t kMaxWorkspaceBytes = size_t(512) << 20;

// Everything cuDNN needs for one shape: the descriptors, the three algorithms and their
// workspace needs. Built once, never changed afterwards (so readers need no lock).
struct ConvPlan {
    cudnnTensorDescriptor_t x = nullptr, y = nullptr;
    cudnnFilterDescriptor_t w = nullptr;
    cudnnConvolutionDescriptor_t conv = nullptr;
    cudnnConvolutionFwdAlgo_t fwd_algo = CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
    cudnnConvolutionBwdDataAlgo_t bwd_data_algo = CUDNN_CONVOLUTION_BWD_DATA_ALGO_0;
    cudnnConvolutionBwdFilterAlgo_t bwd_filter_algo = CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0;
    size_t fwd_bytes = 0, bwd_data_bytes = 0, bwd_filter_bytes = 0;

    size_t max_bytes() const {
        return std::max(fwd_bytes, std::max(bwd_data_bytes, bwd_filter_bytes));
    }
    ConvPlan() = default;
    ConvPlan(const ConvPlan&) = delete;
    ConvPlan& operator=(const ConvPlan&) = delete;
    ~ConvPlan() {
        if (conv) cudnnDestroyConvolutionDescriptor(conv);
        if (w) cudnnDestroyFilterDescriptor(w);
        if (y) cudnnDestroyTensorDescriptor(y);
        if (x) cudnnDestroyTensorDescriptor(x);
    }
};

// (device, N, C, H, W, K, R, S, stride, pad)
using PlanKey = std::tuple<int, i64, i64, i64, i64, i64, i64, i64, i64, i64>;

std::mutex g_plan_mutex;
std::map<PlanKey, std::unique_ptr<ConvPlan>>& plan_cache() {
    static std::map<PlanKey, std::unique_ptr<ConvPlan>> cache;
    return cache;
}

std::string shape_text(const Conv2dShape& s) {
    return engine::str("conv2d (N ", s.N, ", C ", s.C, ", H ", s.H, ", W ", s.W, ") K ", s.K, " ",
                       s.R, "x", s.S, " stride ", s.stride, " pad ", s.pad);
}

// cuDNN's legacy descriptors take int dimensions and int strides, so every dimension and every
// tensor's element count must fit in an int.
int to_int(i64 v, const Conv2dShape& s) {
    ENGINE_CHECK(v >= 0 && v <= INT_MAX, engine::ShapeError, shape_text(s),
                 ": a size does not fit cuDNN's int dimensions (", v, ")");
    return (int)v;
}

// The first of cuDNN's heuristically ranked results (best first) that succeeded, is not a
// tensor-core (TF32) variant and fits the workspace cap; -1 when none does. Deterministic
// algorithms are preferred: BWD_DATA_ALGO_0 and BWD_FILTER_ALGO_0/3 sum with atomics, so two
// identical steps (a resumed run) would differ in the last bits. The descriptor stays in
// CUDNN_FMA_MATH whatever the result reports, so the algorithm runs its fp32 FMA kernels.
template <typename Perf>
int pick_algo(const Perf* perf, int count) {
    for (const bool need_deterministic : {true, false})
        for (int i = 0; i < count; ++i)
            if (perf[i].status == CUDNN_STATUS_SUCCESS &&
                perf[i].mathType != CUDNN_TENSOR_OP_MATH &&
                perf[i].mathType != CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION &&
                perf[i].memory <= kMaxWorkspaceBytes &&
                (!need_deterministic || perf[i].determinism == CUDNN_DETERMINISTIC))
                return i;
    return -1;
}

std::unique_ptr<ConvPlan> make_plan(const Conv2dShape& s, engine::GpuContext& g) {
    ENGINE_CHECK(s.N > 0 && s.C > 0 && s.H > 0 && s.W > 0 && s.K > 0 && s.R > 0 && s.S > 0 &&
                     s.stride > 0 && s.pad >= 0 && s.P() > 0 && s.Q() > 0,
                 engine::ShapeError, shape_text(s), ": invalid shape");
    to_int(s.in_size(), s);
    to_int(s.out_size(), s);
    to_int(s.weight_size(), s);
    auto p = std::make_unique<ConvPlan>();
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->x));
    CUDNN_CHECK(cudnnCreateTensorDescriptor(&p->y));
    CUDNN_CHECK(cudnnCreateFilterDescriptor(&p->w));
    CUDNN_CHECK(cudnnCreateConvolutionDescriptor(&p->conv));
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->x, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, to_int(s.N, s),
                                           to_int(s.C, s), to_int(s.H, s), to_int(s.W, s)));
    CUDNN_CHECK(cudnnSetTensor4dDescriptor(p->y, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, to_int(s.N, s),
                                           to_int(s.K, s), to_int(s.P(), s), to_int(s.Q(), s)));
    CUDNN_CHECK(cudnnSetFilter4dDescriptor(p->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, to_int(s.K, s),
                                           to_int(s.C, s), to_int(s.R, s), to_int(s.S, s)));
    // Cross-correlation (no kernel flip), as PyTorch and MXNet compute "convolution".
    CUDNN_CHECK(cudnnSetConvolution2dDescriptor(p->conv, to_int(s.pad, s), to_int(s.pad, s),
                                                to_int(s.stride, s), to_int(s.stride, s), 1, 1,
                                                CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
    // CUDNN_DEFAULT_MATH lets cuDNN use TF32 tensor cores on sm_80+ (10-bit mantissa, ~1e-3
    // relative error); FMA_MATH keeps full fp32 so the GPU agrees with the CPU reference.
    CUDNN_CHECK(cudnnSetConvolutionMathType(p->conv, CUDNN_FMA_MATH));
    // cuDNN's own output size must agree with Conv2dShape::P() and Q().
    int on = 0, oc = 0, oh = 0, ow = 0;
    CUDNN_CHECK(cudnnGetConvolution2dForwardOutputDim(p->conv, p->x, p->w, &on, &oc, &oh, &ow));
    ENGINE_CHECK(on == s.N && oc == s.K && oh == s.P() && ow == s.Q(), engine::ShapeError,
                 shape_text(s), ": cuDNN output (", on, ", ", oc, ", ", oh, ", ", ow,
                 ") differs from (N, K, P, Q)");

    // The *_v7 queries rank algorithms by heuristics without running kernels.
    {
        cudnnConvolutionFwdAlgoPerf_t perf[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
        int n = 0;
        CUDNN_CHECK(cudnnGetConvolutionForwardAlgorithm_v7(
            g.cudnn(), p->x, p->w, p->conv, p->y, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, perf));
        const int i = pick_algo(perf, n);
        // IMPLICIT_GEMM needs no workspace and supports every shape: the fallback.
        p->fwd_algo = i >= 0 ? perf[i].algo : CUDNN_CONVOLUTION_FWD_ALGO_IMPLICIT_GEMM;
        CUDNN_CHECK(cudnnGetConvolutionForwardWorkspaceSize(g.cudnn(), p->x, p->w, p->conv, p->y,
                                                            p->fwd_algo, &p->fwd_bytes));
    }
    {
        cudnnConvolutionBwdDataAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
        int n = 0;
        CUDNN_CHECK(cudnnGetConvolutionBackwardDataAlgorithm_v7(
            g.cudnn(), p->w, p->y, p->conv, p->x, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n, perf));
        const int i = pick_algo(perf, n);
        p->bwd_data_algo = i >= 0 ? perf[i].algo : CUDNN_CONVOLUTION_BWD_DATA_ALGO_0;
        CUDNN_CHECK(cudnnGetConvolutionBackwardDataWorkspaceSize(
            g.cudnn(), p->w, p->y, p->conv, p->x, p->bwd_data_algo, &p->bwd_data_bytes));
    }
    {
        cudnnConvolutionBwdFilterAlgoPerf_t perf[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
        int n = 0;
        CUDNN_CHECK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
            g.cudnn(), p->x, p->y, p->conv, p->w, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &n,
            perf));
        const int i = pick_algo(perf, n);
        p->bwd_filter_algo = i >= 0 ? perf[i].algo : CUDNN_CONVOLUTION_BWD_FILTER_ALGO_0;
        CUDNN_CHECK(cudnnGetConvolutionBackwardFilterWorkspaceSize(
            g.cudnn(), p->x, p->y, p->conv, p->w, p->bwd_filter_algo, &p->bwd_filter_bytes));
    }
    return p;
}

// The cached plan of this shape on g's device, made on first use. Plans are never erased, so
// the returned reference stays valid; the lock only guards the map (one thread per device).
const ConvPlan& get_plan(const Conv2dShape& s, engine::GpuContext& g) {
    const PlanKey key{g.device(), s.N, s.C, s.H, s.W, s.K, s.R, s.S, s.stride, s.pad};
    std::lock_guard<std::mutex> lock(g_plan_mutex);
    auto& cache = plan_cache();
    auto it = cache.find(key);
    if (it == cache.end()) it = cache.emplace(key, make_plan(s, g)).first;
    return *it->second;
}

}  // namespace

size_t conv2d_prepare_cuda(const Conv2dShape& s, engine::GpuContext& g) {
    return get_plan(s, g).max_bytes();
}

void conv2d_forward_cuda(float* out, const float* in, const float* weight, const Conv2dShape& s,
                         engine::GpuContext& g) {
    engine::NvtxRange r("conv2d_forward");
    const ConvPlan& p = get_plan(s, g);
    void* ws = p.fwd_bytes ? g.workspace(p.fwd_bytes) : nullptr;
    const float alpha = 1.f, beta = 0.f;  // out is written
    CUDNN_CHECK(cudnnConvolutionForward(g.cudnn(), &alpha, p.x, in, p.w, weight, p.conv, p.fwd_algo,
                                        ws, p.fwd_bytes, &beta, p.y, out));
}

void conv2d_backward_cuda(float* din, float* dweight, const float* dout, const float* in,
                          const float* weight, const Conv2dShape& s, engine::GpuContext& g) {
    engine::NvtxRange r("conv2d_backward");
    const ConvPlan& p = get_plan(s, g);
    const float one = 1.f, zero = 0.f;
    if (din) {
        // din = W^T * dout (the transposed convolution), written: beta = 0.
        void* ws = p.bwd_data_bytes ? g.workspace(p.bwd_data_bytes) : nullptr;
        CUDNN_CHECK(cudnnConvolutionBackwardData(g.cudnn(), &one, p.w, weight, p.y, dout, p.conv,
                                                 p.bwd_data_algo, ws, p.bwd_data_bytes, &zero, p.x,
                                                 din));
    }
    // dweight += sum over n, p, q of dout * in-patch: accumulated into the flat gradient, beta = 1.
    void* ws = p.bwd_filter_bytes ? g.workspace(p.bwd_filter_bytes) : nullptr;
    CUDNN_CHECK(cudnnConvolutionBackwardFilter(g.cudnn(), &one, p.x, in, p.y, dout, p.conv,
                                               p.bwd_filter_algo, ws, p.bwd_filter_bytes, &one, p.w,
                                               dweight));
}
