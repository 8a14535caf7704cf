// The improved residual unit (forward and backward as a fixed sequence of layer calls), the
// BatchNorm / conv building blocks, and the CPU-or-CUDA dispatcher the network uses.
#include "layers/ir_unit.h"

#include <algorithm>
#include <type_traits>

#include "engine/error.h"
#include "engine/gpu_context.h"
#include "layers/dropout.h"
#include "layers/elementwise.h"
#include "layers/linear.h"
#include "layers/prelu.h"
#ifdef ENGINE_CUDA
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "engine/cuda_check.h"
#endif

using engine::Buffer;
using engine::Device;
using engine::ParamKind;
using engine::ParamStore;

// ---------------------------------------------------------------------------------------------
// LayerOps: CPU when gpu is null, else the CUDA launcher of the same op (float only).

namespace {
[[noreturn]] void no_cuda_path(const char* op) {
    throw engine::ArgError(engine::str(
        op, ": the CUDA path needs a CUDA build (ENGINE_CUDA) and T = float"));
}
}  // namespace

#ifdef ENGINE_CUDA
// The CUDA launchers exist for float only; for T = double the branch is discarded.
#define ON_GPU(op, call)                                \
    if constexpr (std::is_same<T, float>::value) {      \
        call;                                           \
        return;                                         \
    }                                                   \
    no_cuda_path(op)
#else
#define ON_GPU(op, call) no_cuda_path(op)
#endif

template <typename T>
size_t LayerOps<T>::conv_prepare(const Conv2dShape& s) const {
    if (!gpu) return 0;
#ifdef ENGINE_CUDA
    if constexpr (std::is_same<T, float>::value) return conv2d_prepare_cuda(s, *gpu);
#endif
    no_cuda_path("conv2d_prepare");
}

template <typename T>
void LayerOps<T>::conv_forward(T* out, const T* in, const T* w, const Conv2dShape& s) const {
    if (!gpu) return conv2d_forward_cpu(out, in, w, s);
    ON_GPU("conv2d_forward", conv2d_forward_cuda(out, in, w, s, *gpu));
}

template <typename T>
void LayerOps<T>::conv_backward(T* din, T* dw, const T* dout, const T* in, const T* w,
                                const Conv2dShape& s) const {
    if (!gpu) return conv2d_backward_cpu(din, dw, dout, in, w, s);
    ON_GPU("conv2d_backward", conv2d_backward_cuda(din, dw, dout, in, w, s, *gpu));
}

template <typename T>
void LayerOps<T>::bn_forward(bool training, T* out, T* save_mean, T* save_invstd,
                             T* running_mean, T* running_var, const T* in, const T* gamma,
                             const T* beta, const BatchNormShape& s) const {
    if (!gpu) {
        if (training)
            batchnorm_forward_train_cpu(out, save_mean, save_invstd, running_mean, running_var, in,
                                        gamma, beta, s);
        else
            batchnorm_forward_infer_cpu(out, in, gamma, beta, running_mean, running_var, s);
        return;
    }
    ON_GPU("batchnorm_forward",
           training ? batchnorm_forward_train_cuda(out, save_mean, save_invstd, running_mean,
                                                   running_var, in, gamma, beta, s, *gpu)
                    : batchnorm_forward_infer_cuda(out, in, gamma, beta, running_mean,
                                                   running_var, s, *gpu));
}

template <typename T>
void LayerOps<T>::bn_backward(bool training, T* din, T* dgamma, T* dbeta, const T* dout,
                              const T* in, const T* gamma, const T* save_mean,
                              const T* save_invstd, const T* running_mean, const T* running_var,
                              const BatchNormShape& s) const {
    if (!gpu) {
        if (training)
            batchnorm_backward_train_cpu(din, dgamma, dbeta, dout, in, gamma, save_mean,
                                         save_invstd, s);
        else
            batchnorm_backward_infer_cpu(din, dgamma, dbeta, dout, in, gamma, running_mean,
                                         running_var, s);
        return;
    }
    ON_GPU("batchnorm_backward",
           training ? batchnorm_backward_train_cuda(din, dgamma, dbeta, dout, in, gamma,
                                                    save_mean, save_invstd, s, *gpu)
                    : batchnorm_backward_infer_cuda(din, dgamma, dbeta, dout, in, gamma,
                                                    running_mean, running_var, s, *gpu));
}

