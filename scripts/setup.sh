#!/usr/bin/env bash
# Set up MRI Insight on a fresh Debian machine with Python 3.11: a virtual environment in .venv
# with the pinned requirements, and (with --dev) the test tools plus Debian's chromium, nginx and
# chromium-driver for the browser tests. Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

dev=0
[ "${1:-}" = "--dev" ] && dev=1

python=""
for candidate in python3.11 python3; do
  if command -v "$candidate" >/dev/null 2>&1; then python="$candidate"; break; fi
done
[ -n "$python" ] || { echo "Python 3.11 is needed (apt-get install python3 python3-venv)" >&2; exit 1; }

if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
  .venv/bin/python -m pip install --quiet --upgrade pip
fi

req=requirements.txt
[ "$dev" = 1 ] && req=requirements-dev.txt
# Reinstall only when the requirements changed since the last successful install.
stamp=".venv/.installed-$(basename "$req")-$(sha1sum requirements*.txt | sha1sum | cut -c1-12)"
if [ ! -f "$stamp" ]; then
  .venv/bin/python -m pip install --quiet -r "$req"
  touch "$stamp"
fi

# Debian packages the tests drive: chromium (browser tests), nginx (deploy/nginx.conf in front of the app).
missing=""
[ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ] || missing="$missing chromium chromium-driver"
[ -x /usr/sbin/nginx ] || missing="$missing nginx"
if [ "$dev" = 1 ] && [ -n "$missing" ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -q
  # shellcheck disable=SC2086
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q $missing
fi

# The database tests start their own PostgreSQL (tests/pg_server.py): only the binaries are needed,
# not Debian's default cluster, which would start a server on port 5432.
if [ "$dev" = 1 ] && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo mkdir -p /etc/postgresql-common
  [ -f /etc/postgresql-common/createcluster.conf ] ||
    echo "create_main_cluster = false" | $sudo tee /etc/postgresql-common/createcluster.conf >/dev/null
  $sudo apt-get update -q
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q -o Dpkg::Options::=--force-confold postgresql
fi

# The PACS tests (tests/pacs_server.py) and scripts/run_pacs_demo.sh start Debian's Orthanc with its
# DICOMweb plugin on 127.0.0.1 themselves; only the packages are needed.
if [ "$dev" = 1 ] && { [ ! -x /usr/sbin/Orthanc ] || [ ! -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so ]; }; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -q
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q orthanc orthanc-dicomweb
fi
