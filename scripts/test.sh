#!/usr/bin/env bash
# Sets up (scripts/setup.sh) and runs every test with ctest.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
build=${BUILD_DIR:-build}
cd "$build"
ctest --output-on-failure --timeout 300 -j "$(nproc 2>/dev/null || echo 2)"
