#!/usr/bin/env bash
# Times the engine's CPU layers and r50 step (build/bench_cpu_layers) and the same in PyTorch
# (bench/torch_cpu.py) in one run with the same thread count, then prints engine / torch ratios.
#   bench/cpu_bench.sh                      defaults: BUILD=build THREADS=$(nproc) REPEATS=3
#   BUILD=build-cpu THREADS=2 NET_REPEATS=1 NET_WARMUP=0 OUT=/tmp/b bench/cpu_bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
THREADS=${THREADS:-$(nproc)}
REPEATS=${REPEATS:-3}          # per layer, after one warm-up; the median is reported
NET_REPEATS=${NET_REPEATS:-1}  # r50 steps timed (each is tens of seconds on a small CPU)
NET_WARMUP=${NET_WARMUP:-0}
BATCH=${BATCH:-8}
PY=${PYTHON:-/usr/bin/python3}  # needs torch
OUT=${OUT:-$(mktemp -d)}
mkdir -p "$OUT"

if [ ! -x "$BUILD/bench_cpu_layers" ]; then
    echo "$BUILD/bench_cpu_layers is missing: run make BUILD=$BUILD $BUILD/bench_cpu_layers" >&2
    exit 1
fi

echo "date: $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "machine: $(lscpu | sed -n 's/^Model name: *//p' | head -1), $(nproc) cores visible," \
     "load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo "threads: $THREADS, batch $BATCH, layer repeats $REPEATS, r50 steps $NET_REPEATS" \
     "(+$NET_WARMUP warm-up), torch $("$PY" -c 'import torch; print(torch.__version__)')"
echo
echo "== engine ($BUILD/bench_cpu_layers)"
OMP_NUM_THREADS=$THREADS OPENBLAS_NUM_THREADS=$THREADS "$BUILD/bench_cpu_layers" \
    --repeats "$REPEATS" --net-repeats "$NET_REPEATS" --net-warmup "$NET_WARMUP" \
    --batch "$BATCH" --json "$OUT/engine.jsonl"
echo
echo "== torch (bench/torch_cpu.py)"
OMP_NUM_THREADS=$THREADS "$PY" bench/torch_cpu.py --threads "$THREADS" --repeats "$REPEATS" \
    --net-repeats "$NET_REPEATS" --net-warmup "$NET_WARMUP" --batch "$BATCH" \
    --json "$OUT/torch.jsonl"
echo
echo "== ratio engine / torch (> 1: the engine is slower)"
"$PY" - "$OUT/engine.jsonl" "$OUT/torch.jsonl" <<'PYEOF'
import json, sys
def load(p):
    return {(r["name"], r["pass"]): r["ms"] for r in map(json.loads, open(p))}
e, t = load(sys.argv[1]), load(sys.argv[2])
names = []
for n, _ in e:
    if n not in names:
        names.append(n)
print("| layer | engine fwd ms | torch fwd ms | fwd ratio | engine bwd ms | torch bwd ms "
      "| bwd ratio | fwd+bwd ratio |")
print("|---|---:|---:|---:|---:|---:|---:|---:|")
for n in names:
    ef, eb = e.get((n, "fwd")), e.get((n, "bwd"))
    tf, tb = t.get((n, "fwd")), t.get((n, "bwd"))
    if None in (ef, eb, tf, tb):
        print("| %s | missing on one side |" % n)
        continue
    print("| %s | %.1f | %.1f | %.2f | %.1f | %.1f | %.2f | %.2f |"
          % (n, ef, tf, ef / tf, eb, tb, eb / tb, (ef + eb) / (tf + tb)))
PYEOF
echo
echo "JSON lines: $OUT/engine.jsonl $OUT/torch.jsonl"
