#!/usr/bin/env python3
"""Prints the table of `make demo` (tools/demo.sh) from the files the stages wrote:
verification accuracy on the held-out synthetic pairs after each step, noise-mining precision and
recall against the synthetic ground truth, and throughput per stage. Plain python3, no numpy.

usage: demo_report.py DEMO_DIR BUILD_DIR DEVICE TOTAL_SECONDS
"""
import json
import os
import sys


def read_metrics(path):
    rows = []
    if not os.path.exists(path):
        return rows
    with open(path) as f:
        for line in f:
            line = line.strip()
            if line:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
    return rows


def best_verification(rows):
    """(accuracy, std, step) of the best verification line (the checkpoint the next step uses)."""
    best = None
    for r in rows:
        if r.get("kind") != "verification" or r.get("synth_val_acc") is None:
            continue
        if best is None or r["synth_val_acc"] > best[0]:
            best = (r["synth_val_acc"], r.get("synth_val_acc_std") or 0.0, r["step"])
    return best


def mean_rate(rows):
    rates = [r["images_per_s"] for r in rows
             if r.get("kind") == "train" and r.get("images_per_s")]
    return sum(rates) / len(rates) if rates else float("nan")


def read_keyed_lines(path, key_col, skip_comments=True):
    out = {}
    with open(path) as f:
        for line in f:
            if not line.strip() or (skip_comments and line.startswith("#")):
                continue
            parts = line.split()
            out[int(parts[key_col])] = parts
    return out


def main():
    demo, build, device, total = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    seconds = {}
    with open(os.path.join(demo, "stage_seconds.txt")) as f:
        for line in f:
            name, s = line.split()
            seconds[name] = int(s)

    # Mining against the ground truth, restricted to the head set (mining only sees the head).
    origin = read_keyed_lines(os.path.join(demo, "head", "origin.txt"), 0)  # head key -> src
    truth = {}  # src key -> kind
    with open(os.path.join(demo, "synth", "noise_truth.txt")) as f:
        for line in f:
            p = line.split()
            if len(p) >= 2 and not line.startswith("#"):
                truth[int(p[1])] = p[0]
    head_src = {int(v[1]) for v in origin.values()}
    listed = read_keyed_lines(os.path.join(demo, "noise_list.txt"), 1)  # head key -> line
    listed_src = {int(origin[k][1]) for k in listed}
    noisy_in_head = {k: kind for k, kind in truth.items() if k in head_src}
    hits = [k for k in listed_src if k in noisy_in_head]
    precision = len(hits) / len(listed_src) if listed_src else float("nan")
    recall = len(hits) / len(noisy_in_head) if noisy_in_head else float("nan")
    per_kind = {}
    for kind in sorted(set(noisy_in_head.values())):
        keys = [k for k, v in noisy_in_head.items() if v == kind]
        per_kind[kind] = (sum(1 for k in keys if k in listed_src), len(keys))

    stages = [("ArcFace only (step 1)", "arcface"), ("+ NR (step 2)", "nr"),
              ("+ unequal, interweight 1 (step 3)", "unequal_iw1"),
              ("+ unequal, interweight 5 (step 3)", "unequal_iw5")]
    print()
    print("Unequal-Training demo on the synthetic long-tailed noisy set (%s, device %s)" %
          (demo, device))
    print()
    print("| model | synth_val accuracy (+- std over 10 folds) | best at step | train images/s | stage time |")
    print("|---|---|---:|---:|---:|")
    for label, name in stages:
        rows = read_metrics(os.path.join(demo, name, "model.metrics.jsonl"))
        b = best_verification(rows)
        acc = "%.4f +- %.4f" % (b[0], b[1]) if b else "n/a"
        step = str(b[2]) if b else "-"
        print("| %s | %s | %s | %.0f | %d s |" % (label, acc, step, mean_rate(rows),
                                                  seconds.get(name, 0)))
    print()
    print("Noise mining (step 2a) against the ground truth of the head set: %d listed, "
          "%d noisy images in the head set" % (len(listed_src), len(noisy_in_head)))
    print("  precision %.3f, recall %.3f; recall by kind: %s" % (
        precision, recall,
        ", ".join("%s %d/%d" % (k, h, n) for k, (h, n) in per_kind.items())))
    print("  mining time %d s" % seconds.get("mine", 0))
    print()
    print("Total demo time %d s (%.1f min), build dir %s. Curves: %s/curves/*.png" %
          (total, total / 60.0, build, demo))


if __name__ == "__main__":
    main()
