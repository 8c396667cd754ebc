#!/usr/bin/env bash
# `npm run demo`: install what is missing, then start Orthanc (loopback callers, no DICOM port, temp
# store) with the shared samples, the gateway in front of it with two projects over them, and print a
# token per role and per project. Keys and secret live in <dataDir>/demo-keys: set
# DEID_GATEWAY__DATADIR to run a second, separate demo.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node bin/deid-gateway.js demo