template <typename T>
void LayerOps<T>::prelu_forward(T* out, const T* in, const T* slope, i64 N, i64 C,
                                i64 HW) const {
    if (!gpu) return prelu_forward_cpu(out, in, slope, N, C, HW);
    ON_GPU("prelu_forward", prelu_forward_cuda(out, in, slope, N, C, HW, *gpu));
}

template <typename T>
void LayerOps<T>::prelu_backward(T* din, T* dslope, const T* dout, const T* in, const T* slope,
                                 i64 N, i64 C, i64 HW) const {
    if (!gpu) return prelu_backward_cpu(din, dslope, dout, in, slope, N, C, HW);
    ON_GPU("prelu_backward", prelu_backward_cuda(din, dslope, dout, in, slope, N, C, HW, *gpu));
}

template <typename T>
void LayerOps<T>::linear_forward(T* out, const T* in, const T* w, const T* b, i64 N, i64 IC,
                                 i64 OC) const {
    if (!gpu) return linear_forward_cpu(out, in, w, b, N, IC, OC);
    ON_GPU("linear_forward", linear_forward_cuda(out, in, w, b, N, IC, OC, *gpu));
}

template <typename T>
void LayerOps<T>::linear_backward(T* din, T* dw, T* db, const T* dout, const T* in, const T* w,
                                  i64 N, i64 IC, i64 OC) const {
    if (!gpu) return linear_backward_cpu(din, dw, db, dout, in, w, N, IC, OC);
    ON_GPU("linear_backward", linear_backward_cuda(din, dw, db, dout, in, w, N, IC, OC, *gpu));
}

template <typename T>
void LayerOps<T>::dropout_forward(T* out, const T* in, i64 n, float p, u64 seed,
                                  u64 offset) const {
    if (!gpu) return dropout_forward_cpu(out, in, n, p, seed, offset);
    ON_GPU("dropout_forward", dropout_forward_cuda(out, in, n, p, seed, offset, *gpu));
}

template <typename T>
void LayerOps<T>::dropout_backward(T* din, const T* dout, i64 n, float p, u64 seed,
                                   u64 offset) const {
    if (!gpu) return dropout_backward_cpu(din, dout, n, p, seed, offset);
    ON_GPU("dropout_backward", dropout_backward_cuda(din, dout, n, p, seed, offset, *gpu));
}

template <typename T>
void LayerOps<T>::accumulate(T* dst, const T* src, i64 n) const {
    if (!gpu) return accumulate_cpu(dst, src, n);
    ON_GPU("accumulate", accumulate_cuda(dst, src, n, *gpu));
}

template <typename T>
void LayerOps<T>::input_normalize(T* out, const T* in, i64 n) const {
    if (!gpu) return input_normalize_cpu(out, in, n);
    ON_GPU("input_normalize", input_normalize_cuda(out, in, n, *gpu));
}

template <typename T>
void LayerOps<T>::scale(T* x, double alpha, i64 n) const {
    if (!gpu) {
        const T a = (T)alpha;
        for (i64 i = 0; i < n; ++i) x[i] *= a;
        return;
    }
#ifdef ENGINE_CUDA
    if constexpr (std::is_same<T, float>::value) {
        // cuBLAS scal on the context's stream; the host pointer mode is set for the call and
        // restored, so other users of the handle see no change.
        const float a = (float)alpha;
        cublasPointerMode_t mode;
        CUBLAS_CHECK(cublasGetPointerMode(gpu->cublas(), &mode));
        CUBLAS_CHECK(cublasSetPointerMode(gpu->cublas(), CUBLAS_POINTER_MODE_HOST));
        CUBLAS_CHECK(cublasSscal_64(gpu->cublas(), n, &a, x, 1));
        CUBLAS_CHECK(cublasSetPointerMode(gpu->cublas(), mode));
        return;
    }
#endif
    no_cuda_path("scale");
}

