// conv2d CPU reference: forward and backward against a naive direct convolution written here,
// for several shapes (padding, stride 2 and 3, 1x1, non-square kernels) in float and double, and
// the float64 gradient audit rows.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "engine/error.h"
#include "layers/conv2d.h"
#include "layers/gradcheck_layers.h"
#include "tests/test_util.h"

namespace {

Conv2dShape make_shape(i64 N, i64 C, i64 H, i64 W, i64 K, i64 R, i64 S, i64 stride, i64 pad) {
    Conv2dShape s;
    s.N = N; s.C = C; s.H = H; s.W = W; s.K = K; s.R = R; s.S = S;
    s.stride = stride; s.pad = pad;
    return s;
}

// The definition, loop by loop (7 loops), in double:
//   out[n,k,p,q] = sum_{c,r,s} in[n, c, p*stride - pad + r, q*stride - pad + s] * w[k,c,r,s]
// with zero outside the input; its adjoints give din and dweight.
struct NaiveConv {
    std::vector<double> out, din, dweight;
};

template <typename T>
NaiveConv naive_conv(const std::vector<T>& in, const std::vector<T>& w, const std::vector<T>& dout,
                     const Conv2dShape& s) {
    NaiveConv r;
    r.out.assign(s.out_size(), 0.0);
    r.din.assign(s.in_size(), 0.0);
    r.dweight.assign(s.weight_size(), 0.0);
    const i64 P = s.P(), Q = s.Q();
    for (i64 n = 0; n < s.N; ++n)
        for (i64 k = 0; k < s.K; ++k)
            for (i64 p = 0; p < P; ++p)
                for (i64 q = 0; q < Q; ++q) {
                    const i64 o = ((n * s.K + k) * P + p) * Q + q;
                    double acc = 0;
                    for (i64 c = 0; c < s.C; ++c)
                        for (i64 r_ = 0; r_ < s.R; ++r_)
                            for (i64 t = 0; t < s.S; ++t) {
                                const i64 h = p * s.stride - s.pad + r_;
                                const i64 x = q * s.stride - s.pad + t;
                                if (h < 0 || h >= s.H || x < 0 || x >= s.W) continue;
                                const i64 ii = ((n * s.C + c) * s.H + h) * s.W + x;
                                const i64 wi = ((k * s.C + c) * s.R + r_) * s.S + t;
                                acc += (double)in[ii] * (double)w[wi];
                                r.din[ii] += (double)dout[o] * (double)w[wi];
                                r.dweight[wi] += (double)dout[o] * (double)in[ii];
                            }
                    r.out[o] = acc;
                }
    return r;
}

// tol: float GEMM sums of up to C*R*S (forward, din) or N*P*Q (dweight) products of values in
// [-1, 1] carry a relative rounding of about sqrt(terms) * 6e-8, below 1e-5 for these sizes;
// double is exact to about 1e-15, so 1e-12 leaves room without hiding a wrong index.
template <typename T>
void check_against_naive(const Conv2dShape& s, double tol) {
    auto in = test::random_vector<T>(s.in_size(), 101);
    auto w = test::random_vector<T>(s.weight_size(), 102);
    auto dout = test::random_vector<T>(s.out_size(), 103);
    const NaiveConv ref = naive_conv(in, w, dout, s);

    std::vector<T> out(s.out_size(), T(7)), din(s.in_size(), T(7));
    // dweight accumulates: start from a known non-zero value and expect it added to.
    std::vector<T> dweight(s.weight_size(), T(0.5));
    conv2d_forward_cpu(out.data(), in.data(), w.data(), s);
    conv2d_backward_cpu(din.data(), dweight.data(), dout.data(), in.data(), w.data(), s);
    std::vector<double> ref_dweight(ref.dweight);
    for (auto& v : ref_dweight) v += 0.5;

    REQUIRE(test::all_finite(out));
    CHECK(test::max_rel_diff(out.data(), ref.out.data(), s.out_size()) < tol);
    CHECK(test::max_rel_diff(din.data(), ref.din.data(), s.in_size()) < tol);
    CHECK(test::max_rel_diff(dweight.data(), ref_dweight.data(), s.weight_size()) < tol);

    // din = null skips the input gradient and leaves dweight's result unchanged.
    std::vector<T> dweight2(s.weight_size(), T(0.5));
    conv2d_backward_cpu((T*)nullptr, dweight2.data(), dout.data(), in.data(), w.data(), s);
    CHECK(test::max_rel_diff(dweight2.data(), ref_dweight.data(), s.weight_size()) < tol);
}

const std::vector<Conv2dShape>& shapes() {
    static const std::vector<Conv2dShape> v = {
        make_shape(2, 3, 8, 8, 4, 3, 3, 1, 1),   // stem / unit conv
        make_shape(2, 3, 9, 7, 4, 3, 3, 2, 1),   // downsampling conv, odd sizes
        make_shape(3, 4, 6, 6, 5, 1, 1, 2, 0),   // projection shortcut
        make_shape(1, 3, 5, 5, 2, 1, 1, 1, 0),   // pointwise (GEMM on the input itself)
        make_shape(2, 2, 7, 6, 3, 5, 3, 2, 2),   // non-square kernel, pad 2
        make_shape(2, 2, 6, 9, 3, 3, 5, 1, 0),   // non-square the other way, no padding
        make_shape(2, 3, 8, 7, 2, 2, 2, 3, 1),   // even kernel, stride 3
        make_shape(1, 1, 3, 3, 1, 3, 3, 1, 2),   // padding wider than needed: border outputs
    };
    return v;
}

}  // namespace

