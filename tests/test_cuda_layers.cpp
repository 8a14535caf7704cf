// CUDA parity of the layers and the SGD update: every CUDA op (float) against its CPU reference
// run in double on the same random float inputs, outputs and all gradients compared.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/gpu_context.h"
#include "engine/sgd.h"
#include "engine/tensor.h"
#include "layers/batchnorm.h"
#include "layers/conv2d.h"
#include "layers/dropout.h"
#include "layers/elementwise.h"
#include "layers/l2norm.h"
#include "layers/linear.h"
#include "layers/prelu.h"
#include "tests/test_util.h"
#ifdef ENGINE_CUDA
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "engine/cuda_check.h"
#endif

// How tolerances are set. The reference runs in double on the very float values the GPU gets,
// so a difference is the GPU's float rounding (or a bug). Reductions are judged by
// scaled_diff: max |gpu - ref| / max |ref| over the tensor, because rounding errors scale with
// the magnitude of the terms summed, not with an entry that happens to cancel to near zero.
// A float sum of M terms has an error of about sqrt(M) * 6e-8 of that magnitude (M * 6e-8 in
// the worst case). Elementwise ops are judged per element against a few float roundings.

#ifdef ENGINE_CUDA
namespace {

using engine::Buffer;
using engine::Device;

std::vector<double> to_double(const std::vector<float>& v) {
    return std::vector<double>(v.begin(), v.end());
}

Buffer<float> upload(const std::vector<float>& v) {
    Buffer<float> b((i64)v.size(), Device::cuda);
    b.copy_from_host(v);
    return b;
}

// An output buffer filled with NaN (all bits set): a launcher that accumulates into its output
// instead of writing it, or leaves an element unwritten, gives NaN there and fails the check
// (a zeroed buffer would hide both).
Buffer<float> poisoned(i64 n) {
    Buffer<float> b(n, Device::cuda);
    CUDA_CHECK(cudaMemset(b.data(), 0xFF, (size_t)n * sizeof(float)));
    return b;
}

// Buffers are zeroed and filled through the legacy default stream (cudaMemset, cudaMemcpy; a
// pageable copy may return before its DMA has landed), while the launchers run on the
// GpuContext's non-blocking stream, which does not wait for the legacy stream. So wait for the
// whole device after the uploads, before the first launch.
void settle() { CUDA_CHECK(cudaDeviceSynchronize()); }

void expect_close(const char* what, const std::vector<float>& gpu, const std::vector<double>& ref,
                  double tol) {
    const double d = test::scaled_diff(gpu, ref);
    INFO(what, ": max |gpu - ref| / max |ref| = ", d, ", tolerance ", tol);
    CHECK(d <= tol);
}

// Per-element relative difference (floor 1e-30, so exact zeros on both sides compare equal).
void expect_elementwise(const char* what, const std::vector<float>& gpu,
                        const std::vector<double>& ref, double tol) {
    REQUIRE(gpu.size() == ref.size());
    const double d = test::max_rel_diff(gpu.data(), ref.data(), (i64)gpu.size(), 1e-30);
    INFO(what, ": max relative difference ", d, ", tolerance ", tol);
    CHECK(d <= tol);
}

// Convolution: forward, backward with din, and backward without din (dweight only), on random
// data; dweight starts from random values on both sides to check that it accumulates.
//
// Tolerance 2e-5 (scaled). The sums here have at most a few hundred terms (out: C*R*S, din:
// K*R*S, dweight: N*P*Q), so plain fp32 FMA arithmetic lands near 1e-6; cuDNN may pick
// Winograd or FFT algorithms whose transforms amplify rounding to ~1e-6..1e-5. TF32 tensor-core
// maths (10-bit mantissa, what CUDNN_DEFAULT_MATH allows on sm_80+) gives ~1e-4 and fails: the
// test also guards the FMA_MATH setting in conv2d.cu.
void conv_parity(const Conv2dShape& s, u64 seed, double tol = 2e-5) {
    const i64 n_in = s.in_size(), n_out = s.out_size(), n_w = s.weight_size();
    const auto x = test::random_vector<float>(n_in, seed);
    const auto w = test::random_vector<float>(n_w, seed + 1);
    const auto dout = test::random_vector<float>(n_out, seed + 2);
    const auto dw0 = test::random_vector<float>(n_w, seed + 3);

    const auto xd = to_double(x), wd = to_double(w), doutd = to_double(dout);
    std::vector<double> out_ref(n_out), din_ref(n_in), dw_ref = to_double(dw0);
    conv2d_forward_cpu(out_ref.data(), xd.data(), wd.data(), s);
    conv2d_backward_cpu(din_ref.data(), dw_ref.data(), doutd.data(), xd.data(), wd.data(), s);

    engine::GpuContext g(0);
    const size_t ws = conv2d_prepare_cuda(s, g);
    g.reserve_workspace(ws);
    CHECK(conv2d_prepare_cuda(s, g) == ws);  // cached: the same plan, the same need
    auto dx = upload(x), dwt = upload(w), ddout = upload(dout), ddw = upload(dw0),
         ddw2 = upload(dw0);
    Buffer<float> dy = poisoned(n_out), ddin = poisoned(n_in);
    settle();
    conv2d_forward_cuda(dy.data(), dx.data(), dwt.data(), s, g);
    conv2d_backward_cuda(ddin.data(), ddw.data(), ddout.data(), dx.data(), dwt.data(), s, g);
    conv2d_backward_cuda(nullptr, ddw2.data(), ddout.data(), dx.data(), dwt.data(), s, g);
    g.synchronize();

    expect_close("conv out", dy.to_host(), out_ref, tol);
    expect_close("conv din", ddin.to_host(), din_ref, tol);
    expect_close("conv dweight (accumulated)", ddw.to_host(), dw_ref, tol);
    expect_close("conv dweight, din = null", ddw2.to_host(), dw_ref, tol);
}

// Batch-norm inputs: x centred near 1 (a mean the variance must not cancel against), gamma
// away from 0 and 1, positive running variances, random accumulators.
struct BnData {
    std::vector<float> x, gamma, beta, rmean, rvar, dout, dgamma0, dbeta0;
    BnData(const BatchNormShape& s, u64 seed) {
        const i64 n = s.N * s.C * s.HW;
        x = test::random_vector<float>(n, seed, -1.0, 3.0);
        gamma = test::random_vector<float>(s.C, seed + 1, 0.5, 1.5);
        beta = test::random_vector<float>(s.C, seed + 2, -0.5, 0.5);
        rmean = test::random_vector<float>(s.C, seed + 3, -0.5, 0.5);
        rvar = test::random_vector<float>(s.C, seed + 4, 0.5, 1.5);
        dout = test::random_vector<float>(n, seed + 5);
        dgamma0 = test::random_vector<float>(s.C, seed + 6);
        dbeta0 = test::random_vector<float>(s.C, seed + 7);
    }
};

// Training mode, forward and backward. fix_gamma: gamma is all ones and dgamma is null (the
// embedding's last BN).
//
// Tolerances: the GPU reduces each channel in double, so the statistics (mean, inv_std,
// running values) and the parameter gradients (double sums) differ from the reference by a
// float rounding or two: 1e-6. out is a few float operations per element: 1e-6 scaled.
// din = gamma * invstd * (dout - Sd / M - xhat * Sdx / M) subtracts terms of similar size in
// float: 1e-5 scaled.
void bn_train_parity(const BatchNormShape& s, bool fix_gamma, u64 seed) {
    const i64 n = s.N * s.C * s.HW;
    BnData d(s, seed);
    if (fix_gamma) std::fill(d.gamma.begin(), d.gamma.end(), 1.f);

    const auto xd = to_double(d.x), gd = to_double(d.gamma), bd = to_double(d.beta),
               doutd = to_double(d.dout);
    std::vector<double> out_ref(n), mean_ref(s.C), invstd_ref(s.C), rmean_ref = to_double(d.rmean),
        rvar_ref = to_double(d.rvar), din_ref(n), dgamma_ref = to_double(d.dgamma0),
        dbeta_ref = to_double(d.dbeta0);
    batchnorm_forward_train_cpu(out_ref.data(), mean_ref.data(), invstd_ref.data(),
                                rmean_ref.data(), rvar_ref.data(), xd.data(), gd.data(), bd.data(),
                                s);
    batchnorm_backward_train_cpu(din_ref.data(), fix_gamma ? nullptr : dgamma_ref.data(),
                                 dbeta_ref.data(), doutd.data(), xd.data(), gd.data(),
                                 mean_ref.data(), invstd_ref.data(), s);

    engine::GpuContext g(0);
    auto dx = upload(d.x), dg = upload(d.gamma), db = upload(d.beta), drm = upload(d.rmean),
         drv = upload(d.rvar), ddout = upload(d.dout), ddg = upload(d.dgamma0),
         ddb = upload(d.dbeta0);
    Buffer<float> dy = poisoned(n), dmean = poisoned(s.C), dinv = poisoned(s.C),
        ddin = poisoned(n);
    settle();
    batchnorm_forward_train_cuda(dy.data(), dmean.data(), dinv.data(), drm.data(), drv.data(),
                                 dx.data(), dg.data(), db.data(), s, g);
    batchnorm_backward_train_cuda(ddin.data(), fix_gamma ? nullptr : ddg.data(), ddb.data(),
                                  ddout.data(), dx.data(), dg.data(), dmean.data(), dinv.data(), s,
                                  g);
    g.synchronize();

    expect_close("bn out", dy.to_host(), out_ref, 1e-6);
    expect_elementwise("bn save_mean", dmean.to_host(), mean_ref, 1e-6);
    expect_elementwise("bn save_invstd", dinv.to_host(), invstd_ref, 1e-6);
    expect_elementwise("bn running_mean", drm.to_host(), rmean_ref, 1e-6);
    expect_elementwise("bn running_var", drv.to_host(), rvar_ref, 1e-6);
    expect_close("bn din", ddin.to_host(), din_ref, 1e-5);
    expect_close("bn dbeta (accumulated)", ddb.to_host(), dbeta_ref, 1e-6);
    if (fix_gamma)  // dgamma = null: the buffer is untouched
        CHECK(ddg.to_host() == d.dgamma0);
    else
        expect_close("bn dgamma (accumulated)", ddg.to_host(), dgamma_ref, 1e-6);
}

}  // namespace
#endif  // ENGINE_CUDA

