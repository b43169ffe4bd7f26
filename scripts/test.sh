#!/usr/bin/env bash
# The test command of the README: the whole suite on Vulkan (lavapipe when there is no GPU),
# then the GPU suites again on GL (llvmpipe through EGL), so code that works on one backend
# only is caught, then the web page's self-test in headless Chromium on WebGPU
# and the page trained on a picked folder of emoji (scripts/web-test.sh; skipped with a
# message where there is no Chromium). First
# scripts/setup.sh installs what is missing (Mesa's Vulkan driver and EGL, python3, Chromium,
# the wasm toolchain), or says what to install where it cannot (not root, no apt-get).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
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
echo "== Web (headless Chromium, WebGPU on SwiftShader) =="
scripts/web-test.sh
