// CPU benchmark of the engine's reference layers at r50 shapes (batch 8, float32) and of one
// whole r50 training step through IResNet<float>; bench/cpu_bench.sh runs it beside PyTorch.
//   build/bench_cpu_layers [--repeats R] [--net-repeats R] [--net-warmup W] [--batch N]
//                          [--no-net] [--json FILE]
// Threads: OpenBLAS and OpenMP follow OMP_NUM_THREADS / OPENBLAS_NUM_THREADS.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "engine/error.h"
#include "engine/rng.h"
#include "engine/timer.h"
#include "layers/batchnorm.h"
#include "layers/conv2d.h"
#include "layers/iresnet.h"
#include "layers/linear.h"
#include "layers/prelu.h"

namespace {

struct Options {
    int repeats = 5;      // timed runs per layer (after one warm-up); the median is reported
    int net_repeats = 2;  // timed r50 steps, after net_warmup untimed ones
    int net_warmup = 1;
    i64 batch = 8;
    bool net = true;
    std::string json;
};

std::vector<float> random_fill(i64 n, u64 seed, double lo, double hi) {
    engine::Rng rng(seed);
    std::vector<float> v((size_t)n);
    for (auto& x : v) x = (float)(lo + (hi - lo) * rng.uniform());
    return v;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    const size_t m = v.size() / 2;
    return v.size() % 2 ? v[m] : 0.5 * (v[m - 1] + v[m]);
}

// Median milliseconds of fn over `repeats` runs after one warm-up run.
double time_ms(const std::function<void()>& fn, int repeats) {
    fn();
    std::vector<double> ms;
    for (int r = 0; r < repeats; ++r) {
        engine::Timer t;
        fn();
        ms.push_back(t.ms());
    }
    return median(ms);
}

struct Row {
    std::string name, pass;
    double ms, gflop;
};

class Report {
public:
    explicit Report(const std::string& json) {
        if (!json.empty()) {
            f_ = std::fopen(json.c_str(), "w");
            ENGINE_CHECK(f_, engine::IoError, "bench_cpu_layers: cannot write ", json);
        }
        std::printf("%-28s %-5s %10s %10s %9s\n", "layer", "pass", "ms", "GFLOP", "GFLOP/s");
    }
    ~Report() {
        if (f_) std::fclose(f_);
    }
    void add(const std::string& name, const std::string& pass, double ms, double gflop) {
        std::printf("%-28s %-5s %10.3f %10.3f %9.1f\n", name.c_str(), pass.c_str(), ms, gflop,
                    gflop / (ms * 1e-3));
        std::fflush(stdout);
        if (f_)
            std::fprintf(f_,
                         "{\"impl\": \"engine\", \"name\": \"%s\", \"pass\": \"%s\", "
                         "\"ms\": %.4f, \"gflop\": %.5f}\n",
                         name.c_str(), pass.c_str(), ms, gflop);
    }

private:
    FILE* f_ = nullptr;
};

// A 3x3 (or 1x1) convolution, forward and backward (data + filter gradients; the stem conv has
// no input gradient, as in the network).
void bench_conv(Report& rep, const Options& o, const std::string& name, i64 C, i64 K, i64 HW,
                i64 R, i64 stride, bool input_grad) {
    Conv2dShape s;
    s.N = o.batch, s.C = C, s.H = s.W = HW, s.K = K, s.R = s.S = R, s.stride = stride;
    s.pad = R / 2;
    auto in = random_fill(s.in_size(), 1, -1, 1), w = random_fill(s.weight_size(), 2, -0.1, 0.1);
    auto dout = random_fill(s.out_size(), 3, -1, 1);
    std::vector<float> out((size_t)s.out_size()), din((size_t)s.in_size()),
        dw((size_t)s.weight_size());
    // One multiply-add = 2 FLOP per (output element, filter tap); backward does it twice.
    const double fwd = 2.0 * s.out_size() * C * R * R * 1e-9;
    rep.add(name, "fwd", time_ms([&] { conv2d_forward_cpu(out.data(), in.data(), w.data(), s); },
                                 o.repeats),
            fwd);
    rep.add(name, "bwd",
            time_ms([&] {
                conv2d_backward_cpu(input_grad ? din.data() : nullptr, dw.data(), dout.data(),
                                    in.data(), w.data(), s);
            }, o.repeats),
            input_grad ? 2 * fwd : fwd);
}

void bench_layers(Report& rep, const Options& o) {
    bench_conv(rep, o, "conv3x3_stem_3to64_112", 3, 64, 112, 3, 1, false);
    bench_conv(rep, o, "conv3x3_64_56", 64, 64, 56, 3, 1, true);
    bench_conv(rep, o, "conv3x3_128_28", 128, 128, 28, 3, 1, true);
    bench_conv(rep, o, "conv3x3_256_14", 256, 256, 14, 3, 1, true);
    bench_conv(rep, o, "conv3x3_512_7", 512, 512, 7, 3, 1, true);
    bench_conv(rep, o, "conv3x3_s2_128_56to28", 128, 128, 56, 3, 2, true);
    bench_conv(rep, o, "conv1x1_s2_64to128_56", 64, 128, 56, 1, 2, true);

    {  // BatchNorm (training) on the stem's output, the largest BN of the network.
        BatchNormShape s;
        s.N = o.batch, s.C = 64, s.HW = 112 * 112;
        const i64 n = s.N * s.C * s.HW;
        auto in = random_fill(n, 4, -2, 2), dout = random_fill(n, 5, -1, 1);
        std::vector<float> out(n), din(n), gamma(s.C, 1.f), beta(s.C, 0.f), mean(s.C), invstd(s.C),
            rmean(s.C, 0.f), rvar(s.C, 1.f), dg(s.C), db(s.C);
        rep.add("bn_64_112", "fwd", time_ms([&] {
                    batchnorm_forward_train_cpu(out.data(), mean.data(), invstd.data(),
                                                rmean.data(), rvar.data(), in.data(),
                                                gamma.data(), beta.data(), s);
                }, o.repeats), 0);
        rep.add("bn_64_112", "bwd", time_ms([&] {
                    batchnorm_backward_train_cpu(din.data(), dg.data(), db.data(), dout.data(),
                                                 in.data(), gamma.data(), mean.data(),
                                                 invstd.data(), s);
                }, o.repeats), 0);
    }
    {  // PReLU on the stem's output.
        const i64 N = o.batch, C = 64, HW = 112 * 112, n = N * C * HW;
        auto in = random_fill(n, 6, -2, 2), dout = random_fill(n, 7, -1, 1);
        std::vector<float> out(n), din(n), slope(C, 0.25f), ds(C);
        rep.add("prelu_64_112", "fwd", time_ms([&] {
                    prelu_forward_cpu(out.data(), in.data(), slope.data(), N, C, HW);
                }, o.repeats), 0);
        rep.add("prelu_64_112", "bwd", time_ms([&] {
                    prelu_backward_cpu(din.data(), ds.data(), dout.data(), in.data(),
                                       slope.data(), N, C, HW);
                }, o.repeats), 0);
    }
    {  // The output fc, 512*7*7 -> 512 with bias.
        const i64 N = o.batch, IC = 25088, OC = 512;
        auto in = random_fill(N * IC, 8, -1, 1), w = random_fill(OC * IC, 9, -0.01, 0.01);
        auto b = random_fill(OC, 10, -0.1, 0.1), dout = random_fill(N * OC, 11, -1, 1);
        std::vector<float> out(N * OC), din(N * IC), dw(OC * IC), db(OC);
        const double fwd = 2.0 * N * IC * OC * 1e-9;
        rep.add("fc_25088to512", "fwd", time_ms([&] {
                    linear_forward_cpu(out.data(), in.data(), w.data(), b.data(), N, IC, OC);
                }, o.repeats), fwd);
        rep.add("fc_25088to512", "bwd", time_ms([&] {
                    linear_backward_cpu(din.data(), dw.data(), db.data(), dout.data(), in.data(),
                                        w.data(), N, IC, OC);
                }, o.repeats), 2 * fwd);
    }
}

// One r50 training step (112x112, forward in training mode + backward) through the model.
void bench_net(Report& rep, const Options& o) {
    IResNet<float> net(IResNetConfig::named("r50"), o.batch);
    net.init(1);
    const i64 S = net.config().input_size, F = net.embedding_size();
    auto images = random_fill(o.batch * 3 * S * S, 12, 0, 255);
    auto d_emb = random_fill(o.batch * F, 13, -1, 1);
    // SPEC.md section 3: about 6.3 G multiply-adds forward per image; backward about twice.
    const double fwd = 2 * 6.3 * o.batch;
    std::vector<double> f_ms, b_ms;
    for (int r = 0; r < o.net_warmup + o.net_repeats; ++r) {
        net.zero_grad();
        engine::Timer t;
        net.forward(images.data(), o.batch, true);
        const double f = t.ms();
        t.reset();
        net.backward(d_emb.data());
        const double b = t.ms();
        if (r >= o.net_warmup) f_ms.push_back(f), b_ms.push_back(b);
    }
    rep.add("r50_step", "fwd", median(f_ms), fwd);
    rep.add("r50_step", "bwd", median(b_ms), 2 * fwd);
}

}  // namespace

int main(int argc, char** argv) {
    Options o;
    try {
        for (int k = 1; k < argc; ++k) {
            const std::string a = argv[k];
            auto next = [&]() -> std::string {
                ENGINE_CHECK(k + 1 < argc, engine::ArgError, a, " needs a value");
                return argv[++k];
            };
            if (a == "--repeats") o.repeats = std::atoi(next().c_str());
            else if (a == "--net-repeats") o.net_repeats = std::atoi(next().c_str());
            else if (a == "--net-warmup") o.net_warmup = std::atoi(next().c_str());
            else if (a == "--batch") o.batch = std::atol(next().c_str());
            else if (a == "--no-net") o.net = false;
            else if (a == "--json") o.json = next();
            else throw engine::ArgError("unknown argument " + a + " (see the file header)");
        }
        ENGINE_CHECK(o.repeats >= 1 && o.net_repeats >= 1 && o.net_warmup >= 0 && o.batch >= 1,
                     engine::ArgError, "repeats and batch must be positive");
        Report rep(o.json);
        bench_layers(rep, o);
        if (o.net) bench_net(rep, o);
    } catch (const engine::Error& e) {
        std::fprintf(stderr, "bench_cpu_layers: %s\n", e.what());
        return 1;
    }
    return 0;
}
