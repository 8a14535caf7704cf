// The gradient checker: compares an analytic gradient with central differences in float64.
//
// For a scalar function f of a tensor x (f usually sums the op's output weighted by a fixed
// random tensor R, so that dL/dout = R), each checked element x_i is moved by +-h and +-h/2:
//   numeric  c(h)  = (f(x+h) - f(x-h)) / 2h,  reported value c(h/2)
//   error    |analytic - c(h/2)|, relative error = error / max(|analytic|, |c|, 1)
// Points next to a kink (PReLU at 0, or a ReLU-like switch anywhere downstream) are detected
// from the two step sizes: for smooth f, c(h) and c(h/2) and the second differences at h and h/2
// agree to O(h^2); across a kink of slope jump j they differ by at least about j/7, so such a
// point is counted as "skipped (kink)" instead of being compared. A point a caller knows is a
// kink (is_kink) is skipped without evaluating f.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "engine/common.h"

namespace engine {

struct GradCheckOptions {
    double step = 1e-5;        // h
    double tolerance = 1e-6;   // on the relative error
    i64 max_points = 0;        // check at most this many elements (random subset); 0 = all
    u64 seed = 1;              // selects the subset
    std::function<bool(i64)> is_kink;  // optional: element i sits on a known kink
};

struct GradCheckRow {
    std::string group;   // the layer, block or loss ("conv2d", "ir_unit.projection", ...)
    std::string tensor;  // what the gradient is taken with respect to ("input", "weight", ...)
    i64 checked = 0, skipped = 0, total = 0;
    double max_abs_error = 0, max_rel_error = 0;
    double tolerance = 0;
    bool pass = false;
};

// x: the n values f reads (perturbed in place and restored); analytic: dL/dx at x.
GradCheckRow check_gradient(const std::string& group, const std::string& tensor, double* x, i64 n,
                            const double* analytic, const std::function<double()>& f,
                            const GradCheckOptions& opt = {});

// A named gradient check (one layer, block or loss) producing one row per tensor.
struct GradCheckCase {
    std::string name;
    std::string description;
    std::function<std::vector<GradCheckRow>()> run;
};

// Sum of out[i] * weight[i]: the scalar whose gradient w.r.t. out is weight.
double weighted_sum(const double* out, const double* weight, i64 n);

// n values uniform in [lo, hi), reproducible from seed: the random problems of the audits.
std::vector<double> random_values(i64 n, u64 seed, double lo = -1, double hi = 1);

}  // namespace engine
