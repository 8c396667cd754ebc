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

# better-sqlite3 is the one package compiled here: node-gyp on every core (JOBS), without first trying to
# download a prebuilt binary from GitHub (unreachable here: ~8 s to fail). SQLite's one large C file takes
# about 2 minutes of one core, most of a clean install, so the compiled addon is kept in the user's cache,
# keyed by the package's integrity, Node's version and the platform: a clean install on the same machine
# (CI's clone, a second checkout) copies it instead. A copy that does not load is compiled again.
ADDON=node_modules/better-sqlite3/build/Release/better_sqlite3.node
addon_cache() {
  local key
  key=$(node -e 'const p = require("./package-lock.json").packages["node_modules/better-sqlite3"];
    const h = require("crypto").createHash("sha256").update([p.integrity, process.version, process.platform, process.arch].join(" "));
    console.log(`${p.version}-${h.digest("hex").slice(0, 16)}`)')
  # Without XDG_CACHE_HOME or HOME (CI keeps HOME; `env -i` does not) the addon is compiled, not cached.
  local root=${XDG_CACHE_HOME:-${HOME:+$HOME/.cache}}
  [ -z "$root" ] || echo "$root/deid-gateway/better_sqlite3-$key.node"
}
NPM_QUIET=(--no-audit --no-fund --loglevel=error)
install_npm_packages() {
  local cached
  cached=$(addon_cache)
  if [ -n "$cached" ] && [ -f "$cached" ]; then
    npm ci --ignore-scripts "${NPM_QUIET[@]}"
    # The install scripts npm ci would have run, but better-sqlite3's: the packages the lock marks.
    local scripted
    scripted=$(node -e 'const { packages } = require("./package-lock.json");
      console.log(Object.keys(packages).filter((k) => packages[k].hasInstallScript && k !== "node_modules/better-sqlite3").map((k) => k.slice(k.lastIndexOf("node_modules/") + 13)).join(" "))')
    # shellcheck disable=SC2086 # one package name per word
    [ -z "$scripted" ] || npm rebuild $scripted "${NPM_QUIET[@]}" >/dev/null
    mkdir -p "$(dirname "$ADDON")" && cp "$cached" "$ADDON"
    node -e 'new (require("better-sqlite3"))(":memory:").close()' 2>/dev/null && return
    echo "setup: the cached better-sqlite3 addon does not load; compiling it" >&2
    JOBS=max npm_config_build_from_source=true npm rebuild better-sqlite3 "${NPM_QUIET[@]}" >/dev/null
  else
    JOBS=max npm_config_build_from_source=true npm ci "${NPM_QUIET[@]}"
  fi
  # Best effort: a cache that cannot be written only means the next clean install compiles again.
  if [ -n "$cached" ]; then
    { mkdir -p "$(dirname "$cached")" && cp "$ADDON" "$cached.$$" && mv "$cached.$$" "$cached"; } 2>/dev/null ||
      echo "setup: could not keep the better-sqlite3 addon in ${cached%/*}" >&2
  fi
}

stamp=node_modules/.deid-gateway-lock
if [ ! -f "$stamp" ] || ! cmp -s package-lock.json "$stamp"; then
  echo "setup: installing npm packages" >&2
  install_npm_packages
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