template <typename T>
void LayerOps<T>::zero(T* p, i64 n) const {
    if (n == 0) return;
    if (!gpu) {
        std::fill(p, p + n, T(0));
        return;
    }
#ifdef ENGINE_CUDA
    // Async on the step's stream: a plain cudaMemset would run on the legacy default stream,
    // which is not ordered with the context's non-blocking stream.
    CUDA_CHECK(cudaMemsetAsync(p, 0, (size_t)n * sizeof(T), gpu->stream()));
    return;
#endif
    no_cuda_path("zero");
}

#undef ON_GPU

// ---------------------------------------------------------------------------------------------
// BatchNormLayer and Conv2dLayer

template <typename T>
void BatchNormLayer<T>::add(ParamStore<T>& store, const std::string& prefix, i64 channels,
                            double eps_, double momentum_, bool fixed_gamma_) {
    C = channels;
    eps = eps_;
    momentum = momentum_;
    fixed_gamma = fixed_gamma_;
    weight = store.add(prefix + "weight", {C}, fixed_gamma ? ParamKind::fixed : ParamKind::learnt);
    bias = store.add(prefix + "bias", {C});
    running_mean = store.add(prefix + "running_mean", {C}, ParamKind::state);
    running_var = store.add(prefix + "running_var", {C}, ParamKind::state);
}

template <typename T>
void BatchNormLayer<T>::allocate(Device dev) {
    save_mean = Buffer<T>(C, dev);
    save_invstd = Buffer<T>(C, dev);
}

template <typename T>
void BatchNormLayer<T>::forward(const LayerOps<T>& ops, ParamStore<T>& store, bool training,
                                T* out, const T* in, i64 N, i64 HW) {
    BatchNormShape s;
    s.N = N;
    s.C = C;
    s.HW = HW;
    s.eps = eps;
    s.momentum = momentum;
    ops.bn_forward(training, out, save_mean.data(), save_invstd.data(),
                   store.value(running_mean), store.value(running_var), in, store.value(weight),
                   store.value(bias), s);
}

template <typename T>
void BatchNormLayer<T>::backward(const LayerOps<T>& ops, ParamStore<T>& store, bool training,
                                 T* din, const T* dout, const T* in, i64 N, i64 HW) {
    BatchNormShape s;
    s.N = N;
    s.C = C;
    s.HW = HW;
    s.eps = eps;
    s.momentum = momentum;
    T* dgamma = fixed_gamma ? nullptr : store.grad(weight);
    ops.bn_backward(training, din, dgamma, store.grad(bias), dout, in, store.value(weight),
                    save_mean.data(), save_invstd.data(), store.value(running_mean),
                    store.value(running_var), s);
}

template <typename T>
void Conv2dLayer<T>::add(ParamStore<T>& store, const std::string& name, const Conv2dShape& s) {
    shape = s;
    weight = store.add(name, {s.K, s.C, s.R, s.S});
}

template <typename T>
void Conv2dLayer<T>::forward(const LayerOps<T>& ops, ParamStore<T>& store, T* out, const T* in,
                             i64 n) {
    ops.conv_forward(out, in, store.value(weight), at(n));
}

template <typename T>
void Conv2dLayer<T>::backward(const LayerOps<T>& ops, ParamStore<T>& store, T* din,
                              const T* dout, const T* in, i64 n) {
    ops.conv_backward(din, store.grad(weight), dout, in, store.value(weight), at(n));
}

// ---------------------------------------------------------------------------------------------
// IRUnit

