#!/usr/bin/python3
"""Independent numpy reimplementation of InsightFace's verification protocol (SPEC.md section 9)
that writes the fixtures tests/test_verification.cpp compares data/verification.cpp against.

It follows InsightFace's verification.py step by step (threshold loops with np.less, argmax,
KFold without shuffling, scipy's 'slinear' interp1d) but without sklearn or scipy: the KFold
split and the degree-1 spline are written out by hand. Run from the repository root:
    /usr/bin/python3 tests/verification_ref.py
"""
import os
import sys

import numpy as np

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def kfold_splits(n, n_splits):
    """sklearn KFold(n_splits, shuffle=False).split: consecutive test folds, the first
    n % n_splits folds one item larger."""
    sizes = np.full(n_splits, n // n_splits, dtype=np.int64)
    sizes[: n % n_splits] += 1
    indices = np.arange(n)
    start = 0
    for size in sizes:
        test = indices[start:start + size]
        train = np.concatenate([indices[:start], indices[start + size:]])
        yield train, test
        start += size


def accuracy_at(threshold, dist, issame):
    predict = np.less(dist, threshold)
    tp = np.sum(np.logical_and(predict, issame))
    tn = np.sum(np.logical_and(~predict, ~issame))
    return float(tp + tn) / dist.size


def val_far_at(threshold, dist, issame):
    predict = np.less(dist, threshold)
    ta = np.sum(np.logical_and(predict, issame))
    fa = np.sum(np.logical_and(predict, ~issame))
    n_same = np.sum(issame)
    n_diff = np.sum(~issame)
    # InsightFace divides unconditionally (nan for an empty class); the engine documents 0.
    val = float(ta) / float(n_same) if n_same > 0 else 0.0
    far = float(fa) / float(n_diff) if n_diff > 0 else 0.0
    return val, far


def slinear_interp(xs, ys, x):
    """scipy.interpolate.interp1d(xs, ys, kind='slinear')(x) for non-decreasing xs with
    xs[0] <= x <= xs[-1]: a degree-1 B-spline with knots [xs0, xs..., xs_last]; the interval is
    the one starting at the last knot <= x (the last one when x equals the largest knot)."""
    order = np.argsort(xs, kind="mergesort")
    xs, ys = xs[order], ys[order]
    m = len(xs)
    le = np.nonzero(xs <= x)[0]
    j = int(le[-1])
    if j == m - 1:
        return float(ys[m - 1])
    x0, x1 = xs[j], xs[j + 1]
    w = 1.0 / (x1 - x0)
    return float(ys[j] * ((x1 - x) * w) + ys[j + 1] * ((x - x0) * w))


def evaluate(dist, issame, nfolds=10, far_target=1e-3):
    dist = np.asarray(dist, dtype=np.float64)
    issame = np.asarray(issame, dtype=bool)
    n = len(dist)
    res = {"fold_sizes": [], "best_index": [], "best_threshold": [], "fold_acc": [],
           "val_threshold": [], "fold_val": [], "fold_far": []}
    thr = np.arange(0, 4, 0.01)
    thr_val = np.arange(0, 4, 0.001)
    for train, test in kfold_splits(n, nfolds):
        res["fold_sizes"].append(len(test))
        acc_train = np.array([accuracy_at(t, dist[train], issame[train]) for t in thr])
        best = int(np.argmax(acc_train))
        res["best_index"].append(best)
        res["best_threshold"].append(float(thr[best]))
        res["fold_acc"].append(accuracy_at(thr[best], dist[test], issame[test]))

        far_train = np.array([val_far_at(t, dist[train], issame[train])[1] for t in thr_val])
        if np.max(far_train) >= far_target:
            threshold = slinear_interp(far_train, thr_val, far_target)
        else:
            threshold = 0.0
        v, f = val_far_at(threshold, dist[test], issame[test])
        res["val_threshold"].append(threshold)
        res["fold_val"].append(v)
        res["fold_far"].append(f)
    acc = np.array(res["fold_acc"])
    val = np.array(res["fold_val"])
    far = np.array(res["fold_far"])
    res.update(acc_mean=np.mean(acc), acc_std=np.std(acc), val_mean=np.mean(val),
               val_std=np.std(val), far_mean=np.mean(far), far_std=np.std(far))
    return res


def flip_distances_and_xnorm(emb, emb_mirror):
    """InsightFace's test(): XNorm over every un-normalised embedding (originals and mirrors
    separately), then normalize(emb + emb_mirror) and squared pair distances."""
    e0 = emb.astype(np.float64)
    e1 = emb_mirror.astype(np.float64)
    norms = [np.linalg.norm(row) for row in e0] + [np.linalg.norm(row) for row in e1]
    xnorm = float(np.sum(norms) / len(norms))
    s = e0 + e1
    nrm = np.sqrt(np.sum(s * s, axis=1))
    nrm[nrm == 0] = 1.0
    s = s / nrm[:, None]
    d = np.sum(np.square(s[0::2] - s[1::2]), axis=1)
    return d, xnorm


def fmt(values):
    return " ".join(repr(float(v)) for v in values)


def fmt_f32(values):
    # numpy prints a float32 with the shortest digits that read back (strtof) as the same float.
    return " ".join(str(np.float32(v)) for v in values)


def write_fixture(name, issame, res, dist=None, emb=None, emb_mirror=None, xnorm=None):
    path = os.path.join(OUT_DIR, name)
    with open(path, "w") as f:
        f.write("# written by tests/verification_ref.py; one 'key values...' per line\n")
        f.write("pairs %d\n" % len(issame))
        f.write("issame %s\n" % " ".join("1" if s else "0" for s in issame))
        if dist is not None:
            f.write("dist %s\n" % fmt(dist))
        if emb is not None:
            f.write("dim %d\n" % emb.shape[1])
            f.write("emb %s\n" % fmt_f32(emb.ravel()))
            f.write("emb_mirror %s\n" % fmt_f32(emb_mirror.ravel()))
            f.write("xnorm %s\n" % repr(xnorm))
        f.write("fold_sizes %s\n" % " ".join(str(s) for s in res["fold_sizes"]))
        f.write("best_index %s\n" % " ".join(str(s) for s in res["best_index"]))
        for key in ("best_threshold", "fold_acc", "val_threshold", "fold_val", "fold_far"):
            f.write("%s %s\n" % (key, fmt(res[key])))
        for key in ("acc_mean", "acc_std", "val_mean", "val_std", "far_mean", "far_std"):
            f.write("%s %s\n" % (key, repr(float(res[key]))))
    print("%s: %d pairs, acc %.5f +- %.5f, TAR %.5f +- %.5f @ FAR %.5f" % (
        name, len(issame), res["acc_mean"], res["acc_std"], res["val_mean"], res["val_std"],
        res["far_mean"]))


def planted_distances(rng, pairs):
    """Overlapping same/different distance distributions, with some distances exactly on grid
    thresholds (k * 0.01) so that the strict 'dist < threshold' comparison matters."""
    issame = rng.random(pairs) < 0.5
    d = np.where(issame, rng.normal(1.0, 0.35, pairs), rng.normal(1.7, 0.3, pairs))
    d = np.clip(d, 0.0, 3.98)
    on_grid = rng.random(pairs) < 0.15
    grid = np.arange(0, 4, 0.01)
    d[on_grid] = grid[np.clip(np.round(d[on_grid] / 0.01).astype(np.int64), 0, 399)]
    return d, issame


def main():
    os.makedirs(OUT_DIR, exist_ok=True)
    rng = np.random.default_rng(20240611)

    # 537 pairs: folds of 54 x 7 and 53 x 3.
    d, s = planted_distances(rng, 537)
    write_fixture("verification_dist_537.txt", s, evaluate(d, s), dist=d)

    # 600 pairs: ten folds of 60.
    d, s = planted_distances(rng, 600)
    write_fixture("verification_dist_600.txt", s, evaluate(d, s), dist=d)

    # Every "different" pair at distance 4 (beyond the last threshold 3.999): the largest
    # training FAR is 0 < 1e-3, so the VAL threshold is 0 and VAL is 0.
    s = rng.random(203) < 0.5
    d = np.where(s, rng.uniform(0.0, 2.0, 203), 4.0)
    write_fixture("verification_dist_far0.txt", s, evaluate(d, s), dist=d)

    # The full path from embeddings: 253 pairs of 16-d float32 embeddings and their mirrors.
    pairs, dim = 253, 16
    s = rng.random(pairs) < 0.5
    ident = rng.normal(0, 1, (pairs, dim))
    a = ident + 0.6 * rng.normal(0, 1, (pairs, dim))
    b = np.where(s[:, None], ident, rng.normal(0, 1, (pairs, dim))) + \
        0.6 * rng.normal(0, 1, (pairs, dim))
    emb = np.empty((2 * pairs, dim))
    emb[0::2], emb[1::2] = a, b
    emb = (emb * rng.uniform(5, 30, (2 * pairs, 1))).astype(np.float32)
    emb_mirror = (emb + rng.normal(0, 0.8, emb.shape)).astype(np.float32)
    d, xnorm = flip_distances_and_xnorm(emb, emb_mirror)
    write_fixture("verification_emb_253.txt", s, evaluate(d, s), emb=emb,
                  emb_mirror=emb_mirror, xnorm=xnorm)
    return 0


if __name__ == "__main__":
    sys.exit(main())
