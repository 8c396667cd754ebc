#!/usr/bin/env bash
# `npm test`, in three groups; every group runs even when another fails, and the exit status says whether
# all passed.
#   1. The unit files and the integration files that measure no time, side by side (two at a time each).
#      This group keeps both cores busy.
#   2. Two at a time, the integration files that drive a browser or kill and restart processes (they wait
#      on what they see, with generous deadlines, and measure no time), and beside them, one at a time, the
#      three CPU-bound unit files (OCR, the Part 10 reader, the rewriter fuzzer): measured, the browser group
#      leaves about one core idle, and takes as long with them beside it (167 s) as without (169 s).
#   3. Alone and one at a time, the integration files that assert timing, memory, back-pressure or token
#      cooldowns, so that nothing shares the two cores with them.
set -uo pipefail
cd "$(dirname "$0")/.."
BESIDE_PAIRED=(test/unit/pixel/text-detector.test.ts test/unit/dicom/part10-reader.test.ts test/unit/fuzz/rewriter-fuzz.test.ts)
PAIRED=(ohif-viewer replicas-postgres upload-redaction upload-page steward-page dimse-durability dimse-ingress dimse-destination audit-export metrics)
ALONE=(query-cost streaming stream-lifetime upstream-faults http-abuse uploader-stow token-attacks oidc-provider)
# The longest files start first (measured, 2026-12: 25–60 s each), so that no long file starts last and
# runs alone at the end of its group; the rest follow in name order.
FIRST=(test/unit/deid/engine-samples test/unit/cli/batch test/unit/deid/engine-cli test/integration/canary-patient test/integration/projects
  test/integration/dimse-research-retrieve test/integration/query-oracles test/integration/ocr-redaction test/integration/pixel-safety
  test/integration/uploader-ocr test/integration/ohif-viewer test/integration/replicas-postgres test/integration/upload-redaction)
# Files under $1, the longest first.
ordered() {
  local first=() rest=() file
  for file in "${FIRST[@]}"; do [[ $file == $1/* && -f $file.test.ts ]] && first+=("$file.test.ts"); done
  for file in $(find "$1" -name '*.test.ts' | sort); do [[ " ${first[*]} ${BESIDE_PAIRED[*]} " == *" $file "* ]] || rest+=("$file"); done
  echo "${first[@]}" "${rest[@]}"
}
paired=()
alone=()
parallel=()
for file in $(ordered test/integration); do
  name=$(basename "$file" .test.ts)
  if [[ " ${PAIRED[*]} " == *" $name "* ]]; then paired+=("$file")
  elif [[ " ${ALONE[*]} " == *" $name "* ]]; then alone+=("$file")
  else parallel+=("$file"); fi
done
log="${TMPDIR:-/tmp}/deid-unit-tests.$$.log"
node --import tsx --test --test-concurrency=2 $(ordered test/unit) > "$log" 2>&1 &
unit=$!
status=0
node --import tsx --test --test-concurrency=2 "${parallel[@]}" || status=1
wait "$unit" || status=1
cat "$log"
rm -f "$log"
node --import tsx --test --test-concurrency=1 "${BESIDE_PAIRED[@]}" > "$log" 2>&1 &
beside=$!
node --import tsx --test --test-concurrency=2 "${paired[@]}" || status=1
wait "$beside" || status=1
cat "$log"
rm -f "$log"
node --import tsx --test --test-concurrency=1 "${alone[@]}" || status=1
exit $status
