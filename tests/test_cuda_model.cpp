// The whole iresnet on CUDA (float) against the CPU reference (float64): same initialisation,
// same images, same dropout mask; embedding, running statistics and every gradient compared.
#include <doctest/doctest.h>

#include <cmath>
#include <string>
#include <vector>

#include "engine/gpu_context.h"
#include "engine/tensor.h"
#include "layers/iresnet.h"
#include "tests/test_util.h"

namespace {

// ||a - b||_2 / ||b||_2 and max |a - b| / max |b|: errors measured against the size of the
// whole vector, so elements that are tiny by cancellation do not dominate.
struct VecError {
    double norm_rel = 0, max_rel = 0;
};
template <typename A>
VecError vec_error(const std::vector<A>& a, const std::vector<double>& b) {
    double d2 = 0, b2 = 0, dmax = 0, bmax = 0;
    for (size_t i = 0; i < b.size(); ++i) {
        const double d = (double)a[i] - b[i];
        if (!std::isfinite(d)) return {INFINITY, INFINITY};
        d2 += d * d;
        b2 += b[i] * b[i];
        dmax = std::fmax(dmax, std::fabs(d));
        bmax = std::fmax(bmax, std::fabs(b[i]));
    }
    return {std::sqrt(d2 / std::fmax(b2, 1e-300)), dmax / std::fmax(bmax, 1e-300)};
}

// The whole-vector errors above are dominated by the largest tensors (fc, convs): a gradient
// that is wholly wrong in a small tensor (a PReLU slope, a BN beta) stays far below 1e-3 of that
// scale. So also judge every store entry on its own: max |a - b| over the entry divided by
// max(the entry's max |b|, kFloor * the whole vector's max |b|). The floor keeps entries that
// are zero up to rounding by cancellation (fc.bias and the last unit's bn3.bias feed
// training-mode BNs, whose input gradients sum to zero per channel; running means of inputs that
// are BN outputs) from failing on noise. With the 1e-2 bound the test applies, an order-1 error
// in any entry larger than about 1e-2 * kFloor of the overall scale fails; float rounding
// (1e-5..1e-4 of an entry) passes with a wide margin. Returns the worst entry's error and
// writes its name.
template <typename A>
double worst_entry_error(const engine::ParamStore<double>& store, bool learnt_only,
                         const std::vector<A>& a, const std::vector<double>& b, std::string* name) {
    constexpr double kFloor = 1e-3;
    double global = 0;
    for (double v : b) global = std::fmax(global, std::fabs(v));
    double worst = 0;
    for (const engine::ParamEntry& e : store.entries()) {
        if ((e.kind == engine::ParamKind::learnt) != learnt_only) continue;
        double dmax = 0, bmax = 0;
        for (i64 i = e.offset; i < e.offset + e.numel; ++i) {
            const double d = (double)a[(size_t)i] - b[(size_t)i];
            if (!std::isfinite(d)) dmax = INFINITY;
            dmax = std::fmax(dmax, std::fabs(d));
            bmax = std::fmax(bmax, std::fabs(b[(size_t)i]));
        }
        const double err = dmax / std::fmax(std::fmax(bmax, kFloor * global), 1e-300);
        if (err > worst) {
            worst = err;
            *name = e.name;
        }
    }
    return worst;
}

}  // namespace