template <typename T>
IRUnit<T>::IRUnit(ParamStore<T>& store, const std::string& prefix, i64 Cin, i64 Cout, i64 H,
                  i64 W, i64 stride, i64 max_batch, double bn_eps, double bn_momentum)
    : store_(store), Cin_(Cin), Cout_(Cout), H_(H), W_(W), stride_(stride),
      max_batch_(max_batch) {
    ENGINE_CHECK(Cin > 0 && Cout > 0 && H > 0 && W > 0 && max_batch > 0, engine::ShapeError,
                 "IRUnit ", prefix, ": bad shape Cin ", Cin, " Cout ", Cout, " H ", H, " W ", W,
                 " max_batch ", max_batch);
    ENGINE_CHECK(stride == 1 || stride == 2, engine::ShapeError, "IRUnit ", prefix, ": stride ",
                 stride, " (1 or 2 supported)");
    projection_ = stride != 1 || Cin != Cout;

    Conv2dShape c1;  // 3x3, stride 1, pad 1: Cin -> Cout at H x W
    c1.C = Cin;
    c1.H = H;
    c1.W = W;
    c1.K = Cout;
    c1.R = c1.S = 3;
    c1.stride = 1;
    c1.pad = 1;
    Conv2dShape c2 = c1;  // 3x3, the unit's stride, pad 1: Cout -> Cout
    c2.C = Cout;
    c2.stride = stride;
    P_ = c2.P();
    Q_ = c2.Q();
    Conv2dShape ds = c1;  // 1x1, the unit's stride, no pad: Cin -> Cout
    ds.R = ds.S = 1;
    ds.pad = 0;
    ds.stride = stride;
    ENGINE_CHECK(ds.P() == P_ && ds.Q() == Q_, engine::ShapeError, "IRUnit ", prefix,
                 ": main branch output ", P_, "x", Q_, " and shortcut output ", ds.P(), "x",
                 ds.Q(), " differ (odd input size ", H, "x", W, " with stride 2?)");

    // Registration order = PyTorch IBasicBlock's module order.
    bn1_.add(store, prefix + "bn1.", Cin, bn_eps, bn_momentum);
    conv1_.add(store, prefix + "conv1.weight", c1);
    bn2_.add(store, prefix + "bn2.", Cout, bn_eps, bn_momentum);
    prelu_ = store.add(prefix + "prelu.weight", {Cout});
    conv2_.add(store, prefix + "conv2.weight", c2);
    bn3_.add(store, prefix + "bn3.", Cout, bn_eps, bn_momentum);
    if (projection_) {
        ds_conv_.add(store, prefix + "downsample.0.weight", ds);
        ds_bn_.add(store, prefix + "downsample.1.", Cout, bn_eps, bn_momentum);
    }
}

template <typename T>
i64 IRUnit<T>::scratch_size() const {
    // Forward: the shortcut BN output (Cout, P, Q). Backward: gradients of shapes (Cin, H, W),
    // (Cout, H, W) and (Cout, P, Q).
    return max_batch_ * std::max(Cin_, Cout_) * H_ * W_;
}

template <typename T>
size_t IRUnit<T>::allocate(engine::GpuContext* gpu, T* scratch_a, T* scratch_b) {
    ENGINE_CHECK(store_.allocated(), engine::ArgError,
                 "IRUnit::allocate before the ParamStore is allocated");
    ops_.gpu = gpu;
    const Device dev = ops_.device();
    ENGINE_CHECK(store_.device() == dev, engine::ArgError,
                 "IRUnit::allocate: the ParamStore lives on ", engine::device_name(store_.device()),
                 ", the unit on ", engine::device_name(dev));
    const i64 B = max_batch_;
    a1_ = Buffer<T>(B * Cin_ * H_ * W_, dev);
    c1_ = Buffer<T>(B * Cout_ * H_ * W_, dev);
    a2_ = Buffer<T>(B * Cout_ * H_ * W_, dev);
    p_ = Buffer<T>(B * Cout_ * H_ * W_, dev);
    c2_ = Buffer<T>(out_numel(B), dev);
    out_ = Buffer<T>(out_numel(B), dev);
    if (projection_) d1_ = Buffer<T>(out_numel(B), dev);
    for (BatchNormLayer<T>* bn : {&bn1_, &bn2_, &bn3_}) bn->allocate(dev);
    if (projection_) ds_bn_.allocate(dev);
    if (scratch_a && scratch_b) {
        scratch_a_ = scratch_a;
        scratch_b_ = scratch_b;
    } else {
        own_a_ = Buffer<T>(scratch_size(), dev);
        own_b_ = Buffer<T>(scratch_size(), dev);
        scratch_a_ = own_a_.data();
        scratch_b_ = own_b_.data();
    }
    return prepare(B);
}

