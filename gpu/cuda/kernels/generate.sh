#!/usr/bin/env bash
# Compiles every kernels/*.cu to PTX for compute_80 (JIT-compiled by the driver for
# sm_80 and newer, Hopper included) and records the SHA-256 of every source and
# output in kernels/SHA256SUMS, which TestPTXUpToDate checks in the default build.
# Run through `go generate ./gpu/cuda/`; needs nvcc and clang-14
# (../shared/tools/install-nvcc.sh installs both).
set -euo pipefail
cd "$(dirname "$0")"
nvcc=${NVCC:-nvcc}
for src in *.cu; do
  "$nvcc" -ccbin clang-14 -ptx -arch=compute_80 -o "${src%.cu}.ptx" "$src"
done
sha256sum -- *.cu *.cuh *.ptx > SHA256SUMS
