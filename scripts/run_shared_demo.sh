#!/usr/bin/env bash
# Try the shared-server sign-in on one machine: a local OIDC test provider (oidc-provider-mock)
# with two demo users, clinician and admin, then the app against it behind a "Sign in" button.
# Prints the app's URL once it answers; Ctrl-C stops both. Set-up as scripts/run_app.sh does.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The test provider is a test tool (requirements-dev.txt holds its pin): installed here only if missing.
.venv/bin/python -c "import oidc_provider_mock" 2>/dev/null \
  || .venv/bin/python -m pip install --quiet "$(grep -i '^oidc-provider-mock==' requirements-dev.txt)"
exec .venv/bin/python -m scripts.shared_demo "$@"
