#!/usr/bin/python3
"""Draw training curves from the engine's JSONL metrics files (engine/progress.h MetricsWriter).

Each line of a metrics file is one JSON object with "step", "time" and named values; null means
"not a finite number" (NaN or infinity). This tool writes three PNG files into --out-dir:
  <prefix>loss.png      one panel per key matching --loss (default: keys containing "loss")
  <prefix>accuracy.png  one panel per key matching --acc (default: keys ending in "acc", e.g.
                        lfw_acc); a key K_std next to K is drawn as a +- band
  <prefix>lr.png        the "lr" key, when present
Several files (runs, e.g. the stages of one pipeline) share the panels, one colour per run,
labelled by the file name or by --labels. Keys whose values are all null are left out. Needs matplotlib (Debian's /usr/bin/python3 has it).

Example:
  /usr/bin/python3 tools/plot.py runs/arcface/metrics.jsonl runs/nr/metrics.jsonl --out-dir plots
"""
import argparse
import json
import math
import os
import re
import sys


def read_metrics(path):
    """Returns {key: ([steps], [values])} for the numeric keys of a JSONL file. Lines that are
    not JSON objects are reported on stderr with their line number (never dropped silently)."""
    series = {}
    bad = 0
    with open(path, "r", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                # A run killed mid-write leaves at most its last line incomplete.
                print("plot.py: %s line %d is not JSON (%s); skipped" % (path, lineno, e.msg),
                      file=sys.stderr)
                bad += 1
                continue
            if not isinstance(obj, dict) or "step" not in obj:
                print("plot.py: %s line %d has no \"step\"; skipped" % (path, lineno),
                      file=sys.stderr)
                bad += 1
                continue
            step = obj["step"]
            for key, value in obj.items():
                if key in ("step", "time"):
                    continue
                if value is None:
                    value = math.nan  # non-finite in the run: a gap in the curve
                elif isinstance(value, bool) or not isinstance(value, (int, float)):
                    continue  # labels (strings) are not curves
                steps, values = series.setdefault(key, ([], []))
                steps.append(step)
                values.append(float(value))
    if bad:
        print("plot.py: %s: %d line(s) skipped" % (path, bad), file=sys.stderr)
    return series


def finite_any(values):
    return any(not math.isnan(v) for v in values)


def draw(runs, keys_of, title, ylabel, out_path, logy=False, bands=False):
    """runs: [(label, series)]; keys_of(series) -> the keys to draw. One panel per key (terms
    of very different size stay readable), one colour per run. Keys without a single finite
    value are left out. Returns False when there was nothing to draw (no file written)."""
    try:
        import matplotlib
    except ImportError:
        sys.exit("plot.py: matplotlib is not installed for %s (Debian's /usr/bin/python3 has it)"
                 % sys.executable)
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = []
    for _, series in runs:
        for key in keys_of(series):
            if key not in keys and finite_any(series[key][1]):
                keys.append(key)
    if not keys:
        return False
    fig, axes = plt.subplots(len(keys), 1, figsize=(9, 2.2 + 2.6 * len(keys)), dpi=110,
                             sharex=True, squeeze=False)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, key in zip(axes[:, 0], keys):
        for r, (label, series) in enumerate(runs):
            if key not in series or not finite_any(series[key][1]):
                continue
            steps, values = series[key]
            colour = colours[r % len(colours)]
            marker = "o" if len(steps) <= 50 else None
            ax.plot(steps, values, "-", color=colour, label=label, marker=marker, markersize=3)
            std_key = key + "_std"
            if bands and std_key in series:
                lookup = dict(zip(*series[std_key]))
                lo = [v - lookup.get(s, 0.0) for s, v in zip(steps, values)]
                hi = [v + lookup.get(s, 0.0) for s, v in zip(steps, values)]
                ax.fill_between(steps, lo, hi, color=colour, alpha=0.15, linewidth=0)
        ax.set_ylabel(key)
        if logy:
            ax.set_yscale("log")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=8)
    axes[0, 0].set_title(title)
    axes[-1, 0].set_xlabel("step")
    fig.tight_layout()
    fig.savefig(out_path)
    plt.close(fig)
    return True


def main(argv=None):
    p = argparse.ArgumentParser(
        description="Draw loss, verification-accuracy and learning-rate curves from JSONL "
                    "metrics files into PNG files.",
        epilog=__doc__.split("\n\n", 1)[1], formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("files", nargs="+", help="metrics .jsonl files (one per run)")
    p.add_argument("--out-dir", default=".", help="directory for the PNG files (default .)")
    p.add_argument("--prefix", default="", help="prefix of the PNG file names")
    p.add_argument("--labels", default="",
                   help="comma-separated run labels, one per file (default: file names)")
    p.add_argument("--loss", default="loss", help="regex of the loss keys (default 'loss')")
    p.add_argument("--acc", default=r"acc$", help="regex of the accuracy keys (default 'acc$')")
    p.add_argument("--logy", action="store_true", help="log scale for the loss plot")
    args = p.parse_args(argv)

    labels = [s for s in args.labels.split(",")] if args.labels else []
    if labels and len(labels) != len(args.files):
        p.error("--labels has %d names for %d files" % (len(labels), len(args.files)))
    runs = []
    for i, path in enumerate(args.files):
        if not os.path.isfile(path):
            p.error("no such file: %s" % path)
        label = labels[i] if labels else os.path.splitext(os.path.basename(path))[0]
        if not labels and sum(os.path.basename(f) == os.path.basename(path)
                              for f in args.files) > 1:
            label = os.path.basename(os.path.dirname(os.path.abspath(path))) or label
        runs.append((label, read_metrics(path)))

    os.makedirs(args.out_dir, exist_ok=True)
    loss_re, acc_re = re.compile(args.loss), re.compile(args.acc)

    def loss_keys(series):
        return sorted(k for k in series if loss_re.search(k) and not k.endswith("_std"))

    def acc_keys(series):
        return sorted(k for k in series if acc_re.search(k) and not k.endswith("_std"))

    written = []
    for name, keys_of, title, ylabel, kw in (
            ("loss", loss_keys, "training loss", "loss", {"logy": args.logy}),
            ("accuracy", acc_keys, "verification accuracy", "accuracy", {"bands": True}),
            ("lr", lambda s: ["lr"] if "lr" in s else [], "learning rate", "lr", {"logy": True})):
        out = os.path.join(args.out_dir, args.prefix + name + ".png")
        if draw(runs, keys_of, title, ylabel, out, **kw):
            written.append(out)
        else:
            print("plot.py: no %s keys in the input; %s not written" % (name, out),
                  file=sys.stderr)
    for out in written:
        print(out)
    return 0 if written else 1


if __name__ == "__main__":
    sys.exit(main())