GPU_TEST_CASE("cuda conv2d 3x3 stride 1 pad 1 matches the CPU reference") {
#ifdef ENGINE_CUDA
    Conv2dShape s;
    s.N = 2, s.C = 8, s.H = 11, s.W = 11, s.K = 12, s.R = 3, s.S = 3, s.stride = 1, s.pad = 1;
    conv_parity(s, 100);
#endif
}

GPU_TEST_CASE("cuda conv2d 3x3 stride 2 pad 1 matches the CPU reference") {
#ifdef ENGINE_CUDA
    Conv2dShape s;  // odd input size: the last column of the padded input is not used
    s.N = 2, s.C = 8, s.H = 11, s.W = 11, s.K = 12, s.R = 3, s.S = 3, s.stride = 2, s.pad = 1;
    conv_parity(s, 200);
#endif
}

GPU_TEST_CASE("cuda conv2d 1x1 stride 2 (projection shortcut) matches the CPU reference") {
#ifdef ENGINE_CUDA
    Conv2dShape s;
    s.N = 2, s.C = 8, s.H = 12, s.W = 12, s.K = 16, s.R = 1, s.S = 1, s.stride = 2, s.pad = 0;
    conv_parity(s, 300);
#endif
}

GPU_TEST_CASE("cuda conv2d at an r50 shape (64 channels, 28x28) matches the CPU reference") {
#ifdef ENGINE_CUDA
    // The small shapes above may not reach the algorithms cuDNN picks for the network's shapes
    // (Winograd, FFT, implicit GEMM variants). Sums here: 576 terms for out and din, 3136 for
    // dweight (~sqrt(3136) 6e-8 = 3e-6 in plain FMA arithmetic); transform-based algorithms
    // amplify rounding by up to ~10x, so 5e-5 scaled. A wrong index is still O(1).
    Conv2dShape s;
    s.N = 4, s.C = 64, s.H = 28, s.W = 28, s.K = 64, s.R = 3, s.S = 3, s.stride = 1, s.pad = 1;
    conv_parity(s, 400, 5e-5);
#endif
}

