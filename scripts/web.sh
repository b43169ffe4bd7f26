#!/usr/bin/env bash
# Builds the web page into web/dist/ (git-ignored): the web crate (web/, the gpu-ae library
# compiled to wasm32-unknown-unknown), its JavaScript bindings (wasm-bindgen --target web), the
# page (web/static/), MNIST (assets/mnist, as shipped) and the shipped MNIST checkpoints.
# Needs `rustup target add wasm32-unknown-unknown` and wasm-bindgen-cli at the version of the
# wasm-bindgen crate in Cargo.lock (`cargo install wasm-bindgen-cli --version X`).
# Serve it with any static server, e.g. `python3 -m http.server -d web/dist 8000`.
set -euo pipefail
cd "$(dirname "$0")/.."
want=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
have=$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }') || true
if [ "$have" != "$want" ]; then
  echo "error: wasm-bindgen-cli $want is needed (found: ${have:-none}); install it with" >&2
  echo "  cargo install wasm-bindgen-cli --version $want" >&2
  exit 1
fi
cargo build --release -p gpu-ae-web --target wasm32-unknown-unknown
dist=web/dist
rm -rf "$dist"
mkdir -p "$dist/pkg" "$dist/mnist" "$dist/models"
wasm-bindgen --target web --no-typescript --out-dir "$dist/pkg" \
  target/wasm32-unknown-unknown/release/gpu_ae_web.wasm
cp web/static/index.html web/static/app.js web/static/decode-worker.js "$dist/"
cp assets/mnist/*-ubyte.gz "$dist/mnist/"
cp assets/models/conv-vae-L2.safetensors assets/models/conv-vae-L16.safetensors "$dist/models/"
echo "web/dist: wasm $(du -k "$dist/pkg/gpu_ae_web_bg.wasm" | cut -f1) KiB," \
  "MNIST $(du -sk "$dist/mnist" | cut -f1) KiB, models $(du -sk "$dist/models" | cut -f1) KiB"
