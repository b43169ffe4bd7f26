#!/usr/bin/env bash
# Installs what the README's test command (scripts/test.sh) needs and is missing, so that on a
# fresh Debian machine that command is the whole set-up: Mesa's software Vulkan and GL drivers
# (lavapipe, llvmpipe through EGL) that the GPU tests run on without a GPU, python3 and headless
# Chromium for the web page's test, and, where there is a Chromium, the wasm toolchain (the
# wasm32-unknown-unknown target, wasm-bindgen-cli at the version of the wasm-bindgen crate in
# Cargo.lock). System packages are installed with apt-get when running as root; otherwise it
# prints the exact command to run. Reads no standard input. Called by scripts/test.sh and
# .ci/run; when everything is there it installs nothing.
set -euo pipefail
cd "$(dirname "$0")/.."
export DEBIAN_FRONTEND=noninteractive

say() { echo "setup: $*" >&2; }

# Installs Debian packages as root, or says how to.
install_packages() {
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing $*"
    apt-get update -q </dev/null
    apt-get install -y -q --no-install-recommends "$@" </dev/null
    return
  fi
  if command -v apt-get >/dev/null 2>&1; then
    say "missing: $*; install them with: sudo apt-get install $*"
  else
    say "missing: $* (Debian package names; no apt-get here: install your system's Mesa Vulkan and EGL drivers, python3 and Chromium)"
  fi
  return 1
}

packages=(mesa-vulkan-drivers libvulkan1 libegl1 libegl-mesa0 libgl1-mesa-dri python3)
missing=()
if command -v dpkg >/dev/null 2>&1; then
  for p in "${packages[@]}"; do
    dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
  done
elif ! command -v python3 >/dev/null 2>&1; then
  missing+=(python3)
fi
if [ ${#missing[@]} -gt 0 ]; then
  install_packages "${missing[@]}" || say "the GPU tests need a Vulkan driver and EGL; they fail without them"
fi

chromium_here() {
  command -v chromium-headless-shell >/dev/null 2>&1 || command -v chromium >/dev/null 2>&1 ||
    command -v chromium-browser >/dev/null 2>&1 || [ -n "${CHROMIUM:-}" ]
}
if ! chromium_here; then
  install_packages chromium-headless-shell ||
    say "without Chromium the web test is skipped"
fi

if ! command -v cargo >/dev/null 2>&1; then
  say "no cargo: install Rust 1.89 or newer (https://rustup.rs: curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh)"
  exit 1
fi

# The web test's toolchain, only where the web test can run.
if chromium_here; then
  if command -v rustup >/dev/null 2>&1; then
    if ! rustup target list --installed | grep -x wasm32-unknown-unknown >/dev/null; then
      say "adding the wasm32-unknown-unknown target"
      rustup target add wasm32-unknown-unknown </dev/null
    fi
  elif [ ! -d "$(rustc --print target-libdir --target wasm32-unknown-unknown 2>/dev/null)" ]; then
    say "the web test needs the wasm32-unknown-unknown target of your Rust toolchain (with rustup: rustup target add wasm32-unknown-unknown)"
  fi
  bindgen=$(awk '/^name = "wasm-bindgen"$/ { getline; gsub(/[^0-9.]/, ""); print; exit }' Cargo.lock)
  if [ "$(wasm-bindgen --version 2>/dev/null | awk '{ print $2 }')" != "$bindgen" ]; then
    say "installing wasm-bindgen-cli $bindgen"
    cargo install wasm-bindgen-cli --version "$bindgen" </dev/null
  fi
fi
