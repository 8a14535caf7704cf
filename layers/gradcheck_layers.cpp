// Gradient checks of the layers in float64: each builds a small random problem, takes the loss
// L = sum(out * R) for a fixed random R (so dL/dout = R), runs the analytic backward once and
// compares every input and parameter gradient with central differences.
#include "layers/gradcheck_layers.h"

#include <cmath>
#include <vector>

#include "engine/rng.h"
#include "layers/prelu.h"

using engine::GradCheckCase;
using engine::GradCheckRow;
using engine::check_gradient;
using engine::weighted_sum;

namespace {

std::vector<double> random_values(i64 n, u64 seed, double lo = -1, double hi = 1) {
    engine::Rng rng(seed);
    std::vector<double> v((size_t)n);
    for (auto& x : v) x = lo + (hi - lo) * rng.uniform();
    return v;
}

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

}  // namespace

std::vector<GradCheckCase> layer_gradcheck_cases() {
    std::vector<GradCheckCase> cases;
    cases.push_back({"prelu", "per-channel PReLU, (2,3,5)", check_prelu});
    return cases;
}
