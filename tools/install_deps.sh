#!/usr/bin/env bash
# Installs the system packages the build needs (doctest, stb, OpenBLAS) when they are missing.
# As root it runs apt-get; otherwise it prints the command to run and fails.
set -euo pipefail
need=()
[ -f /usr/include/doctest/doctest.h ] || need+=(doctest-dev)
[ -f /usr/include/stb/stb_image.h ] || need+=(libstb-dev)
{ [ -f /usr/include/x86_64-linux-gnu/cblas.h ] || [ -f /usr/include/cblas.h ]; } &&
    { ls /usr/lib/x86_64-linux-gnu/libopenblas.so* >/dev/null 2>&1 || ls /usr/lib/libopenblas.so* >/dev/null 2>&1; } ||
    need+=(libopenblas-dev)
[ ${#need[@]} -eq 0 ] && exit 0
echo "install_deps: missing packages: ${need[*]}"
if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${need[@]}"
else
    echo "install_deps: run as root:  apt-get install -y ${need[*]}" >&2
    exit 1
fi