GPU_TEST_CASE("cuda batchnorm training forward and backward match the CPU reference") {
#ifdef ENGINE_CUDA
    BatchNormShape s;  // BatchNorm2d: M = N * HW = 200 values per channel
    s.N = 4, s.C = 6, s.HW = 50;
    bn_train_parity(s, false, 400);
    BatchNormShape s1;  // BatchNorm1d (HW = 1): the channel walk steps over whole rows
    s1.N = 16, s1.C = 40, s1.HW = 1;
    bn_train_parity(s1, false, 410);
    // M = N * HW above the 512 threads of a block, so every thread walks several elements:
    // HW = 333 makes a step of 512 advance one row and 179 columns, with a carry into the next
    // row on most steps; the BatchNorm1d case steps by 512 whole rows.
    BatchNormShape s2;
    s2.N = 5, s2.C = 3, s2.HW = 333;
    bn_train_parity(s2, false, 430);
    BatchNormShape s3;
    s3.N = 700, s3.C = 4, s3.HW = 1;
    bn_train_parity(s3, false, 440);
#endif
}

GPU_TEST_CASE("cuda batchnorm fix_gamma (gamma = 1, dgamma = null) matches the CPU reference") {
#ifdef ENGINE_CUDA
    BatchNormShape s;  // the embedding's BatchNorm1d
    s.N = 16, s.C = 40, s.HW = 1;
    bn_train_parity(s, true, 420);
#endif
}

