#!/usr/bin/env bash
# `npm test`. Unit files run two at a time (pure CPU work from Buffers). Integration files run two at a
# time too, but for those that assert timing, memory or back-pressure, drive a browser, or kill and
# restart processes: they run one at a time, after the others, so that nothing shares the two cores
# with them. Every group runs even when an earlier one fails; the exit status says whether all passed.
set -uo pipefail
cd "$(dirname "$0")/.."
SERIAL=(ohif-viewer upload-page query-cost streaming stream-lifetime upstream-faults http-abuse uploader-stow metrics token-attacks replicas-postgres dimse-durability dimse-ingress)
serial=()
parallel=()
for file in $(find test/integration -name '*.test.ts' | sort); do
  name=$(basename "$file" .test.ts)
  if [[ " ${SERIAL[*]} " == *" $name "* ]]; then serial+=("$file"); else parallel+=("$file"); fi
done
status=0
node --import tsx --test --test-concurrency=2 $(find test/unit -name '*.test.ts' | sort) || status=1
node --import tsx --test --test-concurrency=2 "${parallel[@]}" || status=1
node --import tsx --test --test-concurrency=1 "${serial[@]}" || status=1
exit $status
