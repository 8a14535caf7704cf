// Memory of the margin loss at face-dataset scale (issue 3 point 6): forward + backward of the
// normalised classifier and ArcFace CE in float on the CPU for B x C x D (default 512 x
// 1,000,000 x 512), reporting peak resident memory (getrusage ru_maxrss) against the bytes of
// the buffers the step must hold. Usage: build/bench_loss_memory [--classes C] [--batch B]
// [--dim D]. The full size needs about 8.2 GB of RAM and a few minutes on 2 cores.
#include <sys/resource.h>

#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "engine/device.h"
#include "engine/error.h"
#include "engine/rng.h"
#include "engine/tensor.h"
#include "losses/margin_softmax.h"
#include "losses/normalized_classifier.h"

namespace {

double gib(double bytes) { return bytes / (1024.0 * 1024.0 * 1024.0); }

double peak_rss_bytes() {
    rusage u{};
    getrusage(RUSAGE_SELF, &u);
    return (double)u.ru_maxrss * 1024.0;  // Linux reports kilobytes
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void fill_uniform(float* v, i64 n, u64 seed) {
#pragma omp parallel for schedule(static)
    for (i64 i = 0; i < n; ++i) v[i] = 2.f * engine::random_uniform01(seed, (u64)i) - 1.f;
}

}  // namespace

int main(int argc, char** argv) {
    i64 C = 1000000, B = 512, D = 512;
    for (int i = 1; i < argc; ++i) {
        const std::string a = argv[i];
        auto value = [&]() -> i64 {
            if (i + 1 >= argc) {
                std::fprintf(stderr, "%s needs a value\n", a.c_str());
                std::exit(2);
            }
            return std::atoll(argv[++i]);
        };
        if (a == "--classes")
            C = value();
        else if (a == "--batch")
            B = value();
        else if (a == "--dim")
            D = value();
        else {
            std::fprintf(stderr, "usage: %s [--classes C] [--batch B] [--dim D]\n", argv[0]);
            return 2;
        }
    }
    try {
        std::printf("loss memory bench: B %lld, C %lld, D %lld, float, CPU\n", (long long)B,
                    (long long)C, (long long)D);
        const double rss_start = peak_rss_bytes();
        using engine::Buffer;
        // The buffers a training step holds for the loss. Big ones: W, its normalised copy,
        // dW (C x D each) and the cos/logits/gradient buffer (B x C). Nothing else of size
        // B x C or C x D may exist.
        Buffer<float> W(C * D), wn(C * D), dW(C * D), cos(B * C);
        Buffer<float> x(B * D), xn(B * D), dx(B * D), xnorm(B), wnorm(C), loss(B);
        Buffer<std::int32_t> labels(B);
        fill_uniform(W.data(), C * D, 1);
        fill_uniform(x.data(), B * D, 2);
        engine::Rng rng(3);
        for (i64 b = 0; b < B; ++b) labels[b] = (std::int32_t)rng.below(C);
        const double named =
            (double)(W.bytes() + wn.bytes() + dW.bytes() + cos.bytes() + x.bytes() + xn.bytes() +
                     dx.bytes() + xnorm.bytes() + wnorm.bytes() + loss.bytes() + labels.bytes());

        auto t0 = std::chrono::steady_clock::now();
        normalized_classifier_forward_cpu(cos.data(), xn.data(), xnorm.data(), wn.data(),
                                          wnorm.data(), x.data(), W.data(), B, C, D);
        const double t_fwd = seconds_since(t0);
        t0 = std::chrono::steady_clock::now();
        const double mean = margin_softmax_loss_cpu(cos.data(), loss.data(), labels.data(), B, C,
                                                    arcface_options(64, 0.5));
        const double t_loss = seconds_since(t0);
        t0 = std::chrono::steady_clock::now();
        normalized_classifier_backward_cpu(dx.data(), dW.data(), cos.data(), xn.data(),
                                           xnorm.data(), wn.data(), wnorm.data(), B, C, D);
        const double t_bwd = seconds_since(t0);

        const double peak = peak_rss_bytes();
        const double chunk = (double)normalized_classifier_workspace_bytes(C, D);
        std::printf("  W        (C x D) %8.3f GiB\n", gib((double)W.bytes()));
        std::printf("  W / |W|  (C x D) %8.3f GiB\n", gib((double)wn.bytes()));
        std::printf("  dW       (C x D) %8.3f GiB\n", gib((double)dW.bytes()));
        std::printf("  logits   (B x C) %8.3f GiB   (cos, then d loss / d cos in place)\n",
                    gib((double)cos.bytes()));
        std::printf("  all named buffers %7.3f GiB; dW chunk temporary %.1f MiB\n", gib(named),
                    chunk / (1024.0 * 1024.0));
        std::printf(
            "  time: classifier forward %.1f s, margin softmax CE %.1f s, backward %.1f s\n", t_fwd,
            t_loss, t_bwd);
        std::printf("  mean loss %.4f (finite: %s)\n", mean, std::isfinite(mean) ? "yes" : "NO");
        std::printf(
            "  peak resident memory %.3f GiB (at start %.3f GiB); engine byte counter "
            "peak %.3f GiB\n",
            gib(peak), gib(rss_start),
            gib((double)engine::memory_counter(engine::Device::cpu).peak));
        const double extra = peak - named;
        std::printf("  peak minus named buffers: %.3f GiB\n", gib(extra));
        // The claim: the step runs in the named buffers plus small change (the process, BLAS
        // buffers, the dW chunk): no hidden B x C or C x D temporary. One such temporary would
        // add min(B x C, C x D) x 4 bytes.
        const double one_big = 4.0 * (double)std::min(B * C, C * D);
        const bool ok = extra < 0.5 * one_big + 256.0 * 1024 * 1024 && std::isfinite(mean);
        std::printf(
            "  verdict: %s: %.2f GiB peak = the 4 big buffers (expected minimum %.2f GiB) "
            "+ %.2f GiB; no extra B x C or C x D buffer (one would add %.2f GiB)\n",
            ok ? "a few GB, as claimed" : "MORE THAN EXPECTED", gib(peak),
            gib((double)(W.bytes() + wn.bytes() + dW.bytes() + cos.bytes())), gib(extra),
            gib(one_big));
        return ok ? 0 : 1;
    } catch (const engine::Error& e) {
        std::fprintf(stderr, "bench_loss_memory: %s\n", e.what());
        return 1;
    }
}
