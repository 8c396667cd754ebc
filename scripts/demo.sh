#!/usr/bin/env bash
# `npm run demo`: install what is missing, then start Orthanc (loopback, temp store) with the shared
# samples, the gateway in front of it, and print a token per role.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec node bin/deid-gateway.js demo
