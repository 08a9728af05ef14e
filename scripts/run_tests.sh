#!/usr/bin/env bash
# Set everything up (test tools and Debian's chromium included), then run the whole test suite:
# unit tests, AppTest for every page, browser and load tests in real Chromium.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
export TF_CPP_MIN_LOG_LEVEL=2
exec .venv/bin/python -m pytest -q -p no:cacheprovider "$@"
