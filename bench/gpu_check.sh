#!/usr/bin/env bash
# The one prepared check for a lent GPU machine (issue 4, items 4 and 5): reports the GPU, CUDA,
# cuDNN, cuBLAS and NCCL it finds, builds the engine there (or uses binaries built elsewhere), runs
# the GPU parity tests, times an r50 training step (112x112, batch 128) in the engine and in
# PyTorch (float32, bf16 autocast + channels_last, TF32) with peak memory, and prints a ratio
# table LAST. Full logs go to $OUT (7 files at most; default ./gpu_check_out).
#
# What it needs on the GPU machine: an NVIDIA GPU and driver; python3 with a CUDA PyTorch; cuDNN 9,
# cuBLAS 13 and NCCL 2 under CUDA_HOME or as the pip packages PyTorch brings (nvidia-cudnn-cu13 ->
# nvidia/cudnn, nvidia-cublas -> nvidia/cu13, nvidia-nccl-cu13 -> nvidia/nccl); for a build there
# also nvcc (CUDA 13) and g++. No network is needed. The build's other dependencies (doctest,
# stb, OpenBLAS) are usually missing on such a machine: they travel in a bundle made beforehand on
# the CPU machine, which also carries prebuilt binaries (no compile minutes on the GPU's clock).
#
# How to run it, from the repository root:
#   1. On the CPU machine (has CUDA 13, cuDNN, doctest, stb, OpenBLAS; a fresh build takes
#      ~15 min at -j2; BUILD=build reuses an up-to-date CUDA build):
#        bash bench/gpu_check.sh --prepare          # builds build-gpu/, writes
#                                                   # build-gpu-carry/bundle.tar.gz (~14 MiB:
#                                                   # stripped binaries, OpenBLAS, headers)
#   2. On the GPU machine through the device tool, in ONE call:
#        run(command="bash bench/gpu_check.sh", carry=["build-gpu-carry"], timeout_s=450)
#      It uses the bundle's binaries when they load there, else builds there (make -j16, CUDA=1,
#      headers and libraries found as above). It finishes within 8 minutes (every step runs under
#      `timeout`, budgets from one deadline, GPU_CHECK_SECONDS=400). No bundle and a machine with
#      all dependencies: it just builds.
#   Without a GPU (e.g. the CPU machine) it does what a CPU can (detection, the build, listing the
#   GPU test cases and running them as skipped, both benchmarks' no-GPU exits, the torch
#   script's syntax) and exits 3 with the reason. --dry-run: report and print the plan, no build.
# The parity tests are the GPU_TEST_CASEs, selected by name (*cuda*, *CUDA*: all 23 today; the
# script warns about a GPU case named otherwise); --all-tests runs the whole suite instead.
#
# Options: --prebuilt DIR   binaries (tests, bench_gpu_r50) in DIR or DIR/bin, or DIR/bundle.tar.gz
#          --build          build even when a bundle has binaries
#          --carry DIR      the bundle's folder (default build-gpu-carry)
#          --prepare        (CPU machine) build and write DIR/bundle.tar.gz, then stop
#          --dry-run        detect and print the plan only
#          --batch N (128) --iters N (20) --warmup N (5) --classes N (0: no loss; N: ArcFace)
#          --modes LIST (fp32,bf16,tf32: PyTorch modes) --all-tests (whole suite, not only GPU
#          cases) --jobs N (make -j; default nproc)
# Environment: OUT (logs), BUILD (build dir, default build-gpu), PYTHON (python3 with torch),
#              CUDA_HOME, GPU_CHECK_SECONDS (overall deadline, default 400),
#              GPU_CHECK_NO_SYSTEM_DEPS=1 (ignore the system's doctest/stb/OpenBLAS: tests the
#              bundle's on a machine that has them).
# Exit status: 0 all passed; 1 parity tests failed (or GPU cases skipped although a GPU is seen);
#              2 setup or build failed (with a GPU, the PyTorch timings and the summary still
#              run); 3 no usable GPU; 4 a benchmark failed or timed out.
set -uo pipefail
cd "$(dirname "$0")/.." || exit 2
ROOT=$(pwd)
T0=$SECONDS

ACTION=check
PREBUILT=""
FORCE_BUILD=0
CARRY=build-gpu-carry
BATCH=128
ITERS=20
WARMUP=5
CLASSES=0
MODES=fp32,bf16,tf32
ALL_TESTS=0
JOBS=$(nproc)
BUILD=${BUILD:-build-gpu}
PY=${PYTHON:-python3}
DEADLINE=${GPU_CHECK_SECONDS:-400}
TEST_FILTER='*cuda*,*CUDA*'