#ifdef ENGINE_CUDA
namespace {
// Inference mode, forward and backward. Tolerances: out and din are a few float operations per
// element on a per-channel scale computed in double: 1e-6 scaled. dgamma and dbeta are double
// sums of float products: 1e-6 scaled.
void bn_infer_parity(const BatchNormShape& s, u64 seed) {
    const i64 n = s.N * s.C * s.HW;
    BnData d(s, seed);
    const auto xd = to_double(d.x), gd = to_double(d.gamma), bd = to_double(d.beta),
               rmd = to_double(d.rmean), rvd = to_double(d.rvar), doutd = to_double(d.dout);
    std::vector<double> out_ref(n), din_ref(n), dgamma_ref = to_double(d.dgamma0),
                                                dbeta_ref = to_double(d.dbeta0);
    batchnorm_forward_infer_cpu(out_ref.data(), xd.data(), gd.data(), bd.data(), rmd.data(),
                                rvd.data(), s);
    batchnorm_backward_infer_cpu(din_ref.data(), dgamma_ref.data(), dbeta_ref.data(),
                                 doutd.data(), xd.data(), gd.data(), rmd.data(), rvd.data(), s);

    engine::GpuContext g(0);
    auto dx = upload(d.x), dg = upload(d.gamma), db = upload(d.beta), drm = upload(d.rmean),
         drv = upload(d.rvar), ddout = upload(d.dout), ddg = upload(d.dgamma0),
         ddb = upload(d.dbeta0);
    Buffer<float> dy = poisoned(n), ddin = poisoned(n);
    settle();
    batchnorm_forward_infer_cuda(dy.data(), dx.data(), dg.data(), db.data(), drm.data(),
                                 drv.data(), s, g);
    batchnorm_backward_infer_cuda(ddin.data(), ddg.data(), ddb.data(), ddout.data(), dx.data(),
                                  dg.data(), drm.data(), drv.data(), s, g);
    g.synchronize();
    expect_close("bn infer out", dy.to_host(), out_ref, 1e-6);
    expect_close("bn infer din", ddin.to_host(), din_ref, 1e-6);
    expect_close("bn infer dgamma (accumulated)", ddg.to_host(), dgamma_ref, 1e-6);
    expect_close("bn infer dbeta (accumulated)", ddb.to_host(), dbeta_ref, 1e-6);
    // Running statistics are inputs here and must be left alone.
    CHECK(drm.to_host() == d.rmean);
    CHECK(drv.to_host() == d.rvar);
}
}  // namespace
#endif  // ENGINE_CUDA

