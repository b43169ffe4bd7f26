#!/usr/bin/env bash
# The web page's test in a real browser: builds web/dist (scripts/web.sh), then opens
# index.html?selftest in headless Chromium with WebGPU on SwiftShader (scripts/web_test.py):
# kernel families against the CPU reference and conv-vae steps whose loss must fall, all in
# the page. Chromium: chromium-headless-shell or chromium (Debian: `apt-get install
# chromium-headless-shell`), or the binary named by $CHROMIUM. Without one it says so and
# skips (status 0).
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
python3 scripts/web_test.py "$chromium" web/dist "${WEB_TEST_TIMEOUT_S:-900}"