usage() { sed -n '2,/^set -uo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; }
while [ $# -gt 0 ]; do
    case "$1" in
        --prebuilt) PREBUILT=${2:?--prebuilt needs a folder}; shift ;;
        --build) FORCE_BUILD=1 ;;
        --carry) CARRY=${2:?--carry needs a folder}; shift ;;
        --prepare) ACTION=prepare ;;
        --dry-run) ACTION=dry ;;
        --batch) BATCH=${2:?}; shift ;;
        --iters) ITERS=${2:?}; shift ;;
        --warmup) WARMUP=${2:?}; shift ;;
        --classes) CLASSES=${2:?}; shift ;;
        --modes) MODES=${2:?}; shift ;;
        --all-tests) ALL_TESTS=1 ;;
        --jobs) JOBS=${2:?}; shift ;;
        -h|--help) usage; exit 0 ;;
        *) echo "gpu_check: unknown option $1 (see --help)" >&2; exit 2 ;;
    esac
    shift
done

OUT=${OUT:-$ROOT/gpu_check_out}
mkdir -p "$OUT" || exit 2
OUT=$(cd "$OUT" && pwd)
# Scratch (the unpacked bundle, link names): a fixed path, so that the dependency files of a
# build made with the bundle's headers stay valid for the next run on the same machine.
WORK=/tmp/gpu_check_work
rm -rf "$WORK" && mkdir -p "$WORK" || exit 2
ORIG_LD_LIBRARY_PATH=${LD_LIBRARY_PATH:-}
export PYTHONDONTWRITEBYTECODE=1  # no __pycache__ folders in the working tree
ENV_LOG=$OUT/env.log
: >"$ENV_LOG"

say() { echo "$@" | tee -a "$ENV_LOG"; }
section() { say; say "== $* ($((SECONDS - T0)) s)"; }
# Run a command with its output into the env log and on screen; never fails the script.
show() { timeout 20 "$@" 2>&1 | tee -a "$ENV_LOG"; return 0; }
left() { echo $((DEADLINE - (SECONDS - T0))); }
# budget MAX RESERVE: seconds for the next step, at most MAX, leaving RESERVE for later steps.
budget() {
    local b=$(($(left) - $2))
    [ "$b" -gt "$1" ] && b=$1
    [ "$b" -lt 5 ] && b=5
    echo "$b"
}

# ---------------------------------------------------------------------------------------------
# Detection: machine, GPU, toolkit, python, library locations.
section "machine"
say "date: $(date -u '+%Y-%m-%d %H:%M:%S UTC'); host $(uname -srm); $(nproc) CPUs;" \
    "$(awk '/MemTotal/ {printf "%.0f GiB RAM", $2 / 1048576}' /proc/meminfo)"
say "repository: $ROOT (git $(git rev-parse --short HEAD 2>/dev/null || echo '?'))"
say "logs: $OUT"

section "GPU (nvidia-smi)"
GPU_COUNT=0
if command -v nvidia-smi >/dev/null 2>&1; then
    show nvidia-smi
    show nvidia-smi --query-gpu=name,driver_version,memory.total,memory.used,clocks.sm,clocks.max.sm,temperature.gpu,power.draw --format=csv
    GPU_COUNT=$(timeout 20 nvidia-smi -L 2>/dev/null | grep -c '^GPU ' || true)
else
    say "nvidia-smi: not found"
fi
say "GPUs listed: $GPU_COUNT"

section "CUDA toolkit"
NVCC=$(command -v nvcc 2>/dev/null || true)
for c in ${CUDA_HOME:+"$CUDA_HOME/bin/nvcc"} /usr/local/cuda/bin/nvcc /usr/local/cuda-13*/bin/nvcc; do
    [ -n "$NVCC" ] && break
    [ -x "$c" ] && NVCC=$c
done
if [ -n "$NVCC" ]; then
    CUDA_HOME=${CUDA_HOME:-$(dirname "$(dirname "$(readlink -f "$NVCC")")")}
    say "nvcc: $NVCC"
    show "$NVCC" --version
else
    CUDA_HOME=${CUDA_HOME:-/usr/local/cuda}
    say "nvcc: not found (a build here is impossible; prebuilt binaries only)"
fi
say "CUDA_HOME: $CUDA_HOME"
CXX_FOUND=$(command -v g++ 2>/dev/null || true)
MAKE_FOUND=$(command -v make 2>/dev/null || true)
say "g++: ${CXX_FOUND:-not found} $([ -n "$CXX_FOUND" ] && g++ -dumpfullversion 2>/dev/null); make: ${MAKE_FOUND:-not found}"

