#!/usr/bin/env bash
# The test command of the README: the whole suite on Vulkan (lavapipe when there is no GPU),
# then the GPU suites again on GL (llvmpipe through EGL), so code that works on one backend
# only is caught, then the web page's self-test in headless Chromium on WebGPU
# (scripts/web-test.sh; skipped with a message where there is no Chromium). Needs a Vulkan
# driver and Mesa's EGL (`apt-get install mesa-vulkan-drivers libegl1 libegl-mesa0`), and for
# the web part the wasm32-unknown-unknown target, wasm-bindgen-cli (see scripts/web.sh),
# python3 and chromium-headless-shell.
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
echo "== Web (headless Chromium, WebGPU on SwiftShader) =="
scripts/web-test.sh
