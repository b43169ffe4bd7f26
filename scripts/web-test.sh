#!/usr/bin/env bash
# The web page's test in a real browser: builds web/dist (scripts/web.sh) and the native
# gpu-ae, then drives headless Chromium with WebGPU on SwiftShader (scripts/web_test.py): the
# self-test (index.html?selftest: kernel families against the CPU reference and conv-vae steps
# whose loss must fall, all in the page), then the page as a person uses it: a slice of
# ../shared/data/emoji-noto picked through #folder, trained, paused, evaluated, downloaded,
# and `gpu-ae eval` run natively on the download with the same folder, whose figure must be
# the page's. SCREENSHOT_DIR=DIR keeps screenshots of the page. Chromium:
# chromium-headless-shell or chromium (Debian: `apt-get install chromium-headless-shell`), or
# the binary named by $CHROMIUM. Without one it says so and skips (status 0).
set -euo pipefail
cd "$(dirname "$0")/.."
chromium=${CHROMIUM:-}
if [ -z "$chromium" ]; then
  for c in chromium-headless-shell chromium chromium-browser; do
    if command -v "$c" >/dev/null 2>&1; then
      chromium=$(command -v "$c")
      break
    fi
  done
fi
if [ -z "$chromium" ]; then
  echo "web test SKIPPED: no Chromium found (apt-get install chromium-headless-shell, or set CHROMIUM)"
  exit 0
fi
scripts/web.sh
cargo build --release --quiet
GPU_AE=${GPU_AE:-target/release/gpu-ae} python3 scripts/web_test.py "$chromium" web/dist "${WEB_TEST_TIMEOUT_S:-900}"