GPU_TEST_CASE("cuda batchnorm inference forward and backward match the CPU reference") {
#ifdef ENGINE_CUDA
    BatchNormShape s;  // M = 300: one block per channel, one element per thread
    s.N = 3, s.C = 5, s.HW = 100;
    bn_infer_parity(s, 500);
    // M = 6000 > 8 * 512: the forward splits each channel over 2 blocks (grid y), a step of
    // 1024 elements with carries across rows of 1500; backward threads walk 12 elements each.
    BatchNormShape s2;
    s2.N = 4, s2.C = 3, s2.HW = 1500;
    bn_infer_parity(s2, 510);
#endif
}

GPU_TEST_CASE("cuda linear forward and backward match the CPU reference") {
#ifdef ENGINE_CUDA
    // Tolerance 1e-5 scaled: out sums IC = 200 products, din OC = 40, dweight N = 37, dbias
    // N = 37, all in fp32 (the handle must not be in a TF32 mode, checked below; TF32 would give
    // ~1e-4). N = 37 > 8 rows per bias-gradient thread column and OC = 40 = one full and one
    // partial 32-column tile, so both loops of bias_grad_kernel run more than once.
    const i64 N = 37, IC = 200, OC = 40;
    const auto x = test::random_vector<float>(N * IC, 600);
    const auto w = test::random_vector<float>(OC * IC, 601);
    const auto b = test::random_vector<float>(OC, 602);
    const auto dout = test::random_vector<float>(N * OC, 603);
    const auto dw0 = test::random_vector<float>(OC * IC, 604);
    const auto db0 = test::random_vector<float>(OC, 605);
    const auto xd = to_double(x), wd = to_double(w), bd = to_double(b), doutd = to_double(dout);
    std::vector<double> out_ref(N * OC), out_nobias_ref(N * OC), din_ref(N * IC),
        dw_ref = to_double(dw0), db_ref = to_double(db0);
    linear_forward_cpu(out_ref.data(), xd.data(), wd.data(), bd.data(), N, IC, OC);
    linear_forward_cpu(out_nobias_ref.data(), xd.data(), wd.data(), (const double*)nullptr, N, IC,
                       OC);
    linear_backward_cpu(din_ref.data(), dw_ref.data(), db_ref.data(), doutd.data(), xd.data(),
                        wd.data(), N, IC, OC);

    engine::GpuContext g(0);
    cublasMath_t mode;
    CUBLAS_CHECK(cublasGetMathMode(g.cublas(), &mode));
    const int base_mode = (int)mode & ~(int)CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION;
    CHECK(base_mode != (int)CUBLAS_TF32_TENSOR_OP_MATH);
    CHECK(base_mode != (int)CUBLAS_TENSOR_OP_MATH);

    auto dx = upload(x), dwt = upload(w), dbias = upload(b), ddout = upload(dout),
         ddw = upload(dw0), ddb = upload(db0), ddw2 = upload(dw0);
    Buffer<float> dy = poisoned(N * OC), dy2 = poisoned(N * OC), ddin = poisoned(N * IC);
    settle();
    linear_forward_cuda(dy.data(), dx.data(), dwt.data(), dbias.data(), N, IC, OC, g);
    linear_forward_cuda(dy2.data(), dx.data(), dwt.data(), nullptr, N, IC, OC, g);
    linear_backward_cuda(ddin.data(), ddw.data(), ddb.data(), ddout.data(), dx.data(), dwt.data(),
                         N, IC, OC, g);
    // din and dbias null: only dweight accumulates.
    linear_backward_cuda(nullptr, ddw2.data(), nullptr, ddout.data(), dx.data(), dwt.data(), N, IC,
                         OC, g);
    g.synchronize();
    expect_close("linear out", dy.to_host(), out_ref, 1e-5);
    expect_close("linear out, no bias", dy2.to_host(), out_nobias_ref, 1e-5);
    expect_close("linear din", ddin.to_host(), din_ref, 1e-5);
    expect_close("linear dweight (accumulated)", ddw.to_host(), dw_ref, 1e-5);
    expect_close("linear dbias (accumulated)", ddb.to_host(), db_ref, 1e-5);
    expect_close("linear dweight, din = dbias = null", ddw2.to_host(), dw_ref, 1e-5);
#endif
}

