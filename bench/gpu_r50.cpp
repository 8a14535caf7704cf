// GPU benchmark of one training step of iresnet r50 (forward + backward + SGD momentum update, and
// with --classes the normalised classifier + ArcFace loss) through IResNet<float> on a GpuContext,
// timed with CUDA events; reports images/s and peak device memory. bench/gpu_check.sh runs it
// beside the same network in PyTorch (bench/torch_gpu_r50.py).
//   build/bench_gpu_r50 [--batch 128] [--warmup 5] [--iters 20] [--classes 0] [--network r50]
//                       [--size 112] [--lr 0.1] [--device 0] [--seed 1] [--json FILE]
//   build/bench_gpu_r50 --host-count [--batch 128] [--network r50] [--classes 0]
//       no GPU needed: allocates the same buffers in host memory (the model is device-agnostic:
//       IResNet<float> allocates the same activations, caches and flat buffers on either device)
//       and prints the byte counter, i.e. the run's device memory without the cuDNN workspace.
// Exit status: 0 done, 1 error (a CUDA/cuDNN/cuBLAS failure, a non-finite result), 2 bad
// arguments, 3 no usable GPU (the reason is printed; e.g. a CPU-only build or no driver).
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/error.h"
#include "engine/gpu_context.h"
#include "engine/rng.h"
#include "engine/sgd.h"
#include "engine/tensor.h"
#include "layers/iresnet.h"
#include "losses/margin_softmax.h"
#include "losses/normalized_classifier.h"

#ifdef ENGINE_CUDA
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <cudnn.h>

#include "engine/cuda_check.h"
#endif