section "python and PyTorch ($PY)"
HAVE_TORCH=0
torch_info=$(timeout 90 "$PY" -c 'import sys, torch
print(sys.executable, sys.version.split()[0])
print("torch", torch.__version__, "| CUDA", torch.version.cuda, "| cuDNN",
      torch.backends.cudnn.version(), "| cuda available:", torch.cuda.is_available())' 2>&1) &&
    HAVE_TORCH=1
say "${torch_info:-$PY: not runnable}"
[ $HAVE_TORCH = 1 ] || say "(no usable PyTorch in $PY: set PYTHON=...)"
# A container may lack nvidia-smi while the GPU works: trust PyTorch then.
if [ "$GPU_COUNT" -eq 0 ] && [ $HAVE_TORCH = 1 ] && echo "$torch_info" | grep -q 'cuda available: True'; then
    GPU_COUNT=1
    say "GPUs listed: none by nvidia-smi, but PyTorch sees one: going on as if one is there"
fi
# The pip packages' folders: nvidia is a namespace package, so list every path it has.
NV_DIRS=$(timeout 20 "$PY" -c 'import nvidia; print("\n".join(nvidia.__path__))' 2>/dev/null || true)
say "python package nvidia: ${NV_DIRS:-not found}"
for m in cudnn cublas nccl cu13 cuda_runtime; do
    p=$(timeout 20 "$PY" -c "import nvidia.$m as x; print(list(x.__path__)[0])" 2>/dev/null || true)
    [ -n "$p" ] && say "  nvidia.$m: $p ($(ls "$p" 2>/dev/null | tr '\n' ' '))"
done

section "cuDNN, cuBLAS, NCCL, CUDA runtime: headers and libraries"
INC_DIRS=("$CUDA_HOME/include" "$CUDA_HOME/targets/x86_64-linux/include" /usr/include
          /usr/include/x86_64-linux-gnu)
LIB_DIRS=("$CUDA_HOME/lib64" "$CUDA_HOME/lib" "$CUDA_HOME/targets/x86_64-linux/lib"
          /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/local/lib)
while IFS= read -r d; do
    [ -n "$d" ] || continue
    for s in cudnn cu13 cublas nccl cuda_runtime; do
        INC_DIRS+=("$d/$s/include")
        LIB_DIRS+=("$d/$s/lib" "$d/$s/lib64")
    done
done <<<"$NV_DIRS"

first_header() {  # first_header NAME DIR...: the first DIR holding NAME
    local h=$1 d
    shift
    for d in "$@"; do [ -f "$d/$h" ] && { echo "$d"; return 0; }; done
    return 1
}
first_lib() {  # first_lib STEM MAJOR DIR...: DIR/STEM.so.MAJOR, a versioned STEM.so.MAJOR.*, or STEM.so
    local stem=$1 major=$2 d f
    shift 2
    for d in "$@"; do
        [ -d "$d" ] || continue
        for f in "$d/$stem.so.$major" "$d/$stem.so.$major".* "$d/$stem.so"; do
            [ -e "$f" ] && { echo "$f"; return 0; }
        done
    done
    return 1
}
macro() { grep -m1 -E "#define $2 " "$1" 2>/dev/null | awk '{print $3}'; }

declare -A INC LIB
# name header lib-stem soname-major version-header major-macro minor-macro patch-macro
for spec in "cudnn cudnn.h libcudnn 9 cudnn_version.h CUDNN_MAJOR CUDNN_MINOR CUDNN_PATCHLEVEL" \
            "cublas cublas_v2.h libcublas 13 cublas_api.h CUBLAS_VER_MAJOR CUBLAS_VER_MINOR CUBLAS_VER_PATCH" \
            "nccl nccl.h libnccl 2 nccl.h NCCL_MAJOR NCCL_MINOR NCCL_PATCH" \
            "cudart cuda_runtime.h libcudart 13 cuda_runtime_api.h CUDART_VERSION CUDART_VERSION CUDART_VERSION"; do
    read -r name header stem major vh m1 m2 m3 <<<"$spec"
    inc=$(first_header "$header" "${INC_DIRS[@]}" || true)
    # Prefer the library beside the header (one installation, one version).
    lib=""
    [ -n "$inc" ] && lib=$(first_lib "$stem" "$major" "$(readlink -f "$inc/..")/lib64" \
                                   "$(readlink -f "$inc/..")/lib" || true)
    [ -z "$lib" ] && lib=$(first_lib "$stem" "$major" "${LIB_DIRS[@]}" || true)
    INC[$name]=$inc
    LIB[$name]=$lib
    ver=""
    if [ -n "$inc" ] && [ -f "$inc/$vh" ]; then
        ver=$(macro "$inc/$vh" "$m1")
        [ "$m2" != "$m1" ] && ver="$ver.$(macro "$inc/$vh" "$m2").$(macro "$inc/$vh" "$m3")"
    fi
    say "$(printf '%-7s headers: %-55s version %s' "$name" "${inc:-NOT FOUND}" "${ver:-?}")"
    if [ -n "$lib" ]; then
        say "$(printf '%-7s library: %s' "" "$lib -> $(readlink -f "$lib")")"
    else
        say "$(printf '%-7s library: NOT FOUND' "")"
    fi
done
# Every other copy, for the record (the pip packages and the toolkit may both have one).
say "all copies seen:"
for stem in libcudnn.so libcublas.so libnccl.so libcudart.so; do
    for d in "${LIB_DIRS[@]}"; do
        ls "$d/$stem".* 2>/dev/null | grep -vE '_static|\.a$' | head -3 | sed 's/^/    /' | tee -a "$ENV_LOG"
    done
done
[ -d "$CUDA_HOME/include/nvtx3" ] && say "nvtx3 headers: $CUDA_HOME/include/nvtx3"

# ---------------------------------------------------------------------------------------------
# The third-party build dependencies (doctest, stb, OpenBLAS): from the system or from the bundle.
have_system_deps() {  # GPU_CHECK_NO_SYSTEM_DEPS=1 pretends they are missing (to test the bundle)
    [ "${GPU_CHECK_NO_SYSTEM_DEPS:-0}" = 1 ] && return 1
    [ -f /usr/include/doctest/doctest.h ] && [ -f /usr/include/stb/stb_image.h ] &&
        { [ -f /usr/include/x86_64-linux-gnu/cblas.h ] || [ -f /usr/include/cblas.h ]; } &&
        { [ -e /usr/lib/x86_64-linux-gnu/libopenblas.so ] || [ -e /usr/lib/libopenblas.so ]; }
}

# --prepare: on the CPU machine, build and pack binaries + dependencies for the GPU machine.
if [ "$ACTION" = prepare ]; then
    section "prepare: build $BUILD (CUDA=1) and pack $CARRY/bundle.tar.gz"
    if [ -z "$NVCC" ] || ! have_system_deps; then
        say "prepare needs nvcc and the system's doctest, stb and OpenBLAS (bash tools/install_deps.sh)"
        exit 2
    fi
    make BUILD="$BUILD" CUDA=1 -j"$JOBS" "$BUILD/tests" "$BUILD/bench_gpu_r50" >"$OUT/build.log" 2>&1
    rc=$?
    if [ $rc -ne 0 ] || [ ! -x "$BUILD/tests" ] || [ ! -x "$BUILD/bench_gpu_r50" ]; then
        say "prepare: build failed (status $rc; $OUT/build.log):"
        tail -30 "$OUT/build.log"
        exit 2
    fi
    S=$WORK/stage
    mkdir -p "$S/bin" "$S/deps/include/doctest" "$S/deps/include/stb" "$S/deps/lib"
    cp "$BUILD/tests" "$BUILD/bench_gpu_r50" "$S/bin/"
    strip --strip-debug "$S/bin/"* || true  # host debug info only; the CUDA fatbins stay
    cp /usr/include/doctest/doctest.h "$S/deps/include/doctest/"
    cp /usr/include/stb/stb_image.h /usr/include/stb/stb_image_write.h "$S/deps/include/stb/"
    # cblas.h and the openblas_config.h it includes, resolved as the compiler resolves them.
    for h in $(echo '#include <cblas.h>' | g++ -x c++ -E -H -I/usr/include/x86_64-linux-gnu - 2>&1 >/dev/null |
               awk '/cblas\.h|openblas_config\.h/ {print $2}'); do
        cp "$(readlink -f "$h")" "$S/deps/include/$(basename "$h")"
    done
    # The runtime libraries the binaries need beyond glibc, libstdc++ and CUDA's.
    ldd "$BUILD/tests" | awk '/=>/ {print $1, $3}' | while read -r so path; do
        case "$so" in libopenblas*|libgfortran*|libquadmath*|libgomp*) cp -L "$path" "$S/deps/lib/$so" ;; esac
    done
    ln -s libopenblas.so.0 "$S/deps/lib/libopenblas.so"
    {
        echo "made $(date -u '+%Y-%m-%d %H:%M UTC') on $(uname -n) from git $(git rev-parse --short HEAD 2>/dev/null)"
        echo "nvcc: $("$NVCC" --version | tail -1)"
        echo "cuDNN headers: $(macro "${INC[cudnn]}/cudnn_version.h" CUDNN_MAJOR).$(macro "${INC[cudnn]}/cudnn_version.h" CUDNN_MINOR)"
        echo "g++: $(g++ -dumpfullversion); glibc: $(ldd --version | head -1)"
        ls -l "$S/bin" "$S/deps/lib"
    } >"$S/MANIFEST"
    mkdir -p "$CARRY"
    tar -C "$S" -czf "$CARRY/bundle.tar.gz" .
    cat "$S/MANIFEST"
    size=$(stat -c %s "$CARRY/bundle.tar.gz")
    say "wrote $CARRY/bundle.tar.gz: $((size / 1048576)) MiB"
    if [ "$size" -gt $((58 * 1048576)) ]; then
        say "WARNING: over 58 MiB; with the working tree it may exceed the device tool's 64 MiB"
    fi
    say "next: run(command=\"bash bench/gpu_check.sh\", carry=[\"$CARRY\"], timeout_s=450)"
    exit 0
