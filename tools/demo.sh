#!/usr/bin/env bash
# make demo: the whole Unequal-Training method on a synthetic long-tailed noisy face set.
#   1. synth: 200 identities (long-tailed), ~5% noise with a ground-truth file, 1500 verification
#      pairs of 150 held-out identities (fold std about 1.5 points, against 3 with 300 pairs)
#   2. split at 9 images per identity into head and tail
#   3. step 1: ArcFace on the head set
#   4. step 2a: noise mining with the step-1 model and its classifier -> denoised head; the
#      seed's rule (max_p < 0.007) plus the label-probability rule (p_label < 1e-4): on this
#      small set the scale-32 softmax is confident even on outsiders, so the seed's rule alone
#      lists almost nothing (bench/RESULTS.md has the measured score distributions)
#   5. step 2b: NR fine-tuning on the denoised head (classifier re-initialised)
#   6. step 3: unequal training (NR head + center-dispersed tail), interweight 1 then 5, each
#      from the best model of the previous run
#   7. one table: verification accuracy per step, mining precision/recall, images/s per stage,
#      and PNG curves (tools/plot.py)
# Environment: DEMO_DIR (default demo/), DEMO_SCALE=quick for a 2-minute smoke run,
# SYNTH_FLAGS (extra flags for build/synth, e.g. "--flip 0.08 --outlier 0.05" for a noisier set),
# DEVICE (auto|cpu|cuda), DEMO_BUILD (a build dir to use as it is). Uses build/ when it has the apps, else builds a CPU-only copy in
# build-cpu/ (no nvcc time) unless a GPU is present.
set -euo pipefail
cd "$(dirname "$0")/.."
DEMO_DIR=${DEMO_DIR:-demo}
DEVICE=${DEVICE:-auto}
SCALE=${DEMO_SCALE:-full}
T0=$(date +%s)

if [ -n "${DEMO_BUILD:-}" ]; then
    B=$DEMO_BUILD
elif [ -x build/train ] && [ -x build/synth ]; then
    B=build
elif command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi >/dev/null 2>&1; then
    make -j"$(nproc)" >/dev/null
    B=build
else
    echo "demo: no GPU: building the CPU backend only into build-cpu/ (make BUILD=build-cpu CUDA=0)"
    make BUILD=build-cpu CUDA=0 -j"$(nproc)" build-cpu/synth build-cpu/split build-cpu/train \
        build-cpu/mine build-cpu/verify >/dev/null
    B=build-cpu
fi

# Sizes. The network is the real r18 topology at a quarter width on 32x32 faces, so that the
# whole method runs on 2 CPU cores in minutes; with a GPU, raise --width/--input-size freely.
NET="--network r18 --width 0.25 --input-size 32 --emb-size 64 --margin-s 32"
if [ "$SCALE" = quick ]; then
    S1=60; S2=30; S3=20; VERB=30
else
    S1=500; S2=200; S3=120; VERB=100
fi
COMMON="$NET --device $DEVICE --batch-size 64 --log-every 25 --verbose $VERB --workers 2"

# This workplace's virtual CPUs hide their model, so OpenBLAS falls back to its generic
# (Prescott, SSE3) kernels; when the CPU has AVX-512 or AVX2 and nothing is set, name the kernel
# family (about 2x faster GEMM here). Tests and CI never change it.
if [ -z "${OPENBLAS_CORETYPE:-}" ]; then
    if grep -qw avx512f /proc/cpuinfo 2>/dev/null; then export OPENBLAS_CORETYPE=SkylakeX
    elif grep -qw avx2 /proc/cpuinfo 2>/dev/null; then export OPENBLAS_CORETYPE=Haswell; fi
fi