GPU_TEST_CASE("iresnet tiny step CUDA matches CPU") {
#ifdef ENGINE_CUDA
    using engine::Buffer;
    using engine::Device;
    // r18 at width 1/4 (16, 32, 64, 128 channels), 32x32 input (2x2 before fc), batch 8.
    IResNetConfig cfg = IResNetConfig::named("r18");
    cfg.width = 0.25;
    cfg.input_size = 32;
    cfg.num_features = 32;
    const i64 B = 8, S = cfg.input_size, n_img = B * 3 * S * S, n_emb = B * cfg.num_features;

    engine::GpuContext g(0);
    IResNet<float> gpu(cfg, B, &g);
    IResNet<double> cpu(cfg, B);
    gpu.init(2024);
    cpu.init(2024);
    // The float model holds the float rounding of the same draws: give the reference exactly
    // those values, so the comparison measures arithmetic only.
    {
        auto p = cpu.params().params().to_host();
        for (auto& x : p) x = (double)(float)x;
        cpu.params().params().copy_from_host(p);
        const auto pg = gpu.params().params().to_host();
        CHECK(vec_error(pg, p).max_rel == 0.0);
    }

    // Integer pixels and float-representable output gradients: identical inputs on both sides.
    std::vector<float> img_f(n_img);
    std::vector<double> img_d(n_img);
    {
        const auto u = test::random_vector<double>(n_img, 5, 0.0, 256.0);
        for (i64 i = 0; i < n_img; ++i) img_f[i] = (float)(img_d[i] = std::floor(u[i]));
    }
    const auto d_f = test::random_vector<float>(n_emb, 6);
    const std::vector<double> d_d(d_f.begin(), d_f.end());
    Buffer<float> img_dev(n_img, Device::cuda), d_dev(n_emb, Device::cuda),
        dimg_dev(n_img, Device::cuda);
    img_dev.copy_from_host(img_f);
    d_dev.copy_from_host(d_f);

    // Tolerance 1e-3 relative (to the vector's norm and to its largest element): float32 has
    // eps 6e-8, but a training step chains ~40 convs and BNs whose reductions run over up to
    // 1152 (conv) and 8*32*32 (BN) terms in a different order than the CPU, and BN backward in
    // training mode subtracts two nearly equal sums (mean of dout and of dout*xhat), which
    // amplifies the relative rounding of small gradients. Observed errors of such float nets
    // are 1e-5..1e-4; 1e-3 is the bound, and a real bug (a wrong index, a missing term) gives
    // errors of order 1. conv2d.cu keeps cuDNN in FMA math (no TF32), linear.cu keeps cuBLAS
    // in fp32, so no 10-bit-mantissa arithmetic is involved.
    const double tol = 1e-3;
    // The full batch, then a smaller one (the last batch of an epoch, a mining chunk): other
    // cuDNN plans, BN statistics over fewer samples, the same buffers.
    for (const i64 n : {B, (i64)5})
    for (const bool training : {true, false}) {
        CAPTURE(n);
        CAPTURE(training);
        const i64 ne = n * cfg.num_features, ni = n * 3 * S * S;
        if (n != B) gpu.prepare(n);
        gpu.zero_grad();
        cpu.zero_grad();
        gpu.set_dropout_rng(77, 0);
        cpu.set_dropout_rng(77, 0);
        const float* eg = gpu.forward(img_dev.data(), n, training);
        const double* ec = cpu.forward(img_d.data(), n, training);
        gpu.backward(d_dev.data(), dimg_dev.data());
        std::vector<double> dimg_c(ni);
        cpu.backward(d_d.data(), dimg_c.data());
        g.synchronize();

        std::vector<float> emb_g(ne);
        engine::device_copy(emb_g.data(), Device::cpu, eg, Device::cuda, ne * sizeof(float));
        const std::vector<double> emb_c(ec, ec + ne);
        REQUIRE(test::all_finite(emb_g));
        const auto e_emb = vec_error(emb_g, emb_c);
        const auto grads_g = gpu.params().grads().to_host();
        const auto grads_c = cpu.params().grads().to_host();
        REQUIRE(test::all_finite(grads_g));
        const auto e_grad = vec_error(grads_g, grads_c);
        auto dimg_g = dimg_dev.to_host();
        dimg_g.resize((size_t)ni);
        const auto e_img = vec_error(dimg_g, dimg_c);
        const auto e_state = vec_error(gpu.params().state().to_host(), cpu.params().state().to_host());
        MESSAGE("CUDA vs CPU (batch ", n, ", ", training ? "train" : "infer", "): embedding ",
                e_emb.max_rel,
                ", gradients norm ", e_grad.norm_rel, " max ", e_grad.max_rel, ", d images ",
                e_img.max_rel, ", BN state ", e_state.max_rel);
        CHECK(test::max_rel_diff(emb_g.data(), emb_c.data(), ne) < tol);
        CHECK(e_grad.norm_rel < tol);
        CHECK(e_grad.max_rel < tol);
        CHECK(e_img.norm_rel < tol);
        CHECK(e_img.max_rel < tol);
        CHECK(e_state.max_rel < tol);
        // Per tensor (see worst_entry_error): 1e-2 of each entry's own scale.
        std::string worst_grad, worst_state;
        const double e_grad_entry =
            worst_entry_error(cpu.params(), true, grads_g, grads_c, &worst_grad);
        const double e_state_entry = worst_entry_error(
            cpu.params(), false, gpu.params().state().to_host(), cpu.params().state().to_host(),
            &worst_state);
        INFO("worst gradient entry ", worst_grad, ": ", e_grad_entry, "; worst state entry ",
             worst_state, ": ", e_state_entry);
        CHECK(e_grad_entry < 1e-2);
        CHECK(e_state_entry < 1e-2);
        CHECK(gpu.dropout_counter() == cpu.dropout_counter());
    }
#endif
}