fi

# ---------------------------------------------------------------------------------------------
# Binaries: prebuilt (a bundle or a folder) or a build here.
BUNDLE=""
[ -n "$PREBUILT" ] && [ -f "$PREBUILT/bundle.tar.gz" ] && BUNDLE=$PREBUILT/bundle.tar.gz
[ -z "$PREBUILT" ] && [ -f "$CARRY/bundle.tar.gz" ] && BUNDLE=$CARRY/bundle.tar.gz
DEPS=""
if [ -n "$BUNDLE" ]; then
    section "bundle $BUNDLE"
    mkdir -p "$WORK/bundle" && tar -C "$WORK/bundle" -xzf "$BUNDLE" && DEPS=$WORK/bundle/deps
    show cat "$WORK/bundle/MANIFEST"
fi
BIN=""
if [ -n "$PREBUILT" ] && [ -z "$BUNDLE" ]; then
    for d in "$PREBUILT" "$PREBUILT/bin"; do [ -x "$d/tests" ] && BIN=$d && break; done
    [ -z "$BIN" ] && { say "--prebuilt $PREBUILT: no tests binary there"; exit 2; }
elif [ -n "$BUNDLE" ] && [ "$FORCE_BUILD" = 0 ]; then
    BIN=$WORK/bundle/bin