TEST_CASE("conv2d forward and backward match a naive direct convolution (double)") {
    for (const auto& s : shapes()) {
        INFO("N C H W = ", s.N, " ", s.C, " ", s.H, " ", s.W, ", K R S = ", s.K, " ", s.R, " ",
             s.S, ", stride ", s.stride, " pad ", s.pad);
        check_against_naive<double>(s, 1e-12);
    }
}

TEST_CASE("conv2d forward and backward match a naive direct convolution (float)") {
    for (const auto& s : shapes()) {
        INFO("N C H W = ", s.N, " ", s.C, " ", s.H, " ", s.W, ", K R S = ", s.K, " ", s.R, " ",
             s.S, ", stride ", s.stride, " pad ", s.pad);
        check_against_naive<float>(s, 1e-5);
    }
}

TEST_CASE("conv2d known values: a 3x3 box filter with zero padding counts neighbours") {
    // All-ones 3x3 input and filter, pad 1: each output counts the in-range neighbours
    // (4 at corners, 6 on edges, 9 in the centre).
    const Conv2dShape s = make_shape(1, 1, 3, 3, 1, 3, 3, 1, 1);
    std::vector<double> in(9, 1.0), w(9, 1.0), out(9);
    conv2d_forward_cpu(out.data(), in.data(), w.data(), s);
    const double expect[9] = {4, 6, 4, 6, 9, 6, 4, 6, 4};
    for (int i = 0; i < 9; ++i) CHECK(out[i] == expect[i]);
}

TEST_CASE("conv2d processes a large batch in chunks with the same result") {
    // C*R*S*P*Q = 49 * 130 * 130 = 828100 column entries per image, so the 2^24-element scratch
    // holds 20 images and 21 images take two chunks; image 20 (the second chunk) must be right.
    const Conv2dShape s = make_shape(21, 1, 130, 130, 1, 7, 7, 1, 3);
    auto in = test::random_vector<float>(s.in_size(), 7);
    auto w = test::random_vector<float>(s.weight_size(), 8);
    std::vector<float> out(s.out_size());
    conv2d_forward_cpu(out.data(), in.data(), w.data(), s);
    // The naive sum for the first and last image only (to keep the test cheap).
    for (i64 n : {i64(0), s.N - 1}) {
        double max_err = 0;
        for (i64 p = 0; p < s.P(); ++p)
            for (i64 q = 0; q < s.Q(); ++q) {
                double acc = 0;
                for (i64 r = 0; r < s.R; ++r)
                    for (i64 t = 0; t < s.S; ++t) {
                        const i64 h = p - s.pad + r, x = q - s.pad + t;
                        if (h < 0 || h >= s.H || x < 0 || x >= s.W) continue;
                        acc += (double)in[(n * s.H + h) * s.W + x] * (double)w[r * s.S + t];
                    }
                const double got = out[(n * s.P() + p) * s.Q() + q];
                max_err = std::max(max_err, std::fabs(got - acc) / std::max(1.0, std::fabs(acc)));
            }
        INFO("image ", n);
        CHECK(max_err < 1e-5);  // 49-term float sums
    }
}

TEST_CASE("conv2d rejects a kernel larger than the padded input") {
    const Conv2dShape s = make_shape(1, 1, 2, 2, 1, 5, 5, 1, 1);
    std::vector<float> in(4), w(25), out(16);
    CHECK_THROWS_AS(conv2d_forward_cpu(out.data(), in.data(), w.data(), s), engine::ShapeError);
}

TEST_CASE("conv2d gradients (float64 central differences)") {
    int seen = 0;
    for (const auto& c : layer_gradcheck_cases()) {
        if (c.name.rfind("conv2d.", 0) != 0) continue;
        ++seen;
        for (const auto& row : c.run()) {
            INFO(row.group, "/", row.tensor, " max rel error ", row.max_rel_error, " checked ",
                 row.checked, " skipped ", row.skipped);
            CHECK(row.pass);
        }
    }
    CHECK(seen == 4);
}
