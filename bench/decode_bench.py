#!/usr/bin/python3
# The same per-sample work as bench/decode_bench.cpp with Pillow + NumPy: decode a JPEG to RGB,
# then mirror (p 0.5), colour jitter (p 0.2; brightness, contrast, saturation 0.2 each, random
# order, MXNet formulas), gray (p 0.2), clamp, float32 CHW. One thread; CPU time.
#   /usr/bin/python3 bench/decode_bench.py DIR [--passes 3]
import glob
import io
import os
import random
import sys
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

LUMA = np.array([0.299, 0.587, 0.114], dtype=np.float32)
GRAY = np.array([0.21, 0.72, 0.07], dtype=np.float32)


def augment(img, rng):
    x = np.asarray(img, dtype=np.float32)  # (H, W, 3)
    if rng.random() < 0.5:
        x = x[:, ::-1, :]
    gray = rng.random() < 0.2
    if rng.random() < 0.2:
        ops = [0, 1, 2]
        rng.shuffle(ops)
        for op in ops:
            a = 1.0 + rng.uniform(-0.2, 0.2)
            if op == 0:
                x = x * a
            elif op == 1:
                x = x * a + (1.0 - a) * float((x @ LUMA).mean())
            else:
                x = x * a + (1.0 - a) * (x @ LUMA)[:, :, None]
    if gray:
        x = np.repeat((x @ GRAY)[:, :, None], 3, axis=2)
    x = np.clip(x, 0.0, 255.0)
    return np.ascontiguousarray(x.transpose(2, 0, 1))


def main():
    if len(sys.argv) < 2:
        sys.exit("usage: decode_bench.py DIR [--passes N]")
    passes = int(sys.argv[sys.argv.index("--passes") + 1]) if "--passes" in sys.argv else 3
    files = sorted(glob.glob(os.path.join(sys.argv[1], "*.jpg")))
    if not files:
        sys.exit("decode_bench.py: no .jpg files in " + sys.argv[1])
    data = [open(f, "rb").read() for f in files]
    rng = random.Random(123)
    checksum = 0.0
    t_dec = 0.0
    c0 = time.process_time()
    w0 = time.perf_counter()
    for _ in range(passes):
        for b in data:
            a = time.process_time()
            img = Image.open(io.BytesIO(b)).convert("RGB")
            img.load()
            t_dec += time.process_time() - a
            out = augment(img, rng)
            checksum += float(out[0, 5, 7])
    cpu = time.process_time() - c0
    n = len(data) * passes
    print("decode_bench Python (Pillow %s + NumPy %s): %d JPEGs, %d passes"
          % (Image.__version__, np.__version__, len(data), passes))
    print("  decode  %.1f us/image   augment %.1f us/image"
          % (1e6 * t_dec / n, 1e6 * (cpu - t_dec) / n))
    print("  wall %.3f s, cpu %.3f s (checksum %.0f)" % (time.perf_counter() - w0, cpu, checksum))
    print("python_images_per_cpu_second %.1f" % (n / cpu))


if __name__ == "__main__":
    main()
