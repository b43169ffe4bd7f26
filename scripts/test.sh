#!/usr/bin/env bash
# The test command of the README: the whole suite on Vulkan (lavapipe when there is no GPU),
# then the GPU suites again on GL (llvmpipe through EGL), so code that works on one backend
# only is caught. Needs a Vulkan driver and Mesa's EGL (`apt-get install mesa-vulkan-drivers
# libegl1 libegl-mesa0`).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${XDG_RUNTIME_DIR:-}" ]; then
  XDG_RUNTIME_DIR=$(mktemp -d)
  export XDG_RUNTIME_DIR
fi
echo "== Vulkan =="
WGPU_BACKEND=vulkan cargo run --release --quiet -- devices
WGPU_BACKEND=vulkan cargo test --release
echo "== GL =="
WGPU_BACKEND=gl cargo run --release --quiet -- devices
WGPU_BACKEND=gl cargo test --release --test kernels --test train --test cli
