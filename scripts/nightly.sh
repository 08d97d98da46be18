#!/usr/bin/env bash
# Nightly regression check: run a scenario, gate it against the previous run AND a pinned
# "known good" run (slow drift is caught too), write the report, a Markdown summary and one JUnit
# file. Run as root, like main.sh.
#
#   scripts/nightly.sh [SCENARIO]     one night (default: scenarios/nightly-disk.yaml)
#   scripts/nightly.sh --pin RUN      make RUN (a run directory) the known-good run of its scenario
#
# Nothing is written into the checkout: the virtual environment, results, reports and outputs live
# under NIGHTLY_HOME, vbench is installed from a temporary copy of the tree (no egg-info, no
# build/), and no bytecode is written (PYTHONDONTWRITEBYTECODE). If anything root-owned still
# appears in a checkout that belongs to another user, it is handed back to that user on exit (and
# named on stderr), so that the next checkout can clean the workspace.
#
# Exit status (the first that applies):
#   2   nightly could not compare (no run directory, a compare error such as runs of different
#       accelerators or hosts, a bad baseline)
#   1   the gate failed against the previous or the known-good run: a regression, or (when the
#       compare says so) an inconclusive gated row; see out/summary.md, out/junit.xml, the report
#   N   otherwise the status of `vbench run` when it was not 0 (e.g. 11: some repetitions failed),
#       after the comparison and the report were still made
#   20  no baseline exists (first run of this scenario): nothing was compared. Set
#       NIGHTLY_ALLOW_NO_BASELINE=1 to make that 0 (the first night of a new runner)
#   0   the gate passed
#
# Environment:
#   NIGHTLY_HOME          persistent state (default: ${VBENCH_HOME:-/var/lib/vbench}/nightly)
#   NIGHTLY_RESULTS       results root (default: $NIGHTLY_HOME/results)
#   NIGHTLY_REPORTS       reports root (default: $NIGHTLY_HOME/reports)
#   NIGHTLY_OUT           this night's outputs: summary.md, junit.xml, compare-*.json, run.log,
#                         report/, run/ (a copy of the run directory) (default: $NIGHTLY_HOME/out;
#                         emptied at start)
#   NIGHTLY_VENV          the virtual environment (default: $NIGHTLY_HOME/venv)
#   NIGHTLY_SETUP         1 (default): scripts/setup.sh into NIGHTLY_VENV first (packages, vbench)
#   NIGHTLY_PREPARE       1 (default): `vbench lab up` and `vbench image build` first (idempotent)
#   NIGHTLY_BASELINE      the "previous" baseline run (default: the newest complete earlier run of
#                         the same scenario under NIGHTLY_RESULTS)
#   NIGHTLY_KNOWN_GOOD    the known-good baseline run (default: the run pinned in
#                         $NIGHTLY_HOME/known-good/<scenario name>)
#   NIGHTLY_AUTO_PIN      1 (default): when no run is pinned yet, pin this night's run if it is
#                         complete and passed the gate (or had nothing to compare with)
#   NIGHTLY_ALLOW_NO_BASELINE  1: exit 0 instead of 20 when there is nothing to compare with
#   NIGHTLY_COMPARE_ARGS  extra arguments for `vbench compare`, e.g. "--threshold iops=0.05"
#   NIGHTLY_OWNER         uid:gid to hand NIGHTLY_OUT, results, reports and pins to on exit (the CI
#                         runner's user, so that it can upload and cache them)
#   VBENCH                the vbench command (default: $NIGHTLY_VENV/bin/vbench)
set -euo pipefail
cd "$(dirname "$0")/.."
export PYTHONDONTWRITEBYTECODE=1

NIGHTLY_HOME="${NIGHTLY_HOME:-${VBENCH_HOME:-/var/lib/vbench}/nightly}"
RESULTS="${NIGHTLY_RESULTS:-$NIGHTLY_HOME/results}"
REPORTS="${NIGHTLY_REPORTS:-$NIGHTLY_HOME/reports}"
OUT="${NIGHTLY_OUT:-$NIGHTLY_HOME/out}"
VENV="${NIGHTLY_VENV:-$NIGHTLY_HOME/venv}"
PINS="$NIGHTLY_HOME/known-good"
EXIT_NO_BASELINE=20
read -r -a COMPARE_ARGS <<< "${NIGHTLY_COMPARE_ARGS:-}"

