// Central-difference gradient checker (see gradcheck.h for the method and its kink test).
#include "engine/gradcheck.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/error.h"
#include "engine/rng.h"

namespace engine {

double weighted_sum(const double* out, const double* weight, i64 n) {
    double s = 0;
    for (i64 i = 0; i < n; ++i) s += out[i] * weight[i];
    return s;
}

std::vector<double> random_values(i64 n, u64 seed, double lo, double hi) {
    Rng rng(seed);
    std::vector<double> v((size_t)n);
    for (auto& x : v) x = lo + (hi - lo) * rng.uniform();
    return v;
}

GradCheckRow check_gradient(const std::string& group, const std::string& tensor, double* x, i64 n,
                            const double* analytic, const std::function<double()>& f,
                            const GradCheckOptions& opt) {
    GradCheckRow row;
    row.group = group;
    row.tensor = tensor;
    row.total = n;
    row.tolerance = opt.tolerance;

    std::vector<i64> points(n);
    std::iota(points.begin(), points.end(), 0);
    if (opt.max_points > 0 && n > opt.max_points) {
        Rng rng(opt.seed);
        rng.shuffle(points);
        points.resize(opt.max_points);
        std::sort(points.begin(), points.end());
    }

    const double h = opt.step;
    const double f0 = f();
    ENGINE_CHECK(std::isfinite(f0), DataError, "gradcheck ", group, "/", tensor,
                 ": loss is not finite at the starting point");
    auto at = [&](i64 i, double delta) {
        const double saved = x[i];
        x[i] = saved + delta;
        const double v = f();
        x[i] = saved;
        return v;
    };

    bool all_finite = true;
    for (i64 i : points) {
        if (opt.is_kink && opt.is_kink(i)) {
            row.skipped++;
            continue;
        }
        const double fp = at(i, h), fm = at(i, -h), fp2 = at(i, h / 2), fm2 = at(i, -h / 2);
        const double c1 = (fp - fm) / (2 * h), c2 = (fp2 - fm2) / h;
        const double d2_1 = (fp - 2 * f0 + fm) / (h * h);
        const double d2_2 = (fp2 - 2 * f0 + fm2) / (h * h / 4);
        const double a = analytic[i];
        if (!std::isfinite(a) || !std::isfinite(c2)) {
            all_finite = false;
            row.checked++;
            row.max_abs_error = row.max_rel_error = INFINITY;
            continue;
        }
        const double scale = std::max({std::fabs(a), std::fabs(c2), 1.0});
        const double kink_stat = std::max(std::fabs(c1 - c2), h * std::fabs(d2_1 - d2_2));
        if (kink_stat > opt.tolerance * scale / 4) {
            row.skipped++;
            continue;
        }
        const double err = std::fabs(a - c2);
        row.checked++;
        row.max_abs_error = std::max(row.max_abs_error, err);
        row.max_rel_error = std::max(row.max_rel_error, err / scale);
    }
    // A row passes when every compared point is within tolerance and the kink test did not
    // swallow the check: at least one point compared and no more than a tenth skipped.
    row.pass = all_finite && row.checked > 0 && row.max_rel_error < opt.tolerance &&
               row.skipped * 10 <= (i64)points.size();
    return row;
}

}  // namespace engine

