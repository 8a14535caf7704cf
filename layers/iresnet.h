// The LResNet-IR network ("iresnet", output E) of ../shared/SPEC.md section 3, as a static model:
// built once for (depth, width, input size, max batch, device), it owns one ParamStore (flat
// parameters, flat gradients, BN running statistics apart) and preallocated activations and
// caches. forward() runs the calls in order; backward() runs them in reverse and accumulates
// parameter gradients. No autograd: the sequence of calls is the code (layers/iresnet.cpp).
//
// Parameter names and order are PyTorch InsightFace's iresnet state_dict (conv1.weight,
// bn1.weight, ..., layer1.0.bn1.weight, ..., fc.weight, fc.bias, features.*), so a checkpoint is
// a straight walk over the store. Checkpoints also carry each BN's num_batches_tracked (I64), as
// PyTorch's strict load requires.
#pragma once
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "engine/params.h"

namespace engine { class GpuContext; }

struct IResNetConfig {
    int depth = 50;          // 18, 34, 50, 100
    double width = 1.0;      // channel multiplier: stages have round(64w), 128w, 256w, 512w
    int input_size = 112;    // square input, a multiple of 16
    int num_features = 512;  // embedding size
    double dropout = 0.4;    // before fc, in training only
    double bn_eps = 2e-5;
    double bn_momentum = 0.9;  // running = momentum * running + (1 - momentum) * batch

    static IResNetConfig named(const std::string& network);  // "r18" ... "r100"
};

template <typename T>
class IResNet {
public:
    // gpu == nullptr: CPU reference (T float or double). gpu != nullptr: CUDA (T = float only),
    // all buffers on that device. Parameters are zero until init() or load().
    IResNet(const IResNetConfig& cfg, i64 max_batch, engine::GpuContext* gpu = nullptr);
    ~IResNet();

    // InsightFace initialisation from a seed (conv/fc Xavier gaussian, magnitude 2, fan_out;
    // BN gamma 1, beta 0, running mean 0, var 1; PReLU 0.25; fc bias 0). Draw order: one
    // engine::Rng(seed); the conv and fc weights, in entry order, each element row-major, take
    // consecutive Rng::normal() draws times sqrt(2 / fan_out); nothing else draws.
    void init(u64 seed);

    // images: (n, 3, S, S), raw 0..255 pixel values on the model's device; n <= max_batch.
    // Returns the embedding (n, num_features) on the model's device, valid until the next call.
    const T* forward(const T* images, i64 n, bool training);
    // d_embedding: (n, num_features) for the last forward (which must have been training or
    // inference; BN backward follows that mode). Accumulates into grads(). If d_images is not
    // null, the gradient w.r.t. the raw input images is written there.
    void backward(const T* d_embedding, T* d_images = nullptr);
    void zero_grad();

    // GPU: chooses the cuDNN algorithms of every convolution for batch n (1..max_batch) and
    // grows the shared workspace to fit them, so that a later forward/backward at n neither
    // queries cuDNN nor reallocates inside a step. The constructor does it for max_batch; call it
    // for any other batch size a run will use (a smaller step, the mining chunk). No-op on CPU.
    void prepare(i64 n);

    engine::ParamStore<T>& params();
    const IResNetConfig& config() const;
    i64 max_batch() const;
    int embedding_size() const { return config().num_features; }

    // Dropout draws from (seed, counter); every training forward advances the counter by the
    // number of dropped elements' slots. Saved in checkpoints for exact resume.
    void set_dropout_rng(u64 seed, u64 counter);
    u64 dropout_seed() const;
    u64 dropout_counter() const;

    // safetensors checkpoint with PyTorch names (learnt, fixed and state entries, plus
    // num_batches_tracked). load(): strict = every tensor present with the right shape and no
    // unknown names (unknown names are an error unless strict is false). Throws FormatError
    // naming the file and the tensor.
    void save(const std::string& path) const;
    void load(const std::string& path, bool strict = true);

    // (additive) Training forwards so far: the value saved as every BN's num_batches_tracked
    // (restored by load()).
    i64 num_batches_tracked() const;
    // (additive) The checkpoint's tensors in file order, (name, shape): every store entry, with
    // "PREFIX.num_batches_tracked" (shape [], I64) right after each BN's running_var.
    std::vector<std::pair<std::string, std::vector<i64>>> checkpoint_layout() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};
