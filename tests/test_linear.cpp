// Linear CPU reference: forward and backward against naive loops (with and without bias, float
// and double), accumulation of parameter gradients, and the float64 gradient audit row.
#include <doctest/doctest.h>

#include <vector>

#include "layers/gradcheck_layers.h"
#include "layers/linear.h"
#include "tests/test_util.h"

namespace {

// tol: float dot products of at most 17 terms in [-1, 1] round to ~1e-6 relative; double 1e-12.
template <typename T>
void check_linear(i64 N, i64 IC, i64 OC, bool with_bias, double tol) {
    auto x = test::random_vector<T>(N * IC, 301), w = test::random_vector<T>(OC * IC, 302);
    auto b = test::random_vector<T>(OC, 303), dy = test::random_vector<T>(N * OC, 304);
    const T* bias = with_bias ? b.data() : nullptr;

    // Naive loops in double: out[n][o] = sum_i x[n][i] w[o][i] + b[o];
    // din[n][i] = sum_o dy[n][o] w[o][i]; dw[o][i] = sum_n dy[n][o] x[n][i];
    // db[o] = sum_n dy[n][o] (dw and db start from 0.25 and -0.5: they accumulate).
    std::vector<double> out_ref(N * OC), din_ref(N * IC, 0.0), dw_ref(OC * IC, 0.25),
        db_ref(OC, -0.5);
    for (i64 n = 0; n < N; ++n)
        for (i64 o = 0; o < OC; ++o) {
            double acc = with_bias ? (double)b[o] : 0.0;
            for (i64 i = 0; i < IC; ++i) {
                acc += (double)x[n * IC + i] * (double)w[o * IC + i];
                din_ref[n * IC + i] += (double)dy[n * OC + o] * (double)w[o * IC + i];
                dw_ref[o * IC + i] += (double)dy[n * OC + o] * (double)x[n * IC + i];
            }
            out_ref[n * OC + o] = acc;
            db_ref[o] += (double)dy[n * OC + o];
        }

    std::vector<T> out(N * OC, T(9)), din(N * IC, T(9)), dw(OC * IC, T(0.25)), db(OC, T(-0.5));
    linear_forward_cpu(out.data(), x.data(), w.data(), bias, N, IC, OC);
    linear_backward_cpu(din.data(), dw.data(), with_bias ? db.data() : nullptr, dy.data(),
                        x.data(), w.data(), N, IC, OC);
    CHECK(test::max_rel_diff(out.data(), out_ref.data(), N * OC) < tol);
    CHECK(test::max_rel_diff(din.data(), din_ref.data(), N * IC) < tol);
    CHECK(test::max_rel_diff(dw.data(), dw_ref.data(), OC * IC) < tol);
    if (with_bias) {
        CHECK(test::max_rel_diff(db.data(), db_ref.data(), OC) < tol);
    } else {
        for (const T& v : db) CHECK(v == T(-0.5));  // untouched
    }
    // din = null: only the parameter gradients.
    std::vector<T> dw2(OC * IC, T(0.25));
    linear_backward_cpu((T*)nullptr, dw2.data(), (T*)nullptr, dy.data(), x.data(), w.data(), N, IC,
                        OC);
    CHECK(test::max_rel_diff(dw2.data(), dw_ref.data(), OC * IC) < tol);
}

}  // namespace

TEST_CASE("linear matches naive loops (double and float, with and without bias)") {
    check_linear<double>(5, 17, 7, true, 1e-12);
    check_linear<double>(3, 4, 9, false, 1e-12);
    check_linear<float>(5, 17, 7, true, 1e-5);
    check_linear<float>(1, 8, 3, false, 1e-5);
}

TEST_CASE("linear known values: a 2x2 example by hand") {
    // in = [[1, 2]], W = [[1, 0], [3, -1]], b = [0.5, 1]: out = [1 + 0.5, 3 - 2 + 1] = [1.5, 2].
    const double in[2] = {1, 2}, w[4] = {1, 0, 3, -1}, b[2] = {0.5, 1};
    double out[2];
    linear_forward_cpu(out, in, w, b, 1, 2, 2);
    CHECK(out[0] == 1.5);
    CHECK(out[1] == 2.0);
}

TEST_CASE("linear gradients (float64 central differences)") {
    int seen = 0;
    for (const auto& c : layer_gradcheck_cases()) {
        if (c.name != "linear") continue;
        ++seen;
        for (const auto& row : c.run()) {
            INFO(row.group, "/", row.tensor, " max rel error ", row.max_rel_error);
            CHECK(row.pass);
        }
    }
    CHECK(seen == 1);
}
