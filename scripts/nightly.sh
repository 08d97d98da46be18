#!/usr/bin/env bash
# Nightly regression check: run a scenario, compare it with a baseline run, write the report.
#
#   scripts/nightly.sh [SCENARIO]          (default scenarios/disk.yaml; run as root, like main.sh)
#
# Exit status: 0 all well; 1 a significant regression beyond threshold (see nightly/compare.json,
# nightly/junit.xml and the report); 2 nightly could not compare (no run directory, compare error
# such as runs of different accelerators or hosts); otherwise the status of `vbench run` (e.g. 11
# when some repetitions failed), after the comparison and the report were still made.
#
# Environment:
#   NIGHTLY_BASELINE      baseline run directory (default: the previous complete run of the same
#                         scenario under the results root)
#   NIGHTLY_RESULTS       results root (default: results)
#   NIGHTLY_REPORTS       reports root (default: reports)
#   NIGHTLY_OUT           where compare.json, junit.xml, run.log and summary.txt go (default: nightly)
#   NIGHTLY_COMPARE_ARGS  extra arguments for `vbench compare`, e.g. "--threshold iops=0.05"
#   NIGHTLY_PREPARE       1 (default): `vbench lab up` and `vbench image build` first (idempotent)
#   VBENCH                the vbench command (default: .venv/bin/vbench, else vbench on PATH)
set -euo pipefail
cd "$(dirname "$0")/.."

SCENARIO="${1:-${NIGHTLY_SCENARIO:-scenarios/disk.yaml}}"
RESULTS="${NIGHTLY_RESULTS:-results}"
REPORTS="${NIGHTLY_REPORTS:-reports}"
OUT="${NIGHTLY_OUT:-nightly}"
BASELINE="${NIGHTLY_BASELINE:-}"
read -r -a COMPARE_ARGS <<< "${NIGHTLY_COMPARE_ARGS:-}"
if [ -n "${VBENCH:-}" ]; then
  read -r -a VB <<< "$VBENCH"
elif [ -x .venv/bin/vbench ]; then
  VB=(.venv/bin/vbench)
else
  VB=(vbench)
fi
PY="${NIGHTLY_PYTHON:-python3}"

say() { echo "nightly: $*"; }
mkdir -p "$OUT" "$REPORTS" "$RESULTS"
rm -f "$OUT/compare.json" "$OUT/junit.xml" "$OUT/summary.txt"

if [ "${NIGHTLY_PREPARE:-1}" = "1" ]; then
  "${VB[@]}" lab up
  "${VB[@]}" image build
fi

# 1. Run. `vbench run` prints the run directory as its last line, "run: <path>"; a non-zero status
#    with a run directory (failed repetitions) still gets compared and reported.
say "running $SCENARIO (results under $RESULTS)"
run_status=0
"${VB[@]}" run "$SCENARIO" --results "$RESULTS" --reports "$REPORTS" 2>&1 | tee "$OUT/run.log" \
  || run_status=$?
NEW="$(sed -n 's/^run: //p' "$OUT/run.log" | tail -n 1)"
if [ -z "$NEW" ] || [ ! -f "$NEW/run.json" ]; then
  say "vbench run (exit $run_status) reported no run directory; see $OUT/run.log" >&2
  exit 2
fi
say "new run: $NEW (vbench run exit status $run_status)"

# 2. Baseline: NIGHTLY_BASELINE, else the newest complete run of the same scenario started before
#    this one (stdlib-only Python: reads run.json files, no vbench import needed).
if [ -z "$BASELINE" ]; then
  BASELINE="$("$PY" - "$RESULTS" "$NEW" <<'EOF'
import json, sys
from pathlib import Path

root, new = Path(sys.argv[1]), Path(sys.argv[2]).resolve()

def meta(d):
    try:
        return json.loads((d / "run.json").read_text())
    except (OSError, ValueError):
        return None

m_new = meta(new) or {}
name = (m_new.get("scenario") or {}).get("name")
started = str(m_new.get("started") or "")
best = None
for d in sorted(p for p in root.iterdir() if p.is_dir()):
    m = meta(d)
    if not m or d.resolve() == new or m.get("status") != "complete":
        continue
    if (m.get("scenario") or {}).get("name") != name:
        continue
    key = (str(m.get("started") or ""), d.name)
    if started and key[0] >= started:
        continue
    if best is None or key > best[0]:
        best = (key, d)
print(best[1] if best else "")
EOF
)"
fi

{
  echo "scenario: $SCENARIO"
  echo "new: $NEW"
  echo "baseline: ${BASELINE:-none}"
  echo "run_status: $run_status"
} > "$OUT/summary.txt"

# 3. Compare (exit 1 = regression) and 4. report, side by side with the baseline, with history.
compare_status=0
if [ -n "$BASELINE" ]; then
  if [ ! -f "$BASELINE/run.json" ]; then
    say "baseline $BASELINE is not a run directory" >&2
    exit 2
  fi
  say "comparing $BASELINE -> $NEW"
  "${VB[@]}" compare "$BASELINE" "$NEW" --json "$OUT/compare.json" --junit "$OUT/junit.xml" \
    "${COMPARE_ARGS[@]}" || compare_status=$?
  report_runs=("$BASELINE" "$NEW")
else
  say "no baseline yet (first run of this scenario): nothing to compare"
  report_runs=("$NEW")
fi
echo "compare_status: $compare_status" >> "$OUT/summary.txt"

report_dir="$REPORTS/nightly-$(basename "$NEW")"
"${VB[@]}" report "${report_runs[@]}" --out "$report_dir" --history "$RESULTS" \
  --title "vbench nightly: $(basename "$NEW")${BASELINE:+ vs $(basename "$BASELINE")}"
echo "report: $report_dir/index.html" >> "$OUT/summary.txt"

if [ "$compare_status" -eq 1 ]; then
  say "REGRESSION: see $OUT/compare.json, $OUT/junit.xml and $report_dir/index.html" >&2
  exit 1
elif [ "$compare_status" -ne 0 ]; then
  say "vbench compare failed (exit $compare_status)" >&2
  exit 2
fi
if [ "$run_status" -ne 0 ]; then
  say "vbench run exited $run_status (failed repetitions?); compared and reported anyway" >&2
  exit "$run_status"
fi
say "no regression"