template <typename T>
size_t IRUnit<T>::prepare(i64 n) {
    ENGINE_CHECK(n > 0 && n <= max_batch_, engine::ShapeError, "IRUnit::prepare: batch ", n,
                 " outside 1..", max_batch_);
    if (!ops_.gpu) return 0;
    size_t ws = std::max(ops_.conv_prepare(conv1_.at(n)), ops_.conv_prepare(conv2_.at(n)));
    if (projection_) ws = std::max(ws, ops_.conv_prepare(ds_conv_.at(n)));
    return ws;
}

template <typename T>
const T* IRUnit<T>::forward(const T* in, i64 n, bool training) {
    ENGINE_CHECK(a1_.size() > 0, engine::ArgError, "IRUnit::forward before allocate()");
    ENGINE_CHECK(n > 0 && n <= max_batch_, engine::ShapeError, "IRUnit::forward: batch ", n,
                 " outside 1..", max_batch_);
    in_ = in;
    n_ = n;
    training_ = training;
    const i64 HW = H_ * W_, PQ = P_ * Q_;
    bn1_.forward(ops_, store_, training, a1_.data(), in, n, HW);
    conv1_.forward(ops_, store_, c1_.data(), a1_.data(), n);
    bn2_.forward(ops_, store_, training, a2_.data(), c1_.data(), n, HW);
    ops_.prelu_forward(p_.data(), a2_.data(), store_.value(prelu_), n, Cout_, HW);
    conv2_.forward(ops_, store_, c2_.data(), p_.data(), n);
    bn3_.forward(ops_, store_, training, out_.data(), c2_.data(), n, PQ);
    if (projection_) {
        ds_conv_.forward(ops_, store_, d1_.data(), in, n);
        ds_bn_.forward(ops_, store_, training, scratch_a_, d1_.data(), n, PQ);
        ops_.accumulate(out_.data(), scratch_a_, out_numel(n));
    } else {
        ops_.accumulate(out_.data(), in, out_numel(n));
    }
    return out_.data();
}

template <typename T>
void IRUnit<T>::backward(const T* dout, T* din) {
    ENGINE_CHECK(in_ != nullptr, engine::ArgError, "IRUnit::backward without a forward");
    const i64 n = n_, HW = H_ * W_, PQ = P_ * Q_;
    T* A = scratch_a_;
    T* B = scratch_b_;
    // Main branch, in reverse. The add passes dout unchanged to both branches.
    bn3_.backward(ops_, store_, training_, A, dout, c2_.data(), n, PQ);            // A = d c2
    conv2_.backward(ops_, store_, B, A, p_.data(), n);                             // B = d p
    ops_.prelu_backward(A, store_.grad(prelu_), B, a2_.data(), store_.value(prelu_), n, Cout_,
                        HW);                                                       // A = d a2
    bn2_.backward(ops_, store_, training_, B, A, c1_.data(), n, HW);               // B = d c1
    conv1_.backward(ops_, store_, A, B, a1_.data(), n);  // A = d a1 (BN1's dgamma needs it)
    bn1_.backward(ops_, store_, training_, din, A, in_, n, HW);                    // din = d x
    // Shortcut branch, summed into din.
    if (projection_) {
        ds_bn_.backward(ops_, store_, training_, A, dout, d1_.data(), n, PQ);      // A = d d1
        ds_conv_.backward(ops_, store_, din ? B : nullptr, A, in_, n);             // B = d x
        if (din) ops_.accumulate(din, B, in_numel(n));
    } else if (din) {
        ops_.accumulate(din, dout, in_numel(n));
    }
}

template struct LayerOps<float>;
template struct LayerOps<double>;
template struct BatchNormLayer<float>;
template struct BatchNormLayer<double>;
template struct Conv2dLayer<float>;
template struct Conv2dLayer<double>;
template class IRUnit<float>;
template class IRUnit<double>;