fi

# The loader path for the engine's binaries (PyTorch keeps the caller's: it finds its own).
LDP=""
for name in cudnn cublas nccl cudart; do
    [ -n "${LIB[$name]}" ] && LDP="$LDP:$(readlink -f "$(dirname "${LIB[$name]}")")"
done
[ -n "$DEPS" ] && LDP="$LDP:$DEPS/lib"
ENGINE_LD_LIBRARY_PATH=$(echo "${LDP#:}${ORIG_LD_LIBRARY_PATH:+:$ORIG_LD_LIBRARY_PATH}" |
                         tr ':' '\n' | awk 'NF && !seen[$0]++' | paste -sd:)

# Link names for a build: the pip packages have only versioned files (libcudnn.so.9), the linker
# wants libcudnn.so; symlinks in one folder, found through LIBRARY_PATH (no Makefile change).
LINKDIR=$WORK/link
mkdir -p "$LINKDIR"
for name in cudnn cublas nccl cudart; do
    [ -n "${LIB[$name]}" ] && ln -sf "$(readlink -f "${LIB[$name]}")" "$LINKDIR/lib$name.so"
done
if [ -n "${LIB[cublas]}" ]; then
    lt=$(first_lib libcublasLt 13 "$(dirname "${LIB[cublas]}")" || true)
    [ -n "$lt" ] && ln -sf "$(readlink -f "$lt")" "$LINKDIR/libcublasLt.so"
fi
EXTRA_INC=""
for name in cudnn cublas nccl cudart; do
    i=${INC[$name]}
    [ -n "$i" ] && [ "$i" != "$CUDA_HOME/include" ] && [ "$i" != /usr/include ] &&
        case " $EXTRA_INC " in *" -I$i "*) ;; *) EXTRA_INC="$EXTRA_INC -I$i" ;; esac
done
if ! have_system_deps && [ -n "$DEPS" ]; then
    EXTRA_INC="$EXTRA_INC -I$DEPS/include"
    ln -sf "$DEPS/lib/libopenblas.so.0" "$LINKDIR/libopenblas.so"
fi
MAKE_CMD=(make BUILD="$BUILD" CUDA=1 NVCC="$NVCC" CUDA_HOME="$CUDA_HOME" -j"$JOBS"
          EXTRA_CXXFLAGS="$EXTRA_INC" EXTRA_NVCCFLAGS="$EXTRA_INC" "$BUILD/tests" "$BUILD/bench_gpu_r50")