say() { echo "nightly: $*"; }

# shellcheck disable=SC2317  # called by the EXIT trap
hand_back() {
  [ "$(id -u)" -eq 0 ] || return 0
  if [ -n "${NIGHTLY_OWNER:-}" ]; then
    chown -R "$NIGHTLY_OWNER" "$OUT" "$RESULTS" "$REPORTS" "$PINS" 2>/dev/null || true
  fi
  # The checkout belongs to the CI runner's user: nothing of root's may stay in it.
  local owner
  owner="$(stat -c %u:%g .)"
  [ "$owner" != "0:0" ] || return 0
  local stray=()
  mapfile -d '' -t stray < <(find . -xdev -uid 0 -print0 2>/dev/null)
  if [ "${#stray[@]}" -gt 0 ]; then
    say "handing ${#stray[@]} root-owned path(s) in the checkout back to $owner: ${stray[*]:0:5}" >&2
    chown -h "$owner" "${stray[@]}" || true
  fi
}
trap hand_back EXIT

# Absolute paths: vbench runs from the checkout, results live elsewhere.
abspath() { case "$1" in /*) echo "$1" ;; *) echo "$PWD/$1" ;; esac; }
RESULTS="$(abspath "$RESULTS")"; REPORTS="$(abspath "$REPORTS")"; OUT="$(abspath "$OUT")"
VENV="$(abspath "$VENV")"; PINS="$(abspath "$PINS")"
mkdir -p "$RESULTS" "$REPORTS" "$OUT" "$PINS"

if [ "${NIGHTLY_SETUP:-1}" = "1" ]; then
  VBENCH_VENV="$VENV" VBENCH_EDITABLE=0 scripts/setup.sh
fi
if [ -n "${VBENCH:-}" ]; then
  read -r -a VB <<< "$VBENCH"
else
  VB=("$VENV/bin/vbench")
fi
VPY="${NIGHTLY_PYTHON:-$VENV/bin/python}"
[ -x "$VPY" ] || VPY=python3

scenario_of() {  # the scenario name recorded in a run directory
  "$VPY" -c 'import json, sys; print(json.load(open(sys.argv[1]))["scenario"]["name"])' "$1/run.json"
}

if [ "${1:-}" = "--pin" ]; then
  run="${2:?usage: scripts/nightly.sh --pin RUN_DIRECTORY}"
  [ -f "$run/run.json" ] || { say "$run is not a run directory" >&2; exit 2; }
  name="$(scenario_of "$run")"
  abspath "$run" > "$PINS/$name"
  say "known-good run of $name is now $(cat "$PINS/$name")"
  exit 0
fi

SCENARIO="${1:-${NIGHTLY_SCENARIO:-scenarios/nightly-disk.yaml}}"
find "$OUT" -mindepth 1 -delete

if [ "${NIGHTLY_PREPARE:-1}" = "1" ]; then
  "${VB[@]}" lab up
  "${VB[@]}" image build
fi

# 1. Run. `vbench run` prints the run directory as its last line, "run: <path>"; a non-zero status
#    with a run directory (failed repetitions) still gets compared and reported.
say "running $SCENARIO (results under $RESULTS)"
run_status=0
"${VB[@]}" run "$SCENARIO" --results "$RESULTS" --reports "$REPORTS" --no-report 2>&1 \
  | tee "$OUT/run.log" || run_status=$?
NEW="$(sed -n 's/^run: //p' "$OUT/run.log" | tail -n 1)"
if [ -z "$NEW" ] || [ ! -f "$NEW/run.json" ]; then
  say "vbench run (exit $run_status) reported no run directory; see $OUT/run.log" >&2
  exit 2
fi
NEW="$(abspath "$NEW")"
NAME="$(scenario_of "$NEW")"
say "new run: $NEW (vbench run exit status $run_status)"

# 2. Baselines: the previous run (night-to-night steps) and the known-good run (slow drift).
PREV="${NIGHTLY_BASELINE:-$("$VPY" -m vbench.report.nightly previous "$RESULTS" "$NEW")}"
GOOD="${NIGHTLY_KNOWN_GOOD:-$(cat "$PINS/$NAME" 2>/dev/null || true)}"
for b in "$PREV" "$GOOD"; do
  if [ -n "$b" ] && [ ! -f "$b/run.json" ]; then
    say "baseline $b is not a run directory" >&2
    exit 2
  fi
done
if [ -n "$GOOD" ] && [ -n "$PREV" ] && [ "$(abspath "$GOOD")" = "$(abspath "$PREV")" ]; then
  say "the known-good run is also the previous run: one comparison"
  GOOD=""
fi

# 3. Compare (exit 1 = gate failed).
gate_failed=0
compare_error=0
compared=()
summary_args=()
for label in previous known-good; do
  if [ "$label" = previous ]; then base="$PREV"; else base="$GOOD"; fi
  [ -n "$base" ] || continue
  say "comparing with the $label run: $base -> $NEW"
  st=0
  "${VB[@]}" compare "$base" "$NEW" --json "$OUT/compare-$label.json" \
    --junit "$OUT/junit-$label.xml" "${COMPARE_ARGS[@]}" || st=$?
  if [ "$st" -eq 1 ]; then gate_failed=1
  elif [ "$st" -ne 0 ]; then compare_error=1; say "vbench compare failed (exit $st)" >&2
  fi
  compared+=("$base")
  summary_args+=(--compare "$label=$OUT/compare-$label.json" --junit-in "$label=$OUT/junit-$label.xml")
done

# 4. Verdict, summary, report.
if [ "$compare_error" -eq 1 ]; then verdict="could not compare (see the job log)"; status=2
elif [ "$gate_failed" -eq 1 ]; then verdict="GATE FAILED"; status=1
elif [ "$run_status" -ne 0 ]; then verdict="vbench run exited $run_status (failed repetitions?)"; status=$run_status
elif [ "${#compared[@]}" -eq 0 ]; then
  verdict="no baseline yet (first run of $NAME)"
  status=$EXIT_NO_BASELINE
  [ "${NIGHTLY_ALLOW_NO_BASELINE:-0}" != "1" ] || status=0
else verdict="gate passed"; status=0
fi

if [ "${NIGHTLY_AUTO_PIN:-1}" = "1" ] && [ ! -f "$PINS/$NAME" ] && [ "$gate_failed" -eq 0 ] \
   && [ "$compare_error" -eq 0 ] && [ "$run_status" -eq 0 ]; then
  echo "$NEW" > "$PINS/$NAME"
  say "no known-good run of $NAME was pinned: pinned this one ($NEW)"
fi

"$VPY" -m vbench.report.nightly summary --run "$NEW" "${summary_args[@]}" --status "$verdict" \
  --markdown "$OUT/summary.md" --junit "$OUT/junit.xml" \
  || say "summary not written" >&2

report_dir="$REPORTS/nightly-$(basename "$NEW")"
report_runs=()
[ -z "$GOOD" ] || report_runs+=("$GOOD")
[ -z "$PREV" ] || report_runs+=("$PREV")
if "${VB[@]}" report "${report_runs[@]}" "$NEW" --out "$report_dir" --history "$RESULTS" \
     --title "vbench nightly: $(basename "$NEW")${PREV:+ vs $(basename "$PREV")}"; then
  cp -r "$report_dir" "$OUT/report"
else
  say "report not written" >&2
fi
echo "$NEW" > "$OUT/run-dir"
# the run itself too, so that a fleet job can put this host next to the others (vbench fleet compare)
rm -rf "$OUT/run" && cp -r "$NEW" "$OUT/run"

say "$verdict: see $OUT/summary.md, $OUT/junit.xml and $report_dir/index.html"
exit "$status"
