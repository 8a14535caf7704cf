// The LResNet-IR network: stem, four stages of IR units, output block E; forward and backward as
// fixed sequences of layer calls; InsightFace initialisation; safetensors checkpoints with
// PyTorch iresnet names.
#include "layers/iresnet.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>
#include <type_traits>
#include <vector>

#include "engine/error.h"
#include "engine/gpu_context.h"
#include "engine/rng.h"
#include "engine/safetensors.h"
#include "layers/elementwise.h"
#include "layers/ir_unit.h"
#ifdef ENGINE_CUDA
#include <cuda_runtime.h>

#include "engine/cuda_check.h"
#endif

using engine::ArgError;
using engine::Buffer;
using engine::Device;
using engine::FormatError;
using engine::ParamEntry;
using engine::ParamKind;
using engine::ParamStore;
using engine::ShapeError;

namespace {

// Units per stage for the InsightFace depths.
std::vector<int> stage_units(int depth) {
    switch (depth) {
        case 18: return {2, 2, 2, 2};
        case 34: return {3, 4, 6, 3};
        case 50: return {3, 4, 14, 3};
        case 100: return {3, 13, 30, 3};
        default:
            throw ArgError(engine::str("iresnet: depth ", depth, " not supported (18, 34, 50, 100)"));
    }
}

bool ends_with(const std::string& s, const std::string& suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

const char* kRunningVar = "running_var";
const char* kTracked = "num_batches_tracked";

// Make host-side device writes visible to the model's stream and vice versa, outside a step:
// Buffer zeroing and host<->device copies run on the legacy default stream, which the
// context's non-blocking stream is not ordered with.
void device_barrier(engine::GpuContext* gpu) {
#ifdef ENGINE_CUDA
    if (gpu) CUDA_CHECK(cudaDeviceSynchronize());
#endif
}

std::string width_str(double w) {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", w);
    return buf;
}

}  // namespace

IResNetConfig IResNetConfig::named(const std::string& network) {
    IResNetConfig c;
    if (network == "r18") c.depth = 18;
    else if (network == "r34") c.depth = 34;
    else if (network == "r50") c.depth = 50;
    else if (network == "r100") c.depth = 100;
    else throw ArgError("unknown network '" + network + "' (r18, r34, r50, r100)");
    return c;
}

template <typename T>
struct IResNet<T>::Impl {
    IResNetConfig cfg;
    i64 max_batch = 0;
    engine::GpuContext* gpu = nullptr;
    LayerOps<T> ops;
    ParamStore<T> store;
    i64 S = 0, C0 = 0, C4 = 0, Sf = 0, fc_in = 0, F = 0;

    Conv2dLayer<T> conv1;
    BatchNormLayer<T> bn1;
    int prelu = -1;
    std::vector<std::unique_ptr<IRUnit<T>>> units;
    BatchNormLayer<T> bn2;
    int fc_w = -1, fc_b = -1;
    BatchNormLayer<T> features;

    // Activations: x0 normalised input, c0 conv1, b0 bn1, p0 prelu (stem output); h_bn bn2
    // output, h_drop dropout output, h_fc fc output, emb the embedding.
    Buffer<T> x0, c0, b0, p0, h_bn, h_drop, h_fc, emb;
    // Gradients between units (g0, g1 alternate) and two scratch buffers shared by all units.
    Buffer<T> g0, g1, scratch_a, scratch_b;

    // The last forward.
    bool has_forward = false;
    bool training = false;
    bool dropped = false;
    i64 n = 0;
    u64 drop_seed = 0, drop_counter = 0, drop_offset = 0;
    i64 tracked = 0;  // training forwards so far (each BN's num_batches_tracked)