if [ "$ACTION" = dry ]; then
    section "plan (dry run: nothing is built or run)"
    if [ -n "$BIN" ]; then
        say "binaries: $BIN (prebuilt), loaded with LD_LIBRARY_PATH=$ENGINE_LD_LIBRARY_PATH;" \
            "a build as below if they do not load"
    fi
    say "build: LIBRARY_PATH=$LINKDIR LD_LIBRARY_PATH=$ENGINE_LD_LIBRARY_PATH $(printf '%q ' "${MAKE_CMD[@]}")"
    have_system_deps && say "dependencies: the system's doctest, stb, OpenBLAS" ||
        say "dependencies: ${DEPS:-MISSING (no doctest/stb/OpenBLAS here and no bundle: make one with --prepare)}"
    say "tests: $BUILD/tests -tc=\"$TEST_FILTER\" (GPU cases: $(grep -l GPU_TEST_CASE tests/*.cpp | tr '\n' ' '))"
    say "engine: $BUILD/bench_gpu_r50 --batch $BATCH --warmup $WARMUP --iters $ITERS --classes $CLASSES"
    say "torch: $PY bench/torch_gpu_r50.py --device cuda --batch $BATCH --warmup $WARMUP --iters $ITERS --modes $MODES --classes $CLASSES"
    say "GPU seen by nvidia-smi: $([ "$GPU_COUNT" -gt 0 ] && echo yes || echo no); torch importable: $([ $HAVE_TORCH = 1 ] && echo yes || echo no)"
    exit 0
fi

# A prebuilt binary that cannot load here (a missing or too new system library) means: build.
if [ -n "$BIN" ]; then
    section "prebuilt binaries: $BIN"
    missing=$(LD_LIBRARY_PATH=$ENGINE_LD_LIBRARY_PATH ldd "$BIN/tests" "$BIN/bench_gpu_r50" 2>&1 |
              grep -E 'not found|version .* not found' || true)
    if [ -n "$missing" ] || ! LD_LIBRARY_PATH=$ENGINE_LD_LIBRARY_PATH timeout 30 "$BIN/tests" -ltc >/dev/null 2>&1; then
        say "the prebuilt binaries do not load here; building instead:"
        say "$missing"
        BIN=""
    else
        LD_LIBRARY_PATH=$ENGINE_LD_LIBRARY_PATH ldd "$BIN/bench_gpu_r50" | grep -E 'cud|cublas|nccl|openblas' |
            tee -a "$ENV_LOG"
    fi
fi
# A build that cannot run or fails leaves BIN empty and SETUP_FAILED=1: on a GPU the PyTorch
# timings and the summary still run (the device time is spent anyway); the exit status is 2.
SETUP_FAILED=0
build_here() {
    local b rc name
    b=$(budget 240 180)
    section "build: ${MAKE_CMD[*]} (timeout $b s)"
    if [ -z "$NVCC" ] || [ -z "$CXX_FOUND" ] || [ -z "$MAKE_FOUND" ]; then
        say "cannot build here: nvcc, g++ or make missing (bring prebuilt binaries: --prepare)"
        return 1
    fi
    if ! have_system_deps; then
        if [ -z "$DEPS" ]; then
            say "cannot build here: doctest, stb or OpenBLAS missing and no bundle" \
                "(make one on the CPU machine: bash bench/gpu_check.sh --prepare; carry build-gpu-carry)"
            return 1
        fi
        # The Makefile's dependency stamp would run tools/install_deps.sh (apt-get, no network).
        mkdir -p "$BUILD" && touch "$BUILD/.deps-ok"
    fi
    for name in cudnn cublas nccl; do
        [ -n "${INC[$name]}" ] && [ -n "${LIB[$name]}" ] || say "WARNING: $name headers or library not found"
    done
    LIBRARY_PATH=$LINKDIR${LIBRARY_PATH:+:$LIBRARY_PATH} LD_LIBRARY_PATH=$ENGINE_LD_LIBRARY_PATH \
        timeout "$b" "${MAKE_CMD[@]}" >"$OUT/build.log" 2>&1
    rc=$?
    grep -E 'error:|Error ' "$OUT/build.log" | head -20
    if [ $rc -ne 0 ] || [ ! -x "$BUILD/tests" ] || [ ! -x "$BUILD/bench_gpu_r50" ]; then
        say "build failed (status $rc$([ $rc = 124 ] && echo ', timed out'); $OUT/build.log):"
        tail -30 "$OUT/build.log"
        return 1
    fi
    say "build done in $((SECONDS - T0)) s since start"
    BIN=$BUILD
}
if [ -z "$BIN" ] && ! build_here; then
    SETUP_FAILED=1
    BIN=""
    # Without a GPU there is nothing left worth doing.
    [ "$GPU_COUNT" -eq 0 ] && exit 2
    say "SETUP FAILED: no engine binaries; going on with the PyTorch timings only"