GPU_TEST_CASE("cuda dropout draws the CPU's mask bit for bit") {
#ifdef ENGINE_CUDA
    // The mask must match exactly (same Philox counters); kept values are x / (1 - p), one or two
    // float roundings (1 - p, then the quotient): 1e-6 relative per element. The offset is past
    // 2^32 so the counter's high word is exercised.
    const i64 n = 10007;
    const float p = 0.4f;
    const u64 seed = 1234, offset = (u64(1) << 32) + 17;
    const auto x = test::random_vector<float>(n, 700, 0.1, 1.1);  // never 0: 0 marks a drop
    const auto dout = test::random_vector<float>(n, 701, 0.1, 1.1);
    const auto xd = to_double(x), doutd = to_double(dout);
    std::vector<double> out_ref(n), din_ref(n);
    dropout_forward_cpu(out_ref.data(), xd.data(), n, p, seed, offset);
    dropout_backward_cpu(din_ref.data(), doutd.data(), n, p, seed, offset);

    engine::GpuContext g(0);
    auto dx = upload(x), ddout = upload(dout);
    Buffer<float> dy = poisoned(n), ddin = poisoned(n);
    settle();
    dropout_forward_cuda(dy.data(), dx.data(), n, p, seed, offset, g);
    dropout_backward_cuda(ddin.data(), ddout.data(), n, p, seed, offset, g);
    g.synchronize();
    const auto y = dy.to_host(), dxin = ddin.to_host();
    i64 mask_mismatch = 0, dropped = 0;
    for (i64 i = 0; i < n; ++i) {
        const bool ref_drop = out_ref[i] == 0.0;
        mask_mismatch += (y[i] == 0.f) != ref_drop;
        mask_mismatch += (dxin[i] == 0.f) != ref_drop;
        dropped += ref_drop;
    }
    CHECK(mask_mismatch == 0);
    // The mask is a real Bernoulli(p) draw: 6 standard deviations is 0.029 at this n.
    CHECK(std::fabs((double)dropped / n - p) < 0.03);
    expect_elementwise("dropout out", y, out_ref, 1e-6);
    expect_elementwise("dropout din", dxin, din_ref, 1e-6);
#endif
}

GPU_TEST_CASE("cuda add matches the CPU reference") {
#ifdef ENGINE_CUDA
    // A float sum is correctly rounded: 2^-24 ~ 6e-8 relative; tolerance 1e-7.
    const i64 n = 100003;  // more than one block, not a multiple of the block size
    const auto a = test::random_vector<float>(n, 800), b = test::random_vector<float>(n, 801);
    const auto ad = to_double(a), bd = to_double(b);
    std::vector<double> ref(n);
    add_forward_cpu(ref.data(), ad.data(), bd.data(), n);
    engine::GpuContext g(0);
    auto da = upload(a), db = upload(b);
    Buffer<float> dy = poisoned(n);
    settle();
    add_forward_cuda(dy.data(), da.data(), db.data(), n, g);
    g.synchronize();
    expect_elementwise("add", dy.to_host(), ref, 1e-7);
#endif
}

