#!/usr/bin/env bash
# A test PACS on this machine: Debian's Orthanc with its DICOMweb plugin on 127.0.0.1, loaded with a
# multi-slice MR series made from the bundled LGG sample (synthetic identifiers) and a few of
# pydicom's example files, then the app pointed at it. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
if [ ! -x /usr/sbin/Orthanc ] || [ ! -f /usr/share/orthanc/plugins/libOrthancDicomWeb.so ]; then
  sudo=""
  [ "$(id -u)" = 0 ] || sudo="sudo"
  $sudo apt-get update -q
  $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -q orthanc orthanc-dicomweb
fi
exec .venv/bin/python -m scripts.pacs_demo "$@"