fi
export LD_LIBRARY_PATH=$ENGINE_LD_LIBRARY_PATH

# The GPU cases (GPU_TEST_CASE) are named "cuda ..." or "... CUDA ..."; --no-skip lists them
# even where they would be skipped. A GPU case named otherwise would be missed: warn about it.
list_gpu_cases() { [ -n "$BIN" ] && timeout 60 "$BIN/tests" -ltc --no-skip -tc="$TEST_FILTER"; }
count_listed() { sed -n 's/.*passing the current filters: \([0-9]*\).*/\1/p' "$1" | tail -1; }
sed -n 's/^GPU_TEST_CASE("\([^"]*\)").*/\1/p' tests/*.cpp | grep -viE 'cuda' |
    sed 's/^/WARNING: a GPU test case outside the filter: /' | tee -a "$ENV_LOG"

# ---------------------------------------------------------------------------------------------
# No GPU: the CPU-checkable remainder, then exit 3.
if [ "$GPU_COUNT" -eq 0 ]; then
    section "no GPU seen: CPU-side checks only"
    list_gpu_cases >"$OUT/tests.log" 2>&1
    say "GPU test cases: $(count_listed "$OUT/tests.log") match $TEST_FILTER (listed in $OUT/tests.log)"
    timeout 120 "$BIN/tests" -tc="$TEST_FILTER" >>"$OUT/tests.log" 2>&1
    say "$(grep -E '^tests: ' "$OUT/tests.log" | tail -1) (skipped: the GPU cases without a GPU)"
    grep -m1 '^skipped cases' "$OUT/tests.log" | tee -a "$ENV_LOG"
    timeout 60 "$BIN/bench_gpu_r50" --batch "$BATCH" >"$OUT/engine.log" 2>&1
    rc=$?
    say "bench_gpu_r50: status $rc (3 = no GPU): $(head -1 "$OUT/engine.log")"
    if "$PY" -c 'import sys; compile(open(sys.argv[1]).read(), sys.argv[1], "exec")' \
        bench/torch_gpu_r50.py 2>>"$ENV_LOG"; then
        say "torch_gpu_r50.py: compiles"
    else
        say "torch_gpu_r50.py: SYNTAX ERROR"
    fi
    if [ $HAVE_TORCH = 1 ]; then
        LD_LIBRARY_PATH=$ORIG_LD_LIBRARY_PATH timeout 120 "$PY" bench/torch_gpu_r50.py --device cuda \
            >"$OUT/torch.log" 2>&1
        say "torch_gpu_r50.py --device cuda: status $? (3 = no GPU): $(tail -1 "$OUT/torch.log")"
    fi
    say
    say "gpu_check: no usable GPU on this machine (nvidia-smi lists none); parity tests and" \
        "timings need one. Exit 3."
    exit 3
fi

# ---------------------------------------------------------------------------------------------
# GPU parity tests.
STATUS=0
TEST_LINE=""
b=$(budget 90 150)
if [ $ALL_TESTS = 1 ]; then TARGS=(); b=$(budget 200 150); else TARGS=(-tc="$TEST_FILTER"); fi
if [ $SETUP_FAILED = 1 ]; then
    section "parity tests: not run (no engine binaries)"
    STATUS=2
else
section "parity tests: $BIN/tests ${TARGS[*]} (timeout $b s)"
list_gpu_cases >"$OUT/tests.log" 2>&1
N_GPU_CASES=$(count_listed "$OUT/tests.log")
say "GPU test cases: ${N_GPU_CASES:-?} match $TEST_FILTER"
timeout "$b" "$BIN/tests" "${TARGS[@]}" >>"$OUT/tests.log" 2>&1
rc=$?
TEST_LINE=$(grep -E '^tests: ' "$OUT/tests.log" | tail -1)
grep -E 'MESSAGE|CUDA vs CPU|ERROR|FAILED|^\[doctest\] (test cases|assertions|Status)' "$OUT/tests.log" |
    head -60
say "${TEST_LINE:-no summary line (the run did not finish)}; status $rc$([ $rc = 124 ] && echo ', TIMED OUT')"
skipped=$(echo "$TEST_LINE" | sed -n 's/.* \([0-9]*\) skipped.*/\1/p')
if [ $rc -ne 0 ] || [ -z "$TEST_LINE" ]; then
    STATUS=1
    say "PARITY TESTS FAILED"