GPU_TEST_CASE("cuda accumulate matches the CPU reference") {
#ifdef ENGINE_CUDA
    // dst += src, twice: two correctly rounded float additions on each side, so the CPU's float
    // reference and the GPU agree bit for bit. (Against a double reference the first rounding,
    // relative to a second sum that cancels, can reach several 1e-7.)
    const i64 n = 100003;
    const auto dst = test::random_vector<float>(n, 810), src = test::random_vector<float>(n, 811);
    std::vector<float> ref_f = dst;
    accumulate_cpu(ref_f.data(), src.data(), n);
    accumulate_cpu(ref_f.data(), src.data(), n);
    const std::vector<double> ref = to_double(ref_f);
    engine::GpuContext g(0);
    auto ddst = upload(dst), dsrc = upload(src);
    settle();
    accumulate_cuda(ddst.data(), dsrc.data(), n, g);
    accumulate_cuda(ddst.data(), dsrc.data(), n, g);
    g.synchronize();
    expect_elementwise("accumulate", ddst.to_host(), ref, 0.0);
#endif
}

GPU_TEST_CASE("cuda input_normalize matches the CPU reference exactly") {
#ifdef ENGINE_CUDA
    // Pixels 0..255: (x - 127.5) * 2^-7 is exact in float, so the results must be identical.
    const i64 n = 3 * 112 * 112 + 5;
    auto x = test::random_vector<float>(n, 820, 0.0, 256.0);
    for (auto& v : x) v = std::floor(v);
    const auto xd = to_double(x);
    std::vector<double> ref(n);
    input_normalize_cpu(ref.data(), xd.data(), n);
    engine::GpuContext g(0);
    auto dx = upload(x);
    Buffer<float> dy = poisoned(n);
    settle();
    input_normalize_cuda(dy.data(), dx.data(), n, g);
    g.synchronize();
    const auto y = dy.to_host();
    i64 differ = 0;
    for (i64 i = 0; i < n; ++i) differ += (double)y[i] != ref[i];
    CHECK(differ == 0);
#endif
}

GPU_TEST_CASE("cuda l2norm forward and backward match the CPU reference") {
#ifdef ENGINE_CUDA
    // Tolerances: the norm is a float sum of D = 300 squares in a tree (~log2(256) roundings):
    // 2e-6 relative; out = x / norm adds one rounding: 2e-6 scaled; din = (dout - y <dout, y>)
    // / norm has a D-term dot product and a subtraction: 1e-5 scaled.
    const i64 N = 37, D = 300;  // D not a multiple of the block size: the row tail is covered
    const auto x = test::random_vector<float>(N * D, 900);
    const auto dout = test::random_vector<float>(N * D, 901);
    const auto xd = to_double(x), doutd = to_double(dout);
    std::vector<double> out_ref(N * D), norm_ref(N), din_ref(N * D);
    l2norm_forward_cpu(out_ref.data(), norm_ref.data(), xd.data(), N, D);
    l2norm_backward_cpu(din_ref.data(), doutd.data(), out_ref.data(), norm_ref.data(), N, D);
    engine::GpuContext g(0);
    auto dx = upload(x), ddout = upload(dout);
    Buffer<float> dy = poisoned(N * D), dnorm = poisoned(N), ddin = poisoned(N * D);
    settle();
    l2norm_forward_cuda(dy.data(), dnorm.data(), dx.data(), N, D, g);
    l2norm_backward_cuda(ddin.data(), ddout.data(), dy.data(), dnorm.data(), N, D, g);
    g.synchronize();
    expect_elementwise("l2norm norm", dnorm.to_host(), norm_ref, 2e-6);
    expect_close("l2norm out", dy.to_host(), out_ref, 2e-6);
    expect_close("l2norm din", ddin.to_host(), din_ref, 1e-5);
#endif
}

