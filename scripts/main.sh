#!/usr/bin/env bash
# The main job: install what is needed, bring the lab up, build or reuse the guest image, run
# scenarios/disk.yaml and write its HTML report. Run as root on Debian 12.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
VB=.venv/bin/vbench
$VB lab up
$VB image build
$VB run "${1:-scenarios/disk.yaml}"
