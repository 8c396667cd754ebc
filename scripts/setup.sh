#!/usr/bin/env bash
# Installs what the gateway, its demo and its tests need, only where it is missing:
# npm packages (from package-lock.json) and Debian packages (Orthanc with DICOMweb, dcmtk, dicom3tools,
# chromium for the browser tests,
# gdcm tools, pydicom for the shared leak scanner, PostgreSQL for the shared-store tests), and the
# prebuilt OHIF viewer (npm pack @ohif/app, unpacked under .viewer/, never committed).
set -euo pipefail
cd "$(dirname "$0")/.."

DEBS=(orthanc orthanc-dicomweb dcmtk dicom3tools libgdcm-tools python3-pydicom chromium postgresql)
missing=()
for pkg in "${DEBS[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}" >&2
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

stamp=node_modules/.deid-gateway-lock
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  echo "setup: installing npm packages" >&2
  # better-sqlite3 compiles from source here: node-gyp on every core (JOBS), not one, and without first
  # trying to download a prebuilt binary from GitHub (unreachable here: ~8 s to fail).
  JOBS=max npm_config_build_from_source=true npm ci --no-audit --no-fund --loglevel=error
  cp package-lock.json "$stamp"
fi

# OHIF's prebuilt dist/ (ECOSYSTEM.md: do not npm install it; it pulls webpack loaders).
OHIF_VERSION=3.13.2
viewer=.viewer
if [ ! -f "$viewer/.version" ] || [ "$(cat "$viewer/.version")" != "$OHIF_VERSION" ]; then
  echo "setup: fetching @ohif/app@$OHIF_VERSION" >&2
  rm -rf "$viewer" && mkdir -p "$viewer"
  tarball=$(cd "$viewer" && npm pack --silent "@ohif/app@$OHIF_VERSION")
  tar -xzf "$viewer/$tarball" -C "$viewer" package/dist
  mv "$viewer/package/dist" "$viewer/dist" && rm -rf "$viewer/package" "$viewer/$tarball"
  echo "$OHIF_VERSION" > "$viewer/.version"
fi

# The compiled build that bin/deid-gateway.js prefers while it is newer than src/ (less memory, faster start).
if [ ! -f dist/.build-stamp ] || [ -n "$(find src -newer dist/.build-stamp -print -quit)" ]; then
  npm run --silent build >/dev/null
fi
