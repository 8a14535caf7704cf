// The improved residual unit of LResNet-IR (../shared/SPEC.md section 3) and the small building
// blocks the network is written with: a backend dispatcher (CPU reference or CUDA), a
// BatchNorm and a conv layer that register their tensors in a ParamStore under PyTorch names.
//
// Unit: out = BN3(conv2_s(PReLU(BN2(conv1(BN1(x)))))) + shortcut(x), where shortcut is x itself
// (identity) or BN(conv1x1_s(x)) (projection, when the stride is not 1 or the channel count
// changes); no activation after the add. Backward of the add: dout flows into both branches and
// the two branch gradients w.r.t. x are summed into din.
#pragma once
#include <string>

#include "engine/params.h"
#include "engine/tensor.h"
#include "layers/batchnorm.h"
#include "layers/conv2d.h"

namespace engine { class GpuContext; }

// Runs one op on the CPU reference (gpu == nullptr, T float or double) or on CUDA (gpu set,
// T = float, CUDA build). Every call is queued on gpu->stream(); none synchronises the host.
template <typename T>
struct LayerOps {
    engine::GpuContext* gpu = nullptr;

    engine::Device device() const { return gpu ? engine::Device::cuda : engine::Device::cpu; }
    // Workspace bytes cuDNN needs for this conv shape (0 on the CPU); caches the algorithms.
    size_t conv_prepare(const Conv2dShape& s) const;
    void conv_forward(T* out, const T* in, const T* w, const Conv2dShape& s) const;
    void conv_backward(T* din, T* dw, const T* dout, const T* in, const T* w,
                       const Conv2dShape& s) const;
    // training: batch statistics (save_mean/save_invstd written, running stats updated when the
    // pointers are not null); inference: running statistics.
    void bn_forward(bool training, T* out, T* save_mean, T* save_invstd, T* running_mean,
                    T* running_var, const T* in, const T* gamma, const T* beta,
                    const BatchNormShape& s) const;
    void bn_backward(bool training, T* din, T* dgamma, T* dbeta, const T* dout, const T* in,
                     const T* gamma, const T* save_mean, const T* save_invstd,
                     const T* running_mean, const T* running_var, const BatchNormShape& s) const;
    void prelu_forward(T* out, const T* in, const T* slope, i64 N, i64 C, i64 HW) const;
    void prelu_backward(T* din, T* dslope, const T* dout, const T* in, const T* slope, i64 N,
                        i64 C, i64 HW) const;
    void linear_forward(T* out, const T* in, const T* w, const T* b, i64 N, i64 IC,
                        i64 OC) const;
    void linear_backward(T* din, T* dw, T* db, const T* dout, const T* in, const T* w, i64 N,
                         i64 IC, i64 OC) const;
    void dropout_forward(T* out, const T* in, i64 n, float p, u64 seed, u64 offset) const;
    void dropout_backward(T* din, const T* dout, i64 n, float p, u64 seed, u64 offset) const;
    void accumulate(T* dst, const T* src, i64 n) const;          // dst += src
    void input_normalize(T* out, const T* in, i64 n) const;      // (in - 127.5) / 128
    void scale(T* x, double alpha, i64 n) const;                 // x *= alpha
    void zero(T* p, i64 n) const;                                // p = 0 (async on the stream)
};

// A BatchNorm (2d or 1d) whose four tensors are registered as PREFIX{weight, bias,
// running_mean, running_var}. fixed_gamma: weight is ParamKind::fixed (no gradient; the
// network's last BN, "features", keeps gamma = 1).
template <typename T>
struct BatchNormLayer {
    int weight = -1, bias = -1, running_mean = -1, running_var = -1;
    i64 C = 0;
    bool fixed_gamma = false;
    double eps = 2e-5, momentum = 0.9;
    engine::Buffer<T> save_mean, save_invstd;  // (C) from the last training forward

    void add(engine::ParamStore<T>& store, const std::string& prefix, i64 channels, double eps_,
             double momentum_, bool fixed_gamma_ = false);
    void allocate(engine::Device dev);
    void forward(const LayerOps<T>& ops, engine::ParamStore<T>& store, bool training, T* out,
                 const T* in, i64 N, i64 HW);
    // din may be null (skips the input gradient).
    void backward(const LayerOps<T>& ops, engine::ParamStore<T>& store, bool training, T* din,
                  const T* dout, const T* in, i64 N, i64 HW);
};