elif [ "${skipped:-0}" -gt 0 ] || [ "$(echo "$TEST_LINE" | awk '{print $2}')" -lt "${N_GPU_CASES:-0}" ]; then
    STATUS=1
    say "GPU CASES SKIPPED although nvidia-smi lists a GPU: the engine cannot use it (see $OUT/tests.log)"
    grep -A3 '^skipped cases' "$OUT/tests.log"
fi
fi  # SETUP_FAILED

# ---------------------------------------------------------------------------------------------
# Timings: the engine, then PyTorch, one after the other on the same GPU.
: >"$OUT/results.jsonl"
BENCH_STATUS=0
b=$(budget 90 80)
if [ $SETUP_FAILED = 1 ]; then
    section "engine: bench_gpu_r50 not run (no engine binaries)"
    BENCH_STATUS=4
else
section "engine: bench_gpu_r50 --batch $BATCH --warmup $WARMUP --iters $ITERS --classes $CLASSES (timeout $b s)"
timeout "$b" "$BIN/bench_gpu_r50" --batch "$BATCH" --warmup "$WARMUP" --iters "$ITERS" \
    --classes "$CLASSES" --json "$OUT/results.jsonl" >"$OUT/engine.log" 2>&1
rc=$?
grep -v '^{' "$OUT/engine.log" | tail -12
[ $rc -ne 0 ] && { say "bench_gpu_r50 failed: status $rc$([ $rc = 124 ] && echo ', timed out')"; BENCH_STATUS=4; }
fi

b=$(budget 120 8)
section "torch: torch_gpu_r50.py --modes $MODES (timeout $b s)"
if [ $HAVE_TORCH = 1 ]; then
    LD_LIBRARY_PATH=$ORIG_LD_LIBRARY_PATH PYTHONUNBUFFERED=1 timeout "$b" "$PY" bench/torch_gpu_r50.py \
        --device cuda --batch "$BATCH" --warmup "$WARMUP" --iters "$ITERS" --classes "$CLASSES" \
        --modes "$MODES" --json "$OUT/results.jsonl" >"$OUT/torch.log" 2>&1
    rc=$?
    grep -v '^{' "$OUT/torch.log" | tail -8
    [ $rc -ne 0 ] && { say "torch_gpu_r50.py failed: status $rc$([ $rc = 124 ] && echo ', timed out')"; BENCH_STATUS=4; }
else
    say "no PyTorch in $PY: no reference timings"
    BENCH_STATUS=4
fi

# ---------------------------------------------------------------------------------------------
# Summary, the ratio table last.
[ $STATUS = 0 ] && STATUS=$BENCH_STATUS
section "summary (exit $STATUS; logs in $OUT; total $((SECONDS - T0)) s)"
say "parity: ${TEST_LINE:-no summary}"
"$PY" - "$OUT/results.jsonl" <<'PYEOF' 2>&1 | tee "$OUT/summary.txt"
import json, sys
rows = []
for l in open(sys.argv[1]):
    try:
        rows.append(json.loads(l))
    except ValueError:  # a line cut short by a timeout, or not a record
        pass
eng = next((r for r in rows if r["impl"] == "engine"), None)
if not rows:
    print("no timings recorded")
    sys.exit(0)
r0 = rows[0]
print("r50 training step, %dx%d, batch %d, %s, on %s" % (
    r0["size"], r0["size"], r0["batch"],
    "ArcFace over %d classes" % r0["classes"] if r0["classes"] else "no loss",
    r0.get("device", "?")))
if eng:  # before the table, so that the table is the last thing printed
    print("engine peak memory: %.0f MiB by the byte counter, %.0f MiB in use by cudaMemGetInfo "
          "(%.0f MiB before the model)" % (eng["peak_counter_bytes"] / 2**20,
                                            eng["mem_used_bytes"] / 2**20,
                                            eng["mem_before_model_bytes"] / 2**20))
print("ratio = engine images/s / this row's images/s (> 1: the engine is faster)")
print("| impl | mode | ms/step | images/s | fwd ms | bwd ms | peak MiB | ratio |")
print("|---|---|---:|---:|---:|---:|---:|---:|")
for r in rows:
    peak = r.get("peak_counter_bytes", r.get("peak_allocated_bytes"))
    ratio = "%.2f" % (eng["images_per_s"] / r["images_per_s"]) if eng else "-"
    print("| %s | %s | %.2f | %.1f | %.2f | %.2f | %s | %s |" % (
        r["impl"], r["mode"] + ("" if r.get("finite", True) else " NOT FINITE"), r["ms_step"],
        r["images_per_s"], r["fwd_ms"], r["bwd_ms"],
        "%.0f" % (peak / 2**20) if peak else "-", ratio))
PYEOF
exit $STATUS