GPU_TEST_CASE("cuda prelu accumulates dslope and skips din = null like the CPU reference") {
#ifdef ENGINE_CUDA
    // tests/test_prelu.cpp checks the values from a zero dslope with one element per thread;
    // here dslope starts from random values (it must accumulate, +=), N * HW = 1500 > 256 so
    // each backward thread walks several elements across images, and a second backward with
    // din = null must add the same slope gradient again. Reference in double on the same floats.
    // Tolerances: out and din are one float multiply per element: 1e-7 relative; dslope is a
    // float tree sum of up to 1500 products: 1e-5 scaled.
    const i64 N = 3, C = 7, HW = 500, n = N * C * HW;
    const auto x = test::random_vector<float>(n, 1100);
    const auto slope = test::random_vector<float>(C, 1101, 0.05, 0.5);
    const auto dout = test::random_vector<float>(n, 1102);
    const auto ds0 = test::random_vector<float>(C, 1103);
    const auto xd = to_double(x), sd = to_double(slope), doutd = to_double(dout);
    std::vector<double> out_ref(n), din_ref(n), ds_ref = to_double(ds0);
    prelu_forward_cpu(out_ref.data(), xd.data(), sd.data(), N, C, HW);
    prelu_backward_cpu(din_ref.data(), ds_ref.data(), doutd.data(), xd.data(), sd.data(), N, C,
                       HW);
    prelu_backward_cpu((double*)nullptr, ds_ref.data(), doutd.data(), xd.data(), sd.data(), N, C,
                       HW);

    engine::GpuContext g(0);
    auto dx = upload(x), dslope = upload(slope), ddout = upload(dout), dds = upload(ds0);
    Buffer<float> dy = poisoned(n), ddin = poisoned(n);
    settle();
    prelu_forward_cuda(dy.data(), dx.data(), dslope.data(), N, C, HW, g);
    prelu_backward_cuda(ddin.data(), dds.data(), ddout.data(), dx.data(), dslope.data(), N, C, HW,
                        g);
    prelu_backward_cuda(nullptr, dds.data(), ddout.data(), dx.data(), dslope.data(), N, C, HW, g);
    g.synchronize();
    expect_elementwise("prelu out", dy.to_host(), out_ref, 1e-7);
    expect_elementwise("prelu din", ddin.to_host(), din_ref, 1e-7);
    expect_close("prelu dslope (accumulated twice)", dds.to_host(), ds_ref, 1e-5);
#endif
}

GPU_TEST_CASE("cuda sgd momentum update matches the CPU reference") {
#ifdef ENGINE_CUDA
    // Two steps (the second one uses the velocity of the first). Each step is a handful of float
    // operations on O(1) values: 1e-6 scaled on w and v.
    const i64 n = 10007;
    const float lr = 0.1f, momentum = 0.9f, wd = 5e-4f, rescale = 0.5f;
    const auto w0 = test::random_vector<float>(n, 1000);
    const auto v0 = test::random_vector<float>(n, 1001, -0.1, 0.1);
    const auto g1 = test::random_vector<float>(n, 1002), g2 = test::random_vector<float>(n, 1003);
    std::vector<double> w_ref = to_double(w0), v_ref = to_double(v0);
    const auto g1d = to_double(g1), g2d = to_double(g2);
    for (const auto* gd : {&g1d, &g2d})
        engine::sgd_momentum_update_cpu<double>(w_ref.data(), v_ref.data(), gd->data(), n, lr,
                                                momentum, wd, rescale);
    engine::GpuContext g(0);
    auto dw = upload(w0), dv = upload(v0), dg1 = upload(g1), dg2 = upload(g2);
    settle();
    engine::sgd_momentum_update_cuda(dw.data(), dv.data(), dg1.data(), n, lr, momentum, wd,
                                     rescale, g);
    engine::sgd_momentum_update_cuda(dw.data(), dv.data(), dg2.data(), n, lr, momentum, wd,
                                     rescale, g);
    g.synchronize();
    expect_close("sgd w", dw.to_host(), w_ref, 1e-6);
    expect_close("sgd v", dv.to_host(), v_ref, 1e-6);
#endif
}