namespace {

struct Options {
    i64 batch = 128;
    int warmup = 5;   // untimed steps first: cuDNN algorithm choice, lazy module loading
    int iters = 20;   // timed steps
    i64 classes = 0;  // 0: no loss, a fixed random d_embedding; > 0: classifier + ArcFace CE
    std::string network = "r50";
    int size = 112;
    double lr = 0.1, momentum = 0.9, wd = 5e-4;  // InsightFace's SGD settings
    int device = 0;
    u64 seed = 1;
    std::string json;
    bool host_count = false;
};

const char* kUsage =
    "usage: bench_gpu_r50 [--batch N] [--warmup N] [--iters N] [--classes C] [--network r50]\n"
    "                     [--size S] [--lr LR] [--device D] [--seed S] [--json FILE]\n"
    "       bench_gpu_r50 --host-count [--batch N] [--network r50] [--size S] [--classes C]\n"
    "  --host-count  no timing, no GPU: allocate what a timed run allocates on the device, in host\n"
    "                memory, and print the engine's byte counter (cuDNN workspace not included)\n";

double mib(double bytes) { return bytes / (1024.0 * 1024.0); }

// What a timed step needs besides the model, on one device: the backbone's momentum, the images,
// the embedding gradient and, with classes C > 0, the classifier (W, its momentum, its gradient,
// its normalised copy and row norms) and the loss's buffers ((B, C) cos / gradient matrix, the
// normalised embeddings, their norms, d embedding, per-sample and mean loss, labels).
struct StepBuffers {
    engine::Buffer<float> momentum, images, d_emb;
    engine::Buffer<float> W, W_mom, dW, wn, wnorm, cos, xn, xnorm, dx, loss, mean_loss;
    engine::Buffer<std::int32_t> labels;
    StepBuffers(i64 P, i64 B, i64 S, i64 F, i64 C, engine::Device d)
        : momentum(P, d), images(B * 3 * S * S, d), d_emb(B * F, d) {
        if (C == 0) return;
        W = engine::Buffer<float>(C * F, d);
        W_mom = engine::Buffer<float>(C * F, d);
        dW = engine::Buffer<float>(C * F, d);
        wn = engine::Buffer<float>(C * F, d);
        wnorm = engine::Buffer<float>(C, d);
        cos = engine::Buffer<float>(B * C, d);
        xn = engine::Buffer<float>(B * F, d);
        xnorm = engine::Buffer<float>(B, d);
        dx = engine::Buffer<float>(B * F, d);
        loss = engine::Buffer<float>(B, d);
        mean_loss = engine::Buffer<float>(1, d);
        labels = engine::Buffer<std::int32_t>(B, d);
    }
};

// The device memory a timed run allocates through the engine, counted on the host: the model
// (flat parameters and gradients, BN running statistics, activations, caches, scratch) and the
// StepBuffers of run() below. Only the cuDNN workspace (chosen per GPU) is missing.
int host_count(const Options& o) {
    using engine::Device;
    IResNetConfig cfg = IResNetConfig::named(o.network);
    cfg.input_size = o.size;
    const i64 B = o.batch, S = cfg.input_size, F = cfg.num_features, C = o.classes;
    engine::reset_peak_memory(Device::cpu);
    const size_t before = engine::memory_counter(Device::cpu).current;
    IResNet<float> net(cfg, B, nullptr);
    const size_t model = engine::memory_counter(Device::cpu).current - before;
    const i64 P = net.params().num_params();
    const StepBuffers step(P, B, S, F, C, Device::cpu);
    const size_t total = engine::memory_counter(Device::cpu).current - before;
    std::printf("%s at %lldx%lld, batch %lld%s: %lld learnt parameters\n", o.network.c_str(),
                (long long)S, (long long)S, (long long)B,
                C > 0 ? engine::str(", classifier over ", C, " classes").c_str() : "",
                (long long)P);
    std::printf("model (parameters, gradients, BN state, activations, caches, scratch): %.1f MiB\n",
                mib((double)model));
    std::printf("device memory of a timed run, counted on the host: %.1f MiB (%.2f GiB) plus the "
                "cuDNN workspace\n",
                mib((double)total), (double)total / (1024.0 * 1024.0 * 1024.0));
    return 0;
}

#ifdef ENGINE_CUDA

double median(std::vector<double> v) {
    if (v.empty()) return 0;
    std::sort(v.begin(), v.end());
    const size_t m = v.size() / 2;
    return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

// n values uniform in [lo, hi) from (seed, index): the same values whatever the thread count.
std::vector<float> uniform_host(i64 n, u64 seed, double lo, double hi) {
    std::vector<float> v((size_t)n);
#pragma omp parallel for schedule(static)
    for (i64 i = 0; i < n; ++i)
        v[(size_t)i] = (float)(lo + (hi - lo) * engine::random_uniform01(seed, (u64)i));
    return v;
}

std::string json_escape(const std::string& s) {
    std::string o;
    for (char c : s) {
        if (c == '"' || c == '\\') o += '\\';
        if ((unsigned char)c >= 0x20) o += c;
    }
    return o;
}

using engine::Buffer;
using engine::Device;

// One CUDA event per phase boundary of every timed step, created before timing starts.
struct StepEvents {
    cudaEvent_t start = nullptr, fwd = nullptr, loss = nullptr, bwd = nullptr, upd = nullptr;
    void create() {
        for (cudaEvent_t* e : {&start, &fwd, &loss, &bwd, &upd}) CUDA_CHECK(cudaEventCreate(e));
    }
    void destroy() {
        for (cudaEvent_t e : {start, fwd, loss, bwd, upd})
            if (e) cudaEventDestroy(e);
    }
};

float elapsed_ms(cudaEvent_t a, cudaEvent_t b) {
    float ms = 0;
    CUDA_CHECK(cudaEventElapsedTime(&ms, a, b));
    return ms;
}

int run(const Options& o) {
    CUDA_CHECK(cudaSetDevice(o.device));
    CUDA_CHECK(cudaFree(nullptr));  // create the primary context now, so the baseline holds it
    size_t free0 = 0, total = 0;
    CUDA_CHECK(cudaMemGetInfo(&free0, &total));
    engine::GpuContext g(o.device);
    size_t free1 = 0;
    CUDA_CHECK(cudaMemGetInfo(&free1, &total));

    cudaDeviceProp prop{};
    CUDA_CHECK(cudaGetDeviceProperties(&prop, o.device));
    int driver = 0, runtime = 0, cublas_version = 0;
    CUDA_CHECK(cudaDriverGetVersion(&driver));
    CUDA_CHECK(cudaRuntimeGetVersion(&runtime));
    CUBLAS_CHECK(cublasGetVersion(g.cublas(), &cublas_version));
    std::printf("device %d: %s, sm_%d%d, %d SMs, %.0f MiB; driver API %d, runtime %d, cuDNN %zu "
                "(headers %d.%d.%d), cuBLAS %d\n",
                o.device, prop.name, prop.major, prop.minor, prop.multiProcessorCount,
                mib((double)total), driver, runtime, cudnnGetVersion(), CUDNN_MAJOR, CUDNN_MINOR,
                CUDNN_PATCHLEVEL, cublas_version);

    IResNetConfig cfg = IResNetConfig::named(o.network);
    cfg.input_size = o.size;
    const i64 B = o.batch, S = cfg.input_size, F = cfg.num_features, C = o.classes;
    std::printf("%s at %lldx%lld, batch %lld, float32, %s; %d warm-up + %d timed steps; SGD lr %g "
                "momentum %g wd %g\n",
                o.network.c_str(), (long long)S, (long long)S, (long long)B,
                C > 0 ? engine::str("classifier + ArcFace CE over ", C, " classes").c_str()
                      : "random d_embedding (no loss)",
                o.warmup, o.iters, o.lr, o.momentum, o.wd);
    std::fflush(stdout);

    IResNet<float> net(cfg, B, &g);
    net.init(o.seed);
    net.set_dropout_rng(o.seed + 1, 0);
    engine::ParamStore<float>& store = net.params();
    const i64 P = store.num_params();
    StepBuffers sb(P, B, S, F, C, Device::cuda);
    // (short names for the step below)
    Buffer<float> &momentum_buf = sb.momentum, &images = sb.images, &d_emb = sb.d_emb;
    Buffer<float> &W = sb.W, &W_mom = sb.W_mom, &dW = sb.dW, &wn = sb.wn, &wnorm = sb.wnorm;
    Buffer<float> &cos = sb.cos, &xn = sb.xn, &xnorm = sb.xnorm, &dx = sb.dx, &loss = sb.loss;
    Buffer<float>& mean_loss = sb.mean_loss;
    Buffer<std::int32_t>& labels = sb.labels;

    // Raw pixels: integers 0..255, as decoded images are.
    {
        std::vector<float> h = uniform_host(B * 3 * S * S, o.seed + 2, 0.0, 256.0);
        for (float& x : h) x = std::floor(x);
        images.copy_from_host(h);
    }
    // Without a loss: a fixed random embedding gradient of the size a batch-mean loss gives.
    d_emb.copy_from_host(uniform_host(B * F, o.seed + 3, -1.0 / (double)B, 1.0 / (double)B));

    // The classifier and the loss (only with --classes; StepBuffers made their buffers).
    const MarginSoftmaxOptions loss_opt = arcface_options(64.0, 0.5);
    if (C > 0) {
        W.copy_from_host(uniform_host(C * F, o.seed + 4, -0.01, 0.01));  // never a zero row
        std::vector<std::int32_t> y((size_t)B);
        engine::Rng rng(o.seed + 5);
        for (auto& v : y) v = (std::int32_t)rng.below(C);
        labels.copy_from_host(y);
        g.reserve_workspace(normalized_classifier_workspace_bytes(C, F));
    }
    // Buffer zeroing and uploads run on the legacy default stream: finish them before the steps.
    CUDA_CHECK(cudaDeviceSynchronize());

    const float lr = (float)o.lr, mom = (float)o.momentum, wd = (float)o.wd;
    cudaStream_t st = g.stream();
    auto record = [&](cudaEvent_t e) {
        if (e) CUDA_CHECK(cudaEventRecord(e, st));
    };
    // One training step, all on the context's stream, no host synchronisation.
    auto step = [&](const StepEvents* ev) {
        record(ev ? ev->start : nullptr);
        net.zero_grad();
        const float* emb = net.forward(images.data(), B, true);
        record(ev ? ev->fwd : nullptr);
        const float* d_embedding = d_emb.data();
        if (C > 0) {
            normalized_classifier_forward_cuda(cos.data(), xn.data(), xnorm.data(), wn.data(),
                                               wnorm.data(), emb, W.data(), B, C, F, g);
            margin_softmax_loss_cuda(cos.data(), loss.data(), mean_loss.data(), labels.data(), B,
                                     C, loss_opt, g);
            engine::device_zero_async(dW.data(), dW.bytes(), st);
            normalized_classifier_backward_cuda(dx.data(), dW.data(), cos.data(), xn.data(),
                                                xnorm.data(), wn.data(), wnorm.data(), B, C, F, g);
            d_embedding = dx.data();
        }
        record(ev ? ev->loss : nullptr);
        net.backward(d_embedding);
        record(ev ? ev->bwd : nullptr);
        engine::sgd_momentum_update_cuda(store.params().data(), momentum_buf.data(),
                                         store.grads().data(), P, lr, mom, wd, 1.f, g);
        if (C > 0)
            engine::sgd_momentum_update_cuda(W.data(), W_mom.data(), dW.data(), C * F, lr, mom,
                                             wd, 1.f, g);
        record(ev ? ev->upd : nullptr);
    };

    for (int i = 0; i < o.warmup; ++i) step(nullptr);
    g.synchronize();

    std::vector<StepEvents> ev((size_t)o.iters);
    for (auto& e : ev) e.create();
    for (int i = 0; i < o.iters; ++i) step(&ev[(size_t)i]);
    g.synchronize();
    CUDA_CHECK(cudaGetLastError());

    std::vector<double> fwd, lss, bwd, upd, total_step;
    for (const auto& e : ev) {
        fwd.push_back(elapsed_ms(e.start, e.fwd));
        lss.push_back(elapsed_ms(e.fwd, e.loss));
        bwd.push_back(elapsed_ms(e.loss, e.bwd));
        upd.push_back(elapsed_ms(e.bwd, e.upd));
        total_step.push_back(elapsed_ms(e.start, e.upd));
    }
    // Throughput over the whole timed run (first step's start to last step's end), so gaps
    // between steps (host launch overhead the GPU waits on) count.
    const double run_ms = elapsed_ms(ev.front().start, ev.back().upd);
    const double ms_step = run_ms / o.iters;
    const double images_per_s = (double)B * 1e3 / ms_step;
    for (auto& e : ev) e.destroy();

    // Sanity: the last embedding and loss are finite (a NaN run times a different computation).
    const float* emb = net.forward(images.data(), B, false);
    g.synchronize();
    std::vector<float> emb_h((size_t)(B * F));
    engine::device_copy(emb_h.data(), Device::cpu, emb, Device::cuda, emb_h.size() * sizeof(float));
    bool finite = std::all_of(emb_h.begin(), emb_h.end(), [](float x) { return std::isfinite(x); });
    double last_loss = NAN;
    if (C > 0) {
        last_loss = mean_loss.to_host()[0];
        finite = finite && std::isfinite(last_loss);
    }

    size_t free2 = 0;
    CUDA_CHECK(cudaMemGetInfo(&free2, &total));
    const engine::MemoryCounter mc = engine::memory_counter(Device::cuda);
    const double ctx_bytes = (double)(total - free1);         // context + cuBLAS/cuDNN handles
    const double used_bytes = (double)(total - free2);        // everything, at the end
    const double primary_bytes = (double)(total - free0);     // the bare primary context
    const double param_bytes = 3.0 * (double)P * sizeof(float);  // weights, gradients, momentum

    std::printf("parameters: %lld learnt (%.1f MiB for weights + gradients + momentum)\n",
                (long long)P, mib(param_bytes));
    std::printf("median ms per step: forward %.2f, loss %.2f, backward %.2f, update %.2f, "
                "step %.2f\n",
                median(fwd), median(lss), median(bwd), median(upd), median(total_step));
    std::printf("throughput: %.2f ms/step over %d steps = %.1f images/s\n", ms_step, o.iters,
                images_per_s);
    std::printf("peak device memory (engine byte counter): %.1f MiB (current %.1f MiB, cuDNN "
                "workspace %.1f MiB)\n",
                mib((double)mc.peak), mib((double)mc.current), mib((double)g.workspace_bytes()));
    std::printf("device memory in use (cudaMemGetInfo): %.1f MiB at the end; %.1f MiB before the "
                "model (context %.1f + cuBLAS/cuDNN handles %.1f)\n",
                mib(used_bytes), mib(ctx_bytes), mib(primary_bytes), mib(ctx_bytes - primary_bytes));
    if (C > 0) std::printf("last mean loss: %.4f\n", last_loss);
    if (!finite) std::printf("WARNING: the embedding or the loss is not finite after the run\n");

    const std::string line = engine::str(
        "{\"impl\": \"engine\", \"mode\": \"fp32\", \"network\": \"", json_escape(o.network),
        "\", \"device\": \"", json_escape(prop.name), "\", \"batch\": ", B, ", \"size\": ", S,
        ", \"classes\": ", C, ", \"warmup\": ", o.warmup, ", \"iters\": ", o.iters,
        ", \"ms_step\": ", ms_step, ", \"images_per_s\": ", images_per_s,
        ", \"fwd_ms\": ", median(fwd), ", \"loss_ms\": ", median(lss),
        ", \"bwd_ms\": ", median(bwd), ", \"update_ms\": ", median(upd),
        ", \"peak_counter_bytes\": ", mc.peak, ", \"mem_used_bytes\": ", (i64)used_bytes,
        ", \"mem_before_model_bytes\": ", (i64)ctx_bytes, ", \"num_params\": ", P,
        ", \"finite\": ", finite ? "true" : "false", "}");
    std::printf("%s\n", line.c_str());
    if (!o.json.empty()) {
        FILE* f = std::fopen(o.json.c_str(), "a");
        ENGINE_CHECK(f, engine::IoError, "cannot open ", o.json, " for appending");
        std::fprintf(f, "%s\n", line.c_str());
        std::fclose(f);
    }
    return finite ? 0 : 1;
}

#endif  // ENGINE_CUDA

}  // namespace

int main(int argc, char** argv) {
    Options o;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        if (a == "-h" || a == "--help") {
            std::printf("%s", kUsage);
            return 0;
        }
        if (a == "--host-count") {
            o.host_count = true;
            continue;
        }
        if (i + 1 >= argc) {
            std::fprintf(stderr, "%s needs a value\n%s", a.c_str(), kUsage);
            return 2;
        }
        const std::string v = argv[++i];
        if (a == "--batch") o.batch = std::atoll(v.c_str());
        else if (a == "--warmup") o.warmup = std::atoi(v.c_str());
        else if (a == "--iters") o.iters = std::atoi(v.c_str());
        else if (a == "--classes") o.classes = std::atoll(v.c_str());
        else if (a == "--network") o.network = v;
        else if (a == "--size") o.size = std::atoi(v.c_str());
        else if (a == "--lr") o.lr = std::atof(v.c_str());
        else if (a == "--device") o.device = std::atoi(v.c_str());
        else if (a == "--seed") o.seed = std::strtoull(v.c_str(), nullptr, 10);
        else if (a == "--json") o.json = v;
        else {
            std::fprintf(stderr, "unknown option %s\n%s", a.c_str(), kUsage);
            return 2;
        }
    }
    if (o.batch < 1 || o.warmup < 0 || o.iters < 1 || o.classes < 0 || o.size < 16 ||
        o.size % 16 != 0) {
        std::fprintf(stderr, "bad arguments: batch >= 1, warmup >= 0, iters >= 1, classes >= 0, "
                             "size a multiple of 16\n%s", kUsage);
        return 2;
    }
    if (o.host_count) {
        try {
            return host_count(o);
        } catch (const std::exception& e) {
            std::fprintf(stderr, "bench_gpu_r50: %s\n", e.what());
            return 1;
        }
    }
    std::string why;
    if (!engine::cuda_usable(&why)) {
        std::printf("bench_gpu_r50: %s; nothing to time (exit 3)\n", why.c_str());
        return 3;
    }
#ifdef ENGINE_CUDA
    try {
        return run(o);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "bench_gpu_r50: %s\n", e.what());
        return 1;
    }
#else
    return 3;
#endif
}
