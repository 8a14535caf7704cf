// InsightFace's face-verification protocol (../shared/SPEC.md section 9, FORMATS.md section 3):
// flip-summed normalised embeddings, squared pair distances, 10 ordered folds, accuracy and TAR@FAR.
#pragma once
#include <string>
#include <vector>

#include "engine/common.h"

namespace data {

// Everything the protocol reports, per fold and summarised. Fold f holds the pairs
// [fold_begin[f], fold_begin[f+1]) in the given order (sklearn KFold without shuffling: each fold
// has pairs / folds pairs and the first pairs % folds folds one more).
struct VerificationResult {
    i64 pairs = 0;
    int folds = 0;
    std::vector<i64> fold_begin;  // folds + 1 entries

    // Accuracy: per fold, the threshold of 0, 0.01, .., 3.99 with the best accuracy on the other
    // folds (the first one on ties, like numpy's argmax), applied to the fold.
    std::vector<i64> best_threshold_index;  // into accuracy_thresholds()
    std::vector<double> best_threshold;     // its value, index * 0.01
    std::vector<double> fold_accuracy;
    double accuracy_mean = 0, accuracy_std = 0;  // std: population (numpy's np.std, ddof 0)

    // TAR (VAL) at FAR = far_target: per fold, the threshold interpolated on the other folds'
    // FAR curve (thresholds 0, 0.001, .., 3.999), applied to the fold.
    std::vector<double> val_threshold;
    std::vector<double> fold_val, fold_far;
    double val_mean = 0, val_std = 0, far_mean = 0, far_std = 0;

    // Mean L2 norm of the un-normalised embeddings; NaN when computed from distances only.
    double xnorm = 0;

    // "lfw: acc 0.99650 +- 0.00300, XNorm 22.17, TAR 0.98433 +- 0.00812 @ FAR 0.00100"
    std::string summary(const std::string& name) const;
};

struct VerificationOptions {
    int folds = 10;           // InsightFace's nfolds
    double far_target = 1e-3;  // the FAR at which VAL (TAR) is reported
};

// The threshold grids, as numpy's np.arange(0, 4, step) builds them: value i = i * step.
std::vector<double> accuracy_thresholds();  // 400 values, step 0.01
std::vector<double> val_thresholds();       // 4000 values, step 0.001

// Fold boundaries of KFold(n_splits=folds, shuffle=False) over n items: folds + 1 entries.
std::vector<i64> kfold_boundaries(i64 n, int folds);

// The protocol on precomputed squared distances, one per pair (dist[i] for pair i). A pair is
// predicted "same" when dist < threshold (strictly). Throws ArgError when the sizes disagree or
// there are fewer pairs than folds, DataError on a non-finite distance. A fold with no "same"
// (or no "different") pair in a set gets VAL (or FAR) 0 for that set, where numpy would divide
// by zero.
VerificationResult verify_distances(const std::vector<double>& dist,
                                    const std::vector<bool>& issame,
                                    const VerificationOptions& opt = {});

// The full protocol from embeddings. emb and emb_mirror are (2P, D) row-major: image 2i and 2i+1
// form pair i; emb_mirror holds the embeddings of the horizontally mirrored images.
// embedding = normalize(emb + emb_mirror) (computed in double; a zero sum stays zero, as
// sklearn's normalize leaves zero rows), dist = |e_2i - e_2i+1|^2.
// XNorm follows InsightFace's verification.test(): the mean L2 norm over all 4P individual
// un-normalised embeddings (every original and every mirror, each on its own), NOT the norms
// of the flip sums. Throws DataError naming the row on a non-finite value.
VerificationResult verify_embeddings(const float* emb,         // (2P, D)
                                     const float* emb_mirror,  // (2P, D)
                                     i64 pairs, i64 dim, const std::vector<bool>& issame,
                                     const VerificationOptions& opt = {});

// The pieces verify_embeddings is made of, exposed for tests and tools.
std::vector<double> flip_pair_distances(const float* emb, const float* emb_mirror, i64 pairs,
                                        i64 dim);  // (P)
double mean_embedding_norm(const float* emb, const float* emb_mirror, i64 rows, i64 dim);

}  // namespace data