// A bias-free conv registered as PREFIX"weight" (K, C, R, S). shape.N is set per call.
template <typename T>
struct Conv2dLayer {
    int weight = -1;
    Conv2dShape shape;

    void add(engine::ParamStore<T>& store, const std::string& name, const Conv2dShape& s);
    Conv2dShape at(i64 n) const {
        Conv2dShape s = shape;
        s.N = n;
        return s;
    }
    void forward(const LayerOps<T>& ops, engine::ParamStore<T>& store, T* out, const T* in,
                 i64 n);
    void backward(const LayerOps<T>& ops, engine::ParamStore<T>& store, T* din, const T* dout,
                  const T* in, i64 n);
};

template <typename T>
class IRUnit {
public:
    // Registers the unit's tensors under prefix ("layer1.0.") in PyTorch's order: bn1, conv1,
    // bn2, prelu, conv2, bn3, downsample.0 (conv 1x1), downsample.1 (BN). Input (N, Cin, H, W),
    // output (N, Cout, H/stride, W/stride).
    IRUnit(engine::ParamStore<T>& store, const std::string& prefix, i64 Cin, i64 Cout, i64 H,
           i64 W, i64 stride, i64 max_batch, double bn_eps = 2e-5, double bn_momentum = 0.9);

    // Second phase, after store.allocate(): activation and cache buffers on the store's device.
    // scratch_a / scratch_b: two buffers of scratch_size() elements each, shared with other
    // units (the model's), or null to let the unit own them. Returns the cuDNN workspace bytes
    // its convolutions need (0 on the CPU); the caller reserves the maximum.
    size_t allocate(engine::GpuContext* gpu, T* scratch_a = nullptr, T* scratch_b = nullptr);
    // GPU: chooses (and caches) the cuDNN algorithms of its convolutions for batch n <= max
    // batch; returns the workspace bytes they need. 0 on the CPU. allocate() does it for the
    // max batch.
    size_t prepare(i64 n);

    // in: (n, Cin, H, W), must stay valid until backward(). Returns the output (n, Cout, P, Q),
    // owned by the unit, valid until the next forward.
    const T* forward(const T* in, i64 n, bool training);
    // dout: (n, Cout, P, Q); din: (n, Cin, H, W) written (null: skip it). Parameter gradients
    // accumulate. dout and din must not alias the scratch buffers. BN backward follows the mode
    // of the last forward.
    void backward(const T* dout, T* din);

    bool projection() const { return projection_; }
    i64 in_channels() const { return Cin_; }
    i64 out_channels() const { return Cout_; }
    i64 in_height() const { return H_; }
    i64 out_height() const { return P_; }
    i64 out_width() const { return Q_; }
    i64 in_numel(i64 n) const { return n * Cin_ * H_ * W_; }
    i64 out_numel(i64 n) const { return n * Cout_ * P_ * Q_; }
    i64 scratch_size() const;
    const T* output() const { return out_.data(); }

private:
    engine::ParamStore<T>& store_;
    LayerOps<T> ops_;
    i64 Cin_, Cout_, H_, W_, P_, Q_, stride_, max_batch_;
    bool projection_;
    BatchNormLayer<T> bn1_, bn2_, bn3_, ds_bn_;
    Conv2dLayer<T> conv1_, conv2_, ds_conv_;
    int prelu_ = -1;
    // Activations kept for backward: a1 = BN1(x), c1 = conv1(a1), a2 = BN2(c1), p = PReLU(a2),
    // c2 = conv2(p), d1 = downsample conv(x); out = BN3(c2) + shortcut.
    engine::Buffer<T> a1_, c1_, a2_, p_, c2_, d1_, out_;
    engine::Buffer<T> own_a_, own_b_;
    T* scratch_a_ = nullptr;
    T* scratch_b_ = nullptr;
    const T* in_ = nullptr;
    i64 n_ = 0;
    bool training_ = false;
};