    std::vector<std::string> bn_prefixes() const {
        std::vector<std::string> v;
        for (const auto& e : store.entries())
            if (ends_with(e.name, kRunningVar))
                v.push_back(e.name.substr(0, e.name.size() - std::string(kRunningVar).size()));
        return v;
    }
};

template <typename T>
IResNet<T>::IResNet(const IResNetConfig& cfg, i64 max_batch, engine::GpuContext* gpu)
    : impl_(new Impl) {
    Impl& m = *impl_;
    m.cfg = cfg;
    m.max_batch = max_batch;
    m.gpu = gpu;
    m.ops.gpu = gpu;
    ENGINE_CHECK(max_batch > 0, ArgError, "IResNet: max_batch ", max_batch, " must be positive");
    ENGINE_CHECK(cfg.input_size > 0 && cfg.input_size % 16 == 0, ShapeError,
                 "IResNet: input size ", cfg.input_size, " is not a positive multiple of 16");
    ENGINE_CHECK(cfg.width > 0, ArgError, "IResNet: width ", cfg.width, " must be positive");
    ENGINE_CHECK(cfg.num_features > 0, ArgError, "IResNet: num_features ", cfg.num_features);
    ENGINE_CHECK(cfg.dropout >= 0 && cfg.dropout < 1, ArgError, "IResNet: dropout ", cfg.dropout,
                 " outside [0, 1)");
    ENGINE_CHECK((!gpu || std::is_same<T, float>::value), ArgError,
                 "IResNet: the CUDA path is float only");
    const std::vector<int> per_stage = stage_units(cfg.depth);

    i64 widths[4];
    for (int i = 0; i < 4; ++i) {
        widths[i] = std::llround(64.0 * cfg.width * (1 << i));
        ENGINE_CHECK(widths[i] > 0, ArgError, "IResNet: width ", cfg.width,
                     " leaves stage ", i + 1, " without channels");
    }
    m.S = cfg.input_size;
    m.C0 = widths[0];
    m.C4 = widths[3];
    m.Sf = m.S / 16;
    m.fc_in = m.C4 * m.Sf * m.Sf;
    m.F = cfg.num_features;
    const double eps = cfg.bn_eps, mom = cfg.bn_momentum;

    // Registration in PyTorch iresnet's module order: conv1, bn1, prelu, layer1..4, bn2, fc,
    // features.
    Conv2dShape stem;
    stem.C = 3;
    stem.H = stem.W = m.S;
    stem.K = m.C0;
    stem.R = stem.S = 3;
    stem.stride = 1;
    stem.pad = 1;
    m.conv1.add(m.store, "conv1.weight", stem);
    m.bn1.add(m.store, "bn1.", m.C0, eps, mom);
    m.prelu = m.store.add("prelu.weight", {m.C0});
    i64 H = m.S, Cin = m.C0;
    for (int L = 0; L < 4; ++L) {
        for (int u = 0; u < per_stage[L]; ++u) {
            const std::string prefix = engine::str("layer", L + 1, ".", u, ".");
            m.units.emplace_back(new IRUnit<T>(m.store, prefix, Cin, widths[L], H, H,
                                               u == 0 ? 2 : 1, max_batch, eps, mom));
            H = m.units.back()->out_height();
            Cin = widths[L];
        }
    }
    ENGINE_CHECK(H == m.Sf, ShapeError, "IResNet: final spatial size ", H, " != ", m.Sf);
    m.bn2.add(m.store, "bn2.", m.C4, eps, mom);
    m.fc_w = m.store.add("fc.weight", {m.F, m.fc_in});
    m.fc_b = m.store.add("fc.bias", {m.F});
    m.features.add(m.store, "features.", m.F, eps, mom, /*fixed_gamma=*/true);

    const Device dev = m.ops.device();
    m.store.allocate(dev);

    // Buffer sizes: the largest tensor any scratch or inter-unit gradient has to hold.
    const i64 B = max_batch;
    i64 scratch = std::max({B * m.C0 * m.S * m.S, B * 3 * m.S * m.S, B * m.fc_in, B * m.F});
    i64 between = B * m.C0 * m.S * m.S;
    for (const auto& u : m.units) {
        scratch = std::max(scratch, u->scratch_size());
        between = std::max({between, u->in_numel(B), u->out_numel(B)});
    }
    m.scratch_a = Buffer<T>(scratch, dev);
    m.scratch_b = Buffer<T>(scratch, dev);
    m.g0 = Buffer<T>(between, dev);
    m.g1 = Buffer<T>(between, dev);
    m.x0 = Buffer<T>(B * 3 * m.S * m.S, dev);
    m.c0 = Buffer<T>(B * m.C0 * m.S * m.S, dev);
    m.b0 = Buffer<T>(B * m.C0 * m.S * m.S, dev);
    m.p0 = Buffer<T>(B * m.C0 * m.S * m.S, dev);
    m.h_bn = Buffer<T>(B * m.fc_in, dev);
    if (cfg.dropout > 0) m.h_drop = Buffer<T>(B * m.fc_in, dev);
    m.h_fc = Buffer<T>(B * m.F, dev);
    m.emb = Buffer<T>(B * m.F, dev);
    m.bn1.allocate(dev);
    m.bn2.allocate(dev);
    m.features.allocate(dev);

    // cuDNN algorithms for every conv shape, chosen now; the workspace is reserved once.
    for (auto& u : m.units) u->allocate(gpu, m.scratch_a.data(), m.scratch_b.data());
    prepare(B);
    device_barrier(gpu);
}

template <typename T>
void IResNet<T>::prepare(i64 n) {
    Impl& m = *impl_;
    ENGINE_CHECK(n > 0 && n <= m.max_batch, ShapeError, "IResNet::prepare: batch ", n,
                 " outside 1..", m.max_batch);
    if (!m.gpu) return;
    size_t ws = m.ops.conv_prepare(m.conv1.at(n));
    for (auto& u : m.units) ws = std::max(ws, u->prepare(n));
    m.gpu->reserve_workspace(ws);
}

template <typename T>
IResNet<T>::~IResNet() = default;

template <typename T>
engine::ParamStore<T>& IResNet<T>::params() { return impl_->store; }
template <typename T>
const IResNetConfig& IResNet<T>::config() const { return impl_->cfg; }
template <typename T>
i64 IResNet<T>::max_batch() const { return impl_->max_batch; }

template <typename T>
void IResNet<T>::init(u64 seed) {
    // One Rng(seed); every conv / fc weight, in entry (state_dict) order, takes its values from
    // consecutive normal() draws, element by element in row-major order:
    //   w ~ N(0, 2 / fan_out), fan_out = K*R*S (conv), out_features (fc).
    // Nothing else draws: BN gamma 1, beta 0, running mean 0, var 1, PReLU 0.25, fc bias 0,
    // features.weight (fixed gamma) 1.
    Impl& m = *impl_;
    engine::Rng rng(seed);
    std::vector<T> params((size_t)m.store.num_params()), state((size_t)m.store.num_state());
    for (const ParamEntry& e : m.store.entries()) {
        T* dst = (e.kind == ParamKind::learnt ? params.data() : state.data()) + e.offset;
        double std_dev = 0, value = 0;
        if (e.shape.size() == 4) {
            std_dev = std::sqrt(2.0 / (double)(e.shape[0] * e.shape[2] * e.shape[3]));
        } else if (e.name == "fc.weight") {
            std_dev = std::sqrt(2.0 / (double)e.shape[0]);
        } else if (ends_with(e.name, "prelu.weight")) {
            value = 0.25;
        } else if (ends_with(e.name, "running_var") || ends_with(e.name, ".weight")) {
            value = 1.0;  // BN running variance and BN gamma (learnt or fixed)
        } else {
            value = 0.0;  // BN beta, running mean, fc bias
        }
        for (i64 i = 0; i < e.numel; ++i) dst[i] = (T)(std_dev > 0 ? std_dev * rng.normal() : value);
    }
    if (m.gpu) m.gpu->synchronize();
    device_barrier(m.gpu);
    m.store.params().copy_from_host(params);
    m.store.state().copy_from_host(state);
    m.store.grads().zero();
    device_barrier(m.gpu);
    m.tracked = 0;
    m.has_forward = false;
}

template <typename T>
const T* IResNet<T>::forward(const T* images, i64 n, bool training) {
    Impl& m = *impl_;
    ENGINE_CHECK(images != nullptr, ArgError, "IResNet::forward: null images");
    ENGINE_CHECK(n > 0 && n <= m.max_batch, ShapeError, "IResNet::forward: batch ", n,
                 " outside 1..", m.max_batch);
    const LayerOps<T>& ops = m.ops;
    const i64 SS = m.S * m.S;
    ops.input_normalize(m.x0.data(), images, n * 3 * SS);
    m.conv1.forward(ops, m.store, m.c0.data(), m.x0.data(), n);
    m.bn1.forward(ops, m.store, training, m.b0.data(), m.c0.data(), n, SS);
    ops.prelu_forward(m.p0.data(), m.b0.data(), m.store.value(m.prelu), n, m.C0, SS);
    const T* h = m.p0.data();
    for (auto& u : m.units) h = u->forward(h, n, training);
    m.bn2.forward(ops, m.store, training, m.h_bn.data(), h, n, m.Sf * m.Sf);
    // Dropout (training only) on the flattened (n, C4*Sf*Sf) features; the counter advances by
    // one slot per element so that consecutive steps draw fresh masks.
    const T* fc_input = m.h_bn.data();
    m.dropped = training && m.cfg.dropout > 0;
    if (m.dropped) {
        m.drop_offset = m.drop_counter;
        ops.dropout_forward(m.h_drop.data(), m.h_bn.data(), n * m.fc_in, (float)m.cfg.dropout,
                            m.drop_seed, m.drop_offset);
        m.drop_counter += (u64)(n * m.fc_in);
        fc_input = m.h_drop.data();
    }
    ops.linear_forward(m.h_fc.data(), fc_input, m.store.value(m.fc_w), m.store.value(m.fc_b), n,
                       m.fc_in, m.F);
    m.features.forward(ops, m.store, training, m.emb.data(), m.h_fc.data(), n, 1);
    if (training) ++m.tracked;
    m.has_forward = true;
    m.training = training;
    m.n = n;
    return m.emb.data();
}

template <typename T>
void IResNet<T>::backward(const T* d_embedding, T* d_images) {
    Impl& m = *impl_;
    ENGINE_CHECK(m.has_forward, ArgError, "IResNet::backward without a forward");
    ENGINE_CHECK(d_embedding != nullptr, ArgError, "IResNet::backward: null d_embedding");
    const LayerOps<T>& ops = m.ops;
    const i64 n = m.n, SS = m.S * m.S;
    T* A = m.scratch_a.data();
    T* B = m.scratch_b.data();
    // Output block, in reverse: features BN (gamma fixed: no dgamma), fc, dropout, bn2.
    m.features.backward(ops, m.store, m.training, A, d_embedding, m.h_fc.data(), n, 1);  // A = d fc
    const T* fc_input = m.dropped ? m.h_drop.data() : m.h_bn.data();
    ops.linear_backward(B, m.store.grad(m.fc_w), m.store.grad(m.fc_b), A, fc_input,
                        m.store.value(m.fc_w), n, m.fc_in, m.F);                    // B = d fc in
    const T* d_bn = B;
    if (m.dropped) {
        ops.dropout_backward(A, B, n * m.fc_in, (float)m.cfg.dropout, m.drop_seed,
                             m.drop_offset);                                        // A = d h_bn
        d_bn = A;
    }
    T* cur = m.g0.data();
    T* other = m.g1.data();
    m.bn2.backward(ops, m.store, m.training, cur, d_bn, m.units.back()->output(), n,
                   m.Sf * m.Sf);                                                    // d layer4 out
    for (auto it = m.units.rbegin(); it != m.units.rend(); ++it) {
        (*it)->backward(cur, other);
        std::swap(cur, other);
    }
    // Stem, in reverse; cur = d p0.
    ops.prelu_backward(A, m.store.grad(m.prelu), cur, m.b0.data(), m.store.value(m.prelu), n,
                       m.C0, SS);                                                   // A = d b0
    m.bn1.backward(ops, m.store, m.training, B, A, m.c0.data(), n, SS);             // B = d c0
    m.conv1.backward(ops, m.store, d_images, B, m.x0.data(), n);                    // d x0
    // x0 = (images - 127.5) * 0.0078125, so d images = d x0 * 0.0078125.
    if (d_images) ops.scale(d_images, kInputScale, n * 3 * SS);
}

template <typename T>
void IResNet<T>::zero_grad() {
    impl_->ops.zero(impl_->store.grads().data(), impl_->store.num_params());
}

template <typename T>
void IResNet<T>::set_dropout_rng(u64 seed, u64 counter) {
    impl_->drop_seed = seed;
    impl_->drop_counter = counter;
}
template <typename T>
u64 IResNet<T>::dropout_seed() const { return impl_->drop_seed; }
template <typename T>
u64 IResNet<T>::dropout_counter() const { return impl_->drop_counter; }
template <typename T>
i64 IResNet<T>::num_batches_tracked() const { return impl_->tracked; }

template <typename T>
std::vector<std::pair<std::string, std::vector<i64>>> IResNet<T>::checkpoint_layout() const {
    std::vector<std::pair<std::string, std::vector<i64>>> v;
    for (const ParamEntry& e : impl_->store.entries()) {
        v.emplace_back(e.name, e.shape);
        if (ends_with(e.name, kRunningVar))
            v.emplace_back(e.name.substr(0, e.name.size() - std::string(kRunningVar).size()) +
                               kTracked,
                           std::vector<i64>{});
    }
    return v;
}

template <typename T>
void IResNet<T>::save(const std::string& path) const {
    Impl& m = *impl_;
    if (m.gpu) m.gpu->synchronize();  // the step's kernels may still write parameters
    const std::vector<T> params = m.store.params().to_host();
    const std::vector<T> state = m.store.state().to_host();
    std::vector<engine::SafeTensor> tensors;
    std::vector<float> f32;
    const i64 tracked = m.tracked;
    for (const ParamEntry& e : m.store.entries()) {
        // float32 on disk whatever T is.
        const T* src = (e.kind == ParamKind::learnt ? params.data() : state.data()) + e.offset;
        f32.assign(src, src + e.numel);
        tensors.push_back(engine::make_safetensor(e.name, e.shape, f32.data()));
        if (ends_with(e.name, kRunningVar)) {
            const std::string prefix =
                e.name.substr(0, e.name.size() - std::string(kRunningVar).size());
            tensors.push_back(engine::make_safetensor_i64(prefix + kTracked, {}, &tracked));
        }
    }
    std::map<std::string, std::string> meta;
    meta["format"] = "pt";
    meta["network"] = engine::str("r", m.cfg.depth);
    meta["width"] = width_str(m.cfg.width);
    meta["input_size"] = engine::str(m.cfg.input_size);
    meta["num_features"] = engine::str(m.cfg.num_features);
    engine::write_safetensors(path, tensors, meta);
}

template <typename T>
void IResNet<T>::load(const std::string& path, bool strict) {
    Impl& m = *impl_;
    std::map<std::string, std::string> meta;
    const std::vector<engine::SafeTensor> tensors = engine::read_safetensors(path, &meta);
    std::map<std::string, const engine::SafeTensor*> by_name;
    for (const auto& t : tensors) by_name[t.name] = &t;

    // Everything is checked and converted on the host before the model changes, so a failed
    // load leaves it as it was.
    std::vector<T> params((size_t)m.store.num_params()), state((size_t)m.store.num_state());
    std::set<std::string> used;
    for (const ParamEntry& e : m.store.entries()) {
        auto it = by_name.find(e.name);
        ENGINE_CHECK(it != by_name.end(), FormatError, "checkpoint ", path, ": tensor ", e.name,
                     " ", engine::shape_str(e.shape), " is missing");
        const engine::SafeTensor& t = *it->second;
        ENGINE_CHECK(t.shape == e.shape, FormatError, "checkpoint ", path, ": tensor ", e.name,
                     " has shape ", engine::shape_str(t.shape), ", the model expects ",
                     engine::shape_str(e.shape));
        ENGINE_CHECK(t.dtype == "F32" || t.dtype == "F64", FormatError, "checkpoint ", path,
                     ": tensor ", e.name, " has dtype ", t.dtype, " (F32 or F64 expected)");
        const std::vector<T> v = t.template as<T>();
        ENGINE_CHECK((i64)v.size() == e.numel, FormatError, "checkpoint ", path, ": tensor ",
                     e.name, " holds ", v.size(), " values, ", e.numel, " expected");
        T* dst = (e.kind == ParamKind::learnt ? params.data() : state.data()) + e.offset;
        std::copy(v.begin(), v.end(), dst);
        used.insert(e.name);
    }
    // num_batches_tracked: accepted for every BN the model has (and restored as the count of
    // training forwards); any other name is unknown.
    i64 tracked = m.tracked;
    bool tracked_seen = false;
    const std::vector<std::string> prefixes = m.bn_prefixes();
    const std::set<std::string> prefix_set(prefixes.begin(), prefixes.end());
    std::vector<std::string> unknown;
    for (const auto& t : tensors) {
        if (used.count(t.name)) continue;
        if (ends_with(t.name, kTracked) &&
            prefix_set.count(t.name.substr(0, t.name.size() - std::string(kTracked).size()))) {
            if (!tracked_seen && t.dtype == "I64" && t.shape.empty() && t.data.size() == 8) {
                i64 value = 0;
                for (int b = 7; b >= 0; --b) value = (value << 8) | t.data[(size_t)b];
                tracked = value;
                tracked_seen = true;
            }
            continue;
        }
        unknown.push_back(t.name);
    }
    if (strict && !unknown.empty()) {
        std::string list;
        for (size_t i = 0; i < unknown.size() && i < 5; ++i) list += (i ? ", " : "") + unknown[i];
        if (unknown.size() > 5) list += engine::str(", ... (", unknown.size(), " in all)");
        throw FormatError(engine::str("checkpoint ", path, ": unknown tensor(s) ", list,
                                      " (load with strict = false to ignore them)"));
    }
    if (m.gpu) m.gpu->synchronize();
    device_barrier(m.gpu);
    m.store.params().copy_from_host(params);
    m.store.state().copy_from_host(state);
    device_barrier(m.gpu);
    m.tracked = tracked;
    m.has_forward = false;
}

template class IResNet<float>;
template class IResNet<double>;
