#!/bin/bash
# Decode + augment throughput, ours (stb_image + data/augment) against Pillow + NumPy, on the
# same 112x112 synthetic-face JPEGs in one run; prints both rates (images per CPU second, one
# thread) and the ratio.   Usage: bench/decode_bench.sh [BUILD_DIR] (default build)
set -euo pipefail
BUILD=${1:-${BUILD:-build}}
BIN="$BUILD/bench_decode_bench"
[ -x "$BIN" ] || { echo "decode_bench.sh: $BIN not found; run make BUILD=$BUILD first" >&2; exit 1; }
PY=/usr/bin/python3
[ -x "$PY" ] || PY=python3
DIR=$(mktemp -d)
trap 'rm -rf "$DIR"' EXIT
"$BIN" --images 512 --passes 3 --dir "$DIR" | tee "$DIR/cpp.txt"
"$PY" "$(dirname "$0")/decode_bench.py" "$DIR" --passes 3 | tee "$DIR/py.txt"
cpp=$(awk '/^cpp_images_per_cpu_second/ {print $2}' "$DIR/cpp.txt")
py=$(awk '/^python_images_per_cpu_second/ {print $2}' "$DIR/py.txt")
awk -v c="$cpp" -v p="$py" 'BEGIN { printf "decode+augment images/s per core: C++ %.0f, Pillow+NumPy %.0f, ratio C++/Python %.2f\n", c, p, c / p }'
