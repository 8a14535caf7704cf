// Gradient checks of the layers in float64: each builds a small random problem, takes the loss
// L = sum(out * R) for a fixed random R (so dL/dout = R), runs the analytic backward once and
// compares every input and parameter gradient with central differences.
#include "layers/gradcheck_layers.h"

#include <cmath>
#include <vector>

#include "engine/rng.h"
#include "layers/batchnorm.h"
#include "layers/conv2d.h"
#include "layers/dropout.h"
#include "layers/elementwise.h"
#include "layers/l2norm.h"
#include "layers/linear.h"
#include "layers/prelu.h"

using engine::GradCheckCase;
using engine::GradCheckRow;
using engine::random_values;
using engine::check_gradient;
using engine::weighted_sum;

namespace {

std::vector<GradCheckRow> check_prelu() {
    const i64 N = 2, C = 3, HW = 5, n = N * C * HW;
    auto x = random_values(n, 11), slope = random_values(C, 12, 0.05, 0.5), R = random_values(n, 13);
    std::vector<double> out(n), dx(n), dslope(C, 0.0);
    auto loss = [&] {
        prelu_forward_cpu(out.data(), x.data(), slope.data(), N, C, HW);
        return weighted_sum(out.data(), R.data(), n);
    };
    prelu_backward_cpu(dx.data(), dslope.data(), R.data(), x.data(), slope.data(), N, C, HW);
    engine::GradCheckOptions opt;
    opt.is_kink = [&](i64 i) { return std::fabs(x[i]) < 10 * opt.step; };
    std::vector<GradCheckRow> rows;
    rows.push_back(check_gradient("prelu", "input", x.data(), n, dx.data(), loss, opt));
    opt.is_kink = nullptr;
    rows.push_back(check_gradient("prelu", "slope", slope.data(), C, dslope.data(), loss, opt));
    return rows;
}

// Convolution: linear in the input and in the weight, so central differences are exact up to
// rounding; the shapes cover padding, stride 2, a 1x1 projection and a non-square kernel.
std::vector<GradCheckRow> check_conv2d(const std::string& group, const Conv2dShape& s) {
    auto x = random_values(s.in_size(), 21), w = random_values(s.weight_size(), 22);
    auto R = random_values(s.out_size(), 23);
    std::vector<double> out(s.out_size()), dx(s.in_size()), dw(s.weight_size(), 0.0);
    auto loss = [&] {
        conv2d_forward_cpu(out.data(), x.data(), w.data(), s);
        return weighted_sum(out.data(), R.data(), s.out_size());
    };
    conv2d_backward_cpu(dx.data(), dw.data(), R.data(), x.data(), w.data(), s);
    return {check_gradient(group, "input", x.data(), s.in_size(), dx.data(), loss),
            check_gradient(group, "weight", w.data(), s.weight_size(), dw.data(), loss)};
}

Conv2dShape conv_shape(i64 N, i64 C, i64 H, i64 W, i64 K, i64 R, i64 S, i64 stride, i64 pad) {
    Conv2dShape s;
    s.N = N; s.C = C; s.H = H; s.W = W; s.K = K; s.R = R; s.S = S;
    s.stride = stride; s.pad = pad;
    return s;
}

// BatchNorm in training (through the batch statistics), in inference (running statistics are
// constants), and with gamma fixed to 1 (no gamma row). The loss runs the forward without the
// running-average update, so every evaluation sees the same function.
enum class BnMode { train, infer, fix_gamma };

std::vector<GradCheckRow> check_batchnorm(const std::string& group, BnMode mode, i64 N, i64 C,
                                          i64 HW) {
    BatchNormShape s;
    s.N = N; s.C = C; s.HW = HW;
    const i64 n = N * C * HW;
    auto x = random_values(n, 31, -2, 2), R = random_values(n, 32);
    auto gamma = random_values(C, 33, 0.5, 1.5), beta = random_values(C, 34);
    if (mode == BnMode::fix_gamma) gamma.assign(C, 1.0);
    auto rmean = random_values(C, 35, -0.5, 0.5), rvar = random_values(C, 36, 0.5, 2.0);
    std::vector<double> out(n), mean(C), invstd(C), dx(n), dgamma(C, 0.0), dbeta(C, 0.0);
    auto forward = [&] {
        if (mode == BnMode::infer)
            batchnorm_forward_infer_cpu(out.data(), x.data(), gamma.data(), beta.data(),
                                        rmean.data(), rvar.data(), s);
        else
            batchnorm_forward_train_cpu(out.data(), mean.data(), invstd.data(), (double*)nullptr,
                                        (double*)nullptr, x.data(), gamma.data(), beta.data(), s);
    };
    auto loss = [&] {
        forward();
        return weighted_sum(out.data(), R.data(), n);
    };
    forward();  // saves mean and invstd at the unperturbed point
    double* dg = mode == BnMode::fix_gamma ? nullptr : dgamma.data();
    if (mode == BnMode::infer)
        batchnorm_backward_infer_cpu(dx.data(), dg, dbeta.data(), R.data(), x.data(),
                                     gamma.data(), rmean.data(), rvar.data(), s);
    else
        batchnorm_backward_train_cpu(dx.data(), dg, dbeta.data(), R.data(), x.data(),
                                     gamma.data(), mean.data(), invstd.data(), s);
    std::vector<GradCheckRow> rows;
    rows.push_back(check_gradient(group, "input", x.data(), n, dx.data(), loss));
    if (dg) rows.push_back(check_gradient(group, "gamma", gamma.data(), C, dg, loss));
    rows.push_back(check_gradient(group, "beta", beta.data(), C, dbeta.data(), loss));
    return rows;
}

std::vector<GradCheckRow> check_linear() {
    const i64 N = 4, IC = 12, OC = 6;
    auto x = random_values(N * IC, 41), w = random_values(OC * IC, 42);
    auto b = random_values(OC, 43), R = random_values(N * OC, 44);
    std::vector<double> out(N * OC), dx(N * IC), dw(OC * IC, 0.0), db(OC, 0.0);
    auto loss = [&] {
        linear_forward_cpu(out.data(), x.data(), w.data(), b.data(), N, IC, OC);
        return weighted_sum(out.data(), R.data(), N * OC);
    };
    linear_backward_cpu(dx.data(), dw.data(), db.data(), R.data(), x.data(), w.data(), N, IC, OC);
    return {check_gradient("linear", "input", x.data(), N * IC, dx.data(), loss),
            check_gradient("linear", "weight", w.data(), OC * IC, dw.data(), loss),
            check_gradient("linear", "bias", b.data(), OC, db.data(), loss)};
}

// Dropout with a fixed (seed, offset): the mask is the same in every evaluation, so the loss is
// linear in the input (dropped elements have gradient 0, kept ones 1 / (1 - p) times R).
std::vector<GradCheckRow> check_dropout() {
    const i64 n = 200;
    const float p = 0.4f;
    const u64 seed = 77, offset = 1000;
    auto x = random_values(n, 51), R = random_values(n, 52);
    std::vector<double> out(n), dx(n);
    auto loss = [&] {
        dropout_forward_cpu(out.data(), x.data(), n, p, seed, offset);
        return weighted_sum(out.data(), R.data(), n);
    };
    dropout_backward_cpu(dx.data(), R.data(), n, p, seed, offset);
    return {check_gradient("dropout", "input", x.data(), n, dx.data(), loss)};
}

// out = a + b: both gradients are dout itself.
std::vector<GradCheckRow> check_add() {
    const i64 n = 60;
    auto a = random_values(n, 61), b = random_values(n, 62), R = random_values(n, 63);
    std::vector<double> out(n);
    auto loss = [&] {
        add_forward_cpu(out.data(), a.data(), b.data(), n);
        return weighted_sum(out.data(), R.data(), n);
    };
    return {check_gradient("add", "a", a.data(), n, R.data(), loss),
            check_gradient("add", "b", b.data(), n, R.data(), loss)};
}

std::vector<GradCheckRow> check_l2norm() {
    const i64 N = 5, D = 16;
    auto x = random_values(N * D, 71), R = random_values(N * D, 72);
    std::vector<double> out(N * D), norm(N), dx(N * D);
    auto loss = [&] {
        l2norm_forward_cpu(out.data(), norm.data(), x.data(), N, D);
        return weighted_sum(out.data(), R.data(), N * D);
    };
    loss();
    l2norm_backward_cpu(dx.data(), R.data(), out.data(), norm.data(), N, D);
    return {check_gradient("l2norm", "input", x.data(), N * D, dx.data(), loss)};
}

}  // namespace