rm -rf "$DEMO_DIR"
mkdir -p "$DEMO_DIR"
LOG="$DEMO_DIR/demo.log"
run() {  # run NAME CMD...: time a stage, keep its output in the log
    local name=$1; shift
    local t=$(date +%s)
    echo "== $name: $*" | tee -a "$LOG"
    "$@" 2>&1 | tee -a "$LOG" | grep -v '^step ' || { echo "demo: $name failed (see $LOG)"; exit 1; }
    echo "$name $(( $(date +%s) - t ))" >> "$DEMO_DIR/stage_seconds.txt"
}

run synth "$B/synth" --out "$DEMO_DIR/synth" --size 32 --heldout 150 --pairs 1500 --seed 1 ${SYNTH_FLAGS:-}
run split "$B/split" --data "$DEMO_DIR/synth" --min-images 9 --head "$DEMO_DIR/head" --tail "$DEMO_DIR/tail"
VAL="$DEMO_DIR/synth/synth_val.bin"

run arcface "$B/train" --stage arcface $COMMON --data-dir "$DEMO_DIR/head" --target "$VAL" \
    --lr 0.1 --lr-steps $((S1 * 2 / 3)) --max-steps "$S1" --prefix "$DEMO_DIR/arcface/model"

run mine "$B/mine" --model "$DEMO_DIR/arcface/model-best.safetensors" --data-dir "$DEMO_DIR/head" \
    --margin-s 32 --threshold "${MINE_THRESHOLD:-0.007}" \
    --label-threshold "${MINE_LABEL_THRESHOLD:-1e-4}" --device "$DEVICE" \
    --noise-list "$DEMO_DIR/noise_list.txt" --out-dir "$DEMO_DIR/head_denoised"

run nr "$B/train" --stage nr $COMMON --data-dir "$DEMO_DIR/head_denoised" --target "$VAL" \
    --pretrained "$DEMO_DIR/arcface/model-best.safetensors" --drop-classifier \
    --noise-beta 0.9 --lr 0.01 --max-steps "$S2" --prefix "$DEMO_DIR/nr/model"

run unequal_iw1 "$B/train" --stage unequal $COMMON --data-dir "$DEMO_DIR/head_denoised" \
    --data-dir-tail "$DEMO_DIR/tail" --target "$VAL" --pretrained "$DEMO_DIR/nr/model-best.safetensors" \
    --tail-ids 20 --bag-size 300 --mining-batch 100 --refill-multiplier 5 --interweight 1 --noise-beta 0.9 \
    --lr 0.001 --max-steps "$S3" --prefix "$DEMO_DIR/unequal_iw1/model"

run unequal_iw5 "$B/train" --stage unequal $COMMON --data-dir "$DEMO_DIR/head_denoised" \
    --data-dir-tail "$DEMO_DIR/tail" --target "$VAL" \
    --pretrained "$DEMO_DIR/unequal_iw1/model-best.safetensors" \
    --tail-ids 20 --bag-size 300 --mining-batch 100 --refill-multiplier 5 --interweight 5 --noise-beta 0.9 \
    --lr 0.001 --max-steps "$S3" --prefix "$DEMO_DIR/unequal_iw5/model"

PY=python3
if /usr/bin/python3 -c "import matplotlib" 2>/dev/null; then PY=/usr/bin/python3; fi
if ! $PY -c "import matplotlib" 2>/dev/null && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    echo "demo: installing python3-matplotlib for the curves"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-matplotlib >/dev/null 2>&1 || true
    PY=/usr/bin/python3
fi
if $PY -c "import matplotlib" 2>/dev/null; then
    $PY tools/plot.py --out-dir "$DEMO_DIR/curves" --labels arcface,nr,unequal_iw1,unequal_iw5 \
        "$DEMO_DIR"/{arcface,nr,unequal_iw1,unequal_iw5}/model.metrics.jsonl \
        >> "$LOG" 2>&1 || echo "demo: plotting failed (see $LOG)"
else
    echo "demo: matplotlib not available: no PNG curves"
fi
python3 tools/demo_report.py "$DEMO_DIR" "$B" "$DEVICE" "$(( $(date +%s) - T0 ))"
