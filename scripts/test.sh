#!/usr/bin/env bash
# `npm test`. First, side by side, the unit files and the integration files that measure no time (two
# at a time each). Then, alone and one at a time, the integration files that assert timing,
# memory or back-pressure, drive a browser, or kill and restart processes, so that nothing shares the
# two cores with them. Every group runs even when another fails; the exit status says whether all passed.
set -uo pipefail
cd "$(dirname "$0")/.."
SERIAL=(ohif-viewer upload-page upload-redaction query-cost streaming stream-lifetime upstream-faults http-abuse uploader-stow metrics token-attacks replicas-postgres dimse-durability dimse-ingress dimse-destination oidc-provider steward-page audit-export)
serial=()
parallel=()
for file in $(find test/integration -name '*.test.ts' | sort); do
  name=$(basename "$file" .test.ts)
  if [[ " ${SERIAL[*]} " == *" $name "* ]]; then serial+=("$file"); else parallel+=("$file"); fi
done
# The unit files and the first integration group side by side (none of them measures time), then the rest alone.
node --import tsx --test --test-concurrency=2 $(find test/unit -name '*.test.ts' | sort) > "${TMPDIR:-/tmp}/deid-unit-tests.$$.log" 2>&1 &
unit=$!
status=0
node --import tsx --test --test-concurrency=2 "${parallel[@]}" || status=1
wait "$unit" || status=1
cat "${TMPDIR:-/tmp}/deid-unit-tests.$$.log"
rm -f "${TMPDIR:-/tmp}/deid-unit-tests.$$.log"
node --import tsx --test --test-concurrency=1 "${serial[@]}" || status=1
exit $status