std::vector<GradCheckCase> layer_gradcheck_cases() {
    std::vector<GradCheckCase> cases;
    cases.push_back({"prelu", "per-channel PReLU, (2,3,5)", check_prelu});
    cases.push_back({"conv2d.3x3_s1_p1", "conv 3x3 stride 1 pad 1, (2,3,6,6) -> 4 filters", [] {
        return check_conv2d("conv2d.3x3_s1_p1", conv_shape(2, 3, 6, 6, 4, 3, 3, 1, 1));
    }});
    cases.push_back({"conv2d.3x3_s2_p1", "conv 3x3 stride 2 pad 1, (2,3,7,6) -> 4 filters", [] {
        return check_conv2d("conv2d.3x3_s2_p1", conv_shape(2, 3, 7, 6, 4, 3, 3, 2, 1));
    }});
    cases.push_back({"conv2d.1x1_s2", "conv 1x1 stride 2 (projection), (2,4,6,6) -> 5", [] {
        return check_conv2d("conv2d.1x1_s2", conv_shape(2, 4, 6, 6, 5, 1, 1, 2, 0));
    }});
    cases.push_back({"conv2d.5x3_s2_p2", "conv 5x3 stride 2 pad 2, (2,2,7,6) -> 3 filters", [] {
        return check_conv2d("conv2d.5x3_s2_p2", conv_shape(2, 2, 7, 6, 3, 5, 3, 2, 2));
    }});
    cases.push_back({"batchnorm.train", "BN2d training (batch statistics), (4,3,5)", [] {
        return check_batchnorm("batchnorm.train", BnMode::train, 4, 3, 5);
    }});
    cases.push_back({"batchnorm.infer", "BN2d inference (running statistics), (4,3,5)", [] {
        return check_batchnorm("batchnorm.infer", BnMode::infer, 4, 3, 5);
    }});
    cases.push_back({"batchnorm.fix_gamma", "BN2d training with gamma fixed to 1, (4,3,5)", [] {
        return check_batchnorm("batchnorm.fix_gamma", BnMode::fix_gamma, 4, 3, 5);
    }});
    cases.push_back({"batchnorm1d.train", "BN1d training, (6,5)", [] {
        return check_batchnorm("batchnorm1d.train", BnMode::train, 6, 5, 1);
    }});
    cases.push_back({"linear", "fully connected with bias, (4,12) -> 6", check_linear});
    cases.push_back({"dropout", "inverted dropout p = 0.4, fixed mask, 200 values", check_dropout});
    cases.push_back({"add", "residual add, 60 values", check_add});
    cases.push_back({"l2norm", "row-wise L2 normalisation, (5,16)", check_l2norm});
    return cases;
}
