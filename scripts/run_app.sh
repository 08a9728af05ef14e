#!/usr/bin/env bash
# Set everything up, then serve the app on the models in models/ at http://localhost:8501
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python -m streamlit run app.py "$@"
