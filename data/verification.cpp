// InsightFace's verification protocol: KFold threshold selection for accuracy and the
// interpolated TAR@FAR, computed from per-fold sorted distances and integer counts.
#include "data/verification.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "engine/error.h"

namespace data {

namespace {

// Counts of "same" and "different" pairs with dist < threshold in one fold, for each threshold
// of a grid. The distances of the fold are sorted once, so a count is one binary search
// (lower_bound = number of elements strictly below the threshold).
struct FoldCounts {
    std::vector<double> same_sorted, diff_sorted;
    i64 n_same() const { return (i64)same_sorted.size(); }
    i64 n_diff() const { return (i64)diff_sorted.size(); }
    i64 n() const { return n_same() + n_diff(); }
    static i64 below(const std::vector<double>& v, double t) {
        return (i64)(std::lower_bound(v.begin(), v.end(), t) - v.begin());
    }
    i64 true_accepts(double t) const { return below(same_sorted, t); }
    i64 false_accepts(double t) const { return below(diff_sorted, t); }
};

void mean_and_population_std(const std::vector<double>& x, double* mean, double* std_out) {
    double s = 0;
    for (double v : x) s += v;
    const double m = s / (double)x.size();
    double q = 0;
    for (double v : x) q += (v - m) * (v - m);
    *mean = m;
    *std_out = std::sqrt(q / (double)x.size());
}

std::vector<double> arange_grid(double step, i64 count) {
    // numpy's arange fills value i as start + i * (value1 - value0) = i * step for start 0.
    std::vector<double> t((size_t)count);
    for (i64 i = 0; i < count; ++i) t[(size_t)i] = (double)i * step;
    return t;
}

}  // namespace

std::vector<double> accuracy_thresholds() { return arange_grid(0.01, 400); }
std::vector<double> val_thresholds() { return arange_grid(0.001, 4000); }

std::vector<i64> kfold_boundaries(i64 n, int folds) {
    ENGINE_CHECK(folds >= 1, engine::ArgError, "verification: folds must be >= 1, got ", folds);
    ENGINE_CHECK(n >= folds, engine::ArgError, "verification: ", n, " pairs cannot make ", folds,
                 " folds");
    std::vector<i64> b((size_t)folds + 1, 0);
    const i64 base = n / folds, extra = n % folds;
    for (int f = 0; f < folds; ++f) b[(size_t)f + 1] = b[(size_t)f] + base + (f < extra ? 1 : 0);
    return b;
}

VerificationResult verify_distances(const std::vector<double>& dist,
                                    const std::vector<bool>& issame,
                                    const VerificationOptions& opt) {
    ENGINE_CHECK(dist.size() == issame.size(), engine::ArgError, "verification: ", dist.size(),
                 " distances but ", issame.size(), " labels");
    const i64 P = (i64)dist.size();
    const int F = opt.folds;
    VerificationResult r;
    r.pairs = P;
    r.folds = F;
    r.fold_begin = kfold_boundaries(P, F);
    r.xnorm = NAN;
    for (i64 i = 0; i < P; ++i) {
        // Squared distances are >= 0; a negative value would also break FAR(threshold 0) = 0,
        // which the interpolation below relies on.
        ENGINE_CHECK(std::isfinite(dist[(size_t)i]) && dist[(size_t)i] >= 0, engine::DataError,
                     "verification: distance of pair ", i, " is ", dist[(size_t)i],
                     " (must be finite and >= 0)");
    }

    std::vector<FoldCounts> fold((size_t)F);
    for (int f = 0; f < F; ++f) {
        for (i64 i = r.fold_begin[(size_t)f]; i < r.fold_begin[(size_t)f + 1]; ++i)
            (issame[(size_t)i] ? fold[(size_t)f].same_sorted : fold[(size_t)f].diff_sorted)
                .push_back(dist[(size_t)i]);
        std::sort(fold[(size_t)f].same_sorted.begin(), fold[(size_t)f].same_sorted.end());
        std::sort(fold[(size_t)f].diff_sorted.begin(), fold[(size_t)f].diff_sorted.end());
    }

    // Count tables over both grids: tp[f][t] and fp[f][t] for fold f and threshold t.
    const std::vector<double> acc_t = accuracy_thresholds(), val_t = val_thresholds();
    const i64 TA = (i64)acc_t.size(), TV = (i64)val_t.size();
    std::vector<i64> tp_a((size_t)(F * TA)), fp_a((size_t)(F * TA));
    std::vector<i64> tp_v((size_t)(F * TV)), fp_v((size_t)(F * TV));
    for (int f = 0; f < F; ++f) {
        for (i64 t = 0; t < TA; ++t) {
            tp_a[(size_t)(f * TA + t)] = fold[(size_t)f].true_accepts(acc_t[(size_t)t]);
            fp_a[(size_t)(f * TA + t)] = fold[(size_t)f].false_accepts(acc_t[(size_t)t]);
        }
        for (i64 t = 0; t < TV; ++t) {
            tp_v[(size_t)(f * TV + t)] = fold[(size_t)f].true_accepts(val_t[(size_t)t]);
            fp_v[(size_t)(f * TV + t)] = fold[(size_t)f].false_accepts(val_t[(size_t)t]);
        }
    }

    r.best_threshold_index.resize((size_t)F);
    r.best_threshold.resize((size_t)F);
    r.fold_accuracy.resize((size_t)F);
    r.val_threshold.resize((size_t)F);
    r.fold_val.resize((size_t)F);
    r.fold_far.resize((size_t)F);
    std::vector<double> far_train((size_t)TV);
    for (int f = 0; f < F; ++f) {
        const FoldCounts& test = fold[(size_t)f];
        i64 n_same_train = 0, n_diff_train = 0;
        for (int g = 0; g < F; ++g)
            if (g != f) {
                n_same_train += fold[(size_t)g].n_same();
                n_diff_train += fold[(size_t)g].n_diff();
            }

        // Accuracy on the training folds = (tp + tn) / n_train. n_train is fixed within the
        // fold, so comparing the integer numerators ranks thresholds exactly as comparing the
        // float accuracies does; a strict '>' keeps the first maximum (numpy's argmax).
        i64 best = 0, best_correct = -1;
        for (i64 t = 0; t < TA; ++t) {
            i64 tp = 0, fp = 0;
            for (int g = 0; g < F; ++g)
                if (g != f) {
                    tp += tp_a[(size_t)(g * TA + t)];
                    fp += fp_a[(size_t)(g * TA + t)];
                }
            const i64 correct = tp + (n_diff_train - fp);
            if (correct > best_correct) {
                best_correct = correct;
                best = t;
            }
        }
        r.best_threshold_index[(size_t)f] = best;
        r.best_threshold[(size_t)f] = acc_t[(size_t)best];
        const i64 correct_test = tp_a[(size_t)(f * TA + best)] +
                                 (test.n_diff() - fp_a[(size_t)(f * TA + best)]);
        r.fold_accuracy[(size_t)f] = (double)correct_test / (double)test.n();

        // VAL at FAR = target (InsightFace's calculate_val). FAR(train) is non-decreasing in the
        // threshold and FAR(0) = 0. scipy's interp1d(far, thresholds, kind='slinear') is a
        // degree-1 B-spline: on the interval [far_j, far_j+1] holding the target, with j the
        // LAST index whose FAR is <= the target, it evaluates
        //   th_j * (far_j+1 - x) / (far_j+1 - far_j) + th_j+1 * (x - far_j) / (far_j+1 - far_j).
        // When the largest training FAR is below the target the threshold is 0 (VAL 0).
        for (i64 t = 0; t < TV; ++t) {
            i64 fp = 0;
            for (int g = 0; g < F; ++g)
                if (g != f) fp += fp_v[(size_t)(g * TV + t)];
            far_train[(size_t)t] = n_diff_train > 0 ? (double)fp / (double)n_diff_train : 0.0;
        }
        double threshold = 0.0;
        const double x = opt.far_target;
        if (far_train[(size_t)TV - 1] >= x) {
            i64 j = 0;
            while (j + 1 < TV && far_train[(size_t)j + 1] <= x) ++j;
            if (j == TV - 1) {
                // Target equal to the largest FAR: the last threshold. (scipy evaluates the last
                // interval here, giving the same value unless that interval is degenerate, where
                // it produces NaN.)
                threshold = val_t[(size_t)j];
            } else {
                const double f0 = far_train[(size_t)j], f1 = far_train[(size_t)j + 1];
                const double w = 1.0 / (f1 - f0);
                threshold = val_t[(size_t)j] * ((f1 - x) * w) + val_t[(size_t)j + 1] * ((x - f0) * w);
            }
        }
        r.val_threshold[(size_t)f] = threshold;
        r.fold_val[(size_t)f] =
            test.n_same() > 0 ? (double)test.true_accepts(threshold) / (double)test.n_same() : 0.0;
        r.fold_far[(size_t)f] =
            test.n_diff() > 0 ? (double)test.false_accepts(threshold) / (double)test.n_diff() : 0.0;
    }
    mean_and_population_std(r.fold_accuracy, &r.accuracy_mean, &r.accuracy_std);
    mean_and_population_std(r.fold_val, &r.val_mean, &r.val_std);
    mean_and_population_std(r.fold_far, &r.far_mean, &r.far_std);
    return r;
}

namespace {
void check_rows_finite(const float* a, i64 rows, i64 dim, const char* which) {
    for (i64 i = 0; i < rows; ++i)
        for (i64 k = 0; k < dim; ++k)
            ENGINE_CHECK(std::isfinite(a[i * dim + k]), engine::DataError, "verification: ", which,
                         " embedding of image ", i, " has a non-finite value at component ", k);
}
}  // namespace

std::vector<double> flip_pair_distances(const float* emb, const float* emb_mirror, i64 pairs,
                                        i64 dim) {
    ENGINE_CHECK(pairs >= 0 && dim > 0, engine::ArgError, "verification: bad shape (", 2 * pairs,
                 ", ", dim, ")");
    const i64 rows = 2 * pairs;
    check_rows_finite(emb, rows, dim, "original");
    check_rows_finite(emb_mirror, rows, dim, "mirrored");
    // Flip sum then L2 normalisation (sklearn.preprocessing.normalize: rows of norm 0 are left
    // as they are), all in double as InsightFace's float64 embedding arrays.
    std::vector<double> e((size_t)(rows * dim));
    for (i64 i = 0; i < rows; ++i) {
        double q = 0;
        for (i64 k = 0; k < dim; ++k) {
            const double s = (double)emb[i * dim + k] + (double)emb_mirror[i * dim + k];
            e[(size_t)(i * dim + k)] = s;
            q += s * s;
        }
        const double norm = std::sqrt(q);
        const double inv = norm > 0 ? 1.0 / norm : 1.0;
        for (i64 k = 0; k < dim; ++k) e[(size_t)(i * dim + k)] *= inv;
    }
    std::vector<double> d((size_t)pairs);
    for (i64 p = 0; p < pairs; ++p) {
        const double* a = &e[(size_t)(2 * p * dim)];
        const double* b = a + dim;
        double q = 0;
        for (i64 k = 0; k < dim; ++k) q += (a[k] - b[k]) * (a[k] - b[k]);
        d[(size_t)p] = q;
    }
    return d;
}

double mean_embedding_norm(const float* emb, const float* emb_mirror, i64 rows, i64 dim) {
    double total = 0;
    for (const float* a : {emb, emb_mirror})
        for (i64 i = 0; i < rows; ++i) {
            double q = 0;
            for (i64 k = 0; k < dim; ++k) q += (double)a[i * dim + k] * (double)a[i * dim + k];
            total += std::sqrt(q);
        }
    return rows > 0 ? total / (double)(2 * rows) : 0.0;
}

VerificationResult verify_embeddings(const float* emb, const float* emb_mirror, i64 pairs,
                                     i64 dim, const std::vector<bool>& issame,
                                     const VerificationOptions& opt) {
    ENGINE_CHECK((i64)issame.size() == pairs, engine::ArgError, "verification: ", pairs,
                 " pairs of embeddings but ", issame.size(), " labels");
    VerificationResult r = verify_distances(flip_pair_distances(emb, emb_mirror, pairs, dim),
                                            issame, opt);
    r.xnorm = mean_embedding_norm(emb, emb_mirror, 2 * pairs, dim);
    return r;
}

std::string VerificationResult::summary(const std::string& name) const {
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "%s: acc %.5f +- %.5f, XNorm %.4f, TAR %.5f +- %.5f @ FAR %.5f (%lld pairs)",
                  name.c_str(), accuracy_mean, accuracy_std, xnorm, val_mean, val_std, far_mean,
                  (long long)pairs);
    return buf;
}

}  // namespace data
